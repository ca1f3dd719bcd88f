//! What the judge steps share: the verdict on one of the seed's claims, [`Checks`] of a claim
//! against every implementation or variant measured (all hold: confirmed; none: refuted; all
//! inside the noise: within noise; a mixture: depends), the [`Ratio`] of two measurements with
//! the range their spread allows (and its [`Band`] against two lines, for claims with a middle
//! ground), and labelled values as evidence.
//!
//! **The noise rule.** A comparison that decides a verdict compares *ranges*, not medians: a
//! measurement's range is its interquartile range (p25 to p75 of its samples), and the ratio of
//! two measurements ranges from `a.p25 / b.p75` to `a.p75 / b.p25` ([`Ratio::of`]). A claim
//! such as "a is faster than b" or "the speed-up reaches 1.5×" holds when the whole range is on
//! its side of the line, fails when the whole range is on the other side, and is *within noise*
//! when the range straddles the line: the two quartile ranges overlap, so this machine cannot
//! tell them apart. A measurement of one sample has no spread, and its median decides.
//! `SCHEMA.md` states the same rule for readers of `results.json`.

use crate::results::{Finding, Outcome, Verdict};
use crate::stats::Summary;

/// The verdict on `claim` (English), the seed's own words being `quote` (as text: a row of the
/// seed's tables is named by its row and columns, see `clean_quote`).
pub(crate) fn verdict(
    claim: impl Into<String>,
    quote: &str,
    outcome: Outcome,
    evidence: impl Into<String>,
) -> Verdict {
    Verdict {
        claim: claim.into(),
        quote: crate::report::seed_table::clean_quote(quote),
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

/// The ratio of two measurements: of their medians, and the range their quartiles allow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ratio {
    /// Median over median.
    pub(crate) median: f64,
    /// The smallest the quartiles allow: `numerator.p25 / denominator.p75`.
    pub(crate) low: f64,
    /// The largest: `numerator.p75 / denominator.p25`.
    pub(crate) high: f64,
}

impl Ratio {
    /// `numerator ÷ denominator`, with the range of their interquartile ranges.
    pub(crate) fn of(numerator: &Summary, denominator: &Summary) -> Self {
        let divide = |a: f64, b: f64| if b == 0.0 { f64::INFINITY } else { a / b };
        Self {
            median: divide(numerator.median, denominator.median),
            low: divide(numerator.p25, denominator.p75),
            high: divide(numerator.p75, denominator.p25),
        }
    }

    /// One measurement as a ratio to 1: its median, within its interquartile range (for a
    /// claim about a value, such as "costs 5-10 µs").
    pub(crate) fn measured(summary: &Summary) -> Self {
        Self {
            median: summary.median,
            low: summary.p25,
            high: summary.p75,
        }
    }

    /// Whether the ratio is at least `line`: holds when its whole range is, fails when none of
    /// it is, within noise when the range straddles the line.
    pub(crate) fn at_least(self, line: f64) -> Finding {
        if self.low >= line {
            Finding::Holds
        } else if self.high < line {
            Finding::Fails
        } else {
            Finding::WithinNoise
        }
    }

    /// Whether the ratio is at most `line` (as [`at_least`](Self::at_least)).
    pub(crate) fn at_most(self, line: f64) -> Finding {
        if self.high <= line {
            Finding::Holds
        } else if self.low > line {
            Finding::Fails
        } else {
            Finding::WithinNoise
        }
    }

    /// Whether the ratio lies inside `range`: holds when its whole range does, fails when its
    /// range is wholly outside, within noise otherwise.
    pub(crate) fn inside(self, range: std::ops::RangeInclusive<f64>) -> Finding {
        if range.contains(&self.low) && range.contains(&self.high) {
            Finding::Holds
        } else if self.high < *range.start() || self.low > *range.end() {
            Finding::Fails
        } else {
            Finding::WithinNoise
        }
    }

    /// As printed: `1.93×`, with its range when there is one: `1.93× (1.81-2.05×)`.
    pub(crate) fn shown(self) -> String {
        if (self.high - self.low).abs() <= 1e-9 * self.median.abs() {
            times(self.median)
        } else {
            format!("{} ({:.2}-{:.2}×)", times(self.median), self.low, self.high)
        }
    }
}

/// Where a ratio's range lies against two lines, `low` below `high`: wholly under `low`, wholly
/// between them, wholly from `high` up, or across a line (within noise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Band {
    /// The whole range is below `low`.
    Below,
    /// The whole range is from `low` to under `high`.
    Between,
    /// The whole range is at least `high`.
    Above,
    /// The range straddles a line: this machine cannot tell which band.
    Straddles,
}

