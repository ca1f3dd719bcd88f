"""gil: CPython's own GIL on the lab's bytecode loop.

Arguments: threads, steps per thread, bytecode limit (one step is count_primes(limit)),
IO threads, IO rounds, IO delay in ms, bytecodes per IO round, seconds of hold measurement,
repetitions.

CPU-bound: serial, threads, multiprocessing.Pool (started before timing), with the process CPU
time around the threads. IO-bound: rounds of a few bytecodes and a time.sleep, on one thread and
on many. Holds: spinning threads that read the clock in a loop; a gap of more than GAP_S between
two reads means another thread had the GIL, so the stretches between gaps are GIL holds.
"""

import multiprocessing
import sys
import threading
import time

import labkit

GAP_S = 0.0005


def interpret(steps, limit):
    total = 0
    for _ in range(steps):
        total += labkit.count_primes(limit)
    return total


def io_rounds(rounds, delay_s, bytecodes, limit):
    total = 0
    for _ in range(rounds):
        for _ in range(bytecodes):
            total += labkit.count_primes(limit)
        time.sleep(delay_s)
    return total


def holds(count, seconds):
    """How long each spinning thread ran between two gaps in its clock reads."""
    stretches = []
    barrier = threading.Barrier(count)

    def spin():
        barrier.wait()
        deadline = time.perf_counter() + seconds
        mine = []
        start = last = time.perf_counter()
        while last < deadline:
            now = time.perf_counter()
            if now - last > GAP_S:
                mine.append(last - start)
                start = now
            last = now
        # The first stretch began at the barrier, the last ended at the deadline: neither is a
        # whole turn.
        stretches.extend(mine[1:])

    labkit.on_threads(count, spin)
    return stretches


def main():
    (threads, steps, limit, io_threads, rounds, delay_ms, io_bytecodes, hold_seconds,
     repetitions) = labkit.args(int, int, int, int, int, int, int, float, int)
    answer = interpret(steps, limit)
    labkit.record("switch interval", "s", [sys.getswitchinterval()])
    if hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled():
        labkit.note("This CPython runs without a GIL (a free-threaded build).")

    def check(results, expected):
        if results != expected:
            raise SystemExit(f"wrong results: {results} != {expected}")

    work = [(steps, limit)] * threads
    expected = [answer] * threads
    serial, threaded, cpu, processes = [], [], [], []
    with multiprocessing.get_context().Pool(processes=threads) as pool:
        check([interpret(steps, limit) for _ in range(threads)], expected)
        check(labkit.on_threads(threads, interpret, steps, limit), expected)
        check(pool.starmap(interpret, work), expected)
        # Each repetition times every mode once, in turn, so that a burst of load from
        # elsewhere falls on several modes, not on every sample of one.
        for _ in range(repetitions):
            start = time.perf_counter()
            check([interpret(steps, limit) for _ in range(threads)], expected)
            serial.append(time.perf_counter() - start)
            cpu_start = time.process_time()
            start = time.perf_counter()
            check(labkit.on_threads(threads, interpret, steps, limit), expected)
            threaded.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
            start = time.perf_counter()
            check(pool.starmap(interpret, work), expected)
            processes.append(time.perf_counter() - start)
    labkit.record("cpu serial", "s", serial, threads=threads, steps=steps)
    labkit.record("cpu threads under the GIL", "s", threaded, threads=threads, steps=steps)
    labkit.record("cpu time of threads under the GIL", "s", cpu, threads=threads, steps=steps)
    labkit.record("cpu processes", "s", processes, threads=threads, steps=steps)

    turns = holds(threads, hold_seconds)
    if turns:
        labkit.record("hold before a switch", "s", turns, threads=threads)
    else:
        labkit.note("No thread lost the GIL during the hold measurement: it was too short.")

    delay_s = delay_ms / 1000
    round_answer = io_rounds(rounds, 0, io_bytecodes, limit)
    io_serial, io_threaded = [], []
    for _ in range(repetitions):
        start = time.perf_counter()
        check(io_rounds(rounds * io_threads, delay_s, io_bytecodes, limit), round_answer * io_threads)
        io_serial.append(time.perf_counter() - start)
        start = time.perf_counter()
        check(
            labkit.on_threads(io_threads, io_rounds, rounds, delay_s, io_bytecodes, limit),
            [round_answer] * io_threads,
        )
        io_threaded.append(time.perf_counter() - start)
    labkit.record("io serial", "s", io_serial, threads=io_threads, rounds=rounds, delay_ms=delay_ms)
    labkit.record(
        "io threads under the GIL", "s", io_threaded, threads=io_threads, rounds=rounds, delay_ms=delay_ms
    )
    labkit.finish()


if __name__ == "__main__":
    main()
