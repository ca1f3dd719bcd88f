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

use super::findings::{self, Findings};
use super::scaling::{speedup, speedup_point, times};
use crate::error::LabError;
use crate::experiment::{Context, Experiment, Scale};
use crate::results::{
    Chart, ChartKind, ExperimentReport, Implementation, Measurement, Outcome, Series, Table,
    Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread, timed};
use crate::timeline::{LaneBy, from_spans};
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

/// `steps` bytecodes on one thread, without a GIL.
#[triad::task]
fn interpret(steps: u64) -> u64 {
    (0..steps).fold(0, |sum, _| sum.wrapping_add(bytecode()))
}

/// The `gil` experiment.
#[derive(Debug)]
pub(crate) struct GilEffect;

/// Sizes by scale.
#[derive(Debug, Clone)]
struct Sizes {
    threads: usize,
    steps: u64,
    python_steps: u64,
    io_threads: usize,
    io_rounds: u64,
    io_delay_ms: u64,
    python_hold_s: f64,
    repetitions: usize,
    python_repetitions: usize,
}

impl Sizes {
    fn at(scale: Scale) -> Self {
        Sizes {
            threads: triad::available_cores().max(2),
            steps: scale.pick(4_000, 60_000, 200_000),
            python_steps: scale.pick(300, 3_000, 8_000),
            io_threads: scale.pick(4, 8, 16),
            io_rounds: scale.pick(2, 2, 3),
            io_delay_ms: scale.pick(5, 10, 20),
            python_hold_s: scale.pick(0.05, 0.3, 1.0),
            repetitions: scale.pick(3, 5, 9),
            python_repetitions: scale.pick(3, 3, 5),
        }
    }
}

