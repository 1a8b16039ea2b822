#!/usr/bin/env bash
# A two-node Slurm cluster on this one machine, for tests and by hand (root, Debian packages
# slurmctld slurmd slurm-client munge: `bash scripts/setup.sh` installs them).
#
#   scripts/cluster/slurm.sh start    # munged + slurmctld + `slurmd -N n1` + `slurmd -N n2`
#   scripts/cluster/slurm.sh status   # the daemons, `sinfo -N`
#   scripts/cluster/slurm.sh env      # prints `export SLURM_CONF=…` (eval it to use srun)
#   scripts/cluster/slurm.sh stop     # kills exactly the daemons `start` recorded
#
# Then: eval "$(scripts/cluster/slurm.sh env)"
#       srun -N2 -n4 --mpi=pmi2 target/release/tocsin-testrank sizes
# places ranks 0-1 on node n1 and 2-3 on node n2 (SLURM_NODEID 0 and 1; both "nodes" are
# this host, with its hostname: Slurm's multiple-slurmd mode, which Debian's build enables).
#
# Everything lives in one directory, $TOCSIN_SLURM_DIR (default /tmp/tocsin-slurm-$UID):
# configuration (slurm.conf, SLURM_CONF points there), its own munge key and socket, state,
# spool, logs, and the daemons' pid files. Nothing under /etc, no systemd. The ports are
# $TOCSIN_SLURM_PORT (slurmctld, default 16817) and the next two (the slurmds), so that a
# system Slurm on the default ports is not disturbed.
#
# `start` first stops a cluster left by a crashed run (its recorded pids, only if they still
# run the daemon recorded) and wipes the directory; it then waits (at most
# $TOCSIN_SLURM_TIMEOUT s, default 60) until `sinfo` shows both nodes idle, else it stops
# what it started, prints the daemons' logs and exits 1. Exit codes: 0 ok, 1 failure,
# 2 usage, 3 cannot run here (not root, or packages missing).
#
# Emulated nodes: n1 and n2 declare the machine's CPU count each (`nproc`), so that
# `srun -N2 -n4` on a 2-CPU machine needs no --overcommit and places 2 tasks per node.
set -euo pipefail

D=${TOCSIN_SLURM_DIR:-/tmp/tocsin-slurm-$(id -u)}
PORT=${TOCSIN_SLURM_PORT:-16817}
TIMEOUT=${TOCSIN_SLURM_TIMEOUT:-60}
NODES=(n1 n2)

say() { echo "slurm.sh: $*" >&2; }

need() {
  if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (slurmd and munged need it)"
    exit 3
  fi
  local missing=()
  for b in munged mungekey slurmctld slurmd sinfo srun scontrol; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "missing programs: ${missing[*]} (install the Debian packages slurmctld slurmd slurm-client munge, e.g. bash scripts/setup.sh)"
    exit 3
  fi
}
PATH=$PATH:/usr/sbin:/sbin

# pid_of NAME: the pid recorded for daemon NAME if that process still runs NAME's program.
pid_of() {
  local name=$1 f="$D/run/$1.pid" pid comm
  [ -s "$f" ] || return 1
  pid=$(tr -dc 0-9 <"$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  case "$name" in
    munged) [ "$comm" = munged ] ;;
    slurmctld) [ "$comm" = slurmctld ] ;;
    slurmd-*) [ "$comm" = slurmd ] ;;
    *) false ;;
  esac || return 1
  echo "$pid"
}

daemons() { echo "slurmd-n2 slurmd-n1 slurmctld munged"; }

