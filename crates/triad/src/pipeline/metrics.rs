//! What each stage of a running pipeline is doing: counters the stages bump as items pass, a
//! snapshot of them ([`PipelineMetrics`]), and the rule that names the bottleneck.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How a stage runs its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Futures on the event loop, a bounded number in flight.
    Async,
    /// Blocking closures on a thread pool.
    Blocking,
    /// A registered task on an engine (threads, processes, or the loop).
    Task,
}

impl StageKind {
    /// The name the monitor counts the stage's items under.
    pub(crate) fn monitor_kind(self) -> &'static str {
        match self {
            StageKind::Async => "pipeline:async",
            StageKind::Blocking => "pipeline:blocking",
            StageKind::Task => "pipeline:task",
        }
    }
}

/// The live counters of one stage.
#[derive(Debug)]
pub(crate) struct StageCounters {
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: StageKind,
    pub(crate) slots: usize,
    pub(crate) items_in: AtomicU64,
    pub(crate) items_out: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Item time in the stage's work, summed over its slots.
    pub(crate) busy_ns: AtomicU64,
    /// Item time waiting for room downstream, summed over slots.
    pub(crate) blocked_ns: AtomicU64,
    /// Time the stage had a free slot and nothing to put in it.
    pub(crate) starved_ns: AtomicU64,
    /// Items taken from the input channel, and items sent on (failed ones passing by too): the
    /// difference between one stage's `sent` and the next one's `received` is its queue.
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
}

impl StageCounters {
    pub(crate) fn new(name: Cow<'static, str>, kind: StageKind, slots: usize) -> Self {
        StageCounters {
            name,
            kind,
            slots,
            items_in: AtomicU64::new(0),
            items_out: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            blocked_ns: AtomicU64::new(0),
            starved_ns: AtomicU64::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, since: Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        counter.fetch_add(ns, Ordering::Relaxed);
    }
}

/// The counters of the source and the sink.
#[derive(Debug, Default)]
pub(crate) struct EndCounters {
    /// Items taken from the input.
    pub(crate) taken: AtomicU64,
    /// Items the source put into the first stage's channel.
    pub(crate) sent: AtomicU64,
    /// Time the source waited for room (the order window or the first channel).
    pub(crate) source_blocked_ns: AtomicU64,
    /// Items handed to the caller: succeeded, and failed.
    pub(crate) emitted_ok: AtomicU64,
    pub(crate) emitted_failed: AtomicU64,
}

/// One stage's figures at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageMetrics {
    /// The stage's name.
    pub name: String,
    /// How it runs its items.
    pub kind: StageKind,
    /// How many items it may hold at once.
    pub slots: usize,
    /// Items that entered it (items that failed upstream pass it by, uncounted).
    pub items_in: u64,
    /// Items it passed on.
    pub items_out: u64,
    /// Items that failed in it.
    pub failed: u64,
    /// Time its slots spent on items, summed over slots.
    pub busy: Duration,
    /// Time its slots spent waiting for room downstream, summed over slots (backpressure).
    pub blocked: Duration,
    /// Time it had a free slot and an empty input (starved by upstream).
    pub starved: Duration,
    /// Items waiting in its input channel now.
    pub queued: u64,
    /// `busy ÷ (slots × elapsed)`: 1 when every slot works all the time.
    pub utilization: f64,
    /// `blocked ÷ (slots × elapsed)`.
    pub blocked_share: f64,
}

/// A whole pipeline's figures at one moment, with its bottleneck.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineMetrics {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Items taken from the input so far.
    pub taken: u64,
    /// Time the source waited for room.
    pub source_blocked: Duration,
    /// Items handed to the caller that succeeded.
    pub emitted_ok: u64,
    /// Items handed to the caller that failed.
    pub emitted_failed: u64,
    /// Each stage, in order.
    pub stages: Vec<StageMetrics>,
    /// The stage that limits the run, when one does: see [`PipelineMetrics::bottleneck`].
    pub bottleneck: Option<String>,
}

/// A stage whose slots work at least this share of the time is saturated.
const SATURATED: f64 = 0.8;
/// Upstream of a saturated stage, waiting this share of the time means it is held back.
const HELD_BACK: f64 = 0.2;

