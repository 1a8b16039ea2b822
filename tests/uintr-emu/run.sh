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
#     into a bit-exact computation, a 2,000-message soak;
#   - `tocsin bench notify --only uintr` (small --iters): all four cases must complete.
#
#   bash tests/uintr-emu/run.sh           # the CI set, at most 10 minutes with the boot
#   bash tests/uintr-emu/run.sh --soak    # adds a 10,000-message soak, 20 more runs of the
#                                         # forked-receiver test, a longer `bench notify` and
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
guest=$(pwd)/tests/uintr-emu/guest.sh
# The guest's root file system is an initramfs the emulated kernel unpacks: copies without
# debug information keep it small (about 4x less to unpack and hold in guest memory).
bin=$(mktemp -d /tmp/tocsin-uintr-emu.XXXXXX)
trap 'rm -rf "$bin"' EXIT
for f in target/release/tocsin target/release/tocsin-testrank target/release/tocsin-soak target/release/tocsin-faultrank "$lib"; do
  strip --strip-debug -o "$bin/$(basename "$f")" "$f" 2>/dev/null || cp "$f" "$bin/"
done
lib=$bin/$(basename "$lib")

# One attempt: runs the emulator in the background and watches its serial console (the
# `run` script's work folder, found through the Bochs process it started). If the guest has
# not reached our command within $boot_limit s (a 2-CPU boot normally takes about 60 s; it
# has been seen to stall for good after bringing up the second CPU), the emulator is
# stopped: exit status 125. Arguments: time limit, guest memory (MB).
attempt() {
  local limit=$1 mem=$2
  "$emu/run" --cpus 2 --mem "$mem" --timeout "$limit" \
    --file "$bin/tocsin" --file "$bin/tocsin-testrank" --file "$bin/tocsin-soak" --file "$bin/tocsin-faultrank" --file "$lib" \
    -- "$guest" "$bin" "$lib" "$set_name" &
  local rpid=$! t0 bpid="" serial="" hung=0
  t0=$(date +%s)
  while kill -0 "$rpid" 2>/dev/null; do
    if [ -z "$serial" ]; then
      bpid=$(pgrep -P "$rpid" -x bochs | head -1 || true)
      if [ -n "$bpid" ]; then
        serial=$(tr '\0' ' ' </proc/"$bpid"/cmdline | grep -o '/[^ ]*/bochsrc' | sed 's/bochsrc$/serial.txt/' || true)
      fi
    fi
    if [ -n "$serial" ] && ! grep -q '@@UINTR-EMU-START@@' "$serial" 2>/dev/null \
      && [ $(($(date +%s) - t0)) -gt "$boot_limit" ]; then
      echo "uintr-emu: the guest did not boot within ${boot_limit} s (last console line: $(tail -1 "$serial" | tr -d '\r')); stopping it" >&2
      hung=1
      kill "$bpid" 2>/dev/null || true
      break
    fi
    [ -n "$serial" ] && grep -q '@@UINTR-EMU-START@@' "$serial" 2>/dev/null && break
    sleep 2
  done
  local rc=0
  wait "$rpid" || rc=$?
  [ "$hung" = 1 ] && rc=125
  return "$rc"
}

boot_limit=${UINTR_EMU_BOOT_LIMIT:-150}
t_start=$(date +%s)
rc=0
echo "uintr-emu: booting $emu with 2 CPUs (limit ${timeout_s} s, boot ${boot_limit} s)"
attempt "$timeout_s" 1024 || rc=$?
# A stalled boot is retried while time allows, with another memory size: the emulation is
# deterministic, so the same machine could stall at the same point again.
for mem in 1280 1536; do
  [ "$rc" = 125 ] || break
  left=$((timeout_s - ($(date +%s) - t_start)))
  [ "$left" -gt 200 ] || break
  echo "uintr-emu: the emulated machine did not start; booting again with ${mem} MB (limit ${left} s)" >&2
  rc=0
  attempt "$left" "$mem" || rc=$?
done
dt=$(($(date +%s) - t_start))
case "$rc" in
  0) echo "uintr-emu: all checks passed in the emulator (${dt} s wall, boot included)" ;;
  124) echo "uintr-emu: FAILED: the checks did not finish within ${timeout_s} s" >&2 ;;
  125) echo "uintr-emu: FAILED: the emulated machine could not start or crashed (see above)" >&2 ;;
  *) echo "uintr-emu: FAILED: a check failed in the emulator (exit $rc, ${dt} s)" >&2 ;;
esac
exit "$rc"
