//! `server-models` (seed §9, the rows *API service* and *realtime messages*): the same small
//! HTTP/1.1 JSON API ([`http`]) served by every model — Rust: a thread per connection, a thread
//! pool, prefork processes sharing one listening socket, tokio, the lab's reference event loop
//! ([`servers`]); CPython:
//! `ThreadingHTTPServer`, a `multiprocessing` prefork, `asyncio.start_server`
//! (`python/server_models.py`) — under the same load from a Rust load generator in a process of
//! its own ([`load`]): C keep-alive connections in closed loops, each request 50 µs of CPU
//! (`cpu`) or a 10 ms wait (`wait`).
//!
//! Every run binds a fresh listening socket on 127.0.0.1, starts the server's process(es),
//! puts the load on, closes the stop socket and waits for every server process to answer with
//! its peak memory; CPython's servers are scripts the lab starts and stops. The first run of
//! each model also sends the API's probes, and a model that answers any of them differently
//! from the others fails the experiment. Requests/s and latency quantiles are sampled per
//! timed window.

mod http;
#[doc(hidden)]
pub use http::fuzz_http;
mod judge;
pub(crate) mod load;
mod servers;

use std::time::Duration;

use triad::{ProcessPool, StartMethod};

use self::http::{PROBES, answer};
pub(crate) use self::http::{Work, fetch_blocking};
pub(crate) use self::judge::{api_service, realtime};
pub(crate) use self::load::fetch_async;
use self::load::{Load, LoadError, LoadJob, generate};
pub(crate) use self::servers::{Model, RunningServer};
use super::cost_support::labelled;
use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan};
use crate::python::{Baseline, Python};
use crate::results::{Implementation, Measurement};

/// The `server-models` experiment.
#[derive(Debug)]
pub(crate) struct ServerModels;

names! {
    /// The server models, by the names their measurements carry.
    pub(crate) enum Server {
        ThreadPerConnection => "thread per connection",
        ThreadPool => "thread pool",
        Prefork => "prefork",
        Tokio => "tokio",
        ReferenceLoop => "reference event loop",
        PyThreading => "ThreadingHTTPServer",
        PyPrefork => "multiprocessing prefork",
        PyAsyncio => "asyncio.start_server",
    }
}

impl Server {
    fn implementation(self) -> Implementation {
        match self {
            Server::PyThreading | Server::PyPrefork | Server::PyAsyncio => Implementation::Python,
            _ => Implementation::Rust,
        }
    }

    fn rust(self) -> Option<Model> {
        match self {
            Server::ThreadPerConnection => Some(Model::ThreadPerConnection),
            Server::ThreadPool => Some(Model::ThreadPool),
            Server::Prefork => Some(Model::Prefork),
            Server::Tokio => Some(Model::Tokio),
            Server::ReferenceLoop => Some(Model::ReferenceLoop),
            _ => None,
        }
    }

    /// The model's argument to `python/server_models.py`.
    fn script_model(self) -> &'static str {
        match self {
            Server::PyThreading => "threading",
            Server::PyPrefork => "prefork",
            _ => "asyncio",
        }
    }

    /// Event loops with a coroutine (task) per connection: the seed's recommendation. Prefork
    /// counts: each of its processes is an event loop (coroutines on every core); the thread
    /// models are the others.
    fn coroutines(self) -> bool {
        !matches!(
            self,
            Server::ThreadPerConnection | Server::ThreadPool | Server::PyThreading
        )
    }
}

names! {
    /// What is read of every run (after `model: `).
    enum Quantity {
        Rate => "requests/s",
        P50 => "latency p50",
        P99 => "latency p99",
        P999 => "latency p99.9",
        Peak => "peak resident",
        Served => "connections served",
        Probes => "probe answers matching",
    }
}

/// Sizes by scale.
#[derive(Debug)]
struct Sizes {
    /// Connections for the `cpu` work, and for the `wait` work.
    cpu: &'static [usize],
    wait: &'static [usize],
    warm_up_ms: u64,
    windows: usize,
    window_ms: u64,
    pool_threads: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        cpu: &[2, 8],
        wait: &[8],
        warm_up_ms: 30,
        windows: 2,
        window_ms: 30,
        pool_threads: 4,
    },
    Sizes {
        cpu: &[10, 1000],
        wait: &[100, 1000],
        warm_up_ms: 40,
        windows: 3,
        window_ms: 40,
        pool_threads: 32,
    },
    Sizes {
        cpu: &[10, 1000, 10_000],
        wait: &[100, 1000, 10_000],
        warm_up_ms: 100,
        windows: 4,
        window_ms: 100,
        pool_threads: 32,
    },
);

