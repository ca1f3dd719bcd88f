//! `spawn-cost` (seed 5.1.1): what it costs to start a unit of concurrency and wait for its end —
//! a thread, a task on an event loop, and a process by each of the seed's start methods.
//!
//! Threads and tasks are started and joined one after another in batches; a sample is a batch's
//! time divided by its size. A bare `fork()` of this program is timed with its child's `_exit`
//! and the parent's `waitpid`. triad's worker processes are timed inside a one-worker pool that
//! replaces its worker after every task (`max_tasks_per_child(1)`): a batch of tasks one by one
//! costs one worker start, hello and task each, per start method (fork server, spawn, and fork
//! when this program is single-threaded, as triad's fork method requires). The CPython script
//! times `threading.Thread`, `asyncio.create_task` and `multiprocessing.Process` under fork,
//! forkserver and spawn, each started and joined.

use std::io;
use std::time::Instant;

use rustix::process::{Pid, WaitOptions, waitpid};
use triad::workloads::identity;
use triad::{ProcessPool, StartMethod};

use super::cost_support::{SideBySide, cell, ratio_cell};
use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Repeat};
use crate::python::Baseline;
use crate::results::{Implementation, Measurement, Table};
use crate::stats::{Summary, format_seconds, format_with_spread};
use crate::verdict::{Checks, Ratio, smaller};
use Implementation::{Python, Rust};

/// The `spawn-cost` experiment.
#[derive(Debug)]
pub(crate) struct SpawnCost;

names! {
    /// What is started, Rust's then CPython's (`python/spawn_cost.py` prints these).
    enum Name {
        Thread => "thread spawn + join",
        TaskOneThread => "tokio task spawn + await, current-thread runtime",
        TaskMultiThread => "tokio task spawn + await, multi-thread runtime",
        BareFork => "fork + _exit + waitpid",
        WorkerFork => "triad worker, fork",
        WorkerForkServer => "triad worker, fork server",
        WorkerSpawn => "triad worker, spawn",
        PyThread => "threading.Thread start + join",
        PyTask => "asyncio.create_task + await",
        PyFork => "multiprocessing.Process start + join, fork",
        PyForkServer => "multiprocessing.Process start + join, forkserver",
        PySpawn => "multiprocessing.Process start + join, spawn",
    }
}

/// One row of the table: what starts, and the Rust and CPython measurements that show it.
#[derive(Debug, Clone, Copy)]
struct Row {
    unit: &'static str,
    how: &'static str,
    rust: Name,
    python: Option<Name>,
}

const ROWS: &[Row] = &[
    Row {
        unit: "thread",
        how: "spawn + join",
        rust: Name::Thread,
        python: Some(Name::PyThread),
    },
    Row {
        unit: "coroutine",
        how: "spawn + await, one thread",
        rust: Name::TaskOneThread,
        python: Some(Name::PyTask),
    },
    Row {
        unit: "coroutine",
        how: "spawn + await, multi-thread runtime",
        rust: Name::TaskMultiThread,
        python: None,
    },
    Row {
        unit: "process",
        how: "fork (bare fork / Process)",
        rust: Name::BareFork,
        python: Some(Name::PyFork),
    },
    Row {
        unit: "process",
        how: "fork (triad worker / —)",
        rust: Name::WorkerFork,
        python: None,
    },
    Row {
        unit: "process",
        how: "forkserver",
        rust: Name::WorkerForkServer,
        python: Some(Name::PyForkServer),
    },
    Row {
        unit: "process",
        how: "spawn",
        rust: Name::WorkerSpawn,
        python: Some(Name::PySpawn),
    },
];

