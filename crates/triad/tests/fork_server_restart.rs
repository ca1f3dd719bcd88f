//! The program's shared fork server, killed: the next pool starts a new one. In a binary of its
//! own, since killing the server would disturb other tests' pools.

use std::time::Duration;

use triad::{ProcessPool, StartMethod};

triad::test_support!();

#[triad::task]
fn worker_pid(_: u64) -> u32 {
    std::process::id()
}

fn pool_by(method: StartMethod, workers: usize) -> ProcessPool {
    ProcessPool::builder()
        .workers(workers)
        .start_method(method)
        .build()
        .unwrap()
}

#[test]
fn a_killed_fork_server_is_started_again_for_the_next_pool() {
    let parent_of = |pid: u32| -> u32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(1).unwrap().parse().unwrap()
    };
    let first = pool_by(StartMethod::ForkServer, 1);
    let worker = first.submit(worker_pid, 0).unwrap().wait().unwrap();
    let server = parent_of(worker);
    drop(first);
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(server as i32, libc::SIGKILL) };
    // The server's end reaches the client's reader thread shortly after.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let pool = ProcessPool::builder()
            .workers(1)
            .start_method(StartMethod::ForkServer)
            .build();
        if let Ok(pool) = pool
            && let Ok(pid) = pool.submit(worker_pid, 0).unwrap().wait()
        {
            assert_ne!(parent_of(pid), server, "a new server forked it");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no new fork server");
        std::thread::sleep(Duration::from_millis(20));
    }
}
