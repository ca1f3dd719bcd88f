//! The per-item cost of a pipeline against the engine it stands on.
//!
//! Scenarios (N = 10,000 items of a `u64` per iteration, items that do nothing):
//! - `imap/threads:2`: `Runner::imap` on two threads, one item per message — what a single
//!   CPU stage would cost without a pipeline around it;
//! - `pipeline/1-stage`: one task stage on two threads;
//! - `pipeline/3-stage`: an async stage (16 in flight), a task stage on two threads and a
//!   blocking stage on two threads — three hand-overs between models per item;
//! - `pipeline/3-stage-unordered`: the same, items passed on as they finish.
//!
//! Each pipeline iteration includes starting and ending the pipeline's event loop and pools
//! (about a millisecond); the imap engine is started once. Run with
//! `cargo bench -p triad --bench pipeline`; quote medians.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use triad::pipeline::{Pipeline, Stage};
use triad::workloads::identity;
use triad::{Mode, Runner};

const ITEMS: u64 = 10_000;

fn three_stages() -> Pipeline<u64, u64> {
    Pipeline::new()
        .then(Stage::future("async", 16, |x: u64| async move {
            Ok::<_, String>(std::hint::black_box(x))
        }))
        .then(Stage::task("task", Mode::Threads(2), identity))
        .then(Stage::blocking("blocking", 2, |x: u64| {
            Ok::<_, String>(std::hint::black_box(x))
        }))
}

fn per_item_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("per_item");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(6));

    let runner = Runner::new(Mode::Threads(2)).unwrap();
    group.bench_function(BenchmarkId::new("imap", "threads:2"), |b| {
        b.iter(|| runner.imap(identity, 0..ITEMS).count())
    });
    group.bench_function(BenchmarkId::new("pipeline", "1-stage"), |b| {
        b.iter(|| {
            Pipeline::new()
                .then(Stage::task("task", Mode::Threads(2), identity))
                .run(0..ITEMS)
                .unwrap()
                .count()
        })
    });
    group.bench_function(BenchmarkId::new("pipeline", "3-stage"), |b| {
        b.iter(|| three_stages().run(0..ITEMS).unwrap().count())
    });
    group.bench_function(BenchmarkId::new("pipeline", "3-stage-unordered"), |b| {
        b.iter(|| three_stages().unordered().run(0..ITEMS).unwrap().count())
    });
    group.finish();
}

criterion_group!(benches, per_item_cost);

fn main() {
    triad::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
