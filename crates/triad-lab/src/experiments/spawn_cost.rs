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

use super::cost_support::{Checks, SideBySide, cell, ratio_cell};
use crate::error::LabError;
use crate::experiment::{Context, Experiment};
use crate::python::PythonOutput;
use crate::results::{ExperimentReport, Implementation, Measurement, Table};
use crate::stats::{format_seconds, time_each};

/// The `spawn-cost` experiment.
#[derive(Debug)]
pub(crate) struct SpawnCost;

const THREAD: &str = "thread spawn + join";
const TASK_ONE_THREAD: &str = "tokio task spawn + await, current-thread runtime";
const TASK_MULTI_THREAD: &str = "tokio task spawn + await, multi-thread runtime";
const BARE_FORK: &str = "fork + _exit + waitpid";
const WORKER_FORK: &str = "triad worker, fork";
const WORKER_FORK_SERVER: &str = "triad worker, fork server";
const WORKER_SPAWN: &str = "triad worker, spawn";
const PY_THREAD: &str = "threading.Thread start + join";
const PY_TASK: &str = "asyncio.create_task + await";
const PY_FORK: &str = "multiprocessing.Process start + join, fork";
const PY_FORK_SERVER: &str = "multiprocessing.Process start + join, forkserver";
const PY_SPAWN: &str = "multiprocessing.Process start + join, spawn";

/// One row of the table: what starts, and the Rust and CPython measurements that show it.
#[derive(Debug, Clone, Copy)]
struct Row {
    unit: &'static str,
    how: &'static str,
    rust: &'static str,
    python: Option<&'static str>,
}

const ROWS: &[Row] = &[
    Row {
        unit: "thread",
        how: "spawn + join",
        rust: THREAD,
        python: Some(PY_THREAD),
    },
    Row {
        unit: "coroutine",
        how: "spawn + await, one thread",
        rust: TASK_ONE_THREAD,
        python: Some(PY_TASK),
    },
    Row {
        unit: "coroutine",
        how: "spawn + await, multi-thread runtime",
        rust: TASK_MULTI_THREAD,
        python: None,
    },
    Row {
        unit: "process",
        how: "fork (bare fork / Process)",
        rust: BARE_FORK,
        python: Some(PY_FORK),
    },
    Row {
        unit: "process",
        how: "fork (triad worker / —)",
        rust: WORKER_FORK,
        python: None,
    },
    Row {
        unit: "process",
        how: "forkserver",
        rust: WORKER_FORK_SERVER,
        python: Some(PY_FORK_SERVER),
    },
    Row {
        unit: "process",
        how: "spawn",
        rust: WORKER_SPAWN,
        python: Some(PY_SPAWN),
    },
];

/// Sizes for one scale.
#[derive(Debug, Clone, Copy)]
struct Plan {
    repetitions: usize,
    /// Threads per batch.
    threads: usize,
    /// Tasks per batch.
    tasks: usize,
    /// Bare forks per batch.
    forks: usize,
    /// Worker starts per batch.
    workers: usize,
}

