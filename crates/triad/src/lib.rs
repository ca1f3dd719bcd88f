//! triad: processes, threads and coroutines under one roof.
//!
//! One workload runs in any mode with one call: mark a function `#[triad::task]`, then
//! [`run`] it [`Mode::Serial`], on [`Mode::Threads`] or as [`Mode::Async`] tasks on tokio — the
//! same inputs give the same outputs in the same order, and a task that panics fails alone.
//! Around that sit the seed's concurrency idioms: a joinable queue for threads, asyncio's
//! `gather` / semaphore / queue / `to_thread` / `timeout` on tokio, a monitor that notices a
//! blocked event loop, and per-task spans that export to Perfetto.
//!
//! ```
//! #[triad::task]
//! fn count_primes(limit: u64) -> u64 {
//!     (2..limit).filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0)).count() as u64
//! }
//!
//! let results = triad::run(triad::Mode::Threads(2), count_primes, [10, 100]).unwrap();
//! assert_eq!(results, vec![Ok(4), Ok(25)]);
//! ```
//!
//! # Layout
//!
//! - [`task`](mod@task): the [`Task`] trait, the `#[task]` attribute's output, and the registry.
//! - [`mode`]: [`Mode`], the execution models.
//! - [`runner`]: [`Runner`], [`run`], [`imap`], [`imap_unordered`] — one workload in any mode.
//! - [`threads`]: [`ThreadPool`], the thread engine.
//! - [`process`]: [`ProcessPool`], the process engine, and [`init`], which a worker needs.
//! - [`aio`]: asyncio's idioms on tokio: `gather`, `map_bounded` (a semaphore's bound), an
//!   async joinable queue, `to_thread`, `timeout`.
//! - [`pipeline`]: [`Pipeline`](pipeline::Pipeline): async IO stages, blocking stages and CPU
//!   stages on any engine, bounded channels between them — the seed's hybrid executor.
//! - [`lag`]: [`LagMonitor`], which notices a blocked event loop.
//! - [`monitor`](mod@monitor): the seed's `performance_monitor`: `#[triad::monitor(kind = "io")]` times and
//!   counts calls by kind.
//! - [`queue`]: [`JoinableQueue`], the seed's producer-consumer queue for threads.
//! - [`fdpass`]: file descriptors inside serde values, sent beside the bytes with `SCM_RIGHTS`.
//! - [`shm`]: memory shared between processes (memfd + mmap): [`SharedArray`] and
//!   [`SharedValue`], plain data under a robust process-shared lock, and [`AtomicArray`] and
//!   [`AtomicValue`], integers updated atomically.
//! - `memfd` (private): the one place sealed memfd memory is created, mapped and checked.
//! - [`ipc`]: [`pipe`] / [`PipeEnd`] and [`Queue`], the seed's `multiprocessing.Pipe` and
//!   `multiprocessing.Queue`: typed messages and a bounded queue between processes.
//! - [`trace`]: per-task [`Span`]s and their Chrome Trace export.
//! - [`workloads`]: the seed's workloads as tasks.

//! # Which queue
//!
//! Three types are the seed's "queue", one per model; they share the same rules (`task_done`
//! and `join` where the seed has them, `close` wakes every waiter, a closed queue is drained
//! before it says so):
//!
//! | type | between | waits by | items | the seed's |
//! |---|---|---|---|---|
//! | [`JoinableQueue`] | threads of one process | blocking (`put`, `get`, `_timeout`, `try_`) | any `T: Send`, moved | `queue.Queue` with `task_done` / `join` (§5.2) |
//! | [`aio::AsyncJoinableQueue`] | tasks on an event loop | `.await` (cancel-safe `get`) | any `T: Send`, moved | `asyncio.Queue` (§5.3) |
//! | [`ipc::Queue`] | processes | blocking, as the thread queue | serde values (and their descriptors), one datagram each | `multiprocessing.Queue` (§5.1.2) |
//!
//! Use the thread queue for producers and consumers on threads, the async one inside async
//! code (never the blocking one there: it would block the loop), and the ipc one only when the
//! two ends are in different processes — it serialises every item.

#![warn(missing_docs)]

// Lets `#[triad::task]`'s `::triad::` paths resolve inside this crate too.
extern crate self as triad;

pub mod aio;
pub mod error;
pub mod fdpass;
pub mod ipc;
pub mod lag;
mod limits;
mod memfd;
pub mod mode;
pub mod monitor;
pub mod pipeline;
pub mod process;
pub mod queue;
pub mod remote;
pub mod runner;
pub mod shm;
pub mod task;
pub mod threads;
pub mod trace;
pub mod workloads;

pub use error::{EngineError, PoolError, RegistryError, TaskError};
pub use ipc::{IpcError, PipeEnd, Queue, QueueError, pipe};
pub use lag::{LagMonitor, LagOptions, LagReport};
pub use mode::{Mode, available_cores};
pub use process::{ProcessPool, ProcessPoolBuilder, StartMethod, TaskHandle, init};
pub use queue::{
    GetError, GetTimeoutError, JoinableQueue, PutError, PutTimeoutError, TaskDoneError,
    TryGetError, TryPutError,
};
pub use runner::{Ordered, Runner, Unordered, imap, imap_unordered, run};
pub use shm::{AtomicArray, AtomicValue, SharedArray, SharedValue};
pub use task::{Body, BoxFuture, Registration, Registry, Task, registry};
pub use threads::{JobHandle, ThreadPool};
pub use trace::{Recorder, Span, chrome_trace_json, now_ns};
pub use triad_macros::{monitor, task};

/// The README's examples, compiled and run as doctests so that the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
