//! `triad run` and `triad tasks`: what they print, as text or JSON.
//!
//! `run` streams: the inputs (the list, `--repeat` times over) are pulled lazily by the engine,
//! and each result is counted — and, with `--json`, written — as it comes, so memory stays
//! flat however many tasks run. The text report keeps only the first [`LISTED_RESULTS`] results
//! and the first [`LISTED_FAILURES`] failures. Output paths (`--trace`) are opened before the
//! work starts; the trace is written after it, and a trace that cannot be written still leaves
//! the results printed.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use triad::workloads::{CATALOGUE, UnknownWorkload, check_input, run_named};
use triad::{Recorder, Runner, TaskError};

use crate::cli::{RunArgs, TasksArgs};
use crate::out::{self, OutputError, OutputFile, Stream};

/// How many results the text report lists before it summarises the rest.
const LISTED_RESULTS: usize = 10;
/// How many failures past those the text report lists.
const LISTED_FAILURES: usize = 5;

const RESULTS: &str = "the results";

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !CATALOGUE.iter().any(|(name, _)| *name == args.workload) {
        return Err(UnknownWorkload(args.workload).into());
    }
    for &input in &args.inputs {
        check_input(&args.workload, input)?;
    }
    out::ensure_open(RESULTS, Stream::Stdout)?;
    let trace = args
        .trace
        .as_deref()
        .map(|path| OutputFile::open("the trace", path))
        .transpose()?;

    let mut runner = Runner::new(args.mode).context("could not start the engine")?;
    if let Some(size) = args.chunk_size {
        runner = runner.chunk_size(usize::try_from(size).unwrap_or(usize::MAX));
    }
    let recorder = trace.as_ref().map(|_| Arc::new(Recorder::new()));
    if let Some(recorder) = &recorder {
        runner = runner.record(recorder.clone());
    }
    let repeat = usize::try_from(args.repeat).unwrap_or(usize::MAX);
    let inputs = std::iter::repeat_n(args.inputs.as_slice(), repeat)
        .flatten()
        .copied();
    let progress = progress_bar(&args);

    let stdout = io::stdout();
    let mut json = if args.json {
        Some(JsonReport::begin(io::BufWriter::new(stdout.lock()), &args)?)
    } else {
        None
    };
    let mut tally = Tally::default();
    let started = Instant::now();
    for (index, result) in run_named(&runner, &args.workload, inputs)?.enumerate() {
        let input = args.inputs[index % args.inputs.len()];
        if let Some(json) = &mut json {
            json.result(input, &result)?;
        }
        tally.add(index, input, result);
        progress.inc(1);
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let trace_outcome = match (trace, &recorder) {
        (Some(trace), Some(recorder)) => {
            Some(trace.replace(triad::chrome_trace_json(&recorder.take()).as_bytes()))
        }
        _ => None,
    };
    let trace_written = match &trace_outcome {
        Some(Ok(path)) => Some(path.display().to_string()),
        _ => None,
    };
    let summary = Summary {
        tasks: tally.tasks,
        ok: tally.tasks - tally.failed,
        failed: tally.failed,
        wall_seconds,
        tasks_per_second: tally.tasks as f64 / wall_seconds.max(f64::MIN_POSITIVE),
        trace: trace_written,
        trace_error: match &trace_outcome {
            Some(Err(error)) => Some(out::one_line(error.as_ref())),
            _ => None,
        },
    };
    match json {
        Some(json) => json.end(&summary)?,
        None => print_text(&mut stdout.lock(), &args, &tally, &summary)
            .map_err(OutputError::on(RESULTS, Stream::Stdout))?,
    }
    if let Some(Err(error)) = trace_outcome {
        return Err(error);
    }
    Ok(if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn progress_bar(args: &RunArgs) -> ProgressBar {
    if args.json {
        return ProgressBar::hidden();
    }
    let total = u64::try_from(args.inputs.len())
        .ok()
        .and_then(|n| n.checked_mul(args.repeat));
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{spinner} {pos}/{len} tasks {wide_bar} {elapsed}",
        ),
        None => (ProgressBar::no_length(), "{spinner} {pos} tasks {elapsed}"),
    };
    bar.with_style(ProgressStyle::with_template(template).expect("the templates are valid"))
}

/// What the text report and the summary need of the results, in bounded memory.
#[derive(Default)]
struct Tally {
    tasks: usize,
    failed: usize,
    /// The first [`LISTED_RESULTS`] results: (index, input, output or error).
    first: Vec<(usize, u64, Result<u128, TaskError>)>,
    /// The first [`LISTED_FAILURES`] failures after those.
    later_failures: Vec<(usize, u64, TaskError)>,
}

impl Tally {
    fn add(&mut self, index: usize, input: u64, result: Result<u128, TaskError>) {
        self.tasks += 1;
        if result.is_err() {
            self.failed += 1;
        }
        if self.first.len() < LISTED_RESULTS {
            self.first.push((index, input, result));
        } else if let Err(error) = result
            && self.later_failures.len() < LISTED_FAILURES
        {
            self.later_failures.push((index, input, error));
        }
    }
}

