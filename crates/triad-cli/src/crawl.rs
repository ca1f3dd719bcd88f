//! `triad crawl`: turns the flags into a `triad_crawl::Config`, stops cleanly on SIGINT or
//! SIGTERM (a second one ends at once), shows a progress line on a terminal, and prints the
//! summary — to stdout when the pages go to `--output`, else to stderr — as text or JSON.
//!
//! Exit code: 0 when the crawl reached its end or its limits (pages that failed are lines of
//! the output, not a failure of the crawl); 1 when not one page could be fetched, or the
//! output or `--save` failed; 2 for a command line that cannot work; 130 or 143 after a
//! signal, once the pages in flight are written and the `--resume` state is saved.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use triad_crawl::{Config, CrawlError, Progress, Scope, Stop, Summary};

use crate::out::{self, OutputError, Stream};

pub(crate) const HELP: &str = "\
Examples:
  triad crawl http://127.0.0.1:8000/ --max-pages 1000 --output pages.jsonl
  triad crawl http://127.0.0.1:8000/docs/ --scope prefix --depth 3 --exclude '\\.pdf$'
  triad crawl http://127.0.0.1:8000/ --per-host 2 --delay 250 --resume crawl.state -o pages.jsonl
  triad crawl --resume crawl.state -o pages.jsonl          # go on after Ctrl-C or a kill

The frontier is continuous: a new fetch starts as soon as any ends, at most --concurrency in
all and --per-host for one host (host:port), which also waits --delay between two starts
(robots.txt's Crawl-delay, if longer). robots.txt is fetched once per host and obeyed (a host
that cannot serve it is not crawled, as RFC 9309 says). Connect errors, timeouts, 429 and 5xx
are retried with exponential backoff and jitter, or after the server's Retry-After. Redirects
are followed up to 10, a loop reported. Bodies past --max-bytes are cut off (and flagged).

Links come from <a>, <area>, <base> and <link rel=next|prev> by an HTML5 tokenizer (not from
comments or scripts), resolved and normalised (scheme and host lowercased, default port,
fragment and dot segments dropped), then deduplicated; mailto:, javascript: and the like are
counted and skipped. Only HTML (by Content-Type, or sniffed) is parsed.

One JSON line per page: url, final_url, status, depth, parent, content_type, bytes,
truncated, fetch_ms, attempts, redirects, title, links, new_links, sha256 (--save), error.
--save DIR keeps bodies under DIR/ab/cdef... by SHA-256.

SIGINT or SIGTERM stops new fetches, lets those in flight finish and writes them; with
--resume STATE the frontier and the seen set are saved, and a run with the same STATE (and
--output) goes on without fetching a page again — after a SIGKILL too.";

#[derive(Debug, Args)]
pub(crate) struct CrawlArgs {
    /// Start URLs (none when resuming: the state's)
    #[arg(value_name = "URL")]
    pub(crate) urls: Vec<String>,
    /// Pages to fetch at most (over all runs of one --resume state)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_pages: Option<u64>,
    /// Links to follow from a start URL at most
    #[arg(long, value_name = "D", value_parser = clap::value_parser!(u16))]
    pub(crate) depth: Option<u16>,
    /// Fetches in flight at most
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) concurrency: u64,
    /// Fetches in flight per host at most
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) per_host: u64,
    /// Milliseconds between two fetch starts on one host
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub(crate) delay: u64,
    /// Which links are followed: host (the start URLs' host:port), domain (and subdomains),
    /// prefix (under the start URL's directory), any
    #[arg(long, default_value = "host", value_parser = ["host", "domain", "prefix", "any"])]
    pub(crate) scope: String,
    /// Follow only links matching this regular expression (repeatable)
    #[arg(long, value_name = "RE")]
    pub(crate) include: Vec<String>,
    /// Do not follow links matching this regular expression (repeatable)
    #[arg(long, value_name = "RE")]
    pub(crate) exclude: Vec<String>,
    /// Attempts after the first
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub(crate) retries: u32,
    /// Seconds each attempt may take (connect, headers and body)
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub(crate) timeout: f64,
    /// Bodies are cut off past this size (suffixes K, M, G)
    #[arg(long, value_name = "BYTES", default_value = "10M", value_parser = crate::images::parse_bytes)]
    pub(crate) max_bytes: u64,
    /// The User-Agent (its product name is what robots.txt is matched on)
    #[arg(long, value_name = "S")]
    pub(crate) user_agent: Option<String>,
    /// Neither fetch nor obey robots.txt
    #[arg(long)]
    pub(crate) ignore_robots: bool,
    /// Do not follow links marked rel=nofollow
    #[arg(long)]
    pub(crate) respect_nofollow: bool,
    /// Sort query parameters when normalising URLs
    #[arg(long)]
    pub(crate) sort_query: bool,
    /// Write the page lines here (default: standard output)
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Save bodies here, by SHA-256
    #[arg(long, value_name = "DIR")]
    pub(crate) save: Option<PathBuf>,
    /// The resume state: saved on a stop, continued from when it exists (needs --output)
    #[arg(long, value_name = "STATE")]
    pub(crate) resume: Option<PathBuf>,
    /// Print the summary as one JSON document
    #[arg(long)]
    pub(crate) json: bool,
}

