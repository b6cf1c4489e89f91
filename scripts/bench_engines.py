"""Summarises the runs of scripts/bench-engines.sh: per scenario and metric, the median of
`ours` at the old and the new revision over every sample of every round, and new/old, oriented
so that a value below 1.00 means the new revision is worse; then the same for the ratio
`ours / at-msg` of each run."""

import csv
import statistics
import sys
from collections import defaultdict

# The metrics that decide, and whether higher is better.
METRICS = {
    ("bulk-64k", "CPU s/GiB"): False,
    ("bulk-1k", "CPU s/GiB"): False,
    ("bulk-16", "CPU s/GiB"): False,
    ("lines-flush", "CPU ns/line"): False,
    ("lines-feed", "CPU ns/line"): False,
    ("pingpong-64", "p50 µs"): False,
    ("pingpong-64", "CPU µs/round"): False,
    ("idle-1000", "reading KiB/endpoint"): False,
    ("allocs-1k", "tx allocs/msg"): False,
    ("allocs-1k", "rx allocs/msg"): False,
}


def load(path):
    """(scenario, metric) -> implementation -> list of values."""
    out = defaultdict(lambda: defaultdict(list))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out[(row["scenario"], row["metric"])][row["implementation"]].append(
                float(row["value"])
            )
    return out


def main():
    work, rounds = sys.argv[1], int(sys.argv[2])
    ours = {"old": defaultdict(list), "new": defaultdict(list)}
    rel = {"old": defaultdict(list), "new": defaultdict(list)}
    for side in ("old", "new"):
        for i in range(1, rounds + 1):
            data = load(f"{work}/{side}-{i}/samples.csv")
            for key in METRICS:
                o = data[key].get("ours", [])
                a = data[key].get("at-msg", [])
                ours[side][key] += o
                if o and a and statistics.median(a) > 0:
                    rel[side][key].append(statistics.median(o) / statistics.median(a))
    print(f"{rounds} alternated rounds of `--quick --pin`, medians; new/old > 1.00 is better")
    print()
    print("| scenario | metric | old | new | new/old | ours÷at-msg old | new | new/old |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for key, higher in METRICS.items():
        o, n = ours["old"][key], ours["new"][key]
        if not o or not n:
            continue
        mo, mn = statistics.median(o), statistics.median(n)
        gain = (mn / mo if higher else mo / mn) if mo and mn else float("nan")
        ro, rn = rel["old"][key], rel["new"][key]
        if ro and rn:
            qo, qn = statistics.median(ro), statistics.median(rn)
            rgain = (qn / qo if higher else qo / qn) if qo and qn else float("nan")
            rel_cols = f"{qo:.3f} | {qn:.3f} | {rgain:.3f}"
        else:
            rel_cols = "– | – | –"
        print(f"| {key[0]} | {key[1]} | {mo:.3f} | {mn:.3f} | {gain:.3f} | {rel_cols} |")


if __name__ == "__main__":
    main()
