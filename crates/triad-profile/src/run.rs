//! Running a command and sampling its whole process tree: fills a [`Recording`].
//!
//! [`profile`] spawns the command with the profiler's stdin/stdout/stderr, then, on the calling
//! thread, wakes every interval (or at once when the command exits: it waits on a pidfd), reads
//! the tree's per-thread figures from `/proc` (no root needed) and finally reaps the command with
//! `wait4`, whose resource usage gives the [`Totals`]. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent
//! to the profiler while it runs are passed on to the command, and the profiler carries on until
//! the command has exited.
//!
//! Limits: a descendant that detaches from the tree (its parent exits first, so it is adopted by
//! init) is no longer followed, and a thread that starts and ends between two samples is not
//! seen by the samples (its CPU still counts in the totals if it was waited for).

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::forward::Forwarding;
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
/// [`Recording::exit`]. Blocks the calling thread until the command exits.
pub fn profile<S: AsRef<OsStr>>(
    command: &[S],
    options: &RunOptions,
) -> Result<Recording, RunError> {
    let Some((program, args)) = command.split_first() else {
        return Err(RunError::EmptyCommand);
    };
    if options.interval.is_zero() {
        return Err(RunError::ZeroInterval);
    }
    let program = program.as_ref();
    let name = program.to_string_lossy().into_owned();
    let interval = options.interval;

    // Handlers first, so a signal during the spawn is not lost (nor kills the profiler).
    let forwarding = Forwarding::start();
    let start = Instant::now();
    let child = Command::new(program)
        .args(args)
        .spawn()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => RunError::NotFound {
                command: name.clone(),
            },
            io::ErrorKind::PermissionDenied => RunError::NotExecutable {
                command: name.clone(),
                source,
            },
            _ => match source.raw_os_error() {
                Some(libc::ENOEXEC | libc::EACCES | libc::EISDIR) => RunError::NotExecutable {
                    command: name.clone(),
                    source,
                },
                _ => RunError::Spawn {
                    command: name.clone(),
                    source,
                },
            },
        })?;
    // `child` is never waited through std: wait4 below reaps it and gives its rusage.
    let pid = child.id() as libc::pid_t;
    forwarding.set_pid(pid);
    let pidfd = rustix::process::Pid::from_raw(pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());

    let detect = options.lang.is_none();
    let mut sampler = Sampler::new(pid, detect);
    let mut samples: Vec<Sample> = Vec::with_capacity(256);
    let mut next = start + interval;
    let (status, usage, end) = loop {
        let exited = wait_until(next, pidfd.as_ref());
        let now = Instant::now();
        samples.push(sampler.sample(ms_since(start, now)));
        match wait4(pid, libc::WNOHANG) {
            Ok(Some((status, usage))) => {
                break (status, usage, if exited { now } else { Instant::now() });
            }
            Ok(None) => {}
            Err(source) => {
                return Err(RunError::Wait {
                    command: name,
                    source,
                });
            }
        }
        next += interval;
        let now = Instant::now();
        if next <= now {
            // A sample took longer than the interval (a loaded machine): skip, do not burst.
            next = now + interval;
        }
    };
    drop(forwarding);
    drop(child);

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
    Ok(Recording {
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
    })
}

fn ms_since(start: Instant, now: Instant) -> f64 {
    now.duration_since(start).as_secs_f64() * 1e3
}

/// Sleeps until `deadline`, or until the process behind `pidfd` exits (returns true then).
/// Without a pidfd, plain sleep.
fn wait_until(deadline: Instant, pidfd: Option<&OwnedFd>) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(fd) = pidfd else {
            std::thread::sleep(left);
            return false;
        };
        let timeout = rustix::event::Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => return false,
            Ok(_) => return true,
            // A signal (perhaps one being forwarded): keep waiting for the rest of the time.
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                return false;
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
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
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
