#!/usr/bin/env bash
# triad images against libvips (pyvips and vipsthumbnail), ImageMagick's mogrify and the seed's
# Pillow + multiprocessing.Pool script, on the same generated photos, side by side in one run:
# images/s, ratios and peak RSS.
#   crates/triad-images/bench/run.sh [COUNT] [ROUNDS]      (default 200 images, 3 rounds)
# Installs Debian's libvips-tools, imagemagick, parallel and time when they are missing, and
# Pillow and pyvips from PyPI into a venv under target/.
set -euo pipefail
cd "$(dirname "$0")/../../.."
count="${1:-200}"
rounds="${2:-3}"
missing=()
command -v vipsthumbnail >/dev/null 2>&1 || missing+=(libvips-tools)
command -v mogrify >/dev/null 2>&1 || missing+=(imagemagick)
command -v parallel >/dev/null 2>&1 || missing+=(parallel)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian's ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
fi
venv=target/images-bench/venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q Pillow pyvips
fi
cargo build --release -q -p triad-cli
exec "$venv/bin/python" crates/triad-images/bench/bench.py --triad target/release/triad \
    --count "$count" --rounds "$rounds" --work target/images-bench
