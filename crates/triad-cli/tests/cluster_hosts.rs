//! The cluster across hosts of this test's own: a `triad worker` in a network namespace (made
//! here with `ip netns` and a veth pair on a private /30, removed at the end) reaches Redis over
//! that link, beside a worker on loopback, and both take work. Traffic goes only to the test's
//! own addresses. Where namespaces are not permitted (no root, no iproute2), the test says so
//! and leaves the cluster to the loopback tests in `cluster.rs`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use triad::workloads::sum_squares;
use triad_cluster::Cluster;
use triad_redis::server::RedisServer;

/// A namespace joined to this one by a veth pair: `host_ip` here, `10.231.N.2` in it.
struct Namespace {
    name: String,
    host_ip: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Namespace {
    fn create(n: u32) -> Option<Namespace> {
        let name = format!("triad-test-{n}");
        let (here, there) = (format!("tv{n}h"), format!("tv{n}n"));
        let host_ip = format!("10.231.{n}.1");
        let made = Namespace {
            name: name.clone(),
            host_ip: host_ip.clone(),
        };
        let steps: [&[&str]; 7] = [
            &["netns", "add", &name],
            &["link", "add", &here, "type", "veth", "peer", "name", &there],
            &["link", "set", &there, "netns", &name],
            &["addr", "add", &format!("{host_ip}/30"), "dev", &here],
            &["link", "set", &here, "up"],
            &[
                "-n",
                &name,
                "addr",
                "add",
                &format!("10.231.{n}.2/30"),
                "dev",
                &there,
            ],
            &["-n", &name, "link", "set", &there, "up"],
        ];
        for step in steps {
            if !ip(step) {
                drop(made);
                let _ = ip(&["link", "del", &here]);
                return None;
            }
        }
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Some(made)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the pair.
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A worker process, killed and reaped when dropped — a failed assertion included.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(prefix: &[&str], url: &str, name: &str) -> Worker {
    let triad = assert_cmd::cargo::cargo_bin("triad");
    let mut command = match prefix {
        [] => Command::new(&triad),
        [first, rest @ ..] => {
            let mut c = Command::new(first);
            c.args(rest).arg(&triad);
            c
        }
    };
    command
        .args([
            "worker",
            "--redis",
            url,
            "--queue",
            "far",
            "--workers",
            "1",
            "--name",
            name,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Worker)
        .unwrap()
}

#[test]
fn a_worker_on_another_host_takes_work_over_the_network() {
    let n = std::process::id() % 200 + 20;
    let Some(namespace) = Namespace::create(n) else {
        eprintln!(
            "note: network namespaces are not permitted here; the cluster ran on loopback only"
        );
        return;
    };
    let redis = RedisServer::start_also_on(&namespace.host_ip).unwrap();
    let far_url = format!("redis://{}:{}/", namespace.host_ip, redis.port());
    let far = worker(
        &["ip", "netns", "exec", &namespace.name],
        &far_url,
        "far-host",
    );
    let near = worker(&[], &redis.url(), "near-host");
    let cluster = Cluster::builder(&redis.url())
        .queue("far")
        .chunk_size(5)
        .build()
        .unwrap();
    let results = cluster.map(sum_squares, (0..2000u64).map(|i| 50_000 + i));
    for (i, r) in results.iter().enumerate() {
        let n = 50_000u128 + i as u128;
        assert_eq!(r.as_ref().ok(), Some(&((n - 1) * n * (2 * n - 1) / 6)));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let status = triad_cluster::status::status(&redis.url(), "far").unwrap();
    let done = |name: &str| {
        status
            .workers
            .iter()
            .find(|w| w.name == name)
            .map_or(0, |w| w.done)
    };
    assert!(done("far-host") > 0 && done("near-host") > 0, "{status:?}");
    drop((far, near));
    drop(namespace);
}
