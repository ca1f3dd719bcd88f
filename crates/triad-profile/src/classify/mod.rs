//! Turn a [`Recording`] into figures, a verdict and advice.
//!
//! How: the samples' cumulative counters are differenced per interval (a zero baseline at
//! `t = 0`), giving cores busy over time, run-queue delay, IO and switch rates. The central
//! figure is the *CPU demand* of the threads at work: the share of their time they spent on a
//! CPU or waiting for one — one minus the wait share of the research note's
//! `W = wall × active − cpu − run_delay`. The threads at work are counted per interval, each by
//! its share of the work (see [`Sample::work_threads`](crate::Sample::work_threads)), so that
//! helper threads asleep by design (a pool's management and queue-feeder threads) do not pass
//! for the program waiting; the ones asleep nearly all their life are named as set aside. High
//! demand is CPU-bound, low is IO-bound, in between is mixed; the GIL signature (several
//! threads, about one core wanted, many voluntary switches) is checked first because it hides
//! CPU-bound work behind waits. The off-CPU time is attributed to disk, network/pipe or sleep
//! from D-state samples, what the sleeping threads were blocked in, and the IO counters. A run
//! whose character changes (a disk-bound warm-up, then compute) is reported by phases, the
//! longest kind giving the verdict. Advice follows the seed's decision tree (section 7) and the
//! worker-count formula `cores × (1 + W/C)`.
//!
//! # Layout
//!
//! - `facts`: intervals and the figures of the whole run or a span of it.
//! - `threads`: per-thread weights, the threads set aside, their states summed.
//! - `verdict`, `advice`: the decision, the evidence and the advice from a span's figures.
//! - `phases`: windows, segments and the phases of a run.

mod advice;
mod facts;
mod phases;
mod threads;
mod verdict;

use serde::{Deserialize, Serialize};

use crate::recording::Recording;
use facts::Facts;
use threads::ThreadFacts;

pub use phases::{
    MIN_PHASE_CORES_GAP, MIN_PHASE_DEMAND_GAP, MIN_PHASE_S, MIN_PHASE_SHARE, WINDOW_S,
};

// --- Thresholds -------------------------------------------------------------------------------
// The signatures measured on our 2-CPU machine (research note, profiling.md): CPU loop cpu/wall
// 1.00 with 1 voluntary switch; sleep loop 0.03 with 51; four GIL-bound Python threads 0.99 with
// 377 voluntary switches; write+fsync loop user 0.07 s, system 1.77 s in 3 s, 38k voluntary.

/// CPU demand at or above this is CPU-bound. The seed's `TaskProfiler` (section 8.1) calls
/// `avg_cpu > 70%` CPU-bound; the measured CPU loop (1.00) and GIL threads (0.99) sit far above.
pub const CPU_BOUND_MIN_DEMAND: f64 = 0.7;

/// Fewest samples of a command for a verdict: below it the run is "too short to classify"
/// (with the default 20 ms interval, a run under about 0.1 s).
pub const MIN_SAMPLES: usize = 5;

/// CPU demand at or below this is IO-bound: the mirror of [`CPU_BOUND_MIN_DEMAND`]; the sleep
/// loop (0.03) and the fsync loop's user time (0.07 s / 3 s ≈ 0.02) sit far below. Between the
/// two is mixed (the alternating compute/sleep program lands at 0.5).
pub const IO_BOUND_MAX_DEMAND: f64 = 0.3;

/// Average cores busy at or above this means the program already runs in parallel: clearly more
/// than the one core a serial (or GIL-bound) program can use, allowing for start-up and jitter.
pub const PARALLEL_MIN_CORES: f64 = 1.4;

/// The GIL signature's "total CPU stuck near one core": average cores busy within
/// `[GIL_MIN_CORES, GIL_MAX_CORES]` (the measured GIL run: 0.99).
pub const GIL_MIN_CORES: f64 = 0.7;

/// Upper bound of the "about one core" band; see [`GIL_MIN_CORES`].
pub const GIL_MAX_CORES: f64 = 1.3;

