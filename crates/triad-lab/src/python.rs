//! CPython side by side: finds `python3` and runs the baseline scripts shipped inside the lab.
//!
//! Each script (in `python/`, compiled into the binary) is written to a private temporary
//! directory next to `labkit.py`, run with `python3 -E -s` (no user site, no `PYTHON*`
//! variables: the baseline is the interpreter, not the environment), and prints one JSON
//! document of measurements on stdout. A file, rather than `python3 -c`, is needed because
//! `multiprocessing`'s spawn and forkserver start methods re-import the main module.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::error::LabError;
use crate::results::{Implementation, Measurement};

const LABKIT: &str = include_str!("../python/labkit.py");

/// Whether to run the CPython baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PythonChoice {
    /// When `python3` is found.
    #[default]
    Auto,
    /// Always; a missing `python3` is an error.
    On,
    /// Never.
    Off,
}

/// A working CPython interpreter.
#[derive(Debug, Clone)]
pub struct Python {
    program: PathBuf,
    version: String,
}

/// What a baseline script printed.
#[derive(Debug, Clone, Default)]
pub struct PythonOutput {
    /// Its measurements, marked as CPython's.
    pub measurements: Vec<Measurement>,
    /// Its notes.
    pub notes: Vec<String>,
}

impl PythonOutput {
    /// The measurement called `name` whose parameters include every `(key, value)` given.
    pub fn find(&self, name: &str, params: &[(&str, serde_json::Value)]) -> Option<&Measurement> {
        self.measurements.iter().find(|m| {
            m.name == name
                && params
                    .iter()
                    .all(|(key, value)| m.params.get(*key) == Some(value))
        })
    }
}

/// The note an experiment adds when the lab runs without CPython.
pub const NO_PYTHON_NOTE: &str = "No python3 in this run: the CPython figures are missing.";

/// CPython's measurements, with its notes appended to `notes`; without CPython, none, and
/// [`NO_PYTHON_NOTE`] in `notes`.
pub fn measurements_and_notes(
    python: Option<PythonOutput>,
    notes: &mut Vec<String>,
) -> Vec<Measurement> {
    match python {
        Some(output) => {
            notes.extend(output.notes);
            output.measurements
        }
        None => {
            notes.push(NO_PYTHON_NOTE.to_owned());
            Vec::new()
        }
    }
}

#[derive(Deserialize)]
struct ScriptOutput {
    measurements: Vec<ScriptMeasurement>,
    #[serde(default)]
    notes: Vec<String>,
}

#[derive(Deserialize)]
struct ScriptMeasurement {
    name: String,
    unit: String,
    samples: Vec<f64>,
    #[serde(default)]
    params: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Python {
    /// Finds `python3` on `PATH` (or `TRIAD_PYTHON`) and asks its version.
    pub fn find() -> Result<Self, String> {
        let program = std::env::var_os("TRIAD_PYTHON")
            .map_or_else(|| PathBuf::from("python3"), PathBuf::from);
        let output = Command::new(&program)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("{}: {error}", program.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{} --version: {}",
                program.display(),
                output.status
            ));
        }
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let version = text.strip_prefix("Python ").unwrap_or(&text).to_owned();
        Ok(Self { program, version })
    }

    /// The version, such as `3.11.7`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Runs the script `name` (its source given) with `args` and parses its measurements.
    pub fn run(&self, name: &str, source: &str, args: &[String]) -> Result<PythonOutput, LabError> {
        let fail = |reason: String| LabError::Python {
            script: name.to_owned(),
            reason,
        };
        let dir = ScriptDir::create(name).map_err(|e| fail(format!("temporary directory: {e}")))?;
        let script = dir.path.join(format!("{name}.py"));
        std::fs::write(dir.path.join("labkit.py"), LABKIT)
            .and_then(|()| std::fs::write(&script, source))
            .map_err(|e| fail(format!("cannot write the script: {e}")))?;
        let output = Command::new(&self.program)
            .arg("-E")
            .arg("-s")
            .arg(&script)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.program.display())))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(fail(format!("{}: {}", output.status, tail.join(" | "))));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let parsed: ScriptOutput = serde_json::from_str(last)
            .map_err(|e| fail(format!("its output is not the expected JSON: {e}")))?;
        Ok(PythonOutput {
            measurements: parsed
                .measurements
                .into_iter()
                .map(|m| {
                    let mut measurement =
                        Measurement::new(m.name, Implementation::Python, m.unit, m.samples);
                    measurement.params = m.params;
                    measurement
                })
                .collect(),
            notes: parsed.notes,
        })
    }
}

/// A private directory under the system's temporary directory, removed on drop.
struct ScriptDir {
    path: PathBuf,
}

impl ScriptDir {
    fn create(name: &str) -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("triad-lab-{}-{unique}-{name}", std::process::id()));
        std::fs::create_dir(&path)?;
        Ok(Self { path })
    }
}

impl Drop for ScriptDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: &str = "import labkit\n(n,) = labkit.args(int)\nlabkit.record('echo', 'count', [n, n + 1], size=n)\nlabkit.note('hello')\nlabkit.finish()\n";

    #[test]
    fn runs_a_script_and_reads_its_measurements() {
        let Ok(python) = Python::find() else {
            eprintln!("python3 not found; nothing to test");
            return;
        };
        let output = python.run("echo", ECHO, &["7".to_owned()]).unwrap();
        let measurement = output.find("echo", &[("size", 7.into())]).unwrap();
        assert_eq!(measurement.samples, vec![7.0, 8.0]);
        assert_eq!(measurement.implementation, Implementation::Python);
        assert_eq!(output.notes, vec!["hello".to_owned()]);
    }

    #[test]
    fn a_failing_script_is_an_error_with_its_stderr() {
        let Ok(python) = Python::find() else {
            eprintln!("python3 not found; nothing to test");
            return;
        };
        let error = python
            .run("boom", "raise SystemExit('no luck here')", &[])
            .unwrap_err();
        assert!(error.to_string().contains("no luck here"), "{error}");
    }

    #[test]
    fn a_missing_interpreter_is_reported() {
        let missing = Python {
            program: PathBuf::from("/nonexistent/python3"),
            version: String::new(),
        };
        let error = missing.run("echo", ECHO, &["1".to_owned()]).unwrap_err();
        assert!(error.to_string().contains("cannot start"), "{error}");
    }
}
