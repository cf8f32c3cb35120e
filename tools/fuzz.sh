#!/usr/bin/env bash
# Builds and runs Loom's libFuzzer targets (tests/fuzz), in a build directory of their own
# ($LOOM_FUZZ_BUILD_DIR, default build-fuzz) with clang, ASan and UBSan.
#   tools/fuzz.sh build                   configure and build every target
#   tools/fuzz.sh [TARGET|all] [SECONDS]  build, then fuzz each TARGET for SECONDS (default 60)
#   tools/fuzz.sh --smoke TARGET SECONDS  fuzz without building (ctest's `fuzz` cases):
#                                         exit 77 (skip) when not built, 1 under CI=true
# Targets: declarations wire relay_envelope http_api. The seeds are tests/fuzz/corpus/TARGET
# (declarations: config/examples); what the fuzzer adds goes to BUILD/corpus/TARGET, a
# finding to BUILD/findings/TARGET/ (crash-*, timeout-*, oom-*, leak-*), replayed by
# BUILD/tests/fuzz/fuzz_TARGET FILE. Every finding becomes a unit test and a fix
# (docs/SECURITY.md, "Fuzzing"). Run it niced on a shared machine: nice -n 19 tools/fuzz.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_FUZZ_BUILD_DIR:-$root/build-fuzz}
targets=(declarations wire relay_envelope http_api)

smoke=0
if [ "${1:-}" = --smoke ]; then
  smoke=1
  shift
fi
what=${1:-all}
seconds=${2:-60}

configure_and_build() {
  local cxx
  cxx=$(command -v clang++ || true)
  if [ -z "$cxx" ]; then
    echo "fuzz: clang++ not found (tools/install-deps.sh installs clang and libclang-rt-14-dev)" >&2
    return 1
  fi
  # Every Loom library the targets link gets the sanitizers and the fuzzer's coverage.
  local flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" -DLOOM_FUZZ=ON \
      -DCMAKE_CXX_FLAGS="$flags" -DLOOM_WITH_KVM=OFF -DLOOM_WITH_XEN=OFF \
      ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER} >/dev/null
  fi
  cmake --build "$build" -j"${LOOM_FUZZ_JOBS:-$(nproc)}" --target "${targets[@]/#/fuzz_}"
}

# libFuzzer's options per target: the largest input worth trying, and the dictionary.
options_of() {
  case $1 in
    declarations) echo "-max_len=16384 -dict=$root/tests/fuzz/declarations.dict" ;;
    wire) echo "-max_len=8192 -dict=$root/tests/fuzz/wire.dict" ;;
    relay_envelope) echo "-max_len=4096 -dict=$root/tests/fuzz/relay_envelope.dict" ;;
    # The core keeps its state from one input to the next (fuzz_http_api.cpp): libFuzzer's
    # per-input leak check takes that growth for leaks and scans the heap after nearly
    # every input (66 runs/s instead of 625). ASan's leak check at exit stays.
    http_api) echo "-max_len=16384 -dict=$root/tests/fuzz/http_api.dict -detect_leaks=0" ;;
  esac
}

seeds_of() {
  if [ "$1" = declarations ]; then echo "$root/config/examples"; else echo "$root/tests/fuzz/corpus/$1"; fi
}

run_one() {
  local target=$1 bin=$build/tests/fuzz/fuzz_$1
  if [ ! -x "$bin" ]; then
    if [ "$smoke" = 1 ]; then
      if [ "${CI:-}" = true ]; then
        echo "fuzz: FAIL: $bin is not built; CI=true: tools/test.sh builds it (tools/fuzz.sh build)" >&2
        exit 1
      fi
      echo "SKIP: $bin is not built (tools/fuzz.sh build)"
      exit 77
    fi
    echo "fuzz: $bin is not built" >&2
    exit 1
  fi
  local corpus=$build/corpus/$target findings=$build/findings/$target log=$build/findings/$target.log
  if [ "$smoke" = 1 ]; then log=$build/findings/$target.smoke.log; fi
  mkdir -p "$corpus" "$findings"
  # shellcheck disable=SC2046
  if ! "$bin" $(options_of "$target") -timeout=10 -rss_limit_mb=2048 -max_total_time="$seconds" \
      -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" "$(seeds_of "$target")" > "$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: FAIL: fuzz_$target found a problem; the input is in $findings/ (replay: $bin FILE)" >&2
    return 1
  fi
  local runs
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  echo "fuzz: fuzz_$target: ${runs:-?} executions in $seconds s, no finding (corpus $corpus, log $log)"
}

if [ "$what" = build ]; then
  configure_and_build
  exit
fi
[ "$smoke" = 1 ] || configure_and_build
if [ "$what" = all ]; then
  rc=0
  for t in "${targets[@]}"; do run_one "$t" || rc=1; done
  exit $rc
fi
case " ${targets[*]} " in
  *" $what "*) run_one "$what" ;;
  *) echo "fuzz: unknown target '$what' (one of: ${targets[*]}, all, build)" >&2; exit 2 ;;
esac
