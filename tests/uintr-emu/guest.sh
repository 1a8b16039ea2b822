#!/bin/sh
# Runs INSIDE the emulated UINTR machine (busybox sh), started by tests/uintr-emu/run.sh:
#   guest.sh BIN_DIR LIB_TEST_BINARY quick|soak
# Runs tocsin's UINTR checks one after the other, prints `uintr-emu: PASS|FAIL NAME (N s)`
# for each (N: emulated seconds, not a performance figure) and a summary, and exits 1 if
# any failed. `quick` is the CI set (a few minutes with 2 emulated CPUs); `soak` adds the
# long soak (10,000 messages) and the overlap benchmark.
B=$1
LIB=$2
SET=${3:-quick}
fails=0
passed=0
failed_names=""
log=/tmp/uintr-emu-step.log

# step NAME COMMAND...: runs COMMAND, output to the console, pass if exit status 0.
step() {
  name=$1
  shift
  t0=$(date +%s)
  echo "uintr-emu: --- $name: $*"
  "$@" >"$log" 2>&1
  rc=$?
  cat "$log"
  dt=$(($(date +%s) - t0))
  if [ "$rc" -eq 0 ]; then
    echo "uintr-emu: PASS $name (${dt} s emulated)"
    passed=$((passed + 1))
  else
    echo "uintr-emu: FAIL $name (exit $rc, ${dt} s emulated)"
    fails=$((fails + 1))
    failed_names="$failed_names $name"
  fi
}

# known NAME COMMAND...: a check with a known, reported failure mode: runs and prints its
# outcome, but does not count as a failure.
known() {
  name=$1
  shift
  echo "uintr-emu: --- $name (known issue, not counted): $*"
  if "$@" >"$log" 2>&1; then r=ok; else r="failed (exit $?)"; fi
  cat "$log"
  echo "uintr-emu: KNOWN-ISSUE $name: $r"
}

# probe: UINTR must be reported present in the CPU and the kernel, and usable.
probe() {
  "$B/tocsin" probe || return 1
  for k in uintr_cpu uintr_kernel_flag uintr_kernel uintr_mode; do
    "$B/tocsin" probe | grep -q -E "^$k +yes" || { echo "probe: $k is not yes"; return 1; }
  done
}

# ranks N PROGRAM ARGS...: N ranks under `tocsin run` in uintr mode.
# With RANKS_ENV="VAR=VALUE ..." set, those variables too.
RANKS_ENV=
ranks() {
  n=$1
  shift
  # shellcheck disable=SC2086 # RANKS_ENV is a list of words
  env TOCSIN_PROGRESS=uintr TOCSIN_STATS=1 $RANKS_ENV "$B/tocsin" run -n "$n" -- "$@"
}

# nocma COMMAND...: COMMAND with TOCSIN_CMA=0 for the ranks (pipelined rendezvous through
# the rings instead of the single-copy one).
nocma() {
  RANKS_ENV=TOCSIN_CMA=0
  "$@"
  r=$?
  RANKS_ENV=
  return $r
}

# expect_result PATTERN COMMAND...: COMMAND must succeed and its output (RESULT lines, and
# the TOCSIN_STATS lines on stderr) match PATTERN (grep).
expect_result() {
  want=$1
  shift
  "$@" >/tmp/uintr-emu-out.txt 2>&1
  rc=$?
  cat /tmp/uintr-emu-out.txt
  [ "$rc" -eq 0 ] || return "$rc"
  grep -q "$want" /tmp/uintr-emu-out.txt || { echo "expected '$want' in the output"; return 1; }
}

