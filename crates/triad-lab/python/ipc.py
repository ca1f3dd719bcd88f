"""CPython baseline of the lab's `ipc` experiment (seed section 5.1.2).

A forked child echoes messages (latency: each round trip timed) or sinks a stream and
acknowledges it (bandwidth: bytes / time per repetition) over multiprocessing.Pipe (pickle),
multiprocessing.Queue (pickle, feeder thread), os.pipe and socket.socketpair (raw bytes), and a
ring of SharedMemory slots per direction (raw bytes copied in and out; the head and tail
counters are plain 8-byte stores, which x86's ordered stores make safe and CPython gives no
atomics for). Both processes are pinned to the CPUs the lab gives (one CPU, or two), as on the
Rust side. Also times pickle.dumps + pickle.loads of the same messages.
"""

import json
import multiprocessing
import os
import pickle
import socket
import time
from multiprocessing import shared_memory

import labkit

plan, placements, repetitions, codec_iterations, codec_bytes = labkit.args(
    json.loads, json.loads, int, int, int
)
ctx = multiprocessing.get_context("fork")

RING_SLOTS = 4
HEAD, TAIL = 0, 16  # 8-byte counters, 128 bytes apart
RING_HEADER = 256


class PickledPipe:
    def __init__(self, conn):
        self.conn = conn

    def send(self, data):
        self.conn.send(data)

    def recv(self, size):
        return self.conn.recv()


class QueuePair:
    def __init__(self, inbox, outbox):
        self.inbox, self.outbox = inbox, outbox

    def send(self, data):
        self.outbox.put(data)

    def recv(self, size):
        return self.inbox.get()


class RawFds:
    def __init__(self, read_fd, write_fd):
        self.read_fd, self.write_fd = read_fd, write_fd

    def send(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.write_fd, view):]

    def recv(self, size):
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            n = os.readv(self.read_fd, [view[got:]])
            if n == 0:
                raise EOFError("the other end closed")
            got += n
        return bytes(buffer)


def wait_until(ready):
    spins = 0
    while not ready():
        spins += 1
        if spins > 200:
            os.sched_yield()


class Ring:
    """One direction: a header with head and tail counters, then RING_SLOTS slots."""

    def __init__(self, slot_size):
        self.slot_size = slot_size
        self.shm = shared_memory.SharedMemory(create=True, size=RING_HEADER + RING_SLOTS * slot_size)
        self.counters = self.shm.buf[:RING_HEADER].cast("q")
        self.counters[HEAD] = 0
        self.counters[TAIL] = 0

    def offset(self, index):
        return RING_HEADER + (index % RING_SLOTS) * self.slot_size

    def close(self):
        self.counters.release()
        self.shm.close()
        self.shm.unlink()


class RingPair:
    def __init__(self, inbox, outbox):
        self.inbox, self.outbox = inbox, outbox

    def send(self, data):
        ring = self.outbox
        counters = ring.counters
        head = counters[HEAD]
        wait_until(lambda: head - counters[TAIL] < RING_SLOTS)
        start = ring.offset(head)
        ring.shm.buf[start:start + len(data)] = data
        counters[HEAD] = head + 1

    def recv(self, size):
        ring = self.inbox
        counters = ring.counters
        tail = counters[TAIL]
        wait_until(lambda: counters[HEAD] > tail)
        start = ring.offset(tail)
        data = bytes(ring.shm.buf[start:start + size])
        counters[TAIL] = tail + 1
        return data


def connect(kind, size):
    """(our end, the child's end, cleanup)."""
    if kind == "pipe":
        ours, theirs = ctx.Pipe()
        return PickledPipe(ours), PickledPipe(theirs), lambda: (ours.close(), theirs.close())
    if kind == "queue":
        to_child, from_child = ctx.Queue(64), ctx.Queue(64)

        def close():
            for q in (to_child, from_child):
                q.close()
                q.join_thread()

        return QueuePair(from_child, to_child), QueuePair(to_child, from_child), close
    if kind == "os-pipe":
        a_read, a_write = os.pipe()
        b_read, b_write = os.pipe()
        return (
            RawFds(b_read, a_write),
            RawFds(a_read, b_write),
            lambda: [os.close(fd) for fd in (a_read, a_write, b_read, b_write)],
        )
    if kind == "socket":
        ours, theirs = socket.socketpair()
        return (
            RawFds(ours.fileno(), ours.fileno()),
            RawFds(theirs.fileno(), theirs.fileno()),
            lambda: (ours.close(), theirs.close()),
        )
    to_child, from_child = Ring(size), Ring(size)
    return (
        RingPair(from_child, to_child),
        RingPair(to_child, from_child),
        lambda: (to_child.close(), from_child.close()),
    )


