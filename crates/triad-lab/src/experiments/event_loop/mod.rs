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

pub(super) mod reference_loop;
mod workloads;

use std::time::Duration;

use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Repeat, Series};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Finding, Implementation, Measurement, Outcome, Point, Scale, Series as Bars,
    Table, Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread};
use crate::timeline::{self, LaneBy};
use crate::verdict::{Checks, Ratio, verdict};
use workloads::{Loop, ReferenceLoop, TokioLoop};
pub(crate) use workloads::{Runtime, ping_pong_switch_cost};

/// The experiment.
#[derive(Debug)]
pub(crate) struct EventLoopExhibit;

names! {
    /// What is measured on every loop (`python/event_loop.py` prints the same names).
    enum Name {
        Spawn => "spawn + join, per task",
        Yield => "yield switch, per switch",
        ContextSwitches => "voluntary context switches during the yield run",
        PingPong => "ping-pong switch, per switch",
        SleepersTotal => "sleepers, total",
        SleepersMedian => "sleepers, median lateness",
        SleepersWorst => "sleepers, worst lateness",
        SleepersEarliest => "sleepers, earliest wake vs deadline",
        Echo => "echo round trip",
        Blocked => "timer behind a computation, lateness",
        IdleWall => "idle wait, wall time",
        IdleCpu => "idle wait, CPU time",
    }
}

/// The seed's range for one coroutine switch, in seconds (§6.4.1: 0.1-0.5 µs).
const CLAIMED_SWITCH: (f64, f64) = (0.1e-6, 0.5e-6);
/// A loop "waits" rather than spins when it uses at most this share of a CPU while idle.
const IDLE_CPU_SHARE: f64 = 0.1;
/// A wake this much before its deadline (clock reading skew) still counts as on time.
const EARLY_TOLERANCE_S: f64 = 10e-6;

/// Sizes and repetitions for one scale.
#[derive(Debug, Clone)]
struct Sizes {
    /// Every workload, on each loop: one warm-up run, then the samples.
    repeat: Repeat,
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

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        repeat: Repeat::after_one(3),
        spawn_tasks: 1_000,
        yield_switches: 2_000,
        ping_pong_rounds: 1_000,
        sleepers: 1_000,
        sleep: Duration::from_millis(5),
        echo_rounds: 200,
        echo_bytes: 64,
        timer_delay: Duration::from_millis(1),
        block: Duration::from_millis(5),
        idle: Duration::from_millis(10),
        timeline_step: Duration::from_micros(200),
    },
    Sizes {
        repeat: Repeat::after_one(5),
        spawn_tasks: 10_000,
        yield_switches: 20_000,
        ping_pong_rounds: 5_000,
        sleepers: 10_000,
        sleep: Duration::from_millis(10),
        echo_rounds: 1_000,
        echo_bytes: 64,
        timer_delay: Duration::from_millis(1),
        block: Duration::from_millis(20),
        idle: Duration::from_millis(30),
        timeline_step: Duration::from_micros(500),
    },
    Sizes {
        repeat: Repeat::after_one(7),
        spawn_tasks: 50_000,
        yield_switches: 100_000,
        ping_pong_rounds: 20_000,
        sleepers: 50_000,
        sleep: Duration::from_millis(10),
        echo_rounds: 3_000,
        echo_bytes: 64,
        timer_delay: Duration::from_millis(1),
        block: Duration::from_millis(20),
        idle: Duration::from_millis(100),
        timeline_step: Duration::from_micros(500),
    },
);

