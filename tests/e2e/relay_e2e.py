#!/usr/bin/env python3
"""End-to-end test of fabric relays: real loomd, `loom-agent relay` processes (chassis c1
a pair, c2 one) and simulated agents behind them, plus chassis c3's agents connected
directly; CurveZMQ on, loopback only. Each scenario starts that fabric of its own and
applies four servers first (relayed and direct blades register, the API says which relay
carries each, every server runs, anti-affinity kept), so one failing hides no other:

  relayed-and-direct  that much; with --loomctl, `loomctl blade list` grows a RELAY column
                      naming each blade's relay
  loomd-restart       kill -9 loomd -> relays reconnect, no blade fences itself, bindings
                      unchanged
  relay-pair          kill -9 one relay of c1's pair, then SIGSTOP the other -> its blades
                      keep their leases through the one left, nothing fences, nothing moves
  relay-lost          kill -9 relay c2 -> its blades' leases run out, they fence themselves,
                      their servers restart elsewhere, no server ever runs twice (journal);
                      relay back -> blades back
  refusals            a relay whose key is not a relay key, or unknown, is refused; an agent
                      the relay does not allow never registers; garbage on a relay's port is
                      survived

Every wait is bounded; every process is killed at the end.
Usage: relay_e2e.py --loomd PATH --agent PATH [--loomctl PATH] [--keep] [--scenario NAME ...]"""
import os, random, signal, socket, subprocess, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, arg_parser, check, double_runs, prod_preamble, read_journal, run_scenarios, wait_until

FABRIC = """
blades:
  - {name: c1-s1, chassis: c1, slot: 1, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: c1-s2, chassis: c1, slot: 2, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: c1-s3, chassis: c1, slot: 3, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: c2-s1, chassis: c2, slot: 1, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: c2-s2, chassis: c2, slot: 2, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: c3-s1, chassis: c3, slot: 1, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: c3-s2, chassis: c3, slot: 2, cores: 8, memory: 16GiB, hypervisor: [kvm]}
"""

RELAYED = {"c1": ["c1-s1", "c1-s2", "c1-s3"], "c2": ["c2-s1", "c2-s2"]}
PAIR = {"c1": "c1b"}  # chassis c1's second relay: its agents connect to both
DIRECT = ["c3-s1", "c3-s2"]
ALL = [b for bs in RELAYED.values() for b in bs] + DIRECT

DECLS = prod_preamble("52:54:00:20:00:00-52:54:00:20:ff:ff", "4c4f4f4d-0000-0000-0000-100000000000/16") + """---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {names: [c1-s1, c1-s2, c1-s3, c2-s1, c2-s2, c3-s1, c3-s2]}
spares: 2
---
kind: Server
name: web
replicas: 4
partition: prod
pool: web
vcpus: 2
memory: 2GiB
nics: [{network: front}]
anti_affinity: web
power: on
"""

SERVERS = {f"web-{i}" for i in range(4)}

def online(fab):
    return {b["name"] for b in fab.get("/v1/blades") or [] if b["online"]}

def servers(fab):
    return {s["name"]: s for s in fab.get("/v1/servers") or []}

def all_running(fab):
    ss = servers(fab)
    return SERVERS <= set(ss) and all(ss[n]["state"] == "running" for n in SERVERS)

def fenced_themselves(fab):
    """Blades whose agents ran out their lease and fenced themselves (their logs say so)."""
    out = set()
    for b in ALL:
        try:
            with open(fab.path(f"agent-{b}.log"), errors="replace") as f:
                if any("lease not renewed" in line for line in f):
                    out.add(b)
        except FileNotFoundError:
            pass
    return out