impl PipelineMetrics {
    pub(crate) fn read(
        elapsed: Duration,
        ends: &EndCounters,
        stages: &[std::sync::Arc<StageCounters>],
    ) -> Self {
        let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let stages: Vec<StageMetrics> = stages
            .iter()
            .enumerate()
            .map(|(index, stage)| {
                let fed = match index {
                    0 => load(&ends.sent),
                    _ => load(&stages[index - 1].sent),
                };
                let busy = Duration::from_nanos(load(&stage.busy_ns));
                let blocked = Duration::from_nanos(load(&stage.blocked_ns));
                let capacity = stage.slots.max(1) as f64 * seconds;
                StageMetrics {
                    name: stage.name.to_string(),
                    kind: stage.kind,
                    slots: stage.slots,
                    items_in: load(&stage.items_in),
                    items_out: load(&stage.items_out),
                    failed: load(&stage.failed),
                    busy,
                    blocked,
                    starved: Duration::from_nanos(load(&stage.starved_ns)),
                    queued: fed.saturating_sub(load(&stage.received)),
                    utilization: (busy.as_secs_f64() / capacity).min(1.0),
                    blocked_share: (blocked.as_secs_f64() / capacity).min(1.0),
                }
            })
            .collect();
        let source_blocked = Duration::from_nanos(load(&ends.source_blocked_ns));
        let bottleneck = bottleneck(&stages, source_blocked.as_secs_f64() / seconds);
        PipelineMetrics {
            elapsed,
            taken: load(&ends.taken),
            source_blocked,
            emitted_ok: load(&ends.emitted_ok),
            emitted_failed: load(&ends.emitted_failed),
            stages,
            bottleneck,
        }
    }

    /// Writes the figures as a table, a stage a row, and the bottleneck under it.
    pub fn write_table(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{:<16} {:<9} {:>5} {:>9} {:>9} {:>7} {:>6} {:>8} {:>7}",
            "stage", "kind", "slots", "in", "out", "failed", "busy", "blocked", "queued"
        )?;
        for stage in &self.stages {
            writeln!(
                out,
                "{:<16} {:<9} {:>5} {:>9} {:>9} {:>7} {:>5.0}% {:>7.0}% {:>7}",
                stage.name,
                format!("{:?}", stage.kind).to_lowercase(),
                stage.slots,
                stage.items_in,
                stage.items_out,
                stage.failed,
                stage.utilization * 100.0,
                stage.blocked_share * 100.0,
                stage.queued
            )?;
        }
        match &self.bottleneck {
            Some(stage) => writeln!(out, "bottleneck: {stage}"),
            None => writeln!(
                out,
                "bottleneck: none (no stage is busy nearly all the time)"
            ),
        }
    }
}

/// The bottleneck: the stage whose slots are busy nearly all the time ([`SATURATED`]) while
/// what feeds it — the stage before, or the source — is held back ([`HELD_BACK`]); of several,
/// the busiest. When no stage is, but the last one waits on the caller, the caller is.
fn bottleneck(stages: &[StageMetrics], source_blocked_share: f64) -> Option<String> {
    let held_back = |index: usize| {
        if index == 0 {
            source_blocked_share >= HELD_BACK
        } else {
            stages[index - 1].blocked_share >= HELD_BACK
        }
    };
    let busiest = stages
        .iter()
        .enumerate()
        .filter(|(index, stage)| stage.utilization >= SATURATED && held_back(*index))
        .max_by(|(_, a), (_, b)| a.utilization.total_cmp(&b.utilization));
    if let Some((_, stage)) = busiest {
        return Some(stage.name.clone());
    }
    match stages.last() {
        Some(last) if last.blocked_share >= 1.0 - SATURATED => {
            Some("the caller (results are taken slower than they come)".to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, utilization: f64, blocked_share: f64) -> StageMetrics {
        StageMetrics {
            name: name.into(),
            kind: StageKind::Async,
            slots: 1,
            items_in: 0,
            items_out: 0,
            failed: 0,
            busy: Duration::ZERO,
            blocked: Duration::ZERO,
            starved: Duration::ZERO,
            queued: 0,
            utilization,
            blocked_share,
        }
    }

    #[test]
    fn the_saturated_stage_behind_a_blocked_one_is_the_bottleneck() {
        let stages = [
            stage("fetch", 0.3, 0.6),
            stage("parse", 0.97, 0.0),
            stage("save", 0.2, 0.0),
        ];
        assert_eq!(bottleneck(&stages, 0.9).as_deref(), Some("parse"));
    }

    #[test]
    fn a_busy_stage_that_nothing_waits_for_is_not_a_bottleneck() {
        // Busy, but fed as fast as it works: upstream never waits for it.
        let stages = [stage("fetch", 0.3, 0.0), stage("parse", 0.95, 0.0)];
        assert_eq!(bottleneck(&stages, 0.0), None);
    }

    #[test]
    fn a_first_stage_holding_back_the_source_and_a_slow_caller() {
        assert_eq!(
            bottleneck(&[stage("only", 0.9, 0.0)], 0.5).as_deref(),
            Some("only")
        );
        let caller = bottleneck(&[stage("only", 0.1, 0.95)], 0.9).unwrap();
        assert!(caller.starts_with("the caller"), "{caller}");
    }
}
