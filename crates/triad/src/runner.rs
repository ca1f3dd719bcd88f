//! One workload in any mode: [`Runner`], [`run`], and the streams [`Ordered`] and [`Unordered`].
//!
//! Every mode runs the same loop on the caller's side. The stream pulls inputs lazily from the
//! caller's iterator, cuts them into chunks, and keeps at most a *window* of chunks in flight on
//! the engine; each finished chunk comes back over one channel as `(index, result)` pairs, and
//! every received chunk lets the stream send another. The unordered stream yields pairs as they
//! arrive (`imap_unordered`); the ordered one holds early results back until the ones before them
//! are in (`imap`). A task's panic is caught where it runs and becomes its
//! [`TaskError::Panicked`]; nothing one task does can end the run.
//!
//! The engines differ only in where a chunk runs: inline (serial), on a [`ThreadPool`] worker
//! (threads), or as a task on a tokio current-thread event loop that runs on its own thread
//! (async; one input per task, `concurrency` tasks in flight, blocking bodies through
//! `spawn_blocking`).

use std::collections::BTreeMap;
use std::iter::{Enumerate, Fuse};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use futures::FutureExt;

use crate::error::{EngineError, TaskError};
use crate::mode::Mode;
use crate::process::ProcessPool;
use crate::task::{Body, Task};
use crate::threads::ThreadPool;
use crate::trace::{Place, Recorder, now_ns};

/// Runs `task` over `inputs` in `mode` and returns the results in input order.
///
/// A shorthand for [`Runner::new`] then [`Runner::map`]; keep a [`Runner`] to reuse its threads
/// or event loop across runs.
///
/// # Examples
///
/// ```
/// #[triad::task]
/// fn count_divisors(n: u64) -> u64 {
///     (1..=n).filter(|d| n % d == 0).count() as u64
/// }
///
/// use triad::Mode;
/// for mode in [Mode::Serial, Mode::Threads(2), Mode::Async { concurrency: 8 }] {
///     let results = triad::run(mode, count_divisors, [6, 7, 12]).unwrap();
///     assert_eq!(results, vec![Ok(4), Ok(2), Ok(6)]);
/// }
/// ```
pub fn run<T: Task>(
    mode: Mode,
    task: T,
    inputs: impl IntoIterator<Item = T::Input>,
) -> Result<Vec<Result<T::Output, TaskError>>, EngineError> {
    Ok(Runner::new(mode)?.map(task, inputs))
}

/// Runs `task` over `inputs` in `mode`, yielding results in input order as they become ready.
pub fn imap<T: Task, I: IntoIterator<Item = T::Input>>(
    mode: Mode,
    task: T,
    inputs: I,
) -> Result<Ordered<T, I::IntoIter>, EngineError> {
    Ok(Runner::new(mode)?.imap(task, inputs))
}

/// Runs `task` over `inputs` in `mode`, yielding `(input index, result)` as tasks finish.
pub fn imap_unordered<T: Task, I: IntoIterator<Item = T::Input>>(
    mode: Mode,
    task: T,
    inputs: I,
) -> Result<Unordered<T, I::IntoIter>, EngineError> {
    Ok(Runner::new(mode)?.imap_unordered(task, inputs))
}

/// An engine for one [`Mode`], reusable across runs. Cloning shares the engine.
///
/// # Examples
///
/// ```
/// # #[triad::task] fn square(x: u64) -> u64 { x * x }
/// let runner = triad::Runner::new(triad::Mode::Threads(2)).unwrap();
/// let squares: Vec<u64> = runner.imap(square, 1..=4).map(Result::unwrap).collect();
/// assert_eq!(squares, [1, 4, 9, 16]);
/// let mut firsts: Vec<usize> = runner.imap_unordered(square, 0..10).map(|(i, _)| i).collect();
/// firsts.sort();
/// assert_eq!(firsts, (0..10).collect::<Vec<_>>());
/// ```
#[derive(Debug, Clone)]
pub struct Runner {
    mode: Mode,
    engine: Arc<Engine>,
    chunk_size: Option<usize>,
    recorder: Option<Arc<Recorder>>,
}

#[derive(Debug)]
enum Engine {
    Serial,
    Threads(ThreadPool),
    Processes(ProcessPool),
    Async(EventLoop),
    Remote(Arc<dyn crate::remote::RemoteEngine>),
}

