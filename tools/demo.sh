#!/usr/bin/env bash
# The demo: installs dependencies, builds, validates the example declarations and plans
# them onto the example fabric, printing the placement.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_BUILD_DIR:-$root/build}

"$root/tools/install-deps.sh"
"$root/tools/build.sh"

loomctl="$build/tools/loomctl"
examples=("$root"/config/examples/*.yaml)
decls=()
for f in "${examples[@]}"; do
  case "$(basename "$f")" in fabric*.yaml) ;; *) decls+=("$f") ;; esac
done
echo "== loomctl validate"
"$loomctl" validate $(printf -- '-f %s ' "${decls[@]}")
echo
echo "== loomctl plan onto config/examples/fabric.yaml"
"$loomctl" plan $(printf -- '-f %s ' "${decls[@]}") --fabric "$root/config/examples/fabric.yaml"
