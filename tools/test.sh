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

# libvirtd and virtlogd for the qemu:///system tests; stopped again on exit.
if [ -x "$root/tools/libvirtd.sh" ]; then
  trap '"$root/tools/libvirtd.sh" stop || true' EXIT
  "$root/tools/libvirtd.sh" start || echo "test: libvirtd could not start; qemu:///system tests will skip with the reason"
fi

cd "$build"
ctest --output-on-failure --timeout 900 -j"$(nproc)" "$@"
