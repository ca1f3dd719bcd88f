//! One command profiled several times (`triad profile --repeat N`): each run's verdict in a
//! line, and how many runs agree — so that a user can see whether a verdict is stable.
//!
//! Runs agree when their verdicts are equal, flags included (`CPU-bound, already parallel` and
//! `CPU-bound, on one core` disagree); confidence, timings and phases may differ.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::classify::{Analysis, Model, Verdict};
use crate::recording::{Exit, Recording};
use crate::report::verdict_text;

/// What one of the runs gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Its verdict.
    pub verdict: Verdict,
    /// How sure, 0..1.
    pub confidence: f64,
    /// Its wall time, seconds.
    pub wall_s: f64,
    /// How the command ended.
    pub exit: Exit,
    /// The advised model (`None` for a run too short to classify).
    pub model: Option<Model>,
}

impl RunSummary {
    /// The summary of one run.
    pub fn of(recording: &Recording, analysis: &Analysis) -> Self {
        RunSummary {
            verdict: analysis.verdict,
            confidence: analysis.confidence,
            wall_s: analysis.figures.wall_s,
            exit: recording.exit,
            model: analysis.advice.as_ref().map(|a| a.model),
        }
    }
}

/// How many runs gave the most common verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// The most common verdict (of those tied, the first given).
    pub verdict: Verdict,
    /// Runs that gave it.
    pub agreeing: usize,
    /// Runs made.
    pub of: usize,
}

/// The agreement of `runs`; `None` when there are none.
///
/// ```
/// use triad_profile::repeat::{RunSummary, agreement};
/// use triad_profile::{Exit, Verdict};
/// let run = |parallel| RunSummary {
///     verdict: Verdict::CpuBound { parallel, gil_limited: false },
///     confidence: 0.9,
///     wall_s: 1.0,
///     exit: Exit::Code { code: 0 },
///     model: None,
/// };
/// let a = agreement(&[run(true), run(false), run(true)]).unwrap();
/// assert_eq!((a.agreeing, a.of), (2, 3));
/// ```
pub fn agreement(runs: &[RunSummary]) -> Option<Agreement> {
    let count = |v: Verdict| runs.iter().filter(|r| r.verdict == v).count();
    let verdict = runs
        .iter()
        .map(|r| r.verdict)
        .reduce(|best, v| if count(v) > count(best) { v } else { best })?;
    Some(Agreement {
        verdict,
        agreeing: count(verdict),
        of: runs.len(),
    })
}

/// `run 2/3: CPU-bound, on one core (confidence 91%, 2.04 s)`.
pub fn run_line(number: usize, of: usize, run: &RunSummary) -> String {
    let exit = match run.exit {
        Exit::Code { code: 0 } => String::new(),
        Exit::Code { code } => format!(", exit {code}"),
        Exit::Signal { signal } => format!(", killed by signal {signal}"),
    };
    format!(
        "run {number}/{of}: {} (confidence {:.0}%, {:.2} s{exit})",
        verdict_text(run.verdict),
        run.confidence * 100.0,
        run.wall_s
    )
}

/// `Agreement: 3 of 3 runs: CPU-bound, on one core` (with `requested` runs asked for, the
/// line says when fewer were made).
pub fn agreement_line(agreement: &Agreement, requested: usize) -> String {
    let stopped = if agreement.of < requested {
        format!(
            " (stopped after {} of {requested}: a run failed)",
            agreement.of
        )
    } else {
        String::new()
    };
    let all = if agreement.agreeing == agreement.of {
        "all agree"
    } else {
        "they disagree"
    };
    format!(
        "Agreement: {} of {} runs: {} — {all}{stopped}",
        agreement.agreeing,
        agreement.of,
        verdict_text(agreement.verdict)
    )
}

/// The `"repeat"` member of the JSON document (see `SCHEMA.md`).
pub fn repeat_json(runs: &[RunSummary]) -> Value {
    let agreement = agreement(runs);
    json!({
        "runs": runs.iter().map(|r| json!({
            "verdict": r.verdict,
            "verdict_text": verdict_text(r.verdict),
            "confidence": r.confidence,
            "wall_s": r.wall_s,
            "exit": r.exit,
            "model": r.model,
        })).collect::<Vec<_>>(),
        "agreeing": agreement.map_or(0, |a| a.agreeing),
        "of": runs.len(),
        "verdict": agreement.map(|a| a.verdict),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::IoWait;

    fn run(verdict: Verdict) -> RunSummary {
        RunSummary {
            verdict,
            confidence: 0.8,
            wall_s: 1.5,
            exit: Exit::Code { code: 0 },
            model: Some(Model::Threads),
        }
    }

    #[test]
    fn the_most_common_verdict_and_its_count() {
        let disk = Verdict::IoBound { wait: IoWait::Disk };
        let runs = [run(Verdict::Mixed), run(disk), run(disk)];
        let a = agreement(&runs).unwrap();
        assert_eq!((a.verdict, a.agreeing, a.of), (disk, 2, 3));
        assert_eq!(
            agreement_line(&a, 3),
            "Agreement: 2 of 3 runs: IO-bound, waiting on the disk — they disagree"
        );
        assert!(agreement(&[]).is_none());
    }

    #[test]
    fn lines_and_json() {
        let runs = [run(Verdict::Mixed)];
        assert_eq!(
            run_line(1, 2, &runs[0]),
            "run 1/2: mixed: compute and waits in comparable amounts (confidence 80%, 1.50 s)"
        );
        let a = agreement(&runs).unwrap();
        assert!(agreement_line(&a, 2).ends_with("all agree (stopped after 1 of 2: a run failed)"));
        let doc = repeat_json(&runs);
        assert_eq!(doc["of"], 1);
        assert_eq!(doc["agreeing"], 1);
        assert_eq!(doc["runs"][0]["model"], "threads");
        assert_eq!(doc["verdict"]["kind"], "mixed");
    }
}
