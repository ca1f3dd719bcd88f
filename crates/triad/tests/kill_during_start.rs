//! A worker killed while it is still starting (in its initializer) is started again: the pool
//! never declares itself broken while it has a live worker, and gives up only after several
//! failed starts in a row with none alive — saying how many, and without blaming `init()` for a
//! death by a signal. In a binary of its own, since it kills this process's workers.

mod common;

use std::time::Duration;

use common::one_at_a_time;
use common::procs::{self, kill, wait_for};
use triad::{ProcessPool, StartMethod, TaskError};

triad::test_support!();

#[triad::task]
fn nap(millis: u64) {
    std::thread::sleep(Duration::from_millis(millis));
}

#[triad::task]
fn double(x: u64) -> u64 {
    x * 2
}

/// The reproduction: both workers killed, then one replacement killed 50 ms into its
/// 300 ms initializer, while the other is still in its own.
fn survives_a_kill_in_its_initializer(method: StartMethod) {
    let pool = ProcessPool::builder()
        .workers(2)
        .retries(5)
        .initializer(nap, 300)
        .start_method(method)
        .build()
        .unwrap();
    let first = procs::workers();
    assert_eq!(first.len(), 2, "{method:?}: {first:?}");
    for pid in &first {
        kill(*pid);
    }
    // Work arrives while the pool has no ready worker.
    let handle = pool.submit(double, 21).unwrap();
    let replacements = wait_for(Duration::from_secs(10), || {
        let now: Vec<u32> = procs::workers()
            .into_iter()
            .filter(|pid| !first.contains(pid))
            .collect();
        (now.len() == 2).then_some(now)
    })
    .unwrap_or_else(|| panic!("{method:?}: no replacements"));
    std::thread::sleep(Duration::from_millis(50));
    kill(replacements[0]);
    assert_eq!(handle.wait(), Ok(42), "{method:?}");
    let results = pool.map(double, 0..20);
    assert_eq!(
        results,
        (0..20).map(|x| Ok(x * 2)).collect::<Vec<_>>(),
        "{method:?}"
    );
    assert_eq!(pool.duplicate_settlements(), 0);
    assert!(
        pool.workers_started() >= 5,
        "{method:?}: 2 + 2 + 1 at least"
    );
}

#[test]
fn a_worker_killed_in_its_initializer_is_started_again() {
    let _turn = one_at_a_time();
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        survives_a_kill_in_its_initializer(method);
    }
}

#[test]
fn a_pool_whose_every_start_is_killed_gives_up_with_the_count() {
    let _turn = one_at_a_time();
    // A killer that ends every worker in its initializer, until the pool gives up.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        while stopped.try_recv().is_err() {
            for pid in procs::workers() {
                kill(pid);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let built = ProcessPool::builder()
        .workers(1)
        .initializer(nap, 200)
        .start_method(StartMethod::Spawn)
        .build();
    stop.send(()).unwrap();
    killer.join().unwrap();
    let error = built.expect_err("no worker ever starts").to_string();
    assert!(
        error.contains("8 workers in a row died before they started"),
        "{error}"
    );
    assert!(error.contains("killed by signal 9"), "{error}");
    assert!(
        !error.contains("init()"),
        "a signal is no sign of a missing init: {error}"
    );
}

#[test]
fn a_pool_that_gave_up_fails_each_task_with_the_reason() {
    let _turn = one_at_a_time();
    // Each worker naps in its initializer, so none can run a task before its hello: long
    // enough that a killer thread starved by a loaded machine still finds it napping.
    let pool = ProcessPool::builder()
        .workers(1)
        .initializer(nap, 2000)
        .start_method(StartMethod::Spawn)
        .build()
        .unwrap();
    let first = procs::workers();
    // From now on, kill every worker as soon as it appears: no replacement says hello.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        while stopped.try_recv().is_err() {
            for pid in procs::workers() {
                kill(pid);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    wait_for(Duration::from_secs(5), || {
        procs::workers()
            .iter()
            .all(|pid| !first.contains(pid))
            .then_some(())
    })
    .expect("the first worker dies");
    let result = pool.submit(double, 1).unwrap().wait();
    let later = pool.submit(double, 2).unwrap().wait();
    stop.send(()).unwrap();
    killer.join().unwrap();
    for result in [result, later] {
        match result {
            Err(TaskError::WorkerStart(reason)) => {
                assert!(reason.contains("8 workers in a row"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
