//! The lab's typed errors.

use std::path::PathBuf;

/// Why the lab, or one of its experiments, could not finish.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// `--only` named an experiment that does not exist.
    #[error("no experiment is called {id:?} (known: {known})")]
    UnknownExperiment {
        /// The id asked for.
        id: String,
        /// The known ids, comma separated.
        known: String,
    },
    /// `--python on` was asked for, and no `python3` runs here.
    #[error("--python on, but no working python3 was found: {0}")]
    PythonMissing(String),
    /// A CPython baseline script failed.
    #[error("the CPython script {script} failed: {reason}")]
    Python {
        /// The script's name.
        script: String,
        /// Its exit status and the end of its stderr, or why its output did not parse.
        reason: String,
    },
    /// A triad engine could not be started or a task failed.
    #[error("{context}: {reason}")]
    Engine {
        /// What the experiment was doing.
        context: String,
        /// The engine's error.
        reason: String,
    },
    /// The machine refused something the experiment needs (a limit, a syscall).
    #[error("{context}: {source}")]
    Os {
        /// What the experiment was doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl LabError {
    /// An engine error with what the experiment was doing.
    pub fn engine(context: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Engine {
            context: context.into(),
            reason: reason.to_string(),
        }
    }

    /// An OS error with what the experiment was doing.
    pub fn os(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Os {
            context: context.into(),
            source,
        }
    }
}
