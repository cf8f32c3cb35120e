#!/usr/bin/env python3
"""Real partitions (issue 15, docs/FENCING.md "Scenarios"): loomd and one loom-agent process
per blade, each in its own network namespace on a test bridge (tests/e2e/netns.py), test
driver with --sim-state and one shared --journal; partitions are nft drop rules on the
bridge, verified by probes before the scenario goes on. Short timing (heartbeat 200 ms,
lease 1.5 s, as failover_e2e.py); 12 blades, 18 servers (--blades, --servers).

  blade-cut-off        one blade cut from everything: it fences itself, loomd fences it
                       after its lease and its servers run elsewhere; nothing else stops
  loomd-frozen         SIGSTOP of loomd for 3 x lease, then SIGCONT: no server stops, no
                       blade is fenced
  controller-minority  loomd cut off with a third of the blades, for 3 x lease: no server
                       stops on either side, nothing is fenced or moves until the heal
  even-split           loomd and half the blades | the other half: loomd's side stops
                       nothing; the other half fences itself, loomd fences it (the tie
                       goes to the controller) and restarts its servers on its own side
  chassis-cut          chassis c2 (a third of the blades), whose agents reach loomd through a
                       relay pair (each relay in a namespace of its own), cut from loomd with
                       its relays (the pair's uplink lost), but not from each other, the
                       relays or the other blades: a minority of the quorum set, it fences
                       itself and loomd moves its servers; nothing else stops
  chassis-cut-majority the same with a chassis of a majority (7 of 12): it holds under its
                       peers' shield, nothing stops, nothing is fenced or moves

Every scenario heals the network and ends with the journal check (no server ran on two
blades at overlapping times; every power:on server running exactly once, where the API
says) and prints what happened: servers stopped by their own agents (journal "destroy" or
"watchdog" ending a run; a controller's stop is "stop"), fences, restarts, double runs.

What docs/FENCING.md says each scenario does is checked as "fencing expectations", each
reported; today's binaries miss some of them (issue 15: an agent fences itself when its
lease runs out, whatever its peers see). A missed expectation fails the scenario, unless
--expect-bug is given: then the scenario passes as XFAIL if only expectations were missed,
and fails as XPASS if none was (the fix landed: drop --expect-bug from CMakeLists.txt).
Invariant 1 and the final convergence are never expectations: they always fail a run.

--peer-channel gives every agent the peer channel's options (netns.peer_args), for the
agent that has them. Exits 77 (skip) when namespaces cannot be made, 1 with CI=true.
Usage: partition_e2e.py --loomd PATH --agent PATH [--scenario NAME ...] [--expect-bug]
                        [--peer-channel] [--blades N] [--servers N] [--keep]"""
import collections, signal, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import arg_parser, Failure, check, prod_preamble, wait_until, read_journal, journal_runs, double_runs, now_ms
import netns
from netns import TestNet, NetCluster, between, isolate, split

HEARTBEAT, LEASE, SUSPECT, DEAD, MARGIN = 200, 1500, 500, 1000, 200
TIMING = ["--heartbeat-ms", str(HEARTBEAT), "--lease-ms", str(LEASE), "--suspect-ms", str(SUSPECT),
          "--dead-ms", str(DEAD), "--fence-margin-ms", str(MARGIN)]
HOLD = 3 * LEASE / 1000  # how long an outage lasts where nothing should stop (the 3 x lease)
SELF_STOP = ("destroy", "watchdog")  # how a run ends when its own agent (or its watchdog) ends it

def fabric_yaml(blades, chassis_of, cores_of):
    slots = collections.Counter()
    lines = ["blades:"]
    for b in blades:
        slots[chassis_of[b]] += 1
        lines.append(f"  - {{name: {b}, chassis: {chassis_of[b]}, slot: {slots[chassis_of[b]]}, cores: {cores_of[b]}, "
                     "memory: 16GiB, hypervisor: [kvm]}")
    return "\n".join(lines) + "\n"

# Where the servers land is the planner's best fit by free cores (pool/README.md): the
# blade with the fewest free cores that fits wins, so a fabric of equal blades fills some
# and leaves the rest empty. The layouts use that: blades of ceil(2 x servers / blades)
# cores (12 blades, 18 one-vcpu servers: 3 cores) hold twice the servers, filled on half
# the blades, so either half of the fabric can take the other half's servers; in the
# chassis layouts chassis c2's blades have 1 core and c1's 8, so c2 fills first and the
# rest spill onto c1. Each scenario checks, before its fault, that the groups it cuts
# apart hold servers on both sides.
# A layout: (chassis of each blade, cores of each blade, the blades that reach loomd through
# the relay pair RELAYS instead of directly).
RELAYS = ("c2a", "c2b")

