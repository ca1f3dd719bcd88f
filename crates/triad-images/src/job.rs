//! One image, start to end: read, probe, decode (shrunk on load when the operations allow),
//! the operations in order, encode, write atomically — and how long each step took. The same
//! function runs on a thread of this process or, as the registered task [`process_image`], in
//! a worker process of triad's pool.

use std::path::PathBuf;
use std::time::Instant;

use fast_image_resize::Resizer;
use image::metadata::Orientation;
use serde::{Deserialize, Serialize};

use crate::decode::{self, Header, Kind};
use crate::encode;
use crate::error::{Failure, FailureKind};
use crate::ops::Op;

/// Everything one image needs; serialisable, so that it can cross into a worker process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The input file.
    pub input: PathBuf,
    /// The output file.
    pub output: PathBuf,
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// The output format; `None` keeps the input's.
    pub format: Option<Kind>,
    /// JPEG quality, 1-100.
    pub quality: u8,
    /// The most pixels a header may claim (a decompression bomb's guard).
    pub max_pixels: u64,
}

/// What became of one image that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The input's size.
    pub width: u32,
    /// The input's size.
    pub height: u32,
    /// The output's size.
    pub out_width: u32,
    /// The output's size.
    pub out_height: u32,
    /// The output's bytes.
    pub out_bytes: u64,
    /// How much the JPEG decoder shrank the image while decoding (1: not at all).
    pub shrink: u32,
    /// Nanoseconds reading and decoding.
    pub decode_ns: u64,
    /// Nanoseconds in the operations.
    pub ops_ns: u64,
    /// Nanoseconds encoding and writing.
    pub encode_ns: u64,
}

/// Processes `job` in a worker process of triad's pool (`--mode processes`).
#[triad::task]
pub fn process_image(job: Job) -> Result<Done, Failure> {
    process_file(&job)
}

/// Reads `job`'s input and processes it.
pub fn process_file(job: &Job) -> Result<Done, Failure> {
    let started = Instant::now();
    let bytes = read(job)?;
    let header = decode::probe(&bytes)?;
    process_bytes(job, bytes, &header, started)
}

/// Reads the input whole.
pub(crate) fn read(job: &Job) -> Result<Vec<u8>, Failure> {
    std::fs::read(&job.input).map_err(|error| {
        Failure::new(
            FailureKind::Unreadable,
            format!("cannot read {}: {error}", job.input.display()),
        )
    })
}

/// How much the decoder may shrink an image with this header before `ops` (1: not at all):
/// only a JPEG whose first operation that changes pixels is a resize or thumbnail to a size at
/// most half its own, after an optional auto-orient.
pub(crate) fn planned_shrink(ops: &[Op], header: &Header) -> u32 {
    if header.kind != Kind::Jpeg {
        return 1;
    }
    let mut size = (header.width, header.height);
    let mut swapped = false;
    for op in ops {
        if *op == Op::AutoOrient {
            if swaps_axes(header.orientation) {
                size = (size.1, size.0);
                swapped = !swapped;
            }
            continue;
        }
        return match op.needs_at_most(size.0, size.1) {
            // The decoder's axes are the file's, before any orientation.
            Some((w, h)) if swapped => decode::shrink_for(header.width, header.height, (h, w)),
            Some(needed) => decode::shrink_for(header.width, header.height, needed),
            None => 1,
        };
    }
    1
}

fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Processes an input already read, whose header is `header`; `started` is when reading began.
/// The bytes are dropped once decoded.
pub(crate) fn process_bytes(
    job: &Job,
    bytes: Vec<u8>,
    header: &Header,
    started: Instant,
) -> Result<Done, Failure> {
    check_size(job, header)?;
    let shrink = planned_shrink(&job.ops, header);
    let (image, shrink) = decode::decode(&bytes, header, shrink)?;
    drop(bytes);
    let decoded = Instant::now();
    operate_and_write(job, header, image, shrink, started, decoded)
}

/// Refuses a header that claims more pixels than `job.max_pixels`.
pub(crate) fn check_size(job: &Job, header: &Header) -> Result<(), Failure> {
    if header.pixels() > job.max_pixels {
        return Err(Failure::new(
            FailureKind::TooLarge,
            format!(
                "the header claims {}x{} = {:.0} MP, more than the limit of {:.0} MP \
                 (--max-pixels; a decompression bomb?)",
                header.width,
                header.height,
                header.pixels() as f64 / 1e6,
                job.max_pixels as f64 / 1e6
            ),
        ));
    }
    Ok(())
}

/// The operations on a decoded image, then encoding and writing.
fn operate_and_write(
    job: &Job,
    header: &Header,
    mut image: image::DynamicImage,
    shrink: u32,
    started: Instant,
    decoded: Instant,
) -> Result<Done, Failure> {
    // The geometry of the first operation comes from the full size, so a shrunk decode lands
    // on the same output size; after it, each operation's from the image it is given.
    let mut full_size = (shrink > 1).then_some((header.width, header.height));
    let mut resizer = Resizer::new();
    for op in &job.ops {
        let size = full_size.unwrap_or((image.width(), image.height()));
        image = op
            .apply(image, size, header.orientation, &mut resizer)
            .map_err(|failure| Failure::new(FailureKind::Operation, failure.0))?;
        full_size = match full_size {
            Some((w, h)) if *op == Op::AutoOrient && swaps_axes(header.orientation) => Some((h, w)),
            Some(size) if *op == Op::AutoOrient => Some(size),
            _ => None,
        };
    }
    let operated = Instant::now();

    let kind = job.format.unwrap_or(header.kind);
    let encoded = encode::encode(&image, kind, job.quality)?;
    encode::write_atomically(&job.output, &encoded).map_err(|error| {
        Failure::new(
            FailureKind::Write,
            format!("cannot write {}: {error}", job.output.display()),
        )
    })?;
    let finished = Instant::now();
    Ok(Done {
        width: header.width,
        height: header.height,
        out_width: image.width(),
        out_height: image.height(),
        out_bytes: encoded.len() as u64,
        shrink,
        decode_ns: nanos(decoded - started),
        ops_ns: nanos(operated - decoded),
        encode_ns: nanos(finished - operated),
    })
}

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