/// The GIL signature's "several threads": threads busy at once, averaged over the intervals in
/// which anything ran (the measured GIL run: 4; a single-threaded loop: 1).
pub const GIL_MIN_BUSY_THREADS: f64 = 1.5;

/// The GIL signature's "many voluntary switches", per second of wall time. The GIL run had 377
/// in about 3 s (≈ 125/s; CPython's 5 ms switch interval allows up to 200/s); a CPU loop has
/// 1 in total.
pub const GIL_MIN_VOLUNTARY_PER_S: f64 = 20.0;

/// Share of thread-samples in state D above which the waits are disk waits. A CPU or sleep loop
/// shows D almost never (a page fault now and then); the fsync loop spends much of its time there.
pub const DISK_MIN_D_SHARE: f64 = 0.05;

/// Bytes per second reaching storage (`read_bytes + write_bytes`, while waiting) above which the
/// waits are disk waits. The seed's `TaskProfiler` calls more than 1 MB of IO IO-bound.
pub const DISK_MIN_BYTES_PER_S: f64 = 1024.0 * 1024.0;

/// Share of thread time off a CPU (asleep or in D) below which system time is never the IO
/// path: threads that ran the whole time did not wait on the disk. The fsync loop and sqlite's
/// commits are off a CPU for most of theirs; `tar` walking a tree from the cache, almost never.
pub const IO_PATH_MIN_OFF_CPU_SHARE: f64 = 0.1;

/// `rchar + wchar` per second while waiting above which sleeping counts as waiting on a network
/// or pipe rather than a timer. Judgement: a sleep loop that prints a line per step moves bytes
/// per second, not kilobytes.
pub const NET_MIN_CHARS_PER_S: f64 = 64.0 * 1024.0;

/// Read/write system calls per second while waiting above which sleeping counts as waiting on a
/// network or pipe. The sleep loop's 51 voluntary switches in ≈ 3 s bound a printing loop's
/// writes to ≈ 17/s; a chatty socket or pipe makes hundreds.
pub const NET_MIN_SYSCALLS_PER_S: f64 = 100.0;

/// A thread is set aside as an idle helper when it was on a CPU at most this share of its life
/// (asleep, or at most queued, for nearly all of it) …
pub const IDLE_MAX_DEMAND: f64 = 0.05;

/// … and used at most this share of the busiest thread's CPU time. A pool's management thread
/// (ProcessPoolExecutor: < 1% of a worker's CPU) is set aside; one of eight IO threads sharing
/// the work equally is not, however little CPU each uses.
pub const IDLE_MAX_WEIGHT: f64 = 0.05;

/// An interval counts as "waiting" (for attributing IO to waits) when the active threads spent
/// less than this share of it on a CPU or in the run queue.
pub const WAITING_INTERVAL_MAX_DEMAND: f64 = 0.8;

/// Below this wall time, advice is to keep the program serial: starting a process pool (fork +
/// imports) costs tens of milliseconds, so a run this short cannot gain (seed, section 9:
/// "start simple — serial if you can").
pub const KEEP_SERIAL_MAX_WALL_S: f64 = 0.1;

/// Concurrency at or above which IO-bound work should use coroutines rather than threads (seed,
/// section 7 decision tree: fewer than 100 concurrent waits → threads; 100 or more → asyncio).
pub const COROUTINE_MIN_CONCURRENCY: usize = 100;

/// Cap on IO-bound threads per core (the brief's "≤ 32 · cores"; CPython's thread pool default is
/// `min(32, cpus + 4)`): beyond it, memory (8 MB stacks, seed 6.4) and switching cost dominate.
pub const IO_THREADS_PER_CORE_CAP: usize = 32;

/// Cap on disk-waiting threads per core: one storage device serves a queue of requests, and past
/// a few outstanding requests per core more threads only wait in that queue. Judgement.
pub const DISK_THREADS_PER_CORE_CAP: usize = 4;

