//! `cpu-bound` (seed §2, §4): which model speeds up CPU-bound work, and by how much per core.
//!
//! The seed's two CPU workloads — its prime count by trial division (§4) and its sum of squares
//! (§2) — run as a batch of equal tasks through triad's one call ([`triad::Runner`]) in every
//! mode: serially, on a pool of threads, on a pool of worker processes, and as coroutines on one
//! event loop (an `async` body that computes without awaiting, as a CPU-bound coroutine does in
//! asyncio). Threads and processes get 1, 2, the core count and twice the core count workers,
//! so the speed-up and the parallel efficiency (speed-up per core used) show where the cores
//! run out. Every engine is started, and runs each batch once untimed, before the clock
//! starts; then each repetition times every engine once, in turn, so that a burst of load from
//! elsewhere falls on several engines rather than on every sample of one. The CPython baseline runs the same algorithms serially, on a
//! `ThreadPoolExecutor`, on a `multiprocessing.Pool` and under asyncio, on a smaller batch.
//! [`gantt`] measures the seed's §2 diagram: interleaving on one CPU against simultaneity.

mod gantt;

use std::time::Duration;

use triad::workloads::{count_primes, sum_squares};
use triad::{Mode, Runner, TaskError};

use super::scaling::{
    NO_SPEEDUP, PARALLEL_SHARE, Timings, per_language_and_workload, speedup_point,
};
use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Repeat, Series};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Finding, Implementation, Measurement, Outcome, Point, Series as Line, Table,
    Verdict,
};
use crate::stats::{format_seconds, format_with_spread, timed};
use crate::verdict::{Ratio, listed, listed_ratios, outcome_of, times, verdict};
use gantt::Setting;

/// The seed's prime count as a coroutine that computes on the event loop without awaiting.
#[triad::task]
async fn count_primes_on_loop(limit: u64) -> u64 {
    count_primes::call(limit)
}

/// The seed's sum of squares as a coroutine that computes on the event loop without awaiting.
#[triad::task]
async fn sum_squares_on_loop(n: u64) -> u128 {
    sum_squares::call(n)
}

/// The `cpu-bound` experiment.
#[derive(Debug)]
pub(crate) struct CpuBound;

names! {
    /// The seed's two CPU-bound workloads, by the names of their triad tasks.
    enum Workload {
        Primes => "count_primes",
        Squares => "sum_squares",
    }
}

impl Workload {
    fn size(self, sizes: &Sizes, implementation: Implementation) -> u64 {
        match (self, implementation) {
            (Workload::Primes, Implementation::Rust) => sizes.primes_limit,
            (Workload::Squares, Implementation::Rust) => sizes.squares_n,
            (Workload::Primes, Implementation::Python) => sizes.python_primes_limit,
            (Workload::Squares, Implementation::Python) => sizes.python_squares_n,
        }
    }

    fn answer(self, size: u64) -> u128 {
        match self {
            Workload::Primes => u128::from(count_primes::call(size)),
            Workload::Squares => sum_squares::call(size),
        }
    }

    /// Runs `tasks` copies of this workload at `size` on `runner`: async runners get the
    /// coroutine that computes on the loop, the others the plain function.
    fn run(self, runner: &Runner, size: u64, tasks: usize) -> Vec<Result<u128, TaskError>> {
        let inputs = std::iter::repeat_n(size, tasks);
        let widen = |counts: Vec<Result<u64, TaskError>>| {
            counts.into_iter().map(|r| r.map(u128::from)).collect()
        };
        match (self, runner.mode()) {
            (Workload::Primes, Mode::Async { .. }) => {
                widen(runner.map(count_primes_on_loop, inputs))
            }
            (Workload::Squares, Mode::Async { .. }) => runner.map(sum_squares_on_loop, inputs),
            (Workload::Primes, _) => widen(runner.map(count_primes, inputs)),
            (Workload::Squares, _) => runner.map(sum_squares, inputs),
        }
    }
}

names! {
    /// How a batch runs: the measurement names, the same in `python/cpu_bound.py`.
    enum Engine {
        Serial => "serial",
        Threads => "threads",
        Processes => "processes",
        Async => "async",
    }
}

/// The serial run, on the smaller batch CPython runs.
const SERIAL_PYTHON_BATCH: &str = "serial, CPython's batch";

impl Engine {
    fn mode(self, workers: usize, tasks: usize) -> Mode {
        match self {
            Engine::Serial => Mode::Serial,
            Engine::Threads => Mode::Threads(workers),
            Engine::Processes => Mode::Processes(workers),
            Engine::Async => Mode::Async { concurrency: tasks },
        }
    }
}

