//! `triad profile`: runs the command (`--repeat N` times), then prints the report (stderr) or
//! the JSON document (stdout, or the file of `--json-file`), and ends with the command's own
//! exit code.
//!
//! With `--json` on stdout the command's stdout is relayed through a pipe, so that the JSON
//! starts on a new line when the command's output did not end with one: the last line of
//! stdout is always the document. `--json-file` leaves the command's stdout alone. With
//! `--repeat`, each run's verdict is a line on stderr as the run ends (text report), the report
//! is the last run's, and the agreement follows it (or is the document's `repeat` member).
//!
//! Exit code: the command's own (128 + N after signal N) when it is not 0 — repeating stops at
//! the first such run; when it is 0 and the report could not be written, the rule of `out`
//! (141 for a broken pipe, else 1) — so a lost report is never a silent success, and a failed
//! command never looks like a failed report.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use triad_profile::repeat::{self, RunSummary};
use triad_profile::{Analysis, Exit, Lang, Recording, Relayed, RunOptions};

use crate::cli::{LangArg, ProfileArgs};
use crate::out::{self, OutputError, OutputFile, Stream};

const REPORT: &str = "the report";

pub(crate) fn profile(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    let json_file = match &args.json_file {
        Some(path) => Some(OutputFile::open(REPORT, path)?),
        None if args.json => {
            out::ensure_open(REPORT, Stream::Stdout)?;
            None
        }
        None => {
            out::ensure_open(REPORT, Stream::Stderr)?;
            None
        }
    };
    let options = RunOptions {
        interval: std::time::Duration::from_millis(args.interval),
        lang: match args.lang {
            LangArg::Auto => None,
            LangArg::Python => Some(Lang::Python),
            LangArg::Native => Some(Lang::Native),
        },
    };
    let text = !args.json && args.json_file.is_none();
    let requested = usize::try_from(args.repeat).unwrap_or(usize::MAX);
    let mut runs: Vec<RunSummary> = Vec::new();
    let mut progress: std::io::Result<()> = Ok(());
    let (recording, analysis, relayed) = loop {
        let (recording, analysis, relayed) = run_once(&args, &options)?;
        runs.push(RunSummary::of(&recording, &analysis));
        if text && requested > 1 && progress.is_ok() {
            let line = repeat::run_line(runs.len(), requested, runs.last().expect("a run"));
            progress = writeln!(std::io::stderr().lock(), "{line}");
        }
        let failed = recording.exit != (Exit::Code { code: 0 })
            || relayed.as_ref().is_some_and(|r| r.error.is_some());
        if runs.len() >= requested || failed {
            break (recording, analysis, relayed);
        }
    };
    let repeated = (requested > 1).then_some(runs.as_slice());

    let written: anyhow::Result<()> = if let Some(file) = json_file {
        let mut document = document(&recording, &analysis, repeated).to_string();
        document.push('\n');
        file.replace(document.as_bytes()).map(drop)
    } else if let Some(relayed) = relayed {
        let document = document(&recording, &analysis, repeated);
        let newline = if relayed.ends_mid_line() { "\n" } else { "" };
        let mut stdout = std::io::stdout().lock();
        match relayed.error {
            // The command's output already failed to reach stdout: so does the report.
            Some(error) => Err(error),
            None => writeln!(stdout, "{newline}{document}").and_then(|()| stdout.flush()),
        }
        .map_err(|error| OutputError::new(REPORT, Stream::Stdout, error).into())
    } else {
        let color = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
        let mut text = triad_profile::render_text(&recording, &analysis, color);
        if let Some(agreement) = repeated.and_then(repeat::agreement) {
            text.push_str(&repeat::agreement_line(&agreement, requested));
            text.push('\n');
        }
        let mut stderr = std::io::stderr().lock();
        progress
            .and_then(|()| stderr.write_all(text.as_bytes()))
            .and_then(|()| stderr.flush())
            .map_err(|error| OutputError::new(REPORT, Stream::Stderr, error).into())
    };
    // The command's own exit status, as `time` does; 128 + N for a signal, as a shell does.
    let own = match recording.exit {
        Exit::Code { code } => u8::try_from(code).unwrap_or(1),
        Exit::Signal { signal } => u8::try_from(128 + signal).unwrap_or(1),
    };
    match written {
        Ok(()) => Ok(ExitCode::from(own)),
        Err(error) if own != 0 => {
            out::report(&error);
            Ok(ExitCode::from(own))
        }
        Err(error) => Err(error),
    }
}

/// One profiled run. With the JSON on stdout, the command's stdout is relayed, so that the
/// JSON can start on a line of its own.
fn run_once(
    args: &ProfileArgs,
    options: &RunOptions,
) -> anyhow::Result<(Recording, Analysis, Option<Relayed>)> {
    let (recording, relayed) = if args.json && args.json_file.is_none() {
        let (recording, relayed) = triad_profile::profile_relaying_stdout(&args.command, options)?;
        (recording, Some(relayed))
    } else {
        (triad_profile::profile(&args.command, options)?, None)
    };
    let analysis = triad_profile::analyse(&recording);
    Ok((recording, analysis, relayed))
}

/// The JSON document, with the `repeat` member when the command ran more than once.
fn document(
    recording: &Recording,
    analysis: &Analysis,
    repeated: Option<&[RunSummary]>,
) -> serde_json::Value {
    let mut document = triad_profile::render_json(recording, analysis);
    if let (Some(runs), serde_json::Value::Object(map)) = (repeated, &mut document) {
        map.insert("repeat".into(), repeat::repeat_json(runs));
    }
    document
}
