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

use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Repeat, Series};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Implementation, Measurement, Outcome, Point, Scale, Series as Bars, Table,
    Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread};
use crate::verdict::{ratio, verdict};
use Implementation::{Python, Rust};

/// The seed's 4 threads, 4 processes and 4 coroutines.
const WORKERS: usize = 4;

/// How long a worker process waits at the start barrier for the others before it starts alone.
const BARRIER_DEADLINE: Duration = Duration::from_secs(2);

/// The shared counter of seed §3.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Race;

names! {
    /// The ways of incrementing: the prefix of the measurement names, the same in
    /// `python/race.py`.
    enum Variant {
        Serial => "serial",
        ThreadsUnlocked => "threads-unlocked",
        ThreadsUnlockedCall => "threads-unlocked-call",
        ThreadsLock => "threads-lock",
        ThreadsAtomic => "threads-atomic",
        ProcessesUnlocked => "processes-unlocked",
        ProcessesLock => "processes-lock",
        ProcessesAtomic => "processes-atomic",
        Coroutines => "coroutines",
        CoroutinesAwait => "coroutines-await",
    }
}

names! {
    /// What every run of a variant gives: the rest of the measurement names.
    enum Quantity {
        Lost => "lost",
        PerIncrement => "per-increment",
    }
}

impl Variant {
    /// The name of its measurement of `quantity`, such as `threads-lock/lost`.
    fn measurement(self, quantity: Quantity) -> String {
        format!("{}/{}", self.name(), quantity.name())
    }
}

/// One way of incrementing, as a row of the table and a bar of the charts.
struct Row {
    variant: Variant,
    /// The row's label.
    label: &'static str,
    /// What Rust runs, if it has this variant.
    rust: Option<&'static str>,
    /// What CPython runs, if it has this variant.
    python: Option<&'static str>,
}

const ROWS: [Row; 10] = [
    Row {
        variant: Variant::Serial,
        label: "1 thread, nothing shared",
        rust: Some("x = black_box(x) + 1"),
        python: Some("counter += 1, one thread"),
    },
    Row {
        variant: Variant::ThreadsUnlocked,
        label: "threads, no lock",
        rust: Some("load; pause; store (AtomicU64)"),
        python: Some("counter += 1 (the seed's code)"),
    },
    Row {
        variant: Variant::ThreadsUnlockedCall,
        label: "threads, no lock, call between",
        rust: None,
        python: Some("v = counter; f(); counter = v + 1"),
    },
    Row {
        variant: Variant::ThreadsLock,
        label: "threads, lock",
        rust: Some("std Mutex"),
        python: Some("with threading.Lock()"),
    },
    Row {
        variant: Variant::ThreadsAtomic,
        label: "threads, atomic",
        rust: Some("fetch_add"),
        python: None,
    },
    Row {
        variant: Variant::ProcessesUnlocked,
        label: "processes, no lock",
        rust: Some("shm::increment_unlocked"),
        python: Some("Value.value += 1 (the seed's code)"),
    },
    Row {
        variant: Variant::ProcessesLock,
        label: "processes, lock",
        rust: Some("shm::increment_locked (robust pthread mutex)"),
        python: Some("with value.get_lock()"),
    },
    Row {
        variant: Variant::ProcessesAtomic,
        label: "processes, atomic",
        rust: Some("shm::increment_atomic (fetch_add)"),
        python: None,
    },
    Row {
        variant: Variant::Coroutines,
        label: "coroutines, no await inside",
        rust: Some("Rc<Cell<u64>>, tokio current thread"),
        python: Some("counter['value'] += 1 (the seed's code)"),
    },
    Row {
        variant: Variant::CoroutinesAwait,
        label: "coroutines, await between",
        rust: Some("get; yield_now().await; set"),
        python: Some("v = c['value']; await sleep(0); c['value'] = v + 1"),
    },
];

