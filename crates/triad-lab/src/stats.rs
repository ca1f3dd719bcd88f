//! Medians and spreads of samples, timing one run, and the formats figures are printed in.
//!
//! The lab quotes medians with their interquartile range: on a shared, noisy machine a mean is
//! pulled by the one sample that a neighbour's burst slowed down, a median is not.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Median and spread of a set of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// The middle sample (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The first quartile.
    pub p25: f64,
    /// The third quartile.
    pub p75: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// The arithmetic mean.
    pub mean: f64,
}

impl Summary {
    /// Summarises `samples`; all zero for an empty slice. NaNs sort last.
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        Self {
            n,
            median: quantile(&sorted, 0.5),
            p25: quantile(&sorted, 0.25),
            p75: quantile(&sorted, 0.75),
            min: sorted[0],
            max: sorted[n - 1],
            mean: sorted.iter().sum::<f64>() / n as f64,
        }
    }

    /// Every figure multiplied by `factor` (a change of unit: seconds to milliseconds is 1e3).
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            n: self.n,
            median: self.median * factor,
            p25: self.p25 * factor,
            p75: self.p75 * factor,
            min: self.min * factor,
            max: self.max * factor,
            mean: self.mean * factor,
        }
    }

    /// The interquartile range relative to the median, such as 0.05 for ±5 %.
    pub fn relative_spread(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.p75 - self.p25) / self.median.abs()
        }
    }
}

/// Linear interpolation between the closest ranks of a sorted, non-empty slice.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let weight = position - below as f64;
    sorted[below] * (1.0 - weight) + sorted[above] * weight
}

/// Times `body` once and returns its result with the wall time in seconds.
pub fn timed<R>(body: impl FnOnce() -> R) -> (R, f64) {
    let start = Instant::now();
    let result = body();
    (result, start.elapsed().as_secs_f64())
}

/// Formats a duration given in seconds with a unit that keeps 3 significant digits.
pub fn format_seconds(seconds: f64) -> String {
    let magnitude = seconds.abs();
    if magnitude >= 1.0 {
        format!("{seconds:.3} s")
    } else if magnitude >= 1e-3 {
        format!("{:.3} ms", seconds * 1e3)
    } else if magnitude >= 1e-6 {
        format!("{:.3} µs", seconds * 1e6)
    } else {
        format!("{:.1} ns", seconds * 1e9)
    }
}

/// Formats a byte count with a binary unit.
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats a median with its interquartile spread, such as `1.203 ms ±4%`.
pub fn format_with_spread(summary: &Summary, format: impl Fn(f64) -> String) -> String {
    format!(
        "{} ±{:.0}%",
        format(summary.median),
        summary.relative_spread() * 50.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn summary_of_known_samples() {
        let summary = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(summary.n, 5);
        assert_eq!(summary.median, 3.0);
        assert_eq!(summary.p25, 2.0);
        assert_eq!(summary.p75, 4.0);
        assert_eq!((summary.min, summary.max, summary.mean), (1.0, 5.0, 3.0));
        assert_eq!(Summary::of(&[1.0, 2.0]).median, 1.5);
        assert_eq!(Summary::of(&[]).n, 0);
        let ms = summary.scaled(1e3);
        assert_eq!((ms.median, ms.p25, ms.max, ms.n), (3e3, 2e3, 5e3, 5));
    }

    #[test]
    fn units_are_chosen_by_magnitude() {
        assert_eq!(format_seconds(2.5), "2.500 s");
        assert_eq!(format_seconds(0.0025), "2.500 ms");
        assert_eq!(format_seconds(2.5e-6), "2.500 µs");
        assert_eq!(format_seconds(2.5e-8), "25.0 ns");
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(8.0 * 1024.0 * 1024.0), "8.0 MiB");
    }

    proptest! {
        #[test]
        fn quartiles_are_ordered_and_inside_the_range(
            samples in proptest::collection::vec(-1e9f64..1e9, 1..200)
        ) {
            let s = Summary::of(&samples);
            prop_assert!(s.min <= s.p25 && s.p25 <= s.median);
            prop_assert!(s.median <= s.p75 && s.p75 <= s.max);
            prop_assert!(s.min <= s.mean && s.mean <= s.max);
        }
    }
}
