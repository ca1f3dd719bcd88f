//! `event-loop` (seed §5.3.1-5.3.3): a small reference event loop built the way the seed draws
//! one — ready queue, timer heap, epoll selector, tasks woken by wakers ([`reference_loop`]) —
//! timed against tokio's current-thread runtime and CPython's asyncio on the same coroutine
//! workloads ([`workloads`], `python/event_loop.py`).
//!
//! The workloads: spawning and joining trivial tasks, two tasks yielding to each other (the
//! seed's `asyncio.sleep(0)` benchmark), a ping-pong over channels, many tasks sleeping at once,
//! echo round trips over a socket pair through the selector, a timer stuck behind a task that
//! computes without awaiting, and an idle wait (CPU time against wall time). Each is repeated on
//! a fresh loop after a warm-up; medians with their spread. A Gantt chart shows three tasks
//! taking turns on the reference loop's one thread.

mod reference_loop;
mod workloads;

use std::time::Duration;

use crate::error::LabError;
use crate::experiment::{Context, Experiment};
use crate::results::{
    Chart, ChartKind, ExperimentReport, Implementation, Measurement, Outcome, Point, Scale, Series,
    Table, Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread};
use crate::timeline::{self, LaneBy};
use workloads::{Loop, ReferenceLoop, TokioLoop};
pub(crate) use workloads::{Runtime, ping_pong_switch_cost};

/// The experiment.
#[derive(Debug)]
pub(crate) struct EventLoopExhibit;

const SPAWN: &str = "spawn + join, per task";
const YIELD: &str = "yield switch, per switch";
const CONTEXT_SWITCHES: &str = "voluntary context switches during the yield run";
const PING_PONG: &str = "ping-pong switch, per switch";
const SLEEPERS_TOTAL: &str = "sleepers, total";
const SLEEPERS_MEDIAN: &str = "sleepers, median lateness";
const SLEEPERS_WORST: &str = "sleepers, worst lateness";
const SLEEPERS_EARLIEST: &str = "sleepers, earliest wake vs deadline";
const ECHO: &str = "echo round trip";
const BLOCKED: &str = "timer behind a computation, lateness";
const IDLE_WALL: &str = "idle wait, wall time";
const IDLE_CPU: &str = "idle wait, CPU time";

/// The seed's range for one coroutine switch, in seconds (§6.4.1: 0.1-0.5 µs).
const CLAIMED_SWITCH: (f64, f64) = (0.1e-6, 0.5e-6);
/// A loop "waits" rather than spins when it uses at most this share of a CPU while idle.
const IDLE_CPU_SHARE: f64 = 0.1;
/// A wake this much before its deadline (clock reading skew) still counts as on time.
const EARLY_TOLERANCE_S: f64 = 10e-6;

/// Sizes and repetitions for one scale.
#[derive(Debug, Clone)]
struct Plan {
    repetitions: usize,
    spawn_tasks: u64,
    yield_switches: u64,
    ping_pong_rounds: u64,
    sleepers: u64,
    sleep: Duration,
    echo_rounds: u64,
    echo_bytes: usize,
    timer_delay: Duration,
    block: Duration,
    idle: Duration,
    timeline_step: Duration,
}

impl Plan {
    fn for_context(ctx: &Context<'_>) -> Self {
        Self {
            repetitions: ctx.pick(3, 5, 7),
            spawn_tasks: ctx.pick(1_000, 10_000, 50_000),
            yield_switches: ctx.pick(2_000, 20_000, 100_000),
            ping_pong_rounds: ctx.pick(1_000, 5_000, 20_000),
            sleepers: ctx.pick(1_000, 10_000, 50_000),
            sleep: Duration::from_millis(ctx.pick(5, 10, 10)),
            echo_rounds: ctx.pick(200, 1_000, 3_000),
            echo_bytes: 64,
            timer_delay: Duration::from_millis(1),
            block: Duration::from_millis(ctx.pick(5, 20, 20)),
            idle: Duration::from_millis(ctx.pick(10, 30, 100)),
            timeline_step: Duration::from_micros(ctx.pick(200, 500, 500)),
        }
    }

