//! `triad images`: turns the flags into `triad_images`'s options, shows a progress bar on a
//! terminal, and prints the summary on stdout — as text (each failure also a line on stderr),
//! or one JSON document with a row per image.
//!
//! Exit code: 0 when every image was written (or skipped), 1 when any failed, 2 for a command
//! line that cannot work; 141 or 1 when the summary cannot be written (see `out`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use triad_images::{ImagesError, Kind, Mode, Op, Options, Progress, Status, Summary};

use crate::out::{self, OutputError, Stream};

const OUTPUT: &str = "the summary";

pub(crate) const HELP: &str = "\
Examples:
  triad images resize=800x600 rotate=90 --out small/ photos/*.jpg       # the seed's operations
  triad images thumbnail=256 --format webp --out thumbs/ --recursive photos/
  triad images auto-orient resize=1024x1024:fill sharpen=0.8 --out square/ 'in/**/*.png'
  triad images grayscale --mode processes --timeout 30 --out grey/ untrusted/
  triad images resize=800x600 --skip-existing --json --out small/ photos/ > summary.json

OPS, applied in the order given:
  resize=WxH[:fit|fill|exact]  fit inside the box (default), cover it and cut, or stretch (Lanczos3)
  thumbnail=N                  fit inside NxN, never enlarging
  rotate=90|180|270|DEG        clockwise; other angles grow the canvas (transparent or black corners)
  flip=h|v                     mirror, or upside down
  crop=X,Y,W,H                 a rectangle inside the image
  blur=SIGMA  sharpen=SIGMA    Gaussian blur; unsharp mask
  grayscale  brightness=N  contrast=PERCENT  auto-orient (apply the EXIF orientation)

INPUTs are files (taken whatever their name), directories (their .jpg .jpeg .png .webp files;
with --recursive, those below too) and globs. An output keeps the input's path below the
directory or glob, under --out, with the extension of --format when the format changes.

--mode threads (the default) processes every image on threads of this process. --mode
processes runs each in a worker process: a decoder that crashes or hangs (--timeout) fails that
image alone. Decodes in flight hold at most --max-memory bytes together, each image's need
estimated from its header; an image larger than that runs alone. A JPEG whose first operation
shrinks it is decoded at 1/2, 1/4 or 1/8 size in the DCT domain (shrink-on-load).

A file that is damaged, cut short, empty, unreadable, in another format, or claims more than
--max-megapixels, fails with its reason and the others go on. Outputs are written whole or not
at all (an unnamed file, named once complete): a run killed even by SIGKILL leaves no partial
file, and --skip-existing then does only what is left. WebP is written lossless.

Exit code: 0 every image written or skipped; 1 some failed; 2 the command line is wrong.";

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    /// JPEG (--quality)
    Jpeg,
    /// PNG
    Png,
    /// WebP, lossless
    Webp,
    /// Each input's own
    Same,
}

/// Threads or processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// Threads of this process
    Threads,
    /// Worker processes (a crash or hang fails one image)
    Processes,
}

#[derive(Debug, Args)]
pub(crate) struct ImagesArgs {
    /// The output directory (made if missing)
    #[arg(long, short, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Threads, or worker processes for crash isolation
    #[arg(long, value_enum, default_value = "threads")]
    pub(crate) mode: ModeArg,
    /// Images in flight at once (default: one per core)
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub(crate) workers: Option<u64>,
    /// The output format
    #[arg(long, value_enum, default_value = "same")]
    pub(crate) format: FormatArg,
    /// JPEG quality
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub(crate) quality: u8,
    /// Leave an image alone when its output exists
    #[arg(long)]
    pub(crate) skip_existing: bool,
    /// Walk directories' subdirectories too
    #[arg(long, short)]
    pub(crate) recursive: bool,
    /// Bytes decodes in flight may hold together (suffixes K, M, G)
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_bytes)]
    pub(crate) max_memory: u64,
    /// The most megapixels a header may claim (a decompression bomb's guard)
    #[arg(long, value_name = "MP", default_value_t = 250.0)]
    pub(crate) max_megapixels: f64,
    /// With --mode processes: seconds one image may take before its worker is replaced
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<f64>,
    /// Print the summary as one JSON document, a row per image, on stdout
    #[arg(long)]
    pub(crate) json: bool,
    /// Operations, then inputs: OPS... INPUT...
    #[arg(required = true, value_name = "OPS... INPUT")]
    pub(crate) args: Vec<String>,
}

/// `1G`, `512M`, `64K` or plain bytes (also `triad crawl --max-bytes`).
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let scale: u64 = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("expected bytes such as 512M or 2G, not {text}")),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("expected bytes such as 512M or 2G, not {text}"))?;
    if !(value.is_finite() && value >= 1.0) {
        return Err(format!("expected at least one byte, not {text}"));
    }
    Ok((value * scale as f64) as u64)
}

/// Whether a positional argument is an operation: a known name, or `NAME=VALUE` that is not a
/// path that exists.
fn is_op(arg: &str) -> bool {
    if std::path::Path::new(arg).exists() {
        return false;
    }
    match arg.split_once('=') {
        Some((name, _)) => !name.is_empty() && !name.contains(['/', '.']),
        None => matches!(arg, "grayscale" | "auto-orient"),
    }
}

