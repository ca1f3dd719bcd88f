"""triad map's worker for --py FILE:FUNC: imports FILE once, then calls FUNC on every record.

The protocol (on stdin and stdout, bytes): a line holding a count n, then n record lines; the
harness answers with n lines, in order, and flushes once per batch. Each answer is the
function's result as one line of JSON (jsonl and csv; for lines, as text), or, when the
function raised, the byte 0x1E followed by the exception as a JSON string. The function's own
prints go to stderr, which triad passes through, so they can never corrupt an answer.

Started as: python3 -c <this file> FILE FUNC FORMAT; it writes one line, "ok" or the reason it
cannot run, before it reads anything.
"""

import importlib.util
import json
import os
import sys


def load(path, name):
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location("triad_map_transform", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function = getattr(module, name, None)
    if not callable(function):
        raise AttributeError(f"{path} has no function {name}")
    return function


def main():
    path, name, form = sys.argv[1], sys.argv[2], sys.argv[3]
    out = sys.stdout.buffer
    sys.stdout = sys.stderr
    try:
        function = load(path, name)
    except BaseException as error:  # anything at import: say it, do not serve
        out.write(f"{type(error).__name__}: {error}\n".encode())
        out.flush()
        return 1
    out.write(b"ok\n")
    out.flush()
    read = sys.stdin.buffer.readline
    loads = json.loads
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    raw = form == "lines"
    while True:
        header = read()
        if not header:
            return 0
        answers = []
        for _ in range(int(header)):
            line = read()
            try:
                if raw:
                    result = str(function(line.decode("utf-8", "surrogateescape").rstrip("\n")))
                    if "\n" in result:
                        raise ValueError("a result for --format lines holds a newline")
                    answers.append(result.encode("utf-8", "surrogateescape") + b"\n")
                else:
                    answers.append(dumps(function(loads(line))).encode() + b"\n")
            except Exception as error:
                answers.append(b"\x1e" + json.dumps(f"{type(error).__name__}: {error}").encode() + b"\n")
        out.write(b"".join(answers))
        out.flush()


sys.exit(main())
