#!/usr/bin/env python3
"""Instructions per unit of work, per thread, from the callgrind runs of bench-instructions.sh.

Usage: bench_instructions.py WORKDIR

WORKDIR holds one directory per (scenario, implementation), named SCENARIO--IMPL, each with the
callgrind output files of one run (`--separate-threads=yes`: one file per thread). The thread
that formats outgoing frames the most is taken as the client (the writer), the other busy one
as the server (the reader); in ping-pong both do both. tungstenite zero-fills its read buffer before each socket read; how much depends
on how the two threads happened to interleave, so that part (`memset`) is shown apart.
"""

import os
import re
import subprocess
import sys

# Units of work per scenario in a `--quick` run (see bench/src/main.rs).
UNITS = {
    "lines-flush": (20_000, "line"),
    "pingpong-64": (2_000, "round trip"),
    "bulk-1k": (16, "MiB"),
}


def annotate(path):
    """(total, memset, format_into_buf) instructions of one thread's callgrind file."""
    out = subprocess.run(
        ["callgrind_annotate", path], capture_output=True, text=True, check=True
    ).stdout
    total = memset = fmt = 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        what = m.group(2)
        if "PROGRAM TOTALS" in what:
            total = n
        elif "memset" in what:
            memset += n
        elif "format_into_buf" in what:
            fmt += n
    return total, memset, fmt


def main():
    work = sys.argv[1]
    rows = []
    for name in sorted(os.listdir(work)):
        if "--" not in name:
            continue
        scenario, imp = name.split("--", 1)
        if scenario not in UNITS:
            print(f"{name}: no unit known for scenario {scenario}", file=sys.stderr)
            continue
        d = os.path.join(work, name)
        threads = [
            annotate(os.path.join(d, f))
            for f in os.listdir(d)
            # Thread 1 is the harness (process start, the memcpy probe), not an end.
            if re.match(r"callgrind\.out\.\d+-\d+$", f) and not f.endswith("-01")
        ]
        busy = sorted(threads, key=lambda t: t[0], reverse=True)[:2]
        if len(busy) < 2:
            print(f"{name}: fewer than two threads recorded", file=sys.stderr)
            continue
        writer, reader = sorted(busy, key=lambda t: t[2], reverse=True)
        units, _ = UNITS[scenario]
        rows.append(
            (
                scenario,
                imp,
                (writer[0] - writer[1]) / units,
                (reader[0] - reader[1]) / units,
                (writer[1] + reader[1]) / units,
            )
        )
    print(
        "User-space instructions per unit of work (callgrind, one quick run each, setup "
        "included). The client writes (and, in ping-pong, reads the echo); the server reads. "
        "tungstenite's zero-fill of its read buffer is counted apart, as valgrind counts it "
        "(about one per byte zeroed): how much is zeroed depends on how the two threads "
        "happened to interleave, and natively it is one fast `rep stosb`.\n"
    )
    print("| scenario | implementation | client | server | both | zero-fill, both |")
    print("|---|---|---:|---:|---:|---:|")
    for scenario, imp, w, r, z in rows:
        unit = UNITS[scenario][1]
        print(f"| {scenario} (per {unit}) | {imp} | {w:,.0f} | {r:,.0f} | {w + r:,.0f} | {z:,.0f} |")


if __name__ == "__main__":
    main()
