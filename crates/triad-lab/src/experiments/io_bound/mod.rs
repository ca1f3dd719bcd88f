//! `io-bound` (seed §2, §4): waiting is what concurrency is for.
//!
//! N tasks each wait the same delay, in two ways: a sleep (the seed's `time.sleep` /
//! `asyncio.sleep`), and a real round trip to a local TCP server ([`delay_server`]) that answers
//! after the delay — connect, send, wait, read, close. Each batch runs serially, on one OS
//! thread per wait (spawned inside the timing, as the seed's §2 test does), on a pool of N
//! threads and as N coroutines on one event loop (both through triad's [`Runner`]), and on a pool
//! of a fixed number of worker processes. The total time against N shows which models overlap
//! the waits. Engines start before timing and run one untimed 1 ms batch first; each batch is
//! then timed several times. The CPython baseline does the same with `time.sleep`,
//! `threading.Thread`, `ThreadPoolExecutor`, `asyncio.gather` and `multiprocessing.Pool`, and
//! talks to the same Rust server.

use triad::workloads::{async_sleep_ms, sleep_ms};
use triad::{Mode, Runner, TaskError};

use super::delay_server::{DelayServer, round_trip, round_trip_async};
use super::scaling::Timings;
use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Repeat, Series};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Implementation, Measurement, Outcome, Point, Scale as Axis, Series as Line,
    Table, Verdict,
};
use crate::stats::{format_seconds, format_with_spread, timed};
use crate::verdict::{Ratio, listed_ratios, outcome_of, times, verdict};

/// The `io-bound` experiment.
#[derive(Debug)]
pub(crate) struct IoBound;

names! {
    /// What a task waits on, by the names its measurements carry.
    enum Workload {
        Sleep => "sleep",
        RoundTrip => "tcp round trip",
    }
}

impl Workload {
    /// One wait on the calling thread.
    fn call(self, delay_ms: u64, port: u16) -> Result<u64, String> {
        match self {
            Workload::Sleep => Ok(sleep_ms::call(delay_ms)),
            Workload::RoundTrip => round_trip::call(port, delay_ms),
        }
    }
}

names! {
    /// How the waits of a batch run: the measurement names, the same in `python/io_bound.py`.
    enum Engine {
        Serial => "serial",
        ThreadPerWait => "thread per wait",
        ThreadPool => "thread pool",
        Async => "async",
        Processes => "processes",
    }
}

impl Engine {
    /// The engines that overlap waits without a bound of their own.
    const CONCURRENT: [Engine; 3] = [Engine::ThreadPerWait, Engine::ThreadPool, Engine::Async];
}

/// Sizes by scale.
#[derive(Debug, Clone)]
struct Sizes {
    delay_ms: u64,
    serial_counts: &'static [usize],
    counts: &'static [usize],
    processes: usize,
    /// Every batch: one untimed batch of 1 ms waits first, then the samples.
    repeat: Repeat,
    python_repetitions: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        delay_ms: 20,
        serial_counts: &[1, 2],
        counts: &[1, 2, 4],
        processes: 2,
        repeat: Repeat::after_one(2),
        python_repetitions: 3,
    },
    Sizes {
        delay_ms: 40,
        serial_counts: &[1, 4],
        counts: &[1, 4, 16],
        processes: 8,
        repeat: Repeat::after_one(2),
        python_repetitions: 2,
    },
    Sizes {
        delay_ms: 100,
        serial_counts: &[1, 8],
        counts: &[1, 8, 64, 256],
        processes: 16,
        repeat: Repeat::after_one(3),
        python_repetitions: 3,
    },
);

