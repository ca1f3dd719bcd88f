"""IO-bound on the disk: writes 4 KiB blocks and fsyncs each, for about SECONDS (default 1.5)."""
import os, sys, tempfile, time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.5
block = os.urandom(4096)
with tempfile.NamedTemporaryFile(dir=os.environ.get("TMPDIR")) as f:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        f.write(block)
        f.flush()
        os.fsync(f.fileno())
