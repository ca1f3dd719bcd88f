//! `triad stream produce`: a load generator. It sends `count` timestamped JSON payloads
//! (`{"seq":N,"ts":MICROSECONDS,"pad":"…"}`, padded to `size` bytes) to a stream (`XADD`, the
//! payload in the `data` field) or a channel (`PUBLISH`), at a fixed rate or as fast as
//! Redis takes them. Commands go in pipelines: at a fixed rate, every millisecond sends what
//! is due by then. Redis going away is waited out: what it did not confirm is sent again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::StreamError;
use crate::message::{DATA_FIELD, now_us};

/// Where produced messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A stream key (`XADD`).
    Stream(String),
    /// A channel (`PUBLISH`).
    Channel(String),
}

/// What to produce.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// `redis://…`.
    pub redis: String,
    /// Where.
    pub target: Target,
    /// Messages per second; `None` as fast as possible.
    pub rate: Option<u64>,
    /// How many.
    pub count: u64,
    /// Each payload's size in bytes (at least what the fields need).
    pub size: usize,
    /// The first sequence number.
    pub first: u64,
    /// Set it to stop early.
    pub stop: Arc<AtomicBool>,
}

/// What was produced.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ProduceSummary {
    /// Messages sent.
    pub sent: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// For a channel: how many subscribers received messages, summed over messages (Redis's
    /// answer to each PUBLISH).
    pub deliveries: u64,
}

/// The most commands in one pipeline.
const MOST_PER_PIPELINE: u64 = 500;

/// Sends what `options` says; see the module doc.
pub fn produce(options: &ProduceOptions) -> Result<ProduceSummary, StreamError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| StreamError::Usage(format!("cannot start the event loop: {error}")))?;
    runtime.block_on(produce_async(options))
}

async fn produce_async(options: &ProduceOptions) -> Result<ProduceSummary, StreamError> {
    if options.rate == Some(0) {
        return Err(StreamError::Usage("--rate must be at least 1".into()));
    }
    let mut connection = triad_redis::connect(&options.redis).await?;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut deliveries = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < options.count && !options.stop.load(Ordering::SeqCst) {
        let due = match options.rate {
            None => options.count,
            Some(rate) => {
                ticker.tick().await;
                ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(options.count)
            }
        };
        let batch = due.saturating_sub(sent).min(MOST_PER_PIPELINE);
        if batch == 0 {
            continue;
        }
        let mut pipeline = redis::pipe();
        for sequence in sent..sent + batch {
            let payload = payload(options.first + sequence, options.size);
            match &options.target {
                Target::Stream(key) => {
                    pipeline
                        .cmd("XADD")
                        .arg(key)
                        .arg("*")
                        .arg(DATA_FIELD)
                        .arg(payload);
                }
                Target::Channel(channel) => {
                    pipeline.cmd("PUBLISH").arg(channel).arg(payload);
                }
            }
        }
        let replies = send(&mut connection, &pipeline, &options.stop).await?;
        for reply in replies {
            if let redis::Value::Int(subscribers) = reply {
                deliveries += subscribers.max(0) as u64;
            }
        }
        sent += batch;
    }
    Ok(ProduceSummary {
        sent,
        seconds: started.elapsed().as_secs_f64(),
        deliveries,
    })
}

/// Sends one pipeline, waiting out Redis going away (with backoff, until `stop`): a pipeline
/// whose replies never came is sent again, so a message may be added twice across a restart
/// (at-least-once, as every producer that cannot see whether its write landed).
async fn send(
    connection: &mut redis::aio::ConnectionManager,
    pipeline: &redis::Pipeline,
    stop: &AtomicBool,
) -> Result<Vec<redis::Value>, StreamError> {
    let mut pause = Duration::ZERO;
    loop {
        match pipeline.query_async(connection).await {
            Ok(replies) => return Ok(replies),
            Err(error) if triad_redis::is_unreachable(&error) && !stop.load(Ordering::SeqCst) => {
                pause = triad_redis::backoff(pause);
                tokio::time::sleep(pause).await;
            }
            Err(source) => {
                return Err(StreamError::Refused {
                    what: "the produced messages".into(),
                    source,
                });
            }
        }
    }
}

/// One payload: `{"seq":N,"ts":US,"pad":"xxx"}`, padded to `size` bytes when that is more.
pub(crate) fn payload(sequence: u64, size: usize) -> String {
    let head = format!("{{\"seq\":{sequence},\"ts\":{},\"pad\":\"", now_us());
    let pad = size.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_json_of_the_size_asked() {
        let text = payload(7, 200);
        assert_eq!(text.len(), 200);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["seq"], 7);
        assert!(value["ts"].as_u64().unwrap() > 1_600_000_000_000_000);
        assert!(
            payload(7, 0).len() < 60,
            "no padding when the size is small"
        );
    }
}
