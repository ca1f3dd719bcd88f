//! `io-bound` (seed §2, §4): waiting is what concurrency is for.
//!
//! N tasks each wait the same delay, in two ways: a sleep (the seed's `time.sleep` /
//! `asyncio.sleep`), and a real round trip to a local TCP server ([`server`]) that answers
//! after the delay — connect, send, wait, read, close. Each batch runs serially, on one OS
//! thread per wait (spawned inside the timing, as the seed's §2 test does), on a pool of N
//! threads and as N coroutines on one event loop (both through triad's [`Runner`]), and on a pool
//! of a fixed number of worker processes. The total time against N shows which models overlap
//! the waits. Engines start before timing and run one untimed 1 ms batch first; each batch is
//! then timed several times. The CPython baseline does the same with `time.sleep`,
//! `threading.Thread`, `ThreadPoolExecutor`, `asyncio.gather` and `multiprocessing.Pool`, and
//! talks to the same Rust server.

mod server;

use std::io::{Read, Write};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use triad::workloads::{async_sleep_ms, sleep_ms};
use triad::{Mode, Runner, TaskError};

use super::findings::{self, Findings, name as language};
use super::scaling::{listed, outcome_where, per_language_and_workload, speedup, times};
use crate::error::LabError;
use crate::experiment::{Context, Experiment, Scale};
use crate::results::{
    Chart, ChartKind, ExperimentReport, Implementation, Measurement, Outcome, Point, Scale as Axis,
    Series, Table, Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread, timed};
use server::DelayServer;

/// One request to the delay server on a blocking socket: connect, ask for `delay_ms`, read the
/// echo until the server closes.
#[triad::task]
fn round_trip(port: u16, delay_ms: u64) -> Result<u64, String> {
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{delay_ms}\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("receive: {e}"))?;
    parse_reply(&reply)
}

/// [`round_trip`] on the event loop's non-blocking sockets.
#[triad::task]
async fn round_trip_async(port: u16, delay_ms: u64) -> Result<u64, String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{delay_ms}\n").as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .await
        .map_err(|e| format!("receive: {e}"))?;
    parse_reply(&reply)
}

fn parse_reply(reply: &str) -> Result<u64, String> {
    reply
        .trim()
        .parse()
        .map_err(|_| format!("the server answered {reply:?}"))
}

/// The `io-bound` experiment.
#[derive(Debug)]
pub(crate) struct IoBound;

/// What a task waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Sleep,
    RoundTrip,
}

impl Workload {
    const ALL: [Workload; 2] = [Workload::Sleep, Workload::RoundTrip];

    fn name(self) -> &'static str {
        match self {
            Workload::Sleep => "sleep",
            Workload::RoundTrip => "tcp round trip",
        }
    }

    /// One wait on the calling thread.
    fn call(self, delay_ms: u64, port: u16) -> Result<u64, String> {
        match self {
            Workload::Sleep => Ok(sleep_ms::call(delay_ms)),
            Workload::RoundTrip => round_trip::call(port, delay_ms),
        }
    }
}

/// How the waits of a batch run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Serial,
    ThreadPerWait,
    ThreadPool,
    Async,
    Processes,
}

impl Engine {
    const ALL: [Engine; 5] = [
        Engine::Serial,
        Engine::ThreadPerWait,
        Engine::ThreadPool,
        Engine::Async,
        Engine::Processes,
    ];
    /// The engines that overlap waits without a bound of their own.
    const CONCURRENT: [Engine; 3] = [Engine::ThreadPerWait, Engine::ThreadPool, Engine::Async];

    /// The measurement name, the same in Rust and in the CPython script.
    fn name(self) -> &'static str {
        match self {
            Engine::Serial => "serial",
            Engine::ThreadPerWait => "thread per wait",
            Engine::ThreadPool => "thread pool",
            Engine::Async => "async",
            Engine::Processes => "processes",
        }
    }
}

