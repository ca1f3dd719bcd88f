"""many-fetches: N pages fetched at once from the lab's slow server (50 ms an answer), each on
a new connection, by threads, a thread pool, asyncio and a multiprocessing.Pool.

Arguments: port, counts (comma separated), pool threads, processes, runs. Every answer is
checked. Threads, the pool and asyncio run in a child forked for each run and report the peak
memory they added (VmHWM, reset through clear_refs, minus VmRSS before); the process pool is
started before the clock and its workers report their peak resident memory, summed.
"""

import asyncio
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
import multiprocessing

import labkit


def request(n):
    return b"GET /sum?n=%d&work=slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % n


def expected(n):
    return b'{"n":%d,"sum":%d,"work":"slow"}' % (n, n * (n + 1) * (2 * n + 1) // 6)


def check(n, head, body):
    status = int(head.split(b" ", 2)[1])
    if status != 200 or body != expected(n):
        raise RuntimeError(f"a wrong answer to n = {n}: {status} {body!r}")


def length_of(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError(f"no Content-Length in {head!r}")


def fetch(port, n):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request(n))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = length_of(head)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            body += chunk
        check(n, head, body)


async def fetch_async(port, n):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request(n))
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n"))[:-4]
        body = await reader.readexactly(length_of(head))
        check(n, head, body)
    finally:
        writer.close()


def crawl(crawler, port, count, pool_threads):
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = labkit.status("VmRSS")
    start = time.perf_counter()
    if crawler == "thread per fetch":
        errors = []

        def one(n):
            try:
                fetch(port, n)
            except Exception as error:
                errors.append(error)

        threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
    elif crawler == "thread pool":
        with ThreadPoolExecutor(pool_threads) as pool:
            list(pool.map(lambda n: fetch(port, n), range(count)))
    else:

        async def main():
            await asyncio.gather(*(fetch_async(port, n) for n in range(count)))

        asyncio.run(main())
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak": labkit.status("VmHWM") - before}


def fetch_in_worker(args):
    port, n = args
    fetch(port, n)
    return os.getpid(), labkit.status("VmHWM")


def main():
    port, counts, pool_threads, processes, runs = labkit.args(int, str, int, int, int)
    pool = multiprocessing.get_context("fork").Pool(processes)
    pool.map(fetch_in_worker, [(port, n) for n in range(processes)], 1)
    for count in (int(c) for c in counts.split(",")):
        for crawler in ("thread per fetch", "thread pool", "async"):
            done = [labkit.in_fork(crawl, crawler, port, count, pool_threads) for _ in range(runs)]
            labkit.record(f"{crawler}: total time", "s", [d["seconds"] for d in done], count=count)
            labkit.record(f"{crawler}: peak memory", "bytes", [d["peak"] for d in done], count=count)
        times, peaks = [], []
        for _ in range(runs):
            start = time.perf_counter()
            results = pool.map(fetch_in_worker, [(port, n) for n in range(count)], 1)
            times.append(time.perf_counter() - start)
            most = {}
            for pid, peak in results:
                most[pid] = max(peak, most.get(pid, 0))
            peaks.append(sum(most.values()))
        labkit.record("processes: total time", "s", times, count=count)
        labkit.record("processes: peak memory", "bytes", peaks, count=count)
    pool.close()
    pool.join()
    labkit.finish()


if __name__ == "__main__":
    main()
