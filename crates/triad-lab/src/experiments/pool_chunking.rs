//! `pool-chunking` (seed §5.1.3): process-pool throughput against the chunk size of `map`
//! (1, 4, 16, 64, 256, 1024 and the automatic `ceil(n / (4 × workers))`), for tiny tasks
//! (triad's `identity` workload, which returns its input) and for tasks that spin the CPU for
//! 50 µs; and
//! what a worker process started anew for every task costs against a reused one.
//!
//! Rust runs [`ProcessPool::map_chunked`] (and `map` for the automatic size) on a warm pool;
//! CPython runs `multiprocessing.Pool.map(..., chunksize=...)` (fork) with the same counts.
//! Throughput is tasks ÷ wall time of the whole `map`, one sample per repetition. Worker reuse
//! is one worker running tasks one by one, kept or replaced after every task
//! (`max_tasks_per_child(1)`, `maxtasksperchild=1`).

use triad::workloads::{identity, spin_us};
use triad::{ProcessPool, StartMethod};

use super::findings::{self, Findings, outcome_by_threshold};
use crate::error::LabError;
use crate::experiment::{Context, Experiment};
use crate::results::{
    Chart, ChartKind, ExperimentReport, Implementation, Measurement, Point, Scale, Series, Table,
    Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread, time_each};

/// The explicit chunk sizes.
const CHUNKS: [usize; 6] = [1, 4, 16, 64, 256, 1024];
/// How long a CPU task spins.
const SPIN_MICROS: u64 = 50;
/// The smallest chunk size reaching this share of the best throughput is the knee: larger
/// chunks stop helping there.
const KNEE: f64 = 0.9;
/// A gain from chunking at least this large counts as cutting the dispatch overhead.
const REAL_GAIN: f64 = 1.5;
/// A worker started per task must cost at least this many times a reused one for the claim.
const REUSE_MATTERS: f64 = 2.0;

/// Process-pool throughput against chunk size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolChunking;

/// The two workloads: measurement prefix, label, task count for a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Tiny,
    Spin,
}

impl Workload {
    const ALL: [Workload; 2] = [Workload::Tiny, Workload::Spin];

    fn key(self) -> &'static str {
        match self {
            Workload::Tiny => "tiny",
            Workload::Spin => "spin",
        }
    }

    fn label(self) -> String {
        match self {
            Workload::Tiny => "identity".to_owned(),
            Workload::Spin => format!("{SPIN_MICROS} µs of CPU"),
        }
    }
}

/// A chunk size: explicit, or `map`'s automatic one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size(usize),
    Auto,
}

impl Chunk {
    fn all() -> impl Iterator<Item = Chunk> {
        CHUNKS.into_iter().map(Chunk::Size).chain([Chunk::Auto])
    }

    /// The `chunk` parameter of the measurements: the size, or `"auto"`.
    fn param(self) -> serde_json::Value {
        match self {
            Chunk::Size(size) => size.into(),
            Chunk::Auto => "auto".into(),
        }
    }

    /// The size it comes to for `tasks` tasks on `workers` workers.
    fn resolve(self, tasks: usize, workers: usize) -> usize {
        match self {
            Chunk::Size(size) => size,
            Chunk::Auto => tasks.div_ceil(4 * workers).max(1),
        }
    }
}

struct Sizes {
    tiny_tasks: usize,
    spin_tasks: usize,
    repetitions: usize,
    reuse_tasks: usize,
}

impl Sizes {
    fn tasks(&self, workload: Workload) -> usize {
        match workload {
            Workload::Tiny => self.tiny_tasks,
            Workload::Spin => self.spin_tasks,
        }
    }
}