/// Sizes by scale.
#[derive(Debug, Clone)]
struct Sizes {
    delay_ms: u64,
    serial_counts: Vec<usize>,
    counts: Vec<usize>,
    processes: usize,
    repetitions: usize,
    python_repetitions: usize,
}

impl Sizes {
    fn at(scale: Scale) -> Self {
        Sizes {
            delay_ms: scale.pick(10, 40, 100),
            serial_counts: scale.pick(vec![1, 2], vec![1, 4], vec![1, 8]),
            counts: scale.pick(vec![1, 2, 4], vec![1, 4, 16], vec![1, 8, 64, 256]),
            processes: scale.pick(2, 8, 16),
            repetitions: scale.pick(1, 2, 3),
            python_repetitions: scale.pick(1, 2, 3),
        }
    }

    fn counts(&self, engine: Engine) -> &[usize] {
        if engine == Engine::Serial {
            &self.serial_counts
        } else {
            &self.counts
        }
    }

    /// The largest N measured serially: where speed-ups are read.
    fn largest_serial(&self) -> usize {
        self.serial_counts.iter().copied().max().unwrap_or(1)
    }

    fn largest(&self) -> usize {
        self.counts.iter().copied().max().unwrap_or(1)
    }
}

/// The delay of the untimed batch that starts engines up.
const WARM_UP_DELAY_MS: u64 = 1;

/// Runs `count` waits of `delay_ms` on `engine` (through `runner` where it has one).
fn run_waits(
    engine: Engine,
    runner: Option<&Runner>,
    workload: Workload,
    count: usize,
    delay_ms: u64,
    port: u16,
) -> Vec<Result<u64, String>> {
    let flat = |results: Vec<Result<Result<u64, String>, TaskError>>| -> Vec<Result<u64, String>> {
        results
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()).and_then(|inner| inner))
            .collect()
    };
    let plain = |results: Vec<Result<u64, TaskError>>| -> Vec<Result<u64, String>> {
        results
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    };
    let Some(runner) = runner else {
        return std::thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .map(|_| scope.spawn(move || workload.call(delay_ms, port)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
                .collect()
        });
    };
    let delays = std::iter::repeat_n(delay_ms, count);
    let requests = std::iter::repeat_n((port, delay_ms), count);
    match (workload, engine) {
        (Workload::Sleep, Engine::Async) => plain(runner.map(async_sleep_ms, delays)),
        (Workload::Sleep, _) => plain(runner.map(sleep_ms, delays)),
        (Workload::RoundTrip, Engine::Async) => flat(runner.map(round_trip_async, requests)),
        (Workload::RoundTrip, _) => flat(runner.map(round_trip, requests)),
    }
}

/// Times `repetitions` batches of `count` waits (after an untimed 1 ms batch); every wait must
/// come back with its delay.
fn time_waits(
    engine: Engine,
    runner: Option<&Runner>,
    workload: Workload,
    count: usize,
    sizes: &Sizes,
    port: u16,
) -> Result<Vec<f64>, LabError> {
    let context = format!("{} × {} on {}", count, workload.name(), engine.name());
    let check = |results: Vec<Result<u64, String>>, delay: u64| -> Result<(), LabError> {
        for result in results {
            match result {
                Ok(echoed) if echoed == delay => {}
                Ok(echoed) => {
                    return Err(LabError::engine(
                        &context,
                        format!("a wait of {delay} ms came back as {echoed}"),
                    ));
                }
                Err(error) => return Err(LabError::engine(&context, error)),
            }
        }
        Ok(())
    };
    check(
        run_waits(engine, runner, workload, count, WARM_UP_DELAY_MS, port),
        WARM_UP_DELAY_MS,
    )?;
    let mut samples = Vec::with_capacity(sizes.repetitions);
    for _ in 0..sizes.repetitions {
        let (results, seconds) =
            timed(|| run_waits(engine, runner, workload, count, sizes.delay_ms, port));
        check(results, sizes.delay_ms)?;
        samples.push(seconds);
    }
    Ok(samples)
}