/// Sizes for one scale.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Every batch: one warm-up batch, then the samples.
    repeat: Repeat,
    /// Threads per batch.
    threads: usize,
    /// Tasks per batch.
    tasks: usize,
    /// Bare forks per batch.
    forks: usize,
    /// Worker starts per batch.
    workers: usize,
    python_repetitions: usize,
    python_threads: usize,
    python_tasks: usize,
    /// Processes started by fork and by forkserver.
    python_forks: usize,
    /// Processes started by spawn.
    python_spawns: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        repeat: Repeat::after_one(3),
        threads: 20,
        tasks: 200,
        forks: 10,
        workers: 4,
        python_repetitions: 3,
        python_threads: 20,
        python_tasks: 200,
        python_forks: 3,
        python_spawns: 2,
    },
    Sizes {
        repeat: Repeat::after_one(5),
        threads: 200,
        tasks: 5000,
        forks: 50,
        workers: 10,
        python_repetitions: 5,
        python_threads: 200,
        python_tasks: 5000,
        python_forks: 12,
        python_spawns: 5,
    },
    Sizes {
        repeat: Repeat::after_one(9),
        threads: 1000,
        tasks: 20_000,
        forks: 200,
        workers: 25,
        python_repetitions: 9,
        python_threads: 1000,
        python_tasks: 20_000,
        python_forks: 30,
        python_spawns: 12,
    },
);

/// A step that records `name`'s samples (seconds per start), `batch` per sample.
fn record<'r>(
    plan: &mut Plan<'r>,
    name: Name,
    batch: usize,
    measure: impl FnOnce() -> Result<Vec<f64>, LabError> + 'r,
) {
    plan.step(move |measured| {
        let samples = measure()?;
        measured
            .measurement(Measurement::new(name.name(), Rust, "s", samples).param("batch", batch));
        Ok(())
    });
}

impl Experiment for SpawnCost {
    fn about(&self) -> About {
        About {
            id: "spawn-cost",
            title: "Cost of starting a thread, a task, a process",
            seed_section: "5.1.1",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = *SIZES.at(bench.scale());
        let workers = bench.machine().cores.max(2);
        let mut plan = Plan::new();
        // First, while this experiment has started no thread: the fork method needs a
        // single-threaded program.
        plan.step(move |measured| {
            match worker_starts(StartMethod::Fork, sizes) {
                Ok(samples) => measured.measurement(
                    Measurement::new(Name::WorkerFork.name(), Rust, "s", samples)
                        .param("batch", sizes.workers),
                ),
                Err(error) => measured.note(format!(
                    "triad's fork start method was not measured: {error} (the lab runs with \
                     other threads; the bare fork row shows fork's own cost)."
                )),
            }
            Ok(())
        });
        record(&mut plan, Name::Thread, sizes.threads, move || {
            per_item(sizes.repeat, sizes.threads, || {
                std::thread::spawn(|| {})
                    .join()
                    .map_err(|_| LabError::engine("an empty thread", "it panicked"))
            })
        });
        record(&mut plan, Name::TaskOneThread, sizes.tasks, move || {
            let one_thread = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| LabError::os("starting a tokio runtime", e))?;
            task_starts(&one_thread, sizes)
        });
        plan.step(move |measured| {
            let multi_thread = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .map_err(|e| LabError::os("starting a tokio runtime", e))?;
            let samples = task_starts(&multi_thread, sizes)?;
            measured.measurement(
                Measurement::new(Name::TaskMultiThread.name(), Rust, "s", samples)
                    .param("batch", sizes.tasks)
                    .param("workers", workers),
            );
            Ok(())
        });
        record(&mut plan, Name::BareFork, sizes.forks, move || {
            per_item(sizes.repeat, sizes.forks, || {
                fork_and_wait().map_err(|e| LabError::os("fork", e))
            })
        });
        for (method, name) in [
            (StartMethod::ForkServer, Name::WorkerForkServer),
            (StartMethod::Spawn, Name::WorkerSpawn),
        ] {
            record(&mut plan, name, sizes.workers, move || {
                worker_starts(method, sizes).map_err(|e| {
                    LabError::engine(format!("starting workers by {}", name.name()), e)
                })
            });
        }
        plan.python(Baseline::new(
            "spawn_cost",
            include_str!("../../python/spawn_cost.py"),
            [
                sizes.python_repetitions,
                sizes.python_threads,
                sizes.python_tasks,
                sizes.python_forks,
                sizes.python_spawns,
            ],
        ));
        bench.run(plan)
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        judge(findings)
    }
}

