//! A stream read through a consumer group: at-least-once.
//!
//! The reader asks for at most as many entries as there is room for in flight (`COUNT` =
//! free permits), so a slow sink holds the stream back in Redis instead of in memory. It first
//! reads this consumer's own pending entries (`XREADGROUP … 0`: what an earlier run of it took
//! and never acknowledged), then new ones (`>`). Every few seconds it claims entries idle past
//! `claim_idle` (`XAUTOCLAIM`): those of consumers that died, and its own whose handler failed.
//! An entry's deliveries come from the pending list (`XPENDING`); past `max_deliveries` it goes
//! to the dead letters instead of the sinks. An entry is acknowledged (`XACK`, in batches)
//! only after the sinks committed it, or after it is safely in the dead letters.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::{Context, LAST_WAIT};
use crate::StreamError;
use crate::message::Message;
use crate::sink::Outcome;

/// The most entries one read asks for.
const MOST_PER_READ: usize = 512;

/// How long a read for new entries blocks in Redis.
const BLOCK_MS: u64 = 200;

/// The most acknowledgements sent in one `XACK`.
const MOST_PER_ACK: usize = 1024;

/// What the group reader needs to know.
#[derive(Debug, Clone)]
pub(crate) struct GroupSpec {
    pub(crate) stream: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) concurrency: usize,
    pub(crate) max_deliveries: u64,
    pub(crate) claim_idle: Duration,
}

impl GroupSpec {
    /// The stream, group and consumer names, as triad-redis's group reads take them.
    fn names(&self) -> triad_redis::group::Group<'_> {
        triad_redis::group::Group {
            stream: &self.stream,
            group: &self.group,
            consumer: &self.consumer,
        }
    }
}

/// What the handlers of one group share beyond the context.
#[derive(Debug)]
struct Shared {
    context: Arc<Context>,
    spec: GroupSpec,
    acks: mpsc::UnboundedSender<String>,
    /// Ids being handled here now: a claim must not start one twice.
    in_flight: Mutex<HashSet<String>>,
    /// The last failure of an entry handled here, for its dead letter's reason.
    failures: Mutex<HashMap<String, String>>,
}

