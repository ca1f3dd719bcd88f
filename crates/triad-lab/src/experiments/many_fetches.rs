//! `many-fetches` (seed §9, the row *web crawler → coroutines*): 1,000 (`--full`: also
//! 10,000) HTTP fetches at once from a local server that answers each after 50 ms — the
//! `server-models` API (`work=slow`) on its tokio model, in a process of its own — each on a
//! new connection, its answer checked.
//!
//! The crawlers: one OS thread per fetch; a pool of threads; tokio tasks on one thread; a pool
//! of worker processes, each fetching one page at a time. Each of the first three runs in a
//! fresh worker process, which reports the time and the peak memory the fetches added
//! (`VmHWM` after, reset through `clear_refs`, minus `VmRSS` before); the process pool runs
//! from the lab, its workers reporting their peak memory. CPython (`python/many_fetches.py`)
//! does the same with `threading.Thread`, a `ThreadPoolExecutor`, asyncio and a
//! `multiprocessing.Pool`, against the same server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use triad::{Mode, Runner};

use super::cost_support::{
    SideBySide, Started, in_fresh_workers, labelled, read_memory, reset_peak, spawn_threads,
};
use super::decision::{Better, Candidate, Decision, combine, decide};
use super::server_models::{Model, RunningServer, Work, fetch_async, fetch_blocking};
use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan};
use crate::python::Baseline;
use crate::results::{Implementation, Measurement, Table};
use crate::stats::{format_bytes, format_seconds, format_with_spread};

/// The `many-fetches` experiment.
#[derive(Debug)]
pub(crate) struct ManyFetches;

names! {
    /// The crawlers, by the names their measurements carry (the same in the script).
    enum Crawler {
        ThreadPerFetch => "thread per fetch",
        ThreadPool => "thread pool",
        Async => "async",
        Processes => "processes",
    }
}

names! {
    /// What is read of a run (after `crawler: `).
    enum Quantity {
        Time => "total time",
        Peak => "peak memory",
    }
}

/// How a fresh worker fetches.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum Fetcher {
    ThreadPerFetch,
    ThreadPool(usize),
    Async,
}

/// One run in a fresh worker: `count` fetches from `port`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Crawl {
    fetcher: Fetcher,
    count: u64,
    port: u16,
}

/// What a run took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Crawled {
    reached: u64,
    seconds: f64,
    peak_growth: u64,
    stopped: Option<String>,
}

impl Started for Crawled {
    fn reached(&self) -> u64 {
        self.reached
    }

    fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }
}

/// Runs `crawl` in this (fresh worker) process; every fetch must succeed.
#[triad::task]
pub(crate) fn crawl(job: Crawl) -> Result<Crawled, String> {
    super::server_models::load::raise_file_limit();
    reset_peak().map_err(|e| e.to_string())?;
    let before = read_memory().map_err(|e| e.to_string())?.resident;
    let start = Instant::now();
    let (reached, stopped) = match job.fetcher {
        Fetcher::ThreadPerFetch => {
            let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
            let mut n = 0;
            let (threads, stopped) = spawn_threads(job.count, None, || {
                n += 1;
                let (port, n, failed) = (job.port, n, failed.clone());
                move || {
                    if let Err(e) = fetch_blocking(port, n, Work::Slow) {
                        let mut first = failed.lock().unwrap_or_else(|p| p.into_inner());
                        first.get_or_insert(e);
                    }
                }
            });
            let reached = threads.len() as u64;
            for thread in threads {
                thread
                    .join()
                    .map_err(|_| "a fetching thread panicked".to_owned())?;
            }
            if let Some(error) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(error);
            }
            (reached, stopped)
        }
        Fetcher::ThreadPool(threads) => {
            let pool = triad::ThreadPool::new(threads).map_err(|e| e.to_string())?;
            let jobs: Vec<_> = (0..job.count)
                .map(|n| pool.submit(move || fetch_blocking(job.port, n, Work::Slow)))
                .collect();
            for job in jobs {
                job.wait().map_err(|e| e.to_string())??;
            }
            (job.count, None)
        }
        Fetcher::Async => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let fetches: Vec<_> = (0..job.count)
                    .map(|n| tokio::spawn(fetch_async(job.port, n, Work::Slow)))
                    .collect();
                for fetch in fetches {
                    fetch.await.map_err(|e| e.to_string())??;
                }
                Ok::<_, String>(())
            })?;
            (job.count, None)
        }
    };
    Ok(Crawled {
        reached,
        seconds: start.elapsed().as_secs_f64(),
        peak_growth: read_memory()
            .map_err(|e| e.to_string())?
            .peak_resident
            .saturating_sub(before),
        stopped,
    })
}

