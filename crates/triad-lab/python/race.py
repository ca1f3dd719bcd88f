"""CPython baseline of the lab's `race` experiment (seed sections 3 and 8.4).

The seed's shared counter: threads, processes (multiprocessing.Value, fork) and coroutines add 1
to one counter, with the seed's own code (`counter += 1`, `shared_value.value += 1`,
`counter['value'] += 1`), with a lock, and with a read-call-write or read-await-write variant
that gives the interpreter a place to switch between the read and the write. Records lost
updates (expected - final) and seconds per increment (first start to last end, over all
increments) per repetition, under the same names as the Rust side.
"""

import asyncio
import multiprocessing
import threading
import time

import labkit

workers, thread_increments, process_increments, await_increments, repetitions = labkit.args(
    int, int, int, int, int
)

counter = 0


def thread_increment(n):
    """The seed's unsafe version."""
    global counter
    for _ in range(n):
        counter += 1  # 不安全！


def pause():
    """Nothing: a call is a place where CPython may switch threads."""


def thread_increment_call_between(n):
    global counter
    for _ in range(n):
        value = counter
        pause()
        counter = value + 1


def thread_increment_safe(n, lock):
    """The seed's safe version."""
    global counter
    for _ in range(n):
        with lock:
            counter += 1


def run_threads(target, n, *extra):
    """Returns (final count, seconds) for `workers` threads started together."""
    global counter
    counter = 0
    barrier = threading.Barrier(workers)
    spans = []

    def timed():
        barrier.wait()
        start = time.perf_counter()
        target(n, *extra)
        spans.append((start, time.perf_counter()))

    threads = [threading.Thread(target=timed) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counter, max(e for _, e in spans) - min(s for s, _ in spans)


def process_increment(shared_value, n):
    """The seed's process version: no get_lock()."""
    for _ in range(n):
        shared_value.value += 1


def process_increment_locked(shared_value, n):
    for _ in range(n):
        with shared_value.get_lock():
            shared_value.value += 1


def process_worker(target, shared_value, n, barrier, spans, index):
    barrier.wait()
    start = time.perf_counter()
    target(shared_value, n)
    spans[2 * index] = start
    spans[2 * index + 1] = time.perf_counter()


def run_processes(target, n):
    """Returns (final count, seconds) for `workers` forked processes started together.
    perf_counter is CLOCK_MONOTONIC, the same clock in every process."""
    ctx = multiprocessing.get_context("fork")
    shared_value = ctx.Value("i", 0)
    barrier = ctx.Barrier(workers)
    spans = ctx.Array("d", 2 * workers, lock=False)
    processes = [
        ctx.Process(target=process_worker, args=(target, shared_value, n, barrier, spans, i))
        for i in range(workers)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a counting process failed: exit code {p.exitcode}")
    return shared_value.value, max(spans[1::2]) - min(spans[0::2])


async def coroutine_increment(counter_box, n):
    """The seed's coroutine version."""
    for _ in range(n):
        counter_box["value"] += 1


async def coroutine_increment_await_between(counter_box, n):
    for _ in range(n):
        value = counter_box["value"]
        await asyncio.sleep(0)
        counter_box["value"] = value + 1


def run_coroutines(target, n):
    counter_box = {"value": 0}

    async def main():
        await asyncio.gather(*(target(counter_box, n) for _ in range(workers)))

    start = time.perf_counter()
    asyncio.run(main())
    return counter_box["value"], time.perf_counter() - start


def serial(n):
    global counter
    counter = 0
    start = time.perf_counter()
    thread_increment(n * workers)
    return counter, time.perf_counter() - start


def measure(key, n, run):
    """One warm-up, then `repetitions` runs of `run()` -> (final, seconds)."""
    expected = n * workers
    run()
    lost, per_increment = [], []
    for _ in range(repetitions):
        final, seconds = run()
        lost.append(expected - final)
        per_increment.append(seconds / expected)
    labkit.record(f"{key}/lost", "count", lost, workers=workers, expected=expected, increments=n)
    labkit.record(f"{key}/per-increment", "s", per_increment, workers=workers, increments=n)


if __name__ == "__main__":
    lock = threading.Lock()
    measure("serial", thread_increments, lambda: serial(thread_increments))
    measure(
        "threads-unlocked",
        thread_increments,
        lambda: run_threads(thread_increment, thread_increments),
    )
    measure(
        "threads-unlocked-call",
        thread_increments,
        lambda: run_threads(thread_increment_call_between, thread_increments),
    )
    measure(
        "threads-lock",
        thread_increments,
        lambda: run_threads(thread_increment_safe, thread_increments, lock),
    )
    measure(
        "processes-unlocked",
        process_increments,
        lambda: run_processes(process_increment, process_increments),
    )
    measure(
        "processes-lock",
        process_increments,
        lambda: run_processes(process_increment_locked, process_increments),
    )
    measure(
        "coroutines",
        thread_increments,
        lambda: run_coroutines(coroutine_increment, thread_increments),
    )
    measure(
        "coroutines-await",
        await_increments,
        lambda: run_coroutines(coroutine_increment_await_between, await_increments),
    )
    labkit.note(
        "CPython's Value.value += 1 takes the value's lock twice (for the read and for the "
        "write) but not around both, so it still loses updates."
    )
    labkit.finish()
