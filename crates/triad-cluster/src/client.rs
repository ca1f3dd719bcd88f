//! The client: a process pool's shape — `submit`, `map`, `imap`, `imap_unordered` — whose
//! workers are `triad worker`s anywhere that reach the same Redis.
//!
//! Tasks go out as chunks on the queue's task stream (`XADD`, from a sender task, so `submit`
//! never blocks on the network); results come back on this client's own reply stream,
//! `triad:{QUEUE}:reply:ID`, which a reader task follows (`XREAD BLOCK`) and trims as it
//! goes. Why a reply stream and not a key per result: one blocking read wakes for every result
//! of the client, in order, with no polling and no key per task to expire; and a stream read
//! from the last id seen resumes exactly where it was after Redis restarts. The stream is given
//! a day to live, renewed while the client lives, and deleted when it is dropped.
//!
//! **One result per task id.** A task can run twice — its worker was stopped past its lease
//! and another took it over, then the first woke and answered too. The first answer settles
//! the task; a later one is counted in [`Cluster::duplicates`] and dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::StreamReadReply;
use serde_bytes::ByteBuf;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use triad::{Task, TaskError};

use crate::protocol::{self, Answer, Chunk, FIELD};
use crate::{ClusterError, Keys};

/// Tasks in flight at most per `imap`, ahead of the one the caller waits for.
const WINDOW: usize = 8192;

type Waiter = Box<dyn FnOnce(Result<Vec<u8>, TaskError>) + Send>;

struct Inner {
    keys: Keys,
    reply: String,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiter>>,
    settled: Mutex<HashSet<u64>>,
    duplicates: AtomicU64,
    /// Entry ids of chunks sent and not answered, by first task id (for `cancel`).
    sent: Mutex<HashMap<u64, String>>,
    outbox: mpsc::UnboundedSender<Chunk>,
    closed: AtomicBool,
    timeout: Option<Duration>,
    max_deliveries: u32,
    control: ConnectionManager,
}

/// Settings of a [`Cluster`] client.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    url: String,
    queue: String,
    timeout: Option<Duration>,
    retries: u32,
    chunk_size: usize,
    parallelism: Option<usize>,
}

impl ClusterBuilder {
    /// How many tasks the cluster runs at once, for a [`Runner`](triad::Runner) on it to pace
    /// by (default: the worker processes of the workers alive when it connects, at least 1).
    pub fn parallelism(mut self, tasks: usize) -> Self {
        self.parallelism = Some(tasks.max(1));
        self
    }

    /// The queue (default `default`): workers started with the same `--queue` take its tasks.
    pub fn queue(mut self, queue: &str) -> Self {
        queue.clone_into(&mut self.queue);
        self
    }

    /// Each task's result is waited for at most this long; then it is [`TaskError::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Deliveries after the first before a chunk goes to the dead letters (default 4): a
    /// worker that died with it, or a host that went away.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Tasks per chunk for `map` and `imap` (default 1): one entry, one delivery, one ack.
    pub fn chunk_size(mut self, size: usize) -> Self {
        self.chunk_size = size.max(1);
        self
    }

    /// Connects.
    pub fn build(self) -> Result<Cluster, ClusterError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("triad-cluster")
            .enable_all()
            .build()
            .map_err(ClusterError::Runtime)?;
        let keys = Keys::new(&self.queue);
        let client: u64 = rand::random();
        let reply = keys.reply(&format!("{client:016x}"));
        let (outbox, chunks) = mpsc::unbounded_channel();
        let url = self.url.clone();
        let (control, reader, sender) = runtime.block_on(async {
            let connect = || triad_redis::connect(&url);
            Ok::<_, ClusterError>((connect().await?, connect().await?, connect().await?))
        })?;
        let inner = Arc::new(Inner {
            keys,
            reply,
            next_id: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            settled: Mutex::new(HashSet::new()),
            duplicates: AtomicU64::new(0),
            sent: Mutex::new(HashMap::new()),
            outbox,
            closed: AtomicBool::new(false),
            timeout: self.timeout,
            max_deliveries: self.retries.saturating_add(1),
            control,
        });
        runtime.spawn(send_chunks(inner.clone(), sender, chunks));
        runtime.spawn(read_answers(inner.clone(), reader));
        let parallelism = match self.parallelism {
            Some(n) => n,
            None => crate::status::status(&self.url, &self.queue).map_or(1, |s| {
                s.workers.iter().map(|w| w.workers).sum::<usize>().max(1)
            }),
        };
        Ok(Cluster {
            inner,
            runtime: Arc::new(runtime),
            chunk_size: self.chunk_size,
            parallelism,
        })
    }
}

