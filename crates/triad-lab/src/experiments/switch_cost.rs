//! `switch-cost` (seed 6.5.2, 6.6): what one hand-over between two parties costs — two threads,
//! two processes, two coroutines passing a token back and forth.
//!
//! Each variant runs a session: the partner starts, a few warm-up round trips, then
//! `repetitions` timed batches of `round_trips` round trips; a sample is a batch's time divided
//! by its hand-overs (two per round trip). Threads hand over through a mutex and condition
//! variable, through a raw futex, and through a pair of pipes; processes through a pair of pipes
//! to a forked child; coroutines through a tokio channel and by `yield_now` on a current-thread
//! runtime. Thread and process variants run twice: with both parties pinned to one CPU (every
//! hand-over is a context switch) and free to run on any (a hand-over may be a wake-up on the
//! other core). The CPython script does the same with `threading.Condition`,
//! `multiprocessing.Pipe`, `asyncio.Queue` and `asyncio.sleep(0)`, and adds the seed's own
//! `time.sleep(0)` loop.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, WaitOptions, waitpid};
use rustix::thread::futex;

use super::affinity::{PinnedThread, first_allowed_cpu};
use super::cost_support::{Checks, SideBySide, cell, ratio_cell};
use super::event_loop::{Runtime, ping_pong_switch_cost};
use crate::error::LabError;
use crate::experiment::{Context, Experiment};
use crate::machine::Machine;
use crate::python::PythonOutput;
use crate::results::{ExperimentReport, Implementation, Measurement, Table};
use crate::stats::format_seconds;

/// The `switch-cost` experiment.
#[derive(Debug)]
pub(crate) struct SwitchCost;

/// How many round trips a session makes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    warmup: u64,
    round_trips: u64,
    repetitions: usize,
}

/// Where the two parties may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Both on this CPU.
    OneCpu(usize),
    /// Wherever the scheduler puts them.
    Free,
}

/// Pins the calling thread as `placement` says, until the returned guard is dropped.
fn pin(placement: Placement) -> io::Result<Option<PinnedThread>> {
    match placement {
        Placement::OneCpu(cpu) => PinnedThread::to(cpu).map(Some),
        Placement::Free => Ok(None),
    }
}

impl Placement {
    fn label(self) -> &'static str {
        match self {
            Placement::OneCpu(_) => "pinned",
            Placement::Free => "free",
        }
    }
}

/// What runs on each side of the hand-over, with the seed's claimed cost of one switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Thread,
    Process,
    Coroutine,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Thread => "thread",
            Unit::Process => "process",
            Unit::Coroutine => "coroutine",
        }
    }

    /// The seed's range for one switch, in seconds.
    fn claimed(self) -> (f64, f64) {
        match self {
            Unit::Thread => (5e-6, 10e-6),
            Unit::Process => (20e-6, 100e-6),
            Unit::Coroutine => (0.1e-6, 0.5e-6),
        }
    }
}

/// One row of the table: the Rust and CPython measurement names it shows (either may be absent).
#[derive(Debug, Clone, Copy)]
struct Row {
    unit: Unit,
    hand_over: &'static str,
    placement: &'static str,
    rust: Option<&'static str>,
    python: Option<&'static str>,
}

const CONDVAR: &str = "threads, Mutex + Condvar";
const FUTEX: &str = "threads, futex";
const THREAD_PIPE: &str = "threads, pipe";
const PROCESS_PIPE: &str = "processes, pipe";
const TOKIO_CHANNEL: &str = "coroutines, tokio mpsc channel";
const TOKIO_YIELD: &str = "coroutines, tokio yield_now";
const REFERENCE_CHANNEL: &str = "coroutines, the lab's reference event loop, channel";
const PY_CONDITION: &str = "threads, threading.Condition";
const PY_SLEEP0: &str = "threads, time.sleep(0) loop (seed 6.6)";
const PY_PIPE: &str = "processes, multiprocessing.Pipe";
const PY_QUEUE: &str = "coroutines, asyncio.Queue";
const PY_ASYNC_SLEEP0: &str = "coroutines, asyncio.sleep(0) (seed 6.6)";
const ONE_THREAD: &str = "one thread";

