//! CPython side by side: finds `python3` and runs the baseline scripts shipped inside the lab.
//!
//! Each script (in `python/`, compiled into the binary) is written to a private directory next
//! to `labkit.py`, under a writable temporary directory ([`scratch_dir`]: `TMPDIR`, else `/tmp`
//! or `/var/tmp`), which is also the script's `TMPDIR`. It runs with `python3 -E -s` (no user
//! site, no `PYTHON*` variables: the baseline is the interpreter, not the environment), and
//! prints one JSON document of measurements on stdout. A file, rather than `python3 -c`, is needed because
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

/// A CPython baseline an experiment asks for: one of the scripts in `python/` (its source
/// compiled in with `include_str!`) and its arguments, which carry the experiment's sizes.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The script's name, without `.py`.
    pub script: &'static str,
    /// Its source.
    pub source: &'static str,
    /// Its command-line arguments.
    pub args: Vec<String>,
}

impl Baseline {
    /// The script `script` with `source`, run with `args`.
    pub fn new<A: ToString>(
        script: &'static str,
        source: &'static str,
        args: impl IntoIterator<Item = A>,
    ) -> Self {
        Self {
            script,
            source,
            args: args.into_iter().map(|arg| arg.to_string()).collect(),
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

    /// Runs `baseline` in a private directory under `scratch` (also the script's `TMPDIR`)
    /// and parses the measurements it prints.
    pub fn run(&self, baseline: &Baseline, scratch: &Path) -> Result<PythonOutput, LabError> {
        let name = baseline.script;
        let fail = |reason: String| LabError::Python {
            script: format!("{name}.py"),
            reason,
        };
        let (_dir, script) = prepare(baseline, scratch)?;
        let output = Command::new(&self.program)
            .arg("-E")
            .arg("-s")
            .arg(&script)
            .args(&baseline.args)
            .env("TMPDIR", scratch)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.program.display())))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(fail(if tail.is_empty() {
                output.status.to_string()
            } else {
                format!("{}: {}", output.status, tail.join(" | "))
            }));
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

/// A baseline script that runs beside the lab (a server the lab puts load on): it prints one
/// JSON line when it is ready, another when its stdin closes, and exits. Dropping it kills the
/// script, if it still runs, and reaps it: no process is left behind.
#[derive(Debug)]
pub struct RunningScript {
    name: &'static str,
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    dir: ScriptDir,
}

/// How long a running script may take to print its next line.
const LINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

impl RunningScript {
    /// The script's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next JSON line the script prints (within 20 s).
    pub fn next_line(&mut self) -> Result<serde_json::Value, LabError> {
        let fail = |reason: String| LabError::Python {
            script: format!("{}.py", self.name),
            reason,
        };
        let line = match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                return Err(fail(format!("printed nothing for {LINE_TIMEOUT:?}")));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map_or("?".to_owned(), |s| s.to_string());
                let stderr = std::fs::read_to_string(self.dir.path.join("stderr"));
                let stderr = stderr.unwrap_or_default();
                let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(fail(format!(
                    "ended ({status}) without printing its line: {}",
                    tail.join(" | ")
                )));
            }
        };
        serde_json::from_str(&line).map_err(|e| fail(format!("printed {line:?}: {e}")))
    }

    /// Closes the script's stdin, reads the JSON line it ends with, and reaps it.
    pub fn finish(mut self) -> Result<serde_json::Value, LabError> {
        drop(self.child.stdin.take());
        let last = self.next_line();
        let _ = self.child.wait();
        last
    }
}

impl Drop for RunningScript {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Writes `baseline` and `labkit.py` into a private directory under `scratch`; gives the
/// directory (removed when dropped) and the script's path.
fn prepare(
    baseline: &Baseline,
    scratch: &Path,
) -> Result<(ScriptDir, std::path::PathBuf), LabError> {
    let name = baseline.script;
    let fail = |reason: String| LabError::Python {
        script: format!("{name}.py"),
        reason,
    };
    let dir = ScriptDir::create(scratch, name).map_err(|e| {
        fail(format!(
            "cannot make a directory in {}: {e}",
            scratch.display()
        ))
    })?;
    let script = dir.path.join(format!("{name}.py"));
    std::fs::write(dir.path.join("labkit.py"), LABKIT)
        .and_then(|()| std::fs::write(&script, baseline.source))
        .map_err(|e| fail(format!("cannot write the script: {e}")))?;
    Ok((dir, script))
}

impl Python {
    /// Starts `baseline` beside the lab (see [`RunningScript`]), with stdin and stdout piped.
    pub fn start(&self, baseline: &Baseline, scratch: &Path) -> Result<RunningScript, LabError> {
        use std::io::BufRead;
        let name = baseline.script;
        let fail = |reason: String| LabError::Python {
            script: format!("{name}.py"),
            reason,
        };
        let (dir, script) = prepare(baseline, scratch)?;
        let mut child = Command::new(&self.program)
            .arg("-E")
            .arg("-s")
            .arg(&script)
            .args(&baseline.args)
            .env("TMPDIR", scratch)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(dir.path.join("stderr"))
                    .map_err(|e| fail(format!("cannot open its stderr file: {e}")))?,
            )
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.program.display())))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(RunningScript {
            name,
            child,
            lines,
            dir,
        })
    }
}

