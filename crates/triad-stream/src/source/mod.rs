//! The two sources and what they share: the handlers' context (sinks, checks, figures) and
//! the dead-letter stream.

mod group;
mod pubsub;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use crate::message::{self, Message, now_us};
use crate::metrics::Metrics;
use crate::sink::{Outcome, Sinks};
use crate::{Source, StreamError, StreamOptions};

/// How many reasons a summary keeps.
const MOST_REASONS: usize = 10;

/// How long a dead letter or an acknowledgement waits for Redis to come back at the end.
const LAST_WAIT: Duration = Duration::from_secs(10);

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Context {
    sinks: Sinks,
    metrics: Arc<Metrics>,
    max_size: usize,
    json: bool,
    dead: Option<DeadLetters>,
    reasons: Mutex<Vec<String>>,
    stop: Arc<AtomicBool>,
}

impl Context {
    /// Checks each of a handler's `messages`, then runs those that pass through the sinks
    /// together; gives each its outcome.
    async fn outcomes(&self, messages: Vec<Message>) -> Vec<(Message, Outcome)> {
        let mut rejected = Vec::new();
        let mut valid = Vec::with_capacity(messages.len());
        for message in messages {
            match message::check(&message, self.max_size, self.json) {
                Ok(()) => valid.push(message),
                Err(reason) => rejected.push((message, Outcome::Rejected(reason))),
            }
        }
        let mut outcomes = if valid.is_empty() {
            Vec::new()
        } else {
            self.sinks.handle(valid).await
        };
        outcomes.append(&mut rejected);
        outcomes
    }

    /// Counts the commits of `messages` and their latencies.
    fn committed<'m>(&self, messages: impl IntoIterator<Item = &'m Message>) {
        let now = now_us();
        self.metrics.record_commits(
            messages
                .into_iter()
                .map(|message| now.saturating_sub(message.created_us)),
        );
    }

    /// Keeps one of the first reasons for the summary.
    fn note(&self, message: &Message, reason: &str) {
        let mut reasons = self.reasons.lock().unwrap_or_else(PoisonError::into_inner);
        if reasons.len() < MOST_REASONS {
            reasons.push(format!("{}: {reason}", message.id));
        }
    }

    /// Sends `message` to the dead letters; whether it is there (pub/sub without a
    /// dead-letter stream: counted only, and true).
    async fn dead_letter(&self, message: &Message, reason: &str) -> bool {
        self.note(message, reason);
        let stored = match &self.dead {
            Some(dead) => dead.send(message, reason, &self.stop, &self.metrics).await,
            None => true,
        };
        if stored {
            self.metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        stored
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// The dead-letter stream: each entry holds the message's id, origin, payload, deliveries and
/// the reason it is there.
#[derive(Debug, Clone)]
struct DeadLetters {
    connection: ConnectionManager,
    key: String,
}

impl DeadLetters {
    async fn send(
        &self,
        message: &Message,
        reason: &str,
        stop: &AtomicBool,
        metrics: &Metrics,
    ) -> bool {
        let mut connection = self.connection.clone();
        let mut pause = Duration::ZERO;
        let mut since = None;
        loop {
            let sent: redis::RedisResult<String> = redis::cmd("XADD")
                .arg(&self.key)
                .arg("*")
                .arg("id")
                .arg(&message.id)
                .arg("origin")
                .arg(&message.origin)
                .arg("reason")
                .arg(reason)
                .arg("deliveries")
                .arg(message.deliveries)
                .arg("data")
                .arg(&message.payload)
                .query_async(&mut connection)
                .await;
            match sent {
                Ok(_) => return true,
                Err(error) if triad_redis::is_unreachable(&error) => {
                    let waited = since.get_or_insert_with(Instant::now).elapsed();
                    if stop.load(Ordering::SeqCst) && waited > LAST_WAIT {
                        return false;
                    }
                    if pause.is_zero() {
                        metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    pause = triad_redis::backoff(pause);
                    tokio::time::sleep(pause).await;
                }
                Err(_) => return false,
            }
        }
    }
}

/// Runs the source `options` names until it is told to stop; gives the acknowledgements that
/// never reached Redis and the summary's reasons.
pub(crate) async fn run(options: &StreamOptions) -> Result<(u64, Vec<String>), StreamError> {
    let server = match options.metrics_address {
        Some(address) => Some(crate::http::serve(address, options.metrics.clone()).await?),
        None => None,
    };
    let control = triad_redis::connect(&options.redis).await?;
    let context = Arc::new(Context {
        sinks: Sinks::open(&options.sinks).await?,
        metrics: options.metrics.clone(),
        max_size: options.max_size,
        json: options.sinks.needs_json(),
        dead: options.dead_letter_key().map(|key| DeadLetters {
            connection: control.clone(),
            key,
        }),
        reasons: Mutex::new(Vec::new()),
        stop: options.stop.clone(),
    });
    if let Some(ready) = &options.ready {
        let _ = ready.send(());
    }
    let unacknowledged = match &options.source {
        Source::Group {
            stream,
            group,
            consumer,
        } => {
            let spec = group::GroupSpec {
                stream: stream.clone(),
                group: group.clone(),
                consumer: consumer.clone(),
                concurrency: options.concurrency,
                max_deliveries: options.max_deliveries,
                claim_idle: options.claim_idle,
            };
            group::run(context.clone(), &options.redis, control, spec).await?
        }
        Source::PubSub { channels, patterns } => {
            pubsub::run(
                context.clone(),
                &options.redis,
                channels,
                patterns,
                options.concurrency,
                options.buffer,
            )
            .await?;
            0
        }
    };
    if let Some(server) = server {
        server.abort();
    }
    let reasons = context
        .reasons
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(mut context) = Arc::into_inner(context) {
        context.sinks.close();
    }
    Ok((unacknowledged, reasons))
}
