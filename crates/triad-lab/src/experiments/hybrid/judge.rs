//! What `hybrid` makes of its measurements: the table of variants, the two charts, and the
//! verdicts on the seed's claims about mixed work.
//!
//! Every comparison is between batches measured in the same run, through the lab's noise rule
//! ([`Ratio`]: quartile ranges, not bare medians). Two times within [`TIE`] of each other are
//! the same (a shared 2-core VM moves a median by that much); "no overlap" means at least
//! [`NO_OVERLAP`] of the time the work would take one step after another.

use super::{CPU_TARGET, FETCH_MS, Name, STAGES, Sizes, Variant, WRITE_MS, cpu_workers};
use crate::experiment::Judgement;
use crate::findings::Findings;
use crate::results::{
    Chart, ChartKind, Implementation, Point, Scale, Series as Bars, Table, Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread};
use crate::verdict::{Checks, Ratio, times};

/// Two medians closer than this factor are a tie.
const TIE: f64 = 1.1;
/// A batch that took at least this share of its one-step-after-another time did not overlap.
const NO_OVERLAP: f64 = 0.9;

/// The measurements, read back by language and variant.
struct Results<'a> {
    found: Findings<'a>,
    items: usize,
    cores: usize,
}

impl<'a> Results<'a> {
    fn time(&self, implementation: Implementation, variant: Variant) -> Option<&'a Summary> {
        self.found.summary(
            implementation,
            variant.name(),
            &[("items", self.items.into())],
        )
    }

    fn median(&self, implementation: Implementation, variant: Variant) -> Option<f64> {
        self.time(implementation, variant).map(|s| s.median)
    }

    fn stall(&self, implementation: Implementation, variant: Variant) -> Option<&'a Summary> {
        self.found.summary(
            implementation,
            Name::Stall.name(),
            &[("variant", variant.name().into())],
        )
    }

    /// One item's CPU work, as timed alone.
    fn cpu(&self, implementation: Implementation) -> Option<f64> {
        self.found
            .summary(implementation, Name::Cpu.name(), &[])
            .map(|s| s.median)
    }

    /// The batch can take no less: one fetch, one save, and the CPU work spread over the
    /// cores (at most one item per core at once).
    fn bound(&self, implementation: Implementation) -> Option<f64> {
        let lanes = self.cores.min(self.items).max(1);
        let rounds = self.items.div_ceil(lanes) as f64;
        Some(waits() + rounds * self.cpu(implementation)?)
    }

    /// The fastest of `among` (by median), with its name.
    fn fastest(
        &self,
        implementation: Implementation,
        among: impl IntoIterator<Item = Variant>,
    ) -> Option<(Variant, &'a Summary)> {
        among
            .into_iter()
            .filter_map(|v| Some((v, self.time(implementation, v)?)))
            .min_by(|a, b| a.1.median.total_cmp(&b.1.median))
    }

    fn languages(&self) -> Vec<Implementation> {
        self.found.implementations()
    }
}

/// One item's fetch and save, in seconds.
fn waits() -> f64 {
    (FETCH_MS + WRITE_MS) as f64 / 1e3
}

pub(super) fn judge(findings: &Findings<'_>, sizes: &Sizes) -> Judgement {
    let results = Results {
        found: *findings,
        items: sizes.items,
        cores: cpu_workers(findings.machine().cores),
    };
    Judgement {
        method: method(sizes, results.cores),
        table: table(&results),
        charts: vec![time_chart(&results), stage_chart(&results)],
        verdicts: verdicts(&results),
        notes: notes(&results),
    }
}

