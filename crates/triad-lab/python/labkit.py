"""Shared helpers for the lab's CPython baselines (standard library only).

Every baseline script prints one JSON document on stdout:
{"measurements": [{"name", "unit", "samples", "params"}], "notes": [...]}
and takes its sizes from command-line arguments, so the lab decides the scale.
"""

import json
import sys
import time

_measurements = []
_notes = []


def record(name, unit, samples, **params):
    """Adds one series of samples under fixed parameters."""
    _measurements.append(
        {"name": name, "unit": unit, "samples": [float(s) for s in samples], "params": params}
    )


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
