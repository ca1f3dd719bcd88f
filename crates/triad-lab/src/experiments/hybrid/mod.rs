//! `hybrid` (seed §6.7, §8.2, §8.4, §9): mixed work — wait, compute, wait — in every model, and
//! as a pipeline.
//!
//! Each item of a batch is the seed's §8.2 executor in small ([`variants`]): a 20 ms round trip
//! to a local delay server (the io-bound experiment's, on 127.0.0.1, started here), about 2 ms of
//! CPU work (`sum_squares`, its size calibrated on this machine to 2 ms), and a 10 ms save (a
//! wait). The batch runs serially; as coroutines on one event loop that make blocking calls
//! (the seed's pitfall 1, §8.4); as coroutines on one loop that await their waits and compute
//! on it (the CPU work holds the loop: a `LagMonitor` reports the longest stall); on a pool of
//! one thread per item; on a pool of one process per item; on one process per core, each with
//! its share as coroutines (§6.7's "process pool with coroutines inside"); and as a
//! `triad::pipeline` (fetch on the loop → compute on worker processes → save on the loop, §9's
//! "pipeline"). CPython (`python/hybrid.py`) runs the same variants with asyncio, threading,
//! multiprocessing and concurrent.futures against the same server. [`judge`] sets the times
//! against the seed's claims and against the batch's lower bound on this machine.

mod judge;
mod variants;

use std::sync::Arc;
use std::time::Duration;

use triad::Recorder;
use triad::workloads::{SUM_SQUARES_MAX_N, sum_squares};

use super::delay_server::DelayServer;
use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Repeat, Series};
use crate::python::Baseline;
use crate::results::{Implementation, Lane, Measurement, Timeline, TimelineSpan};
use crate::stats::timed;
use variants::{Engines, Reading, Work};

/// The `hybrid` experiment.
#[derive(Debug)]
pub(crate) struct Hybrid;

names! {
    /// How a batch runs: the measurement names, the same in `python/hybrid.py`.
    enum Variant {
        Serial => "serial",
        LoopBlockingIo => "one loop, blocking IO",
        Loop => "one loop",
        Threads => "threads",
        Processes => "processes",
        ProcessesWithCoroutines => "process pool with coroutines inside",
        Pipeline => "pipeline",
    }
}

impl Variant {
    /// The variants that run a batch one item at a time (their warm-up is one item).
    fn one_at_a_time(self) -> bool {
        matches!(self, Variant::Serial | Variant::LoopBlockingIo)
    }

    /// The variants watched by a lag monitor.
    fn on_one_loop(self) -> bool {
        matches!(self, Variant::LoopBlockingIo | Variant::Loop)
    }
}

names! {
    /// The other quantities measured (`python/hybrid.py` prints the first two too).
    enum Name {
        /// One item's CPU work, timed alone.
        Cpu => "cpu work per item",
        /// The heartbeat's largest lateness during a batch on one loop (param `variant`).
        Stall => "longest loop stall",
        /// The pipeline's stages (param `stage`): share of slot time busy, blocked on a full
        /// channel downstream, and share of the run starved by an empty one upstream.
        StageBusy => "pipeline stage busy",
        StageBlocked => "pipeline stage blocked",
        StageStarved => "pipeline stage starved",
        /// The pipeline's own start, before each batch's time.
        PipelineStart => "pipeline start",
    }
}

/// The stages of the pipeline, in order.
const STAGES: [&str; 3] = ["fetch", "compute", "save"];

/// Each item's fetch: how long the delay server waits before it answers.
const FETCH_MS: u64 = 20;
/// Each item's save.
const WRITE_MS: u64 = 10;
/// Each item's CPU work, which the size of `sum_squares` is calibrated to.
const CPU_TARGET: Duration = Duration::from_millis(2);

/// Sizes by scale.
#[derive(Debug, Clone)]
struct Sizes {
    /// Items in a batch.
    items: usize,
    /// Serial and the loop with blocking calls (each batch takes items × 30 ms): a one-item
    /// warm-up, then the samples.
    one_at_a_time: Repeat,
    /// The concurrent variants: whole batches, the first one untimed (it starts the threads).
    concurrent: Repeat,
    python_one_at_a_time: usize,
    python_concurrent: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        items: 4,
        one_at_a_time: Repeat::after_one(1),
        concurrent: Repeat::after_one(2),
        python_one_at_a_time: 1,
        python_concurrent: 2,
    },
    Sizes {
        items: 16,
        one_at_a_time: Repeat::after_one(1),
        concurrent: Repeat::after_one(4),
        python_one_at_a_time: 1,
        python_concurrent: 4,
    },
    Sizes {
        items: 48,
        one_at_a_time: Repeat::after_one(3),
        concurrent: Repeat::after_one(9),
        python_one_at_a_time: 3,
        python_concurrent: 9,
    },
);