/// Cap on recommended coroutine concurrency (seed 6.4 runs 10,000 concurrent sleeps in one loop).
pub const MAX_COROUTINES: usize = 10_000;

/// Cap on W/C so an almost CPU-free run yields a finite number (and valid JSON).
pub const MAX_WAIT_OVER_COMPUTE: f64 = 1000.0;

// --- Types ------------------------------------------------------------------------------------

/// Every figure derived from a recording. Rates are per second of wall time; shares are in 0..1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub system_s: f64,
    /// All CPU seconds: user + system (or the samples' total, if larger).
    pub cpu_s: f64,
    /// CPU seconds counted as compute: `cpu_s`, minus system time when that time is spent in the
    /// IO path (system > user with disk or heavy IO evidence — a disk loop's kernel work is IO).
    pub compute_s: f64,
    /// `cpu_s / wall_s`: cores' worth of CPU used on average.
    pub cpu_ratio: f64,
    /// Cores the program may use (affinity and cgroup quota).
    pub cores: usize,
    /// Average cores busy (`cpu_s / wall_s`).
    pub avg_cores_busy: f64,
    /// Cores wanted on average: CPU time plus time runnable but waiting for a CPU, over wall
    /// time — what the program would keep busy on an idle machine of enough cores.
    #[serde(default)]
    pub cores_demanded: f64,
    /// Most cores busy in any sample interval.
    pub peak_cores_busy: f64,
    /// Share of thread time on a CPU.
    pub share_running: f64,
    /// Share of thread time runnable but waiting for a CPU (from run-queue delay growth).
    pub share_runnable: f64,
    /// Share of thread time sleeping (state S).
    pub share_sleeping: f64,
    /// Share of thread time in disk wait (state D).
    pub share_disk_wait: f64,
    /// `rchar` per second: bytes read through read calls (page cache included).
    pub rchar_per_s: f64,
    /// `wchar` per second.
    pub wchar_per_s: f64,
    /// `read_bytes` per second: bytes read from storage.
    pub read_bytes_per_s: f64,
    /// `write_bytes` per second: bytes written to storage.
    pub write_bytes_per_s: f64,
    /// Read and write system calls per second.
    pub syscalls_per_s: f64,
    /// Peak resident memory, bytes (largest of `ru_maxrss` and the sampled tree total).
    pub peak_rss_bytes: u64,
    /// Most threads busy (their CPU time grew) in one interval.
    pub max_busy_threads: u32,
    /// Mean threads busy per interval.
    pub mean_busy_threads: f64,
    /// Most processes busy in one interval.
    pub max_busy_processes: u32,
    /// Mean processes busy per interval.
    pub mean_busy_processes: f64,
    /// Most threads alive at once.
    pub peak_threads: u32,
    /// Most processes alive at once.
    pub peak_processes: u32,
    /// Threads at work: each interval's participation ratio of the threads' work (see
    /// [`Sample::work_threads`](crate::Sample::work_threads)), averaged weighted by the work
    /// (at least 1).
    pub active_threads: f64,
    /// Seconds runnable but waiting for a CPU, all threads.
    pub run_delay_s: f64,
    /// Wait W: the threads at work's time neither computing nor queued for a CPU, seconds —
    /// over the intervals, `dt × threads at work − compute − run delay` (at least 0).
    pub wait_s: f64,
    /// W/C: wait over compute (capped at [`MAX_WAIT_OVER_COMPUTE`]).
    pub wait_over_compute: f64,
    /// CPU demand: `(compute + run_delay)` over the threads at work's time, in 0..1.
    pub cpu_demand: f64,
    /// Voluntary context switches per second (gave up the CPU to wait).
    pub voluntary_switches_per_s: f64,
    /// Involuntary context switches per second (preempted).
    pub involuntary_switches_per_s: f64,
    /// Cores busy in each sample interval, in order (for the sparkline).
    pub cores_busy: Vec<f64>,
}