impl Ratio {
    /// The [`Band`] of this ratio's range against `low` and `high`.
    pub(crate) fn band(self, low: f64, high: f64) -> Band {
        if self.high < low {
            Band::Below
        } else if self.low >= high {
            Band::Above
        } else if self.low >= low && self.high < high {
            Band::Between
        } else {
            Band::Straddles
        }
    }

    /// The inverse ratio (a slowdown from a speed-up), its range inverted with it.
    pub(crate) fn inverse(self) -> Self {
        Self {
            median: 1.0 / self.median,
            low: 1.0 / self.high,
            high: 1.0 / self.low,
        }
    }
}

/// Whether `a` is smaller than `b` beyond the noise: holds when `a`'s upper quartile is below
/// `b`'s lower one, fails when `b`'s is below `a`'s, within noise when the ranges overlap.
pub(crate) fn smaller(a: &Summary, b: &Summary) -> Finding {
    let ratio = Ratio::of(a, b);
    if ratio.high < 1.0 {
        Finding::Holds
    } else if ratio.low > 1.0 {
        Finding::Fails
    } else if a.n <= 1 && b.n <= 1 {
        // No spread to go by: the values decide.
        Finding::from(a.median < b.median)
    } else {
        Finding::WithinNoise
    }
}

/// A claim checked against each implementation (or variant) measured: confirmed when every
/// check holds, refuted when none does, within noise when every one is inside the noise,
/// depends otherwise.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    items: Vec<(String, Finding)>,
}

impl Checks {
    /// Adds one check: what was measured (with its value) and whether the claim holds for it.
    pub(crate) fn check(&mut self, measured: impl Into<String>, holds: bool) {
        self.find(measured, Finding::from(holds));
    }

    /// Adds one check whose finding weighed the noise (see [`Ratio`], [`smaller`]).
    pub(crate) fn find(&mut self, measured: impl Into<String>, finding: Finding) {
        self.items.push((measured.into(), finding));
    }

    /// How many checks were added.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Confirmed, refuted, within noise or depends, as the checks say (depends when there are
    /// none).
    pub(crate) fn outcome(&self) -> Outcome {
        Outcome::from_findings(self.items.iter().map(|(_, finding)| *finding))
    }