const ROWS: &[Row] = &[
    Row {
        unit: Unit::Thread,
        hand_over: "condition variable",
        placement: "pinned",
        rust: Some(CONDVAR),
        python: Some(PY_CONDITION),
    },
    Row {
        unit: Unit::Thread,
        hand_over: "condition variable",
        placement: "free",
        rust: Some(CONDVAR),
        python: Some(PY_CONDITION),
    },
    Row {
        unit: Unit::Thread,
        hand_over: "futex",
        placement: "pinned",
        rust: Some(FUTEX),
        python: None,
    },
    Row {
        unit: Unit::Thread,
        hand_over: "futex",
        placement: "free",
        rust: Some(FUTEX),
        python: None,
    },
    Row {
        unit: Unit::Thread,
        hand_over: "pipe",
        placement: "pinned",
        rust: Some(THREAD_PIPE),
        python: None,
    },
    Row {
        unit: Unit::Thread,
        hand_over: "pipe",
        placement: "free",
        rust: Some(THREAD_PIPE),
        python: None,
    },
    Row {
        unit: Unit::Thread,
        hand_over: "sleep(0) loop, the seed's method",
        placement: "free",
        rust: None,
        python: Some(PY_SLEEP0),
    },
    Row {
        unit: Unit::Process,
        hand_over: "pipe",
        placement: "pinned",
        rust: Some(PROCESS_PIPE),
        python: Some(PY_PIPE),
    },
    Row {
        unit: Unit::Process,
        hand_over: "pipe",
        placement: "free",
        rust: Some(PROCESS_PIPE),
        python: Some(PY_PIPE),
    },
    Row {
        unit: Unit::Coroutine,
        hand_over: "channel / queue",
        placement: ONE_THREAD,
        rust: Some(TOKIO_CHANNEL),
        python: Some(PY_QUEUE),
    },
    Row {
        unit: Unit::Coroutine,
        hand_over: "channel, reference event loop (event-loop)",
        placement: ONE_THREAD,
        rust: Some(REFERENCE_CHANNEL),
        python: None,
    },
    Row {
        unit: Unit::Coroutine,
        hand_over: "yield, the seed's method",
        placement: ONE_THREAD,
        rust: Some(TOKIO_YIELD),
        python: Some(PY_ASYNC_SLEEP0),
    },
];

impl Experiment for SwitchCost {
    fn id(&self) -> &'static str {
        "switch-cost"
    }

    fn title(&self) -> &'static str {
        "Cost of one switch: threads, processes, coroutines"
    }

    fn seed_section(&self) -> &'static str {
        "6.5.2, 6.6"
    }

    fn run(&self, ctx: &mut Context<'_>) -> Result<ExperimentReport, LabError> {
        let plan = Plan {
            warmup: ctx.pick(20, 200, 1000),
            round_trips: ctx.pick(200, 1500, 10_000),
            repetitions: ctx.pick(3, 5, 11),
        };
        let coroutine_plan = Plan {
            round_trips: plan.round_trips * 10,
            ..plan
        };
        let cpu = first_allowed_cpu().map_err(|e| LabError::os("reading the CPU mask", e))?;
        let placements = [Placement::OneCpu(cpu), Placement::Free];
        let total = 2 * placements.len() as u64 * 2 + 3;
        let mut done = 0;
        let mut measurements = Vec::new();
        let mut record = |name: &str, placement: &str, trips: u64, samples: Vec<f64>| {
            measurements.push(
                Measurement::new(name, Implementation::Rust, "s", samples)
                    .param("placement", placement)
                    .param("round_trips", trips),
            );
        };

        for placement in placements {
            let label = placement.label();
            let condvar = condvar_ping_pong(plan, placement)
                .map_err(|e| LabError::os("condvar ping-pong", e))?;
            record(CONDVAR, label, plan.round_trips, condvar);
            let futex =
                futex_ping_pong(plan, placement).map_err(|e| LabError::os("futex ping-pong", e))?;
            record(FUTEX, label, plan.round_trips, futex);
            done += 2;
            ctx.progress(done, total);
            let thread_pipe = pipe_ping_pong(plan, placement, Partner::Thread)
                .map_err(|e| LabError::os("pipe ping-pong between threads", e))?;
            record(THREAD_PIPE, label, plan.round_trips, thread_pipe);
            let process_pipe = pipe_ping_pong(plan, placement, Partner::Process)
                .map_err(|e| LabError::os("pipe ping-pong between processes", e))?;
            record(PROCESS_PIPE, label, plan.round_trips, process_pipe);
            done += 2;
            ctx.progress(done, total);
        }
        let channel = tokio_channel_ping_pong(coroutine_plan)
            .map_err(|e| LabError::os("tokio channel ping-pong", e))?;
        record(
            TOKIO_CHANNEL,
            ONE_THREAD,
            coroutine_plan.round_trips,
            channel,
        );
        let yields = tokio_yield(coroutine_plan).map_err(|e| LabError::os("tokio yield_now", e))?;
        record(TOKIO_YIELD, ONE_THREAD, coroutine_plan.round_trips, yields);
        let reference = (0..coroutine_plan.repetitions)
            .map(|_| {
                ping_pong_switch_cost(Runtime::Reference, coroutine_plan.round_trips)
                    .map(|per_switch| per_switch.as_secs_f64())
            })
            .collect::<Result<Vec<f64>, LabError>>()?;
        record(
            REFERENCE_CHANNEL,
            ONE_THREAD,
            coroutine_plan.round_trips,
            reference,
        );
        done += 2;
        ctx.progress(done, total);

        let python_plan = Plan {
            warmup: ctx.pick(10, 50, 200),
            round_trips: ctx.pick(100, 500, 3000),
            repetitions: ctx.pick(3, 5, 9),
        };
        let python = ctx.python(
            "switch_cost",
            include_str!("../../python/switch_cost.py"),
            &[
                python_plan.warmup,
                python_plan.round_trips,
                python_plan.round_trips * 5,
                python_plan.repetitions as u64,
                cpu as u64,
            ]
            .map(|n| n.to_string()),
        )?;
        ctx.progress(total, total);
        Ok(report(
            plan,
            coroutine_plan,
            python_plan,
            measurements,
            python,
        ))
    }
}

