//! The batch: the inputs listed, each image's output path decided, then `workers` feeders each
//! take the next image, read its header, wait for its memory (see `budget`) and hand it to the
//! engine — on its own thread (`Mode::Threads`), or as a task of triad's process pool, one in
//! flight per feeder (`Mode::Processes`) — and record its row. A failure is that image's row;
//! the batch goes on.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use triad::{ProcessPool, TaskError};

use crate::budget::Budget;
use crate::decode::{self, Header, Kind};
use crate::error::{Failure, FailureKind, ImagesError};
use crate::inputs::{self, Entry};
use crate::job::{self, Job, process_image};
use crate::ops::Op;
use crate::summary::{Row, Status, Summary};

/// Threads or worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every image on a thread of this process: no serialisation, nothing copied.
    Threads,
    /// Every image in a worker process of triad's pool: a decoder that crashes or hangs takes
    /// down only its worker (which the pool replaces) and fails only that image.
    Processes,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// The output directory (made if missing).
    pub out: PathBuf,
    /// Threads or processes.
    pub mode: Mode,
    /// Images in flight at most.
    pub workers: usize,
    /// The output format; `None` keeps each input's.
    pub format: Option<Kind>,
    /// JPEG quality, 1-100.
    pub quality: u8,
    /// Leave an image alone when its output exists (a re-run does only what is left).
    pub skip_existing: bool,
    /// Walk directories' subdirectories too.
    pub recursive: bool,
    /// Files, directories and globs.
    pub inputs: Vec<PathBuf>,
    /// The bytes that decoding images in flight may hold at once.
    pub max_memory: u64,
    /// The most pixels a header may claim.
    pub max_pixels: u64,
    /// Processes mode: the longest one image may take before its worker is replaced.
    pub timeout: Option<Duration>,
    /// Counters for a progress display.
    pub progress: Arc<Progress>,
}

impl Options {
    /// Options with the defaults: threads, one per core, the input's format, quality 85, a 1 GiB
    /// memory bound, 250 megapixels at most.
    pub fn new(ops: Vec<Op>, out: impl Into<PathBuf>, inputs: Vec<PathBuf>) -> Self {
        Options {
            ops,
            out: out.into(),
            mode: Mode::Threads,
            workers: triad::available_cores(),
            format: None,
            quality: 85,
            skip_existing: false,
            recursive: false,
            inputs,
            max_memory: 1 << 30,
            max_pixels: 250_000_000,
            timeout: None,
            progress: Arc::default(),
        }
    }
}

/// What a progress display reads while the run goes.
#[derive(Debug, Default)]
pub struct Progress {
    /// Images listed.
    pub total: AtomicU64,
    /// Images finished (ok, failed or skipped).
    pub done: AtomicU64,
    /// Of those, failed.
    pub failed: AtomicU64,
    /// Input megapixels of the images done, times 1000.
    pub kilopixels: AtomicU64,
}

/// Runs the batch; one row per input image, in input order.
pub fn run(options: &Options) -> Result<Summary, ImagesError> {
    if options.workers == 0 {
        return Err(ImagesError::Usage("--workers must be at least 1".into()));
    }
    if !(1..=100).contains(&options.quality) {
        return Err(ImagesError::Usage("--quality is from 1 to 100".into()));
    }
    std::fs::create_dir_all(&options.out).map_err(|source| ImagesError::OutputDir {
        path: options.out.display().to_string(),
        source,
    })?;
    let started = Instant::now();
    let entries = inputs::expand(&options.inputs, options.recursive, Some(&options.out));
    let planned = plan(options, entries);
    options
        .progress
        .total
        .store(planned.len() as u64, Ordering::Relaxed);
    let engine = match options.mode {
        Mode::Threads => Engine::Threads,
        Mode::Processes => Engine::Processes(
            ProcessPool::builder()
                .workers(options.workers.min(planned.len()).max(1))
                .build()
                .map_err(triad::EngineError::from)?,
        ),
    };
    let budget = Budget::new(options.max_memory);
    let rows: Vec<Mutex<Option<Row>>> = planned.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..options.workers.min(planned.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(plan) = planned.get(index) else {
                        break;
                    };
                    let row = one(options, &engine, &budget, plan);
                    record(&options.progress, &row);
                    *rows[index].lock().unwrap_or_else(PoisonError::into_inner) = Some(row);
                }
            });
        }
    });
    let workers_started = match &engine {
        Engine::Processes(pool) => {
            let started = pool.workers_started();
            pool.join();
            Some(started)
        }
        Engine::Threads => None,
    };
    let rows = rows
        .into_iter()
        .map(|row| {
            row.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .expect("every planned image has a row")
        })
        .collect();
    let (peak_reserved, most_in_flight) = budget.peaks();
    Ok(Summary::new(
        rows,
        started.elapsed(),
        options,
        peak_reserved,
        most_in_flight,
        workers_started,
    ))
}

