//! Writers of a [`LabReport`]: the terminal text, `report.md`, `results.json`
//! and `index.html`, all read from the same data.

pub mod markdown;
pub mod text;

use std::path::{Path, PathBuf};

use crate::error::LabError;
use crate::results::LabReport;

/// The files [`write_all`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// `results.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
}

/// Writes `results.json` and `report.md` into `dir`, creating it if needed.
pub fn write_all(report: &LabReport, dir: &Path) -> Result<Written, LabError> {
    let write = |name: &str, contents: &[u8]| -> Result<PathBuf, LabError> {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|source| LabError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    std::fs::create_dir_all(dir).map_err(|source| LabError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let json = serde_json::to_vec_pretty(report).expect("a lab report always serialises");
    Ok(Written {
        json: write("results.json", &json)?,
        markdown: write("report.md", markdown::render(report).as_bytes())?,
    })
}
