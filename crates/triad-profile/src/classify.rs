//! Turn a [`Recording`] into figures, a verdict and advice.
//!
//! How: the samples' cumulative counters are differenced per interval (a zero baseline at
//! `t = 0`), giving cores busy over time, run-queue delay, IO and switch rates. The central
//! figure is the *CPU demand*: the share of the active threads' time they spent on a CPU or
//! waiting for one, `(compute + run_delay) / (wall × active_threads)` — one minus the wait share
//! of the research note's `W = wall × active − cpu − run_delay`. High demand is CPU-bound, low is
//! IO-bound, in between is mixed; the GIL signature (several threads, about one core, many
//! voluntary switches) is checked first because it hides CPU-bound work behind waits. The off-CPU
//! time is then attributed to disk, network/pipe or sleep from D-state samples and the IO
//! counters. Advice follows the seed's decision tree (section 7) and the worker-count formula
//! `cores × (1 + W/C)`.

use serde::{Deserialize, Serialize};

use crate::recording::{Lang, Recording};

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

/// `rchar + wchar` per second while waiting above which sleeping counts as waiting on a network
/// or pipe rather than a timer. Judgement: a sleep loop that prints a line per step moves bytes
/// per second, not kilobytes.
pub const NET_MIN_CHARS_PER_S: f64 = 64.0 * 1024.0;

/// Read/write system calls per second while waiting above which sleeping counts as waiting on a
/// network or pipe. The sleep loop's 51 voluntary switches in ≈ 3 s bound a printing loop's
/// writes to ≈ 17/s; a chatty socket or pipe makes hundreds.
pub const NET_MIN_SYSCALLS_PER_S: f64 = 100.0;

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
    /// Active threads: mean threads busy over the intervals in which anything ran (at least 1).
    pub active_threads: f64,
    /// Seconds runnable but waiting for a CPU, all threads.
    pub run_delay_s: f64,
    /// Wait W = wall × active threads − compute − run delay, seconds (at least 0).
    pub wait_s: f64,
    /// W/C: wait over compute (capped at [`MAX_WAIT_OVER_COMPUTE`]).
    pub wait_over_compute: f64,
    /// CPU demand: `(compute + run_delay) / (wall × active_threads)`, in 0..1.
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
}

// --- Analysis ---------------------------------------------------------------------------------

/// Per-interval differences of the cumulative counters.
#[derive(Debug, Clone, Copy, Default)]
struct Interval {
    dt_s: f64,
    cpu_s: f64,
    delay_s: f64,
    chars: f64,
    storage: f64,
    syscalls: f64,
    busy_threads: u32,
    threads: u32,
}

fn div(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        a / b
    } else {
        0.0
    }
}

fn delta(now: u64, before: u64) -> f64 {
    now.saturating_sub(before) as f64
}

/// Analyse a recording: figures, verdict with confidence and evidence, and advice.
///
/// A sampled recording with fewer than [`MIN_SAMPLES`] samples is [`Verdict::TooShort`]: its
/// figures (the totals) are given, without evidence or advice.
pub fn analyse(recording: &Recording) -> Analysis {
    let samples = recording.samples.len();
    if samples < MIN_SAMPLES {
        let figures = Facts::new(recording).figures;
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
        };
    }
    analyse_any_length(recording)
}

/// [`analyse`] whatever the number of samples: for `measure`, whose one sample is an exact
/// reading of the thread's own counters, not a look at a running process.
pub(crate) fn analyse_any_length(recording: &Recording) -> Analysis {
    let facts = Facts::new(recording);
    let (verdict, confidence, evidence) = facts.verdict();
    let advice = facts.advice(verdict);
    Analysis {
        figures: facts.figures,
        verdict,
        confidence,
        evidence,
        advice: Some(advice),
    }
}

/// Figures plus the intermediate evidence the verdict needs.
struct Facts {
    figures: Figures,
    lang: Lang,
    /// Share of thread-samples in state D.
    d_share: f64,
    /// Storage bytes per second over the waiting intervals.
    waiting_storage_per_s: f64,
    /// `rchar + wchar` per second over the waiting intervals.
    waiting_chars_per_s: f64,
    /// Read/write calls per second over the waiting intervals.
    waiting_syscalls_per_s: f64,
    /// Intervals sampled.
    intervals: usize,
}

