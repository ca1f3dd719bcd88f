//! What the judge steps share: the verdict on one of the seed's claims, [`Checks`] of a claim
//! against every implementation or variant measured (all hold: confirmed; none: refuted; some:
//! depends), the ratio of two measurements, and labelled values as evidence.
//!
//! A verdict that compares two measurements takes their [`ratio`] from the two summaries
//! (medians and quartiles), and one over several cases goes through [`Checks`] or
//! [`outcome_where`]: those are the places where a rule that weighs the samples' spread (a
//! difference inside the noise) decides, for every experiment at once.

use crate::results::{Outcome, Verdict};
use crate::stats::Summary;

/// The verdict on `claim` (English), the seed's own words being `quote`.
pub(crate) fn verdict(
    claim: impl Into<String>,
    quote: &str,
    outcome: Outcome,
    evidence: impl Into<String>,
) -> Verdict {
    Verdict {
        claim: claim.into(),
        quote: quote.to_owned(),
        outcome,
        evidence: evidence.into(),
    }
}

/// How many times `numerator`'s median is `denominator`'s: a speed-up is
/// `ratio(serial, parallel)`, a slowdown `ratio(slow, fast)`.
pub(crate) fn ratio(numerator: &Summary, denominator: &Summary) -> f64 {
    numerator.median / denominator.median
}

/// A ratio or speed-up as printed: `1.93×`.
pub(crate) fn times(ratio: f64) -> String {
    format!("{ratio:.2}×")
}

/// A claim checked against each implementation (or variant) measured: confirmed when every
/// check holds, refuted when none does, depends when some do.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    items: Vec<(String, bool)>,
}

impl Checks {
    /// Adds one check: what was measured (with its value) and whether the claim holds for it.
    pub(crate) fn check(&mut self, measured: impl Into<String>, holds: bool) {
        self.items.push((measured.into(), holds));
    }

    /// Confirmed, refuted or depends, as the checks say (depends when there are none).
    pub(crate) fn outcome(&self) -> Outcome {
        Outcome::from_checks(self.items.iter().map(|(_, holds)| *holds))
    }

    /// Every check, with whether the claim holds for it.
    pub(crate) fn evidence(&self) -> String {
        if self.items.is_empty() {
            return "nothing was measured".to_owned();
        }
        self.items
            .iter()
            .map(|(measured, holds)| {
                format!(
                    "{measured} ({})",
                    if *holds { "agrees" } else { "disagrees" }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The verdict on `claim` (the seed's words: `quote`).
    pub(crate) fn verdict(&self, claim: impl Into<String>, quote: &str) -> Verdict {
        verdict(claim, quote, self.outcome(), self.evidence())
    }
}

/// A claim that holds when a measured value reaches `threshold`: confirmed when every value
/// does, refuted when none does, depends when some do (or when nothing was measured).
pub(crate) fn outcome_by_threshold(values: &[f64], threshold: f64) -> Outcome {
    Outcome::from_checks(values.iter().map(|v| *v >= threshold))
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
    fn checks_give_the_outcome_of_all_none_or_some() {
        let mut checks = Checks::default();
        assert_eq!(checks.outcome(), Outcome::Depends);
        assert_eq!(checks.evidence(), "nothing was measured");
        checks.check("a 1 µs", true);
        assert_eq!(checks.outcome(), Outcome::Confirmed);
        checks.check("b 9 µs", false);
        assert_eq!(checks.outcome(), Outcome::Depends);
        assert_eq!(checks.evidence(), "a 1 µs (agrees); b 9 µs (disagrees)");
        let mut none = Checks::default();
        none.check("c", false);
        let verdict = none.verdict("claim", "quote");
        assert_eq!(
            (verdict.outcome, verdict.claim.as_str()),
            (Outcome::Refuted, "claim")
        );
    }

    #[test]
    fn thresholds_and_labelled_values() {
        assert_eq!(outcome_by_threshold(&[2.0, 3.0], 2.0), Outcome::Confirmed);
        assert_eq!(outcome_by_threshold(&[1.0, 1.5], 2.0), Outcome::Refuted);
        assert_eq!(outcome_by_threshold(&[1.0, 3.0], 2.0), Outcome::Depends);
        assert_eq!(outcome_by_threshold(&[], 2.0), Outcome::Depends);
        let values = [("a".to_owned(), 1.0), ("b".to_owned(), 3.0)];
        assert_eq!(outcome_where(&values, |v| v > 2.0), Outcome::Depends);
        assert_eq!(outcome_where(&values, |v| v > 0.5), Outcome::Confirmed);
        assert_eq!(listed(&values, times), "a 1.00×, b 3.00×");
    }

    #[test]
    fn ratios_are_of_medians() {
        let slow = Summary::of(&[2.0, 4.0, 9.0]);
        let fast = Summary::of(&[1.0, 2.0, 3.0]);
        assert_eq!(ratio(&slow, &fast), 2.0);
        assert_eq!(times(1.934), "1.93×");
    }
}
