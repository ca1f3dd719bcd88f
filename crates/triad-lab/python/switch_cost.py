"""switch-cost in CPython: seconds per hand-over between two threads, two processes and two
coroutines passing a token back and forth, as the Rust side does; plus the seed's own
time.sleep(0) and asyncio.sleep(0) loops (section 6.6).

Arguments: warm-up round trips, round trips per batch for threads and processes, round trips
per batch for coroutines, batches, the CPU that "pinned" runs on.
"""

import asyncio
import multiprocessing
import os
import threading
import time

import labkit

WARMUP, TRIPS, COROUTINE_TRIPS, REPETITIONS, CPU = labkit.args(int, int, int, int, int)


def batches(round_trip, trips):
    """Warm-up, then REPETITIONS timed batches of `trips` round trips: seconds per hand-over."""
    for _ in range(WARMUP):
        round_trip()

    def batch():
        for _ in range(trips):
            round_trip()

    return [sample / (2 * trips) for sample in labkit.time_each(REPETITIONS, batch)]


class Pinned:
    """Keeps this thread (and the threads and processes it starts) on CPU while inside."""

    def __enter__(self):
        self.former = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {CPU})

    def __exit__(self, *exc):
        os.sched_setaffinity(0, self.former)


class Free:
    """Leaves the CPU mask as it is."""

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        pass


def condition_ping_pong():
    changed = threading.Condition()
    turn = ["main"]

    def partner():
        with changed:
            while True:
                changed.wait_for(lambda: turn[0] != "main")
                if turn[0] == "stop":
                    return
                turn[0] = "main"
                changed.notify()

    thread = threading.Thread(target=partner)
    thread.start()

    def round_trip():
        with changed:
            turn[0] = "partner"
            changed.notify()
            changed.wait_for(lambda: turn[0] == "main")

    samples = batches(round_trip, TRIPS)
    with changed:
        turn[0] = "stop"
        changed.notify()
    thread.join()
    return samples


def echo(connection):
    while True:
        message = connection.recv_bytes()
        if not message:
            return
        connection.send_bytes(message)


def pipe_ping_pong():
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    process = context.Process(target=echo, args=(theirs,))
    process.start()

    def round_trip():
        ours.send_bytes(b"x")
        ours.recv_bytes()

    samples = batches(round_trip, TRIPS)
    ours.send_bytes(b"")
    process.join()
    return samples


def sleep0_threads():
    """The seed's measure_thread_switch: two threads calling time.sleep(0), time per call."""
    counter = [0]

    def loop():
        for _ in range(TRIPS):
            time.sleep(0)
            counter[0] += 1

    def pair():
        threads = [threading.Thread(target=loop) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    pair()
    samples = []
    for _ in range(REPETITIONS):
        counter[0] = 0
        start = time.perf_counter()
        pair()
        samples.append((time.perf_counter() - start) / counter[0])
    return samples


async def queue_ping_pong():
    to_partner, to_main = asyncio.Queue(1), asyncio.Queue(1)

    async def partner():
        while True:
            token = await to_partner.get()
            if token is None:
                return
            await to_main.put(token)

    task = asyncio.create_task(partner())

    async def trips(count):
        for _ in range(count):
            await to_partner.put(1)
            await to_main.get()

    await trips(WARMUP)
    samples = []
    for _ in range(REPETITIONS):
        start = time.perf_counter()
        await trips(COROUTINE_TRIPS)
        samples.append((time.perf_counter() - start) / (2 * COROUTINE_TRIPS))
    await to_partner.put(None)
    await task
    return samples


async def sleep0_coroutines():
    """The seed's measure_coroutine_switch: two coroutines awaiting asyncio.sleep(0)."""

    async def loop(count):
        for _ in range(count):
            await asyncio.sleep(0)

    await asyncio.gather(loop(WARMUP), loop(WARMUP))
    samples = []
    for _ in range(REPETITIONS):
        start = time.perf_counter()
        await asyncio.gather(loop(COROUTINE_TRIPS), loop(COROUTINE_TRIPS))
        samples.append((time.perf_counter() - start) / (2 * COROUTINE_TRIPS))
    return samples


for placement, where in (("pinned", Pinned), ("free", Free)):
    with where():
        for name, measure in (
            ("threads, threading.Condition", condition_ping_pong),
            ("processes, multiprocessing.Pipe", pipe_ping_pong),
        ):
            labkit.record(name, "s", measure(), placement=placement, round_trips=TRIPS)
labkit.record("threads, time.sleep(0) loop (seed 6.6)", "s", sleep0_threads(), placement="free", round_trips=TRIPS)
for name, measure in (
    ("coroutines, asyncio.Queue", queue_ping_pong),
    ("coroutines, asyncio.sleep(0) (seed 6.6)", sleep0_coroutines),
):
    labkit.record(name, "s", asyncio.run(measure()), placement="one thread", round_trips=COROUTINE_TRIPS)
labkit.finish()
