"""Pure CPU, fixed work: adds up the squares of the first N integers (default 10 million)."""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
total = 0
for i in range(n):
    total += i * i
print(total % 1000)