fn options(args: &ImagesArgs, progress: Arc<Progress>) -> anyhow::Result<Options> {
    let split = args
        .args
        .iter()
        .position(|arg| !is_op(arg))
        .unwrap_or(args.args.len());
    let ops = args.args[..split]
        .iter()
        .map(|spec| Op::parse(spec).map_err(ImagesError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let inputs: Vec<PathBuf> = args.args[split..].iter().map(PathBuf::from).collect();
    if inputs.is_empty() {
        return Err(ImagesError::Usage("no INPUT: give files, directories or globs".into()).into());
    }
    if !(args.max_megapixels.is_finite() && args.max_megapixels > 0.0) {
        return Err(ImagesError::Usage("--max-megapixels must be above 0".into()).into());
    }
    if args.timeout.is_some() && args.mode == ModeArg::Threads {
        return Err(ImagesError::Usage(
            "--timeout needs --mode processes: a thread cannot be stopped, a process can".into(),
        )
        .into());
    }
    let mut options = Options::new(ops, &args.out, inputs);
    options.mode = match args.mode {
        ModeArg::Threads => Mode::Threads,
        ModeArg::Processes => Mode::Processes,
    };
    if let Some(workers) = args.workers {
        options.workers = workers as usize;
    }
    options.format = match args.format {
        FormatArg::Jpeg => Some(Kind::Jpeg),
        FormatArg::Png => Some(Kind::Png),
        FormatArg::Webp => Some(Kind::Webp),
        FormatArg::Same => None,
    };
    options.quality = args.quality;
    options.skip_existing = args.skip_existing;
    options.recursive = args.recursive;
    options.max_memory = args.max_memory;
    options.max_pixels = (args.max_megapixels * 1e6) as u64;
    options.timeout = args
        .timeout
        .filter(|seconds| *seconds > 0.0)
        .map(Duration::from_secs_f64);
    options.progress = progress;
    Ok(options)
}

pub(crate) fn images(args: ImagesArgs) -> anyhow::Result<ExitCode> {
    out::ensure_open(OUTPUT, Stream::Stdout)?;
    let progress = Arc::new(Progress::default());
    let options = options(&args, progress.clone())?;
    let bar = if args.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{spinner} {wide_bar} {pos}/{len} {msg} ETA {eta}")
                .expect("the template is valid"),
        )
    };
    let shown = progress.clone();
    let update = move |bar: &ProgressBar, elapsed: Duration| {
        bar.set_length(shown.total.load(Ordering::Relaxed));
        bar.set_position(shown.done.load(Ordering::Relaxed));
        let megapixels = shown.kilopixels.load(Ordering::Relaxed) as f64 / 1e3;
        bar.set_message(format!(
            "{:.0} MP/s, {} failed",
            megapixels / elapsed.as_secs_f64().max(1e-3),
            shown.failed.load(Ordering::Relaxed)
        ));
    };
    let outcome = crate::progress::while_running(&bar, update, || triad_images::run(&options));
    let summary = outcome?;
    let mut stdout = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer(&mut stdout, &summary)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(stdout))
    } else {
        for row in summary
            .rows
            .iter()
            .filter(|row| row.status == Status::Failed)
        {
            out::diagnostic(&format!(
                "triad images: {}: {}\n",
                row.input,
                row.reason.as_deref().unwrap_or("failed")
            ));
        }
        write_summary(&mut stdout, &summary)
    };
    written
        .and_then(|()| stdout.flush())
        .map_err(OutputError::on(OUTPUT, Stream::Stdout))?;
    Ok(ExitCode::from(u8::from(summary.failed > 0)))
}

fn write_summary(out: &mut impl Write, summary: &Summary) -> std::io::Result<()> {
    writeln!(
        out,
        "triad images: {} images in {:.2} s ({:.1}/s, {:.0} MP/s, {} {}): {} ok, {} failed, {} skipped",
        summary.images,
        summary.wall_seconds,
        summary.images_per_second,
        summary.megapixels_per_second,
        summary.workers,
        summary.mode,
        summary.ok,
        summary.failed,
        summary.skipped
    )?;
    if summary.ok > 0 {
        write!(
            out,
            "time: decode {:.0}%, operations {:.0}%, encode {:.0}%; peak memory {:.0} MiB",
            summary.decode_share * 100.0,
            summary.ops_share * 100.0,
            summary.encode_share * 100.0,
            summary.peak_rss_bytes as f64 / (1 << 20) as f64
        )?;
        if let Some(worker) = summary.worker_peak_rss_bytes {
            write!(
                out,
                " (largest worker {:.0} MiB)",
                worker as f64 / (1 << 20) as f64
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_suffixes() {
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("0").is_err());
    }

    #[test]
    fn operations_come_before_the_inputs() {
        assert!(is_op("resize=800x600"));
        assert!(is_op("grayscale"));
        assert!(is_op("sepia=3"), "an unknown operation is reported as one");
        assert!(!is_op("photos/a=b.jpg"));
        assert!(!is_op("photo.jpg"));
    }
}