/// A client of the workers on one queue.
pub struct Cluster {
    inner: Arc<Inner>,
    runtime: Arc<Runtime>,
    chunk_size: usize,
    parallelism: usize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("queue", &self.inner.keys.queue)
            .field("reply", &self.inner.reply)
            .finish()
    }
}

impl Cluster {
    /// A client of queue `default` at `url` (`redis://host:port`).
    pub fn connect(url: &str) -> Result<Cluster, ClusterError> {
        Cluster::builder(url).build()
    }

    /// Settings, then [`ClusterBuilder::build`].
    pub fn builder(url: &str) -> ClusterBuilder {
        ClusterBuilder {
            url: url.to_owned(),
            queue: "default".into(),
            timeout: None,
            retries: 4,
            chunk_size: 1,
            parallelism: None,
        }
    }

    /// Results that came twice and were dropped (a task run again after its lease expired).
    pub fn duplicates(&self) -> u64 {
        self.inner.duplicates.load(Ordering::Relaxed)
    }

    /// Runs one task somewhere in the cluster; wait on the handle, or `.await` it.
    pub fn submit<T: Task>(&self, task: T, input: T::Input) -> Handle<T::Output> {
        let mut handles = self.send(task, vec![input]);
        handles.pop().expect("one handle a task")
    }

    /// Runs `task` on every input; the results in input order.
    pub fn map<T: Task>(
        &self,
        task: T,
        inputs: impl IntoIterator<Item = T::Input>,
    ) -> Vec<Result<T::Output, TaskError>> {
        self.imap(task, inputs).collect()
    }

