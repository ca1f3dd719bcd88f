//! The process engine: a `multiprocessing.Pool`-grade pool of worker processes.
//!
//! Rust has no well-kept process pool to build on, so this machinery is ours (see
//! `shared/research/process-pools.md`). A worker is a process of the same executable — started
//! by one of the seed's three start methods: spawn (re-executed), fork, or from a fork server —
//! that finds tasks by their registry name; it talks to the pool over
//! one Unix stream socket in length-prefixed, versioned frames ([`wire`]). One dispatcher thread
//! per pool owns every worker: it polls their sockets, sends batches of tasks by *credit* (as
//! many tasks as keep a worker busy for about two milliseconds, from the task cost it measures),
//! reads results, and replaces a worker that dies, that hangs past a task's time limit, or that
//! has run `max_tasks_per_child` tasks.
//!
//! # Layout
//! - [`wire`]: frames and messages.
//! - `pool`: [`ProcessPool`], its builder and handles.
//! - `dispatcher`: the pool's I/O thread.
//! - `start`: how a worker process is started.
//! - `server`: the fork server behind the fork and fork-server start methods.
//! - `slot`: the shared page in which a worker names the task it runs.
//! - `worker`: the loop a worker runs.

pub(crate) mod dispatcher;
pub(crate) mod pool;
mod server;
mod slot;
mod start;
pub mod wire;
mod worker;

pub use pool::{PoolError, ProcessPool, ProcessPoolBuilder, StartMethod, TaskHandle};

/// Where a worker process finds its socket and its slot page:
/// `TRIAD_WORKER=<parent pid>:<socket fd>:<slot fd>`.
const WORKER_ENV: &str = "TRIAD_WORKER";

/// Where a re-executed fork server finds its control socket: `TRIAD_FORK_SERVER=<pid>:<fd>`.
const FORK_SERVER_ENV: &str = "TRIAD_FORK_SERVER";

/// Extra arguments a re-executed worker needs to reach [`init`], registered by
/// [`test_support!`](crate::test_support) for test binaries (whose `main` belongs to libtest).
#[derive(Debug)]
pub struct WorkerEntry {
    args: &'static [&'static str],
}

impl WorkerEntry {
    /// An entry whose `args` make the test harness run only the worker's test function.
    pub const fn new(args: &'static [&'static str]) -> Self {
        WorkerEntry { args }
    }
}

inventory::collect!(WorkerEntry);

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
        server::serve(control);
    }
    let Some((socket, slot)) = worker_fds_from_env() else {
        return;
    };
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
fn started_as_worker_without_init() -> bool {
    std::env::var_os(WORKER_ENV).is_some() || std::env::var_os(FORK_SERVER_ENV).is_some()
}

/// Lets an integration-test binary host worker processes.
///
/// A test binary's `main` belongs to libtest, so there is no first line to call [`init`] from.
/// Invoke this macro once at the root of the test crate: it adds a test function that calls
/// `init` and registers the arguments that make a re-executed test binary run only that
/// function, so a spawned worker reaches `init` before any other test runs.
///
/// ```ignore
/// triad::test_support!();
/// ```
#[macro_export]
macro_rules! test_support {
    () => {
        /// The entry point of worker processes re-executed from this test binary.
        #[test]
        fn triad_worker_entry() {
            $crate::init();
        }

        $crate::__private::inventory::submit! {
            $crate::process::WorkerEntry::new(&[
                "triad_worker_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
        }
    };
}
