#!/usr/bin/env bash
# Reference measurements of MPICH and Open MPI on this machine, to compare with
# `tocsin bench`: ping-pong latency/bandwidth, MadMPI-style overlap (sender and
# receiver side), CPU used while blocked in a receive.
#
# usage: bench/peers/run.sh [OUTDIR]          (default OUTDIR: <repo>/target/peers)
#
# Builds pingpong.c, overlap.c, idle.c with mpicc.mpich and mpicc.openmpi into
# OUTDIR/bin, runs each with 2 ranks on this host bound to distinct cores:
#   MPICH   : mpiexec.mpich -n 2 -bind-to core BIN --json
#   Open MPI: mpirun.openmpi -n 2 --bind-to core --mca pml ob1 --mca btl self,vader
#             [--allow-run-as-root when uid 0] BIN --json
# and writes OUTDIR/{mpich,openmpi}-{pingpong,overlap,idle}.json, OUTDIR/meta.json
# (machine, versions, exact commands, CPU used by other processes and CPU
# time stolen by the hypervisor during each run), launcher stderr in OUTDIR/logs/, and prints a summary table.
#
# Environment knobs:
#   PEERS_IMPLS="mpich openmpi"   which libraries to run (both by default)
#   PEERS_PINGPONG_ARGS="--rounds 5"     extra arguments per benchmark
#   PEERS_OVERLAP_ARGS="--reps 50"
#   PEERS_IDLE_ARGS=""
#   PEERS_QUIET_WAIT=60   seconds to wait for the machine to be idle (< 10% busy)
#                         before each library's runs; then run anyway, with a warning
#   PEERS_TIMEOUT=300     per-run time limit, seconds
#   PEERS_LOCK=/tmp/tocsin-bench-peers.lock   runs on one machine are serialized
#                         with flock on this file (others measuring: wait)
#   PEERS_LOCK_HELD=      1: the caller already holds PEERS_LOCK (bench/tcp.sh); not taken again
#   PEERS_BENCHES="pingpong overlap idle"   which benchmarks to run (the summary needs all 3)
#   PEERS_RETRIES=2       re-run a benchmark (after waiting for calm) when other
#                         processes used > 10% of the CPUs or the hypervisor stole
#                         > 5% during it; the last attempt is kept, with a warning
#   PEERS_TRANSPORT=shm   shm (default, as above) or tcp: every message through TCP sockets
#                         MPICH   : MPIR_CVAR_NOLOCAL=1 UCX_TLS=tcp UCX_NET_DEVICES=IF
#                                   (UCX_LOG_LEVEL=info: the run fails unless UCX reports
#                                   tag(tcp/…) endpoints)
#                         Open MPI: --mca btl tcp,self --mca btl_tcp_if_include IF
#   PEERS_TCP_IF=lo       the interface IF of PEERS_TRANSPORT=tcp on this host (Open MPI
#                         excludes loopback by default, UCX's tcp ignores it unless named)
#   PEERS_HOSTS=          empty: both ranks on this host; netns: one rank on each namespace
#                         host h1, h2 of scripts/cluster/netns.sh (start them first, and hold
#                         /tmp/tocsin-cluster-netns.lock so that tests do not stop them),
#                         PEERS_TRANSPORT=tcp implied, interface eth0 / the hosts' subnet:
#                         MPICH   : mpiexec.hydra -launcher ssh -launcher-exec nsexec
#                                   -hosts h1,h2 -ppn 1 -n 2 bind-rank BIN
#                         Open MPI: mpirun.openmpi -n 2 --host h1,h2 --bind-to none
#                                   --mca plm_rsh_agent nsexec (oob and btl on the subnet)
#                                   bind-rank BIN
#                         (bind-rank binds rank r to CPU r: the hosts share this machine's
#                         CPUs, and each host's launcher would bind its one rank to CPU 0)
# Exit status: 0 ok; 1 a tool is missing, a build or a run failed, or a JSON
# output is malformed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUTDIR=${1:-$REPO/target/peers}
IMPLS=${PEERS_IMPLS:-mpich openmpi}
PINGPONG_ARGS=${PEERS_PINGPONG_ARGS:---rounds 5}
OVERLAP_ARGS=${PEERS_OVERLAP_ARGS:---reps 50}
IDLE_ARGS=${PEERS_IDLE_ARGS:-}
QUIET_WAIT=${PEERS_QUIET_WAIT:-60}
TIMEOUT=${PEERS_TIMEOUT:-300}
RETRIES=${PEERS_RETRIES:-2}
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
BENCHES=${PEERS_BENCHES:-pingpong overlap idle}
TRANSPORT=${PEERS_TRANSPORT:-shm}
TCP_IF=${PEERS_TCP_IF:-lo}
HOSTS_MODE=${PEERS_HOSTS:-}
NSEXEC=$REPO/scripts/cluster/nsexec
NETNS_NET=${TOCSIN_NETNS_NET:-10.77.0}
CFLAGS="-O2 -std=c11 -Wall -Wextra"

