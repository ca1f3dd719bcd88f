//! Starting a pipeline and ending it: the wiring of channels and stage drivers, the source and
//! the sink, the blocking and the async front, and the teardown that leaves nothing running.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::metrics::{EndCounters, PipelineMetrics, StageCounters};
use super::stage::{Cancel, Lanes, StageSetup, drive};
use super::{Envelope, ItemError, Pipeline, Stage};
use crate::error::EngineError;
use crate::process::ProcessPool;
use crate::threads::ThreadPool;
use crate::trace::Recorder;

/// Builds the stages onto the source's channel; gives the last stage's channel.
pub(crate) type Build<I, O> = Box<
    dyn FnOnce(
            &mut Wiring,
            mpsc::Receiver<Envelope<I>>,
        ) -> Result<mpsc::Receiver<Envelope<O>>, EngineError>
        + Send,
>;

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) ordered: bool,
    pub(crate) fail_fast: bool,
    pub(crate) capacity: usize,
    pub(crate) window: Option<usize>,
    pub(crate) recorder: Option<Arc<Recorder>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ordered: true,
            fail_fast: false,
            capacity: 32,
            window: None,
            recorder: None,
        }
    }
}

/// What a run is made of while it is built: where its tasks go, and what must be torn down.
pub(crate) struct Wiring {
    handle: Handle,
    cancel: Cancel,
    capacity: usize,
    recorder: Option<Arc<Recorder>>,
    stages: Vec<Arc<StageCounters>>,
    drivers: Vec<JoinHandle<()>>,
    thread_pools: Vec<Arc<ThreadPool>>,
    process_pools: Vec<ProcessPool>,
}

impl Wiring {
    pub(crate) fn keep_thread_pool(&mut self, pool: Arc<ThreadPool>) {
        self.thread_pools.push(pool);
    }

    pub(crate) fn keep_process_pool(&mut self, pool: ProcessPool) {
        self.process_pools.push(pool);
    }

    /// Starts `stage`'s driver between `input` and a new channel; gives the new channel's end.
    pub(crate) fn add_stage<I: Send + 'static, O: Send + 'static>(
        &mut self,
        input: mpsc::Receiver<Envelope<I>>,
        stage: Stage<I, O>,
    ) -> Result<mpsc::Receiver<Envelope<O>>, EngineError> {
        let Stage {
            name,
            kind,
            slots,
            options,
            make,
        } = stage;
        let work = make(self, options)?;
        let counters = Arc::new(StageCounters::new(name, kind, slots));
        let lanes = Lanes::new(self.recorder.clone(), self.stages.len(), slots);
        self.stages.push(counters.clone());
        let (sender, receiver) = mpsc::channel(self.capacity);
        let setup = StageSetup {
            work,
            counters,
            timeout: options.timeout,
            lanes,
        };
        let driver = drive(input, sender, setup, self.cancel.clone());
        self.drivers.push(self.handle.spawn(driver));
        Ok(receiver)
    }
}

/// How many items a run took, and what became of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Items taken from the input.
    pub taken: u64,
    /// Items that came out succeeded.
    pub succeeded: u64,
    /// Items that came out failed.
    pub failed: u64,
    /// Items taken that did not come out: a cancelled run's, or a fail-fast run's after its
    /// first failure. `taken = succeeded + failed + cancelled`, always.
    pub cancelled: u64,
}

/// What both fronts share: the counters, the cancel, the clock.
struct Shared {
    ends: EndCounters,
    stages: Vec<Arc<StageCounters>>,
    cancel: Cancel,
    started: Instant,
}

impl Shared {
    fn metrics(&self) -> PipelineMetrics {
        PipelineMetrics::read(self.started.elapsed(), &self.ends, &self.stages)
    }

    fn counts(&self) -> Counts {
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let taken = load(&self.ends.taken);
        let succeeded = load(&self.ends.emitted_ok);
        let failed = load(&self.ends.emitted_failed);
        Counts {
            taken,
            succeeded,
            failed,
            cancelled: taken.saturating_sub(succeeded + failed),
        }
    }
}

/// Cancels a run from anywhere (another thread, a signal handler's thread).
#[derive(Debug, Clone)]
pub struct Canceller(Cancel);