impl Experiment for PoolChunking {
    fn id(&self) -> &'static str {
        "pool-chunking"
    }

    fn title(&self) -> &'static str {
        "Process pool: throughput against chunk size, and worker reuse"
    }

    fn seed_section(&self) -> &'static str {
        "5.1.3"
    }

    fn run(&self, ctx: &mut Context<'_>) -> Result<ExperimentReport, LabError> {
        let sizes = ctx.pick(
            Sizes {
                tiny_tasks: 2_000,
                spin_tasks: 200,
                repetitions: 2,
                reuse_tasks: 4,
            },
            Sizes {
                tiny_tasks: 5_000,
                spin_tasks: 400,
                repetitions: 3,
                reuse_tasks: 10,
            },
            Sizes {
                tiny_tasks: 50_000,
                spin_tasks: 5_000,
                repetitions: 7,
                reuse_tasks: 50,
            },
        );
        let workers = triad::available_cores().clamp(1, 4);
        let steps = (Workload::ALL.len() * (CHUNKS.len() + 1) + 2) as u64;
        let mut report = ExperimentReport {
            method: format!(
                "A pool of {workers} worker processes (one per core, at most 4) runs map over \
                 {} tiny tasks (identity: return the input) and over {} tasks that each spin the CPU for \
                 {SPIN_MICROS} µs, at chunk sizes {CHUNKS:?} and map's automatic one \
                 (ceil(n / (4 × workers)), as CPython's); tasks/s = tasks ÷ wall time of the \
                 map, {} repetitions on a warm pool. Worker reuse: one worker runs {} tiny \
                 tasks one by one, reused or replaced after every task (Rust's replacements \
                 are forked from triad's fork server; CPython's Pool forks). CPython: \
                 multiprocessing.Pool (fork) with the same counts.",
                sizes.tiny_tasks, sizes.spin_tasks, sizes.repetitions, sizes.reuse_tasks,
            ),
            ..Default::default()
        };

        let pool = ProcessPool::new(workers).map_err(|e| LabError::engine("process pool", e))?;
        pool.map_chunked(identity, 0..1_000, 64);
        pool.map_chunked(spin_us, vec![SPIN_MICROS; 4 * workers], 1);
        let mut step = 0;
        for workload in Workload::ALL {
            let tasks = sizes.tasks(workload);
            for chunk in Chunk::all() {
                let samples = time_each(sizes.repetitions, || match (workload, chunk) {
                    (Workload::Tiny, Chunk::Size(size)) => {
                        pool.map_chunked(identity, 0..tasks as u64, size);
                    }
                    (Workload::Tiny, Chunk::Auto) => {
                        pool.map(identity, 0..tasks as u64);
                    }
                    (Workload::Spin, Chunk::Size(size)) => {
                        pool.map_chunked(spin_us, vec![SPIN_MICROS; tasks], size);
                    }
                    (Workload::Spin, Chunk::Auto) => {
                        pool.map(spin_us, vec![SPIN_MICROS; tasks]);
                    }
                });
                report.measurements.push(
                    Measurement::new(
                        format!("{}/throughput", workload.key()),
                        Implementation::Rust,
                        "per_s",
                        samples.iter().map(|s| tasks as f64 / s).collect(),
                    )
                    .param("chunk", chunk.param())
                    .param("chunk_size", chunk.resolve(tasks, workers))
                    .param("tasks", tasks)
                    .param("workers", workers),
                );
                step += 1;
                ctx.progress(step, steps);
            }
        }
        pool.join();

        for (kind, recycle) in [("reused", false), ("new-per-task", true)] {
            let per_task = reuse(sizes.reuse_tasks, sizes.repetitions, recycle)?;
            report.measurements.push(
                Measurement::new("reuse/per-task", Implementation::Rust, "s", per_task)
                    .param("worker", kind)
                    .param("tasks", sizes.reuse_tasks),
            );
        }
        step += 1;
        ctx.progress(step, steps);

        let python = ctx.python(
            "pool_chunking",
            include_str!("../../python/pool_chunking.py"),
            &[
                workers.to_string(),
                sizes.tiny_tasks.to_string(),
                sizes.spin_tasks.to_string(),
                SPIN_MICROS.to_string(),
                sizes.repetitions.to_string(),
                sizes.reuse_tasks.to_string(),
                serde_json::to_string(&CHUNKS).map_err(|e| LabError::engine("chunk sizes", e))?,
            ],
        )?;
        ctx.progress(steps, steps);
        findings::add_python(&mut report, python.as_ref());
        report.notes.push(
            "triad's dispatcher packs queued tasks into one frame per worker by itself (as \
             many as keep a worker busy about 2 ms) and spreads a chunk's tasks over all \
             workers: a chunk there only saves the caller's per-job bookkeeping and never \
             leaves a worker idle, so chunking helps it less than CPython, whose Pool pickles \
             and sends each chunk as one message to one worker."
                .to_owned(),
        );
        let results = Results {
            findings: Findings::new(&report.measurements),
        };
        report.table = results.table();
        report.charts = results.charts();
        report.verdicts = results.verdicts();
        Ok(report)
    }
}

