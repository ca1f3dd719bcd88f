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

use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Repeat, Series as Samples};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Implementation, Measurement, Outcome, Point, Scale, Series, Table, Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread};
use crate::verdict::{Ratio, verdict};

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

names! {
    /// The two workloads, by the prefix of their measurement names (`tiny/throughput`).
    enum Workload {
        Tiny => "tiny",
        Spin => "spin",
    }
}

names! {
    /// The one-worker pools of the reuse measurement: the `worker` parameter.
    enum Worker {
        Reused => "reused",
        NewPerTask => "new-per-task",
    }
}

/// The reuse measurement's name.
const REUSE: &str = "reuse/per-task";

impl Workload {
    /// The name of its throughput measurement.
    fn throughput(self) -> String {
        format!("{}/throughput", self.name())
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

/// Sizes by scale.
#[derive(Debug)]
struct Sizes {
    tiny_tasks: usize,
    spin_tasks: usize,
    /// Every map, and every batch of the reuse measurement: one warm-up, then the samples.
    repeat: Repeat,
    reuse_tasks: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        tiny_tasks: 2_000,
        spin_tasks: 200,
        repeat: Repeat::after_one(2),
        reuse_tasks: 4,
    },
    Sizes {
        tiny_tasks: 5_000,
        spin_tasks: 400,
        repeat: Repeat::after_one(3),
        reuse_tasks: 10,
    },
    Sizes {
        tiny_tasks: 50_000,
        spin_tasks: 5_000,
        repeat: Repeat::after_one(7),
        reuse_tasks: 50,
    },
);

impl Sizes {
    fn tasks(&self, workload: Workload) -> usize {
        match workload {
            Workload::Tiny => self.tiny_tasks,
            Workload::Spin => self.spin_tasks,
        }
    }
}

/// The workers of the pool on `cores` cores: one per core, at most 4.
fn workers_for(cores: usize) -> usize {
    cores.clamp(1, 4)
}

impl Experiment for PoolChunking {
    fn about(&self) -> About {
        About {
            id: "pool-chunking",
            title: "Process pool: throughput against chunk size, and worker reuse",
            seed_section: "5.1.3",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let workers = workers_for(bench.machine().cores);
        let pool = ProcessPool::new(workers).map_err(|e| LabError::engine("process pool", e))?;
        let mut plan = Plan::new();
        for &workload in Workload::ALL {
            let tasks = sizes.tasks(workload);
            for chunk in Chunk::all() {
                let pool = &pool;
                let measurement = Measurement::new(
                    workload.throughput(),
                    Implementation::Rust,
                    "per_s",
                    Vec::new(),
                )
                .param("chunk", chunk.param())
                .param("chunk_size", chunk.resolve(tasks, workers))
                .param("tasks", tasks)
                .param("workers", workers);
                plan.series(Samples::of(measurement, sizes.repeat, move || {
                    let start = std::time::Instant::now();
                    map(pool, workload, chunk, tasks)?;
                    Ok(tasks as f64 / start.elapsed().as_secs_f64())
                }));
            }
        }
        for worker in Worker::ALL {
            plan.step(move |measured| {
                let per_task = reuse(sizes.reuse_tasks, sizes.repeat, *worker)?;
                measured.measurement(
                    Measurement::new(REUSE, Implementation::Rust, "s", per_task)
                        .param("worker", worker.name())
                        .param("tasks", sizes.reuse_tasks),
                );
                Ok(())
            });
        }
        plan.python(Baseline::new(
            "pool_chunking",
            include_str!("../../python/pool_chunking.py"),
            [
                workers.to_string(),
                sizes.tiny_tasks.to_string(),
                sizes.spin_tasks.to_string(),
                SPIN_MICROS.to_string(),
                sizes.repeat.samples.to_string(),
                sizes.reuse_tasks.to_string(),
                serde_json::to_string(&CHUNKS).map_err(|e| LabError::engine("chunk sizes", e))?,
            ],
        ));
        let measured = bench.run(plan);
        pool.join();
        measured
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        let sizes = SIZES.at(findings.scale());
        let workers = workers_for(findings.machine().cores);
        let results = Results {
            findings: *findings,
        };
        Judgement {
            method: format!(
                "A pool of {workers} worker processes (one per core, at most 4) runs map over \
                 {} tiny tasks (identity: return the input) and over {} tasks that each spin \
                 the CPU for {SPIN_MICROS} µs, at chunk sizes {CHUNKS:?} and map's automatic \
                 one (ceil(n / (4 × workers)), as CPython's); tasks/s = tasks ÷ wall time of \
                 the map, {} repetitions on a warm pool. Worker reuse: one worker runs {} tiny \
                 tasks one by one, reused or replaced after every task (Rust's replacements \
                 are forked from triad's fork server; CPython's Pool forks). CPython: \
                 multiprocessing.Pool (fork) with the same counts.",
                sizes.tiny_tasks, sizes.spin_tasks, sizes.repeat.samples, sizes.reuse_tasks,
            ),
            table: results.table(),
            charts: results.charts(),
            verdicts: results.verdicts(),
            notes: vec![
                "triad's dispatcher packs queued tasks into one frame per worker by itself (as \
                 many as keep a worker busy about 2 ms) and spreads a chunk's tasks over all \
                 workers: a chunk there only saves the caller's per-job bookkeeping and never \
                 leaves a worker idle, so chunking helps it less than CPython, whose Pool \
                 pickles and sends each chunk as one message to one worker."
                    .to_owned(),
            ],
        }
    }
}

/// One `map` of `tasks` tasks of `workload` at `chunk`, every result checked.
fn map(pool: &ProcessPool, workload: Workload, chunk: Chunk, tasks: usize) -> Result<(), LabError> {
    let results = match (workload, chunk) {
        (Workload::Tiny, Chunk::Size(size)) => pool.map_chunked(identity, 0..tasks as u64, size),
        (Workload::Tiny, Chunk::Auto) => pool.map(identity, 0..tasks as u64),
        (Workload::Spin, Chunk::Size(size)) => {
            pool.map_chunked(spin_us, vec![SPIN_MICROS; tasks], size)
        }
        (Workload::Spin, Chunk::Auto) => pool.map(spin_us, vec![SPIN_MICROS; tasks]),
    };
    let context = || {
        format!(
            "{} tasks of {} in chunks of {chunk:?}",
            tasks,
            workload.label()
        )
    };
    results
        .into_iter()
        .try_for_each(|r| r.map(drop).map_err(|e| LabError::engine(context(), e)))
}

/// Seconds per task for one worker running `tasks` tiny tasks one by one, kept or replaced
/// after every task: one sample per batch `repeat` keeps.
fn reuse(tasks: usize, repeat: Repeat, worker: Worker) -> Result<Vec<f64>, LabError> {
    let mut builder = ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::ForkServer);
    if worker == Worker::NewPerTask {
        builder = builder.max_tasks_per_child(1);
    }
    let pool = builder
        .build()
        .map_err(|e| LabError::engine("one-worker pool", e))?;
    let batches = repeat.time(|| {
        pool.map_chunked(identity, 0..tasks as u64, 1)
            .into_iter()
            .try_for_each(|r| r.map(drop))
            .map_err(|e| LabError::engine("a task on a one-worker pool", e))
    });
    pool.join();
    Ok(batches?.into_iter().map(|s| s / tasks as f64).collect())
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
        self.findings.get(implementation, name, &[(key, value)])
    }

