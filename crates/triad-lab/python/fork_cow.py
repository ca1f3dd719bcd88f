"""CPython baseline of the lab's `fork-cow` experiment (seed section 5.1.1).

For each size, a bytearray with every page written; os.fork -> child os._exit(0) -> waitpid,
timed whole and until fork returns; then children that read one byte per page (a stepped slice)
and write one (a stepped slice assignment), each pass timed in the child and sent back through a
pipe, while the parent reads the child's private memory from /proc/<pid>/smaps_rollup; then the
parent writes the same pages twice. Last, a child that only iterates over a list of floats:
reading a Python object writes its reference count, so the pages holding them are copied.
"""

import json
import os
import struct
import sys
import time

import labkit

sizes_mib, fork_repetitions, cow_repetitions, objects = labkit.args(json.loads, int, int, int)
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20


def private_of(pid):
    """Private_Clean + Private_Dirty of `pid`, in bytes, or None if unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line and "kB" in line)
        return sum(int(fields[k].split()[0]) * 1024 for k in ("Private_Clean", "Private_Dirty"))
    except (OSError, KeyError, ValueError):
        return None


def own_resident():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fork_and_exit():
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    returned = time.perf_counter() - start
    os.waitpid(pid, 0)
    return time.perf_counter() - start, returned


def child_passes(buffer, commands, answers, pages):
    """The child: for each command byte, one timed pass; answers with the seconds it took."""
    ones = b"\x03" * pages
    while True:
        command = os.read(commands, 1)
        start = time.perf_counter()
        if command == b"r":
            sum(buffer[::PAGE])
        elif command == b"w":
            buffer[::PAGE] = ones
        else:
            os._exit(0)
        os.write(answers, struct.pack("d", time.perf_counter() - start))


def ask(commands, answers, command):
    os.write(commands, command)
    (seconds,) = struct.unpack("d", os.read(answers, 8))
    return seconds


def copy_on_write(buffer, pages):
    commands_read, commands_write = os.pipe()
    answers_read, answers_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            child_passes(buffer, commands_read, answers_write, pages)
        finally:
            os._exit(1)
    private = [private_of(pid)]
    reads = ask(commands_write, answers_read, b"r")
    private.append(private_of(pid))
    writes = ask(commands_write, answers_read, b"w")
    private.append(private_of(pid))
    os.write(commands_write, b"q")
    os.waitpid(pid, 0)
    for fd in (commands_read, commands_write, answers_read, answers_write):
        os.close(fd)
    twos, fours = b"\x04" * pages, b"\x05" * pages
    start = time.perf_counter()
    buffer[::PAGE] = twos
    after_fork = time.perf_counter() - start
    start = time.perf_counter()
    buffer[::PAGE] = fours
    plain = time.perf_counter() - start
    return reads, writes, after_fork, plain, private


def measure(mib):
    size = mib * MIB
    pages = size // PAGE
    buffer = bytearray(size)
    buffer[::PAGE] = b"\x01" * pages
    params = {"size": size, "parent_rss": own_resident(), "page": PAGE}
    fork_and_exit()
    forks = [fork_and_exit() for _ in range(fork_repetitions)]
    labkit.record("fork/total", "s", [total for total, _ in forks], **params)
    labkit.record("fork/return", "s", [returned for _, returned in forks], **params)
    runs = [copy_on_write(buffer, pages) for _ in range(cow_repetitions)]
    names = [
        "cow/child-read-per-page",
        "cow/child-write-per-page",
        "cow/parent-after-fork-per-page",
        "cow/parent-plain-per-page",
    ]
    for index, name in enumerate(names):
        labkit.record(name, "s", [run[index] / pages for run in runs], **params)
    labkit.record("cow/child-write-total", "s", [run[1] for run in runs], **params)
    snapshots = [
        "memory/child-private-after-fork",
        "memory/child-private-after-reads",
        "memory/child-private-after-writes",
    ]
    if all(value is not None for run in runs for value in run[4]):
        for index, name in enumerate(snapshots):
            labkit.record(name, "bytes", [run[4][index] for run in runs], **params)


def reference_counts():
    """A child that only iterates over a list of floats: how much memory becomes its own."""
    data = [float(i) for i in range(objects)]
    size = sys.getsizeof(data) + sum(sys.getsizeof(x) for x in data)
    commands_read, commands_write = os.pipe()
    answers_read, answers_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.read(commands_read, 1)
            for _ in data:
                pass
            os.write(answers_write, b"k")
            os.read(commands_read, 1)
        finally:
            os._exit(0)
    before = private_of(pid)
    os.write(commands_write, b"g")
    os.read(answers_read, 1)
    after = private_of(pid)
    os.write(commands_write, b"q")
    os.waitpid(pid, 0)
    for fd in (commands_read, commands_write, answers_read, answers_write):
        os.close(fd)
    if before is not None and after is not None:
        labkit.record("refcount/child-private-growth", "bytes", [after - before], objects=objects)
        labkit.record("refcount/objects", "bytes", [size], objects=objects)


if __name__ == "__main__":
    for mib in sizes_mib:
        measure(mib)
    reference_counts()
    labkit.finish()
