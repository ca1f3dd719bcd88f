//! The command line: every subcommand, flag and help text, defined once with clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use triad::Mode;

const EXAMPLES: &str = "\
Examples:
  triad lab
  triad lab --only cpu-bound,switch-cost --out report/
  triad run count_primes --mode threads:2 200000 200000 200000 200000
  triad run async_sleep_ms --mode async:1000 --repeat 10000 100
  triad run identity --mode threads --repeat 100000 1 --trace trace.json
  triad profile -- python3 job.py
  triad map --py transform.py:transform --output out.jsonl records.jsonl.gz
  triad stream --stream events --group loaders --sqlite events.db
  triad images resize=800x600 rotate=90 --out small/ photos/
  triad tasks";

/// Measure, choose and run concurrency: processes, threads and coroutines under one roof.
#[derive(Debug, Parser)]
#[command(name = "triad", version, about, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the seed's experiments on this machine, beside its claims and beside CPython
    #[command(after_help = "\
Examples:
  triad lab                              # quick: about 90 s on 2 cores
  triad lab --full --out full-report/    # bigger sizes, more repetitions: up to 10 min
  triad lab --only switch-cost,c10k --python off
  triad lab --json > results.json

Each experiment prints its table as soon as it is done; at the end DIR holds results.json (every
raw sample, schema triad-lab/2), report.md and a self-contained index.html with the charts.
Exit code 1 when an experiment failed (the others still run and are written).")]
    Lab(LabArgs),
    /// Run a built-in workload in any mode, time it and show its results
    #[command(after_help = "\
Examples:
  triad run count_primes --mode serial 100000 100000
  triad run count_primes --mode processes:2 --json 100000 100000
  triad run sleep_ms --mode async:100 --repeat 100 50
  triad run identity --mode threads:2 --chunk-size 1000 --repeat 1000000 7")]
    Run(RunArgs),
    /// Run a command and say whether it is CPU-bound, IO-bound or mixed, and what to run it with
    #[command(after_help = "\
Examples:
  triad profile -- python3 job.py --input data.csv
  triad profile --json -- ./build.sh
  triad profile --json-file profile.json -- make -j2
  triad profile --interval 10 --lang python -- python3 -m mypackage
  triad profile --repeat 3 -- python3 -m compileall -j 2 src/

The command keeps its own stdin, stdout and stderr; the report goes to stderr (with --json, one
JSON document on the last line of stdout; with --json-file, to that file). The exit code is the
command's own (128 + N after signal N); 127 when the command is not found, 126 when it cannot be
executed. When the command exits 0 but the report cannot be written: 141 for a closed pipe, else
1. With --repeat N the command runs N times (stopping at the first run that fails, whose code is
then the exit code): one line per run as it ends, then the last run's report and how many runs
agree.")]
    Profile(ProfileArgs),
    /// Pass records through a pool of workers in any language: in order, streaming, resumable
    #[command(after_help = MAP_HELP)]
    Map(MapArgs),
    /// Process messages from Redis (pub/sub or a consumer group) into SQLite, a webhook or workers
    #[command(
        after_help = STREAM_HELP,
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true
    )]
    Stream(Box<StreamArgs>),
    /// Resize, rotate, crop, filter and convert images on every core; bad files fail alone
    #[command(after_help = crate::images::HELP)]
    Images(crate::images::ImagesArgs),
    /// Crawl a site politely: continuous frontier, robots.txt, per-host limits, retries, resumable
    #[command(after_help = crate::crawl::HELP)]
    Crawl(Box<crate::crawl::CrawlArgs>),
    /// Serve a cluster queue on Redis Streams with a local process pool
    #[command(after_help = crate::cluster::WORKER_HELP)]
    Worker(crate::cluster::WorkerArgs),
    /// The cluster's workers, queue and dead letters
    Cluster(crate::cluster::ClusterArgs),
    /// List the built-in workloads and every task registered in this binary
    Tasks(TasksArgs),
}

const MAP_HELP: &str = "\
Examples:
  triad map --py transform.py:transform --output out.jsonl records.jsonl.gz
  triad map --cmd 'python3 double.py' --workers 4 --errors failed.jsonl records.jsonl
  triad map --format csv --py clean.py:row --output clean.csv people.csv
  triad map --format lines --cmd 'tr a-z A-Z' < words.txt | head
  triad map --task seed-transform --output out.jsonl --resume records.jsonl