def uniform_layout(blades, n_servers):
    cores = -(-2 * n_servers // len(blades))
    return {b: "c1" for b in blades}, {b: cores for b in blades}, set()

def chassis_layout(c2):
    def layout(blades, n_servers):
        chassis = set(c2(len(blades)))
        return ({b: ("c2" if b in chassis else "c1") for b in blades},
                {b: (1 if b in chassis else 8) for b in blades}, chassis)
    return layout

def decls(n_servers):
    return prod_preamble("52:54:00:40:00:00-52:54:00:40:ff:ff", "4c4f4f4d-0000-0000-0004-000000000000/16") + f"""---
kind: Pool
name: all
partition: prod
hypervisor: kvm
blades: {{match: {{hypervisor: kvm}}}}
failover: pack
---
kind: Server
name: web
replicas: {n_servers}
partition: prod
pool: all
vcpus: 1
memory: 1GiB
nics: [{{network: front}}]
power: on
---
kind: Server
name: cold
partition: prod
pool: all
vcpus: 1
memory: 1GiB
power: off
"""

class Expectations:
    """The fencing expectations of one scenario: docs/FENCING.md's behaviour, checked
    softly so the scenario still runs to its journal check and reports its numbers."""
    def __init__(self):
        self.failed = []
        self.count = 0

    def expect(self, cond, message, detail=""):
        self.count += 1
        if cond:
            print("  ok (FENCING.md):", message, flush=True)
        else:
            print("  NOT MET (FENCING.md):", message + (("\n    " + detail) if detail else ""), flush=True)
            self.failed.append(message)

class Run:
    """One scenario's network, fabric and bookkeeping."""
    def __init__(self, net, fab, blades, relayed, peer_channel=False):
        self.net, self.fab, self.blades, self.relayed = net, fab, blades, relayed
        self.peer_channel = peer_channel
        self.held_before = {}
        self.exp = Expectations()
        self.on = set()
        self.t_fault = self.t_heal = None
        self.facts = collections.OrderedDict()

    # -- the API --
    def servers(self):
        return {s["name"]: s for s in (self.fab.get("/v1/servers") or [])}

    def placement(self):
        """blade -> names of the power:on servers on it."""
        out = collections.defaultdict(set)
        for n, s in self.servers().items():
            if n in self.on and s["blade"]:
                out[s["blade"]].add(n)
        return out

    def all_running(self):
        ss = self.servers()
        return bool(ss) and all(n in ss and ss[n]["state"] == "running" and ss[n]["blade"] for n in self.on)

    def running_on(self, names, blades):
        ss = self.servers()
        return bool(ss) and all(ss[n]["state"] == "running" and ss[n]["blade"] in blades for n in names)

    def events_since(self, t_ms, prefix):
        return [e for e in self.fab.events() if e["time_ms"] >= t_ms and e["message"].startswith(prefix)]

    def blade_state(self, name):
        return (self.fab.get(f"/v1/blades/{name}") or {}).get("state")

    # -- the journal --
    def journal(self):
        return read_journal(self.fab.path("journal"))

    def self_stops(self, since_ms, until_ms=None):
        """[(blade, domain, uuid, event, t)] of every run that its own agent ended (destroy,
        watchdog) in [since_ms, until_ms]: the servers the fabric lost without the
        controller asking."""
        out, open_ = [], set()
        for e in sorted(self.journal(), key=lambda e: e["t"]):
            key = (e["uuid"], e["blade"])
            if e["event"] == "start":
                open_.add(key)
            elif key in open_:
                open_.discard(key)
                if e["event"] in SELF_STOP and e["t"] >= since_ms and (until_ms is None or e["t"] <= until_ms):
                    out.append((e["blade"], e["domain"], e["uuid"], e["event"], e["t"]))
        return out

    def starts(self, since_ms, until_ms=None):
        return [e for e in self.journal() if e["event"] == "start" and e["t"] >= since_ms
                and (until_ms is None or e["t"] <= until_ms)]

    # -- phases --
    def bring_up(self, n_servers, loomd_extra=()):
        self.fab.start_loomd(extra=TIMING + list(loomd_extra))
        if self.relayed:
            for r in RELAYS:
                self.fab.start_relay(r)
        for b in self.blades:
            self.fab.start_sim_agent(self.fab.path("fabric.yaml"), only=b, via=RELAYS if b in self.relayed else None)
        wait_until(lambda: len(self.fab.online_blades()) == len(self.blades), 30, f"{len(self.blades)} blades online")
        status, body = self.fab.request("POST", "/v1/apply?source=partition.yaml", decls(n_servers))
        check(status == 200, f"pools and servers applied ({status} {body[:300] if status != 200 else ''})")
        self.on = {f"web-{i}" for i in range(n_servers)}
        wait_until(self.all_running, 30, f"{n_servers} power:on servers running")
        if self.peer_channel:
            # The outage rule holds from the moment every blade holds loomd's policy: a
            # fabric that has just booted has no quorum set yet (docs/FENCING.md).
            wait_until(lambda: (self.fab.metric("loom_quorum_members") or 0) == len(self.blades), 15,
                       f"the quorum set holds the {len(self.blades)} blades")
            time.sleep(1)  # each blade takes the policy with its next heartbeat's answer
        held = self.placement()
        self.held_before = held
        print("  placement: " + ", ".join(f"{b}:{len(held.get(b, ()))}" for b in self.blades), flush=True)

    def cut(self, pairs, label):
        self.t_fault = self.net.cut(pairs, label)

    def heal(self):
        self.t_heal = self.net.heal()

    def settle(self):
        """Heal if not yet, then wait (bounded) until every blade is online and every
        power:on server running; records how long that took after the heal."""
        if self.net.current:
            self.heal()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (self.all_running() and
                                                   len(self.fab.online_blades()) == len(self.blades)):
            time.sleep(0.1)
        self.facts["converged_after_heal_ms"] = now_ms() - self.t_heal

    def finish(self, side_of):
        """Record the numbers, then the journal check (hard: invariant 1, every blade back,
        every server running once where the API says)."""
        if self.net.current or "converged_after_heal_ms" not in self.facts:
            self.settle()
        entries = self.journal()
        stops = self.self_stops(self.t_fault)
        fences = self.events_since(self.t_fault, "blade fenced")
        restarts = self.starts(self.t_fault)
        violations = double_runs(entries)
        f = self.facts
        f["servers"] = len(self.on)
        f["stopped_by_own_agent"] = len({s[2] for s in stops})
        per = collections.Counter(side_of[s[0]] for s in stops)
        f["stopped_by_side"] = ",".join(f"{k}:{v}" for k, v in sorted(per.items())) or "-"
        f["stopped_before_heal"] = len({s[2] for s in stops if s[4] <= self.t_heal})
        f["fenced_before_heal"] = ",".join(sorted({e["blade"] for e in fences if e["time_ms"] <= self.t_heal})) or "-"
        f["fenced_after_heal"] = ",".join(sorted({e["blade"] for e in fences if e["time_ms"] > self.t_heal})) or "-"
        f["storm_guard_raised"] = len(self.events_since(self.t_fault, "fencing suspended"))
        f["starts_before_heal"] = len([e for e in restarts if e["t"] <= self.t_heal])
        f["starts_after_heal"] = len([e for e in restarts if e["t"] > self.t_heal])
        f["double_runs"] = len(violations)
        print("  RESULT " + " ".join(f"{k}={v}" for k, v in f.items()), flush=True)
        check(not violations, f"journal ({len(entries)} entries): no server ran on two blades at overlapping times",
              "\n".join(violations))
        check(len(self.fab.online_blades()) == len(self.blades), f"all {len(self.blades)} blades back online after the heal")
        runs = journal_runs(entries)
        ss = self.servers()
        bad = []
        for name in sorted(self.on):
            s = ss[name]
            open_runs = [r for r in runs.get(s["uuid"], []) if r["to"] is None]
            if s["state"] != "running" or len(open_runs) != 1 or open_runs[0]["blade"] != s["blade"]:
                bad.append(f"{name}: API {s['state']} on {s['blade']}, journal open runs {open_runs}")
        check(not bad, "every power:on server ends running exactly once, where the API says", "\n".join(bad))

    def nothing_stops(self, what):
        """FENCING.md's expectations for an outage that must stop nothing, from the fault
        until now (called after settle(): what happens on the way back counts too)."""
        stops = self.self_stops(self.t_fault)
        names = sorted({s[1] for s in stops})
        self.exp.expect(not stops, f"{what}: 0 servers stopped by their own agents ({len(names)} were: "
                        f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''})")
        # A blade that held no server and was still out of reach when loomd counted a quorum
        # again (its register backs off for seconds) may be fenced: that moves nothing, and it
        # is trusted again as soon as it registers. One that held servers must not be.
        fences = [e for e in self.events_since(self.t_fault, "blade fenced") if self.held_before.get(e["blade"])]
        self.exp.expect(not fences, f"{what}: no blade that held servers fenced, during the outage or after ({len(fences)})",
                        "; ".join(sorted({e["blade"] + ": " + e["message"][:70] for e in fences}))[:500])
        starts = self.starts(self.t_fault, self.t_heal)
        self.exp.expect(not starts, f"{what}: no server started anywhere while it lasts ({len(starts)})")

    def moved_off(self, gone, stay, what):
        """The servers of blades `gone` ended there by their own agents (self-fencing) and
        run on blades of `stay`, each started there only after its blade's fence event;
        nothing on `stay` stopped by itself."""
        # A blade that held no server may be fenced a little after the others' servers moved.
        deadline = time.monotonic() + LEASE / 1000 + 3
        while True:
            fences = {e["blade"]: e for e in self.events_since(self.t_fault, "blade fenced")}
            if set(gone) <= set(fences) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.exp.expect(set(gone) <= set(fences), f"{what}: each of {sorted(gone)} fenced by loomd "
                        f"(fenced: {sorted(fences)})")
        early = [e for e in self.starts(self.t_fault) if e["blade"] in stay and e["uuid"] in self.uuids_on(gone)
                 and (self.blade_of_uuid[e["uuid"]] not in fences or e["t"] < fences[self.blade_of_uuid[e["uuid"]]]["time_ms"])]
        check(not early, f"journal: no server of {what} started elsewhere before its blade was fenced", str(early[:5]))
        stops = self.self_stops(self.t_fault, self.t_heal)
        on_stay = sorted({s[1] for s in stops if s[0] in stay})
        self.exp.expect(not on_stay, f"{what}: 0 servers stopped by their own agents on the other side ({on_stay})")
        ended = {s[2] for s in stops if s[0] in gone}
        self.exp.expect(self.uuids_on(gone) <= ended, f"{what}: every server of the cut blades ended there by its own "
                        f"agent ({len(ended)}/{len(self.uuids_on(gone))})")

    def snapshot(self):
        """Remember where every server runs now (before the fault)."""
        ss = self.servers()
        self.before = {n: ss[n]["blade"] for n in self.on}
        self.blade_of_uuid = {ss[n]["uuid"]: ss[n]["blade"] for n in self.on}

    def uuids_on(self, blades):
        return {u for u, b in self.blade_of_uuid.items() if b in blades}

    def names_on(self, blades):
        return {n for n, b in self.before.items() if b in blades}

