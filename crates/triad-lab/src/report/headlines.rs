//! One line per experiment for its card on the report's first screen: its key figures, Rust's
//! beside CPython's, read from its measurements by the names it records.
//!
//! An experiment this file does not know, or one whose figures are missing (a language did
//! not run), falls back to the key figure of its first claim ([`super::headline`]).

use crate::findings::{Findings, Param};
use crate::results::{ExperimentReport, Implementation, LabReport};
use crate::stats::{format_bytes, format_seconds};
use crate::verdict::times;
use Implementation::{Python, Rust};

/// The headline of `experiment`, when its figures are there.
pub fn of(lab: &LabReport, experiment: &ExperimentReport) -> Option<String> {
    let found = Findings::of(lab, experiment);
    let cores = lab.machine.cores.max(1);
    let get = |i: Implementation, name: &str, params: &[Param<'_>]| found.summary(i, name, params);
    let median = |i, name: &str, params: &[Param<'_>]| get(i, name, params).map(|s| s.median);
    let seconds = |i, name: &str, params: &[Param<'_>]| median(i, name, params).map(format_seconds);
    let speedup = |i, (a, pa): (&str, &[Param<'_>]), (b, pb): (&str, &[Param<'_>])| {
        Some(times(median(i, a, pa)? / median(i, b, pb)?))
    };
    // "Rust …; CPython …" with whichever languages have their figures.
    let both = |rust: Option<String>, python: Option<String>| -> Option<String> {
        match (rust, python) {
            (Some(rust), Some(python)) => Some(format!("Rust {rust}; CPython {python}")),
            (Some(rust), None) => Some(format!("Rust {rust}")),
            (None, Some(python)) => Some(format!("CPython {python}")),
            (None, None) => None,
        }
    };
    match experiment.id.as_str() {
        "cpu-bound" => {
            let at = |w: usize| [("workload", "count_primes".into()), ("workers", w.into())];
            let line = |i| -> Option<String> {
                Some(format!(
                    "threads {}, processes {}",
                    speedup(i, ("serial", &at(1)), ("threads", &at(cores)))?,
                    speedup(i, ("serial", &at(1)), ("processes", &at(cores)))?
                ))
            };
            Some(format!(
                "{cores} workers, speed-up over serial — {}",
                both(line(Rust), line(Python))?
            ))
        }
        "io-bound" => {
            let n = found
                .every(Rust, "serial")
                .filter_map(|m| m.params.get("n")?.as_u64())
                .max()?;
            let at = [("workload", "tcp round trip".into()), ("n", n.into())];
            let line = |i| speedup(i, ("serial", &at), ("async", &at));
            Some(format!(
                "{n} round trips as coroutines, speed-up over serial — {}",
                both(line(Rust), line(Python))?
            ))
        }
        "gil" => {
            let python = speedup(
                Python,
                ("cpu serial", &[]),
                ("cpu threads under the GIL", &[]),
            );
            let simulated = speedup(
                Rust,
                ("cpu serial", &[]),
                ("cpu threads under the GIL", &[]),
            )?;
            let free = speedup(
                Rust,
                ("cpu serial", &[]),
                ("cpu threads without a GIL", &[]),
            )?;
            Some(format!(
                "CPU work on threads, speed-up over serial — under a simulated GIL {simulated}, \
                 Rust threads {free}{}",
                python.map_or(String::new(), |p| format!(", CPython threads {p}"))
            ))
        }
        "switch-cost" => {
            let placed = |p: &'static str| [("placement", p.into())];
            let line = |i| -> Option<String> {
                let (thread, process, coroutine) = if i == Rust {
                    (
                        "threads, Mutex + Condvar",
                        "processes, pipe",
                        "coroutines, tokio mpsc channel",
                    )
                } else {
                    (
                        "threads, threading.Condition",
                        "processes, multiprocessing.Pipe",
                        "coroutines, asyncio.Queue",
                    )
                };
                Some(format!(
                    "thread {}, process {}, coroutine {}",
                    seconds(i, thread, &placed("pinned"))?,
                    seconds(i, process, &placed("pinned"))?,
                    seconds(i, coroutine, &placed("one thread"))?
                ))
            };
            Some(format!("One switch — {}", both(line(Rust), line(Python))?))
        }
        "spawn-cost" => {
            let line = |i| -> Option<String> {
                let (thread, task) = if i == Rust {
                    (
                        "thread spawn + join",
                        "tokio task spawn + await, current-thread runtime",
                    )
                } else {
                    (
                        "threading.Thread start + join",
                        "asyncio.create_task + await",
                    )
                };
                Some(format!(
                    "thread {}, task {}",
                    seconds(i, thread, &[])?,
                    seconds(i, task, &[])?
                ))
            };
            Some(format!(
                "Start + join — {}",
                both(line(Rust), line(Python))?
            ))
        }
        "memory-per-unit" => {
            let bytes = |i, name: &str| median(i, name, &[]).map(format_bytes);
            let rust = (|| {
                Some(format!(
                    "thread {}, task {}",
                    bytes(Rust, "Rust thread, 8 MiB stack: resident per unit")?,
                    bytes(Rust, "tokio task: resident per unit")?
                ))
            })();
            let python = (|| {
                Some(format!(
                    "thread {}, task {}",
                    bytes(Python, "CPython thread, default stack: resident per unit")?,
                    bytes(Python, "asyncio task: resident per unit")?
                ))
            })();
            Some(format!(
                "Resident memory per unit — {}",
                both(rust, python)?
            ))
        }
        "c10k" => {
            let waits = |i, name: &str| {
                let total = found.get(i, &format!("{name}: total time"), &[])?;
                let memory = get(i, &format!("{name}: peak memory growth"), &[])?;
                Some((
                    total.params.get("count")?.as_u64()?,
                    format!(
                        "{name} {} ({})",
                        format_seconds(total.median()),
                        format_bytes(memory.median)
                    ),
                ))
            };
            let (count, tasks) = waits(Rust, "tokio tasks")?;
            let others: Vec<String> = [
                waits(Rust, "Rust threads"),
                waits(Python, "asyncio coroutines"),
            ]
            .into_iter()
            .flatten()
            .map(|(_, line)| line)
            .collect();
            Some(format!(
                "{count} waits of 100 ms at once — {tasks}{}",
                others.iter().map(|o| format!(", {o}")).collect::<String>()
            ))
        }
        "race" => {
            let lost = |i, name: &str| {
                let m = found.get(i, name, &[])?;
                let expected = m.params.get("expected")?.as_f64()?;
                Some(format!("{:.0}%", 100.0 * m.median() / expected.max(1.0)))
            };
            let line = |i| -> Option<String> {
                Some(format!(
                    "threads {}, processes {}",
                    lost(i, "threads-unlocked/lost")?,
                    lost(i, "processes-unlocked/lost")?
                ))
            };
            Some(format!(
                "Updates lost without a lock — {}; with a lock, none",
                both(line(Rust), line(Python))?
            ))
        }
        "ipc" => {
            let at = [("placement", "one-cpu".into()), ("size", 64.into())];
            let rust = (|| {
                Some(format!(
                    "pipe {}, shared memory {}",
                    seconds(Rust, "pipe/round-trip", &at)?,
                    seconds(Rust, "shm/round-trip", &at)?
                ))
            })();
            let python = seconds(Python, "pipe/round-trip", &at).map(|t| format!("pipe {t}"));
            Some(format!(
                "A 64-byte round trip between processes — {}",
                both(rust, python)?
            ))
        }
        "pool-chunking" => {
            let best = |i| {
                let rates: Vec<(u64, f64)> = found
                    .every(i, "tiny/throughput")
                    .filter_map(|m| Some((m.params.get("chunk")?.as_u64()?, m.median())))
                    .collect();
                let one = rates.iter().find(|(chunk, _)| *chunk == 1)?.1;
                let (chunk, top) = rates.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
                Some(format!(
                    "{} with chunks of {chunk} against 1",
                    times(top / one.max(f64::MIN_POSITIVE))
                ))
            };
            Some(format!(
                "Tiny tasks on a process pool — {}",
                both(best(Rust), best(Python))?
            ))
        }
        "select-poll-epoll" => {
            let most = found
                .every(Rust, "epoll")
                .filter_map(|m| m.params.get("descriptors")?.as_u64())
                .max()?;
            let at = [("descriptors", most.into())];
            Some(format!(
                "One wait among {most} descriptors (Rust) — select {}, poll {}, epoll {}",
                seconds(Rust, "select", &at)?,
                seconds(Rust, "poll", &at)?,
                seconds(Rust, "epoll", &at)?
            ))
        }
        "fork-cow" => {
            let line = |i| -> Option<String> {
                Some(format!(
                    "fork returns in {}, a copied page costs {}",
                    seconds(i, "fork/return", &[])?,
                    seconds(i, "cow/child-write-per-page", &[])?
                ))
            };
            Some(format!("Fork — {}", both(line(Rust), line(Python))?))
        }
        "event-loop" => {
            let yield_on = |i, runtime: &'static str| {
                seconds(
                    i,
                    "yield switch, per switch",
                    &[("runtime", runtime.into())],
                )
            };
            let python = yield_on(Python, "asyncio").map(|t| format!(", asyncio {t}"));
            Some(format!(
                "One yield — reference loop {}, tokio {}{}",
                yield_on(Rust, "reference")?,
                yield_on(Rust, "tokio")?,
                python.unwrap_or_default()
            ))
        }
        "hybrid" => {
            let line = |i| -> Option<String> {
                let time = |variant: &str| seconds(i, variant, &[]);
                Some(format!(
                    "pipeline {}, threads {}, serial {}",
                    time("pipeline")?,
                    time("threads")?,
                    time("serial")?
                ))
            };
            Some(format!(
                "A batch of mixed items — {}",
                both(line(Rust), line(Python))?
            ))
        }
        "server-models" => {
            let most = found
                .every(Rust, "tokio: requests/s")
                .filter(|m| m.params.get("work") == Some(&"wait".into()))
                .filter_map(|m| m.params.get("connections")?.as_u64())
                .max()?;
            let at = [("work", "wait".into()), ("connections", most.into())];
            let rate = |i, model: &str| {
                median(i, &format!("{model}: requests/s"), &at).map(|r| format!("{model} {r:.0}/s"))
            };
            let line = |i, models: [&str; 2]| -> Option<String> {
                Some(format!("{}, {}", rate(i, models[0])?, rate(i, models[1])?))
            };
            Some(format!(
                "{most} connections, 10 ms waits — {}",
                both(
                    line(Rust, ["tokio", "thread per connection"]),
                    line(Python, ["asyncio.start_server", "ThreadingHTTPServer"])
                )?
            ))
        }
        "file-processing" => {
            let cache = if found
                .get(Rust, "serial", &[("cache", "cold".into())])
                .is_some()
            {
                "cold"
            } else {
                "warm"
            };
            let at = |w: usize| [("cache", cache.into()), ("workers", w.into())];
            let line = |i| -> Option<String> {
                Some(format!(
                    "serial {}, 8 threads {}, processes {}",
                    seconds(i, "serial", &at(1))?,
                    seconds(i, "threads", &at(8))?,
                    seconds(i, "processes", &at(cores))?
                ))
            };
            Some(format!(
                "Every file, {cache} cache — {}",
                both(line(Rust), line(Python))?
            ))
        }
        "many-fetches" => {
            let most = found
                .every(Rust, "async: total time")
                .filter_map(|m| m.params.get("count")?.as_u64())
                .max()?;
            let at = [("count", most.into())];
            let line = |i| -> Option<String> {
                let time = |crawler: &str| seconds(i, &format!("{crawler}: total time"), &at);
                Some(format!(
                    "async {}, thread per fetch {}, processes {}",
                    time("async")?,
                    time("thread per fetch")?,
                    time("processes")?
                ))
            };
            Some(format!(
                "{most} fetches of a 50 ms page — {}",
                both(line(Rust), line(Python))?
            ))
        }
        _ => None,
    }
}
