#!/usr/bin/env bash
# Two "hosts" on this one machine, h1 and h2, for multi-host tests with MPICH's hydra (root;
# iproute2 and util-linux's unshare/nsenter).
#
#   scripts/cluster/netns.sh start    # hosts h1 (10.77.0.1) and h2 (10.77.0.2)
#   scripts/cluster/netns.sh status   # holders, addresses
#   scripts/cluster/netns.sh stop     # kills exactly the two holders (and so all in them)
#   scripts/cluster/nsexec h1 CMD…    # runs CMD on host h1 (what `ssh h1 CMD…` would do)
#
# Each host is a set of namespaces kept alive by a holder process (`sleep infinity`, renamed
# tocsin-netns-hN, pid 1 of the host's PID namespace): its own network (its eth0 is a veth
# whose other end is on a bridge tns-br0 of this machine's namespace, which has 10.77.0.254
# there, like a login node on the cluster network; loopback up), hostname (UTS), System V
# IPC, PID namespace with its own /proc, and mount namespace with a private /dev/shm (tmpfs)
# and an /etc/hosts naming h1, h2 and this machine (its hostname, at 10.77.0.254). So nothing of one host is visible from the other: no shared memory, no CMA (the peer's
# pid does not exist there), a different hostname. The file system is otherwise shared, as
# on a cluster with a shared home: programs under target/ run on both hosts.
#
# hydra across the two hosts, mpiexec on this machine, nsexec as its "ssh" (the proxies
# connect back to mpiexec at 10.77.0.254 under this machine's hostname):
#   mpiexec.hydra -launcher ssh -launcher-exec "$PWD/scripts/cluster/nsexec" \
#       -hosts h1,h2 -ppn 2 -n 4 hostname          # prints h1 h1 h2 h2
# (Not mpiexec inside h1: a process in h1's PID namespace cannot enter h2's, a sibling.)
#
# State (pid files, hosts file) lives in $TOCSIN_NETNS_DIR (default /tmp/tocsin-netns-$UID).
# `start` first stops hosts left by a crashed run (recorded pids, only if they are still the
# holders) and removes a stray veth. Exit codes: 0 ok, 1 failure, 2 usage, 3 cannot run here.
set -euo pipefail

D=${TOCSIN_NETNS_DIR:-/tmp/tocsin-netns-$(id -u)}
HOSTS=(h1 h2)
NET=${TOCSIN_NETNS_NET:-10.77.0}
PATH=$PATH:/usr/sbin:/sbin

say() { echo "netns.sh: $*" >&2; }

need() {
  if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (namespaces, veth)"
    exit 3
  fi
  local missing=()
  for b in ip unshare nsenter; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "missing programs: ${missing[*]} (Debian packages iproute2 util-linux)"
    exit 3
  fi
}

# holder_pid HOST: the recorded holder of HOST if it is still that holder.
holder_pid() {
  local f="$D/$1.pid" pid
  [ -s "$f" ] || return 1
  pid=$(tr -dc 0-9 <"$f")
  [ -n "$pid" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^tocsin-netns-$1 " || return 1
  echo "$pid"
}

stop() {
  [ -d "$D" ] || return 0
  local h pid l pids=()
  for h in "${HOSTS[@]}"; do
    if pid=$(holder_pid "$h"); then
      # pid 1 of the host's PID namespace: its death kills every process of the host.
      kill -KILL "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$D/$h.pid"
  done
  for pid in "${pids[@]}"; do
    local t=0
    while [ -e "/proc/$pid" ] && [ $t -lt 50 ]; do sleep 0.1; t=$((t + 1)); done
  done
  for l in tns-h1 tns-h2 tns-br0; do
    ip link del "$l" 2>/dev/null || true
  done
  [ ${#pids[@]} -eq 0 ] || say "stopped holders ${pids[*]}"
}

start_host() {
  local h=$1 upid pid t=0
  # The holder: new namespaces; inside, the hostname, a private /dev/shm, /etc/hosts; then
  # `sleep infinity` as pid 1 under a recognizable name.
  # No descriptor but 0-2 is inherited: a caller's lock file (flock) left open in the
  # holder would stay locked as long as the host lives.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
    done
    exec setsid unshare --net --uts --ipc --pid --mount --fork --mount-proc --propagation private \
      bash -c "hostname $h && mount -t tmpfs -o mode=1777,size=256m tocsin-shm-$h /dev/shm \
        && mount --bind '$D/hosts' /etc/hosts && exec -a tocsin-netns-$h sleep infinity" \
      </dev/null >"$D/$h.log" 2>&1
  ) &
  upid=$!
  # The holder is unshare's child; wait until it has renamed itself (set-up done).
  while :; do
    pid=$(cat "/proc/$upid/task/$upid/children" 2>/dev/null | awk '{print $1}')
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^tocsin-netns-$h "; then
      break
    fi
    if ! kill -0 "$upid" 2>/dev/null || [ $t -ge 100 ]; then
      say "host $h did not start: $(cat "$D/$h.log")"
      return 1
    fi
    sleep 0.1
    t=$((t + 1))
  done
  echo "$pid" >"$D/$h.pid"
}

start() {
  need
  stop
  rm -rf "$D"
  mkdir -p "$D"
  printf '127.0.0.1 localhost\n%s.1 h1\n%s.2 h2\n%s.254 %s\n' "$NET" "$NET" "$NET" "$(hostname)" >"$D/hosts"
  local h i p1 p2
  for h in "${HOSTS[@]}"; do
    start_host "$h" || { stop; exit 1; }
  done
  p1=$(holder_pid h1)
  p2=$(holder_pid h2)
  if ! { ip link add tns-br0 type bridge && ip addr add "$NET.254/24" dev tns-br0 &&
    ip link set tns-br0 up; }; then
    say "cannot create the bridge tns-br0 ($NET.254/24) in this machine's namespace"
    stop
    exit 1
  fi
  i=1
  for h in "${HOSTS[@]}"; do
    local pid
    pid=$(holder_pid "$h")
    if ! { ip link add "tns-$h" type veth peer name eth0 netns "$pid" &&
      ip link set "tns-$h" master tns-br0 && ip link set "tns-$h" up &&
      nsenter -t "$pid" -n sh -c "ip link set lo up && ip addr add $NET.$i/24 dev eth0 && \
        ip link set eth0 up"; }; then
      say "cannot set up the network of $h"
      stop
      exit 1
    fi
    i=$((i + 1))
  done
  # Wait until both ends of the link are up (asynchronous).
  local t=0
  until nsenter -t "$p1" -n ip -o link show eth0 | grep -q LOWER_UP &&
    nsenter -t "$p2" -n ip -o link show eth0 | grep -q LOWER_UP; do
    if [ $t -ge 50 ]; then
      say "the link between h1 and h2 does not come up"
      stop
      exit 1
    fi
    sleep 0.1
    t=$((t + 1))
  done
  say "up: h1 ($NET.1, holder $p1), h2 ($NET.2, holder $p2); run on them with scripts/cluster/nsexec HOST CMD…"
}

status() {
  local h pid rc=0
  for h in "${HOSTS[@]}"; do
    if pid=$(holder_pid "$h"); then
      echo "$h: holder pid $pid, $(nsenter -t "$pid" -u hostname), $(nsenter -t "$pid" -n ip -4 -o addr show eth0 | awk '{print $4}')"
    else
      echo "$h: not running"
      rc=1
    fi
  done
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    sed -n '2,9p' "$0" >&2
    exit 2
    ;;
esac
