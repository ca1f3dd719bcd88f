//! The five transports behind one interface, the task that plays the far side in a worker
//! process, and the timing loops.
//!
//! Every transport moves messages of a size both sides know: triad's typed [`pipe`] and
//! [`Queue`] carry a `ByteBuf` (postcard: a length and the bytes), an OS pipe and a Unix stream
//! socket carry the raw bytes, and shared memory is a ring of four [`SharedArray`] slots per
//! direction — the sender copies a message into a free slot under the slot's lock and moves an
//! atomic head on, the receiver copies it out and moves the tail on; a side that must wait
//! spins briefly, yields a while, then sleeps on a futex on the counter. Both processes are
//! pinned for each measurement, to one CPU or to two: where they run decides which transport
//! wins (a kernel hand-over is cheap on one CPU, spinning on shared memory on two). The far end of each
//! transport travels to a [`ProcessPool`] worker inside the input of [`ipc_peer`], as
//! descriptors (`SCM_RIGHTS`), and the worker echoes (latency) or sinks (bandwidth) while this
//! process times its side.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use triad::fdpass::SharedFd;
use triad::{AtomicArray, PipeEnd, Queue, SharedArray, pipe};

use crate::experiments::affinity::{PinnedThread, allowed_cpus};
use crate::names::names;
use crate::plan::Repeat;

/// Slots in each direction of the shared-memory ring.
const RING_SLOTS: usize = 4;
/// Where the ring's head and tail counters sit in their array: 128 bytes apart, on separate
/// cache lines; each counter's sleeper count sits `SLEEPERS` words after it.
const HEAD: usize = 0;
const TAIL: usize = 32;
const SLEEPERS: usize = 16;
const COUNTERS: usize = TAIL + SLEEPERS + 1;
/// How many times a waiting side spins, then how long it yields, before it sleeps on the
/// futex.
const SPINS: u32 = 100;
const YIELDING: Duration = Duration::from_micros(50);
/// Capacity of the queue carrying a bandwidth run's messages.
const QUEUE_CAPACITY: usize = 64;

names! {
    /// The transports, in table order, by the prefix of their measurement names (the same in
    /// `python/ipc.py`).
    pub(super) enum Kind {
        /// `triad::pipe`: a `SOCK_SEQPACKET` socketpair, postcard-framed messages.
        Pipe => "pipe",
        /// Two `pipe(2)`s, raw bytes.
        OsPipe => "os-pipe",
        /// A `SOCK_STREAM` Unix socketpair, raw bytes.
        Socket => "socket",
        /// Two `triad::Queue`s (one per direction).
        Queue => "queue",
        /// A ring of `SharedArray<u8>` slots per direction.
        SharedMemory => "shm",
    }
}

names! {
    /// Where the two processes run: the `placement` parameter of the measurements (the same in
    /// `python/ipc.py`).
    pub(super) enum Spread {
        OneCpu => "one-cpu",
        TwoCpus => "two-cpus",
    }
}

impl Spread {
    /// For people.
    pub(super) fn label(self) -> &'static str {
        match self {
            Spread::OneCpu => "both on one CPU",
            Spread::TwoCpus => "on two CPUs",
        }
    }
}

impl Kind {
    /// What Rust uses.
    pub(super) fn rust_label(self) -> &'static str {
        match self {
            Kind::Pipe => "triad::pipe (seqpacket, postcard)",
            Kind::OsPipe => "pipe(2), raw bytes",
            Kind::Socket => "UnixStream pair, raw bytes",
            Kind::Queue => "triad::Queue (postcard)",
            Kind::SharedMemory => "SharedArray ring",
        }
    }

    /// What the CPython script uses.
    pub(super) fn python_label(self) -> &'static str {
        match self {
            Kind::Pipe => "multiprocessing.Pipe (pickle)",
            Kind::OsPipe => "os.pipe, raw bytes",
            Kind::Socket => "socket.socketpair, raw bytes",
            Kind::Queue => "multiprocessing.Queue (pickle)",
            Kind::SharedMemory => "SharedMemory ring",
        }
    }
}

/// One side of a transport: sends and receives whole messages of a length both sides know.
trait Endpoint {
    fn send(&mut self, message: &ByteBuf) -> Result<(), String>;
    /// Receives the next message, which must be `len` bytes long, into `into`.
    fn recv(&mut self, len: usize, into: &mut Vec<u8>) -> Result<(), String>;
}

fn check_len(got: usize, len: usize) -> Result<(), String> {
    if got == len {
        Ok(())
    } else {
        Err(format!(
            "a message of {got} bytes where {len} were expected"
        ))
    }
}

