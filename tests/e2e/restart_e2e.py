#!/usr/bin/env python3
"""End-to-end: a changed server takes effect (docs/SERVERS.md, "What a change to a
server does"). Real loomd, one loom-agent per blade with the test driver, and loomctl.

  resize    an operator resizes two running servers of one anti-affinity group with
            `loomctl apply`: the dry run names `memory: 2GiB → 3GiB (restart)` and the
            restarts; the apply stops, redefines and starts each where it ran, one at a
            time (the test driver's journal: their downtimes never overlap), and each
            blade's domain is then defined with 3 GiB (the test driver's state file);
            `restart_pending` says why until then, and nothing is pending after; a
            waiting `loomctl apply` returns once the restarts have happened
  live      a priority change restarts nothing: no step, no journal entry
  vlan      `loomctl apply` of the Network `front` with `vlan: 200` (no server in the
            file) waits for the restarts it causes: when it returns, both servers run,
            defined with VLAN 200 on their blades, nothing pending
  reset     `loomctl server reset web-0` waits and returns once web-0 runs again: the
            journal shows its run ended after the command and a new one open, on the same
            blade; web-1 is not touched; a reset of a stopped server exits 1 saying so

Every wait is bounded; every process is killed at the end.
Usage: restart_e2e.py --loomd PATH --agent PATH --loomctl PATH [--keep] [--scenario NAME ...]"""
import json, os, subprocess, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, arg_parser, check, read_journal, journal_runs, prod_preamble, run_scenarios, wait_until

FABRIC = """
blades:
  - {name: b1, chassis: c1, slot: 1, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: b2, chassis: c1, slot: 2, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: b3, chassis: c1, slot: 3, cores: 8, memory: 16GiB, hypervisor: [kvm]}
"""

POOLS = prod_preamble("52:54:00:18:00:00-52:54:00:18:ff:ff", "4c4f4f4d-0018-0000-0000-000000000000/16") + """---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {match: {chassis: c1}}
"""

def servers(memory, priority=0):
    return "".join(f"""---
kind: Server
name: web-{i}
partition: prod
pool: web
vcpus: 2
memory: {memory}
priority: {priority + (10 if i == 1 else 0)}
nics: [{{network: front}}]
anti_affinity: web
power: on
""" for i in range(2)).lstrip("-\n")

NAMES = ("web-0", "web-1")

def loomctl(fab, args, *argv):
    r = subprocess.run([args.loomctl, "--controller", fab.api, *argv], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, NO_COLOR="1"))
    print("  $ loomctl " + " ".join(argv) + f"  (exit {r.returncode})\n" + "".join("    " + l + "\n" for l in r.stdout.splitlines()),
          end="", flush=True)
    return r

def bring_up(fab):
    fabric_yaml = fab.write("fabric.yaml", FABRIC)
    fab.start_loomd()
    for b in ("b1", "b2", "b3"):
        fab.start_sim_agent(fabric_yaml, only=b)
    wait_until(lambda: len([b for b in fab.get("/v1/blades") if b["online"]]) == 3, 20, "3 blades registered")
    status, body = fab.request("POST", "/v1/apply?source=web.yaml", POOLS + "---\n" + servers("2GiB"))
    check(status == 200, f"pools and servers -> 200 ({(body or '')[:300] if status != 200 else ''})")
    wait_until(lambda: all(fab.get("/v1/servers/" + n)["state"] == "running" for n in NAMES), 30, "both servers running")
    where = {n: fab.get("/v1/servers/" + n)["blade"] for n in NAMES}
    check(where["web-0"] != where["web-1"], f"anti-affinity: on two blades {where}")
    return where

def defined_memory(fab, blade, server):
    """What the blade's test driver holds for the server: its domain's memory_mib."""
    with open(fab.path("sim", blade + ".domains.json")) as f:
        for d in json.load(f)["domains"]:
            if d["spec"]["name"] == server:
                return d["spec"]["memory_mib"], d["state"]
    return None, None

