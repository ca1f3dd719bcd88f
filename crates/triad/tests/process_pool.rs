//! The process pool with real worker processes: results, failures of every kind, recycling,
//! shutdown. Each test starts its own pool; workers are this test binary re-executed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use triad::workloads::count_primes;
use triad::{Body, Mode, ProcessPool, Recorder, Runner, StartMethod, Task, TaskError};

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

/// A counter in shared memory: under a lock, or atomic.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Counter {
    Locked(triad::SharedValue<u64>),
    Atomic(triad::AtomicValue<u64>),
}

impl Counter {
    fn get(&self) -> u64 {
        match self {
            Counter::Locked(value) => value.get(),
            Counter::Atomic(value) => value.get(),
        }
    }
}

/// The seed's shared counter (section 3): adds 1 to a shared value `times` times.
#[triad::task]
fn count_up(input: (Counter, u64)) -> u64 {
    let (counter, times) = input;
    for _ in 0..times {
        match &counter {
            Counter::Locked(value) => triad::shm::increment_locked(value).unwrap(),
            Counter::Atomic(value) => triad::shm::increment_atomic(value),
        }
    }
    times
}

/// Answers through a pipe end that came inside its input.
#[triad::task]
fn reply_through(end: triad::PipeEnd<String, ()>) -> u32 {
    end.send(&format!("hello from {}", std::process::id()))
        .unwrap();
    std::process::id()
}

static GREETING: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// An initializer: sets per-worker state that tasks read later.
#[triad::task]
fn set_greeting(greeting: String) {
    assert!(!greeting.is_empty(), "an empty greeting");
    *GREETING.lock().unwrap() = greeting;
}

#[triad::task]
fn greet(name: String) -> String {
    format!("{} {name}", GREETING.lock().unwrap())
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

/// A spawn pool: named explicitly, since the default becomes the fork server once another test
/// has started it.
fn pool(workers: usize) -> ProcessPool {
    pool_by(StartMethod::Spawn, workers)
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
                matches!(&result, Err(TaskError::Panicked(message))
                    if message.starts_with(&format!("odd input {x} (at "))
                        && message.contains("process_pool.rs:")),
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
fn shared_memory_handles_reach_every_worker_and_the_counter_is_exact() {
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let pool = pool_by(method, 2);
        for counter in [
            Counter::Locked(triad::SharedValue::new(0).unwrap()),
            Counter::Atomic(triad::AtomicValue::new(0).unwrap()),
        ] {
            let inputs = (0..10).map(|_| (counter.clone(), 5_000));
            let results = pool.map_chunked(count_up, inputs, 1);
            assert!(
                results.iter().all(|result| *result == Ok(5_000)),
                "{results:?}"
            );
            assert_eq!(counter.get(), 50_000, "{method:?}, {counter:?}");
        }
    }
}

#[test]
fn a_pipe_end_sent_to_a_worker_carries_its_answer_back() {
    let pool = pool(1);
    let (ours, theirs) = triad::pipe::<(), String>().unwrap();
    let pid = pool.submit(reply_through, theirs).unwrap().wait().unwrap();
    assert_eq!(ours.recv().unwrap(), format!("hello from {pid}"));
}

#[test]
fn every_worker_runs_the_initializer_before_its_tasks() {
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let pool = ProcessPool::builder()
            .workers(2)
            .start_method(method)
            .initializer(set_greeting, "hello".to_owned())
            .max_tasks_per_child(3)
            .build()
            .unwrap();
        // Recycling makes new workers mid-run: each runs the initializer too.
        let results = pool.map_chunked(greet, (0..12).map(|n| n.to_string()), 1);
        for (n, result) in results.into_iter().enumerate() {
            assert_eq!(result, Ok(format!("hello {n}")), "{method:?}");
        }
    }
}

#[test]
fn a_failing_initializer_stops_the_pool_from_starting_with_its_reason() {
    let error = ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::Spawn)
        .initializer(set_greeting, String::new())
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("initializer failed"), "{message}");
    assert!(message.contains("an empty greeting"), "{message}");
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

fn pool_by(method: StartMethod, workers: usize) -> ProcessPool {
    ProcessPool::builder()
        .workers(workers)
        .start_method(method)
        .build()
        .unwrap_or_else(|error| panic!("{method:?} pool: {error}"))
}

#[test]
fn a_fork_server_pool_runs_tasks_and_survives_a_killed_worker() {
    let pool = pool_by(StartMethod::ForkServer, 2);
    assert_eq!(pool.start_method(), StartMethod::ForkServer);
    let inputs: Vec<u64> = (0..200).map(|i| i * 13 % 3000).collect();
    let expected: Vec<_> = inputs.iter().map(|&n| Ok(count_primes::call(n))).collect();
    assert_eq!(pool.map(count_primes, inputs), expected);
    let results = pool.map_chunked(die_on_13, 0..30, 1);
    assert_eq!(
        results[13],
        Err(TaskError::WorkerDied {
            signal: Some(libc::SIGKILL),
            code: None
        }),
        "the fork server reports the worker's end"
    );
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(x, result)| x == 13 || *result == Ok(x as u64))
    );
}

