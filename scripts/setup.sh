#!/usr/bin/env bash
# Set-up of a Debian/Ubuntu machine for tocsin: installs the Debian packages the build and
# the tests need, only those missing, as root or through sudo for an ordinary user. Safe to
# run again (does nothing when everything is there). Rust itself is not installed here
# (https://rustup.rs).
#
#   bash scripts/setup.sh           # build and tests: hwloc, udev, fonts (plots), MPICH (hydra
#                                   # tests), Slurm + munge and iproute2 (the test clusters of
#                                   # scripts/cluster/, tests/slurm.rs and tests/netns.rs)
#   bash scripts/setup.sh --peers   # also Open MPI, for bench/peers/run.sh
#
# Also unpacks the reference MPI standard ABI (the PyPI mpich 5.0.2 wheel: include/mpi_abi.h,
# bin/mpicc_abi, lib/libmpi_abi.so.1) into ${TOCSIN_MPICH_ABI:-$HOME/.cache/tocsin/mpich-abi}
# for crates/tocsin-mpi/tests/abi.rs, if absent (needs pip; skipped with a message without it,
# except under CI). pympistandard (scripts/mpi-abi/gen.py --check) is installed with pip --user
# if missing.
set -euo pipefail

pkgs=(pkg-config libhwloc-dev libudev-dev libfontconfig1-dev libfreetype-dev mpich libmpich-dev
  slurmctld slurmd slurm-client munge iproute2 util-linux)
for arg in "$@"; do
  case "$arg" in
    --peers) pkgs+=(openmpi-bin libopenmpi-dev) ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup: unknown option '$arg' (expected --peers)" >&2; exit 2 ;;
  esac
done

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: this script needs Debian/Ubuntu (dpkg, apt-get); install the equivalents of: ${pkgs[*]}" >&2
  exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present (${pkgs[*]})"
else
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "setup: missing ${missing[*]}; not root and no sudo: run this script as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# The reference standard-ABI implementation (tests of crates/tocsin-mpi).
mpich_abi="${TOCSIN_MPICH_ABI:-$HOME/.cache/tocsin/mpich-abi}"
if [ -f "$mpich_abi/include/mpi_abi.h" ]; then
  echo "setup: reference MPI ABI present ($mpich_abi)"
elif ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
  if [ -n "${CI:-}" ]; then
    echo "setup: python3 -m pip is needed to fetch the reference MPI ABI (mpich 5.0.2 wheel)" >&2
    exit 1
  fi
  echo "setup: no python3 pip: skipping the reference MPI ABI (tests/abi.rs will skip its comparisons)"
else
  tmp=$(mktemp -d)
  echo "setup: fetching the reference MPI ABI (PyPI mpich==5.0.2 wheel) into $mpich_abi"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version 3.11 --dest "$tmp" mpich==5.0.2
  python3 -m zipfile -e "$tmp"/mpich-5.0.2-*.whl "$tmp/whl"
  mkdir -p "$mpich_abi"
  cp -a "$tmp"/whl/mpich-5.0.2.data/data/. "$mpich_abi"/
  chmod +x "$mpich_abi"/bin/* 2>/dev/null || true
  rm -rf "$tmp"
fi
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import pympistandard' 2>/dev/null; then
  if python3 -m pip --version >/dev/null 2>&1; then
    echo "setup: installing pympistandard (scripts/mpi-abi/gen.py)"
    python3 -m pip install --quiet --user pympistandard==0.2.0 2>/dev/null ||
      python3 -m pip install --quiet pympistandard==0.2.0 ||
      echo "setup: could not install pympistandard: the generator check of tests/abi.rs will skip" >&2
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: packages ready; cargo not found: install Rust (https://rustup.rs), then run the commands of the README" >&2
fi
