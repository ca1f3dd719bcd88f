//! The guard: a small process between the profiler and the command, so that nothing the
//! command starts outlives the profiler, and nothing it leaves behind escapes the profile.
//!
//! ```text
//! profiler ──fork──▶ guard (a child subreaper) ──fork+exec──▶ command ──▶ its children …
//! ```
//!
//! - The guard is a **child subreaper** (`PR_SET_CHILD_SUBREAPER`): a descendant whose parent
//!   exits (`sh -c 'sleep 5 & exit 0'`'s sleep) is adopted by the guard, not by init, so it
//!   stays in the tree that is sampled, and the guard waits for it. When the command exits the
//!   guard tells the profiler how many such descendants were still running, then follows them
//!   until the last one has ended.
//! - The guard has `PR_SET_PDEATHSIG(SIGUSR2)`: if the profiler dies (even by SIGKILL), the
//!   guard kills every process left — its children with SIGKILL, then the children they leave,
//!   which it adopts, until it has none — and exits. The command also has
//!   `PR_SET_PDEATHSIG(SIGKILL)`, in case the guard itself is killed.
//! - The guard ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT: those are for the command's tree,
//!   which the profiler signals process by process (see `forward`).
//! - The guard reports on a pipe, in fixed 16-byte [`Message`]s: the command started (its pid)
//!   or could not be executed (errno, sent by the command's child side through a close-on-exec
//!   pipe, as std does); later, the command's wait status and the count of descendants left.
//!   It notices the command's exit with `waitid(WNOWAIT)` and reaps it only after the profiler
//!   has acknowledged (one byte on a second pipe), so that the profiler's last look at the
//!   command — a zombie still holding its final counters — sees everything it did.
//!
//! The guard is forked, not executed, from a process that may have other threads; so between
//! `fork` and `_exit` it calls only async-signal-safe functions (raw system calls through
//! libc), allocates nothing and uses only what was prepared before the fork.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::forward::SIGNALS;

/// What the guard tells the profiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    /// The command is running as `pid`.
    Started { pid: i32 },
    /// The command could not be executed: `errno` from `execvp`.
    ExecFailed { errno: i32 },
    /// The command ended with wait status `status`; `outlived` descendants were still running.
    CommandExited { status: i32, outlived: i32 },
}

const STARTED: i32 = 1;
const EXEC_FAILED: i32 = 2;
const COMMAND_EXITED: i32 = 3;

impl Message {
    fn decode(words: [i32; 4]) -> Option<Message> {
        match words[0] {
            STARTED => Some(Message::Started { pid: words[1] }),
            EXEC_FAILED => Some(Message::ExecFailed { errno: words[1] }),
            COMMAND_EXITED => Some(Message::CommandExited {
                status: words[1],
                outlived: words[2],
            }),
            _ => None,
        }
    }
}

/// A running guard, seen from the profiler.
#[derive(Debug)]
pub(crate) struct Guard {
    /// The guard's pid; reaped by the caller with `wait4`, or by `Drop` after a kill.
    pub(crate) pid: libc::pid_t,
    /// Messages from the guard.
    reports: File,
    /// Acknowledgements to the guard: the profiler has taken its last look at the command.
    acks: File,
    /// Set once the caller has reaped the guard.
    reaped: bool,
}

impl Guard {
    /// The descriptor to poll for the next message (readable on a message or at the end).
    pub(crate) fn reports_fd(&self) -> RawFd {
        self.reports.as_raw_fd()
    }

    /// The next message; `None` when the guard has exited (or sent something unreadable).
    pub(crate) fn next_message(&mut self) -> Option<Message> {
        let mut bytes = [0_u8; 16];
        self.reports.read_exact(&mut bytes).ok()?;
        let word = |i: usize| i32::from_ne_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
        Message::decode([word(0), word(1), word(2), word(3)])
    }

    /// Lets the guard reap the command (after a [`Message::CommandExited`] was handled).
    pub(crate) fn acknowledge(&mut self) {
        let _ = std::io::Write::write_all(&mut self.acks, &[1]);
    }

    /// Records that the caller reaped the guard.
    pub(crate) fn reaped(&mut self) {
        self.reaped = true;
    }
}

