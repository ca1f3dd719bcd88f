//! The one rule for the main output of every subcommand, and how errors reach the user.
//!
//! The *main output* is what a subcommand exists to print: `run`'s results, `tasks`' list,
//! `lab`'s tables or JSON, `profile`'s report (stderr) or JSON (stdout or `--json-file`).
//! Writing it either works or is an error:
//!
//! - a reader that went away (`EPIPE`, as in `triad run … | head -c 0`) ends the command with
//!   exit code 141, as a shell reports a process ended by SIGPIPE, and prints nothing more;
//! - any other failure (`ENOSPC` on a full disk, a standard output that was closed with `>&-`)
//!   is one line on stderr and exit code 1.
//!
//! `profile` ends with the profiled command's own code when that is not 0, and with the rule
//! above otherwise. Diagnostics on stderr (this module's [`report`]) are written and their
//! failure ignored: there is nowhere left to say it, and the exit code still tells.
//!
//! Rust's runtime puts `/dev/null` on a standard descriptor that was closed at start, before
//! `main`; so whether descriptors 1 and 2 were closed is noted earlier still, by a function the
//! loader runs from `.init_array` (as std itself reads `argv` on Linux).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit code when the reader of the main output went away: 128 + SIGPIPE, as a shell says.
pub(crate) const BROKEN_PIPE_EXIT: u8 = 141;

static STDOUT_CLOSED_AT_START: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED_AT_START: AtomicBool = AtomicBool::new(false);

extern "C" fn note_closed_standard_descriptors() {
    // SAFETY: F_GETFD on any descriptor number only reads this process's descriptor table; it
    // fails (EBADF) exactly when the descriptor is not open.
    let closed = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1;
    STDOUT_CLOSED_AT_START.store(closed(1), Ordering::Relaxed);
    STDERR_CLOSED_AT_START.store(closed(2), Ordering::Relaxed);
}

// SAFETY: `.init_array` holds plain function pointers the loader calls once, before `main`,
// on one thread; this one takes no arguments it relies on and only reads the descriptor table.
#[used]
#[unsafe(link_section = ".init_array")]
static NOTE_CLOSED_STANDARD_DESCRIPTORS: extern "C" fn() = note_closed_standard_descriptors;

/// Where a main output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "standard output",
            Stream::Stderr => "standard error",
        }
    }
}

/// The main output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("could not write {what} to {to}")]
pub(crate) struct OutputError {
    what: &'static str,
    to: String,
    #[source]
    source: io::Error,
}

impl OutputError {
    /// A failed write of `what` to `stream`.
    pub(crate) fn new(what: &'static str, stream: Stream, source: io::Error) -> Self {
        OutputError {
            what,
            to: stream.name().to_owned(),
            source,
        }
    }

    /// A closure for `map_err`: a failed write of `what` to `stream`.
    pub(crate) fn on(what: &'static str, stream: Stream) -> impl FnOnce(io::Error) -> Self {
        move |source| OutputError::new(what, stream, source)
    }

    /// Whether the reader went away (exit 141, nothing printed).
    pub(crate) fn is_broken_pipe(&self) -> bool {
        self.source.kind() == io::ErrorKind::BrokenPipe
    }

    /// The exit code the rule gives: 141 for a broken pipe, else 1.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.is_broken_pipe() {
            BROKEN_PIPE_EXIT
        } else {
            1
        }
    }
}

/// Fails when `stream` was closed before the command started, so that no work is done for an
/// output nobody can receive.
pub(crate) fn ensure_open(what: &'static str, stream: Stream) -> Result<(), OutputError> {
    let closed = match stream {
        Stream::Stdout => &STDOUT_CLOSED_AT_START,
        Stream::Stderr => &STDERR_CLOSED_AT_START,
    };
    if closed.load(Ordering::Relaxed) {
        return Err(OutputError::new(
            what,
            stream,
            io::Error::new(
                io::ErrorKind::NotConnected,
                "it was closed when triad started (to discard the output, send it to /dev/null)",
            ),
        ));
    }
    Ok(())
}

/// An output file (`--trace`, `--json-file`), opened — created if missing, not yet emptied —
/// before the work, so that a bad path fails before anything runs; filled after it.
#[derive(Debug)]
pub(crate) struct OutputFile {
    what: &'static str,
    path: PathBuf,
    file: File,
}

impl OutputFile {
    /// Opens `path` for writing `what` (for example "the trace").
    pub(crate) fn open(what: &'static str, path: &Path) -> anyhow::Result<OutputFile> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot write {what} to {}", path.display()))?;
        Ok(OutputFile {
            what,
            path: path.to_owned(),
            file,
        })
    }

    /// Replaces the file's contents with `contents`; gives the path back.
    pub(crate) fn replace(mut self, contents: &[u8]) -> anyhow::Result<PathBuf> {
        let written = (|| -> io::Result<()> {
            // A device such as /dev/null has no length to cut; a file does.
            if self.file.metadata()?.is_file() {
                self.file.set_len(0)?;
            }
            self.file.write_all(contents)?;
            self.file.flush()
        })();
        written
            .with_context(|| format!("could not write {} to {}", self.what, self.path.display()))?;
        Ok(self.path)
    }
}

/// Writes `text` to stderr as a diagnostic; a failure is ignored (see the module docs).
pub(crate) fn diagnostic(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// Writes `error` as one line on stderr, `triad: error: …`, unless it is a broken pipe of the
/// main output (which ends the command silently, as SIGPIPE would).
pub(crate) fn report(error: &anyhow::Error) {
    if error
        .downcast_ref::<OutputError>()
        .is_some_and(OutputError::is_broken_pipe)
    {
        return;
    }
    diagnostic(&format!("triad: error: {}\n", one_line(error.as_ref())));
}

/// The error and its causes on one line, `outer: cause: root`, leaving out a cause whose text
/// the line already holds (an error that prints its source *and* returns it as `source()`).
pub(crate) fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    for cause in std::iter::successors(Some(error), |cause| cause.source()) {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write x: {source}")]
    struct Repeats {
        source: io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let error = anyhow::Error::new(Repeats {
            source: io::Error::from_raw_os_error(libc::EACCES),
        });
        assert_eq!(
            one_line(error.as_ref()),
            "cannot write x: Permission denied (os error 13)"
        );
        let chained = anyhow::Error::new(io::Error::from_raw_os_error(libc::ENOENT))
            .context("could not open the trace");
        assert_eq!(
            one_line(chained.as_ref()),
            "could not open the trace: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn a_broken_pipe_is_141_and_anything_else_1() {
        let pipe = OutputError::new("x", Stream::Stdout, io::ErrorKind::BrokenPipe.into());
        assert_eq!(pipe.exit_code(), BROKEN_PIPE_EXIT);
        let full = OutputError::new("x", Stream::Stdout, io::Error::from_raw_os_error(28));
        assert_eq!(full.exit_code(), 1);
    }
}
