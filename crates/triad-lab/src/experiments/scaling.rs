//! What the compute experiments (`cpu-bound`, `io-bound`, `gil`) share: speed-ups with their
//! spread, the rule that turns several checks into one verdict, labelled values as evidence,
//! and the lookup of a measurement by its name and parameters.

use serde_json::Value;

use crate::results::{Implementation, Measurement, Outcome, Point, Verdict};
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

/// A verdict on the seed's claim (in English) and its `quote` (its own words).
pub(crate) fn verdict(claim: &str, quote: &str, outcome: Outcome, evidence: String) -> Verdict {
    Verdict {
        claim: claim.to_owned(),
        quote: quote.to_owned(),
        outcome,
        evidence,
    }
}

/// [`outcome_of`] the check `holds` on every labelled value.
pub(crate) fn outcome_where(values: &[(String, f64)], holds: impl Fn(f64) -> bool) -> Outcome {
    outcome_of(&values.iter().map(|(_, v)| holds(*v)).collect::<Vec<_>>())
}

/// Labelled values as evidence: `label value, label value`.
pub(crate) fn listed(values: &[(String, f64)], format: impl Fn(f64) -> String) -> String {
    values
        .iter()
        .map(|(label, value)| format!("{label} {}", format(*value)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The language's name in tables and evidence.
pub(crate) fn language(implementation: Implementation) -> &'static str {
    match implementation {
        Implementation::Rust => "Rust",
        Implementation::Python => "CPython",
    }
}

/// Rust, and CPython when it ran.
pub(crate) fn languages(python_ran: bool) -> Vec<Implementation> {
    let mut all = vec![Implementation::Rust];
    if python_ran {
        all.push(Implementation::Python);
    }
    all
}

/// The summary of `implementation`'s measurement called `name` with these parameters, among
/// Rust's measurements and, when it ran, CPython's.
pub(crate) fn summary_of<'a>(
    rust: &'a [Measurement],
    python: Option<&'a [Measurement]>,
    implementation: Implementation,
    name: &str,
    params: &[(&str, Value)],
) -> Option<&'a Summary> {
    let measurements = match implementation {
        Implementation::Rust => rust,
        Implementation::Python => python?,
    };
    find(measurements, name, params).map(|m| &m.summary)
}

/// The measurement called `name` whose parameters include every `(key, value)` given.
pub(crate) fn find<'a>(
    measurements: &'a [Measurement],
    name: &str,
    params: &[(&str, Value)],
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

    #[test]
    fn checks_become_one_outcome() {
        assert_eq!(outcome_of(&[true, true]), Outcome::Confirmed);
        assert_eq!(outcome_of(&[false, false]), Outcome::Refuted);
        assert_eq!(outcome_of(&[true, false]), Outcome::Depends);
        assert_eq!(outcome_of(&[]), Outcome::Depends);
    }

    #[test]
    fn labelled_values_are_judged_and_listed() {
        let values = [("a".to_owned(), 1.0), ("b".to_owned(), 3.0)];
        assert_eq!(outcome_where(&values, |v| v > 2.0), Outcome::Depends);
        assert_eq!(outcome_where(&values, |v| v > 0.5), Outcome::Confirmed);
        assert_eq!(listed(&values, times), "a 1.00×, b 3.00×");
        assert_eq!(languages(false), [Implementation::Rust]);
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