impl Sizes {
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
            self.repeat.samples.to_string(),
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

/// The three loops: the `runtime` parameter of their measurements, their label, and who
/// measures them.
const LOOPS: [(&str, &str, Implementation); 3] = [
    (
        Runtime::Reference.key(),
        "reference loop",
        Implementation::Rust,
    ),
    (
        Runtime::Tokio.key(),
        "tokio (current thread)",
        Implementation::Rust,
    ),
    ("asyncio", "asyncio (CPython)", Implementation::Python),
];

impl Experiment for EventLoopExhibit {
    fn about(&self) -> About {
        About {
            id: "event-loop",
            title: "A reference event loop (ready queue, timer heap, epoll) against tokio and \
                    asyncio",
            seed_section: "5.3.1-5.3.3",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let plan = SIZES.at(bench.scale());
        let mut steps = Plan::new();
        steps.rounds(vec![
            on_loop::<ReferenceLoop>(plan),
            on_loop::<TokioLoop>(plan),
        ]);
        let step = plan.timeline_step;
        steps.step(move |measured| {
            let spans = workloads::interleaving(step, 4)?;
            measured.timeline(timeline::from_spans(
                format!(
                    "Reference loop, one thread: tasks 1 and 2 compute in {} steps and yield; \
                     task 3's timer falls due during a step and it runs when its turn comes",
                    format_seconds(step.as_secs_f64())
                ),
                &spans,
                LaneBy::Task,
            ));
            Ok(())
        });
        steps.python(Baseline::new(
            "event_loop",
            include_str!("../../../python/event_loop.py"),
            plan.python_args(),
        ));
        bench.run(steps)
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        let plan = SIZES.at(findings.scale());
        Judgement {
            method: method(plan),
            table: table(plan, findings),
            charts: charts(plan, findings),
            verdicts: verdicts(plan, findings),
            notes: vec![
                "tokio's timer wheel has a resolution of 1 ms and rounds deadlines up; asyncio \
                 and the reference loop round epoll_wait's timeout up to the millisecond."
                    .to_owned(),
                "tokio's yield_now defers the yielding task until the scheduler has polled its \
                 driver (epoll_wait with a zero timeout) once the run queue is empty, so its \
                 yield switch includes a system call every two switches here; asyncio calls \
                 epoll_wait on every turn; the reference loop every 61 busy turns."
                    .to_owned(),
            ],
        }
    }
}

/// Every workload on loop `L`, once per run: the series of its repetitions, warmed up by
/// each workload at a tenth of its size.
fn on_loop<L: Loop>(plan: &Sizes) -> Series<'_> {
    Series::new(
        plan.repeat,
        || Reading::take::<L>(plan),
        |readings, measured| {
            for measurement in into_measurements(L::RUNTIME.key(), plan, &readings) {
                measured.measurement(measurement);
            }
        },
    )
    .warmed_by(|| {
        workloads::spawn_and_join::<L>(plan.spawn_tasks / 10)?;
        workloads::yield_switches::<L>(plan.yield_switches / 10)?;
        ping_pong_switch_cost(L::RUNTIME, plan.ping_pong_rounds / 10)?;
        workloads::sleepers::<L>(plan.sleepers / 10, plan.sleep)?;
        workloads::echo::<L>(plan.echo_rounds / 10, plan.echo_bytes)?;
        Ok(())
    })
}

/// What one run of every workload on one loop gave.
#[derive(Debug)]
struct Reading {
    spawn: f64,
    yields: f64,
    context_switches: Option<f64>,
    ping_pong: f64,
    sleepers_total: f64,
    sleepers_median: f64,
    sleepers_worst: f64,
    sleepers_earliest: f64,
    echo: f64,
    blocked: f64,
    idle_wall: f64,
    idle_cpu: f64,
}

impl Reading {
    fn take<L: Loop>(plan: &Sizes) -> Result<Self, LabError> {
        let spawn = workloads::spawn_and_join::<L>(plan.spawn_tasks)?;
        let (yields, switched) = workloads::yield_switches::<L>(plan.yield_switches)?;
        let ping_pong = ping_pong_switch_cost(L::RUNTIME, plan.ping_pong_rounds)?;
        let (total, late) = workloads::sleepers::<L>(plan.sleepers, plan.sleep)?;
        let late = Summary::of(&late);
        let echo = workloads::echo::<L>(plan.echo_rounds, plan.echo_bytes)?;
        let blocked = workloads::blocked_timer::<L>(plan.timer_delay, plan.block)?;
        let (wall, cpu) = workloads::idle_wait::<L>(plan.idle)?;
        Ok(Self {
            spawn: spawn.as_secs_f64() / plan.spawn_tasks as f64,
            yields: yields.as_secs_f64() / (plan.yield_switches / 2 * 2) as f64,
            context_switches: switched.map(|s| s as f64),
            ping_pong: ping_pong.as_secs_f64(),
            sleepers_total: total.as_secs_f64(),
            sleepers_median: late.median,
            sleepers_worst: late.max,
            sleepers_earliest: late.min,
            echo: echo.as_secs_f64() / plan.echo_rounds as f64,
            blocked,
            idle_wall: wall.as_secs_f64(),
            idle_cpu: cpu.as_secs_f64(),
        })
    }
}

fn into_measurements(runtime: &str, plan: &Sizes, readings: &[Reading]) -> Vec<Measurement> {
    let rust = |name: Name, unit: &str, value: fn(&Reading) -> f64| {
        Measurement::new(
            name.name(),
            Implementation::Rust,
            unit,
            readings.iter().map(value).collect(),
        )
        .param("runtime", runtime)
    };
    let sleeping = |m: Measurement| {
        m.param("tasks", plan.sleepers)
            .param("sleep_s", plan.sleep.as_secs_f64())
    };
    let mut measurements = vec![
        rust(Name::Spawn, "s", |r| r.spawn).param("tasks", plan.spawn_tasks),
        rust(Name::Yield, "s", |r| r.yields).param("switches", plan.yield_switches),
        rust(Name::PingPong, "s", |r| r.ping_pong).param("rounds", plan.ping_pong_rounds),
        sleeping(rust(Name::SleepersTotal, "s", |r| r.sleepers_total)),
        sleeping(rust(Name::SleepersMedian, "s", |r| r.sleepers_median)),
        sleeping(rust(Name::SleepersWorst, "s", |r| r.sleepers_worst)),
        sleeping(rust(Name::SleepersEarliest, "s", |r| r.sleepers_earliest)),
        rust(Name::Echo, "s", |r| r.echo)
            .param("rounds", plan.echo_rounds)
            .param("bytes", plan.echo_bytes),
        rust(Name::Blocked, "s", |r| r.blocked)
            .param("delay_s", plan.timer_delay.as_secs_f64())
            .param("block_s", plan.block.as_secs_f64()),
        rust(Name::IdleWall, "s", |r| r.idle_wall).param("wait_s", plan.idle.as_secs_f64()),
        rust(Name::IdleCpu, "s", |r| r.idle_cpu).param("wait_s", plan.idle.as_secs_f64()),
    ];
    let switches: Vec<f64> = readings.iter().filter_map(|r| r.context_switches).collect();
    if !switches.is_empty() {
        measurements.push(
            Measurement::new(
                Name::ContextSwitches.name(),
                Implementation::Rust,
                "count",
                switches,
            )
            .param("runtime", runtime)
            .param("switches", plan.yield_switches),
        );
    }
    measurements
}

/// The measurement `name` of the loop whose `runtime` parameter is `key`.
fn find<'a>(found: &Findings<'a>, name: Name, key: &str) -> Option<&'a Measurement> {
    let implementation = LOOPS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map_or(Implementation::Rust, |(_, _, implementation)| {
            *implementation
        });
    found.get(implementation, name.name(), &[("runtime", key.into())])
}

