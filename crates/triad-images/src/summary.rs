//! The run's result: a [`Row`] per image, and the totals a user reads first — images ok,
//! failed and skipped, megapixels per second, where the time went (decode, operations,
//! encode), and peak memory.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Failure, FailureKind};
use crate::job::Done;
use crate::run::{Mode, Options};

/// What became of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written.
    Ok,
    /// Not written; `reason` says why.
    Failed,
    /// Left alone: its output existed (`--skip-existing`).
    Skipped,
}

/// One image's line of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The input.
    pub input: String,
    /// The output (for a failure: where it would have gone, when known).
    pub output: Option<String>,
    /// What became of it.
    pub status: Status,
    /// The kind of failure.
    pub kind: Option<FailureKind>,
    /// Why it failed.
    pub reason: Option<String>,
    /// The input's size.
    pub width: Option<u32>,
    /// The input's size.
    pub height: Option<u32>,
    /// The output's size.
    pub out_width: Option<u32>,
    /// The output's size.
    pub out_height: Option<u32>,
    /// The output's bytes.
    pub out_bytes: Option<u64>,
    /// The JPEG decoder's shrink-on-load (1, 2, 4 or 8).
    pub shrink: Option<u32>,
    /// Seconds reading and decoding.
    pub decode_seconds: Option<f64>,
    /// Seconds in the operations.
    pub ops_seconds: Option<f64>,
    /// Seconds encoding and writing.
    pub encode_seconds: Option<f64>,
}

impl Row {
    fn empty(input: &Path, output: Option<&Path>, status: Status) -> Row {
        Row {
            input: input.display().to_string(),
            output: output.map(|path| path.display().to_string()),
            status,
            kind: None,
            reason: None,
            width: None,
            height: None,
            out_width: None,
            out_height: None,
            out_bytes: None,
            shrink: None,
            decode_seconds: None,
            ops_seconds: None,
            encode_seconds: None,
        }
    }

    pub(crate) fn ok(input: &Path, output: &Path, done: Done) -> Row {
        let seconds = |ns: u64| Some(ns as f64 / 1e9);
        Row {
            width: Some(done.width),
            height: Some(done.height),
            out_width: Some(done.out_width),
            out_height: Some(done.out_height),
            out_bytes: Some(done.out_bytes),
            shrink: Some(done.shrink),
            decode_seconds: seconds(done.decode_ns),
            ops_seconds: seconds(done.ops_ns),
            encode_seconds: seconds(done.encode_ns),
            ..Row::empty(input, Some(output), Status::Ok)
        }
    }

    pub(crate) fn failed(input: &Path, output: Option<&Path>, failure: Failure) -> Row {
        Row {
            kind: Some(failure.kind),
            reason: Some(failure.message),
            ..Row::empty(input, output, Status::Failed)
        }
    }

    pub(crate) fn skipped(input: &Path, output: &Path) -> Row {
        Row::empty(input, Some(output), Status::Skipped)
    }
}

/// The run's totals and its rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `threads` or `processes`.
    pub mode: &'static str,
    /// Images in flight at most.
    pub workers: usize,
    /// Images listed.
    pub images: usize,
    /// Written.
    pub ok: usize,
    /// Not written.
    pub failed: usize,
    /// Left alone (`--skip-existing`).
    pub skipped: usize,
    /// The run's wall time.
    pub wall_seconds: f64,
    /// Images written per second of wall time.
    pub images_per_second: f64,
    /// Input megapixels of the images written, per second of wall time.
    pub megapixels_per_second: f64,
    /// The share of the images' processing time spent reading and decoding.
    pub decode_share: f64,
    /// The share spent in the operations.
    pub ops_share: f64,
    /// The share spent encoding and writing.
    pub encode_share: f64,
    /// This process's peak resident memory (VmHWM).
    pub peak_rss_bytes: u64,
    /// The largest peak resident memory of a worker process (processes mode).
    pub worker_peak_rss_bytes: Option<u64>,
    /// Worker processes started, replacements included (processes mode).
    pub workers_started: Option<u64>,
    /// The memory bound on decodes in flight.
    pub max_memory_bytes: u64,
    /// The most bytes reserved for decodes at once.
    pub peak_reserved_bytes: u64,
    /// The most images decoding at once.
    pub most_in_flight: usize,
    /// One row per image, in input order.
    pub rows: Vec<Row>,
}

impl Summary {
    pub(crate) fn new(
        rows: Vec<Row>,
        wall: Duration,
        options: &Options,
        peak_reserved_bytes: u64,
        most_in_flight: usize,
        workers_started: Option<u64>,
    ) -> Summary {
        let count = |status| rows.iter().filter(|row| row.status == status).count();
        let (ok, failed, skipped) = (
            count(Status::Ok),
            count(Status::Failed),
            count(Status::Skipped),
        );
        let sum = |pick: fn(&Row) -> Option<f64>| rows.iter().filter_map(pick).sum::<f64>();
        let (decode, ops, encode) = (
            sum(|row| row.decode_seconds),
            sum(|row| row.ops_seconds),
            sum(|row| row.encode_seconds),
        );
        let busy = (decode + ops + encode).max(1e-12);
        let megapixels: f64 = rows
            .iter()
            .filter(|row| row.status == Status::Ok)
            .map(|row| f64::from(row.width.unwrap_or(0)) * f64::from(row.height.unwrap_or(0)))
            .sum::<f64>()
            / 1e6;
        let seconds = wall.as_secs_f64().max(1e-9);
        let processes = options.mode == Mode::Processes;
        Summary {
            mode: if processes { "processes" } else { "threads" },
            workers: options.workers,
            images: rows.len(),
            ok,
            failed,
            skipped,
            wall_seconds: wall.as_secs_f64(),
            images_per_second: ok as f64 / seconds,
            megapixels_per_second: megapixels / seconds,
            decode_share: decode / busy,
            ops_share: ops / busy,
            encode_share: encode / busy,
            peak_rss_bytes: peak_rss_of_self(),
            worker_peak_rss_bytes: processes.then(peak_rss_of_children),
            workers_started,
            max_memory_bytes: options.max_memory,
            peak_reserved_bytes,
            most_in_flight,
            rows,
        }
    }
}

/// This process's peak resident set (VmHWM of /proc/self/status), 0 where unknown.
fn peak_rss_of_self() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// The largest peak resident set of the children this process has waited for (the pool's
/// workers, once it is joined).
fn peak_rss_of_children() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given, which points at
    // one of the right size and alignment; it reads nothing else.
    let done = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if done != 0 {
        return 0;
    }
    // SAFETY: the call succeeded, so it filled the struct (and zeroed memory is a valid
    // `rusage` anyway: plain integers).
    let usage = unsafe { usage.assume_init() };
    u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024
}