impl Experiment for SpawnCost {
    fn id(&self) -> &'static str {
        "spawn-cost"
    }

    fn title(&self) -> &'static str {
        "Cost of starting a thread, a task, a process"
    }

    fn seed_section(&self) -> &'static str {
        "5.1.1"
    }

    fn run(&self, ctx: &mut Context<'_>) -> Result<ExperimentReport, LabError> {
        let plan = Plan {
            repetitions: ctx.pick(3, 5, 9),
            threads: ctx.pick(20, 200, 1000),
            tasks: ctx.pick(200, 5000, 20_000),
            forks: ctx.pick(10, 50, 200),
            workers: ctx.pick(4, 10, 25),
        };
        let total = 8;
        let mut notes = Vec::new();
        let mut measurements = Vec::new();
        let mut record = |name: &str, batch: usize, samples: Vec<f64>| {
            measurements.push(
                Measurement::new(name, Implementation::Rust, "s", samples).param("batch", batch),
            );
        };

        // First, while this experiment has started no thread: the fork method needs a
        // single-threaded program.
        match worker_starts(StartMethod::Fork, plan) {
            Ok(samples) => record(WORKER_FORK, plan.workers, samples),
            Err(error) => notes.push(format!(
                "triad's fork start method was not measured: {error} (the lab runs with other \
                 threads; the bare fork row shows fork's own cost)."
            )),
        }
        ctx.progress(1, total);
        record(
            THREAD,
            plan.threads,
            per_item(plan.repetitions, plan.threads, || {
                std::thread::spawn(|| {})
                    .join()
                    .expect("an empty thread does not panic");
            }),
        );
        ctx.progress(2, total);
        let one_thread = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| LabError::os("starting a tokio runtime", e))?;
        record(
            TASK_ONE_THREAD,
            plan.tasks,
            task_starts(&one_thread, plan).map_err(|e| LabError::engine("tokio tasks", e))?,
        );
        let workers = triad::available_cores().max(2);
        let multi_thread = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
            .map_err(|e| LabError::os("starting a tokio runtime", e))?;
        let multi =
            task_starts(&multi_thread, plan).map_err(|e| LabError::engine("tokio tasks", e))?;
        drop(multi_thread);
        measurements.push(
            Measurement::new(TASK_MULTI_THREAD, Implementation::Rust, "s", multi)
                .param("batch", plan.tasks)
                .param("workers", workers),
        );
        ctx.progress(3, total);
        let forks = bare_forks(plan).map_err(|e| LabError::os("fork", e))?;
        measurements.push(
            Measurement::new(BARE_FORK, Implementation::Rust, "s", forks)
                .param("batch", plan.forks),
        );
        ctx.progress(4, total);
        for (method, name) in [
            (StartMethod::ForkServer, WORKER_FORK_SERVER),
            (StartMethod::Spawn, WORKER_SPAWN),
        ] {
            let samples = worker_starts(method, plan)
                .map_err(|e| LabError::engine(format!("starting workers by {name}"), e))?;
            measurements.push(
                Measurement::new(name, Implementation::Rust, "s", samples)
                    .param("batch", plan.workers),
            );
            ctx.progress(if method == StartMethod::Spawn { 6 } else { 5 }, total);
        }

        let python_sizes = [
            ctx.pick(3, 5, 9),
            ctx.pick(20, 200, 1000),
            ctx.pick(200, 5000, 20_000),
            ctx.pick(3, 12, 30),
            ctx.pick(2, 5, 12),
        ];
        let python = ctx.python(
            "spawn_cost",
            include_str!("../../python/spawn_cost.py"),
            &python_sizes.map(|n| n.to_string()),
        )?;
        ctx.progress(total, total);
        Ok(report(plan, python_sizes, measurements, python, notes))
    }
}

/// Runs `body` `count` times per batch, `repetitions` batches: seconds per run of each batch.
fn per_item(repetitions: usize, count: usize, mut body: impl FnMut()) -> Vec<f64> {
    body();
    time_each(repetitions, || (0..count).for_each(|_| body()))
        .into_iter()
        .map(|batch| batch / count as f64)
        .collect()
}

