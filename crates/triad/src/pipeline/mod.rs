//! Pipelines: IO stages on coroutines, CPU stages on a pool, bounded channels between them —
//! the seed's hybrid executor (§8.2), made to stream.
//!
//! A [`Pipeline`] is a source (any iterator or stream), a chain of [`Stage`]s, and a sink (the
//! results, in input order unless [`unordered`](Pipeline::unordered)). Each stage runs in the
//! model that fits its work:
//!
//! - [`Stage::future`]: an async function on the tokio event loop, at most N items in flight —
//!   the seed's `async with semaphore`, for network and other waits;
//! - [`Stage::blocking`]: a blocking closure on a thread pool of N threads — file IO, a
//!   blocking client library;
//! - [`Stage::task`]: a registered `#[triad::task]` on any [`Mode`]: threads or worker
//!   processes for CPU work (processes when the work must be isolated or, in Python, escape a
//!   GIL), the event loop for an async task.
//!
//! **How items move.** Every item carries its index. Between two stages sits a bounded channel
//! ([`capacity`](Pipeline::capacity), 32 by default). A stage holds at most its *slots* of items
//! (its concurrency), and a slot is given back only once its item has been sent on: so when a
//! stage is slow, the channel before it fills, the stage before it stops taking items, and so
//! on back to the source, which stops pulling the input. Memory therefore stays flat however
//! large the input. On top of that the run admits at most a *window* of items
//! ([`window`](Pipeline::window)) between source and sink: the sink restores input order in a
//! buffer that can never hold more than the window, because the source cannot get ahead of the
//! sink by more.
//!
//! **Failure is per item.** An item that fails in a stage — an `Err`, a panic, a worker process
//! that died, a timeout ([`Stage::timeout`]) — becomes an [`ItemError`] that names its index,
//! the stage and the reason; it passes the later stages by and reaches the sink in its place,
//! and every other item goes on. [`fail_fast`](Pipeline::fail_fast) ends the whole run at the
//! first failure instead. Nothing is dropped silently: items taken = succeeded + failed (+
//! cancelled, after a cancel), see [`Results::counts`].
//!
//! **Cancellation.** Dropping the results, or [`Results::cancel`], stops every stage: in-flight
//! futures are dropped, process pools are terminated, thread pools are joined (a closure
//! already running finishes first), and the run's own event loop is shut down. Nothing is left
//! running.
//!
//! **Metrics.** [`Results::metrics`] reads, while the run goes and after: per stage, items in,
//! out and failed; time its slots were busy, blocked on a full downstream channel, and starved
//! by an empty upstream one; its queue. From them it names the bottleneck: the stage that is
//! busy nearly all the time while what feeds it waits. Each item's time in each stage is also
//! a span (with [`record`](Pipeline::record)) and is counted by the [`monitor`](mod@crate::monitor).
//!
//! Two fronts: [`Pipeline::run`] is blocking (it starts an event loop of its own and returns an
//! iterator), [`Pipeline::stream`] is async (it runs on the caller's tokio runtime and returns a
//! `Stream`).
//!
//! ```
//! use std::time::Duration;
//! use triad::pipeline::{Pipeline, Stage};
//!
//! #[triad::task]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let results: Vec<_> = Pipeline::new()
//!     .then(Stage::future("fetch", 16, |n: u64| async move {
//!         tokio::time::sleep(Duration::from_millis(1)).await; // a network wait
//!         Ok::<_, String>(n)
//!     }))
//!     .then(Stage::task("compute", triad::Mode::Threads(2), square))
//!     .then(Stage::blocking("save", 2, |x: u64| Ok::<_, String>(x + 1)))
//!     .run(0..100)?
//!     .collect();
//! assert_eq!(results.len(), 100);
//! assert_eq!(results[10], Ok(101));
//! # Ok::<(), triad::EngineError>(())
//! ```

mod feed;
mod metrics;
mod run;
mod stage;

use std::borrow::Cow;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

pub use metrics::{PipelineMetrics, StageKind, StageMetrics};
pub use run::{Canceller, Counts, ResultStream, Results};

