//! The process pool at its edges: descriptor limits, message-size limits, user code that
//! panics where the pool decodes, workers that die between tasks, slow initializers, and how
//! a fresh pool spreads its first tasks. (Each of these was a defect found in review.)

mod common;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::{expect, run_until};
use serde::{Deserialize, Deserializer, Serialize};
use triad::fdpass::SharedFd;
use triad::{ProcessPool, StartMethod, TaskError};

triad::test_support!();

fn pool(workers: usize) -> ProcessPool {
    ProcessPool::builder()
        .workers(workers)
        .start_method(StartMethod::Spawn)
        .build()
        .unwrap()
}

/// Runs `f` on a thread; None if it has not returned within `limit`.
fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[triad::task]
fn sleep_ms(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

// ---------------------------------------------------------------- 1. fd desync

/// Output whose Deserialize (run on the dispatcher thread) stalls the dispatcher.
#[derive(Debug, Serialize)]
struct SlowDecode(u8);
impl<'de> Deserialize<'de> for SlowDecode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u8::deserialize(d)?;
        std::thread::sleep(Duration::from_millis(400));
        Ok(SlowDecode(v))
    }
}

#[triad::task]
fn slow_decode(x: u8) -> SlowDecode {
    SlowDecode(x)
}

/// The memfd names of the descriptors the task received.
#[triad::task]
fn fd_names(fds: Vec<SharedFd>) -> Vec<String> {
    use std::os::fd::AsRawFd;
    let mut names: Vec<String> = fds
        .iter()
        .map(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn memfds(name: &str, count: usize) -> Vec<SharedFd> {
    let fd = rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let shared = SharedFd::new(fd);
    vec![shared; count]
}

#[test]
fn descriptors_reach_their_own_task_when_a_batch_would_hold_over_253() {
    let pool = pool(1);
    // Stall the dispatcher thread in a user Deserialize so that A and B are queued together.
    let stall = pool.submit(slow_decode, 1).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let a = pool.submit(fd_names, memfds("AAA", 200)).unwrap();
    let b = pool.submit(fd_names, memfds("BBB", 200)).unwrap();
    stall.wait().unwrap();
    let a = a.wait();
    let b = b.wait();
    let c = pool.submit(fd_names, memfds("CCC", 200)).unwrap().wait();
    assert_eq!(a, Ok(vec!["/memfd:AAA (deleted)".to_string()]));
    assert_eq!(b, Ok(vec!["/memfd:BBB (deleted)".to_string()]));
    assert_eq!(c, Ok(vec!["/memfd:CCC (deleted)".to_string()]));
}

// ---------------------------------------------------- 2. timeout before hello breaks the pool

#[test]
fn a_timeout_before_a_replacement_says_hello_leaves_the_pool_working() {
    let pool = ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::Spawn)
        .initializer(sleep_ms, 500) // a slow initializer: loading a model, say
        .build()
        .unwrap();
    let hung = pool
        .submit_with_timeout(sleep_ms, 60_000, Duration::from_millis(100))
        .unwrap();
    assert_eq!(hung.wait(), Err(TaskError::Timeout));
    // The replacement is in its initializer; this one times out before it says hello.
    let quick = pool
        .submit_with_timeout(sleep_ms, 1, Duration::from_millis(100))
        .unwrap();
    assert_eq!(quick.wait(), Err(TaskError::Timeout));
    // The pool should still work.
    let after = pool.submit(sleep_ms, 1).unwrap().wait();
    assert_eq!(after, Ok(1), "pool is broken for good");
}

// ---------------------------------- 3. a task's subprocess keeps the worker socket (fd 3) open

#[triad::task]
#[allow(
    clippy::zombie_processes,
    reason = "the worker kills itself at once: its child is meant to outlive it"
)]
fn spawn_then_die(seconds: u32) -> u32 {
    std::process::Command::new("sleep")
        .arg(seconds.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SAFETY: kill with our own pid and SIGKILL has no memory-safety preconditions.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    0
}

#[test]
fn a_dead_worker_is_noticed_even_while_its_subprocess_lives() {
    let pool = pool(1);
    run_until("a death is noticed at once", || {
        let started = Instant::now();
        let result = pool.submit(spawn_then_die, 5).unwrap().wait();
        let took = started.elapsed();
        assert!(
            matches!(result, Err(TaskError::WorkerDied { .. })),
            "{result:?}"
        );
        expect(took < Duration::from_secs(2), || {
            format!("death noticed only after {took:?}")
        })
    });
}

// ------------------------------------------------ 4. output over MAX_FRAME: endless respawns

#[triad::task]
fn big_output(mib: usize) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(vec![7_u8; mib << 20])
}

