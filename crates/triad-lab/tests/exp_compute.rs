//! The compute experiments (`cpu-bound`, `io-bound`, `gil`) at toy scale: the shape of each
//! report, and the facts any machine must show (coroutines do not speed up CPU work, a lock-free
//! overlap of waits, a simulated GIL that lets one thread run at a time).

triad::test_support!();

use std::sync::Mutex;

use triad_lab::experiment::Scale;
use triad_lab::results::{ExperimentReport, Implementation, Measurement, Timeline};
use triad_lab::{Config, Python, PythonChoice, Quiet};

/// One experiment at a time: they time themselves, and would slow each other down.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run_toy(id: &str) -> ExperimentReport {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let config = Config {
        scale: Scale::Toy,
        only: Some(vec![id.to_owned()]),
        python: PythonChoice::Auto,
    };
    let mut lab = triad_lab::run(&config, &mut Quiet).expect("the lab runs");
    assert!(lab.failures.is_empty(), "{:?}", lab.failures);
    assert_eq!(lab.experiments.len(), 1);
    let report = lab.experiments.remove(0);
    assert_eq!(report.id, id);
    assert_general_shape(&report);
    report
}

fn python_present() -> bool {
    Python::find().is_ok()
}

/// What every report must have: a method, a full table, charts with data, measurements with
/// samples, verdicts with quotes and evidence, and (with python3) CPython's numbers.
fn assert_general_shape(report: &ExperimentReport) {
    assert!(!report.method.is_empty());
    assert!(!report.table.rows.is_empty());
    for row in &report.table.rows {
        assert_eq!(row.len(), report.table.columns.len());
    }
    assert!(!report.charts.is_empty());
    for chart in &report.charts {
        assert!(
            chart.series.iter().any(|s| !s.points.is_empty()),
            "{}",
            chart.title
        );
        for point in chart.series.iter().flat_map(|s| &s.points) {
            assert!(point.y.is_finite() && point.y >= 0.0, "{}", chart.title);
        }
    }
    for measurement in &report.measurements {
        assert!(!measurement.samples.is_empty(), "{}", measurement.name);
        assert!(
            measurement
                .samples
                .iter()
                .all(|s| s.is_finite() && *s >= 0.0),
            "{}: {:?}",
            measurement.name,
            measurement.samples
        );
    }
    for verdict in &report.verdicts {
        assert!(!verdict.claim.is_empty());
        assert!(!verdict.quote.is_empty());
        assert!(!verdict.evidence.is_empty(), "{}", verdict.claim);
    }
    let has_python = report
        .measurements
        .iter()
        .any(|m| m.implementation == Implementation::Python);
    assert_eq!(has_python, python_present(), "CPython measurements");
}

fn median(
    report: &ExperimentReport,
    implementation: Implementation,
    name: &str,
    params: &[(&str, serde_json::Value)],
) -> f64 {
    find(report, implementation, name, params)
        .unwrap_or_else(|| panic!("no {implementation:?} {name} {params:?}"))
        .median()
}

fn find<'a>(
    report: &'a ExperimentReport,
    implementation: Implementation,
    name: &str,
    params: &[(&str, serde_json::Value)],
) -> Option<&'a Measurement> {
    report.measurements.iter().find(|m| {
        m.implementation == implementation
            && m.name == name
            && params.iter().all(|(k, v)| m.params.get(*k) == Some(v))
    })
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
    let report = run_toy("cpu-bound");
    let cores = triad::available_cores();
    assert_eq!(report.verdicts.len(), 8);
    assert_eq!(report.charts.len(), 2);
    let mut languages = vec![Implementation::Rust];
    if python_present() {
        languages.push(Implementation::Python);
    }
    for implementation in languages {
        for workload in ["count_primes", "sum_squares"] {
            let at = |workers: usize| [("workload", workload.into()), ("workers", workers.into())];
            let serial = median(&report, implementation, "serial", &at(1));
            let coroutines = median(&report, implementation, "async", &at(1));
            assert!(
                coroutines > 0.7 * serial,
                "{implementation:?} {workload}: coroutines on one loop {coroutines} vs serial {serial}"
            );
            for workers in [1, 2, cores, 2 * cores] {
                for engine in ["threads", "processes"] {
                    assert!(find(&report, implementation, engine, &at(workers)).is_some());
                }
            }
            if cores >= 2 && implementation == Implementation::Rust {
                let processes = median(&report, implementation, "processes", &at(cores));
                assert!(
                    processes <= serial,
                    "{workload}: {cores} processes {processes} s, serial {serial} s"
                );
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
