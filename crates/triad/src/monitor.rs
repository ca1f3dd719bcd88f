//! The seed's `performance_monitor` (§8.3): every call of a watched function is timed, logged
//! through `tracing`, counted by its *kind* ("io", "cpu", …), and, when a [`Recorder`] is set,
//! recorded as a [`Span`](crate::Span).
//!
//! Mark a function with `#[triad::monitor(kind = "io")]` (sync or `async`); a call that
//! returns `Err` or panics counts as a failure. [`summary`] gives, per kind, the calls, their
//! total time, the 50th and 99th percentiles and the failures; [`write_summary`] prints it as a
//! table. The pipeline's stages record their items the same way, under the stage's kind.
//!
//! Percentiles come from a log-linear histogram per kind (16 buckets per power of two, so a
//! reported percentile is within about 6% of the true one), which keeps the cost of a call
//! constant and the memory fixed however many calls are made.
//!
//! ```
//! #[triad::monitor(kind = "cpu")]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! #[triad::monitor(kind = "io")]
//! fn read(path: &str) -> std::io::Result<String> {
//!     std::fs::read_to_string(path)
//! }
//!
//! square(3);
//! let _ = read("/no/such/file");
//! let summary = triad::monitor::summary();
//! let io = summary.iter().find(|kind| kind.kind == "io").unwrap();
//! assert_eq!((io.calls, io.failures), (1, 1));
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::trace::{Place, Recorder, now_ns};

/// Sub-buckets per power of two in the histograms.
const SUB_BUCKETS: u64 = 16;
/// Powers of two covered: up to 2^40 ns, about 18 minutes; longer calls land in the last.
const POWERS: usize = 41;

/// A histogram of durations in nanoseconds, log-linear.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; POWERS * SUB_BUCKETS as usize],
        }
    }

    fn bucket(ns: u64) -> usize {
        if ns < SUB_BUCKETS {
            return ns as usize;
        }
        let power = 63 - ns.leading_zeros() as u64; // ns >= 16, so power >= 4
        let sub = (ns >> (power - 4)) & (SUB_BUCKETS - 1);
        let bucket = (power - 3) * SUB_BUCKETS + sub;
        (bucket as usize).min(POWERS * SUB_BUCKETS as usize - 1)
    }

    /// The smallest duration that lands in `bucket`.
    fn floor(bucket: usize) -> u64 {
        let bucket = bucket as u64;
        if bucket < SUB_BUCKETS {
            return bucket;
        }
        let power = bucket / SUB_BUCKETS + 3;
        let sub = bucket % SUB_BUCKETS;
        (SUB_BUCKETS + sub) << (power - 4)
    }

    fn add(&mut self, ns: u64) {
        self.counts[Self::bucket(ns)] += 1;
    }

    /// The duration below which `fraction` of the calls fall (the middle of its bucket).
    fn quantile(&self, fraction: f64) -> Duration {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((fraction * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let low = Self::floor(bucket);
                let high = Self::floor(bucket + 1).max(low + 1);
                return Duration::from_nanos(low + (high - low) / 2);
            }
        }
        Duration::from_nanos(Self::floor(self.counts.len() - 1))
    }
}

#[derive(Debug, Clone)]
struct Stats {
    calls: u64,
    failures: u64,
    total_ns: u128,
    histogram: Histogram,
}

/// One kind's figures, as [`summary`] gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct KindSummary {
    /// The kind, as the attribute or the stage named it.
    pub kind: String,
    /// Calls (or stage items) counted.
    pub calls: u64,
    /// Of them, those that returned `Err` or panicked.
    pub failures: u64,
    /// Their total time.
    pub total: Duration,
    /// The median call's time.
    pub p50: Duration,
    /// The 99th percentile's.
    pub p99: Duration,
}

fn table() -> &'static Mutex<BTreeMap<String, Stats>> {
    static TABLE: OnceLock<Mutex<BTreeMap<String, Stats>>> = OnceLock::new();
    TABLE.get_or_init(Mutex::default)
}

fn recorder_slot() -> &'static Mutex<Option<Arc<Recorder>>> {
    static RECORDER: Mutex<Option<Arc<Recorder>>> = Mutex::new(None);
    &RECORDER
}

/// Records every monitored call from now on as a span in `recorder` (or stops, with `None`).
pub fn set_recorder(recorder: Option<Arc<Recorder>>) {
    *recorder_slot()
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = recorder;
}

/// Counts one call of `kind` that took `elapsed`.
pub(crate) fn count(kind: &str, elapsed: Duration, failed: bool) {
    let mut table = table().lock().unwrap_or_else(PoisonError::into_inner);
    let stats = match table.get_mut(kind) {
        Some(stats) => stats,
        None => table.entry(kind.to_owned()).or_insert_with(|| Stats {
            calls: 0,
            failures: 0,
            total_ns: 0,
            histogram: Histogram::new(),
        }),
    };
    stats.calls += 1;
    stats.failures += u64::from(failed);
    let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    stats.total_ns += u128::from(ns);
    stats.histogram.add(ns);
}

