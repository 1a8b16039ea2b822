#!/usr/bin/env bash
# Builds the OSU Micro-Benchmarks 7.4, unmodified, out of tree, against one or more MPI
# implementations, each with its own compiler wrapper:
#
#   tocsin   target/mpi/bin/mpicc, mpicxx (scripts/mpi/install.sh is run first: it needs
#            `cargo build --release --workspace`)
#   mpich    mpicc.mpich, mpicxx.mpich       (Debian's mpich)
#   openmpi  mpicc.openmpi, mpicxx.openmpi   (Debian's openmpi-bin, scripts/setup.sh --peers)
#
# usage: bench/osu/build.sh [tocsin|mpich|openmpi]...     (default: tocsin)
#
# Each lands in <repo>/target/osu/<impl>/ (`./configure CC=… CXX=…`, then make), with the
# benchmarks bench/osu/run.sh and crates/tocsin-mpi/tests/osu.rs use linked into
# target/osu/<impl>/bin/: osu_latency osu_bw osu_bibw osu_mbw_mr osu_multi_lat osu_latency_mt
# osu_barrier osu_bcast osu_reduce osu_allreduce osu_gather osu_alltoall osu_iallreduce.
# Only those 13 are built (17 s on 2 cores, configure included), unless OSU_FULL=1: then `make -j2` of the
# whole tree (35 s, 77 benchmarks), every benchmark in bin/.
#
# A build is skipped when its stamp (target/osu/<impl>/.stamp) matches: a hash of the
# tarball, this script, the wrapper and the implementation's mpi.h (tocsin: not the library,
# which the benchmarks load at run time through the rpath to target/mpi/lib), and OSU_FULL.
#
# Environment:
#   OSU_TARBALL     the sources (default: the first of $TOCSIN_SHARED/peers/,
#                   <repo>/../shared/peers/, /work/shared/peers/ holding
#                   osu-micro-benchmarks-7.4.tar.gz)
#   OSU_FULL=1      build every benchmark
#   OSU_JOBS=2      make -j
# Exit status: 0 built (or up to date); 1 missing tarball, wrapper or build failure (the
# configure/make log is printed: target/osu/<impl>/build.log).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=$REPO/target/osu
JOBS=${OSU_JOBS:-2}
FULL=${OSU_FULL:-0}
NAME=osu-micro-benchmarks-7.4

PT2PT="osu_latency osu_bw osu_bibw osu_mbw_mr osu_multi_lat osu_latency_mt"
BLOCKING="osu_barrier osu_bcast osu_reduce osu_allreduce osu_gather osu_alltoall"
NONBLOCKING="osu_iallreduce"

die() {
  echo "build.sh: error: $*" >&2
  exit 1
}

find_tarball() {
  if [ -n "${OSU_TARBALL:-}" ]; then
    [ -f "$OSU_TARBALL" ] || die "OSU_TARBALL=$OSU_TARBALL: no such file"
    echo "$OSU_TARBALL"
    return
  fi
  local d
  for d in ${TOCSIN_SHARED:+"$TOCSIN_SHARED/peers"} "$REPO/../shared/peers" /work/shared/peers; do
    if [ -f "$d/$NAME.tar.gz" ]; then
      echo "$(cd "$d" && pwd)/$NAME.tar.gz"
      return
    fi
  done
  die "$NAME.tar.gz not found (set OSU_TARBALL, or TOCSIN_SHARED to the directory holding peers/)"
}

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

