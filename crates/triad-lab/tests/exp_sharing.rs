//! The sharing experiments at toy size: `race`, `ipc`, `pool-chunking`, `fork-cow`.
//!
//! Each runs through `triad_lab::run` as the lab runs it, and its results are checked for shape
//! (every measurement non-empty, a verdict per claim, CPython's numbers when `python3` is here)
//! and for sanity (no update lost under a lock, round trips and bandwidths within what a
//! machine can do, chunks faster than single tasks, a copy-on-write page dearer than a plain
//! write); facts read from timings go through [`run_until`].

mod common;

use common::{expect, fastest, found, median, python_here, run_toy, run_until, verdict};
use triad_lab::results::{ExperimentReport, Implementation, Outcome};

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
        assert!(
            lost.samples.iter().all(|&l| l < expected),
            "{key}: every update lost, {:?}",
            lost.samples
        );
    }
    let lock_verdict = verdict(&report, "With a lock");
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
    let mut implementations = vec![Implementation::Rust];
    if python_here() {
        implementations.push(Implementation::Python);
    }
    // Raw transports carry any size; triad's pipe and queue as much as a datagram allows.
    let raw = ["os-pipe", "socket", "shm"];
    let placements = |report: &ExperimentReport| -> Vec<String> {
        found(report)
            .every(Implementation::Rust, "pipe/round-trip")
            .filter_map(|m| m.params["placement"].as_str().map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let report = run_until("ipc", |report| {
        for implementation in &implementations {
            for kind in raw {
                for size in [64, 1 << 20] {
                    for placement in placements(report) {
                        let rtt = fastest(
                            report,
                            *implementation,
                            &format!("{kind}/round-trip"),
                            &[("size", size.into()), ("placement", placement.into())],
                        );
                        expect(rtt < 1.0, || {
                            format!("{kind} {size}: a round trip of {rtt} s")
                        })?;
                    }
                    let bandwidth = fastest(
                        report,
                        *implementation,
                        &format!("{kind}/bandwidth"),
                        &[("size", size.into())],
                    );
                    // Slower than 10 kB/s a transport is broken. (With a core kept busy, the
                    // shared-memory ring, whose waiting side yields its CPU before it sleeps,
                    // falls to some 60 kB/s at 64 B.)
                    expect(bandwidth > 1e4, || {
                        format!("{kind} {size}: {bandwidth} B/s")
                    })?;
                }
            }
        }
        let postcard = fastest(report, Implementation::Rust, "serialise/record", &[]);
        expect(postcard < 1e-3, || format!("postcard took {postcard} s"))
    });
    assert_eq!(report.verdicts.len(), 4);
    assert!(!placements(&report).is_empty());
    for implementation in &implementations {
        for kind in raw {
            for size in [64, 1 << 20] {
                for placement in placements(&report) {
                    let at = [("size", size.into()), ("placement", placement.into())];
                    let rtt = median(&report, *implementation, &format!("{kind}/round-trip"), &at);
                    // Through the kernel, or two processes taking turns: never 100 ns.
                    assert!(rtt > 1e-7, "{kind} {size}: a round trip of {rtt} s");
                }
            }
        }
    }
    let pipe_buffer = median(&report, Implementation::Rust, "os-pipe/capacity", &[]);
    assert!(pipe_buffer >= 4096.0, "{pipe_buffer}");
    let postcard = median(&report, Implementation::Rust, "serialise/record", &[]);
    assert!(
        postcard > 1e-9,
        "a 16-float record encoded and decoded in {postcard} s"
    );
}

#[test]
fn pool_chunking_helps_tiny_tasks_and_reused_workers_are_cheaper() {
    let mut implementations = vec![Implementation::Rust];
    if python_here() {
        implementations.push(Implementation::Python);
    }
    let report = run_until("pool-chunking", |report| {
        for &implementation in &implementations {
            let tiny = |chunk: serde_json::Value| {
                fastest(
                    report,
                    implementation,
                    "tiny/throughput",
                    &[("chunk", chunk)],
                )
            };
            let (single, chunked) = (tiny(1.into()), tiny(1024.into()));
            expect(chunked > single, || {
                format!(
                    "{implementation:?}: chunks of 1024 ran {chunked} tasks/s, single tasks \
                     {single}"
                )
            })?;
            let per_task = |worker: &str| {
                fastest(
                    report,
                    implementation,
                    "reuse/per-task",
                    &[("worker", worker.into())],
                )
            };
            let (fresh, reused) = (per_task("new-per-task"), per_task("reused"));
            expect(fresh > reused, || {
                format!(
                    "{implementation:?}: a new worker per task took {fresh} s a task, a reused \
                     one {reused} s"
                )
            })?;
        }
        Ok(())
    });
    assert_eq!(report.verdicts.len(), 2);
    for implementation in implementations {
        let spin = |chunk: serde_json::Value| {
            found(&report)
                .get(implementation, "spin/throughput", &[("chunk", chunk)])
                .unwrap_or_else(|| panic!("{implementation:?}: no spin/throughput"))
        };
        for chunk in [
            1.into(),
            4.into(),
            16.into(),
            64.into(),
            256.into(),
            1024.into(),
            "auto".into(),
        ] {
            let measured = spin(chunk);
            let workers = measured.params["workers"].as_f64().unwrap();
            // Each task spins 50 µs: no pool of n workers runs more than n / 50 µs of them.
            let ceiling = workers / 50e-6;
            assert!(
                measured.median() <= 1.05 * ceiling,
                "{implementation:?}: {} tasks/s of 50 µs each on {workers} workers",
                measured.median()
            );
        }
    }
}

#[test]
fn fork_cow_copies_pages_only_when_the_child_writes() {
    let size = |mib: usize| serde_json::Value::from(mib << 20);
    let mut implementations = vec![Implementation::Rust];
    if python_here() {
        implementations.push(Implementation::Python);
    }
    let report = run_until("fork-cow", |report| {
        for &implementation in &implementations {
            let at = [("size", size(16))];
            let copy = fastest(report, implementation, "cow/child-write-per-page", &at);
            let plain = fastest(report, implementation, "cow/parent-plain-per-page", &at);
            expect(copy > plain, || {
                format!("{implementation:?}: COW {copy} s, plain {plain} s")
            })?;
        }
        Ok(())
    });
    assert_eq!(report.verdicts.len(), 4);
    for implementation in implementations {
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
