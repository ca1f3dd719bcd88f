//! What the lab measured, as plain data: the schema of `results.json` (`triad-lab/2`).
//!
//! Every experiment returns an [`ExperimentReport`]: its raw samples ([`Measurement`]), the table
//! a person reads, the charts, and a [`Verdict`] per claim of the seed. The report writers
//! (terminal, Markdown, HTML) read only these types, so whatever they show is in the JSON too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::stats::Summary;

/// The `schema` field of `results.json`; bumped on any change a reader would notice.
pub const SCHEMA: &str = "triad-lab/2";

/// One run of the lab: the machine, the settings, and every experiment's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabReport {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// When the run started, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// Wall time of the whole run.
    pub elapsed_s: f64,
    /// `toy`, `quick` or `full`.
    pub scale: String,
    /// The machine it ran on.
    pub machine: Machine,
    /// Notes about the run as a whole (for example: no `python3`, so no CPython column).
    pub notes: Vec<String>,
    /// One report per experiment, in catalogue order.
    pub experiments: Vec<ExperimentReport>,
    /// Experiments that could not finish, with why.
    pub failures: Vec<Failure>,
}

/// An experiment that could not finish.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// Its id.
    pub id: String,
    /// The error, as one line.
    pub error: String,
}

/// Everything one experiment found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// Short stable id, such as `cpu-bound`.
    pub id: String,
    /// A title for people.
    pub title: String,
    /// The seed's section(s) the experiment comes from, such as `2, 4`.
    pub seed_section: String,
    /// How it was measured, in a few sentences: sizes, repetitions, what is timed.
    pub method: String,
    /// Every series of raw samples it took.
    pub measurements: Vec<Measurement>,
    /// The summary table, as printed.
    pub table: Table,
    /// Charts for the HTML report (at least one).
    pub charts: Vec<Chart>,
    /// Task timelines, drawn as Gantt charts.
    pub timelines: Vec<Timeline>,
    /// One verdict per claim of the seed.
    pub verdicts: Vec<Verdict>,
    /// Anything a reader should know (skipped parts, caveats).
    pub notes: Vec<String>,
    /// Wall time the experiment took.
    pub elapsed_s: f64,
}

/// Which implementation a measurement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Implementation {
    /// triad, or Rust code in the lab.
    Rust,
    /// A CPython script shipped with the lab.
    Python,
}

impl Implementation {
    /// How it is named in tables, charts and evidence.
    pub fn label(self) -> &'static str {
        match self {
            Implementation::Rust => "Rust",
            Implementation::Python => "CPython",
        }
    }
}

/// One series of repeated samples of one quantity under fixed parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// What was measured, such as `threads` or `pipe round trip`.
    pub name: String,
    /// Rust or CPython.
    pub implementation: Implementation,
    /// The parameters that were fixed, such as `{"workers": 2, "size": 4096}`.
    pub params: BTreeMap<String, serde_json::Value>,
    /// The unit of every sample, such as `s`, `ns`, `bytes` or `count`.
    pub unit: String,
    /// Every sample, in the order taken.
    pub samples: Vec<f64>,
    /// Median and spread of `samples`.
    pub summary: Summary,
}

impl Measurement {
    /// A measurement of `samples` (its summary computed here).
    pub fn new(
        name: impl Into<String>,
        implementation: Implementation,
        unit: impl Into<String>,
        samples: Vec<f64>,
    ) -> Self {
        let summary = Summary::of(&samples);
        Self {
            name: name.into(),
            implementation,
            params: BTreeMap::new(),
            unit: unit.into(),
            samples,
            summary,
        }
    }

    /// Adds a fixed parameter.
    pub fn param(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    /// Adds every parameter of `params`.
    pub fn params(self, params: &[(&str, serde_json::Value)]) -> Self {
        params.iter().fold(self, |measurement, (key, value)| {
            measurement.param(key, value.clone())
        })
    }

    /// The same quantity with `samples` in place of its own (its summary computed again).
    pub fn with_samples(self, samples: Vec<f64>) -> Self {
        Self {
            summary: Summary::of(&samples),
            samples,
            ..self
        }
    }

    /// The median sample.
    pub fn median(&self) -> f64 {
        self.summary.median
    }
}

/// A table of text cells, as printed on the terminal and in Markdown.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Table {
    /// Column headings.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headings and no rows.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Self {
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; it must have one cell per column.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let row: Vec<String> = cells.into_iter().map(Into::into).collect();
        assert_eq!(
            row.len(),
            self.columns.len(),
            "a row of {:?} has the wrong width",
            self.columns
        );
        self.rows.push(row);
    }
}

/// How an axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Evenly spaced values.
    #[default]
    Linear,
    /// Powers of ten evenly spaced (all values must be > 0).
    Log,
}

/// The shape of a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    /// Lines through points, x numeric.
    #[default]
    Line,
    /// Grouped bars: x of each point is an index into `categories`.
    Bar,
}

/// A chart, drawn by the HTML report as inline SVG.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Chart {
    /// Title above the chart.
    pub title: String,
    /// Line or bar.
    pub kind: ChartKind,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis (with the unit).
    pub y_label: String,
    /// Scale of the x axis (line charts).
    pub x_scale: Scale,
    /// Scale of the y axis.
    pub y_scale: Scale,
    /// Names of the bar groups (bar charts; a point's x is an index into this).
    pub categories: Vec<String>,
    /// The data.
    pub series: Vec<Series>,
}

/// One named series of points.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Series {
    /// Legend entry.
    pub label: String,
    /// Points in x order.
    pub points: Vec<Point>,
}