fn method(sizes: &Sizes, cores: usize) -> String {
    format!(
        "A batch of {items} items, each: a round trip to a local TCP server (in this process, \
         tokio, 127.0.0.1) that answers after {FETCH_MS} ms; sum_squares(n), with n calibrated \
         so that it takes about {cpu} here (each language its own n; the table's notes give \
         the time it took); a {WRITE_MS} ms wait (the save). Variants: serial; {items} \
         coroutines on one event loop (tokio current-thread / asyncio) making blocking calls \
         (socket, sleep); the same coroutines awaiting their fetch and save and computing on \
         the loop, a LagMonitor heartbeat (1 ms; in CPython an asyncio task) giving the loop's \
         longest stall; a pool of {items} threads (triad::Runner / ThreadPoolExecutor); a pool \
         of {items} worker processes (triad ProcessPool forked from its fork server / \
         multiprocessing.Pool), one item per task; {cores} worker processes each running its \
         share of the batch as coroutines on a loop of its own (the seed's §6.7 \
         ProcessPoolExecutor.submit(asyncio.run, …)); a pipeline — Rust: triad::pipeline, \
         fetch (an async stage, {items} in flight) → compute (Stage::task on {cores} worker \
         processes) → save (async), built anew for each batch (a pipeline runs once) and timed \
         from when it has started (its start is given apart; its second worker starts on \
         demand, inside the time); CPython: each item's coroutine awaits its fetch, \
         loop.run_in_executor on a ProcessPoolExecutor of {cores}, then its save, under \
         asyncio.gather. Pools start before timing. Serial and the blocking loop: a one-item \
         warm-up, then {one} batches ({py_one} in CPython); the others: one untimed batch, \
         then {reps} ({py_reps} in CPython), in rounds. Lower bound: {FETCH_MS} + {WRITE_MS} \
         ms plus ⌈{items} ÷ {cores} cores⌉ items' CPU work.",
        items = sizes.items,
        cpu = format_seconds(CPU_TARGET.as_secs_f64()),
        one = sizes.one_at_a_time.samples,
        py_one = sizes.python_one_at_a_time,
        reps = sizes.concurrent.samples,
        py_reps = sizes.python_concurrent,
    )
}

/// What each variant runs on.
fn runs_on(variant: Variant, items: usize, cores: usize) -> String {
    match variant {
        Variant::Serial => "1 thread".to_owned(),
        Variant::LoopBlockingIo => "1 event loop, blocking calls".to_owned(),
        Variant::Loop => "1 event loop".to_owned(),
        Variant::Threads => format!("{items} threads"),
        Variant::Processes => format!("{items} processes"),
        Variant::ProcessesWithCoroutines => format!("{cores} processes × 1 loop each"),
        Variant::Pipeline => format!("loop → {cores} processes → loop"),
    }
}

fn table(results: &Results<'_>) -> Table {
    let mut table = Table::new([
        "variant",
        "runs on",
        "Rust",
        "Rust ÷ serial",
        "CPython",
        "CPython ÷ serial",
        "loop stall: Rust",
        "CPython",
    ]);
    let dash = || "—".to_owned();
    for &variant in Variant::ALL {
        let mut row = vec![
            variant.name().to_owned(),
            runs_on(variant, results.items, results.cores),
        ];
        for implementation in [Implementation::Rust, Implementation::Python] {
            let time = results.time(implementation, variant);
            row.push(time.map_or_else(dash, |s| format_with_spread(s, format_seconds)));
            let serial = results.median(implementation, Variant::Serial);
            row.push(match (time, serial) {
                (Some(time), Some(serial)) => format!("{:.3}", time.median / serial),
                _ => dash(),
            });
        }
        for implementation in [Implementation::Rust, Implementation::Python] {
            row.push(
                results
                    .stall(implementation, variant)
                    .map_or_else(dash, |s| format_with_spread(s, format_seconds)),
            );
        }
        table.row(row);
    }
    let mut bound = vec![
        "lower bound".to_owned(),
        format!("{FETCH_MS} + {WRITE_MS} ms + CPU ÷ cores"),
    ];
    for implementation in [Implementation::Rust, Implementation::Python] {
        bound.push(
            results
                .bound(implementation)
                .map_or_else(dash, format_seconds),
        );
        bound.push(dash());
    }
    bound.extend([dash(), dash()]);
    table.row(bound);
    table
}

fn time_chart(results: &Results<'_>) -> Chart {
    let series = results
        .languages()
        .into_iter()
        .map(|implementation| Bars {
            label: implementation.label().to_owned(),
            points: Variant::ALL
                .iter()
                .enumerate()
                .filter_map(|(index, &variant)| {
                    let time = results.time(implementation, variant)?;
                    Some(Point::from_summary(index as f64, &time.scaled(1e3)))
                })
                .collect(),
        })
        .filter(|bars| !bars.points.is_empty())
        .collect();
    Chart {
        title: format!(
            "Time for {} mixed items ({FETCH_MS} ms fetch, ~{} CPU, {WRITE_MS} ms save each)",
            results.items,
            format_seconds(CPU_TARGET.as_secs_f64())
        ),
        kind: ChartKind::Bar,
        x_label: "variant".to_owned(),
        y_label: "ms (log)".to_owned(),
        x_scale: Scale::Linear,
        y_scale: Scale::Log,
        categories: Variant::ALL.iter().map(|v| v.name().to_owned()).collect(),
        series,
    }
}

