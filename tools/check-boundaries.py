#!/usr/bin/env python3
"""The house's rules (issue 14): which component may include which. Every `#include "X/..."`
in a component's sources names the component X it reaches; a reach the table below does
not allow is printed as FILE:LINE with the rule, and the exit code is 1.

  pool/         the model and planner: common only (pure: no I/O library either)
  config/       YAML -> model: pool
  drivers/      the hypervisor drivers: pool, never controller, config, protocol, tools
  protocol/     the fabric's wire schema: pool, never a driver
  controller/   loomd: protocol, pool, config, never drivers or node-agent
  node-agent/   loom-agent: protocol, drivers, pool, config, never controller
  tools/        loomctl and scripts: config, pool; the controller only over HTTP
  tests/        anything

`loom/...` is common/ (Result.h, CommandLine.h). Usage: check-boundaries.py [ROOT]
(default: the repository this script is in). Python 3 stdlib only."""
import os, re, sys

ALLOWED = {
    "common": set(),
    "pool": {"common"},
    "config": {"common", "pool"},
    "drivers": {"common", "pool"},
    "protocol": {"common", "pool"},
    "controller": {"common", "pool", "config", "protocol"},
    "node-agent": {"common", "pool", "config", "protocol", "drivers"},
    "tools": {"common", "pool", "config"},
}
# What an include's first path segment names.
ALIASES = {"loom": "common"}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([A-Za-z0-9_.-]+)/')
SOURCES = (".h", ".hpp", ".cpp", ".cc")


def check(root):
    problems = []
    for component, allowed in ALLOWED.items():
        base = os.path.join(root, component)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith("build")]
            for name in sorted(filenames):
                if not name.endswith(SOURCES):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = ALIASES.get(m.group(1), m.group(1))
                        if target == component or target not in ALLOWED:
                            continue  # its own header, or not a component (a library's)
                        if target not in allowed:
                            reach = ", ".join(sorted(allowed)) or "nothing"
                            problems.append(f"{os.path.relpath(path, root)}:{n}: includes {line.strip()[9:].strip()}: "
                                            f"{component}/ may not reach {target}/ (it may reach: {reach})")
    return problems


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    problems = check(root)
    for p in problems:
        print(p)
    print(f"check-boundaries: {len(problems)} include(s) break the house's rules" if problems
          else "check-boundaries: every include follows the house's rules")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
