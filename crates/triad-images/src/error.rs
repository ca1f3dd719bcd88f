//! The two kinds of error: [`Failure`], one image's (the batch goes on), and [`ImagesError`],
//! the run's (nothing could start: a bad operation, an output directory that cannot be made).

use serde::{Deserialize, Serialize};

/// What went wrong with one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The input could not be read (missing, a directory, no permission).
    Unreadable,
    /// The input is an empty file.
    Empty,
    /// Not an image in a format triad images reads (JPEG, PNG, WebP).
    Unsupported,
    /// The header or the data is damaged, or the file ends early.
    Corrupt,
    /// The header claims more pixels than the limit (a decompression bomb).
    TooLarge,
    /// An operation cannot run on this image (a crop outside it).
    Operation,
    /// The output could not be encoded or written (full disk, no directory).
    Write,
    /// Another input already has this output path, or the output is the input itself.
    Clash,
    /// Decoding or an operation panicked (a decoder's bug, met on a hostile file): in threads
    /// mode the panic is caught and fails the image alone.
    Panicked,
    /// The worker process died on the image (`--mode processes`).
    WorkerDied,
    /// The image took longer than `--timeout` (`--mode processes`).
    Timeout,
}

impl FailureKind {
    /// The kind's name, as the JSON summary spells it.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Unreadable => "unreadable",
            FailureKind::Empty => "empty",
            FailureKind::Unsupported => "unsupported",
            FailureKind::Corrupt => "corrupt",
            FailureKind::TooLarge => "too-large",
            FailureKind::Operation => "operation",
            FailureKind::Write => "write",
            FailureKind::Clash => "clash",
            FailureKind::Panicked => "panicked",
            FailureKind::WorkerDied => "worker-died",
            FailureKind::Timeout => "timeout",
        }
    }
}

/// One image's failure: its kind and the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// Why, in words.
    pub message: String,
}

impl Failure {
    /// A failure of `kind`, saying `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImagesError {
    /// An operation's spec does not parse.
    #[error(transparent)]
    Op(#[from] crate::ops::OpSpecError),
    /// A setting is out of range (zero workers, a quality of 0).
    #[error("{0}")]
    Usage(String),
    /// The output directory cannot be made or is not a directory.
    #[error("cannot use {path} as the output directory: {source}")]
    OutputDir {
        /// The directory.
        path: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The worker processes or threads could not start.
    #[error(transparent)]
    Engine(#[from] triad::EngineError),
}

impl ImagesError {
    /// Whether the command line asked for something that cannot work (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, ImagesError::Op(_) | ImagesError::Usage(_))
    }
}
