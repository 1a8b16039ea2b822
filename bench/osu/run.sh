#!/usr/bin/env bash
# The OSU Micro-Benchmarks 7.4 on tocsin (TOCSIN_PROGRESS=poll and signal), MPICH and Open MPI,
# on this machine: the documented full run behind docs/bench/osu/.
#
# usage: bench/osu/run.sh [OUTDIR]            (default OUTDIR: <repo>/docs/bench/osu)
#
# Builds what is missing with bench/osu/build.sh (tocsin needs `cargo build --release
# --workspace`), then runs, 2 ranks for point-to-point and 4 for collectives:
#   pt2pt       osu_latency osu_bw osu_bibw osu_mbw_mr osu_multi_lat osu_latency_mt
#   collectives osu_barrier osu_bcast osu_reduce osu_allreduce osu_gather osu_alltoall
#               osu_iallreduce
# with, per configuration (binding to cores when there are at least as many cores as ranks):
#   tocsin-poll    TOCSIN_PROGRESS=poll   target/mpi/bin/mpiexec -n N BIN   (tocsin run binds)
#   tocsin-signal  TOCSIN_PROGRESS=signal target/mpi/bin/mpiexec -n N BIN
#   mpich          mpiexec.mpich -n N [-bind-to core] BIN
#   openmpi        mpiexec.openmpi -n N --oversubscribe [--bind-to core] --mca pml ob1
#                  --mca btl self,vader [--allow-run-as-root when uid 0] BIN
# Runs alternate: for each round, for each benchmark, every configuration in turn, so that
# a disturbance of the machine hits all of them alike.
#
# Writes OUTDIR/raw/<config>/<bench>.<round>.txt (OSU's output), OUTDIR/meta.txt (date, CPU
# model from lscpu, kernel, versions, the exact commands, load), OUTDIR/results.json (every
# parsed value), OUTDIR/summary.md (a table of chosen sizes, median over rounds, with
# ratios to MPICH and Open MPI) and prints the summary.
#
# Environment:
#   OSU_CONFIGS="tocsin-poll tocsin-signal mpich openmpi"   which configurations
#   OSU_BENCHES="…"          which benchmarks (default: the 13 above)
#   OSU_ROUNDS=3             alternated rounds
#   OSU_PT2PT_ARGS=""        extra arguments of the point-to-point benchmarks (OSU defaults:
#                            sizes up to 4 MiB, 10000 iterations, 1000 above 8 KiB)
#   OSU_COLL_ARGS="-m 1:1048576 -i 200 -x 20"   of the blocking collectives
#   OSU_NBC_ARGS="-m 1:1048576 -i 50 -x 5"      of osu_iallreduce (4 ranks on 2 cores with
#                            busy-polling peers makes each iteration slow)
#   OSU_COLL_RANKS=4         ranks of the collectives (2: issue 8's allreduce target)
#   OSU_TIMEOUT=600          per-run limit, seconds; a run that exceeds it or fails is
#                            recorded as such (its value is missing) and the run goes on
#   OSU_LOCK=/tmp/tocsin-bench-peers.lock   shared with bench/peers/run.sh: one
#                            measurement at a time on this machine
# Duration: with OSU's default iterations the bandwidth benchmarks take about 1 min per run up
# to 4 MiB on this 2-vCPU VM, so 3 rounds x 4 configurations last about an hour; for a quick
# look: OSU_ROUNDS=1 OSU_PT2PT_ARGS="-m 1:1048576 -i 100 -x 10" OSU_COLL_ARGS="-m 1:1048576 -i 20 -x 5".
# Exit status: 0 every run succeeded; 1 a tool is missing or the build failed; 3 some runs
# failed or timed out (see OUTDIR/meta.txt and the raw files).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUTDIR=${1:-$REPO/docs/bench/osu}
CONFIGS=${OSU_CONFIGS:-tocsin-poll tocsin-signal mpich openmpi}
PT2PT="osu_latency osu_bw osu_bibw osu_mbw_mr osu_multi_lat osu_latency_mt"
COLL="osu_barrier osu_bcast osu_reduce osu_allreduce osu_gather osu_alltoall osu_iallreduce"
BENCHES=${OSU_BENCHES:-$PT2PT $COLL}
ROUNDS=${OSU_ROUNDS:-3}
PT2PT_ARGS=${OSU_PT2PT_ARGS:-}
COLL_ARGS=${OSU_COLL_ARGS:--m 1:1048576 -i 200 -x 20}
NBC_ARGS=${OSU_NBC_ARGS:--m 1:1048576 -i 50 -x 5}
TIMEOUT=${OSU_TIMEOUT:-600}
COLL_RANKS=${OSU_COLL_RANKS:-4}
NCPU=$(nproc)

die() {
  echo "run.sh: error: $*" >&2
  exit 1
}
command -v python3 >/dev/null 2>&1 || die "python3 is needed for the summary"
command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) is needed"

