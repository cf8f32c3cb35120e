#!/usr/bin/env bash
# A local etcd cluster on loopback for tests, benchmarks and demos (Debian's etcd-server).
#   tools/etcd.sh start DIR [N]        N members (default 3) on free loopback ports, data in DIR;
#                                      waits (≤ 20 s) until every member is healthy and prints the
#                                      client endpoints, comma-separated (also in DIR/endpoints)
#   tools/etcd.sh stop DIR             stops every member (SIGTERM, then SIGKILL after 0.3 s)
#   tools/etcd.sh kill-member DIR I    kill -9 member I (0-based): a crashed member
#   tools/etcd.sh start-member DIR I   starts member I again on its data (same ports)
# Raft timings are short (--heartbeat-interval 50 --election-timeout 500) so a leader is
# elected in about a second and etcd's minimum lease TTL is 1 s. The transaction limits are
# the ones loomd's etcd store needs (controller/README.md, "etcd"). Ports are picked free,
# so the Debian package's own etcd (2379/2380, when its service runs) is not in the way.
# ETCD_EXTRA_ARGS adds flags to every member (e.g. --unsafe-no-fsync for a quick demo);
# ETCD_OWNER_PID ties the cluster to a process: when it ends, the members are stopped.
set -euo pipefail

usage() {
  sed -n '2,7p' "$0" >&2
  exit 2
}
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage

# etcd reads ETCD_* variables as flags: none of the caller's may leak into the cluster.
for v in $(compgen -e | grep '^ETCD_' | grep -v -x -e ETCD_EXTRA_ARGS -e ETCD_OWNER_PID || true); do unset "$v"; done

# What loomd's store needs (controller/README.md, "etcd"): one commit is one txn, and an
# apply of 10,000 servers is tens of thousands of writes in tens of MiB.
LIMITS=(--max-txn-ops 1000000 --max-request-bytes 134217728)

member_args() {  # sets ARGS to member $1's command line, from DIR/cluster
  local i=$1
  # shellcheck disable=SC1091
  . "$dir/cluster"
  local client=${CLIENT_PORTS[$i]} peer=${PEER_PORTS[$i]}
  ARGS=(etcd --name "m$i" --data-dir "$dir/m$i"
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client"
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer"
    --initial-cluster "$INITIAL_CLUSTER" --initial-cluster-state new --initial-cluster-token "$TOKEN"
    --heartbeat-interval 50 --election-timeout 500 "${LIMITS[@]}"
    --auto-compaction-mode revision --auto-compaction-retention 10000
    --logger zap --log-outputs stderr --log-level warn)
  # shellcheck disable=SC2206
  [ -z "${ETCD_EXTRA_ARGS:-}" ] || ARGS+=($ETCD_EXTRA_ARGS)
}

start_member() {
  member_args "$1"
  "${ARGS[@]}" >>"$dir/m$1.log" 2>&1 </dev/null &
  echo $! >"$dir/m$1.pid"
}

# Waits (bounded) until every member in $@ (endpoints) answers healthy.
wait_healthy() {
  local deadline=$((SECONDS + 20)) ep
  for ep in "$@"; do
    until ETCDCTL_API=3 etcdctl --endpoints "$ep" --command-timeout=1s endpoint health >/dev/null 2>&1; do
      if [ $SECONDS -ge $deadline ]; then
        echo "etcd.sh: member at $ep not healthy after 20 s (logs: $dir/m*.log)" >&2
        return 1
      fi
      sleep 0.1
    done
  done
}

