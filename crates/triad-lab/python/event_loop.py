"""event-loop (seed 5.3.1-5.3.3): asyncio on the workloads the lab times on its reference loop
and on tokio.

asyncio's loop is itself a reference loop of the seed's design: a deque of ready callbacks, a
heap of timer handles, and a selector (epoll on Linux) that it calls on every turn. Each workload
checks its own result and exits with an error if it is wrong.
Arguments: repetitions, tasks to spawn, yield switches, ping-pong rounds, sleeping tasks, their
sleep (s), echo round trips, echo message size (bytes), timer delay (s), computation that blocks
the loop (s), idle wait (s).
"""

import asyncio
import resource
import socket
import statistics
import time

import labkit


def check(condition, what):
    if not condition:
        raise SystemExit(f"event_loop.py: {what}")


def voluntary_switches():
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


def compute_for(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def trivial(i):
    return i


async def spawn_and_join(count):
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    tasks = [loop.create_task(trivial(i)) for i in range(count)]
    total = 0
    for task in tasks:
        total += await task
    elapsed = time.perf_counter() - start
    check(total == count * (count - 1) // 2, "spawn and join: wrong sum")
    return elapsed


async def yielder(count):
    for _ in range(count):
        await asyncio.sleep(0)


async def yield_switches(switches):
    loop = asyncio.get_running_loop()
    each = switches // 2
    before = voluntary_switches()
    start = time.perf_counter()
    first = loop.create_task(yielder(each))
    second = loop.create_task(yielder(each))
    await first
    await second
    elapsed = time.perf_counter() - start
    return elapsed, voluntary_switches() - before


async def ping_pong(rounds):
    loop = asyncio.get_running_loop()
    to_pong = asyncio.Queue()
    to_ping = asyncio.Queue()

    async def ponger():
        while True:
            value = await to_pong.get()
            if value is None:
                return
            to_ping.put_nowait(value + 1)

    async def pinger():
        start = time.perf_counter()
        value = 0
        for _ in range(rounds):
            to_pong.put_nowait(value)
            value = await to_ping.get()
        elapsed = time.perf_counter() - start
        to_pong.put_nowait(None)
        return value, elapsed

    answering = loop.create_task(ponger())
    value, elapsed = await loop.create_task(pinger())
    await answering
    check(value == rounds, "ping-pong: wrong count")
    return elapsed


async def sleeper(duration):
    armed = time.perf_counter()
    await asyncio.sleep(duration)
    return time.perf_counter() - armed - duration


async def sleepers(count, duration):
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    tasks = [loop.create_task(sleeper(duration)) for _ in range(count)]
    late = [await task for task in tasks]
    return time.perf_counter() - start, late


async def recv_exact(loop, sock, size):
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        got = await loop.sock_recv_into(sock, view[filled:])
        if got == 0:
            raise EOFError
        filled += got
    return bytes(buffer)


async def echo(rounds, size):
    loop = asyncio.get_running_loop()
    client, server = socket.socketpair()
    client.setblocking(False)
    server.setblocking(False)

    async def echoer():
        try:
            while True:
                data = await recv_exact(loop, server, size)
                await loop.sock_sendall(server, data)
        except EOFError:
            return

    task = loop.create_task(echoer())
    start = time.perf_counter()
    for round_number in range(rounds):
        message = bytes([round_number % 256]) * size
        await loop.sock_sendall(client, message)
        reply = await recv_exact(loop, client, size)
        check(reply == message, f"echo: round {round_number} came back altered")
    elapsed = time.perf_counter() - start
    client.close()
    await task
    server.close()
    return elapsed


async def blocked_timer(delay, block):
    loop = asyncio.get_running_loop()

    async def blocker():
        compute_for(block)

    timer = loop.create_task(sleeper(delay))
    computing = loop.create_task(blocker())
    await computing
    return await timer


async def idle_wait(duration):
    cpu = time.thread_time()
    start = time.perf_counter()
    await asyncio.sleep(duration)
    return time.perf_counter() - start, time.thread_time() - cpu


async def main():
    (
        repetitions,
        spawn_count,
        switches,
        rounds,
        sleeper_count,
        sleep_s,
        echo_rounds,
        echo_size,
        delay_s,
        block_s,
        idle_s,
    ) = labkit.args(int, int, int, int, int, float, int, int, float, float, float)

    # Warm-up: every workload once, small.
    await spawn_and_join(max(1, spawn_count // 10))
    await yield_switches(max(2, switches // 10))
    await ping_pong(max(1, rounds // 10))
    await sleepers(max(1, sleeper_count // 10), sleep_s)
    await echo(max(1, echo_rounds // 10), echo_size)

    spawn, yields, context_switches, pings = [], [], [], []
    totals, medians, worst, earliest, echoes, blocked, idle_wall, idle_cpu = (
        [], [], [], [], [], [], [], [])
    for _ in range(repetitions):
        spawn.append(await spawn_and_join(spawn_count) / spawn_count)
        elapsed, switched = await yield_switches(switches)
        yields.append(elapsed / (switches // 2 * 2))
        context_switches.append(switched)
        pings.append(await ping_pong(rounds) / (2 * rounds))
        total, late = await sleepers(sleeper_count, sleep_s)
        totals.append(total)
        medians.append(statistics.median(late))
        worst.append(max(late))
        earliest.append(min(late))
        echoes.append(await echo(echo_rounds, echo_size) / echo_rounds)
        blocked.append(await blocked_timer(delay_s, block_s))
        wall, cpu = await idle_wait(idle_s)
        idle_wall.append(wall)
        idle_cpu.append(cpu)

    runtime = "asyncio"
    labkit.record("spawn + join, per task", "s", spawn, runtime=runtime, tasks=spawn_count)
    labkit.record("yield switch, per switch", "s", yields, runtime=runtime, switches=switches)
    labkit.record(
        "voluntary context switches during the yield run",
        "count",
        context_switches,
        runtime=runtime,
        switches=switches,
    )
    labkit.record("ping-pong switch, per switch", "s", pings, runtime=runtime, rounds=rounds)
    sleep_params = {"runtime": runtime, "tasks": sleeper_count, "sleep_s": sleep_s}
    labkit.record("sleepers, total", "s", totals, **sleep_params)
    labkit.record("sleepers, median lateness", "s", medians, **sleep_params)
    labkit.record("sleepers, worst lateness", "s", worst, **sleep_params)
    labkit.record("sleepers, earliest wake vs deadline", "s", earliest, **sleep_params)
    labkit.record(
        "echo round trip", "s", echoes, runtime=runtime, rounds=echo_rounds, bytes=echo_size
    )
    labkit.record(
        "timer behind a computation, lateness",
        "s",
        blocked,
        runtime=runtime,
        delay_s=delay_s,
        block_s=block_s,
    )
    labkit.record("idle wait, wall time", "s", idle_wall, runtime=runtime, wait_s=idle_s)
    labkit.record("idle wait, CPU time", "s", idle_cpu, runtime=runtime, wait_s=idle_s)
    labkit.finish()


if __name__ == "__main__":
    asyncio.run(main())
