#!/usr/bin/env bash
# triad stream beside the seed's RealtimeDataProcessor (on redis.asyncio) against the same
# local redis-server: the highest sustained rate with p99 under 100 ms, p50/p99, peak RSS;
# then the SQLite sink beside plain batched inserts.
#   crates/triad-stream/bench/run.sh [--seconds N]
# Installs Debian's redis-server when it is missing, and redis-py from PyPI into a venv under
# target/ (the tests never need it).
set -euo pipefail
cd "$(dirname "$0")/../../.."
if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing Debian's redis-server" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null
fi
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q 'redis>=5,<8'
cargo build --release -q -p triad-cli -p triad-stream --example sqlite_limit
exec "$venv/bin/python" crates/triad-stream/bench/bench.py --triad target/release/triad \
    --sqlite-limit target/release/examples/sqlite_limit "$@"
