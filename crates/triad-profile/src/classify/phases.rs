//! Phases: a program whose character changes during the run (a disk-bound warm-up, then
//! compute) is reported phase by phase, not averaged into a third answer.
//!
//! How: the run is cut into windows of about [`WINDOW_S`]; each window gets a verdict from its
//! own figures. Runs of windows with the same kind of verdict form segments; a segment shorter
//! than [`MIN_PHASE_S`] (or [`MIN_PHASE_SHARE`] of the run) is absorbed into its longer
//! neighbour, and neighbours that are not clearly different (CPU demand within
//! [`MIN_PHASE_DEMAND_GAP`] and cores wanted within [`MIN_PHASE_CORES_GAP`]) are joined. Each
//! segment left is judged again over its whole span; two or more are the phases.

use std::ops::Range;

use super::facts::{Facts, Interval};
use super::{IoWait, Verdict, div};
use crate::recording::Recording;

/// Length of the windows a run is judged in: long enough to hold several switches between
/// compute and waits of a fine-grained mixed program (the 50 ms on / 50 ms off loop reads as
/// mixed in every window), short enough to place a phase change within a quarter second.
pub const WINDOW_S: f64 = 0.25;

/// Fewest intervals in a window (at a coarse `--interval`).
const MIN_WINDOW_INTERVALS: usize = 5;

/// Shortest phase, seconds: shorter spells (a start-up, a flush at the end) are noise beside
/// the run's character.
pub const MIN_PHASE_S: f64 = 0.5;

/// Shortest phase as a share of the run: in a long run only a spell that weighs in its total
/// time is worth a phase.
pub const MIN_PHASE_SHARE: f64 = 0.1;

/// Two neighbouring spans stay apart only when their CPU demand differs by this much (the
/// width of the mixed band between IO- and CPU-bound: [`super::CPU_BOUND_MIN_DEMAND`] −
/// [`super::IO_BOUND_MAX_DEMAND`]) …
pub const MIN_PHASE_DEMAND_GAP: f64 = 0.4;

/// … or the cores they want by this much (one program's GIL plateau against its waits).
pub const MIN_PHASE_CORES_GAP: f64 = 0.5;

/// The kind of a verdict, for telling phases apart: CPU-bound is one kind however many cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cpu,
    Disk,
    OtherWait,
    Mixed,
}

fn kind(verdict: Verdict) -> Kind {
    match verdict {
        Verdict::CpuBound { .. } => Kind::Cpu,
        Verdict::IoBound { wait: IoWait::Disk } => Kind::Disk,
        Verdict::IoBound { .. } => Kind::OtherWait,
        Verdict::Mixed | Verdict::TooShort { .. } => Kind::Mixed,
    }
}

/// A span of the run judged on its own.
#[derive(Debug, Clone)]
pub(super) struct Judged {
    pub(super) range: Range<usize>,
    pub(super) verdict: Verdict,
    pub(super) confidence: f64,
    pub(super) seconds: f64,
    demand: f64,
    pub(super) cores: f64,
}

fn judge(rec: &Recording, all: &[Interval], range: Range<usize>, whole: &Facts<'_>) -> Judged {
    let facts = Facts::span(rec, all, range.clone(), whole);
    let (verdict, confidence, _) = facts.verdict();
    Judged {
        range,
        verdict,
        confidence,
        seconds: facts.figures.wall_s,
        demand: facts.figures.cpu_demand,
        cores: facts.figures.cores_demanded,
    }
}

