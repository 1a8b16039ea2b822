#!/usr/bin/env python3
"""Summary of an OSU run of bench/osu/run.sh.

usage: summary.py OUTDIR CONFIG...

Reads OUTDIR/raw/<config>/<bench>.<round>.txt (OSU 7.4 output), writes OUTDIR/results.json
(every value: config -> bench -> size -> list over rounds) and OUTDIR/summary.md (median over
rounds at chosen sizes, with the ratio of each tocsin configuration to MPICH and to Open MPI),
and prints the summary. Latencies are in microseconds (lower is better), bandwidths in MB/s
and message rates in messages/s (higher is better); a ratio is tocsin / peer either way.
"""

import json
import os
import re
import statistics
import sys

SIZES = [1, 8, 1024, 65536, 1048576]
UNITS = {
    "osu_bw": "MB/s",
    "osu_bibw": "MB/s",
    "osu_mbw_mr": "MB/s",
}
ORDER = [
    "osu_latency", "osu_bw", "osu_bibw", "osu_mbw_mr", "osu_multi_lat", "osu_latency_mt",
    "osu_barrier", "osu_bcast", "osu_reduce", "osu_allreduce", "osu_gather", "osu_alltoall",
    "osu_iallreduce",
]
NUM = re.compile(r"^\s*(\d+)\s+([0-9.]+)")
ALONE = re.compile(r"^\s*([0-9.]+)\s*$")


def parse(path):
    """size -> first value column (osu_barrier: size 0)."""
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("#"):
                continue
            m = NUM.match(line)
            if m:
                out[int(m.group(1))] = float(m.group(2))
                continue
            m = ALONE.match(line)
            if m:
                out[0] = float(m.group(1))
    return out


def main():
    outdir, configs = sys.argv[1], sys.argv[2:]
    raw = os.path.join(outdir, "raw")
    results = {}
    for c in configs:
        d = os.path.join(raw, c)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            m = re.match(r"^(osu_\w+)\.(\d+)\.txt$", name)
            if not m:
                continue
            for size, v in parse(os.path.join(d, name)).items():
                results.setdefault(c, {}).setdefault(m.group(1), {}).setdefault(str(size), []).append(v)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)

    def med(c, b, s):
        vals = results.get(c, {}).get(b, {}).get(str(s))
        return statistics.median(vals) if vals else None

    tocsin = [c for c in configs if c.startswith("tocsin")]
    peers = [c for c in configs if not c.startswith("tocsin")]
    head = ["benchmark", "size", "unit"] + configs
    head += [f"{t} / {p}" for t in tocsin for p in peers]
    rows = []
    benches = sorted({b for c in results.values() for b in c}, key=lambda b: (ORDER.index(b) if b in ORDER else 99, b))
    for b in benches:
        sizes = [0] if b == "osu_barrier" else SIZES
        for s in sizes:
            vals = [med(c, b, s) for c in configs]
            if all(v is None for v in vals):
                continue
            row = [b, "-" if b == "osu_barrier" else str(s), UNITS.get(b, "us")]
            row += ["n/a" if v is None else f"{v:.2f}" for v in vals]
            for t in tocsin:
                for p in peers:
                    a, z = med(t, b, s), med(p, b, s)
                    row.append(f"{a / z:.2f}" if a is not None and z else "n/a")
            rows.append(row)
    lines = [
        "# OSU Micro-Benchmarks 7.4: summary",
        "",
        "Median over rounds; latency in us (lower is better), bandwidth in MB/s (higher is "
        "better); ratio = tocsin / peer. Machine, versions and commands: meta.txt; every value: "
        "results.json; OSU's own output: raw/.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