The worker contract (--cmd), as Hadoop Streaming's: the program reads one record per line on
stdin and writes exactly one result line per input line on stdout, in order, and goes on until
stdin ends. triad sends several records per write and line-buffers the program's stdout
(PYTHONUNBUFFERED=1, and coreutils' stdbuf -oL when it is installed); a program that buffers
its output otherwise must flush after each line. With --format jsonl or csv every result line
must be JSON (a JSON object for csv). Its stderr is passed through as [worker N] lines.

  # double.py, for --cmd 'python3 double.py'
  import json, sys
  for line in sys.stdin:
      record = json.loads(line)
      record['value'] *= 2
      print(json.dumps(record), flush=True)

  # a shell worker, for --format lines
  triad map --format lines --cmd 'while read -r line; do echo \"${#line} $line\"; done'

--py FILE:FUNC calls FUNC(record) on each decoded record (a dict for jsonl and csv, a str for
lines) in persistent python3 workers; what it returns is the result; if it raises, that record
fails. --task NAME runs a Rust map task (identity, seed-transform) on threads, or with
--processes in worker processes.

A record that fails (its worker died or timed out on it, its result is not valid JSON, its
function raised) runs again up to --retries times, then goes to --errors FILE as a JSON line
(record, input, line, reason, the worker's last stderr lines); it never reaches the output and
is never dropped. Malformed input lines go there too, with their line numbers.

--resume continues a run that was stopped (Ctrl-C, SIGTERM, SIGKILL, a power cut) where its
output ends: the output is only appended to, in order, and OUTPUT.checkpoint beside it says how
many records are done; every record appears in the output exactly once.

Exit code: 0 every record succeeded; 1 some failed (the summary says how many; a resumed run
counts the failures of its earlier part too) or the run could not finish; 2 the command line
is wrong (a missing program, module or input); 130 or 143 when stopped by SIGINT or SIGTERM
(after writing what was in flight and a checkpoint); 141 when the output's reader went away.";

const STREAM_HELP: &str = "\
Examples:
  triad stream --stream events --group loaders --sqlite events.db --metrics 127.0.0.1:9464
  triad stream --channel news --channel alerts --webhook http://127.0.0.1:8080/hook
  triad stream --stream events --exec 'python3 handle.py' --exec-workers 4
  triad stream --stream events --wait-ms 10,20 --concurrency 1000    # the seed's handler
  triad stream produce --stream events --rate 5000 --count 100000 --size 200

Pub/sub (--channel, --pattern) is at-most-once: Redis keeps nothing for a subscriber that is not
listening, and what is in flight when the processor dies is lost. A bounded buffer (--buffer)
stands before the handlers; what overflows it is counted as dropped.

A stream with a consumer group (--stream, --group) is at-least-once: an entry is acknowledged
(XACK) only after the sinks committed it. A consumer first takes back its own pending entries,
claims (XAUTOCLAIM) entries that stayed pending past --claim-idle-ms, and sends an entry
delivered more than --max-deliveries times to the dead-letter stream (default STREAM:dead) with
the reason. Run several processes with one --group to share a stream. The group, when missing,
is made at the stream's start.

A message is the entry's `data` field (else its fields as a JSON object), or the published
payload. It must be JSON for --sqlite, --webhook and --exec, and at most --max-size bytes; one
that is not goes to the dead letters at once. SQLite (the default sink, triad-stream.db) stores
each message under its id, in one transaction per --batch-ms: a message delivered again changes
nothing. The webhook gets a POST of the JSON, retried with backoff. An --exec worker reads one
JSON message per line on stdin and writes one line per message on stdout, in order, flushing as
it goes; a worker that exits or hangs is started again, and what it did not answer is delivered
again (streams) or counted as failed (pub/sub). The steps run in that order: waits, SQLite,
webhook, exec.

At most --concurrency messages are in flight; a stream is read only as far as there is room.
Redis going away is waited out. SIGINT or SIGTERM stops the reading, lets what is in flight
finish, commit and be acknowledged, and exits 0. Exit code 1 when Redis refuses the source for
good, 2 for a command line that cannot work.";

#[derive(Debug, Args)]
pub(crate) struct StreamArgs {
    #[command(subcommand)]
    pub(crate) command: Option<StreamCommand>,
    #[command(flatten)]
    pub(crate) run: StreamRunArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum StreamCommand {
    /// Send timestamped JSON messages to a stream or a channel, at a rate or as fast as Redis takes them
    Produce(ProduceArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true).args(["channel", "pattern", "stream"])))]
pub(crate) struct StreamRunArgs {
    /// The Redis server
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    pub(crate) redis: String,
    /// A pub/sub channel to subscribe to (repeatable)
    #[arg(long, value_name = "NAME", conflicts_with = "stream")]
    pub(crate) channel: Vec<String>,
    /// A pub/sub pattern to subscribe to (repeatable)
    #[arg(long, value_name = "GLOB", conflicts_with = "stream")]
    pub(crate) pattern: Vec<String>,
    /// A stream to read through a consumer group
    #[arg(long, value_name = "KEY")]
    pub(crate) stream: Option<String>,
    /// The consumer group
    #[arg(
        long,
        value_name = "NAME",
        default_value = "triad",
        requires = "stream"
    )]
    pub(crate) group: String,
    /// This consumer's name in the group (default: HOST-PID)
    #[arg(long, value_name = "NAME", requires = "stream")]
    pub(crate) consumer: Option<String>,
    /// Messages in flight at most
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) concurrency: u64,
    /// Pub/sub: messages buffered before the handlers (the overflow is dropped, and counted)
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) buffer: u64,
    /// The SQLite database (default, when neither --webhook nor --exec is given: triad-stream.db)
    #[arg(long, value_name = "FILE")]
    pub(crate) sqlite: Option<PathBuf>,
    /// The SQLite table
    #[arg(long, value_name = "NAME", default_value = "messages")]
    pub(crate) table: String,
    /// POST each message's JSON here
    #[arg(long, value_name = "URL")]
    pub(crate) webhook: Option<String>,
    /// A worker command run by `sh -c`, fed one JSON message per line; each line it answers
    /// completes the next message (triad map --cmd's protocol)
    #[arg(long, value_name = "CMD")]
    pub(crate) exec: Option<String>,
    /// How many --exec workers run
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub(crate) exec_workers: u64,
    /// Milliseconds one SQLite transaction gathers rows
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) batch_ms: u64,
    /// Waits before the sinks, in milliseconds, comma-separated (the seed's handler: 10,20)
    #[arg(long, value_name = "MS,...", value_delimiter = ',')]
    pub(crate) wait_ms: Vec<u64>,
    /// The dead-letter stream (default for a group: STREAM:dead; pub/sub: counted only)
    #[arg(long, value_name = "KEY")]
    pub(crate) dead_letter: Option<String>,
    /// Deliveries of one entry before it goes to the dead letters
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) max_deliveries: u64,
    /// Milliseconds an entry stays pending before it may be claimed
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub(crate) claim_idle_ms: u64,
    /// The largest message taken, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub(crate) max_size: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<std::net::SocketAddr>,
    /// Stop (as on SIGTERM) after this many seconds
    #[arg(long, value_name = "SECS")]
    pub(crate) duration: Option<f64>,
    /// Print the final summary as one JSON document on stdout
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["channel", "stream"])))]
pub(crate) struct ProduceArgs {
    /// The Redis server
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    pub(crate) redis: String,
    /// PUBLISH to this channel
    #[arg(long, value_name = "NAME")]
    pub(crate) channel: Option<String>,
    /// XADD to this stream (the payload in the `data` field)
    #[arg(long, value_name = "KEY")]
    pub(crate) stream: Option<String>,
    /// Messages per second (default: as fast as Redis takes them)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rate: Option<u64>,
    /// How many messages
    #[arg(long)]
    pub(crate) count: u64,
    /// Bytes per payload (padded JSON)
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub(crate) size: usize,
    /// The first sequence number (`seq` in the payload)
    #[arg(long, default_value_t = 0)]
    pub(crate) first: u64,
    /// Print the summary as one JSON document on stdout
    #[arg(long)]
    pub(crate) json: bool,
}

