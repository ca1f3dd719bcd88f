//! The scheduler: one task that owns the frontier and the output, and starts fetches.
//!
//! The seed's crawler gathers a batch of URLs and waits for the slowest before it starts the
//! next. Here the frontier is continuous: whenever any fetch ends, its result is taken in
//! (links deduplicated and queued, its line written) and new fetches start at once, up to
//! `--concurrency` in all and `--per-host` a host. Fetch tasks run on the event loop and send
//! their outcome back on a channel, so all crawl state has one owner and needs no lock.
//!
//! Each batch of outcomes is made durable in order: the journal (links queued) first, then
//! the output lines (pages done); see [`crate::state`] for why that order makes resuming
//! exact.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use url::Url;

use crate::frontier::{Chain, Frontier, Job, Next, Robots};
use crate::output::{Done, HostTime, Output, Page, PageError, Summary};
use crate::page::{self, Analysed, Outcome, PageContext};
use crate::robots::Rules;
use crate::state::{Frame, JobRecord, Journal};
use crate::urls::{self, Skip};
use crate::{Config, CrawlError, Progress, Stop};

/// Redirects followed before a page is given up as `too-many-redirects`.
pub const MAX_REDIRECTS: usize = 10;

enum Event {
    Page {
        host: usize,
        job: Job,
        outcome: Outcome,
        elapsed: Duration,
    },
    Robots {
        host: usize,
        rules: Rules,
        requests: u32,
    },
}