fn method(plan: &Sizes) -> String {
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
        reps = plan.repeat.samples,
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

fn table(plan: &Sizes, found: &Findings<'_>) -> Table {
    let mut table = Table::new([
        "workload",
        LOOPS[0].1,
        LOOPS[1].1,
        LOOPS[2].1,
        "asyncio ÷ reference",
    ]);
    let timed_rows = [
        (Name::Spawn, "spawn + join a task".to_owned()),
        (Name::Yield, "switch: two tasks yielding".to_owned()),
        (Name::PingPong, "switch: channel ping-pong".to_owned()),
        (
            Name::Echo,
            format!("echo round trip, {} B over a socket pair", plan.echo_bytes),
        ),
        (Name::SleepersTotal, plan.sleepers_label()),
        (
            Name::SleepersMedian,
            "… median lateness per task".to_owned(),
        ),
        (
            Name::Blocked,
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
            .map(|(key, _, _)| find(found, name, key))
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
    for (key, _, _) in LOOPS {
        idle_row.push(idle_cpu_share(found, key).map_or("—".to_owned(), |share| {
            format!("{:.2}% of a CPU", share.median * 100.0)
        }));
        switches_row.push(
            find(found, Name::ContextSwitches, key).map_or("—".to_owned(), |m| {
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
/// The share of the idle wait's wall time the loop's thread spent on the CPU, with the range
/// the two measurements' quartiles allow.
fn idle_cpu_share(found: &Findings<'_>, runtime: &str) -> Option<Ratio> {
    let wall = &find(found, Name::IdleWall, runtime)?.summary;
    let cpu = &find(found, Name::IdleCpu, runtime)?.summary;
    (wall.p25 > 0.0).then(|| Ratio::of(cpu, wall))
}

/// A grouped bar chart: one group per workload, one bar per loop, values scaled by `factor`.
fn bars(
    title: &str,
    y_label: &str,
    y_scale: Scale,
    factor: f64,
    workloads: &[(Name, String)],
    found: &Findings<'_>,
) -> Chart {
    let series = LOOPS
        .iter()
        .filter_map(|(key, label, _)| {
            let points: Vec<Point> = workloads
                .iter()
                .enumerate()
                .filter_map(|(index, (name, _))| {
                    let m = find(found, *name, key)?;
                    Some(Point::from_summary(index as f64, &m.summary.scaled(factor)))
                })
                .collect();
            (!points.is_empty()).then(|| Bars {
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

fn charts(plan: &Sizes, found: &Findings<'_>) -> Vec<Chart> {
    let per_operation = [
        (Name::Spawn, "spawn + join (per task)".to_owned()),
        (Name::Yield, "yield (per switch)".to_owned()),
        (Name::PingPong, "ping-pong (per switch)".to_owned()),
        (Name::Echo, "echo (per round trip)".to_owned()),
    ];
    let timers = [
        (Name::SleepersTotal, plan.sleepers_label()),
        (Name::SleepersMedian, "their median lateness".to_owned()),
        (
            Name::Blocked,
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
            found,
        ),
        bars(
            "Timers: many sleepers, and a timer behind a task that computes",
            "ms",
            Scale::Linear,
            1e3,
            &timers,
            found,
        ),
    ]
}

/// Whether a switch's cost lies in the seed's range, by its interquartile range (the noise rule
/// of [`crate::verdict`]).
fn switch_in_claimed_range(per_switch: &Summary) -> Finding {
    Ratio::measured(per_switch).inside(CLAIMED_SWITCH.0..=CLAIMED_SWITCH.1)
}

/// The measurement `name` of every loop that has one, with the loop's label.
fn per_loop<'a>(found: &Findings<'a>, name: Name) -> Vec<(&'static str, &'a Measurement)> {
    LOOPS
        .iter()
        .filter_map(|(key, label, _)| Some((*label, find(found, name, key)?)))
        .collect()
}

/// A share as a percentage with its range: `2.00% (1.00-3.00%)`.
fn percent_range(share: Ratio) -> String {
    format!(
        "{:.2}% ({:.2}-{:.2}%)",
        share.median * 100.0,
        share.low * 100.0,
        share.high * 100.0
    )
}

fn listed(values: &[(&str, String)]) -> String {
    values
        .iter()
        .map(|(label, value)| format!("{label} {value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn verdicts(plan: &Sizes, found: &Findings<'_>) -> Vec<Verdict> {
    let floor = (plan.block.saturating_sub(plan.timer_delay)).as_secs_f64();
    let blocked = per_loop(found, Name::Blocked);
    let one_at_a_time = verdict(
        "A coroutine runs until it awaits; only then does the loop run another one \
                (so a coroutine that computes without awaiting holds up every other).",
        "协程遇到await，挂起并返回控制权",
        Outcome::from_findings(
            blocked
                .iter()
                .map(|(_, m)| Ratio::measured(&m.summary).at_least(floor * 0.95)),
        ),
        format!(
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
    );

    let earliest = per_loop(found, Name::SleepersEarliest);
    let median_late = per_loop(found, Name::SleepersMedian);
    // The earliest wake of all samples: a bound no sample crossed, not a comparison of spreads.
    let timers = verdict(
        "The loop runs scheduled (timer) tasks once they are due.",
        "执行到期的调度任务",
        Outcome::from_checks(
            earliest
                .iter()
                .map(|(_, m)| m.summary.min >= -EARLY_TOLERANCE_S),
        ),
        format!(
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
    );

    let idle: Vec<(&str, Ratio)> = LOOPS
        .iter()
        .filter_map(|(key, label, _)| Some((*label, idle_cpu_share(found, key)?)))
        .collect();
    let waits = verdict(
        "When no task is ready, the loop waits for I/O events (and the next timer) in \
                select/epoll instead of spinning.",
        "等待I/O事件 (select/epoll/kqueue)",
        Outcome::from_findings(idle.iter().map(|(_, share)| share.at_most(IDLE_CPU_SHARE))),
        format!(
            "CPU used by the loop's thread while one task slept {}: {} (at most {:.0}% counts \
             as waiting).",
            format_seconds(plan.idle.as_secs_f64()),
            listed(
                &idle
                    .iter()
                    .map(|(label, share)| (*label, percent_range(*share)))
                    .collect::<Vec<_>>()
            ),
            IDLE_CPU_SHARE * 100.0,
        ),
    );

    let echoes = per_loop(found, Name::Echo);
    // Every echo came back intact or the workload failed: an exact fact, no spread to weigh.
    let io = verdict(
        "When I/O completes, the loop resumes the coroutine that waited for it.",
        "I/O完成时，通过回调恢复协程",
        if echoes.is_empty() {
            Outcome::Depends
        } else {
            Outcome::Confirmed
        },
        format!(
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
    );

    let mut switch_checks = Checks::default();
    for (label, m) in per_loop(found, Name::Yield) {
        switch_checks.find(
            format!("{label} {}", format_with_spread(&m.summary, format_seconds)),
            switch_in_claimed_range(&m.summary),
        );
    }
    let switch_cost = verdict(
        "A coroutine switch costs about 0.1-0.5 µs.",
        "开销极小:约0.1-0.5微秒",
        switch_checks.outcome(),
        format!(
            "Per switch between two yielding tasks (the seed's own benchmark): {}.",
            switch_checks.evidence()
        ),
    );

    let kernel: Vec<(&str, Ratio)> = LOOPS
        .iter()
        .filter_map(|(key, label, _)| {
            let switches = Ratio::measured(&find(found, Name::ContextSwitches, key)?.summary);
            let per = |count: f64| count / plan.yield_switches.max(1) as f64;
            Some((
                *label,
                Ratio {
                    median: per(switches.median),
                    low: per(switches.low),
                    high: per(switches.high),
                },
            ))
        })
        .collect();
    let user_space = verdict(
        "A coroutine switch happens entirely in user space: the kernel does not switch \
                the thread out for it.",
        "协程切换完全在用户态",
        Outcome::from_findings(
            kernel
                .iter()
                .map(|(_, per_switch)| per_switch.at_most(0.01)),
        ),
        format!(
            "Voluntary context switches of the loop's thread per coroutine switch: {} (under \
             0.01 counts as none). The seed adds \"no system calls\", which is not measured \
             here and not quite true: asyncio calls epoll_wait with a zero timeout on every \
             turn, tokio when yielding tasks empty its run queue, the reference loop every 61 \
             busy turns — calls that return at once, without a thread switch.",
            listed(
                &kernel
                    .iter()
                    .map(|(label, per_switch)| {
                        (
                            *label,
                            format!(
                                "{:.4} ({:.4}-{:.4})",
                                per_switch.median, per_switch.low, per_switch.high
                            ),
                        )
                    })
                    .collect::<Vec<_>>()
            ),
        ),
    );

    vec![one_at_a_time, timers, waits, io, switch_cost, user_space]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_costs_are_placed_against_the_claimed_range_by_their_quartiles() {
        let at = |samples: &[f64]| switch_in_claimed_range(&Summary::of(samples));
        assert_eq!(at(&[0.04e-6, 0.05e-6, 0.06e-6]), Finding::Fails);
        assert_eq!(at(&[0.2e-6, 0.3e-6, 0.4e-6]), Finding::Holds);
        assert_eq!(at(&[1.2e-6, 1.3e-6, 1.4e-6]), Finding::Fails);
        // A median inside the range, a quartile outside it: within noise.
        assert_eq!(at(&[0.3e-6, 0.45e-6, 0.7e-6]), Finding::WithinNoise);
    }

    #[test]
    fn the_idle_share_is_judged_by_its_range() {
        let shown = Ratio {
            median: 0.02,
            low: 0.01,
            high: 0.03,
        };
        assert_eq!(percent_range(shown), "2.00% (1.00-3.00%)");
        let wide = Ratio::of(
            &Summary::of(&[0.0, 2e-3, 9e-3]),
            &Summary::of(&[0.05, 0.05, 0.06]),
        );
        assert_eq!(wide.at_most(IDLE_CPU_SHARE), Finding::WithinNoise);
        let still = Ratio::of(
            &Summary::of(&[0.0, 1e-4, 2e-4]),
            &Summary::of(&[0.05, 0.05, 0.06]),
        );
        assert_eq!(still.at_most(IDLE_CPU_SHARE), Finding::Holds);
    }
}
