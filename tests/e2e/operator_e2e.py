#!/usr/bin/env python3
"""End-to-end: the operator's loop (issue 18, "a tool that exits 0 while nothing happened").
A real loomd and one `loom-agent --simulate` process per blade (b1..b3, chassis c1, pool
web of partition prod), driven only through the real loomctl, as an operator with the
README and --help would: every command's exit code says whether the fabric got there.

  stuck-drain     web-0 and web-1 are kept apart (anti-affinity) on a pool of two blades:
                  `blade drain` of web-0's blade cannot complete; it exits 1 after
                  --timeout naming web-0 and the planner's reason; the blade stays drained;
                  asking that pool for a spare warns (apply --dry-run and apply) that the
                  promise would not be kept
  round-trip      `get all -o yaml` of what was applied (a template with replicas
                  included), applied again with --dry-run, shows no change and exits 0; the
                  re-applied output reads back identical; `get pool web -o yaml` is one
                  document; a replica's name gives its template
  bogus-filters   `blade list --state runing`, `server list --state fenced`, `server list
                  --pool nope` exit 2 naming what there is; a filter that exists and matches
                  nothing exits 0 with an empty answer
  moves-in-events a drain's move and a failback (failback: auto, the home blade's agent
                  killed and brought back) each appear in `loomctl events`
  stop-start-wait `server stop --wait` exits 0 once the server is stopped, `server start
                  --wait` once it runs; `server move --wait` once it runs on the target;
                  a start that cannot place the server exits 1 naming it and why

Usage: operator_e2e.py --loomd PATH --agent PATH --loomctl PATH [--scenario NAME ...] [--keep]"""
import json, os, subprocess, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, Failure, arg_parser, check, run_scenarios, wait_until

HEARTBEAT, LEASE, SUSPECT, DEAD, MARGIN = 200, 1500, 500, 1000, 200
TIMING = ["--heartbeat-ms", str(HEARTBEAT), "--lease-ms", str(LEASE), "--suspect-ms", str(SUSPECT),
          "--dead-ms", str(DEAD), "--fence-margin-ms", str(MARGIN)]

def fabric(n):
    return "blades:\n" + "".join(
        f"  - {{name: b{i}, chassis: c1, slot: {i}, cores: 8, memory: 16GiB, hypervisor: [kvm]}}\n"
        for i in range(1, n + 1))

PREAMBLE = """kind: Partition
name: prod
---
kind: IdentityPool
name: default
macs: 52:54:00:71:00:00-52:54:00:71:ff:ff
uuids: 4c4f4f4d-0000-0000-0071-000000000000/16
---
kind: Network
name: front
partition: prod
vlan: 100
"""

def pool(blades, spares=0, failback="manual"):
    return f"""---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {{names: [{", ".join(blades)}]}}
spares: {spares}
failback: {failback}
"""

def servers(n, anti_affinity=True):
    return f"""---
kind: Server
name: web
replicas: {n}
partition: prod
pool: web
vcpus: 2
memory: 2GiB
nics: [{{network: front}}]
disks: [{{image: /var/lib/loom/images/web.qcow2}}]
""" + ("anti_affinity: web\n" if anti_affinity else "")

def loomctl(fab, *args, timeout=90):
    e = dict(os.environ, NO_COLOR="1")
    r = subprocess.run([fab.args.loomctl, "--controller", fab.api] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout, env=e)
    return r.returncode, r.stdout, r.stderr

def loomctl_json(fab, *args):
    rc, out, err = loomctl(fab, *args, "-o", "json")
    if rc != 0:
        raise Failure(f"loomctl {' '.join(args)} -o json exited {rc}: {err.strip()}")
    return json.loads(out)

def server(fab, name):
    return loomctl_json(fab, "server", "show", name)

def bring_up(fab, n_blades, declarations, loomd_extra=()):
    """loomd, one simulated agent per blade, `declarations` applied with loomctl (which
    waits until every server settled)."""
    fab.write("fabric.yaml", fabric(n_blades))
    fab.start_loomd(extra=list(loomd_extra))
    for i in range(1, n_blades + 1):
        fab.start_sim_agent(fab.path("fabric.yaml"), only=f"b{i}")
    wait_until(lambda: len([b for b in loomctl_json(fab, "blade", "list") if b.get("online")]) == n_blades, 30,
               f"{n_blades} blades online", retry_on=Failure)
    fab.write("declarations.yaml", declarations)
    rc, out, err = loomctl(fab, "apply", "--yes", "--timeout", "60", "-f", fab.path("declarations.yaml"))
    check(rc == 0, "apply exits 0 once every server settled", out + err)

