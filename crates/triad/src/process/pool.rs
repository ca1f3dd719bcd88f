//! [`ProcessPool`]: the public face of the process engine.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crossbeam_channel::Sender;
use futures::channel::oneshot;

use super::dispatcher::{Command, Counters, Dispatcher, Settings};
use super::job::{Deliver, Delivery, Inputs, Job};
use super::own_threads::{self, OwnThread};
use super::start::{self, Starter};
use super::wire::Initializer;
use crate::error::{PoolError, TaskError};
use crate::runner::{Ordered, Runner, Unordered};
use crate::task::{Task, decode_output};
use crate::trace::{Recorder, Span};

/// How worker processes are started: the seed's three start methods (section 5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartMethod {
    /// Re-execute this program; the worker finds tasks in the registry by name. Safe whatever
    /// the parent is doing (threads, locks held), at the price of a fresh process start.
    Spawn,
    /// Fork: each worker starts as a copy of this program's memory as it was when the pool was
    /// built (globals, loaded data), without re-executing. Only a single-threaded program can
    /// fork safely, so building the pool fails in a program with threads; the pool forks a
    /// small server from the program then, and every worker (first ones and replacements) is
    /// forked from that server.
    Fork,
    /// Fork from the program's fork server: a process re-executed from this program once, on
    /// first use, that never starts a thread and so can fork workers safely whatever this
    /// program does. Starts a worker faster than spawn once the server runs.
    ForkServer,
}

/// Settings for a [`ProcessPool`]; make one with [`ProcessPool::builder`].
#[derive(Debug, Clone)]
pub struct ProcessPoolBuilder {
    workers: Option<usize>,
    start_method: Option<StartMethod>,
    initializer: Option<Result<Initializer, String>>,
    max_tasks_per_child: Option<u64>,
    retries: u32,
    on_demand: bool,
}

impl ProcessPoolBuilder {
    /// How many worker processes (default: one per core this process may use).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// How workers are started (default: [`StartMethod::ForkServer`] if the program's fork
    /// server is already running, else [`StartMethod::Spawn`]).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// Runs `task` on `input` in every worker before its first task (`initializer`, `initargs`):
    /// to open a connection, load a model, seed a generator. If it fails, the pool does not
    /// start ([`PoolError::Start`] says why) instead of restarting workers for ever.
    pub fn initializer<T: Task>(mut self, _task: T, input: T::Input) -> Self {
        self.initializer = Some(
            postcard::to_stdvec(&input)
                .map(|input| Initializer {
                    name: T::NAME.to_owned(),
                    input: serde_bytes::ByteBuf::from(input),
                })
                .map_err(|error| format!("the initializer's input does not encode: {error}")),
        );
        self
    }

    /// Replace each worker after it has run this many tasks (`maxtasksperchild`).
    pub fn max_tasks_per_child(mut self, tasks: u64) -> Self {
        self.max_tasks_per_child = Some(tasks.max(1));
        self
    }

    /// Run a task again, up to `retries` times, when its worker dies under it; without this a
    /// task whose worker dies fails with [`TaskError::WorkerDied`].
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Start workers only as tasks need them, as `concurrent.futures.ProcessPoolExecutor` does:
    /// one at `build`, then up to [`workers`](Self::workers) while there are more unsettled
    /// tasks than workers. Without it the pool starts them all at once, as
    /// `multiprocessing.Pool` does.
    pub fn on_demand(mut self) -> Self {
        self.on_demand = true;
        self
    }