fn start(mode: Mode) -> Result<Runner, LabError> {
    Runner::new(mode).map_err(|e| LabError::engine(format!("starting {mode}"), e))
}

fn params(workload: Workload, count: usize) -> [(&'static str, Value); 2] {
    [("workload", workload.name().into()), ("n", count.into())]
}

/// All measurements (Rust's and CPython's), read back by language, workload, engine and N.
struct Results<'a> {
    found: Findings<'a>,
    sizes: &'a Sizes,
}

impl Results<'_> {
    fn summary(
        &self,
        implementation: Implementation,
        workload: Workload,
        engine: Engine,
        count: usize,
    ) -> Option<&Summary> {
        self.found
            .summary(engine.name(), implementation, &params(workload, count))
    }

    fn speedup(
        &self,
        implementation: Implementation,
        workload: Workload,
        engine: Engine,
        count: usize,
    ) -> Option<f64> {
        let serial = self.summary(implementation, workload, Engine::Serial, count)?;
        let run = self.summary(implementation, workload, engine, count)?;
        Some(speedup(serial, run))
    }

    fn implementations(&self) -> Vec<Implementation> {
        self.found.implementations()
    }

    /// `(label, value)` of `measure` for every language and workload that has it.
    fn each(
        &self,
        measure: impl FnMut(Implementation, Workload) -> Option<f64>,
    ) -> Vec<(String, f64)> {
        per_language_and_workload(
            &self.implementations(),
            &Workload::ALL,
            Workload::name,
            measure,
        )
    }
}

impl Experiment for IoBound {
    fn id(&self) -> &'static str {
        "io-bound"
    }

    fn title(&self) -> &'static str {
        "IO-bound work: sleeps and TCP round trips, serial against concurrent"
    }

    fn seed_section(&self) -> &'static str {
        "2, 4"
    }

    fn run(&self, ctx: &mut Context<'_>) -> Result<ExperimentReport, LabError> {
        let sizes = Sizes::at(ctx.scale());
        let server = DelayServer::start()?;
        let port = server.port();
        let total = Engine::ALL
            .iter()
            .map(|e| sizes.counts(*e).len() as u64)
            .sum::<u64>()
            + 1;
        let mut done = 0;
        let mut measurements = Vec::new();
        for engine in Engine::ALL {
            let shared = match engine {
                Engine::Serial => Some(start(Mode::Serial)?),
                Engine::Async => Some(start(Mode::Async {
                    concurrency: sizes.largest(),
                })?),
                Engine::Processes => Some(start(Mode::Processes(sizes.processes))?),
                Engine::ThreadPerWait | Engine::ThreadPool => None,
            };
            for &count in sizes.counts(engine) {
                let pool = match engine {
                    Engine::ThreadPool => Some(start(Mode::Threads(count))?),
                    _ => None,
                };
                let runner = shared.as_ref().or(pool.as_ref());
                for workload in Workload::ALL {
                    let samples = time_waits(engine, runner, workload, count, &sizes, port)?;
                    let mut measurement =
                        Measurement::new(engine.name(), Implementation::Rust, "s", samples)
                            .param("workload", workload.name())
                            .param("n", count)
                            .param("delay_ms", sizes.delay_ms);
                    if engine == Engine::Processes {
                        measurement = measurement.param("workers", sizes.processes);
                    }
                    measurements.push(measurement);
                }
                done += 1;
                ctx.progress(done, total);
            }
        }
        let csv = |counts: &[usize]| {
            counts
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let python = ctx.python(
            "io_bound",
            include_str!("../../../python/io_bound.py"),
            &[
                sizes.delay_ms.to_string(),
                csv(&sizes.serial_counts),
                csv(&sizes.counts),
                sizes.processes.to_string(),
                sizes.python_repetitions.to_string(),
                port.to_string(),
            ],
        )?;
        drop(server);
        ctx.progress(total, total);

        let mut report = ExperimentReport {
            measurements,
            ..Default::default()
        };
        findings::add_python(&mut report, python.as_ref());
        let results = Results {
            found: Findings::new(&report.measurements),
            sizes: &sizes,
        };
        report.verdicts = verdicts(&results);
        report.table = table(&results);
        report.charts = results
            .implementations()
            .into_iter()
            .flat_map(|i| Workload::ALL.map(|w| chart(&results, i, w)))
            .collect();
        report.method = format!(
            "N tasks each wait {delay} ms — a sleep, or a round trip to a local TCP server (in \
             this process, tokio) that answers after {delay} ms; each round trip connects, \
             sends, waits, reads the echo and closes. N = {counts} ({serial} for serial, which \
             takes N × {delay} ms). Engines: serial; one OS thread per wait spawned inside the \
             timing; a thread pool of N threads and N coroutines on one tokio event loop \
             (triad::Runner; async mode uses tokio's timer and sockets); {processes} worker \
             processes (triad::Runner). Pools start before timing; one untimed batch of 1 ms \
             waits warms each engine; then {reps} timed batches. CPython ({py_reps} batches): \
             time.sleep / blocking sockets serially, one threading.Thread per wait, a \
             ThreadPoolExecutor of N (started before timing), asyncio.sleep / open_connection \
             under asyncio.gather, and a multiprocessing.Pool of {processes}, against the same \
             server.",
            delay = sizes.delay_ms,
            counts = csv(&sizes.counts),
            serial = csv(&sizes.serial_counts),
            processes = sizes.processes,
            reps = sizes.repetitions,
            py_reps = sizes.python_repetitions,
        );
        Ok(report)
    }
}

