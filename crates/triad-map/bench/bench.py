"""The benchmark behind crates/triad-map/bench/run.sh (see there). Each variant runs in a fresh
process under GNU time; its peak RSS is the largest single process of its tree."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

TRANSFORM = '''
def transform(item):
    # The seed's DataPipeline.transform for one record, its loop cut to range(300) so that a
    # record takes about 20 us of CPython's time.
    return {"id": item["id"], "value": sum(i**2 for i in range(300)), "transformed": item["value"] * 2}

def identity(item):
    return item
'''

LINE_WORKER = '''
import json, sys
from transforms import {function} as function
for line in sys.stdin:
    sys.stdout.write(json.dumps(function(json.loads(line)), separators=(",", ":")) + "\\n")
    sys.stdout.flush()
'''

# The seed's DataPipeline (section 7.2) as written: json.load of the whole file, Pool.map over
# len/num_workers batches, json.dump of the whole result. Only `transform`'s body is the
# shared one.
SEED = '''
import json, sys
from multiprocessing import Pool
from transforms import {function} as one

class DataPipeline:
    @staticmethod
    def extract(data_source):
        with open(data_source, "r") as f:
            return json.load(f)

    @staticmethod
    def transform(data):
        result = []
        for item in data:
            result.append(one(item))
        return result

    @staticmethod
    def load(data, target):
        with open(target, "w") as f:
            json.dump(data, f)

    def run_pipeline(self, input_file, output_file, num_workers=4):
        all_data = self.extract(input_file)
        batch_size = len(all_data) // num_workers
        batches = [all_data[i:i+batch_size] for i in range(0, len(all_data), batch_size)]
        with Pool(processes=num_workers) as pool:
            results = pool.map(self.transform, batches)
        final_data = []
        for batch_result in results:
            final_data.extend(batch_result)
        self.load(final_data, output_file)

if __name__ == "__main__":
    DataPipeline().run_pipeline(sys.argv[1], sys.argv[2], num_workers=int(sys.argv[3]))
'''

# multiprocessing.Pool.imap over the lines, streaming, in order.
IMAP = '''
import json, sys
from multiprocessing import Pool
from transforms import {function} as one

def work(line):
    return json.dumps(one(json.loads(line)), separators=(",", ":")) + "\\n"

if __name__ == "__main__":
    source, target, workers, chunksize = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(source) as lines, open(target, "w") as out, Pool(workers) as pool:
        for result in pool.imap(work, lines, chunksize=chunksize):
            out.write(result)
'''


def measure(command, cwd):
    """Runs `command` under GNU time; (seconds, peak RSS MiB, exit code). The peak is the
    largest single process of the command's tree (wait4's rusage), measured by a small C
    program, so that no Python wrapper's own size counts."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        code = subprocess.call(["/usr/bin/time", "-q", "-f", "%M", "-o", rss.name, *command],
                               cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        kib = int(rss.read().split()[-1])
    return seconds, kib / 1024, code


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--triad", required=True)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    triad = os.path.abspath(arguments.triad)
    workers = os.cpu_count() or 2
    directory = tempfile.mkdtemp(prefix="triad-map-bench-")
    try:
        run(directory, triad, arguments.records, workers, arguments.rounds)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(directory, triad, count, workers, rounds):
    jsonl = os.path.join(directory, "records.jsonl")
    array = os.path.join(directory, "records.json")
    with open(jsonl, "w") as f:
        for i in range(count):
            f.write(json.dumps({"id": i, "value": i % 1000, "user": f"user{i:07d}", "tags": ["a", "b"],
                                "text": "lorem ipsum dolor sit amet " * 4}, separators=(",", ":")) + "\n")
    with open(jsonl) as f, open(array, "w") as out:
        out.write("[" + ",".join(line.rstrip("\n") for line in f) + "]")
    size = os.path.getsize(jsonl)
    with open(os.path.join(directory, "transforms.py"), "w") as f:
        f.write(TRANSFORM)
    for function in ["transform", "identity"]:
        for name, text in [("worker", LINE_WORKER), ("seed", SEED), ("imap", IMAP)]:
            with open(os.path.join(directory, f"{name}_{function}.py"), "w") as f:
                f.write(text.format(function=function))
    print(f"{count} records of {size / count:.0f} bytes ({size / 2**20:.0f} MiB), {workers} workers, "
          f"python3 {sys.version.split()[0]}; records/s (the median of {rounds} rounds, each running "
          f"every variant once) and peak RSS\n")
    print("| transform | variant | records/s | peak RSS |")
    print("|---|---|---|---|")
    out = os.path.join(directory, "out")
    for function in ["transform", "identity"]:
        variants = [
            ("triad map --py", [triad, "map", "--py", f"transforms.py:{function}", "-j", str(workers), "-o", out, jsonl]),
            ("triad map --cmd (python3 line worker)", [triad, "map", "--cmd", f"python3 worker_{function}.py", "-j", str(workers), "-o", out, jsonl]),
            ("the seed's DataPipeline", [sys.executable, f"seed_{function}.py", array, out, str(workers)]),
        ]
        best_chunk = None
        for chunksize in [100, 1000, 10000]:
            seconds, rss, _ = measure([sys.executable, f"imap_{function}.py", jsonl, out, str(workers), str(chunksize)], directory)
            if best_chunk is None or seconds < best_chunk[0]:
                best_chunk = (seconds, rss, chunksize)
        variants.append((f"multiprocessing.Pool.imap (chunksize {best_chunk[2]}, the best of 100/1000/10000)",
                         [sys.executable, f"imap_{function}.py", jsonl, out, str(workers), str(best_chunk[2])]))
        variants.append(("GNU parallel --pipe --keep-order", ["sh", "-c",
                         f"parallel --pipe --keep-order -j{workers} --block 1M python3 worker_{function}.py < {jsonl} > {out}"]))
        if function == "identity":
            variants.append(("triad map --format lines --cmd cat", [triad, "map", "--format", "lines", "--cmd", "cat", "-j", str(workers), "-o", out, jsonl]))
            variants.append(("cat (the pipe's own limit)", ["sh", "-c", f"cat {jsonl} | cat > {out}"]))
        # Round by round, every variant once per round: a machine whose load drifts slows
        # them all alike, and each figure is the median of its rounds.
        runs = {name: [] for name, _ in variants}
        for _ in range(rounds):
            for name, command in variants:
                runs[name].append(measure(command, directory))
        for name, _ in variants:
            ordered = sorted(runs[name])
            seconds, rss, code = ordered[len(ordered) // 2]
            if code != 0:
                print(f"| {function} | {name} | failed (exit {code}) | |")
                continue
            print(f"| {function} | {name} | {count / seconds:,.0f} | {rss:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
