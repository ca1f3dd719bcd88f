//! What the compute experiments (`cpu-bound`, `io-bound`, `gil`) share beyond
//! [`findings`](super::findings): speed-ups with their spread, values labelled by language and
//! workload, verdicts over labelled values, and labelled values as evidence.

use super::findings;
use crate::results::{Implementation, Outcome, Point, Verdict};
use crate::stats::Summary;

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

/// `(label, value)` of `measure` for every language of `implementations` and every one of
/// `workloads` it gives a value for, labelled by both, such as `CPython count_primes`.
pub(crate) fn per_language_and_workload<W: Copy>(
    implementations: &[Implementation],
    workloads: &[W],
    workload_name: impl Fn(W) -> &'static str,
    mut measure: impl FnMut(Implementation, W) -> Option<f64>,
) -> Vec<(String, f64)> {
    let mut found = Vec::new();
    for &implementation in implementations {
        for &workload in workloads {
            if let Some(value) = measure(implementation, workload) {
                let language = findings::name(implementation);
                found.push((format!("{language} {}", workload_name(workload)), value));
            }
        }
    }
    found
}

/// A verdict on the seed's claim (in English) and its `quote` (its own words).
pub(crate) fn verdict(claim: &str, quote: &str, outcome: Outcome, evidence: String) -> Verdict {
    Verdict {
        claim: claim.to_owned(),
        quote: quote.to_owned(),
        outcome,
        evidence,
    }
}

/// [`Outcome::from_checks`] of the check `holds` on every labelled value.
pub(crate) fn outcome_where(values: &[(String, f64)], holds: impl Fn(f64) -> bool) -> Outcome {
    Outcome::from_checks(values.iter().map(|(_, v)| holds(*v)))
}

/// Labelled values as evidence: `label value, label value`.
pub(crate) fn listed(values: &[(String, f64)], format: impl Fn(f64) -> String) -> String {
    values
        .iter()
        .map(|(label, value)| format!("{label} {}", format(*value)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_values_are_judged_and_listed() {
        let values = [("a".to_owned(), 1.0), ("b".to_owned(), 3.0)];
        assert_eq!(outcome_where(&values, |v| v > 2.0), Outcome::Depends);
        assert_eq!(outcome_where(&values, |v| v > 0.5), Outcome::Confirmed);
        assert_eq!(listed(&values, times), "a 1.00×, b 3.00×");
    }

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
        assert_eq!(times(1.934), "1.93×");
    }
}