fn report(
    plan: Plan,
    coroutine_plan: Plan,
    python_plan: Plan,
    mut measurements: Vec<Measurement>,
    python: Option<PythonOutput>,
) -> ExperimentReport {
    let mut notes = Vec::new();
    let python = crate::python::measurements_and_notes(python, &mut notes);
    let find = |set: &[Measurement], name: Option<&str>, placement: &str| {
        let name = name?;
        set.iter()
            .find(|m| {
                m.name == name
                    && m.params.get("placement").and_then(|p| p.as_str()) == Some(placement)
            })
            .cloned()
    };
    let mut table = Table::new([
        "unit",
        "hand-over",
        "CPUs",
        "Rust per switch",
        "CPython per switch",
        "CPython ÷ Rust",
        "seed says",
    ]);
    let mut bars = SideBySide::new();
    let mut claims = [
        (Unit::Process, Checks::default()),
        (Unit::Thread, Checks::default()),
        (Unit::Coroutine, Checks::default()),
    ];
    for row in ROWS {
        let rust = find(&measurements, row.rust, row.placement);
        let cpython = find(&python, row.python, row.placement);
        let (low, high) = row.unit.claimed();
        table.row([
            row.unit.name().to_owned(),
            row.hand_over.to_owned(),
            row.placement.to_owned(),
            cell(rust.as_ref(), format_seconds),
            cell(cpython.as_ref(), format_seconds),
            ratio_cell(cpython.as_ref(), rust.as_ref()),
            format!("{}-{} µs", micros(low), micros(high)),
        ]);
        bars.add(
            format!("{} {} ({})", row.unit.name(), row.hand_over, row.placement),
            rust.iter().chain(&cpython),
        );
        let checks = &mut claims
            .iter_mut()
            .find(|(unit, _)| *unit == row.unit)
            .expect("every unit has a claim")
            .1;
        for (language, found) in [("Rust", &rust), ("CPython", &cpython)] {
            if let Some(m) = found {
                checks.check(
                    format!(
                        "{language} {}, {}: {}",
                        m.name,
                        row.placement,
                        format_seconds(m.median())
                    ),
                    (low..=high).contains(&m.median()),
                );
            }
        }
    }

    let median_of = |set: &[Measurement], name: &str, placement: &str| {
        find(set, Some(name), placement).map(|m| m.median())
    };
    let mut verdicts = Vec::new();
    let [process, thread, coroutine] = claims;
    verdicts.push(process.1.verdict(
        "A process switch costs about 20-100 µs.",
        "进程切换约20-100微秒",
    ));
    verdicts.push(thread.1.verdict(
        "A thread switch costs about 5-10 µs.",
        "总计: ~5000-10000ns (5-10微秒)",
    ));
    verdicts.push(coroutine.1.verdict(
        "A coroutine switch costs about 0.1-0.5 µs.",
        "总计: ~100-500ns (0.1-0.5微秒)",
    ));
    let mut faster = Checks::default();
    for (language, set, thread_name, coroutine_name) in [
        ("Rust", &measurements[..], CONDVAR, TOKIO_CHANNEL),
        ("CPython", &python[..], PY_CONDITION, PY_QUEUE),
    ] {
        if let (Some(thread), Some(coroutine)) = (
            median_of(set, thread_name, "pinned"),
            median_of(set, coroutine_name, ONE_THREAD),
        ) {
            let ratio = thread / coroutine;
            faster.check(
                format!("{language}: {thread_name} pinned ÷ {coroutine_name} = {ratio:.0}×"),
                (10.0..=100.0).contains(&ratio),
            );
        }
    }
    verdicts.push(faster.verdict(
        "Coroutines switch 10-100 times faster than threads.",
        "速度差异: 协程比线程快10-100倍!",
    ));
    let mut lighter = Checks::default();
    for placement in ["pinned", "free"] {
        if let (Some(process), Some(thread)) = (
            median_of(&measurements, PROCESS_PIPE, placement),
            median_of(&measurements, THREAD_PIPE, placement),
        ) {
            lighter.check(
                format!(
                    "Rust pipe ping-pong, {placement}: processes {} vs threads {}",
                    format_seconds(process),
                    format_seconds(thread)
                ),
                thread < process,
            );
        }
    }
    verdicts.push(lighter.verdict(
        "Threads switch faster than processes, as they share one address space (no TLB flush).",
        "更快:不需要切换虚拟地址空间(不需要刷新TLB)",
    ));

    if let Some(kind) = Machine::detect().virtualization {
        notes.push(format!(
            "This machine is a VM ({kind}): a context switch that enters the hypervisor costs \
             more than on bare metal. Published bare-metal figures: a thread switch 1.2-2.2 µs, \
             a futex switch 1.1-1.9 µs pinned and 3-4.5 µs free (Bendersky 2018, Tsuna 2010)."
        ));
    }
    notes.push(
        "Pipe and condition-variable hand-overs include their system calls, as a real \
         program's would; the futex row is the thinnest kernel hand-over."
            .to_owned(),
    );
    if !python.is_empty() {
        notes.push(
            "A dash: that side has no such hand-over (CPython has no raw futex; Rust has no \
             interpreter lock for the seed's sleep(0) loop to trade)."
                .to_owned(),
        );
    }
    measurements.extend(python);
    ExperimentReport {
        method: format!(
            "Two parties pass a token back and forth; a sample is one batch's time divided by \
             its hand-overs (two per round trip). Rust: {} warm-up round trips, then {} batches \
             of {} round trips for threads and processes and {} for coroutines. CPython: {} \
             batches of {} round trips ({} for coroutines). \"pinned\": both parties on one \
             CPU (each hand-over is a context switch); \"free\": any CPU. The processes are a \
             forked child echoing bytes on a pipe (Rust) and a multiprocessing.Pipe to a \
             forked Process (CPython). Coroutines run on one thread: a tokio current-thread \
             runtime and asyncio.",
            plan.warmup,
            plan.repetitions,
            plan.round_trips,
            coroutine_plan.round_trips,
            python_plan.repetitions,
            python_plan.round_trips,
            python_plan.round_trips * 5,
        ),
        measurements,
        table,
        charts: vec![bars.chart(
            "Cost of one switch (median, quartiles)",
            "hand-over",
            "seconds per switch",
        )],
        verdicts,
        notes,
        ..Default::default()
    }
}