impl Endpoint for PipeEnd<ByteBuf, ByteBuf> {
    fn send(&mut self, message: &ByteBuf) -> Result<(), String> {
        PipeEnd::send(self, message).map_err(|e| format!("pipe send: {e}"))
    }

    fn recv(&mut self, len: usize, into: &mut Vec<u8>) -> Result<(), String> {
        *into = PipeEnd::recv(self)
            .map_err(|e| format!("pipe recv: {e}"))?
            .into_vec();
        check_len(into.len(), len)
    }
}

/// A queue in each direction.
struct QueuePair {
    inbox: Queue<ByteBuf>,
    outbox: Queue<ByteBuf>,
}

impl Endpoint for QueuePair {
    fn send(&mut self, message: &ByteBuf) -> Result<(), String> {
        self.outbox
            .put(message)
            .map_err(|e| format!("queue put: {e}"))
    }

    fn recv(&mut self, len: usize, into: &mut Vec<u8>) -> Result<(), String> {
        *into = self
            .inbox
            .get()
            .map_err(|e| format!("queue get: {e}"))?
            .into_vec();
        check_len(into.len(), len)
    }
}

/// Raw bytes over descriptors: an OS pipe in each direction, or one stream socket for both.
struct RawEnd {
    reader: File,
    writer: File,
}

impl Endpoint for RawEnd {
    fn send(&mut self, message: &ByteBuf) -> Result<(), String> {
        self.writer
            .write_all(message)
            .map_err(|e| format!("write: {e}"))
    }

    fn recv(&mut self, len: usize, into: &mut Vec<u8>) -> Result<(), String> {
        into.resize(len, 0);
        self.reader
            .read_exact(into)
            .map_err(|e| format!("read: {e}"))
    }
}

/// One direction of the shared-memory ring.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ring {
    slots: Vec<SharedArray<u8>>,
    /// `HEAD`: messages written so far; `TAIL`: messages read so far; and how many processes
    /// sleep on each.
    counters: AtomicArray<u32>,
}

impl Ring {
    fn new(slot_size: usize) -> Result<Self, String> {
        let shm = |e| format!("shared memory: {e}");
        Ok(Ring {
            slots: (0..RING_SLOTS)
                .map(|_| SharedArray::new(slot_size).map_err(shm))
                .collect::<Result<_, _>>()?,
            counters: AtomicArray::new(COUNTERS).map_err(shm)?,
        })
    }

    fn counter(&self, index: usize) -> Counter<'_> {
        Counter {
            value: self.counters.atomic(index),
            sleepers: self.counters.atomic(index + SLEEPERS),
        }
    }
}

/// A counter in shared memory that the other process can wait on: spinning a little, then
/// sleeping on a futex (shared, not private: the other process maps the same page).
struct Counter<'a> {
    value: &'a AtomicU32,
    sleepers: &'a AtomicU32,
}