/// Worker processes for the CPU work: one per core.
fn cpu_workers(cores: usize) -> usize {
    cores.max(1)
}

/// The size of `sum_squares` that takes [`CPU_TARGET`] here: scaled from the fastest of several
/// timed runs of about that size (the least disturbed by other work).
fn calibrate() -> u64 {
    let fastest = |size: u64| {
        (0..7)
            .map(|_| timed(|| sum_squares::call(size)).1)
            .fold(f64::INFINITY, f64::min)
            .max(1e-9)
    };
    let scale = |size: u64, seconds: f64| {
        let scaled = size as f64 * CPU_TARGET.as_secs_f64() / seconds;
        (scaled as u64).clamp(1_000, SUM_SQUARES_MAX_N)
    };
    // A first guess from a short probe, then a second look at about the target's size.
    let guess = scale(100_000, fastest(100_000));
    scale(guess, fastest(guess))
}

impl Experiment for Hybrid {
    fn about(&self) -> About {
        About {
            id: "hybrid",
            title: "Mixed work (wait, compute, wait): every model, their combinations, a pipeline",
            seed_section: "6.7, 8.2, 8.4, 9",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let cores = cpu_workers(bench.machine().cores);
        let server = DelayServer::start()?;
        let squares = calibrate();
        let work = Work {
            port: server.port(),
            fetch_ms: FETCH_MS,
            squares,
            write_ms: WRITE_MS,
        };
        let engines = Engines::start(sizes.items, cores, sum_squares::call(squares))?;
        let engines = &engines;
        let mut plan = Plan::new();
        plan.series(Series::of(
            Measurement::new(Name::Cpu.name(), Implementation::Rust, "s", Vec::new())
                .param("squares", squares),
            Repeat::after_one(9),
            move || Ok(timed(|| sum_squares::call(squares)).1),
        ));
        for one_at_a_time in [true, false] {
            let series = Variant::ALL
                .iter()
                .filter(|v| v.one_at_a_time() == one_at_a_time)
                .map(|&variant| {
                    let repeat = if one_at_a_time {
                        sizes.one_at_a_time
                    } else {
                        sizes.concurrent
                    };
                    let series = Series::new(
                        repeat,
                        move || engines.run(variant, work, sizes.items),
                        move |readings, measured| {
                            record(variant, sizes, squares, readings, measured)
                        },
                    );
                    if one_at_a_time {
                        series.warmed_by(move || engines.run(variant, work, 1).map(drop))
                    } else {
                        series
                    }
                })
                .collect();
            plan.rounds(series);
        }
        plan.step(move |measured| {
            let recorder = Arc::new(Recorder::new());
            variants::pipeline(work, sizes.items, cores, Some(recorder.clone()))
                .map_err(|e| LabError::engine("the pipeline's timeline", e))?;
            measured.timeline(stage_timeline(sizes.items, cores, &recorder.take()));
            Ok(())
        });
        plan.python(Baseline::new(
            "hybrid",
            include_str!("../../../python/hybrid.py"),
            [
                sizes.items.to_string(),
                FETCH_MS.to_string(),
                WRITE_MS.to_string(),
                CPU_TARGET.as_secs_f64().to_string(),
                cores.to_string(),
                sizes.python_one_at_a_time.to_string(),
                sizes.python_concurrent.to_string(),
                work.port.to_string(),
            ],
        ));
        let measured = bench.run(plan);
        drop(server);
        measured
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        judge::judge(findings, SIZES.at(findings.scale()))
    }
}

/// Records a variant's readings: its times, the loop's stalls, the pipeline's stage shares, and
/// what the pipeline named its bottleneck.
fn record(
    variant: Variant,
    sizes: &Sizes,
    squares: u64,
    readings: Vec<Reading>,
    measured: &mut Measured,
) {
    let series = |name: &str, unit: &str, samples: Vec<f64>| {
        Measurement::new(name, Implementation::Rust, unit, samples).param("items", sizes.items)
    };
    let times = readings.iter().map(|r| r.seconds).collect();
    measured.measurement(series(variant.name(), "s", times).param("squares", squares));
    if variant.on_one_loop() {
        let stalls = readings.iter().filter_map(|r| r.stall).collect();
        measured
            .measurement(series(Name::Stall.name(), "s", stalls).param("variant", variant.name()));
    }
    let starts: Vec<f64> = readings.iter().filter_map(|r| r.start).collect();
    if !starts.is_empty() {
        measured.measurement(series(Name::PipelineStart.name(), "s", starts));
    }
    let metrics: Vec<_> = readings.iter().filter_map(|r| r.metrics.as_ref()).collect();
    if metrics.is_empty() {
        return;
    }
    for (index, stage) in STAGES.iter().enumerate() {
        let (mut busy, mut blocked, mut starved) = (Vec::new(), Vec::new(), Vec::new());
        for run in &metrics {
            let Some(figures) = run.stages.get(index) else {
                continue;
            };
            let seconds = run.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
            busy.push(figures.utilization);
            blocked.push(figures.blocked_share);
            starved.push((figures.starved.as_secs_f64() / seconds).min(1.0));
        }
        for (name, samples) in [
            (Name::StageBusy, busy),
            (Name::StageBlocked, blocked),
            (Name::StageStarved, starved),
        ] {
            measured.measurement(series(name.name(), "share", samples).param("stage", *stage));
        }
    }
    let named: Vec<&str> = metrics
        .iter()
        .map(|m| m.bottleneck.as_deref().unwrap_or("none"))
        .collect();
    let mut counted: Vec<(&str, usize)> = Vec::new();
    for name in &named {
        match counted.iter_mut().find(|(n, _)| n == name) {
            Some((_, count)) => *count += 1,
            None => counted.push((name, 1)),
        }
    }
    measured.note(format!(
        "The pipeline's own metrics named as its bottleneck: {} (of {} runs).",
        counted
            .iter()
            .map(|(name, count)| format!("{name} in {count}"))
            .collect::<Vec<_>>()
            .join(", "),
        named.len()
    ));
}

/// The pipeline's spans as a Gantt chart: one row per slot of each stage that held an item, in
/// stage order; an item keeps its colour from stage to stage.
fn stage_timeline(items: usize, cores: usize, spans: &[triad::Span]) -> Timeline {
    let origin = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let mut rows: Vec<(u32, Lane)> = Vec::new();
    for span in spans {
        // The pipeline numbers its lanes (stage + 1) × 1000 + slot.
        let slot = span.tid % 1000;
        let position = match rows.iter().position(|(tid, _)| *tid == span.tid) {
            Some(position) => position,
            None => {
                rows.push((
                    span.tid,
                    Lane {
                        label: format!("{} slot {slot}", span.name),
                        spans: Vec::new(),
                    },
                ));
                rows.len() - 1
            }
        };
        rows[position].1.spans.push(TimelineSpan {
            task: span.task,
            start_ns: span.start_ns.saturating_sub(origin),
            end_ns: span.end_ns.max(span.start_ns).saturating_sub(origin),
            cpu: span.cpu,
        });
    }
    rows.sort_by_key(|(tid, _)| *tid);
    Timeline {
        title: format!(
            "The pipeline, {items} items: fetch on the event loop → compute on {cores} worker \
             processes → save on the loop (a row per slot; an item keeps its colour)"
        ),
        lanes: rows.into_iter().map(|(_, lane)| lane).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_has_a_row_per_stage_slot_in_stage_order() {
        let span = |name: &'static str, tid: u32, task: u64, start_ns: u64| triad::Span {
            name: name.into(),
            task,
            pid: 1,
            tid,
            cpu: None,
            start_ns,
            end_ns: start_ns + 10,
        };
        let spans = [
            span("save", 3000, 0, 300),
            span("fetch", 1001, 1, 100),
            span("fetch", 1000, 0, 100),
            span("compute", 2000, 0, 200),
        ];
        let timeline = stage_timeline(2, 1, &spans);
        let labels: Vec<&str> = timeline.lanes.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "fetch slot 0",
                "fetch slot 1",
                "compute slot 0",
                "save slot 0"
            ]
        );
        assert_eq!(timeline.lanes[0].spans[0].start_ns, 0);
        assert_eq!(timeline.lanes[3].spans[0].start_ns, 200);
    }
}