impl Sizes {
    fn connections(&self, work: Work) -> &'static [usize] {
        if work == Work::Cpu {
            self.cpu
        } else {
            self.wait
        }
    }
}

/// The works measured.
const WORKS: [Work; 2] = [Work::Cpu, Work::Wait];

/// Processes of the prefork models: one per core, at least two.
fn prefork_processes(cores: usize) -> usize {
    cores.clamp(2, 8)
}

/// The most connections `ThreadingHTTPServer` is run with (see the note past it).
const THREADING_MOST: usize = 1000;

/// The warm-up's share per connection, µs.
const WARM_UP_PER_CONNECTION_US: u64 = 50;

/// How long any server or load process may run before it is killed.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// One run's figures, from the load generator and the server.
#[derive(Debug)]
struct Run {
    load: Load,
    peak_resident: u64,
    pids: Vec<u32>,
    port: u16,
    refused: Option<String>,
}

/// Why a run did not give figures: a wrong answer fails the experiment, anything else leaves
/// a note.
enum RunError {
    Wrong(String),
    Broke(String),
}

impl From<LoadError> for RunError {
    fn from(error: LoadError) -> Self {
        match error {
            LoadError::WrongAnswer(why) => RunError::Wrong(why),
            LoadError::Failed(why) => RunError::Broke(why),
        }
    }
}

fn load_job(port: u16, connections: usize, work: Work, sizes: &Sizes, probe: bool) -> LoadJob {
    LoadJob {
        port,
        connections,
        work,
        // Long enough for every connection's first answer (50 µs of CPU each) before the clock.
        warm_up: Duration::from_millis(sizes.warm_up_ms)
            + Duration::from_micros(WARM_UP_PER_CONNECTION_US * connections as u64),
        windows: sizes.windows,
        window: Duration::from_millis(sizes.window_ms),
        connect_timeout: Duration::from_secs(10),
        probe,
    }
}

/// The load generator's worker process, one for the whole experiment (its memory is not
/// measured, so it need not start fresh).
fn load_generator() -> Result<ProcessPool, LabError> {
    ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::ForkServer)
        .build()
        .map_err(|e| LabError::engine("starting the load generator", e))
}

/// `job`'s load, from the load generator's process.
fn put_load(generator: &ProcessPool, job: LoadJob) -> Result<Load, RunError> {
    generator
        .submit_with_timeout(generate, job, PROCESS_TIMEOUT)
        .map_err(|e| RunError::Broke(format!("the load generator: {e}")))?
        .wait()
        .map_err(|e| RunError::Broke(format!("the load generator: {e}")))?
        .map_err(RunError::from)
}

/// One run of a Rust model: its server process(es) on a fresh socket, under `job`'s load.
fn run_rust(
    generator: &ProcessPool,
    model: Model,
    processes: usize,
    job: LoadJob,
    pool_threads: usize,
) -> Result<Run, RunError> {
    let server = RunningServer::start(model, processes, pool_threads, PROCESS_TIMEOUT)
        .map_err(RunError::Broke)?;
    let port = server.port();
    let load = put_load(generator, LoadJob { port, ..job })?;
    let stopped = server.stop();
    let mut run = Run {
        load,
        peak_resident: 0,
        pids: Vec::new(),
        port,
        refused: None,
    };
    for served in stopped.map_err(RunError::Broke)? {
        run.peak_resident += served.peak_resident;
        run.pids.push(served.pid);
        run.refused = run.refused.or(served.refused);
    }
    Ok(run)
}

