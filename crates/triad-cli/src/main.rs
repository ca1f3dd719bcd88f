//! The `triad` command. This crate only parses arguments, calls the libraries and prints; the
//! work lives in the `triad`, `triad-lab` and `triad-profile` crates.

mod cli;
mod lab;
mod output;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    // First, before anything with effects: a worker process of `--mode processes` is this
    // binary re-executed, and stops here to serve tasks.
    triad::init();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let outcome = match cli.command {
        cli::Command::Lab(args) => lab::lab(args),
        cli::Command::Run(args) => output::run(args),
        cli::Command::Profile(args) => output::profile(args),
        cli::Command::Tasks(args) => output::tasks(args),
    };
    match outcome {
        Ok(code) => code,
        // A reader that stopped reading (`triad … | head`) is not a failure of ours.
        Err(error) if output::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("triad: error: {error:#}");
            ExitCode::from(output::exit_code(&error))
        }
    }
}

/// Prints help and version as clap does; folds any other parse error into one line, exit code 2.
fn usage_error(error: clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    let rendered = error.render().to_string();
    let summary: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("error:") || line.starts_with("tip:"))
        .collect();
    eprintln!("triad: {} (see triad --help)", summary.join("; "));
    ExitCode::from(2)
}
