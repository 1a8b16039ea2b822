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

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: packages ready; cargo not found: install Rust (https://rustup.rs), then run the commands of the README" >&2
fi