stop() {
  [ -d "$D" ] || return 0
  local name pid pids=()
  # Jobs first (their slurmstepd are not daemons we recorded), while slurmctld still runs.
  if pid_of slurmctld >/dev/null && [ -f "$D/slurm.conf" ]; then
    SLURM_CONF="$D/slurm.conf" timeout 10 scancel --quiet --user=root 2>/dev/null || true
  fi
  for name in $(daemons); do
    if pid=$(pid_of "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local t=0
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$t" -lt 100 ]; do
      sleep 0.1
      t=$((t + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "pid $pid did not stop on SIGTERM in 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$D"/run/*.pid
  [ ${#pids[@]} -eq 0 ] || say "stopped pids ${pids[*]}"
}

logs() {
  local f
  for f in "$D"/log/*.log "$D"/munge/*.log; do
    [ -f "$f" ] || continue
    echo "----- $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}

write_conf() {
  local host cpus
  host=$(hostname)
  cpus=$(nproc)
  cat >"$D/slurm.conf" <<EOF
# Written by scripts/cluster/slurm.sh: two emulated nodes on host $host.
ClusterName=tocsin
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
PlugStackConfig=$D/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=pmi2
ReturnToService=2
MailProg=/bin/true
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
NodeName=n[1-2] NodeHostname=$host NodeAddr=127.0.0.1 Port=[$((PORT + 1))-$((PORT + 2))] CPUs=$cpus RealMemory=500 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$D/plugstack.conf"
}

start_munge() {
  mkdir -p "$D/munge"
  chown munge:munge "$D/munge"
  chmod 0755 "$D/munge"
  runuser -u munge -- mungekey --create --keyfile="$D/munge/munge.key" --bits=1024 >/dev/null
  chmod 0600 "$D/munge/munge.key"
  # munged writes its own pid file (it daemonizes); it is the pid we stop.
  runuser -u munge -- munged --force --socket="$D/munge/munge.socket" \
    --key-file="$D/munge/munge.key" --pid-file="$D/munge/munged.pid" \
    --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed" ||
    { say "munged failed to start"; logs; return 1; }
  local t=0
  while ! [ -s "$D/munge/munged.pid" ] && [ $t -lt 50 ]; do sleep 0.1; t=$((t + 1)); done
  cp "$D/munge/munged.pid" "$D/run/munged.pid"
  if ! munge --socket="$D/munge/munge.socket" -n | unmunge --socket="$D/munge/munge.socket" >/dev/null; then
    say "munge credential round trip failed"
    logs
    return 1
  fi
}

wait_idle() {
  local t0 out
  t0=$(date +%s)
  while :; do
    out=$(SLURM_CONF="$D/slurm.conf" sinfo -h -N -o '%N %t' 2>/dev/null || true)
    if [ "$(echo "$out" | grep -cE '^n[12] idle$' || true)" -eq 2 ]; then
      return 0
    fi
    if [ $(($(date +%s) - t0)) -ge "$TIMEOUT" ]; then
      say "the nodes are not idle after ${TIMEOUT} s; sinfo says: ${out:-nothing}"
      return 1
    fi
    for name in slurmctld slurmd-n1 slurmd-n2; do
      if ! pid_of "$name" >/dev/null; then
        say "$name is not running"
        return 1
      fi
    done
    sleep 0.5
  done
}

start() {
  need
  stop
  rm -rf "$D"
  mkdir -p "$D"/{run,log,state,spool}
  chmod 0755 "$D"
  write_conf
  start_munge || { stop; exit 1; }
  export SLURM_CONF="$D/slurm.conf"
  if ! slurmctld -i; then
    say "slurmctld failed to start"
    logs
    stop
    exit 1
  fi
  local n
  for n in "${NODES[@]}"; do
    if ! slurmd -N "$n"; then
      say "slurmd -N $n failed to start"
      logs
      stop
      exit 1
    fi
  done
  if ! wait_idle; then
    logs
    stop
    exit 1
  fi
  say "up: nodes ${NODES[*]} idle; SLURM_CONF=$D/slurm.conf; pids: munged $(pid_of munged) slurmctld $(pid_of slurmctld) slurmd-n1 $(pid_of slurmd-n1) slurmd-n2 $(pid_of slurmd-n2)"
}

status() {
  local name rc=0 pid
  for name in munged slurmctld slurmd-n1 slurmd-n2; do
    if pid=$(pid_of "$name"); then
      echo "$name: running, pid $pid"
    else
      echo "$name: not running"
      rc=1
    fi
  done
  if [ $rc -eq 0 ]; then
    SLURM_CONF="$D/slurm.conf" sinfo -N
  fi
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$D/slurm.conf" ;;
  logs) logs ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