/// Tasks spawned and awaited one by one from a task on `runtime` (so that spawning happens on a
/// runtime thread, as in a real program).
fn task_starts(runtime: &tokio::runtime::Runtime, plan: Plan) -> Result<Vec<f64>, String> {
    runtime
        .block_on(runtime.spawn(async move {
            let mut samples = Vec::with_capacity(plan.repetitions);
            for repetition in 0..=plan.repetitions {
                let start = Instant::now();
                for _ in 0..plan.tasks {
                    tokio::spawn(async {})
                        .await
                        .expect("an empty task does not panic");
                }
                // The first batch warms the runtime up.
                if repetition > 0 {
                    samples.push(start.elapsed().as_secs_f64() / plan.tasks as f64);
                }
            }
            samples
        }))
        .map_err(|e| e.to_string())
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

fn bare_forks(plan: Plan) -> io::Result<Vec<f64>> {
    fork_and_wait()?;
    let mut samples = Vec::with_capacity(plan.repetitions);
    for _ in 0..plan.repetitions {
        let start = Instant::now();
        for _ in 0..plan.forks {
            fork_and_wait()?;
        }
        samples.push(start.elapsed().as_secs_f64() / plan.forks as f64);
    }
    Ok(samples)
}

/// Seconds per worker start: batches of one-by-one tasks on a one-worker pool that replaces
/// its worker after every task.
fn worker_starts(method: StartMethod, plan: Plan) -> Result<Vec<f64>, String> {
    let pool = ProcessPool::builder()
        .workers(1)
        .max_tasks_per_child(1)
        .start_method(method)
        .build()
        .map_err(|e| e.to_string())?;
    let run_batch = || -> Result<(), String> {
        for result in pool.map_chunked(identity, 0..plan.workers as u64, 1) {
            result.map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    run_batch()?;
    let mut samples = Vec::with_capacity(plan.repetitions);
    for _ in 0..plan.repetitions {
        let start = Instant::now();
        run_batch()?;
        samples.push(start.elapsed().as_secs_f64() / plan.workers as f64);
    }
    pool.join();
    Ok(samples)
}

fn report(
    plan: Plan,
    python_sizes: [usize; 5],
    mut measurements: Vec<Measurement>,
    python: Option<PythonOutput>,
    mut notes: Vec<String>,
) -> ExperimentReport {
    let python = crate::python::measurements_and_notes(python, &mut notes);
    let find = |set: &[Measurement], name: &str| set.iter().find(|m| m.name == name).cloned();
    let rust_median = |name| find(&measurements, name).map(|m| m.median());
    let python_median = |name| find(&python, name).map(|m| m.median());

    let mut table = Table::new(["unit", "how", "Rust", "CPython", "CPython ÷ Rust"]);
    let mut bars = SideBySide::new();
    for row in ROWS {
        let rust = find(&measurements, row.rust);
        let cpython = row.python.and_then(|name| find(&python, name));
        if rust.is_none() && cpython.is_none() {
            continue;
        }
        bars.add(
            format!("{} {}", row.unit, row.how),
            rust.iter().chain(&cpython),
        );
        table.row([
            row.unit.to_owned(),
            row.how.to_owned(),
            cell(rust.as_ref(), format_seconds),
            cell(cpython.as_ref(), format_seconds),
            ratio_cell(cpython.as_ref(), rust.as_ref()),
        ]);
    }

    // A claim that one way of starting beats another: (language, faster, slower) per side.
    type Side<'a> = (&'a str, (&'a str, Option<f64>), (&'a str, Option<f64>));
    let faster_verdict = |claim: &str, quote: &str, sides: [Side<'_>; 2]| {
        let mut checks = Checks::default();
        for (language, (fast_name, fast), (slow_name, slow)) in sides {
            if let (Some(fast), Some(slow)) = (fast, slow) {
                checks.check(
                    format!(
                        "{language}: {fast_name} {} vs {slow_name} {}",
                        format_seconds(fast),
                        format_seconds(slow)
                    ),
                    fast < slow,
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
                    rust_median(WORKER_FORK).or(rust_median(WORKER_FORK_SERVER)),
                ),
                ("spawned worker", rust_median(WORKER_SPAWN)),
            ),
            (
                "CPython",
                ("fork", python_median(PY_FORK)),
                ("spawn", python_median(PY_SPAWN)),
            ),
        ],
    )];
    let mut hybrid = Checks::default();
    for (language, fork, server, spawn) in [
        (
            "Rust",
            rust_median(BARE_FORK),
            rust_median(WORKER_FORK_SERVER),
            rust_median(WORKER_SPAWN),
        ),
        (
            "CPython",
            python_median(PY_FORK),
            python_median(PY_FORK_SERVER),
            python_median(PY_SPAWN),
        ),
    ] {
        if let (Some(fork), Some(server), Some(spawn)) = (fork, server, spawn) {
            hybrid.check(
                format!(
                    "{language}: fork {}, forkserver {}, spawn {}",
                    format_seconds(fork),
                    format_seconds(server),
                    format_seconds(spawn)
                ),
                fork <= server && server <= spawn,
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
                ("thread", rust_median(THREAD)),
                ("bare fork", rust_median(BARE_FORK)),
            ),
            (
                "CPython",
                ("thread", python_median(PY_THREAD)),
                ("forked process", python_median(PY_FORK)),
            ),
        ],
    ));
    verdicts.push(faster_verdict(
        "A coroutine is light and quick to start (quicker than a thread).",
        "协程轻量启动快",
        [
            (
                "Rust",
                ("task", rust_median(TASK_ONE_THREAD)),
                ("thread", rust_median(THREAD)),
            ),
            (
                "CPython",
                ("task", python_median(PY_TASK)),
                ("thread", python_median(PY_THREAD)),
            ),
        ],
    ));

    notes.push(
        "The fork rows do different work: Rust's bare fork child exits at once, CPython's \
         forked Process runs its bootstrap and target before exiting. triad's worker rows \
         include the worker's hello and one task, as a pool's first task would."
            .to_owned(),
    );
    let [repetitions, threads, tasks, forkserver, spawn] = python_sizes;
    measurements.extend(python);
    ExperimentReport {
        method: format!(
            "Rust: {} batches each of {} thread spawn+join, {} task spawn+await (after a \
             warm-up batch), {} bare forks (child _exit, parent waitpid), and {} tasks one by \
             one on a one-worker triad pool that starts a new worker for every task, per start \
             method; a sample is a batch's time divided by its size. CPython: {repetitions} \
             batches of {threads} threading.Thread start+join and {tasks} \
             asyncio.create_task+await; {forkserver} multiprocessing.Process start+join each \
             for fork and forkserver and {spawn} for spawn, one sample each.",
            plan.repetitions, plan.threads, plan.tasks, plan.forks, plan.workers,
        ),
        measurements,
        table,
        charts: vec![bars.chart(
            "Start and join one unit (median, quartiles)",
            "unit and start method",
            "seconds per start + join",
        )],
        verdicts,
        notes,
        ..Default::default()
    }
}
