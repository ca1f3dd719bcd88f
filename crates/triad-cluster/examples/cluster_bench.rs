//! The cluster's cost on one machine: tasks/s against chunk size, for tiny tasks and for 1 ms
//! tasks, beside the local `ProcessPool` doing the same work, and what each task costs Redis
//! (commands and bytes, from its own `INFO stats`). It starts its own `redis-server` on a free
//! loopback port and one worker (this program again, serving with a pool of 2 processes).
//!
//! `cargo run --release -p triad-cluster --example cluster_bench -- [ROUNDS]`

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use triad::workloads::{identity, spin_us};
use triad_cluster::Cluster;
use triad_cluster::worker::{WorkerOptions, serve};
use triad_redis::server::RedisServer;

fn stats(url: &str) -> (u64, u64) {
    let client = redis::Client::open(url).expect("a URL");
    let mut c = client.get_connection().expect("redis");
    let info: String = redis::cmd("INFO").arg("stats").query(&mut c).expect("INFO");
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        field("total_commands_processed"),
        field("total_net_input_bytes") + field("total_net_output_bytes"),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    triad::init();
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("worker") {
        let url = args.next().expect("a URL");
        let options = WorkerOptions {
            url,
            queue: "bench".into(),
            workers: 2,
            lease: Duration::from_secs(30),
            name: None,
        };
        serve(options, Arc::new(AtomicBool::new(false))).expect("the worker serves");
        return;
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    let mut worker: Child = Command::new(std::env::current_exe().expect("this program"))
        .args(["worker", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("a worker");
    let pool = triad::ProcessPool::new(2).expect("a local pool");
    println!(
        "| tasks | chunk | cluster tasks/s | local pool tasks/s | cluster cost per task | Redis commands per task | Redis bytes per task |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (label, us, count) in [
        ("tiny (identity)", 0u64, 20_000u64),
        ("1 ms (spin_us 1000)", 1000, 2_000),
    ] {
        for chunk in [1usize, 10, 100, 1000] {
            let cluster = Cluster::builder(&url)
                .queue("bench")
                .chunk_size(chunk)
                .build()
                .expect("client");
            let (mut remote, mut local, mut ops, mut bytes) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                let (c0, b0) = stats(&url);
                let t = Instant::now();
                let ok = if us == 0 {
                    cluster
                        .map(identity, 0..count)
                        .iter()
                        .filter(|r| r.is_ok())
                        .count()
                } else {
                    cluster
                        .map(spin_us, (0..count).map(|_| us))
                        .iter()
                        .filter(|r| r.is_ok())
                        .count()
                };
                remote.push(t.elapsed().as_secs_f64());
                assert_eq!(ok as u64, count);
                let (c1, b1) = stats(&url);
                ops.push((c1 - c0) as f64 / count as f64);
                bytes.push((b1 - b0) as f64 / count as f64);
                let runner = triad::Runner::from_pool(pool.clone()).chunk_size(chunk);
                let t = Instant::now();
                let ok = if us == 0 {
                    runner
                        .map(identity, 0..count)
                        .iter()
                        .filter(|r| r.is_ok())
                        .count()
                } else {
                    runner
                        .map(spin_us, (0..count).map(|_| us))
                        .iter()
                        .filter(|r| r.is_ok())
                        .count()
                };
                local.push(t.elapsed().as_secs_f64());
                assert_eq!(ok as u64, count);
            }
            let (r, l) = (median(remote), median(local));
            println!(
                "| {label} | {chunk} | {:.0} | {:.0} | {:.1} µs | {:.2} | {:.0} |",
                count as f64 / r,
                count as f64 / l,
                (r - l) / count as f64 * 1e6,
                median(ops),
                median(bytes)
            );
        }
    }
    let _ = worker.kill();
    let _ = worker.wait();
}
