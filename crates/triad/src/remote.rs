//! Engines that live outside this crate: a [`RemoteEngine`] runs registered tasks by name on
//! encoded inputs somewhere else — the `triad-cluster` crate's Redis cluster is one — so that
//! [`Runner::remote`](crate::Runner::remote) and
//! [`Stage::remote`](crate::pipeline::Stage::remote) spread work there like any other mode,
//! without this crate depending on how the work travels.

use crate::TaskError;

/// Called once with every task's encoded output (or error), in input order.
pub type RemoteDone = Box<dyn FnOnce(Vec<Result<Vec<u8>, TaskError>>) + Send>;

/// An engine that runs registered tasks elsewhere.
pub trait RemoteEngine: Send + Sync + std::fmt::Debug {
    /// Runs the task registered as `name` on each of `inputs` (postcard-encoded, as
    /// [`Registration::invoke`](crate::Registration::invoke) takes them), and calls `done`
    /// once, with one result per input, in order. It must call `done` even when it cannot run
    /// them (each then an error), or the caller waits for ever.
    fn run_encoded(&self, name: &'static str, inputs: Vec<Vec<u8>>, done: RemoteDone);

    /// How many tasks it runs at once, for cutting inputs into chunks and pacing them.
    fn parallelism(&self) -> usize;
}