fn config(args: &CrawlArgs) -> Result<Config, CrawlError> {
    let usage = |m: String| CrawlError::Config(m);
    let patterns = |list: &[String], flag: &str| {
        list.iter()
            .map(|p| triad_crawl::Regex::new(p).map_err(|e| usage(format!("{flag} {p:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()
    };
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(usage(format!(
            "--timeout must be above 0 seconds, not {}",
            args.timeout
        )));
    }
    let defaults = Config::default();
    Ok(Config {
        starts: args.urls.clone(),
        max_pages: args.max_pages,
        max_depth: args.depth,
        concurrency: args.concurrency as usize,
        per_host: args.per_host as usize,
        delay: Duration::from_millis(args.delay),
        scope: args.scope.parse::<Scope>().map_err(usage)?,
        include: patterns(&args.include, "--include")?,
        exclude: patterns(&args.exclude, "--exclude")?,
        retries: args.retries,
        timeout: Duration::from_secs_f64(args.timeout),
        max_bytes: usize::try_from(args.max_bytes).unwrap_or(usize::MAX),
        user_agent: args
            .user_agent
            .clone()
            .unwrap_or(defaults.user_agent.clone()),
        ignore_robots: args.ignore_robots,
        respect_nofollow: args.respect_nofollow,
        sort_query: args.sort_query,
        output: args.output.clone(),
        save: args.save.clone(),
        resume: args.resume.clone(),
        ..defaults
    })
}

/// The first SIGINT or SIGTERM stops the crawl; a second ends the process at once.
fn stop_on_signals(stop: Stop) -> anyhow::Result<Arc<AtomicI32>> {
    let caught = Arc::new(AtomicI32::new(0));
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let seen = caught.clone();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if seen.swap(signal, Ordering::SeqCst) != 0 {
                std::process::exit(128 + signal);
            }
            stop.stop();
        }
    });
    Ok(caught)
}

pub(crate) fn crawl(args: CrawlArgs) -> anyhow::Result<ExitCode> {
    let summary_to = if args.output.is_some() {
        Stream::Stdout
    } else {
        Stream::Stderr
    };
    out::ensure_open("the pages", Stream::Stdout)?;
    let config = config(&args)?;
    let (progress, stop) = (Arc::new(Progress::default()), Stop::default());
    let caught = stop_on_signals(stop.clone())?;
    let bar = if args.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg}").expect("the template is valid"),
        )
    };
    let shown = progress.clone();
    let update = move |bar: &ProgressBar, elapsed: Duration| {
        let pages = shown.pages.load(Ordering::Relaxed);
        bar.set_message(format!(
            "{pages} fetched, {} queued, {} in flight, {} errors, {:.0} pages/s",
            shown.queued.load(Ordering::Relaxed),
            shown.in_flight.load(Ordering::Relaxed),
            shown.failed.load(Ordering::Relaxed),
            pages as f64 / elapsed.as_secs_f64().max(1e-3)
        ));
        bar.tick();
    };
    let outcome =
        crate::progress::while_running(&bar, update, || triad_crawl::crawl(config, progress, stop));
    let summary = match outcome {
        Ok(summary) => summary,
        Err(CrawlError::Output(triad_crawl::output::OutputError::Stdout(e))) => {
            return Err(OutputError::new("the pages", Stream::Stdout, e).into());
        }
        Err(e) => return Err(e.into()),
    };
    let what = "the crawl's summary";
    let written = match summary_to {
        Stream::Stdout => emit(&mut std::io::stdout().lock(), &summary, &args),
        Stream::Stderr => emit(&mut std::io::stderr().lock(), &summary, &args),
    };
    written.map_err(OutputError::on(what, summary_to))?;
    let signal = caught.load(Ordering::SeqCst);
    Ok(ExitCode::from(if signal != 0 {
        (128 + signal) as u8
    } else {
        u8::from(summary.pages > 0 && summary.ok == 0 && summary.resumed_pages == 0)
    }))
}

fn emit(out: &mut impl Write, summary: &Summary, args: &CrawlArgs) -> std::io::Result<()> {
    if args.json {
        serde_json::to_writer(&mut *out, summary).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write_summary(out, summary, args)?;
    }
    out.flush()
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn write_summary(out: &mut impl Write, s: &Summary, args: &CrawlArgs) -> std::io::Result<()> {
    writeln!(
        out,
        "triad crawl: {} pages in {:.2} s ({:.1} pages/s): {} ok, {} failed; {:.1} MB",
        s.pages,
        s.elapsed_s,
        s.pages_per_s,
        s.ok,
        s.failed,
        s.bytes as f64 / 1e6
    )?;
    if s.resumed_pages > 0 {
        writeln!(
            out,
            "  resumed    {} pages were done before",
            s.resumed_pages
        )?;
    }
    if !s.by_status.is_empty() {
        writeln!(out, "  status     {}", counts(&s.by_status))?;
    }
    if !s.by_error.is_empty() {
        writeln!(out, "  errors     {}", counts(&s.by_error))?;
    }
    if !s.skipped.is_empty() {
        writeln!(out, "  skipped    {}", counts(&s.skipped))?;
    }
    writeln!(out, "  requests   {} ({} retries)", s.requests, s.retries)?;
    for (i, h) in s.slowest_hosts.iter().enumerate() {
        let label = if i == 0 {
            "  slowest   "
        } else {
            "           "
        };
        writeln!(
            out,
            "{label} {} {:.1} ms a page ({} pages)",
            h.host, h.mean_ms, h.pages
        )?;
    }
    match (&s.stopped, &args.resume) {
        (Some(why), Some(state)) => writeln!(
            out,
            "  stopped    ({why}) with {} URLs queued; the same command with --resume {} goes on",
            s.queued_left,
            state.display()
        ),
        (Some(why), None) => writeln!(
            out,
            "  stopped    ({why}) with {} URLs queued",
            s.queued_left
        ),
        (None, _) => Ok(()),
    }
}
