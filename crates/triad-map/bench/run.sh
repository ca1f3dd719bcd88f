#!/usr/bin/env bash
# triad map against the seed's DataPipeline, multiprocessing.Pool.imap and GNU parallel, on the
# same generated records, side by side in one run: records/s and peak RSS.
#   crates/triad-map/bench/run.sh [RECORDS]        (default 1000000)
# Installs Debian's `parallel` and `time` when they are missing; everything else is python3's
# stdlib.
set -euo pipefail
cd "$(dirname "$0")/../../.."
records="${1:-1000000}"
missing=()
command -v parallel >/dev/null 2>&1 || missing+=(parallel)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian's ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
cargo build --release -q -p triad-cli
exec python3 crates/triad-map/bench/bench.py --triad target/release/triad --records "$records" "${@:2}"
