//! Talking between two processes (the seed's section 5.1.2: Pipe, Queue, shared memory): triad's
//! typed pipe, queue and shared memory beside a raw Unix stream socket and CPython's
//! `multiprocessing.Pipe`, measured side by side in one run.
//!
//! The other process is this bench binary run again as a child. It gets one end of a control
//! [`pipe`] (at descriptor [`CHILD_FD`], put there between fork and exec) and serves the jobs
//! that come down it: each job carries the far end of the transport under test — a `PipeEnd`,
//! `Queue`s, a `UnixStream`, `SharedArray`s — whose descriptors travel as `SCM_RIGHTS`, and the
//! child plays the echo or the sink while this process times its side. (Handles inside
//! `ProcessPool` task inputs would do the same, but the pool currently drops the descriptors of
//! the first input of a submission, so a single `submit` cannot carry them.)
//!
//! - latency: ping-pong of one `u64`, each round trip timed on its own; the figure is the median
//!   of `REPEATS` repetitions' medians of `ROUND_TRIPS` round trips (after one warm-up
//!   repetition). Shared memory is an `AtomicValue<u64>` handshake: each side spins (then
//!   yields) on the atomic until the other has moved it on.
//! - bandwidth: one-way stream of messages of 64 B to 1 MiB, then one acknowledgement; the
//!   figure is the median of `REPEATS` repetitions. The pipe and the queue carry a
//!   `serde_bytes::ByteBuf` (postcard: a length and a copy), the raw socket carries the bytes
//!   as they are, and shared memory is a ring of `SLOTS` `SharedArray<u8>`s: the sender copies a
//!   message into a free slot under its lock, the receiver copies it out, and two atomic
//!   counters say which slots are full.
//! - serialisation: postcard encode + decode of one message, in this process.
//!
//! Run with `cargo bench -p triad --bench ipc`. CPython's side runs `python3` with only its
//! standard library; without `python3` that column and row are skipped.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use triad::fdpass::SharedFd;
use triad::ipc::RecvError;
use triad::{AtomicArray, AtomicValue, PipeEnd, Queue, SharedArray, pipe};

/// The environment variable that makes this binary the child.
const ROLE_ENV: &str = "TRIAD_IPC_BENCH_CHILD";
/// The descriptor at which the child finds its end of the control pipe.
const CHILD_FD: RawFd = 200;

const REPEATS: usize = 5;
/// Round trips per latency repetition.
const ROUND_TRIPS: usize = 2_000;
/// Message sizes for bandwidth.
const SIZES: [usize; 4] = [64, 4 << 10, 64 << 10, 1 << 20];
/// Bytes per bandwidth repetition, within the message-count bounds below.
const BYTES_PER_REPEAT: usize = 64 << 20;
const MIN_MESSAGES: usize = 64;
const MAX_MESSAGES: usize = 50_000;
/// Slots in the shared-memory ring.
const SLOTS: usize = 4;
/// Capacity of the queue for the bandwidth runs.
const QUEUE_CAPACITY: usize = 64;
/// Messages per serialisation repetition.
const CODEC_MESSAGES: usize = 100_000;
/// Where the ring's counters sit in their array: a cache line (and more) apart.
const HEAD: usize = 0;
const TAIL: usize = 16;

/// Messages per bandwidth repetition for messages of `size` bytes.
fn messages_for(size: usize) -> usize {
    (BYTES_PER_REPEAT / size).clamp(MIN_MESSAGES, MAX_MESSAGES)
}

