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
//! - `init`: [`init`], which makes a process the pool started into a worker or fork server.
//! - `job`: a batch of tasks as the pool hands it to the dispatcher, and its delivery.
//! - `dispatcher`: the pool's I/O thread.
//! - `ledger`: where each task is — queued, at a worker, settled — with no I/O, so that "none
//!   lost, none twice" is tested on its own.
//! - `workers`: the dispatcher's view of one worker (its phase, its socket) and of recent starts.
//! - `own_threads`: threads triad starts, so that the fork start method can tell them apart.
//! - `start`: how a worker process is started.
//! - `server`: the fork server behind the fork and fork-server start methods.
//! - `slot`: the shared page in which a worker names the task it runs.
//! - `worker`: the loop a worker runs.

mod dispatcher;
mod init;
mod job;
mod ledger;
mod own_threads;
mod pool;
mod server;
mod slot;
mod start;
pub mod wire;
mod worker;
mod workers;

pub use crate::error::PoolError;
pub use init::{WorkerEntry, init};
pub use pool::{ProcessPool, ProcessPoolBuilder, StartMethod, TaskHandle};

use init::{FORK_SERVER_ENV, WORKER_ENV, started_as_worker_without_init};

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