fn table(results: &Results<'_>) -> Table {
    let mut table = Table::new([
        "workload",
        "mode",
        "N",
        "Rust",
        "Rust speed-up",
        "CPython",
        "CPython speed-up",
    ]);
    for workload in Workload::ALL {
        for engine in Engine::ALL {
            for &count in results.sizes.counts(engine) {
                let mode = match engine {
                    Engine::Processes => format!("processes ({})", results.sizes.processes),
                    _ => engine.name().to_owned(),
                };
                let mut row = vec![workload.name().to_owned(), mode, count.to_string()];
                for implementation in [Implementation::Rust, Implementation::Python] {
                    row.push(
                        results
                            .summary(implementation, workload, engine, count)
                            .map_or("—".to_owned(), |s| format_with_spread(s, format_seconds)),
                    );
                    row.push(
                        results
                            .speedup(implementation, workload, engine, count)
                            .map_or("—".to_owned(), times),
                    );
                }
                table.row(row);
            }
        }
    }
    table
}

/// Total time against N for one language and workload, a line per engine.
fn chart(results: &Results<'_>, implementation: Implementation, workload: Workload) -> Chart {
    let series = Engine::ALL
        .iter()
        .map(|&engine| Series {
            label: match engine {
                Engine::Processes => format!("processes ({})", results.sizes.processes),
                _ => engine.name().to_owned(),
            },
            points: results
                .sizes
                .counts(engine)
                .iter()
                .filter_map(|n| {
                    let summary = results.summary(implementation, workload, engine, *n)?;
                    Some(Point::from_summary(*n as f64, summary))
                })
                .collect(),
        })
        .filter(|series| !series.points.is_empty())
        .collect();
    Chart {
        title: format!(
            "{}: total time of N {}s of {} ms",
            language(implementation),
            workload.name(),
            results.sizes.delay_ms
        ),
        kind: ChartKind::Line,
        x_label: "N (waits)".to_owned(),
        y_label: "total time (s)".to_owned(),
        x_scale: Axis::Log,
        y_scale: Axis::Log,
        series,
        ..Default::default()
    }
}

