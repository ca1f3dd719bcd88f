//! `race` (seed §3 and §8.4, pitfall 2): the seed's shared counter, incremented by 4 threads, 4
//! processes or 4 coroutines at once — without a lock (updates lost: expected − final), with a
//! lock, and with an atomic `fetch_add` — and what one increment costs each way.
//!
//! Threads share an `AtomicU64`: the unlocked increment is a separate load, a pause and a store
//! (racy by design, yet defined behaviour), the same read-pause-write as triad's
//! [`increment_unlocked`], which the processes run on a [`SharedValue`] in shared memory; the
//! processes are workers of a [`ProcessPool`] that receive the value's memfd in their input.
//! Each worker waits at a start barrier, then times its own loop on the monotonic clock; the
//! time per increment is the span from the first start to the last end over all increments.
//! Coroutines are tokio tasks on one thread, with and without an `.await` between read and
//! write. CPython runs the seed's own code (`counter += 1`, `Value.value += 1`, a dict in
//! coroutines) beside a read-call-write variant, `threading.Lock` and `get_lock()`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use triad::shm::{increment_atomic, increment_locked, increment_unlocked};
use triad::{AtomicValue, ProcessPool, SharedValue};

use super::findings;
use crate::error::LabError;
use crate::experiment::{Context, Experiment};
use crate::python::PythonOutput;
use crate::results::{
    Chart, ChartKind, ExperimentReport, Implementation, Measurement, Outcome, Point, Scale, Series,
    Table, Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread};

/// The seed's 4 threads, 4 processes and 4 coroutines.
const WORKERS: usize = 4;

/// How long a worker process waits at the start barrier for the others before it starts alone.
const BARRIER_DEADLINE: Duration = Duration::from_secs(2);

/// The shared counter of seed §3.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Race;

/// One way of incrementing, as a row of the table and a bar of the charts.
struct Variant {
    /// The measurement names' prefix, the same in the CPython script.
    key: &'static str,
    /// The row's label.
    label: &'static str,
    /// What Rust runs, if it has this variant.
    rust: Option<&'static str>,
    /// What CPython runs, if it has this variant.
    python: Option<&'static str>,
}

const VARIANTS: [Variant; 10] = [
    Variant {
        key: "serial",
        label: "1 thread, nothing shared",
        rust: Some("x = black_box(x) + 1"),
        python: Some("counter += 1, one thread"),
    },
    Variant {
        key: "threads-unlocked",
        label: "threads, no lock",
        rust: Some("load; pause; store (AtomicU64)"),
        python: Some("counter += 1 (the seed's code)"),
    },
    Variant {
        key: "threads-unlocked-call",
        label: "threads, no lock, call between",
        rust: None,
        python: Some("v = counter; f(); counter = v + 1"),
    },
    Variant {
        key: "threads-lock",
        label: "threads, lock",
        rust: Some("std Mutex"),
        python: Some("with threading.Lock()"),
    },
    Variant {
        key: "threads-atomic",
        label: "threads, atomic",
        rust: Some("fetch_add"),
        python: None,
    },
    Variant {
        key: "processes-unlocked",
        label: "processes, no lock",
        rust: Some("shm::increment_unlocked"),
        python: Some("Value.value += 1 (the seed's code)"),
    },
    Variant {
        key: "processes-lock",
        label: "processes, lock",
        rust: Some("shm::increment_locked (robust pthread mutex)"),
        python: Some("with value.get_lock()"),
    },
    Variant {
        key: "processes-atomic",
        label: "processes, atomic",
        rust: Some("shm::increment_atomic (fetch_add)"),
        python: None,
    },
    Variant {
        key: "coroutines",
        label: "coroutines, no await inside",
        rust: Some("Rc<Cell<u64>>, tokio current thread"),
        python: Some("counter['value'] += 1 (the seed's code)"),
    },
    Variant {
        key: "coroutines-await",
        label: "coroutines, await between",
        rust: Some("get; yield_now().await; set"),
        python: Some("v = c['value']; await sleep(0); c['value'] = v + 1"),
    },
];

/// Sizes for one scale: increments per worker, and repetitions.
struct Sizes {
    increments: u64,
    repetitions: usize,
    python_thread_increments: u64,
    python_process_increments: u64,
    python_await_increments: u64,
    python_repetitions: usize,
}

