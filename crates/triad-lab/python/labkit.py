"""Shared helpers for the lab's CPython baselines (standard library only).

Every baseline script prints one JSON document on stdout:
{"measurements": [{"name", "unit", "samples", "params"}], "notes": [...]}
and takes its sizes from command-line arguments, so the lab decides the scale.
"""

import asyncio
import json
import os
import socket
import sys
import threading
import time

_measurements = []
_notes = []


def record(name, unit, samples, **params):
    """Adds one series of samples under fixed parameters."""
    _measurements.append(
        {"name": name, "unit": unit, "samples": [float(s) for s in samples], "params": params}
    )


def status(field):
    """A kB field of /proc/self/status (VmRSS, VmHWM, ...), in bytes."""
    with open("/proc/self/status") as lines:
        for line in lines:
            key, _, value = line.partition(":")
            if key == field:
                return int(value.split()[0]) * 1024
    raise KeyError(field)


def note(text):
    """Adds a note for the report."""
    _notes.append(text)


def time_each(repetitions, body):
    """Runs body() repetitions times and returns each run's wall time in seconds."""
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        body()
        samples.append(time.perf_counter() - start)
    return samples


def in_fork(function, *arguments):
    """function(*arguments) in a child forked for it, so that its memory readings start from
    this process's heap and none of its own is reused; returns its result (sent back as JSON).
    An exception in the child is raised here as a RuntimeError."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            result = {"result": function(*arguments)}
        except BaseException as error:
            result = {"error": repr(error)}
        with os.fdopen(write_end, "w") as out:
            json.dump(result, out)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as source:
        result = json.load(source)
    os.waitpid(pid, 0)
    if "error" in result:
        raise RuntimeError(f"{function.__name__}{arguments}: {result['error']}")
    return result["result"]


def on_threads(count, function, *arguments):
    """Runs function(*arguments) on count new threads at once; their results, in order."""
    results = [None] * count

    def one(index):
        results[index] = function(*arguments)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# The client of the lab's delay server (one line each way: a delay in ms, echoed after it).


def round_trip(port, delay_ms):
    """One request on a blocking socket: the delay the server echoed."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.sendall(f"{delay_ms}\n".encode())
        reply = b""
        while chunk := connection.recv(64):
            reply += chunk
    return int(reply)


async def round_trip_async(port, delay_ms):
    """round_trip on asyncio's streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{delay_ms}\n".encode())
    await writer.drain()
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(reply)


def args(*types):
    """The script's arguments, converted by the given types."""
    values = sys.argv[1:]
    if len(values) != len(types):
        sys.exit(f"expected {len(types)} arguments, got {len(values)}: {values}")
    return [kind(value) for kind, value in zip(types, values)]


def finish():
    """Prints the document; call last."""
    json.dump({"measurements": _measurements, "notes": _notes}, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


# The seed's CPU workloads, written as triad::workloads writes them, so that Rust and CPython do
# the same work.


def is_prime(n):
    """Trial division by odd divisors."""
    if n < 4:
        return n >= 2
    if n % 2 == 0:
        return False
    divisor = 3
    while divisor * divisor <= n:
        if n % divisor == 0:
            return False
        divisor += 2
    return True


def count_primes(limit):
    """The number of primes below limit (the seed's section 4 workload)."""
    return sum(1 for n in range(2, limit) if is_prime(n))


def sum_squares(n):
    """The sum of i*i for i below n (the seed's section 2 workload)."""
    return sum(i * i for i in range(n))