impl Runner {
    /// Starts the engine for `mode`: nothing for serial, the event loop for async, and for
    /// threads and processes a pool of that size that starts its first worker now and the
    /// others as inputs need them (so a run never starts more workers than it has inputs).
    ///
    /// # Errors
    ///
    /// When the mode is invalid (zero workers), asks for more threads or processes than the
    /// system allows ([`EngineError::TooManyThreads`], [`PoolError::TooManyWorkers`]), or its
    /// first worker cannot start.
    ///
    /// [`PoolError::TooManyWorkers`]: crate::PoolError::TooManyWorkers
    pub fn new(mode: Mode) -> Result<Self, EngineError> {
        let engine = match mode {
            Mode::Serial => Engine::Serial,
            Mode::Threads(threads) => Engine::Threads(ThreadPool::new(threads)?),
            // Workers start as inputs need them: a huge pool given few inputs starts few.
            Mode::Processes(workers) => Engine::Processes(
                ProcessPool::builder()
                    .workers(workers)
                    .on_demand()
                    .build()?,
            ),
            Mode::Async { concurrency: 0 } => {
                return Err(EngineError::InvalidMode(
                    "async concurrency must be at least 1".into(),
                ));
            }
            Mode::Async { .. } => Engine::Async(EventLoop::start()?),
            Mode::Remote(_) => {
                return Err(EngineError::InvalidMode(
                    "a remote mode runs on an engine of its own: use Runner::remote".into(),
                ));
            }
        };
        Ok(Runner {
            mode,
            engine: Arc::new(engine),
            chunk_size: None,
            recorder: None,
        })
    }

    /// A runner on an existing process pool (its settings: start method, retries, recycling).
    pub fn from_pool(pool: ProcessPool) -> Self {
        Runner {
            mode: Mode::Processes(pool.workers()),
            engine: Arc::new(Engine::Processes(pool)),
            chunk_size: None,
            recorder: None,
        }
    }

    /// A runner on an engine outside this crate — a cluster (`triad_cluster::Cluster`):
    /// `map`, `imap` and `imap_unordered` send their chunks there, paced by its parallelism.
    pub fn remote(engine: Arc<dyn crate::remote::RemoteEngine>) -> Self {
        Runner {
            mode: Mode::Remote(engine.parallelism().max(1)),
            engine: Arc::new(Engine::Remote(engine)),
            chunk_size: None,
            recorder: None,
        }
    }

    /// The mode this runner runs.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// How many threads or worker processes the engine has started so far (replacements of
    /// dead workers included); `None` for serial and async runs, which start none.
    pub fn workers_started(&self) -> Option<u64> {
        match &*self.engine {
            Engine::Threads(pool) => Some(pool.started() as u64),
            Engine::Processes(pool) => Some(pool.workers_started()),
            Engine::Serial | Engine::Async(_) | Engine::Remote(_) => None,
        }
    }

    /// Sends inputs to thread workers `size` at a time (at least 1).
    ///
    /// Without it, [`map`](Self::map) picks `ceil(n / (4 × threads))` as CPython's `Pool.map`
    /// does, and the streams send one input at a time. Serial and async runs ignore it: an async
    /// task is one input.
    pub fn chunk_size(mut self, size: usize) -> Self {
        self.chunk_size = Some(size.max(1));
        self
    }

