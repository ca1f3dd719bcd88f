//! `triad worker`: a local process pool fed from the queue's stream.
//!
//! - **Credit.** It reads (`XREADGROUP … >`) only as many chunks as it has room for — two per
//!   local worker process — so a slow or small host takes less, and a stopped one takes none.
//! - **Ack after the answer.** A chunk's answer goes to its client's reply stream, and the chunk
//!   is acknowledged and deleted, in one `MULTI`/`EXEC`: either both happen or neither.
//!   Answers wait in order while Redis is away, and are written when it is back.
//! - **Leases.** Every third of `--lease` it touches its chunks in flight (`XCLAIM … JUSTID`,
//!   which resets their idle time); every half lease it claims chunks idle past the lease
//!   (`XAUTOCLAIM`): those of a worker that died or was stopped. Such a chunk may run twice;
//!   the client keeps the first answer.
//! - **Dead letters.** A chunk whose local worker process died is claimed again at once (its
//!   delivery count grows); one delivered more than its `max_deliveries` goes to the dead
//!   letters with the reason ("its worker died 3 times"), and its client gets that reason as
//!   each task's error. A chunk that does not decode goes there too.
//! - **Wrong tasks.** A task this binary lacks, or has with another signature, is answered
//!   with that error per task, at once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::streams::StreamId;
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;
use triad::{ProcessPool, TaskError};

use crate::protocol::{self, Answer, Chunk, FIELD};
use crate::status::Heartbeat;
use crate::{ClusterError, GROUP, Keys};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// `redis://host:port`.
    pub url: String,
    /// The queue to serve.
    pub queue: String,
    /// Worker processes in the local pool.
    pub workers: usize,
    /// A chunk idle this long in another worker's hands is taken over.
    pub lease: Duration,
    /// This worker's name in the group (default `host:pid`).
    pub name: Option<String>,
}

/// What a worker did, when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Chunks answered.
    pub chunks: u64,
    /// Tasks answered.
    pub tasks: u64,
    /// Chunks claimed from other workers.
    pub claimed: u64,
    /// Chunks sent to the dead letters.
    pub dead_letters: u64,
}

struct Running {
    chunk: Chunk,
    deliveries: u64,
}

struct Done {
    id: String,
    outcomes: Vec<Result<Vec<u8>, TaskError>>,
}

struct Worker {
    keys: Keys,
    name: String,
    pool: ProcessPool,
    control: ConnectionManager,
    running: HashMap<String, Running>,
    deaths: HashMap<String, u32>,
    outbox: VecDeque<Write>,
    done_tx: mpsc::UnboundedSender<Done>,
    report: WorkerReport,
    capacity: usize,
}

/// A transaction waiting to be written: an answer (and maybe a dead letter), then the ack.
struct Write {
    id: String,
    reply: String,
    answer: Vec<u8>,
    dead: Option<(Vec<u8>, String)>,
}

/// Serves `options.queue` until `stop` is set, then finishes what it holds and returns.
pub fn serve(options: WorkerOptions, stop: Arc<AtomicBool>) -> Result<WorkerReport, ClusterError> {
    let pool = ProcessPool::builder()
        .workers(options.workers.max(1))
        .retries(0)
        .build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClusterError::Runtime)?;
    runtime.block_on(run(options, pool, stop))
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

