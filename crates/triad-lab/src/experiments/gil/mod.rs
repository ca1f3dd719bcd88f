//! `gil` (seed §5.2.1, §6.3.2): why Python threads do not run CPU work in parallel, shown twice
//! — with a GIL simulated in Rust, and with CPython's real one.
//!
//! The "bytecode" is a slice of the seed's prime count (`count_primes(200)`, about a
//! microsecond in Rust). N threads (the core count, at least 2) each run the same number of
//! bytecodes: serially on one thread, on N threads that hold the [`simulator`]'s lock while they
//! execute and check for drop requests between bytecodes (a 5 ms switch interval, as CPython),
//! on N plain Rust threads, and on N worker processes (both through [`triad::Runner`]). Then
//! IO-bound threads, which run a few bytecodes and block on a sleep with the lock released.
//! The simulator logs every hold, so its CPU run is drawn as a timeline, and the process CPU
//! time during it shows whether waiters spin. CPython runs the same loops with real threads and
//! `multiprocessing`, reports `sys.getswitchinterval()`, measures how long a thread keeps the
//! GIL before another gets it (a thread that sees a gap in its own clock reads lost the GIL),
//! and the CPU time its threads burn.

pub(crate) mod simulator;

use std::sync::Barrier;
use std::time::Duration;

use triad::workloads::count_primes;
use triad::{Mode, Runner, Span};

use super::scaling::{NO_SPEEDUP, PARALLEL_SHARE, speedup, speedup_point};
use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Repeat, Series};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Finding, Implementation, Measurement, Outcome, Series as Bars, Table, Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread, timed};
use crate::timeline::{LaneBy, from_spans};
use crate::verdict::{Band, Ratio, times, verdict};
use simulator::{Gil, Hold, SWITCH_INTERVAL};

/// The prime-count limit of one "bytecode".
const BYTECODE: u64 = 200;
/// Bytecodes an IO-bound thread runs between two blocking waits (about 0.1 ms in Rust).
const IO_BYTECODES: u64 = 100;
/// The same in CPython, where a bytecode costs some 20 times more: about 0.1 ms as well.
const PYTHON_IO_BYTECODES: u64 = 5;

/// One "bytecode": a small, fixed piece of CPU work.
fn bytecode() -> u64 {
    count_primes::call(std::hint::black_box(BYTECODE))
}

/// `steps` bytecodes on one thread, without a GIL: the sum of what they computed, exact (at most
/// `u64::MAX` steps of at most `u64::MAX` each: no u128 sum of them overflows).
#[triad::task]
fn interpret(steps: u64) -> u128 {
    (0..steps).map(|_| u128::from(bytecode())).sum()
}

/// The `gil` experiment.
#[derive(Debug)]
pub(crate) struct GilEffect;

/// Sizes by scale.
#[derive(Debug, Clone)]
struct Sizes {
    steps: u64,
    python_steps: u64,
    io_threads: usize,
    io_rounds: u64,
    io_delay_ms: u64,
    python_hold_s: f64,
    /// The CPU-bound modes: one untimed run each, then the samples, in rounds (the IO-bound
    /// ones take as many samples, with no warm-up).
    repeat: Repeat,
    python_repetitions: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        steps: 4_000,
        python_steps: 300,
        io_threads: 4,
        io_rounds: 2,
        io_delay_ms: 5,
        python_hold_s: 0.05,
        repeat: Repeat::after_one(3),
        python_repetitions: 3,
    },
    Sizes {
        steps: 60_000,
        python_steps: 3_000,
        io_threads: 8,
        io_rounds: 2,
        io_delay_ms: 10,
        python_hold_s: 0.3,
        repeat: Repeat::after_one(5),
        python_repetitions: 3,
    },
    Sizes {
        steps: 200_000,
        python_steps: 8_000,
        io_threads: 16,
        io_rounds: 3,
        io_delay_ms: 20,
        python_hold_s: 1.0,
        repeat: Repeat::after_one(9),
        python_repetitions: 5,
    },
);

/// The threads of the CPU-bound runs on `cores` cores: one per core, at least 2.
fn threads_for(cores: usize) -> usize {
    cores.max(2)
}

