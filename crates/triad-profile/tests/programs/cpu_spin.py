"""Pure CPU: one thread spinning for SECONDS (default 1.5)."""
import sys, time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.5
end = time.perf_counter() + seconds
n = 0
while time.perf_counter() < end:
    n += 1
