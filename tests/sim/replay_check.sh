#!/bin/sh
# A seed replays bit for bit in another process (another address layout, another heap):
# each seed runs twice, in two processes, and the hashes of their full traces must agree.
#   [SCENARIO=replicas] tests/sim/replay_check.sh PATH/TO/loom-sim SEED...   (default: mixed)
set -eu
sim=${1:?usage: replay_check.sh PATH/TO/loom-sim SEED...}
shift
scenario=${SCENARIO:-mixed}
for seed in "$@"; do
  a=$("$sim" --seed "$seed" --scenario "$scenario" --expect-invariant7 off | grep 'trace hash' || true)
  b=$("$sim" --seed "$seed" --scenario "$scenario" --expect-invariant7 off | grep 'trace hash' || true)
  if [ -z "$a" ] || [ "$a" != "$b" ]; then
    echo "replay_check: seed $seed differs between two processes:"
    echo "  $a"
    echo "  $b"
    exit 1
  fi
  echo "replay_check: $a"
done
