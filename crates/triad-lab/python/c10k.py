"""c10k in CPython: the seed's 10,000 handle_client coroutines that each await
asyncio.sleep(0.1), gathered; the total time of asyncio.run(main()) and the peak resident memory
it adds (VmHWM, reset through /proc/self/clear_refs, minus VmRSS before).

Each run happens in a child forked for it. Arguments: counts (comma-separated), repetitions
(counts above 100,000 run once).
"""

import asyncio
import os
import time

import labkit


async def handle_client(client_id):
    await asyncio.sleep(0.1)
    return f"result{client_id}"


async def main(count):
    tasks = [handle_client(i) for i in range(count)]
    return await asyncio.gather(*tasks)


def measure(count):
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = labkit.status("VmRSS")
    start = time.perf_counter()
    results = asyncio.run(main(count))
    seconds = time.perf_counter() - start
    assert len(results) == count
    return {"seconds": seconds, "peak_growth": labkit.status("VmHWM") - before}


if __name__ == "__main__":
    counts, repetitions = labkit.args(str, int)
    for count in map(int, counts.split(",")):
        runs = [labkit.in_fork(measure, count) for _ in range(repetitions if count <= 100_000 else 1)]
        for name, unit, key in (("total time", "s", "seconds"), ("peak memory growth", "bytes", "peak_growth")):
            labkit.record(f"asyncio coroutines: {name}", unit, [run[key] for run in runs], count=count)
    labkit.finish()
