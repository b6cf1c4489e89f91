#!/usr/bin/env bash
# Counts user-space instructions per unit of work for every implementation, with callgrind: a
# measure that does not depend on how busy the machine is, to put beside the CPU times of the
# benchmark. Each (scenario, implementation) is one `--quick --reps 1` run under valgrind
# (about a minute each; two run at a time).
#
#   bash scripts/bench-instructions.sh [SCENARIO,..] [IMPL,..]
#       defaults: lines-flush,pingpong-64  at-msg,tokio-util,wst-0.15,ours
#
# Needs valgrind. The runs go to target/bench-instructions/SCENARIO--IMPL; the table to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=${1:-lines-flush,pingpong-64}
impls=${2:-at-msg,tokio-util,wst-0.15,ours}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
work=$PWD/target/bench-instructions
rm -rf "$work"
mkdir -p "$work"
cargo build -q --release -p ws_stream_bench
bin=$PWD/target/release/ws_stream_bench
jobs=()
for s in ${scenarios//,/ }; do
    for i in ${impls//,/ }; do
        d="$work/$s--$i"
        mkdir -p "$d"
        echo "callgrind: $s, $i" >&2
        (cd "$d" && valgrind --tool=callgrind --separate-threads=yes \
            "$bin" --quick --reps 1 --only "$s" --impls "$i" >run.md 2>valgrind.log) &
        jobs+=($!)
        if (( ${#jobs[@]} >= 2 )); then
            wait "${jobs[0]}"
            jobs=("${jobs[@]:1}")
        fi
    done
done
for j in "${jobs[@]}"; do wait "$j"; done
python3 scripts/bench_instructions.py "$work"