async fn run(
    options: WorkerOptions,
    pool: ProcessPool,
    stop: Arc<AtomicBool>,
) -> Result<WorkerReport, ClusterError> {
    let keys = Keys::new(&options.queue);
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| format!("{}:{}", host(), std::process::id()));
    let mut reader = triad_redis::connect(&options.url).await?;
    let mut control = triad_redis::connect(&options.url).await?;
    triad_redis::ensure_group(&mut control, &keys.tasks, GROUP, "0").await?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let capacity = options.workers.max(1) * 2;
    let mut w = Worker {
        keys,
        name,
        pool,
        control,
        running: HashMap::new(),
        deaths: HashMap::new(),
        outbox: VecDeque::new(),
        done_tx,
        report: WorkerReport::default(),
        capacity,
    };
    let lease = options.lease.max(Duration::from_millis(300));
    let (mut next_touch, mut next_claim, mut next_beat) =
        (Instant::now(), Instant::now(), Instant::now());
    let mut cursor = "0-0".to_owned();
    let mut pause = Duration::ZERO;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if stopping && w.running.is_empty() && w.outbox.is_empty() {
            break;
        }
        while let Ok(done) = done_rx.try_recv() {
            w.finished(done);
        }
        let healthy = w.flush().await && w.touch_due(&mut next_touch, lease).await;
        if Instant::now() >= next_beat {
            w.heartbeat().await;
            next_beat = Instant::now() + Duration::from_secs(1);
        }
        let credit = w.capacity.saturating_sub(w.running.len());
        let mut entries = Vec::new();
        if healthy && !stopping && credit > 0 {
            let names = triad_redis::group::Group {
                stream: &w.keys.tasks,
                group: GROUP,
                consumer: &w.name,
            };
            let read = if Instant::now() >= next_claim {
                let claimed =
                    triad_redis::group::claim(&mut w.control, names, lease, &cursor, credit).await;
                claimed.map(|(next, entries)| {
                    if next == "0-0" {
                        next_claim = Instant::now() + lease / 2;
                    }
                    cursor = next;
                    w.report.claimed += entries.len() as u64;
                    entries
                })
            } else {
                triad_redis::group::read(&mut reader, &mut w.control, names, None, credit, 200)
                    .await
            };
            match read {
                Ok(found) => {
                    pause = Duration::ZERO;
                    entries = found;
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    // Redis came back without the group (no persistence): make it again.
                    let _ =
                        triad_redis::ensure_group(&mut w.control, &w.keys.tasks, GROUP, "0").await;
                }
                Err(_) => {
                    pause = triad_redis::backoff(pause);
                    tokio::time::sleep(pause).await;
                }
            }
        }
        let idle = entries.is_empty();
        for (entry, deliveries) in entries {
            w.start(entry, deliveries);
        }
        if idle
            && (credit == 0 || stopping || !healthy)
            && let Ok(Some(done)) =
                tokio::time::timeout(Duration::from_millis(50), done_rx.recv()).await
        {
            w.finished(done);
        }
    }
    w.pool.close();
    let _: redis::RedisResult<u64> = redis::cmd("DEL")
        .arg(w.keys.heartbeat(&w.name))
        .query_async(&mut w.control)
        .await;
    Ok(w.report)
}