/// An image with its output path, or the reason it cannot be processed at all.
#[derive(Debug)]
struct Planned {
    entry: Entry,
    output: PathBuf,
}

/// The output path of every entry; a second input with the same output path, or an output
/// that would overwrite its own input, fails.
fn plan(options: &Options, entries: Vec<Entry>) -> Vec<Planned> {
    let mut taken: std::collections::HashMap<PathBuf, PathBuf> = Default::default();
    entries
        .into_iter()
        .map(|mut entry| {
            let output = options
                .out
                .join(output_relative(&entry.relative, options.format));
            if entry.failure.is_none() {
                if let Some(first) = taken.get(&output) {
                    entry.failure = Some(Failure::new(
                        FailureKind::Clash,
                        format!(
                            "{} is already the output of {}",
                            output.display(),
                            first.display()
                        ),
                    ));
                } else if same_file(&entry.path, &output) {
                    entry.failure = Some(Failure::new(
                        FailureKind::Clash,
                        format!("the output {} would overwrite its input", output.display()),
                    ));
                } else {
                    taken.insert(output.clone(), entry.path.clone());
                }
            }
            Planned { entry, output }
        })
        .collect()
}

/// The output's path below `--out`: the input's, with the extension of `format` when it names
/// another format than the input's extension does.
fn output_relative(relative: &Path, format: Option<Kind>) -> PathBuf {
    let Some(kind) = format else {
        return relative.to_owned();
    };
    let current = relative
        .extension()
        .and_then(|extension| extension.to_str())
        .and_then(Kind::from_extension);
    if current == Some(kind) {
        relative.to_owned()
    } else {
        relative.with_extension(kind.extension())
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Where an image is processed.
enum Engine {
    Threads,
    Processes(ProcessPool),
}

/// One image, start to row.
fn one(options: &Options, engine: &Engine, budget: &Budget, plan: &Planned) -> Row {
    let started = Instant::now();
    if let Some(failure) = &plan.entry.failure {
        return Row::failed(&plan.entry.path, None, failure.clone());
    }
    if options.skip_existing && plan.output.exists() {
        return Row::skipped(&plan.entry.path, &plan.output);
    }
    let job = Job {
        input: plan.entry.path.clone(),
        output: plan.output.clone(),
        ops: options.ops.clone(),
        format: options.format,
        quality: options.quality,
        max_pixels: options.max_pixels,
    };
    // The header first, from the file's start: the image's memory is reserved before its
    // bytes are read whole, let alone decoded. (In processes mode this process reads only
    // headers, and a parser's panic there fails the image as it would in a worker.)
    let outcome = guarded(|| probe_file(&job)).and_then(|(header, file_bytes)| {
        job::check_size(&job, &header)?;
        prepare_output_dir(&job)?;
        let _permit =
            budget.acquire(header.cost(file_bytes, job::planned_shrink(&job.ops, &header)));
        match engine {
            Engine::Threads => {
                let bytes = job::read(&job)?;
                // A decoder that panics on a hostile file fails this image, not the run.
                guarded(|| {
                    let header = decode::probe(&bytes)?;
                    job::process_bytes(&job, bytes, &header, started)
                })
            }
            Engine::Processes(pool) => {
                let handle = match options.timeout {
                    Some(limit) => pool.submit_with_timeout(process_image, job.clone(), limit),
                    None => pool.submit(process_image, job.clone()),
                }
                .map_err(|error| Failure::new(FailureKind::WorkerDied, error.to_string()))?;
                handle
                    .wait()
                    .unwrap_or_else(|error| Err(worker_failure(error, options.timeout)))
            }
        }
    });
    match outcome {
        Ok(done) => Row::ok(&plan.entry.path, &plan.output, done),
        Err(failure) => Row::failed(&plan.entry.path, Some(&plan.output), failure),
    }
}

/// Runs `work`, a panic in it becoming the image's failure.
fn guarded<T>(work: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        match TaskError::from_panic(panic) {
            TaskError::Panicked(message) => Err(panicked(&message)),
            other => Err(panicked(&other.to_string())),
        }
    })
}