def bring_up(fab, loomctl=None):
    """The fabric registered and the servers running; {server: blade} and {server: identity}."""
    fabric_yaml = fab.write("fabric.yaml", FABRIC)
    fab.keygen("loomd", "agent", "relay-c1", "relay-c2", "rogue")
    fab.write("relays.pub", "".join(open(fab.path(f"keys/relay-{r}.pub")).read() for r in RELAYED))

    print("== loomd, a relay per chassis c1 and c2 (c1: a pair), agents behind them, c3's agents direct", flush=True)
    fab.start_loomd(extra=["--allow-relays", fab.path("relays.pub")])
    for relay, blades in RELAYED.items():
        fab.start_relay(relay)
        if relay in PAIR:
            fab.start_relay(PAIR[relay], key=f"relay-{relay}")  # a pair shares its key
        for b in blades:
            fab.start_sim_agent(fabric_yaml, only=b, via=(relay, PAIR[relay]) if relay in PAIR else relay)
    for b in DIRECT:
        fab.start_sim_agent(fabric_yaml, only=b)
    wait_until(lambda: online(fab) == set(ALL), 20, f"all {len(ALL)} blades registered")
    by_name = {b["name"]: b for b in fab.get("/v1/blades")}
    carriers = {relay: {relay, PAIR.get(relay)} - {None} for relay in RELAYED}
    for relay, blades in RELAYED.items():
        check(all(by_name[b]["relay"] in carriers[relay] for b in blades),
              f"the API says relay {' or '.join(sorted(carriers[relay]))} carries {blades}")
    check(all(by_name[b]["relay"] is None for b in DIRECT), f"and that {DIRECT} connect directly")
    if loomctl:
        out = subprocess.run([loomctl, "--controller", fab.api, "blade", "list"], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=60, env=dict(os.environ, NO_COLOR="1")).stdout
        rows = [line.split() for line in out.splitlines()]
        check(rows and rows[0][:3] == ["NAME", "CHASSIS", "RELAY"], "loomctl blade list shows a RELAY column", out)
        relay_of = {r[0]: r[2] for r in rows[1:] if len(r) > 2}
        check(set(relay_of) == set(ALL) and all(relay_of[b] in carriers[r] for r, bs in RELAYED.items() for b in bs)
              and all(relay_of[b] == "-" for b in DIRECT), "naming each blade's relay, '-' for the direct ones", out)
    # Each beat of c1's agents goes through either relay of the pair: both show within a few beats.
    wait_until(lambda: fab.metric("loom_fabric_relays") == 3, 10, "metrics: 3 relays carrying blades")
    check(fab.metric('loom_fabric_blades{via="relay"}') == 5 and fab.metric('loom_fabric_blades{via="direct"}') == 2,
          "metrics: 5 blades relayed, 2 direct")

    print("== apply: every server running, anti-affinity kept", flush=True)
    status, body = fab.request("POST", "/v1/apply?source=web.yaml", DECLS)
    check(status == 200, f"apply -> 200 ({(body or '')[:200] if status != 200 else ''})")
    wait_until(lambda: all_running(fab), 30, "all servers running")
    placed = {n: s["blade"] for n, s in servers(fab).items()}
    check(len(set(placed.values())) == len(SERVERS), f"anti-affinity: four servers on four blades {sorted(placed.values())}")
    identities = {n: (s["uuid"], tuple(s["macs"])) for n, s in servers(fab).items()}
    return placed, identities

def loomd_restart(fab):
    placed, _ = bring_up(fab)
    print("== kill -9 loomd: the relays reconnect, nothing fences itself, nothing moves", flush=True)
    fab.restart("loomd")
    wait_until(lambda: online(fab) == set(ALL), 20, "all blades registered again, through their relays")
    wait_until(lambda: all_running(fab), 20, "all servers running after the restart")
    check({n: s["blade"] for n, s in servers(fab).items()} == placed, "bindings unchanged")
    check(not fenced_themselves(fab), "no agent ran out its lease while loomd restarted")

def relay_pair(fab):
    placed, _ = bring_up(fab)
    print("== kill -9 relay c1b, one of chassis c1's pair: its blades go on through c1, nothing fences", flush=True)
    fab.kill9("relay-c1b")
    time.sleep(7)  # longer than the 5 s lease
    check(not fenced_themselves(fab), "no agent ran out its lease")
    check(online(fab) == set(ALL), "all blades online")
    check(all_running(fab) and {n: s["blade"] for n, s in servers(fab).items()} == placed, "every server running where it ran")
    check(all(fab.get("/v1/blades/" + b)["relay"] == "c1" for b in RELAYED["c1"]), "c1's blades heard through relay c1 now")
    fab.respawn("relay-c1b")
    wait_until(lambda: fab.metric("loom_fabric_relays") == 3, 10, "relay c1b carrying again")

    print("== SIGSTOP relay c1 (hung, its connections open): c1's blades go on through c1b", flush=True)
    os.kill(fab.procs["relay-c1"].pid, signal.SIGSTOP)
    try:
        time.sleep(7)  # longer than the 5 s lease; about every other frame is stuck in c1
        check(not fenced_themselves(fab), "no agent ran out its lease")
        check(all_running(fab) and {n: s["blade"] for n, s in servers(fab).items()} == placed, "every server running where it ran")
    finally:
        os.kill(fab.procs["relay-c1"].pid, signal.SIGCONT)