/// Sizes by scale.
#[derive(Debug, Clone)]
struct Sizes {
    tasks: usize,
    primes_limit: u64,
    squares_n: u64,
    python_primes_limit: u64,
    python_squares_n: u64,
    /// Every engine and workload: one untimed batch, then the samples, in rounds.
    repeat: Repeat,
    python_repetitions: usize,
    gantt_work: Duration,
    gantt_repetitions: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        tasks: 4,
        primes_limit: 60_000,
        squares_n: 300_000,
        python_primes_limit: 2_000,
        python_squares_n: 10_000,
        repeat: Repeat::after_one(3),
        python_repetitions: 3,
        gantt_work: Duration::from_millis(6),
        gantt_repetitions: 1,
    },
    Sizes {
        tasks: 8,
        primes_limit: 120_000,
        squares_n: 8_000_000,
        python_primes_limit: 20_000,
        python_squares_n: 150_000,
        repeat: Repeat::after_one(5),
        python_repetitions: 3,
        gantt_work: Duration::from_millis(15),
        gantt_repetitions: 3,
    },
    Sizes {
        tasks: 8,
        primes_limit: 400_000,
        squares_n: 30_000_000,
        python_primes_limit: 60_000,
        python_squares_n: 600_000,
        repeat: Repeat::after_one(9),
        python_repetitions: 5,
        gantt_work: Duration::from_millis(25),
        gantt_repetitions: 5,
    },
);

/// Time slice after which a coroutine of the timeline yields.
const COROUTINE_SLICE: Duration = Duration::from_millis(2);

/// 1, 2, the core count and twice the core count, without repeats.
fn worker_counts(cores: usize) -> Vec<usize> {
    let mut counts = vec![1, 2, cores, 2 * cores];
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// Every (engine, workers) pair measured, in table order; serial first.
fn configurations(workers: &[usize]) -> Vec<(Engine, usize)> {
    let mut all = vec![(Engine::Serial, 1)];
    for engine in [Engine::Threads, Engine::Processes] {
        all.extend(workers.iter().map(|w| (engine, *w)));
    }
    all.push((Engine::Async, 1));
    all
}

/// One checked run of a batch of `tasks` copies of `workload` at `size`: its wall time in seconds.
fn time_batch(
    runner: &Runner,
    workload: Workload,
    size: u64,
    tasks: usize,
    answer: u128,
) -> Result<f64, LabError> {
    let (results, seconds) = timed(|| workload.run(runner, size, tasks));
    for result in results {
        match result {
            Ok(value) if value == answer => {}
            Ok(value) => {
                return Err(LabError::engine(
                    format!("{} on {}", workload.name(), runner.mode()),
                    format!("a task returned {value} instead of {answer}"),
                ));
            }
            Err(error) => {
                return Err(LabError::engine(
                    format!("{} on {}", workload.name(), runner.mode()),
                    error,
                ));
            }
        }
    }
    Ok(seconds)
}

/// One series of timed batches: `workload` at `size` on `runner`, each checked against
/// `answer`; `measurement` gets the times.
fn trial<'r>(
    runner: &'r Runner,
    measurement: Measurement,
    workload: Workload,
    size: u64,
    sizes: &Sizes,
) -> Series<'r> {
    let (tasks, answer) = (sizes.tasks, workload.answer(size));
    let measurement = measurement
        .param("workload", workload.name())
        .param("tasks", tasks)
        .param("size", size);
    Series::of(measurement, sizes.repeat, move || {
        time_batch(runner, workload, size, tasks, answer)
    })
}

/// The batches are counted by their workers.
const COUNT: &str = "workers";

/// The timed batches, by workload, engine and workers.
type Batches<'a> = Timings<'a, Workload, Engine>;

/// All measurements (Rust's and CPython's), read back by language, workload, engine and workers.
struct Results<'a> {
    found: Findings<'a>,
    batches: Batches<'a>,
    cores: usize,
}

impl<'a> Results<'a> {
    fn new(found: Findings<'a>, cores: usize) -> Self {
        Self {
            found,
            batches: Timings::new(found, COUNT),
            cores,
        }
    }

    /// The speed-up of `engine` with `workers` over serial.
    fn speedup(
        &self,
        implementation: Implementation,
        workload: Workload,
        engine: Engine,
        workers: usize,
    ) -> Option<f64> {
        self.batches.speedup(
            implementation,
            workload,
            (engine, workers),
            (Engine::Serial, 1),
        )
    }

