#!/usr/bin/env bash
# The demo: installs dependencies, builds, then runs a real (small) fabric on loopback:
# loomd with its embedded SQLite store, loom-agent processes simulating every blade of
# config/examples/fabric.yaml (test driver) -- chassis c2's through a fabric relay, the
# others directly -- the example declarations applied with loomctl, the inventory shown,
# then a failover: the agent of one blade is killed and its servers restart on the pool's
# spare once its lease has run out. Everything it starts is stopped when it ends.
#   sudo tools/demo.sh            # run the demo
#   sudo tools/demo.sh --keep     # leave loomd and the agents running afterwards
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_BUILD_DIR:-$root/build}
keep=0
[ "${1:-}" = "--keep" ] && keep=1

"$root/tools/install-deps.sh"
"$root/tools/build.sh"

loomd="$build/controller/loomd"
agent="$build/node-agent/loom-agent"
loomctl="$build/tools/loomctl"
examples="$root/config/examples"
work=${LOOM_DEMO_DIR:-$(mktemp -d /tmp/loom-demo.XXXXXX)}
api_port=${LOOM_DEMO_API_PORT:-7780}
fabric_port=${LOOM_DEMO_FABRIC_PORT:-7700}
relay_port=${LOOM_DEMO_RELAY_PORT:-7701}
export LOOM_CONTROLLER="http://127.0.0.1:$api_port"

pids=()
cleanup() {
  if [ "$keep" -eq 1 ]; then
    echo "demo: left running (pids ${pids[*]}); state and logs in $work"
    return
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo: stopped loomd, the relay and the agents; state and logs in $work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "loomctl validate (offline)"
decls=(-f "$examples/partitions.yaml" -f "$examples/networks.yaml" -f "$examples/identity.yaml"
       -f "$examples/pools.yaml" -f "$examples/servers.yaml")
"$loomctl" validate "${decls[@]}"

step "start loomd (state: $work/state.db, agents: tcp://127.0.0.1:$fabric_port, api: 127.0.0.1:$api_port)"
"$loomd" --insecure --state "$work/state.db" --agents "tcp://127.0.0.1:$fabric_port" \
  --api "127.0.0.1:$api_port" >"$work/loomd.log" 2>&1 &
pids+=($!)
# Its first start writes the admin token beside the state, readable by its owner only;
# loomctl sends it (LOOM_TOKEN; `loomctl login` would keep it in ~/.config/loom/loomctl.yaml).
for _ in $(seq 1 100); do [ -s "$work/admin.token" ] && break; sleep 0.1; done
LOOM_TOKEN=$(cat "$work/admin.token")
export LOOM_TOKEN
echo "demo: the admin token is in $work/admin.token (LOOM_TOKEN)"

# Chassis c2's agents reach loomd through a relay: one connection for the chassis.
step "start loom-agent relay --name c2 (agents of chassis c2 connect here: tcp://127.0.0.1:$relay_port)"
"$agent" relay --name c2 --insecure --listen "tcp://127.0.0.1:$relay_port" --controller "tcp://127.0.0.1:$fabric_port" \
  >"$work/relay-c2.log" 2>&1 &
pids+=($!)

# The blade the failover act kills runs in its own agent process; the rest share one.
victim=c1-s1
others=$(grep -o 'name: [A-Za-z0-9._-]*' "$examples/fabric.yaml" | awk '{print $2}' | grep -vx "$victim" | paste -sd, -)
step "start loom-agent --simulate $examples/fabric.yaml (one agent per blade, test driver; c2 through its relay; $victim in its own process)"
"$agent" --insecure --controller "tcp://127.0.0.1:$fabric_port" --simulate "$examples/fabric.yaml" --only "$others" \
  --relay "c2=tcp://127.0.0.1:$relay_port" --journal "$work/journal.jsonl" >"$work/agents.log" 2>&1 &
pids+=($!)
"$agent" --insecure --controller "tcp://127.0.0.1:$fabric_port" --simulate "$examples/fabric.yaml" --only "$victim" \
  --sim-state "$work/sim" --journal "$work/journal.jsonl" >"$work/agent-$victim.log" 2>&1 &
victim_pid=$!
pids+=($victim_pid)

# Wait (bounded) until every blade of the fabric has registered.
want=$(grep -c 'name:' "$examples/fabric.yaml")
for _ in $(seq 1 100); do
  have=$("$loomctl" -o json blade list 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0)
  [ "$have" -ge "$want" ] && break
  sleep 0.2
done
echo "demo: $have of $want blades registered"

step "loomctl apply (the example partitions, networks, identity pool, pools and servers)"
"$loomctl" apply --yes "${decls[@]}"

step "loomctl blade list"
"$loomctl" blade list
step "loomctl pool list"
"$loomctl" pool list
step "loomctl server list"
"$loomctl" server list
step "loomctl fabric (the chassis, front view)"
"$loomctl" fabric
step "loomctl capacity"
"$loomctl" capacity
step "loomctl audit (who changed what, from where)"
"$loomctl" audit

# Failover: the blade's agent dies with its domains still "running" (kill -9). loomd fences
# the blade once the lease it granted has run out (5 s + 250 ms; the blade's watchdog has
# ended its domains by then) and restarts its servers, same UUID and MACs, on the spare.
moving=$("$loomctl" -o json blade show "$victim" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["servers"]))')
step "failover: kill -9 the agent of $victim (it runs: ${moving:-nothing})"
last_event=$("$loomctl" -o json events --limit 10000 | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e[-1]["id"] if e else 0)')
t0=$(date +%s%N)
{ kill -9 "$victim_pid"; wait "$victim_pid"; } 2>/dev/null || true
for _ in $(seq 1 150); do
  state=$("$loomctl" -o json blade show "$victim" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  moved=$("$loomctl" -o json server list | python3 -c '
import json, sys
servers = {s["name"]: s for s in json.load(sys.stdin)}
names = sys.argv[1].split()
print(all(servers[n]["state"] == "running" and servers[n]["blade"] != sys.argv[2] for n in names))' "$moving" "$victim")
  [ "$state" = fenced ] && [ "$moved" = True ] && break
  sleep 0.1
done
echo "demo: $victim is $state; its servers running elsewhere: $moved, $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill"
"$loomctl" events --since "$last_event"
step "loomctl server list --pool web (where they run now) and loomctl blade list --chassis c1"
"$loomctl" server list --pool web
"$loomctl" blade list --chassis c1