names! {
    /// What is measured, by the names Rust and `python/gil.py` give it.
    enum Name {
        CpuSerial => "cpu serial",
        CpuUnderGil => "cpu threads under the GIL",
        CpuWithoutGil => "cpu threads without a GIL",
        CpuProcesses => "cpu processes",
        IoSerial => "io serial",
        IoUnderGil => "io threads under the GIL",
        Hold => "hold before a switch",
        CpuTime => "cpu time of threads under the GIL",
        SwitchInterval => "switch interval",
    }
}

/// The rows of the CPU-bound comparison, and their labels.
const CPU_MODES: [(Name, &str); 4] = [
    (Name::CpuSerial, "serial (one thread)"),
    (Name::CpuUnderGil, "threads under the GIL"),
    (Name::CpuWithoutGil, "threads without a GIL"),
    (Name::CpuProcesses, "processes"),
];
const IO_MODES: [(Name, &str); 2] = [
    (Name::IoSerial, "serial (one thread)"),
    (Name::IoUnderGil, "threads under the GIL"),
];

/// What one run of threads under the simulated GIL showed.
struct SimulatedRun {
    seconds: f64,
    cpu_seconds: f64,
    holds: Vec<Hold>,
}

fn process_cpu_seconds() -> f64 {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

/// `threads` threads under one simulated GIL, each running `body` with the lock held; checks
/// that each thread returned `answer`.
fn under_simulated_gil(
    threads: usize,
    answer: u128,
    body: impl Fn(&mut simulator::Held<'_>) -> u128 + Sync,
) -> Result<SimulatedRun, LabError> {
    let gil = Gil::new(SWITCH_INTERVAL);
    let start = Barrier::new(threads + 1);
    let cpu_before = process_cpu_seconds();
    let (results, seconds) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (gil, start, body) = (&gil, &start, &body);
                scope.spawn(move || {
                    start.wait();
                    let mut held = gil.acquire();
                    body(&mut held)
                })
            })
            .collect();
        timed(|| {
            start.wait();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| "a simulated thread panicked"))
                .collect::<Vec<_>>()
        })
    });
    let cpu_seconds = process_cpu_seconds() - cpu_before;
    for result in results {
        match result {
            Ok(value) if value == answer => {}
            Ok(value) => {
                return Err(LabError::engine(
                    "simulated GIL",
                    format!("a thread computed {value} instead of {answer}"),
                ));
            }
            Err(why) => return Err(LabError::engine("simulated GIL", why)),
        }
    }
    Ok(SimulatedRun {
        seconds,
        cpu_seconds,
        holds: gil.holds(),
    })
}

/// CPU-bound bytecodes under the GIL, checking for drop requests between them.
fn cpu_bound_body(steps: u64) -> impl Fn(&mut simulator::Held<'_>) -> u128 + Sync {
    move |held| bytecodes(held, steps)
}

/// `steps` bytecodes with the lock held, checking for drop requests between them: the exact
/// sum of what they computed, as [`interpret`].
fn bytecodes(held: &mut simulator::Held<'_>, steps: u64) -> u128 {
    (0..steps)
        .map(|_| {
            let value = bytecode();
            held.check();
            u128::from(value)
        })
        .sum()
}

/// Rounds of a few bytecodes then a blocking sleep with the lock released.
fn io_bound_body(rounds: u64, delay: Duration) -> impl Fn(&mut simulator::Held<'_>) -> u128 + Sync {
    move |held| {
        (0..rounds)
            .map(|_| {
                let value = bytecodes(held, IO_BYTECODES);
                held.blocking(|| std::thread::sleep(delay));
                value
            })
            .sum()
    }
}

/// One checked run of `runner` on `inputs`: its wall time in seconds.
fn time_runner(runner: &Runner, inputs: &[u64], answer: u128) -> Result<f64, LabError> {
    let (results, seconds) = timed(|| runner.map(interpret, inputs.iter().copied()));
    for result in results {
        match result {
            Ok(value) if value == answer => {}
            Ok(value) => {
                return Err(LabError::engine(
                    format!("bytecodes on {}", runner.mode()),
                    format!("{value} instead of {answer}"),
                ));
            }
            Err(error) => {
                return Err(LabError::engine(
                    format!("bytecodes on {}", runner.mode()),
                    error,
                ));
            }
        }
    }
    Ok(seconds)
}

fn start(mode: Mode) -> Result<Runner, LabError> {
    Runner::new(mode).map_err(|e| LabError::engine(format!("starting {mode}"), e))
}