fn stage_chart(results: &Results<'_>) -> Chart {
    let share = |name: Name, stage: &str| {
        results.found.summary(
            Implementation::Rust,
            name.name(),
            &[("stage", stage.into())],
        )
    };
    let series = [
        (Name::StageBusy, "busy (share of its slots' time)"),
        (Name::StageBlocked, "blocked on a full channel downstream"),
        (Name::StageStarved, "starved by an empty channel upstream"),
    ]
    .into_iter()
    .map(|(name, label)| Bars {
        label: label.to_owned(),
        points: STAGES
            .iter()
            .enumerate()
            .filter_map(|(index, stage)| {
                let summary = share(name, stage)?;
                let percent = |share: f64| 100.0 * share;
                Some(Point {
                    x: index as f64,
                    y: percent(summary.median),
                    low: Some(percent(summary.p25)),
                    high: Some(percent(summary.p75)),
                })
            })
            .collect(),
    })
    .collect();
    Chart {
        title: "Rust pipeline: where each stage's time went".to_owned(),
        kind: ChartKind::Bar,
        x_label: "stage".to_owned(),
        y_label: "% of the run".to_owned(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        categories: STAGES.iter().map(|s| (*s).to_owned()).collect(),
        series,
    }
}

fn notes(results: &Results<'_>) -> Vec<String> {
    let mut notes = Vec::new();
    let cpu: Vec<String> = results
        .languages()
        .into_iter()
        .filter_map(|i| Some(format!("{} {}", i.label(), format_seconds(results.cpu(i)?))))
        .collect();
    if !cpu.is_empty() {
        notes.push(format!(
            "One item's CPU work, timed alone: {} (the target was {}).",
            cpu.join(", "),
            format_seconds(CPU_TARGET.as_secs_f64())
        ));
    }
    if let Some(start) = results.found.summary(
        Implementation::Rust,
        Name::PipelineStart.name(),
        &[("items", results.items.into())],
    ) {
        notes.push(format!(
            "Rust's pipeline took {} to start before each batch (its event loop, and its \
             process pool up to the first worker): not in its time, as the other variants' \
             pools start before theirs.",
            format_with_spread(start, format_seconds)
        ));
    }
    let machine = results.found.machine();
    if machine.load_average_1m >= 0.5 {
        notes.push(format!(
            "The machine was busy when the lab started (load {:.2} on {} cores). On shared \
             cores the variants with many runnable threads ({items} threads, {items} processes) \
             win a larger share of the CPU from other work than those with one worker per core \
             (the process pool with coroutines inside, the pipeline's CPU stage): their times \
             favour the former. Compare them on an idle machine.",
            machine.load_average_1m,
            machine.cores,
            items = results.items
        ));
    }
    if results.cores < 2 {
        notes.push(
            "This machine gives the lab one core: no variant can compute two items at once."
                .to_owned(),
        );
    }
    notes
}

/// `label t` for a median.
fn shown(implementation: Implementation, variant: Variant, seconds: f64) -> String {
    format!(
        "{} {}: {}",
        implementation.label(),
        variant.name(),
        format_seconds(seconds)
    )
}

fn verdicts(results: &Results<'_>) -> Vec<Verdict> {
    vec![
        combined_verdict(results),
        pipeline_verdict(results),
        blocking_io_verdict(results),
        cpu_on_loop_verdict(results),
    ]
}

/// §6.7: mixed work wants a process pool with coroutines inside.
fn combined_verdict(results: &Results<'_>) -> Verdict {
    let mut checks = Checks::default();
    let singles = [Variant::Loop, Variant::Threads, Variant::Processes];
    for implementation in results.languages() {
        let (Some(combined), Some((best, single))) = (
            results.time(implementation, Variant::ProcessesWithCoroutines),
            results.fastest(implementation, singles),
        ) else {
            continue;
        };
        let each: Vec<String> = singles
            .iter()
            .filter_map(|&v| {
                let t = results.time(implementation, v)?;
                Some(format!(
                    "{} {}",
                    v.name(),
                    times(t.median / combined.median)
                ))
            })
            .collect();
        let ratio = Ratio::of(combined, single);
        checks.find(
            format!(
                "{} ({} processes); single models, time ÷ that: {}; against the fastest single \
                 ({}): {}",
                shown(
                    implementation,
                    Variant::ProcessesWithCoroutines,
                    combined.median
                ),
                results.cores,
                each.join(", "),
                best.name(),
                ratio.shown()
            ),
            ratio.at_most(TIE),
        );
    }
    checks.verdict(
        "Mixed work wants the models combined: a process pool with coroutines inside is as fast \
         as the fastest single model, with one process per core.",
        "混合负载: 需要组合 — 进程池 + 协程",
    )
}

/// §9: a pipeline is the most efficient for mixed work.
fn pipeline_verdict(results: &Results<'_>) -> Verdict {
    let mut checks = Checks::default();
    let others = Variant::ALL
        .iter()
        .copied()
        .filter(|v| *v != Variant::Pipeline);
    for implementation in results.languages() {
        let (Some(pipeline), Some((best, other))) = (
            results.time(implementation, Variant::Pipeline),
            results.fastest(implementation, others.clone()),
        ) else {
            continue;
        };
        let bound = results.bound(implementation).map_or(String::new(), |b| {
            format!("; lower bound {}", format_seconds(b))
        });
        let ratio = Ratio::of(pipeline, other);
        checks.find(
            format!(
                "{}, fastest other {} {} ({} as long as that){bound}",
                shown(implementation, Variant::Pipeline, pipeline.median),
                best.name(),
                format_seconds(other.median),
                ratio.shown()
            ),
            ratio.at_most(TIE),
        );
    }
    checks.verdict(
        "A pipeline is the most efficient way to run mixed work.",
        "混合任务需组合，流水线式最高效",
    )
}

/// §8.4, pitfall 1: blocking IO inside a coroutine blocks the whole loop.
fn blocking_io_verdict(results: &Results<'_>) -> Verdict {
    let mut checks = Checks::default();
    for implementation in results.languages() {
        let (Some(blocked), Some(serial), Some(stall)) = (
            results.time(implementation, Variant::LoopBlockingIo),
            results.time(implementation, Variant::Serial),
            results.stall(implementation, Variant::LoopBlockingIo),
        ) else {
            continue;
        };
        let awaited = results
            .median(implementation, Variant::Loop)
            .map_or(String::new(), |t| {
                format!(
                    "; awaiting its IO instead, the loop took {}",
                    format_seconds(t)
                )
            });
        let of_serial = Ratio::of(blocked, serial);
        checks.find(
            format!(
                "{} ({} of serial); the loop stalled for up to {} at once (one item's IO: {}){awaited}",
                shown(implementation, Variant::LoopBlockingIo, blocked.median),
                of_serial.shown(),
                format_seconds(stall.median),
                format_seconds(waits())
            ),
            of_serial
                .at_least(NO_OVERLAP)
                .and(Ratio::measured(stall).at_least(NO_OVERLAP * waits())),
        );
    }
    checks.verdict(
        "Blocking IO inside a coroutine blocks the whole event loop.",
        "time.sleep(1)  # 阻塞整个事件循环！",
    )
}

/// Pitfall 1 with CPU work: computations on the loop run one after another and hold it.
fn cpu_on_loop_verdict(results: &Results<'_>) -> Verdict {
    let mut checks = Checks::default();
    for implementation in results.languages() {
        let (Some(on_loop), Some(stall), Some(cpu)) = (
            results.time(implementation, Variant::Loop),
            results.stall(implementation, Variant::Loop),
            results.cpu(implementation),
        ) else {
            continue;
        };
        let one_after_another = waits() + results.items as f64 * cpu;
        checks.find(
            format!(
                "{} against {} for the waits plus every item's CPU work one after another; \
                 longest stall {} (one item's CPU work: {})",
                shown(implementation, Variant::Loop, on_loop.median),
                format_seconds(one_after_another),
                format_seconds(stall.median),
                format_seconds(cpu)
            ),
            Ratio::measured(on_loop)
                .at_least(NO_OVERLAP * one_after_another)
                .and(Ratio::measured(stall).at_least(2.0 * cpu)),
        );
    }
    checks.verdict(
        "Coroutines suit IO, not CPU work: on one loop the computations run one after another, \
         and while one runs every other coroutine waits.",
        "协程: 用户态调度,极轻量级,适合I/O密集",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;
    use crate::results::{Measurement, Outcome};

    fn time(implementation: Implementation, variant: Variant, seconds: f64) -> Measurement {
        Measurement::new(variant.name(), implementation, "s", vec![seconds]).param("items", 4)
    }

    fn stall(implementation: Implementation, variant: Variant, seconds: f64) -> Measurement {
        Measurement::new(Name::Stall.name(), implementation, "s", vec![seconds])
            .param("items", 4)
            .param("variant", variant.name())
    }

    /// A batch of 4 on 2 cores, CPU 2 ms an item: Rust's threads as fast as anything, CPython's
    /// held by the GIL.
    fn measured() -> Vec<Measurement> {
        use Implementation::{Python, Rust};
        let mut all = Vec::new();
        for (implementation, threads) in [(Rust, 0.035), (Python, 0.040)] {
            all.extend([
                Measurement::new(Name::Cpu.name(), implementation, "s", vec![0.002]),
                time(implementation, Variant::Serial, 0.128),
                time(implementation, Variant::LoopBlockingIo, 0.127),
                stall(implementation, Variant::LoopBlockingIo, 0.125),
                time(implementation, Variant::Loop, 0.039),
                stall(implementation, Variant::Loop, 0.007),
                time(implementation, Variant::Threads, threads),
                time(implementation, Variant::Processes, 0.036),
                time(implementation, Variant::ProcessesWithCoroutines, 0.035),
                time(implementation, Variant::Pipeline, 0.036),
            ]);
        }
        all
    }

    fn outcomes(measurements: &[Measurement]) -> Vec<Outcome> {
        let machine = Machine::default();
        let found = Findings::new(measurements, crate::experiment::Scale::Toy, &machine);
        let results = Results {
            found,
            items: 4,
            cores: 2,
        };
        verdicts(&results).iter().map(|v| v.outcome).collect()
    }

    #[test]
    fn verdicts_follow_the_numbers() {
        let all = measured();
        assert_eq!(
            outcomes(&all),
            [
                Outcome::Confirmed, // the combination ties the fastest single model
                Outcome::Confirmed, // the pipeline ties the fastest
                Outcome::Confirmed, // the blocking loop took serial's time, stalled for it
                Outcome::Confirmed, // CPU on the loop: one after another, stalls of 3.5 items
            ]
        );
        // A loop that overlapped its blocking calls, a pipeline twice the fastest, a CPU loop
        // that did not stall: each claim refuted.
        let changed: Vec<Measurement> = all
            .into_iter()
            .map(|m| {
                let factor = match (m.name.as_str(), m.params.get("variant")) {
                    ("one loop, blocking IO", _) => 0.3,
                    ("pipeline", _) => 2.0,
                    ("process pool with coroutines inside", _) => 1.5,
                    ("longest loop stall", Some(v)) if v == "one loop" => 0.1,
                    _ => 1.0,
                };
                let samples = m.samples.iter().map(|s| s * factor).collect();
                m.with_samples(samples)
            })
            .collect();
        assert_eq!(outcomes(&changed), [Outcome::Refuted; 4]);
    }

    #[test]
    fn a_pipeline_as_fast_as_the_fastest_within_the_noise_is_within_noise() {
        let noisy = |m: Measurement| {
            let spread = match m.name.as_str() {
                "pipeline" => [0.030, 0.036, 0.050],
                "threads" => [0.028, 0.035, 0.040],
                _ => return m,
            };
            m.with_samples(spread.to_vec())
        };
        let all: Vec<Measurement> = measured().into_iter().map(noisy).collect();
        assert_eq!(outcomes(&all)[1], Outcome::WithinNoise);
    }

    #[test]
    fn the_bound_spreads_the_cpu_work_over_the_cores() {
        let all = measured();
        let machine = Machine::default();
        let found = Findings::new(&all, crate::experiment::Scale::Toy, &machine);
        let results = Results {
            found,
            items: 5,
            cores: 2,
        };
        let bound = results.bound(Implementation::Rust).unwrap();
        // 30 ms of waits and three rounds of 2 ms on two cores.
        assert!((bound - 0.036).abs() < 1e-9, "{bound}");
        let table = table(&Results {
            found,
            items: 4,
            cores: 2,
        });
        assert_eq!(table.rows.len(), Variant::ALL.len() + 1);
    }
}
