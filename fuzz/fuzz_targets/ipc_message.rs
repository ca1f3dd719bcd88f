//! The ipc module's received-message decoder (version byte, then postcard with `SharedFd`s) on
//! arbitrary datagrams, through `triad::ipc::fuzz_decode_message`.
//!
//! Plain types are decoded without descriptors. Handle types (`PipeEnd`, `Queue`,
//! `SharedArray`, `SharedValue`, `AtomicArray`, `AtomicValue`) are decoded with real descriptors
//! beside the bytes — a queue's three (two `SOCK_SEQPACKET` sockets and its sealed header
//! memfd), a pipe end and the memfds of a locked and an atomic array — so that the fuzzer's indices can point a handle at the right descriptor, at
//! another kind of descriptor, at one already used, or at none. Nothing may panic.

#![no_main]

use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use triad::fdpass::{self, SharedFd};
use triad::ipc::{PipeEnd, Queue, fuzz_decode_message};
use triad::shm::{AtomicArray, AtomicValue, SharedArray, SharedValue};

/// Descriptors of live objects, encoded once; each decode gets fresh duplicates.
struct Handles {
    queue: Queue<u32>,
    pipe: (PipeEnd<u8, u8>, PipeEnd<u8, u8>),
    array: SharedArray<u64>,
    atomics: AtomicArray<u64>,
}

fn handles() -> &'static Handles {
    static HANDLES: OnceLock<Handles> = OnceLock::new();
    HANDLES.get_or_init(|| Handles {
        queue: Queue::new(2).expect("queue"),
        pipe: triad::pipe().expect("pipe"),
        array: SharedArray::new(1).expect("shared array"),
        atomics: AtomicArray::new(1).expect("atomic array"),
    })
}

/// Fresh duplicates of: the queue's write socket, read socket and header memfd; one pipe end;
/// the shared array's memfd; the atomic array's memfd (indices 0 to 5).
fn descriptors() -> Vec<OwnedFd> {
    let handles = handles();
    let mut fds = fdpass::encode(&handles.queue).expect("encode queue").fds;
    fds.extend(fdpass::encode(&handles.pipe.0).expect("encode pipe").fds);
    fds.extend(fdpass::encode(&handles.array).expect("encode array").fds);
    fds.extend(fdpass::encode(&handles.atomics).expect("encode atomics").fds);
    fds
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // decoded only to be dropped
struct Mixed {
    name: String,
    pipes: Vec<PipeEnd<u8, u8>>,
    queue: Option<Queue<u32>>,
    raw: Option<SharedFd>,
}

fn with_descriptors<T: DeserializeOwned>(datagram: &[u8]) {
    let _ = fuzz_decode_message::<T>(datagram, descriptors());
}

fuzz_target!(|datagram: &[u8]| {
    let _ = fuzz_decode_message::<Vec<(u32, String)>>(datagram, Vec::new());
    let _ = fuzz_decode_message::<(Option<i64>, Vec<f64>, bool)>(datagram, Vec::new());
    let _ = fuzz_decode_message::<PipeEnd<u8, u8>>(datagram, Vec::new());
    let _ = fuzz_decode_message::<Queue<u8>>(datagram, Vec::new());
    with_descriptors::<PipeEnd<u8, u8>>(datagram);
    with_descriptors::<Queue<u32>>(datagram);
    with_descriptors::<SharedArray<u64>>(datagram);
    with_descriptors::<SharedValue<u64>>(datagram);
    with_descriptors::<AtomicArray<u64>>(datagram);
    with_descriptors::<AtomicValue<u64>>(datagram);
    with_descriptors::<Mixed>(datagram);
});