impl Counter<'_> {
    fn get(&self) -> u32 {
        self.value.load(Ordering::Acquire)
    }

    /// Returns once `ready(value)` holds: spins a little (the other process runs on another
    /// CPU), yields for a while (it may share this CPU), then sleeps on the futex.
    fn wait_until(&self, ready: impl Fn(u32) -> bool) {
        for _ in 0..SPINS {
            if ready(self.get()) {
                return;
            }
            std::hint::spin_loop();
        }
        let yielding = Instant::now();
        while yielding.elapsed() < YIELDING {
            if ready(self.get()) {
                return;
            }
            std::thread::yield_now();
        }
        loop {
            if ready(self.get()) {
                return;
            }
            // Announce the sleeper before looking again, so that a `publish` either is seen
            // here or sees the sleeper (both sides are SeqCst), and the futex checks the value
            // once more in the kernel.
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let seen = self.value.load(Ordering::SeqCst);
            if !ready(seen) {
                let _ = futex::wait(self.value, futex::Flags::empty(), seen, None);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Sets the value and wakes whoever sleeps on it.
    fn publish(&self, value: u32) {
        self.value.store(value, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _ = futex::wake(self.value, futex::Flags::empty(), u32::MAX);
        }
    }
}

/// A ring in each direction.
struct RingPair {
    inbox: Ring,
    outbox: Ring,
}

impl Endpoint for RingPair {
    fn send(&mut self, message: &ByteBuf) -> Result<(), String> {
        let (head, tail) = (self.outbox.counter(HEAD), self.outbox.counter(TAIL));
        let next = head.get();
        // The counters count modulo 2^32 on purpose: RING_SLOTS divides 2^32, so a counter that
        // wrapped names the same slot, and `next - tail` is still the messages in flight.
        tail.wait_until(|tail| next.wrapping_sub(tail) < RING_SLOTS as u32);
        let slot = &self.outbox.slots[next as usize % RING_SLOTS];
        let mut guard = slot.lock().map_err(|e| format!("slot lock: {e}"))?;
        guard
            .get_mut(..message.len())
            .ok_or_else(|| format!("a message of {} bytes is larger than a slot", message.len()))?
            .copy_from_slice(message);
        drop(guard);
        head.publish(next.wrapping_add(1));
        Ok(())
    }

    fn recv(&mut self, len: usize, into: &mut Vec<u8>) -> Result<(), String> {
        let (head, tail) = (self.inbox.counter(HEAD), self.inbox.counter(TAIL));
        let taken = tail.get();
        head.wait_until(|head| head != taken);
        let slot = &self.inbox.slots[taken as usize % RING_SLOTS];
        let guard = slot.lock().map_err(|e| format!("slot lock: {e}"))?;
        let message = guard
            .get(..len)
            .ok_or_else(|| format!("a message of {len} bytes is larger than a slot"))?;
        into.clear();
        into.extend_from_slice(message);
        drop(guard);
        tail.publish(taken.wrapping_add(1));
        Ok(())
    }
}

/// The far end of a transport, as it travels to the worker.
#[derive(Debug, Serialize, Deserialize)]
enum FarEnd {
    Pipe(PipeEnd<ByteBuf, ByteBuf>),
    Queue {
        inbox: Queue<ByteBuf>,
        outbox: Queue<ByteBuf>,
    },
    Raw {
        reader: SharedFd,
        writer: SharedFd,
    },
    Ring {
        inbox: Ring,
        outbox: Ring,
    },
}

impl FarEnd {
    fn into_endpoint(self) -> Result<Box<dyn Endpoint>, String> {
        Ok(match self {
            FarEnd::Pipe(end) => Box::new(end),
            FarEnd::Queue { inbox, outbox } => Box::new(QueuePair { inbox, outbox }),
            FarEnd::Raw { reader, writer } => {
                let file = |fd: SharedFd| {
                    fd.try_clone_owned()
                        .map(File::from)
                        .map_err(|e| format!("dup: {e}"))
                };
                Box::new(RawEnd {
                    reader: file(reader)?,
                    writer: file(writer)?,
                })
            }
            FarEnd::Ring { inbox, outbox } => Box::new(RingPair { inbox, outbox }),
        })
    }
}

/// A new transport of `kind` for messages of up to `size` bytes: this process's end, and the
/// far end for the worker.
fn connect(kind: Kind, size: usize) -> Result<(Box<dyn Endpoint>, FarEnd), String> {
    let io = |what: &'static str| move |e: std::io::Error| format!("{what}: {e}");
    Ok(match kind {
        Kind::Pipe => {
            let (ours, theirs) = pipe::<ByteBuf, ByteBuf>().map_err(io("pipe"))?;
            (Box::new(ours), FarEnd::Pipe(theirs))
        }
        Kind::Queue => {
            let to_peer = Queue::new(QUEUE_CAPACITY).map_err(io("queue"))?;
            let from_peer = Queue::new(QUEUE_CAPACITY).map_err(io("queue"))?;
            (
                Box::new(QueuePair {
                    inbox: from_peer.clone(),
                    outbox: to_peer.clone(),
                }),
                FarEnd::Queue {
                    inbox: to_peer,
                    outbox: from_peer,
                },
            )
        }
        Kind::OsPipe => {
            let flags = rustix::pipe::PipeFlags::CLOEXEC;
            let (to_peer_read, to_peer_write) =
                rustix::pipe::pipe_with(flags).map_err(|e| format!("pipe2: {e}"))?;
            let (from_peer_read, from_peer_write) =
                rustix::pipe::pipe_with(flags).map_err(|e| format!("pipe2: {e}"))?;
            (
                Box::new(RawEnd {
                    reader: File::from(from_peer_read),
                    writer: File::from(to_peer_write),
                }),
                FarEnd::Raw {
                    reader: SharedFd::new(to_peer_read),
                    writer: SharedFd::new(from_peer_write),
                },
            )
        }
        Kind::Socket => {
            let (ours, theirs) = UnixStream::pair().map_err(io("socketpair"))?;
            let theirs = SharedFd::new(OwnedFd::from(theirs));
            let writer = ours.try_clone().map_err(io("dup"))?;
            (
                Box::new(RawEnd {
                    reader: File::from(OwnedFd::from(ours)),
                    writer: File::from(OwnedFd::from(writer)),
                }),
                FarEnd::Raw {
                    reader: theirs.clone(),
                    writer: theirs,
                },
            )
        }
        Kind::SharedMemory => {
            let to_peer = Ring::new(size)?;
            let from_peer = Ring::new(size)?;
            (
                Box::new(RingPair {
                    inbox: from_peer.clone(),
                    outbox: to_peer.clone(),
                }),
                FarEnd::Ring {
                    inbox: to_peer,
                    outbox: from_peer,
                },
            )
        }
    })
}

/// What the worker does with its end.
#[derive(Debug, Serialize, Deserialize)]
enum Role {
    /// Sends each of `rounds` messages of `size` bytes back.
    Echo { size: usize, rounds: usize },
    /// Receives `repeats` × `messages` messages of `size` bytes, acknowledging each repeat with
    /// one byte.
    Sink {
        size: usize,
        messages: usize,
        repeats: usize,
    },
}

impl Role {
    /// The bytes the far side receives, exactly, or an error where they overflow a u64.
    fn bytes(&self) -> Result<u64, String> {
        let (size, count) = match *self {
            Role::Echo { size, rounds } => (size, Some(rounds)),
            Role::Sink {
                size,
                messages,
                repeats,
            } => (size, messages.checked_mul(repeats)),
        };
        count
            .and_then(|count| {
                u64::try_from(size)
                    .ok()?
                    .checked_mul(u64::try_from(count).ok()?)
            })
            .ok_or_else(|| format!("{self:?} moves more than u64::MAX bytes"))
    }
}

/// The far side of one measurement, run in a worker process pinned to `cpu`: returns the bytes
/// it received.
#[triad::task]
fn ipc_peer(job: (FarEnd, Role, usize)) -> Result<u64, String> {
    let (end, role, cpu) = job;
    let _pinned = PinnedThread::to(cpu).map_err(|e| format!("pinning to CPU {cpu}: {e}"))?;
    let mut end = end.into_endpoint()?;
    let mut buffer = ByteBuf::new();
    match role {
        Role::Echo { size, rounds } => {
            for _ in 0..rounds {
                end.recv(size, &mut buffer)?;
                end.send(&buffer)?;
            }
            role.bytes()
        }
        Role::Sink {
            size,
            messages,
            repeats,
        } => {
            let ack = ByteBuf::from(vec![1_u8]);
            for _ in 0..repeats {
                for _ in 0..messages {
                    end.recv(size, &mut buffer)?;
                }
                end.send(&ack)?;
            }
            role.bytes()
        }
    }
}

/// Whether triad's pipe and queue can carry a message of `size` bytes (one datagram each).
pub(super) fn fits(kind: Kind, size: usize) -> Result<bool, String> {
    let encoded = size + 8;
    Ok(match kind {
        Kind::Pipe => {
            let (end, _) = pipe::<ByteBuf, ByteBuf>().map_err(|e| format!("pipe: {e}"))?;
            encoded <= end.max_message_size()
        }
        Kind::Queue => {
            let queue = Queue::<ByteBuf>::new(1).map_err(|e| format!("queue: {e}"))?;
            encoded <= queue.max_message_size()
        }
        Kind::OsPipe | Kind::Socket | Kind::SharedMemory => true,
    })
}

/// Which CPU each process runs on during a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Placement {
    pub(super) ours: usize,
    pub(super) theirs: usize,
}

impl Placement {
    /// The placements this machine allows: both processes on one CPU, and (with two CPUs or
    /// more) on two.
    pub(super) fn available() -> Result<Vec<Placement>, String> {
        let cpus = allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
        let first = *cpus.first().ok_or("no CPU is allowed")?;
        Ok(std::iter::once(Placement {
            ours: first,
            theirs: first,
        })
        .chain(cpus.get(1).map(|&second| Placement {
            ours: first,
            theirs: second,
        }))
        .collect())
    }

    /// One CPU or two.
    pub(super) fn spread(self) -> Spread {
        if self.ours == self.theirs {
            Spread::OneCpu
        } else {
            Spread::TwoCpus
        }
    }
}

/// Runs `ours` against the worker playing `role` on the far end of a fresh `kind` transport,
/// each process pinned as `placement` says.
fn with_peer<T>(
    pool: &triad::ProcessPool,
    placement: Placement,
    kind: Kind,
    size: usize,
    role: Role,
    ours: impl FnOnce(&mut dyn Endpoint) -> Result<T, String>,
) -> Result<T, String> {
    let expected = role.bytes()?;
    let (mut near, far) = connect(kind, size)?;
    let _pinned = PinnedThread::to(placement.ours)
        .map_err(|e| format!("pinning to CPU {}: {e}", placement.ours))?;
    let peer = pool
        .submit(ipc_peer, (far, role, placement.theirs))
        .map_err(|e| format!("the peer worker: {e}"))?;
    let result = ours(near.as_mut())?;
    let seen = peer.wait().map_err(|e| format!("the peer worker: {e}"))??;
    if seen != expected {
        return Err(format!("the peer saw {seen} bytes, not {expected}"));
    }
    Ok(result)
}

/// Round trips of `size`-byte messages: each one timed, after `warm_up` untimed ones.
pub(super) fn round_trips(
    pool: &triad::ProcessPool,
    placement: Placement,
    kind: Kind,
    size: usize,
    warm_up: usize,
    timed: usize,
) -> Result<Vec<f64>, String> {
    let payload = payload(size);
    let role = Role::Echo {
        size,
        rounds: warm_up + timed,
    };
    with_peer(pool, placement, kind, size, role, |end| {
        let mut reply = Vec::with_capacity(size);
        let mut samples = Vec::with_capacity(timed);
        for round in 0..warm_up + timed {
            let started = Instant::now();
            end.send(&payload)?;
            end.recv(size, &mut reply)?;
            if round >= warm_up {
                samples.push(started.elapsed().as_secs_f64());
            }
        }
        if reply[..] != payload[..] {
            return Err("the echo changed the message".to_owned());
        }
        Ok(samples)
    })
}

/// One-way streams of `messages` messages of `size` bytes, each acknowledged at the end, as
/// `repeat` says: the throughput of each stream kept, in bytes per second.
pub(super) fn bandwidth(
    pool: &triad::ProcessPool,
    placement: Placement,
    kind: Kind,
    size: usize,
    messages: usize,
    repeat: Repeat,
) -> Result<Vec<f64>, String> {
    let payload = payload(size);
    let role = Role::Sink {
        size,
        messages,
        repeats: repeat.runs(),
    };
    let bytes = size
        .checked_mul(messages)
        .ok_or_else(|| format!("{messages} messages of {size} bytes overflow a usize"))?;
    with_peer(pool, placement, kind, size, role, |end| {
        let mut ack = Vec::new();
        repeat.run(|| {
            let started = Instant::now();
            for _ in 0..messages {
                end.send(&payload)?;
            }
            end.recv(1, &mut ack)?;
            Ok(bytes as f64 / started.elapsed().as_secs_f64())
        })
    })
}

/// A message of `size` bytes that is not all zeros.
fn payload(size: usize) -> ByteBuf {
    ByteBuf::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// How many bytes a writer can put into a fresh OS pipe, and into a fresh Unix stream socket,
/// before a write would block: filled with non-blocking 4 KiB writes, then single bytes.
pub(super) fn buffer_capacities() -> Result<(f64, f64), String> {
    use rustix::io::Errno;
    fn fill(writer: &OwnedFd) -> Result<f64, String> {
        rustix::fs::fcntl_setfl(writer, rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| format!("fcntl: {e}"))?;
        let page = [0_u8; 4096];
        let mut total = 0_usize;
        for chunk in [&page[..], &page[..1]] {
            loop {
                match rustix::io::write(writer, chunk) {
                    Ok(written) => total += written,
                    Err(Errno::AGAIN) => break,
                    Err(error) => return Err(format!("write: {error}")),
                }
            }
        }
        Ok(total as f64)
    }
    let (_reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe2: {e}"))?;
    let pipe = fill(&writer)?;
    let (ours, _theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let socket = fill(&OwnedFd::from(ours))?;
    Ok((pipe, socket))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_bytes_a_peer_receives_are_exact_or_an_error(
            size in 1..=usize::MAX,
            messages in any::<usize>(),
            repeats in any::<usize>(),
        ) {
            // The reference: the same product in u128, where two factors never overflow.
            let exact = (size as u128 * messages as u128).checked_mul(repeats as u128);
            let fits = exact.and_then(|bytes| u64::try_from(bytes).ok());
            let sink = Role::Sink { size, messages, repeats };
            prop_assert_eq!(sink.bytes().ok(), fits);
            let echo = Role::Echo { size, rounds: messages };
            prop_assert_eq!(echo.bytes().ok(), u64::try_from(size as u128 * messages as u128).ok());
        }
    }
}