/// Every kind's figures so far, by kind.
pub fn summary() -> Vec<KindSummary> {
    let table = table().lock().unwrap_or_else(PoisonError::into_inner);
    table
        .iter()
        .map(|(kind, stats)| KindSummary {
            kind: kind.clone(),
            calls: stats.calls,
            failures: stats.failures,
            total: Duration::from_nanos(u64::try_from(stats.total_ns).unwrap_or(u64::MAX)),
            p50: stats.histogram.quantile(0.50),
            p99: stats.histogram.quantile(0.99),
        })
        .collect()
}

/// Forgets every figure (for a fresh measurement).
pub fn reset() {
    table()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
}

/// Writes [`summary`] as a table: kind, calls, failures, total, p50, p99.
pub fn write_summary(out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<12} {:>10} {:>9} {:>12} {:>12} {:>12}",
        "kind", "calls", "failures", "total", "p50", "p99"
    )?;
    for kind in summary() {
        writeln!(
            out,
            "{:<12} {:>10} {:>9} {:>12.3?} {:>12.3?} {:>12.3?}",
            kind.kind, kind.calls, kind.failures, kind.total, kind.p50, kind.p99
        )?;
    }
    Ok(())
}

/// One monitored call in progress; `#[triad::monitor]` makes one per call. Finishing it counts
/// the call; dropping it unfinished (a panic unwinding through) counts a failure.
#[derive(Debug)]
pub struct Call {
    kind: &'static str,
    name: &'static str,
    place: Place,
    start_ns: u64,
    finished: bool,
}

impl Call {
    /// Starts timing a call of `name`, of `kind`.
    pub fn start(kind: &'static str, name: &'static str) -> Self {
        Call {
            kind,
            name,
            place: Place::here(),
            start_ns: now_ns(),
            finished: false,
        }
    }

    /// The call returned; `failed` when it returned an error.
    pub fn finish(mut self, failed: bool) {
        self.finished = true;
        self.end(failed);
    }

    fn end(&self, failed: bool) {
        let end_ns = now_ns();
        let elapsed = Duration::from_nanos(end_ns.saturating_sub(self.start_ns));
        count(self.kind, elapsed, failed);
        if failed {
            tracing::warn!(
                kind = self.kind,
                call = self.name,
                ?elapsed,
                "monitored call failed"
            );
        } else {
            tracing::debug!(
                kind = self.kind,
                call = self.name,
                ?elapsed,
                "monitored call"
            );
        }
        let recorder = recorder_slot()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(recorder) = recorder {
            let name = format!("{}: {}", self.kind, self.name);
            recorder.finish(name, 0, self.place, self.start_ns);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            self.end(true);
        }
    }
}

/// Whether a monitored function's result is a failure: `Err` for a `Result`, never otherwise.
/// `#[triad::monitor]` calls `(&result).failed()`; the trait for `Result` is picked before the
/// fallback for every other type, as a method on `&Result` needs no extra reference.
#[doc(hidden)]
pub trait ResultFailed {
    /// Whether it is an `Err`.
    fn failed(&self) -> bool;
}

impl<T, E> ResultFailed for Result<T, E> {
    fn failed(&self) -> bool {
        self.is_err()
    }
}

/// The fallback of [`ResultFailed`]: any other value is a success.
#[doc(hidden)]
pub trait NotAResult {
    /// Always false.
    fn failed(&self) -> bool;
}

impl<T> NotAResult for &T {
    fn failed(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_finds_percentiles_within_its_resolution() {
        let mut histogram = Histogram::new();
        for ns in 1..=10_000_u64 {
            histogram.add(ns * 1000);
        }
        let p50 = histogram.quantile(0.5).as_nanos() as f64;
        let p99 = histogram.quantile(0.99).as_nanos() as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.07, "{p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.07, "{p99}");
        assert_eq!(Histogram::new().quantile(0.5), Duration::ZERO);
    }

    #[test]
    fn buckets_are_ordered_and_floors_invert_them() {
        let mut last = 0;
        for ns in [0, 1, 15, 16, 17, 31, 32, 1000, 1 << 20, 1 << 39, u64::MAX] {
            let bucket = Histogram::bucket(ns);
            assert!(bucket >= last, "{ns}");
            last = bucket;
            if ns < 1 << 40 {
                assert!(Histogram::floor(bucket) <= ns, "{ns}");
                assert!(Histogram::floor(bucket + 1) > ns, "{ns}");
            }
        }
    }

    #[test]
    // The borrow is the point: it is what the attribute writes to pick the trait.
    #[allow(clippy::needless_borrow)]
    fn results_fail_on_err_and_other_values_never() {
        let ok: Result<u8, ()> = Ok(1);
        let err: Result<u8, ()> = Err(());
        assert!(!(&ok).failed());
        assert!((&err).failed());
        assert!(!(&5_u8).failed());
    }
}
