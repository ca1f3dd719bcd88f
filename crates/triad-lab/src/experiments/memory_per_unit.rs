//! `memory-per-unit` (seed 6.4.2): the memory one thread and one coroutine take — resident (in
//! RAM) and reserved (address space) — at 1,000 to 1,000,000 units.
//!
//! Each measurement runs in a fresh worker process (triad's fork server, one task per process),
//! so that no earlier heap is reused: it reads `VmRSS` and `VmSize` from `/proc/self/status`,
//! starts N threads that park on a condition variable (with an 8 MiB stack, glibc's default and
//! the seed's figure, and with Rust's default) or N tokio tasks that await a `Notify`, waits
//! until all of them are parked, reads again, releases them and joins them. The difference over
//! N is the cost of one unit. The CPython script does the same in a forked child per
//! measurement, with `threading.Thread`s and asyncio tasks waiting on an `Event`. Thread counts
//! are capped below this machine's limits (threads-max, pid_max, the process limit,
//! `vm.max_map_count`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde::{Deserialize, Serialize};

use super::cost_support::{
    Started, count_of, in_fresh_workers, labelled, read_memory, spawn_threads,
};
use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Series};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Implementation, Measurement, Outcome, Point, Scale, Series as Line, Table,
};
use crate::stats::{Summary, format_bytes, format_with_spread};
use crate::verdict::{Checks, Ratio, verdict};

/// The `memory-per-unit` experiment.
#[derive(Debug)]
pub(crate) struct MemoryPerUnit;

/// The seed's thread stack, and glibc's default for a new thread when `ulimit -s` is 8 MiB.
const SEED_STACK: u64 = 8 << 20;

/// What a worker holds while its memory is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Units {
    /// OS threads with this stack size (`None`: Rust's default).
    Threads {
        /// Bytes of stack asked for each thread.
        stack: Option<u64>,
    },
    /// Tasks on a tokio current-thread runtime.
    Tasks,
}

/// One measurement: hold `count` units and read the memory.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Probe {
    units: Units,
    count: u64,
}

/// What holding the units cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Held {
    /// How many units were held (fewer than asked if the system refused more).
    reached: u64,
    /// Growth of `VmRSS`, bytes.
    resident: u64,
    /// Growth of `VmSize`, bytes.
    reserved: u64,
    /// Why fewer units than asked were started.
    stopped: Option<String>,
}

/// Holds `probe.count` units in this (fresh worker) process and reports the memory they took.
#[triad::task]
pub(crate) fn hold_units(probe: Probe) -> Result<Held, String> {
    match probe.units {
        Units::Threads { stack } => hold_threads(probe.count, stack),
        Units::Tasks => hold_tasks(probe.count),
    }
    .map_err(|e| e.to_string())
}

/// Parked threads count themselves in and wait to be released. Arrivals wake only the
/// measuring thread, and the release wakes only the parked ones.
#[derive(Debug, Default)]
struct Gate {
    /// How many arrived, and whether they are released.
    state: Mutex<(u64, bool)>,
    arrived: Condvar,
    released: Condvar,
}

impl Gate {
    fn arrive_and_wait(&self) {
        let mut state = self.state.lock().expect("the gate is never poisoned");
        state.0 += 1;
        self.arrived.notify_one();
        let _released = self
            .released
            .wait_while(state, |(_, released)| !*released)
            .expect("the gate is never poisoned");
    }

    fn wait_for(&self, arrivals: u64) {
        let _all = self
            .arrived
            .wait_while(
                self.state.lock().expect("the gate is never poisoned"),
                |(arrived, _)| *arrived < arrivals,
            )
            .expect("the gate is never poisoned");
    }

    fn release(&self) {
        self.state.lock().expect("the gate is never poisoned").1 = true;
        self.released.notify_all();
    }
}