die() { echo "run.sh: error: $*" >&2; exit 1; }
need() {
    command -v "$1" >/dev/null 2>&1 ||
        die "'$1' not found in PATH ($2). On Debian/Ubuntu: apt-get install $3"
}

need python3 "used to check the JSON outputs and print the summary" python3
need timeout "coreutils" coreutils
need flock "util-linux" util-linux
for impl in $IMPLS; do
    case $impl in
    mpich)
        need mpicc.mpich "MPICH C compiler wrapper" "mpich libmpich-dev"
        if command -v mpiexec.mpich >/dev/null 2>&1; then :;
        elif command -v mpiexec.hydra >/dev/null 2>&1; then :;
        else die "neither 'mpiexec.mpich' nor 'mpiexec.hydra' found (MPICH launcher). On Debian/Ubuntu: apt-get install mpich"; fi
        ;;
    openmpi)
        need mpicc.openmpi "Open MPI C compiler wrapper" "openmpi-bin libopenmpi-dev"
        need mpirun.openmpi "Open MPI launcher" openmpi-bin
        ;;
    *) die "unknown implementation '$impl' in PEERS_IMPLS (expected: mpich openmpi)" ;;
    esac
done
case $HOSTS_MODE in
"") ;;
netns)
    TRANSPORT=tcp
    "$REPO/scripts/cluster/netns.sh" status >/dev/null 2>&1 ||
        die "PEERS_HOSTS=netns: the namespace hosts are not running (scripts/cluster/netns.sh start)"
    ;;
*) die "unknown PEERS_HOSTS '$HOSTS_MODE' (expected: empty or netns)" ;;
esac
case $TRANSPORT in
shm | tcp) ;;
*) die "unknown PEERS_TRANSPORT '$TRANSPORT' (expected: shm or tcp)" ;;
esac
[ "$(nproc)" -ge 2 ] || echo "run.sh: warning: only $(nproc) CPU(s); the 2 ranks will share a core" >&2

# One measurement at a time on this machine: two concurrent runs (even into
# different OUTDIRs) would disturb each other and share files.
LOCK=${PEERS_LOCK:-/tmp/tocsin-bench-peers.lock}
exec 9>>"$LOCK"
if [ "${PEERS_LOCK_HELD:-}" = 1 ]; then
    : # the caller holds it (a second flock here, on another open file, would wait forever)
elif ! flock -n 9; then
    echo "run.sh: another bench/peers run holds $LOCK; waiting for it (up to ${TIMEOUT}s x 6)..." >&2
    flock -w $((TIMEOUT * 6)) 9 || die "gave up waiting for $LOCK"
fi

mkdir -p "$OUTDIR/bin" "$OUTDIR/logs"
OUTDIR=$(cd "$OUTDIR" && pwd)
RUNS_TSV="$OUTDIR/logs/runs.tsv"
: >"$RUNS_TSV"

