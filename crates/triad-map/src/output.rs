//! Writing the results: the output (standard output or a file), the errors, and the
//! checkpoints that make `--resume` exact.
//!
//! The output file is only ever appended to, in input order. At a checkpoint (every second,
//! and at the end) the output and the errors are flushed and fsynced, and then a small
//! checkpoint file beside the output — `OUTPUT.checkpoint`, written to a temporary name and
//! renamed — records how many input records are done and how long both files were then. A
//! resumed run cuts both files back to those lengths (dropping anything written after the
//! last checkpoint, whose records it will do again) and skips that many records of the input:
//! every record appears in the output exactly once, whenever the first run was stopped —
//! SIGINT, SIGKILL, a power cut.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::input::Format;
use crate::records::{Done, Failure};

/// How often a checkpoint is written.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// What a checkpoint file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Input records done (in the output, or in the errors).
    pub records_done: u64,
    /// The output's length then.
    pub output_bytes: u64,
    /// The errors file's length then.
    pub errors_bytes: u64,
    /// Whether the run had finished its whole input.
    pub complete: bool,
    /// Of the records done, how many failed (a checkpoint written before this was counted
    /// reads as none).
    #[serde(default)]
    pub records_failed: u64,
}

/// Where an earlier run, continued with `--resume`, got to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Resumed {
    /// Input records it did.
    pub(crate) records: u64,
    /// Of them, how many failed.
    pub(crate) failed: u64,
}

/// Where a run's checkpoint lives: beside its output.
pub fn checkpoint_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".checkpoint");
    PathBuf::from(name)
}

/// Why the output could not be written or resumed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Writing, flushing or syncing failed.
    #[error("could not write {what} to {path}: {source}")]
    Write {
        /// Which file.
        what: &'static str,
        /// Its path (`-` for standard output).
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `--resume` found an output but no checkpoint saying how much of it is good.
    #[error(
        "{0} exists but has no checkpoint beside it: it was not written by triad map, or with \
         another output name; remove it, or run without --resume"
    )]
    NoCheckpoint(String),
    /// The checkpoint could not be read.
    #[error("the checkpoint {path} cannot be read: {detail}")]
    BadCheckpoint {
        /// Its path.
        path: String,
        /// Why.
        detail: String,
    },
}

/// An output stream: standard output, or a file that can be fsynced.
struct Stream {
    what: &'static str,
    path: String,
    writer: BufWriter<Box<dyn Write + Send>>,
    file: Option<File>,
    written: u64,
}

impl Stream {
    fn stdout() -> Self {
        Stream {
            what: "the output",
            path: "-".to_owned(),
            writer: BufWriter::with_capacity(1 << 20, Box::new(io::stdout())),
            file: None,
            written: 0,
        }
    }