/// Seconds as microseconds, rounded to what the seed wrote (0.1, 5, 20).
fn micros(seconds: f64) -> f64 {
    (seconds * 1e7).round() / 10.0
}

/// Runs `round_trip` `plan.warmup` times, then times `plan.repetitions` batches of
/// `plan.round_trips`; returns seconds per hand-over for each batch.
fn time_round_trips(
    plan: Plan,
    mut round_trip: impl FnMut() -> io::Result<()>,
) -> io::Result<Vec<f64>> {
    for _ in 0..plan.warmup {
        round_trip()?;
    }
    let mut samples = Vec::with_capacity(plan.repetitions);
    for _ in 0..plan.repetitions {
        let start = Instant::now();
        for _ in 0..plan.round_trips {
            round_trip()?;
        }
        samples.push(start.elapsed().as_secs_f64() / (2 * plan.round_trips) as f64);
    }
    Ok(samples)
}

/// Whose turn it is in the condition-variable ping-pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Main,
    Partner,
    Stop,
}

fn condvar_ping_pong(plan: Plan, placement: Placement) -> io::Result<Vec<f64>> {
    let _pin = pin(placement)?;
    let shared = Arc::new((Mutex::new(Turn::Main), Condvar::new()));
    let partner = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let (turn, changed) = &*shared;
            let mut turn = turn.lock().expect("the ping-pong lock is never poisoned");
            loop {
                turn = changed
                    .wait_while(turn, |t| *t == Turn::Main)
                    .expect("the ping-pong lock is never poisoned");
                if *turn == Turn::Stop {
                    return;
                }
                *turn = Turn::Main;
                changed.notify_one();
            }
        })
    };
    let (turn, changed) = &*shared;
    let samples = time_round_trips(plan, || {
        let mut turn = turn.lock().expect("the ping-pong lock is never poisoned");
        *turn = Turn::Partner;
        changed.notify_one();
        let _turn = changed
            .wait_while(turn, |t| *t == Turn::Partner)
            .expect("the ping-pong lock is never poisoned");
        Ok(())
    });
    *turn.lock().expect("the ping-pong lock is never poisoned") = Turn::Stop;
    changed.notify_one();
    partner
        .join()
        .expect("the ping-pong partner does not panic");
    samples
}

