//! `c10k` (seed 6.4.2): 10,000 concurrent waits of 100 ms each — the seed's `handle_client` —
//! as tokio tasks, as triad's async engine, as OS threads, and as CPython asyncio coroutines:
//! the total time, and the peak memory they add.
//!
//! Each run happens in a fresh worker process (triad's fork server, one task per process; a
//! forked child in CPython): it resets the peak-resident counter (`/proc/self/clear_refs`),
//! reads `VmRSS`, starts all the waits at once, waits for every one to end, and reads `VmHWM`.
//! The time runs from before the runtime (or the first thread) starts to the last wait's end.
//! Full runs add 1,000,000 waits for the coroutines.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use triad::Mode;
use triad::workloads::async_sleep_ms;

use super::cost_support::{
    SideBySide, Started, count_of, in_fresh_workers, labelled, read_memory, reset_peak,
    spawn_threads,
};
use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Series};
use crate::python::Baseline;
use crate::results::{Implementation, Table};
use crate::stats::{format_bytes, format_seconds, format_with_spread};
use crate::verdict::{Checks, Ratio, smaller};

/// The `c10k` experiment.
#[derive(Debug)]
pub(crate) struct C10k;

/// The seed's wait: `await asyncio.sleep(0.1)`.
const WAIT_MS: u64 = 100;

/// What does the waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Waiters {
    /// Plain tokio tasks on a current-thread runtime, awaited one after another.
    TokioTasks,
    /// `triad::run(Mode::Async { concurrency: count }, async_sleep_ms, …)`.
    TriadAsync,
    /// One OS thread per wait (Rust's default stack), joined one after another.
    Threads,
}

impl Waiters {
    fn label(self) -> &'static str {
        match self {
            Waiters::TokioTasks => "tokio tasks",
            Waiters::TriadAsync => "triad Mode::Async",
            Waiters::Threads => "Rust threads",
        }
    }
}

/// One run: `count` waits at once.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Crowd {
    waiters: Waiters,
    count: u64,
}

/// What one run took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Waited {
    /// How many waits ran (fewer than asked if the system refused more threads).
    reached: u64,
    /// From the start to the last wait's end.
    seconds: f64,
    /// Peak resident memory above the resident memory at the start, bytes.
    peak_growth: u64,
    /// Why fewer waits than asked ran.
    stopped: Option<String>,
}

/// Runs `crowd.count` concurrent waits in this (fresh worker) process and measures them.
#[triad::task]
pub(crate) fn wait_together(crowd: Crowd) -> Result<Waited, String> {
    wait_and_measure(crowd).map_err(|e| e.to_string())
}

fn wait_and_measure(crowd: Crowd) -> std::io::Result<Waited> {
    reset_peak()?;
    let before = read_memory()?.resident;
    let start = Instant::now();
    let (reached, stopped) = match crowd.waiters {
        Waiters::TokioTasks => (tokio_waits(crowd.count)?, None),
        Waiters::TriadAsync => (triad_waits(crowd.count)?, None),
        Waiters::Threads => thread_waits(crowd.count),
    };
    let seconds = start.elapsed().as_secs_f64();
    Ok(Waited {
        reached,
        seconds,
        peak_growth: read_memory()?.peak_resident.saturating_sub(before),
        stopped,
    })
}

fn tokio_waits(count: u64) -> std::io::Result<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let waits: Vec<_> = (0..count)
            .map(|_| tokio::spawn(tokio::time::sleep(Duration::from_millis(WAIT_MS))))
            .collect();
        for wait in waits {
            wait.await.map_err(std::io::Error::other)?;
        }
        Ok(count)
    })
}

fn triad_waits(count: u64) -> std::io::Result<u64> {
    let concurrency = usize::try_from(count).map_err(std::io::Error::other)?;
    let results = triad::run(
        Mode::Async { concurrency },
        async_sleep_ms,
        std::iter::repeat_n(WAIT_MS, concurrency),
    )
    .map_err(std::io::Error::other)?;
    for result in results {
        result.map_err(std::io::Error::other)?;
    }
    Ok(count)
}

fn thread_waits(count: u64) -> (u64, Option<String>) {
    let (threads, stopped) = spawn_threads(count, None, || {
        || std::thread::sleep(Duration::from_millis(WAIT_MS))
    });
    let reached = threads.len() as u64;
    for thread in threads {
        thread.join().expect("a sleeping thread does not panic");
    }
    (reached, stopped)
}