/// Makes the output's directory (a nested relative path may need one).
fn prepare_output_dir(job: &Job) -> Result<(), Failure> {
    match job.output.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|error| {
            Failure::new(
                FailureKind::Write,
                format!("cannot make the directory {}: {error}", parent.display()),
            )
        }),
        None => Ok(()),
    }
}

/// The header of `job`'s input, from its first MiB (or the whole file if the header reaches
/// further), and the file's size — without reading pixels, in this process.
fn probe_file(job: &Job) -> Result<(Header, u64), Failure> {
    const PREFIX: u64 = 1 << 20;
    let unreadable = |error: std::io::Error| {
        Failure::new(
            FailureKind::Unreadable,
            format!("cannot read {}: {error}", job.input.display()),
        )
    };
    let file = std::fs::File::open(&job.input).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let mut prefix = Vec::new();
    file.take(PREFIX)
        .read_to_end(&mut prefix)
        .map_err(unreadable)?;
    match decode::probe(&prefix) {
        Err(_) if size > PREFIX => Ok((decode::probe(&job::read(job)?)?, size)),
        header => Ok((header?, size)),
    }
}

/// A task error of the pool as the image's failure.
fn worker_failure(error: TaskError, timeout: Option<Duration>) -> Failure {
    match error {
        TaskError::WorkerDied { .. } => Failure::new(
            FailureKind::WorkerDied,
            format!("{error}; its worker was replaced and the other images went on"),
        ),
        TaskError::Timeout => Failure::new(
            FailureKind::Timeout,
            format!(
                "took longer than --timeout {:.1} s; its worker was killed and replaced",
                timeout.unwrap_or_default().as_secs_f64()
            ),
        ),
        TaskError::Panicked(message) => panicked(&message),
        other => Failure::new(FailureKind::WorkerDied, other.to_string()),
    }
}

fn panicked(message: &str) -> Failure {
    Failure::new(
        FailureKind::Panicked,
        format!("processing the image panicked (a decoder's bug on a hostile file?): {message}"),
    )
}

fn record(progress: &Progress, row: &Row) {
    progress.done.fetch_add(1, Ordering::Relaxed);
    if row.status == Status::Failed {
        progress.failed.fetch_add(1, Ordering::Relaxed);
    }
    let pixels = u64::from(row.width.unwrap_or(0)) * u64::from(row.height.unwrap_or(0));
    progress
        .kilopixels
        .fetch_add(pixels / 1000, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_processing_is_the_images_failure() {
        let failure =
            guarded(|| -> Result<(), Failure> { panic!("bad huffman table") }).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Panicked);
        assert!(failure.message.contains("bad huffman table"), "{failure}");
        assert_eq!(guarded(|| Ok::<_, Failure>(7)), Ok(7));
    }

    #[test]
    fn outputs_change_extension_only_with_the_format() {
        let jpg = Path::new("a/b.jpeg");
        assert_eq!(output_relative(jpg, None), Path::new("a/b.jpeg"));
        assert_eq!(
            output_relative(jpg, Some(Kind::Jpeg)),
            Path::new("a/b.jpeg")
        );
        assert_eq!(
            output_relative(jpg, Some(Kind::Webp)),
            Path::new("a/b.webp")
        );
        assert_eq!(
            output_relative(Path::new("c"), Some(Kind::Png)),
            Path::new("c.png")
        );
    }
}