    /// Runs `task` on every input, at most a window of tasks ahead; results in input order.
    pub fn imap<T: Task, I: IntoIterator<Item = T::Input>>(
        &self,
        task: T,
        inputs: I,
    ) -> Ordered<'_, T, I::IntoIter> {
        Ordered {
            cluster: self,
            task,
            inputs: inputs.into_iter(),
            handles: VecDeque::new(),
        }
    }

    /// Runs `task` on every input; results as they come, each with its input's index.
    pub fn imap_unordered<T: Task>(
        &self,
        _task: T,
        inputs: impl IntoIterator<Item = T::Input>,
    ) -> impl Iterator<Item = (usize, Result<T::Output, TaskError>)> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut count = 0;
        let mut inputs = inputs.into_iter().peekable();
        while inputs.peek().is_some() {
            let chunk: Vec<T::Input> = inputs.by_ref().take(self.chunk_size).collect();
            let first = count;
            count += chunk.len();
            let waiters = (0..chunk.len())
                .map(|i| {
                    let tx = tx.clone();
                    Box::new(move |r: Result<Vec<u8>, TaskError>| {
                        let _ = tx.send((first + i, r));
                    }) as Waiter
                })
                .collect();
            self.send_raw::<T>(chunk, waiters);
        }
        drop(tx);
        let runtime = self.runtime.clone();
        let timeout = self.inner.timeout;
        (0..count).map_while(move |_| {
            let next = match timeout {
                Some(t) => runtime
                    .block_on(async { tokio::time::timeout(t, rx.recv()).await.ok().flatten() }),
                None => runtime.block_on(rx.recv()),
            };
            next.map(|(i, r)| (i, r.and_then(|bytes| decode::<T>(&bytes))))
        })
    }

    /// Stops: chunks no worker took yet are deleted from the queue, and every task not yet
    /// answered fails as [`TaskError::Cancelled`]. Chunks already running finish; their
    /// answers are dropped.
    pub fn cancel(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let sent: Vec<String> = self
            .inner
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, id)| id)
            .collect();
        let mut control = self.inner.control.clone();
        let tasks = self.inner.keys.tasks.clone();
        self.runtime.block_on(async move {
            for ids in sent.chunks(1000) {
                let _: redis::RedisResult<u64> = redis::cmd("XDEL")
                    .arg(&tasks)
                    .arg(ids)
                    .query_async(&mut control)
                    .await;
            }
        });
        let waiting: Vec<Waiter> = self
            .inner
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, w)| w)
            .collect();
        for waiter in waiting {
            waiter(Err(TaskError::Cancelled));
        }
    }

    fn send<T: Task>(&self, task: T, inputs: Vec<T::Input>) -> Vec<Handle<T::Output>> {
        let _ = task;
        let mut handles = Vec::with_capacity(inputs.len());
        let waiters = (0..inputs.len())
            .map(|_| {
                let (tx, rx) = oneshot::channel();
                handles.push(Handle {
                    rx,
                    timeout: self.inner.timeout,
                    runtime: self.runtime.clone(),
                    name: T::NAME,
                    output: PhantomData,
                });
                Box::new(move |r: Result<Vec<u8>, TaskError>| {
                    let _ = tx.send(r);
                }) as Waiter
            })
            .collect();
        self.send_raw::<T>(inputs, waiters);
        handles
    }

    fn send_raw<T: Task>(&self, inputs: Vec<T::Input>, waiters: Vec<Waiter>) {
        let n = inputs.len() as u64;
        let first_id = self.inner.next_id.fetch_add(n, Ordering::Relaxed);
        let mut encoded = Vec::with_capacity(inputs.len());
        let mut waiting = self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let closed = self.inner.closed.load(Ordering::SeqCst);
        for (i, (input, waiter)) in inputs.iter().zip(waiters).enumerate() {
            match postcard::to_stdvec(input) {
                _ if closed => waiter(Err(TaskError::Cancelled)),
                Ok(bytes) => {
                    waiting.insert(first_id + i as u64, waiter);
                    encoded.push(ByteBuf::from(bytes));
                }
                Err(e) => waiter(Err(TaskError::Codec(format!(
                    "input of `{}`: {e}",
                    T::NAME
                )))),
            }
        }
        drop(waiting);
        if encoded.len() < inputs.len() && !encoded.is_empty() {
            // An input that did not encode fails alone; the others go as chunks of one.
            for (i, input) in inputs.iter().enumerate() {
                if let Ok(bytes) = postcard::to_stdvec(input) {
                    self.queue(T::NAME, first_id + i as u64, vec![ByteBuf::from(bytes)]);
                }
            }
            return;
        }
        if !encoded.is_empty() {
            self.queue(T::NAME, first_id, encoded);
        }
    }

    fn queue(&self, task: &str, first_id: u64, inputs: Vec<ByteBuf>) {
        let signature = triad::registry()
            .ok()
            .and_then(|r| r.get(task))
            .map_or_else(String::new, |r| r.signature());
        let _ = self.inner.outbox.send(Chunk {
            first_id,
            task: task.to_owned(),
            signature,
            inputs,
            reply: self.inner.reply.clone(),
            max_deliveries: self.inner.max_deliveries,
        });
    }
}

/// A remote run's results so far, how many are still to come, and whom to give them to.
type Gather = (
    Vec<Option<Result<Vec<u8>, TaskError>>>,
    usize,
    Option<triad::remote::RemoteDone>,
);

