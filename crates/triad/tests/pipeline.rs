//! Pipelines end to end: order, backpressure, per-item failure in every kind of stage (a worker
//! process SIGKILLed mid-item among them), fail-fast, cancellation that leaves nothing running,
//! the bottleneck, and counts that add up. The tests take turns: they count this process's
//! threads and workers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{expect, one_at_a_time, procs, run_until};
use futures::StreamExt;
use triad::pipeline::{Pipeline, Stage};
use triad::{Mode, TaskError};

triad::test_support!();

#[triad::task]
fn square(x: u64) -> u64 {
    x * x
}

/// Dies (SIGKILL, as an OOM killer would) on 13, panics on 7.
#[triad::task]
fn fragile(x: u64) -> u64 {
    match x {
        13 => {
            // SAFETY: kill with our own pid and SIGKILL has no memory-safety preconditions.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            0
        }
        7 => panic!("seven"),
        _ => x,
    }
}

#[triad::task]
fn nap(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

fn wait(
    millis: u64,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> {
    move |x| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Ok(x)
        })
    }
}

#[test]
fn order_is_kept_and_unordered_yields_every_item_once() {
    let _turn = one_at_a_time();
    // Later items are quicker, so they finish first; the ordered sink puts them back in order.
    let quicker_later = |x: u64| async move {
        tokio::time::sleep(Duration::from_millis((50 - x % 50) / 5)).await;
        Ok::<_, String>(x)
    };
    let ordered: Vec<u64> = Pipeline::new()
        .then(Stage::future("wait", 32, quicker_later))
        .then(Stage::task("square", Mode::Threads(2), square))
        .run(0..200)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, (0..200).map(|x| x * x).collect::<Vec<_>>());

    let mut unordered: Vec<u64> = Pipeline::new()
        .then(Stage::future("wait", 32, quicker_later))
        .unordered()
        .run(0..200)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, (0..200).collect::<Vec<_>>());
}

#[test]
fn backpressure_reaches_the_source() {
    let _turn = one_at_a_time();
    let pulled = Arc::new(AtomicU64::new(0));
    let counter = pulled.clone();
    let inputs = (0_u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let mut results = Pipeline::new()
        .then(Stage::future("quick", 4, wait(0)))
        .then(Stage::blocking("slow", 1, |x: u64| {
            std::thread::sleep(Duration::from_millis(20));
            Ok::<_, String>(x)
        }))
        .capacity(4)
        .window(1000)
        .run(inputs)
        .unwrap();
    assert_eq!(results.next(), Some(Ok(0)));
    std::thread::sleep(Duration::from_millis(300));
    // The slow stage holds 1 and its channel 4; the quick one 4 and its channel 4; the
    // source's channel 4, the results' 4, and the source's own hand: well under the window.
    let taken = pulled.load(Ordering::Relaxed);
    assert!(
        taken <= 40,
        "the source ran ahead: {taken} taken from an endless input"
    );
    let metrics = results.metrics();
    assert!(
        metrics.source_blocked > Duration::from_millis(100),
        "{metrics:?}"
    );
}

#[test]
fn a_failure_in_each_kind_of_stage_fails_its_item_alone() {
    let _turn = one_at_a_time();
    let results: Vec<_> = Pipeline::new()
        .then(Stage::future("fetch", 8, |x: u64| async move {
            match x {
                1 => Err(format!("no document {x}")),
                2 => panic!("the fetch panicked"),
                _ => Ok(x),
            }
        }))
        .then(Stage::blocking("parse", 2, |x: u64| match x {
            3 => Err("not JSON"),
            4 => panic!("the parser panicked"),
            _ => Ok(x),
        }))
        .then(Stage::task("compute", Mode::Processes(2), fragile))
        .then(
            Stage::future("save", 4, |x: u64| async move {
                if x == 20 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok::<_, String>(x)
            })
            .timeout(Duration::from_millis(200)),
        )
        .run(0..30)
        .unwrap()
        .collect();
    assert_eq!(results.len(), 30);
    let failure = |index: usize| results[index].as_ref().unwrap_err();
    assert_eq!(
        (failure(1).stage.as_str(), &failure(1).error),
        ("fetch", &TaskError::Failed("no document 1".into()))
    );
    assert_eq!(failure(2).stage, "fetch");
    assert!(
        matches!(&failure(2).error, TaskError::Panicked(m) if m.contains("the fetch panicked"))
    );
    assert_eq!(
        (failure(3).stage.as_str(), &failure(3).error),
        ("parse", &TaskError::Failed("not JSON".into()))
    );
    assert!(
        matches!(&failure(4).error, TaskError::Panicked(m) if m.contains("the parser panicked"))
    );
    assert_eq!(failure(7).stage, "compute");
    assert!(matches!(&failure(7).error, TaskError::Panicked(m) if m.contains("seven")));
    assert_eq!(failure(13).stage, "compute");
    assert_eq!(
        failure(13).error,
        TaskError::WorkerDied {
            signal: Some(libc::SIGKILL),
            code: None
        }
    );
    assert_eq!(
        (failure(20).stage.as_str(), &failure(20).error),
        ("save", &TaskError::Timeout)
    );
    for (index, result) in results.iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(*value, index as u64),
            Err(error) => assert_eq!(error.index, index as u64),
        }
    }
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 7);
}