def resize(fab, args):
    where = bring_up(fab)
    uuids = {n: fab.get("/v1/servers/" + n)["uuid"] for n in NAMES}
    for n in NAMES:
        check(defined_memory(fab, where[n], n) == (2048, "running"), f"{n}: defined on {where[n]} with 2048 MiB, running")
    runs_before = {n: len(journal_runs(read_journal(fab.path("journal"))).get(uuids[n], [])) for n in NAMES}

    path = fab.write("resized.yaml", servers("3GiB"))
    print("== loomctl apply --dry-run: the fields, the restarts, the steps", flush=True)
    dry = loomctl(fab, args, "apply", "-f", path, "--dry-run")
    check(dry.returncode == 0, "dry run exits 0", dry.stderr)
    check("~ Server/web-0" in dry.stdout and "memory: 2GiB → 3GiB (restart)" in dry.stdout,
          "the diff names the field: memory: 2GiB → 3GiB (restart)", dry.stdout)
    check("restart web-1: memory 2GiB → 3GiB" in dry.stdout, "and the restarts, with why", dry.stdout)
    check("3 steps" in dry.stdout, "one server's stop, define, start: one of the group at a time", dry.stdout)
    check(all("restart_pending" not in fab.get("/v1/servers/" + n) for n in NAMES), "the dry run changed nothing")

    print("== loomctl apply --yes --no-wait: restart_pending says why", flush=True)
    t_apply = int(time.time() * 1000)
    r = loomctl(fab, args, "apply", "-f", path, "--yes", "--no-wait")
    check(r.returncode == 0, "apply exits 0", r.stderr)
    pending = {n: fab.get("/v1/servers/" + n).get("restart_pending") for n in NAMES}
    print("  restart_pending right after the apply:", pending, flush=True)
    check(pending["web-0"] in (None, "memory 2GiB → 3GiB"), "restart_pending says why (or it is already over)")

    def settled():
        objs = {n: fab.get("/v1/servers/" + n) for n in NAMES}
        return all(o["state"] == "running" and "restart_pending" not in o for o in objs.values()) and all(
            defined_memory(fab, where[n], n) == (3072, "running") for n in NAMES)
    wait_until(settled, 30, "both servers restarted with 3 GiB")
    for n in NAMES:
        check(fab.get("/v1/servers/" + n)["blade"] == where[n], f"{n} restarted where it ran ({where[n]})")
        check(fab.get("/v1/servers/" + n)["memory_mib"] == 3072, f"{n}: the API says 3072 MiB")
        check(defined_memory(fab, where[n], n) == (3072, "running"), f"{n}: {where[n]}'s driver defines it with 3072 MiB")

    print("== the journal: each stopped and started once more, never both down at once", flush=True)
    runs = journal_runs(read_journal(fab.path("journal")))
    gaps = {}
    for n in NAMES:
        mine = runs.get(uuids[n], [])
        check(len(mine) == runs_before[n] + 1 and mine[-1]["to"] is None and mine[-2]["to"] is not None
              and mine[-2]["to"] >= t_apply, f"{n}: its run ended after the apply and a new one is open", str(mine))
        gaps[n] = (mine[-2]["to"], mine[-1]["from"])
    (a0, a1), (b0, b1) = gaps["web-0"], gaps["web-1"]
    check(a1 <= b0 or b1 <= a0, f"downtimes do not overlap: web-0 {gaps['web-0']}, web-1 {gaps['web-1']}")
    check(b1 <= a0, "web-1 (priority 10) restarted first")

    listing = loomctl(fab, args, "server", "show", "web-0")
    check(listing.returncode == 0 and "restart pending" not in listing.stdout, "server show: no restart pending")

    print("== loomctl apply (waits): when it returns, the restarts have happened", flush=True)
    path = fab.write("resized-again.yaml", servers("4GiB"))
    r = loomctl(fab, args, "apply", "-f", path, "--yes")
    check(r.returncode == 0 and "servers settled: 2/2" in r.stdout, "apply exits 0, both settled", r.stdout + r.stderr)
    check(all(defined_memory(fab, where[n], n) == (4096, "running") for n in NAMES),
          "both run with 4 GiB as apply returns")