/// A writable directory for the baselines' scripts: the system's temporary directory
/// (`TMPDIR`, or `/tmp`), else the first of `/tmp` and `/var/tmp` that takes a new
/// directory, with a note saying so; an error naming what was tried and the variable to fix
/// when none does.
pub fn scratch_dir() -> Result<(PathBuf, Option<String>), String> {
    scratch_dir_among(
        &std::env::temp_dir(),
        &["/tmp", "/var/tmp"].map(PathBuf::from),
    )
}

/// [`scratch_dir`] with `preferred` first, then `fallbacks`.
fn scratch_dir_among(
    preferred: &Path,
    fallbacks: &[PathBuf],
) -> Result<(PathBuf, Option<String>), String> {
    let mut refused: Vec<(&Path, String)> = Vec::new();
    for dir in std::iter::once(preferred).chain(fallbacks.iter().map(PathBuf::as_path)) {
        if refused.iter().any(|(tried, _)| *tried == dir) {
            continue;
        }
        let probe = if dir.is_absolute() {
            ScriptDir::create(dir, "probe").map_err(|e| e.to_string())
        } else {
            Err("not an absolute path".to_owned())
        };
        match probe {
            Ok(_removed_on_drop) => {
                let note = refused.first().map(|(_, why)| {
                    format!(
                        "The temporary directory {} is not usable ({why}): the CPython \
                         scripts ran in {} instead (set TMPDIR to choose).",
                        preferred.display(),
                        dir.display()
                    )
                });
                return Ok((dir.to_owned(), note));
            }
            Err(why) => refused.push((dir, why)),
        }
    }
    let tried: Vec<String> = refused
        .iter()
        .map(|(dir, why)| format!("{}: {why}", dir.display()))
        .collect();
    Err(format!(
        "no writable temporary directory ({}); set TMPDIR to a writable directory",
        tried.join("; ")
    ))
}

/// A private directory under `base`, removed on drop.
#[derive(Debug)]
struct ScriptDir {
    path: PathBuf,
}

impl ScriptDir {
    fn create(base: &Path, name: &str) -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("triad-lab-{}-{unique}-{name}", std::process::id()));
        std::fs::create_dir(&path)?;
        Ok(Self { path })
    }
}

impl Drop for ScriptDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: &str = "import labkit\n(n,) = labkit.args(int)\nlabkit.record('echo', 'count', [n, n + 1], size=n)\nlabkit.note('hello')\nlabkit.finish()\n";

    fn baseline(name: &'static str, source: &'static str, args: &[&str]) -> Baseline {
        Baseline::new(name, source, args.iter().copied())
    }

    #[test]
    fn runs_a_script_and_reads_its_measurements() {
        let Ok(python) = Python::find() else {
            eprintln!("python3 not found; nothing to test");
            return;
        };
        let (scratch, _) = scratch_dir().unwrap();
        let output = python
            .run(&baseline("echo", ECHO, &["7"]), &scratch)
            .unwrap();
        let [measurement] = &output.measurements[..] else {
            panic!("one measurement: {:?}", output.measurements)
        };
        assert_eq!(measurement.samples, vec![7.0, 8.0]);
        assert_eq!(measurement.params["size"], 7);
        assert_eq!(measurement.implementation, Implementation::Python);
        assert_eq!(output.notes, vec!["hello".to_owned()]);
    }

    #[test]
    fn a_failing_script_is_an_error_with_its_stderr() {
        let Ok(python) = Python::find() else {
            eprintln!("python3 not found; nothing to test");
            return;
        };
        let (scratch, _) = scratch_dir().unwrap();
        let error = python
            .run(
                &baseline("boom", "raise SystemExit('no luck here')", &[]),
                &scratch,
            )
            .unwrap_err();
        assert!(error.to_string().contains("no luck here"), "{error}");
        assert!(error.to_string().contains("boom.py"), "{error}");
    }

    #[test]
    fn an_unusable_temporary_directory_falls_back_or_names_the_variable() {
        let nowhere = Path::new("/nonexistent/triad-tmp");
        let (dir, note) = scratch_dir_among(nowhere, &[std::env::temp_dir()]).unwrap();
        assert_eq!(dir, std::env::temp_dir());
        let note = note.expect("a fallback is noted");
        assert!(note.contains("/nonexistent/triad-tmp"), "{note}");
        let (_, none) = scratch_dir_among(&std::env::temp_dir(), &[]).unwrap();
        assert_eq!(none, None, "no note when TMPDIR works");
        let error = scratch_dir_among(nowhere, &[PathBuf::from("relative")]).unwrap_err();
        assert!(
            error.contains("set TMPDIR to a writable directory"),
            "{error}"
        );
        assert!(error.contains("/nonexistent/triad-tmp: "), "{error}");
        assert!(error.contains("relative: not an absolute path"), "{error}");
    }

    #[test]
    fn a_missing_interpreter_or_directory_is_reported() {
        let missing = Python {
            program: PathBuf::from("/nonexistent/python3"),
            version: String::new(),
        };
        let (scratch, _) = scratch_dir().unwrap();
        let error = missing
            .run(&baseline("echo", ECHO, &["1"]), &scratch)
            .unwrap_err();
        assert!(error.to_string().contains("cannot start"), "{error}");
        let error = missing
            .run(
                &baseline("echo", ECHO, &["1"]),
                Path::new("/nonexistent/scratch"),
            )
            .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/scratch"),
            "{error}"
        );
    }
}
