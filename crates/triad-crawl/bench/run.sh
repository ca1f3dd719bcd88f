#!/usr/bin/env bash
# triad crawl beside the seed's AsyncWebCrawler (aiohttp + BeautifulSoup) and, when it
# installs, Scrapy, on the same generated local site of 5,000 pages (127.0.0.1 only), at
# 0 ms and at 20 ± 15 ms latency, at concurrency 20: pages/s and CPU seconds per 1,000 pages.
#   crates/triad-crawl/bench/run.sh [--pages N] [--rounds N] [--concurrency N]
# Installs aiohttp, beautifulsoup4 and Scrapy from PyPI into a venv under target/ (the tests
# never need them).
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q 'aiohttp>=3.9,<4' 'beautifulsoup4>=4.12,<5'
scrapy=()
if "$venv/bin/pip" install -q 'scrapy>=2.11,<3'; then
    scrapy=(--scrapy)
else
    echo "Scrapy did not install: its column is left out" >&2
fi
cargo build --release -q -p triad-cli -p triad-crawl --bin triad --example site
exec "$venv/bin/python" crates/triad-crawl/bench/bench.py --triad target/release/triad \
    --site target/release/examples/site --python "$venv/bin/python" "${scrapy[@]}" "$@"