def events(fab):
    return [e["message"] for e in loomctl_json(fab, "events", "--tail", "1000")]

# --- scenarios -------------------------------------------------------------------------------

def stuck_drain(fab):
    bring_up(fab, 2, PREAMBLE + pool(["b1", "b2"]) + servers(2))
    victim = server(fab, "web-0")["blade"]
    t0 = time.monotonic()
    rc, out, err = loomctl(fab, "blade", "drain", victim, "--timeout", "4")
    print(f"  drain of {victim}: exit {rc} after {time.monotonic() - t0:.1f} s: {err.strip()}", flush=True)
    check(rc == 1, "a drain that cannot complete exits 1", out + err)
    check("web-0" in err and "could not leave " + victim in err, "and names the server that could not leave", err)
    check("anti-affinity" in err or "web-1" in err, "and why (the planner's reason)", err)
    check(loomctl_json(fab, "blade", "show", victim)["state"] == "maintenance", "the blade stays drained")
    rc, out, err = loomctl(fab, "blade", "undrain", victim)
    check(rc == 0, "undrain exits 0", out + err)

    # A spare asked of a pool whose two blades both hold a server: the promise cannot be kept.
    fab.write("spares.yaml", pool(["b1", "b2"], spares=1).lstrip("-\n"))
    for args, what in ((["--dry-run"], "apply --dry-run"), (["--yes"], "apply")):
        rc, out, err = loomctl(fab, "apply", *args, "-f", fab.path("spares.yaml"))
        check(rc == 0 and "warning spares promise not met: pool web: spares: 1 promised" in out,
              f"{what} warns that pool web's spares promise would not be kept", out + err)

def round_trip(fab):
    bring_up(fab, 3, PREAMBLE + pool(["b1", "b2", "b3"], spares=1) + servers(2, anti_affinity=False))
    rc, first, err = loomctl(fab, "get", "all", "-o", "yaml")
    check(rc == 0 and "kind: Pool" in first and "replicas: 2" in first, "get all -o yaml prints the declarations",
          first + err)
    check("name: web-0" not in first, "a template's replicas are written as the template", first)
    fab.write("readback.yaml", first)
    rc, out, err = loomctl(fab, "apply", "--dry-run", "-f", fab.path("readback.yaml"))
    check(rc == 0 and "0 created, 0 changed, 0 deleted" in out, "apply --dry-run of it shows no change", out + err)
    rc, out, err = loomctl(fab, "apply", "--yes", "-f", fab.path("readback.yaml"))
    check(rc == 0, "applying it exits 0", out + err)
    rc, second, err = loomctl(fab, "get", "all", "-o", "yaml")
    check(rc == 0 and second == first, "and it reads back identical", second)
    rc, one, err = loomctl(fab, "get", "pool", "web", "-o", "yaml")
    check(rc == 0 and one.startswith("kind: Pool\nname: web\n") and "---" not in one, "get pool web: one document",
          one + err)
    check("spares: 1" in one and "names: [b1, b2, b3]" in one, "with its rules", one)
    rc, tmpl, err = loomctl(fab, "get", "server", "web-1", "-o", "yaml")
    check(rc == 0 and "name: web\n" in tmpl and "replicas: 2" in tmpl, "a replica's name gives its template", tmpl)
    rc, out, err = loomctl(fab, "get", "pool", "nope", "-o", "yaml")
    check(rc == 1 and "no pool named 'nope'" in err, "an unknown name is exit 1 naming it", err)

def bogus_filters(fab):
    bring_up(fab, 2, PREAMBLE + pool(["b1", "b2"]) + servers(1))
    for args, says in ((["blade", "list", "--state", "runing"], "maintenance"),
                       (["server", "list", "--state", "fenced"], "running"),
                       (["server", "list", "--pool", "nope"], "web")):
        rc, out, err = loomctl(fab, *args)
        check(rc == 2 and says in err and out == "", f"loomctl {' '.join(args)}: exit 2 naming what there is ({says})",
              out + err)
    rc, out, err = loomctl(fab, "server", "list", "--state", "unplaceable", "-o", "json")
    check(rc == 0 and json.loads(out) == [], "a valid filter matching nothing: exit 0, empty", out + err)