def live(fab, args):
    bring_up(fab)
    before = len(read_journal(fab.path("journal")))
    path = fab.write("priority.yaml", servers("2GiB", priority=50))
    r = loomctl(fab, args, "apply", "-f", path, "--yes")
    check(r.returncode == 0, "apply exits 0", r.stderr)
    check("priority: 0 → 50" in r.stdout and "(restart)" not in r.stdout, "the diff names priority, no restart", r.stdout)
    check("0 steps" in r.stdout, "no step", r.stdout)
    time.sleep(1.0)  # a restart, if one were (wrongly) planned, would show in the journal by now
    check(len(read_journal(fab.path("journal"))) == before, "the journal: nothing stopped or started")
    check(all("restart_pending" not in fab.get("/v1/servers/" + n) for n in NAMES), "no restart pending")

def defined_vlans(fab, blade, server):
    with open(fab.path("sim", blade + ".domains.json")) as f:
        for d in json.load(f)["domains"]:
            if d["spec"]["name"] == server:
                return [n.get("vlan") for n in d["spec"]["nics"]], d["state"]
    return None, None

def vlan(fab, args):
    where = bring_up(fab)
    check(all(defined_vlans(fab, where[n], n) == ([None], "running") for n in NAMES), "both defined without a VLAN")
    # The file stands alone (its partition in it), so loomctl knows from the file itself that
    # it names no server.
    path = fab.write("front.yaml", "kind: Partition\nname: prod\n---\nkind: Network\nname: front\npartition: prod\n"
                     "vlan: 200\n")
    print("== loomctl apply -f front.yaml (waits): the restarts of servers the file does not name", flush=True)
    r = loomctl(fab, args, "apply", "-f", path, "--yes", "--timeout", "30")
    check(r.returncode == 0 and "servers settled: 2/2" in r.stdout, "apply exits 0 once both restarted",
          r.stdout + r.stderr)
    check(all(defined_vlans(fab, where[n], n) == ([200], "running") for n in NAMES),
          "as apply returns, both run defined with VLAN 200", str({n: defined_vlans(fab, where[n], n) for n in NAMES}))
    check(all("restart_pending" not in fab.get("/v1/servers/" + n) for n in NAMES), "nothing pending")

def reset(fab, args):
    where = bring_up(fab)
    uuids = {n: fab.get("/v1/servers/" + n)["uuid"] for n in NAMES}
    runs_before = {n: list(journal_runs(read_journal(fab.path("journal"))).get(uuids[n], [])) for n in NAMES}
    print("== loomctl server reset web-0 (waits): stopped and started again where it runs", flush=True)
    t_reset = int(time.time() * 1000)
    r = loomctl(fab, args, "server", "reset", "web-0", "--timeout", "30")
    check(r.returncode == 0, "reset exits 0 once web-0 runs again", r.stdout + r.stderr)
    runs = journal_runs(read_journal(fab.path("journal")))
    mine = runs.get(uuids["web-0"], [])
    check(len(mine) == len(runs_before["web-0"]) + 1 and mine[-1]["to"] is None and mine[-2]["to"] is not None
          and mine[-2]["to"] >= t_reset, "web-0: its run ended after the reset and a new one is open", str(mine))
    obj = fab.get("/v1/servers/web-0")
    check(obj["state"] == "running" and obj["blade"] == where["web-0"] and "restart_pending" not in obj,
          f"web-0 runs again on {where['web-0']}, nothing pending", str(obj))
    check(runs.get(uuids["web-1"], []) == runs_before["web-1"], "web-1 was not touched")
    events = loomctl(fab, args, "events")
    check("web-0: server reset by token" in events.stdout, "the reset is an event", events.stdout)

    print("== a stopped server: nothing to reset", flush=True)
    check(loomctl(fab, args, "server", "stop", "web-1").returncode == 0, "web-1 stopped")
    r = loomctl(fab, args, "server", "reset", "web-1")
    check(r.returncode == 1 and "powered off" in r.stderr, "reset of a stopped server exits 1 saying why", r.stderr)

def main():
    ap = arg_parser()
    ap.add_argument("--loomctl", required=True)
    ap.add_argument("--scenario", action="append", default=[])
    args = ap.parse_args()
    scenarios = [("resize", lambda fab: resize(fab, args)), ("live", lambda fab: live(fab, args)),
                 ("vlan", lambda fab: vlan(fab, args)), ("reset", lambda fab: reset(fab, args))]
    return run_scenarios(scenarios, args, lambda name: Cluster(args.loomd, args.agent, prefix=f"loom-restart-{name}-",
                                                                keep=args.keep))

if __name__ == "__main__":
    sys.exit(main())
