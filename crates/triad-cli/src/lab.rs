//! `triad lab`: runs the experiments with a progress bar each, prints each table as it is done,
//! then writes the report files and prints the verdicts.
//!
//! Its main output is stdout (the tables, or `--json`), under the rule of `out`; when stdout
//! fails mid-way the lab stops printing but still measures and writes the report files, then
//! ends with that error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use triad_lab::report::text::Style;
use triad_lab::report::{self, text};
use triad_lab::{
    Config, Experiment, ExperimentReport, LabError, Machine, Observer, PythonChoice, Scale,
};

use crate::cli::{LabArgs, PythonArg};
use crate::out::{self, OutputError, Stream};
use crate::usage::BadArgument;

const TABLES: &str = "the lab's tables";

pub(crate) fn lab(args: LabArgs) -> anyhow::Result<ExitCode> {
    let config = Config {
        scale: if args.toy {
            Scale::Toy
        } else if args.full {
            Scale::Full
        } else {
            Scale::Quick
        },
        only: args.only.clone(),
        python: match args.python {
            PythonArg::Auto => PythonChoice::Auto,
            PythonArg::On => PythonChoice::On,
            PythonArg::Off => PythonChoice::Off,
        },
    };
    triad_lab::select(&config)?;
    if args.out.exists() && !args.out.is_dir() {
        return Err(BadArgument(format!(
            "--out {} is a file, not a directory: give a directory for results.json, report.md \
             and index.html (it is created if missing)",
            args.out.display()
        ))
        .into());
    }
    out::ensure_open(TABLES, Stream::Stdout)?;
    report::create_dir(&args.out)?;
    let style = Style {
        color: std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal(),
        width: (!args.verbose).then(terminal_width),
    };
    let mut terminal = Terminal {
        tables: !args.json,
        style,
        bar: None,
        write_error: None,
    };
    let report = triad_lab::run(&config, &mut terminal)?;
    let written = report::write_all(&report, &args.out)?;
    if let Some(error) = terminal.write_error {
        return Err(OutputError::new(TABLES, Stream::Stdout, error).into());
    }
    let mut stdout = std::io::stdout().lock();
    let printed = if args.json {
        serde_json::to_writer(&mut stdout, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(stdout))
    } else {
        print_summary(&mut stdout, &report, &written, &style)
    };
    printed
        .and_then(|()| stdout.flush())
        .map_err(OutputError::on(TABLES, Stream::Stdout))?;
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The widest a line may be: the terminal's width, or 100 columns when stdout is not one.
fn terminal_width() -> usize {
    terminal_size::terminal_size_of(std::io::stdout())
        .map_or(100, |(width, _)| usize::from(width.0))
        .max(40)
}

/// The end of the run: with `--verbose` every claim again; then the seed's tables measured, the
/// verdicts counted, and where the files are.
fn print_summary(
    out: &mut impl Write,
    report: &triad_lab::LabReport,
    written: &report::Written,
    style: &Style,
) -> std::io::Result<()> {
    if style.width.is_none() {
        writeln!(out, "Summary: the seed's claims on this machine")?;
        write!(out, "{}", text::table(&text::summary(report)))?;
    }
    let width = style.width.unwrap_or(usize::MAX);
    write!(out, "{}", text::seed_tables(report, width))?;
    for failure in &report.failures {
        writeln!(out, "  {} FAILED: {}", failure.id, failure.error)?;
    }
    write!(
        out,
        "{}",
        text::verdict_counts(report, style.color, width.min(100))
    )?;
    let dir = written
        .html
        .parent()
        .map_or_else(|| ".".into(), |dir| dir.display().to_string());
    // The directory on a line of its own: a path is never cut, and a long one stays apart.
    writeln!(
        out,
        "{} experiment(s) in {:.1} s. Wrote index.html, report.md and results.json to\n  {dir}",
        report.experiments.len(),
        report.elapsed_s,
    )
}

/// Shows the lab on the terminal: a bar on stderr per experiment, each table on stdout.
struct Terminal {
    tables: bool,
    style: Style,
    bar: Option<ProgressBar>,
    /// The first error writing to stdout (a closed pipe): the lab stops printing, then reports it.
    write_error: Option<std::io::Error>,
}

impl Terminal {
    fn print(&mut self, text: &str) {
        if !self.tables || self.write_error.is_some() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            self.write_error = Some(error);
        }
    }

    fn clear_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Terminal {
    fn begin(&mut self, machine: &Machine, notes: &[String]) {
        let mut header = String::from("triad lab\n");
        for line in machine.header_lines().iter().chain(notes) {
            header.push_str(&format!("  {line}\n"));
        }
        header.push('\n');
        self.print(&header);
    }

    fn started(&mut self, index: usize, count: usize, experiment: &dyn Experiment) {
        let bar = ProgressBar::new(1).with_style(
            ProgressStyle::with_template("{prefix} {wide_bar} {pos}/{len} {elapsed}")
                .expect("the template is valid"),
        );
        bar.set_prefix(format!("[{}/{count}] {}", index + 1, experiment.id()));
        bar.tick();
        self.bar = Some(bar);
    }

    fn progress(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn finished(&mut self, report: &ExperimentReport) {
        self.clear_bar();
        let block = format!("{}\n", text::experiment(report, &self.style));
        self.print(&block);
    }

    fn failed(&mut self, experiment: &dyn Experiment, error: &LabError) {
        self.clear_bar();
        out::diagnostic(&format!(
            "triad: experiment {} failed: {}\n",
            experiment.id(),
            out::one_line(error)
        ));
    }
}
