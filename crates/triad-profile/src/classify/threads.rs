//! The threads that do the work, from the recording's per-thread records: each thread is
//! weighed by its share of the work (its CPU time against the busiest thread's),
//! idle helpers are set aside, and the states the samples found are summed with those weights
//! — so that `ProcessPoolExecutor`'s sleeping management threads say nothing about what the
//! program waits on.

use std::collections::BTreeMap;

use crate::recording::{Recording, ThreadRecord, WaitKind};

use super::{IDLE_MAX_DEMAND, IDLE_MAX_WEIGHT, SetAside, div};

/// What the per-thread records say about the whole run.
#[derive(Debug, Clone, Default)]
pub(super) struct ThreadFacts {
    /// Whether the recording had per-thread records at all (`measure` and hand-built
    /// recordings may not; then the samples' totals are used instead).
    pub(super) known: bool,
    /// Share of the weighted thread-samples in state D.
    pub(super) d_share: f64,
    /// Weighted sleeping samples, by what the threads were blocked in (indexed as
    /// [`WAIT_KINDS`]).
    waits: [f64; WAIT_KINDS.len()],
    /// The most cores one process used or wanted (CPU + delay over its life): above 1.4, its
    /// own threads ran in parallel.
    pub(super) max_process_cores: f64,
    /// Threads set aside as idle helpers, by process.
    pub(super) set_aside: Vec<SetAside>,
}

/// Every wait kind, in a fixed order.
pub(super) const WAIT_KINDS: [WaitKind; 8] = [
    WaitKind::Timer,
    WaitKind::Socket,
    WaitKind::Pipe,
    WaitKind::Terminal,
    WaitKind::Poll,
    WaitKind::Lock,
    WaitKind::Child,
    WaitKind::Other,
];

fn index(kind: WaitKind) -> usize {
    WAIT_KINDS
        .iter()
        .position(|&k| k == kind)
        .expect("every kind is listed")
}

/// Seconds of a thread's observed life: from the first to the last sample that saw it, plus
/// the interval before the first (it started at some time in it).
fn life_s(t: &ThreadRecord, interval_s: f64) -> f64 {
    ((t.last_ms - t.first_ms) / 1000.0).max(0.0) + interval_s
}

fn cpu_s(t: &ThreadRecord) -> f64 {
    t.cpu_ns as f64 / 1e9
}

/// CPU plus run-queue delay: what it used or wanted.
fn wanted_s(t: &ThreadRecord) -> f64 {
    (t.cpu_ns + t.run_delay_ns) as f64 / 1e9
}

impl ThreadFacts {
    pub(super) fn new(rec: &Recording) -> Self {
        let threads = &rec.threads;
        if threads.is_empty() {
            return ThreadFacts::default();
        }
        let interval_s = rec.interval_ms as f64 / 1000.0;
        let busiest = threads.iter().map(cpu_s).fold(0.0, f64::max);
        let total_cpu: f64 = threads.iter().map(cpu_s).sum();

        let mut facts = ThreadFacts {
            known: true,
            ..ThreadFacts::default()
        };
        let (mut weighted_d, mut weighted_samples) = (0.0, 0.0);
        // Per process set aside: the record, and the threads' samples asleep and in all.
        let mut aside: BTreeMap<i32, (SetAside, u32, u32)> = BTreeMap::new();
        let mut processes: BTreeMap<i32, (f64, f64, f64)> = BTreeMap::new();
        for t in threads {
            let work = cpu_s(t);
            let life = life_s(t, interval_s);
            let process = processes
                .entry(t.pid)
                .or_insert((0.0, f64::INFINITY, f64::NEG_INFINITY));
            process.0 += wanted_s(t);
            process.1 = process.1.min(t.first_ms);
            process.2 = process.2.max(t.last_ms);

            let weight = div(work, busiest);
            if div(work, life) <= IDLE_MAX_DEMAND && weight <= IDLE_MAX_WEIGHT && busiest > 0.0 {
                let (entry, asleep, seen) = aside.entry(t.pid).or_insert_with(|| {
                    let entry = SetAside {
                        pid: t.pid,
                        process: t.process.clone(),
                        threads: 0,
                        cpu_s: 0.0,
                        cpu_share: 0.0,
                        asleep_share: 0.0,
                    };
                    (entry, 0, 0)
                });
                entry.threads += 1;
                entry.cpu_s += work;
                *asleep += t.sleeping.total();
                *seen += t.samples();
                continue;
            }
            weighted_d += weight * f64::from(t.disk_wait);
            weighted_samples += weight * f64::from(t.samples());
            for (slot, kind) in facts.waits.iter_mut().zip(WAIT_KINDS) {
                *slot += weight * f64::from(t.sleeping.get(kind));
            }
        }
        facts.d_share = div(weighted_d, weighted_samples);
        facts.max_process_cores = processes
            .values()
            .map(|&(work, first, last)| div(work, (last - first) / 1000.0 + interval_s))
            .fold(0.0, f64::max);
        facts.set_aside = aside
            .into_values()
            .map(|(mut a, asleep, seen)| {
                a.asleep_share = div(f64::from(asleep), f64::from(seen));
                a.cpu_share = div(a.cpu_s, total_cpu);
                a
            })
            .collect();
        facts
    }

    /// Weighted sleeping samples in `kind`.
    pub(super) fn waits_in(&self, kind: WaitKind) -> f64 {
        self.waits[index(kind)]
    }
}