names! {
    /// What is read of a run: the rest of the measurement names (after `waiters: `).
    enum Quantity {
        Time => "total time",
        Peak => "peak memory growth",
    }
}

/// The CPython waiters (`python/c10k.py`).
const PY_ASYNCIO: &str = "asyncio coroutines";

/// Sizes by scale.
#[derive(Debug)]
struct Sizes {
    /// The seed's 10,000 waits (fewer for tests).
    count: u64,
    /// Runs of the coroutines, each in a fresh worker.
    coroutine_runs: usize,
    /// Runs of the threads.
    thread_runs: usize,
    /// Whether the coroutines also wait a million at once (twice).
    million: bool,
    python_runs: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        count: 200,
        coroutine_runs: 2,
        thread_runs: 1,
        million: false,
        python_runs: 2,
    },
    Sizes {
        count: 10_000,
        coroutine_runs: 3,
        thread_runs: 1,
        million: false,
        python_runs: 3,
    },
    Sizes {
        count: 10_000,
        coroutine_runs: 7,
        thread_runs: 3,
        million: true,
        python_runs: 5,
    },
);

impl Started for Waited {
    fn reached(&self) -> u64 {
        self.reached
    }

    fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }
}

/// `runs` runs of `count` waits by `waiters`, each in a fresh worker: total time and peak
/// memory growth.
fn crowds(waiters: Waiters, count: u64, runs: usize) -> Series<'static> {
    let crowd = Crowd { waiters, count };
    in_fresh_workers(
        waiters.label(),
        count,
        runs,
        (wait_together, crowd, "a crowd of waits"),
        [
            (Quantity::Time.name(), "s", |w: &Waited| w.seconds),
            (Quantity::Peak.name(), "bytes", |w: &Waited| {
                w.peak_growth as f64
            }),
        ],
    )
}

