#!/usr/bin/env bash
# Runs the side-by-side benchmark several times, alternating pinned and unpinned quick runs, and
# prints, for every row of the README's performance table, the range of the ratio over the
# runs: CPU time with both threads pinned to one CPU, wall clock and CPU time unpinned.
#
#   bash scripts/bench-ranges.sh [RUNS]      (default: 3 pinned + 3 unpinned)
#
# The runs go to target/bench-ranges/{pin,free}-N; the table goes to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
work=$PWD/target/bench-ranges
rm -rf "$work"
mkdir -p "$work"
cargo build -q --release -p ws_stream_bench
bin=$PWD/target/release/ws_stream_bench
for i in $(seq 1 "$runs"); do
    echo "run $i/$runs: pinned" >&2
    "$bin" --quick --pin --out "$work/pin-$i" >/dev/null 2>&1
    echo "run $i/$runs: unpinned" >&2
    "$bin" --quick --out "$work/free-$i" >/dev/null 2>&1
done
python3 scripts/bench_ranges.py "$work"