impl Canceller {
    /// Stops every stage; the results end soon after.
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

/// Everything a run built: stages wired between the source's sender and the results' receiver.
struct Started<I, O> {
    source: mpsc::Sender<Envelope<I>>,
    window: Arc<Semaphore>,
    results: mpsc::Receiver<Result<O, ItemError>>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    thread_pools: Vec<Arc<ThreadPool>>,
    process_pools: Vec<ProcessPool>,
}

impl<I: Send + 'static, O: Send + 'static> Pipeline<I, O> {
    fn start(self, handle: Handle) -> Result<Started<I, O>, EngineError> {
        let window = Arc::new(Semaphore::new(self.window_size()));
        let Options {
            ordered,
            fail_fast,
            capacity,
            recorder,
            ..
        } = self.options;
        let mut wiring = Wiring {
            handle: handle.clone(),
            cancel: Cancel::default(),
            capacity,
            recorder,
            stages: Vec::new(),
            drivers: Vec::new(),
            thread_pools: Vec::new(),
            process_pools: Vec::new(),
        };
        let (source, first) = mpsc::channel(capacity);
        let last = match (self.build)(&mut wiring, first) {
            Ok(last) => last,
            Err(error) => {
                wiring.cancel.cancel();
                for driver in &wiring.drivers {
                    driver.abort();
                }
                for pool in &wiring.process_pools {
                    pool.terminate();
                }
                return Err(error);
            }
        };
        let shared = Arc::new(Shared {
            ends: EndCounters::default(),
            stages: wiring.stages,
            cancel: wiring.cancel,
            started: Instant::now(),
        });
        let (results_tx, results) = mpsc::channel(capacity);
        let mut tasks = wiring.drivers;
        tasks.push(handle.spawn(sink(last, results_tx, ordered, fail_fast, shared.clone())));
        Ok(Started {
            source,
            window,
            results,
            shared,
            tasks,
            thread_pools: wiring.thread_pools,
            process_pools: wiring.process_pools,
        })
    }

    /// Runs the pipeline on `inputs` on an event loop of its own (one thread per core), and
    /// returns the results as a blocking iterator. The input is pulled on a thread of its own,
    /// only as fast as the stages take items.
    ///
    /// # Errors
    ///
    /// When the event loop, a thread pool or a process pool of a stage cannot start.
    pub fn run<It>(self, inputs: It) -> Result<Results<O>, EngineError>
    where
        It: IntoIterator<Item = I>,
        It::IntoIter: Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("triad-pipeline")
            .enable_all()
            .build()
            .map_err(|source| EngineError::Start {
                what: "pipeline event loop",
                source,
            })?;
        let started = self.start(runtime.handle().clone())?;
        let inputs = inputs.into_iter();
        let handle = runtime.handle().clone();
        let (source, window, shared) = (started.source, started.window, started.shared.clone());
        let feeder = std::thread::Builder::new()
            .name("triad-pipeline-source".into())
            .spawn(move || {
                handle.block_on(feed(futures::stream::iter(inputs), source, window, shared))
            })
            .map_err(|source| EngineError::Start {
                what: "pipeline source thread",
                source,
            })?;
        Ok(Results {
            results: started.results,
            shared: started.shared,
            teardown: Some(Teardown {
                runtime,
                feeder: Some(feeder),
                tasks: started.tasks,
                thread_pools: started.thread_pools,
                process_pools: started.process_pools,
            }),
        })
    }

    /// Runs the pipeline on the caller's tokio runtime, and returns the results as a stream.
    /// Dropping the stream cancels the run.
    ///
    /// # Errors
    ///
    /// When a thread pool or process pool of a stage cannot start.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn stream<S>(self, inputs: S) -> Result<ResultStream<O>, EngineError>
    where
        S: Stream<Item = I> + Send + 'static,
    {
        let handle = Handle::current();
        let started = self.start(handle.clone())?;
        let mut tasks = started.tasks;
        tasks.push(handle.spawn(feed(
            inputs,
            started.source,
            started.window,
            started.shared.clone(),
        )));
        Ok(ResultStream {
            results: started.results,
            shared: started.shared,
            tasks,
            thread_pools: started.thread_pools,
            process_pools: started.process_pools,
        })
    }
}

/// The source: takes items from the input, each with a place in the order window, as fast as
/// the window and the first stage allow.
async fn feed<I, S: Stream<Item = I>>(
    inputs: S,
    first: mpsc::Sender<Envelope<I>>,
    window: Arc<Semaphore>,
    shared: Arc<Shared>,
) {
    let cancel = shared.cancel.clone();
    tokio::pin!(inputs);
    let mut index = 0;
    loop {
        let waiting = Instant::now();
        let place = tokio::select! {
            place = window.clone().acquire_owned() => place.expect("the window is never closed"),
            () = cancel.cancelled() => return,
        };
        StageCounters::add(&shared.ends.source_blocked_ns, waiting);
        let Some(item) = (tokio::select! {
            item = inputs.next() => item,
            () = cancel.cancelled() => return,
        }) else {
            return;
        };
        shared.ends.taken.fetch_add(1, Ordering::Relaxed);
        let envelope = Envelope {
            index,
            item: Ok(item),
            window: place,
        };
        let waiting = Instant::now();
        let sent = tokio::select! {
            sent = first.send(envelope) => sent.is_ok(),
            () = cancel.cancelled() => false,
        };
        StageCounters::add(&shared.ends.source_blocked_ns, waiting);
        if !sent {
            return;
        }
        shared.ends.sent.fetch_add(1, Ordering::Relaxed);
        index += 1;
    }
}