use crate::error::{EngineError, TaskError};
use crate::mode::Mode;
use crate::process::ProcessPool;
use crate::task::{Body, Task};
use crate::threads::ThreadPool;
use crate::trace::Recorder;
use feed::Feed;
use run::Wiring;
use stage::{Work, WorkFn};

/// An item that failed: its index in the input, the stage it failed in, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item {index} failed in stage `{stage}`: {error}")]
pub struct ItemError {
    /// Its index in the input.
    pub index: u64,
    /// The stage's name.
    pub stage: String,
    /// Why: the stage's error (`TaskError::Failed`), a panic, a dead worker, a timeout.
    pub error: TaskError,
}

/// One item between two stages, with its place in the order window.
pub(crate) struct Envelope<T> {
    index: u64,
    item: Result<T, ItemError>,
    /// Released when the sink hands the item to the caller.
    window: OwnedSemaphorePermit,
}

/// Options of a stage besides its work.
#[derive(Debug, Clone, Copy, Default)]
struct StageOptions {
    timeout: Option<Duration>,
    retries: u32,
}

type MakeWork<I, O> =
    Box<dyn FnOnce(&mut Wiring, StageOptions) -> Result<WorkFn<I, O>, EngineError> + Send>;

/// One stage of a [`Pipeline`]: what it does with an item, in which model, and how many items it
/// holds at once. Make one with [`future`](Self::future), [`blocking`](Self::blocking) or
/// [`task`](Self::task).
pub struct Stage<I, O> {
    name: Cow<'static, str>,
    kind: StageKind,
    slots: usize,
    options: StageOptions,
    make: MakeWork<I, O>,
}

impl<I, O> std::fmt::Debug for Stage<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Stage<I, O> {
    /// An async stage: `work` runs on the event loop, at most `concurrency` items at once. An
    /// `Err` fails the item (its `Display` is the reason).
    pub fn future<F, Fut, E>(
        name: impl Into<Cow<'static, str>>,
        concurrency: usize,
        work: F,
    ) -> Self
    where
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        E: Display,
    {
        let work: WorkFn<I, O> = Arc::new(move |input| {
            let future = work(input);
            Box::pin(async move { future.await.map_err(|e| TaskError::Failed(e.to_string())) })
        });
        Stage {
            name: name.into(),
            kind: StageKind::Async,
            slots: concurrency.max(1),
            options: StageOptions::default(),
            make: Box::new(move |_, _| Ok(work)),
        }
    }