    /// [`speedup`](Self::speedup) with the range the quartiles allow.
    fn speedup_range(
        &self,
        implementation: Implementation,
        workload: Workload,
        engine: Engine,
        workers: usize,
    ) -> Option<Ratio> {
        self.batches.speedup_ratio(
            implementation,
            workload,
            (engine, workers),
            (Engine::Serial, 1),
        )
    }

    /// The languages that ran.
    fn implementations(&self) -> Vec<Implementation> {
        self.found.implementations()
    }

    fn python_ran(&self) -> bool {
        self.found.ran(Implementation::Python)
    }

    /// [`speedups`](Self::speedups) with their ranges.
    fn speedup_ratios(&self, engine: Engine, workers: usize) -> Vec<(String, Ratio)> {
        per_language_and_workload(
            &self.implementations(),
            Workload::ALL,
            Workload::name,
            |implementation, workload| {
                self.batches.speedup_ratio(
                    implementation,
                    workload,
                    (engine, workers),
                    (Engine::Serial, 1),
                )
            },
        )
    }

    /// `engine`'s speed-ups at `workers` for every language and workload that ran, with a label.
    fn speedups(&self, engine: Engine, workers: usize) -> Vec<(String, f64)> {
        self.batches.each(|implementation, workload| {
            self.speedup(implementation, workload, engine, workers)
        })
    }

    /// The best speed-up parallel workers may give: one per core, at most one per task.
    fn ideal(&self, workers: usize) -> f64 {
        workers.min(self.cores) as f64
    }
}

