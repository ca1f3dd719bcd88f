//! Per-task overhead of each engine: the time a run of N tasks that do nothing takes, per task.
//!
//! Scenarios (N = 10,000 tasks per iteration, engine started once outside the timing):
//! - `serial`: the calling thread, with a panic guard per task;
//! - `threads:2/chunk=1`: one channel round trip per task (`imap` default);
//! - `threads:2/auto-chunk`: `map`'s CPython-style chunking, ceil(N / (4 × threads));
//! - `threads:2/auto-chunk/recording`: the same with a span recorded per task — compare with the
//!   previous line for the cost of recording; recording off is one `Option` test per task;
//! - `processes:2/chunk=1` and `processes:2/auto-chunk`: the same through two worker processes
//!   (encode, frame, socket, decode on each side);
//! - `async:256/async-body`: one tokio task per input on the event loop;
//! - `async:256/blocking-body`: one `spawn_blocking` per input (asyncio's `to_thread`).
//!
//! Run with `cargo bench -p triad --bench overhead`; criterion reports time per iteration and
//! tasks per second. Quote medians: the machines are shared and noisy.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use triad::workloads::identity;
use triad::{Mode, Recorder, Runner};

const TASKS: u64 = 10_000;

#[triad::task]
async fn async_identity(x: u64) -> u64 {
    std::hint::black_box(x)
}

fn per_task_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("per_task");
    group.throughput(Throughput::Elements(TASKS));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));

    let serial = Runner::new(Mode::Serial).unwrap();
    group.bench_function(BenchmarkId::new("serial", "identity"), |b| {
        b.iter(|| serial.map(identity, 0..TASKS))
    });

    let threads = Runner::new(Mode::Threads(2)).unwrap();
    group.bench_function(BenchmarkId::new("threads:2", "chunk=1"), |b| {
        b.iter(|| threads.imap(identity, 0..TASKS).count())
    });
    group.bench_function(BenchmarkId::new("threads:2", "auto-chunk"), |b| {
        b.iter(|| threads.map(identity, 0..TASKS))
    });
    let recorder = Arc::new(Recorder::new());
    let recording = threads.clone().record(recorder.clone());
    group.bench_function(BenchmarkId::new("threads:2", "auto-chunk/recording"), |b| {
        b.iter(|| {
            let results = recording.map(identity, 0..TASKS);
            recorder.take();
            results
        })
    });

    let processes = Runner::new(Mode::Processes(2)).unwrap();
    group.bench_function(BenchmarkId::new("processes:2", "chunk=1"), |b| {
        b.iter(|| processes.imap(identity, 0..TASKS).count())
    });
    group.bench_function(BenchmarkId::new("processes:2", "auto-chunk"), |b| {
        b.iter(|| processes.map(identity, 0..TASKS))
    });

    let event_loop = Runner::new(Mode::Async { concurrency: 256 }).unwrap();
    group.bench_function(BenchmarkId::new("async:256", "async-body"), |b| {
        b.iter(|| event_loop.map(async_identity, 0..TASKS))
    });
    group.bench_function(BenchmarkId::new("async:256", "blocking-body"), |b| {
        b.iter(|| event_loop.map(identity, 0..TASKS))
    });
    group.finish();
}

criterion_group!(benches, per_task_overhead);

fn main() {
    // Worker processes are this bench binary run again: they stop here.
    triad::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