/// What the off-CPU time of an IO-bound program was spent waiting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoWait {
    /// Storage: D-state samples, or bytes reaching storage.
    Disk,
    /// A socket or pipe: sleeping while bytes or read/write calls kept flowing.
    NetworkOrPipe,
    /// A timer: sleeping with nothing flowing.
    Sleep,
}

/// What bounds the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Verdict {
    /// Computing most of the time.
    CpuBound {
        /// It already keeps several cores busy.
        parallel: bool,
        /// Python threads taking turns on the GIL: several threads, about one core.
        gil_limited: bool,
    },
    /// Waiting most of the time.
    IoBound {
        /// On what.
        wait: IoWait,
    },
    /// Both, in comparable amounts.
    Mixed,
    /// Too few samples to tell: only the totals mean something.
    TooShort {
        /// Samples taken.
        samples: usize,
    },
}

/// The execution model to run the work with (the seed's terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// Leave it serial: too short or too light to gain, or nothing to spread over.
    KeepSerial,
    /// A process pool (每个进程独立GIL: each process has its own GIL).
    Processes,
    /// A thread pool.
    Threads,
    /// An event loop with coroutines.
    Coroutines,
    /// A pipeline: a process (or thread) pool for compute, coroutines or threads for the waits.
    HybridPipeline,
}

/// What to run the program with, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    /// The model.
    pub model: Model,
    /// How many workers (processes or threads; 1 for `KeepSerial` and a single event loop).
    pub workers: usize,
    /// For coroutines (and a pipeline's waiting stage): how many waits to keep in flight.
    pub concurrency: Option<usize>,
    /// Why, in the seed's terms, with the numbers.
    pub reasons: Vec<String>,
}

/// The analysis of one recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Every derived figure.
    pub figures: Figures,
    /// The verdict.
    pub verdict: Verdict,
    /// How sure, 0..1.
    pub confidence: f64,
    /// Three to five sentences with the numbers that decided the verdict.
    pub evidence: Vec<String>,
    /// What to run it with; `None` for [`Verdict::TooShort`].
    pub advice: Option<Advice>,
    /// The run's phases, in order, when its character changed (empty when it did not); the
    /// verdict is then the one of the kind that took most of the time.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// Threads set aside as idle helpers, by process (empty when none).
    #[serde(default)]
    pub set_aside: Vec<SetAside>,
}

/// A span of the run with a character of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Start, seconds since the command started.
    pub start_s: f64,
    /// End, seconds since the command started.
    pub end_s: f64,
    /// The verdict on this span alone.
    pub verdict: Verdict,
    /// How sure, 0..1.
    pub confidence: f64,
    /// Cores wanted on average in the span (on a CPU or queued for one).
    pub cores_demanded: f64,
}

/// Threads of one process set aside as idle helpers: asleep for nearly all of their life
/// ([`IDLE_MAX_DEMAND`]) while others did the work ([`IDLE_MAX_WEIGHT`]). They weigh almost
/// nothing in the figures, and their waits are not the program's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetAside {
    /// The process.
    pub pid: i32,
    /// Its name.
    pub process: String,
    /// How many of its threads.
    pub threads: u32,
    /// Their CPU seconds.
    pub cpu_s: f64,
    /// Their share of the tree's sampled CPU.
    pub cpu_share: f64,
    /// Share of the samples that found them asleep (state S).
    pub asleep_share: f64,
}

// --- Analysis ---------------------------------------------------------------------------------

pub(crate) fn div(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        a / b
    } else {
        0.0
    }
}

