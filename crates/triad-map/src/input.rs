//! Reading the input: files (gzip-compressed ones too, told by their first bytes) or standard
//! input, one after another, cut into batches of records without holding more than a batch.
//!
//! JSONL lines are checked to be JSON as they are read: a line that is not is a failed record
//! (with its line number) that goes to the errors, not to a worker. CSV rows become JSON
//! objects keyed by the header (the `csv` crate reads them, quoting and all); raw lines go as
//! they are. Every record counts towards the index that `--resume` skips by, malformed ones
//! too, so that a resumed run skips exactly what the first one finished.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::records::{Batch, Failure, Origin};

/// How records are written, in the input and the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON value per line (the default).
    Jsonl,
    /// A header row, then one record per row; records travel as JSON objects.
    Csv,
    /// Raw text, one record per line.
    Lines,
}

/// Why the input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// An input could not be opened.
    #[error("cannot read {path}: {source}")]
    Open {
        /// The input.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading failed part way.
    #[error("reading {path} failed at line {line}: {source}")]
    Read {
        /// The input.
        path: String,
        /// The last line read.
        line: u64,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A CSV input could not be parsed (its header, or a row's quoting).
    #[error("{path}: {detail}")]
    Csv {
        /// The input.
        path: String,
        /// What the CSV reader said.
        detail: String,
    },
}

/// The inputs, in order; none means standard input.
#[derive(Debug, Clone)]
pub struct Inputs {
    paths: Vec<PathBuf>,
}

impl Inputs {
    /// Files to read, in order (`-` is standard input); none means standard input.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Inputs { paths }
    }

    fn names(&self) -> Vec<String> {
        if self.paths.is_empty() {
            vec!["-".to_owned()]
        } else {
            self.paths.iter().map(|p| p.display().to_string()).collect()
        }
    }

    /// Opens every input now, so that a missing one fails before any work starts; the total
    /// size of the files, when every input is a regular file.
    pub fn check(&self) -> Result<Option<u64>, InputError> {
        let mut total = Some(0_u64);
        for path in &self.paths {
            if path == Path::new("-") {
                total = None;
                continue;
            }
            let file = File::open(path).map_err(|source| InputError::Open {
                path: path.display().to_string(),
                source,
            })?;
            let metadata = file.metadata().map_err(|source| InputError::Open {
                path: path.display().to_string(),
                source,
            })?;
            total = total.and_then(|sum| metadata.is_file().then(|| sum + metadata.len()));
        }
        if self.paths.is_empty() {
            total = None;
        }
        Ok(total)
    }
}

/// Counts the bytes read through it (compressed bytes, for a gzip input), for the progress bar.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.read.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// One open input.
enum Source {
    Text(Box<dyn BufRead + Send>),
    Csv(csv::Reader<Box<dyn Read + Send>>, Vec<String>),
}

/// Cuts the inputs into batches; an iterator of batches. An error ends it, and is kept for
/// [`error`](Self::error).
pub struct Reader {
    format: Format,
    inputs: Vec<PathBuf>,
    names: Vec<String>,
    next_input: usize,
    current: Option<(Source, u32)>,
    line: u64,
    /// Records per batch, as it stands now (the run may change it as it learns the workers'
    /// speed, see [`batch_size`](Self::batch_size)).
    batch_records: Arc<AtomicUsize>,
    batch_bytes: usize,
    /// The index of the next record in the whole input.
    next_index: u64,
    /// Records to read past without sending (a resumed run's finished part).
    skip: u64,
    read_bytes: Arc<AtomicU64>,
    error: Arc<Mutex<Option<InputError>>>,
    /// The first CSV input's header, for the output's columns.
    columns: Arc<OnceLock<Vec<String>>>,
    done: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("format", &self.format)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

/// A batch closes at this many bytes of records, whatever `--batch` says.
const MAX_BATCH_BYTES: usize = 1 << 20;

impl Reader {
    /// A reader of `inputs` in `format`, batches of `batch` records, past the first `skip`.
    pub fn new(inputs: &Inputs, format: Format, batch: usize, skip: u64) -> Self {
        Reader {
            format,
            inputs: inputs.paths.clone(),
            names: inputs.names(),
            next_input: 0,
            current: None,
            line: 0,
            batch_records: Arc::new(AtomicUsize::new(batch.max(1))),
            batch_bytes: MAX_BATCH_BYTES,
            next_index: 0,
            skip,
            read_bytes: Arc::new(AtomicU64::new(0)),
            error: Arc::new(Mutex::new(None)),
            columns: Arc::new(OnceLock::new()),
            done: false,
        }
    }

    /// Bytes read so far (of the files as they are on disk).
    pub fn read_bytes(&self) -> Arc<AtomicU64> {
        self.read_bytes.clone()
    }

    /// Where a reading error is left when the iterator ends early.
    pub fn error(&self) -> Arc<Mutex<Option<InputError>>> {
        self.error.clone()
    }

    /// The records per batch, which the run may change while it reads.
    pub fn batch_size(&self) -> Arc<AtomicUsize> {
        self.batch_records.clone()
    }

    /// Where the first CSV input's header is put when it is read (the writer's columns).
    pub fn share_columns(&mut self, columns: Arc<OnceLock<Vec<String>>>) {
        self.columns = columns;
    }

    /// The names of the inputs, for failures' `input` field.
    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn open_next(&mut self) -> Result<bool, InputError> {
        let count = self.inputs.len().max(1);
        if self.next_input >= count {
            return Ok(false);
        }
        let index = self.next_input;
        self.next_input += 1;
        let name = self.names[index].clone();
        let raw: Box<dyn Read + Send> = if name == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(
                File::open(&self.inputs[index]).map_err(|source| InputError::Open {
                    path: name.clone(),
                    source,
                })?,
            )
        };
        let counted = Counting {
            inner: raw,
            read: self.read_bytes.clone(),
        };
        let mut buffered = BufReader::with_capacity(256 * 1024, counted);
        let gzip = buffered
            .fill_buf()
            .map_err(|source| InputError::Read {
                path: name.clone(),
                line: 0,
                source,
            })?
            .starts_with(&[0x1f, 0x8b]);
        let text: Box<dyn Read + Send> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        self.line = 0;
        let source = match self.format {
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().from_reader(text);
                let header = reader
                    .headers()
                    .map_err(|error| InputError::Csv {
                        path: name.clone(),
                        detail: error.to_string(),
                    })?
                    .iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>();
                let _ = self.columns.set(header.clone());
                Source::Csv(reader, header)
            }
            Format::Jsonl | Format::Lines => {
                Source::Text(Box::new(BufReader::with_capacity(256 * 1024, text)))
            }
        };
        self.current = Some((source, index as u32));
        Ok(true)
    }

    /// Reads the next record, into `batch` (a text record straight into its buffer) or, for
    /// CSV, into `self.buffer`: the record's origin and the reason it is malformed, if it is;
    /// `None` at the end of the current input.
    fn read_record(&mut self, batch: &mut Batch) -> Result<Option<Record>, InputError> {
        let Some((source, input)) = &mut self.current else {
            return Ok(None);
        };
        let input = *input;
        let name = &self.names[input as usize];
        match source {
            Source::Text(reader) => {
                let start = batch.data.len();
                let read = reader
                    .read_until(b'\n', &mut batch.data)
                    .map_err(|source| InputError::Read {
                        path: name.clone(),
                        line: self.line,
                        source,
                    })?;
                if read == 0 {
                    return Ok(None);
                }
                self.line += 1;
                if batch.data.last() != Some(&b'\n') {
                    batch.data.push(b'\n');
                }
                let text = &batch.data[start..batch.data.len() - 1];
                let malformed = match self.format {
                    Format::Jsonl => crate::records::json_text(text)
                        .err()
                        .map(|error| format!("malformed JSON: {error}")),
                    _ => None,
                };
                Ok(Some(Record {
                    origin: Origin {
                        input,
                        line: self.line,
                    },
                    start,
                    malformed,
                }))
            }
            Source::Csv(reader, header) => {
                let mut record = csv::StringRecord::new();
                let start = batch.data.len();
                match reader.read_record(&mut record) {
                    Ok(false) => Ok(None),
                    Ok(true) => {
                        let line = record.position().map_or(self.line + 1, |p| p.line());
                        self.line = line;
                        let object: serde_json::Map<String, serde_json::Value> = header
                            .iter()
                            .zip(record.iter())
                            .map(|(key, value)| (key.clone(), value.into()))
                            .collect();
                        serde_json::to_writer(&mut batch.data, &object)
                            .expect("a map of strings serialises");
                        batch.data.push(b'\n');
                        Ok(Some(Record {
                            origin: Origin { input, line },
                            start,
                            malformed: None,
                        }))
                    }
                    Err(error) => {
                        let line = error.position().map_or(self.line + 1, |p| p.line());
                        self.line = line;
                        if error.is_io_error() {
                            return Err(InputError::Read {
                                path: name.clone(),
                                line,
                                source: io::Error::other(error.to_string()),
                            });
                        }
                        batch.data.extend_from_slice(b"(unreadable CSV row)\n");
                        Ok(Some(Record {
                            origin: Origin { input, line },
                            start,
                            malformed: Some(format!("malformed CSV: {error}")),
                        }))
                    }
                }
            }
        }
    }

    fn next_batch(&mut self) -> Result<Option<Batch>, InputError> {
        let mut batch = Batch::default();
        loop {
            if self.current.is_none() && !self.open_next()? {
                break;
            }
            let Some(read) = self.read_record(&mut batch)? else {
                self.current = None;
                continue;
            };
            let index = self.next_index;
            self.next_index += 1;
            if index < self.skip {
                batch.data.truncate(read.start);
                continue;
            }
            if batch.records() == 0 {
                batch.first = index;
            }
            match read.malformed {
                Some(reason) => {
                    let text = &batch.data[read.start..batch.data.len() - 1];
                    batch.malformed.push(Failure {
                        record: String::from_utf8_lossy(text).into_owned(),
                        input: self.names[read.origin.input as usize].clone(),
                        line: read.origin.line,
                        reason,
                        stderr: Vec::new(),
                        order: (read.origin.input, read.origin.line),
                    });
                    batch.data.truncate(read.start);
                }
                None => {
                    batch.ends.push(batch.data.len());
                    batch.origins.push(read.origin);
                }
            }
            if batch.records() as usize >= self.batch_records.load(Ordering::Relaxed)
                || batch.data.len() >= self.batch_bytes
            {
                break;
            }
        }
        Ok((batch.records() > 0).then_some(batch))
    }
}

/// One record just read into a batch.
struct Record {
    origin: Origin,
    /// Where it starts in the batch's buffer (it ends at the buffer's end).
    start: usize,
    malformed: Option<String>,
}

impl Iterator for Reader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(batch)) => Some(batch),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
                None
            }
        }
    }
}