    /// Starts the workers and waits until each has said hello (with
    /// [`on_demand`](Self::on_demand), the first one).
    ///
    /// A worker that dies before its hello is started again, after a short wait that grows
    /// with each failure in a row; the pool gives up only after several such failures in a
    /// row with no worker left alive, and says why.
    pub fn build(self) -> Result<ProcessPool, PoolError> {
        let workers = self.workers.unwrap_or_else(crate::available_cores);
        if workers == 0 {
            return Err(PoolError::NoWorkers);
        }
        crate::limits::check_processes(workers)?;
        if super::started_as_worker_without_init() {
            return Err(PoolError::NotInitialised);
        }
        crate::task::registry()?;
        let initializer = self.initializer.transpose().map_err(PoolError::Start)?;
        let method = self
            .start_method
            .unwrap_or(if start::fork_server_running() {
                StartMethod::ForkServer
            } else {
                StartMethod::Spawn
            });
        let starter = match method {
            StartMethod::Spawn => Starter::Spawn,
            StartMethod::Fork => Starter::OwnServer(Arc::new(
                start::fork_own_server().map_err(|error| PoolError::Start(error.to_string()))?,
            )),
            StartMethod::ForkServer => Starter::SharedServer(
                start::shared_fork_server()
                    .map_err(|error| PoolError::Start(format!("fork server: {error}")))?,
            ),
        };
        let (commands, received) = crossbeam_channel::unbounded();
        let wake = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|error| PoolError::Start(format!("eventfd: {error}")))?;
        let ring = wake
            .try_clone()
            .map_err(|error| PoolError::Start(format!("eventfd: {error}")))?;
        let sleeping = Arc::new(AtomicBool::new(false));
        let settings = Settings {
            workers,
            max_tasks_per_child: self.max_tasks_per_child,
            starter,
            initializer,
            on_demand: self.on_demand,
        };
        let counters = Arc::new(Counters::default());
        let dispatcher =
            Dispatcher::new(settings, received, wake, sleeping.clone(), counters.clone());
        let (started_tx, started_rx) = crossbeam_channel::bounded(1);
        // The dispatcher thread starts the workers, so their PR_SET_PDEATHSIG follows it: it
        // lives exactly as long as the pool.
        let thread = own_threads::spawn("triad-process-pool", move || dispatcher.run(started_tx))
            .map_err(|error| PoolError::Start(format!("dispatcher thread: {error}")))?;
        let startup = started_rx
            .recv()
            .unwrap_or_else(|_| Err("the dispatcher thread ended during start-up".into()));
        let pool = ProcessPool {
            inner: Arc::new(Inner {
                commands,
                ring,
                sleeping,
                thread: Mutex::new(Some(thread)),
                closed: AtomicBool::new(false),
                workers,
                retries: self.retries,
                start_method: method,
                counters,
            }),
        };
        match startup {
            Ok(_) => Ok(pool),
            Err(reason) => {
                pool.join();
                Err(PoolError::Start(reason))
            }
        }
    }
}

/// A pool of worker processes, as Python's `multiprocessing.Pool`. Cloning shares the pool.
///
/// Dropping the last handle terminates the workers (as leaving a `with Pool()` block does);
/// call [`close`](Self::close) then [`join`](Self::join) to let queued work finish first.
/// Workers die with the pool's thread even if the whole program is killed
/// (`PR_SET_PDEATHSIG`), and each is reaped, so none is left as a zombie or an orphan.
#[derive(Debug, Clone)]
pub struct ProcessPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: Sender<Command>,
    /// The dispatcher's eventfd, rung when a command arrives while it sleeps.
    ring: OwnedFd,
    sleeping: Arc<AtomicBool>,
    thread: Mutex<Option<OwnThread>>,
    closed: AtomicBool,
    workers: usize,
    retries: u32,
    start_method: StartMethod,
    counters: Arc<Counters>,
}