impl Facts {
    fn new(rec: &Recording) -> Self {
        let t = &rec.totals;
        let last = rec.samples.last().cloned().unwrap_or_default();
        let wall_s = if t.wall_s > 0.0 {
            t.wall_s
        } else {
            last.t_ms / 1000.0
        };
        let cores = rec.cores.max(1);

        // Per-interval differences against a zero baseline at t = 0.
        let mut intervals = Vec::with_capacity(rec.samples.len());
        let mut prev = crate::recording::Sample::default();
        for s in &rec.samples {
            // Kept even when empty, so the series stays aligned with the samples.
            let dt_s = ((s.t_ms - prev.t_ms) / 1000.0).max(0.0);
            {
                intervals.push(Interval {
                    dt_s,
                    cpu_s: delta(s.cpu_ns, prev.cpu_ns) / 1e9,
                    delay_s: delta(s.run_delay_ns, prev.run_delay_ns) / 1e9,
                    chars: delta(s.rchar, prev.rchar) + delta(s.wchar, prev.wchar),
                    storage: delta(s.read_bytes, prev.read_bytes)
                        + delta(s.write_bytes, prev.write_bytes),
                    syscalls: delta(s.syscalls, prev.syscalls),
                    busy_threads: s.busy_threads,
                    threads: s.threads.max(s.busy_threads),
                });
            }
            prev = s.clone();
        }

        let sampled_cpu_s = last.cpu_ns as f64 / 1e9;
        let cpu_s = (t.user_s + t.system_s).max(sampled_cpu_s);
        // Split the CPU into user and system as wait4 saw it; if only the samples saw CPU, all
        // of it is reported as user time.
        let (user_s, system_s) = if t.user_s + t.system_s > 0.0 {
            let scale = cpu_s / (t.user_s + t.system_s);
            (t.user_s * scale, t.system_s * scale)
        } else {
            (cpu_s, 0.0)
        };
        let run_delay_s = last.run_delay_ns as f64 / 1e9;

        let cores_busy: Vec<f64> = intervals
            .iter()
            .map(|i| div(i.cpu_s, i.dt_s).min(cores as f64))
            .collect();
        let avg_cores_busy = div(cpu_s, wall_s);
        let peak_cores_busy = cores_busy.iter().copied().fold(avg_cores_busy, f64::max);

        // Thread-time shares: running from CPU time, runnable from run-queue delay, the rest
        // split between S and D in proportion to the state samples.
        let (sum_s, sum_d, sum_threads) = rec.samples.iter().fold((0u64, 0u64, 0u64), |a, s| {
            (
                a.0 + u64::from(s.sleeping),
                a.1 + u64::from(s.disk_wait),
                a.2 + u64::from(s.threads.max(s.running + s.sleeping + s.disk_wait)),
            )
        });
        let thread_time: f64 = intervals
            .iter()
            .map(|i| f64::from(i.threads) * i.dt_s)
            .sum();
        let thread_time = if thread_time > 0.0 {
            thread_time
        } else {
            wall_s
        };
        let running_cpu_s = if intervals.is_empty() {
            cpu_s
        } else {
            sampled_cpu_s
        };
        let mut share_running = div(running_cpu_s, thread_time);
        let mut share_runnable = div(run_delay_s, thread_time);
        let on = share_running + share_runnable;
        if on > 1.0 {
            share_running /= on;
            share_runnable /= on;
        }
        let off = (1.0 - share_running - share_runnable).max(0.0);
        let d_of_off = div(sum_d as f64, (sum_s + sum_d) as f64);
        let share_disk_wait = off * d_of_off;
        let share_sleeping = off - share_disk_wait;
        let d_share = div(sum_d as f64, sum_threads as f64);

        // Parallelism achieved.
        let n = intervals.len() as f64;
        let max_busy_threads = rec
            .samples
            .iter()
            .map(|s| s.busy_threads)
            .max()
            .unwrap_or(0);
        let max_busy_processes = rec
            .samples
            .iter()
            .map(|s| s.busy_processes)
            .max()
            .unwrap_or(0);
        let mean_busy_threads = div(
            rec.samples.iter().map(|s| f64::from(s.busy_threads)).sum(),
            n,
        );
        let mean_busy_processes = div(
            rec.samples
                .iter()
                .map(|s| f64::from(s.busy_processes))
                .sum(),
            n,
        );
        let busy: Vec<&Interval> = intervals.iter().filter(|i| i.busy_threads > 0).collect();
        let active_threads = div(
            busy.iter().map(|i| f64::from(i.busy_threads)).sum(),
            busy.len() as f64,
        )
        .max(1.0);

        // IO rates over the whole run.
        let storage_total = (last.read_bytes + last.write_bytes)
            .max((t.in_blocks + t.out_blocks).saturating_mul(512))
            as f64;
        let rchar_per_s = div(last.rchar as f64, wall_s);
        let wchar_per_s = div(last.wchar as f64, wall_s);
        let read_bytes_per_s = div(
            (last.read_bytes).max(t.in_blocks.saturating_mul(512)) as f64,
            wall_s,
        );
        let write_bytes_per_s = div(
            (last.write_bytes).max(t.out_blocks.saturating_mul(512)) as f64,
            wall_s,
        );
        let syscalls_per_s = div(last.syscalls as f64, wall_s);

        // IO rates over the intervals in which the active threads mostly waited, as the median of
        // those intervals' rates — so that a start-up burst (imports reading files, a launcher
        // script such as pyenv's shim) does not pass for the waits' cause: a program that waits
        // on a network or a pipe moves bytes in most of its waiting intervals, not a few.
        let waiting: Vec<&Interval> = intervals
            .iter()
            .filter(|i| {
                i.dt_s > 0.0
                    && div(
                        i.cpu_s + i.delay_s,
                        i.dt_s * f64::from(i.busy_threads.max(1)),
                    ) < WAITING_INTERVAL_MAX_DEMAND
            })
            .collect();
        let (waiting_storage_per_s, waiting_chars_per_s, waiting_syscalls_per_s) = if waiting
            .is_empty()
        {
            (
                div(storage_total, wall_s),
                rchar_per_s + wchar_per_s,
                syscalls_per_s,
            )
        } else {
            let median_rate = |amount: fn(&Interval) -> f64| {
                let mut rates: Vec<f64> = waiting.iter().map(|i| div(amount(i), i.dt_s)).collect();
                rates.sort_by(f64::total_cmp);
                rates[rates.len() / 2]
            };
            (
                median_rate(|i| i.storage),
                median_rate(|i| i.chars),
                median_rate(|i| i.syscalls),
            )
        };

        // System time in the IO path is IO work, not compute (research note: a disk loop shows
        // high system time).
        let disk_evidence =
            d_share >= DISK_MIN_D_SHARE || waiting_storage_per_s >= DISK_MIN_BYTES_PER_S;
        let heavy_io = disk_evidence
            || syscalls_per_s >= NET_MIN_SYSCALLS_PER_S
            || rchar_per_s + wchar_per_s >= NET_MIN_CHARS_PER_S;
        let compute_s = if heavy_io && system_s > user_s {
            user_s
        } else {
            cpu_s
        };

        let wait_s = (wall_s * active_threads - compute_s - run_delay_s).max(0.0);
        let wait_over_compute = if compute_s > 0.0 {
            (wait_s / compute_s).min(MAX_WAIT_OVER_COMPUTE)
        } else if wait_s > 0.0 {
            MAX_WAIT_OVER_COMPUTE
        } else {
            0.0
        };
        let cpu_demand = div(compute_s + run_delay_s, wall_s * active_threads).clamp(0.0, 1.0);

        let voluntary = t.voluntary_switches.max(last.voluntary_switches);
        let involuntary = t.involuntary_switches.max(last.involuntary_switches);

        let figures = Figures {
            wall_s,
            user_s,
            system_s,
            cpu_s,
            compute_s,
            cpu_ratio: div(cpu_s, wall_s),
            cores,
            avg_cores_busy,
            peak_cores_busy,
            share_running,
            share_runnable,
            share_sleeping,
            share_disk_wait,
            rchar_per_s,
            wchar_per_s,
            read_bytes_per_s,
            write_bytes_per_s,
            syscalls_per_s,
            peak_rss_bytes: t
                .max_rss_bytes
                .max(rec.samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0)),
            max_busy_threads,
            mean_busy_threads,
            max_busy_processes,
            mean_busy_processes,
            peak_threads: t
                .peak_threads
                .max(rec.samples.iter().map(|s| s.threads).max().unwrap_or(0)),
            peak_processes: t
                .peak_processes
                .max(rec.samples.iter().map(|s| s.processes).max().unwrap_or(0)),
            active_threads,
            run_delay_s,
            wait_s,
            wait_over_compute,
            cpu_demand,
            voluntary_switches_per_s: div(voluntary as f64, wall_s),
            involuntary_switches_per_s: div(involuntary as f64, wall_s),
            cores_busy,
        };
        Facts {
            figures,
            lang: rec.lang,
            d_share,
            waiting_storage_per_s,
            waiting_chars_per_s,
            waiting_syscalls_per_s,
            intervals: intervals.len(),
        }
    }

    /// The "several threads taking turns on one core" signature (the GIL, for Python).
    fn serialised(&self) -> bool {
        let f = &self.figures;
        f.cores >= 2
            && f.active_threads >= GIL_MIN_BUSY_THREADS
            && (GIL_MIN_CORES..=GIL_MAX_CORES).contains(&f.avg_cores_busy)
            && f.voluntary_switches_per_s >= GIL_MIN_VOLUNTARY_PER_S
            // GIL waiters sleep on a futex; threads starved by a busy machine are runnable. A
            // one-core plateau is the GIL's when the threads spend more time asleep than queued
            // for a CPU — which still holds when another program loads the machine.
            && f.wait_s > f.run_delay_s
            && f.compute_s >= f.cpu_s * 0.5
    }

    fn io_wait(&self) -> IoWait {
        if self.d_share >= DISK_MIN_D_SHARE || self.waiting_storage_per_s >= DISK_MIN_BYTES_PER_S {
            IoWait::Disk
        } else if self.waiting_chars_per_s >= NET_MIN_CHARS_PER_S
            || self.waiting_syscalls_per_s >= NET_MIN_SYSCALLS_PER_S
        {
            IoWait::NetworkOrPipe
        } else {
            IoWait::Sleep
        }
    }

    fn verdict(&self) -> (Verdict, f64, Vec<String>) {
        let f = &self.figures;
        let mut ev = Vec::new();
        let demand_line = format!(
            "CPU demand {:.0}%: {:.2} s computing + {:.2} s runnable over {:.2} s wall × {:.1} active thread(s).",
            f.cpu_demand * 100.0,
            f.compute_s,
            f.run_delay_s,
            f.wall_s,
            f.active_threads
        );
        let (verdict, mut confidence) = if self.serialised() {
            ev.push(format!(
                "{:.1} threads busy at once on average (at most {}), yet only {:.2} cores busy (peak {:.2}) of {}.",
                f.active_threads, f.max_busy_threads, f.avg_cores_busy, f.peak_cores_busy, f.cores
            ));
            ev.push(format!(
                "{:.0} voluntary switches/s: the threads hand the CPU to each other{}.",
                f.voluntary_switches_per_s,
                if self.lang == Lang::Python {
                    " (the GIL)"
                } else {
                    " (a lock?)"
                }
            ));
            ev.push(format!(
                "CPU {:.2} s in {:.2} s wall: about one core, the most a GIL-bound program can use.",
                f.cpu_s, f.wall_s
            ));
            let closeness = 1.0 - (f.avg_cores_busy - 1.0).abs() / (GIL_MAX_CORES - 1.0);
            (
                Verdict::CpuBound {
                    parallel: false,
                    gil_limited: self.lang == Lang::Python,
                },
                0.6 + 0.35 * closeness.clamp(0.0, 1.0),
            )
        } else if f.cpu_demand >= CPU_BOUND_MIN_DEMAND {
            let parallel = f.avg_cores_busy >= PARALLEL_MIN_CORES;
            ev.push(demand_line.clone());
            ev.push(format!(
                "{:.2} cores busy on average (peak {:.2}) of {}; {} process(es) and {} thread(s) busy at most.",
                f.avg_cores_busy, f.peak_cores_busy, f.cores, f.max_busy_processes, f.max_busy_threads
            ));
            ev.push(format!(
                "User {:.2} s, system {:.2} s; {:.0} voluntary switches/s — it rarely stops to wait.",
                f.user_s, f.system_s, f.voluntary_switches_per_s
            ));
            if f.share_runnable > 0.1 {
                ev.push(format!(
                    "{:.0}% of thread time runnable but waiting for a CPU: more workers than cores.",
                    f.share_runnable * 100.0
                ));
            }
            let margin = (f.cpu_demand - CPU_BOUND_MIN_DEMAND) / (1.0 - CPU_BOUND_MIN_DEMAND);
            (
                Verdict::CpuBound {
                    parallel,
                    gil_limited: false,
                },
                0.6 + 0.35 * margin,
            )
        } else if f.cpu_demand <= IO_BOUND_MAX_DEMAND {
            let wait = self.io_wait();
            ev.push(demand_line.clone());
            ev.push(format!(
                "Wait/compute W/C = {:.1}; {:.0}% of thread time sleeping, {:.0}% in disk wait.",
                f.wait_over_compute,
                f.share_sleeping * 100.0,
                f.share_disk_wait * 100.0
            ));
            let (line, sure): (String, f64) = match wait {
                IoWait::Disk => (
                    format!(
                        "Disk: {:.0}% of thread samples in D state; {}/s reached storage while waiting{}.",
                        self.d_share * 100.0,
                        human_bytes(self.waiting_storage_per_s),
                        if f.system_s > f.user_s {
                            format!(
                                "; system time {:.2} s ≫ user {:.2} s is the IO path",
                                f.system_s, f.user_s
                            )
                        } else {
                            String::new()
                        }
                    ),
                    0.9,
                ),
                IoWait::NetworkOrPipe => (
                    format!(
                        "Network or pipe: while waiting, {}/s moved through read/write and {:.0} calls/s, but almost nothing reached storage.",
                        human_bytes(self.waiting_chars_per_s),
                        self.waiting_syscalls_per_s
                    ),
                    0.75,
                ),
                IoWait::Sleep => (
                    format!(
                        "Timer: while waiting, only {}/s and {:.0} read/write calls/s, no disk wait — it sleeps.",
                        human_bytes(self.waiting_chars_per_s),
                        self.waiting_syscalls_per_s
                    ),
                    0.8,
                ),
            };
            ev.push(line);
            ev.push(format!(
                "{:.0} voluntary switches/s: it gives up the CPU to wait.",
                f.voluntary_switches_per_s
            ));
            let margin = (IO_BOUND_MAX_DEMAND - f.cpu_demand) / IO_BOUND_MAX_DEMAND;
            (
                Verdict::IoBound { wait },
                (0.6 + 0.35 * margin) * sure / 0.9,
            )
        } else {
            ev.push(demand_line.clone());
            ev.push(format!(
                "Wait/compute W/C = {:.2}: it waits about as long as it computes.",
                f.wait_over_compute
            ));
            ev.push(format!(
                "{:.0}% of thread time running, {:.0}% sleeping, {:.0}% in disk wait.",
                f.share_running * 100.0,
                f.share_sleeping * 100.0,
                f.share_disk_wait * 100.0
            ));
            let swing = swing(&f.cores_busy);
            if swing > 0.0 {
                ev.push(format!(
                    "Cores busy swings between phases (spread {:.2} cores between quiet and busy intervals).",
                    swing
                ));
            }
            let centre = 1.0
                - (f.cpu_demand - 0.5).abs() / ((CPU_BOUND_MIN_DEMAND - IO_BOUND_MAX_DEMAND) / 2.0);
            (Verdict::Mixed, 0.5 + 0.3 * centre.clamp(0.0, 1.0))
        };
        if ev.len() < 3 {
            ev.push(demand_line);
        }
        // Few samples, or a very short run, make every figure noisier.
        if self.intervals < 5 && f.wall_s < 1.0 {
            confidence *= 0.85;
        }
        ev.truncate(5);
        (verdict, confidence.clamp(0.0, 1.0), ev)
    }

    fn advice(&self, verdict: Verdict) -> Advice {
        let f = &self.figures;
        let cores = f.cores;
        let python = self.lang == Lang::Python;
        let by_formula = |cap_per_core: usize| -> usize {
            let n = (cores as f64 * (1.0 + f.wait_over_compute)).ceil();
            (n as usize).clamp(1, cap_per_core.saturating_mul(cores).max(1))
        };
        let formula_line = format!(
            "Workers = cores × (1 + W/C) = {} × (1 + {:.2}) ≈ {:.0} (Goetz).",
            cores,
            f.wait_over_compute,
            cores as f64 * (1.0 + f.wait_over_compute)
        );
        if f.wall_s < KEEP_SERIAL_MAX_WALL_S {
            return Advice {
                model: Model::KeepSerial,
                workers: 1,
                concurrency: None,
                reasons: vec![format!(
                    "It ran {:.3} s: starting a pool costs tens of milliseconds, more than it could save — start simple (seed §9).",
                    f.wall_s
                )],
            };
        }
        match verdict {
            Verdict::TooShort { .. } => unreachable!("only `analyse` judges a run too short"),
            Verdict::CpuBound { parallel, gil_limited } => {
                if cores <= 1 {
                    return Advice {
                        model: Model::KeepSerial,
                        workers: 1,
                        concurrency: None,
                        reasons: vec![
                            "CPU-bound on a single usable core: there is nothing to run in parallel on; optimise the algorithm (seed §7: 串行执行或优化算法).".into(),
                        ],
                    };
                }
                let mut reasons = Vec::new();
                let model = if python {
                    if gil_limited {
                        reasons.push(format!(
                            "Python threads take turns on the GIL: {:.1} busy threads share {:.2} cores; processes each have their own GIL (seed §5.2, §6.2).",
                            f.active_threads, f.avg_cores_busy
                        ));
                    } else {
                        reasons.push(
                            "CPU-bound Python: threads cannot run Python code in parallel (the GIL), so use a process pool (seed §7: CPU密集型 → 多进程).".into(),
                        );
                    }
                    Model::Processes
                } else {
                    if !parallel && f.active_threads >= GIL_MIN_BUSY_THREADS {
                        reasons.push(format!(
                            "{:.1} threads busy but only {:.2} cores: they serialise on something (a lock?); shorten the critical section.",
                            f.active_threads, f.avg_cores_busy
                        ));
                    }
                    reasons.push(
                        "Native code: threads run in parallel and share memory without copying, so a thread pool is enough.".into(),
                    );
                    Model::Threads
                };
                if parallel {
                    reasons.push(format!(
                        "It already keeps {:.2} of {} cores busy: more workers than cores only queue up ({:.0}% of thread time runnable but waiting).",
                        f.avg_cores_busy, cores, f.share_runnable * 100.0
                    ));
                } else {
                    reasons.push(format!(
                        "It uses {:.2} of {} cores: spread the work over all of them.",
                        f.avg_cores_busy, cores
                    ));
                }
                reasons.push(format!(
                    "Pure CPU work: workers = cores = {cores} (W/C ≈ {:.2}).",
                    f.wait_over_compute
                ));
                Advice { model, workers: cores, concurrency: None, reasons }
            }
            Verdict::IoBound { wait: IoWait::Disk } => Advice {
                model: Model::Threads,
                workers: by_formula(DISK_THREADS_PER_CORE_CAP),
                concurrency: None,
                reasons: vec![
                    "Disk waits: blocking file IO releases the GIL and the kernel has no true async file API behind asyncio, so a thread pool (seed §9: 文件处理 → 多线程).".into(),
                    formula_line,
                    format!(
                        "Capped at {DISK_THREADS_PER_CORE_CAP} per core: one device serves a queue; more threads only wait in it."
                    ),
                ],
            },
            Verdict::IoBound { wait } => {
                let n = cores as f64 * (1.0 + f.wait_over_compute);
                let what = if wait == IoWait::Sleep { "timer waits" } else { "network/pipe waits" };
                if n.ceil() as usize >= COROUTINE_MIN_CONCURRENCY {
                    let concurrency = (n.ceil() as usize).min(MAX_COROUTINES);
                    Advice {
                        model: Model::Coroutines,
                        workers: 1,
                        concurrency: Some(concurrency),
                        reasons: vec![
                            format!(
                                "Mostly {what}: {concurrency} waits could be in flight — many concurrent waits → coroutines (seed §7: 100+ → asyncio)."
                            ),
                            formula_line,
                            "One event loop; a coroutine costs ~2 KB against a thread's 8 MB stack (seed §6.4).".into(),
                        ],
                    }
                } else {
                    Advice {
                        model: Model::Threads,
                        workers: by_formula(IO_THREADS_PER_CORE_CAP),
                        concurrency: None,
                        reasons: vec![
                            format!(
                                "Mostly {what}, a moderate number at once (< {COROUTINE_MIN_CONCURRENCY}) → threads (seed §7: 少(<100) → 多线程); coroutines if it grows."
                            ),
                            formula_line,
                            format!(
                                "Blocking waits release the GIL{}; capped at {IO_THREADS_PER_CORE_CAP} per core.",
                                if python { "" } else { " (not that native code has one)" }
                            ),
                        ],
                    }
                }
            }
            Verdict::Mixed => {
                let per_worker = (1.0 + f.wait_over_compute).ceil() as usize;
                let mut reasons = vec![format!(
                    "Compute and waits in comparable amounts (W/C = {:.2}): a pipeline — {} for the compute, {} for the waits (seed §6.7: 混合负载 → 进程池 + 协程).",
                    f.wait_over_compute,
                    if python { "a process pool" } else { "a thread pool" },
                    "coroutines (or a few threads)"
                )];
                reasons.push(formula_line);
                let workers = if python { cores } else { by_formula(IO_THREADS_PER_CORE_CAP) };
                reasons.push(format!(
                    "{workers} worker(s), each keeping about {per_worker} wait(s) in flight."
                ));
                Advice {
                    model: Model::HybridPipeline,
                    workers,
                    concurrency: Some(per_worker.max(1)),
                    reasons,
                }
            }
        }
    }
}

