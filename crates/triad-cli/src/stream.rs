//! `triad stream` and `triad stream produce`: turn the flags into `triad_stream`'s options,
//! say at start what the run promises (at-most-once or at-least-once), keep a live status line
//! on a terminal, stop cleanly on SIGINT or SIGTERM (a second one ends at once), and print the
//! summary: text on stderr, or one JSON document on stdout.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use triad_stream::{
    Metrics, ProduceOptions, SinkSpec, Snapshot, Source, SqliteSpec, StreamOptions, Target,
};

use crate::cli::{ProduceArgs, StreamArgs, StreamCommand, StreamRunArgs};
use crate::out::{self, OutputError, Stream};

const SUMMARY: &str = "the summary";

pub(crate) fn stream(args: StreamArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(StreamCommand::Produce(produce)) => self::produce(&produce),
        None => run(&args.run),
    }
}

/// A flag set on SIGINT and SIGTERM; a second signal ends the process at once (130).
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}

fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}", std::process::id())
}

fn options(args: &StreamRunArgs, stop: Arc<AtomicBool>) -> StreamOptions {
    let source = match &args.stream {
        Some(stream) => Source::Group {
            stream: stream.clone(),
            group: args.group.clone(),
            consumer: args.consumer.clone().unwrap_or_else(consumer_name),
        },
        None => Source::PubSub {
            channels: args.channel.clone(),
            patterns: args.pattern.clone(),
        },
    };
    let sqlite = match (&args.sqlite, args.webhook.is_some() || args.exec.is_some()) {
        (Some(path), _) => Some(path.clone()),
        (None, false) => Some("triad-stream.db".into()),
        (None, true) => None,
    };
    let mut options = StreamOptions::new(args.redis.clone(), source);
    options.concurrency = args.concurrency as usize;
    options.buffer = args.buffer as usize;
    options.sinks = SinkSpec {
        waits: args
            .wait_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
        sqlite: sqlite.map(|path| SqliteSpec {
            path,
            table: args.table.clone(),
            batch: Duration::from_millis(args.batch_ms),
        }),
        webhook: args.webhook.clone(),
        exec: args.exec.clone(),
        exec_workers: args.exec_workers as usize,
    };
    options.dead_letter.clone_from(&args.dead_letter);
    options.max_deliveries = args.max_deliveries;
    options.claim_idle = Duration::from_millis(args.claim_idle_ms);
    options.max_size = args.max_size;
    options.metrics_address = args.metrics;
    options.stop = stop;
    options
}

fn run(args: &StreamRunArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        out::ensure_open(SUMMARY, Stream::Stdout)?;
    }
    let stop = stop_on_signals()?;
    let mut options = options(args, stop.clone());
    let mut start_lines = format!("triad stream: {}\n", options.describe());
    if let Some(address) = options.metrics_address {
        start_lines.push_str(&format!(
            "triad stream: metrics at http://{address}/metrics\n"
        ));
    }
    let (ready, started) = std::sync::mpsc::channel();
    options.ready = Some(ready);
    let metrics = options.metrics.clone();
    let (finished, wait) = std::sync::mpsc::channel::<()>();
    let ticker = {
        let stop = stop.clone();
        let duration = args.duration.map(Duration::from_secs_f64);
        let bar = status_bar();
        std::thread::spawn(move || {
            let watching = Watching {
                metrics: &metrics,
                bar: &bar,
                stop: &stop,
                duration,
                start_lines: &start_lines,
                started: &started,
                finished: &wait,
            };
            watching.watch();
        })
    };
    let outcome = triad_stream::run(options);
    drop(finished);
    let _ = ticker.join();
    let summary = outcome?;
    if args.json {
        let document = serde_json::json!({
            "metrics": summary.metrics,
            "unacknowledged": summary.unacknowledged,
            "reasons": summary.reasons,
            "wall_seconds": summary.wall.as_secs_f64(),
        });
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{document}")
            .and_then(|()| stdout.flush())
            .map_err(OutputError::on(SUMMARY, Stream::Stdout))?;
    } else {
        let m = &summary.metrics;
        let mut text = format!(
            "triad stream: {} received, {} committed, {} failed, {} dead-lettered, {} dropped, \
             {} redelivered in {:.1} s; latency p50 {}, p99 {}, max {}\n",
            m.received,
            m.committed,
            m.failed,
            m.dead_lettered,
            m.dropped,
            m.redelivered,
            summary.wall.as_secs_f64(),
            millis(m.latency_p50),
            millis(m.latency_p99),
            millis(m.latency_max),
        );
        if summary.unacknowledged > 0 {
            text.push_str(&format!(
                "triad stream: {} acknowledgements could not reach Redis: those entries will be \
                 delivered again (the SQLite sink makes that a no-op)\n",
                summary.unacknowledged
            ));
        }
        for reason in &summary.reasons {
            text.push_str(&format!("  {reason}\n"));
        }
        out::diagnostic(&text);
    }
    Ok(ExitCode::SUCCESS)
}