    /// The sleepers workload, for tables and charts.
    fn sleepers_label(&self) -> String {
        format!(
            "{} tasks sleeping {}: total",
            self.sleepers,
            format_seconds(self.sleep.as_secs_f64())
        )
    }

    /// Arguments of `python/event_loop.py`, in its order.
    fn python_args(&self) -> Vec<String> {
        vec![
            self.repetitions.to_string(),
            self.spawn_tasks.to_string(),
            self.yield_switches.to_string(),
            self.ping_pong_rounds.to_string(),
            self.sleepers.to_string(),
            self.sleep.as_secs_f64().to_string(),
            self.echo_rounds.to_string(),
            self.echo_bytes.to_string(),
            self.timer_delay.as_secs_f64().to_string(),
            self.block.as_secs_f64().to_string(),
            self.idle.as_secs_f64().to_string(),
        ]
    }
}

/// The three loops, as the `runtime` parameter of the measurements names them.
const LOOPS: [(&str, &str); 3] = [
    (Runtime::Reference.key(), "reference loop"),
    (Runtime::Tokio.key(), "tokio (current thread)"),
    ("asyncio", "asyncio (CPython)"),
];

impl Experiment for EventLoopExhibit {
    fn id(&self) -> &'static str {
        "event-loop"
    }

    fn title(&self) -> &'static str {
        "A reference event loop (ready queue, timer heap, epoll) against tokio and asyncio"
    }

    fn seed_section(&self) -> &'static str {
        "5.3.1-5.3.3"
    }

    fn run(&self, ctx: &mut Context<'_>) -> Result<ExperimentReport, LabError> {
        let plan = Plan::for_context(ctx);
        let mut progress = Progress {
            done: 0,
            total: 2 * (plan.repetitions as u64 + 1) + 2,
        };
        let mut measurements = sample::<ReferenceLoop>(ctx, &plan, &mut progress)?;
        measurements.extend(sample::<TokioLoop>(ctx, &plan, &mut progress)?);
        let spans = workloads::interleaving(plan.timeline_step, 4)?;
        progress.step(ctx);

        let mut notes = vec![
            "tokio's timer wheel has a resolution of 1 ms and rounds deadlines up; asyncio and \
             the reference loop round epoll_wait's timeout up to the millisecond."
                .to_owned(),
            "tokio's yield_now defers the yielding task until the scheduler has polled its \
             driver (epoll_wait with a zero timeout) once the run queue is empty, so its yield \
             switch includes a system call every two switches here; asyncio calls epoll_wait \
             on every turn; the reference loop every 61 busy turns."
                .to_owned(),
        ];
        let python = ctx.python(
            "event_loop",
            include_str!("../../../python/event_loop.py"),
            &plan.python_args(),
        )?;
        ctx.progress(progress.total, progress.total);
        measurements.extend(crate::python::measurements_and_notes(python, &mut notes));

        Ok(ExperimentReport {
            method: method(&plan),
            table: table(&plan, &measurements),
            charts: charts(&plan, &measurements),
            timelines: vec![timeline::from_spans(
                format!(
                    "Reference loop, one thread: tasks 1 and 2 compute in {} steps and yield; \
                     task 3's timer falls due during a step and it runs when its turn comes",
                    format_seconds(plan.timeline_step.as_secs_f64())
                ),
                &spans,
                LaneBy::Task,
            )],
            verdicts: verdicts(&plan, &measurements),
            notes,
            measurements,
            ..Default::default()
        })
    }
}

/// Steps done out of the experiment's total, for the progress bar.
#[derive(Debug)]
struct Progress {
    done: u64,
    total: u64,
}

impl Progress {
    fn step(&mut self, ctx: &mut Context<'_>) {
        self.done += 1;
        ctx.progress(self.done, self.total);
    }
}