/// Batches of `count` runs of `body`, as `repeat` says: seconds per run of each batch kept.
fn per_item(
    repeat: Repeat,
    count: usize,
    mut body: impl FnMut() -> Result<(), LabError>,
) -> Result<Vec<f64>, LabError> {
    let batches = repeat.time(|| (0..count).try_for_each(|_| body()))?;
    Ok(batches
        .into_iter()
        .map(|batch| batch / count as f64)
        .collect())
}

/// Tasks spawned and awaited one by one from a task on `runtime` (so that spawning happens on a
/// runtime thread, as in a real program): seconds per task of each batch kept.
fn task_starts(runtime: &tokio::runtime::Runtime, sizes: Sizes) -> Result<Vec<f64>, LabError> {
    let tasks = sizes.tasks;
    let failed = |e: tokio::task::JoinError| LabError::engine("tokio tasks", e);
    sizes.repeat.run(|| {
        let batch = runtime.spawn(async move {
            let start = Instant::now();
            for _ in 0..tasks {
                tokio::spawn(async {}).await?;
            }
            Ok(start.elapsed().as_secs_f64() / tasks as f64)
        });
        runtime.block_on(batch).map_err(failed)?.map_err(failed)
    })
}

/// Forks a child that exits at once and waits for it.
fn fork_and_wait() -> io::Result<()> {
    // SAFETY: the child calls only _exit, which is async-signal-safe, as a child forked from a
    // multi-threaded program requires.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: _exit ends the child at once, running nothing of the parent's.
        unsafe { libc::_exit(0) };
    }
    waitpid(Pid::from_raw(pid), WaitOptions::empty())?;
    Ok(())
}

