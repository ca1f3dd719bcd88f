//! The process pool against CPython's `multiprocessing.Pool`, measured side by side in one run.
//!
//! Scenarios (2 workers; each figure is the median of `REPEATS` runs on a warm pool):
//! - `tiny/chunk=1` and `tiny/chunk=1000`: 200,000 tasks of `x * x` — pure dispatch cost;
//! - `cpu-1ms`: 200 tasks that each spin the CPU for 1 ms — processes against threads;
//! - `start`: a worker process started and ended, per start method, as CPython's
//!   `Process(target=noop).start(); join()`: a one-worker pool that replaces its worker after
//!   every task (`max_tasks_per_child(1)`) runs `RECYCLED` tasks one by one, and each costs one
//!   worker's start, hello, task and exit. Fork is measured first, while this process is still
//!   single-threaded, as fork requires. `pool/…` rows add building and dropping a whole pool.
//!
//! Run with `cargo bench -p triad --bench process_pool`. CPython's side runs `python3` with only
//! its standard library; without `python3` those columns are skipped.

use std::process::Command;
use std::time::Instant;

use triad::workloads::spin_us;
use triad::{Mode, ProcessPool, Runner, StartMethod};

const REPEATS: usize = 5;
const TINY_TASKS: u64 = 200_000;
const CPU_TASKS: u64 = 200;
const RECYCLED: usize = 40;

#[triad::task]
fn square(x: u64) -> u64 {
    x * x
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn time(mut run: impl FnMut()) -> f64 {
    let samples = (0..REPEATS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64()
        })
        .collect();
    median(samples)
}

const PYTHON: &str = r#"
import json, multiprocessing as mp, statistics, sys, time

def square(x):
    return x * x

def spin(us):
    end = time.perf_counter() + us / 1e6
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n

def noop():
    pass

def median_time(fn, repeats):
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)

if __name__ == "__main__":
    repeats, tiny, cpu = map(int, sys.argv[1:4])
    out = {}
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(square, range(1000))
        out["tiny/chunk=1"] = median_time(lambda: pool.map(square, range(tiny), chunksize=1), repeats)
        out["tiny/chunk=1000"] = median_time(lambda: pool.map(square, range(tiny), chunksize=1000), repeats)
        out["cpu-1ms/processes"] = median_time(lambda: pool.map(spin, [1000] * cpu, chunksize=1), repeats)
    for method in ["fork", "forkserver", "spawn"]:
        ctx = mp.get_context(method)
        def start_join():
            p = ctx.Process(target=noop)
            p.start()
            p.join()
        start_join()
        out["start/" + method] = median_time(start_join, repeats)
    print(json.dumps(out))
"#;

fn python_figures() -> Option<serde_json::Value> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .args([REPEATS, TINY_TASKS as usize, CPU_TASKS as usize].map(|n| n.to_string()))
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

fn row(name: &str, ours: f64, tasks: Option<u64>, python: Option<f64>) {
    let rate = |seconds: f64| match tasks {
        Some(n) => format!("{:>12.0}/s", n as f64 / seconds),
        None => format!("{:>10.3} ms", seconds * 1e3),
    };
    let (theirs, ratio) = match python {
        Some(seconds) => (rate(seconds), format!("{:>8.1}×", seconds / ours)),
        None => ("—".to_owned(), "—".to_owned()),
    };
    println!("{name:<26} {:>16} {theirs:>16} {ratio:>9}", rate(ours));
}

/// Seconds per worker start and exit inside a running pool.
fn worker_start(method: StartMethod) -> f64 {
    let pool = ProcessPool::builder()
        .workers(1)
        .max_tasks_per_child(1)
        .start_method(method)
        .build()
        .expect("pool starts");
    pool.map_chunked(square, 0..2, 1);
    time(|| {
        pool.map_chunked(square, 0..RECYCLED as u64, 1);
    }) / RECYCLED as f64
}

fn start_and_stop(method: StartMethod) -> f64 {
    time(|| {
        let pool = ProcessPool::builder()
            .workers(1)
            .start_method(method)
            .build()
            .expect("pool starts");
        drop(pool);
    })
}

fn main() {
    triad::init();
    // Before any thread exists: the fork start method needs a single-threaded process.
    let pool_fork = start_and_stop(StartMethod::Fork);
    let start_fork = worker_start(StartMethod::Fork);
    let python = python_figures();
    let cpython = |key: &str| python.as_ref().and_then(|figures| figures[key].as_f64());

    println!(
        "machine: {} cores; median of {REPEATS}; ratio = CPython time / triad time",
        triad::available_cores()
    );
    println!(
        "{:<26} {:>16} {:>16} {:>9}",
        "scenario", "triad", "CPython 3", "ratio"
    );

    let pool = ProcessPool::new(2).expect("pool starts");
    pool.map(square, 0..1000);
    let tiny_1 = time(|| {
        pool.map_chunked(square, 0..TINY_TASKS, 1);
    });
    row(
        "tiny/chunk=1",
        tiny_1,
        Some(TINY_TASKS),
        cpython("tiny/chunk=1"),
    );
    let tiny_1000 = time(|| {
        pool.map_chunked(square, 0..TINY_TASKS, 1000);
    });
    row(
        "tiny/chunk=1000",
        tiny_1000,
        Some(TINY_TASKS),
        cpython("tiny/chunk=1000"),
    );

    let cpu_processes = time(|| {
        pool.map_chunked(spin_us, vec![1000; CPU_TASKS as usize], 1);
    });
    row(
        "cpu-1ms/processes",
        cpu_processes,
        Some(CPU_TASKS),
        cpython("cpu-1ms/processes"),
    );
    let threads = Runner::new(Mode::Threads(2)).unwrap().chunk_size(1);
    let cpu_threads = time(|| {
        threads.map(spin_us, vec![1000; CPU_TASKS as usize]);
    });
    row("cpu-1ms/threads", cpu_threads, Some(CPU_TASKS), None);
    println!(
        "{:<26} {:>15.1}%",
        "processes ÷ threads",
        100.0 * cpu_threads / cpu_processes
    );
    drop(pool);

    row("start/fork", start_fork, None, cpython("start/fork"));
    row(
        "start/spawn",
        worker_start(StartMethod::Spawn),
        None,
        cpython("start/spawn"),
    );
    let start_server = worker_start(StartMethod::ForkServer);
    row(
        "start/forkserver",
        start_server,
        None,
        cpython("start/forkserver"),
    );
    row("pool/fork (build+drop)", pool_fork, None, None);
    row(
        "pool/spawn (build+drop)",
        start_and_stop(StartMethod::Spawn),
        None,
        None,
    );
    row(
        "pool/forkserver (build+drop)",
        start_and_stop(StartMethod::ForkServer),
        None,
        None,
    );
}