/// One fetch in a pool's worker process: the worker's id and peak memory after it.
#[triad::task]
pub(crate) fn fetch_in_worker(port: u16, n: u64) -> Result<(u32, u64), String> {
    fetch_blocking(port, n, Work::Slow)?;
    let peak = read_memory().map_err(|e| e.to_string())?.peak_resident;
    Ok((std::process::id(), peak))
}

/// `count` fetches on a pool of worker processes: the time, and the workers' peak memory
/// summed.
fn crawl_on_processes(runner: &Runner, port: u16, count: u64) -> Result<(f64, f64), LabError> {
    let start = Instant::now();
    let results = runner.map(fetch_in_worker, (0..count).map(|n| (port, n)));
    let seconds = start.elapsed().as_secs_f64();
    let mut peaks = BTreeMap::new();
    for result in results {
        let (pid, peak) = result
            .map_err(|e| LabError::engine("a fetch on a worker process", e))?
            .map_err(|e| LabError::engine("a fetch on a worker process", e))?;
        let most = peaks.entry(pid).or_insert(0);
        *most = peak.max(*most);
    }
    Ok((seconds, peaks.values().sum::<u64>() as f64))
}

/// Sizes by scale.
#[derive(Debug)]
struct Sizes {
    counts: &'static [u64],
    pool_threads: usize,
    processes: usize,
    runs: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        counts: &[20],
        pool_threads: 4,
        processes: 2,
        runs: 1,
    },
    Sizes {
        counts: &[1_000],
        pool_threads: 100,
        processes: 32,
        runs: 1,
    },
    Sizes {
        counts: &[1_000, 10_000],
        pool_threads: 100,
        processes: 64,
        runs: 2,
    },
);

/// How long the server may run.
const SERVER_TIMEOUT: Duration = Duration::from_secs(600);

impl Experiment for ManyFetches {
    fn about(&self) -> About {
        About {
            id: "many-fetches",
            title: "1,000 concurrent HTTP fetches of a slow page: threads, a pool, async, processes",
            seed_section: "9",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        super::server_models::load::raise_file_limit();
        let server = RunningServer::start(Model::Tokio, 1, 1, SERVER_TIMEOUT)
            .map_err(|e| LabError::engine("the slow server", e))?;
        let port = server.port();
        let processes = Runner::new(Mode::Processes(sizes.processes))
            .map_err(|e| LabError::engine("starting the process pool", e))?;
        let mut plan = Plan::new();
        let queue = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok());
        if let Some(queue) = queue.filter(|q| sizes.counts.iter().any(|c| c > q)) {
            plan.note(format!(
                "The server's accept queue holds {queue} connections (net.core.somaxconn): \
                 connects beyond it at once wait for the kernel's SYN retries (1 s, then 3 s), \
                 whatever the crawler."
            ));
        }
        for &count in sizes.counts {
            for (crawler, fetcher) in [
                (Crawler::ThreadPerFetch, Fetcher::ThreadPerFetch),
                (Crawler::ThreadPool, Fetcher::ThreadPool(sizes.pool_threads)),
                (Crawler::Async, Fetcher::Async),
            ] {
                let input = Crawl {
                    fetcher,
                    count,
                    port,
                };
                plan.series(in_fresh_workers(
                    crawler.name(),
                    count,
                    sizes.runs,
                    (crawl, input, "a crawl"),
                    [
                        (Quantity::Time.name(), "s", |c: &Crawled| c.seconds),
                        (Quantity::Peak.name(), "bytes", |c: &Crawled| {
                            c.peak_growth as f64
                        }),
                    ],
                ));
            }
            let processes = &processes;
            plan.step(move |measured| {
                // Start every worker before the clock does.
                crawl_on_processes(processes, port, sizes.processes as u64)?;
                let mut times = Vec::new();
                let mut peaks = Vec::new();
                for _ in 0..sizes.runs {
                    let (seconds, peak) = crawl_on_processes(processes, port, count)?;
                    times.push(seconds);
                    peaks.push(peak);
                }
                let name = |q: Quantity| labelled(Crawler::Processes.name(), q.name());
                for (quantity, unit, samples) in [
                    (Quantity::Time, "s", times),
                    (Quantity::Peak, "bytes", peaks),
                ] {
                    measured.measurement(
                        Measurement::new(name(quantity), Implementation::Rust, unit, samples)
                            .param("count", count),
                    );
                }
                Ok(())
            });
        }
        plan.python(Baseline::new(
            "many_fetches",
            include_str!("../../python/many_fetches.py"),
            [
                port.to_string(),
                sizes
                    .counts
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                sizes.pool_threads.to_string(),
                sizes.processes.to_string(),
                sizes.runs.to_string(),
            ],
        ));
        let measured = bench.run(plan);
        drop(processes);
        server
            .stop()
            .map_err(|e| LabError::engine("the slow server", e))?;
        measured
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        judge(findings)
    }
}

