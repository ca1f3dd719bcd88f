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
    serve = serve_lines if form == "lines" else serve_json
    while True:
        header = read()
        if not header:
            return 0
        out.write(serve(function, [read() for _ in range(int(header))]))
        out.flush()


def raised(error):
    return "\x1e" + json.dumps(f"{type(error).__name__}: {error}") + "\n"


def serve_lines(function, lines):
    answers = []
    for line in lines:
        try:
            result = str(function(line.decode("utf-8", "surrogateescape").rstrip("\n")))
            if "\n" in result:
                raise ValueError("a result for --format lines holds a newline")
            answers.append(result.encode("utf-8", "surrogateescape") + b"\n")
        except Exception as error:
            answers.append(raised(error).encode())
    return b"".join(answers)


def json_encoder():
    """One result to one JSON text: compact, UTF-8, no NaN (not JSON). CPython's C encoder
    made once, when there is one, spares JSONEncoder.encode's set-up on every call."""
    options = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return options.encode
    encode = make(None, options.default, json.encoder.encode_basestring, None, ":", ",",
                  False, False, False)
    return lambda value: "".join(encode(value, 0))


ENCODE = json_encoder()


def decode(lines):
    """The batch's records, one JSON decode for all of them (a third of the cost of one per
    line); a line that fails is its own error."""
    try:
        items = json.loads(b"[" + b",".join(lines) + b"]")
        if len(items) == len(lines):
            return items, {}
    except ValueError:
        pass
    items, bad = [], {}
    for index, line in enumerate(lines):
        try:
            items.append(json.loads(line))
        except ValueError as error:
            items.append(None)
            bad[index] = error
    return items, bad


def serve_json(function, lines):
    items, bad = decode(lines)
    answers = []
    for index, item in enumerate(items):
        if index in bad:
            answers.append(raised(bad[index]))
            continue
        try:
            answers.append(ENCODE(function(item)) + "\n")
        except Exception as error:
            answers.append(raised(error))
    try:
        return "".join(answers).encode()
    except UnicodeEncodeError:  # a lone surrogate in some result: that result's error
        return b"".join(one_answer(answer) for answer in answers)


def one_answer(answer):
    try:
        return answer.encode()
    except UnicodeEncodeError as error:
        return raised(error).encode()


sys.exit(main())