fn millis(seconds: f64) -> String {
    format!("{:.1} ms", seconds * 1e3)
}

/// The status line's bar: on a terminal only.
fn status_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("the template is valid"));
    bar
}

/// The status line's thread: what it watches and what it is told.
struct Watching<'a> {
    metrics: &'a Metrics,
    bar: &'a ProgressBar,
    stop: &'a AtomicBool,
    duration: Option<Duration>,
    start_lines: &'a str,
    started: &'a std::sync::mpsc::Receiver<()>,
    finished: &'a std::sync::mpsc::Receiver<()>,
}

impl Watching<'_> {
    /// Prints the start lines once the run is ready, then updates the status line every
    /// second until the run ends; sets `stop` once `duration` has passed.
    fn watch(&self) {
        let started = Instant::now();
        let mut before = self.metrics.snapshot();
        let mut last = Instant::now();
        let mut announced = false;
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            self.finished.recv_timeout(Duration::from_millis(100))
        {
            if !announced && self.started.try_recv().is_ok() {
                announced = true;
                self.bar.suspend(|| out::diagnostic(self.start_lines));
            }
            if self
                .duration
                .is_some_and(|duration| started.elapsed() >= duration)
            {
                self.stop.store(true, Ordering::SeqCst);
            }
            if last.elapsed() >= Duration::from_secs(1) {
                let now = self.metrics.snapshot();
                self.bar.set_message(status(&before, &now, last.elapsed()));
                self.bar.tick();
                before = now;
                last = Instant::now();
            }
        }
        if !announced && self.started.try_recv().is_ok() {
            out::diagnostic(self.start_lines);
        }
        self.bar.finish_and_clear();
    }
}

/// `in 1234/s, out 1230/s, in flight 45, pending 100, dropped 0, dead 0, p50 31.0 ms, p99 45.0 ms`.
fn status(before: &Snapshot, now: &Snapshot, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    format!(
        "in {:.0}/s, out {:.0}/s, in flight {}, pending {}, dropped {}, dead {}, p50 {}, p99 {}",
        (now.received - before.received) as f64 / seconds,
        (now.committed - before.committed) as f64 / seconds,
        now.in_flight,
        now.pending,
        now.dropped,
        now.dead_lettered,
        millis(now.latency_p50),
        millis(now.latency_p99),
    )
}

fn produce(args: &ProduceArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        out::ensure_open(SUMMARY, Stream::Stdout)?;
    }
    let target = match (&args.stream, &args.channel) {
        (Some(stream), _) => Target::Stream(stream.clone()),
        (None, Some(channel)) => Target::Channel(channel.clone()),
        (None, None) => unreachable!("clap requires --stream or --channel"),
    };
    let options = ProduceOptions {
        redis: args.redis.clone(),
        target: target.clone(),
        rate: args.rate,
        count: args.count,
        size: args.size,
        first: args.first,
        stop: stop_on_signals()?,
    };
    let summary = triad_stream::produce(&options)?;
    if args.json {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", serde_json::json!(summary))
            .and_then(|()| stdout.flush())
            .map_err(OutputError::on(SUMMARY, Stream::Stdout))?;
    } else {
        let (kind, name) = match &target {
            Target::Stream(key) => ("stream", key),
            Target::Channel(channel) => ("channel", channel),
        };
        let mut line = format!(
            "triad stream produce: {} messages to {kind} {name} in {:.2} s ({:.0}/s)",
            summary.sent,
            summary.seconds,
            summary.sent as f64 / summary.seconds.max(1e-6)
        );
        if matches!(target, Target::Channel(_)) {
            line.push_str(&format!(
                ", {} deliveries to subscribers",
                summary.deliveries
            ));
        }
        out::diagnostic(&format!("{line}\n"));
    }
    Ok(ExitCode::SUCCESS)
}