const MAIN_TURN: u32 = 0;
const PARTNER_TURN: u32 = 1;
const STOP: u32 = 2;

/// Waits while `word` holds `value` (a futex wait; spurious returns are re-checked).
fn futex_wait_while(word: &AtomicU32, value: u32) {
    while word.load(Ordering::Acquire) == value {
        // An error is EAGAIN (the word changed already) or EINTR: both mean look again.
        let _ = futex::wait(word, futex::Flags::PRIVATE, value, None);
    }
}

fn futex_hand_to(word: &AtomicU32, value: u32) {
    word.store(value, Ordering::Release);
    // Waking no one (the other side was not asleep yet) is not an error here.
    let _ = futex::wake(word, futex::Flags::PRIVATE, 1);
}

fn futex_ping_pong(plan: Plan, placement: Placement) -> io::Result<Vec<f64>> {
    let _pin = pin(placement)?;
    let word = Arc::new(AtomicU32::new(MAIN_TURN));
    let partner = {
        let word = Arc::clone(&word);
        std::thread::spawn(move || {
            loop {
                futex_wait_while(&word, MAIN_TURN);
                if word.load(Ordering::Acquire) == STOP {
                    return;
                }
                futex_hand_to(&word, MAIN_TURN);
            }
        })
    };
    let samples = time_round_trips(plan, || {
        futex_hand_to(&word, PARTNER_TURN);
        futex_wait_while(&word, PARTNER_TURN);
        Ok(())
    });
    futex_hand_to(&word, STOP);
    partner.join().expect("the futex partner does not panic");
    samples
}

/// Who echoes the bytes in the pipe ping-pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partner {
    Thread,
    Process,
}

/// Echoes each byte read from `input` to `output` until `input` reaches its end. Makes only
/// `read` and `write` system calls, so a forked child of a multi-threaded program may run it.
fn echo_until_closed(input: BorrowedFd<'_>, output: BorrowedFd<'_>) {
    let mut byte = [0_u8; 1];
    loop {
        match rustix::io::read(input, &mut byte) {
            Ok(0) => return,
            Ok(_) => loop {
                match rustix::io::write(output, &byte) {
                    Ok(_) => break,
                    Err(Errno::INTR) => continue,
                    Err(_) => return,
                }
            },
            Err(Errno::INTR) => continue,
            Err(_) => return,
        }
    }
}

/// Sends one byte on `to` and waits for the echo on `from`.
fn pipe_round_trip(to: &OwnedFd, from: &OwnedFd) -> io::Result<()> {
    let mut byte = [1_u8];
    rustix::io::retry_on_intr(|| rustix::io::write(to, &byte))?;
    let read = rustix::io::retry_on_intr(|| rustix::io::read(from, &mut byte))?;
    if read == 0 {
        return Err(io::Error::other("the echoing partner closed its pipe"));
    }
    Ok(())
}

