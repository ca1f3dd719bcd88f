"""memory-per-unit in CPython: resident (VmRSS) and reserved (VmSize) memory per thread and per
asyncio task, read from /proc/self/status before and while N of them wait on an Event.

Each measurement runs in a child forked for it, so that no earlier heap is reused.
Arguments: thread counts and task counts (comma-separated), repetitions per count (up to 1,000
threads or 10,000 tasks; larger counts run once).
"""

import asyncio
import gc
import os
import threading

import labkit


def memory():
    """(resident, reserved) bytes of this process."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmSize"):
                fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmSize"]


def growth(before, during, reached, stopped=None):
    return {
        "reached": reached,
        "resident": during[0] - before[0],
        "reserved": during[1] - before[1],
        "stopped": stopped,
    }


def hold_threads(count):
    gc.collect()
    before = memory()
    arrived = [0]
    changed = threading.Condition()
    release = threading.Event()

    def park():
        with changed:
            arrived[0] += 1
            changed.notify()
        release.wait()

    threads = []
    stopped = None
    for index in range(count):
        thread = threading.Thread(target=park)
        try:
            thread.start()
        except RuntimeError as error:
            stopped = f"thread {index + 1}: {error}"
            break
        threads.append(thread)
    with changed:
        changed.wait_for(lambda: arrived[0] == len(threads))
    during = memory()
    release.set()
    for thread in threads:
        thread.join()
    return growth(before, during, len(threads), stopped)


def hold_tasks(count):
    async def main():
        release = asyncio.Event()
        all_started = asyncio.Event()
        started = [0]

        async def park():
            started[0] += 1
            if started[0] == count:
                all_started.set()
            await release.wait()

        gc.collect()
        before = memory()
        tasks = [asyncio.create_task(park()) for _ in range(count)]
        await all_started.wait()
        during = memory()
        release.set()
        await asyncio.gather(*tasks)
        return growth(before, during, count)

    return asyncio.run(main())


if __name__ == "__main__":
    thread_counts, task_counts, repetitions = labkit.args(str, str, int)
    # Readings repeat to the byte; above these sizes (10,000 threads take CPython seconds to
    # start and join) one run is enough.
    for label, measure, counts, repeated_up_to in (
        ("CPython thread, default stack", hold_threads, thread_counts, 1000),
        ("asyncio task", hold_tasks, task_counts, 10_000),
    ):
        for count in map(int, counts.split(",")):
            runs = [labkit.in_fork(measure, count) for _ in range(repetitions if count <= repeated_up_to else 1)]
            reached = min(run["reached"] for run in runs)
            for run in runs:
                if run["stopped"]:
                    labkit.note(f"{label}: only {run['reached']} of {count} started ({run['stopped']}).")
            for what in ("resident", "reserved"):
                per_unit = [run[what] / max(run["reached"], 1) for run in runs]
                labkit.record(f"{label}: {what} per unit", "bytes", per_unit, count=reached)
    labkit.finish()