/// Every workload on loop `L`: a warm-up (each workload once, small), then the repetitions.
fn sample<L: Loop>(
    ctx: &mut Context<'_>,
    plan: &Plan,
    progress: &mut Progress,
) -> Result<Vec<Measurement>, LabError> {
    workloads::spawn_and_join::<L>(plan.spawn_tasks / 10)?;
    workloads::yield_switches::<L>(plan.yield_switches / 10)?;
    ping_pong_switch_cost(L::RUNTIME, plan.ping_pong_rounds / 10)?;
    workloads::sleepers::<L>(plan.sleepers / 10, plan.sleep)?;
    workloads::echo::<L>(plan.echo_rounds / 10, plan.echo_bytes)?;
    progress.step(ctx);
    let mut samples = RuntimeSamples::default();
    for _ in 0..plan.repetitions {
        samples.take::<L>(plan)?;
        progress.step(ctx);
    }
    Ok(samples.into_measurements(L::RUNTIME.key(), plan))
}

/// One runtime's samples, one per repetition.
#[derive(Debug, Default)]
struct RuntimeSamples {
    spawn: Vec<f64>,
    yields: Vec<f64>,
    context_switches: Vec<f64>,
    ping_pong: Vec<f64>,
    sleepers_total: Vec<f64>,
    sleepers_median: Vec<f64>,
    sleepers_worst: Vec<f64>,
    sleepers_earliest: Vec<f64>,
    echo: Vec<f64>,
    blocked: Vec<f64>,
    idle_wall: Vec<f64>,
    idle_cpu: Vec<f64>,
}

impl RuntimeSamples {
    fn take<L: Loop>(&mut self, plan: &Plan) -> Result<(), LabError> {
        let spawn = workloads::spawn_and_join::<L>(plan.spawn_tasks)?;
        self.spawn
            .push(spawn.as_secs_f64() / plan.spawn_tasks as f64);
        let (yields, switched) = workloads::yield_switches::<L>(plan.yield_switches)?;
        self.yields
            .push(yields.as_secs_f64() / (plan.yield_switches / 2 * 2) as f64);
        self.context_switches.extend(switched.map(|s| s as f64));
        self.ping_pong
            .push(ping_pong_switch_cost(L::RUNTIME, plan.ping_pong_rounds)?.as_secs_f64());
        let (total, late) = workloads::sleepers::<L>(plan.sleepers, plan.sleep)?;
        let late = Summary::of(&late);
        self.sleepers_total.push(total.as_secs_f64());
        self.sleepers_median.push(late.median);
        self.sleepers_worst.push(late.max);
        self.sleepers_earliest.push(late.min);
        let echo = workloads::echo::<L>(plan.echo_rounds, plan.echo_bytes)?;
        self.echo.push(echo.as_secs_f64() / plan.echo_rounds as f64);
        self.blocked
            .push(workloads::blocked_timer::<L>(plan.timer_delay, plan.block)?);
        let (wall, cpu) = workloads::idle_wait::<L>(plan.idle)?;
        self.idle_wall.push(wall.as_secs_f64());
        self.idle_cpu.push(cpu.as_secs_f64());
        Ok(())
    }

    fn into_measurements(self, runtime: &str, plan: &Plan) -> Vec<Measurement> {
        let rust = |name: &str, unit: &str, samples: Vec<f64>| {
            Measurement::new(name, Implementation::Rust, unit, samples).param("runtime", runtime)
        };
        let sleeping = |m: Measurement| {
            m.param("tasks", plan.sleepers)
                .param("sleep_s", plan.sleep.as_secs_f64())
        };
        let mut measurements = vec![
            rust(SPAWN, "s", self.spawn).param("tasks", plan.spawn_tasks),
            rust(YIELD, "s", self.yields).param("switches", plan.yield_switches),
            rust(PING_PONG, "s", self.ping_pong).param("rounds", plan.ping_pong_rounds),
            sleeping(rust(SLEEPERS_TOTAL, "s", self.sleepers_total)),
            sleeping(rust(SLEEPERS_MEDIAN, "s", self.sleepers_median)),
            sleeping(rust(SLEEPERS_WORST, "s", self.sleepers_worst)),
            sleeping(rust(SLEEPERS_EARLIEST, "s", self.sleepers_earliest)),
            rust(ECHO, "s", self.echo)
                .param("rounds", plan.echo_rounds)
                .param("bytes", plan.echo_bytes),
            rust(BLOCKED, "s", self.blocked)
                .param("delay_s", plan.timer_delay.as_secs_f64())
                .param("block_s", plan.block.as_secs_f64()),
            rust(IDLE_WALL, "s", self.idle_wall).param("wait_s", plan.idle.as_secs_f64()),
            rust(IDLE_CPU, "s", self.idle_cpu).param("wait_s", plan.idle.as_secs_f64()),
        ];
        if !self.context_switches.is_empty() {
            measurements.push(
                rust(CONTEXT_SWITCHES, "count", self.context_switches)
                    .param("switches", plan.yield_switches),
            );
        }
        measurements
    }
}

