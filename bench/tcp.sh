#!/usr/bin/env bash
# The TCP benchmarks of issue 7 in one command: tocsin's TCP transport against Open MPI's
# (ob1 + btl tcp) and MPICH's (ch4:ucx, UCX_TLS=tcp), same methods (bench/peers/*.c and
# `tocsin bench`), same session, alternated runs.
#
# usage: bench/tcp.sh [--full] [--no-netns] [--no-build] [OUTDIR]
#        (default OUTDIR: <repo>/target/tcp-bench; JSON of every run there, summary.json,
#        summary.md, and the summary table printed at the end)
#
# What it runs, TCP_RUNS times alternated (peers, then tocsin's modes; reversed order every
# other run):
#   lo     : both ranks on this host, everything through TCP on loopback:
#            tocsin `TOCSIN_NOLOCAL=1 TOCSIN_TCP_IF=lo tocsin bench …` (its own launcher,
#            ranks bound to CPUs 0 and 1), the peers `PEERS_TRANSPORT=tcp bench/peers/run.sh`
#   netns  : one rank on each namespace host h1, h2 (scripts/cluster/netns.sh: separate
#            network stacks joined by a veth/bridge; no shared memory, no CMA), launched by
#            `mpiexec.hydra -launcher ssh -launcher-exec scripts/cluster/nsexec` (tocsin,
#            MPICH) or `mpirun.openmpi --mca plm_rsh_agent nsexec` (Open MPI), each rank
#            bound to its CPU by bench/peers/bind-rank
#   shm    : tocsin's default (shared-memory) ping-pong, `poll`, in the same session, and
#            the commit before the TCP transport if TCP_SHM_BASE names its `tocsin` binary
# Per run: ping-pong (0 B … 4 MiB) of every library and mode; once per topology (after the
# ping-pong runs): overlap (sender and receiver side) and idle CPU.
#
# Options: --full     the full grids: ping-pong --rounds 3, overlap sizes 32K…16M and
#                     compute 10…5000 µs with 20 reps (default: 256K,1M,4M × 200,1000,5000
#                     µs, 10 reps, ping-pong 1 round per run)
#          --no-netns only the loopback topology (and shm)
#          --no-lo    only the namespace hosts
#          --no-build do not run `cargo build --release -p tocsin-cli` first
#          --summary-only  only print the summary of the results already in OUTDIR
# Environment: TCP_RUNS=3             alternated ping-pong runs per topology
#              TCP_MODES="poll block thread signal"
#              TCP_QUIET_WAIT=600     seconds to wait for a quiet machine (< 10% busy over
#                                     1 s) before each measurement; then measure anyway and
#                                     flag the run as disturbed
#              TCP_SHM_BASE=          a tocsin binary to compare the shm ping-pong with
#              TCP_TIMEOUT=300        per-run limit, seconds (a failed or timed-out
#                                     tocsin run is retried once, then reported missing)
# Locks: /tmp/tocsin-bench-peers.lock (flock, as bench/peers/run.sh) for the whole run, and
# /tmp/tocsin-cluster-netns.lock while the namespace hosts are up (the tests that start and
# stop them take it too). Needs root for the namespace hosts (skipped otherwise, said so).
# Exit status: 0 ok, 1 a run failed or a tool is missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
FULL=0 LO=1 NETNS=1 BUILD=1 SUMMARY_ONLY=0 OUT=
while [ $# -gt 0 ]; do
    case $1 in
    --full) FULL=1 ;;
    --summary-only) SUMMARY_ONLY=1 ;;
    --no-netns) NETNS=0 ;;
    --no-lo) LO=0 ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,45p' "$0"; exit 0 ;;
    -*) echo "tcp.sh: unknown option $1" >&2; exit 1 ;;
    *) OUT=$1 ;;
    esac
    shift