launcher() { # prints the launch command (one word per line) for $1
    case $1 in
    mpich)
        local l=mpiexec.mpich
        command -v $l >/dev/null 2>&1 || l=mpiexec.hydra
        if [ "$HOSTS_MODE" = netns ]; then
            printf '%s\n' env MPIR_CVAR_NOLOCAL=1 UCX_TLS=tcp UCX_NET_DEVICES=eth0 \
                mpiexec.hydra -launcher ssh -launcher-exec "$NSEXEC" -hosts h1,h2 -ppn 1 -n 2 \
                "$HERE/bind-rank"
        elif [ "$TRANSPORT" = tcp ]; then
            printf '%s\n' env MPIR_CVAR_NOLOCAL=1 UCX_TLS=tcp "UCX_NET_DEVICES=$TCP_IF" \
                "$l" -n 2 -bind-to core
        else
            printf '%s\n' "$l" -n 2 -bind-to core
        fi
        ;;
    openmpi)
        if [ "$HOSTS_MODE" = netns ]; then
            printf '%s\n' mpirun.openmpi -n 2 --host h1,h2 --bind-to none --mca plm_rsh_agent "$NSEXEC" \
                --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include "$NETNS_NET.0/24" \
                --mca oob_tcp_if_include "$NETNS_NET.0/24"
        elif [ "$TRANSPORT" = tcp ]; then
            printf '%s\n' mpirun.openmpi -n 2 --bind-to core --mca pml ob1 --mca btl tcp,self \
                --mca btl_tcp_if_include "$TCP_IF"
        else
            printf '%s\n' mpirun.openmpi -n 2 --bind-to core --mca pml ob1 --mca btl self,vader
        fi
        [ "$(id -u)" -ne 0 ] || printf '%s\n' --allow-run-as-root
        [ "$HOSTS_MODE" != netns ] || printf '%s\n' "$HERE/bind-rank"
        ;;
    esac
}

# jiffies (all CPUs): "busy total steal" (steal: time the hypervisor ran something
# else on our vCPUs; it is in neither busy nor a process's CPU time)
cpu_jiffies() { awk '/^cpu /{b=$2+$3+$4+$7+$8; t=b+$5+$6+$9; print b, t, $9; exit}' /proc/stat; }
# percentage of all CPUs busy over the next second
busy_pct() {
    local b0 t0 b1 t1 s0 s1
    read -r b0 t0 s0 < <(cpu_jiffies); sleep 1; read -r b1 t1 s1 < <(cpu_jiffies)
    b1=$((b1 + s1 - s0)) # stolen time counts as busy here
    awk -v db=$((b1 - b0)) -v dt=$((t1 - t0)) 'BEGIN{printf "%.0f", dt ? 100*db/dt : 0}'
}
wait_quiet() {
    local start=$SECONDS b
    while :; do
        b=$(busy_pct)
        [ "$b" -lt 10 ] && return 0
        if [ $((SECONDS - start)) -ge "$QUIET_WAIT" ]; then
            echo "run.sh: warning: machine still ${b}% busy after ${QUIET_WAIT}s; measuring anyway (numbers will be disturbed)" >&2
            return 0
        fi
        echo "run.sh: machine ${b}% busy with other work; waiting for it to calm down..." >&2
        sleep 2
    done
}
# children CPU seconds (user+sys) of this shell so far, into variable $1
# (`times` must run in this shell, not in a $(...) subshell)
TIMES_TMP="$OUTDIR/logs/.times"
children_cpu() {
    times >"$TIMES_TMP"
    printf -v "$1" '%s' "$(awk 'NR==2{ s=0; for(i=1;i<=2;i++){ split($i,a,/[ms]/); s+=a[1]*60+a[2] } printf "%.2f", s }' "$TIMES_TMP")"
}

echo "== building into $OUTDIR/bin"
for impl in $IMPLS; do
    cc=mpicc.$impl
    for b in pingpong overlap idle; do # all: the tcp check run uses pingpong
        $cc $CFLAGS -o "$OUTDIR/bin/$impl-$b" "$HERE/$b.c" 2>"$OUTDIR/logs/$impl-$b.build.log" ||
            { cat "$OUTDIR/logs/$impl-$b.build.log" >&2; die "build of $b.c with $cc failed"; }
    done
done