/// The measurement `name` of loop `runtime` (`reference`, `tokio` or `asyncio`).
fn find<'a>(measurements: &'a [Measurement], name: &str, runtime: &str) -> Option<&'a Measurement> {
    measurements.iter().find(|m| {
        m.name == name && m.params.get("runtime").and_then(|r| r.as_str()) == Some(runtime)
    })
}

fn method(plan: &Plan) -> String {
    format!(
        "Each workload runs on a fresh loop — the lab's reference loop, tokio's current-thread \
         runtime, and asyncio's default loop (itself a reference loop of the seed's design: a \
         deque of ready callbacks, a heap of timer handles, an epoll selector) — and times only \
         what runs inside it, {reps} times after a warm-up; medians with their interquartile \
         spread. Workloads: spawn {spawn} trivial tasks and await each (time per task); two \
         tasks yielding {yields} times in all (time per switch, the seed's sleep(0) \
         benchmark; voluntary context switches of the thread counted meanwhile); a value \
         passed back and forth {pings} times between two tasks over two unbounded channels \
         (asyncio.Queue, tokio mpsc; time per switch = round trip / 2); {sleepers} tasks each \
         sleeping {sleep} (total time, and each task's lateness after its deadline); {echo} \
         round trips of {bytes} B to an echoing task over a Unix socket pair (asyncio: \
         sock_sendall / sock_recv_into); a task sleeping {delay} while another computes \
         {block} without awaiting (the sleeper's lateness); and one task sleeping {idle} (the \
         thread's CPU time against wall time).",
        reps = plan.repetitions,
        spawn = plan.spawn_tasks,
        yields = plan.yield_switches,
        pings = plan.ping_pong_rounds,
        sleepers = plan.sleepers,
        sleep = format_seconds(plan.sleep.as_secs_f64()),
        echo = plan.echo_rounds,
        bytes = plan.echo_bytes,
        delay = format_seconds(plan.timer_delay.as_secs_f64()),
        block = format_seconds(plan.block.as_secs_f64()),
        idle = format_seconds(plan.idle.as_secs_f64()),
    )
}

fn seconds_cell(measurement: Option<&Measurement>) -> String {
    measurement.map_or("—".to_owned(), |m| {
        format_with_spread(&m.summary, format_seconds)
    })
}

