//! `triad map`: records through a pool of workers in any language — the seed's ETL pipeline
//! (§7.2) as a command: in order, streaming, resumable, and nothing lost.
//!
//! The seed's `DataPipeline` loads the whole file, transforms it on `Pool.map`, and dumps it:
//! three copies in memory, no progress, one bad record ends everything, an interrupted run
//! starts over. Here the input streams through a [`triad::pipeline`] — the reader on a thread
//! of its own, batches of records on bounded channels, the transform on persistent workers,
//! the writer in input order — so memory stays flat whatever the input's size; each record
//! that fails is retried and then filed in the errors, never dropped; and the output's
//! checkpoints let `--resume` continue exactly where it ended.
//!
//! Three kinds of worker ([`Transform`]):
//! - a command (`--cmd`): any program, one line in, one line out (see `workers`);
//! - a Python function (`--py FILE:FUNC`): a shipped stdlib-only harness imports the module
//!   once per worker and calls the function on each decoded record, batches across the pipe;
//! - a Rust map task (`--task NAME`, see `tasks`), on threads or in triad's worker processes.
//!
//! # Layout
//! - `input`: the readers (JSONL, CSV, lines; files, gzip, stdin) and batching.
//! - `records`: batches, outcomes, failures, and the check of an answer line.
//! - `workers`: persistent external workers (`--cmd`, `--py`), retries, timeouts, stderr.
//! - `harness.py`: the `--py` worker; `python`: how it is started.
//! - `tasks`: `--task` map tasks, in threads or processes.
//! - `output`: the ordered writer, the errors, checkpoints and `--resume`.

pub mod input;
mod output;
mod python;
pub mod records;
pub mod tasks;
pub mod workers;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use triad::pipeline::{Pipeline, PipelineMetrics, Stage};

pub use input::{Format, InputError, Inputs};
pub use output::{Checkpoint, OutputError, checkpoint_path};
pub use records::Failure;
pub use workers::StderrSink;

use output::{Destination, Writer};
use records::{Batch, Done};
use workers::{Protocol, WorkerPool, WorkerSpec};

/// What transforms the records.
#[derive(Debug, Clone)]
pub enum Transform {
    /// A shell command, run by `sh -c`: one line in, one line out.
    Command(String),
    /// A Python function, `FILE:FUNC`.
    Python {
        /// The module's file.
        file: PathBuf,
        /// The function's name.
        function: String,
    },
    /// A registered Rust map task.
    Task {
        /// Its name.
        name: String,
        /// In worker processes (else on threads).
        processes: bool,
    },
}

/// Everything a run needs.
#[derive(Clone)]
pub struct MapOptions {
    /// What transforms the records.
    pub transform: Transform,
    /// How many workers.
    pub workers: usize,
    /// The records' format, in and out.
    pub format: Format,
    /// Records per batch; `None` lets the run choose: batches that keep a worker busy for
    /// about [`BATCH_TIME`], learned from how fast the workers answer.
    pub batch: Option<usize>,
    /// Output in completion order, not input order.
    pub unordered: bool,
    /// Where failed records go (JSONL); without it, they are reported on stderr.
    pub errors: Option<PathBuf>,
    /// Continue from the output's checkpoint.
    pub resume: bool,
    /// How long one record may take.
    pub timeout: Option<Duration>,
    /// Runs again of a failed record.
    pub retries: u32,
    /// The output file; `None` is standard output.
    pub output: Option<PathBuf>,
    /// The inputs.
    pub inputs: Inputs,
    /// Set it (from a signal handler) to stop reading: what is in flight finishes and is
    /// written, and the run ends with a checkpoint.
    pub stop: Arc<AtomicBool>,
    /// Where workers' stderr lines go.
    pub stderr: StderrSink,
    /// Updated as the run goes, for a progress bar.
    pub progress: Arc<Progress>,
    /// Runs a `--task` transform's batches on this engine (a cluster: `triad map --redis`)
    /// instead of in local worker processes.
    pub remote: Option<Arc<dyn triad::remote::RemoteEngine>>,
}

impl std::fmt::Debug for MapOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapOptions")
            .field("transform", &self.transform)
            .field("workers", &self.workers)
            .field("format", &self.format)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

