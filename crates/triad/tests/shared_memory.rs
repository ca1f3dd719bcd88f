//! Shared arrays and values across real process boundaries.
//!
//! - `counter_*`: the seed's shared counter (section 3): 10 forked processes × 20 000
//!   increments of one counter — exact under a `SharedValue`'s lock, exact with an
//!   `AtomicValue`'s `fetch_add`, and with a load then a store it loses updates (the count is
//!   printed; losing none is a lucky run, not a failure).
//! - `a_process_that_dies_holding_the_lock_*`: a child that exits, or is SIGKILLed, inside its
//!   critical section leaves a lock the next locker gets, told that the owner died.
//! - `a_handle_*`: a handle sent through a socket with `SCM_RIGHTS` maps the same memory at
//!   another address; a forked child's writes through the inherited mapping reach the parent.
//! - `decoding_*`: a memfd that is not ours, holds another element type or the other kind of
//!   handle, is too small or is not sealed is a decode error.
//! - `nothing_is_created_in_dev_shm`: memfds have no name, so `/dev/shm` is untouched.
//!
//! Forked children run only async-signal-safe-ish work on the mapping (atomics, the pthread
//! lock, `sched_yield`) and end with `_exit`: the test harness is multi-threaded, so a child
//! must not allocate, print or unwind.

#![cfg(not(triad_loom))]

use std::collections::BTreeSet;
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use triad::fdpass::{self, SharedFd};
use triad::shm::{
    AtomicArray, AtomicValue, SharedArray, SharedValue, ShmError, increment_atomic,
    increment_locked, increment_unlocked,
};

const PROCESSES: u64 = 10;
const INCREMENTS: u64 = 20_000;

/// Ends a forked child if its work unwinds, so that it never runs the parent's test harness.
struct ExitOnUnwind;

impl Drop for ExitOnUnwind {
    fn drop(&mut self) {
        // SAFETY: `_exit` ends the child at once, running nothing of the parent's.
        unsafe { libc::_exit(101) };
    }
}

/// Forks a child that runs `work` and exits with its code. `work` must not allocate or print.
fn fork_child(work: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child runs only `work`, which the callers keep to operations on shared memory,
    // atomics, the process-shared lock and async-signal-safe calls, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let unwinding = ExitOnUnwind;
        let code = work();
        std::mem::forget(unwinding);
        // SAFETY: as above.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for `pid` and returns its raw wait status.
fn wait_status(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our child and `status` a valid out-pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        if waited == pid {
            return status;
        }
        let error = std::io::Error::last_os_error();
        assert_eq!(error.raw_os_error(), Some(libc::EINTR), "waitpid: {error}");
    }
}