/// A Rust measurement of `name` (given without samples).
fn rust(name: Name, unit: &str) -> Measurement {
    Measurement::new(name.name(), Implementation::Rust, unit, Vec::new())
}

/// The simulator's holds as spans, one lane per thread in order of first hold.
fn hold_spans(holds: &[Hold]) -> Vec<Span> {
    let mut threads: Vec<u32> = Vec::new();
    holds
        .iter()
        .map(|hold| {
            let index = threads
                .iter()
                .position(|t| *t == hold.tid)
                .unwrap_or_else(|| {
                    threads.push(hold.tid);
                    threads.len() - 1
                });
            Span {
                name: "holds the GIL".into(),
                task: index as u64,
                pid: std::process::id(),
                tid: hold.tid,
                cpu: hold.cpu,
                start_ns: hold.start_ns,
                end_ns: hold.end_ns,
            }
        })
        .collect()
}

impl Experiment for GilEffect {
    fn about(&self) -> About {
        About {
            id: "gil",
            title: "The GIL: a simulated one in Rust, and CPython's own",
            seed_section: "5.2.1, 6.3.2",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let threads = threads_for(bench.machine().cores);
        let answer = interpret::call(sizes.steps);
        let inputs = vec![sizes.steps; threads];
        let serial = start(Mode::Serial)?;
        let native = start(Mode::Threads(threads))?;
        let processes = start(Mode::Processes(threads))?;
        let delay = Duration::from_millis(sizes.io_delay_ms);
        let all_rounds = sizes
            .io_rounds
            .checked_mul(sizes.io_threads as u64)
            .ok_or_else(|| LabError::engine("simulated GIL", "IO rounds overflow a u64"))?;
        let round_answer = interpret::call(IO_BYTECODES);
        let io_repeat = Repeat::new(0, sizes.repeat.samples);
        let on = |runner| {
            let inputs = &inputs;
            move || time_runner(runner, inputs, answer)
        };
        let simulated = Series::new(
            sizes.repeat,
            move || under_simulated_gil(threads, answer, cpu_bound_body(sizes.steps)),
            move |runs: Vec<SimulatedRun>, measured| simulated_runs(threads, runs, measured),
        );
        // Each round times every mode once, in turn, so that a burst of load from elsewhere
        // falls on several modes, not on every sample of one.
        let mut plan = Plan::new();
        plan.rounds(vec![
            Series::of(rust(Name::CpuSerial, "s"), sizes.repeat, on(&serial)),
            simulated,
            Series::of(rust(Name::CpuWithoutGil, "s"), sizes.repeat, on(&native)),
            Series::of(rust(Name::CpuProcesses, "s"), sizes.repeat, on(&processes)),
            Series::of(rust(Name::IoSerial, "s"), io_repeat, move || {
                let answer = checked_times(round_answer, all_rounds)?;
                Ok(under_simulated_gil(1, answer, io_bound_body(all_rounds, delay))?.seconds)
            }),
            Series::of(rust(Name::IoUnderGil, "s"), io_repeat, move || {
                let answer = checked_times(round_answer, sizes.io_rounds)?;
                let each = io_bound_body(sizes.io_rounds, delay);
                Ok(under_simulated_gil(sizes.io_threads, answer, each)?.seconds)
            }),
        ]);
        plan.python(Baseline::new(
            "gil",
            include_str!("../../../python/gil.py"),
            [
                threads.to_string(),
                sizes.python_steps.to_string(),
                BYTECODE.to_string(),
                sizes.io_threads.to_string(),
                sizes.io_rounds.to_string(),
                sizes.io_delay_ms.to_string(),
                PYTHON_IO_BYTECODES.to_string(),
                sizes.python_hold_s.to_string(),
                sizes.python_repetitions.to_string(),
            ],
        ));
        bench.run(plan)
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        let sizes = SIZES.at(findings.scale());
        let cores = findings.machine().cores;
        let threads = threads_for(cores);
        let results = Results {
            found: *findings,
            threads,
            io_threads: sizes.io_threads,
            cores,
        };
        let mut notes = Vec::new();
        if let Some(s) = results.speedup(Implementation::Rust, Name::CpuUnderGil)
            && s > 1.2
        {
            notes.push(format!(
                "Threads under the simulated GIL cannot beat one thread, yet measured {}: the \
                 one-thread baseline was slowed by other work on this machine while it ran.",
                times(s)
            ));
        }
        Judgement {
            method: method(sizes, threads),
            table: table(&results),
            charts: vec![
                speedup_chart(
                    &results,
                    &CPU_MODES,
                    &format!("CPU-bound: {threads} threads' bytecodes, speed-up over one thread"),
                ),
                speedup_chart(
                    &results,
                    &IO_MODES,
                    &format!(
                        "IO-bound: {} threads sleeping {} ms between bytecodes, speed-up over \
                         one thread",
                        sizes.io_threads, sizes.io_delay_ms
                    ),
                ),
            ],
            verdicts: verdicts(&results),
            notes,
        }
    }
}

/// `value × times`, or an error where that overflows.
fn checked_times(value: u128, times: u64) -> Result<u128, LabError> {
    value.checked_mul(u128::from(times)).ok_or_else(|| {
        LabError::engine(
            "simulated GIL",
            format!("{value} × {times} overflows a u128"),
        )
    })
}

/// Records the runs of the CPU-bound threads under the simulated GIL: their wall and CPU
/// times, how long a holder kept the lock when asked to drop it, and the last run's holds as a
/// timeline.
fn simulated_runs(threads: usize, runs: Vec<SimulatedRun>, measured: &mut Measured) {
    let forced: Vec<f64> = runs
        .iter()
        .flat_map(|run| &run.holds)
        .filter(|h| h.forced)
        .map(|h| h.duration().as_secs_f64())
        .collect();
    measured.measurement(
        rust(Name::CpuUnderGil, "s").with_samples(runs.iter().map(|r| r.seconds).collect()),
    );
    measured.measurement(
        rust(Name::CpuTime, "s").with_samples(runs.iter().map(|r| r.cpu_seconds).collect()),
    );
    if forced.is_empty() {
        measured.note(
            "No thread held the simulated GIL long enough to be asked to drop it: the runs \
             were shorter than a switch interval.",
        );
    } else {
        measured.measurement(rust(Name::Hold, "s").with_samples(forced));
    }
    if let Some(last) = runs.last() {
        measured.timeline(from_spans(
            format!(
                "{threads} threads under the simulated GIL: one holds it at a time, turns of \
                 about {} ms",
                SWITCH_INTERVAL.as_millis()
            ),
            &hold_spans(&last.holds),
            LaneBy::Task,
        ));
    }
}

fn method(sizes: &Sizes, threads: usize) -> String {
    format!(
        "A bytecode is count_primes({BYTECODE}). CPU-bound: {threads} threads × {steps} \
         bytecodes (Rust) — serially on one thread; on {threads} threads under the simulated \
         GIL (a mutex-and-condvar lock as CPython's ceval_gil.c: a waiter asks for the lock \
         after a {interval} ms switch interval, the holder hands it over at its next check \
         between bytecodes and waits until another thread has it); on {threads} plain Rust \
         threads and on {threads} worker processes (triad::Runner, started before timing). \
         One untimed run of each, then {reps} rounds that time every mode once, in turn; \
         the process CPU time is read around the simulated runs. IO-bound: {io_threads} \
         threads each run {rounds} rounds of {IO_BYTECODES} bytecodes and a {delay} ms sleep \
         with the lock released, against one thread doing all the rounds. CPython runs the \
         same loops ({py_steps} bytecodes per thread, {PYTHON_IO_BYTECODES} per IO round, \
         {py_reps} runs): serial, threading, multiprocessing.Pool (started before timing), \
         the same IO loop with time.sleep, and for {hold} s {threads} spinning threads that \
         each note a gap of more than 0.5 ms between two reads of their clock as a lost \
         GIL, giving how long a thread keeps it.",
        steps = sizes.steps,
        interval = SWITCH_INTERVAL.as_millis(),
        reps = sizes.repeat.samples,
        io_threads = sizes.io_threads,
        rounds = sizes.io_rounds,
        delay = sizes.io_delay_ms,
        py_steps = sizes.python_steps,
        py_reps = sizes.python_repetitions,
        hold = sizes.python_hold_s,
    )
}

/// All measurements (Rust's and CPython's), read back by language and name.
struct Results<'a> {
    found: Findings<'a>,
    threads: usize,
    io_threads: usize,
    cores: usize,
}

