//! The cost experiments (`switch-cost`, `spawn-cost`, `memory-per-unit`, `c10k`) at toy size:
//! every path runs, and the results have the shape and sanity the report relies on; facts read
//! from timings go through [`run_until`].

mod common;

use common::{expect, fastest, median, run_toy, run_until, verdict};
use triad_lab::results::{ExperimentReport, Implementation, Outcome};

triad::test_support!();

#[test]
fn switch_cost_measures_every_hand_over() {
    let rust = |report: &ExperimentReport, name: &str, placement: &str| {
        fastest(
            report,
            Implementation::Rust,
            name,
            &[("placement", placement.into())],
        )
    };
    let kernel = [
        "threads, Mutex + Condvar",
        "threads, futex",
        "threads, pipe",
        "processes, pipe",
    ];
    let report = run_until("switch-cost", |report| {
        for name in kernel {
            for placement in ["pinned", "free"] {
                let seconds = rust(report, name, placement);
                expect(seconds < 1e-2, || {
                    format!("{name} {placement}: {seconds} s")
                })?;
            }
        }
        let coroutine = rust(report, "coroutines, tokio yield_now", "one thread");
        let thread = rust(report, "threads, Mutex + Condvar", "pinned");
        expect(coroutine < thread, || {
            format!("a yield {coroutine} s vs a thread switch {thread} s")
        })
    });
    assert_eq!(report.verdicts.len(), 5);
    for name in kernel {
        for placement in ["pinned", "free"] {
            // A hand-over through the kernel: never 10 ns.
            let seconds = rust(&report, name, placement);
            assert!(seconds > 1e-8, "{name} {placement}: {seconds} s");
        }
    }
    assert!(report.verdicts.iter().all(|v| v.evidence.contains("Rust")));
    assert_eq!(report.table.rows.len(), 12);
}

#[test]
fn spawn_cost_starts_every_kind_of_unit() {
    let rust =
        |report: &ExperimentReport, name: &str| fastest(report, Implementation::Rust, name, &[]);
    let report = run_until("spawn-cost", |report| {
        let thread = rust(report, "thread spawn + join");
        let task = rust(report, "tokio task spawn + await, current-thread runtime");
        let spawned = rust(report, "triad worker, spawn");
        let (fork, worker) = (
            rust(report, "fork + _exit + waitpid"),
            rust(report, "triad worker, fork server"),
        );
        expect(task < thread, || {
            format!("task {task} s, thread {thread} s")
        })?;
        expect(thread < spawned, || {
            format!("thread {thread} s, spawned worker {spawned} s")
        })?;
        expect(fork < worker, || {
            format!("a bare fork {fork} s, a worker from the fork server {worker} s")
        })?;
        // A task starts about a hundred times faster than a thread, in both languages.
        let quicker = verdict(report, "A coroutine is light and quick to start");
        expect(quicker.outcome == Outcome::Confirmed, || {
            format!("{quicker:?}")
        })
    });
    assert_eq!(report.verdicts.len(), 4);
    // A process is created, run and reaped: never in a microsecond.
    let fork = median(&report, Implementation::Rust, "fork + _exit + waitpid", &[]);
    assert!(fork > 1e-6, "fork + _exit + waitpid in {fork} s");
    // The test harness runs threads, so triad's fork method refuses, and says so.
    assert!(
        report.notes.iter().any(|n| n.contains("fork start method")),
        "{:?}",
        report.notes
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
    // A parked thread has touched at least one page of its stack, and not a whole MiB.
    assert!(
        (4096.0..(1 << 20) as f64).contains(&resident),
        "a thread holds {resident} bytes"
    );
    let (tasks, task) = bytes(&report, "tokio task: resident per unit");
    assert_eq!(tasks, 10_000);
    assert!(task > 16.0 && task < 16_384.0, "a task holds {task} bytes");
    assert!(task < resident);
    let thread_verdict = verdict(&report, "A thread takes about 8 MB");
    assert_ne!(
        thread_verdict.outcome,
        Outcome::Confirmed,
        "{thread_verdict:?}"
    );
}

#[test]
fn c10k_waits_concurrently() {
    let waiters = ["tokio tasks", "triad Mode::Async", "Rust threads"];
    let report = run_until("c10k", |report| {
        for waiters in waiters {
            let (_, seconds) = bytes(report, &format!("{waiters}: total time"));
            // 200 waits of 100 ms one after another would take 20 s.
            expect(seconds < 2.0, || format!("{waiters}: {seconds} s"))?;
        }
        Ok(())
    });
    assert_eq!(report.verdicts.len(), 3);
    for waiters in waiters {
        let (count, seconds) = bytes(&report, &format!("{waiters}: total time"));
        assert_eq!(count, 200);
        assert!(
            seconds >= 0.1,
            "{waiters}: 100 ms waits over in {seconds} s"
        );
    }
    let (_, tasks) = bytes(&report, "tokio tasks: peak memory growth");
    let (_, threads) = bytes(&report, "Rust threads: peak memory growth");
    assert!(
        tasks < threads,
        "tasks {tasks} bytes, threads {threads} bytes"
    );
}
