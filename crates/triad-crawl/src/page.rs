//! One page's work, off the scheduler: the fetch on the event loop, then parsing, link
//! resolution, filtering and `--save` on the thread pool (`spawn_blocking`), since that is
//! CPU and file work that would stall every other fetch if it ran on the loop.

use std::path::PathBuf;
use std::sync::Arc;

use url::Url;

use crate::fetch::{FetchError, Fetched, Fetcher, Pause};
use crate::links;
use crate::output::{self, OutputError};
use crate::robots::Rules;
use crate::urls::{self, Filter, Skip};

/// What a page task needs besides its URL.
#[derive(Debug)]
pub(crate) struct PageContext {
    pub(crate) fetcher: Fetcher,
    pub(crate) filter: Filter,
    pub(crate) save: Option<PathBuf>,
    pub(crate) respect_nofollow: bool,
    pub(crate) sort_query: bool,
    pub(crate) agent: String,
}

/// How a page's fetch ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A redirect with a `Location`: the crawler decides about the target.
    Redirect {
        status: u16,
        location: String,
        attempts: u32,
    },
    /// A response, analysed.
    Page(Box<Analysed>),
    /// No response.
    Failed { error: FetchError, attempts: u32 },
    /// `--save` failed: the crawl cannot go on keeping its promise.
    Fatal(OutputError),
}

/// A response and what was found in it.
#[derive(Debug)]
pub(crate) struct Analysed {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) bytes: u64,
    pub(crate) truncated: bool,
    pub(crate) attempts: u32,
    pub(crate) title: Option<String>,
    /// Links found, of any scheme.
    pub(crate) links: u32,
    /// Links to follow, normalised, with their keys (not yet checked against the seen set).
    pub(crate) follow: Vec<(String, u128)>,
    /// Links not to follow, by reason.
    pub(crate) skipped: Vec<Skip>,
    pub(crate) sha256: Option<String>,
}

/// Statuses whose `Location` is followed.
fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Fetches and analyses one page.
pub(crate) async fn run(ctx: Arc<PageContext>, url: Url, pause: Pause) -> Outcome {
    match ctx.fetcher.fetch(&url, &pause).await {
        Err((error, attempts)) => Outcome::Failed { error, attempts },
        Ok(Fetched {
            status,
            location: Some(location),
            attempts,
            ..
        }) if is_redirect(status) => Outcome::Redirect {
            status,
            location,
            attempts,
        },
        Ok(fetched) => {
            let task = tokio::task::spawn_blocking(move || analyse(&ctx, &url, fetched));
            task.await.unwrap_or_else(|_| Outcome::Failed {
                error: FetchError::Other("the page's parser panicked".into()),
                attempts: 1,
            })
        }
    }
}

fn analyse(ctx: &PageContext, url: &Url, f: Fetched) -> Outcome {
    let sha256 = match &ctx.save {
        Some(dir) => match output::save(dir, &f.body) {
            Ok(hex) => Some(hex),
            Err(e) => return Outcome::Fatal(e),
        },
        None => None,
    };
    let mut page = Analysed {
        status: f.status,
        bytes: f.body.len() as u64,
        truncated: f.truncated,
        attempts: f.attempts,
        title: None,
        links: 0,
        follow: Vec::new(),
        skipped: Vec::new(),
        sha256,
        content_type: f.content_type,
    };
    if !links::is_html(page.content_type.as_deref(), &f.body) {
        return Outcome::Page(Box::new(page));
    }
    let found = links::extract(&f.body);
    let base = found
        .base
        .and_then(|b| url.join(b.trim()).ok())
        .unwrap_or_else(|| url.clone());
    page.title = found.title;
    page.links = u32::try_from(found.links.len()).unwrap_or(u32::MAX);
    for link in found.links {
        if link.nofollow && ctx.respect_nofollow {
            page.skipped.push(Skip::Nofollow);
            continue;
        }
        match urls::resolve(&base, &link.href, ctx.sort_query).and_then(|u| {
            ctx.filter.check(&u)?;
            Ok(u)
        }) {
            Ok(u) => {
                let s: String = u.into();
                let key = urls::key(&s);
                page.follow.push((s, key));
            }
            Err(skip) => page.skipped.push(skip),
        }
    }
    Outcome::Page(Box::new(page))
}

/// Fetches an origin's robots.txt, following up to 5 redirects (RFC 9309 §2.3.1.2); returns
/// the rules and the requests made.
pub(crate) async fn robots(ctx: Arc<PageContext>, origin: String, pause: Pause) -> (Rules, u32) {
    let Ok(mut url) = Url::parse(&origin).and_then(|o| o.join("/robots.txt")) else {
        return (Rules::AllowAll, 0);
    };
    let mut requests = 0;
    for _ in 0..=5 {
        match ctx.fetcher.fetch(&url, &pause).await {
            Err((e, attempts)) => {
                requests += attempts;
                return (
                    Rules::DisallowAll(format!("robots.txt could not be fetched: {e}")),
                    requests,
                );
            }
            Ok(f) => {
                requests += f.attempts;
                match f.location.as_deref().map(|l| url.join(l)) {
                    Some(Ok(next)) if is_redirect(f.status) => url = next,
                    _ => return (Rules::from_answer(f.status, &f.body, &ctx.agent), requests),
                }
            }
        }
    }
    (Rules::AllowAll, requests)
}