/// How far a run has got, readable while it goes.
#[derive(Debug, Default)]
pub struct Progress {
    /// Input bytes read (compressed bytes for gzip inputs).
    pub read_bytes: AtomicU64,
    /// The inputs' total size, when every input is a file.
    pub total_bytes: AtomicU64,
    /// Input records done (output or filed), a resumed run's earlier part included.
    pub records_done: AtomicU64,
}

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The command line asks for something that cannot work (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The workers cannot run at all (their program is missing, the module will not import).
    #[error("{0}")]
    Workers(String),
    /// The input could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The output could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The pipeline could not start.
    #[error(transparent)]
    Engine(#[from] triad::EngineError),
    /// A batch was lost inside the pipeline (a bug): the run stops rather than drop it.
    #[error("internal error, the run stops: {0}")]
    Internal(String),
}

impl MapError {
    /// Whether it is the command line's fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            MapError::Usage(_)
                | MapError::Workers(_)
                | MapError::Input(InputError::Open { .. })
                | MapError::Output(OutputError::NoCheckpoint(_))
        )
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Input records done in this run (output or filed).
    pub records: u64,
    /// Records skipped because an earlier run did them (`--resume`).
    pub resumed: u64,
    /// Of those, how many had failed.
    pub failed_earlier: u64,
    /// Records that came out.
    pub succeeded: u64,
    /// Records that failed for good.
    pub failed: u64,
    /// Runs again of failed records.
    pub retried: u64,
    /// Wall time.
    pub wall: Duration,
    /// The pipeline's figures at the end (reader, workers, writer).
    pub metrics: PipelineMetrics,
    /// Whether the run was stopped before the end of its input.
    pub stopped: bool,
    /// Failures that had no errors file to go to, in input order.
    pub unfiled: Vec<Failure>,
    /// Worker processes started (replacements included).
    pub workers_started: u64,
}

impl Summary {
    /// The share of the time the workers were idle (1 − their stage's utilization).
    pub fn workers_idle(&self) -> f64 {
        self.metrics
            .stages
            .iter()
            .find(|stage| stage.name == TRANSFORM)
            .map_or(0.0, |stage| 1.0 - stage.utilization)
    }
}

const TRANSFORM: &str = "transform";

/// How long a batch should keep a worker busy when the run chooses the batch size: long enough
/// that the hand-over to and from a worker costs little, short enough to keep every worker fed.
pub const BATCH_TIME: Duration = Duration::from_millis(5);
/// The first batches' size, before the workers' speed is known, and the bounds of the choice.
const FIRST_BATCH: usize = 64;
const MOST_BATCH: usize = 20_000;

/// Learns the batch size from each batch's time in a worker (a moving average per record).
#[derive(Debug)]
struct BatchSizer {
    size: Arc<std::sync::atomic::AtomicUsize>,
    per_record_ns: std::sync::Mutex<f64>,
}

/// Teaches the run's batch sizer, if it has one, how long `records` took.
fn learn(sizer: &Option<Arc<BatchSizer>>, records: usize, started: Instant) {
    if let Some(sizer) = sizer {
        sizer.learn(records, started.elapsed());
    }
}

impl BatchSizer {
    fn learn(&self, records: usize, took: Duration) {
        if records == 0 {
            return;
        }
        let mut per_record = self
            .per_record_ns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let sample = took.as_nanos() as f64 / records as f64;
        *per_record = if *per_record == 0.0 {
            sample
        } else {
            0.8 * *per_record + 0.2 * sample
        };
        let size = (BATCH_TIME.as_nanos() as f64 / per_record.max(1.0)) as usize;
        self.size
            .store(size.clamp(1, MOST_BATCH), Ordering::Relaxed);
    }
}

/// `PATH` lookup of a command's first word, so that a missing program is an error before any
/// work (`sh -c` would only say so in exit code 127, later).
fn check_command(command: &str) -> Result<(), MapError> {
    let Some(first) = command.split_whitespace().next() else {
        return Err(MapError::Usage("--cmd is empty".into()));
    };
    // Shell syntax (an assignment, a builtin, a subshell): leave it to the shell.
    if first.contains(['=', '(', '$', '`', '{', '\'', '"']) || is_builtin(first) {
        return Ok(());
    }
    let executable = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if first.contains('/') {
        executable(std::path::Path::new(first))
    } else {
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|directory| executable(&directory.join(first)))
        })
    };
    if found {
        Ok(())
    } else {
        Err(MapError::Usage(format!(
            "--cmd: {first}: no such program, or it is not executable"
        )))
    }
}

fn is_builtin(word: &str) -> bool {
    matches!(
        word,
        "cd" | "echo"
            | "exec"
            | "exit"
            | "export"
            | "read"
            | "printf"
            | "test"
            | "["
            | "true"
            | "false"
            | "while"
            | "for"
            | "if"
            | "set"
            | "eval"
            | "."
    )
}

/// `argv` run under coreutils' `stdbuf -oL` when it is installed: C programs that would hold
/// their answers in a block buffer (tr, sed, head, awk) write each line as they finish it, so a
/// batch smaller than their buffer is still answered.
fn line_buffered(argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|directory| directory.join("stdbuf").is_file())
    });
    if on_path {
        [vec!["stdbuf".into(), "-oL".into()], argv].concat()
    } else {
        argv
    }
}

