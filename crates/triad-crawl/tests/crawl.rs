//! Crawls of generated local sites (127.0.0.1 only, servers started here): the pages found
//! are the graph's reachable set, nothing is fetched twice, robots.txt and the per-host limit
//! hold, retries happen, and a stopped crawl resumes without fetching a page again.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use triad_crawl::site::{NEVER, SPECIAL_PAGES, Site, SiteSpec};
use triad_crawl::{Config, Page, Progress, Stop, Summary, crawl};

fn config(start: String, out: &Path) -> Config {
    Config {
        starts: vec![start],
        concurrency: 16,
        per_host: 4,
        retries: 2,
        timeout: Duration::from_secs(1),
        max_bytes: 1 << 20,
        backoff: Duration::from_millis(50),
        output: Some(out.to_owned()),
        ..Config::default()
    }
}

fn pages(out: &Path) -> Vec<Page> {
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn path(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

fn run(config: Config) -> Summary {
    crawl(config, Arc::new(Progress::default()), Stop::default()).unwrap()
}

fn by_path(pages: &[Page]) -> HashMap<String, &Page> {
    pages.iter().map(|p| (path(&p.url), p)).collect()
}

#[test]
fn a_site_with_every_trap_is_crawled_whole_once_and_politely() {
    let other = Site::start(SiteSpec {
        pages: 3,
        ..SiteSpec::default()
    })
    .unwrap();
    let spec = SiteSpec {
        pages: 300,
        links_per_page: 6,
        latency: Duration::from_millis(3),
        jitter: Duration::from_millis(2),
        specials: true,
        robots: Some("User-agent: *\nDisallow: /private/\n".into()),
        other_host: Some(other.url()),
        ..SiteSpec::default()
    };
    let site = Site::start(spec.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pages.jsonl");
    let summary = run(config(format!("{}/p/0", site.url()), &out));
    let pages = pages(&out);

    let mut expected: BTreeSet<String> = spec
        .reachable(None)
        .iter()
        .map(|i| format!("/p/{i}"))
        .collect();
    expected.extend(SPECIAL_PAGES.iter().map(|s| s.to_string()));
    let found: BTreeSet<String> = pages.iter().map(|p| path(&p.url)).collect();
    assert_eq!(found, expected);
    assert_eq!(pages.len(), found.len(), "a page has two lines");

    // What the server saw: each URL once, but for retries; robots.txt once; no forbidden path.
    let retried = HashMap::from([("/flaky/1", 3), ("/busy", 2), ("/hang", 3)]);
    for (p, n) in site.counts() {
        let want = retried.get(p.as_str()).copied().unwrap_or(1);
        assert_eq!(n, want, "{p} requested {n} times");
        assert!(
            !p.starts_with("/private/") && !p.starts_with("/never/"),
            "{p} was requested"
        );
    }
    for never in NEVER {
        assert!(!site.counts().contains_key(never));
    }
    assert_eq!(site.counts()["/robots.txt"], 1);
    assert!(
        other.log().is_empty(),
        "the other host was crawled: {:?}",
        other.log()
    );
    let max = site.max_in_flight();
    assert!(
        (2..=4).contains(&max),
        "{max} requests in flight at once, --per-host 4"
    );

    let p = by_path(&pages);
    let chain = p["/redirect/a"];
    assert_eq!((chain.status, chain.redirects), (Some(200), 2));
    assert_eq!(path(&chain.final_url), "/redirect/c?from=b");
    assert_eq!(chain.title.as_deref(), Some("End of chain"));
    assert_eq!(p["/loop/a"].error.as_ref().unwrap().kind, "redirect-loop");
    assert_eq!(p["/hang"].error.as_ref().unwrap().kind, "timeout");
    assert_eq!((p["/huge"].truncated, p["/huge"].bytes), (true, 1 << 20));
    assert_eq!(p["/huge"].title.as_deref(), Some("Huge"));
    assert_eq!((p["/image.png"].links, p["/data.json"].links), (0, 0));
    assert_eq!(p["/private/secret"].error.as_ref().unwrap().kind, "robots");
    assert_eq!(p["/private/secret"].status, None);
    assert_eq!(
        (p["/flaky/1"].status, p["/flaky/1"].attempts),
        (Some(200), 3)
    );
    assert_eq!((p["/busy"].status, p["/busy"].attempts), (Some(200), 2));
    assert_eq!(p["/missing"].status, Some(404));
    assert_eq!(p["/malformed"].links, 2);
    // `x` against `<base href="/based/">`; `../p/5` is /p/5; the upper-case link is /p/1.
    assert_eq!(p["/dir/sub/base"].links, 3);
    assert_eq!(
        path(p["/based/x"].parent.as_deref().unwrap()),
        "/dir/sub/base"
    );
    assert_eq!(path(p["/p/1"].parent.as_deref().unwrap()), "/p/0");
    assert_eq!(p["/p/7"].title.as_deref(), Some("Page 7"));
    assert_eq!(
        (p["/zipped"].title.as_deref(), p["/zipped"].links),
        (Some("Zipped"), 1)
    );
    assert_eq!(
        p["/away"].error.as_ref().unwrap().kind,
        "redirect-out-of-scope"
    );

    assert_eq!(summary.pages, pages.len() as u64);
    assert_eq!(summary.skipped["scheme"], 2);
    assert_eq!(summary.skipped["scope"], 1);
    assert!(summary.skipped["duplicate"] >= 4, "{:?}", summary.skipped);
    assert_eq!(summary.by_error["robots"], 1);
    assert_eq!(summary.retries, 2 + 1 + 2);
    assert_eq!(summary.queued_left, 0);
    assert_eq!(summary.stopped, None);
}

#[test]
fn depth_and_max_pages_bound_the_crawl() {
    let spec = SiteSpec {
        pages: 400,
        links_per_page: 3,
        ..SiteSpec::default()
    };
    let site = Site::start(spec.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pages.jsonl");
    run(Config {
        max_depth: Some(2),
        ..config(format!("{}/p/0", site.url()), &out)
    });
    let found: BTreeSet<String> = pages(&out).iter().map(|p| path(&p.url)).collect();
    let expected: BTreeSet<String> = spec
        .reachable(Some(2))
        .iter()
        .map(|i| format!("/p/{i}"))
        .collect();
    assert_eq!(found, expected);
    assert!(pages(&out).iter().all(|p| p.depth <= 2));

    let summary = run(Config {
        max_pages: Some(50),
        ..config(format!("{}/p/0", site.url()), &out)
    });
    let lines = pages(&out);
    let found: BTreeSet<String> = lines.iter().map(|p| path(&p.url)).collect();
    assert_eq!((lines.len(), found.len()), (50, 50));
    let all: BTreeSet<String> = spec
        .reachable(None)
        .iter()
        .map(|i| format!("/p/{i}"))
        .collect();
    assert!(found.is_subset(&all));
    assert_eq!(summary.stopped.as_deref(), Some("max-pages"));
}

#[test]
fn crawl_delay_spaces_the_fetches_of_a_host() {
    let site = Site::start(SiteSpec {
        pages: 6,
        links_per_page: 2,
        robots: Some("User-agent: *\nCrawl-delay: 0.1\n".into()),
        ..SiteSpec::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pages.jsonl");
    run(config(format!("{}/p/0", site.url()), &out));
    let starts: Vec<_> = site
        .log()
        .into_iter()
        .filter(|l| l.path.starts_with("/p/"))
        .collect();
    assert_eq!(starts.len(), 6);
    for pair in starts.windows(2) {
        let gap = pair[1].at - pair[0].at;
        // Load can only widen the gaps, never narrow them.
        assert!(
            gap >= Duration::from_millis(95),
            "{} then {} after {gap:?}",
            pair[0].path,
            pair[1].path
        );
    }
}

#[test]
fn a_stopped_crawl_resumes_without_fetching_a_page_twice() {
    let spec = SiteSpec {
        pages: 400,
        links_per_page: 4,
        latency: Duration::from_millis(2),
        ..SiteSpec::default()
    };
    let site = Site::start(spec.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pages.jsonl");
    let state = dir.path().join("crawl.state");
    let cfg = Config {
        resume: Some(state.clone()),
        ..config(format!("{}/p/0", site.url()), &out)
    };
    let progress = Arc::new(Progress::default());
    let stop = Stop::default();
    let stopper = {
        let (progress, stop) = (progress.clone(), stop.clone());
        std::thread::spawn(move || {
            while progress.pages.load(std::sync::atomic::Ordering::Relaxed) < 60 {
                std::thread::sleep(Duration::from_millis(1));
            }
            stop.stop();
        })
    };
    let first = crawl(cfg.clone(), progress, stop).unwrap();
    stopper.join().unwrap();
    assert_eq!(first.stopped.as_deref(), Some("interrupted"));
    assert!(
        first.queued_left > 0 && first.pages >= 60 && first.pages < 400,
        "{first:?}"
    );

    let second = run(Config {
        starts: vec![],
        ..cfg
    });
    assert_eq!(second.resumed_pages, first.pages);
    let lines = pages(&out);
    let found: BTreeSet<String> = lines.iter().map(|p| path(&p.url)).collect();
    let all: BTreeSet<String> = spec
        .reachable(None)
        .iter()
        .map(|i| format!("/p/{i}"))
        .collect();
    assert_eq!(found, all);
    assert_eq!(lines.len(), all.len());
    assert!(
        site.counts()
            .iter()
            .all(|(p, n)| *n == 1 || p == "/robots.txt"),
        "{:?}",
        site.counts()
    );
}

#[test]
fn save_keeps_each_body_once_by_its_sha256() {
    let site = Site::start(SiteSpec {
        pages: 20,
        links_per_page: 3,
        ..SiteSpec::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, save) = (dir.path().join("pages.jsonl"), dir.path().join("bodies"));
    run(Config {
        save: Some(save.clone()),
        ..config(format!("{}/p/0", site.url()), &out)
    });
    let pages = pages(&out);
    assert_eq!(pages.len(), 20);
    for page in &pages {
        let hex = page.sha256.as_deref().unwrap();
        let body = std::fs::read(save.join(&hex[..2]).join(&hex[2..])).unwrap();
        assert_eq!(body.len() as u64, page.bytes);
        assert!(
            String::from_utf8(body)
                .unwrap()
                .contains(page.title.as_deref().unwrap())
        );
    }
}