def moves_in_events(fab):
    bring_up(fab, 3, PREAMBLE + pool(["b1", "b2", "b3"], spares=1, failback="auto") + servers(1), loomd_extra=TIMING)
    home = server(fab, "web-0")["blade"]
    rc, out, err = loomctl(fab, "blade", "drain", home, "--timeout", "30")
    check(rc == 0 and "moved off" in out, "a drain that can complete exits 0 once its server moved", out + err)
    moved_to = server(fab, "web-0")["blade"]
    check(moved_to != home, f"web-0 left {home} for {moved_to}")
    check(any(f"moved: web-0 from drained blade {home} to {moved_to}" in m for m in events(fab)),
          "the drain's move is in loomctl events")
    rc, out, err = loomctl(fab, "blade", "undrain", home)
    check(rc == 0, "undrain", out + err)

    # Failback: web-0's blade fails, web-0 fails over; the blade comes back; web-0 goes home.
    rc, out, err = loomctl(fab, "server", "move", "web-0", "--to", home, "--timeout", "30")
    check(rc == 0, f"server move --to {home} --wait exits 0 once it runs there", out + err)
    fab.kill9(f"agent-{home}")
    wait_until(lambda: server(fab, "web-0")["blade"] not in (home, None) and server(fab, "web-0")["state"] == "running",
               30, "web-0 failed over and running", retry_on=Failure)
    spare = server(fab, "web-0")["blade"]
    fab.respawn(f"agent-{home}")
    wait_until(lambda: server(fab, "web-0")["blade"] == home and server(fab, "web-0")["state"] == "running", 40,
               f"web-0 back home on {home} (failback: auto)", retry_on=Failure)
    msgs = events(fab)
    check(any(m.startswith("failover: web-0") for m in msgs), "the failover is in loomctl events")
    check(any(f"failback: web-0 from {spare} back to its home blade {home}" in m for m in msgs),
          "the failback is in loomctl events", "\n".join(msgs[-20:]))

def stop_start_wait(fab):
    bring_up(fab, 2, PREAMBLE + pool(["b1", "b2"]) + servers(1))
    rc, out, err = loomctl(fab, "server", "stop", "web-0", "--wait", "--timeout", "30")
    check(rc == 0, "server stop --wait exits 0", out + err)
    check(server(fab, "web-0")["state"] == "stopped", "and the server is stopped when it does")
    rc, out, err = loomctl(fab, "server", "start", "web-0", "--timeout", "30")
    check(rc == 0, "server start (waits by default) exits 0", out + err)
    check(server(fab, "web-0")["state"] == "running", "and the server runs when it does")
    here = server(fab, "web-0")["blade"]
    there = "b2" if here == "b1" else "b1"
    rc, out, err = loomctl(fab, "server", "move", "web-0", "--to", there, "--timeout", "30")
    check(rc == 0 and server(fab, "web-0")["blade"] == there and server(fab, "web-0")["state"] == "running",
          f"server move --to {there} exits 0 once it runs there", out + err)

    # A server too big for any blade: declared off, then started: it cannot get there.
    fab.write("huge.yaml", """kind: Server
name: huge
partition: prod
pool: web
vcpus: 2
memory: 64GiB
power: off
""")
    rc, out, err = loomctl(fab, "apply", "--yes", "-f", fab.path("huge.yaml"))
    check(rc == 0, "a powered-off server applies and settles (stopped)", out + err)
    rc, out, err = loomctl(fab, "server", "start", "huge", "--timeout", "20")
    check(rc == 1 and "huge unplaceable" in err and "memory" in err,
          "a start that cannot place the server exits 1 naming it and why", out + err)

SCENARIOS = [("stuck-drain", stuck_drain), ("round-trip", round_trip), ("bogus-filters", bogus_filters),
             ("moves-in-events", moves_in_events), ("stop-start-wait", stop_start_wait)]

def main():
    ap = arg_parser()
    ap.add_argument("--loomctl", required=True)
    ap.add_argument("--scenario", action="append", choices=[n for n, _ in SCENARIOS],
                    help="run only this scenario (repeatable); default: all")
    args = ap.parse_args()
    def cluster(name):
        fab = Cluster(args.loomd, args.agent, prefix=f"loom-operator-{name}-", keep=args.keep)
        fab.args = args
        return fab
    return run_scenarios(SCENARIOS, args, cluster)

if __name__ == "__main__":
    sys.exit(main())