impl ProcessPool {
    /// Settings for a new pool.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder {
            workers: None,
            start_method: None,
            initializer: None,
            max_tasks_per_child: None,
            retries: 0,
            on_demand: false,
        }
    }

    /// A pool of `workers` processes with default settings.
    pub fn new(workers: usize) -> Result<Self, PoolError> {
        ProcessPool::builder().workers(workers).build()
    }

    /// How many worker processes the pool keeps.
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// How the pool starts its workers.
    pub fn start_method(&self) -> StartMethod {
        self.inner.start_method
    }

    /// Runs `task` over every input; results in input order (inputs go in chunks of
    /// `ceil(n / (4 × workers))`, as `Pool.map` sends them).
    pub fn map<T: Task>(
        &self,
        task: T,
        inputs: impl IntoIterator<Item = T::Input>,
    ) -> Vec<Result<T::Output, TaskError>> {
        Runner::from_pool(self.clone()).map(task, inputs)
    }

    /// [`map`](Self::map) with an explicit chunk size.
    pub fn map_chunked<T: Task>(
        &self,
        task: T,
        inputs: impl IntoIterator<Item = T::Input>,
        chunk_size: usize,
    ) -> Vec<Result<T::Output, TaskError>> {
        Runner::from_pool(self.clone())
            .chunk_size(chunk_size)
            .map(task, inputs)
    }

    /// Runs `task` over `inputs`, yielding results in input order as they become ready.
    pub fn imap<T: Task, I: IntoIterator<Item = T::Input>>(
        &self,
        task: T,
        inputs: I,
    ) -> Ordered<T, I::IntoIter> {
        Runner::from_pool(self.clone()).imap(task, inputs)
    }

    /// Runs `task` over `inputs`, yielding `(input index, result)` as tasks finish.
    pub fn imap_unordered<T: Task, I: IntoIterator<Item = T::Input>>(
        &self,
        task: T,
        inputs: I,
    ) -> Unordered<T, I::IntoIter> {
        Runner::from_pool(self.clone()).imap_unordered(task, inputs)
    }

    /// Runs one task; the handle can be waited on or awaited.
    pub fn submit<T: Task>(
        &self,
        task: T,
        input: T::Input,
    ) -> Result<TaskHandle<T::Output>, PoolError> {
        self.submit_inner(task, input, None)
    }

    /// Runs one task with a time limit: past it the task fails with [`TaskError::Timeout`] and
    /// the worker running it is killed and replaced.
    pub fn submit_with_timeout<T: Task>(
        &self,
        task: T,
        input: T::Input,
        timeout: Duration,
    ) -> Result<TaskHandle<T::Output>, PoolError> {
        self.submit_inner(task, input, Some(timeout))
    }

    fn submit_inner<T: Task>(
        &self,
        _task: T,
        input: T::Input,
        timeout: Option<Duration>,
    ) -> Result<TaskHandle<T::Output>, PoolError> {
        let (sender, receiver) = oneshot::channel();
        let handle = TaskHandle { receiver };
        let mut inputs = Inputs::new();
        if let Err(error) = inputs.push(&mut crate::fdpass::Encoder::new(), &input) {
            let _ = sender.send(Err(TaskError::Codec(format!(
                "input of `{}`: {error}",
                T::NAME
            ))));
            return Ok(handle);
        }
        let mut sender = Some(sender);
        let job = Job {
            name: T::NAME,
            delivery: Delivery::new(
                inputs.len(),
                Box::new(move |_, outcome, _| {
                    // Decode before taking the sender: if decoding panics, the pool answers
                    // again with the panic as the error, and the sender must still be here.
                    let result = outcome.and_then(decode_output::<T>);
                    if let Some(sender) = sender.take() {
                        let _ = sender.send(result);
                    }
                }),
            ),
            inputs,
            timeout,
            retries: self.inner.retries,
            record: false,
        };
        self.send_job(job)?;
        Ok(handle)
    }

    /// Runs a chunk of `task`'s inputs, each tagged with the caller's index, as one job, and
    /// hands `done` every `(index, result)` once the last is in — the runner's one way into the
    /// pool. An input that does not encode fails alone, as [`TaskError::Codec`]; on a closed
    /// pool every task is [`TaskError::Cancelled`]. With `recorder`, each task's span in its
    /// worker is recorded there.
    pub(crate) fn run_chunk<T: Task>(
        &self,
        chunk: Vec<(usize, T::Input)>,
        recorder: Option<Arc<Recorder>>,
        done: impl FnOnce(Vec<(usize, Result<T::Output, TaskError>)>) + Send + 'static,
    ) {
        let mut batch = Vec::with_capacity(chunk.len());
        let mut indices = Vec::with_capacity(chunk.len());
        let mut inputs = Inputs::new();
        let mut encoder = crate::fdpass::Encoder::new();
        for (index, input) in chunk {
            match inputs.push(&mut encoder, &input) {
                Ok(()) => indices.push(index),
                Err(error) => batch.push((
                    index,
                    Err(TaskError::Codec(format!("input of `{}`: {error}", T::NAME))),
                )),
            }
        }
        drop(encoder);
        if inputs.is_empty() {
            done(batch);
            return;
        }
        let mut remaining = inputs.len();
        let record = recorder.is_some();
        let mut done = Some(done);
        let deliver: Deliver = Box::new(move |position, outcome, span| {
            let index = indices[position];
            if let (Some(recorder), Some(span)) = (&recorder, span) {
                recorder.push(Span {
                    name: std::borrow::Cow::Borrowed(T::NAME),
                    task: index as u64,
                    pid: span.pid,
                    tid: span.span.tid,
                    cpu: span.span.cpu,
                    start_ns: span.span.start_ns,
                    end_ns: span.span.end_ns,
                });
            }
            batch.push((index, outcome.and_then(decode_output::<T>)));
            remaining -= 1;
            if remaining == 0
                && let Some(done) = done.take()
            {
                done(std::mem::take(&mut batch));
            }
        });
        let job = Job {
            name: T::NAME,
            delivery: Delivery::new(inputs.len(), deliver),
            inputs,
            timeout: None,
            retries: self.inner.retries,
            record,
        };
        // A job the pool does not take answers its tasks as cancelled, so `done` still runs.
        let _ = self.send_job(job);
    }

    /// Runs the registered task `name` on inputs encoded already (postcard, no descriptors) as
    /// one job, and hands `done` each task's encoded output or error, in input order, once the
    /// last is in: the way in for a caller that holds bytes, not types — a cluster worker,
    /// which gets tasks by name from a queue. An unknown name fails every input as
    /// [`TaskError::UnknownTask`]; on a closed pool every task is [`TaskError::Cancelled`].
    pub fn run_encoded(
        &self,
        name: &str,
        inputs: Vec<Vec<u8>>,
        done: impl FnOnce(Vec<Result<Vec<u8>, TaskError>>) + Send + 'static,
    ) {
        let Some(registration) = crate::task::registry()
            .ok()
            .and_then(|registry| registry.get(name))
        else {
            done(
                inputs
                    .iter()
                    .map(|_| Err(TaskError::UnknownTask(name.to_owned())))
                    .collect(),
            );
            return;
        };
        let mut results: Vec<Option<Result<Vec<u8>, TaskError>>> =
            (0..inputs.len()).map(|_| None).collect();
        let mut encoded = Inputs::new();
        let mut positions = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            match encoded.push_encoded(input) {
                Ok(()) => positions.push(i),
                Err(error) => results[i] = Some(Err(TaskError::Codec(error))),
            }
        }
        if positions.is_empty() {
            done(results.into_iter().flatten().collect());
            return;
        }
        let mut remaining = positions.len();
        let mut done = Some(done);
        let deliver: Deliver = Box::new(move |position, outcome, _| {
            results[positions[position]] = Some(outcome.map(<[u8]>::to_vec));
            remaining -= 1;
            if remaining == 0
                && let Some(done) = done.take()
            {
                done(std::mem::take(&mut results).into_iter().flatten().collect());
            }
        });
        let job = Job {
            name: registration.name,
            delivery: Delivery::new(encoded.len(), deliver),
            inputs: encoded,
            timeout: None,
            retries: self.inner.retries,
            record: false,
        };
        let _ = self.send_job(job);
    }

    /// Queues a job for the dispatcher; on a closed pool its tasks are cancelled instead (a job
    /// dropped unsent answers every task with [`TaskError::Cancelled`]).
    fn send_job(&self, job: Job) -> Result<(), PoolError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            drop(job);
            return Err(PoolError::Closed);
        }
        self.command(Command::Submit(job))
    }

    /// How many settlements the pool refused because the task was settled already: 0, unless
    /// the pool has a bug. The dispatcher's ledger settles each task exactly once; tests read
    /// this to prove that no result was delivered twice.
    #[doc(hidden)]
    pub fn duplicate_settlements(&self) -> u64 {
        self.inner.counters.duplicates.load(Ordering::Relaxed)
    }

    /// How many worker processes the pool has started so far, replacements included.
    pub fn workers_started(&self) -> u64 {
        self.inner.counters.started.load(Ordering::Relaxed)
    }

    fn command(&self, command: Command) -> Result<(), PoolError> {
        self.inner
            .commands
            .send(command)
            .map_err(|_| PoolError::Closed)?;
        if self.inner.sleeping.swap(false, Ordering::SeqCst) {
            let _ = rustix::io::write(&self.inner.ring, &1_u64.to_ne_bytes());
        }
        Ok(())
    }

    /// Takes no more work; queued work goes on. `Pool.close()`.
    pub fn close(&self) {
        if !self.inner.closed.swap(true, Ordering::SeqCst) {
            let _ = self.command(Command::Close);
        }
    }

    /// Waits until the pool has finished: once the queued work is done and the workers have
    /// exited (after [`terminate`](Self::terminate), at once). A pool still open is closed
    /// first — where Python's `join` would raise, this one cannot wait for ever.
    pub fn join(&self) {
        self.close();
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            thread.join();
        }
    }

    /// Kills the workers now; unfinished tasks end as [`TaskError::Cancelled`].
    pub fn terminate(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let _ = self.command(Command::Terminate);
        self.join();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Terminate);
        let _ = rustix::io::write(&self.ring, &1_u64.to_ne_bytes());
        if let Some(thread) = self
            .thread
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            thread.join();
        }
    }
}

/// The pending result of [`ProcessPool::submit`]: [`wait`](Self::wait) for it, or `.await` it.
#[derive(Debug)]
pub struct TaskHandle<O> {
    receiver: oneshot::Receiver<Result<O, TaskError>>,
}

impl<O> TaskHandle<O> {
    /// Blocks until the task has finished.
    pub fn wait(self) -> Result<O, TaskError> {
        futures::executor::block_on(self)
    }
}

impl<O> Future for TaskHandle<O> {
    type Output = Result<O, TaskError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(context)
            .map(|received| received.unwrap_or(Err(TaskError::Cancelled)))
    }
}
