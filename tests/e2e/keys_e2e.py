#!/usr/bin/env python3
"""End-to-end: the fabric's allow-lists are read again on SIGHUP, and a key removed from
one is cut off at once (issue 17, DESIGN.md section 8).

Scenarios (one ctest case each, --scenario NAME):
  removed-key    two agents with keys of their own; one key taken out of loomd's --allow
                 and SIGHUP: that agent's blade falls silent (suspect), the other stays
                 online; the key put back and SIGHUP: heard again on the same connection
  bad-file       a line that is not a key and SIGHUP: loomd logs the file:line and why,
                 and the list in force stays (both blades stay online)
  relay-removed  agents behind a relay; a key taken out of the relay's --allow and SIGHUP
                 to the relay: that blade falls silent at loomd, the other stays online

Usage: keys_e2e.py --loomd PATH --agent PATH [--scenario NAME] [--keep]"""
import os, signal, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, arg_parser, check, run_scenarios, wait_until

HEARTBEAT, LEASE, SUSPECT, DEAD = 200, 1500, 600, 1200
TIMING = ["--heartbeat-ms", str(HEARTBEAT), "--lease-ms", str(LEASE), "--suspect-ms", str(SUSPECT),
          "--dead-ms", str(DEAD)]

FABRIC = """
blades:
  - {name: k1, chassis: c1, slot: 1, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: k2, chassis: c1, slot: 2, cores: 8, memory: 16GiB, hypervisor: [kvm]}
"""

def public_key(fab, name):
    with open(fab.path(f"keys/{name}.pub")) as f:
        return next(line.strip() for line in f if line.strip() and not line.startswith("#"))

def write_allow(fab, *names):
    """keys/agent.pub, the allow-list loomd and the relays read (loomharness), with these keys."""
    fab.write("keys/agent.pub", "".join(f"{public_key(fab, n)}  # {n}\n" for n in names))

def state(fab, blade):
    return {b["name"]: b for b in fab.get("/v1/blades")}[blade]

def log_text(fab, name):
    with open(fab.path(f"{name}.log"), errors="replace") as f:
        return f.read()

def wait_logged(fab, name, text, timeout=5):
    wait_until(lambda: text in log_text(fab, name), timeout, f"{name} logs '{text}'")

def both_online(fab, timeout=20):
    wait_until(lambda: {b["name"] for b in fab.online_blades()} == {"k1", "k2"}, timeout, "k1 and k2 online")

def start(fab, via=None):
    fabric = fab.write("fabric.yaml", FABRIC)
    fab.keygen("loomd", "agent", "agent2", "relay-r1")
    write_allow(fab, "agent", "agent2")
    if via:
        fab.write("relays.pub", open(fab.path("keys/relay-r1.pub")).read())
        fab.start_loomd(extra=TIMING + ["--allow-relays", fab.path("relays.pub")])
        fab.start_relay(via)
    else:
        fab.start_loomd(extra=TIMING)
    fab.start_sim_agent(fabric, only="k1", key="agent", via=via)
    fab.start_sim_agent(fabric, only="k2", key="agent2", via=via)
    both_online(fab)

def silent(fab, blade):
    return state(fab, blade)["state"] in ("suspect", "failed", "fenced")

def removed_key(fab):
    start(fab)
    write_allow(fab, "agent")
    t0 = time.monotonic()
    fab.signal("loomd", signal.SIGHUP)
    wait_logged(fab, "loomd", "SIGHUP: allow-lists re-read: 1 agent key(s) (+0 -1)")
    wait_until(lambda: silent(fab, "k2"), 10, "k2, whose key was removed, falls silent (suspect or later)")
    check(time.monotonic() - t0 < SUSPECT / 1000 + 3, f"... within {time.monotonic() - t0:.1f} s of the SIGHUP")
    check(fab.alive("agent-k2"), "k2's agent still runs (cut off by loomd, not stopped)")
    check(state(fab, "k1")["online"], "k1, whose key stays, is online")
    wait_logged(fab, "loomd", "which is no longer in the allow-list: its frames are dropped")
    write_allow(fab, "agent", "agent2")
    fab.signal("loomd", signal.SIGHUP)
    wait_logged(fab, "loomd", "SIGHUP: allow-lists re-read: 2 agent key(s) (+1 -0)")
    both_online(fab, timeout=30)

def bad_file(fab):
    start(fab)
    allow = fab.path("keys/agent.pub")
    with open(allow, "a") as f:
        f.write("not-a-key\n")
    fab.signal("loomd", signal.SIGHUP)
    wait_logged(fab, "loomd", f"SIGHUP: {allow}:3: not a 40-character Z85 public key; the allow-lists in force stay "
                "(2 agent key(s), 0 relay key(s))")
    time.sleep(3 * SUSPECT / 1000)
    check({b["name"] for b in fab.online_blades()} == {"k1", "k2"}, "both blades stay online on the old list")
    os.remove(allow)
    fab.signal("loomd", signal.SIGHUP)
    wait_logged(fab, "loomd", f"SIGHUP: cannot read allow-list '{allow}': No such file or directory")
    check({b["name"] for b in fab.online_blades()} == {"k1", "k2"}, "a missing file keeps the old list too")

def relay_removed(fab):
    start(fab, via="r1")
    write_allow(fab, "agent")  # the relay's --allow (loomd's too, but loomd is not told)
    fab.signal("relay-r1", signal.SIGHUP)
    wait_logged(fab, "relay-r1", "SIGHUP: allow-list re-read: 1 agent key(s)")
    wait_until(lambda: silent(fab, "k2"), 10, "k2, whose key the relay no longer allows, falls silent at loomd")
    check(state(fab, "k1")["online"], "k1 behind the same relay stays online")
    check("SIGHUP" not in log_text(fab, "loomd"), "loomd was not involved")

SCENARIOS = [("removed-key", removed_key), ("bad-file", bad_file), ("relay-removed", relay_removed)]

def main():
    ap = arg_parser()
    ap.add_argument("--scenario", action="append", default=[])
    args = ap.parse_args()
    return run_scenarios(SCENARIOS, args, lambda name: Cluster(args.loomd, args.agent, prefix=f"loom-keys-{name}-",
                                                              keep=args.keep))

if __name__ == "__main__":
    sys.exit(main())