/// Concurrency counts as overlapping the waits when it reaches this share of the ideal N×.
const OVERLAP_SHARE: f64 = 0.6;

fn verdicts(results: &Results<'_>) -> Vec<Verdict> {
    let sizes = results.sizes;
    let n = sizes.largest_serial();
    let largest = sizes.largest();
    let delay_s = sizes.delay_ms as f64 / 1e3;
    let mut verdicts = Vec::new();

    let mut concurrent = Vec::new();
    for engine in Engine::CONCURRENT {
        concurrent.extend(
            results
                .each(|i, w| results.speedup(i, w, engine, n))
                .into_iter()
                .map(|(label, s)| (format!("{label}, {}", engine.name()), s)),
        );
    }
    verdicts.push(Verdict {
        claim: "For IO-bound work, concurrency improves performance markedly.".into(),
        quote: "并发可以显著提升性能".into(),
        outcome: outcome_where(&concurrent, |s| s >= OVERLAP_SHARE * n as f64),
        evidence: format!(
            "speed-up over serial at N = {n} (ideal {n}×): {}",
            listed(&concurrent, times)
        ),
    });

    let mut at_largest = Vec::new();
    for engine in [Engine::ThreadPool, Engine::Async] {
        at_largest.extend(
            results
                .each(|i, w| {
                    results
                        .summary(i, w, engine, largest)
                        .map(|s| s.median / delay_s)
                })
                .into_iter()
                .map(|(label, s)| (format!("{label}, {}", engine.name()), s)),
        );
    }
    verdicts.push(Verdict {
        claim: "What concurrency saves is the time spent waiting on IO: N waits take about one."
            .into(),
        quote: "**性能提升** | I/O等待时间 | 计算速度".into(),
        outcome: outcome_where(&at_largest, |r| r <= 2.0),
        evidence: format!(
            "{largest} waits of {} ms took, in units of one wait: {}",
            sizes.delay_ms,
            listed(&at_largest, |r| format!("{r:.2}"))
        ),
    });

    let one_thread = results.each(|i, w| results.speedup(i, w, Engine::Async, n));
    verdicts.push(Verdict {
        claim: "Concurrency works on a single core: one event-loop thread overlaps all the waits."
            .into(),
        quote: "**CPU需求** | 单核可以 | 需要多核".into(),
        outcome: outcome_where(&one_thread, |s| s >= OVERLAP_SHARE * n as f64),
        evidence: format!(
            "coroutines on one thread, speed-up over serial at N = {n}: {}",
            listed(&one_thread, times)
        ),
    });

    let pool_over_async = results.each(|i, w| {
        let pool = results.summary(i, w, Engine::ThreadPool, largest)?;
        let coroutines = results.summary(i, w, Engine::Async, largest)?;
        Some(pool.median / coroutines.median)
    });
    let outcome = if pool_over_async.is_empty() {
        Outcome::Depends
    } else if pool_over_async.iter().all(|(_, r)| *r > 1.05) {
        Outcome::Confirmed
    } else if pool_over_async.iter().all(|(_, r)| *r < 0.95) {
        Outcome::Refuted
    } else {
        Outcome::Depends
    };
    verdicts.push(Verdict {
        claim: "For IO-bound work a thread pool is second best to asyncio.".into(),
        quote: "方案2：使用线程池（次优）".into(),
        outcome,
        evidence: format!(
            "thread pool time / coroutine time at N = {largest}: {}{}",
            listed(&pool_over_async, times),
            if outcome == Outcome::Depends {
                " — within a few percent where both overlap every wait; what a thread costs \
                 shows at thousands of waits (c10k, memory-per-unit)"
            } else {
                ""
            }
        ),
    });

    let processes_over_pool: Vec<(String, f64)> = sizes
        .counts
        .iter()
        .flat_map(|&count| {
            results
                .each(|i, w| {
                    let processes = results.summary(i, w, Engine::Processes, count)?;
                    let pool = results.summary(i, w, Engine::ThreadPool, count)?;
                    Some(processes.median / pool.median)
                })
                .into_iter()
                .map(move |(label, r)| (format!("{label}, N = {count}"), r))
        })
        .collect();
    verdicts.push(Verdict {
        claim: "Processes are for CPU-bound work; for IO they bring nothing threads and \
                coroutines do not."
            .into(),
        quote: "**适用场景** | CPU密集型 | I/O密集型 | 高并发I/O".into(),
        outcome: outcome_where(&processes_over_pool, |r| r >= 0.9),
        evidence: format!(
            "time on {} worker processes / time on a pool of N threads: {} (each process \
             overlaps one wait; beyond {} waits they queue)",
            sizes.processes,
            listed(&processes_over_pool, times),
            sizes.processes
        ),
    });
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_echoes_its_delay_in_any_mode() {
        let server = DelayServer::start().unwrap();
        let port = server.port();
        assert_eq!(round_trip::call(port, 5), Ok(5));
        for mode in [Mode::Serial, Mode::Async { concurrency: 4 }] {
            let runner = Runner::new(mode).unwrap();
            let engine = if mode == Mode::Serial {
                Engine::Serial
            } else {
                Engine::Async
            };
            let results = run_waits(engine, Some(&runner), Workload::RoundTrip, 3, 2, port);
            assert_eq!(results, vec![Ok(2); 3], "{mode}");
        }
        let threads = run_waits(Engine::ThreadPerWait, None, Workload::RoundTrip, 3, 2, port);
        assert_eq!(threads, vec![Ok(2); 3]);
    }

    #[test]
    fn every_serial_count_is_also_measured_concurrently() {
        for scale in [Scale::Toy, Scale::Quick, Scale::Full] {
            let sizes = Sizes::at(scale);
            for n in &sizes.serial_counts {
                assert!(sizes.counts.contains(n), "{scale:?}: N = {n}");
            }
        }
    }

    #[test]
    fn a_refused_connection_is_an_error_not_a_panic() {
        let server = DelayServer::start().unwrap();
        let port = server.port();
        drop(server);
        assert!(round_trip::call(port, 1).is_err());
        assert_eq!(parse_reply("7\n"), Ok(7));
        assert!(parse_reply("").is_err());
    }

    fn measured(name: &str, implementation: Implementation, n: usize, s: f64) -> Measurement {
        Measurement::new(name, implementation, "s", vec![s])
            .param("workload", "sleep")
            .param("n", n)
    }

    #[test]
    fn verdicts_follow_the_numbers() {
        let sizes = Sizes::at(Scale::Toy);
        let concurrent = |n: usize| {
            [
                measured("thread per wait", Implementation::Rust, n, 0.0101),
                measured("thread pool", Implementation::Rust, n, 0.0102),
                measured("async", Implementation::Rust, n, 0.0100),
                // Two worker processes: a second round of waits beyond two.
                measured(
                    "processes",
                    Implementation::Rust,
                    n,
                    0.0101 * n.div_ceil(2) as f64,
                ),
            ]
        };
        let rust: Vec<Measurement> = [(1, 0.01), (2, 0.02)]
            .into_iter()
            .map(|(n, s)| measured("serial", Implementation::Rust, n, s))
            .chain([1, 2, 4].into_iter().flat_map(concurrent))
            .collect();
        let results = Results {
            found: Findings::new(&rust),
            sizes: &sizes,
        };
        let outcomes: Vec<Outcome> = verdicts(&results).iter().map(|v| v.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Confirmed, // ~2× at N = 2
                Outcome::Confirmed, // 4 waits in about one
                Outcome::Confirmed, // one loop thread overlaps them
                Outcome::Depends,   // pool and coroutines within 5 %
                Outcome::Confirmed, // processes never beat the pool; beyond 2 waits they queue
            ]
        );
    }
}