/// Seconds per task for one worker running `tasks` tiny tasks one by one, kept or replaced
/// after every task; one sample per repetition, after a warm-up.
fn reuse(tasks: usize, repetitions: usize, recycle: bool) -> Result<Vec<f64>, LabError> {
    let mut builder = ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::ForkServer);
    if recycle {
        builder = builder.max_tasks_per_child(1);
    }
    let pool = builder
        .build()
        .map_err(|e| LabError::engine("one-worker pool", e))?;
    pool.map_chunked(identity, 0..2, 1);
    let samples = time_each(repetitions, || {
        pool.map_chunked(identity, 0..tasks as u64, 1);
    });
    pool.join();
    Ok(samples.into_iter().map(|s| s / tasks as f64).collect())
}

/// Reads the measurements back for the table, charts and verdicts.
struct Results<'a> {
    findings: Findings<'a>,
}

impl Results<'_> {
    fn implementations(&self) -> Vec<Implementation> {
        self.findings.implementations()
    }

    fn find(
        &self,
        name: &str,
        implementation: Implementation,
        key: &str,
        value: serde_json::Value,
    ) -> Option<&Measurement> {
        self.findings.find(name, implementation, &[(key, value)])
    }

    fn throughput(
        &self,
        workload: Workload,
        implementation: Implementation,
        chunk: Chunk,
    ) -> Option<&Measurement> {
        self.find(
            &format!("{}/throughput", workload.key()),
            implementation,
            "chunk",
            chunk.param(),
        )
    }

    fn per_task(&self, implementation: Implementation, worker: &str) -> Option<&Summary> {
        self.find("reuse/per-task", implementation, "worker", worker.into())
            .map(|m| &m.summary)
    }

    fn table(&self) -> Table {
        let mut columns = vec!["chunk size".to_owned()];
        for workload in Workload::ALL {
            for implementation in self.implementations() {
                columns.push(format!(
                    "{}: {} tasks/s",
                    workload.label(),
                    findings::name(implementation)
                ));
            }
        }
        let mut table = Table::new(columns);
        let rate = |rate: f64| format!("{rate:.0}");
        for chunk in Chunk::all() {
            let mut row = vec![match chunk {
                Chunk::Size(size) => size.to_string(),
                Chunk::Auto => "auto".to_owned(),
            }];
            for workload in Workload::ALL {
                for implementation in self.implementations() {
                    row.push(self.throughput(workload, implementation, chunk).map_or(
                        "—".to_owned(),
                        |m| {
                            let auto = match chunk {
                                Chunk::Auto => format!(
                                    " (chunk {})",
                                    m.params
                                        .get("chunk_size")
                                        .map_or("?".to_owned(), serde_json::Value::to_string)
                                ),
                                Chunk::Size(_) => String::new(),
                            };
                            format!("{}{auto}", format_with_spread(&m.summary, rate))
                        },
                    ));
                }
            }
            table.row(row);
        }
        for (label, worker) in [
            ("1 worker, reused: time per task", "reused"),
            ("1 worker, new per task: time per task", "new-per-task"),
        ] {
            let mut row = vec![label.to_owned()];
            for implementation in self.implementations() {
                row.push(
                    self.per_task(implementation, worker)
                        .map_or("—".to_owned(), |s| format_with_spread(s, format_seconds)),
                );
            }
            row.resize(table.columns.len(), String::new());
            table.row(row);
        }
        table
    }

    fn charts(&self) -> Vec<Chart> {
        let mut throughput = Chart {
            title: "Process-pool throughput against chunk size".to_owned(),
            kind: ChartKind::Line,
            x_label: "chunk size (tasks)".to_owned(),
            y_label: "tasks per second".to_owned(),
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            ..Default::default()
        };
        for workload in Workload::ALL {
            for implementation in self.implementations() {
                let name = format!("{} {}", findings::name(implementation), workload.label());
                throughput.series.push(Series {
                    label: name.clone(),
                    points: CHUNKS
                        .iter()
                        .filter_map(|&size| {
                            self.throughput(workload, implementation, Chunk::Size(size))
                                .map(|m| Point::from_summary(size as f64, &m.summary))
                        })
                        .collect(),
                });
                if let Some(auto) = self.throughput(workload, implementation, Chunk::Auto) {
                    let size = auto
                        .params
                        .get("chunk_size")
                        .and_then(serde_json::Value::as_f64)
                        .unwrap_or(1.0);
                    throughput.series.push(Series {
                        label: format!("{name}, automatic chunk"),
                        points: vec![Point::from_summary(size, &auto.summary)],
                    });
                }
            }
        }
        let workers = ["reused", "new-per-task"];
        let reuse = Chart {
            title: "One worker: time per task, reused or started anew".to_owned(),
            kind: ChartKind::Bar,
            x_label: "worker".to_owned(),
            y_label: "time per task (ms, log)".to_owned(),
            y_scale: Scale::Log,
            categories: vec!["reused".to_owned(), "new per task".to_owned()],
            series: self
                .implementations()
                .into_iter()
                .map(|implementation| Series {
                    label: findings::name(implementation).to_owned(),
                    points: workers
                        .iter()
                        .enumerate()
                        .filter_map(|(index, worker)| {
                            self.per_task(implementation, worker).map(|s| Point {
                                x: index as f64,
                                y: s.median * 1e3,
                                low: Some(s.p25 * 1e3),
                                high: Some(s.p75 * 1e3),
                            })
                        })
                        .collect(),
                })
                .collect(),
            ..Default::default()
        };
        vec![throughput, reuse]
    }

    fn verdicts(&self) -> Vec<Verdict> {
        vec![self.chunks_cut_overhead(), self.reuse_saves_starts()]
    }

    /// The gain of the best explicit chunk size over chunk 1, and the knee, for one series.
    fn gain_and_knee(
        &self,
        workload: Workload,
        implementation: Implementation,
    ) -> Option<(f64, usize)> {
        let rates: Vec<(usize, f64)> = CHUNKS
            .iter()
            .filter_map(|&size| {
                self.throughput(workload, implementation, Chunk::Size(size))
                    .map(|m| (size, m.median()))
            })
            .collect();
        let single = rates.iter().find(|(size, _)| *size == 1)?.1;
        let best = rates.iter().map(|(_, rate)| *rate).fold(0.0, f64::max);
        let knee = rates
            .iter()
            .find(|(_, rate)| *rate >= KNEE * best)
            .map(|(size, _)| *size)?;
        Some((best / single, knee))
    }

    fn chunks_cut_overhead(&self) -> Verdict {
        let mut tiny_gains = Vec::new();
        let mut parts = Vec::new();
        for workload in Workload::ALL {
            for implementation in self.implementations() {
                if let Some((gain, knee)) = self.gain_and_knee(workload, implementation) {
                    if workload == Workload::Tiny {
                        tiny_gains.push(gain);
                    }
                    parts.push(format!(
                        "{} on {}: the best chunk gives {gain:.1}× the tasks/s of chunk 1, and \
                         chunks stop helping from {knee} (within {:.0}% of the best)",
                        findings::name(implementation),
                        workload.label(),
                        100.0 * (1.0 - KNEE)
                    ));
                }
            }
        }
        let outcome = outcome_by_threshold(&tiny_gains, REAL_GAIN);
        Verdict {
            claim: format!(
                "Chunks cut the pool's task-dispatch overhead (counted as real from a \
                 {REAL_GAIN}× gain on tiny tasks)."
            ),
            quote: "- Chunk分块：减少任务分发开销".to_owned(),
            outcome,
            evidence: parts.join("; "),
        }
    }

    fn reuse_saves_starts(&self) -> Verdict {
        let mut ratios = Vec::new();
        let mut parts = Vec::new();
        for implementation in self.implementations() {
            if let (Some(reused), Some(fresh)) = (
                self.per_task(implementation, "reused"),
                self.per_task(implementation, "new-per-task"),
            ) {
                let ratio = fresh.median / reused.median;
                ratios.push(ratio);
                parts.push(format!(
                    "{}: {} per task with a new worker each time, {} with one reused ({ratio:.0}×)",
                    findings::name(implementation),
                    format_seconds(fresh.median),
                    format_seconds(reused.median)
                ));
            }
        }
        let outcome = outcome_by_threshold(&ratios, REUSE_MATTERS);
        Verdict {
            claim: "Reusing worker processes avoids the cost of creating and destroying them."
                .to_owned(),
            quote: "- 进程复用：避免创建销毁开销".to_owned(),
            outcome,
            evidence: parts.join("; "),
        }
    }
}
