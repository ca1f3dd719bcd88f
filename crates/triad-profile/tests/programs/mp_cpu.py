"""CPU-bound in worker processes: multiprocessing runs in parallel on every core."""
import multiprocessing, sys, time

def spin(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n

if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.5
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(spin, [seconds, seconds])