impls=()
for c in $CONFIGS; do
  case "$c" in
    tocsin-poll | tocsin-signal) i=tocsin ;;
    mpich)
      i=mpich
      command -v mpiexec.mpich >/dev/null 2>&1 || die "mpiexec.mpich not found (apt-get install mpich)"
      ;;
    openmpi)
      i=openmpi
      command -v mpiexec.openmpi >/dev/null 2>&1 || die "mpiexec.openmpi not found (bash scripts/setup.sh --peers)"
      ;;
    *) die "unknown configuration '$c' (expected tocsin-poll tocsin-signal mpich openmpi)" ;;
  esac
  case " ${impls[*]-} " in *" $i "*) ;; *) impls+=("$i") ;; esac
done
bash "$HERE/build.sh" "${impls[@]}"

LOCK=${OSU_LOCK:-/tmp/tocsin-bench-peers.lock}
exec 9>>"$LOCK"
if ! flock -n 9; then
  echo "run.sh: another measurement holds $LOCK; waiting for it..." >&2
  flock 9
fi

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
rm -rf "$OUTDIR/raw"
mkdir -p "$OUTDIR/raw"
META=$OUTDIR/meta.txt

# The launch command of configuration $1 for $2 ranks, one word per line.
launch() {
  local cfg=$1 n=$2
  case "$cfg" in
    tocsin-*)
      printf '%s\n' env "TOCSIN_PROGRESS=${cfg#tocsin-}" "$REPO/target/mpi/bin/mpiexec" -n "$n"
      ;;
    mpich)
      printf '%s\n' mpiexec.mpich -n "$n"
      [ "$n" -gt "$NCPU" ] || printf '%s\n' -bind-to core
      ;;
    openmpi)
      printf '%s\n' mpiexec.openmpi -n "$n" --oversubscribe --mca pml ob1 --mca btl self,vader
      [ "$n" -gt "$NCPU" ] || printf '%s\n' --bind-to core
      [ "$(id -u)" -ne 0 ] || printf '%s\n' --allow-run-as-root
      ;;
  esac
}
ranks_of() { case " $PT2PT " in *" $1 "*) echo 2 ;; *) echo "$COLL_RANKS" ;; esac }
args_of() {
  case "$1" in
    osu_barrier) echo "$COLL_ARGS" | sed 's/-m *[^ ]*//' ;; # no message size
    osu_iallreduce) echo "$NBC_ARGS" ;;
    *) case " $PT2PT " in *" $1 "*) echo "$PT2PT_ARGS" ;; *) echo "$COLL_ARGS" ;; esac ;;
  esac
}

{
  echo "# OSU Micro-Benchmarks 7.4: tocsin, MPICH, Open MPI on one machine"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -n); kernel $(uname -r); $NCPU CPUs"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
  echo "tocsin: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "mpich: $(mpichversion 2>/dev/null | head -n1 | tr -s ' ' || echo n/a)"
  echo "openmpi: $(ompi_info --version 2>/dev/null | head -n1 || echo n/a)"
  echo "rounds: $ROUNDS; configurations: $CONFIGS"
  echo "commands:"
  for c in $CONFIGS; do
    for n in 2 "$COLL_RANKS"; do echo "  $c ($n ranks): $(launch "$c" "$n" | tr '\n' ' ')BIN ARGS"; done
  done
  for b in $BENCHES; do echo "  $b: $(ranks_of "$b") ranks, ARGS: $(args_of "$b")"; done
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "## lscpu"
  lscpu
  echo
  echo "## runs (config bench round: status seconds)"
} >"$META"

failures=0
t_all=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
  for b in $BENCHES; do
    n=$(ranks_of "$b")
    read -r -a bargs <<<"$(args_of "$b")"
    for c in $CONFIGS; do
      impl=${c%%-*}
      mkdir -p "$OUTDIR/raw/$c"
      out=$OUTDIR/raw/$c/$b.$round.txt
      mapfile -t cmd < <(launch "$c" "$n")
      t0=$(date +%s.%N)
      rc=0
      timeout -k 10 "$TIMEOUT" "${cmd[@]}" "$REPO/target/osu/$impl/bin/$b" "${bargs[@]+"${bargs[@]}"}" \
        >"$out" 2>"$out.stderr" || rc=$?
      dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
      [ -s "$out.stderr" ] || rm -f "$out.stderr"
      status=ok
      if [ "$rc" -ne 0 ]; then
        status="FAILED (exit $rc)"
        [ "$rc" -ne 124 ] || status="FAILED (timeout)"
        failures=$((failures + 1))
      fi
      echo "  $c $b $round: $status ${dt}s" | tee -a "$META"
    done
  done
done
echo "total: $(($(date +%s) - t_all)) s; load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"

python3 "$HERE/summary.py" "$OUTDIR" $CONFIGS
[ "$failures" -eq 0 ] || {
  echo "run.sh: $failures run(s) failed: see $META and $OUTDIR/raw" >&2
  exit 3
}