impl Sizes {
    fn counts(&self, engine: Engine) -> &'static [usize] {
        if engine == Engine::Serial {
            self.serial_counts
        } else {
            self.counts
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

/// One batch of `count` waits of `delay_ms` on `engine`: its wall time, every wait having come
/// back with its delay.
fn time_waits(
    engine: Engine,
    runner: Option<&Runner>,
    workload: Workload,
    count: usize,
    delay_ms: u64,
    port: u16,
) -> Result<f64, LabError> {
    let (results, seconds) = timed(|| run_waits(engine, runner, workload, count, delay_ms, port));
    for result in results {
        let context = || format!("{} × {} on {}", count, workload.name(), engine.name());
        match result {
            Ok(echoed) if echoed == delay_ms => {}
            Ok(echoed) => {
                return Err(LabError::engine(
                    context(),
                    format!("a wait of {delay_ms} ms came back as {echoed}"),
                ));
            }
            Err(error) => return Err(LabError::engine(context(), error)),
        }
    }
    Ok(seconds)
}

fn start(mode: Mode) -> Result<Runner, LabError> {
    Runner::new(mode).map_err(|e| LabError::engine(format!("starting {mode}"), e))
}

/// The batches are counted by their waits.
const COUNT: &str = "n";

/// The timed batches, by workload, engine and waits.
type Batches<'a> = Timings<'a, Workload, Engine>;

/// All measurements (Rust's and CPython's), read back by language, workload, engine and N.
struct Results<'a> {
    batches: Batches<'a>,
    sizes: &'a Sizes,
}

impl Results<'_> {
    /// The speed-up of `engine` over serial on N waits.
    fn speedup(
        &self,
        implementation: Implementation,
        workload: Workload,
        engine: Engine,
        count: usize,
    ) -> Option<f64> {
        self.batches.speedup(
            implementation,
            workload,
            (engine, count),
            (Engine::Serial, count),
        )
    }

    /// [`speedup`](Self::speedup) with its range.
    fn speedup_ratio(
        &self,
        implementation: Implementation,
        workload: Workload,
        engine: Engine,
        count: usize,
    ) -> Option<Ratio> {
        self.batches.speedup_ratio(
            implementation,
            workload,
            (engine, count),
            (Engine::Serial, count),
        )
    }
}

