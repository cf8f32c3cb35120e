#!/usr/bin/env python3
"""A control-plane outage never takes the fabric down (issue 15, docs/FENCING.md, DESIGN.md
invariant 7). The issue's measurement, as an operator would make it: 24 blades, one
loom-agent process each (test driver, --sim-state, one shared --journal), the README's
timing (lease 5 s), 18 servers running; every agent listens on its peer channel
(--peer-listen on loopback).

  freeze   kill -STOP of loomd for 15 s (3 x the lease), then kill -CONT
  kill     kill -9 of loomd, 60 s without it, then loomd started again on its store

After each: no server was stopped (the journal shows no destroy or watchdog since the
fault), no blade was fenced, every server runs exactly once where the API says, and the
blades that held their servers said so (a `held` hold report in `loomctl blade show`).
The journal check (no server ran on two blades at overlapping times) ends each scenario.

  --no-peers   the same without the peer channel: the behaviour before the rule (every
               agent fences itself after its lease), for the record; expected to fail.
Usage: outage_e2e.py --loomd PATH --agent PATH [--scenario freeze|kill] [--no-peers] [--keep]"""
import signal, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, arg_parser, check, prod_preamble, wait_until, read_journal, check_journal, now_ms

BLADES = [f"b{i:02d}" for i in range(1, 25)]
SERVERS = 18
LEASE_MS = 5000  # the README's default, as the issue measured

FABRIC = "blades:\n" + "".join(
    f"  - {{name: {b}, chassis: c{1 + i // 8}, slot: {1 + i % 8}, cores: 8, memory: 16GiB, hypervisor: [kvm]}}\n"
    for i, b in enumerate(BLADES))

DECLS = prod_preamble("52:54:00:50:00:00-52:54:00:50:ff:ff", "4c4f4f4d-0000-0000-0007-000000000000/16") + f"""---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {{match: {{hypervisor: kvm}}}}
spares: 2
failover: spare
---
kind: Server
name: s
replicas: {SERVERS}
partition: prod
pool: web
vcpus: 2
memory: 2GiB
nics: [{{network: front}}]
anti_affinity: s
power: on
"""

def servers(fab):
    return {s["name"]: s for s in (fab.get("/v1/servers") or [])}

def all_running(fab):
    ss = servers(fab)
    return len(ss) == SERVERS and all(s["state"] == "running" and s["blade"] for s in ss.values())

def stops_since(fab, t_ms):
    """Journal entries that ended a running server since t_ms (its own agent's fence, or its
    watchdog): what invariant 7 forbids here."""
    return [e for e in read_journal(fab.path("journal")) if e["t"] >= t_ms and e["event"] in ("destroy", "watchdog")]

def check_after(fab, t_fault, what, peers):
    wait_until(lambda: len(fab.online_blades()) == len(BLADES), 30, f"all {len(BLADES)} blades online again after {what}")
    wait_until(lambda: all_running(fab), 30, f"all {SERVERS} servers running after {what}")
    stopped = stops_since(fab, t_fault)
    check(not stopped, f"{what}: no server stopped by its own agent or watchdog (invariant 7)",
          f"{len(stopped)} stopped: " + "; ".join(f"{e['blade']}/{e['domain']} {e['event']} at {e['t'] - t_fault} ms" for e in stopped[:12]))
    fenced = [e for e in fab.events() if e["message"].startswith("blade fenced") and e["time_ms"] >= t_fault]
    check(not fenced, f"{what}: no blade fenced", "; ".join(e["blade"] for e in fenced))
    check_journal(fab, servers(fab), what)
    if peers:
        # The blades that ran servers held them, and say so once loomd hears them again.
        busy = [b["name"] for b in fab.get("/v1/blades") if b["servers"]]
        wait_until(lambda: all((fab.get(f"/v1/blades/{b}") or {}).get("last_hold") for b in busy), 15,
                   f"every blade with servers ({len(busy)}) shows its hold (last_hold)")
        hold = fab.get(f"/v1/blades/{busy[0]}")["last_hold"]
        check(hold["ms"] >= LEASE_MS and hold["servers"] >= 1 and 2 * hold["support"] > hold["members"],
              f"{busy[0]} held {hold['servers']} server(s) for {hold['ms']} ms with {hold['support']} of {hold['members']} peers")

def main():
    ap = arg_parser()
    ap.add_argument("--scenario", choices=["freeze", "kill"], action="append")
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()
    scenarios = args.scenario or ["freeze", "kill"]
    peers = not args.no_peers
    with Cluster(args.loomd, args.agent, prefix="loom-outage-", keep=args.keep) as fab:
        def run():
            fab.write("fabric.yaml", FABRIC)
            fab.start_loomd(extra=["--lease-ms", str(LEASE_MS)])
            for b in BLADES:
                extra = ["--peer-listen", "tcp://127.0.0.1:0"] if peers else []
                fab.start_sim_agent(fab.path("fabric.yaml"), only=b, extra=extra)
            wait_until(lambda: len(fab.online_blades()) == len(BLADES), 30, f"{len(BLADES)} blades online")
            status, body = fab.request("POST", "/v1/apply?source=outage.yaml", DECLS)
            check(status == 200, f"declarations applied ({status} {body[:300] if status != 200 else ''})")
            wait_until(lambda: all_running(fab), 60, f"{SERVERS} servers running")
            if peers:
                wait_until(lambda: (fab.metric("loom_quorum_members") or 0) == len(BLADES), 15,
                           f"the quorum set holds the {len(BLADES)} blades")
            time.sleep(2)
            if "freeze" in scenarios:
                print("== loomd frozen (kill -STOP) for 15 s", flush=True)
                t = now_ms()
                fab.signal("loomd", signal.SIGSTOP)
                time.sleep(15)
                fab.signal("loomd", signal.SIGCONT)
                check_after(fab, t, "a 15 s freeze of loomd", peers)
            if "kill" in scenarios:
                print("== loomd killed (kill -9), 60 s without it, then started again", flush=True)
                t = now_ms()
                fab.kill9("loomd")
                time.sleep(60)
                fab.respawn("loomd")
                check_after(fab, t, "60 s without loomd", peers)
        return fab.verdict(run, 40)

if __name__ == "__main__":
    sys.exit(main())
