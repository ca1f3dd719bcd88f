//! What the toy tests share: running one experiment at toy scale as the lab runs it
//! ([`run_toy`]), again until its timing facts hold ([`run_until`]), the shape every
//! experiment's report must have ([`check_shape`]), and reading a report's measurements and
//! verdicts through the lab's one lookup ([`found`], [`median`], [`verdict`]).
//!
//! Facts read from timings are checked on up to [`ATTEMPTS`] runs and must hold on one: on a
//! machine shared with other work a single run can lose a core at the wrong moment, but a
//! broken engine fails every time. The runs are [`PAUSE`] apart, so that one burst of load from
//! elsewhere (a CI run saw three quick runs in a row lose a core) does not fall on all of them.
//! Such a fact compares the least disturbed samples ([`fastest`]): work from elsewhere only
//! ever adds time, so while a core is kept busy the fastest run of each side is still the
//! nearest to what the engine does.

use std::sync::{Mutex, OnceLock, PoisonError};

use triad_lab::findings::Param;
use triad_lab::results::{ChartKind, ExperimentReport, Implementation, Measurement, Verdict};
use triad_lab::{Config, Findings, Machine, Python, PythonChoice, Quiet, Scale};

/// The experiments time threads and processes: one at a time, as the lab runs them, or each
/// would time the others' threads.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs experiment `id` at toy scale through [`triad_lab::run`] (one experiment at a time in
/// this test binary), checks that it did not fail and has the shape of [`check_shape`], and
/// returns its report.
pub(crate) fn run_toy(id: &str) -> ExperimentReport {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
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
    check_shape(&report);
    report
}

/// How many toy runs a timing fact gets.
pub(crate) const ATTEMPTS: usize = 3;
/// How long to wait before running again after a timing fact failed.
pub(crate) const PAUSE: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs `id` at toy scale until `timing_facts` holds (every run is checked for shape), and
/// returns that run's report; panics with every complaint after [`ATTEMPTS`] runs.
pub(crate) fn run_until(
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

/// `Err(message)` unless `holds`: one timing fact for [`run_until`].
pub(crate) fn expect(holds: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(message()) }
}

/// The verdict on the claim of `report` that starts with `claim`; panics when there is none.
pub(crate) fn verdict<'a>(report: &'a ExperimentReport, claim: &str) -> &'a Verdict {
    report
        .verdicts
        .iter()
        .find(|v| v.claim.starts_with(claim))
        .unwrap_or_else(|| panic!("{}: no verdict on a claim {claim:?}", report.id))
}

/// The measurements of `report`, a toy run on this machine, to be looked up.
pub(crate) fn found(report: &ExperimentReport) -> Findings<'_> {
    static MACHINE: OnceLock<Machine> = OnceLock::new();
    Findings::new(
        &report.measurements,
        Scale::Toy,
        MACHINE.get_or_init(Machine::detect),
    )
}

/// The median of the measurement `name` of `implementation` whose parameters include every
/// pair of `params`; panics when there is none.
pub(crate) fn median(
    report: &ExperimentReport,
    implementation: Implementation,
    name: &str,
    params: &[Param<'_>],
) -> f64 {
    get(report, implementation, name, params).median()
}

/// The fastest sample (the least disturbed by other work) of the measurement `name` of
/// `implementation` whose parameters include every pair of `params`: the smallest of a time,
/// the largest of a rate (a unit per second). Panics when there is none.
pub(crate) fn fastest(
    report: &ExperimentReport,
    implementation: Implementation,
    name: &str,
    params: &[Param<'_>],
) -> f64 {
    let measurement = get(report, implementation, name, params);
    if measurement.unit.ends_with("/s") || measurement.unit.ends_with("per_s") {
        measurement.summary.max
    } else {
        measurement.summary.min
    }
}

fn get<'a>(
    report: &'a ExperimentReport,
    implementation: Implementation,
    name: &str,
    params: &[Param<'_>],
) -> &'a Measurement {
    found(report)
        .get(implementation, name, params)
        .unwrap_or_else(|| panic!("no {implementation:?} {name} with {params:?}"))
}

/// Whether `python3` is here, so that the experiments measure CPython too.
pub(crate) fn python_here() -> bool {
    Python::find().is_ok()
}

/// Checks what every experiment's report must have: a method and a seed section; a table with
/// rows as wide as its columns; charts, each with data (finite, non-negative values; a bar
/// within its categories); verdicts, each with a claim, evidence and the seed's own (Chinese)
/// words; measurements, each with samples that are finite and (but for a timer's lateness)
/// non-negative; Rust's measurements, and CPython's exactly when `python3` is here.
pub(crate) fn check_shape(report: &ExperimentReport) {
    let id = &report.id;
    assert!(!report.method.is_empty(), "{id}: no method");
    assert!(!report.seed_section.is_empty(), "{id}: no seed section");
    assert!(!report.table.rows.is_empty(), "{id}: empty table");
    for row in &report.table.rows {
        assert_eq!(row.len(), report.table.columns.len(), "{id}: {row:?}");
    }
    assert!(!report.charts.is_empty(), "{id}: no chart");
    for chart in &report.charts {
        assert!(
            chart.series.iter().any(|s| !s.points.is_empty()),
            "{id}: chart {:?} has no data",
            chart.title
        );
        for point in chart.series.iter().flat_map(|s| &s.points) {
            assert!(
                point.y.is_finite() && point.y >= 0.0,
                "{id}: chart {:?} has a point at {}",
                chart.title,
                point.y
            );
            if chart.kind == ChartKind::Bar {
                assert!(
                    (point.x as usize) < chart.categories.len(),
                    "{id}: a bar outside the categories of {:?}",
                    chart.title
                );
            }
        }
    }
    assert!(!report.verdicts.is_empty(), "{id}: no verdict");
    for verdict in &report.verdicts {
        assert!(
            !verdict.claim.is_empty() && !verdict.evidence.is_empty(),
            "{id}: {verdict:?}"
        );
        assert!(
            !verdict.quote.is_ascii(),
            "{id}: the quote is the seed's own (Chinese) words: {:?}",
            verdict.quote
        );
    }
    for measurement in &report.measurements {
        assert!(
            !measurement.samples.is_empty(),
            "{id}: {} has no samples",
            measurement.name
        );
        assert!(
            measurement
                .samples
                .iter()
                .all(|s| s.is_finite() && (*s >= 0.0 || signed(measurement))),
            "{id}: {}: {:?}",
            measurement.name,
            measurement.samples
        );
    }
    let has = |implementation| {
        report
            .measurements
            .iter()
            .any(|m| m.implementation == implementation)
    };
    assert!(has(Implementation::Rust), "{id}: no Rust measurement");
    assert_eq!(
        has(Implementation::Python),
        python_here(),
        "{id}: CPython's measurements are there exactly when python3 is: {:?}",
        report.notes
    );
}

/// Whether `measurement`'s samples may be negative: a timer's lateness after its deadline
/// (`event-loop`), negative when it woke early.
fn signed(measurement: &Measurement) -> bool {
    measurement.name.contains("lateness") || measurement.name.contains("vs deadline")
}