    /// Records a [`Span`](crate::Span) per task into `recorder`.
    pub fn record(mut self, recorder: Arc<Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Runs `task` over every input and returns the results in input order.
    pub fn map<T: Task>(
        &self,
        task: T,
        inputs: impl IntoIterator<Item = T::Input>,
    ) -> Vec<Result<T::Output, TaskError>> {
        let inputs: Vec<T::Input> = inputs.into_iter().collect();
        let count = inputs.len();
        let chunk = map_chunk(self.shape(), self.chunk_size, count);
        let mut slots: Vec<Option<Result<T::Output, TaskError>>> =
            std::iter::repeat_with(|| None).take(count).collect();
        for (index, result) in self.stream(task, inputs, chunk) {
            slots[index] = Some(result);
        }
        slots
            .into_iter()
            .map(|slot| slot.expect("every input yields exactly one result"))
            .collect()
    }

    /// Runs `task` over `inputs`, yielding results in input order as they become ready.
    pub fn imap<T: Task, I: IntoIterator<Item = T::Input>>(
        &self,
        task: T,
        inputs: I,
    ) -> Ordered<T, I::IntoIter> {
        Ordered {
            inner: self.imap_unordered(task, inputs),
            next: 0,
            early: BTreeMap::new(),
        }
    }

    /// Runs `task` over `inputs`, yielding `(input index, result)` as tasks finish.
    pub fn imap_unordered<T: Task, I: IntoIterator<Item = T::Input>>(
        &self,
        task: T,
        inputs: I,
    ) -> Unordered<T, I::IntoIter> {
        self.stream(task, inputs, self.chunk_size.unwrap_or(1))
    }

    fn stream<T: Task, I: IntoIterator<Item = T::Input>>(
        &self,
        task: T,
        inputs: I,
        chunk: usize,
    ) -> Unordered<T, I::IntoIter> {
        let (chunk, window) = stream_plan(self.shape(), chunk);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        Unordered {
            task,
            inputs: inputs.into_iter().enumerate().fuse(),
            engine: self.engine.clone(),
            recorder: self.recorder.clone(),
            chunk,
            window,
            in_flight: 0,
            done_tx,
            done_rx,
            ready: Vec::new().into_iter(),
        }
    }

    fn shape(&self) -> Shape {
        match (&*self.engine, self.mode) {
            (Engine::Serial, _) => Shape::Serial,
            (Engine::Threads(pool), _) => Shape::Threads(pool.threads()),
            (Engine::Processes(pool), _) => Shape::Processes(pool.workers()),
            // Chunks cross a network: paced as a pool of that many workers is.
            (Engine::Remote(engine), _) => Shape::Processes(engine.parallelism().max(1)),
            (Engine::Async(_), Mode::Async { concurrency }) => Shape::Async(concurrency),
            (Engine::Async(_), _) => unreachable!("an event loop is only built for async mode"),
        }
    }
}

/// An engine's kind and size: all that cutting and pacing a run depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Serial,
    Threads(usize),
    Processes(usize),
    Async(usize),
}

/// Inputs per chunk for [`Runner::map`] of `count` inputs: the runner's chunk size, or, as
/// CPython's `Pool.map` picks it, `ceil(count / (4 × workers))`; one for serial and async runs.
fn map_chunk(shape: Shape, chunk_size: Option<usize>, count: usize) -> usize {
    match (shape, chunk_size) {
        (_, Some(size)) => size,
        (Shape::Threads(workers) | Shape::Processes(workers), None) => {
            count.div_ceil(4 * workers).max(1)
        }
        _ => 1,
    }
}

/// Inputs per chunk and chunks in flight for a stream cut in chunks of `chunk`.
fn stream_plan(shape: Shape, chunk: usize) -> (usize, usize) {
    match shape {
        Shape::Serial => (1, 1),
        // Enough chunks queued that no worker waits for the caller to send the next one.
        Shape::Threads(threads) => (chunk, 4 * threads),
        // The pool batches and paces by itself; the window only bounds memory, so it is wide
        // enough to keep thousands of tiny tasks in the pipe.
        Shape::Processes(workers) => (chunk, (65_536 / chunk).max(4 * workers)),
        // An async task is one input; `concurrency` of them in flight.
        Shape::Async(concurrency) => (1, concurrency),
    }
}

type Batch<O> = Vec<(usize, Result<O, TaskError>)>;

/// The stream of [`Runner::imap_unordered`]: `(input index, result)` in completion order.
#[derive(Debug)]
pub struct Unordered<T: Task, I> {
    task: T,
    inputs: Fuse<Enumerate<I>>,
    // Keeps the engine alive while results are still to come, even if the runner is dropped.
    engine: Arc<Engine>,
    recorder: Option<Arc<Recorder>>,
    chunk: usize,
    window: usize,
    in_flight: usize,
    // The stream keeps a sender so that `done_rx` never disconnects; every dispatched chunk
    // sends exactly one batch, so `in_flight` receives always complete.
    done_tx: Sender<Batch<T::Output>>,
    done_rx: Receiver<Batch<T::Output>>,
    ready: std::vec::IntoIter<(usize, Result<T::Output, TaskError>)>,
}

impl<T: Task, I: Iterator<Item = T::Input>> Unordered<T, I> {
    fn fill(&mut self) {
        while self.in_flight < self.window {
            let chunk: Vec<(usize, T::Input)> = self.inputs.by_ref().take(self.chunk).collect();
            if chunk.is_empty() {
                return;
            }
            self.dispatch(chunk);
            self.in_flight += 1;
        }
    }

