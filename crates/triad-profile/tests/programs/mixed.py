"""Mixed: alternates 50 ms of computing with 50 ms of sleeping, for about SECONDS."""
import sys, time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.5
for _ in range(int(seconds / 0.1)):
    end = time.perf_counter() + 0.05
    while time.perf_counter() < end:
        pass
    time.sleep(0.05)
