"""server-models: the lab's small JSON API served by CPython, for the lab's Rust load generator.

Usage: server_models.py MODEL WORKERS, MODEL one of threading, prefork, asyncio.

Binds 127.0.0.1 on a free port (backlog 4096), prints {"port": P, "pids": [...]} when it
serves, serves until stdin closes, then prints {"peak_resident": BYTES, "pids": [...]} (the
peak resident memory of every process of the server, summed) and exits, its children gone.

- threading: http.server.ThreadingHTTPServer, one thread per connection, HTTP/1.1 keep-alive;
- prefork: WORKERS processes forked by multiprocessing, each an asyncio server on the socket
  they all inherited (the master holds the socket and waits);
- asyncio: asyncio.start_server on one event loop.

GET /sum?n=N&work=W answers {"n":N,"sum":1²+…+N²,"work":"W"} after 50 µs of this thread's CPU
time (cpu), a 10 ms wait (wait), a 50 ms wait (slow) or nothing (none), byte for byte as the
Rust servers do.
"""

import asyncio
import http.server
import json
import multiprocessing
import os
import re
import socket
import sys
import threading
import time

CPU_WORK_S = 50e-6
WAIT_S = 0.010
SLOW_S = 0.050
LARGEST_N = 1_000_000
LONGEST_HEAD = 8 * 1024
DIGITS = re.compile(r"[0-9]+")


def error(status, message):
    return status, '{"error":"' + message + '"}', "none"


def answer(request_line):
    """(status, body, work) for a request line, as the Rust servers answer it."""
    parts = request_line.split()
    if len(parts) < 3:
        return error(400, "a request line is METHOD TARGET VERSION")
    method, target = parts[0], parts[1]
    if method != "GET":
        return error(405, "only GET is served")
    path, _, query = target.partition("?")
    if path != "/sum":
        return error(404, "no such path: try /sum?n=7")
    n, work = None, "none"
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        if not eq:
            continue
        if key == "n":
            n = int(value) if DIGITS.fullmatch(value) and int(value) <= LARGEST_N else None
        elif key == "work":
            work = value if value in ("cpu", "wait", "slow", "none") else None
    if n is None:
        return error(400, "n must be a whole number from 0 to 1000000")
    if work is None:
        return error(400, "work must be cpu, wait, slow or none")
    total = n * (n + 1) * (2 * n + 1) // 6
    return 200, '{"n":%d,"sum":%d,"work":"%s"}' % (n, total, work), work


def burn_cpu():
    start = time.thread_time()
    while time.thread_time() - start < CPU_WORK_S:
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def reply(self):
        status, body, work = answer(self.requestline)
        if work == "cpu":
            burn_cpu()
        elif work == "wait":
            time.sleep(WAIT_S)
        elif work == "slow":
            time.sleep(SLOW_S)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = reply
    do_POST = reply

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 4096


async def handle(reader, writer):
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                status, body, work = error(431, "the request head is too large")
                head = None
            else:
                status, body, work = answer(head.split(b"\r\n", 1)[0].decode("latin-1"))
            if work == "cpu":
                burn_cpu()
            elif work == "wait":
                await asyncio.sleep(WAIT_S)
            elif work == "slow":
                await asyncio.sleep(SLOW_S)
            data = body.encode()
            reasons = {200: "OK", 400: "Bad Request", 404: "Not Found",
                       405: "Method Not Allowed", 431: "Request Header Fields Too Large"}
            writer.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (status, reasons[status].encode(), len(data)) + data
            )
            await writer.drain()
            if head is None:
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def listening():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


def serve_asyncio(sock, stop_on_stdin):
    async def main():
        # asyncio listens again on the socket it is given: keep the backlog of 4096.
        server = await asyncio.start_server(handle, sock=sock, limit=LONGEST_HEAD, backlog=4096)
        async with server:
            if stop_on_stdin:
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            else:
                await server.serve_forever()

    asyncio.run(main())


def prefork_child(sock):
    serve_asyncio(sock, False)


def peak_of(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def say(value):
    print(json.dumps(value), flush=True)


def main():
    model, workers = sys.argv[1], int(sys.argv[2])
    pid = os.getpid()
    if model == "threading":
        server = Server(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        say({"port": server.server_address[1], "pids": [pid]})
        sys.stdin.read()
        server.shutdown()
        server.server_close()
        say({"peak_resident": peak_of(pid), "pids": [pid]})
    elif model == "asyncio":
        sock = listening()
        say({"port": sock.getsockname()[1], "pids": [pid]})
        serve_asyncio(sock, True)
        say({"peak_resident": peak_of(pid), "pids": [pid]})
    elif model == "prefork":
        sock = listening()
        context = multiprocessing.get_context("fork")
        children = [context.Process(target=prefork_child, args=(sock,)) for _ in range(workers)]
        for child in children:
            child.start()
        pids = [pid] + [child.pid for child in children]
        say({"port": sock.getsockname()[1], "pids": pids})
        sys.stdin.read()
        peak = sum(peak_of(p) for p in pids)
        for child in children:
            child.terminate()
        for child in children:
            child.join()
        sock.close()
        say({"peak_resident": peak, "pids": pids})
    else:
        raise SystemExit(f"unknown model {model!r}")


if __name__ == "__main__":
    main()
