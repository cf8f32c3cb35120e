#!/usr/bin/env python3
"""What the real fence_ipmilan takes against an OpenIPMI ipmi_sim BMC (tests/e2e/bmc.py),
not a test: one simulated blade behind its BMC, its state file seeded with --domains
running domains before every power-off (the test driver's format), so the BMC's
power-off (its machine: kill the blade's agent, `loom-agent sim-power-off`, exit) does
the work it does in a failover. The blade's "agent" is a sleep: nothing here talks to
loomd. Each of --runs rounds, wall time of the whole fence_ipmilan process:
  status_ms        fence_ipmilan -o status (one ipmitool lanplus call)
  off_ms           -o off --power-wait=0: status, power off, then status until "off"
                   (fence_ipmilan polls once a second: ~1 s more whenever its first poll
                   comes before the machine has finished)
  off_default_ms   -o off with fence_ipmilan's own default --power-wait=2 (what an operator's
                   unchanged line does)
  on_ms            -o on
Prints every round, the medians and the command line that reproduces it.
Usage: fence_agent_bench.py --agent PATH [--runs 10 --domains 16]"""
import argparse, json, os, shlex, shutil, statistics, sys, tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import bmc  # noqa: E402

def seed_state(path, blade, n):
    """n running domains in the test driver's state file (drivers/test/TestDriver.cpp)."""
    domains = [{"spec": {"name": f"s{i}", "uuid": f"4c4f4f4d-0000-0000-00ff-{i:012x}", "vcpus": 1, "memory_mib": 512,
                         "nics": [{"mac": f"52:54:00:ff:00:{i:02x}", "network": "net", "bridge": ""}], "disks": [],
                         "kernel": "", "initrd": "", "cmdline": "", "xen_type": 0}, "state": 1} for i in range(n)]
    with open(path + ".tmp", "w") as f:
        json.dump({"blade": blade, "domains": domains}, f)
    os.rename(path + ".tmp", path)

def timed(bmcs, blade, action, **kw):
    rc, out, seconds = bmcs.fence_ipmilan(blade, action, **kw)
    if rc not in (0, 2 if action == "status" else 0):
        raise RuntimeError(f"fence_ipmilan -o {action}: exit {rc}: {out.strip()}")
    return round(seconds * 1000)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True, help="loom-agent (for sim-power-off)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--domains", type=int, default=16)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="loom-fence-agent-bench-")
    blade, sim = "b1", os.path.join(work, "sim")
    os.makedirs(sim)
    state = os.path.join(sim, f"{blade}.domains.json")
    results = []
    try:
        with bmc.Bmcs(work) as bmcs:
            seed_state(state, blade, args.domains)
            bmcs.add(blade, ["sleep", "3600"], [args.agent, "sim-power-off", "--sim-state", sim, "--blade", blade,
                                                "--journal", os.path.join(work, "journal")])
            bmcs.wait_ready(timeout=30)
            print("fence_ipmilan line:", shlex.join(bmcs[blade].argv("off")), flush=True)
            for run in range(1, args.runs + 1):
                r = {"status_ms": timed(bmcs, blade, "status")}
                r["off_ms"] = timed(bmcs, blade, "off")
                seed_state(state, blade, args.domains)
                r["on_ms"] = timed(bmcs, blade, "on")
                bmcs.wait_ready(timeout=30)
                r["off_default_ms"] = timed(bmcs, blade, "off", power_wait=2)
                seed_state(state, blade, args.domains)
                timed(bmcs, blade, "on")
                bmcs.wait_ready(timeout=30)
                print(f"run {run}: " + ", ".join(f"{k}={v}" for k, v in r.items()), flush=True)
                results.append(r)
    finally:
        if args.keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"median of {len(results)} runs ({args.domains} domains ended by each power-off):")
    for k in results[0]:
        values = [r[k] for r in results]
        print(f"  {k}: {statistics.median(values)} (min {min(values)}, max {max(values)})")
    print("reproduce: " + " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv))
    return 0

if __name__ == "__main__":
    sys.exit(main())
