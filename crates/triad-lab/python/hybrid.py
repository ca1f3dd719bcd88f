"""hybrid: a batch of mixed items (fetch, compute, save) in every model, combined, and as a pipeline.

Arguments: items, fetch_ms, write_ms, CPU target per item (s), cores, repetitions of the
variants that go one item at a time, repetitions of the concurrent ones, port of the lab's delay
server (one line each way: the delay in ms, echoed after it).

An item: a round trip to the delay server that answers after fetch_ms, sum_squares(n) with n
calibrated here to the CPU target, then a write_ms wait (the save). Pools are started and warmed
before the clock starts; process pools before any thread, as forking a process with threads is
unsafe.
"""

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import labkit

# The heartbeat of the loop variants, as the Rust side's LagMonitor beats.
LAG_INTERVAL = 0.001


def timed(body):
    start = time.perf_counter()
    body()
    return time.perf_counter() - start


def calibrate(target):
    """The n for which sum_squares(n) takes target seconds here: scaled from the fastest of
    several runs of about that size (the least disturbed by other work)."""

    def scaled(size):
        fastest = min(timed(lambda: labkit.sum_squares(size)) for _ in range(7))
        return max(100, int(size * target / max(fastest, 1e-9)))

    return scaled(scaled(5_000))


def checked_fetch(fetch_ms, echoed):
    if echoed != fetch_ms:
        raise RuntimeError(f"a fetch of {fetch_ms} ms came back as {echoed}")


def item(work):
    """One item on blocking calls."""
    port, fetch_ms, squares, write_ms = work
    checked_fetch(fetch_ms, labkit.round_trip(port, fetch_ms))
    total = labkit.sum_squares(squares)
    time.sleep(write_ms / 1000)
    return total


async def item_async(work):
    """One item as a coroutine: its waits awaited, its computation on the loop."""
    port, fetch_ms, squares, write_ms = work
    checked_fetch(fetch_ms, await labkit.round_trip_async(port, fetch_ms))
    total = labkit.sum_squares(squares)
    await asyncio.sleep(write_ms / 1000)
    return total


async def item_blocking(work):
    """The seed's pitfall 1: a coroutine that makes blocking calls."""
    return item(work)


def partition(work, count):
    """The seed's section 6.7: a worker process's share, as coroutines on a loop of its own."""

    async def share():
        return await asyncio.gather(*(item_async(work) for _ in range(count)))

    return asyncio.run(share())


def shares(count, workers):
    workers = max(1, min(workers, count))
    return [n for n in (count // workers + (w < count % workers) for w in range(workers)) if n]


async def heartbeat(longest):
    loop = asyncio.get_running_loop()
    while True:
        deadline = loop.time() + LAG_INTERVAL
        await asyncio.sleep(LAG_INTERVAL)
        longest[0] = max(longest[0], loop.time() - deadline)


def on_loop(loop, coroutine, work, count):
    """count coroutines on loop under asyncio.gather: (results, seconds, longest stall)."""

    async def batch():
        longest = [0.0]
        beat = asyncio.create_task(heartbeat(longest))
        await asyncio.sleep(0)
        start = time.perf_counter()
        results = await asyncio.gather(*(coroutine(work) for _ in range(count)))
        seconds = time.perf_counter() - start
        # A stall is measured when the heartbeat wakes: let it wake once more.
        await asyncio.sleep(2 * LAG_INTERVAL)
        beat.cancel()
        return results, seconds, longest[0]

    return loop.run_until_complete(batch())


def pipeline(loop, executor, work, count):
    """Each item's coroutine: fetch, the computation on the process pool, save."""
    port, fetch_ms, squares, write_ms = work

    async def one():
        checked_fetch(fetch_ms, await labkit.round_trip_async(port, fetch_ms))
        running = asyncio.get_running_loop()
        total = await running.run_in_executor(executor, labkit.sum_squares, squares)
        await asyncio.sleep(write_ms / 1000)
        return total

    async def batch():
        return await asyncio.gather(*(one() for _ in range(count)))

    return loop.run_until_complete(batch())


def main():
    items, fetch_ms, write_ms, target, cores, one_reps, reps, port = labkit.args(
        int, int, int, float, int, int, int, int
    )
    squares = calibrate(target)
    work = (port, fetch_ms, squares, write_ms)
    answer = labkit.sum_squares(squares)
    cpu = [timed(lambda: labkit.sum_squares(squares)) for _ in range(9)]
    labkit.record("cpu work per item", "s", cpu, squares=squares)
    loop = asyncio.new_event_loop()
    context = multiprocessing.get_context()
    with (
        context.Pool(processes=items) as process_pool,
        ProcessPoolExecutor(cores, mp_context=context) as partitions,
        ProcessPoolExecutor(cores, mp_context=context) as compute,
    ):
        process_pool.map(abs, range(items), chunksize=1)
        for executor in (partitions, compute):
            list(executor.map(abs, range(cores)))
        with ThreadPoolExecutor(max_workers=items) as threads:

            def timed_batch(run):
                def sample(count):
                    start = time.perf_counter()
                    results = run(count)
                    return results, time.perf_counter() - start, None

                return sample

            def partitioned(count):
                futures = [partitions.submit(partition, work, n) for n in shares(count, cores)]
                return [total for future in futures for total in future.result()]

            one_at_a_time = [
                ("serial", timed_batch(lambda n: [item(work) for _ in range(n)])),
                ("one loop, blocking IO", lambda n: on_loop(loop, item_blocking, work, n)),
            ]
            concurrent = [
                ("one loop", lambda n: on_loop(loop, item_async, work, n)),
                ("threads", timed_batch(lambda n: list(threads.map(item, [work] * n)))),
                (
                    "processes",
                    timed_batch(lambda n: process_pool.map(item, [work] * n, chunksize=1)),
                ),
                ("process pool with coroutines inside", timed_batch(partitioned)),
                ("pipeline", timed_batch(lambda n: pipeline(loop, compute, work, n))),
            ]
            for variants, warm_up, repetitions in [
                (one_at_a_time, 1, one_reps),
                (concurrent, items, reps),
            ]:
                for name, run in variants:
                    results, _, _ = run(warm_up)
                    if results != [answer] * warm_up:
                        raise SystemExit(f"{name}: wrong answers")
                times = {name: [] for name, _ in variants}
                stalls = {name: [] for name, _ in variants}
                for _ in range(repetitions):
                    for name, run in variants:
                        results, seconds, stall = run(items)
                        if results != [answer] * items:
                            raise SystemExit(f"{name}: wrong answers")
                        times[name].append(seconds)
                        if stall is not None:
                            stalls[name].append(stall)
                for name, _ in variants:
                    labkit.record(name, "s", times[name], items=items, squares=squares)
                    if stalls[name]:
                        labkit.record(
                            "longest loop stall", "s", stalls[name], items=items, variant=name
                        )
    loop.close()
    labkit.finish()


if __name__ == "__main__":
    main()
