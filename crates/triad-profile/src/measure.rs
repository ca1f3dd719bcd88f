//! The library form: [`measure`] a closure in this process and get the same [`Analysis`] as
//! `triad profile` gives for a command.
//!
//! How: around the closure it reads the wall clock, the calling thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`), its resource usage (`getrusage(RUSAGE_THREAD)`: user and system
//! time, voluntary and involuntary switches) and, where readable, `/proc/thread-self/schedstat`
//! (run-queue delay) and `/proc/thread-self/io` (IO counters); from the differences it builds a
//! one-sample [`Recording`] and analyses it as [`analyse`](crate::analyse) does, whatever the
//! number of samples (its one sample is an exact reading, not a look at a running process).
//!
//! Limits: only the **calling thread** is measured. Work the closure hands to other threads,
//! thread pools, async runtimes or child processes is invisible — their CPU time counts as the
//! caller's waiting, so such a closure looks IO-bound. There is one sample, so no time series,
//! no D-state sampling (disk waits are recognised from bytes reaching storage) and no peak cores
//! busy beyond the average. The language is taken as native (this is Rust code).

use std::fs;
use std::time::Instant;

use rustix::time::{ClockId, clock_gettime};

use crate::classify::{Analysis, analyse_any_length};
use crate::recording::{Exit, Lang, Recording, Sample, Totals};

/// Counters of the calling thread at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct ThreadCounters {
    cpu_ns: u64,
    user_us: u64,
    system_us: u64,
    voluntary: u64,
    involuntary: u64,
    max_rss_bytes: u64,
    run_delay_ns: u64,
    rchar: u64,
    wchar: u64,
    syscalls: u64,
    read_bytes: u64,
    write_bytes: u64,
}

fn timeval_us(tv: libc::timeval) -> u64 {
    (tv.tv_sec.max(0) as u64) * 1_000_000 + tv.tv_usec.max(0) as u64
}

