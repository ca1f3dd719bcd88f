//! The whole lab at toy size, once: every experiment finishes with results of the right shape,
//! `results.json` keeps its schema, judging its measurements again gives the same report, and
//! `index.html` renders every chart in headless Chromium.
//!
//! Chromium is Debian's `chromium` (installed by `.ci/run`). Where it is missing the browser
//! check is skipped with a message, unless `TRIAD_REQUIRE_CHROMIUM` is set, as CI sets it.

// Only `check_shape`: this file runs the whole lab once, not one experiment at a time.
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use triad_lab::results::{Implementation, LabReport};
use triad_lab::{Config, Findings, PythonChoice, Quiet, Scale};

triad::test_support!();

/// The toy run, shared by the tests of this file (it takes seconds).
fn toy_run() -> &'static LabReport {
    static REPORT: OnceLock<LabReport> = OnceLock::new();
    REPORT.get_or_init(|| {
        let config = Config {
            scale: Scale::Toy,
            only: None,
            python: PythonChoice::Auto,
        };
        triad_lab::run(&config, &mut Quiet).expect("the lab runs")
    })
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("triad-lab-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn every_experiment_reports_samples_tables_charts_and_verdicts() {
    let report = toy_run();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let catalogue: Vec<&str> = triad_lab::experiments::catalogue()
        .iter()
        .map(|e| e.id())
        .collect();
    let ran: Vec<&str> = report.experiments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ran, catalogue);
    assert_eq!(catalogue.len(), 17, "the issues list 17 experiments");
    for experiment in &report.experiments {
        common::check_shape(experiment);
    }
    assert!(
        report.experiments.iter().any(|e| !e.timelines.is_empty()),
        "no experiment drew a timeline"
    );
    // The report's first screen reads measurements by name: each must find its figures.
    for experiment in &report.experiments {
        let headline = triad_lab::report::headlines::of(report, experiment);
        assert!(headline.is_some(), "{}: no headline figures", experiment.id);
    }
    // The seed's decision table: a verdict on every row whose experiment ran, a note on the
    // rest.
    let rows = triad_lab::report::decision_table::rows(report);
    assert_eq!(rows.len(), 7);
    for row in &rows {
        let ran = report.experiments.iter().any(|e| e.id == row.experiment);
        assert_eq!(
            row.outcome.is_some(),
            ran,
            "{}: {}",
            row.job.1,
            row.evidence
        );
        assert_eq!(!row.best.is_empty(), ran, "{}", row.job.1);
        assert!(
            !row.evidence.is_empty() && !row.note.is_empty(),
            "{}",
            row.job.1
        );
    }
    let python = common::python_here();
    for table in triad_lab::report::seed_table::tables(report) {
        for row in &table.rows {
            for cell in row.cells.iter().filter(|c| !c.experiment.is_empty()) {
                let rust = cell
                    .measured
                    .iter()
                    .any(|(i, _)| *i == Implementation::Rust);
                let cpython = cell
                    .measured
                    .iter()
                    .any(|(i, _)| *i == Implementation::Python);
                assert!(rust || cpython, "{}: {} has no figure", table.id, cell.what);
                if python && !cpython {
                    eprintln!("{}: {} has no CPython figure", table.id, cell.what);
                }
            }
        }
    }
}