/// Reads `spec`'s stream until told to stop, then drains; gives the acknowledgements that
/// could not be sent.
pub(crate) async fn run(
    context: Arc<Context>,
    url: &str,
    mut control: ConnectionManager,
    spec: GroupSpec,
) -> Result<u64, StreamError> {
    let mut reader = triad_redis::connect(url).await?;
    create_group(&mut control, &spec).await?;
    let (acks, inbox) = mpsc::unbounded_channel();
    let acker = tokio::spawn(acknowledge(
        control.clone(),
        spec.clone(),
        inbox,
        context.clone(),
    ));
    let gauge = tokio::spawn(watch_pending(
        control.clone(),
        spec.clone(),
        context.clone(),
    ));
    let shared = Arc::new(Shared {
        context: context.clone(),
        spec: spec.clone(),
        acks,
        in_flight: Mutex::new(HashSet::new()),
        failures: Mutex::new(HashMap::new()),
    });
    let permits = Arc::new(Semaphore::new(spec.concurrency));
    let mut handlers = JoinSet::new();
    // Own pending entries first, from the start of this consumer's history.
    let mut history = Some("0-0".to_owned());
    let claim_every =
        (spec.claim_idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut next_claim = Instant::now() + claim_every;
    let mut claim_cursor = "0-0".to_owned();
    let mut pause = Duration::ZERO;
    let mut outcome = Ok(());
    while !context.stopping() {
        while handlers.try_join_next().is_some() {}
        let free = permits.available_permits();
        if free == 0 {
            tokio::select! {
                _ = permits.acquire() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            continue;
        }
        let count = free.min(MOST_PER_READ);
        let read = if Instant::now() >= next_claim {
            let claimed = triad_redis::group::claim(
                &mut control,
                spec.names(),
                spec.claim_idle,
                &claim_cursor,
                count,
            )
            .await;
            if let Ok((next, _)) = &claimed {
                claim_cursor.clone_from(next);
                if next == "0-0" {
                    next_claim = Instant::now() + claim_every;
                }
            }
            claimed.map(|(_, entries)| entries)
        } else {
            triad_redis::group::read(
                &mut reader,
                &mut control,
                spec.names(),
                history.as_deref(),
                count,
                BLOCK_MS,
            )
            .await
        };
        let entries = match read {
            Ok(entries) => {
                pause = Duration::ZERO;
                entries
            }
            Err(error) if triad_redis::is_unreachable(&error) => {
                if pause.is_zero() {
                    context.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                pause = triad_redis::backoff(pause);
                tokio::time::sleep(pause).await;
                continue;
            }
            Err(error) if error.code() == Some("NOGROUP") => {
                // Redis lost the group (a restart without persistence): make it again from
                // the stream's start; the sinks make replays no-ops.
                if let Err(error) = create_group(&mut control, &spec).await {
                    outcome = Err(error);
                    break;
                }
                history = Some("0-0".to_owned());
                continue;
            }
            Err(source) => {
                outcome = Err(StreamError::Refused {
                    what: format!("reading stream {}", spec.stream),
                    source,
                });
                break;
            }
        };
        if let Some(last) = &mut history {
            match entries.last() {
                Some((entry, _)) => last.clone_from(&entry.id),
                None => history = None,
            }
        }
        let mut batch = Vec::with_capacity(entries.len());
        for (entry, deliveries) in entries {
            if entry.map.is_empty() {
                // Deleted from the stream while pending: nothing to handle.
                let _ = shared.acks.send(entry.id);
                continue;
            }
            let message = Message::from_entry(&spec.stream, &entry.id, &entry.map, deliveries);
            if !shared
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(message.id.clone())
            {
                continue; // claimed while this consumer still handles it
            }
            if deliveries > 1 {
                context.metrics.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            batch.push(message);
        }
        if batch.is_empty() {
            continue;
        }
        // A read takes no more than the free permits, so these are there at once.
        let Ok(permit) = permits.clone().acquire_many_owned(batch.len() as u32).await else {
            break;
        };
        let size = batch.len() as u64;
        context.metrics.received.fetch_add(size, Ordering::Relaxed);
        context
            .metrics
            .in_flight
            .fetch_add(size as i64, Ordering::Relaxed);
        let shared = shared.clone();
        handlers.spawn(async move {
            handle(&shared, batch).await;
            drop(permit);
        });
    }
    while handlers.join_next().await.is_some() {}
    let Shared { acks, .. } = Arc::into_inner(shared).expect("every handler has ended");
    drop(acks);
    gauge.abort();
    let unacknowledged = acker.await.unwrap_or(0);
    outcome.map(|()| unacknowledged)
}

/// A read's messages through the sinks together, then each acknowledged, dead-lettered or
/// left pending.
async fn handle(shared: &Shared, messages: Vec<Message>) {
    let context = &shared.context;
    let size = messages.len() as i64;
    let (worn_out, fresh): (Vec<Message>, Vec<Message>) = messages
        .into_iter()
        .partition(|message| message.deliveries > shared.spec.max_deliveries);
    let mut outcomes = context.outcomes(fresh).await;
    for message in worn_out {
        let last = shared
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&message.id);
        let reason = format!(
            "delivered {} times without being acknowledged (more than --max-deliveries {}){}",
            message.deliveries,
            shared.spec.max_deliveries,
            last.map(|reason| format!("; last here: {reason}"))
                .unwrap_or_default()
        );
        outcomes.push((message, Outcome::Rejected(reason)));
    }
    let mut committed = Vec::new();
    for (message, outcome) in outcomes {
        shared
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&message.id);
        match outcome {
            Outcome::Committed => {
                let _ = shared.acks.send(message.id.clone());
                committed.push(message);
            }
            Outcome::Failed(reason) => {
                context.metrics.failed.fetch_add(1, Ordering::Relaxed);
                context.note(&message, &reason);
                let mut failures = shared
                    .failures
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if failures.len() < 100_000 {
                    failures.insert(message.id.clone(), reason);
                }
            }
            Outcome::Rejected(reason) => {
                if context.dead_letter(&message, &reason).await {
                    let _ = shared.acks.send(message.id.clone());
                }
            }
        }
    }
    context.committed(&committed);
    context.metrics.in_flight.fetch_sub(size, Ordering::Relaxed);
}

async fn create_group(
    control: &mut ConnectionManager,
    spec: &GroupSpec,
) -> Result<(), StreamError> {
    let mut pause = Duration::ZERO;
    loop {
        match triad_redis::ensure_group(control, &spec.stream, &spec.group, "0").await {
            Ok(_) => return Ok(()),
            Err(error)
                if triad_redis::is_unreachable(&error) && pause < triad_redis::MOST_BACKOFF =>
            {
                pause = triad_redis::backoff(pause);
                tokio::time::sleep(pause).await;
            }
            Err(source) => {
                return Err(StreamError::Refused {
                    what: format!("making group {} on stream {}", spec.group, spec.stream),
                    source,
                });
            }
        }
    }
}

/// Sends acknowledgements in batches as they come, until every sender is gone; waits Redis
/// out while it is away (at the end, for [`LAST_WAIT`]). Gives how many could not be sent.
async fn acknowledge(
    mut control: ConnectionManager,
    spec: GroupSpec,
    mut inbox: mpsc::UnboundedReceiver<String>,
    context: Arc<Context>,
) -> u64 {
    let mut batch = Vec::new();
    let mut unsent = 0u64;
    while inbox.recv_many(&mut batch, MOST_PER_ACK).await > 0 {
        let mut pause = Duration::ZERO;
        let mut since = None;
        loop {
            let acked: redis::RedisResult<u64> = redis::cmd("XACK")
                .arg(&spec.stream)
                .arg(&spec.group)
                .arg(&batch)
                .query_async(&mut control)
                .await;
            match acked {
                Ok(_) => break,
                Err(error) if triad_redis::is_unreachable(&error) => {
                    let waited = since.get_or_insert_with(Instant::now).elapsed();
                    if context.stopping() && waited > LAST_WAIT {
                        unsent += batch.len() as u64;
                        break;
                    }
                    if pause.is_zero() {
                        context.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    pause = triad_redis::backoff(pause);
                    tokio::time::sleep(pause).await;
                }
                Err(_) => {
                    unsent += batch.len() as u64;
                    break;
                }
            }
        }
        batch.clear();
    }
    unsent
}

/// Keeps the pending gauge up to date (once a second).
async fn watch_pending(mut control: ConnectionManager, spec: GroupSpec, context: Arc<Context>) {
    loop {
        let summary: redis::RedisResult<(u64, redis::Value, redis::Value, redis::Value)> =
            redis::cmd("XPENDING")
                .arg(&spec.stream)
                .arg(&spec.group)
                .query_async(&mut control)
                .await;
        if let Ok((pending, ..)) = summary {
            context.metrics.pending.store(pending, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