    fn dispatch(&self, chunk: Vec<(usize, T::Input)>) {
        let task = self.task;
        let recorder = self.recorder.clone();
        let done = self.done_tx.clone();
        match &*self.engine {
            Engine::Serial => unreachable!("serial runs inline"),
            Engine::Threads(pool) => pool.execute(move || {
                let batch: Batch<T::Output> = chunk
                    .into_iter()
                    .map(|(index, input)| (index, run_traced(task, index, input, &recorder)))
                    .collect();
                let _ = done.send(batch);
            }),
            Engine::Processes(pool) => pool.run_chunk::<T>(chunk, recorder, move |batch| {
                let _ = done.send(batch);
            }),
            Engine::Remote(engine) => {
                let (indices, inputs, mut batch) = encode_chunk::<T>(chunk);
                if indices.is_empty() {
                    let _ = done.send(batch);
                    return;
                }
                engine.run_encoded(
                    T::NAME,
                    inputs,
                    Box::new(move |outputs| {
                        let mut outputs = outputs.into_iter();
                        for index in indices {
                            // An engine that answers fewer than it was given fails the rest.
                            let output = outputs.next().unwrap_or_else(|| {
                                Err(TaskError::Failed("the remote engine gave no result".into()))
                            });
                            let result =
                                output.and_then(|bytes| crate::task::decode_output::<T>(&bytes));
                            batch.push((index, result));
                        }
                        let _ = done.send(batch);
                    }),
                );
            }
            Engine::Async(event_loop) => {
                for (index, input) in chunk {
                    let recorder = recorder.clone();
                    let done = done.clone();
                    event_loop.handle.spawn(async move {
                        let result = run_async(task, index, input, recorder).await;
                        let _ = done.send(vec![(index, result)]);
                    });
                }
            }
        }
    }
}

impl<T: Task, I: Iterator<Item = T::Input>> Iterator for Unordered<T, I> {
    type Item = (usize, Result<T::Output, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.ready.next() {
            return Some(item);
        }
        if let Engine::Serial = &*self.engine {
            let (index, input) = self.inputs.next()?;
            return Some((index, run_traced(self.task, index, input, &self.recorder)));
        }
        self.fill();
        if self.in_flight == 0 {
            return None;
        }
        let batch = self
            .done_rx
            .recv()
            .expect("the stream holds a sender, so the channel stays open");
        self.in_flight -= 1;
        self.fill();
        self.ready = batch.into_iter();
        self.ready.next()
    }
}

/// Encodes a chunk's inputs for a remote engine: their indices and bytes, and the batch so far
/// — an input that does not encode is in it already, as [`TaskError::Codec`].
#[allow(clippy::type_complexity)]
fn encode_chunk<T: Task>(
    chunk: Vec<(usize, T::Input)>,
) -> (Vec<usize>, Vec<Vec<u8>>, Batch<T::Output>) {
    let mut indices = Vec::with_capacity(chunk.len());
    let mut inputs = Vec::with_capacity(chunk.len());
    let mut failed = Vec::new();
    for (index, input) in chunk {
        match postcard::to_stdvec(&input) {
            Ok(bytes) => {
                indices.push(index);
                inputs.push(bytes);
            }
            Err(e) => failed.push((
                index,
                Err(TaskError::Codec(format!("input of `{}`: {e}", T::NAME))),
            )),
        }
    }
    (indices, inputs, failed)
}

/// The stream of [`Runner::imap`]: results in input order.
#[derive(Debug)]
pub struct Ordered<T: Task, I> {
    inner: Unordered<T, I>,
    next: usize,
    // Results that finished before an earlier one; bounded by the engine's window.
    early: BTreeMap<usize, Result<T::Output, TaskError>>,
}

impl<T: Task, I: Iterator<Item = T::Input>> Iterator for Ordered<T, I> {
    type Item = Result<T::Output, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(result) = self.early.remove(&self.next) {
                self.next += 1;
                return Some(result);
            }
            let (index, result) = self.inner.next()?;
            if index == self.next {
                self.next += 1;
                return Some(result);
            }
            self.early.insert(index, result);
        }
    }
}

fn run_traced<T: Task>(
    task: T,
    index: usize,
    input: T::Input,
    recorder: &Option<Arc<Recorder>>,
) -> Result<T::Output, TaskError> {
    match recorder {
        None => task.run_here(input),
        Some(recorder) => {
            let place = Place::here();
            let start = now_ns();
            let result = task.run_here(input);
            recorder.finish(T::NAME, index as u64, place, start);
            result
        }
    }
}