#[test]
fn fail_fast_ends_the_run_at_the_first_failure() {
    let _turn = one_at_a_time();
    let mut results = Pipeline::new()
        .then(Stage::blocking("check", 2, |x: u64| {
            if x == 50 { Err("fifty") } else { Ok(x) }
        }))
        .fail_fast()
        .run(0..1_000_000)
        .unwrap();
    let seen: Vec<_> = results.by_ref().collect();
    assert_eq!(
        seen.len(),
        51,
        "the items before the failure, then the failure"
    );
    assert!(seen[..50].iter().all(Result::is_ok));
    assert_eq!(seen[50].as_ref().unwrap_err().index, 50);
    let counts = results.counts();
    assert_eq!((counts.succeeded, counts.failed), (50, 1));
    assert_eq!(
        counts.taken,
        counts.succeeded + counts.failed + counts.cancelled
    );
    assert!(counts.taken < 10_000, "{counts:?}");
}

/// This process's threads that triad started (they are all named `triad-…`): the pipeline's
/// event loop and source, thread pools, process pools' dispatchers.
fn triad_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("triad-"))
        .collect()
}

#[test]
fn cancellation_leaves_no_threads_and_no_child_processes() {
    let _turn = one_at_a_time();
    assert_eq!(
        triad_threads(),
        Vec::<String>::new(),
        "no triad thread before the run"
    );
    let mut results = Pipeline::new()
        .then(Stage::future("wait", 16, wait(5)))
        .then(Stage::blocking("block", 3, |x: u64| {
            std::thread::sleep(Duration::from_millis(5));
            Ok::<_, String>(x)
        }))
        .then(Stage::task("nap", Mode::Processes(2), nap))
        .run(std::iter::repeat(20_u64))
        .unwrap();
    let first = results.next();
    assert_eq!(first, Some(Ok(20)));
    assert!(!procs::workers().is_empty(), "the stage's workers run");
    let canceller = results.canceller();
    std::thread::spawn(move || canceller.cancel())
        .join()
        .unwrap();
    let rest = results.by_ref().count();
    let counts = results.counts();
    assert_eq!(
        counts.taken,
        counts.succeeded + counts.failed + counts.cancelled
    );
    assert!(rest < 1000, "{rest}");
    drop(results);
    // Everything has ended when the drop returns: threads joined, workers killed and reaped
    // (the kernel may list a joined thread for a moment longer).
    let ended = procs::wait_for(Duration::from_secs(5), || {
        (triad_threads().is_empty() && procs::workers().is_empty()).then_some(())
    });
    assert!(
        ended.is_some(),
        "left running: threads {:?}, workers {:?}",
        triad_threads(),
        procs::workers()
    );
    assert!(procs::zombie_children().is_empty());
}