def by_load(run):
    """The blades, most servers first (name order on ties)."""
    held = run.placement()
    return sorted(run.blades, key=lambda b: (-len(held.get(b, ())), run.blades.index(b)))

def both_hold(run, side_a, side_b, what):
    """Setup check: a cut between two groups shows something only if each holds servers."""
    held = run.placement()
    na, nb = sum(len(held.get(b, ())) for b in side_a), sum(len(held.get(b, ())) for b in side_b)
    check(na > 0 and nb > 0, f"{what}: both sides hold servers ({na} | {nb})")

# --- scenarios ---------------------------------------------------------------------------

def blade_cut_off(run):
    victim = by_load(run)[0]
    run.snapshot()
    moved = run.names_on([victim])
    rest = [b for b in run.blades if b != victim]
    print(f"== {victim} (servers {sorted(moved)}) cut from every other node", flush=True)
    run.cut(isolate(victim, run.net.nodes), f"{victim} cut off")
    wait_until(lambda: run.running_on(moved, rest), 20, f"{sorted(moved)} running elsewhere")
    t_done = max(e["t"] for e in run.starts(run.t_fault) if e["uuid"] in run.uuids_on([victim]))  # the last restart
    fence = (run.events_since(run.t_fault, "blade fenced") or [None])[0]
    check(fence is not None and fence["blade"] == victim and "lease expired" in fence["message"],
          f"fence event for {victim}: {fence and fence['message']}")
    run.facts["fence_after_ms"] = fence["time_ms"] - run.t_fault
    run.facts["failover_ms"] = t_done - run.t_fault
    run.exp.expect(fence["time_ms"] >= run.t_fault + LEASE - HEARTBEAT - 100,
                   f"fenced {fence['time_ms'] - run.t_fault} ms after the cut: not before its lease can have run out")
    run.exp.expect(t_done - run.t_fault <= LEASE + 500 + 1000,
                   f"its servers started elsewhere {t_done - run.t_fault} ms after the cut (target lease {LEASE} + 500 ms; "
                   f"1000 ms more allowed for {len(run.blades) + 1} processes on a shared machine)")
    run.moved_off([victim], rest, f"{victim} cut off")
    time.sleep(1.0)  # cut a while longer: its return goes through the trust check
    run.settle()
    wait_until(lambda: run.blade_state(victim) in ("available", "spare", "active"), 30, f"{victim} trusted again")
    run.finish({b: ("cut" if b == victim else "rest") for b in run.blades})

