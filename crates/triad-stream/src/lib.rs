//! `triad stream`: the seed's realtime processor (section 7.3) the way Redis Streams consumer
//! groups, Benthos or Faust would run it.
//!
//! - Sources: pub/sub channels and patterns (the seed's model: at-most-once, and said so; a
//!   bounded buffer stands before the handlers and what overflows it is counted as dropped),
//!   or a stream read through a consumer group (at-least-once: an entry is acknowledged only
//!   after every sink committed it; a consumer first takes back its own pending entries, and
//!   claims those idle past `claim_idle` from consumers that died; past `max_deliveries` an
//!   entry goes to a dead-letter stream with its reason). Several processes in one group
//!   share the stream.
//! - Handlers: at most `concurrency` messages in flight (the seed's missing semaphore); a
//!   stream is read only as far as there is room, so backpressure reaches Redis.
//! - Sinks ([`sink`]): SQLite (batched transactions, the message id as primary key: a
//!   redelivered message is a no-op, so the effect is exactly once), a webhook, and exec
//!   workers (`triad map --cmd`'s line protocol). Messages that arrive together are handled
//!   together, each with its own outcome.
//! - Redis going away is waited out with backoff (redis-rs's reconnecting
//!   `ConnectionManager`); a group's position lives in Redis, so nothing acknowledged-pending
//!   is lost. Setting `stop` (SIGINT, SIGTERM) stops the reading; what is in flight finishes,
//!   commits and is acknowledged.
//! - [`Metrics`]: counters, gauges and creation-to-commit latency, for a status line and a
//!   Prometheus endpoint ([`http`]).
//! - [`produce()`]: the load generator the tests and the benchmark use.

pub mod http;
pub mod message;
pub mod metrics;
mod produce;
pub mod sink;
mod source;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

pub use metrics::{Metrics, Snapshot};
pub use produce::{ProduceOptions, ProduceSummary, Target, produce};
pub use sink::{SinkSpec, SqliteError, SqliteSpec};

/// Where messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Pub/sub channels and patterns: at-most-once.
    PubSub {
        /// Channel names (SUBSCRIBE).
        channels: Vec<String>,
        /// Glob patterns (PSUBSCRIBE).
        patterns: Vec<String>,
    },
    /// A stream read by a consumer group: at-least-once.
    Group {
        /// The stream's key.
        stream: String,
        /// The group (made at the stream's start when it does not exist).
        group: String,
        /// This consumer's name in the group.
        consumer: String,
    },
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// `redis://HOST:PORT[/DB]`.
    pub redis: String,
    /// Where messages come from.
    pub source: Source,
    /// Messages in flight at most.
    pub concurrency: usize,
    /// Pub/sub: messages the buffer before the handlers holds.
    pub buffer: usize,
    /// What handlers do with a message.
    pub sinks: SinkSpec,
    /// The dead-letter stream (a group's default: `STREAM:dead`; pub/sub without it only
    /// counts them).
    pub dead_letter: Option<String>,
    /// Deliveries of one entry before it goes to the dead letters.
    pub max_deliveries: u64,
    /// How long an entry stays pending before another consumer may claim it.
    pub claim_idle: Duration,
    /// The largest payload taken, in bytes.
    pub max_size: usize,
    /// Where the Prometheus endpoint listens (`GET /metrics`).
    pub metrics_address: Option<SocketAddr>,
    /// Set it to stop: reading stops, what is in flight finishes.
    pub stop: Arc<AtomicBool>,
    /// The live figures (the caller may watch them while the run goes on).
    pub metrics: Arc<Metrics>,
    /// Told once Redis has answered and the sinks are open (so a start line printed then
    /// is never followed by a connection error).
    pub ready: Option<std::sync::mpsc::Sender<()>>,
}

