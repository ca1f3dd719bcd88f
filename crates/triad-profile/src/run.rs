//! Running a command and sampling its whole process tree: fills a [`Recording`].
//!
//! [`profile`] starts the command under a guard process (see `guard`: a child subreaper that
//! adopts what the command leaves running, and kills the whole tree if the profiler dies),
//! with the profiler's stdin/stdout/stderr. Then, on the calling thread, it wakes every
//! interval, or at once when the guard reports (the command exited, or the last descendant
//! did) or a signal arrives, and reads the tree's per-thread figures from `/proc` (no root
//! needed). The guard waits for the command and for every descendant it adopted, so its
//! `wait4` resource usage, taken last, gives the [`Totals`] of all of them. SIGINT, SIGTERM,
//! SIGHUP and SIGQUIT sent to the profiler are passed on to every process of the tree (see
//! `forward`), and the profiler carries on until the tree has ended.
//!
//! Limits: a thread that starts and ends between two samples is not seen by the samples (its
//! CPU still counts in the totals); the command's last interval is in the totals, not the
//! samples (the guard reaps it at once).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::forward::{Forwarding, Pending};
use crate::guard::{self, Message};
use crate::proc::{Sampler, is_python_name};
use crate::recording::{Exit, Lang, Recording, Sample, Totals};

/// How to profile.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// Time between samples (default 20 ms; must not be zero).
    pub interval: Duration,
    /// The program's language; `None` detects it (Python when the command, or a process in its
    /// tree, is a `python*` executable; native otherwise).
    pub lang: Option<Lang>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            interval: Duration::from_millis(20),
            lang: None,
        }
    }
}

/// Why a command could not be profiled.
///
/// The system's reason is the error's `source()`, not part of its message, so that a report of
/// the whole chain (`anyhow`'s `{:#}`) says it once.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No command was given.
    #[error("no command given")]
    EmptyCommand,
    /// The sampling interval was zero.
    #[error("the sampling interval must be above zero")]
    ZeroInterval,
    /// The command does not exist (a shell would exit with 127).
    #[error("{command}: command not found")]
    NotFound {
        /// The command as given.
        command: String,
    },
    /// The command exists but cannot be executed, e.g. permission denied (a shell: 126).
    #[error("{command}: cannot execute")]
    NotExecutable {
        /// The command as given.
        command: String,
        /// What the system said.
        source: io::Error,
    },
    /// Starting the command failed for another reason.
    #[error("{command}: cannot start")]
    Spawn {
        /// The command as given.
        command: String,
        /// What the system said.
        source: io::Error,
    },
    /// Waiting for the command failed (e.g. something else in this process reaped it).
    #[error("waiting for {command}")]
    Wait {
        /// The command as given.
        command: String,
        /// What the system said.
        source: io::Error,
    },
}

impl RunError {
    /// The exit status a shell would use for this failure: 127 not found, 126 not executable,
    /// 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::NotFound { .. } => 127,
            RunError::NotExecutable { .. } => 126,
            _ => 1,
        }
    }
}

/// Runs `command` (program and arguments) to completion with inherited stdin/stdout/stderr,
/// sampling its process tree every `options.interval`, and returns what was recorded.
///
/// The command's own failure is not an error: its exit code or signal is in
/// [`Recording::exit`]. Blocks the calling thread until the command, and every descendant
/// still running when it exited, have ended (see [`Recording::descendants_left`]).
pub fn profile<S: AsRef<OsStr>>(
    command: &[S],
    options: &RunOptions,
) -> Result<Recording, RunError> {
    run(command, options, false).map(|(recording, _)| recording)
}

/// What the command wrote to its standard output, passed on by [`profile_relaying_stdout`].
#[derive(Debug)]
pub struct Relayed {
    /// Bytes passed on.
    pub bytes: u64,
    /// The last byte passed on, if any.
    pub last_byte: Option<u8>,
    /// Why passing on stopped early (this process's stdout failed); the command then saw its
    /// stdout closed, as if it had written to a closed pipe itself.
    pub error: Option<io::Error>,
}

impl Relayed {
    /// Whether the output ended in the middle of a line (something written, no final `\n`).
    pub fn ends_mid_line(&self) -> bool {
        self.last_byte.is_some_and(|byte| byte != b'\n')
    }
}

/// [`profile`], with the command's stdout going through a pipe that this process copies to its
/// own stdout, so that the caller knows how the output ended (to start its own output on a
/// new line). The command sees a pipe, not this process's stdout: a program that behaves
/// differently on a terminal does so here too.
pub fn profile_relaying_stdout<S: AsRef<OsStr>>(
    command: &[S],
    options: &RunOptions,
) -> Result<(Recording, Relayed), RunError> {
    run(command, options, true).map(|(recording, relayed)| {
        let relayed = relayed.unwrap_or(Relayed {
            bytes: 0,
            last_byte: None,
            error: None,
        });
        (recording, relayed)
    })
}