impl Experiment for C10k {
    fn about(&self) -> About {
        About {
            id: "c10k",
            title: "10,000 concurrent waits of 100 ms: time and memory",
            seed_section: "6.4.2",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let count = sizes.count;
        let mut plan = Plan::new();
        plan.series(crowds(Waiters::TokioTasks, count, sizes.coroutine_runs));
        plan.series(crowds(Waiters::TriadAsync, count, sizes.coroutine_runs));
        plan.series(crowds(Waiters::Threads, count, sizes.thread_runs));
        let mut python_counts = vec![count];
        if sizes.million {
            plan.series(crowds(Waiters::TokioTasks, 1_000_000, 2));
            plan.series(crowds(Waiters::TriadAsync, 1_000_000, 2));
            python_counts.push(1_000_000);
        }
        let python_counts: Vec<String> = python_counts.iter().map(u64::to_string).collect();
        plan.python(Baseline::new(
            "c10k",
            include_str!("../../python/c10k.py"),
            [python_counts.join(","), sizes.python_runs.to_string()],
        ));
        bench.run(plan)
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        judge(findings)
    }
}

fn judge(found: &Findings<'_>) -> Judgement {
    let count = SIZES.at(found.scale()).count;
    let waiters = [
        (Waiters::TokioTasks.label(), Implementation::Rust),
        (Waiters::TriadAsync.label(), Implementation::Rust),
        (Waiters::Threads.label(), Implementation::Rust),
        (PY_ASYNCIO, Implementation::Python),
    ];
    let implementation_of = |label: &str| {
        waiters
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(Implementation::Rust, |(_, implementation)| *implementation)
    };
    let find = |label: &str, quantity: Quantity, count: u64| {
        found.get(
            implementation_of(label),
            &labelled(label, quantity.name()),
            &[("count", count.into())],
        )
    };

    let mut table = Table::new([
        "waiters",
        "count",
        "total time",
        "above the 100 ms wait",
        "peak memory growth",
        "per waiter",
    ]);
    let mut time_bars = SideBySide::new();
    let mut memory_bars = SideBySide::new();
    for (label, implementation) in waiters {
        for time in found.every(implementation, &labelled(label, Quantity::Time.name())) {
            let count = count_of(time);
            let peak = find(label, Quantity::Peak, count);
            let overhead = time.median() - WAIT_MS as f64 / 1000.0;
            table.row([
                label.to_owned(),
                count.to_string(),
                format_with_spread(&time.summary, format_seconds),
                format_seconds(overhead),
                peak.map_or("—".to_owned(), |m| {
                    format_with_spread(&m.summary, format_bytes)
                }),
                peak.map_or("—".to_owned(), |m| {
                    format_bytes(m.median() / count.max(1) as f64)
                }),
            ]);
            let category = format!("{label} × {count}");
            time_bars.add(category.clone(), [time]);
            memory_bars.add(category, peak);
        }
    }

    let coroutines = [
        Waiters::TokioTasks.label(),
        Waiters::TriadAsync.label(),
        PY_ASYNCIO,
    ];
    let mut verdicts = Vec::new();
    let mut about_a_tenth = Checks::default();
    let mut twenty_mb = Checks::default();
    for label in coroutines {
        if let Some(time) = find(label, Quantity::Time, count) {
            about_a_tenth.find(
                format!(
                    "{label} × {count}: {}",
                    format_with_spread(&time.summary, format_seconds)
                ),
                Ratio::measured(&time.summary).at_most(0.15),
            );
        }
        if let Some(peak) = find(label, Quantity::Peak, count) {
            twenty_mb.find(
                format!(
                    "{label} × {count}: {}",
                    format_with_spread(&peak.summary, format_bytes)
                ),
                Ratio::measured(&peak.summary).inside(10e6..=40e6),
            );
        }
    }
    verdicts.push(about_a_tenth.verdict(
        "10,000 coroutines that each wait 0.1 s finish in about 0.1 s in all (here: within \
         0.15 s), as they wait concurrently.",
        "输出约0.1秒,因为10000个协程并发等待I/O",
    ));
    verdicts.push(twenty_mb.verdict(
        "10,000 coroutines take about 20 MB (here: within a factor of two).",
        "10000个协程约20MB",
    ));
    let mut cheaper = Checks::default();
    let threads = Waiters::Threads.label();
    for label in [Waiters::TokioTasks.label(), Waiters::TriadAsync.label()] {
        for (quantity, format) in [
            (Quantity::Time, format_seconds as fn(f64) -> String),
            (Quantity::Peak, format_bytes),
        ] {
            if let (Some(task), Some(thread)) =
                (find(label, quantity, count), find(threads, quantity, count))
            {
                cheaper.find(
                    format!(
                        "{}: {label} {} vs {threads} {}",
                        quantity.name(),
                        format(task.median()),
                        format(thread.median())
                    ),
                    smaller(&task.summary, &thread.summary),
                );
            }
        }
    }
    verdicts.push(cheaper.verdict(
        "Coroutines carry large numbers of concurrent waits more cheaply than threads.",
        "为什么协程能处理大规模并发",
    ));

    Judgement {
        method: format!(
            "{count} waits of {WAIT_MS} ms started at once, each run in a fresh process \
             (Rust: a triad fork-server worker; CPython: a forked child). tokio tasks: \
             tokio::spawn(sleep) on a current-thread runtime, then each awaited; triad \
             Mode::Async: triad::run with concurrency {count} over the async_sleep_ms task; \
             Rust threads: one std::thread (2 MiB stack) per wait, then joined; CPython: the \
             seed's asyncio.gather of handle_client coroutines. Time: from before the runtime \
             or first thread starts to the last wait's end. Memory: peak resident (VmHWM, \
             reset through /proc/self/clear_refs) minus resident at the start."
        ),
        table,
        charts: vec![
            time_bars.chart(
                format!("Total time of {count} concurrent {WAIT_MS} ms waits"),
                "waiters",
                "seconds",
            ),
            memory_bars.chart("Peak memory they add", "waiters", "bytes"),
        ],
        verdicts,
        notes: vec![
            "Peak memory growth is VmHWM after the run minus VmRSS before it, in a process \
             used for nothing else; it includes the runtime's own start (a few hundred KiB)."
                .to_owned(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_waiter_waits_concurrently() {
        for waiters in [Waiters::TokioTasks, Waiters::TriadAsync, Waiters::Threads] {
            let waited = wait_and_measure(Crowd { waiters, count: 50 }).unwrap();
            assert_eq!(waited.reached, 50);
            assert!(
                waited.seconds >= 0.1 && waited.seconds < 2.0,
                "{waiters:?}: {} s",
                waited.seconds
            );
        }
    }
}
