//! Memory of the crawl frontier at scale: N URLs queued (seen set + per-host queues, over 1,000
//! hosts — loopback ports, though nothing is fetched), all handed out again in order; or, with `seen`, N URLs done (the seen set alone,
//! what a finished page costs). Prints the resident bytes per URL.
//!
//! `cargo run --release -p triad-crawl --example frontier_scale -- [N] [seen]`
//! (N defaults to 10,000,000)

use std::sync::Arc;
use std::time::Duration;

use triad_crawl::frontier::{Frontier, Job, Next, Robots};
use triad_crawl::robots::Rules;
use triad_crawl::urls::key;

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(10_000_000, |s| s.parse().expect("a count"));
    let hosts = 1000;
    let base = rss();
    let mut frontier = Frontier::new(Duration::ZERO);
    if std::env::args().nth(2).as_deref() == Some("seen") {
        for i in 0..n {
            let url = format!(
                "http://127.0.0.1:{}/section/{}/page-{i}.html",
                10_000 + i % hosts,
                i % 97
            );
            assert!(frontier.see(key(&url)));
        }
        let seen = rss() - base;
        println!(
            "{n} URLs done (the seen set alone): {:.0} MiB resident, {:.0} bytes a URL",
            seen as f64 / (1 << 20) as f64,
            seen as f64 / n as f64
        );
        return;
    }
    let parent: Arc<str> = Arc::from("http://127.0.0.1:10000/index.html");
    let mut total_len = 0;
    for i in 0..n {
        let h = i % hosts;
        let url = format!(
            "http://127.0.0.1:{}/section/{}/page-{i}.html",
            10_000 + h,
            i % 97
        );
        total_len += url.len();
        assert!(frontier.see(key(&url)));
        let authority = format!("127.0.0.1:{}", 10_000 + h);
        let origin = format!("http://127.0.0.1:{}", 10_000 + h);
        let job = Job {
            url: url.into(),
            depth: 3,
            parent: Some(parent.clone()),
            chain: None,
        };
        frontier.push(&authority, &origin, job, false);
    }
    let queued = rss() - base;
    println!(
        "{n} URLs queued (mean {} bytes of URL): {:.0} MiB resident, {:.0} bytes a URL",
        total_len / n,
        queued as f64 / (1 << 20) as f64,
        queued as f64 / n as f64
    );
    for id in 0..hosts {
        frontier.host(id).robots = Robots::Known(Arc::new(Rules::AllowAll));
    }
    let now = std::time::Instant::now();
    let mut handed = 0;
    while let Next::Fetch(id, job) = frontier.next(now, usize::MAX, true) {
        drop(job);
        frontier.host(id).in_flight = 0;
        handed += 1;
    }
    assert_eq!(handed, n);
    println!("all {handed} handed out again");
}