def loomd_frozen(run):
    run.snapshot()
    print(f"== SIGSTOP of loomd for {HOLD:.1f} s (3 x lease), then SIGCONT", flush=True)
    run.t_fault = now_ms()
    run.fab.signal("loomd", signal.SIGSTOP)
    time.sleep(HOLD)
    run.t_heal = now_ms()
    run.fab.signal("loomd", signal.SIGCONT)
    wait_until(lambda: run.fab.get("/v1/health") is not None, 10, "loomd answers again")
    run.settle()
    time.sleep(2 * LEASE / 1000)  # what it does after waking counts too: no fence of a blade that only looked silent
    run.nothing_stops("loomd frozen")
    run.finish({b: "all" for b in run.blades})

def controller_minority(run):
    order = by_load(run)
    minority = order[0::3][: max(1, len(run.blades) // 3)]  # a third of the blades, loaded and empty ones
    majority = [b for b in run.blades if b not in minority]
    both_hold(run, minority, majority, "loomd's minority | the majority")
    run.snapshot()
    print(f"== loomd with a minority {minority} cut from {majority} for {HOLD:.1f} s", flush=True)
    run.cut(split(["loomd"] + minority, majority), "loomd with a minority")
    time.sleep(HOLD)
    run.settle()
    run.nothing_stops("loomd cut off with a minority")
    run.finish({b: ("loomd-side" if b in minority else "majority") for b in run.blades})

def even_split(run):
    order = by_load(run)
    side_a, side_b = sorted(order[0::2], key=run.blades.index), sorted(order[1::2], key=run.blades.index)
    both_hold(run, side_a, side_b, "loomd's half | the far half")
    run.snapshot()
    gone = run.names_on(side_b)
    print(f"== even split: loomd + {side_a} | {side_b} ({len(gone)} servers on the far side)", flush=True)
    run.cut(split(["loomd"] + side_a, side_b), "even split")
    wait_until(lambda: run.running_on(gone, side_a), 30, f"the far side's {len(gone)} servers running on loomd's side")
    run.facts["failover_ms"] = now_ms() - run.t_fault
    run.moved_off(side_b, side_a, "even split")
    run.settle()
    run.finish({b: ("loomd-side" if b in side_a else "far-side") for b in run.blades})

def chassis_cut(run, chassis):
    others = [b for b in run.blades if b not in chassis]
    both_hold(run, chassis, others, "chassis c2 | the other blades")
    check(set(chassis) == run.relayed, f"chassis c2 {chassis} reaches loomd through its relay pair {list(RELAYS)}")
    run.snapshot()
    relays = [f"relay-{r}" for r in RELAYS]
    print(f"== chassis c2 {chassis} and its relay pair cut from loomd (the pair's uplink lost); the blades still "
          f"reach each other, the relays and {others}", flush=True)
    run.cut(between(chassis + relays, ["loomd"]), "chassis c2 and its relays cut from loomd")
    if 2 * len(chassis) < len(run.blades):
        gone = run.names_on(chassis)
        wait_until(lambda: run.running_on(gone, others), 30, f"the chassis's {len(gone)} servers running on the other blades")
        run.facts["failover_ms"] = now_ms() - run.t_fault
        run.moved_off(chassis, others, "chassis (a minority) cut from loomd")
        run.settle()
    else:
        time.sleep(HOLD)
        run.settle()
        run.nothing_stops("chassis (a majority) cut from loomd")
    run.finish({b: ("chassis" if b in chassis else "rest") for b in run.blades})

def chassis_minority(n):
    return [f"b{i}" for i in range(n - n // 3 + 1, n + 1)]  # the last third: 4 of 12

def chassis_majority(n):
    return [f"b{i}" for i in range(n // 2, n + 1)]  # 7 of 12

# name -> (scenario, fabric layout)
SCENARIOS = {
    "blade-cut-off": (blade_cut_off, uniform_layout),
    "loomd-frozen": (loomd_frozen, uniform_layout),
    "controller-minority": (controller_minority, uniform_layout),
    "even-split": (even_split, uniform_layout),
    "chassis-cut": (lambda run: chassis_cut(run, chassis_minority(len(run.blades))), chassis_layout(chassis_minority)),
    "chassis-cut-majority": (lambda run: chassis_cut(run, chassis_majority(len(run.blades))), chassis_layout(chassis_majority)),
}

def run_scenario(args, name):
    fn, layout = SCENARIOS[name]
    blades = [f"b{i}" for i in range(1, args.blades + 1)]
    chassis_of, cores_of, relayed = layout(blades, args.servers)
    relays = [f"relay-{r}" for r in RELAYS] if relayed else []
    with TestNet(["loomd"] + relays + blades) as net, \
         NetCluster(net, args.loomd, args.agent, prefix=f"loom-partition-{name}-", keep=args.keep, keep_on_failure=True,
                    agent_extra=lambda blade, address: netns.peer_args(blade, address, args.peer_channel)) as fab:
        run = Run(net, fab, blades, relayed, args.peer_channel)
        fab.write("fabric.yaml", fabric_yaml(blades, chassis_of, cores_of))
        try:
            run.bring_up(args.servers)
            fn(run)
        except Failure as e:
            print("FAIL:", e, flush=True)
            fab.dump_logs(30)
            return "FAIL"
        if run.exp.failed and not args.expect_bug:
            print(f"FAIL: {len(run.exp.failed)} of {run.exp.count} FENCING.md expectation(s) not met: "
                  + "; ".join(run.exp.failed), flush=True)
            return "FAIL"
        if run.exp.failed:
            print(f"XFAIL (issue 15, --expect-bug): {len(run.exp.failed)} of {run.exp.count} FENCING.md expectation(s) "
                  f"not met by today's binaries; invariant 1 and the convergence checks passed", flush=True)
            fab.passed = True
            return "XFAIL"
        if args.expect_bug:
            print(f"XPASS: every FENCING.md expectation ({run.exp.count}) is met although --expect-bug was given: "
                  "the fix has landed, remove --expect-bug for this scenario from tests/e2e/CMakeLists.txt", flush=True)
            return "XPASS"
        print("PASS", flush=True)
        fab.passed = True
        return "PASS"

def main():
    ap = arg_parser()
    ap.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="run only these (repeatable); default: all")
    ap.add_argument("--expect-bug", action="store_true",
                    help="issue 15 is not fixed yet: FENCING.md expectations that fail make XFAIL (exit 0); all met is XPASS (exit 1)")
    ap.add_argument("--peer-channel", action="store_true", help="start agents with the peer channel (netns.peer_args)")
    ap.add_argument("--blades", type=int, default=12)
    ap.add_argument("--servers", type=int, default=18)
    args = ap.parse_args()
    if not 8 <= args.blades <= 24:
        ap.error("--blades: 8..24")
    if not 4 <= args.servers <= 3 * args.blades:
        ap.error("--servers: 4 .. 3 x blades")
    reason = netns.netns_unavailable()
    if reason:
        netns.skip_or_fail(reason)
    outcomes = {}
    for name in SCENARIOS:
        if args.scenario and name not in args.scenario:
            continue
        print(f"#### {name}", flush=True)
        t0 = time.monotonic()
        outcomes[name] = run_scenario(args, name)
        print(f"#### {name}: {outcomes[name]} in {time.monotonic() - t0:.1f} s", flush=True)
    bad = [n for n, o in outcomes.items() if o in ("FAIL", "XPASS")]
    print("SUMMARY " + " ".join(f"{n}={o}" for n, o in outcomes.items()), flush=True)
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())
