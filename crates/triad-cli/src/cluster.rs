//! `triad worker` (serve a queue with a local process pool until SIGINT or SIGTERM, then
//! finish what it holds) and `triad cluster status` (the workers, the queue, the dead letters),
//! as text or JSON.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, Subcommand};
use triad_cluster::worker::{WorkerOptions, serve};

use crate::out::{OutputError, Stream};

pub(crate) const WORKER_HELP: &str = "\
Examples:
  triad worker --redis redis://10.0.0.5:6379                 # one worker process per core
  triad worker --redis redis://10.0.0.5:6379 --workers 8 --queue images --lease 60

Runs the tasks registered in this binary (`triad tasks` lists them) that clients send to the
queue (triad_cluster::Cluster), on a local process pool. It reads chunks only as it has room
for them (two per worker process), answers each on its client's reply stream and acknowledges
it in one transaction, keeps the leases of what it runs fresh, and takes over chunks idle past
--lease from workers that died or were stopped. A chunk whose worker process died is tried
again; past the client's retries it goes to the dead letters (triad:{QUEUE}:dead) with the
reason. A task this binary lacks, or has with another signature, is answered with that error.
A heartbeat (triad:{QUEUE}:worker:HOST:PID) lets `triad cluster status` see it.

SIGINT or SIGTERM stops reading; what is running finishes and is answered; exit code 0.";

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// The Redis server
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    pub(crate) redis: String,
    /// Worker processes in the local pool (default: one per core)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub(crate) workers: Option<u64>,
    /// The queue to serve
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub(crate) queue: String,
    /// Seconds a chunk may sit idle with another worker before this one takes it over
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub(crate) lease: f64,
    /// This worker's name in the group (default HOST:PID)
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    pub(crate) command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// The workers alive (hosts, load), the queue's depth, what is pending, the dead letters
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The Redis server
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    pub(crate) redis: String,
    /// The queue
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub(crate) queue: String,
    /// One JSON document
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    if !(args.lease.is_finite() && args.lease > 0.0) {
        return Err(crate::usage::BadArgument(format!(
            "--lease must be above 0 seconds, not {}",
            args.lease
        ))
        .into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let options = WorkerOptions {
        url: args.redis,
        queue: args.queue,
        workers: args
            .workers
            .map_or_else(triad::mode::available_cores, |n| n as usize),
        lease: Duration::from_secs_f64(args.lease),
        name: args.name,
    };
    let report = serve(options, stop)?;
    crate::out::diagnostic(&format!(
        "triad worker: {} tasks in {} chunks answered; {} chunks taken over, {} dead-lettered\n",
        report.tasks, report.chunks, report.claimed, report.dead_letters
    ));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn cluster(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    let ClusterCommand::Status(args) = args.command;
    let status = triad_cluster::status::status(&args.redis, &args.queue)?;
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer(&mut out, &status)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        (|| {
            writeln!(
                out,
                "queue {}: {} chunks queued, {} pending, {} dead letters; {} workers",
                status.queue,
                status.depth,
                status.pending,
                status.dead_letters,
                status.workers.len()
            )?;
            for w in &status.workers {
                writeln!(
                    out,
                    "  {:<28} host {:<16} {} processes, {} tasks running, {} done, {} dead-lettered",
                    w.name, w.host, w.workers, w.running, w.done, w.dead_letters
                )?;
            }
            Ok(())
        })()
    };
    written
        .and_then(|()| out.flush())
        .map_err(OutputError::on("the status", Stream::Stdout))?;
    Ok(ExitCode::SUCCESS)
}