fn table(plan: &Plan, measurements: &[Measurement]) -> Table {
    let mut table = Table::new([
        "workload",
        LOOPS[0].1,
        LOOPS[1].1,
        LOOPS[2].1,
        "asyncio ÷ reference",
    ]);
    let timed_rows = [
        (SPAWN, "spawn + join a task".to_owned()),
        (YIELD, "switch: two tasks yielding".to_owned()),
        (PING_PONG, "switch: channel ping-pong".to_owned()),
        (
            ECHO,
            format!("echo round trip, {} B over a socket pair", plan.echo_bytes),
        ),
        (SLEEPERS_TOTAL, plan.sleepers_label()),
        (SLEEPERS_MEDIAN, "… median lateness per task".to_owned()),
        (
            BLOCKED,
            format!(
                "{} timer behind {} of computation: lateness",
                format_seconds(plan.timer_delay.as_secs_f64()),
                format_seconds(plan.block.as_secs_f64())
            ),
        ),
    ];
    for (name, label) in timed_rows {
        let cells: Vec<Option<&Measurement>> = LOOPS
            .iter()
            .map(|(key, _)| find(measurements, name, key))
            .collect();
        let ratio = match (cells[0], cells[2]) {
            (Some(reference), Some(asyncio)) if reference.median() > 0.0 => {
                format!("×{:.1}", asyncio.median() / reference.median())
            }
            _ => "—".to_owned(),
        };
        table.row([
            label,
            seconds_cell(cells[0]),
            seconds_cell(cells[1]),
            seconds_cell(cells[2]),
            ratio,
        ]);
    }
    let mut idle_row = vec![format!(
        "idle wait of {}: CPU used",
        format_seconds(plan.idle.as_secs_f64())
    )];
    let mut switches_row = vec!["voluntary context switches in the yield run".to_owned()];
    for (key, _) in LOOPS {
        idle_row.push(
            idle_cpu_share(measurements, key).map_or("—".to_owned(), |share| {
                format!("{:.2}% of a CPU", share * 100.0)
            }),
        );
        switches_row.push(
            find(measurements, CONTEXT_SWITCHES, key).map_or("—".to_owned(), |m| {
                format!("{:.0} per {} switches", m.median(), plan.yield_switches)
            }),
        );
    }
    idle_row.push("—".to_owned());
    switches_row.push("—".to_owned());
    table.row(idle_row);
    table.row(switches_row);
    table
}

/// The share of a CPU the loop's thread used during the idle wait (median CPU / median wall).
fn idle_cpu_share(measurements: &[Measurement], runtime: &str) -> Option<f64> {
    let wall = find(measurements, IDLE_WALL, runtime)?.median();
    let cpu = find(measurements, IDLE_CPU, runtime)?.median();
    (wall > 0.0).then(|| cpu / wall)
}

fn scaled(summary: &Summary, factor: f64) -> Summary {
    Summary {
        median: summary.median * factor,
        p25: summary.p25 * factor,
        p75: summary.p75 * factor,
        min: summary.min * factor,
        max: summary.max * factor,
        mean: summary.mean * factor,
        n: summary.n,
    }
}

/// A grouped bar chart: one group per workload, one bar per loop, values scaled by `factor`.
fn bars(
    title: &str,
    y_label: &str,
    y_scale: Scale,
    factor: f64,
    workloads: &[(&str, String)],
    measurements: &[Measurement],
) -> Chart {
    let series = LOOPS
        .iter()
        .filter_map(|(key, label)| {
            let points: Vec<Point> = workloads
                .iter()
                .enumerate()
                .filter_map(|(index, (name, _))| {
                    let m = find(measurements, name, key)?;
                    Some(Point::from_summary(
                        index as f64,
                        &scaled(&m.summary, factor),
                    ))
                })
                .collect();
            (!points.is_empty()).then(|| Series {
                label: (*label).to_owned(),
                points,
            })
        })
        .collect();
    Chart {
        title: title.to_owned(),
        kind: ChartKind::Bar,
        x_label: "workload".to_owned(),
        y_label: y_label.to_owned(),
        x_scale: Scale::Linear,
        y_scale,
        categories: workloads.iter().map(|(_, label)| label.clone()).collect(),
        series,
    }
}

fn charts(plan: &Plan, measurements: &[Measurement]) -> Vec<Chart> {
    let per_operation = [
        (SPAWN, "spawn + join (per task)".to_owned()),
        (YIELD, "yield (per switch)".to_owned()),
        (PING_PONG, "ping-pong (per switch)".to_owned()),
        (ECHO, "echo (per round trip)".to_owned()),
    ];
    let timers = [
        (SLEEPERS_TOTAL, plan.sleepers_label()),
        (SLEEPERS_MEDIAN, "their median lateness".to_owned()),
        (
            BLOCKED,
            format!(
                "lateness behind {} of computation",
                format_seconds(plan.block.as_secs_f64())
            ),
        ),
    ];
    vec![
        bars(
            "Cost per operation: reference loop, tokio, asyncio",
            "µs",
            Scale::Log,
            1e6,
            &per_operation,
            measurements,
        ),
        bars(
            "Timers: many sleepers, and a timer behind a task that computes",
            "ms",
            Scale::Linear,
            1e3,
            &timers,
            measurements,
        ),
    ]
}

