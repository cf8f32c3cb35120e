#!/bin/sh
# The simulator's soak: COUNT seeds (default 100,000) of the mixed scenarios (SCENARIO:
# another, e.g. replicas), from FIRST (default 1), split over every core, then the count and
# every failing seed.
#   tests/sim/soak.sh build/tests/sim/loom-sim [COUNT] [FIRST]
# Environment: JOBS (default: the cores), EXPECT7 (on|off, default on: invariant 7 fails a
# seed since docs/FENCING.md's rule landed), CHUNK (seeds per process,
# default 2000), SIM_ARGS (more loom-sim flags, e.g. --poll-touched: the same traces with
# less CPU). Exit status 1 when a seed failed.
set -eu
sim=${1:?usage: soak.sh PATH/TO/loom-sim [COUNT] [FIRST]}
count=${2:-100000}
first=${3:-1}
jobs=${JOBS:-$(nproc)}
expect7=${EXPECT7:-on}
chunk=${CHUNK:-2000}
simargs=${SIM_ARGS:-}
[ -n "${SCENARIO:-}" ] && simargs="--scenario $SCENARIO $simargs"
[ -x "$sim" ] || { echo "soak.sh: $sim is not an executable" >&2; exit 2; }
out=$(mktemp -d /tmp/loom-soak.XXXXXX)
trap 'rm -rf "$out"' EXIT INT TERM

last=$((first + count - 1))
start=$(date +%s)
echo "soak: seeds $first-$last${SCENARIO:+ of $SCENARIO}, $jobs jobs of $chunk seeds, invariant 7 $expect7"
seq "$first" "$chunk" "$last" | xargs -P "$jobs" -I{} sh -c '
  a={}; b=$((a + '"$chunk"' - 1)); [ $b -gt '"$last"' ] && b='"$last"'
  "'"$sim"'" --seeds "$a-$b" --quiet --traces 0 --expect-invariant7 '"$expect7"' '"$simargs"' > "'"$out"'/$a.txt" 2>&1 || true'
secs=$(( $(date +%s) - start ))

seeds=$(grep -h '^loom-sim: ' "$out"/*.txt | awk '{s += $2} END {print s + 0}')
fails=$(grep -h "^FAIL seed=" "$out"/*.txt || true)
nfail=$(printf '%s' "$fails" | grep -c . || true)
inv1=$(grep -h 'invariant 1 (no double run)' "$out"/*.txt | awk '{s += $6} END {print s + 0}')
inv7=$(grep -h 'invariant 7 (outage' "$out"/*.txt | awk '{s += $9} END {print s + 0}')
conv=$(grep -h 'convergence after the heal' "$out"/*.txt | awk '{s += $5} END {print s + 0}')
echo "soak: $seeds seeds run in ${secs} s ($((seeds / (secs > 0 ? secs : 1))) seeds/s over $jobs jobs)"
echo "soak: invariant 1 violated by $inv1 seeds, invariant 7 by $inv7 seeds ($expect7), convergence failed by $conv seeds"
if grep -q '^  replicas (' "$out"/*.txt; then
  # "  replicas (N seeds): one acting replica violated by A seeds, past-term commits applied in B, acknowledged changes lost in C"
  grep -h '^  replicas (' "$out"/*.txt | awk '{n += substr($2, 2); a += $9; b += $15; c += $20}
    END {printf "soak: replicas (%d seeds): one acting replica violated by %d seeds, past-term commits applied in %d, acknowledged changes lost in %d\n", n, a, b, c}'
fi
if [ "$seeds" -ne "$count" ]; then
  echo "soak: expected $count seeds, counted $seeds: a loom-sim process did not finish" >&2
  grep -L '^loom-sim: ' "$out"/*.txt | sed 's/^/  no summary: /' >&2
  exit 1
fi
if [ "$nfail" -gt 0 ]; then
  echo "soak: $nfail failing seeds:"
  # Each: the FAIL line, its first violation (the most telling one first) and how to replay it.
  cat "$out"/*.txt | awk '
    /^FAIL seed=/ { head = $0; serious = ""; inv7 = ""; next }
    /^  (invariant 1|convergence|setup|one acting replica|past-term commit|acknowledged change) at/ && serious == "" { serious = $0; next }
    /^  invariant 7 at/ && inv7 == "" { inv7 = $0; next }
    /^  replay:/ && head != "" {
      print "  " head; print "  " substr(serious != "" ? serious : inv7, 1, 240); print "  " $0; head = "" }'
  exit 1
fi
echo "soak: no failures"
