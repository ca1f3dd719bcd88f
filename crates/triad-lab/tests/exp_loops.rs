//! The `select-poll-epoll` and `event-loop` experiments at toy scale: the shape and sanity of
//! what they report, timing facts through [`run_until`].

mod common;

use common::{expect, fastest, found, median, python_here, run_until, verdict};
use triad_lab::results::{ChartKind, ExperimentReport, Implementation, Outcome, Scale};

#[test]
fn select_poll_epoll_measures_every_method_and_judges_each_claim() {
    let rust = |report: &ExperimentReport, method: &str, n: u64| {
        fastest(
            report,
            Implementation::Rust,
            method,
            &[("descriptors", n.into())],
        )
    };
    let report = run_until("select-poll-epoll", |report| {
        for method in ["poll", "select"] {
            let (few, many) = (rust(report, method, 10), rust(report, method, 100));
            expect(many > few * 1.5, || {
                format!("{method} walks every descriptor: {many} s at 100 vs {few} s at 10")
            })?;
        }
        let (epoll, poll) = (rust(report, "epoll", 100), rust(report, "poll", 100));
        expect(epoll < poll, || {
            format!("epoll at 100 descriptors took {epoll} s, poll {poll} s")
        })
    });
    for method in ["select", "poll", "epoll"] {
        for n in [10, 100] {
            // A system call that looks at a descriptor: never 10 ns.
            let seconds = rust(&report, method, n);
            assert!(seconds > 1e-8, "{method} at {n}: {seconds} s");
        }
    }
    assert_eq!(report.verdicts.len(), 5);
    assert_eq!(report.table.rows.len(), 3, "two sizes and the fitted cost");
    let chart = &report.charts[0];
    assert_eq!(chart.kind, ChartKind::Line);
    assert_eq!((chart.x_scale, chart.y_scale), (Scale::Log, Scale::Log));
    let python_series = if python_here() { 3 } else { 0 };
    assert_eq!(chart.series.len(), 3 + python_series);
    if python_here() {
        for method in ["select", "poll", "epoll"] {
            assert!(
                found(&report)
                    .get(
                        Implementation::Python,
                        method,
                        &[("descriptors", 100.into())]
                    )
                    .is_some(),
                "CPython's {method} is missing"
            );
        }
    } else {
        assert!(report.notes.iter().any(|n| n.contains("CPython")));
    }
}

#[test]
fn event_loop_runs_every_workload_on_every_loop_and_judges_each_claim() {
    let loops: &[(&str, Implementation)] = if python_here() {
        &[
            ("reference", Implementation::Rust),
            ("tokio", Implementation::Rust),
            ("asyncio", Implementation::Python),
        ]
    } else {
        &[
            ("reference", Implementation::Rust),
            ("tokio", Implementation::Rust),
        ]
    };
    let timed = [
        "spawn + join, per task",
        "yield switch, per switch",
        "ping-pong switch, per switch",
        "echo round trip",
        "sleepers, total",
    ];
    let report = run_until("event-loop", |report| {
        for &(runtime, implementation) in loops {
            for name in timed {
                let seconds = fastest(report, implementation, name, &[("runtime", runtime.into())]);
                expect(seconds < 1.0, || {
                    format!("{name} on {runtime}: {seconds} s")
                })?;
            }
        }
        Ok(())
    });
    let value = |name: &str, runtime: &str, implementation: Implementation| {
        median(
            &report,
            implementation,
            name,
            &[("runtime", runtime.into())],
        )
    };
    for &(runtime, implementation) in loops {
        for name in [
            "spawn + join, per task",
            "yield switch, per switch",
            "ping-pong switch, per switch",
            "echo round trip",
            "sleepers, total",
        ] {
            let seconds = value(name, runtime, implementation);
            assert!(
                seconds > 0.0 && seconds < 1.0,
                "{name} on {runtime}: {seconds}"
            );
        }
        let blocked = value(
            "timer behind a computation, lateness",
            runtime,
            implementation,
        );
        assert!(
            blocked >= 0.004 * 0.95,
            "{runtime}: a timer behind 5 ms of computation (due after 1 ms) woke {blocked} s late"
        );
        let earliest = value(
            "sleepers, earliest wake vs deadline",
            runtime,
            implementation,
        );
        assert!(
            earliest >= -10e-6,
            "{runtime}: a timer fired {earliest} s early"
        );
        let total = value("sleepers, total", runtime, implementation);
        assert!(
            total >= 0.005,
            "{runtime}: 5 ms sleepers finished in {total} s"
        );
        let switches = value(
            "voluntary context switches during the yield run",
            runtime,
            implementation,
        );
        assert!(
            switches <= 20.0,
            "{runtime}: {switches} context switches in 2,000 yields"
        );
        let wall = value("idle wait, wall time", runtime, implementation);
        let cpu = value("idle wait, CPU time", runtime, implementation);
        assert!(
            wall >= 0.010 && cpu < wall * 0.5,
            "{runtime}: idle {cpu} s CPU in {wall} s"
        );
    }
    assert_eq!(report.verdicts.len(), 6);
    for claim in [
        "A coroutine runs until it awaits",
        "The loop runs scheduled (timer) tasks once they are due.",
        "When I/O completes, the loop resumes the coroutine",
    ] {
        let on = verdict(&report, claim);
        assert_eq!(on.outcome, Outcome::Confirmed, "{on:?}");
    }
    assert_eq!(report.charts.len(), 2);
    for chart in &report.charts {
        assert_eq!(chart.kind, ChartKind::Bar);
        assert_eq!(chart.series.len(), loops.len());
        for series in &chart.series {
            assert!(
                series
                    .points
                    .iter()
                    .all(|p| p.x >= 0.0 && (p.x as usize) < chart.categories.len() && p.y > 0.0)
            );
        }
    }
    let timeline = &report.timelines[0];
    assert_eq!(timeline.lanes.len(), 3);
    let mut spans: Vec<_> = timeline.lanes.iter().flat_map(|l| &l.spans).collect();
    assert_eq!(spans.len(), 9);
    spans.sort_by_key(|s| s.start_ns);
    assert!(
        spans.windows(2).all(|w| w[0].end_ns <= w[1].start_ns),
        "one task at a time on the loop's thread"
    );
}