/// The far side of one measurement, run in the child.
#[derive(Debug, Serialize, Deserialize)]
enum Job {
    PipeEcho {
        end: PipeEnd<u64, u64>,
        rounds: usize,
    },
    QueueEcho {
        requests: Queue<u64>,
        replies: Queue<u64>,
        rounds: usize,
    },
    StreamEcho {
        stream: SharedFd,
        rounds: usize,
    },
    ShmEcho {
        flag: AtomicValue<u64>,
        rounds: usize,
    },
    PipeSink {
        end: PipeEnd<u64, ByteBuf>,
        messages: usize,
        repeats: usize,
    },
    QueueSink {
        items: Queue<ByteBuf>,
        acks: Queue<u64>,
        messages: usize,
        repeats: usize,
    },
    StreamSink {
        stream: SharedFd,
        bytes: usize,
        repeats: usize,
    },
    ShmSink {
        slots: Vec<SharedArray<u8>>,
        counters: AtomicArray<u64>,
        messages: usize,
        repeats: usize,
    },
}

/// Spins on `ready`, then yields the CPU between looks (two cores are shared with other work).
fn wait_until(mut ready: impl FnMut() -> bool) {
    let mut spins = 0_u32;
    while !ready() {
        if spins < 2_000 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

fn stream_of(fd: SharedFd) -> UnixStream {
    UnixStream::from(fd.try_clone_owned().expect("dup the stream"))
}

/// Plays the far side of `job`; returns the bytes (or round trips) it saw.
fn serve(job: Job) -> u64 {
    match job {
        Job::PipeEcho { end, rounds } => {
            for _ in 0..rounds {
                let n = end.recv().expect("pipe recv");
                end.send(&(n + 1)).expect("pipe send");
            }
            rounds as u64
        }
        Job::QueueEcho {
            requests,
            replies,
            rounds,
        } => {
            for _ in 0..rounds {
                let n = requests.get().expect("queue get");
                replies.put(&(n + 1)).expect("queue put");
            }
            rounds as u64
        }
        Job::StreamEcho { stream, rounds } => {
            let mut stream = stream_of(stream);
            let mut word = [0_u8; 8];
            for _ in 0..rounds {
                stream.read_exact(&mut word).expect("stream read");
                let n = u64::from_ne_bytes(word) + 1;
                stream.write_all(&n.to_ne_bytes()).expect("stream write");
            }
            rounds as u64
        }
        Job::ShmEcho { flag, rounds } => {
            let atomic = flag.atomic();
            for round in 0..rounds as u64 {
                wait_until(|| atomic.load(Ordering::Acquire) == 2 * round + 1);
                atomic.store(2 * round + 2, Ordering::Release);
            }
            rounds as u64
        }
        Job::PipeSink {
            end,
            messages,
            repeats,
        } => {
            let mut seen = 0;
            for _ in 0..repeats {
                for _ in 0..messages {
                    seen += end.recv().expect("pipe recv").len() as u64;
                }
                end.send(&seen).expect("pipe ack");
            }
            seen
        }
        Job::QueueSink {
            items,
            acks,
            messages,
            repeats,
        } => {
            let mut seen = 0;
            for _ in 0..repeats {
                for _ in 0..messages {
                    seen += items.get().expect("queue get").len() as u64;
                }
                acks.put(&seen).expect("queue ack");
            }
            seen
        }
        Job::StreamSink {
            stream,
            bytes,
            repeats,
        } => {
            let mut stream = stream_of(stream);
            let mut buffer = vec![0_u8; 256 << 10];
            let mut seen = 0;
            for _ in 0..repeats {
                let mut left = bytes;
                while left > 0 {
                    let want = left.min(buffer.len());
                    let read = stream.read(&mut buffer[..want]).expect("stream read");
                    assert!(read > 0, "the stream ended early");
                    left -= read;
                }
                seen += bytes as u64;
                stream.write_all(&[1]).expect("stream ack");
            }
            seen
        }
        Job::ShmSink {
            slots,
            counters,
            messages,
            repeats,
        } => {
            let (head, tail) = (counters.atomic(HEAD), counters.atomic(TAIL));
            let mut local = vec![0_u8; slots[0].len()];
            let total = (messages * repeats) as u64;
            for taken in 0..total {
                wait_until(|| head.load(Ordering::Acquire) > taken);
                let slot = &slots[taken as usize % slots.len()];
                local.copy_from_slice(&slot.lock().expect("slot lock"));
                black_box(&local);
                tail.store(taken + 1, Ordering::Release);
            }
            total * local.len() as u64
        }
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median round trip, in seconds: the median over `REPEATS` repetitions (after a warm-up) of
/// each repetition's median round trip.
fn latency(mut round_trip: impl FnMut(u64)) -> f64 {
    let mut n = 0;
    let mut medians = Vec::new();
    for repeat in 0..=REPEATS {
        let mut samples = Vec::with_capacity(ROUND_TRIPS);
        for _ in 0..ROUND_TRIPS {
            let started = Instant::now();
            round_trip(n);
            samples.push(started.elapsed().as_secs_f64());
            n += 1;
        }
        if repeat > 0 {
            medians.push(median(samples));
        }
    }
    median(medians)
}

/// Median time of one repetition, in seconds, after a warm-up repetition.
fn timed(mut repetition: impl FnMut()) -> f64 {
    let mut samples = Vec::new();
    for repeat in 0..=REPEATS {
        let started = Instant::now();
        repetition();
        if repeat > 0 {
            samples.push(started.elapsed().as_secs_f64());
        }
    }
    median(samples)
}

/// The other process, and this process's end of its control pipe.
struct Peer {
    control: PipeEnd<Job, u64>,
    child: Child,
}

impl Peer {
    /// Runs this binary again as the child, with its end of the control pipe at [`CHILD_FD`].
    fn start() -> Peer {
        let (control, theirs) = pipe::<Job, u64>().expect("control pipe");
        let source = theirs.as_fd().as_raw_fd();
        let mut command = Command::new(std::env::current_exe().expect("current exe"));
        command.env(ROLE_ENV, "1").stdout(Stdio::null());
        // SAFETY: the hook runs in the child between fork and exec and calls only `dup2` and
        // `fcntl`, which are async-signal-safe, and allocates nothing.
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
        let child = command.spawn().expect("start the child");
        drop(theirs);
        Peer { control, child }
    }

    /// Hands `job` to the child, which starts on it at once.
    fn run(&self, job: Job) {
        self.control.send(&job).expect("send a job to the child");
    }

    /// Waits for the child to finish the job it is on, and checks what it saw: round trips
    /// for an echo, bytes for a sink.
    fn finish(&self, expected: usize) {
        let seen = self
            .control
            .recv()
            .expect("the child's side of the measurement");
        assert_eq!(seen, expected as u64, "what the child saw");
    }

    /// Closes the control pipe and waits for the child to exit.
    fn stop(self) {
        let Peer { control, mut child } = self;
        drop(control);
        let status = child.wait().expect("wait for the child");
        assert!(status.success(), "the child failed: {status}");
    }
}

/// The child's loop: serve jobs until the control pipe closes.
fn child_main() {
    // SAFETY: the parent's `pre_exec` hook put our end of the control pipe at CHILD_FD, and
    // nothing else in this process owns that descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(CHILD_FD) };
    let control = PipeEnd::<u64, Job>::from_fd(fd).expect("control pipe");
    loop {
        match control.recv() {
            Ok(job) => control.send(&serve(job)).expect("report to the parent"),
            Err(RecvError::Disconnected) => return,
            Err(error) => panic!("control pipe: {error}"),
        }
    }
}

fn unix_pair() -> (UnixStream, SharedFd) {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    (ours, SharedFd::new(OwnedFd::from(theirs)))
}

/// Round-trip latencies, in seconds: pipe, queue, raw socket, shared memory.
fn latencies(peer: &Peer) -> [f64; 4] {
    let rounds = (REPEATS + 1) * ROUND_TRIPS;

    let (ours, theirs) = pipe::<u64, u64>().expect("pipe");
    peer.run(Job::PipeEcho {
        end: theirs,
        rounds,
    });
    let pipe_rtt = latency(|n| {
        ours.send(&n).expect("pipe send");
        assert_eq!(ours.recv().expect("pipe recv"), n + 1);
    });
    peer.finish(rounds);

    let (requests, replies) = (Queue::new(1).expect("queue"), Queue::new(1).expect("queue"));
    peer.run(Job::QueueEcho {
        requests: requests.clone(),
        replies: replies.clone(),
        rounds,
    });
    let queue_rtt = latency(|n| {
        requests.put(&n).expect("queue put");
        assert_eq!(replies.get().expect("queue get"), n + 1);
    });
    peer.finish(rounds);

    let (mut stream, theirs) = unix_pair();
    peer.run(Job::StreamEcho {
        stream: theirs,
        rounds,
    });
    let stream_rtt = latency(|n| {
        stream.write_all(&n.to_ne_bytes()).expect("stream write");
        let mut word = [0_u8; 8];
        stream.read_exact(&mut word).expect("stream read");
        assert_eq!(u64::from_ne_bytes(word), n + 1);
    });
    peer.finish(rounds);

    let flag = AtomicValue::new(0_u64).expect("shared value");
    peer.run(Job::ShmEcho {
        flag: flag.clone(),
        rounds,
    });
    let atomic = flag.atomic();
    let shm_rtt = latency(|n| {
        atomic.store(2 * n + 1, Ordering::Release);
        wait_until(|| atomic.load(Ordering::Acquire) == 2 * n + 2);
    });
    peer.finish(rounds);

    [pipe_rtt, queue_rtt, stream_rtt, shm_rtt]
}

/// Seconds per repetition of `messages_for(size)` messages, for pipe, queue, raw socket and
/// shared memory; `None` where the transport cannot carry a message of `size` bytes.
fn bandwidths(peer: &Peer, size: usize) -> [Option<f64>; 4] {
    let messages = messages_for(size);
    let repeats = REPEATS + 1;
    let payload = ByteBuf::from((0..size).map(|i| i as u8).collect::<Vec<u8>>());
    // A ByteBuf's postcard encoding: a varint length, then the bytes; plus the version byte.
    let encoded = postcard::to_stdvec(&payload).expect("encode").len() + 1;

    let (ours, theirs) = pipe::<ByteBuf, u64>().expect("pipe");
    let pipe_time = (encoded <= ours.max_message_size()).then(|| {
        peer.run(Job::PipeSink {
            end: theirs,
            messages,
            repeats,
        });
        let mut expected = 0;
        let seconds = timed(|| {
            for _ in 0..messages {
                ours.send(&payload).expect("pipe send");
            }
            expected += (messages * size) as u64;
            assert_eq!(ours.recv().expect("pipe ack"), expected, "bytes received");
        });
        peer.finish(messages * size * repeats);
        seconds
    });

    let items = Queue::<ByteBuf>::new(QUEUE_CAPACITY).expect("queue");
    let acks = Queue::<u64>::new(1).expect("queue");
    let queue_time = (encoded <= items.max_message_size()).then(|| {
        peer.run(Job::QueueSink {
            items: items.clone(),
            acks: acks.clone(),
            messages,
            repeats,
        });
        let mut expected = 0;
        let seconds = timed(|| {
            for _ in 0..messages {
                items.put(&payload).expect("queue put");
            }
            expected += (messages * size) as u64;
            assert_eq!(acks.get().expect("queue ack"), expected, "bytes received");
        });
        peer.finish(messages * size * repeats);
        seconds
    });

    let (mut stream, theirs) = unix_pair();
    peer.run(Job::StreamSink {
        stream: theirs,
        bytes: messages * size,
        repeats,
    });
    let stream_time = timed(|| {
        for _ in 0..messages {
            stream.write_all(&payload).expect("stream write");
        }
        let mut ack = [0_u8; 1];
        stream.read_exact(&mut ack).expect("stream ack");
    });
    peer.finish(messages * size * repeats);

    let slots: Vec<SharedArray<u8>> = (0..SLOTS)
        .map(|_| SharedArray::new(size).expect("shared array"))
        .collect();
    let counters = AtomicArray::<u64>::new(TAIL + 1).expect("shared array");
    peer.run(Job::ShmSink {
        slots: slots.clone(),
        counters: counters.clone(),
        messages,
        repeats,
    });
    let (head, tail) = (counters.atomic(HEAD), counters.atomic(TAIL));
    let mut written = 0_u64;
    let shm_time = timed(|| {
        for _ in 0..messages {
            let next = written;
            wait_until(|| next - tail.load(Ordering::Acquire) < SLOTS as u64);
            slots[next as usize % SLOTS]
                .lock()
                .expect("slot lock")
                .copy_from_slice(&payload);
            written += 1;
            head.store(written, Ordering::Release);
        }
        let end = written;
        wait_until(|| tail.load(Ordering::Acquire) == end);
    });
    peer.finish(messages * size * repeats);

    [pipe_time, queue_time, Some(stream_time), Some(shm_time)]
}

/// Seconds per postcard encode + decode of `value`.
fn codec<T: Serialize + for<'de> Deserialize<'de>>(value: &T) -> f64 {
    let seconds = timed(|| {
        for _ in 0..CODEC_MESSAGES {
            let bytes = postcard::to_stdvec(black_box(value)).expect("encode");
            black_box(postcard::from_bytes::<T>(&bytes).expect("decode"));
        }
    });
    seconds / CODEC_MESSAGES as f64
}

const PYTHON: &str = r#"
import json, multiprocessing as mp, statistics, sys, time

def echo(conn):
    while True:
        data = conn.recv_bytes()
        if not data:
            return
        conn.send_bytes(data)

def sink(conn):
    while True:
        n = int(conn.recv_bytes())
        if n == 0:
            return
        for _ in range(n):
            conn.recv_bytes()
        conn.send_bytes(b"ok")

if __name__ == "__main__":
    repeats, round_trips = int(sys.argv[1]), int(sys.argv[2])
    sizes = json.loads(sys.argv[3])
    ctx = mp.get_context("fork")
    out = {}
    ours, theirs = ctx.Pipe()
    p = ctx.Process(target=echo, args=(theirs,))
    p.start()
    word = b"\0" * 8
    medians = []
    for rep in range(repeats + 1):
        samples = []
        for _ in range(round_trips):
            t = time.perf_counter()
            ours.send_bytes(word)
            ours.recv_bytes()
            samples.append(time.perf_counter() - t)
        if rep:
            medians.append(statistics.median(samples))
    out["latency"] = statistics.median(medians)
    ours.send_bytes(b"")
    p.join()
    ours, theirs = ctx.Pipe()
    p = ctx.Process(target=sink, args=(theirs,))
    p.start()
    for size, messages in sizes:
        payload = bytes(i % 256 for i in range(size))
        samples = []
        for rep in range(repeats + 1):
            t = time.perf_counter()
            ours.send_bytes(str(messages).encode())
            for _ in range(messages):
                ours.send_bytes(payload)
            ours.recv_bytes()
            if rep:
                samples.append(time.perf_counter() - t)
        out["bandwidth/%d" % size] = statistics.median(samples)
    ours.send_bytes(b"0")
    p.join()
    print(json.dumps(out))
"#;

fn python_figures() -> Option<serde_json::Value> {
    let sizes: Vec<(usize, usize)> = SIZES.iter().map(|&s| (s, messages_for(s))).collect();
    let output = Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .arg(REPEATS.to_string())
        .arg(ROUND_TRIPS.to_string())
        .arg(serde_json::to_string(&sizes).expect("json"))
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

fn micros(seconds: f64) -> String {
    format!("{:.2} µs", seconds * 1e6)
}

fn nanos(seconds: f64) -> String {
    format!("{:.0} ns", seconds * 1e9)
}

fn mib_per_second(size: usize, seconds: Option<f64>) -> String {
    match seconds {
        Some(seconds) => format!(
            "{:.0}",
            (messages_for(size) * size) as f64 / seconds / (1 << 20) as f64
        ),
        None => "—".to_owned(),
    }
}

fn size_name(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

fn main() {
    triad::init();
    if std::env::var_os(ROLE_ENV).is_some() {
        child_main();
        return;
    }
    let started = Instant::now();
    let python = python_figures();
    let cpython = |key: &str| python.as_ref().and_then(|figures| figures[key].as_f64());

    // Other work on the machine moves these figures a lot: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    println!(
        "machine: {} cores, load average {load}; two processes (this one and a \
         child); median of {REPEATS} repetitions after a warm-up",
        triad::available_cores()
    );

    let peer = Peer::start();
    let [pipe_rtt, queue_rtt, stream_rtt, shm_rtt] = latencies(&peer);
    println!();
    println!(
        "round-trip latency of one u64 (median of each repetition's {ROUND_TRIPS} round trips)"
    );
    for (name, seconds) in [
        ("triad pipe (PipeEnd<u64, u64>)", pipe_rtt),
        ("triad queue (Queue<u64>, two)", queue_rtt),
        ("raw UnixStream (std, 8 bytes)", stream_rtt),
        ("shared memory (AtomicValue spin)", shm_rtt),
    ] {
        println!("  {name:<40} {:>12}", micros(seconds));
    }
    match cpython("latency") {
        Some(seconds) => println!(
            "  {:<40} {:>12}",
            "CPython multiprocessing.Pipe (8 bytes)",
            micros(seconds)
        ),
        None => println!("  CPython multiprocessing.Pipe: skipped (no python3)"),
    }

    let mut rows: [Vec<String>; 5] = Default::default();
    for &size in &SIZES {
        let times = bandwidths(&peer, size);
        for (row, seconds) in rows.iter_mut().zip(times) {
            row.push(mib_per_second(size, seconds));
        }
        rows[4].push(mib_per_second(size, cpython(&format!("bandwidth/{size}"))));
    }
    peer.stop();
    println!();
    print!("bandwidth, one way, MiB/s (messages per repetition:");
    for &size in &SIZES {
        print!(" {}", messages_for(size));
    }
    println!(")");
    print!("  {:<40}", "message size");
    for &size in &SIZES {
        print!(" {:>9}", size_name(size));
    }
    println!();
    for (name, row) in [
        "triad pipe (ByteBuf)",
        "triad queue (ByteBuf, capacity 64)",
        "raw UnixStream (std)",
        "shared memory (SharedArray<u8> ring)",
        "CPython multiprocessing.Pipe (bytes)",
    ]
    .iter()
    .zip(&rows)
    {
        print!("  {name:<40}");
        for cell in row {
            print!(" {cell:>9}");
        }
        println!();
    }

    println!();
    println!("serialisation, postcard encode + decode, per message (in-process)");
    println!("  {:<40} {:>9} {:>9}", "message size", "64 B", "4 KiB");
    let bytes = |n: usize| ByteBuf::from(vec![7_u8; n]);
    let words = |n: usize| vec![u32::MAX / 3; n / 4];
    println!(
        "  {:<40} {:>9} {:>9}",
        "ByteBuf (serde_bytes: one copy)",
        nanos(codec(&bytes(64))),
        nanos(codec(&bytes(4096)))
    );
    println!(
        "  {:<40} {:>9} {:>9}",
        "Vec<u32> (a varint per element)",
        nanos(codec(&words(64))),
        nanos(codec(&words(4096)))
    );
    println!();
    println!("total: {:.1} s", started.elapsed().as_secs_f64());
}
