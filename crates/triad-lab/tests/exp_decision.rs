//! The experiments behind the seed's quick decision table (§9) at toy size: `server-models`
//! (every model answers the API's probes as the API does, serves its load, and leaves no
//! listening socket and no process behind).

triad::test_support!();

// Not every helper: these experiments' facts are counts and answers, not timings to retry.
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;

use common::{python_here, run_toy};
use triad_lab::results::{ExperimentReport, Implementation};

const RUST_MODELS: [&str; 5] = [
    "thread per connection",
    "thread pool",
    "prefork",
    "tokio",
    "reference event loop",
];
const PYTHON_MODELS: [&str; 3] = [
    "ThreadingHTTPServer",
    "multiprocessing prefork",
    "asyncio.start_server",
];

fn models() -> Vec<(Implementation, &'static str)> {
    let mut models: Vec<_> = RUST_MODELS
        .iter()
        .map(|m| (Implementation::Rust, *m))
        .collect();
    if python_here() {
        models.extend(PYTHON_MODELS.iter().map(|m| (Implementation::Python, *m)));
    }
    models
}

/// Ports on 127.0.0.1 in the LISTEN state, from `/proc/net/tcp`.
fn listening_ports() -> BTreeSet<u16> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, state) = (fields.get(1)?, fields.get(3)?);
            let (host, port) = address.split_once(':')?;
            (*state == "0A" && host == "0100007F").then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

/// Whether process `pid` is still there (and not a zombie waiting to be reaped).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// The ports and process ids every run of `report` used.
fn ports_and_pids(report: &ExperimentReport) -> (BTreeSet<u16>, BTreeSet<u64>) {
    let mut ports = BTreeSet::new();
    let mut pids = BTreeSet::new();
    for m in report
        .measurements
        .iter()
        .filter(|m| m.name.ends_with(": connections served"))
    {
        ports.insert(m.params["port"].as_u64().unwrap() as u16);
        pids.insert(m.params["load pid"].as_u64().unwrap());
        for pid in m.params["server pids"].as_array().unwrap() {
            pids.insert(pid.as_u64().unwrap());
        }
    }
    (ports, pids)
}

#[test]
fn every_server_model_answers_alike_and_leaves_nothing_behind() {
    let report = run_toy("server-models");
    for (implementation, model) in models() {
        let probes = common::median(
            &report,
            implementation,
            &format!("{model}: probe answers matching"),
            &[],
        );
        assert_eq!(probes, 9.0, "{model}: every probe answered as the API does");
        for (work, connections) in [("cpu", 2), ("cpu", 8), ("wait", 8)] {
            let at = [("work", work.into()), ("connections", connections.into())];
            let served = common::median(
                &report,
                implementation,
                &format!("{model}: connections served"),
                &at,
            );
            let rate = common::median(
                &report,
                implementation,
                &format!("{model}: requests/s"),
                &at,
            );
            assert!(
                rate > 0.0,
                "{model} {work} × {connections}: no requests answered"
            );
            // The toy pool has 4 threads: beyond them connections wait their turn.
            if model != "thread pool" || connections <= 4 {
                assert_eq!(served, connections as f64, "{model} {work} × {connections}");
            }
        }
    }
    for claim in ["An API service", "Realtime messages"] {
        assert!(
            !common::verdict(&report, claim).evidence.is_empty(),
            "{claim}"
        );
    }
    // Every answer of the wait work waited 10 ms: no model can beat C / 10 ms.
    for (implementation, model) in models() {
        let at = [("work", "wait".into()), ("connections", 8.into())];
        let rate = common::median(
            &report,
            implementation,
            &format!("{model}: requests/s"),
            &at,
        );
        assert!(
            rate <= 8.0 / 0.010 * 1.05,
            "{model}: {rate}/s with 8 connections waiting 10 ms"
        );
    }
    let (ports, pids) = ports_and_pids(&report);
    assert!(
        ports.len() >= 3 * models().len(),
        "a fresh port per run: {ports:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let bound: Vec<u16> = listening_ports().intersection(&ports).copied().collect();
        let running: Vec<u64> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if bound.is_empty() && running.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still listening: {bound:?}; still running: {running:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_port_and_process_checks_see_what_they_look_for() {
    // The listing is from /proc; a listener of our own shows in it, and goes when dropped.
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    assert!(listening_ports().contains(&port));
    drop(listener);
    assert!(!listening_ports().contains(&port));
    assert!(alive(u64::from(std::process::id())));
    assert!(!alive(u64::from(u32::MAX)));
}

#[test]
fn file_processing_reads_every_file_in_every_mode_cold_and_warm() {
    let report = run_toy("file-processing");
    let mut languages = vec![Implementation::Rust];
    if python_here() {
        languages.push(Implementation::Python);
    }
    let modes = [("serial", 1), ("threads", 2), ("threads", 8), ("async", 0)];
    for implementation in languages {
        for cache in ["cold", "warm"] {
            for (mode, workers) in modes {
                let at = [("cache", cache.into()), ("workers", workers.into())];
                let time = common::median(&report, implementation, mode, &at);
                assert!(time > 0.0, "{implementation:?} {mode} {cache}");
            }
            let processes = common::found(&report)
                .every(implementation, "processes")
                .filter(|m| m.params["cache"] == cache)
                .count();
            assert_eq!(processes, 1, "{implementation:?} processes, {cache}");
        }
    }
    let verdict = common::verdict(&report, "File processing");
    assert!(
        verdict.evidence.contains("cold cache"),
        "{}",
        verdict.evidence
    );
    assert!(
        verdict.evidence.contains("warm cache"),
        "{}",
        verdict.evidence
    );
}

#[test]
fn many_fetches_fetches_every_page_with_every_crawler() {
    let report = run_toy("many-fetches");
    let mut languages = vec![Implementation::Rust];
    if python_here() {
        languages.push(Implementation::Python);
    }
    let at = [("count", 20.into())];
    for implementation in languages {
        for crawler in ["thread per fetch", "thread pool", "async", "processes"] {
            let time = common::median(
                &report,
                implementation,
                &format!("{crawler}: total time"),
                &at,
            );
            // Every fetch waits 50 ms: no crawler finishes sooner.
            assert!(time >= 0.050, "{implementation:?} {crawler}: {time} s");
            let peak = common::median(
                &report,
                implementation,
                &format!("{crawler}: peak memory"),
                &at,
            );
            assert!(peak > 0.0, "{implementation:?} {crawler}: no memory");
        }
    }
    let verdict = common::verdict(&report, "A web crawler");
    assert!(
        verdict.evidence.contains("total time, 20 fetches"),
        "{}",
        verdict.evidence
    );
}