impl Experiment for IoBound {
    fn about(&self) -> About {
        About {
            id: "io-bound",
            title: "IO-bound work: sleeps and TCP round trips, serial against concurrent",
            seed_section: "2, 4",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let server = DelayServer::start()?;
        let port = server.port();
        let serial = start(Mode::Serial)?;
        let coroutines = start(Mode::Async {
            concurrency: sizes.largest(),
        })?;
        let processes = start(Mode::Processes(sizes.processes))?;
        let pools = sizes
            .counts
            .iter()
            .map(|&count| start(Mode::Threads(count)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut plan = Plan::new();
        for &engine in Engine::ALL {
            for (index, &count) in sizes.counts(engine).iter().enumerate() {
                let runner = match engine {
                    Engine::Serial => Some(&serial),
                    Engine::Async => Some(&coroutines),
                    Engine::Processes => Some(&processes),
                    Engine::ThreadPool => Some(&pools[index]),
                    Engine::ThreadPerWait => None,
                };
                for &workload in Workload::ALL {
                    let mut measurement =
                        Measurement::new(engine.name(), Implementation::Rust, "s", Vec::new())
                            .params(&Batches::params(COUNT, workload, count))
                            .param("delay_ms", sizes.delay_ms);
                    if engine == Engine::Processes {
                        measurement = measurement.param("workers", sizes.processes);
                    }
                    let waits =
                        move |delay_ms| time_waits(engine, runner, workload, count, delay_ms, port);
                    plan.series(
                        Series::of(measurement, sizes.repeat, move || waits(sizes.delay_ms))
                            .warmed_by(move || waits(WARM_UP_DELAY_MS).map(drop)),
                    );
                }
            }
        }
        plan.python(Baseline::new(
            "io_bound",
            include_str!("../../../python/io_bound.py"),
            [
                sizes.delay_ms.to_string(),
                csv(sizes.serial_counts),
                csv(sizes.counts),
                sizes.processes.to_string(),
                sizes.python_repetitions.to_string(),
                port.to_string(),
            ],
        ));
        let measured = bench.run(plan);
        drop(server);
        measured
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        let sizes = SIZES.at(findings.scale());
        let results = Results {
            batches: Timings::new(*findings, COUNT),
            sizes,
        };
        Judgement {
            method: format!(
                "N tasks each wait {delay} ms — a sleep, or a round trip to a local TCP server \
                 (in this process, tokio) that answers after {delay} ms; each round trip \
                 connects, sends, waits, reads the echo and closes. N = {counts} ({serial} for \
                 serial, which takes N × {delay} ms). Engines: serial; one OS thread per wait \
                 spawned inside the timing; a thread pool of N threads and N coroutines on one \
                 tokio event loop (triad::Runner; async mode uses tokio's timer and sockets); \
                 {processes} worker processes (triad::Runner). Pools start before timing; one \
                 untimed batch of {WARM_UP_DELAY_MS} ms waits warms each engine; then {reps} \
                 timed batches. CPython ({py_reps} batches): time.sleep / blocking sockets \
                 serially, one threading.Thread per wait, a ThreadPoolExecutor of N (started \
                 before timing), asyncio.sleep / open_connection under asyncio.gather, and a \
                 multiprocessing.Pool of {processes}, against the same server.",
                delay = sizes.delay_ms,
                counts = csv(sizes.counts),
                serial = csv(sizes.serial_counts),
                processes = sizes.processes,
                reps = sizes.repeat.samples,
                py_reps = sizes.python_repetitions,
            ),
            table: table(&results),
            charts: findings
                .implementations()
                .into_iter()
                .flat_map(|i| Workload::ALL.iter().map(move |w| (i, *w)))
                .map(|(i, w)| chart(&results, i, w))
                .collect(),
            verdicts: verdicts(&results),
            notes: Vec::new(),
        }
    }
}

/// Counts as `1,4,16`.
fn csv(counts: &[usize]) -> String {
    counts
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
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
    for &workload in Workload::ALL {
        for &engine in Engine::ALL {
            for &count in results.sizes.counts(engine) {
                let mode = match engine {
                    Engine::Processes => format!("processes ({})", results.sizes.processes),
                    _ => engine.name().to_owned(),
                };
                let mut row = vec![workload.name().to_owned(), mode, count.to_string()];
                for implementation in [Implementation::Rust, Implementation::Python] {
                    row.push(
                        results
                            .batches
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
        .map(|&engine| Line {
            label: match engine {
                Engine::Processes => format!("processes ({})", results.sizes.processes),
                _ => engine.name().to_owned(),
            },
            points: results
                .sizes
                .counts(engine)
                .iter()
                .filter_map(|n| {
                    let summary = results
                        .batches
                        .summary(implementation, workload, engine, *n)?;
                    Some(Point::from_summary(*n as f64, summary))
                })
                .collect(),
        })
        .filter(|series| !series.points.is_empty())
        .collect();
    Chart {
        title: format!(
            "{}: total time of N {}s of {} ms",
            implementation.label(),
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
                .batches
                .each(|i, w| results.speedup_ratio(i, w, engine, n))
                .into_iter()
                .map(|(label, s)| (format!("{label}, {}", engine.name()), s)),
        );
    }
    verdicts.push(verdict(
        "For IO-bound work, concurrency improves performance markedly.",
        "并发可以显著提升性能",
        outcome_of(&concurrent, |r| r.at_least(OVERLAP_SHARE * n as f64)),
        format!(
            "speed-up over serial at N = {n} (ideal {n}×): {}",
            listed_ratios(&concurrent)
        ),
    ));

    let mut at_largest = Vec::new();
    for engine in [Engine::ThreadPool, Engine::Async] {
        at_largest.extend(
            results
                .batches
                .each(|i, w| {
                    results
                        .batches
                        .summary(i, w, engine, largest)
                        .map(|s| Ratio::measured(&s.scaled(1.0 / delay_s)))
                })
                .into_iter()
                .map(|(label, s)| (format!("{label}, {}", engine.name()), s)),
        );
    }
    verdicts.push(verdict(
        "What concurrency saves is the time spent waiting on IO: N waits take about one.",
        "**性能提升** | I/O等待时间 | 计算速度",
        outcome_of(&at_largest, |r| r.at_most(2.0)),
        format!(
            "{largest} waits of {} ms took, in units of one wait: {}",
            sizes.delay_ms,
            listed_ratios(&at_largest)
        ),
    ));

    let one_thread = results
        .batches
        .each(|i, w| results.speedup_ratio(i, w, Engine::Async, n));
    verdicts.push(verdict(
        "Concurrency works on a single core: one event-loop thread overlaps all the waits.",
        "**CPU需求** | 单核可以 | 需要多核",
        outcome_of(&one_thread, |r| r.at_least(OVERLAP_SHARE * n as f64)),
        format!(
            "coroutines on one thread, speed-up over serial at N = {n}: {}",
            listed_ratios(&one_thread)
        ),
    ));

    let pool_over_async = results.batches.each(|i, w| {
        let pool = results.batches.summary(i, w, Engine::ThreadPool, largest)?;
        let coroutines = results.batches.summary(i, w, Engine::Async, largest)?;
        Some(Ratio::of(pool, coroutines))
    });
    let outcome = outcome_of(&pool_over_async, |r| r.at_least(1.0));
    verdicts.push(verdict(
        "For IO-bound work a thread pool is second best to asyncio.",
        "方案2：使用线程池（次优）",
        outcome,
        format!(
            "thread pool time / coroutine time at N = {largest}: {}{}",
            listed_ratios(&pool_over_async),
            if outcome == Outcome::WithinNoise {
                " — where both overlap every wait, what a thread costs shows at thousands of \
                 waits (c10k, memory-per-unit)"
            } else {
                ""
            }
        ),
    ));

    let processes_over_pool: Vec<(String, Ratio)> = sizes
        .counts
        .iter()
        .flat_map(|&count| {
            results
                .batches
                .each(|i, w| {
                    let processes = results.batches.summary(i, w, Engine::Processes, count)?;
                    let pool = results.batches.summary(i, w, Engine::ThreadPool, count)?;
                    Some(Ratio::of(processes, pool))
                })
                .into_iter()
                .map(move |(label, r)| (format!("{label}, N = {count}"), r))
        })
        .collect();
    verdicts.push(verdict(
        "Processes are for CPU-bound work; for IO they bring nothing threads and \
                coroutines do not.",
        "**适用场景** | CPU密集型 | I/O密集型 | 高并发I/O",
        outcome_of(&processes_over_pool, |r| r.at_least(0.9)),
        format!(
            "time on {} worker processes / time on a pool of N threads: {} (each process \
             overlaps one wait; beyond {} waits they queue)",
            sizes.processes,
            listed_ratios(&processes_over_pool),
            sizes.processes
        ),
    ));
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
        use crate::experiment::Scale;
        for scale in [Scale::Toy, Scale::Quick, Scale::Full] {
            let sizes = SIZES.at(scale);
            for n in sizes.serial_counts {
                assert!(sizes.counts.contains(n), "{scale:?}: N = {n}");
            }
        }
    }

    /// Three samples around `s`, 2 % apart: quartile ranges of about ±1 %.
    fn measured(name: &str, implementation: Implementation, n: usize, s: f64) -> Measurement {
        Measurement::new(name, implementation, "s", vec![0.98 * s, s, 1.02 * s])
            .param("workload", "sleep")
            .param("n", n)
    }

    #[test]
    fn verdicts_follow_the_numbers() {
        let sizes = SIZES.at(crate::experiment::Scale::Toy);
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
        let machine = crate::machine::Machine::default();
        let results = Results {
            batches: Timings::new(
                Findings::new(&rust, crate::experiment::Scale::Toy, &machine),
                COUNT,
            ),
            sizes,
        };
        let outcomes: Vec<Outcome> = verdicts(&results).iter().map(|v| v.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Confirmed,   // ~2× at N = 2
                Outcome::Confirmed,   // 4 waits in about one
                Outcome::Confirmed,   // one loop thread overlaps them
                Outcome::WithinNoise, // pool and coroutines 2 % apart, inside their spread
                Outcome::Confirmed,   // processes never beat the pool; beyond 2 waits they queue
            ]
        );
    }
}