impl Results<'_> {
    fn summary(&self, implementation: Implementation, name: Name) -> Option<&Summary> {
        self.found.summary(implementation, name.name(), &[])
    }

    /// Speed-up of `name` over the serial row of its kind (CPU- or IO-bound).
    fn speedup(&self, implementation: Implementation, name: Name) -> Option<f64> {
        let serial = if IO_MODES.iter().any(|(io, _)| *io == name) {
            Name::IoSerial
        } else {
            Name::CpuSerial
        };
        Some(speedup(
            self.summary(implementation, serial)?,
            self.summary(implementation, name)?,
        ))
    }

    /// [`speedup`](Self::speedup) with the range of the two measurements' quartiles.
    fn speedup_ratio(&self, implementation: Implementation, name: Name) -> Option<Ratio> {
        let serial = if IO_MODES.iter().any(|(io, _)| *io == name) {
            Name::IoSerial
        } else {
            Name::CpuSerial
        };
        Some(Ratio::of(
            self.summary(implementation, serial)?,
            self.summary(implementation, name)?,
        ))
    }

    /// The parallel speed-up N workers can reach here.
    fn ideal(&self) -> f64 {
        self.threads.min(self.cores) as f64
    }
}

fn table(results: &Results<'_>) -> Table {
    let mut table = Table::new([
        "work",
        "mode",
        "Rust (simulated GIL)",
        "Rust speed-up",
        "CPython",
        "CPython speed-up",
    ]);
    let rows = CPU_MODES
        .iter()
        .map(|(name, label)| ("CPU-bound", *name, *label))
        .chain(
            IO_MODES
                .iter()
                .map(|(name, label)| ("IO-bound", *name, *label)),
        );
    for (work, name, label) in rows {
        let mut row = vec![work.to_owned(), label.to_owned()];
        for implementation in [Implementation::Rust, Implementation::Python] {
            row.push(
                results
                    .summary(implementation, name)
                    .map_or("—".to_owned(), |s| format_with_spread(s, format_seconds)),
            );
            row.push(
                results
                    .speedup(implementation, name)
                    .map_or("—".to_owned(), times),
            );
        }
        table.row(row);
    }
    let mut row = vec!["GIL".to_owned(), "hold before a switch".to_owned()];
    for implementation in [Implementation::Rust, Implementation::Python] {
        row.push(
            results
                .summary(implementation, Name::Hold)
                .map_or("—".to_owned(), |s| format_with_spread(s, format_seconds)),
        );
        row.push(String::new());
    }
    table.row(row);
    let mut row = vec![
        "GIL".to_owned(),
        "CPU seconds per second, threads under the GIL".to_owned(),
    ];
    for implementation in [Implementation::Rust, Implementation::Python] {
        row.push(
            cpu_per_wall(results, implementation)
                .map_or("—".to_owned(), |r| format!("{:.2}", r.median)),
        );
        row.push(String::new());
    }
    table.row(row);
    table
}