fn hold_threads(count: u64, stack: Option<u64>) -> std::io::Result<Held> {
    let before = read_memory()?;
    let gate = Arc::new(Gate::default());
    let (mut threads, stopped) = spawn_threads(count, stack, || {
        let gate = Arc::clone(&gate);
        move || gate.arrive_and_wait()
    });
    gate.wait_for(threads.len() as u64);
    let during = read_memory();
    gate.release();
    for thread in threads.drain(..) {
        thread.join().expect("a parked thread does not panic");
    }
    let during = during?;
    Ok(Held {
        reached: gate.state.lock().expect("the gate is never poisoned").0,
        resident: during.resident.saturating_sub(before.resident),
        reserved: during.reserved.saturating_sub(before.reserved),
        stopped,
    })
}

/// What the parked tasks share: how many started and finished, and the notices between them
/// and the measuring task.
#[derive(Debug, Default)]
struct Crowd {
    count: u64,
    started: AtomicU64,
    finished: AtomicU64,
    release: tokio::sync::Notify,
    all_started: tokio::sync::Notify,
    all_finished: tokio::sync::Notify,
}

impl Crowd {
    async fn wait_for_release(self: Arc<Self>) {
        let released = self.release.notified();
        if self.started.fetch_add(1, Ordering::AcqRel) + 1 == self.count {
            self.all_started.notify_one();
        }
        released.await;
        if self.finished.fetch_add(1, Ordering::AcqRel) + 1 == self.count {
            self.all_finished.notify_one();
        }
    }
}

fn hold_tasks(count: u64) -> std::io::Result<Held> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let before = read_memory()?;
    let during = runtime.block_on(async {
        let crowd = Arc::new(Crowd {
            count,
            ..Crowd::default()
        });
        for _ in 0..count {
            tokio::spawn(Arc::clone(&crowd).wait_for_release());
        }
        crowd.all_started.notified().await;
        let during = read_memory();
        crowd.release.notify_waiters();
        crowd.all_finished.notified().await;
        during
    })?;
    Ok(Held {
        reached: count,
        resident: during.resident.saturating_sub(before.resident),
        reserved: during.reserved.saturating_sub(before.reserved),
        stopped: None,
    })
}

/// How many threads this machine lets one more process start, with the limits that decide it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ThreadRoom {
    /// 90 % of the smallest headroom below.
    cap: u64,
    /// The limits read, for a note.
    description: String,
}

/// Reads the limits on threads: `threads-max`, `pid_max` and `RLIMIT_NPROC` against the
/// threads that exist now (from `/proc/loadavg`), and `vm.max_map_count` (each thread maps its
/// stack and a guard page).
fn thread_room() -> ThreadRoom {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
    };
    let threads_max = read("/proc/sys/kernel/threads-max");
    let pid_max = read("/proc/sys/kernel/pid_max");
    let map_count = read("/proc/sys/vm/max_map_count");
    let nproc = rustix::process::getrlimit(rustix::process::Resource::Nproc).current;
    let in_use = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| threads_in_loadavg(&text))
        .unwrap_or(0);
    room_from_limits(threads_max, pid_max, nproc, map_count, in_use)
}

fn room_from_limits(
    threads_max: Option<u64>,
    pid_max: Option<u64>,
    nproc: Option<u64>,
    map_count: Option<u64>,
    in_use: u64,
) -> ThreadRoom {
    const MAPS_PER_THREAD: u64 = 2;
    const MAPS_OF_THE_PROCESS: u64 = 1000;
    let for_threads = [threads_max, pid_max, nproc]
        .into_iter()
        .flatten()
        .min()
        .map(|limit| limit.saturating_sub(in_use));
    let for_maps = map_count.map(|maps| maps.saturating_sub(MAPS_OF_THE_PROCESS) / MAPS_PER_THREAD);
    let room = [for_threads, for_maps]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX);
    let show = |value: Option<u64>| value.map_or("unknown".to_owned(), |v| v.to_string());
    ThreadRoom {
        cap: room / 10 * 9,
        description: format!(
            "threads-max {}, pid_max {}, process limit (ulimit -u) {}, vm.max_map_count {}, \
             threads running on the machine {in_use}",
            show(threads_max),
            show(pid_max),
            nproc.map_or("unlimited".to_owned(), |v| v.to_string()),
            show(map_count),
        ),
    }
}

/// The number of threads in `/proc/loadavg` (the denominator of its fourth field).
fn threads_in_loadavg(text: &str) -> Option<u64> {
    text.split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

/// glibc's default stack for a new thread: the soft `RLIMIT_STACK`, or 8 MiB if unlimited.
fn pthread_default_stack() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Stack)
        .current
        .unwrap_or(SEED_STACK)
}