fn run<S: AsRef<OsStr>>(
    command: &[S],
    options: &RunOptions,
    relay: bool,
) -> Result<(Recording, Option<Relayed>), RunError> {
    let Some((program, args)) = command.split_first() else {
        return Err(RunError::EmptyCommand);
    };
    if options.interval.is_zero() {
        return Err(RunError::ZeroInterval);
    }
    let program = program.as_ref();
    let name = program.to_string_lossy().into_owned();
    let interval = options.interval;
    let spawn_error = |source| RunError::Spawn {
        command: name.clone(),
        source,
    };

    // Handlers first, so a signal during the start waits for the tree rather than killing us.
    let forwarding = Forwarding::start();
    let start = Instant::now();
    let (relay_read, relay_write) = if relay {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|errno| spawn_error(errno.into()))?;
        (Some(read), Some(write))
    } else {
        (None, None)
    };
    let (mut guard, first) = guard::spawn(program, args, relay_write).map_err(spawn_error)?;
    let command_pid = match first {
        Message::Started { pid } => pid,
        Message::ExecFailed { errno } => return Err(exec_error(name, errno)),
        Message::CommandExited { .. } => unreachable!("spawn returns a first message"),
    };
    let stop_relay = Arc::new(AtomicBool::new(false));
    let relay_thread = relay_read.map(|from| {
        let stop = stop_relay.clone();
        std::thread::spawn(move || relay_to_stdout(from, &stop))
    });

    let detect = options.lang.is_none();
    let mut sampler = Sampler::below_guard(guard.pid, command_pid, detect);
    let mut samples: Vec<Sample> = Vec::with_capacity(256);
    let mut next = start + interval;
    let mut command_end = None;
    let mut status = 0;
    let mut descendants_left = 0;
    let (usage, end) = loop {
        let woke = wait_until(next, guard.reports_fd(), forwarding.wake_fd());
        let now = Instant::now();
        if woke.signal {
            pass_on(forwarding.take(), &mut sampler);
        }
        let mut guard_exited = false;
        if woke.report {
            match guard.next_message() {
                Some(Message::CommandExited {
                    status: wait_status,
                    outlived,
                }) => {
                    command_end = Some(now);
                    status = wait_status;
                    descendants_left = u32::try_from(outlived).unwrap_or(0);
                }
                _ => guard_exited = true,
            }
        }
        samples.push(sampler.sample(ms_since(start, now)));
        if command_end == Some(now) {
            // That last look is taken: the guard may reap the command now.
            guard.acknowledge();
        }
        if guard_exited {
            let reaped = wait4(guard.pid, 0).map_err(|source| RunError::Wait {
                command: name.clone(),
                source,
            })?;
            guard.reaped();
            let (_, usage) = reaped.expect("a blocking wait4 reaps");
            break (usage, Instant::now());
        }
        if woke.report || woke.signal {
            continue; // not a sampling time: keep the schedule
        }
        next += interval;
        let now = Instant::now();
        if next <= now {
            // A sample took longer than the interval (a loaded machine): skip, do not burst.
            next = now + interval;
        }
    };
    drop(forwarding);
    let relayed = relay_thread.map(|thread| {
        // Every writer has ended with the tree: the copy ends at end of file. A descriptor
        // passed outside the tree could keep it open; then stop after a grace period.
        let deadline = Instant::now() + RELAY_GRACE;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop_relay.store(true, Ordering::Release);
        thread.join().expect("the relay does not panic")
    });

    let exit = if libc::WIFSIGNALED(status) {
        Exit::Signal {
            signal: libc::WTERMSIG(status),
        }
    } else {
        Exit::Code {
            code: libc::WEXITSTATUS(status),
        }
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    let totals = Totals {
        wall_s: end.duration_since(start).as_secs_f64(),
        user_s: secs(usage.ru_utime),
        system_s: secs(usage.ru_stime),
        max_rss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
        voluntary_switches: usage.ru_nvcsw.max(0) as u64,
        involuntary_switches: usage.ru_nivcsw.max(0) as u64,
        in_blocks: usage.ru_inblock.max(0) as u64,
        out_blocks: usage.ru_oublock.max(0) as u64,
        // It ran as one process with one thread at least, even if no sample caught it.
        peak_threads: samples.iter().map(|s| s.threads).max().unwrap_or(0).max(1),
        peak_processes: samples
            .iter()
            .map(|s| s.processes)
            .max()
            .unwrap_or(0)
            .max(1),
    };
    let lang = options.lang.unwrap_or(
        if is_python_name(program.as_encoded_bytes()) || sampler.saw_python {
            Lang::Python
        } else {
            Lang::Native
        },
    );
    let recording = Recording {
        command: command
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect(),
        interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        lang,
        samples,
        totals,
        exit,
        command_wall_s: command_end
            .unwrap_or(end)
            .duration_since(start)
            .as_secs_f64(),
        descendants_left,
        threads: sampler.thread_records(),
    };
    Ok((recording, relayed))
}

/// How long the copy of a relayed stdout may go on after the whole tree has ended.
const RELAY_GRACE: Duration = Duration::from_secs(1);

