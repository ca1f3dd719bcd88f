//! `triad crawl`: the seed's async web crawler (§7.1), made polite and robust.
//!
//! The seed's `AsyncWebCrawler` fetches in batches under a semaphore, keeps its frontier in a
//! set and follows every link. This crate keeps its model — coroutines for the fetches — and
//! adds what crawlers that people use (Scrapy, Colly, spider-rs) are judged on:
//!
//! - a **continuous frontier** with a global and a per-host limit and a per-host delay
//!   ([`frontier`], [`crawler`]);
//! - **robots.txt** fetched once per host and obeyed, `Crawl-delay` included ([`robots`]);
//! - **retries** with exponential backoff and jitter, `Retry-After` honoured; redirects up to
//!   10 with loops reported; timeouts and a size cap ([`fetch`]);
//! - **links** by a real HTML tokenizer, resolved, **normalised** and deduplicated in a
//!   128-bit-key seen set; scope, depth and patterns ([`links`], [`urls`]);
//! - **streaming JSONL** output, bodies saved by content address, a summary ([`output`]);
//! - **resumable runs**, after SIGINT or SIGKILL alike ([`state`]).
//!
//! The crawl is a cycle — pages give URLs that give pages — so it does not fit the linear
//! [`triad::pipeline`](https://docs.rs/triad) shape; it uses the pipeline's models directly:
//! the fetches on one event loop (tokio's current-thread runtime), and HTML parsing, which
//! is CPU work, on a pool of threads (tokio's blocking pool, one thread a core).
//! [`site`] serves generated sites for the tests and the benchmark.

pub mod crawler;
pub mod fetch;
pub mod frontier;
pub mod links;
pub mod output;
mod page;
pub mod robots;
pub mod site;
pub mod state;
pub mod urls;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use output::Output;
pub use output::{Page, PageError, Summary};
/// The `--include` / `--exclude` patterns' type.
pub use regex::Regex;
pub use urls::Scope;

/// A crawl's settings: the command's options.
#[derive(Debug, Clone)]
pub struct Config {
    /// Start URLs (may be empty when resuming: the state's are used).
    pub starts: Vec<String>,
    /// Pages to fetch at most, over all runs of a resumed crawl.
    pub max_pages: Option<u64>,
    /// Links to follow from a start URL at most.
    pub max_depth: Option<u16>,
    /// Fetches in flight at most.
    pub concurrency: usize,
    /// Fetches in flight per host at most.
    pub per_host: usize,
    /// Time between two fetch starts on one host.
    pub delay: Duration,
    /// Which links are followed.
    pub scope: Scope,
    /// Links followed must match one of these, if any are given.
    pub include: Vec<Regex>,
    /// Links matching any of these are not followed.
    pub exclude: Vec<Regex>,
    /// Attempts after the first, on connect errors, timeouts, 429 and 5xx.
    pub retries: u32,
    /// Time limit of each attempt.
    pub timeout: Duration,
    /// Bodies are cut off past this many bytes.
    pub max_bytes: usize,
    /// The `User-Agent`; its product name is what robots.txt groups are matched on.
    pub user_agent: String,
    /// Do not fetch or obey robots.txt.
    pub ignore_robots: bool,
    /// Do not follow links marked `rel=nofollow`.
    pub respect_nofollow: bool,
    /// Sort query parameters when normalising.
    pub sort_query: bool,
    /// Page lines go here (standard output if none).
    pub output: Option<PathBuf>,
    /// Bodies are saved here by SHA-256.
    pub save: Option<PathBuf>,
    /// The resume state.
    pub resume: Option<PathBuf>,
    /// The first retry's backoff.
    pub backoff: Duration,
    /// Threads that parse pages.
    pub parse_threads: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            starts: Vec::new(),
            max_pages: None,
            max_depth: None,
            concurrency: 64,
            per_host: 8,
            delay: Duration::ZERO,
            scope: Scope::Host,
            include: Vec::new(),
            exclude: Vec::new(),
            retries: 3,
            timeout: Duration::from_secs(30),
            max_bytes: 10 << 20,
            user_agent: concat!("triad-crawl/", env!("CARGO_PKG_VERSION")).into(),
            ignore_robots: false,
            respect_nofollow: false,
            sort_query: false,
            output: None,
            save: None,
            resume: None,
            backoff: Duration::from_millis(500),
            parse_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Why a crawl could not run or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    /// A setting that cannot work.
    #[error("{0}")]
    Config(String),
    /// The resume state.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The output or `--save`.
    #[error(transparent)]
    Output(#[from] output::OutputError),
    /// The event loop could not start.
    #[error("cannot start the event loop: {0}")]
    Runtime(std::io::Error),
}

impl CrawlError {
    /// Whether the command line asked for something that cannot work (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            CrawlError::Config(_)
                | CrawlError::State(state::StateError::NotAState(_))
                | CrawlError::Output(output::OutputError::Foreign(..))
        )
    }
}

