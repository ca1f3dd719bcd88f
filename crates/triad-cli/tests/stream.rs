//! `triad stream` as real processes against a real `redis-server` of each test's own (started
//! on a free loopback port in a temp dir by `triad_redis::server`, stopped when dropped):
//! consumers killed and Redis restarted without a message lost or stored twice, pub/sub
//! drops counted, malformed messages dead-lettered, memory held flat by backpressure, a
//! graceful stop, reconnects after a killed connection, and Prometheus text.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;
use triad_redis::server::{Persistence, RedisServer};

fn triad() -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("triad"));
    command.env("NO_COLOR", "1").stdin(Stdio::null());
    command
}

/// `triad stream` reading `stream` in group `g`, with a `--json` summary.
fn group_reader(redis: &RedisServer, stream: &str) -> Command {
    let mut command = triad();
    command
        .args([
            "stream",
            "--redis",
            &redis.url(),
            "--stream",
            stream,
            "--group",
            "g",
        ])
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A consumer of `stream` in group `g`, storing into `database`, with `extra` flags.
fn consumer(
    redis: &RedisServer,
    stream: &str,
    name: &str,
    database: &Path,
    extra: &[&str],
) -> Child {
    group_reader(redis, stream)
        .args(["--consumer", name, "--sqlite"])
        .arg(database)
        .args(extra)
        .spawn()
        .unwrap()
}

/// `triad stream produce` with `args`, to the end; panics unless it succeeds.
fn produce(redis: &RedisServer, args: &[&str]) -> serde_json::Value {
    let output = triad()
        .args(["stream", "produce", "--redis", &redis.url(), "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `count` messages to `stream` at `rate` a second, on a thread of their own.
fn produce_in_background(
    redis: &RedisServer,
    stream: &str,
    rate: u64,
    count: u64,
) -> std::thread::JoinHandle<Output> {
    let mut command = triad();
    command
        .args([
            "stream",
            "produce",
            "--redis",
            &redis.url(),
            "--stream",
            stream,
        ])
        .args(["--rate", &rate.to_string(), "--count", &count.to_string()]);
    std::thread::spawn(move || command.output().unwrap())
}

fn connection(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

/// Sends SIGTERM and waits (at most a minute) for the process's end and output.
fn stop(child: Child) -> Output {
    signal(&child, rustix::process::Signal::TERM);
    wait_bounded(child, Duration::from_secs(60))
}

fn wait_bounded(mut child: Child, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "still running after {within:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The `--json` summary on the last line of stdout.
fn summary(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no summary; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(last).unwrap()
}

fn assert_success(status: ExitStatus, output: &Output) {
    assert!(
        status.success(),
        "{status}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until `ready` holds, for at most `within`.
fn eventually(within: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rows(database: &Path) -> i64 {
    if !database.exists() {
        return 0;
    }
    let connection = rusqlite::Connection::open(database).unwrap();
    connection
        .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))
        .unwrap_or(0)
}

/// The `seq` of every stored payload, sorted.
fn stored_sequence_numbers(database: &Path) -> Vec<u64> {
    let connection = rusqlite::Connection::open(database).unwrap();
    let mut statement = connection.prepare("SELECT payload FROM messages").unwrap();
    let mut numbers: Vec<u64> = statement
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|payload| {
            let value: serde_json::Value = serde_json::from_slice(&payload.unwrap()).unwrap();
            value["seq"].as_u64().unwrap()
        })
        .collect();
    numbers.sort_unstable();
    numbers
}

fn pending(redis: &RedisServer, stream: &str) -> u64 {
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg("g")
        .query(&mut connection(redis))
        .unwrap();
    match reply {
        redis::Value::Array(fields) => match fields.first() {
            Some(redis::Value::Int(count)) => *count as u64,
            other => panic!("XPENDING: {other:?}"),
        },
        other => panic!("XPENDING: {other:?}"),
    }
}

struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

#[test]
fn three_consumers_lose_nothing_and_store_nothing_twice_when_one_is_killed_and_redis_restarts() {
    const MESSAGES: u64 = 20_000;
    let mut redis = RedisServer::start_with(Persistence::Aof).unwrap();
    let scratch = Scratch::new();
    let database = scratch.path("out.db");
    // Idle entries of the killed consumer are claimed after a second.
    let flags = [
        "--claim-idle-ms",
        "1000",
        "--concurrency",
        "64",
        "--wait-ms",
        "2",
    ];
    let mut consumers: Vec<Child> = ["a", "b", "c"]
        .iter()
        .map(|name| consumer(&redis, "events", name, &database, &flags))
        .collect();
    let producer = produce_in_background(&redis, "events", 8000, MESSAGES);
    eventually(Duration::from_secs(60), "the first rows", || {
        rows(&database) > 2_000
    });
    let killed = consumers.remove(0);
    signal(&killed, rustix::process::Signal::KILL);
    let killed = wait_bounded(killed, Duration::from_secs(10));
    assert!(!killed.status.success());
    eventually(Duration::from_secs(60), "more rows", || {
        rows(&database) > 6_000
    });
    redis.restart().unwrap();
    // The producer may see the restart too: it sends again what was not acknowledged, so a
    // message can be in the stream twice under two ids; the count of distinct `seq` is what
    // must be exact, and the ids of the stream must each be stored once.
    let produced = producer.join().unwrap();
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let length: u64 = connection(&redis).xlen("events").unwrap();
    assert!(length >= MESSAGES, "the stream holds {length}");
    eventually(Duration::from_secs(120), "every entry stored", || {
        rows(&database) as u64 >= length
    });
    eventually(Duration::from_secs(60), "nothing pending", || {
        pending(&redis, "events") == 0
    });
    let mut redelivered = 0;
    for survivor in consumers {
        let output = stop(survivor);
        assert_success(output.status, &output);
        let metrics = &summary(&output)["metrics"];
        assert!(
            metrics["reconnects"].as_u64().unwrap() >= 1,
            "Redis restarted: {metrics}"
        );
        redelivered += metrics["redelivered"].as_u64().unwrap();
    }
    assert!(
        redelivered > 0,
        "the killed consumer's pending entries were claimed"
    );
    assert_eq!(
        rows(&database) as u64,
        length,
        "each entry stored exactly once"
    );
    let mut numbers = stored_sequence_numbers(&database);
    numbers.dedup();
    assert_eq!(
        numbers,
        (0..MESSAGES).collect::<Vec<_>>(),
        "every produced message stored"
    );
}

#[test]
fn pub_sub_counts_what_overflows_its_buffer_as_dropped() {
    let redis = RedisServer::start().unwrap();
    let scratch = Scratch::new();
    let database = scratch.path("out.db");
    let child = triad()
        .args([
            "stream",
            "--redis",
            &redis.url(),
            "--channel",
            "news",
            "--json",
        ])
        .args([
            "--buffer",
            "10",
            "--concurrency",
            "2",
            "--wait-ms",
            "20",
            "--sqlite",
        ])
        .arg(&database)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(30), "the subscriber", || {
        let subscribers: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("news")
            .query(&mut connection(&redis))
            .unwrap();
        subscribers.first().is_some_and(|(_, count)| *count == 1)
    });
    let produced = produce(&redis, &["--channel", "news", "--count", "2000"]);
    assert_eq!(
        produced["deliveries"], 2000,
        "the subscriber got every message"
    );
    std::thread::sleep(Duration::from_millis(500));
    let output = stop(child);
    assert_success(output.status, &output);
    let metrics = &summary(&output)["metrics"];
    let received = metrics["received"].as_u64().unwrap();
    let dropped = metrics["dropped"].as_u64().unwrap();
    let committed = metrics["committed"].as_u64().unwrap();
    assert_eq!(received, 2000, "{metrics}");
    assert!(
        dropped > 1000,
        "a 10-message buffer before 2 slow handlers overflows: {metrics}"
    );
    assert_eq!(
        committed + dropped,
        received,
        "each message either stored or counted: {metrics}"
    );
    assert_eq!(rows(&database) as u64, committed);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("at-most-once"),
        "the start line says what pub/sub promises: {stderr}"
    );
}

#[test]
fn malformed_and_oversized_messages_go_to_the_dead_letters_with_their_reasons() {
    let redis = RedisServer::start().unwrap();
    let scratch = Scratch::new();
    let database = scratch.path("out.db");
    let mut redis_connection = connection(&redis);
    let add = |connection: &mut redis::Connection, fields: &[(&str, &[u8])]| -> String {
        redis::cmd("XADD")
            .arg("events")
            .arg("*")
            .arg(fields)
            .query(connection)
            .unwrap()
    };
    let good = add(&mut redis_connection, &[("data", b"{\"seq\":0}")]);
    let not_json = add(&mut redis_connection, &[("data", b"{\"seq\":")]);
    let not_utf8 = add(&mut redis_connection, &[("data", b"\"\xff\xfe\"")]);
    let oversized = add(&mut redis_connection, &[("data", &[b' '; 300])]);
    let fields_only = add(
        &mut redis_connection,
        &[("user", b"ada"), ("action", b"login")],
    );
    let child = consumer(&redis, "events", "a", &database, &["--max-size", "256"]);
    eventually(Duration::from_secs(30), "the dead letters", || {
        connection(&redis).xlen::<_, u64>("events:dead").unwrap() == 3
    });
    eventually(Duration::from_secs(30), "nothing pending", || {
        pending(&redis, "events") == 0
    });
    let output = stop(child);
    assert_success(output.status, &output);
    let metrics = &summary(&output)["metrics"];
    assert_eq!(metrics["dead_lettered"], 3, "{metrics}");
    assert_eq!(metrics["committed"], 2, "{metrics}");
    let dead: redis::streams::StreamRangeReply =
        redis_connection.xrange_all("events:dead").unwrap();
    let reasons: Vec<(String, String)> = dead
        .ids
        .iter()
        .map(|entry| {
            let id: String = entry.get("id").unwrap();
            let reason: String = entry.get("reason").unwrap();
            (id, reason)
        })
        .collect();
    let reason_of = |id: &str| {
        reasons
            .iter()
            .find(|(dead_id, _)| dead_id == id)
            .map(|(_, reason)| reason.clone())
            .unwrap_or_else(|| panic!("{id} is not among the dead letters: {reasons:?}"))
    };
    assert!(reason_of(&not_json).starts_with("not JSON"), "{reasons:?}");
    assert!(reason_of(&not_utf8).contains("UTF-8"), "{reasons:?}");
    assert!(
        reason_of(&oversized).starts_with("oversized"),
        "{reasons:?}"
    );
    let stored: Vec<String> = {
        let connection = rusqlite::Connection::open(&database).unwrap();
        let mut statement = connection
            .prepare("SELECT id FROM messages ORDER BY id")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut expected = vec![good, fields_only];
    expected.sort();
    assert_eq!(
        stored, expected,
        "the good entry and the one of plain fields are stored"
    );
}

/// The process's peak resident set, in KiB.
fn peak_rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_slow_sink_holds_the_reading_back_so_memory_stays_flat() {
    let redis = RedisServer::start().unwrap();
    let scratch = Scratch::new();
    let database = scratch.path("out.db");
    // 64 MiB waiting in the stream; the handlers take about 160 a second.
    produce(
        &redis,
        &["--stream", "events", "--count", "65536", "--size", "1024"],
    );
    let child = consumer(
        &redis,
        "events",
        "a",
        &database,
        &["--concurrency", "16", "--wait-ms", "100"],
    );
    eventually(Duration::from_secs(30), "the first rows", || {
        rows(&database) > 50
    });
    for _ in 0..20 {
        let in_flight = pending(&redis, "events");
        assert!(
            in_flight <= 16,
            "read past the 16 it can handle: {in_flight} pending"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let peak = peak_rss_kib(&child);
    let output = stop(child);
    assert_success(output.status, &output);
    assert!(
        peak < 48 * 1024,
        "peak RSS {peak} KiB with 64 MiB waiting in the stream"
    );
    assert_eq!(
        pending(&redis, "events"),
        0,
        "a stop acknowledges what it stored"
    );
}

#[test]
fn a_graceful_stop_finishes_what_is_in_flight_and_a_second_run_takes_the_rest() {
    const MESSAGES: u64 = 5_000;
    let redis = RedisServer::start().unwrap();
    let scratch = Scratch::new();
    let database = scratch.path("out.db");
    produce(
        &redis,
        &["--stream", "events", "--count", &MESSAGES.to_string()],
    );
    let flags = ["--concurrency", "50", "--wait-ms", "50"];
    let first = consumer(&redis, "events", "a", &database, &flags);
    eventually(Duration::from_secs(30), "the first rows", || {
        rows(&database) > 200
    });
    let output = stop(first);
    assert_success(output.status, &output);
    let metrics = &summary(&output)["metrics"];
    assert_eq!(
        pending(&redis, "events"),
        0,
        "everything in flight was stored and acked"
    );
    assert_eq!(metrics["in_flight"], 0, "{metrics}");
    let stored = rows(&database) as u64;
    assert_eq!(metrics["committed"].as_u64().unwrap(), stored, "{metrics}");
    assert!(stored < MESSAGES, "stopped mid-run: {stored}");
    let second = consumer(&redis, "events", "b", &database, &["--concurrency", "500"]);
    eventually(Duration::from_secs(60), "the rest", || {
        rows(&database) as u64 == MESSAGES
    });
    let output = stop(second);
    assert_success(output.status, &output);
    assert_eq!(
        stored_sequence_numbers(&database),
        (0..MESSAGES).collect::<Vec<_>>()
    );
}

#[test]
fn connections_killed_by_redis_are_made_again_and_nothing_is_lost() {
    const MESSAGES: u64 = 6_000;
    let redis = RedisServer::start().unwrap();
    let scratch = Scratch::new();
    let database = scratch.path("out.db");
    let child = consumer(&redis, "events", "a", &database, &["--wait-ms", "1"]);
    let producer = produce_in_background(&redis, "events", 3000, MESSAGES);
    eventually(Duration::from_secs(30), "the first rows", || {
        rows(&database) > 0
    });
    for _ in 0..3 {
        let _: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query(&mut connection(&redis))
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let produced = producer.join().unwrap();
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let length: u64 = connection(&redis).xlen("events").unwrap();
    eventually(Duration::from_secs(60), "every entry stored", || {
        rows(&database) as u64 == length
    });
    let output = stop(child);
    assert_success(output.status, &output);
    let metrics = &summary(&output)["metrics"];
    assert!(metrics["reconnects"].as_u64().unwrap() >= 1, "{metrics}");
    let mut numbers = stored_sequence_numbers(&database);
    numbers.dedup();
    assert_eq!(numbers, (0..MESSAGES).collect::<Vec<_>>());
}

/// Checks `text` against Prometheus's text exposition format (version 0.0.4): comment lines
/// are `# HELP name text` or `# TYPE name counter|gauge|histogram|summary|untyped`, and come
/// before the samples of their metric; each sample is `name{label="value",...} number`; a
/// counter's name ends in `_total`; a histogram has `_bucket` samples with ascending `le`
/// ending at `+Inf` whose count is its `_count`, and a `_sum`. Returns name -> value.
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, f64> {
    let name_ok = |name: &str| {
        let mut characters = name.chars();
        characters
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && characters.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut types = std::collections::HashMap::new();
    let mut samples = std::collections::HashMap::new();
    let mut buckets: Vec<(String, f64, f64)> = Vec::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name, rest) = (words.next(), words.next(), words.next());
            let name = name.unwrap_or_else(|| panic!("bad comment: {line}"));
            assert!(name_ok(name), "bad name: {line}");
            if kind == Some("TYPE") {
                let kind = rest.unwrap_or_default();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "bad type: {line}"
                );
                assert!(
                    types.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "twice: {line}"
                );
                if kind == "counter" {
                    assert!(
                        name.ends_with("_total"),
                        "a counter's name ends in _total: {line}"
                    );
                }
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            number => number
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').expect("labels close")),
            None => (series, ""),
        };
        assert!(name_ok(name), "bad name: {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| types.contains_key(*base))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "a sample before its TYPE line: {line}"
        );
        for label in labels.split(',').filter(|label| !label.is_empty()) {
            let (key, quoted) = label
                .split_once('=')
                .unwrap_or_else(|| panic!("bad label: {line}"));
            assert!(
                name_ok(key) && quoted.starts_with('"') && quoted.ends_with('"'),
                "{line}"
            );
            if key == "le" && name.ends_with("_bucket") {
                let bound = &quoted[1..quoted.len() - 1];
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().unwrap()
                };
                buckets.push((family.to_owned(), bound, value));
            }
        }
        samples.insert(series.to_owned(), value);
    }
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mine: Vec<&(String, f64, f64)> = buckets.iter().filter(|(f, ..)| f == family).collect();
        assert!(
            mine.windows(2)
                .all(|pair| pair[0].1 < pair[1].1 && pair[0].2 <= pair[1].2)
        );
        let last = mine.last().expect("a histogram has buckets");
        assert_eq!(last.1, f64::INFINITY, "{family} ends at +Inf");
        assert_eq!(
            Some(&last.2),
            samples.get(&format!("{family}_count")),
            "{family}"
        );
        assert!(samples.contains_key(&format!("{family}_sum")), "{family}");
    }
    samples
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get_metrics(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    Some(body.to_owned())
}

#[test]
fn the_metrics_endpoint_speaks_prometheus_text() {
    let redis = RedisServer::start().unwrap();
    let scratch = Scratch::new();
    let database = scratch.path("out.db");
    produce(&redis, &["--stream", "events", "--count", "300"]);
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let child = consumer(&redis, "events", "a", &database, &["--metrics", &address]);
    eventually(Duration::from_secs(30), "every row", || {
        rows(&database) == 300
    });
    let mut samples = Default::default();
    eventually(Duration::from_secs(30), "the commits counted", || {
        samples = get_metrics(port)
            .map(|body| parse_prometheus(&body))
            .unwrap_or_default();
        samples.get("triad_stream_messages_committed_total") == Some(&300.0)
    });
    assert_eq!(
        samples.get("triad_stream_messages_received_total"),
        Some(&300.0),
        "{samples:?}"
    );
    assert_eq!(
        samples.get("triad_stream_latency_seconds_count"),
        Some(&300.0),
        "{samples:?}"
    );
    let output = stop(child);
    assert_success(output.status, &output);
}

#[test]
fn an_unreachable_redis_or_an_impossible_table_is_one_clear_line() {
    let port = free_port();
    let output = triad()
        .args([
            "stream",
            "--redis",
            &format!("redis://127.0.0.1:{port}"),
            "--stream",
            "s",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");

    let redis = RedisServer::start().unwrap();
    let scratch = Scratch::new();
    let output = triad()
        .args([
            "stream",
            "--redis",
            &redis.url(),
            "--stream",
            "s",
            "--table",
            "x;DROP",
            "--sqlite",
        ])
        .arg(scratch.path("out.db"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("--table"));
}

#[test]
fn exec_workers_that_die_mid_batch_lose_nothing_and_die_with_the_processor() {
    const MESSAGES: u64 = 2_000;
    let redis = RedisServer::start().unwrap();
    let scratch = Scratch::new();
    let seen = scratch.path("seen.jsonl");
    let pid_file = scratch.path("worker.pid");
    produce(
        &redis,
        &["--stream", "events", "--count", &MESSAGES.to_string()],
    );
    // Each worker answers 50 messages, keeping a copy of each, then exits mid-batch.
    let worker = format!(
        "echo $$ >> {pids}; head -n 50 | tee -a {seen}",
        pids = pid_file.display(),
        seen = seen.display()
    );
    let child = group_reader(&redis, "events")
        .args([
            "--exec",
            &worker,
            "--exec-workers",
            "2",
            "--claim-idle-ms",
            "200",
        ])
        .args(["--max-deliveries", "1000"])
        .spawn()
        .unwrap();
    let distinct = || -> usize {
        let text = std::fs::read_to_string(&seen).unwrap_or_default();
        let numbers: std::collections::BTreeSet<u64> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|value| value["seq"].as_u64())
            .collect();
        numbers.len()
    };
    eventually(
        Duration::from_secs(90),
        "every message through a worker",
        || distinct() as u64 == MESSAGES,
    );
    eventually(Duration::from_secs(30), "nothing pending", || {
        pending(&redis, "events") == 0
    });
    let pids: Vec<i32> = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert!(pids.len() > 2, "workers were started again: {pids:?}");
    let newest = *pids.last().unwrap();
    signal(&child, rustix::process::Signal::KILL);
    let output = wait_bounded(child, Duration::from_secs(10));
    assert!(!output.status.success());
    eventually(
        Duration::from_secs(10),
        "the worker gone with its processor",
        || {
            !Path::new(&format!("/proc/{newest}")).exists()
                || std::fs::read_to_string(format!("/proc/{newest}/stat"))
                    .is_ok_and(|stat| stat.split(' ').nth(2) == Some("Z"))
        },
    );
}

#[test]
fn an_exec_command_that_is_not_there_is_refused_before_any_message() {
    let redis = RedisServer::start().unwrap();
    let output = triad()
        .args(["stream", "--redis", &redis.url(), "--stream", "events"])
        .args(["--exec", "/nonexistent/handler --flag"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("command not found"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A loopback HTTP/1.1 server of the test's own (keep-alive, Content-Length bodies): it
/// answers 503 with `Retry-After: 1` to the first `busy` requests, 400 to bodies holding
/// `"bad":true`, 200 to the rest, and keeps every body it answered 200.
struct HookServer {
    port: u16,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl HookServer {
    fn start(busy: u64) -> HookServer {
        use std::io::BufRead;
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (kept, counted) = (accepted.clone(), requests.clone());
        std::thread::spawn(move || {
            for connection in listener.incoming() {
                let Ok(connection) = connection else { return };
                let (kept, counted) = (kept.clone(), counted.clone());
                std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(connection.try_clone().unwrap());
                    let mut writer = connection;
                    loop {
                        let mut length = 0;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            if let Some((name, value)) = line.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        let number = counted.fetch_add(1, Ordering::SeqCst);
                        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        let head = if number < busy {
                            "503 Service Unavailable\r\nRetry-After: 1"
                        } else if value["bad"] == true {
                            "400 Bad Request"
                        } else {
                            kept.lock().unwrap().push(value);
                            "200 OK"
                        };
                        let response = format!("HTTP/1.1 {head}\r\nContent-Length: 0\r\n\r\n");
                        if writer.write_all(response.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        HookServer {
            port,
            accepted,
            requests,
        }
    }
}

#[test]
fn the_webhook_is_retried_after_what_it_asks_and_refusals_go_to_the_dead_letters() {
    let redis = RedisServer::start().unwrap();
    let hook = HookServer::start(3);
    let mut redis_connection = connection(&redis);
    for number in 0..20 {
        let payload = if number % 5 == 4 {
            format!("{{\"seq\":{number},\"bad\":true}}")
        } else {
            format!("{{\"seq\":{number}}}")
        };
        let _: String = redis_connection
            .xadd("events", "*", &[("data", payload)])
            .unwrap();
    }
    let child = group_reader(&redis, "events")
        .args(["--webhook", &format!("http://127.0.0.1:{}/hook", hook.port)])
        .spawn()
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "16 accepted and 4 dead letters",
        || {
            hook.accepted.lock().unwrap().len() == 16
                && connection(&redis).xlen::<_, u64>("events:dead").unwrap() == 4
        },
    );
    eventually(Duration::from_secs(30), "nothing pending", || {
        pending(&redis, "events") == 0
    });
    let output = stop(child);
    assert_success(output.status, &output);
    let mut seen: Vec<u64> = hook
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|value| value["seq"].as_u64().unwrap())
        .collect();
    seen.sort_unstable();
    let expected: Vec<u64> = (0..20).filter(|number| number % 5 != 4).collect();
    assert_eq!(
        seen, expected,
        "each good message posted once it was let through"
    );
    assert!(
        hook.requests.load(std::sync::atomic::Ordering::SeqCst) >= 23,
        "the three 503s were tried again"
    );
    let dead: redis::streams::StreamRangeReply =
        redis_connection.xrange_all("events:dead").unwrap();
    for entry in &dead.ids {
        let reason: String = entry.get("reason").unwrap();
        assert!(reason.contains("400"), "{reason}");
    }
}
