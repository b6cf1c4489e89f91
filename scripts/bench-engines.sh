#!/usr/bin/env bash
# Compares this crate at two revisions with the side-by-side benchmark: the two builds run
# alternately on the same machine (old, new, old, new, ...), each run `--quick --pin` over
# `ours` and `at-msg`, and `scripts/bench_engines.py` prints, per scenario and metric, the
# median of `ours` for each revision and new/old, plus the same for `ours / at-msg` within
# each run (which cancels most of the machine's drift between runs).
#
#   bash scripts/bench-engines.sh OLD_REV [ROUNDS]     (default: 5 rounds)
#
# The old revision is checked out in a git worktree under target/bench-engines and built with
# its own target directory; nothing outside target/ is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
old_rev=${1:?usage: bench-engines.sh OLD_REV [ROUNDS]}
rounds=${2:-5}
work=$PWD/target/bench-engines
mkdir -p "$work"
if [ ! -d "$work/old-src" ]; then
    git worktree add --detach "$work/old-src" "$old_rev" >/dev/null
else
    git -C "$work/old-src" checkout --detach -q "$old_rev"
fi
(cd "$work/old-src" && CARGO_TARGET_DIR="$work/old-target" cargo build -q --release -p ws_stream_bench)
cargo build -q --release -p ws_stream_bench
old_bin=$work/old-target/release/ws_stream_bench
new_bin=$PWD/target/release/ws_stream_bench
for i in $(seq 1 "$rounds"); do
    for side in old new; do
        bin=old_bin; [ "$side" = new ] && bin=new_bin
        echo "round $i/$rounds: $side" >&2
        "${!bin}" --quick --pin --impls ours,at-msg --out "$work/$side-$i" >/dev/null 2>&1
    done
done
python3 scripts/bench_engines.py "$work" "$rounds"
