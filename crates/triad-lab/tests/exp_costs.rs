//! The cost experiments (`switch-cost`, `spawn-cost`, `memory-per-unit`, `c10k`) at toy size:
//! every path runs, and the results have the shape and sanity the report relies on.

mod common;

use common::{median, run_toy};
use triad_lab::results::{ExperimentReport, Implementation, Outcome};

triad::test_support!();

#[test]
fn switch_cost_measures_every_hand_over() {
    let report = run_toy("switch-cost");
    assert_eq!(report.verdicts.len(), 5);
    let rust = |name: &str, placement: &str| {
        median(
            &report,
            Implementation::Rust,
            name,
            &[("placement", placement.into())],
        )
    };
    for name in [
        "threads, Mutex + Condvar",
        "threads, futex",
        "threads, pipe",
        "processes, pipe",
    ] {
        for placement in ["pinned", "free"] {
            let seconds = rust(name, placement);
            assert!(
                seconds > 1e-8 && seconds < 1e-2,
                "{name} {placement}: {seconds}"
            );
        }
    }
    let coroutine = rust("coroutines, tokio yield_now", "one thread");
    let thread = rust("threads, Mutex + Condvar", "pinned");
    assert!(
        coroutine < thread,
        "a yield {coroutine} s vs a thread switch {thread} s"
    );
    assert!(report.verdicts.iter().all(|v| v.evidence.contains("Rust")));
    assert_eq!(report.table.rows.len(), 12);
}

#[test]
fn spawn_cost_starts_every_kind_of_unit() {
    let report = run_toy("spawn-cost");
    assert_eq!(report.verdicts.len(), 4);
    let rust = |name: &str| median(&report, Implementation::Rust, name, &[]);
    let thread = rust("thread spawn + join");
    let task = rust("tokio task spawn + await, current-thread runtime");
    let spawned = rust("triad worker, spawn");
    assert!(task < thread, "task {task} s, thread {thread} s");
    assert!(
        thread < spawned,
        "thread {thread} s, spawned worker {spawned} s"
    );
    assert!(rust("fork + _exit + waitpid") > 0.0);
    assert!(rust("triad worker, fork server") > 0.0);
    // The test harness runs threads, so triad's fork method refuses, and says so.
    assert!(
        report.notes.iter().any(|n| n.contains("fork start method")),
        "{:?}",
        report.notes
    );
    // A task starts about a hundred times faster than a thread, in both languages.
    assert_eq!(
        report.verdicts[3].outcome,
        Outcome::Confirmed,
        "{:?}",
        report.verdicts[3]
    );
}

fn bytes(report: &ExperimentReport, name: &str) -> (u64, f64) {
    let measurement = report
        .measurements
        .iter()
        .filter(|m| m.name == name)
        .max_by_key(|m| m.params["count"].as_u64())
        .unwrap_or_else(|| panic!("no {name}"));
    (
        measurement.params["count"].as_u64().unwrap(),
        measurement.median(),
    )
}

#[test]
fn memory_per_unit_separates_reserved_from_resident() {
    let report = run_toy("memory-per-unit");
    assert_eq!(report.verdicts.len(), 3);
    let (threads, reserved) = bytes(&report, "Rust thread, 8 MiB stack: reserved per unit");
    let (_, resident) = bytes(&report, "Rust thread, 8 MiB stack: resident per unit");
    assert_eq!(threads, 200);
    assert!(
        reserved >= (8 << 20) as f64,
        "a thread reserved {reserved} bytes"
    );
    assert!(
        resident > 0.0 && resident < (1 << 20) as f64,
        "a thread holds {resident} bytes"
    );
    let (tasks, task) = bytes(&report, "tokio task: resident per unit");
    assert_eq!(tasks, 10_000);
    assert!(task > 16.0 && task < 16_384.0, "a task holds {task} bytes");
    assert!(task < resident);
    let thread_verdict = &report.verdicts[1];
    assert_ne!(
        thread_verdict.outcome,
        Outcome::Confirmed,
        "{thread_verdict:?}"
    );
}

#[test]
fn c10k_waits_concurrently() {
    let report = run_toy("c10k");
    assert_eq!(report.verdicts.len(), 3);
    for waiters in ["tokio tasks", "triad Mode::Async", "Rust threads"] {
        let (count, seconds) = bytes(&report, &format!("{waiters}: total time"));
        assert_eq!(count, 200);
        // 200 waits of 100 ms one after another would take 20 s.
        assert!((0.1..2.0).contains(&seconds), "{waiters}: {seconds} s");
    }
    let (_, tasks) = bytes(&report, "tokio tasks: peak memory growth");
    let (_, threads) = bytes(&report, "Rust threads: peak memory growth");
    assert!(
        tasks < threads,
        "tasks {tasks} bytes, threads {threads} bytes"
    );
}
