//! Pipes and queues between real processes.
//!
//! The test harness runs tests on several threads, so a child is never forked from it and left
//! running Rust code: each multi-process test re-executes this test binary with
//! `--exact child_entry`, and an environment variable telling [`child_entry`] which role to
//! play. The child's end of a bootstrap pipe reaches it as descriptor [`CHILD_FD`]: a
//! `pre_exec` hook `dup2`s it there, which also clears `FD_CLOEXEC` on the copy only — clearing
//! it on the parent's descriptor instead would leak it into children that other test threads
//! spawn meanwhile, and keep pipes open that should close. Everything else (queues, more pipe
//! ends) travels over the bootstrap pipe inside messages, with `SCM_RIGHTS`.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use triad::ipc::{
    IpcError, PROTOCOL_VERSION, PipeEnd, Queue, QueueError, RecvError, RecvTimeoutError, pipe,
};
use triad::{GetError, PutError, PutTimeoutError, TryPutError};

/// The environment variable naming the role a re-executed child plays.
const ROLE_ENV: &str = "TRIAD_IPC_TEST_CHILD";
/// The descriptor at which a child finds its end of the bootstrap pipe.
const CHILD_FD: RawFd = 200;
/// The longest any child may take.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// Runs this binary again as a child playing `role`, with `end` as its descriptor [`CHILD_FD`],
/// and closes the parent's copy of `end`.
fn spawn_child<S, R>(role: &str, end: PipeEnd<S, R>) -> Child {
    let source = end.as_fd().as_raw_fd();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .stdout(Stdio::null());
    // SAFETY: the hook runs in the child between fork and exec; it calls only `dup2` and
    // `fcntl`, which are async-signal-safe, and allocates nothing (`last_os_error` is a code).
    unsafe {
        command.pre_exec(move || {
            let result = if source == CHILD_FD {
                libc::fcntl(source, libc::F_SETFD, 0)
            } else {
                libc::dup2(source, CHILD_FD)
            };
            if result < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().unwrap();
    drop(end);
    child
}

/// Waits for `child` to exit successfully, killing it if it takes longer than
/// [`CHILD_DEADLINE`].
fn wait_ok(mut child: Child) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "child failed: {status}");
            return;
        }
        if started.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not finish in {CHILD_DEADLINE:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Ping {
    n: u64,
    text: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Pong {
    n: u64,
    text: String,
    pid: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProducerJob {
    queue: Queue<u32>,
    first: u32,
    count: u32,
}

/// Not a real test: the body of every child process. It returns at once unless [`ROLE_ENV`]
/// is set, i.e. when the harness runs it as a test.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    // SAFETY: the parent's `pre_exec` hook put our end of the bootstrap pipe at CHILD_FD, and
    // nothing else in this process owns that descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(CHILD_FD) };
    match role.as_str() {
        "echo" => echo(PipeEnd::from_fd(fd).unwrap()),
        "forwarded_echo" => {
            let bootstrap = PipeEnd::<(), PipeEnd<Pong, Ping>>::from_fd(fd).unwrap();
            let end = bootstrap.recv().unwrap();
            drop(bootstrap);
            echo(end);
        }
        "hello_then_exit" => {
            let end = PipeEnd::<String, ()>::from_fd(fd).unwrap();
            end.send(&"hello".to_string()).unwrap();
        }
        "ready_then_hang" => {
            let end = PipeEnd::<String, ()>::from_fd(fd).unwrap();
            end.send(&"ready".to_string()).unwrap();
            std::thread::sleep(Duration::from_secs(3600));
        }
        "producer" => {
            let end = PipeEnd::<u32, ProducerJob>::from_fd(fd).unwrap();
            let job = end.recv().unwrap();
            for id in job.first..job.first + job.count {
                job.queue.put(&id).unwrap();
            }
            end.send(&job.count).unwrap();
        }
        "consumer" => {
            let end = PipeEnd::<Vec<u32>, Queue<u32>>::from_fd(fd).unwrap();
            let queue = end.recv().unwrap();
            let mut ids = Vec::new();
            loop {
                match queue.get() {
                    Ok(id) => ids.push(id),
                    Err(QueueError::Queue(GetError::Closed)) => break,
                    Err(error) => panic!("get failed: {error}"),
                }
            }
            end.send(&ids).unwrap();
        }
        "probe_full" => {
            let end = PipeEnd::<String, Queue<u32>>::from_fd(fd).unwrap();
            let queue = end.recv().unwrap();
            let try_put = match queue.try_put(&1) {
                Err(QueueError::Queue(TryPutError::Full(()))) => "full".to_string(),
                other => format!("{other:?}"),
            };
            end.send(&try_put).unwrap();
            let started = Instant::now();
            let put_timeout = match queue.put_timeout(&1, Duration::from_millis(100)) {
                Err(QueueError::Queue(PutTimeoutError::Timeout(())))
                    if started.elapsed() >= Duration::from_millis(100) =>
                {
                    "timeout".to_string()
                }
                other => format!("{other:?} after {:?}", started.elapsed()),
            };
            end.send(&put_timeout).unwrap();
        }
        "blocked_put" => {
            let end = PipeEnd::<String, Queue<u32>>::from_fd(fd).unwrap();
            let queue = end.recv().unwrap();
            end.send(&"ready".to_string()).unwrap();
            let outcome = match queue.put(&1) {
                Err(QueueError::Queue(PutError::Closed(()))) => "closed".to_string(),
                other => format!("{other:?}"),
            };
            end.send(&outcome).unwrap();
        }
        "blocked_get" => {
            let end = PipeEnd::<String, Queue<u32>>::from_fd(fd).unwrap();
            let queue = end.recv().unwrap();
            end.send(&"ready".to_string()).unwrap();
            let mut outcomes = Vec::new();
            loop {
                match queue.get() {
                    Ok(id) => outcomes.push(id.to_string()),
                    Err(QueueError::Queue(GetError::Closed)) => {
                        outcomes.push("closed".to_string());
                        break;
                    }
                    Err(error) => {
                        outcomes.push(format!("{error:?}"));
                        break;
                    }
                }
            }
            end.send(&outcomes.join(",")).unwrap();
        }
        other => panic!("unknown child role {other:?}"),
    }
}

/// Answers each `Ping` with a `Pong` until the other end closes.
fn echo(end: PipeEnd<Pong, Ping>) {
    loop {
        match end.recv() {
            Ok(Ping { n, text }) => end
                .send(&Pong {
                    n: n * 2,
                    text: text.to_uppercase(),
                    pid: std::process::id(),
                })
                .unwrap(),
            Err(RecvError::Disconnected) => return,
            Err(error) => panic!("echo child: {error}"),
        }
    }
}

/// Sends pings over `end` and checks that another process answers them.
fn ping_pong(end: &PipeEnd<Ping, Pong>, child_pid: u32) {
    for n in 0..200 {
        let text = format!("message {n} héllo");
        end.send(&Ping {
            n,
            text: text.clone(),
        })
        .unwrap();
        let pong = end.recv_timeout(CHILD_DEADLINE).unwrap();
        assert_eq!(
            pong,
            Pong {
                n: n * 2,
                text: text.to_uppercase(),
                pid: child_pid,
            }
        );
    }
}

#[test]
fn pipe_round_trip_between_processes() {
    let (parent, child_end) = pipe::<Ping, Pong>().unwrap();
    let child = spawn_child("echo", child_end);
    assert_ne!(child.id(), std::process::id());
    ping_pong(&parent, child.id());
    // Closing our end ends the child's loop.
    drop(parent);
    wait_ok(child);
}

#[test]
fn a_pipe_end_sent_inside_a_message_works_in_another_process() {
    let (bootstrap, child_bootstrap) = pipe::<PipeEnd<Pong, Ping>, ()>().unwrap();
    let child = spawn_child("forwarded_echo", child_bootstrap);
    let (mine, theirs) = pipe::<Ping, Pong>().unwrap();
    bootstrap.send(&theirs).unwrap();
    // Our copy of the forwarded end must go, or the child's departure would not be seen.
    drop(theirs);
    ping_pong(&mine, child.id());
    drop(mine);
    wait_ok(child);
}

#[test]
fn a_dead_peer_disconnects_the_pipe() {
    // A child that exits: its message arrives, then Disconnected.
    let (parent, child_end) = pipe::<(), String>().unwrap();
    let child = spawn_child("hello_then_exit", child_end);
    assert_eq!(parent.recv_timeout(CHILD_DEADLINE).unwrap(), "hello");
    assert!(matches!(parent.recv(), Err(RecvError::Disconnected)));
    assert!(matches!(
        parent.send(&()),
        Err(triad::ipc::SendError::Disconnected)
    ));
    wait_ok(child);

    // A child killed while we wait for it: the wait ends with Disconnected, not a hang.
    let (parent, child_end) = pipe::<(), String>().unwrap();
    let mut child = spawn_child("ready_then_hang", child_end);
    assert_eq!(parent.recv_timeout(CHILD_DEADLINE).unwrap(), "ready");
    let waiter = std::thread::spawn(move || parent.recv_timeout(CHILD_DEADLINE));
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(matches!(
        waiter.join().unwrap(),
        Err(RecvTimeoutError::Disconnected)
    ));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn garbage_datagrams_are_errors_and_the_next_message_arrives() {
    let (sender, receiver) = pipe::<Vec<(u32, String)>, Vec<(u32, String)>>().unwrap();
    let raw = |bytes: &[u8]| {
        rustix::net::send(sender.as_fd(), bytes, rustix::net::SendFlags::NOSIGNAL).unwrap();
    };
    raw(&[PROTOCOL_VERSION + 1, 0]);
    raw(&[PROTOCOL_VERSION, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    raw(b"\x00 definitely not postcard");
    sender.send(&vec![(1, "good".into())]).unwrap();

    let error = receiver.recv().unwrap_err();
    assert!(
        matches!(error, RecvError::Ipc(IpcError::Version { found, expected })
            if found == PROTOCOL_VERSION + 1 && expected == PROTOCOL_VERSION),
        "{error:?}"
    );
    assert!(error.to_string().contains("protocol version"), "{error}");
    let error = receiver.recv().unwrap_err();
    assert!(
        matches!(error, RecvError::Ipc(IpcError::Codec { .. })),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("could not be decoded"),
        "{error}"
    );
    assert!(matches!(
        receiver.recv(),
        Err(RecvError::Ipc(IpcError::Version { found: 0, .. }))
    ));
    assert_eq!(receiver.recv().unwrap(), vec![(1, "good".into())]);
}

#[test]
fn queue_moves_30k_ids_between_3_producers_and_2_consumers() {
    const PRODUCERS: u32 = 3;
    const PER_PRODUCER: u32 = 10_000;
    let queue = Queue::<u32>::new(64).unwrap();

    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (mine, theirs) = pipe::<Queue<u32>, Vec<u32>>().unwrap();
            let child = spawn_child("consumer", theirs);
            mine.send(&queue).unwrap();
            (child, mine)
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|index| {
            let (mine, theirs) = pipe::<ProducerJob, u32>().unwrap();
            let child = spawn_child("producer", theirs);
            mine.send(&ProducerJob {
                queue: queue.clone(),
                first: index * PER_PRODUCER,
                count: PER_PRODUCER,
            })
            .unwrap();
            (child, mine)
        })
        .collect();

    for (child, end) in producers {
        assert_eq!(end.recv_timeout(CHILD_DEADLINE).unwrap(), PER_PRODUCER);
        wait_ok(child);
    }
    queue.close().unwrap();

    let mut all = Vec::new();
    for (child, end) in consumers {
        let ids = end.recv_timeout(CHILD_DEADLINE).unwrap();
        // Each consumer sees its share in the order the producers put them.
        for producer in 0..PRODUCERS {
            let range = producer * PER_PRODUCER..(producer + 1) * PER_PRODUCER;
            let mine: Vec<_> = ids.iter().filter(|id| range.contains(id)).collect();
            assert!(mine.is_sorted(), "producer {producer}'s ids out of order");
        }
        all.extend(ids);
        wait_ok(child);
    }
    assert_eq!(
        all.len(),
        (PRODUCERS * PER_PRODUCER) as usize,
        "lost or duplicated"
    );
    all.sort_unstable();
    assert!(
        all.iter().copied().eq(0..PRODUCERS * PER_PRODUCER),
        "lost or duplicated"
    );
    assert!(queue.is_empty());
}

#[test]
fn a_full_queue_refuses_puts_from_another_process() {
    let queue = Queue::<u32>::new(2).unwrap();
    queue.put(&10).unwrap();
    queue.put(&11).unwrap();
    let (mine, theirs) = pipe::<Queue<u32>, String>().unwrap();
    let child = spawn_child("probe_full", theirs);
    mine.send(&queue).unwrap();
    assert_eq!(mine.recv_timeout(CHILD_DEADLINE).unwrap(), "full");
    assert_eq!(mine.recv_timeout(CHILD_DEADLINE).unwrap(), "timeout");
    wait_ok(child);
    assert_eq!(queue.len(), 2);
    assert_eq!(queue.get().unwrap(), 10);
    assert_eq!(queue.get().unwrap(), 11);
}

#[test]
fn close_wakes_a_blocked_get_and_a_blocked_put_in_other_processes() {
    let full = Queue::<u32>::new(1).unwrap();
    full.put(&0).unwrap();
    let (put_end, theirs) = pipe::<Queue<u32>, String>().unwrap();
    let putter = spawn_child("blocked_put", theirs);
    put_end.send(&full).unwrap();

    let items = Queue::<u32>::new(4).unwrap();
    items.put(&1).unwrap();
    items.put(&2).unwrap();
    let (get_end, theirs) = pipe::<Queue<u32>, String>().unwrap();
    let getter = spawn_child("blocked_get", theirs);
    get_end.send(&items).unwrap();

    assert_eq!(put_end.recv_timeout(CHILD_DEADLINE).unwrap(), "ready");
    assert_eq!(get_end.recv_timeout(CHILD_DEADLINE).unwrap(), "ready");
    // Give both children time to block (if one has not, it sees Closed all the same).
    std::thread::sleep(Duration::from_millis(200));
    assert!(matches!(
        put_end.try_recv(),
        Err(triad::ipc::TryRecvError::Empty)
    ));
    assert!(matches!(
        get_end.try_recv(),
        Err(triad::ipc::TryRecvError::Empty)
    ));
    full.close().unwrap();
    items.close().unwrap();

    assert_eq!(put_end.recv_timeout(CHILD_DEADLINE).unwrap(), "closed");
    assert_eq!(get_end.recv_timeout(CHILD_DEADLINE).unwrap(), "1,2,closed");
    wait_ok(putter);
    wait_ok(getter);
    // The item put before close is still there for whoever drains.
    assert_eq!(full.get().unwrap(), 0);
    assert!(matches!(
        full.get(),
        Err(QueueError::Queue(GetError::Closed))
    ));
}