fn pipe_ping_pong(plan: Plan, placement: Placement, partner: Partner) -> io::Result<Vec<f64>> {
    let _pin = pin(placement)?;
    let (partner_reads, to_partner) = pipe_with(PipeFlags::CLOEXEC)?;
    let (from_partner, partner_writes) = pipe_with(PipeFlags::CLOEXEC)?;
    match partner {
        Partner::Thread => {
            let echo = std::thread::spawn(move || {
                echo_until_closed(partner_reads.as_fd(), partner_writes.as_fd());
            });
            let samples = time_round_trips(plan, || pipe_round_trip(&to_partner, &from_partner));
            drop(to_partner);
            echo.join().expect("the echoing thread does not panic");
            samples
        }
        Partner::Process => {
            // SAFETY: the child only drops descriptors (close), makes read and write system
            // calls and leaves with _exit: all async-signal-safe, as a child forked from a
            // multi-threaded program requires.
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                return Err(io::Error::last_os_error());
            }
            if pid == 0 {
                drop(to_partner);
                drop(from_partner);
                echo_until_closed(partner_reads.as_fd(), partner_writes.as_fd());
                // SAFETY: _exit ends the child at once, running nothing of the parent's.
                unsafe { libc::_exit(0) };
            }
            drop(partner_reads);
            drop(partner_writes);
            let samples = time_round_trips(plan, || pipe_round_trip(&to_partner, &from_partner));
            drop(to_partner);
            waitpid(Pid::from_raw(pid), WaitOptions::empty())?;
            samples
        }
    }
}

fn current_thread_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Sends a token to the partner task and waits for it to come back.
async fn channel_round_trip(
    to_partner: &tokio::sync::mpsc::Sender<u8>,
    inbox: &mut tokio::sync::mpsc::Receiver<u8>,
) -> io::Result<()> {
    let ended = || io::Error::other("the partner task ended");
    to_partner.send(1).await.map_err(|_| ended())?;
    inbox.recv().await.map(drop).ok_or_else(ended)
}

fn tokio_channel_ping_pong(plan: Plan) -> io::Result<Vec<f64>> {
    current_thread_runtime()?.block_on(async move {
        let (to_partner, mut partner_inbox) = tokio::sync::mpsc::channel::<u8>(1);
        let (to_main, mut main_inbox) = tokio::sync::mpsc::channel::<u8>(1);
        let partner = tokio::spawn(async move {
            while let Some(token) = partner_inbox.recv().await {
                if to_main.send(token).await.is_err() {
                    return;
                }
            }
        });
        let pinger = tokio::spawn(async move {
            for _ in 0..plan.warmup {
                channel_round_trip(&to_partner, &mut main_inbox).await?;
            }
            let mut samples = Vec::with_capacity(plan.repetitions);
            for _ in 0..plan.repetitions {
                let start = Instant::now();
                for _ in 0..plan.round_trips {
                    channel_round_trip(&to_partner, &mut main_inbox).await?;
                }
                samples.push(start.elapsed().as_secs_f64() / (2 * plan.round_trips) as f64);
            }
            Ok(samples)
        });
        let samples = pinger.await.map_err(io::Error::other)?;
        partner.await.map_err(io::Error::other)?;
        samples
    })
}

/// Two tasks that each yield `plan.round_trips` times: every yield hands the thread to the other.
fn tokio_yield(plan: Plan) -> io::Result<Vec<f64>> {
    async fn yield_times(times: u64) {
        for _ in 0..times {
            tokio::task::yield_now().await;
        }
    }
    current_thread_runtime()?.block_on(async move {
        let pair = |times| async move {
            let first = tokio::spawn(yield_times(times));
            let second = tokio::spawn(yield_times(times));
            first.await.and(second.await).map_err(io::Error::other)
        };
        pair(plan.warmup).await?;
        let mut samples = Vec::with_capacity(plan.repetitions);
        for _ in 0..plan.repetitions {
            let start = Instant::now();
            pair(plan.round_trips).await?;
            samples.push(start.elapsed().as_secs_f64() / (2 * plan.round_trips) as f64);
        }
        Ok(samples)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Plan = Plan {
        warmup: 2,
        round_trips: 50,
        repetitions: 2,
    };

    #[test]
    fn every_hand_over_completes_and_gives_positive_samples() {
        let cpu = first_allowed_cpu().unwrap();
        for placement in [Placement::OneCpu(cpu), Placement::Free] {
            for samples in [
                condvar_ping_pong(TINY, placement).unwrap(),
                futex_ping_pong(TINY, placement).unwrap(),
                pipe_ping_pong(TINY, placement, Partner::Thread).unwrap(),
                pipe_ping_pong(TINY, placement, Partner::Process).unwrap(),
            ] {
                assert_eq!(samples.len(), 2);
                assert!(samples.iter().all(|&s| s > 0.0 && s < 0.1), "{samples:?}");
            }
        }
        assert_eq!(tokio_channel_ping_pong(TINY).unwrap().len(), 2);
        assert_eq!(tokio_yield(TINY).unwrap().len(), 2);
    }
}