#[derive(Serialize)]
struct Summary {
    tasks: usize,
    ok: usize,
    failed: usize,
    wall_seconds: f64,
    tasks_per_second: f64,
    trace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_error: Option<String>,
}

#[derive(Serialize)]
struct TaskReport<'a> {
    input: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<u128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// `run --json`, written as the results come: one document, with one result per line inside
/// `"results"` and the summary's fields after it.
struct JsonReport<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> JsonReport<W> {
    fn begin(mut out: W, args: &RunArgs) -> Result<Self, OutputError> {
        write!(
            out,
            "{{\"workload\":{},\"mode\":{},\"results\":[",
            serde_json::Value::from(args.workload.as_str()),
            serde_json::Value::from(args.mode.to_string())
        )
        .map_err(OutputError::on(RESULTS, Stream::Stdout))?;
        Ok(JsonReport { out, first: true })
    }

    fn result(&mut self, input: u64, result: &Result<u128, TaskError>) -> Result<(), OutputError> {
        let message = result.as_ref().err().map(ToString::to_string);
        let task = TaskReport {
            input,
            output: result.as_ref().ok().copied(),
            error: message.as_deref(),
        };
        let separator = if self.first { "\n" } else { ",\n" };
        self.first = false;
        self.out
            .write_all(separator.as_bytes())
            .and_then(|()| serde_json::to_writer(&mut self.out, &task).map_err(io::Error::from))
            .map_err(OutputError::on(RESULTS, Stream::Stdout))
    }

    fn end(mut self, summary: &Summary) -> Result<(), OutputError> {
        let fields = serde_json::to_string(summary).expect("a summary always serialises");
        // The summary's fields continue the open object: `{"tasks":…}` without its brace.
        let fields = fields.strip_prefix('{').unwrap_or(&fields);
        writeln!(self.out, "\n],{fields}")
            .and_then(|()| self.out.flush())
            .map_err(OutputError::on(RESULTS, Stream::Stdout))
    }
}

fn print_text(
    out: &mut impl Write,
    args: &RunArgs,
    tally: &Tally,
    summary: &Summary,
) -> io::Result<()> {
    writeln!(
        out,
        "{} × {} in {}: {:.3} s wall, {:.1} tasks/s, {} ok, {} failed",
        args.workload,
        summary.tasks,
        args.mode,
        summary.wall_seconds,
        summary.tasks_per_second,
        summary.ok,
        summary.failed
    )?;
    for (index, input, result) in &tally.first {
        match result {
            Ok(output) => writeln!(out, "  [{index}] {input} -> {output}")?,
            Err(error) => writeln!(out, "  [{index}] {input} -> error: {error}")?,
        }
    }
    if summary.tasks > tally.first.len() {
        writeln!(out, "  … {} more", summary.tasks - tally.first.len())?;
    }
    for (index, input, error) in &tally.later_failures {
        writeln!(out, "  [{index}] {input} -> error: {error}")?;
    }
    let listed_failures =
        tally.first.iter().filter(|(_, _, r)| r.is_err()).count() + tally.later_failures.len();
    if summary.failed > listed_failures {
        writeln!(
            out,
            "  … {} more failure(s)",
            summary.failed - listed_failures
        )?;
    }
    if let Some(path) = &summary.trace {
        writeln!(
            out,
            "trace: {} spans in {path} (open it in Perfetto or chrome://tracing)",
            summary.tasks
        )?;
    }
    out.flush()
}

#[derive(Serialize)]
struct TasksReport {
    workloads: Vec<Workload>,
    registered: Vec<&'static str>,
}

#[derive(Serialize)]
struct Workload {
    name: &'static str,
    description: &'static str,
}

pub(crate) fn tasks(args: TasksArgs) -> anyhow::Result<ExitCode> {
    const LIST: &str = "the list of tasks";
    out::ensure_open(LIST, Stream::Stdout)?;
    let registry = triad::registry()?;
    let report = TasksReport {
        workloads: CATALOGUE
            .iter()
            .map(|&(name, description)| Workload { name, description })
            .collect(),
        registered: registry.names(),
    };
    let mut out = io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        print_tasks(&mut out, &report)
    };
    written
        .and_then(|()| out.flush())
        .map_err(OutputError::on(LIST, Stream::Stdout))?;
    Ok(ExitCode::SUCCESS)
}

fn print_tasks(out: &mut impl Write, report: &TasksReport) -> io::Result<()> {
    writeln!(out, "Workloads (triad run NAME …):")?;
    for workload in &report.workloads {
        writeln!(out, "  {:<16} {}", workload.name, workload.description)?;
    }
    writeln!(out, "Registered tasks ({}):", report.registered.len())?;
    for name in &report.registered {
        writeln!(out, "  {name}")?;
    }
    Ok(())
}