/// CPU seconds burnt per wall second while threads ran under the GIL.
fn cpu_per_wall(results: &Results<'_>, implementation: Implementation) -> Option<Ratio> {
    Some(Ratio::of(
        results.summary(implementation, Name::CpuTime)?,
        results.summary(implementation, Name::CpuUnderGil)?,
    ))
}

fn speedup_chart(results: &Results<'_>, modes: &[(Name, &str)], title: &str) -> Chart {
    let mut series = Vec::new();
    for (implementation, label) in [
        (Implementation::Rust, "Rust (simulated GIL)"),
        (Implementation::Python, "CPython"),
    ] {
        let serial_name = modes[0].0;
        let Some(serial) = results.summary(implementation, serial_name) else {
            continue;
        };
        let points = modes
            .iter()
            .enumerate()
            .filter_map(|(index, (name, _))| {
                let run = results.summary(implementation, *name)?;
                Some(speedup_point(index as f64, serial, run))
            })
            .collect();
        series.push(Bars {
            label: label.to_owned(),
            points,
        });
    }
    Chart {
        title: title.to_owned(),
        kind: ChartKind::Bar,
        x_label: "mode".to_owned(),
        y_label: "speed-up over one thread (×)".to_owned(),
        categories: modes.iter().map(|(_, label)| (*label).to_owned()).collect(),
        series,
        ..Default::default()
    }
}