/// The cluster as an engine of [`triad::Runner::remote`] and
/// [`triad::pipeline::Stage::remote`]: `triad::run`'s shape, spread over the workers.
impl triad::remote::RemoteEngine for Cluster {
    fn run_encoded(
        &self,
        name: &'static str,
        inputs: Vec<Vec<u8>>,
        done: triad::remote::RemoteDone,
    ) {
        let n = inputs.len();
        let results: Arc<Mutex<Gather>> =
            Arc::new(Mutex::new(((0..n).map(|_| None).collect(), n, Some(done))));
        let first_id = self.inner.next_id.fetch_add(n as u64, Ordering::Relaxed);
        {
            let mut waiting = lock(&self.inner.waiting);
            for i in 0..n {
                let results = results.clone();
                waiting.insert(
                    first_id + i as u64,
                    Box::new(move |r: Result<Vec<u8>, TaskError>| {
                        let mut state = lock(&results);
                        state.0[i] = Some(r);
                        state.1 -= 1;
                        if state.1 == 0 {
                            let outputs = state.0.drain(..).flatten().collect();
                            if let Some(done) = state.2.take() {
                                drop(state);
                                done(outputs);
                            }
                        }
                    }),
                );
            }
        }
        if self.inner.closed.load(Ordering::SeqCst) {
            self.cancel();
            return;
        }
        self.queue(
            name,
            first_id,
            inputs.into_iter().map(ByteBuf::from).collect(),
        );
    }

    fn parallelism(&self) -> usize {
        self.parallelism
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let mut control = self.inner.control.clone();
        let reply = self.inner.reply.clone();
        let _ = self.runtime.block_on(async move {
            tokio::time::timeout(Duration::from_secs(2), async {
                let _: redis::RedisResult<u64> = redis::cmd("DEL")
                    .arg(&reply)
                    .query_async(&mut control)
                    .await;
            })
            .await
        });
    }
}

fn decode<T: Task>(bytes: &[u8]) -> Result<T::Output, TaskError> {
    postcard::from_bytes(bytes)
        .map_err(|e| TaskError::Codec(format!("output of `{}`: {e}", T::NAME)))
}

/// One task's result, to [`wait`](Handle::wait) for or to `.await`.
#[derive(Debug)]
pub struct Handle<O> {
    rx: oneshot::Receiver<Result<Vec<u8>, TaskError>>,
    timeout: Option<Duration>,
    runtime: Arc<Runtime>,
    name: &'static str,
    output: PhantomData<fn() -> O>,
}

impl<O: serde::de::DeserializeOwned + Send + 'static> Handle<O> {
    /// Blocks until the result (or the client's timeout). Not from inside an async context:
    /// `.await` the handle there.
    pub fn wait(self) -> Result<O, TaskError> {
        let runtime = self.runtime.clone();
        runtime.block_on(self.into_future())
    }
}

impl<O: serde::de::DeserializeOwned + Send + 'static> IntoFuture for Handle<O> {
    type Output = Result<O, TaskError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let Handle {
            rx, timeout, name, ..
        } = self;
        Box::pin(async move {
            let answer = match timeout {
                Some(t) => match tokio::time::timeout(t, rx).await {
                    Ok(answer) => answer,
                    Err(_) => return Err(TaskError::Timeout),
                },
                None => rx.await,
            };
            let bytes = answer.map_err(|_| TaskError::Cancelled)??;
            postcard::from_bytes(&bytes)
                .map_err(|e| TaskError::Codec(format!("output of `{name}`: {e}")))
        })
    }
}

/// [`Cluster::imap`]'s iterator.
#[derive(Debug)]
pub struct Ordered<'c, T: Task, I> {
    cluster: &'c Cluster,
    task: T,
    inputs: I,
    handles: VecDeque<Handle<T::Output>>,
}