def echo(end, size, rounds):
    for _ in range(rounds):
        end.send(end.recv(size))


def sink(end, size, messages, repeats):
    for _ in range(repeats):
        for _ in range(messages):
            end.recv(size)
        end.send(b"\x01")


def pinned(cpu, target):
    """`target` run in a process pinned to `cpu`."""

    def run(*args):
        os.sched_setaffinity(0, {cpu})
        target(*args)

    return run


def with_child(placement, kind, size, target, args, ours):
    _, our_cpu, their_cpu = placement
    near, far, cleanup = connect(kind, size)
    child = ctx.Process(target=pinned(their_cpu, target), args=(far, size, *args))
    child.start()
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {our_cpu})
    try:
        result = ours(near)
    except BaseException:
        child.kill()
        raise
    finally:
        os.sched_setaffinity(0, previous)
        if child.exitcode is None:
            child.join()
        cleanup()
    if child.exitcode != 0:
        raise SystemExit(f"the {kind} child failed: exit code {child.exitcode}")
    return result


def payload(size):
    """Bytes 0, 1, ... 250, 0, 1, ...: the same message as the Rust side's."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def round_trips(placement, kind, size, warm_up, rounds):
    data = payload(size)

    def ours(end):
        samples = []
        for i in range(warm_up + rounds):
            start = time.perf_counter()
            end.send(data)
            reply = end.recv(size)
            if i >= warm_up:
                samples.append(time.perf_counter() - start)
        if reply != data:
            raise SystemExit("the echo changed the message")
        return samples

    return with_child(placement, kind, size, echo, (warm_up + rounds,), ours)


def bandwidth(placement, kind, size, messages):
    data = payload(size)

    def ours(end):
        samples = []
        for repeat in range(repetitions + 1):
            start = time.perf_counter()
            for _ in range(messages):
                end.send(data)
            end.recv(1)
            if repeat:
                samples.append(size * messages / (time.perf_counter() - start))
        return samples

    return with_child(placement, kind, size, sink, (messages, repetitions + 1), ours)


def per_call(iterations, body):
    samples = []
    for repeat in range(repetitions + 1):
        start = time.perf_counter()
        for _ in range(iterations):
            body()
        if repeat:
            samples.append((time.perf_counter() - start) / iterations)
    return samples


def pickle_round_trip(value):
    return lambda: pickle.loads(pickle.dumps(value))


if __name__ == "__main__":
    for kind in ["pipe", "os-pipe", "socket", "queue", "shm"]:
        for size, warm_up, rounds, messages in plan:
            for placement in placements:
                labkit.record(
                    f"{kind}/round-trip",
                    "s",
                    round_trips(placement, kind, size, warm_up, rounds),
                    size=size,
                    placement=placement[0],
                )
            streaming = placements[-1]
            labkit.record(
                f"{kind}/bandwidth",
                "bytes/s",
                bandwidth(streaming, kind, size, messages),
                size=size,
                messages=messages,
                placement=streaming[0],
            )
    for size, _, _, _ in plan:
        iterations = max(4, min(codec_iterations, codec_bytes // size))
        labkit.record(
            "serialise/bytes", "s", per_call(iterations, pickle_round_trip(payload(size))), size=size
        )
    seed_message = {"data": "Hello"}
    record = {
        "id": 12345,
        "name": "sensor-17",
        "timestamp": 1700000000.25,
        "values": [i * 0.5 for i in range(16)],
        "tags": ["alpha", "beta", "gamma"],
    }
    labkit.record(
        "serialise/seed-message", "s", per_call(codec_iterations, pickle_round_trip(seed_message))
    )
    labkit.record("serialise/record", "s", per_call(codec_iterations, pickle_round_trip(record)))
    labkit.note(
        "multiprocessing.Pipe() is a socketpair (duplex) that pickles every object; "
        "multiprocessing.Queue pickles in a feeder thread and writes to an os.pipe under a lock."
    )
    labkit.finish()
