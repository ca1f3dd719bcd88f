//! One workload in any mode: the same results in the same order, panics contained per task,
//! streams that are lazy and bounded, and spans recorded per task.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use triad::workloads::{async_sleep_ms, count_primes, identity};
use triad::{Mode, Recorder, Runner, Task, TaskError};

fn all_modes() -> Vec<Mode> {
    vec![
        Mode::Serial,
        Mode::Threads(1),
        Mode::Threads(3),
        Mode::Async { concurrency: 1 },
        Mode::Async { concurrency: 7 },
    ]
}

#[triad::task]
fn fails_on_odd(x: u64) -> u64 {
    if x % 2 == 1 {
        panic!("odd input {x}");
    }
    x / 2
}

#[triad::task]
async fn async_fails_on_odd(x: u64) -> u64 {
    if x % 2 == 1 {
        panic!("odd input {x}");
    }
    tokio::task::yield_now().await;
    x / 2
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_mode_gives_the_serial_results(
        inputs in prop::collection::vec(0_u64..3_000, 0..120),
        threads in 1_usize..5,
        concurrency in 1_usize..20,
        chunk in 1_usize..9,
    ) {
        let expected: Vec<_> = inputs.iter().map(|&n| Ok(count_primes::call(n))).collect();
        for mode in [Mode::Serial, Mode::Threads(threads), Mode::Async { concurrency }] {
            let runner = Runner::new(mode).unwrap();
            prop_assert_eq!(&runner.map(count_primes, inputs.clone()), &expected, "map {}", mode);
            let chunked = runner.clone().chunk_size(chunk);
            let ordered: Vec<_> = chunked.imap(count_primes, inputs.clone()).collect();
            prop_assert_eq!(&ordered, &expected, "imap {}", mode);
            let mut unordered: Vec<_> = chunked.imap_unordered(count_primes, inputs.clone()).collect();
            unordered.sort_by_key(|(index, _)| *index);
            let indices: Vec<_> = unordered.iter().map(|(index, _)| *index).collect();
            prop_assert_eq!(indices, (0..inputs.len()).collect::<Vec<_>>());
            let results: Vec<_> = unordered.into_iter().map(|(_, result)| result).collect();
            prop_assert_eq!(&results, &expected, "imap_unordered {}", mode);
        }
    }
}

#[test]
fn a_panicking_task_fails_alone_in_every_mode() {
    for mode in all_modes() {
        let runner = Runner::new(mode).unwrap();
        for task_results in [
            runner.map(fails_on_odd, 0..10),
            runner.map(async_fails_on_odd, 0..10),
            runner.imap(fails_on_odd, 0..10).collect(),
        ] {
            for (x, result) in task_results.into_iter().enumerate() {
                if x % 2 == 1 {
                    assert_eq!(
                        result,
                        Err(TaskError::Panicked(format!("odd input {x}"))),
                        "{mode}"
                    );
                } else {
                    assert_eq!(result, Ok(x as u64 / 2), "{mode}");
                }
            }
        }
        // The engine is still whole after the panics.
        assert_eq!(runner.map(identity, [5]), vec![Ok(5)], "{mode}");
    }
}

#[test]
fn async_bodies_run_in_every_mode() {
    for mode in all_modes() {
        assert_eq!(
            triad::run(mode, async_sleep_ms, [3, 1, 2]).unwrap(),
            vec![Ok(3), Ok(1), Ok(2)],
            "{mode}"
        );
    }
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static MOST_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

#[triad::task]
async fn counted_wait(millis: u64) {
    let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_IN_FLIGHT.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(millis)).await;
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
}

#[test]
fn async_mode_keeps_exactly_its_concurrency_in_flight() {
    let results = triad::run(Mode::Async { concurrency: 6 }, counted_wait, vec![20; 30]).unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(MOST_IN_FLIGHT.load(Ordering::SeqCst), 6);
    assert_eq!(IN_FLIGHT.load(Ordering::SeqCst), 0);
}

#[test]
fn streams_pull_inputs_lazily() {
    for mode in all_modes() {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let endless = (0_u64..).inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let runner = Runner::new(mode).unwrap();
        let first: Vec<_> = runner.imap(identity, endless).take(5).collect();
        assert_eq!(first, (0..5).map(Ok).collect::<Vec<_>>(), "{mode}");
        let pulled = pulled.load(Ordering::SeqCst);
        assert!(pulled < 100, "{mode} pulled {pulled} inputs for 5 results");
    }
}

#[test]
fn spans_record_one_event_per_task_and_show_the_threads() {
    for mode in all_modes() {
        let recorder = Arc::new(Recorder::new());
        let runner = Runner::new(mode).unwrap().record(recorder.clone());
        assert!(
            runner
                .map(count_primes, vec![20_000; 12])
                .iter()
                .all(Result::is_ok)
        );
        let spans = recorder.take();
        assert_eq!(spans.len(), 12, "{mode}");
        let tasks: HashSet<u64> = spans.iter().map(|span| span.task).collect();
        assert_eq!(tasks, (0..12).collect(), "{mode}");
        for span in &spans {
            assert_eq!(span.name, count_primes::NAME);
            assert_eq!(span.pid, std::process::id());
            assert!(span.start_ns <= span.end_ns);
        }
        let threads: HashSet<u32> = spans.iter().map(|span| span.tid).collect();
        if let Mode::Threads(n) = mode {
            assert!(threads.len() <= n, "{mode}: {threads:?}");
        }
        if mode == Mode::Serial {
            assert_eq!(threads.len(), 1);
        }

        let json: serde_json::Value =
            serde_json::from_str(&triad::chrome_trace_json(&spans)).unwrap();
        let events = json["traceEvents"].as_array().unwrap();
        assert_eq!(events.len(), 12, "{mode}");
        assert!(events.iter().all(|event| event["ph"] == "X"));
    }
}

#[test]
fn invalid_modes_are_refused() {
    assert!(Runner::new(Mode::Threads(0)).is_err());
    assert!(Runner::new(Mode::Async { concurrency: 0 }).is_err());
}

#[test]
fn dropping_a_stream_early_leaves_the_engine_usable() {
    for mode in all_modes() {
        let runner = Runner::new(mode).unwrap();
        let mut stream = runner.imap_unordered(identity, 0..1_000);
        assert!(stream.next().is_some());
        drop(stream);
        assert_eq!(runner.map(identity, [1, 2]), vec![Ok(1), Ok(2)], "{mode}");
    }
}