/// How `triad map` reads and writes records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FormatArg {
    /// One JSON value per line
    Jsonl,
    /// A header row, then records (as JSON objects to the workers)
    Csv,
    /// Raw text, one record per line
    Lines,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("transform").required(true).args(["cmd", "py", "task"])))]
pub(crate) struct MapArgs {
    /// A shell command: one record per line in, one result line out (see the contract below)
    #[arg(long, value_name = "COMMAND")]
    pub(crate) cmd: Option<String>,
    /// A Python function, FILE:FUNC, called on each decoded record
    #[arg(long, value_name = "FILE:FUNC")]
    pub(crate) py: Option<String>,
    /// A Rust map task registered in this binary (identity, seed-transform)
    #[arg(long, value_name = "NAME")]
    pub(crate) task: Option<String>,
    /// With --task: run it in worker processes instead of threads
    #[arg(long, requires = "task")]
    pub(crate) processes: bool,
    /// With --task: spread the batches over the `triad worker`s of this Redis (the cluster)
    #[arg(
        long,
        value_name = "URL",
        requires = "task",
        conflicts_with = "processes"
    )]
    pub(crate) redis: Option<String>,
    /// With --redis: the cluster queue
    #[arg(
        long,
        value_name = "NAME",
        default_value = "default",
        requires = "redis"
    )]
    pub(crate) queue: String,
    /// How many workers (default: one per core)
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub(crate) workers: Option<u64>,
    /// How records are written, in the input and the output
    #[arg(long, value_enum, default_value = "jsonl")]
    pub(crate) format: FormatArg,
    /// Records per batch sent to a worker (default: as many as keep a worker busy about 5 ms)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) batch: Option<u64>,
    /// Write results as they finish, not in input order
    #[arg(long)]
    pub(crate) unordered: bool,
    /// Where records that failed go, as JSON lines (without it: one line each on stderr)
    #[arg(long, value_name = "FILE")]
    pub(crate) errors: Option<PathBuf>,
    /// Continue a stopped run where its --output ends
    #[arg(long, requires = "output")]
    pub(crate) resume: bool,
    /// Seconds one record may take before its worker is replaced and the record fails
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<f64>,
    /// Runs again of a record that failed
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub(crate) retries: u32,
    /// The output file (default: standard output)
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Print the summary as one JSON document on stderr
    #[arg(long)]
    pub(crate) json: bool,
    /// Input files (.gz too); none or `-` is standard input
    #[arg(value_name = "INPUT")]
    pub(crate) inputs: Vec<PathBuf>,
}