    fn throughput(
        &self,
        workload: Workload,
        implementation: Implementation,
        chunk: Chunk,
    ) -> Option<&Measurement> {
        self.find(
            &workload.throughput(),
            implementation,
            "chunk",
            chunk.param(),
        )
    }

    fn per_task(&self, implementation: Implementation, worker: Worker) -> Option<&Summary> {
        self.find(REUSE, implementation, "worker", worker.name().into())
            .map(|m| &m.summary)
    }

    fn table(&self) -> Table {
        let mut columns = vec!["chunk size".to_owned()];
        for &workload in Workload::ALL {
            for implementation in self.implementations() {
                columns.push(format!(
                    "{}: {} tasks/s",
                    workload.label(),
                    implementation.label()
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
            for &workload in Workload::ALL {
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
            ("1 worker, reused: time per task", Worker::Reused),
            ("1 worker, new per task: time per task", Worker::NewPerTask),
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
        for &workload in Workload::ALL {
            for implementation in self.implementations() {
                let name = format!("{} {}", implementation.label(), workload.label());
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
                    label: implementation.label().to_owned(),
                    points: Worker::ALL
                        .iter()
                        .enumerate()
                        .filter_map(|(index, &worker)| {
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

    /// The gain of the best explicit chunk size (by median) over chunk 1, with the range the
    /// two throughputs' quartiles allow, and the knee, for one series.
    fn gain_and_knee(
        &self,
        workload: Workload,
        implementation: Implementation,
    ) -> Option<(Ratio, usize)> {
        let rates: Vec<(usize, &Summary)> = CHUNKS
            .iter()
            .filter_map(|&size| {
                self.throughput(workload, implementation, Chunk::Size(size))
                    .map(|m| (size, &m.summary))
            })
            .collect();
        let single = rates.iter().find(|(size, _)| *size == 1)?.1;
        let best = rates
            .iter()
            .map(|(_, rate)| *rate)
            .max_by(|a, b| a.median.total_cmp(&b.median))?;
        let knee = rates
            .iter()
            .find(|(_, rate)| rate.median >= KNEE * best.median)
            .map(|(size, _)| *size)?;
        Some((Ratio::of(best, single), knee))
    }

    fn chunks_cut_overhead(&self) -> Verdict {
        let mut tiny_gains = Vec::new();
        let mut parts = Vec::new();
        for &workload in Workload::ALL {
            for implementation in self.implementations() {
                if let Some((gain, knee)) = self.gain_and_knee(workload, implementation) {
                    if workload == Workload::Tiny {
                        tiny_gains.push(gain);
                    }
                    parts.push(format!(
                        "{} on {}: the best chunk gives {} the tasks/s of chunk 1, and \
                         chunks stop helping from {knee} (within {:.0}% of the best)",
                        implementation.label(),
                        workload.label(),
                        gain.shown(),
                        100.0 * (1.0 - KNEE)
                    ));
                }
            }
        }
        let outcome = Outcome::from_findings(tiny_gains.iter().map(|g| g.at_least(REAL_GAIN)));
        verdict(
            format!(
                "Chunks cut the pool's task-dispatch overhead (counted as real from a \
                 {REAL_GAIN}× gain on tiny tasks)."
            ),
            "- Chunk分块：减少任务分发开销",
            outcome,
            parts.join("; "),
        )
    }

    fn reuse_saves_starts(&self) -> Verdict {
        let mut ratios = Vec::new();
        let mut parts = Vec::new();
        for implementation in self.implementations() {
            if let (Some(reused), Some(fresh)) = (
                self.per_task(implementation, Worker::Reused),
                self.per_task(implementation, Worker::NewPerTask),
            ) {
                let dearer = Ratio::of(fresh, reused);
                ratios.push(dearer);
                parts.push(format!(
                    "{}: {} per task with a new worker each time, {} with one reused ({})",
                    implementation.label(),
                    format_seconds(fresh.median),
                    format_seconds(reused.median),
                    dearer.shown()
                ));
            }
        }
        let outcome = Outcome::from_findings(ratios.iter().map(|r| r.at_least(REUSE_MATTERS)));
        verdict(
            "Reusing worker processes avoids the cost of creating and destroying them.",
            "- 进程复用：避免创建销毁开销",
            outcome,
            parts.join("; "),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;

    /// Tiny-task throughputs per chunk size (chunk 1's samples, every larger chunk's), and
    /// per-task times of a new and of a reused worker.
    fn measured(
        single: &[f64],
        chunked: &[f64],
        fresh: &[f64],
        reused: &[f64],
    ) -> Vec<Measurement> {
        let mut all: Vec<Measurement> = CHUNKS
            .iter()
            .map(|&size| {
                let samples = if size == 1 { single } else { chunked };
                Measurement::new(
                    "tiny/throughput",
                    Implementation::Rust,
                    "tasks/s",
                    samples.to_vec(),
                )
                .param("chunk", size)
            })
            .collect();
        for (worker, samples) in [(Worker::NewPerTask, fresh), (Worker::Reused, reused)] {
            all.push(
                Measurement::new(REUSE, Implementation::Rust, "s", samples.to_vec())
                    .param("worker", worker.name()),
            );
        }
        all
    }

    fn outcomes(measurements: &[Measurement]) -> Vec<Outcome> {
        let machine = Machine::default();
        let results = Results {
            findings: Findings::new(measurements, crate::experiment::Scale::Toy, &machine),
        };
        results.verdicts().iter().map(|v| v.outcome).collect()
    }

    #[test]
    fn gains_decide_beyond_the_noise_and_are_within_it_when_the_ranges_straddle_the_line() {
        let clear = measured(
            &[90.0, 100.0, 110.0],
            &[290.0, 300.0, 310.0],
            &[9.0, 10.0, 11.0],
            &[0.9, 1.0, 1.1],
        );
        assert_eq!(outcomes(&clear), [Outcome::Confirmed; 2]);
        let none = measured(
            &[95.0, 100.0, 105.0],
            &[100.0, 105.0, 110.0],
            &[1.0, 1.1, 1.2],
            &[0.9, 1.0, 1.1],
        );
        assert_eq!(outcomes(&none), [Outcome::Refuted; 2]);
        // Medians 1.6× and 2.2× apart, past the lines, but the quartiles reach below them.
        let noisy = measured(
            &[60.0, 100.0, 140.0],
            &[120.0, 160.0, 200.0],
            &[1.5, 2.2, 3.0],
            &[0.7, 1.0, 1.3],
        );
        assert_eq!(outcomes(&noisy), [Outcome::WithinNoise; 2]);
    }
}
