//! What each subcommand prints, as text or JSON; exit codes.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use triad::workloads::{CATALOGUE, UnknownWorkload, run_named};
use triad::{Recorder, Runner, TaskError};

use std::io::IsTerminal;

use triad_profile::{Exit, Lang, RunError, RunOptions};

use crate::cli::{LangArg, ProfileArgs, RunArgs, TasksArgs};

/// Exit code for an error: 2 when the user asked for something that does not exist; 127 and
/// 126 when a profiled command is not found or cannot be executed (as a shell says); else 1.
pub(crate) fn exit_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<UnknownWorkload>().is_some()
        || matches!(
            error.downcast_ref::<triad_lab::LabError>(),
            Some(triad_lab::LabError::UnknownExperiment { .. })
        )
    {
        return 2;
    }
    match error.downcast_ref::<RunError>() {
        Some(run_error) => u8::try_from(run_error.exit_code()).unwrap_or(1),
        None => 1,
    }
}

pub(crate) fn profile(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    let options = RunOptions {
        interval: std::time::Duration::from_millis(args.interval),
        lang: match args.lang {
            LangArg::Auto => None,
            LangArg::Python => Some(Lang::Python),
            LangArg::Native => Some(Lang::Native),
        },
    };
    let recording = triad_profile::profile(&args.command, &options)?;
    let analysis = triad_profile::analyse(&recording);
    if args.json {
        let document = triad_profile::render_json(&recording, &analysis);
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &document)?;
        writeln!(out)?;
    } else {
        let color = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
        eprint!(
            "{}",
            triad_profile::render_text(&recording, &analysis, color)
        );
    }
    // The command's own exit status, as `time` does; 128 + N for a signal, as a shell does.
    Ok(match recording.exit {
        Exit::Code { code } => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Exit::Signal { signal } => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
    })
}

/// Whether `error` is a write to a closed pipe.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|json| json.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// How many results the text report lists before it summarises the rest.
const LISTED_RESULTS: usize = 10;

#[derive(Serialize)]
struct RunReport<'a> {
    workload: &'a str,
    mode: String,
    tasks: usize,
    ok: usize,
    failed: usize,
    wall_seconds: f64,
    tasks_per_second: f64,
    trace: Option<String>,
    results: Vec<TaskReport>,
}

#[derive(Serialize)]
struct TaskReport {
    input: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !CATALOGUE.iter().any(|(name, _)| *name == args.workload) {
        return Err(UnknownWorkload(args.workload).into());
    }
    let inputs: Vec<u64> = (0..args.repeat)
        .flat_map(|_| args.inputs.iter().copied())
        .collect();
    let mut runner = Runner::new(args.mode).context("could not start the engine")?;
    if let Some(size) = args.chunk_size {
        runner = runner.chunk_size(usize::try_from(size).unwrap_or(usize::MAX));
    }
    let recorder = args.trace.as_ref().map(|_| Arc::new(Recorder::new()));
    if let Some(recorder) = &recorder {
        runner = runner.record(recorder.clone());
    }

    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(inputs.len() as u64).with_style(
            ProgressStyle::with_template("{spinner} {pos}/{len} tasks {wide_bar} {elapsed}")
                .expect("the template is valid"),
        )
    };
    let started = Instant::now();
    let results = run_named(&runner, &args.workload, inputs.clone(), || progress.inc(1))?;
    let wall = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    if let (Some(path), Some(recorder)) = (&args.trace, &recorder) {
        std::fs::write(path, triad::chrome_trace_json(&recorder.take()))
            .with_context(|| format!("could not write the trace to {}", path.display()))?;
    }

    let failed = results.iter().filter(|result| result.is_err()).count();
    let report = RunReport {
        workload: &args.workload,
        mode: args.mode.to_string(),
        tasks: results.len(),
        ok: results.len() - failed,
        failed,
        wall_seconds: wall,
        tasks_per_second: results.len() as f64 / wall.max(f64::MIN_POSITIVE),
        trace: args.trace.as_ref().map(|path| path.display().to_string()),
        results: inputs
            .iter()
            .zip(results)
            .map(|(&input, result)| task_report(input, result))
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_run(&mut out, &report)?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn task_report(input: u64, result: Result<u64, TaskError>) -> TaskReport {
    match result {
        Ok(output) => TaskReport {
            input,
            output: Some(output),
            error: None,
        },
        Err(error) => TaskReport {
            input,
            output: None,
            error: Some(error.to_string()),
        },
    }
}

fn print_run(out: &mut impl Write, report: &RunReport<'_>) -> std::io::Result<()> {
    writeln!(
        out,
        "{} × {} in {}: {:.3} s wall, {:.1} tasks/s, {} ok, {} failed",
        report.workload,
        report.tasks,
        report.mode,
        report.wall_seconds,
        report.tasks_per_second,
        report.ok,
        report.failed
    )?;
    for (index, task) in report.results.iter().enumerate().take(LISTED_RESULTS) {
        match (&task.output, &task.error) {
            (Some(output), _) => writeln!(out, "  [{index}] {} -> {output}", task.input)?,
            (None, Some(error)) => writeln!(out, "  [{index}] {} -> error: {error}", task.input)?,
            (None, None) => unreachable!("a task has an output or an error"),
        }
    }
    if report.results.len() > LISTED_RESULTS {
        writeln!(out, "  … {} more", report.results.len() - LISTED_RESULTS)?;
    }
    if let Some(path) = &report.trace {
        writeln!(
            out,
            "trace: {} spans in {path} (open it in Perfetto or chrome://tracing)",
            report.tasks
        )?;
    }
    Ok(())
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
    let registry = triad::registry()?;
    let report = TasksReport {
        workloads: CATALOGUE
            .iter()
            .map(|&(name, description)| Workload { name, description })
            .collect(),
        registered: registry.names(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "Workloads (triad run NAME …):")?;
    for workload in &report.workloads {
        writeln!(out, "  {:<16} {}", workload.name, workload.description)?;
    }
    writeln!(out, "Registered tasks ({}):", report.registered.len())?;
    for name in &report.registered {
        writeln!(out, "  {name}")?;
    }
    Ok(ExitCode::SUCCESS)
}
