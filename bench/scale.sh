#!/usr/bin/env bash
# Node scale: start-up time, shared-memory footprint, point-to-point cases and jacobi for
# jobs of many ranks on this machine (oversubscribed, `block` mode by default).
#
# usage: bench/scale.sh [N…]            (default: 64 128 256 512 1024)
#
# For each N, with T=target/release (build first: cargo build --release -p tocsin-cli):
#   start-up : wall time of `tocsin run -n N -- tocsin-testrank hold --secs 0` (median of 3)
#   footprint: the node segment's size as mapped (virtual: `64 + 128·n + n·inbox +
#              n·k·(64 + ring)`, from the layout) and as touched: the largest rise of
#              `Shmem:` in /proc/meminfo while `hold --secs 3` runs (memfd pages in use)
#   p2p      : `tocsin-testrank wildcards` (every rank is the root in turn: O(n²) messages
#              and barriers, so only up to SCALE_WILDCARDS_MAX=256 ranks) and
#              `random --total 4000` on N ranks (ok / FAIL)
#   jacobi   : `jacobi --nx 512 --ny 512 --iters 100 --check`, the solve time rank 0 prints
# Environment: SCALE_MODE (block), SCALE_JACOBI=0 to skip jacobi, SCALE_P2P=0 to skip p2p.
set -euo pipefail
cd "$(dirname "$0")/.."
T=target/release
MODE=${SCALE_MODE:-block}
export TOCSIN_PROGRESS=$MODE
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(64 128 256 512 1024)
ulimit -n 65536 2>/dev/null || true
ulimit -u unlimited 2>/dev/null || true

# The node segment's mapped size for n ranks with the default layout (transport/shm docs):
# 64 + 128·n + n·(128 + 64·⌈n/512⌉ + 128·256) + n·k·(64 + cap), k = n − 1 up to 33 ranks
# else 32, cap = 4 MiB / k rounded down to a power of two in 64 KiB..1 MiB.
seg_mib() {
    python3 -c '
import sys
n = int(sys.argv[1]); k = n - 1 if n - 1 <= 32 else 32
cap = 1 << ((4 << 20) // max(k, 1)).bit_length() - 1
cap = min(max(cap, 64 << 10), 1 << 20)
inbox = 128 + 64 * (-(-n // 512)) + 128 * 256
print("%.1f" % ((64 + 128 * n + n * inbox + n * k * (64 + cap)) / 2**20))' "$1"
}
shmem_kib() { awk '/^Shmem:/ {print $2}' /proc/meminfo; }
now() { date +%s.%N; }

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, mode $MODE, $(date -u +%FT%TZ)"
printf '%-6s %-22s %-14s %-14s %-10s %-10s %s\n' ranks "start-up s (3 runs)" "segment MiB" "touched MiB" wildcards random "jacobi s"
for n in "${sizes[@]}"; do
    ts=()
    for _ in 1 2 3; do
        t0=$(now)
        $T/tocsin run -n "$n" -- $T/tocsin-testrank --timeout 300 hold --secs 0 >/dev/null 2>&1 || { ts+=(FAIL); continue; }
        ts+=("$(echo "$(now) - $t0" | bc -l | xargs printf '%.2f')")
    done
    seg=$(seg_mib "$n")
    base=$(shmem_kib)
    $T/tocsin run -n "$n" -- $T/tocsin-testrank --timeout 300 hold --secs 3 >/dev/null 2>&1 &
    pid=$!
    peak=$base
    while kill -0 $pid 2>/dev/null; do
        s=$(shmem_kib); [ "$s" -gt "$peak" ] && peak=$s
        sleep 0.1
    done
    wait $pid || true
    touched=$(echo "($peak - $base) / 1024" | bc -l | xargs printf '%.1f')
    w=skip; r=skip; j=skip
    if [ "${SCALE_P2P:-1}" = 1 ]; then
        if [ "$n" -le "${SCALE_WILDCARDS_MAX:-256}" ]; then
            $T/tocsin run -n "$n" -- $T/tocsin-testrank --timeout 600 wildcards >/dev/null 2>&1 && w=ok || w=FAIL
        fi
        $T/tocsin run -n "$n" -- $T/tocsin-testrank --timeout 600 random --total 4000 >/dev/null 2>&1 && r=ok || r=FAIL
    fi
    if [ "${SCALE_JACOBI:-1}" = 1 ]; then
        j=$($T/tocsin run -n "$n" -- $T/jacobi --nx 512 --ny 512 --iters 100 --check 2>&1 | tr -d '\r' | awk '/^check: max abs/ {ok = ($NF == "PASSED")} /^solve:/ {t = $2} END {print (ok ? t : "FAIL")}')
        [ -z "$j" ] && j=FAIL
    fi
    printf '%-6s %-22s %-14s %-14s %-10s %-10s %s\n' "$n" "${ts[*]}" "$seg" "$touched" "$w" "$r" "$j"
done
