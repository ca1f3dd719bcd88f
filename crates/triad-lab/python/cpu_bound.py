"""cpu-bound: the seed's prime count and sum of squares, serial / threads / processes / asyncio.

Arguments: tasks, primes_limit, squares_n, workers (comma separated), repetitions.
The algorithms are the ones the Rust side runs (triad::workloads, copied in labkit).
Pools are started and warmed before the clock starts.
"""

import asyncio
import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import labkit


async def on_loop(function, size):
    return function(size)


def run_async(loop, function, inputs):
    async def everything():
        return await asyncio.gather(*(on_loop(function, size) for size in inputs))

    return loop.run_until_complete(everything())


def main():
    tasks, primes_limit, squares_n, workers, repetitions = labkit.args(int, int, int, str, int)
    workers = [int(w) for w in workers.split(",")]
    workloads = [
        ("count_primes", labkit.count_primes, primes_limit),
        ("sum_squares", labkit.sum_squares, squares_n),
    ]
    context = multiprocessing.get_context()
    labkit.note(
        f"CPython's multiprocessing start method here: {context.get_start_method()}."
    )
    loop = asyncio.new_event_loop()
    for name, function, size in workloads:
        inputs = [size] * tasks
        answer = [function(size)] * tasks

        def timed(run):
            if run() != answer:
                raise SystemExit(f"{name}: wrong results")
            return labkit.time_each(repetitions, run)

        labkit.record(
            "serial", "s", timed(lambda: [function(x) for x in inputs]),
            workload=name, workers=1, tasks=tasks, size=size,
        )
        for count in workers:
            with ThreadPoolExecutor(max_workers=count) as executor:
                samples = timed(lambda: list(executor.map(function, inputs)))
            labkit.record("threads", "s", samples, workload=name, workers=count, tasks=tasks, size=size)
        for count in workers:
            with context.Pool(processes=count) as pool:
                samples = timed(lambda: pool.map(function, inputs))
            labkit.record("processes", "s", samples, workload=name, workers=count, tasks=tasks, size=size)
        labkit.record(
            "async", "s", timed(lambda: run_async(loop, function, inputs)),
            workload=name, workers=1, tasks=tasks, size=size,
        )
    loop.close()
    labkit.finish()


if __name__ == "__main__":
    main()