impl Experiment for CpuBound {
    fn about(&self) -> About {
        About {
            id: "cpu-bound",
            title: "CPU-bound work: serial, threads, processes, coroutines",
            seed_section: "2, 4",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let cores = bench.machine().cores;
        let workers = worker_counts(cores);
        let configs = configurations(&workers);
        let runners = configs
            .iter()
            .map(|&(engine, count)| {
                Runner::new(engine.mode(count, sizes.tasks))
                    .map_err(|e| LabError::engine(format!("starting {}", engine.name()), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Every engine is started and warmed first; then each round goes over all of them, so
        // that a burst of load from elsewhere falls on several engines, not on every sample
        // of one.
        let mut trials = Vec::new();
        for (runner, &(engine, count)) in runners.iter().zip(&configs) {
            for &workload in Workload::ALL {
                let measurement =
                    Measurement::new(engine.name(), Implementation::Rust, "s", Vec::new())
                        .param("workers", count);
                let size = workload.size(sizes, Implementation::Rust);
                trials.push(trial(runner, measurement, workload, size, sizes));
            }
        }
        // The serial runner, on CPython's smaller batch: the cost of interpreting.
        for &workload in Workload::ALL {
            let measurement =
                Measurement::new(SERIAL_PYTHON_BATCH, Implementation::Rust, "s", Vec::new());
            let size = workload.size(sizes, Implementation::Python);
            trials.push(trial(&runners[0], measurement, workload, size, sizes));
        }
        let mut plan = Plan::new();
        plan.rounds(trials);
        let worker_list: Vec<String> = workers.iter().map(usize::to_string).collect();
        plan.python(Baseline::new(
            "cpu_bound",
            include_str!("../../../python/cpu_bound.py"),
            [
                sizes.tasks.to_string(),
                sizes.python_primes_limit.to_string(),
                sizes.python_squares_n.to_string(),
                worker_list.join(","),
                sizes.python_repetitions.to_string(),
            ],
        ));
        plan.step(|measured| {
            gantt::record(
                sizes.gantt_work,
                COROUTINE_SLICE,
                sizes.gantt_repetitions,
                cores,
                measured,
            )
        });
        bench.run(plan)
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        let sizes = SIZES.at(findings.scale());
        let cores = findings.machine().cores;
        let workers = worker_counts(cores);
        let results = Results::new(*findings, cores);
        let mut notes = same_work_notes(&results, sizes);
        if cores < 2 {
            notes.push(
                "This machine gives the lab one core: no mode can run tasks in parallel here."
                    .to_owned(),
            );
        }
        notes.extend(disturbed_baseline_note(&results, &workers));
        let mut verdicts = speed_verdicts(&results);
        verdicts.extend(timeline_verdicts(findings, cores));
        Judgement {
            method: method(sizes, &workers, cores),
            table: table(&results, &configurations(&workers)),
            charts: Workload::ALL
                .iter()
                .map(|w| chart(&results, *w, &workers))
                .collect(),
            verdicts,
            notes,
        }
    }
}

fn method(sizes: &Sizes, workers: &[usize], cores: usize) -> String {
    format!(
        "A batch of {tasks} equal tasks — count_primes({primes}) (the seed's §4 trial \
         division) or sum_squares({squares}) (§2) — runs through triad::Runner in each mode: \
         serial; threads and processes with {workers} workers; async with all tasks on one \
         tokio event-loop thread (the task body computes without awaiting, like a CPU-bound \
         asyncio coroutine). Every engine starts and runs each batch once before timing \
         (pool start-up is not counted); then {reps} rounds each time every engine once, in \
         turn. Speed-up = serial median / median; efficiency = speed-up / min(workers, \
         {cores} cores). CPython runs the same algorithms on a smaller batch ({tasks} × \
         count_primes({py_primes}), {tasks} × sum_squares({py_squares})), {py_reps} rounds \
         likewise: serial, ThreadPoolExecutor, multiprocessing.Pool (started and warmed \
         before timing), and asyncio.gather on one loop. The timelines spin each of 2 tasks \
         for {work} ms of CPU time, reading the clock between tiny steps so that every span \
         drawn is time the task was really on a CPU ({gantt_reps} runs per setting).",
        tasks = sizes.tasks,
        primes = sizes.primes_limit,
        squares = sizes.squares_n,
        workers = workers
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        reps = sizes.repeat.samples,
        py_primes = sizes.python_primes_limit,
        py_squares = sizes.python_squares_n,
        py_reps = sizes.python_repetitions,
        work = sizes.gantt_work.as_millis(),
        gantt_reps = sizes.gantt_repetitions,
    )
}

/// Rust and CPython on the very same batch, serially: the cost of interpreting.
fn same_work_notes(results: &Results<'_>, sizes: &Sizes) -> Vec<String> {
    Workload::ALL
        .iter()
        .filter_map(|workload| {
            let rust = results.found.summary(
                Implementation::Rust,
                SERIAL_PYTHON_BATCH,
                &[("workload", workload.name().into())],
            )?;
            let python =
                results
                    .batches
                    .summary(Implementation::Python, *workload, Engine::Serial, 1)?;
            Some(format!(
                "Same work, one core: {} × {}({}) took {} in Rust and {} in CPython ({} faster).",
                sizes.tasks,
                workload.name(),
                workload.size(sizes, Implementation::Python),
                format_seconds(rust.median),
                format_seconds(python.median),
                times(python.median / rust.median),
            ))
        })
        .collect()
}

/// A note when some speed-up is beyond what the cores allow (more than 20 % over the ideal):
/// only a serial baseline slowed by other work on the machine gives that.
fn disturbed_baseline_note(results: &Results<'_>, workers: &[usize]) -> Option<String> {
    let mut impossible = Vec::new();
    for engine in [Engine::Threads, Engine::Processes, Engine::Async] {
        let counts: &[usize] = if engine == Engine::Async {
            &[1]
        } else {
            workers
        };
        for &count in counts {
            let ideal = match engine {
                Engine::Async => 1.0,
                _ => results.ideal(count),
            };
            impossible.extend(
                results
                    .speedups(engine, count)
                    .into_iter()
                    .filter(|(_, s)| *s > 1.2 * ideal)
                    .map(|(label, s)| (format!("{label}, {} {count}", engine.name()), s)),
            );
        }
    }
    (!impossible.is_empty()).then(|| {
        format!(
            "Some speed-ups are beyond what the cores allow ({}): the serial baseline was slowed \
             by other work on this machine while it ran, so read those rows with care.",
            listed(&impossible, times)
        )
    })
}

fn table(results: &Results<'_>, configs: &[(Engine, usize)]) -> Table {
    let mut table = Table::new([
        "workload",
        "mode",
        "workers",
        "Rust",
        "Rust speed-up",
        "Rust efficiency",
        "CPython",
        "CPython speed-up",
        "CPython efficiency",
    ]);
    for &workload in Workload::ALL {
        for &(engine, workers) in configs {
            let mut row = vec![
                workload.name().to_owned(),
                engine.name().to_owned(),
                match engine {
                    Engine::Async => "1 loop".to_owned(),
                    _ => workers.to_string(),
                },
            ];
            for implementation in [Implementation::Rust, Implementation::Python] {
                let cells = match (
                    results
                        .batches
                        .summary(implementation, workload, engine, workers),
                    results.speedup(implementation, workload, engine, workers),
                ) {
                    (Some(summary), Some(s)) => {
                        let used = match engine {
                            Engine::Threads | Engine::Processes => results.ideal(workers),
                            Engine::Serial | Engine::Async => 1.0,
                        };
                        [
                            format_with_spread(summary, format_seconds),
                            times(s),
                            format!("{:.0}%", 100.0 * s / used),
                        ]
                    }
                    _ => ["—".to_owned(), "—".to_owned(), "—".to_owned()],
                };
                row.extend(cells);
            }
            table.row(row);
        }
    }
    table
}

fn chart(results: &Results<'_>, workload: Workload, workers: &[usize]) -> Chart {
    let mut series = Vec::new();
    for implementation in results.implementations() {
        let Some(serial) = results
            .batches
            .summary(implementation, workload, Engine::Serial, 1)
        else {
            continue;
        };
        for engine in [Engine::Threads, Engine::Processes, Engine::Async] {
            let counts: &[usize] = if engine == Engine::Async {
                &[1]
            } else {
                workers
            };
            let points: Vec<Point> = counts
                .iter()
                .filter_map(|w| {
                    let run = results
                        .batches
                        .summary(implementation, workload, engine, *w)?;
                    Some(speedup_point(*w as f64, serial, run))
                })
                .collect();
            let label = match engine {
                Engine::Async => format!("{} async (one loop)", implementation.label()),
                _ => format!("{} {}", implementation.label(), engine.name()),
            };
            series.push(Line { label, points });
        }
    }
    series.push(Line {
        label: "ideal: min(workers, cores)".to_owned(),
        points: workers
            .iter()
            .map(|w| Point {
                x: *w as f64,
                y: results.ideal(*w),
                low: None,
                high: None,
            })
            .collect(),
    });
    Chart {
        title: format!("Speed-up over serial against workers: {}", workload.name()),
        kind: ChartKind::Line,
        x_label: "workers".to_owned(),
        y_label: "speed-up over serial (×)".to_owned(),
        series,
        ..Default::default()
    }
}

fn speed_verdicts(results: &Results<'_>) -> Vec<Verdict> {
    let cores = results.cores;
    // On one core nothing runs in parallel: every claim about parallelism depends on that.
    let judge = |claim: &str, quote: &str, finding: (Outcome, String)| {
        if cores < 2 {
            verdict(
                claim,
                quote,
                Outcome::Depends,
                format!("this machine gives the lab {cores} core: nothing can run in parallel"),
            )
        } else {
            verdict(claim, quote, finding.0, finding.1)
        }
    };
    let of = |implementation: Implementation, speedups: Vec<(String, f64)>| -> Vec<(String, f64)> {
        let prefix = format!("{} ", implementation.label());
        speedups
            .into_iter()
            .filter(|(label, _)| label.starts_with(&prefix))
            .collect()
    };
    let rust_threads = of(
        Implementation::Rust,
        results.speedups(Engine::Threads, cores),
    );
    let processes = results.speedups(Engine::Processes, cores);
    let of_ratios = |implementation: Implementation, all: Vec<(String, Ratio)>| {
        let prefix = format!("{} ", implementation.label());
        all.into_iter()
            .filter(|(label, _)| label.starts_with(&prefix))
            .collect::<Vec<_>>()
    };
    let python_thread_ratios = of_ratios(
        Implementation::Python,
        results.speedup_ratios(Engine::Threads, cores),
    );
    let process_ratios = results.speedup_ratios(Engine::Processes, cores);
    let mut verdicts = Vec::new();

    verdicts.push(judge(
        "A thread pool does not speed CPU-bound work up in Python (the GIL).",
        "线程池（GIL限制，性能差）",
        if !results.python_ran() {
            (
                Outcome::Depends,
                format!(
                    "CPython did not run; Rust threads ({cores} workers), which have no GIL: {}",
                    listed(&rust_threads, times)
                ),
            )
        } else {
            (
                outcome_of(&python_thread_ratios, |r| r.at_most(NO_SPEEDUP)),
                format!(
                    "speed-up of {cores} threads over serial: {}; Rust threads, without a GIL: {}",
                    listed_ratios(&python_thread_ratios),
                    listed(&rust_threads, times)
                ),
            )
        },
    ));

    verdicts.push(judge(
        "A process pool runs CPU-bound work truly in parallel, and fast.",
        "进程池（真正并行，性能好）",
        (
            outcome_of(&process_ratios, |r| {
                r.at_least(PARALLEL_SHARE * results.ideal(cores))
            }),
            format!(
                "speed-up of {cores} worker processes over serial: {}",
                listed_ratios(&process_ratios)
            ),
        ),
    ));

    let at_line = |ratios: &[(String, Ratio)], finding: &dyn Fn(Ratio) -> Finding| {
        ratios
            .iter()
            .fold(Finding::Holds, |all, (_, r)| all.and(finding(*r)))
    };
    let parallel_line = PARALLEL_SHARE * results.ideal(cores);
    let processes_parallel = if process_ratios.is_empty() {
        Finding::Fails
    } else {
        at_line(&process_ratios, &|r| r.at_least(parallel_line))
    };
    let python_threads_idle = at_line(&python_thread_ratios, &|r| r.at_most(NO_SPEEDUP));
    let rust_threads_parallel = at_line(
        &of_ratios(
            Implementation::Rust,
            results.speedup_ratios(Engine::Threads, cores),
        ),
        &|r| r.at_least(parallel_line),
    );
    let seen = format!(
        "{cores} workers — threads: {}; processes: {}",
        listed_ratios(&results.speedup_ratios(Engine::Threads, cores)),
        listed_ratios(&process_ratios)
    );
    let (outcome, why) = parallelism_outcome(
        processes_parallel,
        python_threads_idle,
        rust_threads_parallel,
        results.python_ran(),
    );
    verdicts.push(judge(
        "Parallelism is done with processes; threads and coroutines only interleave.",
        "**实现方式** | 线程、协程 | 多进程",
        (
            outcome,
            why.map_or(seen.clone(), |why| format!("{why} ({seen})")),
        ),
    ));

    let over = 2 * cores;
    let mut checks = Vec::new();
    let mut seen = Vec::new();
    for engine in [Engine::Threads, Engine::Processes] {
        for implementation in results.implementations() {
            if engine == Engine::Threads && implementation == Implementation::Python {
                continue;
            }
            for &workload in Workload::ALL {
                let (Some(at_cores), Some(beyond)) = (
                    results.speedup_range(implementation, workload, engine, cores),
                    results.speedup_range(implementation, workload, engine, over),
                ) else {
                    continue;
                };
                checks.push(
                    at_cores
                        .at_least(parallel_line)
                        .and(beyond.at_most(1.15 * results.ideal(cores))),
                );
                seen.push(format!(
                    "{} {} {}: {} → {}",
                    implementation.label(),
                    engine.name(),
                    workload.name(),
                    at_cores.shown(),
                    beyond.shown()
                ));
            }
        }
    }
    verdicts.push(judge(
        "Parallel speed-up needs several cores: workers beyond the core count add nothing.",
        "**CPU需求** | 单核可以 | 需要多核",
        (
            Outcome::from_findings(checks.iter().copied()),
            format!(
                "speed-up with {cores} → {over} workers on {cores} cores: {}",
                seen.join("; ")
            ),
        ),
    ));

    let coroutines = results.speedup_ratios(Engine::Async, 1);
    verdicts.push(verdict(
        "Coroutines give single-core concurrency only: no speed-up on CPU-bound work.",
        "**CPU利用** | 多核并行 | 受GIL限制 | 单核并发",
        outcome_of(&coroutines, |r| r.at_most(NO_SPEEDUP)),
        format!(
            "all tasks as coroutines on one loop, speed-up over serial: {}",
            listed_ratios(&coroutines)
        ),
    ));

    let outcome = share_of_ideal_outcome(&process_ratios, results.ideal(cores));
    let fractions: Vec<(String, f64)> = processes
        .iter()
        .map(|(label, s)| (label.clone(), 1.0 / s))
        .collect();
    verdicts.push(judge(
        "On n cores a process pool takes about 1/n of the serial time.",
        "在4核CPU上,耗时约为单线程的1/4",
        (
            outcome,
            format!(
                "{cores} cores, so about 1/{cores} of serial is predicted; {cores} processes \
                 took (fraction of serial): {}{}",
                listed(&fractions, |f| format!("{f:.2}")),
                if outcome == Outcome::Depends {
                    " — near, with start-up, dispatch and other load on the machine in the way"
                } else {
                    ""
                }
            ),
        ),
    ));
    verdicts
}

/// The verdict on "parallelism is done with processes; threads only interleave" from whether
/// processes ran in parallel, CPython's threads gave no speed-up and Rust's threads ran in
/// parallel (each beyond the noise, or within it), with why when it is not confirmed.
fn parallelism_outcome(
    processes_parallel: Finding,
    python_threads_idle: Finding,
    rust_threads_parallel: Finding,
    python_ran: bool,
) -> (Outcome, Option<&'static str>) {
    match (
        processes_parallel,
        python_threads_idle,
        rust_threads_parallel,
    ) {
        (Finding::Fails, _, _) => (
            Outcome::Refuted,
            Some("processes did not run in parallel here"),
        ),
        (_, Finding::Fails, _) => (
            Outcome::Refuted,
            Some("CPython's threads sped CPU work up too"),
        ),
        (Finding::WithinNoise, _, _) | (_, Finding::WithinNoise, _) => (
            Outcome::WithinNoise,
            Some("the processes' or CPython threads' speed-up is within noise of its line"),
        ),
        (_, _, Finding::Holds) => (
            Outcome::Depends,
            Some(if python_ran {
                "true of CPython, whose threads share one GIL; Rust threads run in parallel too"
            } else {
                "CPython did not run; Rust threads run in parallel too"
            }),
        ),
        (_, _, Finding::WithinNoise) => (
            Outcome::WithinNoise,
            Some("whether Rust threads ran in parallel is within noise"),
        ),
        (_, _, Finding::Fails) => (Outcome::Confirmed, None),
    }
}

/// The verdict on "n cores take about 1/n of serial" from each process speed-up's range as a
/// share of `ideal`: confirmed when every one reaches 0.8, refuted when one is below 0.5,
/// depends when all are at least 0.5 and one is below 0.8 beyond the noise, within noise when
/// a range straddles a line in a way that decides (and depends when nothing was measured).
fn share_of_ideal_outcome(speedups: &[(String, Ratio)], ideal: f64) -> Outcome {
    if speedups.is_empty() {
        return Outcome::Depends;
    }
    let near = |line: f64| {
        speedups
            .iter()
            .map(|(_, r)| r.at_least(line * ideal))
            .collect::<Vec<_>>()
    };
    let (close, half) = (near(0.8), near(0.5));
    if close.iter().all(|f| *f == Finding::Holds) {
        Outcome::Confirmed
    } else if half.contains(&Finding::Fails) {
        Outcome::Refuted
    } else if half.iter().all(|f| *f == Finding::Holds) && close.contains(&Finding::Fails) {
        Outcome::Depends
    } else {
        Outcome::WithinNoise
    }
}

fn timeline_verdicts(found: &Findings<'_>, cores: usize) -> Vec<Verdict> {
    // One recorded timeline per setting: its overlap and alternations are facts of that run.
    let mut checks = Vec::new();
    let mut seen = Vec::new();
    for setting in [Setting::Pinned, Setting::Coroutines] {
        if let Some(shown) = gantt::shown(found, setting) {
            let (overlap, alternations) = (shown.overlap, shown.alternations);
            checks.push(overlap < 0.05 && alternations >= 2.0);
            seen.push(format!(
                "{}: both running at once {:.0}% of the time, {alternations:.0} alternations",
                setting.name(),
                100.0 * overlap
            ));
        }
    }
    if let Some(shown) = gantt::shown(found, Setting::Free) {
        if cores >= 2 {
            checks.push(shown.overlap >= 0.5);
        }
        seen.push(format!(
            "{} ({cores} cores): both running at once {:.0}% of the time",
            Setting::Free.name(),
            100.0 * shown.overlap
        ));
    }
    let alternating = verdict(
        "Concurrency alternates tasks on one core; parallelism runs them at the same time.",
        "**执行方式** | 交替执行 | 同时执行",
        Outcome::from_checks(checks.iter().copied()),
        seen.join("; "),
    );

    let claim = "The kernel switches threads sharing a core every few milliseconds (e.g. 5 ms).";
    let quote = "定时器中断(如每5ms)触发";
    let slicing = match gantt::shown(found, Setting::Pinned).and_then(|shown| shown.run_lengths) {
        Some(run) => verdict(
            claim,
            quote,
            Outcome::from_findings([Ratio::measured(&run).inside(0.5e-3..=10e-3)]),
            format!(
                "a pinned thread ran {} (median of {} stretches, quartiles {} – {}) before \
                     the kernel switched to the other",
                format_seconds(run.median),
                run.n,
                format_seconds(run.p25),
                format_seconds(run.p75)
            ),
        ),
        _ => verdict(
            claim,
            quote,
            Outcome::Depends,
            "no thread was switched out while pinned (or pinning was refused)".to_owned(),
        ),
    };
    vec![alternating, slicing]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_counts_cover_one_two_cores_and_oversubscription() {
        assert_eq!(worker_counts(1), vec![1, 2]);
        assert_eq!(worker_counts(2), vec![1, 2, 4]);
        assert_eq!(worker_counts(8), vec![1, 2, 8, 16]);
    }

    #[test]
    fn configurations_start_serial_and_end_async() {
        let configs = configurations(&[1, 2]);
        assert_eq!(configs.first(), Some(&(Engine::Serial, 1)));
        assert_eq!(configs.last(), Some(&(Engine::Async, 1)));
        assert_eq!(configs.len(), 6);
    }

    fn measured(name: &str, implementation: Implementation, workers: usize, s: f64) -> Measurement {
        Measurement::new(name, implementation, "s", vec![s])
            .param("workload", "count_primes")
            .param("workers", workers)
    }

    #[test]
    fn verdicts_follow_the_numbers() {
        use Implementation::{Python, Rust};
        let rust = vec![
            measured("serial", Rust, 1, 1.0),
            measured("threads", Rust, 2, 0.5),
            measured("threads", Rust, 4, 0.5),
            measured("processes", Rust, 2, 0.52),
            measured("processes", Rust, 4, 0.51),
            measured("async", Rust, 1, 1.0),
        ];
        let python = vec![
            measured("serial", Python, 1, 1.0),
            measured("threads", Python, 2, 1.05),
            measured("processes", Python, 2, 0.55),
            measured("processes", Python, 4, 0.54),
            measured("async", Python, 1, 1.01),
        ];
        let all = [rust, python].concat();
        let machine = crate::machine::Machine::default();
        let results = Results::new(
            Findings::new(&all, crate::experiment::Scale::Quick, &machine),
            2,
        );
        let verdicts = speed_verdicts(&results);
        let outcomes: Vec<Outcome> = verdicts.iter().map(|v| v.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Confirmed, // CPython threads: no speed-up
                Outcome::Confirmed, // processes: ~2×
                Outcome::Depends,   // processes for parallelism: Rust threads too
                Outcome::Confirmed, // 4 workers on 2 cores: no more
                Outcome::Confirmed, // coroutines: 1×
                Outcome::Confirmed, // 1/2 of serial on 2 cores
            ]
        );
        let slow_processes = vec![
            measured("serial", Rust, 1, 1.0),
            measured("processes", Rust, 2, 1.2),
        ];
        let results = Results::new(
            Findings::new(&slow_processes, crate::experiment::Scale::Quick, &machine),
            2,
        );
        assert_eq!(speed_verdicts(&results)[1].outcome, Outcome::Refuted);
        assert_eq!(speed_verdicts(&results)[5].outcome, Outcome::Refuted);
    }

    #[test]
    fn composite_verdicts_are_within_noise_when_a_deciding_range_straddles_its_line() {
        let range = |low: f64, high: f64| {
            let ratio = Ratio {
                median: (low + high) / 2.0,
                low,
                high,
            };
            ("Rust count_primes".to_owned(), ratio)
        };
        // Speed-ups on 2 cores: 1/n of serial is 2×.
        assert_eq!(
            share_of_ideal_outcome(&[range(1.7, 1.9)], 2.0),
            Outcome::Confirmed
        );
        assert_eq!(
            share_of_ideal_outcome(&[range(1.2, 1.4)], 2.0),
            Outcome::Depends
        );
        assert_eq!(
            share_of_ideal_outcome(&[range(0.8, 0.9)], 2.0),
            Outcome::Refuted
        );
        assert_eq!(
            share_of_ideal_outcome(&[range(1.4, 1.8)], 2.0),
            Outcome::WithinNoise
        );
        assert_eq!(
            share_of_ideal_outcome(&[range(0.9, 1.2)], 2.0),
            Outcome::WithinNoise
        );
        assert_eq!(share_of_ideal_outcome(&[], 2.0), Outcome::Depends);
        use Finding::{Fails, Holds, WithinNoise};
        let outcome = |p, t, r| parallelism_outcome(p, t, r, true).0;
        assert_eq!(outcome(Holds, Holds, Fails), Outcome::Confirmed);
        assert_eq!(outcome(Holds, Holds, Holds), Outcome::Depends);
        assert_eq!(outcome(Fails, Holds, Fails), Outcome::Refuted);
        assert_eq!(outcome(Holds, Fails, Fails), Outcome::Refuted);
        assert_eq!(outcome(WithinNoise, Holds, Fails), Outcome::WithinNoise);
        assert_eq!(outcome(Holds, Holds, WithinNoise), Outcome::WithinNoise);
    }
}
