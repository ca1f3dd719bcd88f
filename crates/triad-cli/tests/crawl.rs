//! `triad crawl` as a real process against generated sites on 127.0.0.1: bad command lines,
//! a dead server, a full disk, a closed pipe, and a crawl stopped by SIGINT or killed by
//! SIGKILL that resumes and finishes the same set without fetching a done page again.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;
use triad_crawl::site::{Site, SiteSpec};

fn triad() -> Command {
    let mut command = Command::cargo_bin("triad").unwrap();
    command.env("NO_COLOR", "1");
    command
}

fn spawn(args: &[&str]) -> Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("triad"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn path_of(page: &Value) -> String {
    url::Url::parse(page["url"].as_str().unwrap())
        .unwrap()
        .path()
        .to_owned()
}

fn wait_for_lines(path: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines_in(path) < n {
        assert!(Instant::now() < deadline, "the crawl never wrote {n} pages");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn lines_in(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

#[test]
fn bad_command_lines_exit_2_with_one_line() {
    for (args, says) in [
        (vec!["crawl", "ftp://127.0.0.1/"], "only http and https"),
        (vec!["crawl", "not a url"], "not a URL"),
        (
            vec!["crawl", "http://127.0.0.1:9/", "--include", "("],
            "--include",
        ),
        (
            vec!["crawl", "http://127.0.0.1:9/", "--resume", "s"],
            "--resume needs --output",
        ),
        (
            vec!["crawl", "http://127.0.0.1:9/", "--timeout", "0"],
            "--timeout",
        ),
        (
            vec!["crawl", "http://127.0.0.1:9/", "--scope", "planet"],
            "scope",
        ),
        (vec!["crawl"], "at least one URL"),
    ] {
        let out = triad().args(&args).assert().code(2).get_output().clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn a_state_or_output_that_is_not_ours_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, "not a crawl state").unwrap();
    let out = dir.path().join("pages.jsonl");
    let args = [
        "crawl",
        "http://127.0.0.1:9/",
        "--resume",
        state.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    triad()
        .args(args)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a triad crawl state"));
}

#[test]
fn a_dead_server_fails_its_pages_with_reasons_and_exits_1() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = triad()
        .args([
            "crawl",
            &format!("http://127.0.0.1:{port}/"),
            "--retries",
            "1",
            "--json",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["error"]["kind"], "robots");
    assert!(
        page["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{page}"
    );
    let summary: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(
        (summary["pages"].as_u64(), summary["ok"].as_u64()),
        (Some(1), Some(0))
    );
}

#[test]
fn a_full_disk_and_a_closed_pipe_are_errors() {
    let site = Site::start(SiteSpec {
        pages: 50,
        ..SiteSpec::default()
    })
    .unwrap();
    let start = format!("{}/p/0", site.url());
    triad()
        .args(["crawl", &start, "-o", "/dev/full"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("/dev/full"));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("triad"))
        .args(["crawl", &start])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(141));
}

fn resumed_crawl(kill: libc::c_int) {
    let spec = SiteSpec {
        pages: 300,
        links_per_page: 4,
        latency: Duration::from_millis(5),
        ..SiteSpec::default()
    };
    let site = Site::start(spec.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (
        dir.path().join("pages.jsonl"),
        dir.path().join("crawl.state"),
    );
    let start = format!("{}/p/0", site.url());
    let args = [
        "crawl",
        &start,
        "--concurrency",
        "4",
        "--per-host",
        "4",
        "--resume",
        state.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let child = spawn(&args);
    wait_for_lines(&out, 40);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, kill) }, 0);
    let first = child.wait_with_output().unwrap();
    let done_first: BTreeSet<String> = lines(&out).iter().map(path_of).collect();
    if kill == libc::SIGINT {
        assert_eq!(first.status.code(), Some(130));
        // With --output, the summary is on stdout; it says how to go on.
        let said = String::from_utf8_lossy(&first.stdout);
        assert!(
            said.contains("(interrupted)") && said.contains("--resume"),
            "{said}"
        );
    }
    assert!(done_first.len() < 300, "the crawl ended before the signal");

    triad().args(args).assert().success();
    let pages = lines(&out);
    let found: BTreeSet<String> = pages.iter().map(path_of).collect();
    let all: BTreeSet<String> = spec
        .reachable(None)
        .iter()
        .map(|i| format!("/p/{i}"))
        .collect();
    assert_eq!(found, all);
    assert_eq!(pages.len(), all.len(), "a page has two lines");
    let counts: HashMap<String, usize> = site.counts();
    for page in &done_first {
        assert_eq!(counts[page], 1, "{page} was done, then fetched again");
    }
    if kill == libc::SIGINT {
        // A clean stop writes every page it fetched: nothing at all is fetched twice.
        assert!(
            counts.iter().all(|(p, n)| *n == 1 || p == "/robots.txt"),
            "{counts:?}"
        );
    }
}

#[test]
fn sigint_stops_cleanly_and_the_same_command_finishes_the_crawl() {
    resumed_crawl(libc::SIGINT);
}

#[test]
fn after_sigkill_the_same_command_finishes_the_crawl() {
    resumed_crawl(libc::SIGKILL);
}
