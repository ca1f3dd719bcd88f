//! From samples to figures: the cumulative counters differenced per interval (a zero baseline
//! at `t = 0`), then summed over the whole run or over a span of it (a window or a phase).
//!
//! The figure the verdict rests on is the CPU demand of the threads at work. In each interval
//! the threads that worked are counted by their participation ratio (see
//! [`Sample::work_threads`]), so a helper that woke for a moment counts for almost nothing; an
//! interval in which nothing ran counts the run's usual number. Their time `Σ dt × n` is spent
//! computing (C), queued for a CPU (run delay: the machine's contention) or waiting (W); demand
//! is `C / (C + W)`, what it would be on a machine of its own.

use std::ops::Range;

use crate::recording::{Lang, Recording, Sample};

use super::threads::ThreadFacts;
use super::{
    DISK_MIN_BYTES_PER_S, DISK_MIN_D_SHARE, Figures, IO_PATH_MIN_OFF_CPU_SHARE,
    MAX_WAIT_OVER_COMPUTE, WAITING_INTERVAL_MAX_DEMAND, div,
};

/// Per-interval differences of the cumulative counters.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Interval {
    pub(super) dt_s: f64,
    cpu_s: f64,
    delay_s: f64,
    rchar: f64,
    wchar: f64,
    read_bytes: f64,
    write_bytes: f64,
    syscalls: f64,
    voluntary: f64,
    involuntary: f64,
    threads: u32,
    work_threads: f64,
}

impl Interval {
    fn storage(&self) -> f64 {
        self.read_bytes + self.write_bytes
    }

    fn chars(&self) -> f64 {
        self.rchar + self.wchar
    }
}

fn delta(now: u64, before: u64) -> f64 {
    now.saturating_sub(before) as f64
}

/// The recording's intervals, one per sample (kept even when empty, so they stay aligned).
pub(super) fn intervals(rec: &Recording) -> Vec<Interval> {
    let mut prev = Sample::default();
    rec.samples
        .iter()
        .map(|s| {
            let interval = Interval {
                dt_s: ((s.t_ms - prev.t_ms) / 1000.0).max(0.0),
                cpu_s: delta(s.cpu_ns, prev.cpu_ns) / 1e9,
                delay_s: delta(s.run_delay_ns, prev.run_delay_ns) / 1e9,
                rchar: delta(s.rchar, prev.rchar),
                wchar: delta(s.wchar, prev.wchar),
                read_bytes: delta(s.read_bytes, prev.read_bytes),
                write_bytes: delta(s.write_bytes, prev.write_bytes),
                syscalls: delta(s.syscalls, prev.syscalls),
                voluntary: delta(s.voluntary_switches, prev.voluntary_switches),
                involuntary: delta(s.involuntary_switches, prev.involuntary_switches),
                threads: s.threads.max(s.busy_threads),
                work_threads: s.work_threads,
            };
            prev = s.clone();
            interval
        })
        .collect()
}

/// Figures plus the intermediate evidence the verdict needs, for the whole run or a span.
pub(super) struct Facts<'a> {
    pub(super) figures: Figures,
    pub(super) lang: Lang,
    /// What the per-thread records say (whole run).
    pub(super) threads: &'a ThreadFacts,
    /// Share of (work) thread-samples in state D.
    pub(super) d_share: f64,
    /// Storage bytes per second over the waiting intervals.
    pub(super) waiting_storage_per_s: f64,
    /// `rchar + wchar` per second over the waiting intervals.
    pub(super) waiting_chars_per_s: f64,
    /// Read/write calls per second over the waiting intervals.
    pub(super) waiting_syscalls_per_s: f64,
    /// Intervals sampled.
    pub(super) intervals: usize,
    /// Threads counted in an interval in which nothing ran.
    pub(super) idle_threads: f64,
}

impl<'a> Facts<'a> {
    /// The whole run: the samples, with `wait4`'s totals where they know better.
    pub(super) fn whole(rec: &Recording, all: &[Interval], threads: &'a ThreadFacts) -> Self {
        Facts::build(rec, all, 0..all.len(), true, threads, None)
    }

    /// The samples in `range` only; `idle_threads` from the whole run.
    pub(super) fn span(
        rec: &Recording,
        all: &[Interval],
        range: Range<usize>,
        whole: &Facts<'a>,
    ) -> Self {
        Facts::build(
            rec,
            all,
            range,
            false,
            whole.threads,
            Some(whole.idle_threads),
        )
    }

