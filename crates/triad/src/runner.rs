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

    /// The mode this runner runs.
    pub fn mode(&self) -> Mode {
        self.mode
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
        let chunk = match (&*self.engine, self.chunk_size) {
            (_, Some(size)) => size,
            (Engine::Threads(pool), None) => count.div_ceil(4 * pool.threads()).max(1),
            (Engine::Processes(pool), None) => count.div_ceil(4 * pool.workers()).max(1),
            _ => 1,
        };
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
        let (chunk, window) = match &*self.engine {
            Engine::Serial => (1, 1),
            // Enough chunks queued that no worker waits for the caller to send the next one.
            Engine::Threads(pool) => (chunk, 4 * pool.threads()),
            // The pool batches and paces by itself; the window only bounds memory, so it is
            // wide enough to keep thousands of tiny tasks in the pipe.
            Engine::Processes(pool) => (chunk, (65_536 / chunk).max(4 * pool.workers())),
            Engine::Async(_) => match self.mode {
                Mode::Async { concurrency } => (1, concurrency),
                _ => unreachable!("an event loop is only built for async mode"),
            },
        };
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
