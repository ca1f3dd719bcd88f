//! The `hybrid` experiment at toy scale: every variant measured in both languages, the facts any
//! machine must show (concurrent variants overlap the waits, coroutines making blocking calls do
//! not, the loop stalls while it computes, the pipeline's stages run at once), timing facts
//! through [`run_until`].

triad::test_support!();

mod common;

use common::{expect, fastest, found, median, python_here, run_until, verdict};
use triad_lab::results::{ChartKind, ExperimentReport, Implementation, Outcome, TimelineSpan};

const VARIANTS: [&str; 7] = [
    "serial",
    "one loop, blocking IO",
    "one loop",
    "threads",
    "processes",
    "process pool with coroutines inside",
    "pipeline",
];

/// The variants that overlap the items' waits.
const CONCURRENT: [&str; 5] = [
    "one loop",
    "threads",
    "processes",
    "process pool with coroutines inside",
    "pipeline",
];

/// One item's fetch and save (20 ms + 10 ms).
const WAITS_S: f64 = 0.030;

fn languages() -> Vec<Implementation> {
    let mut languages = vec![Implementation::Rust];
    if python_here() {
        languages.push(Implementation::Python);
    }
    languages
}

fn items(report: &ExperimentReport) -> usize {
    found(report)
        .get(Implementation::Rust, "serial", &[])
        .and_then(|m| m.params["items"].as_u64())
        .expect("the batch size") as usize
}

fn stall(report: &ExperimentReport, implementation: Implementation, variant: &str) -> f64 {
    fastest(
        report,
        implementation,
        "longest loop stall",
        &[("variant", variant.into())],
    )
}

/// Whether a span of a lane named `a…` and one of a lane named `b…` run at the same moment.
fn stages_overlap(report: &ExperimentReport, a: &str, b: &str) -> bool {
    let spans = |stage: &str| -> Vec<&TimelineSpan> {
        report.timelines[0]
            .lanes
            .iter()
            .filter(|lane| lane.label.starts_with(stage))
            .flat_map(|lane| &lane.spans)
            .collect()
    };
    let (first, second) = (spans(a), spans(b));
    first.iter().any(|x| {
        second
            .iter()
            .any(|y| x.start_ns.max(y.start_ns) < x.end_ns.min(y.end_ns))
    })
}

#[test]
fn hybrid_at_toy_scale() {
    let report = run_until("hybrid", |report| {
        for implementation in languages() {
            let serial = fastest(report, implementation, "serial", &[]);
            for variant in CONCURRENT {
                let time = fastest(report, implementation, variant, &[]);
                expect(time < 0.75 * serial, || {
                    format!(
                        "{implementation:?} {variant}: {time} s for the batch, serial {serial} s"
                    )
                })?;
            }
            let cpu = fastest(report, implementation, "cpu work per item", &[]);
            expect((0.25e-3..8e-3).contains(&cpu), || {
                format!("{implementation:?}: one item's CPU work took {cpu} s, not about 2 ms")
            })?;
            let computing = stall(report, implementation, "one loop");
            expect(computing >= cpu, || {
                format!(
                    "{implementation:?}: the loop that computes stalled at most {computing} s, \
                     one computation takes {cpu} s"
                )
            })?;
        }
        expect(stages_overlap(report, "compute", "save"), || {
            "no item was saved while another was computed".to_owned()
        })
    });
    let n = items(&report) as f64;
    for implementation in languages() {
        for variant in VARIANTS {
            assert!(
                found(&report).get(implementation, variant, &[]).is_some(),
                "{implementation:?} {variant} is missing"
            );
        }
        // Time only ever grows with load: these hold on any machine.
        let serial = median(&report, implementation, "serial", &[]);
        assert!(
            serial >= 0.95 * n * WAITS_S,
            "{implementation:?}: {serial} s"
        );
        let blocked = median(&report, implementation, "one loop, blocking IO", &[]);
        assert!(
            blocked >= 0.95 * n * WAITS_S,
            "{implementation:?}: {n} coroutines making blocking calls overlapped: {blocked} s"
        );
        let held = stall(&report, implementation, "one loop, blocking IO");
        assert!(
            held >= 0.95 * WAITS_S,
            "{implementation:?}: blocking calls stalled the loop for only {held} s"
        );
        for variant in CONCURRENT {
            let time = median(&report, implementation, variant, &[]);
            assert!(
                time >= 0.95 * WAITS_S,
                "{implementation:?} {variant}: {time} s"
            );
        }
    }
    for stage in ["fetch", "compute", "save"] {
        for name in [
            "pipeline stage busy",
            "pipeline stage blocked",
            "pipeline stage starved",
        ] {
            let share = median(
                &report,
                Implementation::Rust,
                name,
                &[("stage", stage.into())],
            );
            assert!((0.0..=1.0).contains(&share), "{name} of {stage}: {share}");
        }
        let busy = median(
            &report,
            Implementation::Rust,
            "pipeline stage busy",
            &[("stage", stage.into())],
        );
        assert!(busy > 0.0, "{stage} was never busy");
    }
    let start = median(&report, Implementation::Rust, "pipeline start", &[]);
    assert!(start > 0.0, "the pipeline started in {start} s");
    assert_eq!(report.verdicts.len(), 4);
    let pitfall = verdict(
        &report,
        "Blocking IO inside a coroutine blocks the whole event loop",
    );
    assert_eq!(pitfall.outcome, Outcome::Confirmed, "{pitfall:?}");
    assert_eq!(report.charts.len(), 2);
    assert!(report.charts.iter().all(|c| c.kind == ChartKind::Bar));
    assert_eq!(report.charts[0].categories.len(), VARIANTS.len());
    assert_eq!(report.charts[0].series.len(), languages().len());
    assert_eq!(report.charts[1].categories, ["fetch", "compute", "save"]);
    assert_eq!(
        report.table.rows.len(),
        VARIANTS.len() + 1,
        "and the lower bound"
    );
    assert_eq!(report.timelines.len(), 1);
    let timeline = &report.timelines[0];
    let spans: usize = timeline.lanes.iter().map(|lane| lane.spans.len()).sum();
    assert_eq!(spans, 3 * items(&report), "one span per item and stage");
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("named as its bottleneck"))
    );
}