impl ThreadCounters {
    fn now() -> Self {
        let mut c = ThreadCounters::default();
        let t = clock_gettime(ClockId::ThreadCPUTime);
        c.cpu_ns = (t.tv_sec.max(0) as u64) * 1_000_000_000 + t.tv_nsec.max(0) as u64;

        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `usage` points to writable memory of the size of a `rusage`, and
        // RUSAGE_THREAD is a valid `who` on Linux; getrusage only writes into it.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
        if rc == 0 {
            // SAFETY: getrusage returned 0, so it filled the struct (and it was zeroed anyway).
            let usage = unsafe { usage.assume_init() };
            c.user_us = timeval_us(usage.ru_utime);
            c.system_us = timeval_us(usage.ru_stime);
            c.voluntary = usage.ru_nvcsw.max(0) as u64;
            c.involuntary = usage.ru_nivcsw.max(0) as u64;
            // ru_maxrss is in KiB on Linux; for RUSAGE_THREAD it is the process's.
            c.max_rss_bytes = (usage.ru_maxrss.max(0) as u64) * 1024;
        }

        if let Ok(text) = fs::read_to_string("/proc/thread-self/schedstat") {
            c.run_delay_ns = text
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        if let Ok(text) = fs::read_to_string("/proc/thread-self/io") {
            for line in text.lines() {
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
                let value: u64 = value.trim().parse().unwrap_or(0);
                match key {
                    "rchar" => c.rchar = value,
                    "wchar" => c.wchar = value,
                    "syscr" | "syscw" => c.syscalls += value,
                    "read_bytes" => c.read_bytes = value,
                    "write_bytes" => c.write_bytes = value,
                    _ => {}
                }
            }
        }
        c
    }
}

/// Run `work` on the calling thread, measure it, and analyse it like a profiled command.
///
/// Returns the closure's result and the [`Analysis`] (same verdict type as `triad profile`).
/// Only the calling thread is measured: see the module documentation for the limits.
///
/// ```
/// let (sum, analysis) = triad_profile::measure(|| (0..1_000_000u64).sum::<u64>());
/// assert_eq!(sum, 499_999_500_000);
/// println!("{:?}", analysis.verdict);
/// ```
pub fn measure<T>(work: impl FnOnce() -> T) -> (T, Analysis) {
    let before = ThreadCounters::now();
    let start = Instant::now();
    let value = work();
    let wall = start.elapsed();
    let after = ThreadCounters::now();
    let recording = recording_from(&before, &after, wall.as_secs_f64());
    (value, analyse_any_length(&recording))
}

fn recording_from(before: &ThreadCounters, after: &ThreadCounters, wall_s: f64) -> Recording {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let cpu_ns = d(after.cpu_ns, before.cpu_ns);
    let ran = cpu_ns > 0;
    let mostly_running = (cpu_ns as f64 / 1e9) >= wall_s * 0.5;
    let sample = Sample {
        t_ms: wall_s * 1000.0,
        processes: 1,
        threads: 1,
        running: u32::from(mostly_running),
        sleeping: u32::from(!mostly_running),
        disk_wait: 0,
        busy_threads: u32::from(ran),
        busy_processes: u32::from(ran),
        cpu_ns,
        run_delay_ns: d(after.run_delay_ns, before.run_delay_ns),
        rchar: d(after.rchar, before.rchar),
        wchar: d(after.wchar, before.wchar),
        read_bytes: d(after.read_bytes, before.read_bytes),
        write_bytes: d(after.write_bytes, before.write_bytes),
        syscalls: d(after.syscalls, before.syscalls),
        voluntary_switches: d(after.voluntary, before.voluntary),
        involuntary_switches: d(after.involuntary, before.involuntary),
        rss_bytes: 0,
        work_threads: if ran { 1.0 } else { 0.0 },
    };
    // getrusage has microsecond resolution and the CPU clock nanoseconds: split the clock's
    // CPU time in rusage's user/system proportion.
    let user_us = d(after.user_us, before.user_us) as f64;
    let system_us = d(after.system_us, before.system_us) as f64;
    let cpu_s = cpu_ns as f64 / 1e9;
    let (user_s, system_s) = if user_us + system_us > 0.0 {
        (
            cpu_s * user_us / (user_us + system_us),
            cpu_s * system_us / (user_us + system_us),
        )
    } else {
        (cpu_s, 0.0)
    };
    Recording {
        command: vec!["measure(closure)".into()],
        interval_ms: (wall_s * 1000.0).round() as u64,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        lang: Lang::Native,
        totals: Totals {
            wall_s,
            user_s,
            system_s,
            max_rss_bytes: after.max_rss_bytes,
            voluntary_switches: sample.voluntary_switches,
            involuntary_switches: sample.involuntary_switches,
            in_blocks: 0,
            out_blocks: 0,
            peak_threads: 1,
            peak_processes: 1,
        },
        samples: vec![sample],
        exit: Exit::Code { code: 0 },
        command_wall_s: wall_s,
        descendants_left: 0,
        threads: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{IoWait, Verdict};
    use std::time::Duration;

    #[test]
    fn measure_spin_loop_is_cpu_bound() {
        let (n, analysis) = measure(|| {
            let end = Instant::now() + Duration::from_millis(150);
            let mut n = 0u64;
            while Instant::now() < end {
                n = std::hint::black_box(n + 1);
            }
            n
        });
        assert!(n > 0);
        assert!(
            matches!(
                analysis.verdict,
                Verdict::CpuBound {
                    gil_limited: false,
                    ..
                }
            ),
            "{analysis:#?}"
        );
        assert!(analysis.figures.cpu_s > 0.0);
    }

    #[test]
    fn measure_sleep_loop_is_io_bound_sleep() {
        let ((), analysis) = measure(|| {
            // Long sleeps, so scheduler wake-up delay on a loaded machine stays a small share.
            for _ in 0..5 {
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        assert_eq!(
            analysis.verdict,
            Verdict::IoBound {
                wait: IoWait::Sleep
            },
            "{analysis:#?}"
        );
        assert!(analysis.figures.voluntary_switches_per_s > 0.0);
    }

    #[test]
    fn measure_returns_the_value() {
        let (v, analysis) = measure(|| 42);
        assert_eq!(v, 42);
        assert!((0.0..=1.0).contains(&analysis.confidence));
    }
}