#[test]
fn results_json_keeps_its_schema() {
    let report = toy_run();
    let dir = out_dir("schema");
    let written = triad_lab::report::write_all(report, &dir).unwrap();
    let text = std::fs::read_to_string(&written.json).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["schema"], triad_lab::SCHEMA);
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&value),
        [
            "elapsed_s",
            "experiments",
            "failures",
            "machine",
            "notes",
            "scale",
            "schema",
            "started_unix_s"
        ]
    );
    assert_eq!(
        keys(&value["machine"]),
        [
            "cores",
            "cpu_model",
            "kernel",
            "load_average_1m",
            "memory_bytes",
            "python",
            "rust",
            "virtualization"
        ]
    );
    let experiment = &value["experiments"][0];
    assert_eq!(
        keys(experiment),
        [
            "charts",
            "elapsed_s",
            "id",
            "measurements",
            "method",
            "notes",
            "seed_section",
            "table",
            "timelines",
            "title",
            "verdicts"
        ]
    );
    assert_eq!(
        keys(&experiment["measurements"][0]),
        [
            "implementation",
            "name",
            "params",
            "samples",
            "summary",
            "unit"
        ]
    );
    assert_eq!(
        keys(&experiment["verdicts"][0]),
        ["claim", "evidence", "outcome", "quote"]
    );
    let back: LabReport = serde_json::from_str(&text).expect("results.json reads back");
    assert_eq!(back.experiments.len(), report.experiments.len());
    let markdown = std::fs::read_to_string(&written.markdown).unwrap();
    for experiment in &report.experiments {
        assert!(markdown.contains(&format!("## {} —", experiment.id)));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn judging_results_json_again_gives_the_same_table_charts_and_verdicts() {
    let text = serde_json::to_string(toy_run()).unwrap();
    let back: LabReport = serde_json::from_str(&text).unwrap();
    for stored in &back.experiments {
        let experiment = triad_lab::experiments::catalogue()
            .iter()
            .find(|e| e.id() == stored.id)
            .expect("every report is of a catalogued experiment");
        let again = experiment.judge(&Findings::of(&back, stored));
        let id = &stored.id;
        let written = toy_run().experiments.iter().find(|e| e.id == *id).unwrap();
        assert_eq!(
            json(&written.measurements),
            json(&stored.measurements),
            "{id}: results.json reads back to the samples it was written from"
        );
        assert_eq!(again.method, stored.method, "{id}: method");
        assert_eq!(again.table.columns, stored.table.columns, "{id}: columns");
        assert_eq!(again.table.rows, stored.table.rows, "{id}: rows");
        assert_eq!(json(&again.charts), json(&stored.charts), "{id}: charts");
        assert_eq!(
            json(&again.verdicts),
            json(&stored.verdicts),
            "{id}: verdicts"
        );
        for note in &again.notes {
            assert!(stored.notes.contains(note), "{id}: {note}");
        }
    }
}

/// `value` as JSON, to compare report parts that have no `PartialEq`.
fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("a report serialises")
}

/// Debian's Chromium, or `None` (and a message) when it is not installed.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH")?
                .to_str()?
                .split(':')
                .map(|dir| Path::new(dir).join(name))
                .find(|path| path.is_file())
        });
    if found.is_none() {
        assert!(
            std::env::var_os("TRIAD_REQUIRE_CHROMIUM").is_none(),
            "TRIAD_REQUIRE_CHROMIUM is set, but no chromium is on PATH"
        );
        eprintln!("chromium not found: the browser check is skipped");
    }
    found
}

