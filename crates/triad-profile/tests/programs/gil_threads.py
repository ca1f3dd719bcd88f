"""CPU-bound in several threads: the GIL lets only one run Python code at a time."""
import sys, threading, time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.5

def spin():
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1

threads = [threading.Thread(target=spin) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