/// The error for a command that `execvp` refused with `errno`.
fn exec_error(command: String, errno: i32) -> RunError {
    let source = io::Error::from_raw_os_error(errno);
    match errno {
        libc::ENOENT => RunError::NotFound { command },
        libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::EPERM => {
            RunError::NotExecutable { command, source }
        }
        _ => RunError::Spawn { command, source },
    }
}

/// Passes the pending signals on to the tree: a signal a process sent, to every process; one
/// the terminal sent to the foreground group, to the processes outside the profiler's group
/// (the others had it already).
fn pass_on(pending: Pending, sampler: &mut Sampler) {
    if pending == Pending::default() {
        return;
    }
    // SAFETY: getpgrp has no preconditions.
    let own_group = unsafe { libc::getpgrp() };
    for pid in sampler.processes() {
        // SAFETY: getpgid and kill have no memory-safety preconditions.
        let outside = unsafe { libc::getpgid(pid) } != own_group;
        for signal in Pending::signals(pending.from_process) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, signal) };
        }
        if outside {
            for signal in Pending::signals(pending.from_terminal) {
                // SAFETY: as above.
                unsafe { libc::kill(pid, signal) };
            }
        }
    }
}

/// Copies `from` to this process's stdout until end of file, a failed write (then `from` is
/// closed, so the writer sees a closed pipe), or `stop`.
fn relay_to_stdout(from: OwnedFd, stop: &AtomicBool) -> Relayed {
    let mut relayed = Relayed {
        bytes: 0,
        last_byte: None,
        error: None,
    };
    let mut buf = vec![0_u8; 64 * 1024];
    let tick = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    };
    loop {
        let mut fds = [rustix::event::PollFd::new(
            &from,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut fds, Some(&tick)) {
            Ok(0) if stop.load(Ordering::Acquire) => break,
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(errno) => {
                relayed.error = Some(errno.into());
                break;
            }
        }
        let n = match rustix::io::read(&from, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            Err(errno) => {
                relayed.error = Some(errno.into());
                break;
            }
        };
        if let Err(error) = write_all_stdout(&buf[..n]) {
            relayed.error = Some(error);
            break;
        }
        relayed.bytes += n as u64;
        relayed.last_byte = Some(buf[n - 1]);
    }
    relayed
}

fn write_all_stdout(mut bytes: &[u8]) -> io::Result<()> {
    // SAFETY: descriptor 1 is open for the life of the process (std puts /dev/null there if
    // it was closed at start).
    let stdout = unsafe { BorrowedFd::borrow_raw(1) };
    while !bytes.is_empty() {
        match rustix::io::write(stdout, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

/// What woke the sampling loop.
#[derive(Debug, Default)]
struct Woke {
    /// The guard sent a message or exited.
    report: bool,
    /// A signal to pass on is pending.
    signal: bool,
}
fn ms_since(start: Instant, now: Instant) -> f64 {
    now.duration_since(start).as_secs_f64() * 1e3
}

/// Sleeps until `deadline`, or until the guard reports (or exits), or a signal is pending.
fn wait_until(deadline: Instant, reports: RawFd, wake: Option<BorrowedFd<'_>>) -> Woke {
    // SAFETY: the guard's report pipe stays open while the guard is polled.
    let reports = unsafe { BorrowedFd::borrow_raw(reports) };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = rustix::event::Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let flags = rustix::event::PollFlags::IN;
        let mut fds = [
            rustix::event::PollFd::new(&reports, flags),
            rustix::event::PollFd::new(wake.as_ref().unwrap_or(&reports), flags),
        ];
        let watched = if wake.is_some() { 2 } else { 1 };
        match rustix::event::poll(&mut fds[..watched], Some(&timeout)) {
            Ok(0) => return Woke::default(),
            Ok(_) => {
                let ready = |fd: &rustix::event::PollFd<'_>| !fd.revents().is_empty();
                return Woke {
                    report: ready(&fds[0]),
                    signal: watched == 2 && ready(&fds[1]),
                };
            }
            // A signal arrived (its wake-up byte is on the pipe): poll again.
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => {
                std::thread::sleep(left);
                return Woke::default();
            }
        }
    }
}

/// `wait4(pid, flags)`: `Some((status, rusage))` once reaped, `None` if still running (WNOHANG).
fn wait4(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<(libc::c_int, libc::rusage)>> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: status and usage are valid, writable and live for the call.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if r == pid {
            return Ok(Some((status, usage)));
        }
        if r == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cost of one sample of a one-process, one-thread tree (printed; bound generous).
    #[test]
    fn one_sample_is_cheap() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let mut s = Sampler::new(child.id() as i32, true);
        let _ = s.sample(0.0);
        let n = 200;
        let t = Instant::now();
        for i in 0..n {
            let x = s.sample(f64::from(i));
            assert_eq!((x.processes, x.threads), (1, 1));
        }
        let per = t.elapsed() / n;
        eprintln!("one sample of 1 process, 1 thread: {per:?}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(per < Duration::from_millis(5), "{per:?}");
    }
}