impl<T: Task, I: Iterator<Item = T::Input>> Iterator for Ordered<'_, T, I> {
    type Item = Result<T::Output, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.handles.len() < WINDOW {
            let chunk: Vec<T::Input> = self.inputs.by_ref().take(self.cluster.chunk_size).collect();
            if chunk.is_empty() {
                break;
            }
            self.handles.extend(self.cluster.send(self.task, chunk));
        }
        self.handles.pop_front().map(Handle::wait)
    }
}

/// Sends chunks as they come, a pipeline of `XADD`s at a time, waiting Redis out when it is
/// away (a chunk sent twice that way runs twice: its second answer is a duplicate).
async fn send_chunks(
    inner: Arc<Inner>,
    mut connection: ConnectionManager,
    mut chunks: mpsc::UnboundedReceiver<Chunk>,
) {
    let mut batch = Vec::new();
    while chunks.recv_many(&mut batch, 256).await > 0 {
        let frames: Vec<(u64, Vec<u8>)> = batch
            .drain(..)
            .filter_map(|c| protocol::encode(&c).ok().map(|f| (c.first_id, f)))
            .collect();
        let mut pause = Duration::ZERO;
        loop {
            let mut pipe = redis::pipe();
            for (_, frame) in &frames {
                pipe.cmd("XADD")
                    .arg(&inner.keys.tasks)
                    .arg("*")
                    .arg(FIELD)
                    .arg(frame.as_slice());
            }
            pipe.cmd("EXPIRE").arg(&inner.reply).arg(86_400).ignore();
            match pipe.query_async::<Vec<String>>(&mut connection).await {
                Ok(ids) => {
                    let mut sent = inner.sent.lock().unwrap_or_else(|e| e.into_inner());
                    for ((first, _), id) in frames.iter().zip(ids) {
                        sent.insert(*first, id);
                    }
                    break;
                }
                Err(_) if inner.closed.load(Ordering::SeqCst) => return,
                Err(_) => {
                    pause = triad_redis::backoff(pause);
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// Follows the reply stream: settles each task on its first answer, counts later ones.
async fn read_answers(inner: Arc<Inner>, mut connection: ConnectionManager) {
    let mut last = "0-0".to_owned();
    let mut pause = Duration::ZERO;
    while !inner.closed.load(Ordering::SeqCst) || !lock(&inner.waiting).is_empty() {
        let read: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(512)
            .arg("BLOCK")
            .arg(500)
            .arg("STREAMS")
            .arg(&inner.reply)
            .arg(&last)
            .query_async(&mut connection)
            .await;
        let entries = match read {
            Ok(reply) => {
                pause = Duration::ZERO;
                reply
                    .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect::<Vec<_>>())
                    .unwrap_or_default()
            }
            Err(_) => {
                if inner.closed.load(Ordering::SeqCst) {
                    return;
                }
                pause = triad_redis::backoff(pause);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            last.clone_from(&entry.id);
            let answer = match entry.map.get(FIELD) {
                Some(redis::Value::BulkString(bytes)) => protocol::decode::<Answer>(bytes).ok(),
                _ => None,
            };
            ids.push(entry.id);
            if let Some(answer) = answer {
                settle(&inner, answer);
            }
        }
        if !ids.is_empty() {
            let _: redis::RedisResult<u64> = redis::cmd("XDEL")
                .arg(&inner.reply)
                .arg(&ids)
                .query_async(&mut connection)
                .await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn settle(inner: &Inner, answer: Answer) {
    lock(&inner.sent).remove(&answer.first_id);
    for (i, outcome) in answer.outcomes.into_iter().enumerate() {
        let id = answer.first_id + i as u64;
        let waiter = lock(&inner.waiting).remove(&id);
        let fresh = lock(&inner.settled).insert(id);
        match waiter {
            Some(waiter) => waiter(outcome.map(ByteBuf::into_vec)),
            None if !fresh => {
                inner.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            // Cancelled or timed out here: the answer came too late to matter.
            None => {}
        }
    }
}