/// The language of a profiled program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LangArg {
    /// Tell from the executable's name
    Auto,
    /// CPython (threads share one GIL)
    Python,
    /// Compiled code (threads run in parallel)
    Native,
}

#[derive(Debug, Args)]
pub(crate) struct ProfileArgs {
    /// Sampling interval in milliseconds
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) interval: u64,
    /// Print one JSON document (the last line of stdout, on a line of its own) instead of the
    /// text report
    #[arg(long)]
    pub(crate) json: bool,
    /// Write the JSON document to this file instead (the command's stdout is left alone)
    #[arg(long, value_name = "FILE")]
    pub(crate) json_file: Option<PathBuf>,
    /// The program's language, for the advice
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) lang: LangArg,
    /// Run the command this many times and report each run's verdict and their agreement
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub(crate) repeat: u64,
    /// The command to run, after `--`
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The workload to run (see `triad tasks`)
    pub(crate) workload: String,
    /// The inputs, one task each (for example a limit or a number of milliseconds)
    #[arg(required = true, value_name = "INPUT")]
    pub(crate) inputs: Vec<u64>,
    /// How to run: serial, threads:N, processes:N (N defaults to one per core) or async:N (N in flight)
    #[arg(long, short, default_value = "serial")]
    pub(crate) mode: Mode,
    /// Run the list of inputs this many times over
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) repeat: u64,
    /// Send inputs to thread workers this many at a time
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) chunk_size: Option<u64>,
    /// Write a Chrome trace (Perfetto, chrome://tracing) of every task's span to this file
    #[arg(long, value_name = "FILE")]
    pub(crate) trace: Option<PathBuf>,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// Whether to run the CPython baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PythonArg {
    /// When python3 is found
    Auto,
    /// Always (a missing python3 is an error)
    On,
    /// Never
    Off,
}

#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// Small sizes, about 90 s on 2 cores (the default)
    #[arg(long, conflicts_with_all = ["full", "toy"])]
    pub(crate) quick: bool,
    /// Larger sizes and more repetitions, up to 10 minutes
    #[arg(long, conflicts_with = "toy")]
    pub(crate) full: bool,
    /// The smallest sizes, for tests: seconds, and the numbers mean little
    #[arg(long, hide = true)]
    pub(crate) toy: bool,
    /// Run only these experiments (comma separated ids, see the list below)
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub(crate) only: Option<Vec<String>>,
    /// Run the CPython baselines beside Rust's figures
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) python: PythonArg,
    /// Where to write results.json, report.md and index.html
    #[arg(long, value_name = "DIR", default_value = "triad-report")]
    pub(crate) out: PathBuf,
    /// Print results.json on stdout (one line) instead of the tables
    #[arg(long)]
    pub(crate) json: bool,
    /// Print every claim's full evidence, the notes and every claim again at the end, in lines
    /// as long as they need (by default lines fit the terminal, or 100 columns)
    #[arg(long, short)]
    pub(crate) verbose: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TasksArgs {
    /// Print one JSON document instead of text
    #[arg(long)]
    pub(crate) json: bool,
}
