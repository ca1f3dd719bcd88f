//! Writers of a [`LabReport`]: the terminal text, `report.md`, `results.json`
//! and `index.html`, all read from the same data.

pub mod decision_table;
pub mod headlines;
pub mod html;
pub mod markdown;
pub mod seed_table;
pub mod svg;
pub mod text;

use std::path::{Path, PathBuf};

use crate::error::LabError;
use crate::results::{ExperimentReport, LabReport};

/// How verdicts are decided, for the reports' readers (the same rule as `SCHEMA.md`).
pub const VERDICT_RULE: &str = "Each claim is checked once per language, variant or size it \
speaks of: confirmed when every check holds, refuted when every one fails, within noise when \
every one is inside the noise, depends otherwise. Checks compare ranges, not bare medians: a \
measurement's range is its interquartile range, a ratio a ÷ b ranges from a.p25 ÷ b.p75 to \
a.p75 ÷ b.p25, and a check whose range straddles its line (two timings whose quartile ranges \
overlap) is within noise: a difference this machine cannot resolve.";

/// An experiment's headline, for its card: its key figures (see `headlines`), or else the
/// key figure of its first claim.
pub fn headline(lab: &LabReport, experiment: &ExperimentReport) -> String {
    headlines::of(lab, experiment).unwrap_or_else(|| {
        experiment
            .verdicts
            .first()
            .map_or_else(|| experiment.title.clone(), text::key_figure)
    })
}

/// The files [`write_all`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// `results.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `index.html`.
    pub html: PathBuf,
}

/// Creates `dir` (and its parents) if needed, so that a run can fail before it measures rather
/// than after.
pub fn create_dir(dir: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(dir).map_err(|source| LabError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Writes `results.json`, `report.md` and `index.html` into `dir`, creating it if needed.
pub fn write_all(report: &LabReport, dir: &Path) -> Result<Written, LabError> {
    let write = |name: &str, contents: &[u8]| -> Result<PathBuf, LabError> {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|source| LabError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    create_dir(dir)?;
    let json = serde_json::to_vec_pretty(report).expect("a lab report always serialises");
    Ok(Written {
        json: write("results.json", &json)?,
        markdown: write("report.md", markdown::render(report).as_bytes())?,
        html: write("index.html", html::render(report).as_bytes())?,
    })
}

/// A toy run that measured nothing, for the tests of what the report makes of one.
#[cfg(test)]
fn empty_run() -> LabReport {
    LabReport {
        schema: crate::SCHEMA.to_owned(),
        started_unix_s: 0,
        elapsed_s: 0.0,
        scale: "toy".to_owned(),
        machine: crate::Machine::default(),
        notes: Vec::new(),
        experiments: Vec::new(),
        failures: Vec::new(),
    }
}