/// Sizes for one scale: increments per worker, and repetitions.
#[derive(Debug)]
struct Sizes {
    increments: u64,
    /// Every Rust variant: one warm-up run, then the samples.
    repeat: Repeat,
    python_thread_increments: u64,
    python_process_increments: u64,
    python_await_increments: u64,
    python_repetitions: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        increments: 20_000,
        repeat: Repeat::after_one(2),
        python_thread_increments: 20_000,
        python_process_increments: 5_000,
        python_await_increments: 2_000,
        python_repetitions: 2,
    },
    Sizes {
        increments: 100_000,
        repeat: Repeat::after_one(5),
        python_thread_increments: 100_000,
        python_process_increments: 25_000,
        python_await_increments: 20_000,
        python_repetitions: 3,
    },
    Sizes {
        increments: 1_000_000,
        repeat: Repeat::after_one(10),
        python_thread_increments: 1_000_000,
        python_process_increments: 100_000,
        python_await_increments: 100_000,
        python_repetitions: 5,
    },
);

/// What one run of a variant gave.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// The counter at the end.
    count: u64,
    /// From the first worker's start to the last one's end.
    seconds: f64,
    /// Whether every worker waited for the others at the start barrier.
    together: bool,
}

impl Run {
    fn together(count: u64, seconds: f64) -> Self {
        Self {
            count,
            seconds,
            together: true,
        }
    }
}

/// How many increments `WORKERS` workers of `increments` each make in all.
fn expected(increments: u64) -> u64 {
    increments
        .checked_mul(WORKERS as u64)
        .expect("the sizes keep every count far below u64::MAX")
}

/// A series of runs of `variant`, `increments` per worker: lost updates and time per
/// increment, one sample per run, and a note on runs whose workers did not start together.
fn series<'r>(
    variant: Variant,
    increments: u64,
    repeat: Repeat,
    run: impl FnMut() -> Result<Run, LabError> + 'r,
) -> Series<'r> {
    Series::new(repeat, run, move |runs, measured| {
        let expected = expected(increments);
        let lost = runs
            .iter()
            .map(|r| expected.saturating_sub(r.count) as f64)
            .collect();
        let per_increment = runs.iter().map(|r| r.seconds / expected as f64).collect();
        let rust = |quantity, unit, samples| {
            Measurement::new(variant.measurement(quantity), Rust, unit, samples)
                .param("workers", WORKERS)
                .param("increments", increments)
        };
        measured.measurement(rust(Quantity::Lost, "count", lost).param("expected", expected));
        measured.measurement(rust(Quantity::PerIncrement, "s", per_increment));
        let apart = runs.iter().filter(|r| !r.together).count();
        if apart > 0 {
            measured.note(format!(
                "{}: in {apart} of {} repetitions a worker process waited {} s at the start \
                 barrier and started alone; those runs overlap less.",
                variant.name(),
                runs.len(),
                BARRIER_DEADLINE.as_secs()
            ));
        }
    })
}

