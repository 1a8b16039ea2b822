#!/usr/bin/env bash
# Runs tocsin's UINTR checks on an emulated Sapphire Rapids with a UINTR Linux kernel
# (../shared/uintr-emu, Bochs): builds the release binaries and the library's test binary,
# boots the emulator ONCE with 2 CPUs and runs tests/uintr-emu/guest.sh there:
#   - `tocsin probe` must report UINTR in the CPU and the kernel;
#   - the library's UINTR hardware tests (crates/tocsin/src/interrupt/uintr/hw_tests.rs),
#     with TOCSIN_UINTR_REQUIRED=1 so that none passes by skipping;
#   - ranks under `tocsin run` with TOCSIN_PROGRESS=uintr: p2p sizes (both rendezvous
#     paths), truncation, peer death, 3-rank wildcards, overlap of a rendezvous with
#     computation on both sides (done by handlers, per the counters), an interrupt storm
#     into a bit-exact computation, a 2,000-message soak, `tocsin bench notify --only uintr`.
#
#   bash tests/uintr-emu/run.sh           # the CI set, at most 10 minutes with the boot
#   bash tests/uintr-emu/run.sh --soak    # adds a 10,000-message soak and
#                                         # `tocsin bench overlap` (limit 2 hours)
#
# The emulator is taken from $UINTR_EMU (default: ../shared/uintr-emu beside the
# repository). Exits non-zero, saying why, when it is missing or the emulated machine cannot
# start (never a silent pass), when the run exceeds its time limit, or when any check fails.
# Emulated durations are not performance figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
set_name=quick
timeout_s=570
case "${1:-}" in
  "") ;;
  --soak) set_name=soak; timeout_s=7200 ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  *) echo "uintr-emu: unknown option '$1' (expected --soak)" >&2; exit 2 ;;
esac

emu=${UINTR_EMU:-$(cd .. && pwd)/shared/uintr-emu}
if [ ! -x "$emu/run" ] || [ ! -f "$emu/bzImage" ] || [ ! -x "$emu/bochs" ]; then
  echo "uintr-emu: FAILED: no emulator at $emu (needs run, bochs, bzImage; set UINTR_EMU to its folder)" >&2
  exit 1
fi

echo "uintr-emu: building"
cargo build --release -p tocsin-cli --bins
lib=$(cargo test --release -p tocsin --lib --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
if [ -z "$lib" ] || [ ! -x "$lib" ]; then
  echo "uintr-emu: FAILED: could not find the tocsin library's test binary" >&2
  exit 1
fi
bin=$(pwd)/target/release
guest=$(pwd)/tests/uintr-emu/guest.sh

echo "uintr-emu: booting $emu with 2 CPUs (limit ${timeout_s} s)"
t0=$(date +%s)
rc=0
"$emu/run" --cpus 2 --timeout "$timeout_s" \
  --file "$bin/tocsin" --file "$bin/tocsin-testrank" --file "$bin/tocsin-soak" --file "$lib" \
  -- "$guest" "$bin" "$lib" "$set_name" || rc=$?
dt=$(($(date +%s) - t0))
case "$rc" in
  0) echo "uintr-emu: all checks passed in the emulator (${dt} s wall, boot included)" ;;
  124) echo "uintr-emu: FAILED: the checks did not finish within ${timeout_s} s" >&2 ;;
  125) echo "uintr-emu: FAILED: the emulated machine could not start or crashed (see above)" >&2 ;;
  *) echo "uintr-emu: FAILED: a check failed in the emulator (exit $rc, ${dt} s)" >&2 ;;
esac
exit "$rc"
