//! The compute experiments (`cpu-bound`, `io-bound`, `gil`) at toy scale: the shape of each
//! report, and the facts any machine must show (processes speed CPU work up and coroutines do
//! not, concurrent waits overlap, a simulated GIL lets one thread run at a time).
//!
//! Facts read from timings are checked on up to [`ATTEMPTS`] runs and must hold on one: on a
//! machine shared with other work a single run can lose a core at the wrong moment, but a
//! broken engine fails every time. The runs are [`PAUSE`] apart, so that one burst of load from
//! elsewhere (a CI run saw three quick runs in a row lose a core) does not fall on all of them.

triad::test_support!();

mod common;

use common::{found, median, python_here, run_toy};
use triad_lab::results::{ExperimentReport, Implementation, Timeline};

/// How many toy runs a timing fact gets.
const ATTEMPTS: usize = 3;
/// How long to wait before running again after a timing fact failed.
const PAUSE: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs `id` at toy scale until `timing_facts` holds (every run is checked for shape), and
/// returns that run's report; panics with the last complaint after [`ATTEMPTS`] runs.
fn run_until(
    id: &str,
    timing_facts: impl Fn(&ExperimentReport) -> Result<(), String>,
) -> ExperimentReport {
    let mut complaints = Vec::new();
    for _ in 0..ATTEMPTS {
        let report = run_toy(id);
        match timing_facts(&report) {
            Ok(()) => return report,
            Err(complaint) => {
                eprintln!("{id}: a timing fact failed, running again: {complaint}");
                complaints.push(complaint);
                std::thread::sleep(PAUSE);
            }
        }
    }
    panic!("{id}: on each of {ATTEMPTS} runs: {complaints:#?}");
}

/// `Err(message)` unless `holds`.
fn expect(holds: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(message()) }
}

fn languages() -> Vec<Implementation> {
    let mut languages = vec![Implementation::Rust];
    if python_here() {
        languages.push(Implementation::Python);
    }
    languages
}

/// Nanoseconds during which spans of two different lanes overlap.
fn overlap_between_lanes(timeline: &Timeline) -> u64 {
    let mut together = 0;
    for (i, a) in timeline.lanes.iter().enumerate() {
        for b in &timeline.lanes[i + 1..] {
            for x in &a.spans {
                for y in &b.spans {
                    let start = x.start_ns.max(y.start_ns);
                    let end = x.end_ns.min(y.end_ns);
                    together += end.saturating_sub(start);
                }
            }
        }
    }
    together
}

#[test]
fn cpu_bound_at_toy_scale() {
    let cores = triad::available_cores();
    let report = run_until("cpu-bound", |report| {
        for implementation in languages() {
            for workload in ["count_primes", "sum_squares"] {
                let at =
                    |workers: usize| [("workload", workload.into()), ("workers", workers.into())];
                let serial = median(report, implementation, "serial", &at(1));
                let coroutines = median(report, implementation, "async", &at(1));
                expect(coroutines > 0.7 * serial, || {
                    format!(
                        "{implementation:?} {workload}: coroutines on one loop took {coroutines} \
                         s, serial {serial} s"
                    )
                })?;
                if cores >= 2 && implementation == Implementation::Rust {
                    let processes = median(report, implementation, "processes", &at(cores));
                    expect(processes <= serial, || {
                        format!("{workload}: {cores} processes {processes} s, serial {serial} s")
                    })?;
                }
            }
        }
        Ok(())
    });
    assert_eq!(report.verdicts.len(), 8);
    assert_eq!(report.charts.len(), 2);
    for implementation in languages() {
        for workload in ["count_primes", "sum_squares"] {
            for workers in [1, 2, cores, 2 * cores] {
                for engine in ["threads", "processes"] {
                    let params = [("workload", workload.into()), ("workers", workers.into())];
                    assert!(
                        found(&report)
                            .get(implementation, engine, &params)
                            .is_some()
                    );
                }
            }
        }
    }
    assert_eq!(report.timelines.len(), 3);
    for timeline in &report.timelines {
        assert_eq!(timeline.lanes.len(), 2, "{}", timeline.title);
        assert!(timeline.lanes.iter().all(|lane| !lane.spans.is_empty()));
    }
    let coroutines = report
        .timelines
        .iter()
        .find(|t| t.title.contains("coroutines"))
        .expect("a coroutine timeline");
    assert_eq!(overlap_between_lanes(coroutines), 0);
}

#[test]
fn io_bound_at_toy_scale() {
    let delay = 0.010;
    let report = run_until("io-bound", |report| {
        for implementation in languages() {
            for workload in ["sleep", "tcp round trip"] {
                let at = |n: usize| [("workload", workload.into()), ("n", n.into())];
                let serial = median(report, implementation, "serial", &at(2));
                for engine in ["thread per wait", "thread pool", "async"] {
                    let four = median(report, implementation, engine, &at(4));
                    expect(four < serial, || {
                        format!(
                            "{implementation:?} {workload} {engine}: 4 concurrent waits took \
                             {four} s, 2 serial ones {serial} s"
                        )
                    })?;
                }
            }
        }
        Ok(())
    });
    assert_eq!(report.verdicts.len(), 5);
    assert_eq!(report.charts.len(), 2 * languages().len());
    for implementation in languages() {
        for workload in ["sleep", "tcp round trip"] {
            let at = |n: usize| [("workload", workload.into()), ("n", n.into())];
            let serial = median(&report, implementation, "serial", &at(2));
            assert!(
                serial >= 2.0 * delay,
                "{implementation:?} {workload}: two waits of 10 ms in {serial} s"
            );
            let queued = median(&report, implementation, "processes", &at(4));
            assert!(
                queued >= 2.0 * delay,
                "{implementation:?} {workload}: 2 processes overlapped 4 waits in {queued} s"
            );
        }
    }
}

#[test]
fn gil_at_toy_scale() {
    let report = run_until("gil", |report| {
        let rust = |name: &str| median(report, Implementation::Rust, name, &[]);
        let (serial, simulated) = (rust("cpu serial"), rust("cpu threads under the GIL"));
        expect(simulated > 0.7 * serial, || {
            format!(
                "threads under the simulated GIL ran in parallel: {simulated} s, serial {serial} s"
            )
        })?;
        let (io_serial, io_threads) = (rust("io serial"), rust("io threads under the GIL"));
        expect(io_threads < io_serial / 2.0, || {
            format!(
                "IO under the simulated GIL did not overlap: {io_threads} s, serial {io_serial} s"
            )
        })?;
        let gil_enabled = !report.notes.iter().any(|n| n.contains("without a GIL"));
        if python_here() && gil_enabled {
            let python = |name: &str| median(report, Implementation::Python, name, &[]);
            let (serial, threaded) = (python("cpu serial"), python("cpu threads under the GIL"));
            expect(threaded > 0.7 * serial, || {
                format!("CPython threads ran bytecode in parallel: {threaded} s, serial {serial} s")
            })?;
        }
        Ok(())
    });
    assert_eq!(report.verdicts.len(), 7);
    assert_eq!(report.charts.len(), 2);
    assert_eq!(report.timelines.len(), 1);
    let threads = triad::available_cores().max(2);
    let holds = &report.timelines[0];
    assert_eq!(holds.lanes.len(), threads, "one lane per simulated thread");
    assert_eq!(overlap_between_lanes(holds), 0, "two holders at once");
    if python_here() {
        let interval = found(&report)
            .get(Implementation::Python, "switch interval", &[])
            .unwrap();
        assert_eq!(interval.samples.len(), 1);
    }
}
