#!/usr/bin/env bash
# The test command: installs dependencies, builds, starts the servers the tests need
# (libvirtd, virtlogd), runs the whole suite with ctest, and stops what it started.
#   sudo tools/test.sh            # everything
#   sudo tools/test.sh -L unit    # extra arguments go to ctest
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_BUILD_DIR:-$root/build}

"$root/tools/install-deps.sh"
"$root/tools/build.sh"

# The libFuzzer targets (tests/fuzz) in a build of their own (clang, ASan, UBSan:
# tools/fuzz.sh), for the ctest cases labelled `fuzz` that run each 20 s. LOOM_FUZZ=0
# skips the build; those cases then skip (fail under CI=true).
if [ "${LOOM_FUZZ:-}" != 0 ]; then
  LOOM_FUZZ_BUILD_DIR="$build-fuzz" "$root/tools/fuzz.sh" build
fi

# libvirtd and virtlogd for the qemu:///system tests; stopped again on exit. On a developer's
# machine the real-KVM tests skip (with the reason) when libvirtd cannot start. Under CI
# (CI=true) where /dev/kvm exists they can run, so they must: the run stops here and says
# why, rather than going green with every real-KVM test skipped (and the tests themselves
# fail instead of skipping under CI=true, for a ctest run without this script).
if [ -x "$root/tools/libvirtd.sh" ]; then
  trap '"$root/tools/libvirtd.sh" stop || true' EXIT
  if ! "$root/tools/libvirtd.sh" start; then
    if [ "${CI:-}" = true ] && [ -e /dev/kvm ]; then
      echo "test: FAIL: libvirtd could not start (libvirtd.sh said why, above) on a machine with /dev/kvm;" \
        "CI=true: the real-KVM tests (ctest -L kvm-system) must run here, not skip. Not running the suite." >&2
      exit 1
    fi
    echo "test: libvirtd could not start; qemu:///system tests will skip with the reason"
  fi
fi

# Lint (tools/lint.sh tidy: clang-tidy over the production sources, ~10 s of CPU a file)
# runs beside the suite at nice 19: it takes the CPU the e2e tiers leave idle while they
# wait on timers, and yields to their processes whenever they run. Only for a whole-suite run (no ctest
# arguments) unless LOOM_LINT=1; LOOM_LINT=0 skips it. Format is a ctest case
# (house.EveryFileIsFormatted).
tidy_pid=
if [ "${LOOM_LINT:-}" = 1 ] || { [ $# -eq 0 ] && [ "${LOOM_LINT:-}" != 0 ]; }; then
  nice -n 19 "$root/tools/lint.sh" tidy "$build" "$root" > "$build/lint-tidy.log" 2>&1 &
  tidy_pid=$!
  trap '[ -n "$tidy_pid" ] && kill "$tidy_pid" 2>/dev/null; "$root/tools/libvirtd.sh" stop || true' EXIT
fi

cd "$build"
rc=0
ctest --output-on-failure --timeout 900 -j"$(nproc)" "$@" || rc=$?
if [ -n "$tidy_pid" ]; then
  if wait "$tidy_pid"; then
    echo "test: lint: clang-tidy finds nothing in the production sources ($build/lint-tidy.log)"
  else
    grep -E 'error:|warning:' "$build/lint-tidy.log" | sed 's/\x1b\[[0-9;]*m//g' | sort -u >&2 || true
    echo "test: FAIL: clang-tidy (tools/lint.sh tidy, .clang-tidy) finds the problems above; full log $build/lint-tidy.log" >&2
    rc=1
  fi
  tidy_pid=
fi
exit $rc
