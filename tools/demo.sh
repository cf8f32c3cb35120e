#!/usr/bin/env bash
# The demo: installs dependencies, builds, then runs a real (small) fabric on loopback:
# loomd with its embedded SQLite store, one loom-agent process simulating every blade of
# config/examples/fabric.yaml (test driver), the example declarations applied with
# loomctl, and the inventory shown. Everything it starts is stopped when it ends.
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
export LOOM_CONTROLLER="http://127.0.0.1:$api_port"

pids=()
cleanup() {
  if [ "$keep" -eq 1 ]; then
    echo "demo: left running (pids ${pids[*]}); state and logs in $work"
    return
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo: stopped loomd and the agents; state and logs in $work"
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

step "start loom-agent --simulate $examples/fabric.yaml (one agent per blade, test driver)"
"$agent" --insecure --controller "tcp://127.0.0.1:$fabric_port" --simulate "$examples/fabric.yaml" \
  --journal "$work/journal.jsonl" >"$work/agents.log" 2>&1 &
pids+=($!)

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