    fn build(
        rec: &Recording,
        all: &[Interval],
        range: Range<usize>,
        whole: bool,
        threads: &'a ThreadFacts,
        idle_threads: Option<f64>,
    ) -> Self {
        let t = &rec.totals;
        let samples = &rec.samples[range.clone()];
        let intervals = &all[range];
        let cores = rec.cores.max(1);
        let sum = |f: fn(&Interval) -> f64| intervals.iter().map(f).sum::<f64>();
        let sampled_wall_s = sum(|i| i.dt_s);
        let sampled_cpu_s = sum(|i| i.cpu_s);
        let run_delay_s = sum(|i| i.delay_s);

        let (wall_s, cpu_s) = if whole {
            let wall = if t.wall_s > 0.0 {
                t.wall_s
            } else {
                sampled_wall_s
            };
            (wall, (t.user_s + t.system_s).max(sampled_cpu_s))
        } else {
            (sampled_wall_s, sampled_cpu_s)
        };
        // Split the CPU into user and system as wait4 saw it; if only the samples saw CPU, all
        // of it is reported as user time.
        let (user_s, system_s) = if t.user_s + t.system_s > 0.0 {
            let scale = cpu_s / (t.user_s + t.system_s);
            (t.user_s * scale, t.system_s * scale)
        } else {
            (cpu_s, 0.0)
        };

        let cores_busy: Vec<f64> = intervals
            .iter()
            .map(|i| div(i.cpu_s, i.dt_s).min(cores as f64))
            .collect();
        let avg_cores_busy = div(cpu_s, wall_s);
        let peak_cores_busy = cores_busy.iter().copied().fold(avg_cores_busy, f64::max);

        // Thread-time shares: running from CPU time, runnable from run-queue delay, the rest
        // split between S and D in proportion to the state samples.
        let (sum_s, sum_d, sum_threads) = samples.iter().fold((0u64, 0u64, 0u64), |a, s| {
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
        let share_disk_wait = off * div(sum_d as f64, (sum_s + sum_d) as f64);
        let share_sleeping = off - share_disk_wait;
        // The per-thread records weigh the threads by their work; without them (or for a
        // span), every thread-sample counts alike.
        let d_share = if whole && threads.known {
            threads.d_share
        } else {
            div(sum_d as f64, sum_threads as f64)
        };

        // Parallelism achieved.
        let n = intervals.len() as f64;
        let max_busy_threads = samples.iter().map(|s| s.busy_threads).max().unwrap_or(0);
        let max_busy_processes = samples.iter().map(|s| s.busy_processes).max().unwrap_or(0);
        let mean_busy_threads = div(samples.iter().map(|s| f64::from(s.busy_threads)).sum(), n);
        let mean_busy_processes = div(samples.iter().map(|s| f64::from(s.busy_processes)).sum(), n);

        // IO over the span (for the whole run, wait4's block counts where they are larger).
        let (mut read_bytes, mut write_bytes) = (sum(|i| i.read_bytes), sum(|i| i.write_bytes));
        if whole {
            read_bytes = read_bytes.max(t.in_blocks.saturating_mul(512) as f64);
            write_bytes = write_bytes.max(t.out_blocks.saturating_mul(512) as f64);
        }
        let rchar_per_s = div(sum(|i| i.rchar), wall_s);
        let wchar_per_s = div(sum(|i| i.wchar), wall_s);
        let syscalls_per_s = div(sum(|i| i.syscalls), wall_s);

        // IO rates over the intervals in which the threads mostly waited, as the median of
        // those intervals' rates — so that a start-up burst (imports reading files, a launcher
        // script such as pyenv's shim) does not pass for the waits' cause: a program that waits
        // on a network or a pipe moves bytes in most of its waiting intervals, not a few.
        let waiting: Vec<&Interval> = intervals
            .iter()
            .filter(|i| {
                i.dt_s > 0.0
                    && div(i.cpu_s + i.delay_s, i.dt_s * i.work_threads.max(1.0))
                        < WAITING_INTERVAL_MAX_DEMAND
            })
            .collect();
        let median_rate = |amount: fn(&Interval) -> f64| {
            let mut rates: Vec<f64> = waiting.iter().map(|i| div(amount(i), i.dt_s)).collect();
            rates.sort_by(f64::total_cmp);
            rates.get(rates.len() / 2).copied()
        };
        let waiting_storage_per_s =
            median_rate(Interval::storage).unwrap_or(div(read_bytes + write_bytes, wall_s));
        let waiting_chars_per_s = median_rate(Interval::chars).unwrap_or(rchar_per_s + wchar_per_s);
        let waiting_syscalls_per_s = median_rate(|i| i.syscalls).unwrap_or(syscalls_per_s);

        // System time in the IO path is IO work, not compute (research note: a disk loop shows
        // high system time) — but only with evidence of disk waits, and when system time
        // outweighs user time or the threads wait on the disk longer than they run (sqlite's
        // commits): a program that walks a tree from the cache (`tar`) spends its system time
        // computing, and one that reads a few cold files between computing mostly computes.
        // Threads that were on a CPU nearly all the time did not wait at all, whatever bytes
        // moved in their few waiting intervals: `tar` walking a fresh tree reads some metadata
        // from storage, yet its kernel time is its compute.
        let disk_evidence =
            d_share >= DISK_MIN_D_SHARE || waiting_storage_per_s >= DISK_MIN_BYTES_PER_S;
        let threads_waited = off >= IO_PATH_MIN_OFF_CPU_SHARE;
        let compute_s = if disk_evidence
            && threads_waited
            && (system_s > user_s || share_disk_wait > share_running)
        {
            user_s
        } else {
            cpu_s
        };
        let compute_share = div(compute_s, cpu_s);

        // The threads at work, and their demand. In each interval they are counted by the
        // participation ratio of their work; their time `Σ dt × n` is spent computing (C),
        // queued for a CPU (run delay: the machine's contention, not the program's character)
        // or waiting (W, system time in the IO path included). Demand is C / (C + W) =
        // 1 / (1 + W/C): what it would be on a machine of its own.
        let busy = |i: &Interval| i.cpu_s + i.delay_s > 0.0;
        let work: f64 = intervals.iter().map(|i| i.cpu_s + i.delay_s).sum();
        let weighted: f64 = intervals
            .iter()
            .map(|i| (i.cpu_s + i.delay_s) * i.work_threads.max(1.0))
            .sum();
        let idle_threads = idle_threads.unwrap_or(div(weighted, work).max(1.0));
        let active_threads = if work > 0.0 {
            div(weighted, work).max(1.0)
        } else {
            idle_threads
        };
        let thread_seconds: f64 = intervals
            .iter()
            .map(|i| {
                let n = if busy(i) {
                    i.work_threads.max(1.0)
                } else {
                    idle_threads
                };
                i.dt_s * n
            })
            .sum();
        // No samples at all (`measure` of a closure that ended before the first): the totals,
        // as one thread over the whole run.
        let (thread_seconds, sampled_compute, sampled_delay) = if intervals.is_empty() {
            (wall_s, compute_s, run_delay_s)
        } else {
            (thread_seconds, sampled_cpu_s * compute_share, run_delay_s)
        };
        let waited = (thread_seconds - sampled_compute - sampled_delay).max(0.0);
        let cpu_demand = div(sampled_compute, sampled_compute + waited).clamp(0.0, 1.0);
        let wait_over_compute = if sampled_compute > 0.0 {
            (waited / sampled_compute).min(MAX_WAIT_OVER_COMPUTE)
        } else if waited > 0.0 {
            MAX_WAIT_OVER_COMPUTE
        } else {
            0.0
        };
        let wait_s = if compute_s > 0.0 {
            wait_over_compute * compute_s
        } else {
            waited
        };

        let (voluntary, involuntary) = if whole {
            let last = samples.last().cloned().unwrap_or_default();
            (
                t.voluntary_switches.max(last.voluntary_switches) as f64,
                t.involuntary_switches.max(last.involuntary_switches) as f64,
            )
        } else {
            (sum(|i| i.voluntary), sum(|i| i.involuntary))
        };

        let max_of = |f: fn(&Sample) -> u32| samples.iter().map(f).max().unwrap_or(0);
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
            cores_demanded: div(cpu_s + run_delay_s, wall_s),
            share_running,
            share_runnable,
            share_sleeping,
            share_disk_wait,
            rchar_per_s,
            wchar_per_s,
            read_bytes_per_s: div(read_bytes, wall_s),
            write_bytes_per_s: div(write_bytes, wall_s),
            syscalls_per_s,
            peak_rss_bytes: t
                .max_rss_bytes
                .max(samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0)),
            max_busy_threads,
            mean_busy_threads,
            max_busy_processes,
            mean_busy_processes,
            peak_threads: t.peak_threads.max(max_of(|s| s.threads)),
            peak_processes: t.peak_processes.max(max_of(|s| s.processes)),
            active_threads,
            run_delay_s,
            wait_s,
            wait_over_compute,
            cpu_demand,
            voluntary_switches_per_s: div(voluntary, wall_s),
            involuntary_switches_per_s: div(involuntary, wall_s),
            cores_busy,
        };
        Facts {
            figures,
            lang: rec.lang,
            threads,
            d_share,
            waiting_storage_per_s,
            waiting_chars_per_s,
            waiting_syscalls_per_s,
            intervals: intervals.len(),
            idle_threads,
        }
    }
}
