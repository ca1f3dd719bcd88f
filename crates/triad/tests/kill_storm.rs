//! The process pool under a SIGKILL storm, as an OOM killer or an operator's `kill -9` would
//! make one: for each start method, a pool of 3 workers with `retries(1000)` runs 10,000 tasks
//! by `map` and 10,000 by `imap_unordered` while a killer thread SIGKILLs one of its workers
//! every 2–10 ms (starting ones included). Every result must arrive exactly once and be right,
//! and the pool must never give up. Fork pools need a single-threaded process when they are
//! built, so this test has its own `main` (`harness = false`) and builds the fork pool first.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::procs;
use triad::{ProcessPool, StartMethod};

const WORKERS: usize = 3;
const TASKS: u64 = 10_000;
/// The whole storm of one start method must end within this.
const LIMIT: Duration = Duration::from_secs(120);

/// A task that is running long enough for kills to land inside it: spins, then answers.
#[triad::task]
fn spin_then_triple(x: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(40);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    x * 3
}

/// A small xorshift generator with a fixed seed: the storm is random, and repeatable in kind.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// SIGKILLs a random worker of this process every 2–10 ms until told to stop; how many it killed.
fn start_killer(stop: Arc<AtomicBool>, seed: u64) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut random = Random(seed);
        let mut kills = 0;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(2 + random.below(9)));
            let workers = procs::workers();
            if !workers.is_empty() {
                procs::kill(workers[random.below(workers.len() as u64) as usize]);
                kills += 1;
            }
        }
        kills
    })
}

#[derive(Debug, Default)]
struct Figures {
    killed: u64,
    started: u64,
    lost: u64,
    duplicated: u64,
    wrong: u64,
}

fn storm(method: StartMethod, pool: ProcessPool, seed: u64) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let killer = start_killer(stop.clone(), seed);
    let began = Instant::now();
    let mut figures = Figures::default();

    let mapped = pool.map(spin_then_triple, 0..TASKS);
    figures.lost += TASKS - mapped.len() as u64;
    for (x, result) in mapped.iter().enumerate() {
        match result {
            Ok(value) if *value == x as u64 * 3 => {}
            Ok(_) => figures.wrong += 1,
            Err(error) => panic!("{method:?}: task {x} of map failed: {error}"),
        }
    }

    let mut seen = vec![0_u32; TASKS as usize];
    for (index, result) in pool.imap_unordered(spin_then_triple, 0..TASKS) {
        seen[index] += 1;
        match result {
            Ok(value) if value == index as u64 * 3 => {}
            Ok(_) => figures.wrong += 1,
            Err(error) => panic!("{method:?}: task {index} of imap_unordered failed: {error}"),
        }
    }
    figures.lost += seen.iter().filter(|count| **count == 0).count() as u64;
    figures.duplicated += seen
        .iter()
        .map(|count| u64::from(count.saturating_sub(1)))
        .sum::<u64>();

    stop.store(true, Ordering::Relaxed);
    figures.killed = killer.join().expect("the killer thread");
    figures.duplicated += pool.duplicate_settlements();
    figures.started = pool.workers_started();
    assert!(
        began.elapsed() < LIMIT,
        "{method:?}: the storm took {:?}",
        began.elapsed()
    );
    drop(pool);
    let reaped = procs::wait_for(Duration::from_secs(5), || {
        procs::zombie_children().is_empty().then_some(())
    });
    assert!(
        reaped.is_some(),
        "{method:?}: zombies left: {:?}",
        procs::zombie_children()
    );
    figures
}

fn pool(method: StartMethod) -> ProcessPool {
    ProcessPool::builder()
        .workers(WORKERS)
        .retries(1000)
        .start_method(method)
        .build()
        .unwrap_or_else(|error| panic!("{method:?}: {error}"))
}

fn main() {
    triad::init();
    // The fork pool forks its server from this process: build it while it has one thread.
    let fork = pool(StartMethod::Fork);
    // A watchdog: a storm that hangs fails the test instead of the CI run.
    std::thread::spawn(|| {
        std::thread::sleep(LIMIT * 3);
        eprintln!("the kill storm did not finish within {:?}", LIMIT * 3);
        std::process::exit(1);
    });
    let runs = [
        (
            StartMethod::Fork,
            storm(StartMethod::Fork, fork, 0x9E37_79B9),
        ),
        (
            StartMethod::Spawn,
            storm(StartMethod::Spawn, pool(StartMethod::Spawn), 0x85EB_CA6B),
        ),
        (
            StartMethod::ForkServer,
            storm(
                StartMethod::ForkServer,
                pool(StartMethod::ForkServer),
                0xC2B2_AE35,
            ),
        ),
    ];
    let mut failed = 0;
    for (method, figures) in &runs {
        let ok = figures.lost == 0
            && figures.duplicated == 0
            && figures.wrong == 0
            && figures.killed >= 20;
        println!(
            "{method:?}: {} workers killed, {} started, {} results lost, {} duplicated, {} wrong \
             ... {}",
            figures.killed,
            figures.started,
            figures.lost,
            figures.duplicated,
            figures.wrong,
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            failed += 1;
        }
    }
    println!("{} passed, {failed} failed", runs.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
