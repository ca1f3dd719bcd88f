//! How a process started by a pool finds out what it is: [`init`], and the environment it reads.
//!
//! A spawned worker or fork server is this program run again, with a variable that names its
//! parent and the descriptors it was given; [`init`] checks them, removes the variable so that
//! the process's own children do not inherit it, and serves (it never returns then).

use super::{server, slot, worker};

/// Where a worker process finds its socket and its slot page:
/// `TRIAD_WORKER=<parent pid>:<socket fd>:<slot fd>`.
pub(super) const WORKER_ENV: &str = "TRIAD_WORKER";

/// Where a re-executed fork server finds its control socket: `TRIAD_FORK_SERVER=<pid>:<fd>`.
pub(super) const FORK_SERVER_ENV: &str = "TRIAD_FORK_SERVER";

/// Extra arguments a re-executed worker needs to reach [`init`], registered by
/// [`test_support!`](crate::test_support) for test binaries (whose `main` belongs to libtest).
#[derive(Debug)]
pub struct WorkerEntry {
    pub(super) args: &'static [&'static str],
}

impl WorkerEntry {
    /// An entry whose `args` make the test harness run only the worker's test function.
    pub const fn new(args: &'static [&'static str]) -> Self {
        WorkerEntry { args }
    }
}

inventory::collect!(WorkerEntry);

/// A worker's thread name (`comm`, at most 15 bytes), as `ps`, `top` and `/proc/<pid>/comm`
/// show it; its command line says more (see `start`).
pub(super) const WORKER_NAME: &str = "triad-worker";
/// A fork server's thread name.
pub(super) const FORK_SERVER_NAME: &str = "triad-forksrv";

/// Sets this process's name: what `ps -o comm`, `top` and `pgrep` match. That is the main
/// thread's name; `/proc/self/comm` sets it from any thread (a test harness calls `init` on
/// one of its own), and `PR_SET_NAME` on the calling thread is the fallback without `/proc`.
pub(super) fn name_this_process(name: &str) {
    if std::fs::write("/proc/self/comm", name).is_err() {
        let _ = rustix::thread::set_name(&std::ffi::CString::new(name).expect("no NUL in a name"));
    }
}

/// Makes this process a worker if the pool started it as one; otherwise returns at once.
///
/// Call it as the first line of `main`. A spawned worker is this same executable run again:
/// `init` is where it turns off the path your `main` would take and serves tasks instead (it
/// never returns then). It must come before anything with effects — opening files, starting
/// threads or pools, printing — because the worker would do all of that too. A pool refuses to
/// start in a process that was started as a worker but did not stop in `init`.
///
/// # Examples
///
/// ```no_run
/// #[triad::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() {
///     triad::init();
///     let pool = triad::ProcessPool::builder().workers(2).build().unwrap();
///     assert_eq!(pool.map(square, [1, 2, 3]), vec![Ok(1), Ok(4), Ok(9)]);
/// }
/// ```
pub fn init() {
    if let Some(control) = fork_server_fd_from_env() {
        name_this_process(FORK_SERVER_NAME);
        server::serve(control);
    }
    let Some((socket, slot)) = worker_fds_from_env() else {
        return;
    };
    name_this_process(WORKER_NAME);
    let registry = match crate::task::registry() {
        Ok(registry) => registry,
        Err(error) => {
            eprintln!("triad worker: {error}");
            std::process::exit(worker::EXIT_PROTOCOL);
        }
    };
    worker::serve(socket, slot, registry)
}

/// The worker socket and slot page the pool gave this process, if it is a worker: checks that
/// the variable names our parent, an open Unix socket and a mappable page, and removes it so our
/// own children do not inherit it.
fn worker_fds_from_env() -> Option<(std::os::fd::OwnedFd, slot::Slot)> {
    use std::os::fd::{FromRawFd, RawFd};

    let value = std::env::var(WORKER_ENV).ok()?;
    // SAFETY: `init` runs first in `main` (or in the test harness's worker entry) before this
    // process starts threads of its own, so nothing reads the environment concurrently.
    unsafe { std::env::remove_var(WORKER_ENV) };
    let mut fields = value.split(':');
    let parent: i32 = fields.next()?.parse().ok()?;
    let fd: RawFd = fields.next()?.parse().ok()?;
    let slot_fd: RawFd = fields.next()?.parse().ok()?;
    if rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get()) != Some(parent) {
        return None;
    }
    for raw in [fd, slot_fd] {
        // SAFETY: fcntl(F_GETFD) only asks whether `raw` is open; it takes no ownership.
        if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
            return None;
        }
    }
    // SAFETY: the pool placed these descriptors here for us alone and nothing else in this
    // process owns them; we take ownership once, as the variable is removed above.
    let (socket, slot_page) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fd),
            std::os::fd::OwnedFd::from_raw_fd(slot_fd),
        )
    };
    let is_stream_socket = rustix::net::sockopt::socket_type(&socket)
        .is_ok_and(|kind| kind == rustix::net::SocketType::STREAM);
    // The socket came across exec without FD_CLOEXEC; a program a task starts must not inherit
    // it, or the pool would not see this worker's end while that program lives.
    rustix::io::fcntl_setfd(&socket, rustix::io::FdFlags::CLOEXEC).ok()?;
    let slot = slot::Slot::map(&slot_page).ok()?;
    is_stream_socket.then_some((socket, slot))
}

/// The control socket of a fork server re-executed from this program, if this is one.
fn fork_server_fd_from_env() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;

    let value = std::env::var(FORK_SERVER_ENV).ok()?;
    // SAFETY: as in `worker_fds_from_env`: `init` runs before this process has threads of its
    // own.
    unsafe { std::env::remove_var(FORK_SERVER_ENV) };
    let (parent, fd) = value.split_once(':')?;
    let parent: i32 = parent.parse().ok()?;
    let fd: i32 = fd.parse().ok()?;
    if rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get()) != Some(parent) {
        return None;
    }
    // SAFETY: fcntl(F_GETFD) only asks whether `fd` is open; it takes no ownership.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the parent placed this descriptor here for us alone; we take it once.
    let control = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&control, rustix::io::FdFlags::CLOEXEC).ok()?;
    Some(control)
}

/// Whether this process was started as a worker or fork server and did not stop in [`init`].
pub(super) fn started_as_worker_without_init() -> bool {
    std::env::var_os(WORKER_ENV).is_some() || std::env::var_os(FORK_SERVER_ENV).is_some()
}