impl StreamOptions {
    /// Options with the defaults: 256 in flight, a buffer of 10,000, 5 deliveries, 30 s
    /// claim idle time, 1 MiB payloads, no sink.
    pub fn new(redis: impl Into<String>, source: Source) -> StreamOptions {
        StreamOptions {
            redis: redis.into(),
            source,
            concurrency: 256,
            buffer: 10_000,
            sinks: SinkSpec::default(),
            dead_letter: None,
            max_deliveries: 5,
            claim_idle: Duration::from_secs(30),
            max_size: 1 << 20,
            metrics_address: None,
            stop: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(Metrics::new()),
            ready: None,
        }
    }

    /// The dead-letter stream this run writes to, if any.
    pub fn dead_letter_key(&self) -> Option<String> {
        match (&self.dead_letter, &self.source) {
            (Some(key), _) => Some(key.clone()),
            (None, Source::Group { stream, .. }) => Some(format!("{stream}:dead")),
            (None, Source::PubSub { .. }) => None,
        }
    }

    /// What the run promises, in one line (printed at start).
    pub fn describe(&self) -> String {
        let sinks = self.sinks.describe();
        match &self.source {
            Source::PubSub { channels, patterns } => {
                let mut names: Vec<String> = channels.clone();
                names.extend(patterns.iter().map(|pattern| format!("pattern {pattern}")));
                format!(
                    "pub/sub {} on {}: at-most-once (Redis keeps nothing for a subscriber that \
                     is not listening, and a crash loses what is in flight); up to {} in flight, \
                     a buffer of {} before them, overflow counted as dropped; {sinks}",
                    names.join(", "),
                    self.redis,
                    self.concurrency,
                    self.buffer
                )
            }
            Source::Group {
                stream,
                group,
                consumer,
            } => format!(
                "stream {stream}, group {group}, consumer {consumer} on {}: at-least-once (acked \
                 after the sinks commit; pending entries idle {:?} are claimed); up to {} in \
                 flight; dead letters to {} after {} deliveries; {sinks}",
                self.redis,
                self.claim_idle,
                self.concurrency,
                self.dead_letter_key().unwrap_or_default(),
                self.max_deliveries
            ),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The final figures.
    pub metrics: Snapshot,
    /// Acknowledgements that could not reach Redis before the end (those entries will be
    /// delivered again; the SQLite sink makes that a no-op).
    pub unacknowledged: u64,
    /// The first few reasons messages went to the dead letters or failed.
    pub reasons: Vec<String>,
    /// How long it ran.
    pub wall: Duration,
}

/// Why a run could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The options cannot work.
    #[error("{0}")]
    Usage(String),
    /// Redis could not be reached at start, or the URL is wrong.
    #[error(transparent)]
    Connect(#[from] triad_redis::Error),
    /// Redis refused a command for good (a key of the wrong type, say).
    #[error("Redis refused {what}: {source}")]
    Refused {
        /// The command.
        what: String,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
    /// The SQLite sink cannot be used.
    #[error(transparent)]
    Sqlite(#[from] SqliteError),
    /// The metrics endpoint cannot listen.
    #[error("the metrics endpoint cannot listen on {address}: {source}")]
    Metrics {
        /// Where.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl StreamError {
    /// Whether the command line is to blame (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StreamError::Usage(_)
                | StreamError::Sqlite(SqliteError::Table(_))
                | StreamError::Connect(triad_redis::Error::Url { .. })
        )
    }
}

/// Runs the processor until `options.stop` is set (or the source fails for good).
pub fn run(options: StreamOptions) -> Result<Summary, StreamError> {
    if options.concurrency == 0 || options.buffer == 0 {
        return Err(StreamError::Usage(
            "--concurrency and --buffer must be at least 1".into(),
        ));
    }
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("triad-stream")
        .enable_all()
        .build()
        .map_err(|error| StreamError::Usage(format!("cannot start the event loop: {error}")))?;
    let outcome = runtime.block_on(source::run(&options));
    runtime.shutdown_timeout(Duration::from_secs(1));
    let (unacknowledged, reasons) = outcome?;
    Ok(Summary {
        metrics: options.metrics.snapshot(),
        unacknowledged,
        reasons,
        wall: started.elapsed(),
    })
}
