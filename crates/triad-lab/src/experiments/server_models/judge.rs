//! The judge step of `server-models`: its table, its charts of latency and throughput
//! against connections, where each model breaks down, and the two rows of the seed's decision
//! table it decides (*API service*, *realtime messages*).

use super::http::{PROBES, Work};
use super::{Quantity, SIZES, Server, WORKS, prefork_processes};
use crate::experiment::Judgement;
use crate::experiments::cost_support::labelled;
use crate::experiments::decision::{Better, Candidate, Decision, combine, decide};
use crate::findings::Findings;
use crate::results::{Chart, ChartKind, Measurement, Point, Scale, Series, Table};
use crate::stats::{format_bytes, format_seconds};

/// A run's figure: `server`'s `quantity` with `work` at `connections`.
fn figure<'a>(
    found: &Findings<'a>,
    server: Server,
    quantity: Quantity,
    work: Work,
    connections: usize,
) -> Option<&'a Measurement> {
    found.get(
        server.implementation(),
        &labelled(server.name(), quantity.name()),
        &[
            ("work", work.name().into()),
            ("connections", connections.into()),
        ],
    )
}

fn rate(value: f64) -> String {
    format!("{value:.0}/s")
}

pub(super) fn judge(found: &Findings<'_>) -> Judgement {
    let sizes = SIZES.at(found.scale());
    let processes = prefork_processes(found.machine().cores);
    let mut table = Table::new([
        "work",
        "connections",
        "model",
        "language",
        "requests/s",
        "p50",
        "p99",
        "p99.9",
        "peak RSS",
        "served",
    ]);
    let mut charts = Vec::new();
    for work in WORKS {
        for &connections in sizes.connections(work) {
            for &server in Server::ALL {
                let get = |q| figure(found, server, q, work, connections);
                let Some(rates) = get(Quantity::Rate) else {
                    continue;
                };
                let cell = |q, format: fn(f64) -> String| {
                    get(q).map_or("—".to_owned(), |m| format(m.median()))
                };
                table.row([
                    work.name().to_owned(),
                    connections.to_string(),
                    server.name().to_owned(),
                    server.implementation().label().to_owned(),
                    crate::stats::format_with_spread(&rates.summary, rate),
                    cell(Quantity::P50, format_seconds),
                    cell(Quantity::P99, format_seconds),
                    cell(Quantity::P999, format_seconds),
                    cell(Quantity::Peak, format_bytes),
                    get(Quantity::Served).map_or("—".to_owned(), |m| {
                        format!("{:.0}/{connections}", m.median())
                    }),
                ]);
            }
        }
        for (quantity, y_label) in [
            (Quantity::P99, "p99 latency (s)"),
            (Quantity::Rate, "requests/s"),
        ] {
            let series = Server::ALL
                .iter()
                .map(|&server| Series {
                    label: format!("{} ({})", server.name(), server.implementation().label()),
                    points: sizes
                        .connections(work)
                        .iter()
                        .filter_map(|&c| {
                            let m = figure(found, server, quantity, work, c)?;
                            (m.median() > 0.0).then(|| Point::from_summary(c as f64, &m.summary))
                        })
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect();
            charts.push(Chart {
                title: format!(
                    "{} against connections, {} work",
                    quantity.name(),
                    work.name()
                ),
                kind: ChartKind::Line,
                x_label: "keep-alive connections".to_owned(),
                y_label: y_label.to_owned(),
                x_scale: Scale::Log,
                y_scale: Scale::Log,
                series,
                ..Chart::default()
            });
        }
    }
    let verdicts = vec![api_service(found).verdict, realtime(found).verdict];
    Judgement {
        method: format!(
            "GET /sum?n=N&work=W on HTTP/1.1 keep-alive: the handler burns 50 µs of its \
             thread's CPU time (cpu) or waits 10 ms on a timer (wait), then answers \
             {{\"n\":N,\"sum\":…,\"work\":W}}. Rust servers run in triad worker processes on a \
             socket the lab bound (backlog 4096) and passed them: a thread per connection; a \
             pool of {pool} threads, each owning a connection until it closes; prefork, \
             {processes} processes each running a current-thread tokio loop on the shared \
             socket; tokio's multi-threaded runtime; the lab's reference event loop \
             (event-loop: ready queue, timer heap, epoll selector) on one thread. CPython: ThreadingHTTPServer; \
             {processes} multiprocessing (fork) children each running asyncio.start_server on \
             the inherited socket; asyncio.start_server; every listening socket has a backlog \
             of 4096 (asyncio listens again on a socket it is given, with a backlog of 100 \
             unless told: a burst of 1,000 connects then overflows the accept queue and waits \
             for SYN retries of 1 s and more). The load generator (Rust, tokio, one \
             thread, in its own worker process) opens C connections (cpu: {cpu}; wait: {wait}), \
             then runs each as a closed loop for {warm} ms (plus 50 µs per connection) of warm-up \
             and {windows} timed \
             windows of {window} ms; requests/s and the latency quantiles are sampled per \
             window, and a request still waiting when a window ends counts in it with its age \
             there (quantiles are over requests, so a model that starves some connections shows \
             it in the served column more than in p99, and the decision rows weigh only the \
             models that served every connection). Each body is checked. Peak RSS is VmHWM summed over the server's \
             processes (CPython's prefork includes its master). Each model's first run also \
             sends {probes} probe requests, good and bad, that every model must answer alike.",
            pool = sizes.pool_threads,
            cpu = list(sizes.cpu),
            wait = list(sizes.wait),
            warm = sizes.warm_up_ms,
            windows = sizes.windows,
            window = sizes.window_ms,
            probes = PROBES.len(),
        ),
        table,
        charts,
        verdicts,
        notes: breakdowns(found)
            .into_iter()
            .chain([
                "The load generator shares the machine's cores with the server: on 2 cores the \
             figures are what one machine serving and loading itself can do, not a server's \
             ceiling."
                    .to_owned(),
            ])
            .collect(),
    }
}

/// Where each model breaks down, from what it served: the first connection count at which it
/// left connections unanswered, and what each connection cost it in memory at the most
/// connections it served.
fn breakdowns(found: &Findings<'_>) -> Vec<String> {
    let sizes = SIZES.at(found.scale());
    let mut notes = Vec::new();
    for work in WORKS {
        for &server in Server::ALL {
            let served =
                |c: usize| figure(found, server, Quantity::Served, work, c).map(|m| m.median());
            let who = format!(
                "{} ({}), {} work",
                server.name(),
                server.implementation().label(),
                work.name()
            );
            let counts = sizes.connections(work);
            if let Some(&c) = counts
                .iter()
                .find(|&&c| served(c).is_some_and(|s| s < c as f64))
            {
                let reason = match server {
                    Server::ThreadPool => format!(
                        ": each of its {} threads owns a connection until the client closes it, \
                         so the others wait in its queue",
                        sizes.pool_threads
                    ),
                    _ => String::new(),
                };
                notes.push(format!(
                    "{who} breaks down at {c} connections: {:.0} of them got an answer{reason}.",
                    served(c).unwrap_or(0.0)
                ));
            }
            let most = counts
                .iter()
                .copied()
                .filter(|&c| served(c).is_some())
                .max();
            let (Some(c), Some(first)) = (most, counts.first()) else {
                continue;
            };
            let peak = |c| figure(found, server, Quantity::Peak, work, c).map(|m| m.median());
            if let (Some(high), Some(low)) = (peak(c), peak(*first))
                && c > *first
            {
                notes.push(format!(
                    "{who}: peak RSS {} at {first} connections, {} at {c}: {} per added \
                     connection.",
                    format_bytes(low),
                    format_bytes(high),
                    format_bytes((high - low).max(0.0) / (c - first) as f64)
                ));
            }
        }
    }
    notes
}

fn list(counts: &[usize]) -> String {
    counts
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every model's `quantity` with `work` at `connections`, as candidates: only the models that
/// answered every connection (a model that leaves some waiting is not serving the load, however
/// good its other figures).
fn candidates<'a>(
    found: &Findings<'a>,
    quantity: Quantity,
    work: Work,
    connections: usize,
) -> Vec<Candidate<'a>> {
    Server::ALL
        .iter()
        .filter(|&&server| {
            figure(found, server, Quantity::Served, work, connections)
                .is_some_and(|m| m.median() >= connections as f64)
        })
        .filter_map(|&server| {
            let m = figure(found, server, quantity, work, connections)?;
            Some(Candidate {
                implementation: server.implementation(),
                label: server.name().to_owned(),
                summary: &m.summary,
                recommended: server.coroutines(),
            })
        })
        .collect()
}

/// The largest connection count measured with `work`.
fn largest(found: &Findings<'_>, work: Work) -> usize {
    SIZES
        .at(found.scale())
        .connections(work)
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
}

const API_ROW: (&str, &str) = (
    "An API service (low CPU, high IO wait, high concurrency) is best served by coroutines.",
    "| API服务 | 低 | 高 | 高 | 协程 | I/O密集,快速响应 |",
);
const REALTIME_ROW: (&str, &str) = (
    "Realtime messages (very high concurrency) are best served by coroutines.",
    "| 实时消息 | 低 | 高 | 极高 | 协程 | I/O密集,超高并发 |",
);

/// The *API service* row: requests/s of each model at the largest connection count, with
/// the wait work and the CPU work.
pub(crate) fn api_service(found: &Findings<'_>) -> Decision {
    let decisions = WORKS
        .into_iter()
        .map(|work| {
            let c = largest(found, work);
            decide(
                &candidates(found, Quantity::Rate, work, c),
                Better::Higher,
                rate,
                API_ROW,
                &format!(
                    "requests/s, {} work, {c} connections (event loops, prefork's included, \
                     against threads; models that served them all)",
                    work.name()
                ),
            )
        })
        .chain(WORKS.into_iter().map(|work| starved(found, work, API_ROW)))
        .collect();
    combine(decisions, API_ROW)
}

/// The thread models that left some of the most connections with `work` unanswered while an
/// event loop of the same language served them all: a check the event loops win, per model.
fn starved(found: &Findings<'_>, work: Work, row: (&str, &str)) -> Decision {
    let c = largest(found, work);
    let served =
        |server: Server| figure(found, server, Quantity::Served, work, c).map(|m| m.median());
    let mut checks = crate::verdict::Checks::default();
    for &thread_model in Server::ALL.iter().filter(|s| !s.coroutines()) {
        let Some(answered) = served(thread_model).filter(|n| *n < c as f64) else {
            continue;
        };
        let loop_served = Server::ALL.iter().find(|s| {
            s.coroutines()
                && s.implementation() == thread_model.implementation()
                && served(**s).is_some_and(|n| n >= c as f64)
        });
        if let Some(event_loop) = loop_served {
            checks.check(
                format!(
                    "{} {} work, {c} connections: {} answered {answered:.0} of them, {} all",
                    thread_model.implementation().label(),
                    work.name(),
                    thread_model.name(),
                    event_loop.name()
                ),
                true,
            );
        }
    }
    Decision {
        best: Vec::new(),
        checks: checks.len(),
        verdict: checks.verdict(row.0, row.1),
    }
}

/// The *realtime messages* row: with the wait work at the largest connection count, the p99
/// latency and the peak memory of each model.
pub(crate) fn realtime(found: &Findings<'_>) -> Decision {
    let c = largest(found, Work::Wait);
    let decisions = [
        (Quantity::P99, format_seconds as fn(f64) -> String),
        (Quantity::Peak, format_bytes),
    ]
    .into_iter()
    .map(|(quantity, format)| {
        decide(
            &candidates(found, quantity, Work::Wait, c),
            Better::Lower,
            format,
            REALTIME_ROW,
            &format!(
                "{}, wait work, {c} connections (event loops, prefork's included, against \
                 threads; models that served them all)",
                quantity.name()
            ),
        )
    })
    .chain([starved(found, Work::Wait, REALTIME_ROW)])
    .collect();
    combine(decisions, REALTIME_ROW)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Implementation, Outcome};

    fn at(name: &str, samples: Vec<f64>, connections: usize) -> Measurement {
        Measurement::new(name, Implementation::Rust, "x", samples)
            .param("work", "wait")
            .param("connections", connections)
    }

    #[test]
    fn a_model_that_leaves_connections_waiting_is_not_a_candidate() {
        // At toy size the most wait connections is 8: the pool served 4 of them, tokio all.
        let measurements = [
            at("thread pool: connections served", vec![4.0], 8),
            at("thread pool: peak resident", vec![1e6], 8),
            at("thread pool: latency p99", vec![0.010, 0.011], 8),
            at("tokio: connections served", vec![8.0], 8),
            at("tokio: peak resident", vec![4e6], 8),
            at("tokio: latency p99", vec![0.012, 0.013], 8),
            at("thread per connection: connections served", vec![8.0], 8),
            at("thread per connection: peak resident", vec![6e6], 8),
            at("thread per connection: latency p99", vec![0.020, 0.021], 8),
        ];
        let machine = crate::machine::Machine::default();
        let found = Findings::new(&measurements, crate::experiment::Scale::Toy, &machine);
        let candidates = candidates(&found, Quantity::Peak, Work::Wait, 8);
        let labels: Vec<&str> = candidates.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["thread per connection", "tokio"]);
        let decision = realtime(&found);
        assert_eq!(decision.verdict.outcome, Outcome::Confirmed);
        assert_eq!(decision.best, [(Implementation::Rust, "tokio".to_owned())]);
        assert!(decision.verdict.evidence.contains("served them all"));
        assert!(
            decision
                .verdict
                .evidence
                .contains("thread pool answered 4 of them, tokio all"),
            "{}",
            decision.verdict.evidence
        );
    }
}