names! {
    /// What holds the memory: Rust's units, then CPython's (`python/memory_per_unit.py`).
    enum Unit {
        SeedStackThread => "Rust thread, 8 MiB stack",
        DefaultStackThread => "Rust thread, Rust's default stack",
        TokioTask => "tokio task",
        PyThread => "CPython thread, default stack",
        PyTask => "asyncio task",
    }
}

names! {
    /// What is read of each unit: the rest of the measurement names.
    enum Quantity {
        Resident => "resident per unit",
        Reserved => "reserved per unit",
    }
}

/// The measurement of glibc's default thread stack here.
const DEFAULT_STACK: &str = "glibc default thread stack (ulimit -s)";

impl Unit {
    /// Who measures it.
    fn implementation(self) -> Implementation {
        match self {
            Unit::PyThread | Unit::PyTask => Implementation::Python,
            _ => Implementation::Rust,
        }
    }

    /// The name of its measurement of `quantity`.
    fn measurement(self, quantity: Quantity) -> String {
        labelled(self.name(), quantity.name())
    }
}

/// Sizes by scale.
#[derive(Debug)]
struct Sizes {
    /// Thread counts (capped below the machine's limits).
    threads: &'static [u64],
    /// Whether Rust's default stack is measured at every thread count, or the first only.
    default_stack_at_every_count: bool,
    tasks: &'static [u64],
    /// Repetitions of up to 1,000 threads, and of more.
    few_threads: usize,
    many_threads: usize,
    /// Repetitions of up to 10,000 tasks, of up to 100,000, and of more.
    few_tasks: usize,
    more_tasks: usize,
    most_tasks: usize,
    python_tasks: &'static [u64],
    /// Whether CPython starts threads at every count, or the first only (it starts them slowly
    /// when thousands exist: 10,000 take seconds).
    python_threads_at_every_count: bool,
    python_repetitions: usize,
}

// Readings repeat to the byte, while starting and joining 10,000 threads takes a second or
// more here: the largest sizes run once outside full runs.
const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        threads: &[50, 200],
        default_stack_at_every_count: true,
        tasks: &[1000, 10_000],
        few_threads: 2,
        many_threads: 1,
        few_tasks: 2,
        more_tasks: 1,
        most_tasks: 1,
        python_tasks: &[1000, 10_000],
        python_threads_at_every_count: false,
        python_repetitions: 2,
    },
    Sizes {
        threads: &[1000, 10_000],
        default_stack_at_every_count: false,
        tasks: &[10_000, 100_000, 1_000_000],
        few_threads: 2,
        many_threads: 1,
        few_tasks: 2,
        more_tasks: 1,
        most_tasks: 1,
        python_tasks: &[10_000, 100_000],
        python_threads_at_every_count: false,
        python_repetitions: 2,
    },
    Sizes {
        threads: &[1000, 10_000],
        default_stack_at_every_count: true,
        tasks: &[10_000, 100_000, 1_000_000],
        few_threads: 5,
        many_threads: 3,
        few_tasks: 7,
        more_tasks: 5,
        most_tasks: 3,
        python_tasks: &[10_000, 100_000, 1_000_000],
        python_threads_at_every_count: true,
        python_repetitions: 5,
    },
);

impl Sizes {
    /// How many fresh workers measure `count` of `units` (each reading is one sample).
    fn repetitions(&self, units: Units, count: u64) -> usize {
        match (units, count) {
            (Units::Threads { .. }, 0..=1000) => self.few_threads,
            (Units::Threads { .. }, _) => self.many_threads,
            (Units::Tasks, 0..=10_000) => self.few_tasks,
            (Units::Tasks, 10_001..=100_000) => self.more_tasks,
            (Units::Tasks, _) => self.most_tasks,
        }
    }
}

/// Counts as a comma-separated list, for the CPython script and the method.
fn joined(counts: &[u64]) -> String {
    counts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Held {
    /// `bytes` shared out over the units held.
    fn per_unit(&self, bytes: u64) -> f64 {
        bytes as f64 / self.reached.max(1) as f64
    }
}

impl Started for Held {
    fn reached(&self) -> u64 {
        self.reached
    }

    fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }
}

