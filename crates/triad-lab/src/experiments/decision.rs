//! What the experiments behind the seed's quick decision table (§9) share: a row's verdict —
//! is the model the seed recommends the best one measured for that row's workload? — and the
//! best model found, for the report's decision-table section.
//!
//! Per language, the recommended model's figure is set against the best of the other models'
//! by the noise rule ([`Ratio`]): at least as good beyond the noise holds, worse beyond it
//! fails, overlapping quartiles are within noise; the languages' findings make one outcome.

use crate::findings::Findings;
use crate::results::{Implementation, Verdict};
use crate::stats::Summary;
use crate::verdict::{Checks, Ratio};

/// A row's verdict and the best model measured in each language.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    /// The best model by median, per language that ran.
    pub(crate) best: Vec<(Implementation, String)>,
    pub(crate) verdict: Verdict,
    /// How many checks the verdict weighed (none: nothing to compare was measured).
    pub(crate) checks: usize,
}

/// One model's figure for a row's workload.
#[derive(Debug, Clone)]
pub(crate) struct Candidate<'a> {
    pub(crate) implementation: Implementation,
    pub(crate) label: String,
    pub(crate) summary: &'a Summary,
    /// Whether it is (a variant of) the model the seed recommends.
    pub(crate) recommended: bool,
}

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    Higher,
    Lower,
}

