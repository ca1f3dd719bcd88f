//! The seed's quick decision table (§9, 快速决策表), row by row: the job, its CPU use, IO wait
//! and concurrency, the model the seed recommends, and beside it the model that measured best
//! here for that row's workload, the evidence and a verdict.
//!
//! Each row reads the experiment that stands for its workload (`many-fetches` for the crawler,
//! `server-models` for the API service and realtime messages, `file-processing` for file
//! processing, `cpu-bound` for data analysis and image processing) through the same decision
//! its experiment judges with, so the row and the experiment's verdict never disagree. A row
//! whose experiment did not run says so; a row the lab cannot measure (ML training: no GPU)
//! has a note and no verdict.

use crate::experiments::decisions;
use crate::findings::Findings;
use crate::results::{Implementation, LabReport, Outcome};

/// One row of the seed's table, with what this run found.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    /// The job, in the seed's words and in English.
    pub job: (&'static str, &'static str),
    /// CPU use, IO wait and concurrency, as the seed gives them (its words, English).
    pub profile: [(&'static str, &'static str); 3],
    /// The seed's recommended model (its words, English).
    pub recommended: (&'static str, &'static str),
    /// The seed's reason (its words, English).
    pub reason: (&'static str, &'static str),
    /// The experiment whose results decide the row (empty when none can).
    pub experiment: &'static str,
    /// The best model measured for the row's workload, per language.
    pub best: Vec<(Implementation, String)>,
    /// The verdict, when the row was measured.
    pub outcome: Option<Outcome>,
    /// The figures behind the verdict, or why there is none.
    pub evidence: String,
    /// What a reader should know about how the row was measured.
    pub note: &'static str,
}

/// What the seed says of a row.
struct Seed {
    job: (&'static str, &'static str),
    profile: [(&'static str, &'static str); 3],
    recommended: (&'static str, &'static str),
    reason: (&'static str, &'static str),
}

const LOW: (&str, &str) = ("低", "low");
const MIDDLE: (&str, &str) = ("中", "medium");
const HIGH: (&str, &str) = ("高", "high");
const COROUTINES: (&str, &str) = ("协程", "coroutines");
const PROCESSES: (&str, &str) = ("多进程", "processes");

/// The seed's seven rows, in its order.
const SEED: [Seed; 7] = [
    Seed {
        job: ("Web爬虫", "web crawler"),
        profile: [LOW, HIGH, ("高(>1000)", "high (>1000)")],
        recommended: COROUTINES,
        reason: ("I/O密集,高并发", "IO-bound, high concurrency"),
    },
    Seed {
        job: ("数据分析", "data analysis"),
        profile: [HIGH, LOW, MIDDLE],
        recommended: PROCESSES,
        reason: ("CPU密集,需要并行", "CPU-bound, needs parallelism"),
    },
    Seed {
        job: ("API服务", "API service"),
        profile: [LOW, HIGH, HIGH],
        recommended: COROUTINES,
        reason: ("I/O密集,快速响应", "IO-bound, quick answers"),
    },
    Seed {
        job: ("图像处理", "image processing"),
        profile: [HIGH, MIDDLE, MIDDLE],
        recommended: PROCESSES,
        reason: ("CPU密集,可并行", "CPU-bound, parallelisable"),
    },
    Seed {
        job: ("文件处理", "file processing"),
        profile: [LOW, HIGH, LOW],
        recommended: ("多线程", "threads"),
        reason: ("I/O密集,简单", "IO-bound, simple"),
    },
    Seed {
        job: ("机器学习训练", "ML training"),
        profile: [HIGH, LOW, ("-", "-")],
        recommended: ("多进程+GPU", "processes + GPU"),
        reason: ("CPU密集,大计算量", "CPU-bound, heavy computation"),
    },
    Seed {
        job: ("实时消息", "realtime messages"),
        profile: [LOW, HIGH, ("极高", "very high")],
        recommended: COROUTINES,
        reason: ("I/O密集,超高并发", "IO-bound, very high concurrency"),
    },
];

/// How a row is decided: the experiment, its decision, and a note on the stand-in workload.
type Source = (
    &'static str,
    Option<fn(&Findings<'_>) -> decisions::Decision>,
    &'static str,
);

const SOURCES: [Source; 7] = [
    (
        "many-fetches",
        Some(decisions::crawler),
        "Concurrent HTTP fetches from a local server that answers after 50 ms, by time to \
         fetch them all.",
    ),
    (
        "cpu-bound",
        Some(decisions::cpu_work),
        "Stand-in: cpu-bound's count_primes batch at one worker per core, by batch time; no \
         data-analysis job of its own.",
    ),
    (
        "server-models",
        Some(decisions::api_service),
        "The same HTTP JSON API in every model, by requests/s at the most connections \
         measured, with 10 ms waits and with 50 µs of CPU per request.",
    ),
    (
        "cpu-bound",
        Some(decisions::cpu_work),
        "Stand-in until `triad images` is measured by the lab: cpu-bound's count_primes batch \
         at one worker per core, by batch time.",
    ),
    (
        "file-processing",
        Some(decisions::file_processing),
        "Reading and hashing files of 4-256 KiB, cold and warm page cache, by total time.",
    ),
    (
        "",
        None,
        "Not measured: training needs a GPU, and this lab has none and trains nothing; the \
         CPU half of the advice is the data-analysis row's.",
    ),
    (
        "server-models",
        Some(decisions::realtime),
        "The API's 10 ms-wait requests at the most connections measured, by p99 latency and \
         peak memory.",
    ),
];

/// The seed's table with this run's verdicts.
pub fn rows(report: &LabReport) -> Vec<DecisionRow> {
    SEED.iter()
        .zip(SOURCES)
        .map(|(seed, (experiment, decide, note))| {
            let mut row = DecisionRow {
                job: seed.job,
                profile: seed.profile,
                recommended: seed.recommended,
                reason: seed.reason,
                experiment,
                best: Vec::new(),
                outcome: None,
                evidence: String::new(),
                note,
            };
            let Some(decide) = decide else {
                row.evidence = if experiment.is_empty() {
                    "not measured here".to_owned()
                } else {
                    format!("not measured yet: the lab has no {experiment} experiment")
                };
                return row;
            };
            match report.experiments.iter().find(|e| e.id == experiment) {
                Some(found) => {
                    let decision = decide(&Findings::of(report, found));
                    row.best = decision.best;
                    row.outcome = Some(decision.verdict.outcome);
                    row.evidence = decision.verdict.evidence;
                }
                None => {
                    row.evidence = format!("not measured in this run: {experiment} did not run")
                }
            }
            row
        })
        .collect()
}

/// The best models of a row, as `Rust: tokio · CPython: asyncio.start_server`.
pub fn best_text(row: &DecisionRow) -> String {
    if row.best.is_empty() {
        return "—".to_owned();
    }
    row.best
        .iter()
        .map(|(implementation, model)| format!("{}: {model}", implementation.label()))
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_run_keeps_the_seed_s_rows_and_says_why_none_is_judged() {
        let report = super::super::empty_run();
        let rows = rows(&report);
        assert_eq!(rows.len(), 7);
        assert!(
            rows.iter()
                .all(|r| r.outcome.is_none() && r.best.is_empty())
        );
        assert_eq!(rows[2].job.0, "API服务");
        assert_eq!(rows[2].recommended.0, "协程");
        assert!(rows[2].evidence.contains("server-models did not run"));
        assert_eq!(rows[5].experiment, "");
        assert!(rows[5].note.contains("GPU"));
        assert_eq!(best_text(&rows[0]), "—");
    }
}
