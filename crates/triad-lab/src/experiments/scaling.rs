//! What the compute experiments (`cpu-bound`, `io-bound`, `gil`) share: speed-ups with their
//! spread, the rule that turns several checks into one verdict, and the lookup of a measurement
//! by its name and parameters.

use crate::results::{Measurement, Outcome, Point};
use crate::stats::Summary;

/// A note for a report whose CPython column is empty because the lab ran without `python3`.
pub(crate) const NO_PYTHON: &str =
    "The CPython column is empty: this lab ran without python3, so only Rust was measured.";

/// How many times faster `run` is than `baseline` (median over median).
pub(crate) fn speedup(baseline: &Summary, run: &Summary) -> f64 {
    baseline.median / run.median
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

/// A speed-up or ratio as printed: `1.93×`.
pub(crate) fn times(ratio: f64) -> String {
    format!("{ratio:.2}×")
}

/// One verdict from several checks of one claim: confirmed when every check holds, refuted
/// when none does, depends when they disagree (or there was nothing to check).
pub(crate) fn outcome_of(checks: &[bool]) -> Outcome {
    if checks.is_empty() {
        Outcome::Depends
    } else if checks.iter().all(|held| *held) {
        Outcome::Confirmed
    } else if checks.iter().all(|held| !held) {
        Outcome::Refuted
    } else {
        Outcome::Depends
    }
}

/// The measurement called `name` whose parameters include every `(key, value)` given.
pub(crate) fn find<'a>(
    measurements: &'a [Measurement],
    name: &str,
    params: &[(&str, serde_json::Value)],
) -> Option<&'a Measurement> {
    measurements.iter().find(|m| {
        m.name == name
            && params
                .iter()
                .all(|(key, value)| m.params.get(*key) == Some(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Implementation;

    #[test]
    fn checks_become_one_outcome() {
        assert_eq!(outcome_of(&[true, true]), Outcome::Confirmed);
        assert_eq!(outcome_of(&[false, false]), Outcome::Refuted);
        assert_eq!(outcome_of(&[true, false]), Outcome::Depends);
        assert_eq!(outcome_of(&[]), Outcome::Depends);
    }

    #[test]
    fn speedups_carry_the_spread_the_right_way_round() {
        let baseline = Summary::of(&[2.0, 2.0, 2.0]);
        let run = Summary::of(&[0.9, 1.0, 1.1]);
        let point = speedup_point(3.0, &baseline, &run);
        assert_eq!(point.y, 2.0);
        assert!(point.low.unwrap() < point.y && point.y < point.high.unwrap());
        assert_eq!(times(1.934), "1.93×");
    }

    #[test]
    fn measurements_are_found_by_name_and_parameters() {
        let all = [
            Measurement::new("threads", Implementation::Rust, "s", vec![1.0]).param("workers", 2),
            Measurement::new("threads", Implementation::Rust, "s", vec![2.0]).param("workers", 4),
        ];
        let found = find(&all, "threads", &[("workers", 4.into())]).unwrap();
        assert_eq!(found.samples, vec![2.0]);
        assert!(find(&all, "threads", &[("workers", 8.into())]).is_none());
        assert!(find(&all, "serial", &[]).is_none());
    }
}