def relay_lost(fab):
    placed, identities = bring_up(fab)
    print("== kill -9 relay c2: its blades fence themselves, their servers restart elsewhere", flush=True)
    cut = set(RELAYED["c2"])
    moved = {n for n, b in placed.items() if b in cut}
    check(moved, f"relay c2's blades run servers {sorted(moved)}")
    fab.kill9("relay-c2")
    t_kill = time.monotonic()
    wait_until(lambda: cut <= fenced_themselves(fab), 15, f"{sorted(cut)} fenced themselves when their leases ran out")
    wait_until(lambda: all_running(fab) and all(servers(fab)[n]["blade"] not in cut for n in moved), 20,
               f"{sorted(moved)} running on blades other than {sorted(cut)}")
    print(f"  moved {time.monotonic() - t_kill:.1f} s after the relay died", flush=True)
    # loomd fences each at its own lease's end plus the margin, up to ~0.75 s after the agent
    # fenced itself; a blade without servers may be fenced after the others' servers moved.
    wait_until(lambda: all(fab.get("/v1/blades/" + b)["state"] == "fenced" for b in cut), 5, "the cut-off blades are fenced")
    check({n: (s["uuid"], tuple(s["macs"])) for n, s in servers(fab).items()} == identities, "identities kept across the moves")
    violations = double_runs(read_journal(fab.path("journal")))
    check(not violations, "journal: no server ran on two blades at overlapping times", "\n".join(violations))

    print("== relay c2 back: its blades return and are trusted again", flush=True)
    fab.respawn("relay-c2")
    wait_until(lambda: online(fab) == set(ALL), 20, "all blades online again")
    check(all(fab.get("/v1/blades/" + b)["relay"] == "c2" for b in cut), "through relay c2")

def refusals(fab):
    bring_up(fab)
    print("== refused: an agent's key as a relay, an unknown relay key, an agent the relay does not allow", flush=True)
    refused = fab.metric('loom_fabric_rejected_total{reason="auth"}')
    fab.start_relay("c9", key="agent")  # an agent's key: admitted, but may not relay
    fab.start_agent("c9-s1", "test", name="agent-c9", via="c9")
    wait_until(lambda: fab.metric('loom_fabric_rejected_total{reason="auth"}') > refused, 15,
               "loomd refuses relay envelopes from a key that is not a relay's")
    check("c9-s1" not in {b["name"] for b in fab.get("/v1/blades")}, "the blade behind it never registered")
    fab.kill9("agent-c9")
    refused = fab.metric('loom_fabric_rejected_total{reason="auth"}')
    fab.start_relay("c8", key="rogue")
    wait_until(lambda: fab.metric('loom_fabric_rejected_total{reason="auth"}') > refused, 15, "loomd refuses an unknown relay key")
    fab.start_agent("rogue-blade", "test", name="rogue", log="agent-rogue", key="rogue", via="c1")
    time.sleep(2)
    check("rogue-blade" not in {b["name"] for b in fab.get("/v1/blades")}, "an agent relay c1 does not allow never registers")

    print("== garbage on a relay's port is survived", flush=True)
    rng = random.Random(7)
    port = int(fab.relays["c1"][0].rsplit(":", 1)[1])
    for i in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096)))
            if i % 2:  # a plausible ZMTP greeting first, then junk
                payload = b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00CURVE" + b"\x00" * 15 + payload
            try:
                s.sendall(payload)
                s.settimeout(0.2)
                s.recv(64)
            except OSError:
                pass
    check(fab.alive("relay-c1"), "relay c1 still running")
    time.sleep(1.5)
    check(online(fab) == set(ALL), "all blades still online")
    check(all_running(fab), "all servers still running")

def main():
    ap = arg_parser()
    ap.add_argument("--loomctl", help="also check `loomctl blade list` against the relays")
    scenarios = [("relayed-and-direct", lambda fab: bring_up(fab, args.loomctl)), ("loomd-restart", loomd_restart),
                 ("relay-pair", relay_pair), ("relay-lost", relay_lost), ("refusals", refusals)]
    ap.add_argument("--scenario", action="append", choices=[n for n, _ in scenarios],
                    help="run only these (repeatable); default: all")
    args = ap.parse_args()
    return run_scenarios(scenarios, args, lambda name: Cluster(args.loomd, args.agent, prefix=f"loom-relay-{name}-",
                                                               keep=args.keep), log_lines=25)

if __name__ == "__main__":
    sys.exit(main())