echo "uintr-emu: $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPU(s); $(dmesg | grep -o 'User Interrupts (UINTR) enabled' | head -1)"
step probe probe
step lib-uintr-tests env TOCSIN_UINTR_REQUIRED=1 "$LIB" --test-threads 1 interrupt::uintr
step p2p-sizes ranks 2 "$B/tocsin-testrank" --timeout 600 sizes
step p2p-sizes-nocma nocma ranks 2 "$B/tocsin-testrank" --timeout 600 sizes
step p2p-truncation ranks 2 "$B/tocsin-testrank" --timeout 600 truncation
step p2p-die ranks 2 "$B/tocsin-testrank" --timeout 600 die
# The kernel refuses init's registration (the thread already has a handler): init says so,
# naming the call and EBUSY, and ends the job (a multi-rank init failure aborts it through
# PMI). Two ranks: a 1-rank job sets up no user interrupts (there is no peer to notify), so
# its init cannot be refused.
init_refused() {
  ranks 2 "$B/tocsin-faultrank" uintr-refused >/tmp/uintr-emu-out.txt 2>&1
  rc=$?
  cat /tmp/uintr-emu-out.txt
  [ "$rc" -ne 0 ] || { echo "expected the job to fail: init succeeded with a handler already registered"; return 1; }
  grep -q 'uintr_register_handler.*EBUSY' /tmp/uintr-emu-out.txt \
    || { echo "expected a message naming uintr_register_handler and EBUSY"; return 1; }
}
step uintr-init-refused init_refused
# Rendezvous progressed by interrupts while both ranks compute and call nothing: complete
# before the wait, and rank 0's counters show user-interrupt handlers took the records.
done_by_handlers='complete_before_wait=true.* interrupts_received=[1-9].* handler_records=[1-9]'
step overlap-recv expect_result "$done_by_handlers" \
  ranks 2 "$B/tocsin-soak" --timeout 600 overlap --side recv --bytes 1048576 --compute-ms 300
# Send side: with CMA the receiver copies alone; without it, rank 0's handlers must stream.
step overlap-send expect_result 'complete_before_wait=true' \
  ranks 2 "$B/tocsin-soak" --timeout 600 overlap --side send --bytes 1048576 --compute-ms 300
step overlap-send-nocma expect_result "$done_by_handlers" \
  nocma ranks 2 "$B/tocsin-soak" --timeout 600 overlap --side send --bytes 1048576 --compute-ms 300
# Interrupts land in a computation that must come out bit for bit the same.
step storm expect_result 'tocsin stats (rank 1):.* interrupts_received=[1-9].* handler_records=[1-9]' \
  ranks 2 "$B/tocsin-soak" --timeout 600 storm --storm-ms 300 --work 3000000
# The raw UINTR ping-pong of `tocsin bench notify` (threads and forked processes, same core
# and other core): every case must run to the end (none reported as skipped or failed).
bench_notify() {
  "$B/tocsin" bench notify --only uintr --quiet "$@" >/tmp/uintr-emu-bn.txt 2>&1
  rc=$?
  cat /tmp/uintr-emu-bn.txt
  [ "$rc" -eq 0 ] || return "$rc"
  n=$(grep -c '^uintr ' /tmp/uintr-emu-bn.txt)
  want=$(($(grep -c ^processor /proc/cpuinfo) > 1 ? 4 : 2))
  [ "$n" -eq "$want" ] || { echo "bench notify: $n uintr cases measured, expected $want"; return 1; }
  if grep -q '^skipped: uintr' /tmp/uintr-emu-bn.txt; then echo "bench notify: a uintr case was skipped"; return 1; fi
}
step bench-notify bench_notify --iters 100 --case-secs 1
# 3 ranks on 2 emulated CPUs: ANY_SOURCE / ANY_TAG.
step p2p-wildcards ranks 3 "$B/tocsin-testrank" --timeout 600 wildcards
# Random traffic, 2 threads per rank computing between operations, checksums checked.
step soak-2000 ranks 2 "$B/tocsin-soak" --timeout 600 soak --messages 2000 --max-size 262144
if [ "$SET" = soak ]; then
  # The forked-receiver test 20 more times (the emulator bug the entry works around,
  # "First instruction" in crates/tocsin/src/interrupt/uintr/entry.rs, hit it every time).
  step lib-uintr-fork-x20 sh -c 'for k in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
      TOCSIN_UINTR_REQUIRED=1 "$0" --test-threads 1 uintr_forked >/dev/null 2>&1 || { echo "run $k failed"; exit 1; }
    done' "$LIB"
  step bench-notify-long bench_notify --iters 400 --case-secs 2
  step soak-10000 ranks 2 "$B/tocsin-soak" --timeout 3000 soak --messages 10000
  step bench-overlap "$B/tocsin" bench overlap --progress uintr --sizes 1M --compute-us 2000
fi
echo "uintr-emu: $passed passed, $fails failed${failed_names:+:$failed_names}"
[ "$fails" -eq 0 ]
