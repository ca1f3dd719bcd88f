//! The sharing experiments at toy size: `race`, `ipc`, `pool-chunking`, `fork-cow`.
//!
//! Each runs through `triad_lab::run` as the lab runs it, and its results are checked for shape
//! (every measurement non-empty, a verdict per claim, CPython's numbers when `python3` is here)
//! and for sanity (no update lost under a lock, shared memory faster than a socket, chunks not
//! slower than single tasks, a copy-on-write page dearer than a plain write).

mod common;

use common::{found, median, python_here, run_toy};
use triad_lab::results::{Implementation, Outcome};

triad::test_support!();

#[test]
fn race_loses_nothing_with_a_lock_or_an_atomic() {
    let report = run_toy("race");
    assert_eq!(report.verdicts.len(), 4);
    let lost_updates = |implementation, key: &str| {
        found(&report)
            .get(implementation, &format!("{key}/lost"), &[])
            .unwrap_or_else(|| panic!("no {implementation:?} {key}/lost"))
    };
    for key in [
        "serial",
        "threads-lock",
        "threads-atomic",
        "processes-lock",
        "processes-atomic",
        "coroutines",
    ] {
        let lost = lost_updates(Implementation::Rust, key);
        assert!(
            lost.samples.iter().all(|&l| l == 0.0),
            "{key} lost updates: {:?}",
            lost.samples
        );
    }
    // Four coroutines that each read, yield and write lose three increments of every four.
    let awaiting = lost_updates(Implementation::Rust, "coroutines-await");
    let expected = awaiting.params["expected"].as_f64().unwrap();
    assert!(awaiting.samples.iter().all(|&l| l > 0.0 && l < expected));
    for key in ["threads-unlocked", "processes-unlocked"] {
        let lost = lost_updates(Implementation::Rust, key);
        assert!(lost.samples.iter().all(|&l| l >= 0.0 && l < expected));
    }
    let lock_verdict = &report.verdicts[1];
    assert_eq!(lock_verdict.outcome, Outcome::Confirmed, "{lock_verdict:?}");
    if python_here() {
        for key in ["threads-lock", "processes-lock", "coroutines"] {
            let lost = lost_updates(Implementation::Python, key);
            assert!(lost.samples.iter().all(|&l| l == 0.0), "CPython {key}");
        }
    }
}

#[test]
fn ipc_measures_every_transport_at_every_size_and_placement() {
    let report = run_toy("ipc");
    assert_eq!(report.verdicts.len(), 4);
    let mut implementations = vec![Implementation::Rust];
    if python_here() {
        implementations.push(Implementation::Python);
    }
    let placements: Vec<String> = report
        .measurements
        .iter()
        .filter(|m| m.name == "pipe/round-trip" && m.implementation == Implementation::Rust)
        .filter_map(|m| m.params["placement"].as_str().map(str::to_owned))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(!placements.is_empty());
    for implementation in &implementations {
        // Raw transports carry any size; triad's pipe and queue as much as a datagram allows.
        for kind in ["os-pipe", "socket", "shm"] {
            for size in [64, 1 << 20] {
                for placement in &placements {
                    let rtt = median(
                        &report,
                        *implementation,
                        &format!("{kind}/round-trip"),
                        &[
                            ("size", size.into()),
                            ("placement", placement.as_str().into()),
                        ],
                    );
                    assert!(rtt > 0.0 && rtt < 1.0, "{kind} {size}: {rtt} s");
                }
                let bandwidth = median(
                    &report,
                    *implementation,
                    &format!("{kind}/bandwidth"),
                    &[("size", size.into())],
                );
                assert!(bandwidth > 1e5, "{kind} {size}: {bandwidth} B/s");
            }
        }
    }
    let pipe_buffer = median(&report, Implementation::Rust, "os-pipe/capacity", &[]);
    assert!(pipe_buffer >= 4096.0, "{pipe_buffer}");
    let postcard = median(&report, Implementation::Rust, "serialise/record", &[]);
    assert!(postcard > 0.0 && postcard < 1e-3);
}

#[test]
fn pool_chunking_helps_tiny_tasks_and_reused_workers_are_cheaper() {
    let report = run_toy("pool-chunking");
    assert_eq!(report.verdicts.len(), 2);
    let mut implementations = vec![Implementation::Rust];
    if python_here() {
        implementations.push(Implementation::Python);
    }
    for implementation in implementations {
        let tiny = |chunk: serde_json::Value| {
            median(
                &report,
                implementation,
                "tiny/throughput",
                &[("chunk", chunk)],
            )
        };
        assert!(
            tiny(1024.into()) > tiny(1.into()),
            "{implementation:?}: chunks of 1024 not faster than single tasks"
        );
        for chunk in [1, 4, 16, 64, 256, 1024] {
            let spin = median(
                &report,
                implementation,
                "spin/throughput",
                &[("chunk", chunk.into())],
            );
            assert!(spin > 0.0);
        }
        let auto = median(
            &report,
            implementation,
            "spin/throughput",
            &[("chunk", "auto".into())],
        );
        assert!(auto > 0.0);
        let per_task = |worker: &str| {
            median(
                &report,
                implementation,
                "reuse/per-task",
                &[("worker", worker.into())],
            )
        };
        assert!(
            per_task("new-per-task") > per_task("reused"),
            "{implementation:?}: a new worker per task is not dearer than a reused one"
        );
    }
}

#[test]
fn fork_cow_copies_pages_only_when_the_child_writes() {
    let report = run_toy("fork-cow");
    assert_eq!(report.verdicts.len(), 4);
    let size = |mib: usize| serde_json::Value::from(mib << 20);
    for implementation in [Implementation::Rust, Implementation::Python] {
        if implementation == Implementation::Python && !python_here() {
            continue;
        }
        for mib in [1, 16] {
            let at = [("size", size(mib))];
            let whole = median(&report, implementation, "fork/total", &at);
            let returned = median(&report, implementation, "fork/return", &at);
            assert!(
                returned <= whole,
                "fork returned after the child was reaped"
            );
        }
        let at = [("size", size(16))];
        let copy = median(&report, implementation, "cow/child-write-per-page", &at);
        let plain = median(&report, implementation, "cow/parent-plain-per-page", &at);
        assert!(
            copy > plain,
            "{implementation:?}: COW {copy} s, plain {plain} s"
        );
        let private = |moment: &str| {
            median(
                &report,
                implementation,
                &format!("memory/child-private-after-{moment}"),
                &at,
            )
        };
        let buffer = (16 << 20) as f64;
        assert!(private("fork") < 0.5 * buffer, "{}", private("fork"));
        assert!(private("writes") >= 0.9 * buffer, "{}", private("writes"));
    }
}