# Whether process $1 still runs (a zombie does not: our members' parent, the shell that
# started them, is gone, and whoever inherits them may reap them late).
running() {
  local state
  state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Stops the members whose pid files are given: SIGTERM to all at once, then SIGKILL to
# those still there after 0.3 s. The leader, stopping, hands its leadership over and waits
# for that up to 5 s, in vain when every member stops; etcd's WAL makes a kill safe (it
# is fsynced before etcd acknowledges), so that wait is not worth a test's time. Bounded.
stop_pids() {
  local pidfile pid n alive
  local pids=()
  for pidfile in "$@"; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    rm -f "$pidfile"
    # Only an etcd of ours: a stale pid file may name a pid reused by something else.
    grep -q etcd "/proc/$pid/cmdline" 2>/dev/null || continue
    pids+=("$pid")
    kill -CONT "$pid" 2>/dev/null || true  # a SIGSTOPped member would not see SIGTERM
    kill -TERM "$pid" 2>/dev/null || true
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  for n in $(seq 3); do
    alive=0
    for pid in "${pids[@]}"; do running "$pid" && alive=1; done
    [ $alive = 1 ] || return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for n in $(seq 20); do
    alive=0
    for pid in "${pids[@]}"; do running "$pid" && alive=1; done
    [ $alive = 1 ] || return 0
    sleep 0.1
  done
}

case "$cmd" in
  start)
    n=${3:-3}
    [[ "$n" =~ ^[1-9][0-9]?$ ]] || { echo "etcd.sh: N must be 1..99, got '$n'" >&2; exit 2; }
    command -v etcd >/dev/null || { echo "etcd.sh: etcd not installed (apt-get install etcd-server etcd-client)" >&2; exit 3; }
    command -v etcdctl >/dev/null || { echo "etcd.sh: etcdctl not installed (apt-get install etcd-client)" >&2; exit 3; }
    mkdir -p "$dir"
    if ls "$dir"/m*.pid >/dev/null 2>&1; then
      echo "etcd.sh: $dir already has a running cluster (tools/etcd.sh stop $dir first)" >&2
      exit 1
    fi
    rm -rf "$dir"/m[0-9]* "$dir/endpoints" "$dir/cluster"
    # 2N free loopback ports, held open together while they are picked so none repeats.
    mapfile -t ports < <(python3 -c '
import socket, sys
n = int(sys.argv[1]); socks = []
for _ in range(2 * n):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
for s in socks: print(s.getsockname()[1])
' "$n")
    client=() peer=() initial="" endpoints=""
    for ((i = 0; i < n; i++)); do
      client+=("${ports[$((2 * i))]}")
      peer+=("${ports[$((2 * i + 1))]}")
      initial+="${initial:+,}m$i=http://127.0.0.1:${peer[$i]}"
      endpoints+="${endpoints:+,}127.0.0.1:${client[$i]}"
    done
    {
      echo "CLIENT_PORTS=(${client[*]})"
      echo "PEER_PORTS=(${peer[*]})"
      echo "INITIAL_CLUSTER=$initial"
      echo "TOKEN=loom-$$-$RANDOM"
      echo "N=$n"
    } >"$dir/cluster"
    for ((i = 0; i < n; i++)); do start_member "$i"; done
    IFS=, read -r -a eps <<<"$endpoints"
    if ! wait_healthy "${eps[@]}"; then
      stop_pids "$dir"/m*.pid
      exit 1
    fi
    # A test's cluster dies with the test: when ETCD_OWNER_PID (the test process) is gone,
    # a watcher stops the members (a test killed by a ctest timeout would leave them
    # running). It ends by itself once the members' pid files are gone (stop).
    if [ -n "${ETCD_OWNER_PID:-}" ]; then
      (
        while running "$ETCD_OWNER_PID" && ls "$dir"/m*.pid >/dev/null 2>&1; do sleep 0.5; done
        stop_pids "$dir"/m*.pid
      ) >/dev/null 2>&1 </dev/null &
    fi
    echo "$endpoints" >"$dir/endpoints"
    echo "$endpoints"
    ;;
  stop)
    stop_pids "$dir"/m*.pid
    ;;
  kill-member)
    i=${3:?usage: etcd.sh kill-member DIR I}
    pid=$(cat "$dir/m$i.pid")
    kill -KILL "$pid" 2>/dev/null || true
    for n in $(seq 20); do
      running "$pid" || break
      sleep 0.1
    done
    rm -f "$dir/m$i.pid"
    ;;
  start-member)
    i=${3:?usage: etcd.sh start-member DIR I}
    [ -f "$dir/cluster" ] || { echo "etcd.sh: no cluster in $dir" >&2; exit 1; }
    if [ -f "$dir/m$i.pid" ] && running "$(cat "$dir/m$i.pid")"; then
      echo "etcd.sh: member $i is running" >&2
      exit 1
    fi
    start_member "$i"
    # shellcheck disable=SC1091
    . "$dir/cluster"
    # A member alone cannot be healthy (it needs quorum): wait until it serves at all.
    deadline=$((SECONDS + 20))
    until curl -s -m 1 "http://127.0.0.1:${CLIENT_PORTS[$i]}/version" >/dev/null 2>&1; do
      [ $SECONDS -lt $deadline ] || { echo "etcd.sh: member $i not serving after 20 s" >&2; exit 1; }
      sleep 0.1
    done
    ;;
  *)
    usage
    ;;
esac