/// Spread between quiet and busy intervals: the mean of the top quarter minus the mean of the
/// bottom quarter of the cores-busy series (0 with fewer than 4 intervals).
fn swing(series: &[f64]) -> f64 {
    if series.len() < 4 {
        return 0.0;
    }
    let mut sorted = series.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q = sorted.len() / 4;
    let low: f64 = sorted[..q].iter().sum::<f64>() / q as f64;
    let high: f64 = sorted[sorted.len() - q..].iter().sum::<f64>() / q as f64;
    high - low
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
mod tests {
    use super::*;
    use crate::recording::{Exit, Totals};
    use crate::synth::{self, signatures as sig};

    fn check(a: &Analysis) {
        assert!(
            (3..=5).contains(&a.evidence.len()),
            "evidence: {:#?}",
            a.evidence
        );
        assert!((0.0..=1.0).contains(&a.confidence));
        assert!(!a.advice.as_ref().unwrap().reasons.is_empty());
        assert!(a.advice.as_ref().unwrap().workers >= 1);
        let json = serde_json::to_value(&a.figures).unwrap();
        for (k, v) in json.as_object().unwrap() {
            assert!(!v.is_null(), "figure {k} is not finite");
        }
    }

    #[test]
    fn cpu_loop_python_is_cpu_bound_serial_use_processes() {
        let a = analyse(&sig::cpu_loop(Lang::Python));
        check(&a);
        assert_eq!(
            a.verdict,
            Verdict::CpuBound {
                parallel: false,
                gil_limited: false
            }
        );
        assert!(a.confidence > 0.8, "{}", a.confidence);
        assert!((a.figures.cpu_ratio - 1.0).abs() < 0.01);
        assert!(a.figures.wait_over_compute < 0.05);
        assert_eq!(a.advice.as_ref().unwrap().model, Model::Processes);
        assert_eq!(a.advice.as_ref().unwrap().workers, 2);
    }

    #[test]
    fn cpu_loop_native_uses_threads() {
        let a = analyse(&sig::cpu_loop(Lang::Native));
        check(&a);
        assert_eq!(
            a.verdict,
            Verdict::CpuBound {
                parallel: false,
                gil_limited: false
            }
        );
        assert_eq!(a.advice.as_ref().unwrap().model, Model::Threads);
        assert_eq!(a.advice.as_ref().unwrap().workers, 2);
    }

    #[test]
    fn sleep_loop_is_io_bound_on_a_timer() {
        let a = analyse(&sig::sleep_loop());
        check(&a);
        assert_eq!(
            a.verdict,
            Verdict::IoBound {
                wait: IoWait::Sleep
            },
            "{a:#?}"
        );
        assert!(a.figures.cpu_ratio < 0.05);
        assert!(a.figures.wait_over_compute > 10.0);
        // Moderate concurrency (2 × (1 + W/C) ≈ 60) → threads, capped at 32 per core.
        assert_eq!(a.advice.as_ref().unwrap().model, Model::Threads);
        assert!(
            a.advice.as_ref().unwrap().workers > 2 && a.advice.as_ref().unwrap().workers <= 64,
            "{}",
            a.advice.as_ref().unwrap().workers
        );
    }

    #[test]
    fn gil_threads_are_cpu_bound_gil_limited_use_processes() {
        let a = analyse(&sig::gil_threads());
        check(&a);
        assert_eq!(
            a.verdict,
            Verdict::CpuBound {
                parallel: false,
                gil_limited: true
            },
            "{a:#?}"
        );
        assert!(a.confidence > 0.8);
        assert!(a.evidence.iter().any(|e| e.contains("GIL")));
        assert_eq!(a.advice.as_ref().unwrap().model, Model::Processes);
        assert_eq!(a.advice.as_ref().unwrap().workers, 2);
    }

    #[test]
    fn serialised_native_threads_are_cpu_bound_not_gil() {
        let mut rec = sig::gil_threads();
        rec.lang = Lang::Native;
        let a = analyse(&rec);
        check(&a);
        assert_eq!(
            a.verdict,
            Verdict::CpuBound {
                parallel: false,
                gil_limited: false
            }
        );
        assert_eq!(a.advice.as_ref().unwrap().model, Model::Threads);
        assert!(
            a.advice
                .as_ref()
                .unwrap()
                .reasons
                .iter()
                .any(|r| r.contains("lock"))
        );
    }

    #[test]
    fn multiprocessing_is_cpu_bound_parallel() {
        let a = analyse(&sig::multiprocessing());
        check(&a);
        assert_eq!(
            a.verdict,
            Verdict::CpuBound {
                parallel: true,
                gil_limited: false
            },
            "{a:#?}"
        );
        assert!((a.figures.avg_cores_busy - 1.975).abs() < 0.01);
        assert_eq!(a.figures.max_busy_processes, 3);
        assert!(a.figures.share_runnable > 0.1);
        assert_eq!(a.advice.as_ref().unwrap().model, Model::Processes);
        assert_eq!(a.advice.as_ref().unwrap().workers, 2);
    }

    #[test]
    fn fsync_loop_is_io_bound_on_disk_despite_system_time() {
        let a = analyse(&sig::fsync_loop());
        check(&a);
        assert_eq!(a.verdict, Verdict::IoBound { wait: IoWait::Disk }, "{a:#?}");
        assert!(a.figures.system_s > 1.7);
        // System time in the IO path is not compute.
        assert!((a.figures.compute_s - a.figures.user_s).abs() < 1e-9);
        assert!(a.figures.share_disk_wait > 0.2);
        assert_eq!(a.advice.as_ref().unwrap().model, Model::Threads);
        assert_eq!(
            a.advice.as_ref().unwrap().workers,
            2 * DISK_THREADS_PER_CORE_CAP
        );
    }

    #[test]
    fn alternating_compute_and_sleep_is_mixed() {
        let a = analyse(&sig::mixed(Lang::Python));
        check(&a);
        assert_eq!(a.verdict, Verdict::Mixed, "{a:#?}");
        assert!((a.figures.cpu_demand - 0.5).abs() < 0.05);
        assert!((a.figures.wait_over_compute - 1.0).abs() < 0.1);
        assert_eq!(a.advice.as_ref().unwrap().model, Model::HybridPipeline);
        assert_eq!(a.advice.as_ref().unwrap().workers, 2);
        assert_eq!(a.advice.as_ref().unwrap().concurrency, Some(2));
    }

    #[test]
    fn network_waits_use_coroutines() {
        let a = analyse(&sig::network_client());
        check(&a);
        assert_eq!(
            a.verdict,
            Verdict::IoBound {
                wait: IoWait::NetworkOrPipe
            },
            "{a:#?}"
        );
        assert_eq!(a.advice.as_ref().unwrap().model, Model::Coroutines);
        let c = a.advice.as_ref().unwrap().concurrency.unwrap();
        assert!(
            (COROUTINE_MIN_CONCURRENCY..=MAX_COROUTINES).contains(&c),
            "{c}"
        );
    }

    #[test]
    fn cores_busy_series_has_one_value_per_sample() {
        let rec = sig::mixed(Lang::Native);
        let a = analyse(&rec);
        assert_eq!(a.figures.cores_busy.len(), rec.samples.len());
        assert!((a.figures.cores_busy[0] - 1.0).abs() < 1e-9);
        assert_eq!(a.figures.cores_busy[3], 0.0);
        assert!((a.figures.peak_cores_busy - 1.0).abs() < 1e-9);
    }

    #[test]
    fn three_samples_are_too_short_to_classify() {
        // 60 ms of CPU used to get a confident "CPU-bound" from three samples.
        let rec = synth::recording(Lang::Python, 2, 20, &synth::one_thread(20.0, 3), 0.0, 0, 1);
        let a = analyse(&rec);
        assert_eq!(a.verdict, Verdict::TooShort { samples: 3 });
        assert_eq!((a.confidence, a.advice.is_none()), (0.0, true));
        assert!(a.evidence[0].contains("at least 5"), "{:?}", a.evidence);
        assert!((a.figures.cpu_s - 0.06).abs() < 1e-9, "the totals are kept");
    }

    #[test]
    fn enough_samples_of_a_short_run_keep_serial() {
        let rec = synth::recording(Lang::Python, 2, 10, &synth::one_thread(10.0, 8), 0.0, 0, 1);
        let a = analyse(&rec);
        check(&a);
        assert!(matches!(a.verdict, Verdict::CpuBound { .. }));
        assert_eq!(a.advice.as_ref().unwrap().model, Model::KeepSerial);
        assert_eq!(a.advice.as_ref().unwrap().workers, 1);
    }

    #[test]
    fn single_core_cpu_bound_keeps_serial() {
        let mut rec = sig::cpu_loop(Lang::Native);
        rec.cores = 1;
        let a = analyse(&rec);
        assert_eq!(a.advice.as_ref().unwrap().model, Model::KeepSerial);
    }

    #[test]
    fn empty_recording_gives_finite_figures() {
        let rec = Recording {
            command: vec!["true".into()],
            interval_ms: 20,
            cores: 0,
            lang: Lang::Native,
            samples: Vec::new(),
            totals: Totals::default(),
            exit: Exit::Code { code: 0 },
            command_wall_s: 0.0,
            descendants_left: 0,
        };
        let a = analyse(&rec);
        assert_eq!(a.verdict, Verdict::TooShort { samples: 0 });
        let json = serde_json::to_value(&a.figures).unwrap();
        assert!(json.as_object().unwrap().values().all(|v| !v.is_null()));
        let any = analyse_any_length(&rec);
        check(&any);
        assert_eq!(any.advice.as_ref().unwrap().model, Model::KeepSerial);
    }

    #[test]
    fn totals_only_recording_is_classified_when_asked() {
        // The command ended before the first sample: only wait4's totals.
        let rec = Recording {
            command: vec!["spin".into()],
            interval_ms: 20,
            cores: 2,
            lang: Lang::Native,
            samples: Vec::new(),
            totals: Totals {
                wall_s: 0.5,
                user_s: 0.49,
                system_s: 0.0,
                ..Totals::default()
            },
            exit: Exit::Code { code: 0 },
            command_wall_s: 0.0,
            descendants_left: 0,
        };
        // `measure`'s way: one exact reading, no samples needed.
        let a = analyse_any_length(&rec);
        check(&a);
        assert_eq!(
            a.verdict,
            Verdict::CpuBound {
                parallel: false,
                gil_limited: false
            }
        );
    }

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0), "1.5 KB");
        assert_eq!(human_bytes(3.0 * 1024.0 * 1024.0), "3.0 MB");
    }
}