#[test]
fn a_fork_server_pool_replaces_a_hung_worker_and_reaps_every_worker() {
    let pool = pool_by(StartMethod::ForkServer, 1);
    let hung = pool
        .submit_with_timeout(sleep_ms, 60_000, Duration::from_millis(200))
        .unwrap();
    assert_eq!(hung.wait(), Err(TaskError::Timeout));
    let pid = pool.submit(worker_pid, 0).unwrap().wait().unwrap();
    drop(pool);
    assert!(
        std::fs::metadata(format!("/proc/{pid}")).is_err(),
        "worker {pid} is still there"
    );
}

#[test]
fn pools_share_one_fork_server_and_default_to_it_once_it_runs() {
    let first = pool_by(StartMethod::ForkServer, 1);
    let second = ProcessPool::new(1).unwrap();
    assert_eq!(second.start_method(), StartMethod::ForkServer);
    let parent_of = |pid: u32| -> u32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(1).unwrap().parse().unwrap()
    };
    let a = first.submit(worker_pid, 0).unwrap().wait().unwrap();
    let b = second.submit(worker_pid, 0).unwrap().wait().unwrap();
    assert_ne!(a, b);
    assert_eq!(parent_of(a), parent_of(b), "both forked by one server");
    assert_ne!(parent_of(a), std::process::id());
}

#[test]
fn fork_is_refused_in_a_threaded_process_with_a_pointer_to_the_fork_server() {
    // The test harness runs this test on a thread of its own: this process has several.
    let error = ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("single-threaded"), "{message}");
    assert!(message.contains("ForkServer"), "{message}");
}

/// In the re-executed "parent" role: build pools, print the workers' pids, wait to be killed.
const PARENT_ROLE: &str = "TRIAD_TEST_POOL_PARENT";

#[test]
fn workers_die_when_their_program_is_killed() {
    if std::env::var_os(PARENT_ROLE).is_some() {
        let spawn = pool_by(StartMethod::Spawn, 2);
        let server = pool_by(StartMethod::ForkServer, 2);
        let mut pids: Vec<u32> = Vec::new();
        for pool in [&spawn, &server] {
            pids.extend(
                pool.map_chunked(worker_pid, 0..40, 1)
                    .into_iter()
                    .map(Result::unwrap),
            );
        }
        pids.sort_unstable();
        pids.dedup();
        // Busy workers do not notice their socket closing: only the kernel's parent-death
        // signal (spawn) or the fork server (fork server) can end them.
        let _busy: Vec<_> = [&spawn, &server]
            .iter()
            .flat_map(|pool| (0..2).map(|_| pool.submit(sleep_ms, 60_000).unwrap()))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        println!("WORKERS {}", list.join(","));
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    use std::io::BufRead;
    let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "workers_die_when_their_program_is_killed",
            "--exact",
            "--nocapture",
        ])
        .env(PARENT_ROLE, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(parent.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map(Result::unwrap)
        .find(|line| line.starts_with("WORKERS "))
        .expect("the parent reports its workers");
    let workers: Vec<u32> = line["WORKERS ".len()..]
        .split(',')
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert!(workers.len() >= 2, "{workers:?}");
    parent.kill().unwrap();
    parent.wait().unwrap();

    let alive = |pid: u32| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Ended and waiting to be reaped by init counts as gone.
        Ok(stat) => !stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
        Err(_) => false,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while workers.iter().any(|&pid| alive(pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "orphaned workers: {:?}",
            workers
                .iter()
                .filter(|&&pid| alive(pid))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn workers_have_names_a_person_recognises() {
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let pool = pool_by(method, 1);
        let pid = pool.submit(worker_pid, 0).unwrap().wait().unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), "triad-worker", "{method:?}");
        if method == StartMethod::Spawn {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            let first = String::from_utf8_lossy(cmdline.split(|b| *b == 0).next().unwrap());
            assert!(
                first.starts_with("triad worker (pool of process_pool"),
                "{first}"
            );
        }
    }
}

#[test]
fn a_runner_starts_no_more_workers_than_it_has_inputs() {
    let runner = triad::Runner::new(triad::Mode::Processes(500)).unwrap();
    let pids: std::collections::HashSet<u32> = runner
        .map(worker_pid, [0; 3])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(pids.len() <= 3, "{pids:?}");
    let threads = triad::Runner::new(triad::Mode::Threads(5_000)).unwrap();
    assert_eq!(threads.map(worker_pid, [0]), vec![Ok(std::process::id())]);
}

#[test]
fn more_workers_than_the_system_allows_is_one_clear_error() {
    let error = ProcessPool::new(100_000_000).unwrap_err();
    assert!(
        matches!(
            error,
            triad::PoolError::TooManyWorkers {
                asked: 100_000_000,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("at most"), "{error}");
    let error = triad::Runner::new(triad::Mode::Threads(100_000_000)).unwrap_err();
    assert!(error.to_string().contains("at most"), "{error}");
}