/// The rows of the CPU-bound comparison; names shared with the CPython script.
const CPU_MODES: [(&str, &str); 4] = [
    ("cpu serial", "serial (one thread)"),
    ("cpu threads under the GIL", "threads under the GIL"),
    ("cpu threads without a GIL", "threads without a GIL"),
    ("cpu processes", "processes"),
];
const IO_MODES: [(&str, &str); 2] = [
    ("io serial", "serial (one thread)"),
    ("io threads under the GIL", "threads under the GIL"),
];
const HOLD: &str = "hold before a switch";
const CPU_TIME: &str = "cpu time of threads under the GIL";
const SWITCH_INTERVAL_NAME: &str = "switch interval";

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
    answer: u64,
    body: impl Fn(&mut simulator::Held<'_>) -> u64 + Sync,
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
fn cpu_bound_body(steps: u64) -> impl Fn(&mut simulator::Held<'_>) -> u64 + Sync {
    move |held| {
        (0..steps).fold(0, |sum: u64, _| {
            let value = bytecode();
            held.check();
            sum.wrapping_add(value)
        })
    }
}

/// Rounds of a few bytecodes then a blocking sleep with the lock released.
fn io_bound_body(rounds: u64, delay: Duration) -> impl Fn(&mut simulator::Held<'_>) -> u64 + Sync {
    move |held| {
        (0..rounds).fold(0, |sum: u64, _| {
            let value = (0..IO_BYTECODES).fold(0, |inner: u64, _| {
                let value = bytecode();
                held.check();
                inner.wrapping_add(value)
            });
            held.blocking(|| std::thread::sleep(delay));
            sum.wrapping_add(value)
        })
    }
}

/// One checked run of `runner` on `inputs`: its wall time in seconds.
fn time_runner(runner: &Runner, inputs: &[u64], answer: u64) -> Result<f64, LabError> {
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

fn rust(name: &str, unit: &str, samples: Vec<f64>) -> Measurement {
    Measurement::new(name, Implementation::Rust, unit, samples)
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
    fn id(&self) -> &'static str {
        "gil"
    }

    fn title(&self) -> &'static str {
        "The GIL: a simulated one in Rust, and CPython's own"
    }

    fn seed_section(&self) -> &'static str {
        "5.2.1, 6.3.2"
    }

    fn run(&self, ctx: &mut Context<'_>) -> Result<ExperimentReport, LabError> {
        let sizes = Sizes::at(ctx.scale());
        let threads = sizes.threads;
        let total = sizes.repetitions as u64 + 2;
        let answer = interpret::call(sizes.steps);
        let inputs = vec![sizes.steps; threads];
        let mut measurements = Vec::new();

        let serial = start(Mode::Serial)?;
        let native = start(Mode::Threads(threads))?;
        let processes = start(Mode::Processes(threads))?;
        let delay = Duration::from_millis(sizes.io_delay_ms);
        let all_rounds = sizes.io_rounds * sizes.io_threads as u64;
        let round_answer = interpret::call(IO_BYTECODES);
        let simulated_cpu = || under_simulated_gil(threads, answer, cpu_bound_body(sizes.steps));
        for runner in [&serial, &native, &processes] {
            time_runner(runner, &inputs, answer)?;
        }
        simulated_cpu()?;
        ctx.progress(1, total);

        // Each repetition times every mode once, in turn, so that a burst of load from
        // elsewhere falls on several modes, not on every sample of one.
        let mut samples: [Vec<f64>; 4] = Default::default();
        let mut io_samples: [Vec<f64>; 2] = Default::default();
        let mut cpu_seconds = Vec::new();
        let mut forced_holds = Vec::new();
        let mut last_holds = Vec::new();
        for repetition in 0..sizes.repetitions {
            samples[0].push(time_runner(&serial, &inputs, answer)?);
            let run = simulated_cpu()?;
            samples[1].push(run.seconds);
            cpu_seconds.push(run.cpu_seconds);
            forced_holds.extend(
                run.holds
                    .iter()
                    .filter(|h| h.forced)
                    .map(|h| h.duration().as_secs_f64()),
            );
            last_holds = run.holds;
            samples[2].push(time_runner(&native, &inputs, answer)?);
            samples[3].push(time_runner(&processes, &inputs, answer)?);
            let one = under_simulated_gil(
                1,
                round_answer.wrapping_mul(all_rounds),
                io_bound_body(all_rounds, delay),
            )?;
            io_samples[0].push(one.seconds);
            let many = under_simulated_gil(
                sizes.io_threads,
                round_answer.wrapping_mul(sizes.io_rounds),
                io_bound_body(sizes.io_rounds, delay),
            )?;
            io_samples[1].push(many.seconds);
            ctx.progress(repetition as u64 + 2, total);
        }
        drop((serial, native, processes));
        for ((name, _), series) in CPU_MODES.iter().zip(samples) {
            measurements.push(rust(name, "s", series));
        }
        for ((name, _), series) in IO_MODES.iter().zip(io_samples) {
            measurements.push(rust(name, "s", series));
        }
        measurements.push(rust(CPU_TIME, "s", cpu_seconds));
        let no_forced_holds = forced_holds.is_empty();
        if !no_forced_holds {
            measurements.push(rust(HOLD, "s", forced_holds));
        }

        let python = ctx.python(
            "gil",
            include_str!("../../../python/gil.py"),
            &[
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
        )?;
        ctx.progress(total, total);

        let mut report = ExperimentReport {
            measurements,
            ..Default::default()
        };
        findings::add_python(&mut report, python.as_ref());
        if no_forced_holds {
            report.notes.push(
                "No thread held the simulated GIL long enough to be asked to drop it: the runs \
                 were shorter than a switch interval."
                    .to_owned(),
            );
        }
        let results = Results {
            found: Findings::new(&report.measurements),
            threads,
            io_threads: sizes.io_threads,
            cores: triad::available_cores(),
        };
        if let Some(s) = results.speedup(Implementation::Rust, CPU_MODES[1].0)
            && s > 1.2
        {
            report.notes.push(format!(
                "Threads under the simulated GIL cannot beat one thread, yet measured {}: the \
                 one-thread baseline was slowed by other work on this machine while it ran.",
                times(s)
            ));
        }
        report.verdicts = verdicts(&results);
        report.table = table(&results);
        report.charts = vec![
            speedup_chart(
                &results,
                &CPU_MODES,
                &format!("CPU-bound: {threads} threads' bytecodes, speed-up over one thread"),
            ),
            speedup_chart(
                &results,
                &IO_MODES,
                &format!(
                    "IO-bound: {} threads sleeping {} ms between bytecodes, speed-up over one \
                     thread",
                    sizes.io_threads, sizes.io_delay_ms
                ),
            ),
        ];
        report.timelines = vec![from_spans(
            format!(
                "{threads} threads under the simulated GIL: one holds it at a time, turns of \
                 about {} ms",
                SWITCH_INTERVAL.as_millis()
            ),
            &hold_spans(&last_holds),
            LaneBy::Task,
        )];
        report.method = format!(
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
            reps = sizes.repetitions,
            io_threads = sizes.io_threads,
            rounds = sizes.io_rounds,
            delay = sizes.io_delay_ms,
            py_steps = sizes.python_steps,
            py_reps = sizes.python_repetitions,
            hold = sizes.python_hold_s,
        );
        Ok(report)
    }
}