build_one() {
  local impl=$1 cc cxx header
  case "$impl" in
    tocsin)
      bash "$REPO/scripts/mpi/install.sh" >/dev/null
      cc=$REPO/target/mpi/bin/mpicc
      cxx=$REPO/target/mpi/bin/mpicxx
      header=$REPO/target/mpi/include/mpi.h
      ;;
    mpich | openmpi)
      cc=$(command -v "mpicc.$impl") || die "mpicc.$impl not found (apt-get install $([ "$impl" = mpich ] && echo libmpich-dev || echo libopenmpi-dev))"
      cxx=$(command -v "mpicxx.$impl") || die "mpicxx.$impl not found"
      # The header the wrapper compiles with: its first -I directory holding mpi.h.
      header=
      local w
      for w in $("$cc" -show 2>/dev/null || "$cc" -showme 2>/dev/null); do
        case "$w" in -I*) [ -f "${w#-I}/mpi.h" ] && header=${w#-I}/mpi.h && break ;; esac
      done
      [ -n "$header" ] || header=$(readlink -f "$cc")
      ;;
    *) die "unknown implementation '$impl' (expected tocsin, mpich or openmpi)" ;;
  esac

  local dir=$OUT/$impl
  mkdir -p "$dir"
  exec 8>"$OUT/.$impl.lock"
  flock 8

  local key
  key="$(hash_of "$TARBALL" "${BASH_SOURCE[0]}" "$(readlink -f "$cc")" "$header") full=$FULL"
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$key" ] && [ -x "$dir/bin/osu_iallreduce" ]; then
    echo "build.sh: $impl: up to date ($dir)"
    exec 8>&-
    return
  fi

  local t0 log=$dir/build.log
  t0=$(date +%s)
  echo "build.sh: $impl: building $NAME in $dir (CC=$cc)"
  # A fresh tree: a stale configure cache or objects from another compiler must not leak in.
  find "$dir" -mindepth 1 -maxdepth 1 ! -name build.log -exec rm -rf {} +
  : >"$log"
  if ! (
    cd "$dir"
    # (set -e does not apply inside an if condition: every step is chained with &&)
    "$SRC/configure" CC="$cc" CXX="$cxx" >>"$log" 2>&1 &&
      if [ "$FULL" = 1 ]; then
        make -j"$JOBS" >>"$log" 2>&1
      else
        make -j"$JOBS" -C c/mpi/pt2pt/standard $PT2PT >>"$log" 2>&1 &&
          make -j"$JOBS" -C c/mpi/collective/blocking $BLOCKING >>"$log" 2>&1 &&
          make -j"$JOBS" -C c/mpi/collective/non_blocking $NONBLOCKING >>"$log" 2>&1
      fi
  ); then
    tail -n 40 "$log" >&2
    die "$impl: build failed (whole log: $log)"
  fi

  mkdir -p "$dir/bin"
  local b found
  for b in $(cd "$dir/c/mpi" && find . -type f -name 'osu_*' -perm -u+x | sort); do
    ln -sfn "../c/mpi/${b#./}" "$dir/bin/$(basename "$b")"
  done
  for b in $PT2PT $BLOCKING $NONBLOCKING; do
    [ -x "$dir/bin/$b" ] || die "$impl: $b was not built (log: $log)"
  done
  found=$(find "$dir/bin" -mindepth 1 | wc -l)
  echo "$key" >"$dir/.stamp"
  echo "build.sh: $impl: $found benchmarks in $dir/bin ($(($(date +%s) - t0)) s)"
  exec 8>&-
}

TARBALL=$(find_tarball)
# The sources, unpacked once per tarball (configure runs out of tree: the tree is not touched).
SRC=$OUT/src/$NAME
src_key=$(hash_of "$TARBALL")
mkdir -p "$OUT"
exec 7>"$OUT/.src.lock"
flock 7
if [ ! -f "$OUT/src/.stamp" ] || [ "$(cat "$OUT/src/.stamp")" != "$src_key" ]; then
  rm -rf "$OUT/src"
  mkdir -p "$OUT/src"
  tar -xzf "$TARBALL" -C "$OUT/src"
  [ -x "$SRC/configure" ] || die "$TARBALL: no $NAME/configure inside"
  echo "$src_key" >"$OUT/src/.stamp"
fi
exec 7>&-

[ $# -gt 0 ] || set -- tocsin
for impl in "$@"; do
  build_one "$impl"
done