/// Chromium on `page` in a window `width` pixels wide, with `action` (`--dump-dom`, or a
/// screenshot): its stdout.
fn in_chromium(browser: &Path, page: &Path, profile: &Path, width: u32, action: &str) -> String {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--window-size={width},1400"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(action)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The page's DOM after its scripts ran, in a window `width` pixels wide.
fn rendered_dom(browser: &Path, page: &Path, profile: &Path, width: u32) -> String {
    in_chromium(browser, page, profile, width, "--dump-dom")
}

fn body_attribute(dom: &str, name: &str) -> usize {
    let body = &dom[dom.find("<body").expect("a body")..];
    let body = &body[..body.find('>').unwrap()];
    let start = body
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + name.len()
        + 2;
    body[start..start + body[start..].find('"').unwrap()]
        .parse()
        .unwrap()
}

#[test]
fn every_chart_renders_in_headless_chromium() {
    let Some(browser) = chromium() else { return };
    let report = toy_run();
    let dir = out_dir("html");
    let written = triad_lab::report::write_all(report, &dir).unwrap();
    let html = std::fs::read_to_string(&written.html).unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "the page loads nothing from the network"
    );
    let expected: usize = report
        .experiments
        .iter()
        .map(|e| e.charts.len() + e.timelines.len())
        .sum();
    let dom = rendered_dom(&browser, &written.html, &dir.join("chromium-profile"), 1200);
    assert_eq!(body_attribute(&dom, "data-charts-total"), expected);
    assert_eq!(
        body_attribute(&dom, "data-charts-rendered"),
        expected,
        "charts that did not render: {:?}",
        dom.match_indices("data-rendered=\"no\"").count()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The rows of the seed's decision table that got a verdict.
fn rows_judged(report: &LabReport) -> usize {
    triad_lab::report::decision_table::rows(report)
        .iter()
        .filter(|row| row.outcome.is_some())
        .count()
}

/// A page that shows `index.html` in a frame `width` pixels wide (headless Chromium's window
/// is at least 500 pixels wide), and takes over what the frame's page reports of itself.
fn framed(dir: &Path, width: u32) -> PathBuf {
    let page = dir.join(format!("framed-{width}.html"));
    std::fs::write(
        &page,
        format!(
            "<!doctype html><html><body style=\"margin:0\"><iframe src=\"index.html\" \
             style=\"width:{width}px;height:1400px;border:0\"></iframe><script>\
             window.addEventListener('message', function (e) {{ for (var k in e.data) \
             {{ document.body.setAttribute(k, e.data[k]); }} }});</script></body></html>"
        ),
    )
    .unwrap();
    page
}

#[test]
fn the_first_screen_answers_at_desktop_and_phone_widths() {
    let Some(browser) = chromium() else { return };
    let report = toy_run();
    // Kept after the test: the screenshots are for people to look at.
    let dir = out_dir("screens");
    let written = triad_lab::report::write_all(report, &dir).unwrap();
    let claims: usize = report.experiments.iter().map(|e| e.verdicts.len()).sum();
    let charts: usize = report
        .experiments
        .iter()
        .map(|e| e.charts.len() + e.timelines.len())
        .sum();
    let html = std::fs::read_to_string(&written.html).unwrap();
    assert!(html.contains(&format!("{claims} claims of the seed")));
    assert!(html.contains("@media print"));
    for width in [1400, 420] {
        let profile = dir.join(format!("chromium-profile-{width}"));
        let page = if width < 500 {
            framed(&dir, width)
        } else {
            written.html.clone()
        };
        let dom = rendered_dom(&browser, &page, &profile, width.max(500));
        let attribute = |name: &str| body_attribute(&dom, name);
        assert_eq!(
            attribute("data-viewport"),
            width as usize,
            "the window's width"
        );
        assert_eq!(
            attribute("data-body-overflow"),
            0,
            "{width} px: the page scrolls sideways"
        );
        assert_eq!(
            attribute("data-cards"),
            report.experiments.len(),
            "{width} px: cards"
        );
        assert_eq!(
            attribute("data-cards-shown"),
            report.experiments.len(),
            "{width} px: a card outside the page"
        );
        assert_eq!(
            attribute("data-verdict-counts"),
            4,
            "{width} px: the verdicts counted"
        );
        assert_eq!(
            attribute("data-seed-tables"),
            2,
            "{width} px: the seed's tables"
        );
        assert_eq!(
            attribute("data-decision-rows"),
            7,
            "{width} px: the seed's decision table"
        );
        let judged = rows_judged(report);
        assert_eq!(
            attribute("data-decision-verdicts"),
            judged,
            "{width} px: the decision table's verdicts"
        );
        assert!(
            attribute("data-seed-figures") >= 20,
            "{width} px: figures in the seed's tables"
        );
        assert_eq!(
            attribute("data-charts-rendered"),
            charts,
            "{width} px: charts"
        );
        let shot = dir.join(format!("top-{width}.png"));
        in_chromium(
            &browser,
            &page,
            &profile,
            width.max(500),
            &format!("--screenshot={}", shot.display()),
        );
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
            "no screenshot at {}",
            shot.display()
        );
        eprintln!("screenshot: {}", shot.display());
    }
}