/// All measurements (Rust's and CPython's), read back by language and name.
struct Results<'a> {
    found: Findings<'a>,
    threads: usize,
    io_threads: usize,
    cores: usize,
}

impl Results<'_> {
    fn summary(&self, implementation: Implementation, name: &str) -> Option<&Summary> {
        self.found.summary(name, implementation, &[])
    }

    /// Speed-up of `name` over the serial row of its kind (`cpu …` or `io …`).
    fn speedup(&self, implementation: Implementation, name: &str) -> Option<f64> {
        let serial = if name.starts_with("io ") {
            IO_MODES[0].0
        } else {
            CPU_MODES[0].0
        };
        Some(speedup(
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
                .summary(implementation, HOLD)
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
            cpu_per_wall(results, implementation).map_or("—".to_owned(), |r| format!("{r:.2}")),
        );
        row.push(String::new());
    }
    table.row(row);
    table
}

/// CPU seconds burnt per wall second while threads ran under the GIL.
fn cpu_per_wall(results: &Results<'_>, implementation: Implementation) -> Option<f64> {
    Some(
        results.summary(implementation, CPU_TIME)?.median
            / results.summary(implementation, CPU_MODES[1].0)?.median,
    )
}

fn speedup_chart(results: &Results<'_>, modes: &[(&str, &str)], title: &str) -> Chart {
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
                let run = results.summary(implementation, name)?;
                Some(speedup_point(index as f64, serial, run))
            })
            .collect();
        series.push(Series {
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

/// A speed-up below this is "none" (noise on a shared machine stays under it).
const NO_SPEEDUP: f64 = 1.3;
/// A parallel speed-up counts as real when it reaches this share of the ideal.
const PARALLEL_SHARE: f64 = 0.7;

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

    let under_gil = [rate(Rust, CPU_MODES[1].0), rate(Python, CPU_MODES[1].0)];
    let checks: Vec<bool> = under_gil
        .iter()
        .flatten()
        .map(|s| *s < NO_SPEEDUP)
        .collect();
    verdicts.push(Verdict {
        claim: "Only one thread holds the GIL at any moment, so CPU-bound threads get no \
                speed-up, however many cores there are."
            .into(),
        quote: "任意时刻,只有一个线程持有GIL".into(),
        outcome: if multi_core {
            Outcome::from_checks(checks.iter().copied())
        } else {
            Outcome::Depends
        },
        evidence: if multi_core {
            format!(
                "{threads} threads on {} cores, speed-up over one thread: simulated GIL {}, \
                 CPython {}; Rust threads without a GIL {}",
                results.cores,
                shown(under_gil[0]),
                shown(under_gil[1]),
                shown(rate(Rust, CPU_MODES[2].0))
            )
        } else {
            one_core.clone()
        },
    });

    let (source, slowdown) = match results.summary(Python, CPU_MODES[1].0) {
        Some(_) => ("CPython", rate(Python, CPU_MODES[1].0).map(|s| 1.0 / s)),
        None => (
            "the simulated GIL",
            rate(Rust, CPU_MODES[1].0).map(|s| 1.0 / s),
        ),
    };
    let outcome = match slowdown {
        Some(ratio) if ratio > 1.05 => Outcome::Confirmed,
        Some(ratio) if ratio < 0.95 => Outcome::Refuted,
        _ => Outcome::Depends,
    };
    verdicts.push(Verdict {
        claim: "CPU-bound work on several threads is even slower than on one (switching costs)."
            .into(),
        quote: "多线程在CPU密集型任务上甚至比单线程更慢(上下文切换开销)".into(),
        outcome,
        evidence: format!(
            "{source}: {threads} threads took {} the time of one thread{}",
            slowdown.map_or("—".to_owned(), times),
            if outcome == Outcome::Depends {
                " — no slowdown beyond 5 %: the lock changes hands only every few ms"
            } else {
                ""
            }
        ),
    });

    let interval = results
        .found
        .find(SWITCH_INTERVAL_NAME, Python, &[])
        .and_then(|m| m.samples.first().copied());
    let python_hold = results.summary(Python, HOLD);
    let rust_hold = results.summary(Rust, HOLD);
    let (outcome, evidence) = match (interval, python_hold) {
        (Some(interval), Some(hold)) => {
            let holds_about_5ms = (2.5e-3..=10e-3).contains(&hold.median);
            let is_5ms = (interval - 0.005).abs() < 1e-9;
            (
                if is_5ms && holds_about_5ms {
                    Outcome::Confirmed
                } else if !is_5ms && !holds_about_5ms {
                    Outcome::Refuted
                } else {
                    Outcome::Depends
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
    verdicts.push(Verdict {
        claim: "Since Python 3.2 the GIL switches on a time interval, 5 ms by default, not \
                after a count of instructions."
            .into(),
        quote: "不再按指令数，改为按时间间隔（默认5ms）".into(),
        outcome,
        evidence,
    });

    let python_cpu = cpu_per_wall(results, Python);
    let rust_cpu = cpu_per_wall(results, Rust);
    let spinning = results.ideal();
    let outcome = match python_cpu {
        _ if !multi_core => Outcome::Depends,
        Some(ratio) if ratio < NO_SPEEDUP => Outcome::Refuted,
        Some(ratio) if ratio >= 0.8 * spinning => Outcome::Confirmed,
        _ => Outcome::Depends,
    };
    verdicts.push(Verdict {
        claim: "A thread waiting for the GIL spins on its core.".into(),
        quote: "线程T2在Core 1上自旋等待GIL".into(),
        outcome,
        evidence: if multi_core {
            format!(
                "CPU seconds burnt per wall second by {threads} CPU-bound threads: CPython {}, \
                 the simulator {} (spinning waiters would burn about {spinning:.0}; waiters \
                 asleep on a condition variable, about 1)",
                python_cpu.map_or("— (CPython did not run)".to_owned(), |r| format!(
                    "{r:.2}"
                )),
                rust_cpu.map_or("—".to_owned(), |r| format!("{r:.2}"))
            )
        } else {
            one_core.clone()
        },
    });

    let io_threads = results.io_threads as f64;
    let io = [rate(Rust, IO_MODES[1].0), rate(Python, IO_MODES[1].0)];
    verdicts.push(Verdict {
        claim: "Despite the GIL, threads overlap IO: a blocking wait releases it.".into(),
        quote: "虽然有GIL,但I/O等待期间会释放GIL,所以能并发".into(),
        outcome: Outcome::from_checks(io.iter().flatten().map(|s| *s >= 0.6 * io_threads)),
        evidence: format!(
            "{} IO-bound threads, speed-up over one thread (ideal {io_threads:.0}×): simulated \
             GIL {}, CPython {}",
            results.io_threads,
            shown(io[0]),
            shown(io[1])
        ),
    });

    let python_processes = rate(Python, CPU_MODES[3].0);
    let rust_processes = rate(Rust, CPU_MODES[3].0);
    let ideal = results.ideal();
    verdicts.push(Verdict {
        claim: "Several processes run Python bytecode truly in parallel on several cores, each \
                with its own GIL."
            .into(),
        quote: "多个进程可以在多核上真正并行执行Python字节码".into(),
        outcome: match python_processes {
            _ if !multi_core => Outcome::Depends,
            Some(s) if s >= PARALLEL_SHARE * ideal => Outcome::Confirmed,
            Some(s) if s < NO_SPEEDUP => Outcome::Refuted,
            _ => Outcome::Depends,
        },
        evidence: if multi_core {
            format!(
                "{threads} processes, speed-up over one (ideal {ideal:.0}×): CPython {}; Rust {}",
                shown(python_processes),
                shown(rust_processes)
            )
        } else {
            one_core.clone()
        },
    });

    let native = rate(Rust, CPU_MODES[2].0);
    verdicts.push(Verdict {
        claim: "Native threads (C, Java — and Rust) run in parallel.".into(),
        quote: "原生线程可以并行(C/Java等)".into(),
        outcome: match native {
            _ if !multi_core => Outcome::Depends,
            Some(s) => Outcome::from_checks([s >= PARALLEL_SHARE * ideal]),
            None => Outcome::Depends,
        },
        evidence: if multi_core {
            format!(
                "{threads} Rust threads, speed-up over one (ideal {ideal:.0}×): {}",
                shown(native)
            )
        } else {
            one_core
        },
    });
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
        let answer = interpret::call(IO_BYTECODES).wrapping_mul(2);
        let run = under_simulated_gil(4, answer, io_bound_body(2, delay)).unwrap();
        assert!(
            run.seconds < 4.0 * 2.0 * delay.as_secs_f64(),
            "{}",
            run.seconds
        );
    }

    fn measured(name: &str, implementation: Implementation, s: f64) -> Measurement {
        Measurement::new(name, implementation, "s", vec![s])
    }

    #[test]
    fn verdicts_follow_the_numbers() {
        use Implementation::{Python, Rust};
        let rust = vec![
            measured("cpu serial", Rust, 1.0),
            measured("cpu threads under the GIL", Rust, 1.01),
            measured("cpu threads without a GIL", Rust, 0.51),
            measured("cpu processes", Rust, 0.52),
            measured(CPU_TIME, Rust, 1.02),
            measured(HOLD, Rust, 0.005),
            measured("io serial", Rust, 0.24),
            measured("io threads under the GIL", Rust, 0.031),
        ];
        let python = vec![
            measured("cpu serial", Python, 1.0),
            measured("cpu threads under the GIL", Python, 1.1),
            measured("cpu processes", Python, 0.55),
            measured(CPU_TIME, Python, 1.12),
            measured(HOLD, Python, 0.0051),
            measured(SWITCH_INTERVAL_NAME, Python, 0.005),
            measured("io serial", Python, 0.25),
            measured("io threads under the GIL", Python, 0.033),
        ];
        let all = [rust, python].concat();
        let results = Results {
            found: Findings::new(&all),
            threads: 2,
            io_threads: 8,
            cores: 2,
        };
        let outcomes: Vec<Outcome> = verdicts(&results).iter().map(|v| v.outcome).collect();
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
}
