//! The process pool with real worker processes: results, failures of every kind, recycling,
//! shutdown. Each test starts its own pool; workers are this test binary re-executed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use triad::workloads::count_primes;
use triad::{Body, Mode, ProcessPool, Recorder, Runner, Task, TaskError};

triad::test_support!();

#[triad::task]
fn worker_pid(_: u64) -> u32 {
    std::process::id()
}

#[triad::task]
fn panic_on_odd(x: u64) -> u64 {
    assert!(x.is_multiple_of(2), "odd input {x}");
    x
}

#[triad::task]
fn die_on_13(x: u64) -> u64 {
    if x == 13 {
        // SAFETY: kill with our own pid and SIGKILL has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(1));
    x
}

/// Dies the first time it sees a path that does not exist yet, succeeds the second time.
#[triad::task]
fn die_once(marker: String) -> String {
    if std::fs::metadata(&marker).is_err() {
        std::fs::write(&marker, b"died once").unwrap();
        // SAFETY: as above.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    marker
}

#[triad::task]
fn sleep_ms(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

/// Encodes fine in the parent but will not decode in the worker: odd values are refused.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(try_from = "u32")]
struct EvenOnly(u32);

impl TryFrom<u32> for EvenOnly {
    type Error = String;
    fn try_from(value: u32) -> Result<Self, String> {
        if value.is_multiple_of(2) {
            Ok(EvenOnly(value))
        } else {
            Err(format!("{value} is odd"))
        }
    }
}

#[triad::task]
fn take_even(value: EvenOnly) -> u32 {
    value.0
}

#[triad::task]
fn make_even(value: u32) -> EvenOnly {
    EvenOnly(value)
}

/// Refuses to be encoded when it holds 3: an input that fails in the parent, mid-chunk.
#[derive(Debug, Clone, Copy, Deserialize)]
struct NotThree(u32);

impl Serialize for NotThree {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 3 {
            return Err(serde::ser::Error::custom("three is not sent"));
        }
        serializer.serialize_u32(self.0)
    }
}

#[triad::task]
fn unwrap_not_three(value: NotThree) -> u32 {
    value.0
}

/// A task this binary never registered: what a stale worker binary would see.
#[derive(Debug, Clone, Copy, Default)]
struct Unregistered;

impl Task for Unregistered {
    type Input = u32;
    type Output = u32;
    const NAME: &'static str = "process_pool::not_in_any_registry";
    fn body(&self) -> Body<u32, u32> {
        Body::Blocking(|x| x)
    }
}

fn pool(workers: usize) -> ProcessPool {
    ProcessPool::new(workers).expect("the pool starts")
}

#[test]
fn map_imap_and_unordered_match_serial_results() {
    let pool = pool(2);
    let inputs: Vec<u64> = (0..300).map(|i| i * 37 % 2000).collect();
    let expected: Vec<_> = inputs.iter().map(|&n| Ok(count_primes::call(n))).collect();
    assert_eq!(pool.map(count_primes, inputs.clone()), expected);
    assert_eq!(pool.map_chunked(count_primes, inputs.clone(), 1), expected);
    assert_eq!(
        pool.imap(count_primes, inputs.clone()).collect::<Vec<_>>(),
        expected
    );
    let mut unordered: Vec<_> = pool.imap_unordered(count_primes, inputs.clone()).collect();
    unordered.sort_by_key(|(index, _)| *index);
    assert_eq!(
        unordered
            .into_iter()
            .map(|(_, result)| result)
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        triad::run(Mode::Processes(2), count_primes, inputs).unwrap(),
        expected
    );
}

#[test]
fn tasks_run_in_other_processes_on_every_worker() {
    let pool = pool(2);
    let pids: HashSet<u32> = pool
        .map_chunked(worker_pid, 0..200, 1)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(!pids.contains(&std::process::id()));
    assert!(!pids.is_empty() && pids.len() <= 2, "{pids:?}");
}

#[test]
fn a_panic_fails_its_task_and_the_worker_lives_on() {
    let pool = pool(1);
    let before = pool.submit(worker_pid, 0).unwrap().wait().unwrap();
    let results = pool.map(panic_on_odd, 0..6);
    for (x, result) in results.into_iter().enumerate() {
        if x % 2 == 1 {
            assert!(
                matches!(&result, Err(TaskError::Panicked(message)) if message == &format!("odd input {x}")),
                "{result:?}"
            );
        } else {
            assert_eq!(result, Ok(x as u64));
        }
    }
    let after = pool.submit(worker_pid, 0).unwrap().wait().unwrap();
    assert_eq!(
        before, after,
        "the same worker process served before and after the panics"
    );
}

#[test]
fn a_worker_killed_mid_task_fails_only_its_task_and_is_replaced() {
    let pool = pool(2);
    let results = pool.map_chunked(die_on_13, 0..40, 1);
    for (x, result) in results.into_iter().enumerate() {
        if x == 13 {
            assert_eq!(
                result,
                Err(TaskError::WorkerDied {
                    signal: Some(libc::SIGKILL),
                    code: None
                })
            );
        } else {
            // Tasks that shared the dead worker's queue were re-sent, not lost or duplicated.
            assert_eq!(result, Ok(x as u64), "task {x}");
        }
    }
    // The pool is whole again.
    assert_eq!(pool.map(die_on_13, [1, 2]), vec![Ok(1), Ok(2)]);
}

#[test]
fn with_retries_a_task_whose_worker_died_runs_again() {
    let dir = std::env::temp_dir().join(format!("triad-die-once-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("marker").display().to_string();
    let pool = ProcessPool::builder()
        .workers(1)
        .retries(1)
        .build()
        .unwrap();
    assert_eq!(
        pool.submit(die_once, marker.clone()).unwrap().wait(),
        Ok(marker)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inputs_and_outputs_that_do_not_decode_are_codec_errors() {
    let pool = pool(1);
    let results = pool.map(take_even, [EvenOnly(2), EvenOnly(3), EvenOnly(4)]);
    assert_eq!(results[0], Ok(2));
    assert!(
        matches!(&results[1], Err(TaskError::Codec(detail)) if detail.contains("input of `process_pool::take_even`")),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2], Ok(4));
    let outputs = pool.map(make_even, [6, 7]);
    assert!(matches!(outputs[0], Ok(EvenOnly(6))));
    assert!(
        matches!(&outputs[1], Err(TaskError::Codec(detail)) if detail.contains("output")),
        "{:?}",
        outputs[1]
    );
}

#[test]
fn an_input_that_will_not_encode_fails_alone_within_its_chunk() {
    let pool = pool(1);
    let results = pool.map_chunked(unwrap_not_three, (0..8).map(NotThree), 8);
    for (x, result) in results.into_iter().enumerate() {
        if x == 3 {
            assert!(matches!(result, Err(TaskError::Codec(_))), "{result:?}");
        } else {
            assert_eq!(result, Ok(x as u32));
        }
    }
}

#[test]
fn a_task_the_worker_does_not_know_is_a_clear_error_not_a_hang() {
    let pool = pool(1);
    assert_eq!(
        pool.submit(Unregistered, 5).unwrap().wait(),
        Err(TaskError::UnknownTask(Unregistered::NAME.into()))
    );
}

#[test]
fn a_hung_task_times_out_and_its_worker_is_replaced() {
    let pool = pool(1);
    let hung = pool
        .submit_with_timeout(sleep_ms, 60_000, Duration::from_millis(200))
        .unwrap();
    assert_eq!(hung.wait(), Err(TaskError::Timeout));
    // A new worker serves the next task at once.
    assert_eq!(pool.submit(sleep_ms, 1).unwrap().wait(), Ok(1));
}

#[test]
fn handles_can_be_awaited() {
    let pool = pool(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handles: Vec<_> = (0..5)
        .map(|n| pool.submit(count_primes, n * 100).unwrap())
        .collect();
    let results = runtime.block_on(futures::future::join_all(handles));
    assert_eq!(
        results,
        (0..5)
            .map(|n| Ok(count_primes::call(n * 100)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn workers_are_recycled_after_max_tasks_per_child() {
    let pool = ProcessPool::builder()
        .workers(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let pids: Vec<u32> = pool
        .map_chunked(worker_pid, 0..6, 1)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let distinct: HashSet<_> = pids.iter().collect();
    assert_eq!(distinct.len(), 3, "{pids:?}");
}

#[test]
fn close_lets_work_finish_and_refuses_more() {
    let pool = pool(2);
    let handles: Vec<_> = (0..4).map(|_| pool.submit(sleep_ms, 50).unwrap()).collect();
    pool.close();
    assert!(matches!(
        pool.submit(sleep_ms, 1),
        Err(triad::PoolError::Closed)
    ));
    pool.join();
    for handle in handles {
        assert_eq!(handle.wait(), Ok(50));
    }
}

#[test]
fn terminate_cancels_unfinished_work() {
    let pool = pool(1);
    let slow = pool.submit(sleep_ms, 60_000).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    pool.terminate();
    assert_eq!(slow.wait(), Err(TaskError::Cancelled));
}

#[test]
fn dropping_the_pool_leaves_no_zombie_and_no_orphan() {
    let pool = pool(2);
    let pids: HashSet<u32> = pool
        .map_chunked(worker_pid, 0..50, 1)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    drop(pool);
    for pid in pids {
        // Reaped: not a zombie (it would still have a /proc entry), not running on.
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_err(),
            "worker {pid} is still there"
        );
    }
}

#[test]
fn spans_come_back_from_the_workers() {
    let recorder = Arc::new(Recorder::new());
    let runner = Runner::from_pool(pool(2)).record(recorder.clone());
    assert!(
        runner
            .map(count_primes, vec![5_000; 20])
            .iter()
            .all(Result::is_ok)
    );
    let spans = recorder.take();
    assert_eq!(spans.len(), 20);
    assert!(spans.iter().all(|span| span.pid != std::process::id()));
    assert!(spans.iter().all(|span| span.start_ns <= span.end_ns));
}
