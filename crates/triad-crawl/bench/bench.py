"""triad crawl beside the seed's crawler (and Scrapy, when it installed) on one local site.

Each case starts the generated site (the `site` example) on 127.0.0.1, then runs the
crawlers in turn, round after round, so that a drift of the shared machine touches them all
alike. For each run: pages crawled (each crawler's own count), wall time, and the CPU time of
the crawler's process (user + system, from wait4). Printed: the medians, as a markdown table.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.monotonic() - start
    # communicate() reaped the child; its rusage is the children's total growth.
    return wall, out.decode(), err.decode(), proc.returncode


def children_cpu():
    r = os.times()
    return r.children_user + r.children_system


def measure(name, cmd, pages_of):
    before = children_cpu()
    wall, out, err, code = run(cmd)
    cpu = children_cpu() - before
    if code != 0:
        sys.exit(f"{name} failed ({code}): {err.strip()[-500:]}")
    return {"pages": pages_of(out), "wall": wall, "cpu": cpu}


def seed_pages(out):
    for line in out.splitlines():
        if line.startswith("pages "):
            return int(line.split()[1])
    sys.exit(f"no page count in {out[-300:]!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--triad", required=True)
    ap.add_argument("--site", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--pages", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scrapy", action="store_true")
    a = ap.parse_args()
    cases = [("0 ms", 0, 0), ("20 ± 15 ms", 20, 15)]
    rows = []
    for label, latency, jitter in cases:
        site = subprocess.Popen(
            [a.site, "--pages", str(a.pages), "--absolute", "--latency", str(latency),
             "--jitter", str(jitter)],
            stdout=subprocess.PIPE)
        url = site.stdout.readline().decode().strip() + "/p/0"
        out = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False).name
        c = str(a.concurrency)
        crawlers = {
            "triad crawl": (
                [a.triad, "crawl", url, "--concurrency", c, "--per-host", c, "--json", "-o", out],
                lambda s: json.loads(s)["pages"]),
            "seed (aiohttp + bs4)": (
                [a.python, os.path.join(HERE, "seed_crawler.py"), url, str(a.pages), c],
                seed_pages),
        }
        if a.scrapy:
            crawlers["Scrapy"] = (
                [a.python, os.path.join(HERE, "scrapy_crawler.py"), url, str(a.pages), c],
                seed_pages)
        results = {name: [] for name in crawlers}
        names = list(crawlers)
        for r in range(a.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                cmd, pages_of = crawlers[name]
                m = measure(name, cmd, pages_of)
                results[name].append(m)
                print(f"  {label:>11}  {name:<22} {m['pages']:>6} pages  {m['wall']:6.2f} s"
                      f"  cpu {m['cpu']:5.2f} s", file=sys.stderr)
        site.kill()
        site.wait()
        os.unlink(out)
        case = []
        for name in names:
            ms = results[name]
            rate = statistics.median(m["pages"] / m["wall"] for m in ms)
            cpu = statistics.median(1000 * m["cpu"] / max(m["pages"], 1) for m in ms)
            pages = statistics.median(m["pages"] for m in ms)
            case.append((label, name, pages, rate, cpu))
        seed = next(r[3] for r in case if r[1].startswith("seed"))
        rows += [(*r, r[3] / seed) for r in case]
    print(f"| latency | crawler | pages | pages/s (median of {a.rounds}) "
          "| CPU s per 1,000 pages | × seed |")
    print("|---|---|---:|---:|---:|---:|")
    for label, name, pages, rate, cpu, ratio in rows:
        print(f"| {label} | {name} | {pages:.0f} | {rate:,.0f} | {cpu:.2f} | {ratio:.1f}× |")


main()