/// Analyse a recording: figures, verdict with confidence and evidence, and advice.
///
/// A sampled recording with fewer than [`MIN_SAMPLES`] samples is [`Verdict::TooShort`]: its
/// figures (the totals) are given, without evidence or advice.
pub fn analyse(recording: &Recording) -> Analysis {
    let samples = recording.samples.len();
    if samples < MIN_SAMPLES {
        let threads = ThreadFacts::new(recording);
        let all = facts::intervals(recording);
        let figures = Facts::whole(recording, &all, &threads).figures;
        return Analysis {
            evidence: vec![format!(
                "Only {samples} sample(s) of {} ms in {:.3} s: at least {MIN_SAMPLES} are \
                 needed to tell CPU from waiting. Run it longer, or sample more often \
                 (--interval).",
                recording.interval_ms, figures.wall_s
            )],
            figures,
            verdict: Verdict::TooShort { samples },
            confidence: 0.0,
            advice: None,
            phases: Vec::new(),
            set_aside: Vec::new(),
        };
    }
    analyse_any_length(recording)
}

/// [`analyse`] whatever the number of samples: for `measure`, whose one sample is an exact
/// reading of the thread's own counters, not a look at a running process.
pub(crate) fn analyse_any_length(recording: &Recording) -> Analysis {
    let threads = ThreadFacts::new(recording);
    let all = facts::intervals(recording);
    let whole = Facts::whole(recording, &all, &threads);
    let found = phases::find(recording, &all, &whole);
    let (verdict, confidence, evidence, advice) = if found.is_empty() {
        let (verdict, confidence, evidence) = whole.verdict();
        let advice = whole.advice(verdict);
        (verdict, confidence, evidence, advice)
    } else {
        // The kind that took most of the time speaks for the run; the phases line says the rest.
        let top = phases::dominant(&found);
        let span = Facts::span(recording, &all, top.range.clone(), &whole);
        let (verdict, confidence, span_evidence) = span.verdict();
        let mut evidence = vec![format!("Phases: {}.", describe(&phases_of(&found)))];
        evidence.extend(span_evidence.into_iter().take(4));
        let share = phases::share_of_kind(&found, top);
        let mut advice = span.advice(verdict);
        advice.reasons.insert(
            0,
            format!(
                "For the {:.0}% of the run that is {} (the rest: see the phases).",
                share * 100.0,
                phase_words(verdict, top.cores)
            ),
        );
        (verdict, confidence * (0.5 + 0.5 * share), evidence, advice)
    };
    Analysis {
        figures: whole.figures,
        verdict,
        confidence,
        evidence,
        advice: Some(advice),
        phases: phases_of(&found),
        set_aside: threads.set_aside,
    }
}

fn phases_of(found: &[phases::Judged]) -> Vec<Phase> {
    let mut at = 0.0;
    found
        .iter()
        .map(|p| {
            let start_s = at;
            at += p.seconds;
            Phase {
                start_s,
                end_s: at,
                verdict: p.verdict,
                confidence: p.confidence,
                cores_demanded: p.cores,
            }
        })
        .collect()
}

/// A phase's verdict in a few words: `CPU-bound on 1.9 cores`, `disk-bound`, ….
pub fn phase_words(verdict: Verdict, cores: f64) -> String {
    match verdict {
        Verdict::CpuBound {
            gil_limited: true, ..
        } => "CPU-bound, GIL-limited".into(),
        Verdict::CpuBound { .. } => format!("CPU-bound on {cores:.1} core(s)"),
        Verdict::IoBound { wait: IoWait::Disk } => "disk-bound".into(),
        Verdict::IoBound {
            wait: IoWait::NetworkOrPipe,
        } => "waiting on a network or pipe".into(),
        Verdict::IoBound {
            wait: IoWait::Sleep,
        } => "waiting on a timer".into(),
        Verdict::Mixed => "mixed".into(),
        Verdict::TooShort { .. } => "too short to tell".into(),
    }
}

/// The phases in one sentence: `first 0.80 s disk-bound, then 4.10 s CPU-bound on 1.9 cores`.
pub fn describe(phases: &[Phase]) -> String {
    phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{} {:.2} s {}",
                if i == 0 { "first" } else { "then" },
                p.end_s - p.start_s,
                phase_words(p.verdict, p.cores_demanded)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bytes in a short human form: `512 B`, `1.5 KB`, `3.2 MB`, `1.1 GB` (powers of 1024).
pub(crate) fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = bytes.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests;