/// Seconds per worker start: batches of one-by-one tasks on a one-worker pool that replaces
/// its worker after every task.
fn worker_starts(method: StartMethod, sizes: Sizes) -> Result<Vec<f64>, String> {
    let pool = ProcessPool::builder()
        .workers(1)
        .max_tasks_per_child(1)
        .start_method(method)
        .build()
        .map_err(|e| e.to_string())?;
    let batches = sizes.repeat.time(|| -> Result<(), String> {
        for result in pool.map_chunked(identity, 0..sizes.workers as u64, 1) {
            result.map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    pool.join();
    Ok(batches?
        .into_iter()
        .map(|batch| batch / sizes.workers as f64)
        .collect())
}

fn judge(found: &Findings<'_>) -> Judgement {
    let sizes = SIZES.at(found.scale());
    let measured = |implementation, name: Name| found.get(implementation, name.name(), &[]);
    let rust_median = |name| measured(Rust, name).map(|m| &m.summary);
    let python_median = |name| measured(Python, name).map(|m| &m.summary);

    let mut table = Table::new(["unit", "how", "Rust", "CPython", "CPython ÷ Rust"]);
    let mut bars = SideBySide::new();
    for row in ROWS {
        let rust = measured(Rust, row.rust);
        let cpython = row.python.and_then(|name| measured(Python, name));
        if rust.is_none() && cpython.is_none() {
            continue;
        }
        bars.add(
            format!("{} {}", row.unit, row.how),
            rust.into_iter().chain(cpython),
        );
        table.row([
            row.unit.to_owned(),
            row.how.to_owned(),
            cell(rust, format_seconds),
            cell(cpython, format_seconds),
            ratio_cell(cpython, rust),
        ]);
    }

    // A claim that one way of starting beats another: (language, faster, slower) per side.
    type Side<'a> = (
        &'a str,
        (&'a str, Option<&'a Summary>),
        (&'a str, Option<&'a Summary>),
    );
    let faster_verdict = |claim: &str, quote: &str, sides: [Side<'_>; 2]| {
        let mut checks = Checks::default();
        for (language, (fast_name, fast), (slow_name, slow)) in sides {
            if let (Some(fast), Some(slow)) = (fast, slow) {
                checks.find(
                    format!(
                        "{language}: {fast_name} {} vs {slow_name} {} ({})",
                        format_with_spread(fast, format_seconds),
                        format_with_spread(slow, format_seconds),
                        Ratio::of(slow, fast).shown()
                    ),
                    smaller(fast, slow),
                );
            }
        }
        checks.verdict(claim, quote)
    };
    let mut verdicts = vec![faster_verdict(
        "Copy-on-write makes fork fast: a forked process is ready sooner than a spawned one, \
         which starts a whole new program.",
        "加快fork速度",
        [
            (
                "Rust",
                (
                    "forked worker",
                    rust_median(Name::WorkerFork).or(rust_median(Name::WorkerForkServer)),
                ),
                ("spawned worker", rust_median(Name::WorkerSpawn)),
            ),
            (
                "CPython",
                ("fork", python_median(Name::PyFork)),
                ("spawn", python_median(Name::PySpawn)),
            ),
        ],
    )];
    let mut hybrid = Checks::default();
    for (language, fork, server, spawn) in [
        (
            "Rust",
            rust_median(Name::BareFork),
            rust_median(Name::WorkerForkServer),
            rust_median(Name::WorkerSpawn),
        ),
        (
            "CPython",
            python_median(Name::PyFork),
            python_median(Name::PyForkServer),
            python_median(Name::PySpawn),
        ),
    ] {
        if let (Some(fork), Some(server), Some(spawn)) = (fork, server, spawn) {
            hybrid.find(
                format!(
                    "{language}: fork {}, forkserver {}, spawn {}",
                    format_with_spread(fork, format_seconds),
                    format_with_spread(server, format_seconds),
                    format_with_spread(spawn, format_seconds)
                ),
                smaller(fork, server).and(smaller(server, spawn)),
            );
        }
    }
    verdicts.push(hybrid.verdict(
        "forkserver is a hybrid of the two: a start costs between fork's and spawn's.",
        "set_start_method('forkserver')  # 混合模式",
    ));
    verdicts.push(faster_verdict(
        "A thread is cheap to create (cheaper than a process).",
        "创建开销小",
        [
            (
                "Rust",
                ("thread", rust_median(Name::Thread)),
                ("bare fork", rust_median(Name::BareFork)),
            ),
            (
                "CPython",
                ("thread", python_median(Name::PyThread)),
                ("forked process", python_median(Name::PyFork)),
            ),
        ],
    ));
    verdicts.push(faster_verdict(
        "A coroutine is light and quick to start (quicker than a thread).",
        "协程轻量启动快",
        [
            (
                "Rust",
                ("task", rust_median(Name::TaskOneThread)),
                ("thread", rust_median(Name::Thread)),
            ),
            (
                "CPython",
                ("task", python_median(Name::PyTask)),
                ("thread", python_median(Name::PyThread)),
            ),
        ],
    ));

    Judgement {
        method: format!(
            "Rust: {} batches each (after a warm-up batch) of {} thread spawn+join, {} task \
             spawn+await, {} bare forks (child _exit, parent waitpid), and {} tasks one by one \
             on a one-worker triad pool that starts a new worker for every task, per start \
             method; a sample is a batch's time divided by its size. CPython: {} batches of {} \
             threading.Thread start+join and {} asyncio.create_task+await; {} \
             multiprocessing.Process start+join each for fork and forkserver and {} for spawn, \
             one sample each.",
            sizes.repeat.samples,
            sizes.threads,
            sizes.tasks,
            sizes.forks,
            sizes.workers,
            sizes.python_repetitions,
            sizes.python_threads,
            sizes.python_tasks,
            sizes.python_forks,
            sizes.python_spawns,
        ),
        table,
        charts: vec![bars.chart(
            "Start and join one unit (median, quartiles)",
            "unit and start method",
            "seconds per start + join",
        )],
        verdicts,
        notes: vec![
            "The fork rows do different work: Rust's bare fork child exits at once, CPython's \
             forked Process runs its bootstrap and target before exiting. triad's worker rows \
             include the worker's hello and one task, as a pool's first task would."
                .to_owned(),
        ],
    }
}
