//! The cluster with a real `redis-server` (on a free loopback port, started here) and real
//! `triad worker` processes: 20,000 tasks while one worker host is killed, another stopped past
//! its lease and woken, and Redis restarted (AOF on) — every task gets exactly one result, each
//! correct; a task whose worker dies goes to the dead letters; a task the workers lack is a
//! clear error; a cancelled client leaves its queued tasks unrun.
//!
//! The hosts here are processes on 127.0.0.1; `cluster_hosts.rs` puts a worker on a host of its
//! own (a network namespace) where that is permitted.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use triad::TaskError;
use triad::workloads::{abort_process, sleep_ms, sum_squares};
use triad_cluster::Cluster;
use triad_redis::server::{Persistence, RedisServer};

struct Workers(Vec<Child>);

impl Workers {
    fn start(url: &str, queue: &str, count: usize, processes: usize, lease: &str) -> Workers {
        Workers(
            (0..count)
                .map(|i| {
                    Command::new(assert_cmd::cargo::cargo_bin("triad"))
                        .args(["worker", "--redis", url, "--queue", queue, "--lease", lease])
                        .args([
                            "--workers",
                            &processes.to_string(),
                            "--name",
                            &format!("w{i}"),
                        ])
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        )
    }

    fn signal(&self, i: usize, signal: libc::c_int) {
        // SAFETY: kill(2) on a child of this test.
        assert_eq!(unsafe { libc::kill(self.0[i].id() as i32, signal) }, 0);
    }

    /// SIGTERM to all that live; their stderr reports.
    fn stop(mut self) -> Vec<String> {
        let children = std::mem::take(&mut self.0);
        children
            .into_iter()
            .map(|child| {
                // SAFETY: kill(2) on a child of this test.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let out = child.wait_with_output().unwrap();
                String::from_utf8_lossy(&out.stderr).into_owned()
            })
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn squares_below(n: u64) -> u128 {
    let n = u128::from(n);
    if n == 0 {
        0
    } else {
        (n - 1) * n * (2 * n - 1) / 6
    }
}

#[test]
fn every_task_gets_one_correct_result_through_a_kill_a_stop_and_a_redis_restart() {
    let mut redis = RedisServer::start_with(Persistence::Aof).unwrap();
    let url = redis.url();
    let workers = Workers::start(&url, "storm", 3, 2, "1.5");
    let cluster = Cluster::builder(&url)
        .queue("storm")
        .chunk_size(10)
        .retries(50)
        .build()
        .unwrap();
    let n = 20_000u64;
    let inputs: Vec<u64> = (0..n).map(|i| 2000 + i % 3000).collect();
    let mut results = Vec::with_capacity(n as usize);
    let mut waker = None;
    let started = Instant::now();
    for (i, result) in cluster.imap(sum_squares, inputs.clone()).enumerate() {
        results.push(result);
        match i {
            2_000 => workers.signal(0, libc::SIGKILL),
            5_000 => {
                workers.signal(1, libc::SIGSTOP);
                let pid = workers.0[1].id() as i32;
                waker = Some(std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(4));
                    // SAFETY: kill(2) on a child of this test.
                    unsafe { libc::kill(pid, libc::SIGCONT) };
                }));
            }
            9_000 => redis.restart().unwrap(),
            _ => {}
        }
    }
    waker.unwrap().join().unwrap();
    assert_eq!(results.len(), n as usize);
    for (input, result) in inputs.iter().zip(&results) {
        assert_eq!(
            result.as_ref().ok(),
            Some(&squares_below(*input)),
            "sum_squares({input})"
        );
    }
    let reports = workers.stop();
    let taken_over: u64 = reports
        .iter()
        .filter_map(|r| {
            r.split(" chunks taken over")
                .next()?
                .rsplit(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        taken_over > 0,
        "no chunk was taken over from the killed or stopped worker: {reports:?}"
    );
    eprintln!(
        "{n} tasks in {:.1} s; {} duplicate results dropped; {taken_over} chunks taken over",
        started.elapsed().as_secs_f64(),
        cluster.duplicates()
    );
}

#[triad::task]
fn only_in_the_client(x: u64) -> u64 {
    x
}

#[test]
fn dead_letters_missing_tasks_and_cancellation() {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let workers = Workers::start(&url, "q", 1, 1, "5");

    let cluster = Cluster::builder(&url)
        .queue("q")
        .retries(2)
        .build()
        .unwrap();
    let died = cluster.submit(abort_process, 1).wait();
    match died {
        Err(TaskError::Failed(reason)) => {
            assert!(reason.contains("its worker died 3 times"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let status = triad_cluster::status::status(&url, "q").unwrap();
    assert_eq!(status.dead_letters, 1);
    assert_eq!(status.workers.len(), 1);

    let missing = cluster.submit(only_in_the_client, 7).wait();
    assert!(
        matches!(missing, Err(TaskError::UnknownTask(ref name)) if name.ends_with("only_in_the_client")),
        "{missing:?}"
    );

    // Cancel with most of 400 slow tasks still queued: they never run.
    let handles: Vec<_> = (0..400).map(|_| cluster.submit(sleep_ms, 20)).collect();
    let mut handles = handles.into_iter();
    for h in handles.by_ref().take(5) {
        assert_eq!(h.wait(), Ok(20));
    }
    cluster.cancel();
    let rest: Vec<_> = handles.map(|h| h.wait()).collect();
    assert!(
        rest.iter().all(|r| *r == Err(TaskError::Cancelled)),
        "{rest:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let status = triad_cluster::status::status(&url, "q").unwrap();
    assert!(status.depth <= 4, "{status:?}");
    let done = status.workers[0].done;
    assert!(done < 100, "{done} tasks ran after the cancel");
    drop(workers);
}

#[test]
fn a_runner_and_a_pipeline_stage_spread_over_the_cluster() {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let workers = Workers::start(&url, "r", 2, 1, "5");
    let cluster = std::sync::Arc::new(
        Cluster::builder(&url)
            .queue("r")
            .parallelism(2)
            .build()
            .unwrap(),
    );
    let runner = triad::Runner::remote(cluster.clone()).chunk_size(25);
    assert_eq!(runner.mode(), triad::Mode::Remote(2));
    let squares = runner.map(sum_squares, 0..1000u64);
    assert!(
        squares
            .iter()
            .zip(0..)
            .all(|(r, n)| r.as_ref().ok() == Some(&squares_below(n)))
    );
    let unordered: std::collections::BTreeSet<usize> = runner
        .imap_unordered(sum_squares, 0..300u64)
        .map(|(i, r)| {
            assert!(r.is_ok());
            i
        })
        .collect();
    assert_eq!(unordered.len(), 300);

    use triad::pipeline::{Pipeline, Stage};
    let results: Vec<u128> = Pipeline::new()
        .then(Stage::remote("squares", cluster.clone(), sum_squares))
        .run(0..200u64)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(results, (0..200).map(squares_below).collect::<Vec<_>>());
    drop(workers);
}

#[test]
fn triad_map_spreads_records_over_the_cluster_in_order() {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let workers = Workers::start(&url, "etl", 2, 1, "5");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.jsonl");
    let records: String = (0..3000)
        .map(|i| {
            format!(
                "{{\"id\": {i}, \"name\": \"user {i}\", \"value\": {}}}\n",
                i * 7 % 100
            )
        })
        .collect();
    std::fs::write(&input, records).unwrap();
    let (here, there) = (
        dir.path().join("here.jsonl"),
        dir.path().join("there.jsonl"),
    );
    let map = |extra: &[&str], out: &std::path::Path| {
        let status = Command::new(assert_cmd::cargo::cargo_bin("triad"))
            .args([
                "map",
                "--task",
                "seed-transform",
                "--batch",
                "100",
                "--output",
            ])
            .arg(out)
            .args(extra)
            .arg(&input)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    };
    map(&[], &here);
    map(&["--redis", &url, "--queue", "etl"], &there);
    let (here, there) = (
        std::fs::read_to_string(here).unwrap(),
        std::fs::read_to_string(there).unwrap(),
    );
    assert_eq!(there.lines().count(), 3000);
    assert_eq!(here, there);
    // Heartbeats come every second.
    std::thread::sleep(Duration::from_millis(1500));
    let done: u64 = triad_cluster::status::status(&url, "etl")
        .unwrap()
        .workers
        .iter()
        .map(|w| w.done)
        .sum();
    assert!(done >= 30, "the workers ran {done} batches");
    drop(workers);
}