for impl in $IMPLS; do
    mapfile -t LAUNCH < <(launcher "$impl")
    if [ "$impl" = mpich ] && [ "$TRANSPORT" = tcp ]; then
        # A short check run with UCX_LOG_LEVEL=info, which names the transports of every
        # endpoint configuration (on stdout, so not in the measured runs)
        chk="$OUTDIR/logs/mpich-ucx-check"
        (cd "$OUTDIR" && UCX_LOG_LEVEL=info timeout "$TIMEOUT" "${LAUNCH[@]}" "$OUTDIR/bin/mpich-pingpong" \
            --max-bytes 1 --iters 10 --warmup 1) >"$chk.log" 2>&1 || { tail -n 20 "$chk.log" >&2; die "mpich check run failed"; }
        grep -h 'ep_cfg\[' "$chk.log" >"$chk.ep" || true
        grep -q 'tag(tcp/' "$chk.ep" || die "UCX did not report tcp endpoints (see $chk.log)"
        ! grep -v 'tag(tcp/' "$chk.ep" | grep -q . || die "UCX used another transport than tcp: $(cat "$chk.ep")"
        echo "== mpich: UCX endpoints $(sort -u <"$chk.ep" | sed 's/.*ep_cfg/ep_cfg/' | sort -u | tr '\n' ' ')"
    fi
    wait_quiet
    for b in $BENCHES; do
        case $b in
        pingpong) args=$PINGPONG_ARGS ;;
        overlap) args=$OVERLAP_ARGS ;;
        idle) args=$IDLE_ARGS ;;
        esac
        out="$OUTDIR/$impl-$b.json"
        log="$OUTDIR/logs/$impl-$b.err"
        # shellcheck disable=SC2086
        cmd=("${LAUNCH[@]}" "$OUTDIR/bin/$impl-$b" --json $args)
        attempt=0
        while :; do
            attempt=$((attempt + 1))
            echo "== $impl $b: ${cmd[*]}"
            read -r b0 t0 st0 < <(cpu_jiffies); children_cpu c0; w0=$(date +%s.%N)
            if ! (cd "$OUTDIR" && timeout "$TIMEOUT" "${cmd[@]}") >"$out.raw" 2>"$log"; then
                tail -n 20 "$log" >&2
                die "$impl $b failed (exit status above; full log: $log)"
            fi
            read -r b1 t1 st1 < <(cpu_jiffies); children_cpu c1; w1=$(date +%s.%N)
            # keep only the JSON document (a launcher may print other lines)
            grep '^{"impl"' "$out.raw" >"$out.tmp" || { cat "$out.raw" >&2; die "$impl $b printed no JSON"; }
            rm -f "$out.raw"
            mv -f "$out.tmp" "$out"
            python3 - "$out" "$b" <<'EOF' || die "$impl $b: malformed JSON in $out"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["bench"] == sys.argv[2] and isinstance(d["impl"], str) and d["results"], d
EOF
            # CPU used by other processes during the run (all busy CPU time minus
            # ours), and CPU time stolen by the hypervisor, in % of wall x CPUs
            busy_s=$(awk -v x=$((b1 - b0)) -v hz="$HZ" 'BEGIN{printf "%.2f", x/hz}')
            steal_s=$(awk -v x=$((st1 - st0)) -v hz="$HZ" 'BEGIN{printf "%.2f", x/hz}')
            wall_s=$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.2f", b-a}')
            disturbed=$(awk -v b="$busy_s" -v s="$steal_s" -v c0="$c0" -v c1="$c1" -v w="$wall_s" -v n="$NCPU" \
                'BEGIN{f=b-(c1-c0); if (f<0) f=0; print (w>0 && (100*f/(w*n) > 10 || 100*s/(w*n) > 5)) ? 1 : 0}')
            if [ "$disturbed" = 1 ] && [ "$attempt" -le "$RETRIES" ]; then
                echo "run.sh: $impl $b was disturbed by other processes or the hypervisor; waiting and retrying" >&2
                wait_quiet
                continue
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$impl" "$b" "$busy_s" "$c0 $c1" "$steal_s" "$wall_s" \
                "${cmd[*]}" >>"$RUNS_TSV"
            break
        done
    done
done

PEERS_BENCHES_EFFECTIVE=$BENCHES PEERS_TRANSPORT_EFFECTIVE=$TRANSPORT python3 - "$OUTDIR" "$RUNS_TSV" "$(nproc)" $IMPLS <<'EOF'
import json, os, platform, socket, subprocess, sys, time

outdir, runs_tsv, ncpu, impls = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()

