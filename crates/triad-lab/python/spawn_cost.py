"""spawn-cost in CPython: seconds to start a unit of concurrency and wait for its end.

threading.Thread and asyncio.create_task are started and joined one after another in batches
(a sample is a batch's time divided by its size); multiprocessing.Process is started and joined
once per sample under each start method: fork, forkserver (its server started by a warm-up
process first) and spawn.

Arguments: batches, threads per batch, tasks per batch, processes per start method (fork and
forkserver), processes for spawn.
"""

import asyncio
import multiprocessing
import threading
import time

import labkit


def noop():
    pass


def per_item(repetitions, count, body):
    body()

    def batch():
        for _ in range(count):
            body()

    return [sample / count for sample in labkit.time_each(repetitions, batch)]


def thread_start_join():
    thread = threading.Thread(target=noop)
    thread.start()
    thread.join()


async def nothing():
    pass


async def task_starts(repetitions, count):
    async def batch():
        for _ in range(count):
            await asyncio.create_task(nothing())

    await batch()
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        await batch()
        samples.append((time.perf_counter() - start) / count)
    return samples


def process_starts(method, count):
    context = multiprocessing.get_context(method)

    def start_join():
        process = context.Process(target=noop)
        process.start()
        process.join()

    start_join()
    return labkit.time_each(count, start_join)


if __name__ == "__main__":
    repetitions, threads, tasks, processes, spawns = labkit.args(int, int, int, int, int)
    thread_samples = per_item(repetitions, threads, thread_start_join)
    labkit.record("threading.Thread start + join", "s", thread_samples, batch=threads)
    task_samples = asyncio.run(task_starts(repetitions, tasks))
    labkit.record("asyncio.create_task + await", "s", task_samples, batch=tasks)
    for method, count in (("fork", processes), ("forkserver", processes), ("spawn", spawns)):
        samples = process_starts(method, count)
        labkit.record(f"multiprocessing.Process start + join, {method}", "s", samples, batch=1)
    labkit.finish()
