//! What the compute experiments (`cpu-bound`, `io-bound`, `gil`) share beyond
//! [`verdict`](crate::verdict): speed-ups with their spread, values labelled by language and
//! workload, and batch timings read back by workload, engine and count.

use std::marker::PhantomData;

use crate::findings::{Findings, Param};
use crate::names::Named;
use crate::results::{Implementation, Point};
use crate::stats::Summary;
use crate::verdict::{Ratio, ratio};

/// A speed-up below this is "none" (noise on a shared machine stays under it).
pub(crate) const NO_SPEEDUP: f64 = 1.3;
/// A parallel speed-up counts as real when it reaches this share of the ideal.
pub(crate) const PARALLEL_SHARE: f64 = 0.7;

/// Timings of batches, read back by language, workload `W`, engine `E` and a count: each
/// engine's measurements are named after it and carry the `workload` and a count parameter
/// (`workers` for CPU-bound batches, `n` for waits).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings<'a, W, E> {
    found: Findings<'a>,
    /// The name of the count parameter.
    count: &'static str,
    kinds: PhantomData<(W, E)>,
}

impl<'a, W: Named, E: Named> Timings<'a, W, E> {
    /// The timings among `found`, counted by the parameter `count`.
    pub(crate) fn new(found: Findings<'a>, count: &'static str) -> Self {
        Self {
            found,
            count,
            kinds: PhantomData,
        }
    }

    /// The parameters that place a batch of `workload` at `count`: for recording and lookup.
    pub(crate) fn params(
        count_key: &'static str,
        workload: W,
        count: usize,
    ) -> [Param<'static>; 2] {
        [
            ("workload", workload.name().into()),
            (count_key, count.into()),
        ]
    }

    /// The summary of `engine`'s batches of `workload` at `count`.
    pub(crate) fn summary(
        &self,
        implementation: Implementation,
        workload: W,
        engine: E,
        count: usize,
    ) -> Option<&'a Summary> {
        let params = Self::params(self.count, workload, count);
        self.found.summary(implementation, engine.name(), &params)
    }

    /// How many times faster `engine` ran `workload` at `count` than the `serial` engine did
    /// at `serial_count`.
    pub(crate) fn speedup(
        &self,
        implementation: Implementation,
        workload: W,
        (engine, count): (E, usize),
        (serial, serial_count): (E, usize),
    ) -> Option<f64> {
        let baseline = self.summary(implementation, workload, serial, serial_count)?;
        let run = self.summary(implementation, workload, engine, count)?;
        Some(speedup(baseline, run))
    }

    /// [`speedup`](Self::speedup) with the range the two measurements' quartiles allow.
    pub(crate) fn speedup_ratio(
        &self,
        implementation: Implementation,
        workload: W,
        (engine, count): (E, usize),
        (serial, serial_count): (E, usize),
    ) -> Option<Ratio> {
        let baseline = self.summary(implementation, workload, serial, serial_count)?;
        let run = self.summary(implementation, workload, engine, count)?;
        Some(Ratio::of(baseline, run))
    }

    /// `(label, value)` of `measure` for every language that ran and every workload it gives
    /// a value for.
    pub(crate) fn each<V>(
        &self,
        measure: impl FnMut(Implementation, W) -> Option<V>,
    ) -> Vec<(String, V)> {
        per_language_and_workload(&self.found.implementations(), W::all(), W::name, measure)
    }
}

/// How many times faster `run` is than `baseline` (median over median).
pub(crate) fn speedup(baseline: &Summary, run: &Summary) -> f64 {
    ratio(baseline, run)
}

/// A chart point at `x` for the speed-up of `run` over `baseline`, its error bar from `run`'s
/// quartiles.
pub(crate) fn speedup_point(x: f64, baseline: &Summary, run: &Summary) -> Point {
    Point {
        x,
        y: speedup(baseline, run),
        low: Some(baseline.median / run.p75),
        high: Some(baseline.median / run.p25),
    }
}

/// `(label, value)` of `measure` for every language of `implementations` and every one of
/// `workloads` it gives a value for, labelled by both, such as `CPython count_primes`.
pub(crate) fn per_language_and_workload<W: Copy, V>(
    implementations: &[Implementation],
    workloads: &[W],
    workload_name: impl Fn(W) -> &'static str,
    mut measure: impl FnMut(Implementation, W) -> Option<V>,
) -> Vec<(String, V)> {
    let mut found = Vec::new();
    for &implementation in implementations {
        for &workload in workloads {
            if let Some(value) = measure(implementation, workload) {
                let language = implementation.label();
                found.push((format!("{language} {}", workload_name(workload)), value));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_labelled_by_language_and_workload() {
        let values = per_language_and_workload(
            &[Implementation::Rust, Implementation::Python],
            &[1.0, 2.0],
            |w| if w == 1.0 { "one" } else { "two" },
            |implementation, w| (implementation == Implementation::Rust || w == 2.0).then_some(w),
        );
        let labels: Vec<&str> = values.iter().map(|(label, _)| label.as_str()).collect();
        assert_eq!(labels, ["Rust one", "Rust two", "CPython two"]);
        assert_eq!(values[2].1, 2.0);
    }

    #[test]
    fn speedups_carry_the_spread_the_right_way_round() {
        let baseline = Summary::of(&[2.0, 2.0, 2.0]);
        let run = Summary::of(&[0.9, 1.0, 1.1]);
        let point = speedup_point(3.0, &baseline, &run);
        assert_eq!(point.y, 2.0);
        assert!(point.low.unwrap() < point.y && point.y < point.high.unwrap());
    }
}
