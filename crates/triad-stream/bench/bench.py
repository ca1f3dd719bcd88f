"""The benchmark behind crates/triad-stream/bench/run.sh (see there).

Against one local redis-server of its own (127.0.0.1, a free port, a temp dir), for each
processor a ladder of rates: `triad stream produce` sends RATE x SECONDS timestamped messages
at RATE a second; the processor handles each with the seed's 10 ms + 20 ms waits. A rate is
sustained when every message was handled and the p99 latency from creation to done stayed
under 100 ms. Peak RSS is the processor's VmHWM. Then the SQLite sink's throughput beside
plain batched inserts (examples/sqlite_limit.rs)."""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import redis

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(directory):
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
         "--save", "", "--appendonly", "no", "--logfile", os.path.join(directory, "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return server, port, client
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_for_subscriber(client, channel):
    for _ in range(400):
        if dict(client.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1:
            return
        time.sleep(0.025)
    raise SystemExit("the processor never subscribed")


def produce(triad, url, target, rate, count):
    out = subprocess.run(
        [triad, "stream", "produce", "--redis", url, *target, "--rate", str(rate),
         "--count", str(count), "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def trial(args, port, client, kind, rate):
    """One run at `rate`; returns its figures."""
    url = f"redis://127.0.0.1:{port}"
    count = rate * args.seconds
    key = f"bench-{kind}-{rate}-{time.monotonic_ns()}"
    with tempfile.TemporaryDirectory() as scratch:
        if kind == "seed":
            command = [sys.executable, os.path.join(HERE, "seed_processor.py"), url, key]
            target = ["--channel", key]
        else:
            source = ["--channel", key] if kind == "triad-pubsub" else ["--stream", key]
            target = source
            command = [args.triad, "stream", "--redis", url, *source, "--wait-ms", "10,20",
                       "--concurrency", str(args.concurrency), "--buffer", "100000",
                       "--batch-ms", str(args.batch_ms),
                       "--sqlite", os.path.join(scratch, "out.db"), "--json"]
        processor = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        if kind != "triad-group":
            wait_for_subscriber(client, key)
        else:
            time.sleep(0.5)
        sent = produce(args.triad, url, target, rate, count)
        time.sleep(1.5)  # anything not done by now is far past 100 ms
        rss = peak_rss_mib(processor.pid)
        processor.send_signal(signal.SIGTERM)
        out, err = processor.communicate(timeout=120)
        if processor.returncode != 0:
            raise SystemExit(f"{kind} failed: {err}")
        figures = json.loads(out.strip().splitlines()[-1])
        figures = figures.get("metrics", figures)
    done = figures["committed"]
    return {
        "kind": kind, "rate": rate, "sent": sent["sent"],
        "produced_per_second": sent["sent"] / sent["seconds"],
        "done": done, "p50": figures["latency_p50"], "p99": figures["latency_p99"],
        "rss_mib": rss,
        "sustained": done == sent["sent"] and figures["latency_p99"] < 0.1,
    }


def ladders(args, port, client, rates):
    """Each processor up its own ladder, the processors taking turns at each rate (so that a
    machine whose load drifts meets them alike); a processor leaves at its first rate it
    does not sustain. Gives kind -> (best row or None, rows)."""
    results = {kind: [None, []] for kind in rates}
    for rate in sorted({rate for ladder in rates.values() for rate in ladder}):
        for kind, ladder in rates.items():
            best, rows = results[kind]
            if rate not in ladder or (rows and not rows[-1]["sustained"]):
                continue
            row = trial(args, port, client, kind, rate)
            rows.append(row)
            print(f"  {kind:13} {rate:>7}/s: done {row['done']}/{row['sent']} "
                  f"(produced at {row['produced_per_second']:.0f}/s), p50 {row['p50']*1e3:.1f} ms, "
                  f"p99 {row['p99']*1e3:.1f} ms, peak RSS {row['rss_mib']:.0f} MiB",
                  file=sys.stderr, flush=True)
            if row["sustained"]:
                results[kind][0] = row
    return {kind: tuple(result) for kind, result in results.items()}


def sink_throughput(args, port, client, rows):
    """The SQLite sink alone: `rows` entries waiting in a stream, no waits; rows/s to drain."""
    url = f"redis://127.0.0.1:{port}"
    key = f"sink-{time.monotonic_ns()}"
    produce(args.triad, url, ["--stream", key], 10_000_000, rows)
    metrics_port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        processor = subprocess.Popen(
            [args.triad, "stream", "--redis", url, "--stream", key, "--concurrency", "20000",
             "--sqlite", os.path.join(scratch, "out.db"), "--metrics",
             f"127.0.0.1:{metrics_port}", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        committed = 0
        while committed < rows and time.monotonic() - started < 300:
            time.sleep(0.02)
            try:
                body = urllib.request.urlopen(
                    f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            except OSError:
                continue
            for line in body.splitlines():
                if line.startswith("triad_stream_messages_committed_total "):
                    committed = int(float(line.split()[1]))
        seconds = time.monotonic() - started
        processor.send_signal(signal.SIGTERM)
        processor.communicate(timeout=120)
        limit = subprocess.run(
            [args.sqlite_limit, os.path.join(scratch, "plain.db"), str(rows), "100"],
            capture_output=True, text=True, check=True)
    return committed / seconds, json.loads(limit.stdout)["rows_per_second"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--triad", required=True)
    parser.add_argument("--sqlite-limit", required=True)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=20000)
    parser.add_argument("--sink-rows", type=int, default=200_000)
    parser.add_argument("--batch-ms", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        server, port, client = start_redis(directory)
        try:
            seed_rates = [2000, 4000, 8000, 12000, 16000, 20000, 24000, 32000]
            triad_rates = [4000, 16000, 32000, 64000, 96000, 128000, 160000, 192000, 256000]
            results = ladders(args, port, client, {"seed": seed_rates,
                                                   "triad-pubsub": triad_rates,
                                                   "triad-group": triad_rates})
            best = results["triad-pubsub"][0]
            half = trial(args, port, client, "triad-pubsub", best["rate"] // 2) if best else None
            sink, plain = sink_throughput(args, port, client, args.sink_rows)
        finally:
            server.terminate()
            server.wait()
    print(f"{args.seconds} s at each rate, the seed's waits (10 ms + 20 ms) per message, "
          f"payloads of 100 bytes, one local redis-server; triad also commits every message "
          f"to SQLite (WAL, fully synced, a transaction per {args.batch_ms} ms)\n")
    print("| processor | highest sustained rate (p99 < 100 ms, none lost) | p50 | p99 | peak RSS |")
    print("|---|---|---|---|---|")
    names = {"seed": "the seed's RealtimeDataProcessor (redis.asyncio)",
             "triad-pubsub": "`triad stream --channel`",
             "triad-group": "`triad stream --stream --group`"}
    for kind, (best, rows) in results.items():
        if best is None:
            print(f"| {names[kind]} | none of {rows[0]['rate']}/s | | | |")
            continue
        print(f"| {names[kind]} | {best['rate']:,}/s | {best['p50']*1e3:.1f} ms | "
              f"{best['p99']*1e3:.1f} ms | {best['rss_mib']:.0f} MiB |")
    seed_best, triad_best = results["seed"][0], results["triad-pubsub"][0]
    if seed_best and triad_best:
        print(f"\ntriad stream (pub/sub) sustained {triad_best['rate'] / seed_best['rate']:.1f}x "
              f"the seed's rate")
    if half:
        print(f"at half its best rate ({half['rate']:,}/s): p50 {half['p50']*1e3:.1f} ms, "
              f"p99 {half['p99']*1e3:.1f} ms, {half['done']}/{half['sent']} done")
    print(f"\nSQLite: the sink committed {sink:,.0f} rows/s draining {args.sink_rows:,} waiting "
          f"entries; plain batched inserts of the same rows: {plain:,.0f} rows/s "
          f"({sink / plain:.0%} of the storage limit)")


if __name__ == "__main__":
    main()