/// The series of `count` units of `units`, each reading from a fresh worker: resident and
/// reserved bytes per unit.
fn probes(unit: Unit, units: Units, count: u64, repetitions: usize) -> Series<'static> {
    in_fresh_workers(
        unit.name(),
        count,
        repetitions,
        (hold_units, Probe { units, count }, "a memory probe"),
        [
            (Quantity::Resident.name(), "bytes", |h: &Held| {
                h.per_unit(h.resident)
            }),
            (Quantity::Reserved.name(), "bytes", |h: &Held| {
                h.per_unit(h.reserved)
            }),
        ],
    )
}

impl Experiment for MemoryPerUnit {
    fn about(&self) -> About {
        About {
            id: "memory-per-unit",
            title: "Memory per thread and per coroutine, resident and reserved",
            seed_section: "6.4.2",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let room = thread_room();
        let thread_counts: Vec<u64> = sizes.threads.iter().map(|&n| n.min(room.cap)).collect();
        let first_count = &thread_counts[..1];
        let default_stack_counts = if sizes.default_stack_at_every_count {
            &thread_counts[..]
        } else {
            first_count
        };
        let mut plan = Plan::new();
        if thread_counts != sizes.threads {
            plan.note(format!(
                "Thread counts were capped at {} by this machine's limits ({}).",
                room.cap, room.description
            ));
        }
        for (unit, units, counts) in [
            (
                Unit::SeedStackThread,
                Units::Threads {
                    stack: Some(SEED_STACK),
                },
                &thread_counts[..],
            ),
            (
                Unit::DefaultStackThread,
                Units::Threads { stack: None },
                default_stack_counts,
            ),
            (Unit::TokioTask, Units::Tasks, sizes.tasks),
        ] {
            for &count in counts {
                plan.series(probes(unit, units, count, sizes.repetitions(units, count)));
            }
        }
        plan.step(|measured| {
            measured.measurement(Measurement::new(
                DEFAULT_STACK,
                Implementation::Rust,
                "bytes",
                vec![pthread_default_stack() as f64],
            ));
            Ok(())
        });
        let python_thread_counts = if sizes.python_threads_at_every_count {
            &thread_counts[..]
        } else {
            first_count
        };
        plan.python(Baseline::new(
            "memory_per_unit",
            include_str!("../../python/memory_per_unit.py"),
            [
                joined(python_thread_counts),
                joined(sizes.python_tasks),
                sizes.python_repetitions.to_string(),
            ],
        ));
        plan.note(format!(
            "Limits on threads here: {}. A thread's reserved stack costs address space, not \
             RAM: only the pages it touches become resident.",
            room.description
        ));
        bench.run(plan)
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        judge(findings)
    }
}

/// The counts `unit` was measured at.
fn counts(found: &Findings<'_>, unit: Unit) -> Vec<u64> {
    found
        .every(unit.implementation(), &unit.measurement(Quantity::Resident))
        .map(count_of)
        .collect()
}

/// The verdict on "a thread takes about 8 MB" from the outcomes of its resident and its
/// reserved memory against 8 MiB: confirmed when every resident figure is near it, refuted when
/// not even the reserved ones are, within noise when the resident ones cannot be told apart from
/// it, depends otherwise (reserved near 8 MiB, resident not: the stack is address space only).
fn thread_outcome(resident: Outcome, reserved: Outcome) -> Outcome {
    match (resident, reserved) {
        (Outcome::Confirmed, _) => Outcome::Confirmed,
        (_, Outcome::Refuted) => Outcome::Refuted,
        (Outcome::WithinNoise, _) => Outcome::WithinNoise,
        _ => Outcome::Depends,
    }
}

/// The measurement of `unit`'s `quantity` at the largest count measured.
fn largest<'a>(found: &Findings<'a>, unit: Unit, quantity: Quantity) -> Option<&'a Measurement> {
    found
        .every(unit.implementation(), &unit.measurement(quantity))
        .max_by_key(|m| count_of(m))
}