impl Worker {
    fn start(&mut self, entry: StreamId, deliveries: u64) {
        if self.running.contains_key(&entry.id) {
            return;
        }
        let chunk = match entry.map.get(FIELD) {
            Some(redis::Value::BulkString(bytes)) => protocol::decode::<Chunk>(bytes),
            _ => Err(triad::process::wire::WireError::Malformed(
                "no `m` field".into(),
            )),
        };
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                // Nothing to answer: no client can be named. Keep the entry's reason.
                self.outbox.push_back(Write {
                    id: entry.id.clone(),
                    reply: String::new(),
                    answer: Vec::new(),
                    dead: Some((Vec::new(), format!("the entry is not a triad chunk: {e}"))),
                });
                return;
            }
        };
        if deliveries > u64::from(chunk.max_deliveries) {
            let reason = match self.deaths.remove(&entry.id) {
                Some(n) => format!("its worker died {n} times"),
                None => {
                    format!("delivered {deliveries} times without an answer: its workers went away")
                }
            };
            self.dead_letter(entry.id, chunk, reason);
            return;
        }
        let check = triad::registry()
            .ok()
            .and_then(|r| r.get(&chunk.task))
            .map(|r| r.signature());
        let refusal = match check {
            None => Some(TaskError::UnknownTask(chunk.task.clone())),
            Some(ours) if ours != chunk.signature => Some(TaskError::Failed(format!(
                "task `{}` has another signature in this worker's build ({ours}) than in the client's ({})",
                chunk.task, chunk.signature
            ))),
            Some(_) => None,
        };
        if let Some(error) = refusal {
            let outcomes = chunk.inputs.iter().map(|_| Err(error.clone())).collect();
            self.answer(entry.id, &chunk, outcomes);
            return;
        }
        let inputs: Vec<Vec<u8>> = chunk.inputs.iter().map(|i| i.to_vec()).collect();
        let (task, id, tx) = (chunk.task.clone(), entry.id.clone(), self.done_tx.clone());
        self.running.insert(entry.id, Running { chunk, deliveries });
        self.pool.run_encoded(&task, inputs, move |outcomes| {
            let _ = tx.send(Done { id, outcomes });
        });
    }

    fn finished(&mut self, done: Done) {
        let Some(running) = self.running.remove(&done.id) else {
            return;
        };
        let died = done
            .outcomes
            .iter()
            .any(|o| matches!(o, Err(TaskError::WorkerDied { .. })));
        if died {
            *self.deaths.entry(done.id.clone()).or_default() += 1;
            // Claimed again at once, which counts a delivery: past its limit, a dead letter.
            self.reclaim(done.id, running);
            return;
        }
        self.deaths.remove(&done.id);
        self.report.tasks += done.outcomes.len() as u64;
        let outcomes = done
            .outcomes
            .into_iter()
            .map(|o| o.map(ByteBuf::from))
            .collect();
        self.answer(done.id, &running.chunk, outcomes);
    }

    fn reclaim(&mut self, id: String, running: Running) {
        let entry = StreamId {
            id: id.clone(),
            map: HashMap::from([(
                FIELD.to_owned(),
                redis::Value::BulkString(protocol::encode(&running.chunk).unwrap_or_default()),
            )]),
            ..StreamId::default()
        };
        // The XCLAIM that counts the delivery is sent with the next flush.
        self.outbox.push_back(Write {
            id: id.clone(),
            reply: String::new(),
            answer: Vec::new(),
            dead: None,
        });
        self.start(entry, running.deliveries + 1);
    }

    fn answer(&mut self, id: String, chunk: &Chunk, outcomes: Vec<Result<ByteBuf, TaskError>>) {
        let answer = Answer {
            first_id: chunk.first_id,
            worker: self.name.clone(),
            outcomes,
        };
        self.report.chunks += 1;
        self.outbox.push_back(Write {
            id,
            reply: chunk.reply.clone(),
            answer: protocol::encode(&answer).unwrap_or_default(),
            dead: None,
        });
    }

    fn dead_letter(&mut self, id: String, chunk: Chunk, reason: String) {
        self.report.dead_letters += 1;
        let error = TaskError::Failed(format!("dead-lettered: {reason}"));
        let answer = Answer {
            first_id: chunk.first_id,
            worker: self.name.clone(),
            outcomes: chunk.inputs.iter().map(|_| Err(error.clone())).collect(),
        };
        self.outbox.push_back(Write {
            id,
            reply: chunk.reply.clone(),
            answer: protocol::encode(&answer).unwrap_or_default(),
            dead: Some((protocol::encode(&chunk).unwrap_or_default(), reason)),
        });
    }

    /// Writes what waits, in order; false if Redis is away (the rest waits).
    async fn flush(&mut self) -> bool {
        while let Some(write) = self.outbox.front() {
            let mut pipe = redis::pipe();
            if write.answer.is_empty() && write.dead.is_none() {
                // A reclaim: count a delivery, keep it ours.
                pipe.cmd("XCLAIM")
                    .arg(&self.keys.tasks)
                    .arg(GROUP)
                    .arg(&self.name)
                    .arg(0)
                    .arg(&write.id)
                    .ignore();
            } else {
                pipe.atomic();
                if let Some((chunk, reason)) = &write.dead {
                    pipe.cmd("XADD")
                        .arg(&self.keys.dead)
                        .arg("*")
                        .arg(FIELD)
                        .arg(chunk.as_slice())
                        .arg("reason")
                        .arg(reason)
                        .arg("worker")
                        .arg(&self.name)
                        .ignore();
                }
                if !write.reply.is_empty() {
                    pipe.cmd("XADD")
                        .arg(&write.reply)
                        .arg("*")
                        .arg(FIELD)
                        .arg(write.answer.as_slice())
                        .ignore();
                }
                pipe.cmd("XACK")
                    .arg(&self.keys.tasks)
                    .arg(GROUP)
                    .arg(&write.id)
                    .ignore();
                pipe.cmd("XDEL")
                    .arg(&self.keys.tasks)
                    .arg(&write.id)
                    .ignore();
            }
            match pipe.query_async::<()>(&mut self.control).await {
                Ok(()) => {
                    self.outbox.pop_front();
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Resets the idle time of the chunks in flight when due; false if Redis is away.
    async fn touch_due(&mut self, next: &mut Instant, lease: Duration) -> bool {
        if Instant::now() < *next || self.running.is_empty() {
            return true;
        }
        *next = Instant::now() + lease / 3;
        let ids: Vec<&String> = self.running.keys().collect();
        let touched: redis::RedisResult<redis::Value> = redis::cmd("XCLAIM")
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg(&self.name)
            .arg(0)
            .arg(&ids)
            .arg("JUSTID")
            .query_async(&mut self.control)
            .await;
        touched.is_ok()
    }

    async fn heartbeat(&mut self) {
        let beat = Heartbeat {
            name: self.name.clone(),
            host: host(),
            pid: std::process::id(),
            workers: self.pool.workers(),
            running: self
                .running
                .values()
                .map(|r| r.chunk.inputs.len() as u64)
                .sum(),
            done: self.report.tasks,
            dead_letters: self.report.dead_letters,
        };
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.keys.heartbeat(&self.name))
            .arg(serde_json::to_string(&beat).unwrap_or_default())
            .arg("PX")
            .arg(3000)
            .query_async(&mut self.control)
            .await;
    }
}