impl Drop for Guard {
    /// A guard not reaped by the caller (an error path): have it kill everything, and reap it.
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: kill and waitpid have no memory-safety preconditions; `pid` is our
            // child, not yet reaped, so it cannot name another process.
            unsafe {
                libc::kill(self.pid, libc::SIGUSR2);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Starts the guard, which starts `program` with `args` (searched in `PATH` as a shell does),
/// with this process's stdin and stderr, and stdout too unless `stdout` is given; waits until
/// the command is running (or could not be executed).
pub(crate) fn spawn<S: AsRef<OsStr>>(
    program: &OsStr,
    args: &[S],
    stdout: Option<OwnedFd>,
) -> io::Result<(Guard, Message)> {
    let nul = |_| io::Error::new(io::ErrorKind::InvalidInput, "an argument holds a NUL byte");
    let program = CString::new(program.as_bytes()).map_err(nul)?;
    let mut argv: Vec<CString> = vec![program.clone()];
    for arg in args {
        argv.push(CString::new(arg.as_ref().as_bytes()).map_err(nul)?);
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let (reports_read, reports_write) = pipe()?;
    let (acks_read, acks_write) = pipe()?;
    let stdout_fd = stdout.as_ref().map_or(-1, AsRawFd::as_raw_fd);

    // SAFETY: getpid has no preconditions.
    let profiler = unsafe { libc::getpid() };
    // Every signal blocked across the fork, so that none runs this process's handlers in the
    // guard before it has set its own.
    // SAFETY: sigset_t values are plain data; sigfillset and pthread_sigmask only write them.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut before: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are valid for the calls.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
    }
    // SAFETY: after fork the child runs only `guard_main`, which calls async-signal-safe
    // functions alone and never returns; every pointer it uses was made before the fork and
    // stays valid in its copy of the address space.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        guard_main(
            profiler,
            reports_write.as_raw_fd(),
            acks_read.as_raw_fd(),
            stdout_fd,
            program.as_ptr(),
            argv_ptrs.as_ptr(),
        );
    }
    let forked = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
    if pid < 0 {
        return Err(forked);
    }
    drop(reports_write);
    drop(acks_read);
    drop(stdout);
    let mut guard = Guard {
        pid,
        reports: File::from(reports_read),
        acks: File::from(acks_write),
        reaped: false,
    };
    match guard.next_message() {
        Some(first @ (Message::Started { .. } | Message::ExecFailed { .. })) => Ok((guard, first)),
        _ => Err(io::Error::other(
            "the profiler's guard process failed to start",
        )),
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Set in the guard by SIGUSR2: the profiler is gone (its death signal) or wants everything
/// killed (`Guard::drop`).
static KILL_EVERYTHING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_kill_everything(_: libc::c_int) {
    KILL_EVERYTHING.store(true, Ordering::Release);
    // Here too, not only in the loop: the signal may land just before a blocking waitpid.
    // SAFETY: for_each_child and kill are async-signal-safe.
    unsafe {
        for_each_child(|pid| {
            libc::kill(pid, libc::SIGKILL);
        })
    };
}

/// The guard's life. Async-signal-safe calls only (see the module docs).
fn guard_main(
    profiler: libc::pid_t,
    reports: RawFd,
    acks: RawFd,
    stdout: RawFd,
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
) -> ! {
    // SAFETY: the whole function makes raw system calls on descriptors and memory this
    // process owns, with no allocation and no locks; `program` and `argv` point into memory
    // prepared before the fork.
    unsafe {
        for &signal in &SIGNALS {
            libc::signal(signal, libc::SIG_IGN);
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_kill_everything as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        // No SA_RESTART: the signal must interrupt a blocking waitpid.
        libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut());
        close_all_but(&[0, 1, 2, reports, acks, stdout]);
        libc::prctl(libc::PR_SET_NAME, c"triad-guard".as_ptr());
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR2);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if libc::getppid() != profiler {
            // The profiler died before the death signal was set.
            libc::_exit(1);
        }

        let mut exec_pipe = [0; 2];
        if libc::pipe2(exec_pipe.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            send(reports, EXEC_FAILED, *libc::__errno_location(), 0);
            libc::_exit(1);
        }
        let guard = libc::getpid();
        let command = libc::fork();
        if command == 0 {
            for &signal in SIGNALS.iter().chain(&[libc::SIGUSR2, libc::SIGPIPE]) {
                libc::signal(signal, libc::SIG_DFL);
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != guard {
                libc::_exit(127);
            }
            if stdout >= 0 && libc::dup2(stdout, 1) < 0 {
                libc::_exit(127);
            }
            libc::execvp(program, argv);
            let errno = *libc::__errno_location();
            libc::write(exec_pipe[1], (&raw const errno).cast(), 4);
            libc::_exit(127);
        }
        libc::close(exec_pipe[1]);
        if stdout >= 0 {
            libc::close(stdout);
        }
        if command < 0 {
            send(reports, EXEC_FAILED, *libc::__errno_location(), 0);
            libc::_exit(1);
        }
        let mut errno: i32 = 0;
        let read = loop {
            let n = libc::read(exec_pipe[0], (&raw mut errno).cast(), 4);
            if n >= 0 || *libc::__errno_location() != libc::EINTR {
                break n;
            }
        };
        libc::close(exec_pipe[0]);
        if read == 4 {
            send(reports, EXEC_FAILED, errno, 0);
        } else {
            send(reports, STARTED, command, 0);
        }

        loop {
            if KILL_EVERYTHING.load(Ordering::Acquire) {
                for_each_child(|pid| {
                    libc::kill(pid, libc::SIGKILL);
                });
            }
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let exited = libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOWAIT | libc::__WALL,
            );
            if exited < 0 {
                match *libc::__errno_location() {
                    libc::EINTR => continue,
                    _ => break, // ECHILD: nobody is left
                }
            }
            let pid = info.si_pid();
            if pid == command && read != 4 {
                // The command's children, orphaned at its exit, are this guard's by now.
                let mut outlived = 0;
                for_each_child(|child| {
                    if child != command {
                        outlived += 1;
                    }
                });
                send(reports, COMMAND_EXITED, wait_status(&info), outlived);
                // Until the profiler has looked (or is gone: end of file, or SIGUSR2).
                let mut byte = 0_u8;
                loop {
                    let n = libc::read(acks, (&raw mut byte).cast(), 1);
                    let interrupted = n < 0 && *libc::__errno_location() == libc::EINTR;
                    if !interrupted || KILL_EVERYTHING.load(Ordering::Acquire) {
                        break;
                    }
                }
            }
            libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
        }
        libc::_exit(0)
    }
}

/// The `waitpid` status word for what `waitid` reported.
///
/// # Safety
///
/// `info` was filled by a successful `waitid` with `WEXITED`.
unsafe fn wait_status(info: &libc::siginfo_t) -> i32 {
    // SAFETY: for a child's exit, si_status is the exit code or the signal.
    let value = unsafe { info.si_status() };
    match info.si_code {
        libc::CLD_EXITED => (value & 0xff) << 8,
        libc::CLD_DUMPED => (value & 0x7f) | 0x80,
        _ => value & 0x7f,
    }
}

/// Writes one message (16 bytes: under PIPE_BUF, so one atomic write).
///
/// # Safety
///
/// Async-signal-safe; `fd` is a descriptor of this process (a failed write is ignored).
unsafe fn send(fd: RawFd, kind: i32, a: i32, b: i32) {
    let words = [kind, a, b, 0];
    // SAFETY: `words` is 16 readable bytes.
    unsafe { libc::write(fd, words.as_ptr().cast(), 16) };
}

/// Closes every descriptor of this process but those in `keep` (negative ones are ignored).
///
/// # Safety
///
/// Async-signal-safe; closes descriptors other code may hold, so only for the guard.
unsafe fn close_all_but(keep: &[RawFd]) {
    let mut sorted = [i32::MAX; 8];
    let mut n = 0;
    for &fd in keep {
        if fd >= 0 && n < sorted.len() {
            sorted[n] = fd;
            n += 1;
        }
    }
    sorted[..n].sort_unstable();
    let mut from: u32 = 0;
    for &fd in &sorted[..n] {
        let fd = fd as u32;
        if fd > from {
            // SAFETY: close_range takes no pointers.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) };
        }
        from = fd + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
}

/// Calls `each` with the pid of every child of this (single-threaded) process, from
/// `/proc/thread-self/children`, with a buffer on the stack.
///
/// # Safety
///
/// Async-signal-safe: open, read, close and `each`, which must be too.
unsafe fn for_each_child(mut each: impl FnMut(libc::pid_t)) {
    // SAFETY: a NUL-terminated path; open, read and close take valid pointers and lengths.
    unsafe {
        let fd = libc::open(
            c"/proc/thread-self/children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        let mut buf = [0_u8; 512];
        let mut pid: libc::pid_t = 0;
        let mut in_number = false;
        loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            for &byte in &buf[..n as usize] {
                if byte.is_ascii_digit() {
                    pid = pid
                        .saturating_mul(10)
                        .saturating_add(i32::from(byte - b'0'));
                    in_number = true;
                } else if in_number {
                    each(pid);
                    pid = 0;
                    in_number = false;
                }
            }
        }
        if in_number {
            each(pid);
        }
        libc::close(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode() {
        assert_eq!(
            Message::decode([STARTED, 42, 0, 0]),
            Some(Message::Started { pid: 42 })
        );
        assert_eq!(
            Message::decode([COMMAND_EXITED, 3 << 8, 2, 0]),
            Some(Message::CommandExited {
                status: 3 << 8,
                outlived: 2
            })
        );
        assert_eq!(Message::decode([9, 0, 0, 0]), None);
    }

    #[test]
    fn a_missing_program_is_reported_with_its_errno() {
        let (mut guard, first) = spawn(
            OsStr::new("no-such-program-for-triad"),
            &[] as &[&str],
            None,
        )
        .expect("the guard starts");
        assert_eq!(
            first,
            Message::ExecFailed {
                errno: libc::ENOENT
            }
        );
        assert_eq!(guard.next_message(), None, "the guard exits");
        drop(guard);
    }

    #[test]
    fn the_guard_reports_the_exit_and_the_descendants_left() {
        let (mut guard, first) =
            spawn(OsStr::new("sh"), &["-c", "sleep 0.3 & exit 3"], None).unwrap();
        assert!(
            matches!(first, Message::Started { pid } if pid > 0),
            "{first:?}"
        );
        let Some(Message::CommandExited { status, outlived }) = guard.next_message() else {
            panic!("no exit message");
        };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3);
        assert_eq!(outlived, 1, "the background sleep");
        guard.acknowledge();
        // The guard ends only when the sleep has.
        assert_eq!(guard.next_message(), None);
        let mut status = 0;
        // SAFETY: the guard is this test's child; `status` is valid for the call.
        let reaped = unsafe { libc::waitpid(guard.pid, &mut status, 0) };
        assert_eq!(reaped, guard.pid);
        guard.reaped();
    }
}