done
OUT=${OUT:-$REPO/target/tcp-bench}
RUNS=${TCP_RUNS:-3}
MODES=${TCP_MODES:-poll block thread signal}
QUIET_WAIT=${TCP_QUIET_WAIT:-600}
TIMEOUT=${TCP_TIMEOUT:-300}
T=$REPO/target/release/tocsin
NSEXEC=$REPO/scripts/cluster/nsexec
NETNS_SH=$REPO/scripts/cluster/netns.sh
if [ $FULL = 1 ]; then
    PP_ARGS="--rounds 3"
    OV_ARGS="--sizes 32K,256K,1M,4M,16M --compute 10,50,200,1000,5000 --reps 20"
else
    PP_ARGS="--rounds 1"
    OV_ARGS="--sizes 256K,1M,4M --compute 200,1000,5000 --reps 10"
fi
IDLE_ARGS="--reps 5"

die() { echo "tcp.sh: error: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }
summary() {
    python3 - "$OUT" <<'PYEOF'
import glob, json, os, re, statistics, sys

out = sys.argv[1]
def load(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return None
def med(v):
    return statistics.median(v) if v else None
def cpu():
    try:
        for l in open(f"{out}/lscpu.txt"):
            if l.startswith("Model name:"):
                return l.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"
def fmt(x, nd=2):
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.{nd}f}"
def sz(b):
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB" if b >= 1024 else f"{b} B"

MODES = ["poll", "block", "thread", "signal"]
summary = {"cpu": cpu(), "topologies": {}}
disturbed = []
try:
    for l in open(f"{out}/runs.tsv"):
        f = l.rstrip("\n").split("\t")
        if len(f) >= 3 and f[2] in ("1", "failed"):
            disturbed.append(f[0])
except OSError:
    pass
for meta in glob.glob(f"{out}/*/*/peers/meta.json"):
    m = load(meta) or {}
    for r in m.get("runs", []):
        if r.get("foreign_cpu_pct", 0) > 10 or r.get("steal_pct", 0) > 5:
            disturbed.append(f'{os.path.relpath(meta, out)}: {r["impl"]} {r["bench"]} '
                             f'(others {r["foreign_cpu_pct"]}%, steal {r["steal_pct"]}%)')

print(f"# TCP benchmarks ({summary['cpu']}, {os.cpu_count()} CPUs; JSON in {out})")
print()
names = {"openmpi": "Open MPI 4.1.4 (ob1, btl tcp)", "mpich": "MPICH 4.0.2 (ch4:ucx, UCX_TLS=tcp)"}
for topo, title in (("lo", "one host, TCP over loopback"), ("netns", "two namespace hosts h1/h2 (veth + bridge)")):
    runs = sorted(glob.glob(f"{out}/{topo}/run*"))
    if not runs:
        continue
    T = summary["topologies"].setdefault(topo, {})
    # pingpong: impl -> bytes -> [values per run]
    lat, bw = {}, {}
    for rd in runs:
        docs = {}
        for impl in ("openmpi", "mpich"):
            docs[names[impl]] = load(f"{rd}/peers/{impl}-pingpong.json")
        for m in MODES:
            docs[f"tocsin {m}"] = load(f"{rd}/tocsin-{m}-pingpong.json")
        for k, d in docs.items():
            if not d:
                continue
            for r in d["results"]:
                lat.setdefault(k, {}).setdefault(r["bytes"], []).append(r["latency_us"])
                bw.setdefault(k, {}).setdefault(r["bytes"], []).append(r["bandwidth_MBps"])
    impls = [f"tocsin {m}" for m in MODES if f"tocsin {m}" in lat] + [names[i] for i in ("openmpi", "mpich") if names[i] in lat]
    print(f"## {title}: ping-pong ({len(runs)} alternated runs; median of runs, [min–max])")
    print()
    cols = [0, 8, 1024, 65536, 1 << 20, 4 << 20]
    print("| one-way latency, µs | " + " | ".join(sz(c) for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for k in impls:
        cells = []
        for c in cols:
            v = lat[k].get(c, [])
            cells.append(fmt(med(v), 2 if c < 65536 else 1) + (f" [{fmt(min(v))}–{fmt(max(v))}]" if c == 8 and v else ""))
        print(f"| {k} | " + " | ".join(cells) + " |")
    print()
    cols = [65536, 262144, 1 << 20, 2 << 20, 4 << 20]
    print("| bandwidth, MB/s | " + " | ".join(sz(c) for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for k in impls:
        cells = []
        for c in cols:
            v = bw[k].get(c, [])
            cells.append(fmt(med(v), 0) + (f" [{fmt(min(v), 0)}–{fmt(max(v), 0)}]" if c == 4 << 20 and v else ""))
        print(f"| {k} | " + " | ".join(cells) + " |")
    print()
    o, mp = names["openmpi"], names["mpich"]
    print("| target | " + " | ".join(k for k in impls if k.startswith("tocsin")) + " |")
    print("|---" * (1 + sum(k.startswith("tocsin") for k in impls)) + "|")
    for label, tab, b, better in (("8 B latency ÷ Open MPI's (≤ 1 wanted)", lat, 8, "low"),
                                  ("8 B latency ÷ MPICH's", lat, 8, "low"),
                                  ("4 MiB bandwidth ÷ Open MPI's (≥ 1 wanted)", bw, 4 << 20, "high"),
                                  ("4 MiB bandwidth ÷ MPICH's", bw, 4 << 20, "high")):
        ref = o if "Open" in label else mp
        r0 = med(tab.get(ref, {}).get(b, []))
        cells = []
        for k in impls:
            if not k.startswith("tocsin"):
                continue
            v = med(tab[k].get(b, []))
            cells.append(f"{v / r0:.2f}" if v and r0 else "-")
            T.setdefault("ratios", {}).setdefault(k, {})[label] = round(v / r0, 3) if v and r0 else None
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    T["latency_us"] = {k: {str(b): v for b, v in d.items()} for k, d in lat.items()}
    T["bandwidth_MBps"] = {k: {str(b): v for b, v in d.items()} for k, d in bw.items()}

    # overlap and idle
    g = f"{out}/{topo}/grid"
    ov = {}
    for impl in ("openmpi", "mpich"):
        d = load(f"{g}/peers/{impl}-overlap.json")
        if d:
            ov[names[impl]] = d
    for m in MODES:
        d = load(f"{g}/tocsin-{m}-overlap.json")
        if d:
            ov[f"tocsin {m}"] = d
    if ov:
        for side in ("receiver", "sender"):
            pts = sorted({(r["bytes"], r["compute_us"]) for d in ov.values() for r in d["results"] if r["side"] == side})
            sizes = sorted({p[0] for p in pts})
            comps = sorted({p[1] for p in pts})
            print(f"## {title}: overlap, {side} side computes (overlap % at compute {'/'.join(map(str, comps))} µs; "
                  f"tocsin: [time taken from the computation ÷ T_comm, %])")
            print()
            print("| | " + " | ".join(f"{sz(s)} (T_comm µs)" for s in sizes) + " |")
            print("|---" * (len(sizes) + 1) + "|")
            for k in [i for i in [f"tocsin {m}" for m in MODES] + [names["openmpi"], names["mpich"]] if i in ov]:
                rows = [r for r in ov[k]["results"] if r["side"] == side]
                cells = []
                for s in sizes:
                    rs = sorted((r for r in rows if r["bytes"] == s), key=lambda r: r["compute_us"])
                    if not rs:
                        cells.append("-")
                        continue
                    c = "/".join(f'{r["overlap_pct"]:.0f}' for r in rs) + f' ({rs[0]["comm_us"]:.0f})'
                    if rs[0].get("stolen_us") is not None and rs[0]["comm_us"] > 0:
                        c += " [" + "/".join(f'{100 * r["stolen_us"] / r["comm_us"]:.0f}' for r in rs) + "]"
                    cells.append(c)
                    T.setdefault("overlap", {}).setdefault(k, {}).setdefault(side, {})[str(s)] = [
                        {"compute_us": r["compute_us"], "overlap_pct": r["overlap_pct"], "comm_us": r["comm_us"],
                         "total_us": r["total_us"], "stolen_us": r.get("stolen_us")} for r in rs]
                print(f"| {k} | " + " | ".join(cells) + " |")
            print()
    idle = {}
    for impl in ("openmpi", "mpich"):
        d = load(f"{g}/peers/{impl}-idle.json")
        if d:
            idle[names[impl]] = d
    for m in MODES:
        d = load(f"{g}/tocsin-{m}-idle.json")
        if d:
            idle[f"tocsin {m}"] = d
    if idle:
        print(f"## {title}: CPU of a rank blocked 200 ms in a receive (median of {len(next(iter(idle.values()))['results'])})")
        print()
        print("| | CPU ms | wall ms | target < 2 ms (block, signal) |")
        print("|---|---|---|---|")
        for k in [i for i in [f"tocsin {m}" for m in MODES] + [names["openmpi"], names["mpich"]] if i in idle]:
            c = med([r["cpu_ms"] for r in idle[k]["results"]])
            w = med([r["wall_ms"] for r in idle[k]["results"]])
            verdict = ("met" if c < 2 else "not met") if k in ("tocsin block", "tocsin signal") else ""
            print(f"| {k} | {c:.2f} | {w:.1f} | {verdict} |")
            T.setdefault("idle_cpu_ms", {})[k] = c
        print()

shm = sorted(glob.glob(f"{out}/shm/run*"))
if shm:
    print("## shared memory, tocsin poll, same session (one-way µs at 8 B, MB/s at 1 and 4 MiB)")
    print()
    print("| run | " + " | ".join(["this build 8 B", "1 MiB", "4 MiB", "base 8 B", "1 MiB", "4 MiB"]) + " |")
    print("|---" * 7 + "|")
    S = summary.setdefault("shm", [])
    for rd in shm:
        row = []
        for who in ("tocsin", "base"):
            d = load(f"{rd}/{who}-poll-pingpong.json")
            by = {r["bytes"]: r for r in d["results"]} if d else {}
            row += [fmt(by[8]["latency_us"], 3) if 8 in by else "-",
                    fmt(by[1 << 20]["bandwidth_MBps"], 0) if 1 << 20 in by else "-",
                    fmt(by[4 << 20]["bandwidth_MBps"], 0) if 4 << 20 in by else "-"]
        S.append(row)
        print(f"| {os.path.basename(rd)} | " + " | ".join(row) + " |")
    print()
if disturbed:
    print("Disturbed runs (other processes > 10% of the CPUs, or steal > 5%; kept after retries):")
    for d in disturbed:
        print(f"- {d}")
else:
    print("No run was disturbed (other processes < 10% of the CPUs, steal < 5%).")
summary["disturbed"] = disturbed
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
PYEOF
}
if [ $SUMMARY_ONLY = 1 ]; then
    summary
    exit 0
fi
for c in python3 flock timeout mpiexec.hydra mpirun.openmpi; do
    command -v $c >/dev/null 2>&1 || die "'$c' not found (apt-get install python3 util-linux coreutils mpich openmpi-bin)"
done

if [ $BUILD = 1 ]; then
    say "cargo build --release -p tocsin-cli"
    (cd "$REPO" && cargo build --release -p tocsin-cli) >&2 || die "build failed"
fi
[ -x "$T" ] || die "$T missing (cargo build --release -p tocsin-cli)"

LOCK=/tmp/tocsin-bench-peers.lock
exec 9>>"$LOCK"
if ! flock -n 9; then
    say "another measurement holds $LOCK; waiting for it"
    flock -w 7200 9 || die "gave up waiting for $LOCK"
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ $LO = 0 ] || rm -rf "${OUT:?}"/lo "${OUT:?}"/shm
[ $NETNS = 0 ] || rm -rf "${OUT:?}"/netns
touch "$OUT/runs.tsv"
lscpu >"$OUT/lscpu.txt"

cpu_jiffies() { awk '/^cpu /{b=$2+$3+$4+$7+$8; t=b+$5+$6+$9; print b, t, $9; exit}' /proc/stat; }
busy_pct() {
    local b0 t0 b1 t1 s0 s1
    read -r b0 t0 s0 < <(cpu_jiffies); sleep 1; read -r b1 t1 s1 < <(cpu_jiffies)
    b1=$((b1 + s1 - s0))
    awk -v db=$((b1 - b0)) -v dt=$((t1 - t0)) 'BEGIN{printf "%.0f", dt ? 100*db/dt : 0}'
}
# Waits until the machine is quiet (3 quiet seconds in a row); 1 if it never was.
wait_quiet() {
    local start=$SECONDS b calm=0 said=0
    while :; do
        b=$(busy_pct)
        if [ "$b" -lt 10 ]; then calm=$((calm + 1)); else calm=0; fi
        [ $calm -ge 3 ] && return 0
        if [ $((SECONDS - start)) -ge "$QUIET_WAIT" ]; then
            echo "tcp.sh: warning: machine still ${b}% busy after ${QUIET_WAIT}s; measuring anyway (flagged disturbed)" >&2
            return 1
        fi
        if [ $said = 0 ] && [ "$b" -ge 10 ]; then
            echo "tcp.sh: machine ${b}% busy with other work ($(ps -eo pcpu,comm --sort=-pcpu | sed -n '2,4p' | awk '{printf "%s %s%%; ", $2, $1}')); waiting..." >&2
            said=1
        fi
    done
}

# tocsin_run LABEL OUTJSON ENV… -- CMD…: runs a tocsin benchmark, keeps its JSON, records
# whether it was disturbed (tocsin bench measures other processes' CPU itself); retried
# once after waiting for calm if it was.
tocsin_run() {
    local label=$1 out=$2 envs=() attempt=0 dist
    shift 2
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    while :; do
        attempt=$((attempt + 1))
        wait_quiet || true
        say "$label: ${envs[*]} $*"
        if ! timeout "$TIMEOUT" env "${envs[@]}" "$@" >"$out.raw" 2>"$out.err"; then
            tail -n 5 "$out.err" >&2
            if [ $attempt -lt 2 ]; then
                say "$label failed or timed out (log: $out.err); retrying once"
                continue
            fi
            echo "tcp.sh: warning: $label failed twice (log: $out.err); no result" >&2
            printf '%s\t%s\t%s\t%s\n' "$label" "$out" "failed" "${envs[*]} $*" >>"$OUT/runs.tsv"
            return 0
        fi
        grep '^{"impl"' "$out.raw" >"$out" || { cat "$out.raw" >&2; die "$label printed no JSON"; }
        rm -f "$out.raw"
        dist=0
        grep -q "numbers disturbed" "$out.err" && dist=1
        if [ $dist = 1 ] && [ $attempt -lt 2 ]; then
            say "$label was disturbed ($(grep -o 'other processes used [0-9]*%' "$out.err" | head -1)); retrying"
            continue
        fi
        printf '%s\t%s\t%s\t%s\n' "$label" "$out" "$dist" "${envs[*]} $*" >>"$OUT/runs.tsv"
        return 0
    done
}

# peers_run DIR BENCHES [netns]: MPICH and Open MPI over TCP through bench/peers/run.sh
peers_run() {
    local dir=$1 benches=$2 hosts=${3:-}
    say "peers ($benches${hosts:+, $hosts}) -> $dir"
    wait_quiet || true
    PEERS_LOCK_HELD=1 PEERS_TRANSPORT=tcp PEERS_TCP_IF=lo PEERS_HOSTS=$hosts PEERS_BENCHES="$benches" \
        PEERS_QUIET_WAIT="$QUIET_WAIT" PEERS_RETRIES=1 PEERS_TIMEOUT="$TIMEOUT" \
        PEERS_PINGPONG_ARGS="--max-bytes 4M $PP_ARGS" PEERS_OVERLAP_ARGS="$OV_ARGS" PEERS_IDLE_ARGS="$IDLE_ARGS" \
        bash "$HERE/peers/run.sh" "$dir" >&2 || die "bench/peers/run.sh failed ($dir/logs)"
    printf '%s\t%s\t%s\t%s\n' "peers $benches $hosts" "$dir" "see meta.json" "bench/peers/run.sh" >>"$OUT/runs.tsv"
}

topology() { # topology lo|netns
    local topo=$1 r m order dir
    for r in $(seq 1 "$RUNS"); do
        dir=$OUT/$topo/run$r
        mkdir -p "$dir"
        order="peers tocsin"
        [ $((r % 2)) = 0 ] && order="tocsin peers"
        for who in $order; do
            if [ $who = peers ]; then
                peers_run "$dir/peers" pingpong "$([ "$topo" = netns ] && echo netns)"
            else
                for m in $MODES; do
                    tocsin_bench "$topo" "$m" pingpong "$dir/tocsin-$m-pingpong.json" \
                        --max-size 4M $PP_ARGS
                done
                if [ "$topo" = lo ]; then
                    mkdir -p "$OUT/shm/run$r"
                    tocsin_run "shm tocsin poll pingpong run $r" "$OUT/shm/run$r/tocsin-poll-pingpong.json" \
                        TOCSIN_PROGRESS=poll -- "$T" bench pingpong --max-size 4M $PP_ARGS --json --quiet
                    if [ -n "${TCP_SHM_BASE:-}" ]; then
                        tocsin_run "shm base poll pingpong run $r" "$OUT/shm/run$r/base-poll-pingpong.json" \
                            TOCSIN_PROGRESS=poll -- "$TCP_SHM_BASE" bench pingpong --max-size 4M $PP_ARGS --json --quiet
                    fi
                fi
            fi
        done
    done
    dir=$OUT/$topo/grid
    mkdir -p "$dir"
    peers_run "$dir/peers" "overlap idle" "$([ "$topo" = netns ] && echo netns)"
    for m in $MODES; do
        tocsin_bench "$topo" "$m" overlap "$dir/tocsin-$m-overlap.json" $OV_ARGS
        tocsin_bench "$topo" "$m" idle "$dir/tocsin-$m-idle.json" $IDLE_ARGS
    done
}

# tocsin_bench TOPO MODE BENCH OUT ARGS…
tocsin_bench() {
    local topo=$1 m=$2 b=$3 out=$4
    shift 4
    case $topo in
    lo)
        tocsin_run "lo tocsin $m $b" "$out" TOCSIN_NOLOCAL=1 TOCSIN_TCP_IF=lo TOCSIN_PROGRESS="$m" -- \
            "$T" bench "$b" --progress "$m" "$@" --json --quiet
        ;;
    netns)
        tocsin_run "netns tocsin $m $b" "$out" TOCSIN_PROGRESS="$m" -- \
            mpiexec.hydra -launcher ssh -launcher-exec "$NSEXEC" -hosts h1,h2 -ppn 1 -n 2 \
            "$HERE/peers/bind-rank" "$T" bench "$b" "$@" --json --quiet
        ;;
    esac
}

say "output: $OUT ($(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs)"
[ $LO = 0 ] || topology lo
if [ $NETNS = 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "tcp.sh: not root: the namespace hosts cannot be made; netns topology skipped" >&2
    else
        exec 8>>/tmp/tocsin-cluster-netns.lock
        say "waiting for /tmp/tocsin-cluster-netns.lock (tests using the namespace hosts)"
        flock -w 3600 8 || die "gave up waiting for /tmp/tocsin-cluster-netns.lock"
        "$NETNS_SH" start || die "scripts/cluster/netns.sh start failed"
        trap '"$NETNS_SH" stop || true' EXIT
        topology netns
        "$NETNS_SH" stop || true
        trap - EXIT
        flock -u 8
    fi
fi

summary | tee "$OUT/summary.md"