/// The phases of the run, in order; empty when it has one character throughout.
pub(super) fn find(rec: &Recording, all: &[Interval], whole: &Facts<'_>) -> Vec<Judged> {
    let wall: f64 = all.iter().map(|i| i.dt_s).sum();
    let min_phase = MIN_PHASE_S.max(MIN_PHASE_SHARE * wall);
    if all.is_empty() || wall < 2.0 * min_phase {
        return Vec::new();
    }
    let interval_s = div(wall, all.len() as f64);
    let per_window = ((WINDOW_S / interval_s).round() as usize).max(MIN_WINDOW_INTERVALS);

    // Windows, then runs of windows of one kind.
    let mut spans: Vec<(Range<usize>, Kind, f64)> = Vec::new();
    for start in (0..all.len()).step_by(per_window) {
        let range = start..(start + per_window).min(all.len());
        let seconds: f64 = all[range.clone()].iter().map(|i| i.dt_s).sum();
        let k = kind(judge(rec, all, range.clone(), whole).verdict);
        match spans.last_mut() {
            Some((last, last_kind, last_s)) if *last_kind == k => {
                last.end = range.end;
                *last_s += seconds;
            }
            _ => spans.push((range, k, seconds)),
        }
    }

    // Absorb short spans into their longer neighbour, shortest first.
    while spans.len() > 1 {
        let (shortest, &(_, _, seconds)) = spans
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.2.total_cmp(&b.1.2))
            .expect("not empty");
        if seconds >= min_phase {
            break;
        }
        let into = match (shortest.checked_sub(1), spans.get(shortest + 1)) {
            (Some(before), Some(after)) if after.2 > spans[before].2 => shortest + 1,
            (Some(before), _) => before,
            (None, _) => shortest + 1,
        };
        let (range, _, seconds) = spans.remove(shortest);
        let into = if into > shortest { into - 1 } else { into };
        let target = &mut spans[into];
        target.0 = target.0.start.min(range.start)..target.0.end.max(range.end);
        target.2 += seconds;
        coalesce_kinds(&mut spans);
    }

    // Judge each span whole; join neighbours of one kind or not clearly different.
    let mut judged: Vec<Judged> = spans
        .into_iter()
        .map(|(range, _, _)| judge(rec, all, range, whole))
        .collect();
    let mut i = 0;
    while i + 1 < judged.len() {
        let (a, b) = (&judged[i], &judged[i + 1]);
        let distinct = kind(a.verdict) != kind(b.verdict)
            && ((a.demand - b.demand).abs() >= MIN_PHASE_DEMAND_GAP
                || (a.cores - b.cores).abs() >= MIN_PHASE_CORES_GAP);
        if distinct {
            i += 1;
        } else {
            let range = a.range.start..b.range.end;
            judged[i] = judge(rec, all, range, whole);
            judged.remove(i + 1);
            i = i.saturating_sub(1);
        }
    }
    if judged.len() < 2 {
        return Vec::new();
    }
    judged
}

/// Joins neighbouring spans of one kind.
fn coalesce_kinds(spans: &mut Vec<(Range<usize>, Kind, f64)>) {
    let mut i = 0;
    while i + 1 < spans.len() {
        if spans[i].1 == spans[i + 1].1 {
            let (range, _, seconds) = spans.remove(i + 1);
            spans[i].0.end = range.end;
            spans[i].2 += seconds;
        } else {
            i += 1;
        }
    }
}

/// The phase whose kind takes most of the run's time (the longest phase of that kind): its
/// verdict stands for the run.
pub(super) fn dominant(phases: &[Judged]) -> &Judged {
    let total = |k: Kind| -> f64 {
        phases
            .iter()
            .filter(|p| kind(p.verdict) == k)
            .map(|p| p.seconds)
            .sum()
    };
    let top = phases
        .iter()
        .map(|p| kind(p.verdict))
        .max_by(|&a, &b| total(a).total_cmp(&total(b)))
        .expect("phases are not empty");
    phases
        .iter()
        .filter(|p| kind(p.verdict) == top)
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .expect("the top kind has a phase")
}

/// Seconds of the run spent in phases of the same kind as `phase`.
pub(super) fn share_of_kind(phases: &[Judged], phase: &Judged) -> f64 {
    let all: f64 = phases.iter().map(|p| p.seconds).sum();
    let same: f64 = phases
        .iter()
        .filter(|p| kind(p.verdict) == kind(phase.verdict))
        .map(|p| p.seconds)
        .sum();
    div(same, all)
}
