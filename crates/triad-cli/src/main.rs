//! The `triad` command. This crate only parses arguments, calls the libraries and prints; the
//! work lives in the `triad`, `triad-lab`, `triad-profile`, `triad-map`, `triad-stream` and
//! `triad-images`, `triad-crawl` and `triad-cluster` crates.
//!
//! # Layout
//!
//! - `cli`: every subcommand, flag and help text (clap).
//! - `usage`: a command-line error folded into one line that keeps its substance.
//! - `out`: the one rule for a failed write of a main output, and one-line error reports.
//! - `run`, `profile`, `lab`, `map`, `stream`, `images`, `crawl`, `cluster`: what each subcommand prints, as text
//!   or JSON.

mod cli;
mod cluster;
mod crawl;
mod images;
mod lab;
mod map;
mod out;
mod profile;
mod progress;
mod run;
mod stream;
mod usage;

use std::process::ExitCode;

fn main() -> ExitCode {
    // First, before anything with effects: a worker process of `--mode processes` is this
    // binary re-executed, and stops here to serve tasks.
    triad::init();
    let cli = match usage::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let outcome = match cli.command {
        cli::Command::Lab(args) => lab::lab(args),
        cli::Command::Run(args) => run::run(args),
        cli::Command::Profile(args) => profile::profile(args),
        cli::Command::Map(args) => map::map(args),
        cli::Command::Stream(args) => stream::stream(*args),
        cli::Command::Images(args) => images::images(args),
        cli::Command::Crawl(args) => crawl::crawl(*args),
        cli::Command::Worker(args) => cluster::worker(args),
        cli::Command::Cluster(args) => cluster::cluster(args),
        cli::Command::Tasks(args) => run::tasks(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            out::report(&error);
            ExitCode::from(exit_code(&error))
        }
    }
}

/// Exit code for an error: 2 when the user asked for something that does not exist or an
/// input out of range; 141 or 1 when the main output failed (see `out`); 127 and 126 when a
/// profiled command is not found or cannot be executed (as a shell says); else 1.
fn exit_code(error: &anyhow::Error) -> u8 {
    if error
        .downcast_ref::<triad::workloads::UnknownWorkload>()
        .is_some()
        || error
            .downcast_ref::<triad::workloads::InputOutOfRange>()
            .is_some()
        || matches!(
            error.downcast_ref::<triad_lab::LabError>(),
            Some(triad_lab::LabError::UnknownExperiment { .. })
        )
        || error.downcast_ref::<usage::BadArgument>().is_some()
        || error
            .downcast_ref::<triad_map::MapError>()
            .is_some_and(triad_map::MapError::is_usage)
        || error
            .downcast_ref::<triad_stream::StreamError>()
            .is_some_and(triad_stream::StreamError::is_usage)
        || error
            .downcast_ref::<triad_images::ImagesError>()
            .is_some_and(triad_images::ImagesError::is_usage)
        || error
            .downcast_ref::<triad_crawl::CrawlError>()
            .is_some_and(triad_crawl::CrawlError::is_usage)
    {
        return 2;
    }
    if let Some(code) = error
        .downcast_ref::<triad_map::MapError>()
        .and_then(map::exit_code)
    {
        return code;
    }
    if let Some(output) = error.downcast_ref::<out::OutputError>() {
        return output.exit_code();
    }
    match error.downcast_ref::<triad_profile::RunError>() {
        Some(run_error) => u8::try_from(run_error.exit_code()).unwrap_or(1),
        None => 1,
    }
}
