"""cpu-bound: the seed's prime count and sum of squares, serial / threads / processes / asyncio.

Arguments: tasks, primes_limit, squares_n, workers (comma separated), repetitions.
The algorithms are the ones the Rust side runs (triad::workloads, copied in labkit). Every pool
is started and runs each batch once before the clock starts; then each repetition times every
configuration once, in turn, so that a burst of load elsewhere does not fall on one alone.
"""

import asyncio
import multiprocessing
import time
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
    labkit.note(f"CPython's multiprocessing start method here: {context.get_start_method()}.")
    loop = asyncio.new_event_loop()
    executors = {count: ThreadPoolExecutor(max_workers=count) for count in workers}
    pools = {count: context.Pool(processes=count) for count in workers}
    try:
        trials = []
        for name, function, size in workloads:
            inputs = [size] * tasks
            answer = [function(size)] * tasks

            def trial(engine, count, run, name=name, size=size, answer=answer):
                trials.append((engine, count, name, size, answer, run, []))

            trial("serial", 1, lambda f=function, i=inputs: [f(x) for x in i])
            for count in workers:
                trial("threads", count, lambda e=executors[count], f=function, i=inputs: list(e.map(f, i)))
            for count in workers:
                trial("processes", count, lambda p=pools[count], f=function, i=inputs: p.map(f, i))
            trial("async", 1, lambda f=function, i=inputs: run_async(loop, f, i))
        for engine, count, name, size, answer, run, samples in trials:
            if run() != answer:
                raise SystemExit(f"{name} on {engine}: wrong results")
        for _ in range(repetitions):
            for engine, count, name, size, answer, run, samples in trials:
                start = time.perf_counter()
                results = run()
                samples.append(time.perf_counter() - start)
                if results != answer:
                    raise SystemExit(f"{name} on {engine}: wrong results")
        for engine, count, name, size, answer, run, samples in trials:
            labkit.record(engine, "s", samples, workload=name, workers=count, tasks=tasks, size=size)
    finally:
        for pool in pools.values():
            pool.terminate()
            pool.join()
        for executor in executors.values():
            executor.shutdown()
        loop.close()
    labkit.finish()


if __name__ == "__main__":
    main()
