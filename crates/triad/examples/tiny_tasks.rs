//! Runs 2,000,000 tiny tasks through a two-worker process pool in chunks of 1,000 — a load to
//! profile the pool's per-task path with (`perf record -g -- target/release/examples/tiny_tasks`).

#[triad::task]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    triad::init();
    let pool = triad::ProcessPool::new(2).expect("the pool starts");
    let started = std::time::Instant::now();
    let results = pool.map_chunked(square, 0..2_000_000, 1000);
    let seconds = started.elapsed().as_secs_f64();
    assert!(results.iter().all(Result::is_ok));
    println!("{:.0} tasks/s", results.len() as f64 / seconds);
}
