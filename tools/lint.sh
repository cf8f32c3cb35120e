#!/usr/bin/env bash
# Format and lint (issue 14), with Debian's clang-format and clang-tidy (clang-14).
#   tools/lint.sh format [ROOT]          every tracked C++ file passes clang-format --dry-run --Werror
#                                        (.clang-format); prints FILE:LINE of each difference
#   tools/lint.sh tidy BUILD [ROOT]      every production source passes clang-tidy (.clang-tidy:
#                                        bugprone, performance, readable modernize; warnings are
#                                        errors) with BUILD's compile_commands.json, nproc jobs
# Fix formatting with: git ls-files '*.cpp' '*.h' | xargs clang-format -i
set -euo pipefail
what=${1:-}
case "$what" in
  format)
    root=$(cd "${2:-$(dirname "$0")/..}" && pwd)
    cd "$root"
    # Fixtures under tests/tools/data are deliberate violations of other rules.
    mapfile -t files < <(git ls-files '*.cpp' '*.h' | grep -v '^tests/tools/data/')
    [ ${#files[@]} -gt 0 ] || { echo "lint: no C++ files under $root" >&2; exit 2; }
    if ! clang-format --dry-run --Werror "${files[@]}"; then
      echo "lint: clang-format finds the files above unformatted; run: git ls-files '*.cpp' '*.h' | xargs clang-format -i" >&2
      exit 1
    fi
    echo "lint: ${#files[@]} files formatted as .clang-format says"
    ;;
  tidy)
    build=$(cd "${2:?usage: tools/lint.sh tidy BUILD [ROOT]}" && pwd)
    root=$(cd "${3:-$(dirname "$0")/..}" && pwd)
    [ -f "$build/compile_commands.json" ] || { echo "lint: $build/compile_commands.json missing (configure with cmake first)" >&2; exit 2; }
    # Production sources only: tests follow gtest's idioms, which some checks dislike.
    run-clang-tidy -p "$build" -quiet -j "$(nproc)" "^$root/(common|pool|config|controller|node-agent|drivers|protocol|tools)/.*\.cpp$"
    ;;
  *)
    sed -n '2,9p' "$0" >&2
    exit 2
    ;;
esac
