"""CPython baseline of the lab's `pool-chunking` experiment (seed section 5.1.3).

multiprocessing.Pool (fork) runs map over tiny tasks (identity: return the input) and over tasks that spin the CPU
for a few microseconds, at each chunk size and at map's automatic one; records tasks per second
per repetition. Then one worker runs tiny tasks one by one, reused or replaced after every task
(maxtasksperchild=1), and records the time per task.
"""

import json
import multiprocessing
import time

import labkit

workers, tiny_tasks, spin_tasks, spin_micros, repetitions, reuse_tasks, chunks = labkit.args(
    int, int, int, int, int, int, json.loads
)
ctx = multiprocessing.get_context("fork")


def identity(x):
    return x


def spin_us(micros):
    until = time.perf_counter() + micros / 1e6
    spins = 0
    while time.perf_counter() < until:
        spins += 1
    return spins


def automatic_chunk(tasks):
    """What Pool.map picks when chunksize is None."""
    chunk, extra = divmod(tasks, workers * 4)
    return chunk + 1 if extra else chunk


def throughput(pool, workload, task, inputs):
    tasks = len(inputs)
    for chunk in chunks + [None]:
        samples = labkit.time_each(repetitions, lambda: pool.map(task, inputs, chunksize=chunk))
        labkit.record(
            f"{workload}/throughput",
            "per_s",
            [tasks / s for s in samples],
            chunk="auto" if chunk is None else chunk,
            chunk_size=automatic_chunk(tasks) if chunk is None else chunk,
            tasks=tasks,
            workers=workers,
        )


def reuse(worker, maxtasksperchild):
    with ctx.Pool(1, maxtasksperchild=maxtasksperchild) as pool:
        pool.map(identity, range(2), chunksize=1)
        samples = labkit.time_each(
            repetitions, lambda: pool.map(identity, range(reuse_tasks), chunksize=1)
        )
    labkit.record(
        "reuse/per-task", "s", [s / reuse_tasks for s in samples], worker=worker, tasks=reuse_tasks
    )


if __name__ == "__main__":
    with ctx.Pool(workers) as pool:
        pool.map(identity, range(1000), chunksize=64)
        pool.map(spin_us, [spin_micros] * (4 * workers), chunksize=1)
        throughput(pool, "tiny", identity, list(range(tiny_tasks)))
        throughput(pool, "spin", spin_us, [spin_micros] * spin_tasks)
    reuse("reused", None)
    reuse("new-per-task", 1)
    labkit.finish()
