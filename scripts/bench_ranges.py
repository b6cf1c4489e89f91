"""Ratio ranges over several benchmark runs (see bench-ranges.sh).

Reads DIR/pin-*/samples.csv and DIR/free-*/samples.csv, takes the median of every
(scenario, implementation, metric) within each run, and prints one Markdown row per
comparison: this crate against one alternative, as the range (min-max) over the runs of the
ratio of medians. Throughput and CPU ratios are "how many times cheaper / faster this crate is"
(above 1 is better); latency ratios are "how many times longer this crate takes" (below 1 is
better).
"""

import csv
import glob
import os
import statistics
import sys
from collections import defaultdict


def medians(path):
    vals = defaultdict(list)
    with open(path) as f:
        for row in csv.DictReader(f):
            vals[(row["scenario"], row["implementation"], row["metric"])].append(float(row["value"]))
    return {k: statistics.median(v) for k, v in vals.items()}


def cpu_metric(scenario):
    return {"bulk": "CPU s/GiB", "lines": "CPU ns/line", "pingpong": "CPU µs/round"}[
        scenario.split("-")[0]
    ]


def main_metric(scenario):
    return {"bulk": "MiB/s", "lines": "k lines/s", "pingpong": "p50 µs"}[scenario.split("-")[0]]


# (label, scenario, reference implementation)
ROWS = [
    ("bulk, 64 KiB writes", "bulk-64k", "at-msg"),
    ("bulk, 64 KiB writes", "bulk-64k", "tokio-util"),
    ("bulk, 64 KiB writes", "bulk-64k", "wst-0.15"),
    ("bulk, 1 KiB writes", "bulk-1k", "at-msg"),
    ("bulk, 1 KiB writes", "bulk-1k", "wst-0.15"),
    ("bulk, 16 B writes", "bulk-16", "at-msg"),
    ("bulk, 16 B writes", "bulk-16", "wst-0.15"),
    ("LinesCodec, flush per line", "lines-flush", "at-msg"),
    ("LinesCodec, flush per line", "lines-flush", "wst-0.15"),
    ("LinesCodec, `feed` + one flush", "lines-feed", "wst-0.15"),
    ("LinesCodec, `feed` + one flush", "lines-feed", "tcp"),
    ("ping-pong 64 B, median round trip", "pingpong-64", "at-msg"),
    ("ping-pong 64 B, median round trip", "pingpong-64", "tokio-util"),
]


def ratio(m, scenario, ref, metric, higher_better):
    ours = m.get((scenario, "ours", metric))
    theirs = m.get((scenario, ref, metric))
    if not ours or not theirs:
        return None
    return ours / theirs if higher_better else theirs / ours


def span(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    return f"{lo:.2f}×" if abs(hi - lo) < 0.005 else f"{lo:.2f}–{hi:.2f}×"


def main():
    work = sys.argv[1]
    pinned = [medians(p) for p in sorted(glob.glob(os.path.join(work, "pin-*", "samples.csv")))]
    free = [medians(p) for p in sorted(glob.glob(os.path.join(work, "free-*", "samples.csv")))]
    print(f"{len(pinned)} pinned and {len(free)} unpinned quick runs; ratios of medians, range over the runs.\n")
    print("| this crate against | pinned: CPU time (round trip) | unpinned: wall clock (round trip) | unpinned: CPU time |")
    print("|---|---:|---:|---:|")
    for label, scen, ref in ROWS:
        main = main_metric(scen)
        cpu = cpu_metric(scen)
        latency = scen.startswith("pingpong")
        if latency:
            # The median round trip, ours over theirs (below 1 is quicker); CPU per round as
            # everywhere else (above 1 is cheaper).
            p = span([ratio(m, scen, ref, main, True) for m in pinned])
            w = span([ratio(m, scen, ref, main, True) for m in free])
            c = span([ratio(m, scen, ref, cpu, False) for m in free])
            print(f"| {label}: {ref} (round trip, below 1 is quicker) | {p} | {w} | {c} |")
        else:
            p = span([ratio(m, scen, ref, cpu, False) for m in pinned])
            w = span([ratio(m, scen, ref, main, True) for m in free])
            c = span([ratio(m, scen, ref, cpu, False) for m in free])
            print(f"| {label}: {ref} | {p} | {w} | {c} |")
    print()
    print("| counters per unit, this crate / at-msg (pinned, median of the runs) | socket calls | wake-ups | context switches |")
    print("|---|---:|---:|---:|")
    for scen, unit in [
        ("bulk-64k", "MiB"),
        ("bulk-1k", "MiB"),
        ("bulk-16", "MiB"),
        ("lines-flush", "1k lines"),
        ("lines-feed", "1k lines"),
        ("pingpong-64", "round"),
        ("allocs-1k", "msg"),
    ]:
        cells = []
        for what in ("socket calls", "wake-ups", "context switches"):
            metric = f"{what}/{unit}"
            o = [m.get((scen, "ours", metric)) for m in pinned]
            a = [m.get((scen, "at-msg", metric)) for m in pinned]
            o = [x for x in o if x is not None]
            a = [x for x in a if x is not None]
            if not o or not a:
                cells.append("–")
                continue
            cells.append(f"{statistics.median(o):.2f} / {statistics.median(a):.2f}")
        print(f"| {scen} (per {unit}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
