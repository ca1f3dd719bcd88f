//! The buffer a forked child inherits, and the children themselves.
//!
//! The lab's process has threads (a progress bar, the test harness), so a forked child is a
//! copy of one thread in a process whose locks may be held by threads that no longer exist
//! there: it may only make async-signal-safe calls. The children here touch memory, read the
//! clock (`clock_gettime`), `read` and `write` pipes and `_exit` — nothing that allocates,
//! locks, prints or unwinds.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::time::Instant;

use rustix::mm::{Advice, MapFlags, ProtFlags};
use rustix::process::{Pid, Signal, WaitOptions};

use super::smaps;

/// A private anonymous mapping, every page resident.
pub(super) struct Buffer {
    base: NonNull<u8>,
    len: usize,
    page: usize,
}

impl Buffer {
    /// Maps `len` bytes (a multiple of `page`) without huge pages and writes every page.
    pub(super) fn resident(len: usize, page: usize) -> io::Result<Self> {
        // SAFETY: a fresh private mapping at an address the kernel chooses; nothing else refers
        // to it.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }?;
        let buffer = Buffer {
            base: NonNull::new(base.cast()).expect("mmap never returns null on success"),
            len,
            page,
        };
        // SAFETY: the range is exactly this mapping. 4 KiB pages make the copy-on-write cost a
        // page's, whatever the machine's transparent huge page setting.
        unsafe { rustix::mm::madvise(base, len, Advice::LinuxNoHugepage) }?;
        buffer.write_pages(1);
        Ok(buffer)
    }

    fn pages(&self) -> usize {
        self.len / self.page
    }

    /// Writes `value` into the first byte of every page. Async-signal-safe.
    fn write_pages(&self, value: u8) {
        for index in 0..self.pages() {
            // SAFETY: `index * page` is inside the mapping, which lives as long as `self`.
            unsafe {
                self.base
                    .as_ptr()
                    .add(index * self.page)
                    .write_volatile(value)
            };
        }
    }

    /// Reads the first byte of every page and returns their sum modulo 256, only so that the
    /// reads cannot be optimised away (it is never a figure). Async-signal-safe.
    fn read_pages(&self) -> u8 {
        (0..self.pages()).fold(0_u8, |sum, index| {
            // SAFETY: as in `write_pages`.
            sum.wrapping_add(unsafe { self.base.as_ptr().add(index * self.page).read_volatile() })
        })
    }

