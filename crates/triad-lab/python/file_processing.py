"""file-processing: read and hash (zlib.crc32) the lab's files, serially and concurrently.

Arguments: the directory the lab wrote, thread counts (comma separated), processes, samples
per mode, the expected "crc_sum,bytes", caches to measure (comma separated: cold, warm).
Cold: every file dropped from the page cache with os.posix_fadvise(DONTNEED) before each
timed run. Each pool starts on 64 files, untimed, before the clock starts.
"""

import asyncio
import multiprocessing
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import labkit


def hash_file(path):
    with open(path, "rb") as f:
        data = f.read()
    return zlib.crc32(data), len(data)


async def hash_all_async(paths):
    return await asyncio.gather(*(asyncio.to_thread(hash_file, p) for p in paths))


def drop_cache(paths):
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main():
    directory, threads, processes, samples, expected, caches = labkit.args(
        str, str, int, int, str, str
    )
    paths = sorted(os.path.join(directory, name) for name in os.listdir(directory))
    expected = tuple(int(x) for x in expected.split(","))
    pools = [(n, ThreadPoolExecutor(n)) for n in (int(t) for t in threads.split(","))]
    process_pool = multiprocessing.get_context("fork").Pool(processes)
    modes = [("serial", 1, lambda paths: [hash_file(p) for p in paths])]
    for n, pool in pools:
        modes.append(("threads", n, lambda paths, pool=pool: list(pool.map(hash_file, paths))))
    modes.append(("async", 0, lambda paths: asyncio.run(hash_all_async(paths))))
    modes.append(("processes", processes, lambda paths: process_pool.map(hash_file, paths, 16)))
    for cache in caches.split(","):
        for name, workers, run in modes:
            # Starts the pool's threads or processes on a few files.
            run(paths[:64])
            times = []
            for _ in range(samples):
                if cache == "cold":
                    drop_cache(paths)
                start = time.perf_counter()
                results = run(paths)
                times.append(time.perf_counter() - start)
                sums = (sum(r[0] for r in results), sum(r[1] for r in results))
                if sums != expected:
                    raise SystemExit(f"{name}: read {sums}, the lab wrote {expected}")
            labkit.record(name, "s", times, cache=cache, workers=workers)
    process_pool.close()
    process_pool.join()
    for _, pool in pools:
        pool.shutdown()
    labkit.finish()


if __name__ == "__main__":
    main()