/// The workers for a command or a Python function.
fn worker_spec(options: &MapOptions) -> Result<Option<WorkerSpec>, MapError> {
    let (argv, env, protocol, handshake) = match &options.transform {
        Transform::Command(command) => {
            check_command(command)?;
            (
                line_buffered(vec!["sh".into(), "-c".into(), command.into()]),
                vec![("PYTHONUNBUFFERED".to_owned(), "1".to_owned())],
                Protocol::Lines,
                false,
            )
        }
        Transform::Python { file, function } => {
            if !file.is_file() {
                return Err(MapError::Usage(format!(
                    "--py: {} is not a file",
                    file.display()
                )));
            }
            (
                python::argv(file, function, options.format),
                vec![],
                Protocol::Framed,
                true,
            )
        }
        Transform::Task { .. } => return Ok(None),
    };
    Ok(Some(WorkerSpec {
        argv,
        env,
        protocol,
        format: options.format,
        timeout: options.timeout,
        retries: options.retries,
        handshake,
    }))
}

/// Runs a whole map: see the crate docs.
pub fn run(options: MapOptions) -> Result<Summary, MapError> {
    if options.resume && options.output.is_none() {
        return Err(MapError::Usage("--resume needs --output FILE".into()));
    }
    if options.resume && options.unordered {
        return Err(MapError::Usage(
            "--resume needs the output in input order: drop --unordered".into(),
        ));
    }
    let total = options.inputs.check()?;
    options
        .progress
        .total_bytes
        .store(total.unwrap_or(0), Ordering::Relaxed);
    let spec = worker_spec(&options)?;
    let task = match &options.transform {
        Transform::Task { name, .. } => Some(tasks::find(name).ok_or_else(|| {
            MapError::Usage(format!(
                "--task: no map task named {name}; there are: {}",
                tasks::names().join(", ")
            ))
        })?),
        _ => None,
    };
    if let Some(spec) = &spec {
        preflight(spec)?;
    }

    let reader_columns = std::sync::Arc::new(std::sync::OnceLock::new());
    let destination = Destination {
        output: options.output.clone(),
        errors: options.errors.clone(),
        resume: options.resume,
        format: options.format,
    };
    let (mut writer, earlier) = Writer::open(&destination, reader_columns.clone())?;
    let skip = earlier.records;
    let mut reader = input::Reader::new(
        &options.inputs,
        options.format,
        options.batch.unwrap_or(FIRST_BATCH),
        skip,
    );
    reader.share_columns(reader_columns);
    let sizer = options.batch.is_none().then(|| {
        Arc::new(BatchSizer {
            size: reader.batch_size(),
            per_record_ns: std::sync::Mutex::new(0.0),
        })
    });
    let read_bytes = reader.read_bytes();
    let read_error = reader.error();
    let names = Arc::new(reader.names());
    let stop = options.stop.clone();
    let source = std::iter::from_fn(move || {
        if stop.load(Ordering::SeqCst) {
            None
        } else {
            reader.next()
        }
    });

    let started = Instant::now();
    let mut pool_for_fatal: Option<Arc<WorkerPool>> = None;
    let mut process_pool = None;
    let pipeline = Pipeline::<Batch, Batch>::new();
    let pipeline = match (&spec, task, &options.transform) {
        (None, Some(task), Transform::Task { .. }) if options.remote.is_some() => {
            let engine = options.remote.clone().expect("checked just now");
            let (format, sizer) = (options.format, sizer.clone());
            pipeline.then(Stage::future(
                TRANSFORM,
                2 * engine.parallelism().max(options.workers),
                move |batch: Batch| {
                    let (engine, names, sizer) = (engine.clone(), names.clone(), sizer.clone());
                    async move {
                        let (records, started) = (batch.len(), Instant::now());
                        let done =
                            tasks::transform_remote(engine, task, names, format, batch).await;
                        learn(&sizer, records, started);
                        Ok::<_, Infallible>(done)
                    }
                },
            ))
        }
        (Some(spec), _, _) => {
            let pool = Arc::new(WorkerPool::new(
                spec.clone(),
                options.workers,
                names.to_vec(),
                options.stderr.clone(),
            ));
            pool_for_fatal = Some(pool.clone());
            let sizer = sizer.clone();
            pipeline.then(Stage::future(
                TRANSFORM,
                options.workers,
                move |batch: Batch| {
                    let (pool, sizer) = (pool.clone(), sizer.clone());
                    async move {
                        let (records, started) = (batch.len(), Instant::now());
                        let done = pool.transform(batch).await;
                        learn(&sizer, records, started);
                        Ok::<_, Infallible>(done)
                    }
                },
            ))
        }
        (
            None,
            Some(task),
            Transform::Task {
                processes: true, ..
            },
        ) => {
            let pool = triad::ProcessPool::builder()
                .workers(options.workers)
                .retries(options.retries)
                .on_demand()
                .build()
                .map_err(triad::EngineError::from)?;
            process_pool = Some(pool.clone());
            let (format, timeout, sizer) = (options.format, options.timeout, sizer.clone());
            pipeline.then(Stage::future(
                TRANSFORM,
                2 * options.workers,
                move |batch: Batch| {
                    let (pool, names, sizer) = (pool.clone(), names.clone(), sizer.clone());
                    async move {
                        let (records, started) = (batch.len(), Instant::now());
                        let done =
                            tasks::transform_in_process(pool, task, names, format, timeout, batch)
                                .await;
                        learn(&sizer, records, started);
                        Ok::<_, Infallible>(done)
                    }
                },
            ))
        }
        (None, Some(task), _) => {
            let format = options.format;
            pipeline.then(Stage::blocking(
                TRANSFORM,
                options.workers,
                move |batch: Batch| {
                    let (records, started) = (batch.len(), Instant::now());
                    let done = tasks::transform_here(task, &names, format, batch);
                    learn(&sizer, records, started);
                    Ok::<_, Infallible>(done)
                },
            ))
        }
        (None, None, _) => unreachable!("a transform is a command, a function or a task"),
    };
    // Few batches in flight (each up to a MiB): two per worker between the stages, and a
    // window of four per worker in all, so memory stays flat whatever the input.
    let pipeline = pipeline
        .capacity(options.workers.max(2))
        .window(4 * options.workers.max(2));
    let pipeline = if options.unordered {
        pipeline.unordered()
    } else {
        pipeline
    };

    let mut summary = Summary {
        records: 0,
        resumed: skip,
        failed_earlier: earlier.failed,
        succeeded: 0,
        failed: 0,
        retried: 0,
        wall: Duration::ZERO,
        metrics: PipelineMetrics {
            elapsed: Duration::ZERO,
            taken: 0,
            source_blocked: Duration::ZERO,
            emitted_ok: 0,
            emitted_failed: 0,
            stages: Vec::new(),
            bottleneck: None,
        },
        stopped: false,
        unfiled: Vec::new(),
        workers_started: 0,
    };
    let mut results = pipeline.run(source)?;
    let outcome = (|| -> Result<(), MapError> {
        for result in results.by_ref() {
            let done: Done = result.map_err(|error| MapError::Internal(error.to_string()))?;
            if let Some(reason) = pool_for_fatal.as_ref().and_then(|pool| pool.fatal()) {
                return Err(MapError::Workers(reason.to_owned()));
            }
            summary.records += done.records;
            summary.succeeded += done.succeeded;
            summary.failed += done.failures.len() as u64;
            summary.retried += done.retried;
            writer.write(done)?;
            options
                .progress
                .records_done
                .store(writer.records_done(), Ordering::Relaxed);
            options
                .progress
                .read_bytes
                .store(read_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        Ok(())
    })();
    summary.metrics = results.metrics();
    drop(results);
    if let Some(pool) = process_pool {
        summary.workers_started = pool.workers_started();
        pool.terminate();
    }
    if let Some(pool) = &pool_for_fatal {
        summary.workers_started = pool.started.load(Ordering::Relaxed) as u64;
    }
    outcome?;
    if let Some(error) = read_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    {
        writer.write_checkpoint(false)?;
        return Err(error.into());
    }
    summary.stopped = options.stop.load(Ordering::SeqCst);
    writer.write_checkpoint(!summary.stopped)?;
    summary.unfiled = std::mem::take(&mut writer.unfiled);
    summary.wall = started.elapsed();
    Ok(summary)
}

/// Starts one worker on an event loop of its own and checks that it can run, so that a
/// program that will not start is one clear error before anything is read or written.
fn preflight(spec: &WorkerSpec) -> Result<(), MapError> {
    if !spec.handshake {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| {
            MapError::Engine(triad::EngineError::Start {
                what: "event loop",
                source,
            })
        })?;
    let sink: StderrSink = Arc::new(|_| {});
    let pool = WorkerPool::new(spec.clone(), 1, vec![], sink);
    runtime
        .block_on(async {
            let checked = pool.preflight().await;
            pool.close().await;
            checked
        })
        .map_err(|reason| MapError::Workers(pool.fatal().map_or(reason, str::to_owned)))
}