fn figure<'a>(
    found: &Findings<'a>,
    implementation: Implementation,
    crawler: Crawler,
    quantity: Quantity,
    count: u64,
) -> Option<&'a Measurement> {
    found.get(
        implementation,
        &labelled(crawler.name(), quantity.name()),
        &[("count", count.into())],
    )
}

fn judge(found: &Findings<'_>) -> Judgement {
    let sizes = SIZES.at(found.scale());
    let mut table = Table::new([
        "fetches",
        "crawler",
        "language",
        "total time",
        "peak memory",
    ]);
    let mut time_bars = SideBySide::new();
    let mut memory_bars = SideBySide::new();
    for &count in sizes.counts {
        for &crawler in Crawler::ALL {
            let label = match crawler {
                Crawler::ThreadPool => format!("pool of {}", sizes.pool_threads),
                Crawler::Processes => format!("{} processes", sizes.processes),
                _ => crawler.name().to_owned(),
            };
            let mut times = Vec::new();
            let mut peaks = Vec::new();
            for implementation in found.implementations() {
                let time = figure(found, implementation, crawler, Quantity::Time, count);
                let peak = figure(found, implementation, crawler, Quantity::Peak, count);
                if let Some(time) = time {
                    table.row([
                        count.to_string(),
                        label.clone(),
                        implementation.label().to_owned(),
                        format_with_spread(&time.summary, format_seconds),
                        peak.map_or("—".to_owned(), |m| {
                            format_with_spread(&m.summary, format_bytes)
                        }),
                    ]);
                }
                times.extend(time);
                peaks.extend(peak);
            }
            time_bars.add(format!("{label} × {count}"), times);
            memory_bars.add(format!("{label} × {count}"), peaks);
        }
    }
    Judgement {
        method: format!(
            "{counts} fetches at once of GET /sum?work=slow from the server-models API on its \
             tokio model (in a process of its own), which answers each after 50 ms; every fetch \
             opens a new connection, reads the whole answer and checks its body. Crawlers: one \
             OS thread per fetch; a pool of {pool} threads (triad::ThreadPool; CPython: \
             ThreadPoolExecutor); tasks on one event loop (tokio, current-thread; CPython: \
             asyncio.open_connection under gather); {procs} worker processes each fetching one \
             page at a time (triad::Runner; CPython: multiprocessing.Pool). The first three run \
             in a fresh process each and report the peak memory they added (VmHWM, reset \
             through clear_refs, minus VmRSS before); the process pools report their workers' \
             peak resident memory summed (a whole process each, so not comparable byte for \
             byte). {runs} run(s) each.",
            counts = sizes
                .counts
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" and "),
            pool = sizes.pool_threads,
            procs = sizes.processes,
            runs = sizes.runs,
        ),
        table,
        charts: vec![
            time_bars.chart("Time to fetch every page", "crawler", "seconds"),
            memory_bars.chart("Peak memory of the crawler", "crawler", "bytes"),
        ],
        verdicts: vec![crawler(found).verdict],
        notes: Vec::new(),
    }
}

const CRAWLER_ROW: (&str, &str) = (
    "A web crawler (low CPU, high IO wait, over 1,000 fetches at once) is best written with \
     coroutines.",
    "| Web爬虫 | 低 | 高 | 高(>1000) | 协程 | I/O密集,高并发 |",
);

/// The *web crawler* row: the time and the memory of each crawler at the most fetches.
pub(crate) fn crawler(found: &Findings<'_>) -> Decision {
    let count = SIZES
        .at(found.scale())
        .counts
        .iter()
        .copied()
        .max()
        .unwrap_or(1);
    let decisions = [
        (Quantity::Time, format_seconds as fn(f64) -> String),
        (Quantity::Peak, format_bytes),
    ]
    .into_iter()
    .map(|(quantity, format)| {
        let candidates: Vec<Candidate<'_>> = found
            .implementations()
            .into_iter()
            .flat_map(|implementation| {
                Crawler::ALL.iter().filter_map(move |&crawler| {
                    Some(Candidate {
                        implementation,
                        label: crawler.name().to_owned(),
                        summary: &figure(found, implementation, crawler, quantity, count)?.summary,
                        recommended: crawler == Crawler::Async,
                    })
                })
            })
            .collect();
        decide(
            &candidates,
            Better::Lower,
            format,
            CRAWLER_ROW,
            &format!("{}, {count} fetches", quantity.name()),
        )
    })
    .collect();
    combine(decisions, CRAWLER_ROW)
}