    /// Every check, with whether the claim holds for it.
    pub(crate) fn evidence(&self) -> String {
        if self.items.is_empty() {
            return "nothing was measured".to_owned();
        }
        self.items
            .iter()
            .map(|(measured, finding)| {
                let word = match finding {
                    Finding::Holds => "agrees",
                    Finding::Fails => "disagrees",
                    Finding::WithinNoise => "within noise",
                };
                format!("{measured} ({word})")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The verdict on `claim` (the seed's words: `quote`).
    pub(crate) fn verdict(&self, claim: impl Into<String>, quote: &str) -> Verdict {
        verdict(claim, quote, self.outcome(), self.evidence())
    }
}

/// [`Outcome::from_findings`] of `finding` on every labelled ratio.
pub(crate) fn outcome_of(
    values: &[(String, Ratio)],
    finding: impl Fn(Ratio) -> Finding,
) -> Outcome {
    Outcome::from_findings(values.iter().map(|(_, r)| finding(*r)))
}

/// Labelled ratios as evidence, each with its range: `label 1.93× (1.80-2.01×), …`.
pub(crate) fn listed_ratios(values: &[(String, Ratio)]) -> String {
    values
        .iter()
        .map(|(label, ratio)| format!("{label} {}", ratio.shown()))
        .collect::<Vec<_>>()
        .join(", ")
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
    fn labelled_values_and_ratios() {
        let values = [("a".to_owned(), 1.0), ("b".to_owned(), 3.0)];
        assert_eq!(listed(&values, times), "a 1.00×, b 3.00×");
        let ratios = [
            ("a".to_owned(), Ratio::measured(&Summary::of(&[1.0, 1.2]))),
            ("b".to_owned(), Ratio::measured(&Summary::of(&[3.0]))),
        ];
        assert_eq!(outcome_of(&ratios, |r| r.at_least(2.0)), Outcome::Depends);
        assert_eq!(outcome_of(&ratios, |r| r.at_least(0.5)), Outcome::Confirmed);
        assert_eq!(
            outcome_of(&ratios[..1], |r| r.at_least(1.1)),
            Outcome::WithinNoise
        );
        assert_eq!(listed_ratios(&ratios), "a 1.10× (1.05-1.15×), b 3.00×");
    }

    #[test]
    fn overlapping_quartiles_are_within_noise() {
        // Two machines' worth of samples: 13 % apart, quartiles overlapping.
        let threads = Summary::of(&[2.2e-6, 2.3e-6, 2.345e-6, 2.6e-6, 2.9e-6]);
        let processes = Summary::of(&[2.4e-6, 2.5e-6, 2.683e-6, 2.8e-6, 3.0e-6]);
        assert_eq!(smaller(&threads, &processes), Finding::WithinNoise);
        let ratio = Ratio::of(&processes, &threads);
        assert!(ratio.low < 1.0 && ratio.high > 1.0, "{ratio:?}");
        assert_eq!(ratio.at_least(1.0), Finding::WithinNoise);
        // Apart beyond their spread: resolved, both ways.
        let fast = Summary::of(&[1.0, 1.1, 1.2]);
        let slow = Summary::of(&[2.0, 2.1, 2.2]);
        assert_eq!(smaller(&fast, &slow), Finding::Holds);
        assert_eq!(smaller(&slow, &fast), Finding::Fails);
        let speedup = Ratio::of(&slow, &fast);
        assert_eq!(speedup.at_least(1.5), Finding::Holds);
        assert_eq!(speedup.at_least(2.5), Finding::Fails);
        assert_eq!(speedup.at_least(1.9), Finding::WithinNoise);
        assert_eq!(speedup.at_most(1.5), Finding::Fails);
        assert_eq!(speedup.inside(1.5..=2.5), Finding::Holds);
        assert_eq!(speedup.inside(3.0..=4.0), Finding::Fails);
        assert_eq!(speedup.inside(1.0..=1.8), Finding::WithinNoise);
        // One sample each: no spread, the values decide.
        let (one, two) = (Summary::of(&[1.0]), Summary::of(&[2.0]));
        assert_eq!(smaller(&one, &two), Finding::Holds);
        assert_eq!(smaller(&one, &one), Finding::Fails);
    }

    #[test]
    fn checks_within_noise_make_their_own_outcome() {
        let mut checks = Checks::default();
        checks.find("a 1.02×", Finding::WithinNoise);
        checks.find("b 0.97×", Finding::WithinNoise);
        assert_eq!(checks.outcome(), Outcome::WithinNoise);
        assert_eq!(
            checks.evidence(),
            "a 1.02× (within noise); b 0.97× (within noise)"
        );
        checks.check("c 2.00×", true);
        assert_eq!(checks.outcome(), Outcome::Depends);
        let shown = Ratio::of(&Summary::of(&[2.0, 2.2]), &Summary::of(&[1.0]));
        assert_eq!(shown.shown(), "2.10× (2.05-2.15×)");
        assert_eq!(
            Ratio::of(&Summary::of(&[2.0]), &Summary::of(&[1.0])).shown(),
            "2.00×"
        );
    }

    #[test]
    fn bands_between_two_lines() {
        let range = |low: f64, high: f64| Ratio {
            median: (low + high) / 2.0,
            low,
            high,
        };
        assert_eq!(range(0.5, 0.8).band(1.0, 2.0), Band::Below);
        assert_eq!(range(1.1, 1.9).band(1.0, 2.0), Band::Between);
        assert_eq!(range(2.0, 2.5).band(1.0, 2.0), Band::Above);
        assert_eq!(range(0.9, 1.2).band(1.0, 2.0), Band::Straddles);
        assert_eq!(range(1.5, 2.5).band(1.0, 2.0), Band::Straddles);
        let slowdown = range(0.5, 2.0).inverse();
        assert_eq!((slowdown.low, slowdown.high), (0.5, 2.0));
        assert_eq!(range(2.0, 4.0).inverse().low, 0.25);
    }

    #[test]
    fn ratios_are_of_medians() {
        let slow = Summary::of(&[2.0, 4.0, 9.0]);
        let fast = Summary::of(&[1.0, 2.0, 3.0]);
        assert_eq!(ratio(&slow, &fast), 2.0);
        assert_eq!(times(1.934), "1.93×");
    }
}
