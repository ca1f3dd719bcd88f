"""The benchmark behind crates/triad-images/bench/run.sh (see there).

Every variant does the seed's operations, resize to 800x600 then rotate 90 degrees, and saves
JPEG at quality 85, over the same COUNT generated 12 MP photos, each in a fresh process under
GNU time. Rounds interleave the variants; the table gives each one's median images/s over the
rounds, its ratio to `triad images` (threads), and its median peak RSS — the largest single
process of its tree, as GNU time reports it. The raw runs go to WORK/results.json.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate  # noqa: E402

# The seed's ImageProcessor (section 7.4) as written, with its usage example's operations;
# the one change: save at quality 85, as every other variant does (the seed leaves Pillow's
# default, 75). Note that Pillow's rotate(90) turns counter-clockwise and keeps the 800x600
# canvas (expand=False), cutting the corners off: the same work, a different picture.
SEED = '''
import os, sys
from multiprocessing import Pool, cpu_count
from typing import Dict, List
from PIL import Image

class ImageProcessor:
    @staticmethod
    def process_single_image(args):
        input_path, output_path, operations = args
        try:
            img = Image.open(input_path)
            for op in operations:
                if op['type'] == 'resize':
                    img = img.resize(op['size'])
                elif op['type'] == 'rotate':
                    img = img.rotate(op['angle'])
                elif op['type'] == 'filter':
                    img = img.filter(op['filter'])
            img.save(output_path, quality=85)
            return True, input_path
        except Exception as e:
            return False, f"Error processing {input_path}: {e}"

    def process_batch(self, image_paths: List[str], operations: List[Dict],
                      output_dir: str, num_workers: int = None):
        if num_workers is None:
            num_workers = cpu_count()
        tasks = []
        for path in image_paths:
            filename = os.path.basename(path)
            output_path = os.path.join(output_dir, filename)
            tasks.append((path, output_path, operations))
        print(f"{num_workers} processes, {len(tasks)} images", file=sys.stderr)
        with Pool(processes=num_workers) as pool:
            results = pool.map(self.process_single_image, tasks)
        success = sum(1 for r in results if r[0])
        print(f"ok: {success}, failed: {len(results) - success}", file=sys.stderr)
        return results

if __name__ == "__main__":
    source, output = sys.argv[1], sys.argv[2]
    paths = sorted(os.path.join(source, name) for name in os.listdir(source))
    operations = [{'type': 'resize', 'size': (800, 600)}, {'type': 'rotate', 'angle': 90}]
    ImageProcessor().process_batch(paths, operations, output)
'''

# libvips doing exactly the same work: thumbnail (shrink-on-load, then Lanczos3), a clockwise
# quarter turn, JPEG Q=85; images spread over one thread per core (pyvips releases the GIL in
# every libvips call, and libvips threads inside each image too, unless VIPS_CONCURRENCY=1).
PYVIPS = '''
import os, sys
from concurrent.futures import ThreadPoolExecutor
import pyvips

source, output = sys.argv[1], sys.argv[2]
names = sorted(os.listdir(source))

def one(name):
    thumb = pyvips.Image.thumbnail(os.path.join(source, name), 800, height=600)
    thumb.copy_memory().rot90().write_to_file(os.path.join(output, name), Q=85)

with ThreadPoolExecutor(os.cpu_count()) as pool:
    list(pool.map(one, names))
'''


def variants(args, scripts):
    cores = str(os.cpu_count())
    python = sys.executable
    return [
        ("triad images, threads", lambda i, o: [
            args.triad, "images", "resize=800x600", "rotate=90", "--format", "jpeg",
            "--quality", "85", "--out", o, i]),
        ("triad images, processes", lambda i, o: [
            args.triad, "images", "resize=800x600", "rotate=90", "--format", "jpeg",
            "--quality", "85", "--mode", "processes", "--out", o, i]),
        ("libvips 8 (pyvips), a thread per core", lambda i, o: [python, scripts["pyvips"], i, o]),
        ("libvips 8 (pyvips), a thread per core, VIPS_CONCURRENCY=1", lambda i, o: [
            "env", "VIPS_CONCURRENCY=1", python, scripts["pyvips"], i, o]),
        ("vipsthumbnail, parallel -X (resize only: it cannot rotate)", lambda i, o: [
            "sh", "-c",
            f"parallel -j{cores} -X vipsthumbnail -s 800x600 -o '{o}/%s.jpg[Q=85]' ::: {i}/*.jpg"]),
        ("ImageMagick mogrify (OpenMP)", lambda i, o: [
            "sh", "-c", f"mogrify -path {o} -resize 800x600 -rotate 90 -quality 85 {i}/*.jpg"]),
        ("the seed: Pillow + Pool.map", lambda i, o: [python, scripts["seed"], i, o]),
    ]


def timed(command):
    """Runs `command` under GNU time: (seconds, peak RSS in bytes, exit code)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        done = subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%e %M", *command],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        fields = report.read().split()
    seconds, kib = float(fields[-2]), int(fields[-1])
    return seconds, kib * 1024, done.returncode, done.stderr[-500:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--triad", required=True)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    # Absolute: vipsthumbnail takes a relative output path as relative to each input.
    args.work = os.path.abspath(args.work)
    os.makedirs(args.work, exist_ok=True)
    source = os.path.join(args.work, f"in-{args.count}")
    if len(os.listdir(source) if os.path.isdir(source) else []) != args.count:
        print(f"generating {args.count} photos of 4000x3000 in {source}", file=sys.stderr)
        shutil.rmtree(source, ignore_errors=True)
        os.makedirs(source)
        generate.generate(source, args.count, 4000, 3000, 10)
    scripts = {}
    for name, text in [("seed", SEED), ("pyvips", PYVIPS)]:
        scripts[name] = os.path.join(args.work, f"bench_{name}.py")  # not pyvips.py: it would shadow the module
        with open(scripts[name], "w") as f:
            f.write(text)
    runs = {name: [] for name, _ in variants(args, scripts)}
    for round_ in range(args.rounds):
        order = variants(args, scripts)
        order = order[round_ % len(order):] + order[:round_ % len(order)]
        for name, command in order:
            out = os.path.join(args.work, "out")
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            seconds, rss, code, stderr = timed(command(source, out))
            written = len(os.listdir(out))
            if code != 0 or written != args.count:
                sys.exit(f"{name} failed (exit {code}, {written} outputs): {stderr}")
            runs[name].append({"seconds": seconds, "peak_rss_bytes": rss})
            print(f"round {round_ + 1}: {name}: {args.count / seconds:.1f} images/s, "
                  f"{rss / 2**20:.0f} MiB", file=sys.stderr)
    base = statistics.median(args.count / r["seconds"] for r in runs["triad images, threads"])
    lines = [
        f"{args.count} JPEGs of 4000x3000 (12 MP), resize=800x600 then rotate=90, JPEG q85; "
        f"{os.cpu_count()} cores; median of {args.rounds} rounds",
        "",
        "| variant | images/s | triad threads / this | peak RSS (MiB) |",
        "|---|---:|---:|---:|",
    ]
    for name, samples in runs.items():
        rate = statistics.median(args.count / r["seconds"] for r in samples)
        rss = statistics.median(r["peak_rss_bytes"] for r in samples) / 2**20
        lines.append(f"| {name} | {rate:.1f} | {base / rate:.2f}x | {rss:.0f} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump({"count": args.count, "rounds": args.rounds, "runs": runs}, f, indent=1)
    with open(os.path.join(args.work, "results.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
