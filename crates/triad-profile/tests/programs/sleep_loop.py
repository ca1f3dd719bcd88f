"""IO-bound on a timer: sleeps in short steps for about SECONDS (default 1.5)."""
import sys, time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.5
for _ in range(int(seconds / 0.05)):
    time.sleep(0.05)