/// The verdict on `claim` (the seed's row: `quote`) from `candidates`: per language, its best
/// recommended candidate against the best other one; `format` prints a figure, `context`
/// names the workload in the evidence.
pub(crate) fn decide(
    candidates: &[Candidate<'_>],
    better: Better,
    format: impl Fn(f64) -> String,
    (claim, quote): (&str, &str),
    context: &str,
) -> Decision {
    let mut checks = Checks::default();
    let mut best = Vec::new();
    let key = |c: &Candidate<'_>| match better {
        Better::Higher => c.summary.median,
        Better::Lower => -c.summary.median,
    };
    fn top<'c, 'a>(
        among: impl Iterator<Item = &'c Candidate<'a>>,
        key: impl Fn(&Candidate<'a>) -> f64,
    ) -> Option<&'c Candidate<'a>> {
        among.max_by(|a, b| key(a).total_cmp(&key(b)))
    }
    for implementation in [Implementation::Rust, Implementation::Python] {
        let mine = || {
            candidates
                .iter()
                .filter(|c| c.implementation == implementation)
        };
        let Some(winner) = top(mine(), key) else {
            continue;
        };
        best.push((implementation, winner.label.clone()));
        let (Some(ours), Some(theirs)) = (
            top(mine().filter(|c| c.recommended), key),
            top(mine().filter(|c| !c.recommended), key),
        ) else {
            continue;
        };
        let ratio = match better {
            Better::Higher => Ratio::of(ours.summary, theirs.summary),
            Better::Lower => Ratio::of(theirs.summary, ours.summary),
        };
        checks.find(
            format!(
                "{} {context}: {} {} against the best other, {} {} ({})",
                implementation.label(),
                ours.label,
                format(ours.summary.median),
                theirs.label,
                format(theirs.summary.median),
                ratio.shown()
            ),
            ratio.at_least(1.0),
        );
    }
    Decision {
        best,
        checks: checks.len(),
        verdict: checks.verdict(claim, quote),
    }
}

/// Several workloads' decisions on one claim made one: every check counted (a decision with
/// none adds nothing), each language's best taken from the first.
pub(crate) fn combine(decisions: Vec<Decision>, (claim, quote): (&str, &str)) -> Decision {
    use crate::results::{Finding, Outcome};
    let decisions: Vec<Decision> = decisions.into_iter().filter(|d| d.checks > 0).collect();
    if decisions.is_empty() {
        return decide(&[], Better::Higher, |v| v.to_string(), (claim, quote), "");
    }
    let best = decisions
        .first()
        .map(|d| d.best.clone())
        .unwrap_or_default();
    let outcome = Outcome::from_findings(decisions.iter().flat_map(|d| match d.verdict.outcome {
        Outcome::Confirmed => vec![Finding::Holds],
        Outcome::Refuted => vec![Finding::Fails],
        Outcome::WithinNoise => vec![Finding::WithinNoise],
        Outcome::Depends => vec![Finding::Holds, Finding::Fails],
    }));
    let evidence: Vec<&str> = decisions
        .iter()
        .map(|d| d.verdict.evidence.as_str())
        .collect();
    Decision {
        best,
        checks: decisions.iter().map(|d| d.checks).sum(),
        verdict: crate::verdict::verdict(claim, quote, outcome, evidence.join("; ")),
    }
}

const DATA_ANALYSIS_ROW: (&str, &str) = (
    "CPU-bound work that can run in parallel (data analysis, image processing) is done fastest \
     on processes.",
    "| 数据分析 | 高 | 低 | 中 | 多进程 | CPU密集,需要并行 |",
);

/// The rows *data analysis* and *image processing*, from `cpu-bound`'s results: the time of
/// its count_primes batch serially, on one thread and one process per core, and as coroutines.
pub(crate) fn cpu_work(found: &Findings<'_>) -> Decision {
    let cores = found.machine().cores.max(1);
    let at = |workers: usize| {
        [
            ("workload", "count_primes".into()),
            ("workers", workers.into()),
        ]
    };
    let engines = [
        ("serial", 1),
        ("threads", cores),
        ("processes", cores),
        ("async", 1),
    ];
    let candidates: Vec<Candidate<'_>> = found
        .implementations()
        .into_iter()
        .flat_map(|implementation| {
            engines.iter().filter_map(move |&(engine, workers)| {
                let summary = found.summary(implementation, engine, &at(workers))?;
                Some(Candidate {
                    implementation,
                    label: if workers > 1 {
                        format!("{engine} ({workers})")
                    } else {
                        engine.to_owned()
                    },
                    summary,
                    recommended: engine == "processes",
                })
            })
        })
        .collect();
    decide(
        &candidates,
        Better::Lower,
        crate::stats::format_seconds,
        DATA_ANALYSIS_ROW,
        "count_primes batch time",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Outcome;

    fn candidate<'a>(
        implementation: Implementation,
        label: &str,
        summary: &'a Summary,
        recommended: bool,
    ) -> Candidate<'a> {
        Candidate {
            implementation,
            label: label.to_owned(),
            summary,
            recommended,
        }
    }

    #[test]
    fn the_recommended_model_is_set_against_the_best_other_in_each_language() {
        let fast = Summary::of(&[9.0, 10.0, 11.0]);
        let slow = Summary::of(&[4.0, 5.0, 6.0]);
        let close = Summary::of(&[9.5, 10.5, 11.5]);
        let rows = [
            candidate(Implementation::Rust, "tokio", &fast, true),
            candidate(Implementation::Rust, "threads", &slow, false),
            candidate(Implementation::Python, "asyncio", &slow, true),
            candidate(Implementation::Python, "threads", &fast, false),
        ];
        let claim = ("claim", "quote");
        let decision = decide(&rows, Better::Higher, |v| format!("{v}"), claim, "at 10");
        assert_eq!(decision.verdict.outcome, Outcome::Depends);
        assert_eq!(
            decision.best,
            [
                (Implementation::Rust, "tokio".to_owned()),
                (Implementation::Python, "threads".to_owned())
            ]
        );
        assert!(decision.verdict.evidence.contains("(agrees)"));
        assert!(decision.verdict.evidence.contains("(disagrees)"));
        let noisy = [
            candidate(Implementation::Rust, "tokio", &fast, true),
            candidate(Implementation::Rust, "threads", &close, false),
        ];
        let decision = decide(&noisy, Better::Higher, |v| format!("{v}"), claim, "");
        assert_eq!(decision.verdict.outcome, Outcome::WithinNoise);
        // Times: lower is better.
        let decision = decide(&rows[..2], Better::Lower, |v| format!("{v}"), claim, "");
        assert_eq!(decision.verdict.outcome, Outcome::Refuted);
        assert_eq!(
            decision.best,
            [(Implementation::Rust, "threads".to_owned())]
        );
        let both = combine(
            vec![
                decide(&rows[..2], Better::Higher, |v| format!("{v}"), claim, ""),
                decide(&rows[..2], Better::Lower, |v| format!("{v}"), claim, ""),
            ],
            claim,
        );
        assert_eq!(both.verdict.outcome, Outcome::Depends);
        let none = decide(&[], Better::Higher, |v| format!("{v}"), claim, "");
        assert_eq!(none.verdict.outcome, Outcome::Depends);
        assert!(none.best.is_empty());
        // A decision that checked nothing does not make the others depend.
        let held = decide(&noisy[..1], Better::Higher, |v| format!("{v}"), claim, "");
        assert_eq!(held.checks, 0, "one model alone is no comparison");
        let confirmed = decide(
            &[
                candidate(Implementation::Rust, "tokio", &fast, true),
                candidate(Implementation::Rust, "threads", &slow, false),
            ],
            Better::Higher,
            |v| format!("{v}"),
            claim,
            "",
        );
        let alone = combine(vec![confirmed, none], claim);
        assert_eq!(alone.verdict.outcome, Outcome::Confirmed);
        assert_eq!(alone.checks, 1);
    }
}