#[test]
fn the_clearly_slowest_stage_is_named_the_bottleneck() {
    let _turn = one_at_a_time();
    run_until("the slow stage is the bottleneck", || {
        let mut results = Pipeline::new()
            .then(Stage::future("quick", 8, wait(1)))
            .then(Stage::blocking("slow", 1, |x: u64| {
                std::thread::sleep(Duration::from_millis(10));
                Ok::<_, String>(x)
            }))
            .then(Stage::future("also-quick", 8, wait(1)))
            .run(0..60)
            .unwrap();
        let started = Instant::now();
        assert_eq!(results.by_ref().count(), 60);
        let metrics = results.metrics();
        let slow = &metrics.stages[1];
        expect(metrics.bottleneck.as_deref() == Some("slow"), || {
            format!("after {:?}: {metrics:#?}", started.elapsed())
        })?;
        expect(slow.utilization > 0.8, || format!("{slow:?}"))
    });
}

#[test]
fn the_counts_add_up_in_every_stage_and_at_the_ends() {
    let _turn = one_at_a_time();
    let mut results = Pipeline::new()
        .then(Stage::future("odd", 4, |x: u64| async move {
            if x % 2 == 1 { Err("odd") } else { Ok(x) }
        }))
        .then(Stage::blocking("third", 2, |x: u64| {
            if x.is_multiple_of(3) {
                Err("third")
            } else {
                Ok(x)
            }
        }))
        .run(0..600)
        .unwrap();
    let (mut ok, mut failed) = (0, 0);
    for result in results.by_ref() {
        match result {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    let counts = results.counts();
    let metrics = results.metrics();
    assert_eq!(
        (
            counts.taken,
            counts.succeeded,
            counts.failed,
            counts.cancelled
        ),
        (600, ok, failed, 0)
    );
    let [odd, third] = &metrics.stages[..] else {
        panic!("two stages")
    };
    assert_eq!((odd.items_in, odd.items_out, odd.failed), (600, 300, 300));
    // The odd items failed upstream and pass "third" by: it sees the even ones.
    assert_eq!(
        (third.items_in, third.items_out, third.failed),
        (300, 200, 100)
    );
    assert_eq!(ok, 200);
    assert_eq!(failed, 400);
}

#[test]
fn the_async_front_runs_on_the_callers_runtime() {
    let _turn = one_at_a_time();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let values: Vec<u64> = runtime.block_on(async {
        let stream = Pipeline::new()
            .then(Stage::future("wait", 8, wait(1)))
            .then(Stage::task(
                "square",
                Mode::Async { concurrency: 4 },
                square,
            ))
            .stream(futures::stream::iter(0..50_u64))
            .unwrap();
        stream.map(Result::unwrap).collect().await
    });
    assert_eq!(values, (0..50).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn each_item_is_a_span_in_each_stage() {
    let _turn = one_at_a_time();
    let recorder = Arc::new(triad::Recorder::new());
    let results: Vec<_> = Pipeline::new()
        .then(Stage::future("a", 4, wait(1)))
        .then(Stage::blocking("b", 2, |x: u64| Ok::<_, String>(x)))
        .record(recorder.clone())
        .run(0..20)
        .unwrap()
        .collect();
    assert_eq!(results.len(), 20);
    let spans = recorder.take();
    assert_eq!(spans.len(), 40);
    let lanes = |name: &str| -> std::collections::BTreeSet<u32> {
        spans
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.tid)
            .collect()
    };
    assert!(
        lanes("a").iter().all(|tid| (1000..1004).contains(tid)),
        "{:?}",
        lanes("a")
    );
    assert!(
        lanes("b").iter().all(|tid| (2000..2002).contains(tid)),
        "{:?}",
        lanes("b")
    );
}