/// What one variant gave in one implementation: lost updates and seconds per increment, one
/// sample per repetition.
#[derive(Debug, Default)]
struct Runs {
    expected: u64,
    lost: Vec<f64>,
    seconds_per_increment: Vec<f64>,
    /// Repetitions in which some worker process started before the others had arrived.
    unsynchronised_starts: usize,
}

impl Runs {
    fn push(&mut self, expected: u64, final_count: u64, seconds: f64) {
        self.expected = expected;
        self.lost.push(expected.saturating_sub(final_count) as f64);
        self.seconds_per_increment.push(seconds / expected as f64);
    }
}

impl Experiment for Race {
    fn id(&self) -> &'static str {
        "race"
    }

    fn title(&self) -> &'static str {
        "Shared counter: lost updates without a lock, and the cost of a lock or an atomic"
    }

    fn seed_section(&self) -> &'static str {
        "3, 8.4"
    }

    fn run(&self, ctx: &mut Context<'_>) -> Result<ExperimentReport, LabError> {
        let sizes = ctx.pick(
            Sizes {
                increments: 20_000,
                repetitions: 2,
                python_thread_increments: 20_000,
                python_process_increments: 5_000,
                python_await_increments: 2_000,
                python_repetitions: 2,
            },
            Sizes {
                increments: 100_000,
                repetitions: 5,
                python_thread_increments: 100_000,
                python_process_increments: 25_000,
                python_await_increments: 20_000,
                python_repetitions: 3,
            },
            Sizes {
                increments: 1_000_000,
                repetitions: 10,
                python_thread_increments: 1_000_000,
                python_process_increments: 100_000,
                python_await_increments: 100_000,
                python_repetitions: 5,
            },
        );
        let steps = 3 * sizes.repetitions as u64 + 2;
        let mut rust: Vec<(&str, Runs)> = Vec::new();

        rust.push(("serial", serial(sizes.increments, sizes.repetitions)));
        rust.extend(threads(&sizes));
        ctx.progress(sizes.repetitions as u64, steps);
        rust.extend(processes(&sizes)?);
        ctx.progress(2 * sizes.repetitions as u64, steps);
        rust.extend(coroutines(&sizes)?);
        ctx.progress(3 * sizes.repetitions as u64, steps);

        let python = ctx.python(
            "race",
            include_str!("../../python/race.py"),
            &[
                WORKERS.to_string(),
                sizes.python_thread_increments.to_string(),
                sizes.python_process_increments.to_string(),
                sizes.python_await_increments.to_string(),
                sizes.python_repetitions.to_string(),
            ],
        )?;
        ctx.progress(steps, steps);

        let mut report = ExperimentReport {
            method: format!(
                "{WORKERS} workers each add 1 to one shared counter {} times (Rust), {} repetitions; \
                 lost updates = expected − final. Threads share an AtomicU64 (no lock: a load, a \
                 spin-loop pause and a store), processes are {WORKERS} ProcessPool workers on a \
                 counter in a memfd (triad's increment_unlocked and increment_atomic on an \
                 AtomicValue<u64>, increment_locked on a SharedValue<u64>), \
                 coroutines are {WORKERS} tokio tasks on one thread. Workers start together at a \
                 barrier and time their own loops; time per increment = (last end − first \
                 start) ÷ all increments. CPython 3 runs the seed's code with {} increments per \
                 thread, {} per process (multiprocessing.Value, fork) and {} per coroutine when \
                 an await sits inside, {} repetitions.",
                sizes.increments,
                sizes.repetitions,
                sizes.python_thread_increments,
                sizes.python_process_increments,
                sizes.python_await_increments,
                sizes.python_repetitions,
            ),
            ..Default::default()
        };
        for (key, runs) in &rust {
            report
                .measurements
                .extend(measurements(key, runs, Implementation::Rust));
            if runs.unsynchronised_starts > 0 {
                report.notes.push(format!(
                    "{key}: in {} of {} repetitions a worker process waited {} s at the start \
                     barrier and started alone; those runs overlap less.",
                    runs.unsynchronised_starts,
                    runs.lost.len(),
                    BARRIER_DEADLINE.as_secs()
                ));
            }
        }
        findings::add_python(&mut report, python.as_ref());
        let results = Results {
            rust: &rust,
            python: python.as_ref(),
        };
        report.table = results.table();
        report.charts = results.charts();
        report.verdicts = results.verdicts();
        report.notes.push(results.legend());
        Ok(report)
    }
}