/// Waits for `pid` and asserts that it exited with code 0.
fn wait_ok(pid: libc::pid_t) {
    let status = wait_status(pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {pid} failed: status {status:#x}"
    );
}

/// Runs `increment` `INCREMENTS` times on `counter` in each of `PROCESSES` forked children, all
/// started together.
fn count_in_processes<C>(counter: &C, increment: fn(&C) -> bool) {
    // [ready children, go]
    let start = AtomicArray::<u32>::new(2).unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            let start = &start;
            fork_child(move || {
                start.atomic(0).fetch_add(1, Ordering::AcqRel);
                while start.atomic(1).load(Ordering::Acquire) == 0 {
                    // SAFETY: sched_yield has no preconditions.
                    unsafe { libc::sched_yield() };
                }
                for _ in 0..INCREMENTS {
                    if !increment(counter) {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    while start.atomic(0).load(Ordering::Acquire) < PROCESSES as u32 {
        std::thread::yield_now();
    }
    start.atomic(1).store(1, Ordering::Release);
    for child in children {
        wait_ok(child);
    }
}

#[test]
fn counter_with_the_lock_loses_nothing() {
    let counter = SharedValue::new(0_u64).unwrap();
    count_in_processes(&counter, |counter| increment_locked(counter).is_ok());
    assert_eq!(counter.get(), PROCESSES * INCREMENTS);
}

#[test]
fn counter_with_atomics_loses_nothing() {
    let counter = AtomicValue::new(0_u64).unwrap();
    count_in_processes(&counter, |counter| {
        increment_atomic(counter);
        true
    });
    assert_eq!(counter.get(), PROCESSES * INCREMENTS);
}

#[test]
fn counter_without_a_lock_loses_updates() {
    let counter = AtomicValue::new(0_u64).unwrap();
    count_in_processes(&counter, |counter| {
        increment_unlocked(counter);
        true
    });
    let total = counter.get();
    let expected = PROCESSES * INCREMENTS;
    assert!(
        total <= expected,
        "{total} > {expected}: updates were invented"
    );
    println!(
        "unlocked counter: {total} of {expected}, {} updates lost ({:.1}%)",
        expected - total,
        100.0 * (expected - total) as f64 / expected as f64
    );
}

#[test]
fn a_process_that_dies_holding_the_lock_leaves_it_to_the_next() {
    let value = SharedValue::new(0_u64).unwrap();
    let child = fork_child(|| match value.lock() {
        Ok(mut guard) => {
            *guard = 7;
            // SAFETY: `_exit` ends the child inside its critical section, on purpose.
            unsafe { libc::_exit(0) }
        }
        Err(_) => 1,
    });
    wait_ok(child);

    let mut guard = value.lock().unwrap();
    assert!(guard.previous_owner_died());
    assert_eq!(*guard, 7, "the dead owner's write is there");
    *guard += 1;
    drop(guard);

    let guard = value.lock().unwrap();
    assert!(
        !guard.previous_owner_died(),
        "only the first locker is told"
    );
    assert_eq!(*guard, 8);
}

#[test]
fn a_process_killed_holding_the_lock_wakes_the_waiter() {
    let array = SharedArray::<u64>::new(4).unwrap();
    let locked = AtomicValue::new(0_u32).unwrap();
    let child = fork_child(|| match array.lock() {
        Ok(mut guard) => {
            guard[0] = 1; // half an update: the second half never comes
            locked.atomic().store(1, Ordering::Release);
            loop {
                // SAFETY: pause has no preconditions; the child waits here for its SIGKILL.
                unsafe { libc::pause() };
            }
        }
        Err(_) => 1,
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while locked.atomic().load(Ordering::Acquire) == 0 {
        assert!(Instant::now() < deadline, "the child never took the lock");
        std::thread::sleep(Duration::from_millis(1));
    }
    let killer = std::thread::spawn(move || {
        // Long enough for the main thread to be blocked in `lock` when the child dies.
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: `child` is our child, not yet waited for, so the pid is still its own.
        assert_eq!(unsafe { libc::kill(child, libc::SIGKILL) }, 0);
    });

    let started = Instant::now();
    let guard = array.lock().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "lock returned before the owner died"
    );
    assert!(guard.previous_owner_died());
    assert_eq!(&guard[..], [1, 0, 0, 0]);
    drop(guard);

    killer.join().unwrap();
    let status = wait_status(child);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
}

/// Sends `encoded` through a socket pair to this very process and receives what arrives.
fn through_a_socket(encoded: &fdpass::Encoded) -> (Vec<u8>, Vec<OwnedFd>) {
    let (left, right) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    fdpass::send_with_fds(left.as_fd(), &[IoSlice::new(&encoded.bytes)], &encoded.fds).unwrap();
    let mut buffer = [0_u8; 256];
    let (read, fds) = fdpass::recv_with_fds(right.as_fd(), &mut buffer, 4).unwrap();
    (buffer[..read].to_vec(), fds)
}

#[test]
fn a_handle_sent_with_scm_rights_is_the_same_memory() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct TaskInput {
        name: String,
        data: SharedArray<i32>,
        total: SharedValue<i64>,
    }

    let input = TaskInput {
        name: "sum".into(),
        data: SharedArray::from_slice(&[1, 2, 3, 4]).unwrap(),
        total: SharedValue::new(0).unwrap(),
    };
    let encoded = fdpass::encode(&input).unwrap();
    assert_eq!(encoded.fds.len(), 2);
    let (bytes, fds) = through_a_socket(&encoded);
    drop(encoded);
    let received: TaskInput = fdpass::decode(&bytes, fds).unwrap();

    assert_eq!(received.name, "sum");
    assert_eq!(received.data.to_vec(), [1, 2, 3, 4]);
    let sum: i32 = received.data.lock().unwrap().iter().sum();
    received.total.set(i64::from(sum));
    received.data.set(0, 100);
    assert_eq!(input.total.get(), 10);
    assert_eq!(input.data.to_vec(), [100, 2, 3, 4]);
    // The received memfd is the sender's file (same inode), mapped a second time.
    let inode = |fd: std::os::fd::BorrowedFd<'_>| rustix::fs::fstat(fd).unwrap().st_ino;
    assert_eq!(inode(input.data.as_fd()), inode(received.data.as_fd()));
    // Dropping the sender's handles keeps the memory alive for the receiver.
    drop(input);
    *received.total.lock().unwrap() += 1;
    assert_eq!(received.total.get(), 11);
}

#[test]
fn a_handle_inherited_by_a_forked_child_is_the_same_memory() {
    let array = SharedArray::<u64>::new(8).unwrap();
    let child = fork_child(|| {
        for index in 0..array.len() {
            array.set(index, index as u64 * 10);
        }
        match array.lock() {
            Ok(mut guard) => {
                guard[0] += 1;
                0
            }
            Err(_) => 1,
        }
    });
    wait_ok(child);
    assert_eq!(array.to_vec(), [1, 10, 20, 30, 40, 50, 60, 70]);
}

/// A sealed memfd of `size` bytes starting with `header`.
fn sealed_memfd(header: &[u8], size: u64) -> SharedFd {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd =
        rustix::fs::memfd_create("test", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    rustix::io::pwrite(&fd, header, 0).unwrap();
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).unwrap();
    SharedFd::new(fd)
}

/// The first `len` bytes of a real array's memfd: a valid header.
fn header_bytes<T>(array: &SharedArray<T>, len: usize) -> Vec<u8> {
    let mut bytes = vec![0_u8; len];
    rustix::io::pread(array.as_fd(), &mut bytes, 0).unwrap();
    bytes
}

/// Decodes `fd` with `len` as `SharedArray<T>`, as a handle from another process would be.
/// A handle's wire format is (memfd, length): the tuple encodes the same.
fn decode_as<T: bytemuck::Pod>(fd: SharedFd, len: u64) -> Result<SharedArray<T>, postcard::Error> {
    let encoded = fdpass::encode(&(fd, len)).unwrap();
    fdpass::decode(&encoded.bytes, encoded.fds)
}

#[test]
fn decoding_checks_the_header_against_the_type_and_the_memfd() {
    let real = SharedArray::<u64>::new(100).unwrap();
    let fd = || SharedFd::new(real.as_fd().try_clone_to_owned().unwrap());
    assert!(decode_as::<u64>(fd(), 100).is_ok());
    assert!(decode_as::<u32>(fd(), 100).is_err(), "wrong element size");
    assert!(decode_as::<u64>(fd(), 99).is_err(), "wrong length");

    assert!(matches!(
        SharedArray::<u32>::from_fd(fd()),
        Err(ShmError::ElementType {
            expected_size: 4,
            found_size: 8,
            ..
        })
    ));

    let zeros = sealed_memfd(&[], 4096);
    assert!(decode_as::<u64>(zeros.clone(), 0).is_err());
    assert!(matches!(
        SharedArray::<u64>::from_fd(zeros),
        Err(ShmError::BadMagic)
    ));

    // A valid header for 100 elements in a memfd with room for one.
    let header = header_bytes(&real, 128);
    let short = sealed_memfd(&header, 128 + 8);
    assert!(decode_as::<u64>(short.clone(), 100).is_err());
    let error = SharedArray::<u64>::from_fd(short).unwrap_err();
    assert!(
        matches!(error, ShmError::TooSmall { size: 136, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("too small"));

    // Smaller than a header.
    assert!(matches!(
        SharedArray::<u64>::from_fd(sealed_memfd(&header[..8], 8)),
        Err(ShmError::TooSmall { size: 8, .. })
    ));

    // The other kind of handle.
    let atomics = AtomicArray::<u64>::new(100).unwrap();
    let atomics_fd = SharedFd::new(atomics.as_fd().try_clone_to_owned().unwrap());
    assert!(matches!(
        SharedArray::<u64>::from_fd(atomics_fd),
        Err(ShmError::Kind { .. })
    ));

    // A memfd that could shrink under the mapping.
    let unsealed = rustix::fs::memfd_create("test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&unsealed, 4096).unwrap();
    assert!(matches!(
        SharedArray::<u64>::from_fd(SharedFd::new(unsealed)),
        Err(ShmError::NotSealed)
    ));
}

fn dev_shm_entries() -> BTreeSet<std::ffi::OsString> {
    match std::fs::read_dir("/dev/shm") {
        Ok(entries) => entries.map(|entry| entry.unwrap().file_name()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

#[test]
fn nothing_is_created_in_dev_shm() {
    let before = dev_shm_entries();
    {
        let arrays: Vec<_> = (1..=5)
            .map(|len| SharedArray::<u64>::new(len * 1000).unwrap())
            .collect();
        let value = SharedValue::new(1.5_f64).unwrap();
        let encoded = fdpass::encode(&(arrays.clone(), value.clone())).unwrap();
        let (bytes, fds) = through_a_socket(&encoded);
        let (received, _value): (Vec<SharedArray<u64>>, SharedValue<f64>) =
            fdpass::decode(&bytes, fds).unwrap();
        assert_eq!(received.len(), 5);
        // Each handle's descriptor is an anonymous memfd.
        let link = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&arrays[0].as_fd())
        ))
        .unwrap();
        assert!(
            link.to_string_lossy().starts_with("/memfd:triad-shm"),
            "{link:?}"
        );
        assert_eq!(dev_shm_entries(), before, "while mapped");
    }
    assert_eq!(dev_shm_entries(), before, "after dropping");
}