    /// A blocking stage: `work` runs on a pool of `threads` threads, one item per thread. An
    /// `Err` fails the item.
    pub fn blocking<F, E>(name: impl Into<Cow<'static, str>>, threads: usize, work: F) -> Self
    where
        F: Fn(I) -> Result<O, E> + Send + Sync + 'static,
        E: Display,
    {
        let threads = threads.max(1);
        let work = Arc::new(work);
        Stage {
            name: name.into(),
            kind: StageKind::Blocking,
            slots: threads,
            options: StageOptions::default(),
            make: Box::new(move |wiring, _| {
                on_threads(wiring, threads, move |input| {
                    work(input).map_err(|e| TaskError::Failed(e.to_string()))
                })
            }),
        }
    }

    /// A stage that runs the registered task `task` in `mode`: on threads, in worker processes
    /// (which the pipeline starts as items need them and terminates when it ends), serially on
    /// one thread, or on the event loop. The stage holds as many items as the engine runs at
    /// once (twice as many for processes, so that no worker waits for its next item).
    pub fn task<T>(name: impl Into<Cow<'static, str>>, mode: Mode, task: T) -> Self
    where
        T: Task<Input = I, Output = O>,
    {
        let slots = match mode {
            Mode::Serial => 1,
            Mode::Threads(threads) => 4 * threads,
            Mode::Processes(workers) => 2 * workers,
            Mode::Async { concurrency } => concurrency,
            Mode::Remote(n) => 2 * n,
        }
        .max(1);
        let make: MakeWork<I, O> = Box::new(move |wiring, options| match mode {
            Mode::Serial => on_threads(wiring, 1, move |input| task.run_here(input)),
            Mode::Threads(threads) => {
                on_threads(wiring, threads, move |input| task.run_here(input))
            }
            Mode::Processes(workers) => on_processes(wiring, workers, options, task),
            Mode::Async { .. } => Ok(on_event_loop(task)),
            Mode::Remote(_) => Err(EngineError::InvalidMode(
                "a remote mode runs on an engine of its own: use Stage::remote".into(),
            )),
        });
        Stage {
            name: name.into(),
            kind: StageKind::Task,
            slots,
            options: StageOptions::default(),
            make,
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Stage<I, O> {
    /// A stage that runs the registered task `task` on an engine outside this crate — a
    /// cluster ([`RemoteEngine`](crate::remote::RemoteEngine)): each item goes there alone,
    /// and the stage holds twice as many items as the engine runs at once.
    pub fn remote<T>(
        name: impl Into<Cow<'static, str>>,
        engine: Arc<dyn crate::remote::RemoteEngine>,
        _task: T,
    ) -> Self
    where
        T: Task<Input = I, Output = O>,
        I: serde::Serialize,
    {
        let slots = 2 * engine.parallelism().max(1);
        let make: MakeWork<I, O> = Box::new(move |_, _| {
            Ok(Arc::new(move |input: I| -> Work<O> {
                let (tx, rx) = tokio::sync::oneshot::channel();
                match postcard::to_stdvec(&input) {
                    Ok(bytes) => engine.run_encoded(
                        T::NAME,
                        vec![bytes],
                        Box::new(move |mut outputs| {
                            let _ = tx.send(outputs.pop());
                        }),
                    ),
                    Err(e) => {
                        let error = TaskError::Codec(format!("input of `{}`: {e}", T::NAME));
                        let _ = tx.send(Some(Err(error)));
                    }
                }
                Box::pin(async move {
                    match rx.await {
                        Ok(Some(output)) => {
                            output.and_then(|bytes| crate::task::decode_output::<T>(&bytes))
                        }
                        Ok(None) => {
                            Err(TaskError::Failed("the remote engine gave no result".into()))
                        }
                        Err(_) => Err(TaskError::Cancelled),
                    }
                }) as Work<O>
            }) as WorkFn<I, O>)
        });
        Stage {
            name: name.into(),
            kind: StageKind::Task,
            slots,
            options: StageOptions::default(),
            make,
        }
    }
}

impl<I, O> Stage<I, O> {
    /// Fails an item that takes longer than `limit` in this stage ([`TaskError::Timeout`]).
    /// A worker process running it is killed and replaced; a future is dropped; a blocking
    /// closure cannot be stopped, so its thread finishes the item and its result is dropped.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.options.timeout = Some(limit);
        self
    }

    /// For a task stage on processes: runs an item again, up to `retries` times, when its
    /// worker dies under it (see [`ProcessPoolBuilder::retries`](crate::ProcessPoolBuilder::retries)).
    pub fn retries(mut self, retries: u32) -> Self {
        self.options.retries = retries;
        self
    }

    /// Holds at most `slots` items at once (the concurrency the constructor set, by default).
    pub fn slots(mut self, slots: usize) -> Self {
        self.slots = slots.max(1);
        self
    }
}

/// Work on a thread pool of `threads`, kept until the run ends, fed through one queue (see
/// `feed`).
fn on_threads<I: Send + 'static, O: Send + 'static>(
    wiring: &mut Wiring,
    threads: usize,
    work: impl Fn(I) -> Result<O, TaskError> + Send + Sync + 'static,
) -> Result<WorkFn<I, O>, EngineError> {
    let pool = Arc::new(ThreadPool::new(threads)?);
    wiring.keep_thread_pool(pool.clone());
    let feed = Feed::new(threads, work);
    Ok(Arc::new(move |input| -> Work<O> {
        let answer = feed.submit(&pool, input);
        Box::pin(async move { answer.await.unwrap_or(Err(TaskError::Cancelled)) })
    }))
}

/// A registered task in worker processes, on a pool kept (and terminated) by the run.
fn on_processes<T: Task>(
    wiring: &mut Wiring,
    workers: usize,
    options: StageOptions,
    task: T,
) -> Result<WorkFn<T::Input, T::Output>, EngineError> {
    let pool = ProcessPool::builder()
        .workers(workers)
        .retries(options.retries)
        .on_demand()
        .build()?;
    wiring.keep_process_pool(pool.clone());
    Ok(Arc::new(move |input| -> Work<T::Output> {
        let handle = match options.timeout {
            Some(limit) => pool.submit_with_timeout(task, input, limit),
            None => pool.submit(task, input),
        };
        Box::pin(async move {
            match handle {
                Ok(handle) => handle.await,
                Err(crate::PoolError::Closed) => Err(TaskError::Cancelled),
                Err(error) => Err(TaskError::WorkerStart(error.to_string())),
            }
        })
    }))
}

/// A registered task on the event loop: its async body natively, its blocking one on tokio's
/// blocking threads (as async mode runs it).
fn on_event_loop<T: Task>(task: T) -> WorkFn<T::Input, T::Output> {
    Arc::new(move |input| -> Work<T::Output> {
        match task.body() {
            Body::Async(function) => {
                let future = function(input);
                Box::pin(async move { Ok(future.await) })
            }
            Body::Blocking(_) => Box::pin(async move {
                tokio::task::spawn_blocking(move || task.run_here(input))
                    .await
                    .unwrap_or(Err(TaskError::Cancelled))
            }),
        }
    })
}

/// A source, stages and a sink; see the [module documentation](self).
///
/// Build it with [`new`](Self::new) and [`then`](Self::then), set its options, then
/// [`run`](Self::run) it on an input (a pipeline runs once).
pub struct Pipeline<I, O> {
    build: run::Build<I, O>,
    stages: usize,
    slots: usize,
    options: run::Options,
}

impl<I, O> std::fmt::Debug for Pipeline<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("stages", &self.stages)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static> Pipeline<I, I> {
    /// A pipeline with no stages yet: its items come out as they went in.
    pub fn new() -> Self {
        Pipeline {
            build: Box::new(|_, input| Ok(input)),
            stages: 0,
            slots: 0,
            options: run::Options::default(),
        }
    }
}

impl<I: Send + 'static> Default for Pipeline<I, I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Send + 'static, O: Send + 'static> Pipeline<I, O> {
    /// Adds `stage` at the end.
    pub fn then<N: Send + 'static>(self, stage: Stage<O, N>) -> Pipeline<I, N> {
        let previous = self.build;
        let slots = stage.slots;
        Pipeline {
            build: Box::new(move |wiring, input| {
                let middle = previous(wiring, input)?;
                wiring.add_stage(middle, stage)
            }),
            stages: self.stages + 1,
            slots: self.slots + slots,
            options: self.options,
        }
    }

    /// Yields results as they finish, not in input order.
    pub fn unordered(mut self) -> Self {
        self.options.ordered = false;
        self
    }

    /// Ends the run at the first item that fails: that failure is the last result.
    pub fn fail_fast(mut self) -> Self {
        self.options.fail_fast = true;
        self
    }

    /// Room for `items` in each channel between two stages (32 by default).
    pub fn capacity(mut self, items: usize) -> Self {
        self.options.capacity = items.max(1);
        self
    }

    /// Admits at most `items` items between source and sink: the bound on the sink's reorder
    /// buffer (by default, twice what the stages and channels can hold, and at least 64).
    pub fn window(mut self, items: usize) -> Self {
        self.options.window = Some(items.max(1));
        self
    }

    /// Records each item's time in each stage as a span into `recorder` (one lane per slot).
    pub fn record(mut self, recorder: Arc<Recorder>) -> Self {
        self.options.recorder = Some(recorder);
        self
    }

    fn window_size(&self) -> usize {
        self.options.window.unwrap_or_else(|| {
            (2 * (self.slots + (self.stages + 1) * self.options.capacity)).max(64)
        })
    }
}