/// The raw samples of one variant as measurements (the same names as the CPython script's).
fn measurements(key: &str, runs: &Runs, implementation: Implementation) -> [Measurement; 2] {
    let per_worker = runs.expected / WORKERS as u64;
    [
        Measurement::new(
            format!("{key}/lost"),
            implementation,
            "count",
            runs.lost.clone(),
        )
        .param("workers", WORKERS)
        .param("expected", runs.expected)
        .param("increments", per_worker),
        Measurement::new(
            format!("{key}/per-increment"),
            implementation,
            "s",
            runs.seconds_per_increment.clone(),
        )
        .param("workers", WORKERS)
        .param("increments", per_worker),
    ]
}

/// The reference: one thread increments its own counter.
fn serial(increments: u64, repetitions: usize) -> Runs {
    let total = increments * WORKERS as u64;
    let mut runs = Runs::default();
    for _ in 0..=repetitions {
        let started = Instant::now();
        let mut count = 0_u64;
        for _ in 0..total {
            count = std::hint::black_box(count) + 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        runs.push(total, count, seconds);
    }
    drop_warm_up(runs)
}

/// Drops the first (warm-up) repetition.
fn drop_warm_up(mut runs: Runs) -> Runs {
    runs.lost.remove(0);
    runs.seconds_per_increment.remove(0);
    runs
}

/// `WORKERS` threads run `increment` `increments` times each on one `counter`, started together
/// at a barrier; returns the span from the first start to the last end, in seconds.
fn race_threads<C: Sync>(increments: u64, counter: &C, increment: fn(&C)) -> f64 {
    let barrier = Barrier::new(WORKERS);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..increments {
                        increment(counter);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a counting thread panicked"))
            .collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("WORKERS > 0");
    let last = spans.iter().map(|s| s.1).max().expect("WORKERS > 0");
    (last - first).as_secs_f64()
}

fn unlocked_increment(counter: &AtomicU64) {
    let value = counter.load(Ordering::Relaxed);
    std::hint::spin_loop();
    counter.store(value + 1, Ordering::Relaxed);
}

fn atomic_increment(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn mutex_increment(counter: &Mutex<u64>) {
    *counter.lock().unwrap_or_else(|p| p.into_inner()) += 1;
}

/// The three thread variants, each after a warm-up repetition.
fn threads(sizes: &Sizes) -> Vec<(&'static str, Runs)> {
    let expected = sizes.increments * WORKERS as u64;
    let atomic_variant = |increment: fn(&AtomicU64)| {
        let mut runs = Runs::default();
        for _ in 0..=sizes.repetitions {
            let counter = AtomicU64::new(0);
            let seconds = race_threads(sizes.increments, &counter, increment);
            runs.push(expected, counter.into_inner(), seconds);
        }
        drop_warm_up(runs)
    };
    let unlocked = atomic_variant(unlocked_increment);
    let atomic = atomic_variant(atomic_increment);
    let mut locked = Runs::default();
    for _ in 0..=sizes.repetitions {
        let counter = Mutex::new(0_u64);
        let seconds = race_threads(sizes.increments, &counter, mutex_increment);
        let count = counter.into_inner().unwrap_or_else(|p| p.into_inner());
        locked.push(expected, count, seconds);
    }
    vec![
        ("threads-unlocked", unlocked),
        ("threads-lock", drop_warm_up(locked)),
        ("threads-atomic", atomic),
    ]
}

/// How a worker process increments the shared counter.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum SharedIncrement {
    Unlocked,
    Locked,
    Atomic,
}

/// What a worker process gets: the counters, the start barrier, and what to do.
#[derive(Debug, Serialize, Deserialize)]
struct CounterJob {
    /// The counter under the process-shared lock (`Locked`).
    locked: SharedValue<u64>,
    /// The atomic counter (`Unlocked`: load then store; `Atomic`: `fetch_add`).
    atomic: AtomicValue<u64>,
    /// How many workers have arrived at the start barrier.
    arrived: AtomicValue<u64>,
    increments: u64,
    how: SharedIncrement,
}

/// When a worker's loop started and ended (monotonic ns), and whether it waited for everyone.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct CounterSpan {
    start_ns: u64,
    end_ns: u64,
    all_arrived: bool,
}

/// A worker process's share of the shared counter: waits until every worker has arrived (or the
/// deadline passes), then increments `increments` times.
#[triad::task]
fn count_shared(job: CounterJob) -> CounterSpan {
    let arrived = job.arrived.atomic();
    arrived.fetch_add(1, Ordering::AcqRel);
    let deadline = Instant::now() + BARRIER_DEADLINE;
    let mut all_arrived = true;
    while arrived.load(Ordering::Acquire) < WORKERS as u64 {
        if Instant::now() > deadline {
            all_arrived = false;
            break;
        }
        std::thread::yield_now();
    }
    let start_ns = triad::now_ns();
    for _ in 0..job.increments {
        match job.how {
            SharedIncrement::Unlocked => increment_unlocked(&job.atomic),
            SharedIncrement::Locked => {
                increment_locked(&job.locked).expect("the shared lock works");
            }
            SharedIncrement::Atomic => increment_atomic(&job.atomic),
        }
    }
    CounterSpan {
        start_ns,
        end_ns: triad::now_ns(),
        all_arrived,
    }
}

/// One run of `WORKERS` worker processes on a fresh shared counter: (final count, seconds,
/// whether all started together).
fn race_processes(
    pool: &ProcessPool,
    increments: u64,
    how: SharedIncrement,
) -> Result<(u64, f64, bool), LabError> {
    let locked = SharedValue::new(0_u64).map_err(|e| LabError::engine("shared counter", e))?;
    let atomic = AtomicValue::new(0_u64).map_err(|e| LabError::engine("shared counter", e))?;
    let arrived = AtomicValue::new(0_u64).map_err(|e| LabError::engine("start barrier", e))?;
    let jobs = (0..WORKERS).map(|_| CounterJob {
        locked: locked.clone(),
        atomic: atomic.clone(),
        arrived: arrived.clone(),
        increments,
        how,
    });
    let spans = pool
        .map_chunked(count_shared, jobs, 1)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LabError::engine("a counting worker", e))?;
    let first = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let last = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
    let together = spans.iter().all(|s| s.all_arrived);
    let count = match how {
        SharedIncrement::Locked => locked.get(),
        SharedIncrement::Unlocked | SharedIncrement::Atomic => atomic.get(),
    };
    Ok((count, last.saturating_sub(first) as f64 / 1e9, together))
}