/// One point, with its spread when it is a median of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// x value (for a bar chart, the category index).
    pub x: f64,
    /// y value (a median).
    pub y: f64,
    /// Lower end of the spread, if any.
    pub low: Option<f64>,
    /// Upper end of the spread, if any.
    pub high: Option<f64>,
}

impl Point {
    /// A point with the spread of `summary` (its quartiles).
    pub fn from_summary(x: f64, summary: &Summary) -> Self {
        Self {
            x,
            y: summary.median,
            low: Some(summary.p25),
            high: Some(summary.p75),
        }
    }
}

/// Task spans on a time line: one lane per row, drawn as a Gantt chart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timeline {
    /// Title above the chart, such as `2 threads on 1 core`.
    pub title: String,
    /// The rows, top to bottom.
    pub lanes: Vec<Lane>,
}

/// One row of a timeline (a thread, a process, a core, or a task).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lane {
    /// Row label.
    pub label: String,
    /// Spans in this row.
    pub spans: Vec<TimelineSpan>,
}

/// One span of work, in nanoseconds from the timeline's start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimelineSpan {
    /// Which task it belongs to (spans of one task share a colour).
    pub task: u64,
    /// Start, ns from the start of the timeline.
    pub start_ns: u64,
    /// End, ns from the start of the timeline.
    pub end_ns: u64,
    /// The CPU it ran on, when known.
    pub cpu: Option<u32>,
}

/// How a claim of the seed fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The measurement agrees with the claim.
    Confirmed,
    /// The measurement disagrees; `Verdict::evidence` gives the measured value.
    Refuted,
    /// True under some conditions; `Verdict::evidence` says which.
    Depends,
    /// The difference the claim is about is inside the samples' spread: this machine cannot
    /// tell (`Verdict::evidence` gives the interval); see the rule in `SCHEMA.md`.
    WithinNoise,
}

impl Outcome {
    /// One verdict from several checks of one claim (one per implementation, variant or
    /// size): confirmed when every check holds, refuted when none does, depends when they
    /// disagree or there was nothing to check.
    pub fn from_checks(checks: impl IntoIterator<Item = bool>) -> Self {
        Self::from_findings(checks.into_iter().map(Finding::from))
    }

    /// One verdict from checks that may also find a difference inside the noise: confirmed
    /// when every check holds, refuted when every one fails, within noise when every one is
    /// inside the noise, depends otherwise (a mixture, or nothing to check).
    pub fn from_findings(findings: impl IntoIterator<Item = Finding>) -> Self {
        let (mut held, mut failed, mut unclear) = (0usize, 0usize, 0usize);
        for finding in findings {
            match finding {
                Finding::Holds => held += 1,
                Finding::Fails => failed += 1,
                Finding::WithinNoise => unclear += 1,
            }
        }
        match (held, failed, unclear) {
            (1.., 0, 0) => Outcome::Confirmed,
            (0, 1.., 0) => Outcome::Refuted,
            (0, 0, 1..) => Outcome::WithinNoise,
            _ => Outcome::Depends,
        }
    }

    /// The word printed in tables.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::Refuted => "refuted",
            Outcome::Depends => "depends",
            Outcome::WithinNoise => "within noise",
        }
    }

    /// Every outcome, in the order reports count them.
    pub const ALL: [Outcome; 4] = [
        Outcome::Confirmed,
        Outcome::Refuted,
        Outcome::Depends,
        Outcome::WithinNoise,
    ];
}

/// What one check of a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// The claim holds for what this check measured.
    Holds,
    /// It does not.
    Fails,
    /// The values it compares are closer than their spread: no difference this machine can
    /// resolve.
    WithinNoise,
}

impl Finding {
    /// Both findings at once: fails when either fails, within noise when either is (and none
    /// fails), holds when both hold.
    pub fn and(self, other: Finding) -> Finding {
        match (self, other) {
            (Finding::Fails, _) | (_, Finding::Fails) => Finding::Fails,
            (Finding::WithinNoise, _) | (_, Finding::WithinNoise) => Finding::WithinNoise,
            _ => Finding::Holds,
        }
    }
}

impl From<bool> for Finding {
    fn from(holds: bool) -> Self {
        if holds {
            Finding::Holds
        } else {
            Finding::Fails
        }
    }
}

/// The verdict on one claim of the seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// The claim in English (translated from the seed).
    pub claim: String,
    /// The seed's own words (Chinese), quoted.
    pub quote: String,
    /// Confirmed, refuted or depends.
    pub outcome: Outcome,
    /// The measured value behind the verdict, or what it depends on.
    pub evidence: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_make_one_verdict() {
        assert_eq!(Outcome::from_checks([true, true]), Outcome::Confirmed);
        assert_eq!(Outcome::from_checks([false, false]), Outcome::Refuted);
        assert_eq!(Outcome::from_checks([true, false]), Outcome::Depends);
        assert_eq!(Outcome::from_checks([]), Outcome::Depends);
        use Finding::{Fails, Holds, WithinNoise};
        assert_eq!(
            Outcome::from_findings([WithinNoise, WithinNoise]),
            Outcome::WithinNoise
        );
        assert_eq!(
            Outcome::from_findings([Holds, WithinNoise]),
            Outcome::Depends
        );
        assert_eq!(Outcome::from_findings([Fails, Fails]), Outcome::Refuted);
        assert_eq!(Outcome::from_findings([]), Outcome::Depends);
        assert_eq!(Holds.and(WithinNoise), WithinNoise);
        assert_eq!(WithinNoise.and(Fails), Fails);
        assert_eq!(Holds.and(Holds), Holds);
        let json = serde_json::to_string(&Outcome::WithinNoise).unwrap();
        assert_eq!(json, "\"within-noise\"");
        assert_eq!(
            serde_json::to_string(&Outcome::Confirmed).unwrap(),
            "\"confirmed\""
        );
    }
}
