"""select-poll-epoll (seed 5.3.4): time per readiness wait against the number of descriptors.

N - 1 idle AF_UNIX datagram sockets and, opened last, one socket holding an unread datagram:
every call finds exactly that one ready. select.select, select.poll and select.epoll wait on the
same sets as the Rust side; select stops at FD_SETSIZE (1024), as CPython's select.select does.
Arguments: comma-separated sizes, seconds per batch of calls, samples per point.
"""

import resource
import select
import socket
import time

import labkit

FD_SETSIZE = 1024


def raise_file_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))


def open_watched(count):
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count - 1)]
    ready, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.send(b"ready")
    return idle, ready, peer


def measure(wait, batch_time, samples):
    """Warm up for one batch time, size the batches from it, and time per call."""
    start = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - start < batch_time:
        wait()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    batch = max(1, min(1_000_000, int(batch_time / per_call)))
    result = []
    for _ in range(samples):
        begin = time.perf_counter()
        for _ in range(batch):
            wait()
        result.append((time.perf_counter() - begin) / batch)
    return result, batch


def expect_one(count, method, n):
    if count != 1:
        raise SystemExit(f"{method} over {n} descriptors: {count} ready, expected exactly 1")


def select_waiter(fds, n):
    def wait():
        readable, _, _ = select.select(fds, [], [], 1.0)
        expect_one(len(readable), "select", n)

    return wait


def poll_waiter(fds, n):
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)

    def wait():
        expect_one(len(poller.poll(1000)), "poll", n)

    return wait


def epoll_waiter(fds, n):
    epoll = select.epoll()
    for fd in fds:
        epoll.register(fd, select.EPOLLIN)

    def wait():
        expect_one(len(epoll.poll(1.0, 64)), "epoll", n)

    return wait, epoll


def select_refuses(fd):
    """Whether select.select rejects descriptor number fd."""
    try:
        select.select([fd], [], [], 0)
    except ValueError:
        return True
    return False


def main():
    sizes_text, batch_time, samples = labkit.args(str, float, int)
    sizes = [int(size) for size in sizes_text.split(",")]
    raise_file_limit(max(sizes) + 64)
    refusal_checked = False
    for n in sizes:
        idle, ready, peer = open_watched(n)
        try:
            fds = [sock.fileno() for sock in idle] + [ready.fileno()]
            highest = max(fds)
            if highest < FD_SETSIZE:
                times, batch = measure(select_waiter(fds, n), batch_time, samples)
                labkit.record("select", "s", times, descriptors=n, calls_per_sample=batch)
            else:
                if n < FD_SETSIZE:
                    labkit.note(
                        f"CPython's select was skipped at {n} descriptors: their numbers reach "
                        f"{highest}, past FD_SETSIZE."
                    )
                if not refusal_checked:
                    refused = select_refuses(highest)
                    labkit.record(
                        "select refuses a descriptor >= FD_SETSIZE",
                        "count",
                        [1 if refused else 0],
                        descriptor=highest,
                    )
                    refusal_checked = True
            times, batch = measure(poll_waiter(fds, n), batch_time, samples)
            labkit.record("poll", "s", times, descriptors=n, calls_per_sample=batch)
            wait, epoll = epoll_waiter(fds, n)
            times, batch = measure(wait, batch_time, samples)
            labkit.record("epoll", "s", times, descriptors=n, calls_per_sample=batch)
            epoll.close()
        finally:
            for sock in idle:
                sock.close()
            ready.close()
            peer.close()
    labkit.finish()


if __name__ == "__main__":
    main()