fn verdicts(results: &Results<'_>) -> Vec<Verdict> {
    use Implementation::{Python, Rust};
    let threads = results.threads;
    let multi_core = results.cores >= 2;
    let one_core = format!(
        "this machine gives the lab {} core: no threads could run in parallel anyway",
        results.cores
    );
    let rate = |implementation, name| results.speedup(implementation, name);
    let shown = |value: Option<f64>| value.map_or("—".to_owned(), times);
    let mut verdicts = Vec::new();

    let ranged = |implementation, name| results.speedup_ratio(implementation, name);
    let under_gil = [
        rate(Rust, Name::CpuUnderGil),
        rate(Python, Name::CpuUnderGil),
    ];
    let checks: Vec<Finding> = [
        ranged(Rust, Name::CpuUnderGil),
        ranged(Python, Name::CpuUnderGil),
    ]
    .iter()
    .flatten()
    .map(|r| r.at_most(NO_SPEEDUP))
    .collect();
    verdicts.push(verdict(
        "Only one thread holds the GIL at any moment, so CPU-bound threads get no \
                speed-up, however many cores there are.",
        "任意时刻,只有一个线程持有GIL",
        if multi_core {
            Outcome::from_findings(checks.iter().copied())
        } else {
            Outcome::Depends
        },
        if multi_core {
            format!(
                "{threads} threads on {} cores, speed-up over one thread: simulated GIL {}, \
                 CPython {}; Rust threads without a GIL {}",
                results.cores,
                shown(under_gil[0]),
                shown(under_gil[1]),
                shown(rate(Rust, Name::CpuWithoutGil))
            )
        } else {
            one_core.clone()
        },
    ));

    let (source, slowdown) = match results.summary(Python, Name::CpuUnderGil) {
        Some(_) => (
            "CPython",
            ranged(Python, Name::CpuUnderGil).map(Ratio::inverse),
        ),
        None => (
            "the simulated GIL",
            ranged(Rust, Name::CpuUnderGil).map(Ratio::inverse),
        ),
    };
    let outcome = match slowdown.map(|r| r.band(0.95, 1.05)) {
        Some(Band::Above) => Outcome::Confirmed,
        Some(Band::Below) => Outcome::Refuted,
        Some(Band::Straddles) => Outcome::WithinNoise,
        Some(Band::Between) | None => Outcome::Depends,
    };
    verdicts.push(verdict(
        "CPU-bound work on several threads is even slower than on one (switching costs).",
        "多线程在CPU密集型任务上甚至比单线程更慢(上下文切换开销)",
        outcome,
        format!(
            "{source}: {threads} threads took {} the time of one thread{}",
            slowdown.map_or("—".to_owned(), Ratio::shown),
            if outcome == Outcome::Depends {
                " — no slowdown beyond 5 %: the lock changes hands only every few ms"
            } else {
                ""
            }
        ),
    ));

    let interval = results
        .found
        .get(Python, Name::SwitchInterval.name(), &[])
        .and_then(|m| m.samples.first().copied());
    let python_hold = results.summary(Python, Name::Hold);
    let rust_hold = results.summary(Rust, Name::Hold);
    let (outcome, evidence) = match (interval, python_hold) {
        (Some(interval), Some(hold)) => {
            let holds_about_5ms = Ratio::measured(hold).inside(2.5e-3..=10e-3);
            // The interval is a setting read once: exact.
            let is_5ms = (interval - 0.005).abs() < 1e-9;
            (
                match (is_5ms, holds_about_5ms) {
                    (true, Finding::Holds) => Outcome::Confirmed,
                    (false, Finding::Fails) => Outcome::Refuted,
                    (_, Finding::WithinNoise) => Outcome::WithinNoise,
                    _ => Outcome::Depends,
                },
                format!(
                    "CPython: sys.getswitchinterval() = {}; a CPU-bound thread kept the GIL {} \
                     (median of {} turns) before another took it; the simulator's holders: {}",
                    format_seconds(interval),
                    format_seconds(hold.median),
                    hold.n,
                    rust_hold.map_or("—".to_owned(), |h| format_seconds(h.median))
                ),
            )
        }
        _ => (
            Outcome::Depends,
            format!(
                "CPython did not run; the simulator switches every {} ms by design, and its \
                 holders kept the lock {}",
                SWITCH_INTERVAL.as_millis(),
                rust_hold.map_or("—".to_owned(), |h| format_seconds(h.median))
            ),
        ),
    };
    verdicts.push(verdict(
        "Since Python 3.2 the GIL switches on a time interval, 5 ms by default, not \
                after a count of instructions.",
        "不再按指令数，改为按时间间隔（默认5ms）",
        outcome,
        evidence,
    ));

    let python_cpu = cpu_per_wall(results, Python);
    let rust_cpu = cpu_per_wall(results, Rust);
    let spinning = results.ideal();
    let outcome = match python_cpu.map(|r| r.band(NO_SPEEDUP, 0.8 * spinning)) {
        _ if !multi_core => Outcome::Depends,
        Some(Band::Below) => Outcome::Refuted,
        Some(Band::Above) => Outcome::Confirmed,
        Some(Band::Straddles) => Outcome::WithinNoise,
        Some(Band::Between) | None => Outcome::Depends,
    };
    verdicts.push(verdict(
        "A thread waiting for the GIL spins on its core.",
        "线程T2在Core 1上自旋等待GIL",
        outcome,
        if multi_core {
            format!(
                "CPU seconds burnt per wall second by {threads} CPU-bound threads: CPython {}, \
                 the simulator {} (spinning waiters would burn about {spinning:.0}; waiters \
                 asleep on a condition variable, about 1)",
                python_cpu.map_or("— (CPython did not run)".to_owned(), |r| format!(
                    "{:.2} ({:.2}-{:.2})",
                    r.median, r.low, r.high
                )),
                rust_cpu.map_or("—".to_owned(), |r| format!("{:.2}", r.median))
            )
        } else {
            one_core.clone()
        },
    ));

    let io_threads = results.io_threads as f64;
    let io = [rate(Rust, Name::IoUnderGil), rate(Python, Name::IoUnderGil)];
    verdicts.push(verdict(
        "Despite the GIL, threads overlap IO: a blocking wait releases it.",
        "虽然有GIL,但I/O等待期间会释放GIL,所以能并发",
        Outcome::from_findings(
            [
                ranged(Rust, Name::IoUnderGil),
                ranged(Python, Name::IoUnderGil),
            ]
            .iter()
            .flatten()
            .map(|r| r.at_least(0.6 * io_threads)),
        ),
        format!(
            "{} IO-bound threads, speed-up over one thread (ideal {io_threads:.0}×): simulated \
             GIL {}, CPython {}",
            results.io_threads,
            shown(io[0]),
            shown(io[1])
        ),
    ));

    let python_processes = rate(Python, Name::CpuProcesses);
    let rust_processes = rate(Rust, Name::CpuProcesses);
    let ideal = results.ideal();
    verdicts.push(verdict(
        "Several processes run Python bytecode truly in parallel on several cores, each \
                with its own GIL.",
        "多个进程可以在多核上真正并行执行Python字节码",
        match ranged(Python, Name::CpuProcesses).map(|r| r.band(NO_SPEEDUP, PARALLEL_SHARE * ideal))
        {
            _ if !multi_core => Outcome::Depends,
            Some(Band::Above) => Outcome::Confirmed,
            Some(Band::Below) => Outcome::Refuted,
            Some(Band::Straddles) => Outcome::WithinNoise,
            Some(Band::Between) | None => Outcome::Depends,
        },
        if multi_core {
            format!(
                "{threads} processes, speed-up over one (ideal {ideal:.0}×): CPython {}; Rust {}",
                shown(python_processes),
                shown(rust_processes)
            )
        } else {
            one_core.clone()
        },
    ));

    let native = rate(Rust, Name::CpuWithoutGil);
    verdicts.push(verdict(
        "Native threads (C, Java — and Rust) run in parallel.",
        "原生线程可以并行(C/Java等)",
        match ranged(Rust, Name::CpuWithoutGil) {
            _ if !multi_core => Outcome::Depends,
            Some(r) => Outcome::from_findings([r.at_least(PARALLEL_SHARE * ideal)]),
            None => Outcome::Depends,
        },
        if multi_core {
            format!(
                "{threads} Rust threads, speed-up over one (ideal {ideal:.0}×): {}",
                shown(native)
            )
        } else {
            one_core
        },
    ));
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_of_a_simulated_run_does_its_work() {
        let steps = 300;
        let run = under_simulated_gil(3, interpret::call(steps), cpu_bound_body(steps)).unwrap();
        assert!(run.seconds > 0.0 && run.cpu_seconds > 0.0);
        let spans = hold_spans(&run.holds);
        assert_eq!(spans.len(), run.holds.len());
        let lanes: std::collections::BTreeSet<u64> = spans.iter().map(|s| s.task).collect();
        assert_eq!(lanes, (0..3).collect());
        let mut ordered = spans.clone();
        ordered.sort_by_key(|s| s.start_ns);
        assert!(ordered.windows(2).all(|w| w[0].end_ns <= w[1].start_ns));
    }

    #[test]
    fn io_bound_threads_overlap_their_waits() {
        let delay = Duration::from_millis(20);
        let answer = interpret::call(IO_BYTECODES) * 2;
        let run = under_simulated_gil(4, answer, io_bound_body(2, delay)).unwrap();
        assert!(
            run.seconds < 4.0 * 2.0 * delay.as_secs_f64(),
            "{}",
            run.seconds
        );
    }

    /// The verdicts' outcomes on `all`: 2 threads (8 for IO) on 2 cores.
    fn outcomes_of(all: &[Measurement]) -> Vec<Outcome> {
        let machine = crate::machine::Machine::default();
        let results = Results {
            found: Findings::new(all, crate::experiment::Scale::Quick, &machine),
            threads: 2,
            io_threads: 8,
            cores: 2,
        };
        verdicts(&results).iter().map(|v| v.outcome).collect()
    }

    fn measured(name: Name, implementation: Implementation, s: f64) -> Measurement {
        Measurement::new(name.name(), implementation, "s", vec![s])
    }

    #[test]
    fn verdicts_follow_the_numbers() {
        use Implementation::{Python, Rust};
        let rust = vec![
            measured(Name::CpuSerial, Rust, 1.0),
            measured(Name::CpuUnderGil, Rust, 1.01),
            measured(Name::CpuWithoutGil, Rust, 0.51),
            measured(Name::CpuProcesses, Rust, 0.52),
            measured(Name::CpuTime, Rust, 1.02),
            measured(Name::Hold, Rust, 0.005),
            measured(Name::IoSerial, Rust, 0.24),
            measured(Name::IoUnderGil, Rust, 0.031),
        ];
        let python = vec![
            measured(Name::CpuSerial, Python, 1.0),
            measured(Name::CpuUnderGil, Python, 1.1),
            measured(Name::CpuProcesses, Python, 0.55),
            measured(Name::CpuTime, Python, 1.12),
            measured(Name::Hold, Python, 0.0051),
            measured(Name::SwitchInterval, Python, 0.005),
            measured(Name::IoSerial, Python, 0.25),
            measured(Name::IoUnderGil, Python, 0.033),
        ];
        let all = [rust, python].concat();
        let outcomes = outcomes_of(&all);
        assert_eq!(
            outcomes,
            [
                Outcome::Confirmed, // no speed-up under either GIL
                Outcome::Confirmed, // CPython 10 % slower
                Outcome::Confirmed, // 5 ms, and turns of about 5 ms
                Outcome::Refuted,   // waiters do not spin: ~1 CPU second per second
                Outcome::Confirmed, // IO overlaps
                Outcome::Confirmed, // processes ~1.8×
                Outcome::Confirmed, // Rust threads ~2×
            ]
        );
    }

    #[test]
    fn a_slowdown_inside_the_spread_is_within_noise() {
        use Implementation::Python;
        let noisy = |name: Name, samples: &[f64]| {
            Measurement::new(name.name(), Python, "s", samples.to_vec())
        };
        // CPython's threads 10 % slower by the medians, but the quartiles overlap by far.
        let all = vec![
            noisy(Name::CpuSerial, &[0.8, 1.0, 1.2]),
            noisy(Name::CpuUnderGil, &[0.9, 1.1, 1.3]),
            noisy(Name::CpuProcesses, &[0.4, 0.55, 0.9]),
            noisy(Name::Hold, &[0.0005, 0.002, 0.006]),
            noisy(Name::SwitchInterval, &[0.005]),
        ];
        let outcomes = outcomes_of(&all);
        assert_eq!(outcomes[1], Outcome::WithinNoise, "slower than one thread");
        assert_eq!(outcomes[2], Outcome::WithinNoise, "turns of about 5 ms");
        assert_eq!(outcomes[5], Outcome::WithinNoise, "processes in parallel");
    }
}
