//! The processor's figures, shared by the handlers, the status line and the Prometheus
//! endpoint: counters, two gauges, and the latency from a message's creation to its commit
//! (an HDR histogram for exact quantiles, and Prometheus's cumulative buckets beside it).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use hdrhistogram::Histogram;

/// The latency buckets' upper bounds, in seconds (Prometheus's `le`).
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Live figures of one run.
#[derive(Debug)]
pub struct Metrics {
    /// Messages taken from Redis.
    pub received: AtomicU64,
    /// Messages every sink committed (and, for a stream, then acknowledged).
    pub committed: AtomicU64,
    /// Handler failures (a stream's message stays pending and is delivered again).
    pub failed: AtomicU64,
    /// Messages sent to the dead letters.
    pub dead_lettered: AtomicU64,
    /// Pub/sub messages dropped because the buffer before the handlers was full.
    pub dropped: AtomicU64,
    /// Entries claimed again (own pending ones at start, idle ones of other consumers).
    pub redelivered: AtomicU64,
    /// Times a lost Redis connection was waited out.
    pub reconnects: AtomicU64,
    /// Messages being handled now.
    pub in_flight: AtomicI64,
    /// The group's pending entries (delivered, not acknowledged), as Redis last said; for
    /// pub/sub, the messages waiting in the buffer.
    pub pending: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
    started: Instant,
}

/// The figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Snapshot {
    /// See [`Metrics::received`].
    pub received: u64,
    /// See [`Metrics::committed`].
    pub committed: u64,
    /// See [`Metrics::failed`].
    pub failed: u64,
    /// See [`Metrics::dead_lettered`].
    pub dead_lettered: u64,
    /// See [`Metrics::dropped`].
    pub dropped: u64,
    /// See [`Metrics::redelivered`].
    pub redelivered: u64,
    /// See [`Metrics::reconnects`].
    pub reconnects: u64,
    /// See [`Metrics::in_flight`].
    pub in_flight: i64,
    /// See [`Metrics::pending`].
    pub pending: u64,
    /// Median latency from creation to commit, in seconds (0 before the first commit).
    pub latency_p50: f64,
    /// 99th percentile of the same.
    pub latency_p99: f64,
    /// The largest.
    pub latency_max: f64,
    /// Seconds since the run started.
    pub elapsed: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All zero, the clock started.
    pub fn new() -> Metrics {
        Metrics {
            received: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            pending: AtomicU64::new(0),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            ),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_us: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Counts commits, each of which took the latency given from its message's creation.
    pub fn record_commits(&self, latencies_us: impl IntoIterator<Item = u64>) {
        let mut histogram = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut count, mut sum) = (0, 0);
        for latency_us in latencies_us {
            histogram.saturating_record(latency_us.max(1));
            let seconds = latency_us as f64 / 1e6;
            // Each latency counts in its own bucket; the exposition adds them up.
            if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
                self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            }
            count += 1;
            sum += latency_us;
        }
        drop(histogram);
        self.committed.fetch_add(count, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(sum, Ordering::Relaxed);
        self.latency_count.fetch_add(count, Ordering::Relaxed);
    }

    /// The figures now.
    pub fn snapshot(&self) -> Snapshot {
        let (p50, p99, max) = {
            let histogram = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
            if histogram.is_empty() {
                (0, 0, 0)
            } else {
                (
                    histogram.value_at_quantile(0.5),
                    histogram.value_at_quantile(0.99),
                    histogram.max(),
                )
            }
        };
        Snapshot {
            received: self.received.load(Ordering::Relaxed),
            committed: self.committed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            latency_p50: p50 as f64 / 1e6,
            latency_p99: p99 as f64 / 1e6,
            latency_max: max as f64 / 1e6,
            elapsed: self.started.elapsed().as_secs_f64(),
        }
    }

    /// The figures in Prometheus's text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut text = String::new();
        let counters = [
            ("received", "Messages taken from Redis.", &self.received),
            (
                "committed",
                "Messages every sink committed.",
                &self.committed,
            ),
            (
                "failed",
                "Handler failures (a stream message is delivered again).",
                &self.failed,
            ),
            (
                "dead_lettered",
                "Messages sent to the dead letters.",
                &self.dead_lettered,
            ),
            (
                "dropped",
                "Pub/sub messages dropped: the buffer was full.",
                &self.dropped,
            ),
            (
                "redelivered",
                "Stream entries claimed again.",
                &self.redelivered,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                text,
                "# HELP triad_stream_messages_{name}_total {help}\n\
                 # TYPE triad_stream_messages_{name}_total counter\n\
                 triad_stream_messages_{name}_total {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            text,
            "# HELP triad_stream_redis_reconnects_total Times a lost Redis connection was waited out.\n\
             # TYPE triad_stream_redis_reconnects_total counter\n\
             triad_stream_redis_reconnects_total {}",
            self.reconnects.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            text,
            "# HELP triad_stream_in_flight_messages Messages being handled now.\n\
             # TYPE triad_stream_in_flight_messages gauge\n\
             triad_stream_in_flight_messages {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            text,
            "# HELP triad_stream_pending_messages Delivered and not yet acknowledged (pub/sub: buffered).\n\
             # TYPE triad_stream_pending_messages gauge\n\
             triad_stream_pending_messages {}",
            self.pending.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            text,
            "# HELP triad_stream_latency_seconds From a message's creation to its commit.\n\
             # TYPE triad_stream_latency_seconds histogram"
        );
        let count = self.latency_count.load(Ordering::Relaxed);
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                text,
                "triad_stream_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        // Read one after another while commits land: +Inf is never below a bucket.
        let count = count.max(cumulative);
        let _ = writeln!(
            text,
            "triad_stream_latency_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             triad_stream_latency_seconds_sum {}\n\
             triad_stream_latency_seconds_count {count}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_buckets_agree_with_what_was_recorded() {
        let metrics = Metrics::new();
        metrics.record_commits((1..=500u64).map(|latency_us| latency_us * 10)); // 10 us .. 10 ms
        metrics.record_commits((501..=1000u64).map(|latency_us| latency_us * 10));
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.committed, 1000);
        assert!(
            (snapshot.latency_p50 - 0.005).abs() < 0.0001,
            "{snapshot:?}"
        );
        assert!(
            (snapshot.latency_p99 - 0.0099).abs() < 0.0001,
            "{snapshot:?}"
        );
        let text = metrics.prometheus();
        assert!(text.contains("triad_stream_latency_seconds_bucket{le=\"0.001\"} 100\n"));
        assert!(text.contains("triad_stream_latency_seconds_bucket{le=\"0.01\"} 1000\n"));
        assert!(text.contains("triad_stream_latency_seconds_count 1000\n"));
        assert!(text.contains("triad_stream_messages_committed_total 1000\n"));
    }
}