pub(crate) struct Crawler {
    config: Config,
    starts: Vec<String>,
    ctx: Arc<PageContext>,
    frontier: Frontier,
    journal: Option<Journal>,
    out: Output,
    lines: Vec<u8>,
    summary: Summary,
    skipped: HashMap<&'static str, u64>,
    progress: Arc<Progress>,
    stop: Stop,
    in_flight: usize,
    pages_started: u64,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Crawler {
    pub(crate) fn new(
        config: Config,
        ctx: Arc<PageContext>,
        starts: Vec<String>,
        out: Output,
        journal: Option<Journal>,
        progress: Arc<Progress>,
        stop: Stop,
    ) -> Crawler {
        let (tx, rx) = mpsc::unbounded_channel();
        Crawler {
            frontier: Frontier::new(config.delay),
            config,
            starts,
            ctx,
            journal,
            out,
            lines: Vec::new(),
            summary: Summary::default(),
            skipped: HashMap::new(),
            progress,
            stop,
            in_flight: 0,
            pages_started: 0,
            tx,
            rx,
        }
    }

    /// Queues the start URLs of a new crawl (journalled).
    pub(crate) fn seed(&mut self) -> Result<(), CrawlError> {
        for url in self.starts.clone() {
            let job = Job {
                url: url.into(),
                depth: 0,
                parent: None,
                chain: None,
            };
            self.offer(job, false)?;
        }
        self.flush()
    }

    /// Restores a resumed crawl: the journal's frames, less what the output shows done.
    pub(crate) fn restore(&mut self, frames: Vec<Frame>, done: Done) {
        let mut queued: Vec<Option<JobRecord>> = Vec::new();
        let mut at: HashMap<u128, usize> = HashMap::new();
        for frame in frames {
            match frame {
                Frame::Seen(keys) => keys.into_iter().for_each(|k| {
                    self.frontier.see(k);
                }),
                Frame::Queued(job) => {
                    let key = urls::key(&job.url);
                    if self.frontier.see(key) {
                        at.insert(key, queued.len());
                        queued.push(Some(job));
                    }
                }
                Frame::Dropped(key) => {
                    if let Some(&i) = at.get(&key) {
                        queued[i] = None;
                    }
                }
                Frame::Header { .. } => {}
            }
        }
        for url in &done.urls {
            let key = urls::key(url);
            self.frontier.see(key);
            if let Some(&i) = at.get(&key) {
                queued[i] = None;
            }
        }
        self.summary.resumed_pages = done.pages;
        self.pages_started = done.pages;
        for job in queued.into_iter().flatten() {
            let chain = job.origin.map(|origin| {
                Box::new(Chain {
                    origin: origin.into(),
                    hops: job.hops,
                })
            });
            let job = Job {
                url: job.url.into(),
                depth: job.depth,
                parent: job.parent.map(Arc::from),
                chain,
            };
            self.push(job, false);
        }
    }

    /// Marks a job's URL seen and queues it; false if it was seen before.
    fn offer(&mut self, job: Job, front: bool) -> Result<bool, CrawlError> {
        if !self.frontier.see(urls::key(&job.url)) {
            return Ok(false);
        }
        if let Some(journal) = &mut self.journal {
            journal.write(&Frame::Queued(record(&job)))?;
        }
        self.push(job, front);
        Ok(true)
    }

    fn push(&mut self, job: Job, front: bool) {
        let Ok(url) = Url::parse(&job.url) else {
            return;
        };
        let origin = url.origin().ascii_serialization();
        self.frontier
            .push(&urls::authority(&url), &origin, job, front);
    }

    pub(crate) async fn run(mut self) -> Result<Summary, CrawlError> {
        let started = Instant::now();
        let result = self.crawl().await;
        // Whatever ended the crawl, the state left behind must resume it.
        let compacted = self.compact();
        result?;
        compacted?;
        let mut s = std::mem::take(&mut self.summary);
        s.elapsed_s = started.elapsed().as_secs_f64();
        s.pages_per_s = s.pages as f64 / s.elapsed_s.max(1e-9);
        s.queued_left = self.frontier.queued() as u64;
        s.skipped = self
            .skipped
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<BTreeMap<_, _>>();
        if s.stopped.is_none() && s.queued_left > 0 {
            s.stopped = Some("max-pages".into());
        }
        let mut hosts: Vec<HostTime> = self
            .frontier
            .hosts()
            .iter()
            .filter(|h| h.fetches > 0)
            .map(|h| HostTime {
                host: h.authority.to_string(),
                pages: h.fetches,
                mean_ms: h.fetch_time.as_secs_f64() * 1000.0 / h.fetches as f64,
            })
            .collect();
        hosts.sort_by(|a, b| b.mean_ms.total_cmp(&a.mean_ms));
        hosts.truncate(5);
        s.slowest_hosts = hosts;
        Ok(s)
    }

    async fn crawl(&mut self) -> Result<(), CrawlError> {
        loop {
            let stopping = self.stop.is_stopped();
            if stopping && self.summary.stopped.is_none() {
                self.summary.stopped = Some("interrupted".into());
            }
            let wake = if stopping { None } else { self.dispatch()? };
            self.flush()?;
            self.publish();
            if self.in_flight == 0 && wake.is_none() {
                return Ok(());
            }
            let event = tokio::select! {
                event = self.rx.recv() => event,
                () = sleep_until(wake), if wake.is_some() => None,
                () = self.stop.notified(), if !stopping => None,
            };
            if let Some(event) = event {
                self.take(event)?;
                while let Ok(event) = self.rx.try_recv() {
                    self.take(event)?;
                }
            }
        }
    }

    /// Starts every fetch that may start now; returns when the next could start, if only
    /// time (a delay or a pause) holds it back.
    fn dispatch(&mut self) -> Result<Option<Instant>, CrawlError> {
        let now = Instant::now();
        while self.in_flight < self.config.concurrency {
            let new_pages = self
                .config
                .max_pages
                .is_none_or(|max| self.pages_started < max);
            match self.frontier.next(now, self.config.per_host, new_pages) {
                Next::Fetch(host, job) => self.start(host, job),
                Next::Robots(host) if self.config.ignore_robots => {
                    self.frontier.host(host).robots = Robots::Known(Arc::new(Rules::AllowAll));
                }
                Next::Robots(host) => {
                    let h = self.frontier.host(host);
                    let (origin, pause) = (h.origin.to_string(), h.pause.clone());
                    let (ctx, tx) = (self.ctx.clone(), self.tx.clone());
                    self.in_flight += 1;
                    tokio::spawn(async move {
                        let (rules, requests) = page::robots(ctx, origin, pause).await;
                        let _ = tx.send(Event::Robots {
                            host,
                            rules,
                            requests,
                        });
                    });
                }
                Next::Disallowed(host, job) => {
                    let message = match &self.frontier.host(host).robots {
                        Robots::Known(rules) => match &**rules {
                            Rules::DisallowAll(why) => format!("not fetched: {why}"),
                            _ => "disallowed by robots.txt".to_owned(),
                        },
                        _ => "disallowed by robots.txt".to_owned(),
                    };
                    self.record(&job, None, Duration::ZERO, 0, error("robots", message));
                }
                Next::Wait(at) => return Ok(Some(at)),
                Next::Idle => return Ok(None),
            }
        }
        Ok(None)
    }

    fn start(&mut self, host: usize, job: Job) {
        if job.chain.is_none() {
            self.pages_started += 1;
        }
        self.in_flight += 1;
        let Ok(url) = Url::parse(&job.url) else {
            unreachable!("queued URLs are parsed URLs");
        };
        let pause = self.frontier.host(host).pause.clone();
        let (ctx, tx) = (self.ctx.clone(), self.tx.clone());
        tokio::spawn(async move {
            let began = Instant::now();
            let outcome = page::run(ctx, url, pause).await;
            let _ = tx.send(Event::Page {
                host,
                job,
                outcome,
                elapsed: began.elapsed(),
            });
        });
    }

    fn take(&mut self, event: Event) -> Result<(), CrawlError> {
        self.in_flight -= 1;
        match event {
            Event::Robots {
                host,
                rules,
                requests,
            } => {
                self.summary.requests += u64::from(requests);
                let h = self.frontier.host(host);
                if let Some(delay) = rules.crawl_delay() {
                    h.delay = h.delay.max(delay);
                }
                h.robots = Robots::Known(Arc::new(rules));
                Ok(())
            }
            Event::Page {
                host,
                job,
                outcome,
                elapsed,
            } => {
                let h = self.frontier.host(host);
                h.in_flight -= 1;
                h.fetches += 1;
                h.fetch_time += elapsed;
                match outcome {
                    Outcome::Fatal(e) => Err(e.into()),
                    Outcome::Failed { error: e, attempts } => {
                        self.record(
                            &job,
                            None,
                            elapsed,
                            attempts,
                            error(e.kind(), e.to_string()),
                        );
                        Ok(())
                    }
                    Outcome::Redirect {
                        status,
                        location,
                        attempts,
                    } => self.redirect(job, status, &location, attempts, elapsed),
                    Outcome::Page(page) => self.page(job, *page, elapsed),
                }
            }
        }
    }

    fn page(&mut self, job: Job, page: Analysed, elapsed: Duration) -> Result<(), CrawlError> {
        for skip in &page.skipped {
            *self.skipped.entry(skip_name(*skip)).or_default() += 1;
        }
        let depth = job.depth.saturating_add(1);
        let mut new_links = 0;
        if self.config.max_depth.is_some_and(|max| depth > max) {
            *self.skipped.entry(skip_name(Skip::Depth)).or_default() += page.follow.len() as u64;
        } else {
            let parent: Arc<str> = Arc::from(&*job.url);
            for (url, key) in page.follow {
                if self.frontier.seen(key) {
                    *self.skipped.entry("duplicate").or_default() += 1;
                    continue;
                }
                let child = Job {
                    url: url.into(),
                    depth,
                    parent: Some(parent.clone()),
                    chain: None,
                };
                if self.offer(child, false)? {
                    new_links += 1;
                }
            }
        }
        let mut line = self.line(&job, Some(page.status), elapsed, page.attempts, None);
        line.content_type = page.content_type;
        line.bytes = page.bytes;
        line.truncated = page.truncated;
        line.title = page.title;
        line.links = page.links;
        line.new_links = new_links;
        line.sha256 = page.sha256;
        self.write(line);
        Ok(())
    }

    fn redirect(
        &mut self,
        job: Job,
        status: u16,
        location: &str,
        attempts: u32,
        elapsed: Duration,
    ) -> Result<(), CrawlError> {
        let base = Url::parse(&job.url).expect("queued URLs are parsed URLs");
        let mut chain = job.chain.clone().unwrap_or_else(|| {
            Box::new(Chain {
                origin: job.url.clone(),
                hops: Vec::new(),
            })
        });
        chain.hops.push(urls::key(&job.url));
        let failure = match urls::resolve(&base, location, self.config.sort_query) {
            _ if chain.hops.len() > MAX_REDIRECTS => error(
                "too-many-redirects",
                format!("more than {MAX_REDIRECTS} redirects"),
            ),
            Err(_) => error(
                "bad-redirect",
                format!("Location {location:?} is not an http(s) URL"),
            ),
            Ok(target) if !self.ctx.filter.in_scope(&target) => error(
                "redirect-out-of-scope",
                format!("redirects to {target}, outside the scope"),
            ),
            Ok(target) if chain.hops.contains(&urls::key(target.as_str())) => {
                error("redirect-loop", format!("redirects back to {target}"))
            }
            Ok(target) => {
                let next = Job {
                    url: String::from(target).into(),
                    depth: job.depth,
                    parent: job.parent.clone(),
                    chain: Some(chain),
                };
                let target = next.url.clone();
                if self.offer(next, true)? {
                    if let Some(journal) = &mut self.journal {
                        journal.write(&Frame::Dropped(urls::key(&job.url)))?;
                    }
                    self.summary.requests += u64::from(attempts);
                    self.summary.retries += u64::from(attempts.saturating_sub(1));
                    return Ok(());
                }
                // The target was queued or fetched already: this page is that one.
                let mut line = self.line(&job, Some(status), elapsed, attempts, None);
                line.final_url = target.into();
                self.write(line);
                return Ok(());
            }
        };
        self.record(&job, Some(status), elapsed, attempts, failure);
        Ok(())
    }

    fn line(
        &self,
        job: &Job,
        status: Option<u16>,
        elapsed: Duration,
        attempts: u32,
        error: Option<PageError>,
    ) -> Page {
        Page {
            url: job
                .chain
                .as_ref()
                .map_or_else(|| job.url.to_string(), |c| c.origin.to_string()),
            final_url: job.url.to_string(),
            status,
            depth: job.depth,
            parent: job.parent.as_deref().map(str::to_owned),
            content_type: None,
            bytes: 0,
            truncated: false,
            fetch_ms: elapsed.as_micros() as f64 / 1000.0,
            attempts,
            redirects: job.chain.as_ref().map_or(0, |c| c.hops.len() as u32),
            title: None,
            links: 0,
            new_links: 0,
            sha256: None,
            error,
        }
    }

    fn record(
        &mut self,
        job: &Job,
        status: Option<u16>,
        elapsed: Duration,
        attempts: u32,
        error: Option<PageError>,
    ) {
        let line = self.line(job, status, elapsed, attempts, error);
        self.write(line);
    }

    fn write(&mut self, page: Page) {
        self.summary.requests += u64::from(page.attempts);
        self.summary.retries += u64::from(page.attempts.saturating_sub(1));
        self.summary.count(&page);
        serde_json::to_writer(&mut self.lines, &page).expect("a page serialises");
        self.lines.push(b'\n');
    }

    /// Makes the batch durable: journal first, then the output lines.
    fn flush(&mut self) -> Result<(), CrawlError> {
        if let Some(journal) = &mut self.journal {
            journal.flush()?;
        }
        if !self.lines.is_empty() {
            self.out.write(&self.lines)?;
            self.lines.clear();
        }
        Ok(())
    }

    fn compact(&mut self) -> Result<(), CrawlError> {
        self.flush()?;
        let Some(journal) = &mut self.journal else {
            return Ok(());
        };
        let queued: Vec<JobRecord> = self.frontier.queued_jobs().map(|j| record(&j)).collect();
        let queued_keys: std::collections::HashSet<u128> =
            queued.iter().map(|j| urls::key(&j.url)).collect();
        let seen = self
            .frontier
            .seen_keys()
            .filter(|k| !queued_keys.contains(k));
        journal.compact(&self.starts, seen, queued.into_iter())?;
        Ok(())
    }

    fn publish(&self) {
        let p = &self.progress;
        p.pages.store(self.summary.pages, Ordering::Relaxed);
        p.failed.store(self.summary.failed, Ordering::Relaxed);
        p.queued
            .store(self.frontier.queued() as u64, Ordering::Relaxed);
        p.in_flight.store(self.in_flight as u64, Ordering::Relaxed);
    }
}

fn record(job: &Job) -> JobRecord {
    JobRecord {
        url: job.url.to_string(),
        depth: job.depth,
        parent: job.parent.as_deref().map(str::to_owned),
        origin: job.chain.as_ref().map(|c| c.origin.to_string()),
        hops: job.chain.as_ref().map_or_else(Vec::new, |c| c.hops.clone()),
    }
}

fn error(kind: &str, message: String) -> Option<PageError> {
    Some(PageError {
        kind: kind.to_owned(),
        message,
    })
}

fn skip_name(skip: Skip) -> &'static str {
    match skip {
        Skip::Scheme => "scheme",
        Skip::Malformed => "malformed",
        Skip::Scope => "scope",
        Skip::Filtered => "filtered",
        Skip::Depth => "depth",
        Skip::Nofollow => "nofollow",
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}