impl Experiment for Race {
    fn about(&self) -> About {
        About {
            id: "race",
            title: "Shared counter: lost updates without a lock, and the cost of a lock or an \
                    atomic",
            seed_section: "3, 8.4",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let (increments, repeat) = (sizes.increments, sizes.repeat);
        let pool = ProcessPool::new(WORKERS).map_err(|e| LabError::engine("process pool", e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| LabError::os("tokio current-thread runtime", e))?;
        let mut plan = Plan::new();
        plan.series(series(Variant::Serial, increments, repeat, || {
            Ok(serial(increments))
        }));
        for (variant, increment) in [
            (
                Variant::ThreadsUnlocked,
                unlocked_increment as fn(&AtomicU64),
            ),
            (Variant::ThreadsAtomic, atomic_increment),
        ] {
            plan.series(series(variant, increments, repeat, move || {
                let counter = AtomicU64::new(0);
                let seconds = race_threads(increments, &counter, increment);
                Ok(Run::together(counter.into_inner(), seconds))
            }));
        }
        plan.series(series(Variant::ThreadsLock, increments, repeat, || {
            let counter = Mutex::new(0_u64);
            let seconds = race_threads(increments, &counter, mutex_increment);
            let count = counter.into_inner().unwrap_or_else(|p| p.into_inner());
            Ok(Run::together(count, seconds))
        }));
        for (variant, how) in [
            (Variant::ProcessesUnlocked, SharedIncrement::Unlocked),
            (Variant::ProcessesLock, SharedIncrement::Locked),
            (Variant::ProcessesAtomic, SharedIncrement::Atomic),
        ] {
            let pool = &pool;
            plan.series(series(variant, increments, repeat, move || {
                race_processes(pool, increments, how)
            }));
        }
        for (variant, await_between) in [
            (Variant::Coroutines, false),
            (Variant::CoroutinesAwait, true),
        ] {
            let runtime = &runtime;
            plan.series(series(variant, increments, repeat, move || {
                let (count, seconds) = race_coroutines(runtime, increments, await_between);
                Ok(Run::together(count, seconds))
            }));
        }
        plan.python(Baseline::new(
            "race",
            include_str!("../../python/race.py"),
            [
                WORKERS as u64,
                sizes.python_thread_increments,
                sizes.python_process_increments,
                sizes.python_await_increments,
                sizes.python_repetitions as u64,
            ],
        ));
        let measured = bench.run(plan);
        pool.join();
        measured
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        let sizes = SIZES.at(findings.scale());
        let results = Results { found: *findings };
        Judgement {
            method: format!(
                "{WORKERS} workers each add 1 to one shared counter {} times (Rust), {} \
                 repetitions after a warm-up run; lost updates = expected − final. Threads \
                 share an AtomicU64 (no lock: a load, a spin-loop pause and a store), processes \
                 are {WORKERS} ProcessPool workers on a counter in a memfd (triad's \
                 increment_unlocked and increment_atomic on an AtomicValue<u64>, \
                 increment_locked on a SharedValue<u64>), coroutines are {WORKERS} tokio tasks on \
                 one thread. Workers start together at a barrier and time their own loops; time \
                 per increment = (last end − first start) ÷ all increments. CPython 3 runs the \
                 seed's code with {} increments per thread, {} per process \
                 (multiprocessing.Value, fork) and {} per coroutine when an await sits inside, \
                 {} repetitions.",
                sizes.increments,
                sizes.repeat.samples,
                sizes.python_thread_increments,
                sizes.python_process_increments,
                sizes.python_await_increments,
                sizes.python_repetitions,
            ),
            table: results.table(),
            charts: results.charts(),
            verdicts: results.verdicts(),
            notes: vec![results.legend()],
        }
    }
}

/// The reference: one thread increments its own counter.
fn serial(increments: u64) -> Run {
    let total = expected(increments);
    let started = Instant::now();
    let mut count = 0_u64;
    for _ in 0..total {
        count = std::hint::black_box(count) + 1;
    }
    Run::together(count, started.elapsed().as_secs_f64())
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

/// One run of `WORKERS` worker processes on a fresh shared counter.
fn race_processes(
    pool: &ProcessPool,
    increments: u64,
    how: SharedIncrement,
) -> Result<Run, LabError> {
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
    Ok(Run {
        count: final_count(&locked, &atomic, how),
        seconds: last.saturating_sub(first) as f64 / 1e9,
        together,
    })
}

/// The counter `how` incremented, once every worker has finished with it (the pool returned
/// their results): nothing touches it any more, so a plain read is exact.
fn final_count(locked: &SharedValue<u64>, atomic: &AtomicValue<u64>, how: SharedIncrement) -> u64 {
    match how {
        SharedIncrement::Locked => locked.get(),
        SharedIncrement::Unlocked | SharedIncrement::Atomic => atomic.get(),
    }
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

/// Everything measured, for the table, charts and verdicts.
struct Results<'a> {
    found: Findings<'a>,
}

impl Results<'_> {
    fn figures(&self, implementation: Implementation, variant: Variant) -> Option<Figures> {
        let lost = self
            .found
            .get(implementation, &variant.measurement(Quantity::Lost), &[])?;
        let per_increment = self.found.get(
            implementation,
            &variant.measurement(Quantity::PerIncrement),
            &[],
        )?;
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
        for row in &ROWS {
            let rust = self.figures(Rust, row.variant);
            let python = self.figures(Python, row.variant);
            let slower = match (&rust, &python) {
                (Some(r), Some(p)) if r.per_increment.median > 0.0 => {
                    format!("{:.0}×", ratio(&p.per_increment, &r.per_increment))
                }
                _ => "—".to_owned(),
            };
            let [rust_lost, rust_cost] = cells(&rust);
            let [python_lost, python_cost] = cells(&python);
            table.row([
                row.label.to_owned(),
                rust_lost,
                rust_cost,
                python_lost,
                python_cost,
                slower,
            ]);
        }
        table
    }

    /// What each row runs, for the notes.
    fn legend(&self) -> String {
        let python_ran = self.found.ran(Python);
        let rows: Vec<String> = ROWS
            .iter()
            .map(|row| {
                let python = row.python.filter(|_| python_ran);
                format!(
                    "{}: Rust {}, CPython {}",
                    row.label,
                    row.rust.unwrap_or("—"),
                    python.unwrap_or("—")
                )
            })
            .collect();
        format!("What each row runs — {}.", rows.join("; "))
    }

    fn charts(&self) -> Vec<Chart> {
        let categories: Vec<String> = ROWS.iter().map(|row| row.label.to_owned()).collect();
        let series = |implementation: Implementation, value: fn(&Figures) -> Point| Bars {
            label: implementation.label().to_owned(),
            points: ROWS
                .iter()
                .enumerate()
                .filter_map(|(index, row)| {
                    self.figures(implementation, row.variant).map(|f| Point {
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
        let chart = |title: &str, y_label: &str, y_scale, value: fn(&Figures) -> Point| Chart {
            title: title.to_owned(),
            kind: ChartKind::Bar,
            x_label: "variant".to_owned(),
            y_label: y_label.to_owned(),
            y_scale,
            categories: categories.clone(),
            series: self
                .found
                .implementations()
                .into_iter()
                .map(|implementation| series(implementation, value))
                .collect(),
            ..Default::default()
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

    /// Every claim here is decided by counts of lost updates (exact: zero or not), never by a
    /// timing, so no noise rule applies.
    fn verdicts(&self) -> Vec<Verdict> {
        vec![
            self.threads_without_lock(),
            self.lock_loses_nothing(),
            self.shared_memory_needs_synchronisation(),
            self.coroutines_need_no_lock(),
        ]
    }

    fn threads_without_lock(&self) -> Verdict {
        let rust = self.figures(Rust, Variant::ThreadsUnlocked);
        let seed_code = self.figures(Python, Variant::ThreadsUnlocked);
        let with_call = self.figures(Python, Variant::ThreadsUnlockedCall);
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
        verdict(
            "Threads that increment a shared counter without a lock lose updates (a race \
                    condition).",
            "counter += 1  # 竞态条件！",
            outcome,
            evidence,
        )
    }

    fn lock_loses_nothing(&self) -> Verdict {
        let mut checked = Vec::new();
        let mut losers = Vec::new();
        for variant in [Variant::ThreadsLock, Variant::ProcessesLock] {
            for implementation in [Rust, Python] {
                if let Some(f) = self.figures(implementation, variant) {
                    let who = format!("{} {}", implementation.label(), variant.name());
                    checked.push(format!(
                        "{who}: at most {} lost in a run, {} per increment",
                        f.lost.max,
                        format_seconds(f.per_increment.median)
                    ));
                    if f.lost.max > 0.0 {
                        losers.push(who);
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
        verdict(
            "With a lock around the increment no update is lost.",
            "线程：使用锁保护",
            outcome,
            evidence,
        )
    }

    fn shared_memory_needs_synchronisation(&self) -> Verdict {
        let unlocked = [
            ("Rust", self.figures(Rust, Variant::ProcessesUnlocked)),
            (
                "CPython (the seed's Value.value += 1)",
                self.figures(Python, Variant::ProcessesUnlocked),
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
            ("lock", self.figures(Rust, Variant::ProcessesLock)),
            (
                "atomic fetch_add",
                self.figures(Rust, Variant::ProcessesAtomic),
            ),
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
        verdict(
            "Memory shared between processes needs synchronisation (a lock).",
            "❌ 需要同步机制（锁）",
            outcome,
            evidence,
        )
    }

    fn coroutines_need_no_lock(&self) -> Verdict {
        let plain = [
            ("Rust", self.figures(Rust, Variant::Coroutines)),
            ("CPython", self.figures(Python, Variant::Coroutines)),
        ];
        let awaiting = [
            ("Rust", self.figures(Rust, Variant::CoroutinesAwait)),
            ("CPython", self.figures(Python, Variant::CoroutinesAwait)),
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
        verdict(
            "Coroutines run on one thread, so they need no lock.",
            "# 协程示例：单线程，不需要锁",
            outcome,
            evidence,
        )
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