fn judge(found: &Findings<'_>) -> Judgement {
    let sizes = SIZES.at(found.scale());
    let mut table = Table::new([
        "unit",
        "count",
        "resident per unit",
        "reserved per unit",
        "resident in all",
    ]);
    let mut resident_chart = Vec::new();
    let mut reserved_chart = Vec::new();
    for &unit in Unit::ALL {
        let mut resident_points = Vec::new();
        let mut reserved_points = Vec::new();
        let implementation = unit.implementation();
        for resident in found.every(implementation, &unit.measurement(Quantity::Resident)) {
            let count = count_of(resident);
            let reserved = found.get(
                implementation,
                &unit.measurement(Quantity::Reserved),
                &[("count", count.into())],
            );
            table.row([
                unit.name().to_owned(),
                count.to_string(),
                format_with_spread(&resident.summary, format_bytes),
                reserved.map_or("—".to_owned(), |m| {
                    format_with_spread(&m.summary, format_bytes)
                }),
                format_bytes(resident.median() * count as f64),
            ]);
            resident_points.push(Point::from_summary(count as f64, &resident.summary));
            if let Some(m) = reserved {
                reserved_points.push(Point::from_summary(count as f64, &m.summary));
            }
        }
        resident_chart.push(Line {
            label: unit.name().to_owned(),
            points: resident_points,
        });
        reserved_chart.push(Line {
            label: unit.name().to_owned(),
            points: reserved_points,
        });
    }

    let mut verdicts = Vec::new();
    let mut two_kb = Checks::default();
    for unit in [Unit::TokioTask, Unit::PyTask] {
        if let Some(m) = largest(found, unit, Quantity::Resident) {
            two_kb.find(
                format!(
                    "{}, {} of them: {} resident each",
                    unit.name(),
                    count_of(m),
                    format_with_spread(&m.summary, format_bytes)
                ),
                Ratio::measured(&m.summary).inside(1000.0..=4000.0),
            );
        }
    }
    verdicts.push(two_kb.verdict(
        "A coroutine takes about 2 KB (within a factor of two).",
        "每个协程约2KB(栈帧)",
    ));

    // Bytes per unit differ from run to run (each a fresh process): judged by their quartiles.
    let near_eight_mib = |bytes: &Summary| {
        Ratio::measured(bytes).inside(0.75 * SEED_STACK as f64..=1.25 * SEED_STACK as f64)
    };
    let mut reserved_holds = Vec::new();
    let mut resident_holds = Vec::new();
    let mut evidence = Vec::new();
    for unit in [Unit::SeedStackThread, Unit::PyThread] {
        if let (Some(resident), Some(reserved)) = (
            largest(found, unit, Quantity::Resident),
            largest(found, unit, Quantity::Reserved),
        ) {
            let count = count_of(resident) as f64;
            reserved_holds.push(near_eight_mib(&reserved.summary));
            resident_holds.push(near_eight_mib(&resident.summary));
            evidence.push(format!(
                "{}, {count} of them: {} reserved ({} each), {} resident ({} each)",
                unit.name(),
                format_bytes(reserved.median() * count),
                format_bytes(reserved.median()),
                format_bytes(resident.median() * count),
                format_bytes(resident.median()),
            ));
        }
    }
    let outcome = thread_outcome(
        Outcome::from_findings(resident_holds),
        Outcome::from_findings(reserved_holds),
    );
    verdicts.push(verdict(
        "A thread takes about 8 MB (its stack), so 10,000 threads need 80 GB.",
        "如果用线程,每个约8MB(线程栈),10000个需要80GB!",
        outcome,
        evidence.join("; "),
    ));

    let mut default_stack = Checks::default();
    if let Some(glibc) = found.get(Implementation::Rust, DEFAULT_STACK, &[]) {
        // A setting read once (ulimit -s), exact: no spread to weigh.
        default_stack.check(
            format!(
                "glibc's default thread stack here (ulimit -s): {}",
                format_bytes(glibc.median())
            ),
            glibc.median() == SEED_STACK as f64,
        );
    }
    for unit in [Unit::PyThread, Unit::DefaultStackThread] {
        if let Some(m) = largest(found, unit, Quantity::Reserved) {
            default_stack.find(
                format!(
                    "{}: {} reserved each",
                    unit.name(),
                    format_with_spread(&m.summary, format_bytes)
                ),
                near_eight_mib(&m.summary),
            );
        }
    }
    verdicts.push(default_stack.verdict(
        "A thread's stack is 8 MB by default on Linux.",
        "默认8MB(Linux)",
    ));

    let counted = |unit| joined(&counts(found, unit));
    Judgement {
        method: format!(
            "Each measurement runs in a fresh worker process (Rust: a triad fork-server \
             worker; CPython: a forked child): it reads VmRSS (resident) and VmSize (reserved) \
             from /proc/self/status, starts N units that park (threads on a condition \
             variable, tokio tasks on a Notify, CPython threads and asyncio tasks on an \
             Event), waits until every one is parked, reads again, then releases and joins \
             them. Per unit = growth ÷ N. Counts: Rust threads {} with 8 MiB stacks and {} \
             with Rust's default, tokio tasks {}, CPython threads {}, asyncio tasks {}. \
             Repetitions: {} per size up to 1,000 threads or 10,000 tasks, fewer above (the \
             readings repeat to the byte).",
            counted(Unit::SeedStackThread),
            counted(Unit::DefaultStackThread),
            counted(Unit::TokioTask),
            counted(Unit::PyThread),
            counted(Unit::PyTask),
            sizes.few_threads,
        ),
        table,
        charts: vec![
            Chart {
                title: "Resident memory per unit".into(),
                kind: ChartKind::Line,
                x_label: "units held".into(),
                y_label: "bytes per unit (resident)".into(),
                x_scale: Scale::Log,
                y_scale: Scale::Log,
                categories: Vec::new(),
                series: resident_chart,
            },
            Chart {
                title: "Reserved address space per unit".into(),
                kind: ChartKind::Line,
                x_label: "units held".into(),
                y_label: "bytes per unit (reserved)".into(),
                x_scale: Scale::Log,
                y_scale: Scale::Log,
                categories: Vec::new(),
                series: reserved_chart,
            },
        ],
        verdicts,
        notes: vec![
            "Reserved per thread is above the stack size at small counts: the first threads \
             that allocate get glibc malloc arenas of their own (64 MiB of address space each, \
             up to 8 per core), shared out over fewer threads."
                .to_owned(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg_gives_the_thread_count() {
        assert_eq!(
            threads_in_loadavg("0.50 0.40 0.30 2/345 12345\n"),
            Some(345)
        );
        assert_eq!(threads_in_loadavg("garbage"), None);
    }

    #[test]
    fn the_room_is_the_tightest_limit_less_what_is_used() {
        let room = room_from_limits(Some(100_000), Some(32_768), None, Some(65_530), 768);
        assert_eq!(room.cap, 32_000 / 10 * 9);
        let maps_bound = room_from_limits(Some(100_000), None, None, Some(11_000), 0);
        assert_eq!(maps_bound.cap, 5000 / 10 * 9);
        assert!(room.description.contains("unlimited"));
        assert_eq!(
            room_from_limits(None, None, None, None, 0).cap,
            u64::MAX / 10 * 9
        );
    }

    #[test]
    fn threads_and_tasks_are_held_and_released() {
        let threads = hold_threads(20, Some(256 << 10)).unwrap();
        assert_eq!((threads.reached, threads.stopped), (20, None));
        let tasks = hold_tasks(2000).unwrap();
        assert_eq!(tasks.reached, 2000);
    }

    #[test]
    fn a_thread_is_judged_by_its_resident_memory_then_its_reserved() {
        use Outcome::{Confirmed, Depends, Refuted, WithinNoise};
        assert_eq!(thread_outcome(Confirmed, Confirmed), Confirmed);
        // 8 MiB of address space, a few pages resident: the claim is about the reservation.
        assert_eq!(thread_outcome(Refuted, Confirmed), Depends);
        assert_eq!(thread_outcome(Refuted, Refuted), Refuted);
        assert_eq!(thread_outcome(WithinNoise, Confirmed), WithinNoise);
        assert_eq!(thread_outcome(Depends, Depends), Depends);
    }
}