#[test]
fn an_output_over_the_message_limit_is_that_tasks_codec_error() {
    let pool = pool(1);
    let handle = pool.submit(big_output, 260).unwrap();
    let result =
        within(Duration::from_secs(20), move || handle.wait()).expect("wait() returns within 20 s");
    assert!(
        matches!(&result, Err(TaskError::Codec(detail)) if detail.contains("limit")),
        "{result:?}"
    );
    assert_eq!(pool.submit(sleep_ms, 1).unwrap().wait(), Ok(1));
}

// -------------------------------------- 5. input over MAX_FRAME: dispatcher panic, map hangs

#[triad::task]
fn input_len(bytes: serde_bytes::ByteBuf) -> usize {
    bytes.len()
}

#[test]
fn an_input_over_the_message_limit_is_that_tasks_codec_error() {
    let pool = pool(1);
    let p = pool.clone();
    let results = within(Duration::from_secs(20), move || {
        p.map(
            input_len,
            [
                serde_bytes::ByteBuf::from(vec![0_u8; 260 << 20]),
                serde_bytes::ByteBuf::from(vec![0_u8; 3]),
            ],
        )
    })
    .expect("map() returns within 20 s");
    assert!(
        matches!(&results[0], Err(TaskError::Codec(detail)) if detail.contains("limit")),
        "{:?}",
        results[0]
    );
    assert_eq!(results[1], Ok(3));
}

// ---------------------------------------------------------------- 6. join without close

#[test]
fn join_without_close_closes_and_returns() {
    let pool = pool(1);
    let p = pool.clone();
    assert!(
        within(Duration::from_secs(5), move || p.join()).is_some(),
        "join() without close() returns"
    );
    assert!(matches!(
        pool.submit(sleep_ms, 1),
        Err(triad::PoolError::Closed)
    ));
}

// ------------------------------------------------- 7. the 30 s start-up limit is not enforced

#[test]
#[ignore = "takes 30 s"]
fn build_gives_up_after_its_30_s_limit() {
    let started = Instant::now();
    let built = ProcessPool::builder()
        .workers(1)
        .start_method(StartMethod::Spawn)
        .initializer(sleep_ms, 45_000)
        .build();
    let took = started.elapsed();
    assert!(
        built.is_err(),
        "an initializer that outlasts the limit fails the build"
    );
    assert!(took < Duration::from_secs(35), "build took {took:?}");
}

// ------------------------------------------------ 8. heavy tasks all land on worker 0

#[triad::task]
fn sleep_then_pid(millis: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(millis));
    std::process::id()
}

#[test]
fn a_fresh_pool_spreads_slow_tasks_over_its_workers() {
    run_until("8 × 300 ms spread over 4 workers", || {
        let pool = pool(4);
        let started = Instant::now();
        let pids: Vec<u32> = pool
            .map(sleep_then_pid, [300_u64; 8])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let took = started.elapsed();
        let distinct: std::collections::HashSet<_> = pids.iter().collect();
        expect(distinct.len() == 4, || format!("{pids:?}"))?;
        expect(took < Duration::from_millis(1500), || {
            format!("8 x 300 ms on 4 workers took {took:?}")
        })
    });
}

// ------------------------------------ 9. a panicking Deserialize of an output kills the pool

#[derive(Debug, Serialize)]
struct PanicDecode(u8);
impl<'de> Deserialize<'de> for PanicDecode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u8::deserialize(d)?;
        assert!(v != 13, "cannot decode 13");
        Ok(PanicDecode(v))
    }
}

#[triad::task]
fn panic_decode(x: u8) -> PanicDecode {
    PanicDecode(x)
}

#[test]
fn an_output_whose_decoding_panics_fails_alone() {
    let pool = pool(1);
    let first = pool.submit(panic_decode, 13).unwrap().wait();
    assert!(
        matches!(&first, Err(TaskError::Codec(detail)) if detail.contains("cannot decode 13")),
        "{first:?}"
    );
    let p = pool.clone();
    let later = within(Duration::from_secs(5), move || p.map(sleep_ms, [1_u64]));
    assert_eq!(later, Some(vec![Ok(1)]), "the pool goes on");
}