    /// Seconds to write every page just after `MADV_DONTNEED` dropped them: a fault and a
    /// zeroed page each. One sample per repetition.
    pub(super) fn fresh_writes(&self, repetitions: usize) -> io::Result<Vec<f64>> {
        (0..repetitions)
            .map(|_| {
                // SAFETY: the range is exactly this mapping, private and anonymous: dropping its
                // pages only makes them read back as zeros.
                unsafe {
                    rustix::mm::madvise(self.base.as_ptr().cast(), self.len, Advice::LinuxDontNeed)
                }?;
                let started = Instant::now();
                self.write_pages(2);
                Ok(started.elapsed().as_secs_f64())
            })
            .collect()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: this mapping is ours, and no child uses it any more (every child is reaped
        // before its `Forks`/`CopyOnWrite` is returned).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// A forked child, killed and reaped if it was not waited for.
struct Child {
    pid: Pid,
    reaped: bool,
}

impl Child {
    fn wait(mut self) -> io::Result<()> {
        self.reaped = true;
        loop {
            match rustix::process::waitpid(Some(self.pid), WaitOptions::empty()) {
                Err(rustix::io::Errno::INTR) => continue,
                result => return result.map(drop).map_err(io::Error::from),
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = rustix::process::kill_process(self.pid, Signal::KILL);
            let _ = rustix::process::waitpid(Some(self.pid), WaitOptions::empty());
        }
    }
}

/// Ends a forked child if its work unwinds, so that it never runs the parent's code.
struct ExitOnUnwind;

impl Drop for ExitOnUnwind {
    fn drop(&mut self) {
        // SAFETY: `_exit` ends the child at once, running nothing of the parent's.
        unsafe { libc::_exit(101) };
    }
}

/// Forks a child that runs `work` and `_exit`s with its result. `work` must make only
/// async-signal-safe calls (see the module's note).
fn fork(work: impl FnOnce() -> i32) -> io::Result<Child> {
    // SAFETY: the child runs only `work`, which the callers keep async-signal-safe, then
    // `_exit`s; the parent goes on as usual.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let unwinding = ExitOnUnwind;
        let code = work();
        std::mem::forget(unwinding);
        // SAFETY: as above.
        unsafe { libc::_exit(code) };
    }
    Ok(Child {
        pid: Pid::from_raw(pid).expect("fork returned a positive pid"),
        reaped: false,
    })
}

/// Fork times, in seconds, one sample per repetition.
pub(super) struct Forks {
    /// From calling `fork` to the child being reaped (it `_exit`s at once).
    pub(super) total: Vec<f64>,
    /// From calling `fork` to its return in the parent.
    pub(super) returned: Vec<f64>,
}

/// Forks `repetitions` children (after a warm-up one) that `_exit` at once.
pub(super) fn fork_and_exit(repetitions: usize) -> io::Result<Forks> {
    let mut forks = Forks {
        total: Vec::with_capacity(repetitions),
        returned: Vec::with_capacity(repetitions),
    };
    for repetition in 0..=repetitions {
        let started = Instant::now();
        let child = fork(|| 0)?;
        let returned = started.elapsed().as_secs_f64();
        child.wait()?;
        if repetition > 0 {
            forks.total.push(started.elapsed().as_secs_f64());
            forks.returned.push(returned);
        }
    }
    Ok(forks)
}

/// Copy-on-write costs, in seconds per pass over every page, one sample per repetition.
pub(super) struct CopyOnWrite {
    pub(super) child_reads: Vec<f64>,
    pub(super) child_writes: Vec<f64>,
    /// The parent's first write after the child left: a fault per page, no copy.
    pub(super) parent_after_fork: Vec<f64>,
    /// The parent's next write: no fault.
    pub(super) parent_plain: Vec<f64>,
    /// The child's private memory after the fork, after its reads, after its writes (bytes);
    /// `None` if `/proc/<pid>/smaps_rollup` cannot be read.
    pub(super) private: Option<[Vec<f64>; 3]>,
}

/// Commands to the child, one byte each; anything else ends it.
const READ_PASS: u8 = b'r';
const WRITE_PASS: u8 = b'w';
const QUIT: u8 = b'q';

/// The child's loop: for each command, one timed pass over the buffer, answered with the
/// nanoseconds it took. Async-signal-safe.
fn serve_passes(buffer: &Buffer, commands: &OwnedFd, answers: &OwnedFd) -> i32 {
    loop {
        let mut command = [0_u8; 1];
        if !matches!(rustix::io::read(commands, &mut command), Ok(1)) {
            return 0;
        }
        let started = triad::now_ns();
        match command[0] {
            READ_PASS => {
                std::hint::black_box(buffer.read_pages());
            }
            WRITE_PASS => buffer.write_pages(3),
            _ => return 0,
        }
        let elapsed = triad::now_ns().saturating_sub(started);
        if !matches!(rustix::io::write(answers, &elapsed.to_ne_bytes()), Ok(8)) {
            return 1;
        }
    }
}

/// Asks the child for one pass and returns its duration in seconds.
fn pass(commands: &OwnedFd, answers: &OwnedFd, command: u8) -> io::Result<f64> {
    rustix::io::write(commands, &[command])?;
    let mut answer = [0_u8; 8];
    let mut filled = 0;
    while filled < answer.len() {
        match rustix::io::read(answers, &mut answer[filled..])? {
            0 => return Err(io::Error::other("the child ended before answering")),
            read => filled += read,
        }
    }
    Ok(u64::from_ne_bytes(answer) as f64 / 1e9)
}

/// `repetitions` children that read, then write, every page of `buffer`; the parent reads
/// their memory between passes, then writes the pages itself twice. (No warm-up: every
/// repetition forks a fresh child of the same parent.)
pub(super) fn copy_on_write(buffer: &Buffer, repetitions: usize) -> io::Result<CopyOnWrite> {
    let mut result = CopyOnWrite {
        child_reads: Vec::new(),
        child_writes: Vec::new(),
        parent_after_fork: Vec::new(),
        parent_plain: Vec::new(),
        private: Some(Default::default()),
    };
    for _ in 0..repetitions {
        let cloexec = rustix::pipe::PipeFlags::CLOEXEC;
        let (commands_read, commands_write) = rustix::pipe::pipe_with(cloexec)?;
        let (answers_read, answers_write) = rustix::pipe::pipe_with(cloexec)?;
        let child = fork(|| serve_passes(buffer, &commands_read, &answers_write))?;
        drop((commands_read, answers_write));
        let mut snapshot =
            |index: usize| match (result.private.as_mut(), smaps::private_of(child.pid)) {
                (Some(series), Ok(bytes)) => series[index].push(bytes as f64),
                _ => result.private = None,
            };
        snapshot(0);
        let reads = pass(&commands_write, &answers_read, READ_PASS)?;
        snapshot(1);
        let writes = pass(&commands_write, &answers_read, WRITE_PASS)?;
        snapshot(2);
        rustix::io::write(commands_write.as_fd(), &[QUIT])?;
        child.wait()?;
        let started = Instant::now();
        buffer.write_pages(4);
        result
            .parent_after_fork
            .push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        buffer.write_pages(5);
        result.parent_plain.push(started.elapsed().as_secs_f64());
        result.child_reads.push(reads);
        result.child_writes.push(writes);
    }
    Ok(result)
}