/// The three process variants on one pool of `WORKERS` workers, after a warm-up run.
fn processes(sizes: &Sizes) -> Result<Vec<(&'static str, Runs)>, LabError> {
    let pool = ProcessPool::new(WORKERS).map_err(|e| LabError::engine("process pool", e))?;
    race_processes(&pool, 1_000, SharedIncrement::Atomic)?;
    let expected = sizes.increments * WORKERS as u64;
    let mut variants = Vec::new();
    for (key, how) in [
        ("processes-unlocked", SharedIncrement::Unlocked),
        ("processes-lock", SharedIncrement::Locked),
        ("processes-atomic", SharedIncrement::Atomic),
    ] {
        let mut runs = Runs::default();
        for _ in 0..sizes.repetitions {
            let (count, seconds, together) = race_processes(&pool, sizes.increments, how)?;
            runs.push(expected, count, seconds);
            runs.unsynchronised_starts += usize::from(!together);
        }
        variants.push((key, runs));
    }
    pool.join();
    Ok(variants)
}

/// `WORKERS` tasks on one thread's event loop increment one `Rc<Cell<u64>>`, with or without
/// yielding to the loop between the read and the write; (final count, seconds).
fn race_coroutines(
    runtime: &tokio::runtime::Runtime,
    increments: u64,
    await_between: bool,
) -> (u64, f64) {
    let local = tokio::task::LocalSet::new();
    let counter = Rc::new(Cell::new(0_u64));
    let started = Instant::now();
    local.block_on(runtime, async {
        let tasks: Vec<_> = (0..WORKERS)
            .map(|_| {
                let counter = Rc::clone(&counter);
                tokio::task::spawn_local(async move {
                    for _ in 0..increments {
                        let value = counter.get();
                        if await_between {
                            tokio::task::yield_now().await;
                        }
                        counter.set(value + 1);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a counting task panicked");
        }
    });
    (counter.get(), started.elapsed().as_secs_f64())
}

/// The two coroutine variants, each after a warm-up repetition.
fn coroutines(sizes: &Sizes) -> Result<Vec<(&'static str, Runs)>, LabError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| LabError::os("tokio current-thread runtime", e))?;
    let expected = sizes.increments * WORKERS as u64;
    let mut variants = Vec::new();
    for (key, await_between) in [("coroutines", false), ("coroutines-await", true)] {
        let mut runs = Runs::default();
        for _ in 0..=sizes.repetitions {
            let (count, seconds) = race_coroutines(&runtime, sizes.increments, await_between);
            runs.push(expected, count, seconds);
        }
        variants.push((key, drop_warm_up(runs)));
    }
    Ok(variants)
}

/// Everything measured, for the table, charts and verdicts.
struct Results<'a> {
    rust: &'a [(&'a str, Runs)],
    python: Option<&'a PythonOutput>,
}

/// One variant's lost updates and time per increment in one implementation.
struct Figures {
    expected: f64,
    lost: Summary,
    per_increment: Summary,
}

impl Figures {
    fn lost_fraction(&self) -> f64 {
        self.lost.median / self.expected
    }
}

impl Results<'_> {
    fn rust(&self, key: &str) -> Option<Figures> {
        let (_, runs) = self.rust.iter().find(|(k, _)| *k == key)?;
        Some(Figures {
            expected: runs.expected as f64,
            lost: Summary::of(&runs.lost),
            per_increment: Summary::of(&runs.seconds_per_increment),
        })
    }

    fn python(&self, key: &str) -> Option<Figures> {
        let output = self.python?;
        let lost = output.find(&format!("{key}/lost"), &[])?;
        let per_increment = output.find(&format!("{key}/per-increment"), &[])?;
        Some(Figures {
            expected: lost.params.get("expected")?.as_f64()?,
            lost: lost.summary,
            per_increment: per_increment.summary,
        })
    }

    fn table(&self) -> Table {
        let mut table = Table::new([
            "variant",
            "Rust: lost",
            "Rust: per increment",
            "CPython: lost",
            "CPython: per increment",
            "CPython ÷ Rust",
        ]);
        let cells = |figures: &Option<Figures>| match figures {
            Some(f) => [
                format_lost(f),
                format_with_spread(&f.per_increment, format_seconds),
            ],
            None => ["—".to_owned(), "—".to_owned()],
        };
        for variant in &VARIANTS {
            let rust = self.rust(variant.key);
            let python = self.python(variant.key);
            let ratio = match (&rust, &python) {
                (Some(r), Some(p)) if r.per_increment.median > 0.0 => {
                    format!("{:.0}×", p.per_increment.median / r.per_increment.median)
                }
                _ => "—".to_owned(),
            };
            let [rust_lost, rust_cost] = cells(&rust);
            let [python_lost, python_cost] = cells(&python);
            table.row([
                variant.label.to_owned(),
                rust_lost,
                rust_cost,
                python_lost,
                python_cost,
                ratio,
            ]);
        }
        table
    }

    /// What each row runs, for the notes.
    fn legend(&self) -> String {
        let rows: Vec<String> = VARIANTS
            .iter()
            .map(|v| {
                let python = v.python.filter(|_| self.python.is_some());
                format!(
                    "{}: Rust {}, CPython {}",
                    v.label,
                    v.rust.unwrap_or("—"),
                    python.unwrap_or("—")
                )
            })
            .collect();
        format!("What each row runs — {}.", rows.join("; "))
    }

    fn charts(&self) -> Vec<Chart> {
        let categories: Vec<String> = VARIANTS.iter().map(|v| v.label.to_owned()).collect();
        let series = |label: &str,
                      figures: &dyn Fn(&str) -> Option<Figures>,
                      value: fn(&Figures) -> Point| Series {
            label: label.to_owned(),
            points: VARIANTS
                .iter()
                .enumerate()
                .filter_map(|(index, v)| {
                    figures(v.key).map(|f| Point {
                        x: index as f64,
                        ..value(&f)
                    })
                })
                .collect(),
        };
        let lost_percent = |f: &Figures| Point {
            x: 0.0,
            y: 100.0 * f.lost.median / f.expected,
            low: Some(100.0 * f.lost.min / f.expected),
            high: Some(100.0 * f.lost.max / f.expected),
        };
        let nanoseconds = |f: &Figures| Point {
            x: 0.0,
            y: f.per_increment.median * 1e9,
            low: Some(f.per_increment.p25 * 1e9),
            high: Some(f.per_increment.p75 * 1e9),
        };
        let rust = |key: &str| self.rust(key);
        let python = |key: &str| self.python(key);
        let chart = |title: &str, y_label: &str, y_scale, value: fn(&Figures) -> Point| {
            let mut all = vec![series("Rust", &rust, value)];
            if self.python.is_some() {
                all.push(series("CPython", &python, value));
            }
            Chart {
                title: title.to_owned(),
                kind: ChartKind::Bar,
                x_label: "variant".to_owned(),
                y_label: y_label.to_owned(),
                y_scale,
                categories: categories.clone(),
                series: all,
                ..Default::default()
            }
        };
        vec![
            chart(
                "Updates lost (median, bars: min to max)",
                "lost updates (% of expected)",
                Scale::Linear,
                lost_percent,
            ),
            chart(
                "Time per increment",
                "time per increment (ns, log)",
                Scale::Log,
                nanoseconds,
            ),
        ]
    }

    fn verdicts(&self) -> Vec<Verdict> {
        vec![
            self.threads_without_lock(),
            self.lock_loses_nothing(),
            self.shared_memory_needs_synchronisation(),
            self.coroutines_need_no_lock(),
        ]
    }

    fn threads_without_lock(&self) -> Verdict {
        let rust = self.rust("threads-unlocked");
        let seed_code = self.python("threads-unlocked");
        let with_call = self.python("threads-unlocked-call");
        let rust_lost = rust.as_ref().is_some_and(|f| f.lost.max > 0.0);
        let (outcome, evidence) = match (&seed_code, rust_lost) {
            (Some(seed), _) if seed.lost.max > 0.0 => (
                Outcome::Confirmed,
                format!(
                    "CPython running the seed's loop lost {}; Rust threads lost {}",
                    format_lost(seed),
                    describe_lost(&rust)
                ),
            ),
            (Some(seed), true) => (
                Outcome::Depends,
                format!(
                    "on where the interpreter may switch threads: CPython running the seed's \
                     `counter += 1` lost nothing in {} runs (CPython 3.10 and later switch \
                     threads only at calls and loop back-edges, never inside the load and store \
                     of `counter += 1`); with a function call between read and write it lost \
                     {}; Rust threads (load, pause, store) lost {}",
                    seed.lost.n,
                    describe_lost(&with_call),
                    describe_lost(&rust)
                ),
            ),
            (_, true) => (
                Outcome::Confirmed,
                format!(
                    "Rust threads (load, pause, store) lost {}",
                    describe_lost(&rust)
                ),
            ),
            (_, false) => (
                Outcome::Refuted,
                format!(
                    "no update was lost in any run: Rust {}, CPython {}",
                    describe_lost(&rust),
                    describe_lost(&seed_code)
                ),
            ),
        };
        Verdict {
            claim: "Threads that increment a shared counter without a lock lose updates (a race \
                    condition)."
                .to_owned(),
            quote: "counter += 1  # 竞态条件！".to_owned(),
            outcome,
            evidence,
        }
    }

    fn lock_loses_nothing(&self) -> Verdict {
        let keys = ["threads-lock", "processes-lock"];
        let mut checked = Vec::new();
        let mut losers = Vec::new();
        for key in keys {
            for (implementation, figures) in
                [("Rust", self.rust(key)), ("CPython", self.python(key))]
            {
                if let Some(f) = figures {
                    checked.push(format!(
                        "{implementation} {key}: at most {} lost in a run, {} per increment",
                        f.lost.max,
                        format_seconds(f.per_increment.median)
                    ));
                    if f.lost.max > 0.0 {
                        losers.push(format!("{implementation} {key}"));
                    }
                }
            }
        }
        let (outcome, evidence) = if losers.is_empty() {
            (Outcome::Confirmed, checked.join("; "))
        } else {
            (
                Outcome::Refuted,
                format!("updates were lost under a lock by {}", losers.join(", ")),
            )
        };
        Verdict {
            claim: "With a lock around the increment no update is lost.".to_owned(),
            quote: "线程：使用锁保护".to_owned(),
            outcome,
            evidence,
        }
    }

    fn shared_memory_needs_synchronisation(&self) -> Verdict {
        let unlocked = [
            ("Rust", self.rust("processes-unlocked")),
            (
                "CPython (the seed's Value.value += 1)",
                self.python("processes-unlocked"),
            ),
        ];
        let lost_without = unlocked
            .iter()
            .any(|(_, f)| f.as_ref().is_some_and(|f| f.lost.max > 0.0));
        let without: Vec<String> = unlocked
            .iter()
            .filter_map(|(who, f)| f.as_ref().map(|f| format!("{who} lost {}", format_lost(f))))
            .collect();
        let synchronised = [
            ("lock", self.rust("processes-lock")),
            ("atomic fetch_add", self.rust("processes-atomic")),
        ];
        let exact = synchronised
            .iter()
            .all(|(_, f)| f.as_ref().is_some_and(|f| f.lost.max == 0.0));
        let with: Vec<String> = synchronised
            .iter()
            .filter_map(|(how, f)| {
                f.as_ref().map(|f| {
                    format!(
                        "Rust with {how}: {} lost, {} per increment",
                        f.lost.max,
                        format_seconds(f.per_increment.median)
                    )
                })
            })
            .collect();
        let outcome = match (lost_without, exact) {
            (true, true) => Outcome::Confirmed,
            (_, false) => Outcome::Refuted,
            (false, true) => Outcome::Depends,
        };
        let evidence = match outcome {
            Outcome::Depends => format!(
                "on the processes overlapping: no update was lost without a lock here ({}); {}",
                without.join("; "),
                with.join("; ")
            ),
            _ => format!(
                "without: {}; {} (an atomic is synchronisation enough)",
                without.join("; "),
                with.join("; ")
            ),
        };
        Verdict {
            claim: "Memory shared between processes needs synchronisation (a lock).".to_owned(),
            quote: "❌ 需要同步机制（锁）".to_owned(),
            outcome,
            evidence,
        }
    }

    fn coroutines_need_no_lock(&self) -> Verdict {
        let plain = [
            ("Rust", self.rust("coroutines")),
            ("CPython", self.python("coroutines")),
        ];
        let awaiting = [
            ("Rust", self.rust("coroutines-await")),
            ("CPython", self.python("coroutines-await")),
        ];
        let plain_safe = plain
            .iter()
            .all(|(_, f)| f.as_ref().is_none_or(|f| f.lost.max == 0.0));
        let awaiting_lost = awaiting
            .iter()
            .any(|(_, f)| f.as_ref().is_some_and(|f| f.lost.max > 0.0));
        let describe = |set: &[(&str, Option<Figures>)]| {
            set.iter()
                .filter_map(|(who, f)| f.as_ref().map(|f| format!("{who} lost {}", format_lost(f))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (outcome, evidence) = match (plain_safe, awaiting_lost) {
            (true, true) => (
                Outcome::Depends,
                format!(
                    "on no await between read and write: without one {}; with one {}",
                    describe(&plain),
                    describe(&awaiting)
                ),
            ),
            (true, false) => (
                Outcome::Confirmed,
                format!(
                    "without an await {}; with one {}",
                    describe(&plain),
                    describe(&awaiting)
                ),
            ),
            (false, _) => (
                Outcome::Refuted,
                format!(
                    "single-threaded coroutines lost updates: {}",
                    describe(&plain)
                ),
            ),
        };
        Verdict {
            claim: "Coroutines run on one thread, so they need no lock.".to_owned(),
            quote: "# 协程示例：单线程，不需要锁".to_owned(),
            outcome,
            evidence,
        }
    }
}

/// Lost updates as `12.3% (49 200 of 400 000)`, medians over the runs.
fn format_lost(figures: &Figures) -> String {
    format!(
        "{:.1}% ({:.0} of {:.0})",
        100.0 * figures.lost_fraction(),
        figures.lost.median,
        figures.expected
    )
}

fn describe_lost(figures: &Option<Figures>) -> String {
    figures
        .as_ref()
        .map_or_else(|| "(not measured)".to_owned(), format_lost)
}