runs, warnings = [], []
for line in open(runs_tsv):
    impl, bench, busy_s, cc, steal_s, wall_s, cmd = line.rstrip("\n").split("\t")
    c0, c1 = map(float, cc.split())
    busy, ours, wall = float(busy_s), c1 - c0, float(wall_s)
    foreign = max(0.0, busy - ours)
    pct = 100.0 * foreign / (wall * ncpu) if wall > 0 else 0.0
    spct = 100.0 * float(steal_s) / (wall * ncpu) if wall > 0 else 0.0
    runs.append({"impl": impl, "bench": bench, "command": cmd, "wall_s": wall,
                 "our_cpu_s": round(ours, 2), "foreign_cpu_s": round(foreign, 2),
                 "foreign_cpu_pct": round(pct, 1), "steal_s": float(steal_s),
                 "steal_pct": round(spct, 1)})
    if pct > 10:
        warnings.append(f"{impl} {bench}: other processes used {pct:.0f}% of the CPUs during the run")
    if spct > 5:
        warnings.append(f"{impl} {bench}: the hypervisor stole {spct:.0f}% of the vCPU time during the run")

meta = {"host": socket.gethostname(), "cpu": cpu_model(), "ncpu": ncpu,
        "transport": os.environ.get("PEERS_TRANSPORT_EFFECTIVE", "shm"),
        "hosts": os.environ.get("PEERS_HOSTS", "") or "this host",
        "kernel": platform.release(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": runs}
for impl in impls:
    try:
        meta[impl + "_impl"] = json.load(open(f"{outdir}/{impl}-pingpong.json"))["impl"]
    except (OSError, KeyError, ValueError):
        pass
json.dump(meta, open(f"{outdir}/meta.json", "w"), indent=1)
if set(os.environ.get("PEERS_BENCHES_EFFECTIVE", "").split()) < {"pingpong", "overlap", "idle"}:
    for wmsg in warnings:
        print("WARNING: " + wmsg + " (numbers disturbed; rerun on a quiet machine)")
    print(f"== done (benchmarks: {os.environ['PEERS_BENCHES_EFFECTIVE']}; no summary table; JSON in {outdir})")
    sys.exit(0)

def load(impl, bench):
    return json.load(open(f"{outdir}/{impl}-{bench}.json"))

def med(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])

rows, names = {}, []
for impl in impls:
    pp, ov, idle = load(impl, "pingpong"), load(impl, "overlap"), load(impl, "idle")
    names.append(pp["impl"])
    by = {r["bytes"]: r for r in pp["results"]}
    col = {}
    for b, label in ((0, "latency 0 B (us)"), (8, "latency 8 B (us)")):
        col[label] = f'{by[b]["latency_us"]:.3f}' if b in by else "-"
    for b, label in ((1 << 20, "bandwidth 1 MiB (MB/s)"), (2 << 20, "bandwidth 2 MiB (MB/s)"),
                     (4 << 20, "bandwidth 4 MiB (MB/s)")):
        col[label] = f'{by[b]["bandwidth_MBps"]:.0f}' if b in by else "-"
    for side in ("sender", "receiver"):
        rs = [r for r in ov["results"] if r["side"] == side and r["bytes"] == 1 << 20]
        if rs:
            ts = "/".join(str(r["compute_us"]) for r in rs)
            col[f"overlap {side} 1 MiB, comm_us"] = f'{rs[0]["comm_us"]:.1f}'
            col[f"overlap {side} 1 MiB, % at t={ts} us"] = "/".join(f'{r["overlap_pct"]:.0f}' for r in rs)
    w = med([r["wall_ms"] for r in idle["results"]])
    c = med([r["cpu_ms"] for r in idle["results"]])
    col["idle: cpu / wall ms (median)"] = f"{c:.0f} / {w:.0f} ({100 * c / w:.0f}%)"
    col["CPU used by others / stolen (max %)"] = (
        f'{max(r["foreign_cpu_pct"] for r in runs if r["impl"] == impl):.0f} / '
        f'{max(r["steal_pct"] for r in runs if r["impl"] == impl):.0f}')
    for k, v in col.items():
        rows.setdefault(k, {})[impl] = v

print()
print(f"== summary ({cpu_model()}, {ncpu} CPUs, transport {meta['transport']}, {meta['hosts']}; JSON in {outdir})")
w0 = max(len(k) for k in rows) + 2
w1 = max(18, *(len(n) + 2 for n in names), *(len(x) + 2 for v in rows.values() for x in v.values()))
print("".ljust(w0) + "".join(n.rjust(w1) for n in names))
for k, v in rows.items():
    print(k.ljust(w0) + "".join(v.get(i, "-").rjust(w1) for i in impls))
for wmsg in warnings:
    print("WARNING: " + wmsg + " (numbers disturbed; rerun on a quiet machine)")
EOF
