//! `triad map`: turns the flags into `triad_map`'s options, shows a progress bar on a terminal
//! (records/s, and an ETA from the input bytes read against their total), stops cleanly on
//! SIGINT or SIGTERM, and prints the summary (stderr) — as text, or one JSON document.
//!
//! Exit code: 0 when every record succeeded, 1 when some failed; 130 or 143 when a signal
//! stopped the run (what was in flight is written, with a checkpoint for `--resume`); 2 for a
//! command line that cannot work; 141 when the output's reader went away.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use triad_map::{Format, Inputs, MapError, MapOptions, OutputError, Progress, Summary, Transform};

use crate::cli::{FormatArg, MapArgs};
use crate::out::{self, Stream};

const OUTPUT: &str = "the records";

/// The exit code a map error gives beyond the usage rule: 141 for a reader gone away.
pub(crate) fn exit_code(error: &MapError) -> Option<u8> {
    broken_pipe(error).then_some(out::BROKEN_PIPE_EXIT)
}

fn broken_pipe(error: &MapError) -> bool {
    matches!(error, MapError::Output(OutputError::Write { source, .. })
        if source.kind() == std::io::ErrorKind::BrokenPipe)
}

fn transform(args: &MapArgs) -> anyhow::Result<Transform> {
    if let Some(command) = &args.cmd {
        return Ok(Transform::Command(command.clone()));
    }
    if let Some(spec) = &args.py {
        let Some((file, function)) = spec
            .rsplit_once(':')
            .filter(|(f, n)| !f.is_empty() && !n.is_empty())
        else {
            return Err(MapError::Usage(format!("--py takes FILE:FUNC, not {spec}")).into());
        };
        return Ok(Transform::Python {
            file: PathBuf::from(file),
            function: function.to_owned(),
        });
    }
    let name = args
        .task
        .clone()
        .expect("clap requires one of --cmd, --py, --task");
    Ok(Transform::Task {
        name,
        processes: args.processes,
    })
}

/// The bar on a terminal; hidden otherwise (and with --json).
fn progress_bar(args: &MapArgs) -> ProgressBar {
    if args.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}")
            .expect("the template is valid"),
    );
    bar
}

pub(crate) fn map(args: MapArgs) -> anyhow::Result<ExitCode> {
    let transform = transform(&args)?;
    if args.output.is_none() {
        out::ensure_open(OUTPUT, Stream::Stdout)?;
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    let terminated = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    for (signal, flag) in [
        (signal_hook::consts::SIGINT, &interrupted),
        (signal_hook::consts::SIGTERM, &terminated),
    ] {
        // A second signal ends the process at once (a worker that never answers would
        // otherwise hold the first one's orderly stop forever).
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stop.clone())?;
        signal_hook::flag::register(signal, flag.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let bar = progress_bar(&args);
    let printer = bar.clone();
    let stderr: triad_map::StderrSink = Arc::new(move |line: &str| {
        if printer.is_hidden() {
            out::diagnostic(&format!("{line}\n"));
        } else {
            printer.println(line);
        }
    });
    let progress = Arc::new(Progress::default());
    let options = MapOptions {
        transform,
        workers: args
            .workers
            .map_or_else(triad::available_cores, |n| n as usize),
        format: match args.format {
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Csv => Format::Csv,
            FormatArg::Lines => Format::Lines,
        },
        batch: args.batch.map(|n| n as usize),
        unordered: args.unordered,
        errors: args.errors.clone(),
        resume: args.resume,
        timeout: args
            .timeout
            .filter(|seconds| *seconds > 0.0)
            .map(Duration::from_secs_f64),
        retries: args.retries,
        output: args.output.clone(),
        inputs: Inputs::new(args.inputs.clone()),
        stop,
        stderr,
        remote: match &args.redis {
            Some(url) => {
                let cluster = triad_cluster::Cluster::builder(url)
                    .queue(&args.queue)
                    .retries(args.retries)
                    .build()?;
                Some(std::sync::Arc::new(cluster) as std::sync::Arc<dyn triad::remote::RemoteEngine>)
            }
            None => None,
        },
        progress: progress.clone(),
    };
    let shown = progress.clone();
    let update = move |bar: &ProgressBar, elapsed: Duration| {
        bar.set_length(shown.total_bytes.load(Ordering::Relaxed));
        bar.set_position(shown.read_bytes.load(Ordering::Relaxed));
        let records = shown.records_done.load(Ordering::Relaxed);
        let rate = records as f64 / elapsed.as_secs_f64().max(1e-3);
        bar.set_message(format!("{records} records, {rate:.0}/s"));
    };
    let outcome = crate::progress::while_running(&bar, update, || triad_map::run(options));
    let summary = match outcome {
        Ok(summary) => summary,
        Err(error) if broken_pipe(&error) => {
            // As SIGPIPE would: silently, 141.
            return Ok(ExitCode::from(out::BROKEN_PIPE_EXIT));
        }
        Err(error) => return Err(error.into()),
    };
    for failure in &summary.unfiled {
        out::diagnostic(&format!(
            "triad map: {}:{}: {}\n",
            failure.input, failure.line, failure.reason
        ));
    }
    let mut err = std::io::stderr().lock();
    let _ = if args.json {
        writeln!(err, "{}", summary_json(&summary))
    } else {
        write_summary(&mut err, &summary)
    };
    Ok(ExitCode::from(if interrupted.load(Ordering::SeqCst) {
        130
    } else if terminated.load(Ordering::SeqCst) {
        143
    } else if summary.failed + summary.failed_earlier > 0 {
        1
    } else {
        0
    }))
}

fn summary_json(summary: &Summary) -> serde_json::Value {
    serde_json::json!({
        "records": summary.records,
        "resumed": summary.resumed,
        "failed_earlier": summary.failed_earlier,
        "succeeded": summary.succeeded,
        "failed": summary.failed,
        "retried": summary.retried,
        "wall_seconds": summary.wall.as_secs_f64(),
        "records_per_second": summary.records as f64 / summary.wall.as_secs_f64().max(1e-9),
        "stopped": summary.stopped,
        "workers_started": summary.workers_started,
        "workers_idle_share": summary.workers_idle(),
        "pipeline": summary.metrics,
    })
}

fn write_summary(out: &mut impl Write, summary: &Summary) -> std::io::Result<()> {
    let seconds = summary.wall.as_secs_f64().max(1e-9);
    write!(
        out,
        "triad map: {} records in {:.2} s ({:.0}/s): {} out, {} failed, {} retried",
        summary.records,
        seconds,
        summary.records as f64 / seconds,
        summary.succeeded,
        summary.failed,
        summary.retried
    )?;
    if summary.resumed > 0 {
        write!(out, "; {} done by an earlier run", summary.resumed)?;
        if summary.failed_earlier > 0 {
            write!(out, " ({} of them failed)", summary.failed_earlier)?;
        }
    }
    writeln!(out)?;
    if summary.stopped {
        writeln!(
            out,
            "stopped before the end of the input: run again with --resume to finish"
        )?;
    }
    let idle = summary.workers_idle();
    // Under a second, starting the workers is most of the run: no advice in that.
    if summary.records > 0 && summary.wall >= std::time::Duration::from_secs(1) {
        if idle > 0.3 {
            writeln!(
                out,
                "the workers were idle {:.0}% of the time: the reader or the writer is the bottleneck",
                idle * 100.0
            )?;
        } else {
            writeln!(
                out,
                "the workers were busy {:.0}% of the time: they are the bottleneck (more \
                 --workers helps while cores are free)",
                (1.0 - idle) * 100.0
            )?;
        }
    }
    Ok(())
}
