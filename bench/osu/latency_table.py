#!/usr/bin/env python3
"""Per-size latency table from bench/osu/run.sh's raw osu_latency outputs.

usage: bench/osu/latency_table.py OUTDIR [CONFIG] [PEER]
  (defaults: tocsin-poll against openmpi). Prints, for every message size, the median over
  the rounds of each configuration with the [min-max] spread, and the ratio of the medians.
"""
import glob
import os
import statistics
import sys

out = sys.argv[1]
cfg = sys.argv[2] if len(sys.argv) > 2 else "tocsin-poll"
peer = sys.argv[3] if len(sys.argv) > 3 else "openmpi"


def runs(config):
    by_size = {}
    for f in sorted(glob.glob(os.path.join(out, "raw", config, "osu_latency.*.txt"))):
        for line in open(f):
            p = line.split()
            if len(p) == 2 and p[0].isdigit():
                by_size.setdefault(int(p[0]), []).append(float(p[1]))
    return by_size


a, b = runs(cfg), runs(peer)
print(f"| size (B) | {cfg}, µs median [min–max] | {peer}, µs median [min–max] | ratio |")
print("|---|---|---|---|")
worse = []
for s in sorted(set(a) & set(b)):
    ma, mb = statistics.median(a[s]), statistics.median(b[s])
    r = ma / mb
    if r > 1.0:
        worse.append(s)
    print(f"| {s} | {ma:.2f} [{min(a[s]):.2f}–{max(a[s]):.2f}] | {mb:.2f} [{min(b[s]):.2f}–{max(b[s]):.2f}] | {r:.2f} |")
print(f"\nsizes where {cfg} is above {peer}: {worse if worse else 'none'}")
