"""io-bound: N waits (sleeps, or round trips to the lab's delay server), serial and concurrent.

Arguments: delay_ms, serial counts (comma separated), counts (comma separated), processes,
repetitions, port of the delay server (one line each way: the delay in ms, echoed after it).
Pools are started and warmed before the clock starts; threads per wait are started inside it,
as the seed's section 2 does.
"""

import asyncio
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor

import labkit

WARM_UP_DELAY_MS = 1


def sleep_wait(port, delay_ms):
    time.sleep(delay_ms / 1000)
    return delay_ms


async def sleep_wait_async(port, delay_ms):
    await asyncio.sleep(delay_ms / 1000)
    return delay_ms


def call(args):
    function, port, delay_ms = args
    return function(port, delay_ms)


def main():
    delay_ms, serial_counts, counts, processes, repetitions, port = labkit.args(
        int, str, str, int, int, int
    )
    serial_counts = [int(n) for n in serial_counts.split(",")]
    counts = [int(n) for n in counts.split(",")]
    workloads = [
        ("sleep", sleep_wait, sleep_wait_async),
        ("tcp round trip", labkit.round_trip, labkit.round_trip_async),
    ]
    loop = asyncio.new_event_loop()

    def gather(coroutine, delay, count):
        async def everything():
            return await asyncio.gather(*(coroutine(port, delay) for _ in range(count)))

        return loop.run_until_complete(everything())

    with multiprocessing.get_context().Pool(processes=processes) as process_pool:
        for name, function, coroutine in workloads:
            def measure(engine, run, count_list, **extra):
                for count in count_list:
                    if run(WARM_UP_DELAY_MS, count) != [WARM_UP_DELAY_MS] * count:
                        raise SystemExit(f"{name} on {engine}: wrong answers")
                    samples = []
                    for _ in range(repetitions):
                        start = time.perf_counter()
                        results = run(delay_ms, count)
                        samples.append(time.perf_counter() - start)
                        if results != [delay_ms] * count:
                            raise SystemExit(f"{name} on {engine}: wrong answers")
                    labkit.record(engine, "s", samples, workload=name, n=count, delay_ms=delay_ms, **extra)

            measure("serial", lambda d, c: [function(port, d) for _ in range(c)], serial_counts)
            measure("thread per wait", lambda d, c: labkit.on_threads(c, function, port, d), counts)
            for count in counts:
                with ThreadPoolExecutor(max_workers=count) as executor:
                    measure(
                        "thread pool",
                        lambda d, c: list(executor.map(lambda _: function(port, d), range(c))),
                        [count],
                    )
            measure("async", lambda d, c: gather(coroutine, d, c), counts)
            measure(
                "processes",
                lambda d, c: process_pool.map(call, [(function, port, d)] * c, chunksize=1),
                counts,
                workers=processes,
            )
    loop.close()
    labkit.finish()


if __name__ == "__main__":
    main()
