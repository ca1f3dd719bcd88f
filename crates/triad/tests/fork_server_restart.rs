//! The program's shared fork server, killed: it is reaped, the next pool (or the pool that used
//! it) starts a new one, and it ends with the last pool using it. In a binary of its own, since
//! killing the server would disturb other tests' pools.

mod common;

use std::time::Duration;

use common::{one_at_a_time, procs};
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
    let _turn = one_at_a_time();
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

#[test]
fn a_fork_server_killed_under_a_live_pool_is_reaped_and_replaced() {
    let _turn = one_at_a_time();
    // A server whose last pool was dropped by the other test may still be on its way out.
    procs::wait_for(Duration::from_secs(5), || {
        procs::fork_servers().is_empty().then_some(())
    })
    .expect("no fork server left over");
    // A worker the killed server forked may die with it while a task is on its way to it
    // (seen once in a full run): a retry runs that task on a replacement, as a pool under
    // such a failure should be configured to.
    let pool = ProcessPool::builder()
        .workers(2)
        .start_method(StartMethod::ForkServer)
        .retries(2)
        .build()
        .unwrap();
    assert_eq!(pool.map(worker_pid, [0, 0]).len(), 2);
    let servers = procs::fork_servers();
    assert_eq!(servers.len(), 1, "{servers:?}");
    let server = servers[0];
    procs::kill(server);
    // Reaped: its /proc entry goes (a zombie would stay, in state Z).
    let reaped = procs::wait_for(Duration::from_secs(5), || {
        procs::stat(server).is_none().then_some(())
    });
    assert!(
        reaped.is_some(),
        "the killed fork server is a zombie: {:?}",
        procs::stat(server)
    );
    // The pool starts a new server for its replacements and keeps working.
    let results = pool.map(worker_pid, 0..8);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let new_servers = procs::fork_servers();
    assert_eq!(new_servers.len(), 1);
    assert_ne!(new_servers[0], server);
    drop(pool);
    // The last pool using the server is gone: so is the server, and nothing is left unreaped.
    let gone = procs::wait_for(Duration::from_secs(5), || {
        (procs::fork_servers().is_empty() && procs::zombie_children().is_empty()).then_some(())
    });
    assert!(
        gone.is_some(),
        "left behind: {:?}",
        procs::zombie_children()
    );
}