/// Live counters, for a progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// Page lines written.
    pub pages: AtomicU64,
    /// Of those, failed.
    pub failed: AtomicU64,
    /// URLs queued.
    pub queued: AtomicU64,
    /// Fetches in flight.
    pub in_flight: AtomicU64,
}

/// Asks a crawl to stop: no new fetches; those in flight finish and are written; the resume
/// state is saved. Safe to call from a signal-handling thread.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<(AtomicBool, tokio::sync::Notify)>);

impl Stop {
    /// Stops the crawl.
    pub fn stop(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_one();
    }

    /// Whether [`stop`](Stop::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }

    async fn notified(&self) {
        self.0.1.notified().await;
    }
}

/// Runs a crawl to its end (or its stop), on an event loop of its own.
pub fn crawl(config: Config, progress: Arc<Progress>, stop: Stop) -> Result<Summary, CrawlError> {
    if config.concurrency == 0 || config.per_host == 0 {
        return Err(CrawlError::Config(
            "--concurrency and --per-host must be at least 1".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(config.parse_threads.max(1))
        .build()
        .map_err(CrawlError::Runtime)?;
    runtime.block_on(start(config, progress, stop)?.run())
}

fn start(
    config: Config,
    progress: Arc<Progress>,
    stop: Stop,
) -> Result<crawler::Crawler, CrawlError> {
    let parse = |s: &String| urls::parse_start(s, config.sort_query).map(String::from);
    let mut starts: Vec<String> = config
        .starts
        .iter()
        .map(parse)
        .collect::<Result<_, _>>()
        .map_err(CrawlError::Config)?;
    let mut frames = Vec::new();
    let mut resumed = None;
    let mut journal = None;
    let out = match (&config.resume, &config.output) {
        (Some(_), None) => {
            return Err(CrawlError::Config(
                "--resume needs --output FILE: the output is the record of the pages done".into(),
            ));
        }
        (Some(state), Some(path)) if state.exists() => {
            let saved = state::load(state, |f| frames.push(f))?;
            if starts.is_empty() {
                starts = saved;
            } else if sorted(&starts) != sorted(&saved) {
                return Err(CrawlError::Config(format!(
                    "{} was made for other start URLs ({}); give the same URLs, or none",
                    state.display(),
                    saved.join(" ")
                )));
            }
            journal = Some(state::Journal::append(state)?);
            let (out, done) = Output::resume(path)?;
            resumed = Some(done);
            out
        }
        (Some(state), Some(path)) => {
            journal = Some(state::Journal::create(state, &starts)?);
            Output::create(path)?
        }
        (None, Some(path)) => Output::create(path)?,
        (None, None) => Output::stdout(),
    };
    if starts.is_empty() {
        return Err(CrawlError::Config(
            "give at least one URL to start from".into(),
        ));
    }
    let start_urls: Vec<url::Url> = starts
        .iter()
        .map(|s| url::Url::parse(s).expect("parsed above"))
        .collect();
    let ctx = Arc::new(page::PageContext {
        fetcher: fetch::Fetcher::new(fetch::FetchConfig {
            user_agent: config.user_agent.clone(),
            timeout: config.timeout,
            max_bytes: config.max_bytes,
            retries: config.retries,
            backoff: config.backoff,
            per_host: config.per_host,
        })
        .map_err(CrawlError::Config)?,
        filter: urls::Filter::new(
            config.scope,
            &start_urls,
            config.include.clone(),
            config.exclude.clone(),
        ),
        save: config.save.clone(),
        respect_nofollow: config.respect_nofollow,
        sort_query: config.sort_query,
        agent: robots::agent_token(&config.user_agent).to_owned(),
    });
    let mut crawler = crawler::Crawler::new(config, ctx, starts, out, journal, progress, stop);
    match resumed {
        Some(done) => crawler.restore(frames, done),
        None => crawler.seed()?,
    }
    Ok(crawler)
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = v.iter().collect();
    v.sort();
    v.dedup();
    v
}