/// One run of a CPython model: the script started, the load put on its port, the script
/// stopped.
fn run_python(
    generator: &ProcessPool,
    (python, scratch): (&Python, &std::path::Path),
    server: Server,
    processes: usize,
    job: LoadJob,
) -> Result<Run, RunError> {
    let baseline = Baseline::new(
        "server_models",
        include_str!("../../../python/server_models.py"),
        [server.script_model().to_owned(), processes.to_string()],
    );
    let broke = |e: LabError| RunError::Broke(e.to_string());
    let mut script = python.start(&baseline, scratch).map_err(broke)?;
    let ready = script.next_line().map_err(broke)?;
    let port = ready["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| RunError::Broke(format!("the script's first line: {ready}")))?;
    let load = put_load(generator, LoadJob { port, ..job })?;
    let done = script.finish().map_err(broke)?;
    let pids = done["pids"]
        .as_array()
        .map(|pids| {
            pids.iter()
                .filter_map(|p| p.as_u64())
                .map(|p| p as u32)
                .collect()
        })
        .unwrap_or_default();
    Ok(Run {
        load,
        peak_resident: done["peak_resident"].as_u64().unwrap_or(0),
        pids,
        port,
        refused: None,
    })
}

/// Whether `run`'s probe answers are the API's; an error naming the first that is not.
fn check_probes(server: Server, run: &Run) -> Result<usize, String> {
    if run.load.probed.len() != PROBES.len() {
        return Err(format!(
            "{}: {} answers to {} probes",
            server.name(),
            run.load.probed.len(),
            PROBES.len()
        ));
    }
    for (line, (status, body)) in PROBES.iter().zip(&run.load.probed) {
        let expected = answer(line);
        if (*status, body) != (expected.status, &expected.body) {
            return Err(format!(
                "{} answered {line:?} with {status} {body} where the API answers {} {}",
                server.name(),
                expected.status,
                expected.body
            ));
        }
    }
    Ok(PROBES.len())
}

/// Records `run` of `server` with `work` at `connections`, and notes where it fell short.
fn record(
    measured: &mut Measured,
    (server, work, connections): (Server, Work, usize),
    run: &Run,
    sizes: &Sizes,
) {
    let implementation = server.implementation();
    let name = |q: Quantity| labelled(server.name(), q.name());
    let at = |m: Measurement| {
        m.param("work", work.name())
            .param("connections", connections)
    };
    let window_s = sizes.window_ms as f64 / 1e3;
    let rates = run
        .load
        .per_window
        .iter()
        .map(|n| *n as f64 / window_s)
        .collect();
    measured.measurement(at(Measurement::new(
        name(Quantity::Rate),
        implementation,
        "1/s",
        rates,
    )));
    for (index, quantity) in [Quantity::P50, Quantity::P99, Quantity::P999]
        .into_iter()
        .enumerate()
    {
        let samples: Vec<f64> = run
            .load
            .latency
            .iter()
            .map(|window| window[index])
            .filter(|value| value.is_finite())
            .collect();
        if !samples.is_empty() {
            measured.measurement(at(Measurement::new(
                name(quantity),
                implementation,
                "s",
                samples,
            )));
        }
    }
    measured.measurement(at(Measurement::new(
        name(Quantity::Peak),
        implementation,
        "bytes",
        vec![run.peak_resident as f64],
    )));
    measured.measurement(
        at(Measurement::new(
            name(Quantity::Served),
            implementation,
            "count",
            vec![run.load.served as f64],
        ))
        .param("port", run.port)
        .param("server pids", run.pids.clone())
        .param("load pid", run.load.pid),
    );
    let label = format!(
        "{} ({}) at {connections} connections, {}",
        server.name(),
        implementation.label(),
        work.name()
    );
    if let Some(why) = &run.load.connect_error {
        measured.note(format!(
            "{label}: {} of {connections} connections opened ({why}).",
            run.load.connected
        ));
    }
    if run.load.served < run.load.connected {
        measured.note(format!(
            "{label}: {} of {} connections got an answer during the run; the others waited \
             in the accept queue or the pool's queue ({} requests unanswered at the end).",
            run.load.served, run.load.connected, run.load.unanswered
        ));
    }
    if let Some(why) = &run.refused {
        measured.note(format!("{label}: the server dropped connections: {why}."));
    }
}

impl Experiment for ServerModels {
    fn about(&self) -> About {
        About {
            id: "server-models",
            title: "One HTTP JSON API in every server model, 10 to 10,000 connections",
            seed_section: "9",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let processes = prefork_processes(bench.machine().cores);
        let limit = load::raise_file_limit();
        let python = bench.python();
        let generator = load_generator()?;
        let generator = &generator;
        let mut plan = Plan::new();
        if let Err(note) = &python {
            plan.note(note.clone());
        }
        plan.note(format!(
            "The open-file limit (RLIMIT_NOFILE) was raised to its hard limit, {limit}, in the \
             lab and in every server and load process."
        ));
        let mut probed = Vec::new();
        for work in WORKS {
            for &connections in sizes.connections(work) {
                for &server in Server::ALL {
                    if server.implementation() == Implementation::Python && python.is_err() {
                        continue;
                    }
                    if server == Server::PyThreading && connections > THREADING_MOST {
                        plan.note(format!(
                            "ThreadingHTTPServer is not run at {connections} connections ({} \
                             work): a thread per connection under the GIL, that many threads \
                             overload a small machine for minutes and its run does not end in \
                             time; it leaves most of {THREADING_MOST} connections unanswered \
                             already.",
                            work.name()
                        ));
                        continue;
                    }
                    let probe = !probed.contains(&server);
                    probed.push(server);
                    let python = python.clone();
                    plan.step(move |measured| {
                        let job = load_job(0, connections, work, sizes, probe);
                        let run = match (server.rust(), python) {
                            (Some(model), _) => {
                                let processes = if model == Model::Prefork {
                                    processes
                                } else {
                                    1
                                };
                                run_rust(generator, model, processes, job, sizes.pool_threads)
                            }
                            (None, Ok(python)) => {
                                run_python(generator, python, server, processes, job)
                            }
                            (None, Err(_)) => return Ok(()),
                        };
                        let run = match run {
                            Ok(run) => run,
                            Err(RunError::Wrong(why)) => {
                                return Err(LabError::engine(server.name(), why));
                            }
                            Err(RunError::Broke(why)) => {
                                measured.note(format!(
                                    "{} at {connections} connections, {}: no figures ({why}).",
                                    server.name(),
                                    work.name()
                                ));
                                return Ok(());
                            }
                        };
                        if probe {
                            let matching = check_probes(server, &run)
                                .map_err(|why| LabError::engine("the API's probes", why))?;
                            measured.measurement(Measurement::new(
                                labelled(server.name(), Quantity::Probes.name()),
                                server.implementation(),
                                "count",
                                vec![matching as f64],
                            ));
                        }
                        record(measured, (server, work, connections), &run, sizes);
                        Ok(())
                    });
                }
            }
        }
        bench.run(plan)
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        judge::judge(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(probed: Vec<(u16, String)>) -> Run {
        Run {
            load: Load {
                pid: 1,
                connected: 1,
                connect_error: None,
                served: 1,
                per_window: vec![1],
                latency: vec![[0.0; 3]],
                unanswered: 0,
                probed,
            },
            peak_resident: 0,
            pids: Vec::new(),
            port: 1,
            refused: None,
        }
    }

    #[test]
    fn a_model_that_answers_a_probe_differently_is_caught() {
        let right: Vec<(u16, String)> = PROBES
            .iter()
            .map(|line| {
                let a = answer(line);
                (a.status, a.body)
            })
            .collect();
        assert_eq!(check_probes(Server::Tokio, &run_with(right.clone())), Ok(9));
        let mut wrong = right.clone();
        wrong[0].1 = wrong[0].1.replace("140", "141");
        let error = check_probes(Server::PyAsyncio, &run_with(wrong)).unwrap_err();
        assert!(error.contains("asyncio.start_server answered"), "{error}");
        let mut status = right.clone();
        status[7].0 = 200;
        assert!(check_probes(Server::Prefork, &run_with(status)).is_err());
        assert!(check_probes(Server::Prefork, &run_with(right[..3].to_vec())).is_err());
    }

    #[test]
    fn a_wrong_answer_fails_and_anything_else_is_a_note() {
        let wrong = LoadError::WrongAnswer("a wrong answer to n = 3".to_owned());
        assert!(matches!(RunError::from(wrong), RunError::Wrong(_)));
        let broke = LoadError::Failed("connect: refused".to_owned());
        assert!(matches!(RunError::from(broke), RunError::Broke(_)));
    }
}