    /// A file cut to `keep` bytes (0: a new, empty file) and appended to from there.
    fn file(what: &'static str, path: &Path, keep: u64) -> Result<Self, OutputError> {
        let error = |source| OutputError::Write {
            what,
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(error)?;
        if file.metadata().map_err(error)?.is_file() {
            file.set_len(keep).map_err(error)?;
        }
        let mut appender = file.try_clone().map_err(error)?;
        use std::io::Seek;
        appender.seek(io::SeekFrom::Start(keep)).map_err(error)?;
        Ok(Stream {
            what,
            path: path.display().to_string(),
            writer: BufWriter::with_capacity(1 << 20, Box::new(appender)),
            file: Some(file),
            written: keep,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        self.writer
            .write_all(bytes)
            .map_err(|source| self.error(source))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn error(&self, source: io::Error) -> OutputError {
        OutputError::Write {
            what: self.what,
            path: self.path.clone(),
            source,
        }
    }

    /// Flushes, and fsyncs a file.
    fn sync(&mut self) -> Result<(), OutputError> {
        self.writer.flush().map_err(|source| self.error(source))?;
        if let Some(file) = &self.file {
            file.sync_data().map_err(|source| self.error(source))?;
        }
        Ok(())
    }
}

/// CSV output: the columns are the input's header, and any new key of the first result.
struct CsvOut {
    writer: csv::Writer<Vec<u8>>,
    columns: Option<Vec<String>>,
    header_written: bool,
}

/// Writes results in order, with checkpoints.
pub(crate) struct Writer {
    output: Stream,
    errors: Option<Stream>,
    checkpoint: Option<PathBuf>,
    csv: Option<CsvOut>,
    /// The input's CSV header, once the reader has seen it.
    input_columns: Arc<OnceLock<Vec<String>>>,
    records_done: u64,
    records_failed: u64,
    last_checkpoint: Instant,
    /// Failures with nowhere to go but stderr (no `--errors`).
    pub(crate) unfiled: Vec<Failure>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("records_done", &self.records_done)
            .finish_non_exhaustive()
    }
}

/// Where results go, as the command line says.
#[derive(Debug, Clone)]
pub(crate) struct Destination {
    /// The output file; `None` is standard output.
    pub(crate) output: Option<PathBuf>,
    /// The errors file, if any.
    pub(crate) errors: Option<PathBuf>,
    /// Continue from the output's checkpoint.
    pub(crate) resume: bool,
    /// The output's format.
    pub(crate) format: Format,
}

impl Writer {
    /// Opens the output and errors; with `resume`, cuts them back to their checkpoint. Gives
    /// the writer and what the earlier run did (the input records to skip).
    pub(crate) fn open(
        destination: &Destination,
        input_columns: Arc<OnceLock<Vec<String>>>,
    ) -> Result<(Writer, Resumed), OutputError> {
        let checkpoint = destination.output.as_deref().map(checkpoint_path);
        let resumed = match (&destination.output, &checkpoint) {
            (Some(output), Some(path)) if destination.resume => read_checkpoint(output, path)?,
            _ => None,
        };
        let start = resumed.unwrap_or(Checkpoint {
            records_done: 0,
            output_bytes: 0,
            errors_bytes: 0,
            complete: false,
            records_failed: 0,
        });
        let output = match &destination.output {
            Some(path) => Stream::file("the output", path, start.output_bytes)?,
            None => Stream::stdout(),
        };
        let errors = destination
            .errors
            .as_deref()
            .map(|path| Stream::file("the errors", path, start.errors_bytes))
            .transpose()?;
        let csv = (destination.format == Format::Csv).then(|| CsvOut {
            writer: csv::Writer::from_writer(Vec::new()),
            columns: None,
            header_written: start.output_bytes > 0,
        });
        let mut writer = Writer {
            output,
            errors,
            checkpoint,
            csv,
            input_columns,
            records_done: start.records_done,
            records_failed: start.records_failed,
            last_checkpoint: Instant::now(),
            unfiled: Vec::new(),
        };
        // The cut-back files are the state the checkpoint describes; say so on disk at once.
        writer.write_checkpoint(false)?;
        Ok((
            writer,
            Resumed {
                records: start.records_done,
                failed: start.records_failed,
            },
        ))
    }

    /// Input records done so far (a resumed run's earlier part included).
    pub(crate) fn records_done(&self) -> u64 {
        self.records_done
    }

    /// Writes one batch's results (batches arrive in input order, or any order when
    /// unordered — a checkpoint then only counts; `--resume` refuses unordered runs).
    pub(crate) fn write(&mut self, done: Done) -> Result<(), OutputError> {
        match &mut self.csv {
            None => self.output.write(&done.output)?,
            Some(csv) => {
                let rows = csv_rows(csv, &self.input_columns, &done.output);
                self.output.write(&rows)?;
            }
        }
        self.records_failed += done.failures.len() as u64;
        for failure in done.failures {
            match &mut self.errors {
                Some(errors) => {
                    let mut line = serde_json::to_vec(&failure).expect("a failure serialises");
                    line.push(b'\n');
                    errors.write(&line)?;
                }
                None => self.unfiled.push(failure),
            }
        }
        self.records_done += done.records;
        if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.write_checkpoint(false)?;
        }
        Ok(())
    }

    /// Flushes and fsyncs everything and records how far the run got.
    pub(crate) fn write_checkpoint(&mut self, complete: bool) -> Result<(), OutputError> {
        self.output.sync()?;
        if let Some(errors) = &mut self.errors {
            errors.sync()?;
        }
        self.last_checkpoint = Instant::now();
        let Some(path) = &self.checkpoint else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            records_done: self.records_done,
            output_bytes: self.output.written,
            errors_bytes: self.errors.as_ref().map_or(0, |errors| errors.written),
            complete,
            records_failed: self.records_failed,
        };
        let temporary = path.with_extension("checkpoint.tmp");
        let error = |source| OutputError::Write {
            what: "the checkpoint",
            path: path.display().to_string(),
            source,
        };
        let mut file = File::create(&temporary).map_err(error)?;
        serde_json::to_writer(&mut file, &checkpoint).map_err(|e| error(e.into()))?;
        file.sync_all().map_err(error)?;
        std::fs::rename(&temporary, path).map_err(error)?;
        // The rename itself is durable once the directory is synced.
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(directory) = File::open(directory)
        {
            let _ = directory.sync_all();
        }
        Ok(())
    }
}

fn read_checkpoint(output: &Path, path: &Path) -> Result<Option<Checkpoint>, OutputError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| OutputError::BadCheckpoint {
                    path: path.display().to_string(),
                    detail: error.to_string(),
                })
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let has_output = std::fs::metadata(output).is_ok_and(|m| m.len() > 0);
            if has_output {
                Err(OutputError::NoCheckpoint(output.display().to_string()))
            } else {
                Ok(None)
            }
        }
        Err(error) => Err(OutputError::BadCheckpoint {
            path: path.display().to_string(),
            detail: error.to_string(),
        }),
    }
}

/// JSON objects, one per line, as CSV rows (with the header before the first).
fn csv_rows(csv: &mut CsvOut, input_columns: &OnceLock<Vec<String>>, lines: &[u8]) -> Vec<u8> {
    for line in lines
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
    {
        let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(line) else {
            continue; // answers are checked to be objects before they get here
        };
        let columns = csv.columns.get_or_insert_with(|| {
            let mut columns = input_columns.get().cloned().unwrap_or_default();
            for key in object.keys() {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
            columns
        });
        if !csv.header_written {
            let _ = csv.writer.write_record(columns.iter());
            csv.header_written = true;
        }
        let row = columns.iter().map(|column| match object.get(column) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        });
        let _ = csv.writer.write_record(row);
    }
    let full = std::mem::replace(&mut csv.writer, csv::Writer::from_writer(Vec::new()));
    full.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_keeps_the_input_columns_and_adds_new_keys_at_the_end() {
        let columns = OnceLock::new();
        columns
            .set(vec!["name".to_owned(), "age".to_owned()])
            .unwrap();
        let mut csv = CsvOut {
            writer: csv::Writer::from_writer(Vec::new()),
            columns: None,
            header_written: false,
        };
        let rows = csv_rows(
            &mut csv,
            &columns,
            b"{\"age\":\"3\",\"name\":\"a, b\",\"score\":7}\n{\"name\":\"c\"}\n",
        );
        assert_eq!(
            String::from_utf8(rows).unwrap(),
            "name,age,score\n\"a, b\",3,7\nc,,\n"
        );
    }
}