/// Where `value` lies against the seed's switch range: -1 below, 0 inside, 1 above.
fn against_claimed_range(value: f64) -> i8 {
    if value < CLAIMED_SWITCH.0 {
        -1
    } else if value > CLAIMED_SWITCH.1 {
        1
    } else {
        0
    }
}

/// Confirmed when every loop measured satisfies `holds`, refuted when none does, otherwise it
/// depends on the loop; `Depends` too when nothing was measured.
/// The measurement `name` of every loop that has one, with the loop's label.
fn per_loop<'a>(
    measurements: &'a [Measurement],
    name: &str,
) -> Vec<(&'static str, &'a Measurement)> {
    LOOPS
        .iter()
        .filter_map(|(key, label)| Some((*label, find(measurements, name, key)?)))
        .collect()
}

fn listed(values: &[(&str, String)]) -> String {
    values
        .iter()
        .map(|(label, value)| format!("{label} {value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn verdicts(plan: &Plan, measurements: &[Measurement]) -> Vec<Verdict> {
    let floor = (plan.block.saturating_sub(plan.timer_delay)).as_secs_f64();
    let blocked = per_loop(measurements, BLOCKED);
    let one_at_a_time = Verdict {
        claim: "A coroutine runs until it awaits; only then does the loop run another one \
                (so a coroutine that computes without awaiting holds up every other)."
            .to_owned(),
        quote: "协程遇到await，挂起并返回控制权".to_owned(),
        outcome: Outcome::from_checks(blocked.iter().map(|(_, m)| m.median() >= floor * 0.95)),
        evidence: format!(
            "A timer due after {} woke late by: {} — while another task computed {} without \
             awaiting (a loop that runs one task at a time cannot wake it less than {} late).",
            format_seconds(plan.timer_delay.as_secs_f64()),
            listed(
                &blocked
                    .iter()
                    .map(|(label, m)| (*label, format_seconds(m.median())))
                    .collect::<Vec<_>>()
            ),
            format_seconds(plan.block.as_secs_f64()),
            format_seconds(floor),
        ),
    };

    let earliest = per_loop(measurements, SLEEPERS_EARLIEST);
    let median_late = per_loop(measurements, SLEEPERS_MEDIAN);
    let timers = Verdict {
        claim: "The loop runs scheduled (timer) tasks once they are due.".to_owned(),
        quote: "执行到期的调度任务".to_owned(),
        outcome: Outcome::from_checks(
            earliest
                .iter()
                .map(|(_, m)| m.summary.min >= -EARLY_TOLERANCE_S),
        ),
        evidence: format!(
            "{} tasks each slept {}; the earliest wake after its deadline (negative: early) was \
             {}. Median lateness per \
             task: {} (the loop wakes them one at a time, so lateness grows with their number).",
            plan.sleepers,
            format_seconds(plan.sleep.as_secs_f64()),
            listed(
                &earliest
                    .iter()
                    .map(|(label, m)| (*label, format_seconds(m.summary.min)))
                    .collect::<Vec<_>>()
            ),
            listed(
                &median_late
                    .iter()
                    .map(|(label, m)| (*label, format_seconds(m.median())))
                    .collect::<Vec<_>>()
            ),
        ),
    };

    let idle: Vec<(&str, f64)> = LOOPS
        .iter()
        .filter_map(|(key, label)| Some((*label, idle_cpu_share(measurements, key)?)))
        .collect();
    let waits = Verdict {
        claim: "When no task is ready, the loop waits for I/O events (and the next timer) in \
                select/epoll instead of spinning."
            .to_owned(),
        quote: "等待I/O事件 (select/epoll/kqueue)".to_owned(),
        outcome: Outcome::from_checks(idle.iter().map(|(_, share)| *share <= IDLE_CPU_SHARE)),
        evidence: format!(
            "CPU used by the loop's thread while one task slept {}: {} (at most {:.0}% counts \
             as waiting).",
            format_seconds(plan.idle.as_secs_f64()),
            listed(
                &idle
                    .iter()
                    .map(|(label, share)| (*label, format!("{:.2}%", share * 100.0)))
                    .collect::<Vec<_>>()
            ),
            IDLE_CPU_SHARE * 100.0,
        ),
    };

    let echoes = per_loop(measurements, ECHO);
    let io = Verdict {
        claim: "When I/O completes, the loop resumes the coroutine that waited for it.".to_owned(),
        quote: "I/O完成时，通过回调恢复协程".to_owned(),
        outcome: if echoes.is_empty() {
            Outcome::Depends
        } else {
            Outcome::Confirmed
        },
        evidence: format!(
            "{} echo round trips of {} B over a socket pair, each end waiting in the selector \
             until its socket was ready, all came back intact; per round trip: {}.",
            plan.echo_rounds,
            plan.echo_bytes,
            listed(
                &echoes
                    .iter()
                    .map(|(label, m)| (*label, format_seconds(m.median())))
                    .collect::<Vec<_>>()
            ),
        ),
    };

    let switches = per_loop(measurements, YIELD);
    let positions: Vec<i8> = switches
        .iter()
        .map(|(_, m)| against_claimed_range(m.median()))
        .collect();
    let switch_cost = Verdict {
        claim: "A coroutine switch costs about 0.1-0.5 µs.".to_owned(),
        quote: "开销极小:约0.1-0.5微秒".to_owned(),
        outcome: Outcome::from_checks(positions.iter().map(|&p| p == 0)),
        evidence: format!(
            "Per switch between two yielding tasks (the seed's own benchmark): {}.",
            listed(
                &switches
                    .iter()
                    .zip(&positions)
                    .map(|((label, m), position)| {
                        let place = match position {
                            -1 => "below the range",
                            1 => "above the range",
                            _ => "inside the range",
                        };
                        (*label, format!("{} ({place})", format_seconds(m.median())))
                    })
                    .collect::<Vec<_>>()
            ),
        ),
    };

    let kernel: Vec<(&str, f64)> = LOOPS
        .iter()
        .filter_map(|(key, label)| {
            Some((
                *label,
                find(measurements, CONTEXT_SWITCHES, key)?.median()
                    / plan.yield_switches.max(1) as f64,
            ))
        })
        .collect();
    let user_space = Verdict {
        claim: "A coroutine switch happens entirely in user space: the kernel does not switch \
                the thread out for it."
            .to_owned(),
        quote: "协程切换完全在用户态".to_owned(),
        outcome: Outcome::from_checks(kernel.iter().map(|(_, per_switch)| *per_switch < 0.01)),
        evidence: format!(
            "Voluntary context switches of the loop's thread per coroutine switch: {} (under \
             0.01 counts as none). The seed adds \"no system calls\", which is not measured \
             here and not quite true: asyncio calls epoll_wait with a zero timeout on every \
             turn, tokio when yielding tasks empty its run queue, the reference loop every 61 \
             busy turns — calls that return at once, without a thread switch.",
            listed(
                &kernel
                    .iter()
                    .map(|(label, per_switch)| (*label, format!("{per_switch:.4}")))
                    .collect::<Vec<_>>()
            ),
        ),
    };

    vec![one_at_a_time, timers, waits, io, switch_cost, user_space]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_over_loops() {}

    #[test]
    fn positions_against_the_claimed_switch_range() {
        assert_eq!(against_claimed_range(0.05e-6), -1);
        assert_eq!(against_claimed_range(0.3e-6), 0);
        assert_eq!(against_claimed_range(1.3e-6), 1);
    }
}