async fn run_async<T: Task>(
    task: T,
    index: usize,
    input: T::Input,
    recorder: Option<Arc<Recorder>>,
) -> Result<T::Output, TaskError> {
    match task.body() {
        Body::Blocking(_) => {
            tokio::task::spawn_blocking(move || run_traced(task, index, input, &recorder))
                .await
                .unwrap_or(Err(TaskError::Cancelled))
        }
        Body::Async(function) => {
            let start = recorder.as_ref().map(|_| (Place::here(), now_ns()));
            // The call is inside the async block so that a panic before the first await is
            // caught too.
            let result = AssertUnwindSafe(async move { function(input).await })
                .catch_unwind()
                .await
                .map_err(TaskError::from_panic);
            if let (Some(recorder), Some((place, start))) = (recorder, start) {
                recorder.finish(T::NAME, index as u64, place, start);
            }
            result
        }
    }
}

/// A tokio current-thread runtime driven by a thread of its own: the "event loop" of async mode.
#[derive(Debug)]
struct EventLoop {
    handle: tokio::runtime::Handle,
    // Dropping the sender ends the loop thread's `block_on`.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EventLoop {
    fn start() -> Result<Self, EngineError> {
        let start_error = |source| EngineError::Start {
            what: "event loop",
            source,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("triad-blocking")
            .build()
            .map_err(start_error)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("triad-event-loop".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Dropping the runtime cancels tasks at their next await and waits for running
                // blocking bodies to return.
                drop(runtime);
            })
            .map_err(start_error)?;
        Ok(EventLoop {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::identity;

    #[test]
    fn map_cuts_inputs_as_cpython_pool_map_does() {
        assert_eq!(map_chunk(Shape::Threads(2), None, 100), 13);
        assert_eq!(map_chunk(Shape::Processes(4), None, 10), 1);
        assert_eq!(map_chunk(Shape::Processes(4), None, 0), 1);
        assert_eq!(map_chunk(Shape::Threads(2), Some(7), 100), 7);
        assert_eq!(map_chunk(Shape::Serial, None, 100), 1);
        assert_eq!(map_chunk(Shape::Async(64), None, 100), 1);
    }

    #[test]
    fn streams_keep_a_window_that_bounds_memory() {
        assert_eq!(stream_plan(Shape::Serial, 9), (1, 1));
        assert_eq!(stream_plan(Shape::Threads(3), 5), (5, 12));
        assert_eq!(stream_plan(Shape::Processes(2), 1), (1, 65_536));
        assert_eq!(stream_plan(Shape::Processes(2), 100_000), (100_000, 8));
        assert_eq!(stream_plan(Shape::Async(50), 9), (1, 50));
    }

    #[test]
    fn a_stream_pulls_no_more_inputs_than_its_window_holds() {
        let pulled = std::sync::atomic::AtomicU64::new(0);
        let inputs = (0_u64..).inspect(|_| {
            pulled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let runner = Runner::new(Mode::Threads(2)).unwrap().chunk_size(3);
        let first: Vec<u64> = runner
            .imap(identity, inputs)
            .take(5)
            .map(Result::unwrap)
            .collect();
        assert_eq!(first, [0, 1, 2, 3, 4]);
        // One window of 4 × 2 chunks of 3, and the chunks sent as results came back.
        let pulled = pulled.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            pulled <= 3 * (8 + 5),
            "{pulled} inputs pulled from an endless iterator"
        );
    }

    #[test]
    fn imap_restores_input_order_whatever_order_results_arrive_in() {
        // Later inputs finish first: each task sleeps less than the one before it.
        #[crate::task]
        fn sleep_less(n: u64) -> u64 {
            std::thread::sleep(std::time::Duration::from_millis(30 - 10 * n));
            n
        }
        let runner = Runner::new(Mode::Threads(3)).unwrap();
        let ordered: Vec<u64> = runner.imap(sleep_less, 0..3).map(Result::unwrap).collect();
        assert_eq!(ordered, [0, 1, 2]);
        let mut unordered: Vec<usize> = runner
            .imap_unordered(sleep_less, 0..3)
            .map(|(i, _)| i)
            .collect();
        unordered.sort_unstable();
        assert_eq!(unordered, [0, 1, 2]);
    }

    #[test]
    fn async_mode_needs_a_concurrency_of_at_least_one() {
        assert!(matches!(
            Runner::new(Mode::Async { concurrency: 0 }),
            Err(EngineError::InvalidMode(_))
        ));
        assert_eq!(Runner::new(Mode::Serial).unwrap().workers_started(), None);
    }
}