/// The sink: hands items to the caller — in input order from a buffer that the order window
/// bounds, or as they come — and ends a fail-fast run at its first failure.
async fn sink<O>(
    mut last: mpsc::Receiver<Envelope<O>>,
    results: mpsc::Sender<Result<O, ItemError>>,
    ordered: bool,
    fail_fast: bool,
    shared: Arc<Shared>,
) {
    let cancel = shared.cancel.clone();
    let mut early: BTreeMap<u64, Envelope<O>> = BTreeMap::new();
    let mut next = 0;
    loop {
        let envelope = tokio::select! {
            envelope = last.recv() => envelope,
            () = cancel.cancelled() => return,
        };
        let Some(envelope) = envelope else { return };
        let mut ready = Vec::new();
        if ordered {
            early.insert(envelope.index, envelope);
            while let Some(envelope) = early.remove(&next) {
                next += 1;
                ready.push(envelope);
            }
        } else {
            ready.push(envelope);
        }
        for envelope in ready {
            let failed = envelope.item.is_err();
            let counter = if failed {
                &shared.ends.emitted_failed
            } else {
                &shared.ends.emitted_ok
            };
            let handed = tokio::select! {
                sent = results.send(envelope.item) => sent.is_ok(),
                () = cancel.cancelled() => false,
            };
            if !handed {
                return;
            }
            counter.fetch_add(1, Ordering::Relaxed);
            // The window's place frees once the item is the caller's (`envelope.window` drops).
            if failed && fail_fast {
                cancel.cancel();
                return;
            }
        }
    }
}

/// What a blocking run must stop and join when it ends.
struct Teardown {
    runtime: Runtime,
    feeder: Option<std::thread::JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    thread_pools: Vec<Arc<ThreadPool>>,
    process_pools: Vec<ProcessPool>,
}

impl Teardown {
    /// Stops everything, in the order that lets each part end: the stages' tasks, the worker
    /// processes, the source thread, the event loop, then the thread pools' threads.
    fn finish(mut self, cancel: &Cancel) {
        cancel.cancel();
        for task in &self.tasks {
            task.abort();
        }
        for pool in &self.process_pools {
            pool.terminate();
        }
        if let Some(feeder) = self.feeder.take() {
            let _ = feeder.join();
        }
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        drop(self.thread_pools);
    }
}

/// The results of [`Pipeline::run`]: a blocking iterator of each item's result, in input order
/// unless the pipeline is unordered. Dropping it cancels the run; everything it started has
/// ended when the drop returns.
pub struct Results<O> {
    results: mpsc::Receiver<Result<O, ItemError>>,
    shared: Arc<Shared>,
    teardown: Option<Teardown>,
}

impl<O> std::fmt::Debug for Results<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results")
            .field("counts", &self.shared.counts())
            .finish_non_exhaustive()
    }
}

impl<O> Results<O> {
    /// The pipeline's figures now (see [`PipelineMetrics`]).
    pub fn metrics(&self) -> PipelineMetrics {
        self.shared.metrics()
    }

    /// Items taken, succeeded, failed and cancelled so far.
    pub fn counts(&self) -> Counts {
        self.shared.counts()
    }

    /// Stops the run: the results end soon after (what was already handed over stays).
    pub fn cancel(&self) {
        self.shared.cancel.cancel();
    }

    /// A handle that cancels the run from another thread.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.shared.cancel.clone())
    }

    fn tear_down(&mut self) {
        if let Some(teardown) = self.teardown.take() {
            teardown.finish(&self.shared.cancel);
        }
    }
}

impl<O> Iterator for Results<O> {
    type Item = Result<O, ItemError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.results.blocking_recv();
        if next.is_none() {
            self.tear_down();
        }
        next
    }
}

impl<O> Drop for Results<O> {
    fn drop(&mut self) {
        self.tear_down();
    }
}

/// The results of [`Pipeline::stream`]: a stream of each item's result. Dropping it cancels
/// the run (thread pools are joined on a blocking thread of the caller's runtime).
pub struct ResultStream<O> {
    results: mpsc::Receiver<Result<O, ItemError>>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    thread_pools: Vec<Arc<ThreadPool>>,
    process_pools: Vec<ProcessPool>,
}

impl<O> std::fmt::Debug for ResultStream<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultStream")
            .field("counts", &self.shared.counts())
            .finish_non_exhaustive()
    }
}

impl<O> ResultStream<O> {
    /// The pipeline's figures now.
    pub fn metrics(&self) -> PipelineMetrics {
        self.shared.metrics()
    }

    /// Items taken, succeeded, failed and cancelled so far.
    pub fn counts(&self) -> Counts {
        self.shared.counts()
    }

    /// A handle that cancels the run.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.shared.cancel.clone())
    }
}

impl<O> Stream for ResultStream<O> {
    type Item = Result<O, ItemError>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.results.poll_recv(context)
    }
}

impl<O> Drop for ResultStream<O> {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        for task in &self.tasks {
            task.abort();
        }
        for pool in &self.process_pools {
            pool.terminate();
        }
        let thread_pools = std::mem::take(&mut self.thread_pools);
        if thread_pools.is_empty() {
            return;
        }
        // Joining a pool's threads blocks: not on the event loop.
        match Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(move || drop(thread_pools))),
            Err(_) => drop(thread_pools),
        }
    }
}
