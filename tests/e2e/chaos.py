#!/usr/bin/env python3
"""Chaos run of failover (DESIGN.md section 4 invariant 1, section 5): loomd and 8 single-blade
loom-agent processes on loopback, test driver with --sim-state and one shared --journal,
servers in two pools with spares. A seeded random sequence of faults, one per round:

  kill9-agent    kill -9 of an agent (its domains keep running in its state file, its
                 watchdog keeps counting, as on a real host)
  sigstop-agent  SIGSTOP of an agent (a frozen agent or a partition)
  return         a blade coming back: SIGCONT of a stopped agent, or a restart of a
                 killed one (a stopped one is sometimes killed -9 and restarted instead)
  kill9-loomd    kill -9 of loomd, restarted after a random pause

and with --partitions (loomd and each agent in a network namespace of its own, see
netns.py; nft drop rules on the test bridge, each verified by probes):

  cut-blade      one blade cut from every other node (loomd and its peers)
  cut-minority   1 to 3 blades cut from the rest, loomd on the minority's side or not
  heal           one of the cuts removed (a heal round is a "return" of the network)

with a random pause between rounds, so faults land before, during and after failovers.
At most 3 of the 8 agents are down at once (the storm guard is not the subject here).
At the end everything comes back; after a bounded wait for convergence the checker reads
the journal of every test driver and proves
  (a) no server (by uuid) ran on two blades at overlapping times (a run is a "start" until
      the next non-start event of that uuid on that blade; an open run lasts until now);
  (b) every power:on server ends running: the API says "running" and the journal shows
      exactly one open run for it, on the blade the API names.
Prints the seed, rounds, faults injected by kind and the violations, each of them; exits
non-zero when there is any. The fault sequence is a function of the seed; the timing of
the processes is not.
Without --partitions the fault sequence of a seed is the one it always was. With it, the
run exits 77 (skip) when namespaces cannot be made, 1 with CI=true.
Usage: chaos.py --loomd PATH --agent PATH [--seed N] [--rounds N] [--partitions [--peer-channel]] [--keep]"""
import collections, contextlib, random, signal, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, arg_parser, Failure, prod_preamble, wait_until, read_journal, journal_runs, double_runs, now_ms
import netns
from netns import isolate, split

HEARTBEAT, LEASE, SUSPECT, DEAD, MARGIN = 200, 1500, 500, 1000, 200
TIMING = ["--heartbeat-ms", str(HEARTBEAT), "--lease-ms", str(LEASE), "--suspect-ms", str(SUSPECT),
          "--dead-ms", str(DEAD), "--fence-margin-ms", str(MARGIN)]
BLADES = [f"b{i}" for i in range(1, 9)]
MAX_DOWN = 3

FABRIC = "blades:\n" + "".join(
    f"  - {{name: {b}, chassis: {'c1' if i < 4 else 'c2'}, slot: {i % 4 + 1}, cores: 8, memory: 16GiB, hypervisor: [kvm]}}\n"
    for i, b in enumerate(BLADES))

DECLS = prod_preamble("52:54:00:30:00:00-52:54:00:30:ff:ff", "4c4f4f4d-0000-0000-0002-000000000000/16") + """---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {match: {chassis: c1}}
spares: 1
failover: spare
---
kind: Pool
name: db
partition: prod
hypervisor: kvm
blades: {match: {chassis: c2}}
spares: 1
failover: pack
---
kind: Server
name: web
replicas: 2
partition: prod
pool: web
vcpus: 2
memory: 2GiB
nics: [{network: front}]
anti_affinity: web
priority: 100
power: on
---
kind: Server
name: app
replicas: 3
partition: prod
pool: web
vcpus: 1
memory: 1GiB
nics: [{network: front}, {network: front}]
power: on
---
kind: Server
name: db
replicas: 2
partition: prod
pool: db
vcpus: 2
memory: 4GiB
nics: [{network: front}]
anti_affinity: db
priority: 200
power: on
---
kind: Server
name: cache
replicas: 3
partition: prod
pool: db
vcpus: 1
memory: 1GiB
nics: [{network: front}]
power: on
---
kind: Server
name: cold
partition: prod
pool: db
vcpus: 1
memory: 1GiB
power: off
"""
POWER_ON = {"web-0", "web-1", "app-0", "app-1", "app-2", "db-0", "db-1", "cache-0", "cache-1", "cache-2"}

class Chaos:
    def __init__(self, fab, rng, net=None):
        self.fab, self.rng, self.net = fab, rng, net
        self.down = {}  # blade -> "killed" | "stopped"
        self.cuts = []  # [(label, pairs)] with --partitions: what the network drops now
        self.faults = collections.Counter()
        self.t0 = time.monotonic()

    def log(self, rnd, what):
        down = ",".join(f"{b}:{k}" for b, k in sorted(self.down.items())) or "-"
        cuts = f"  cut: {'; '.join(label for label, _ in self.cuts)}" if self.cuts else ""
        print(f"  round {rnd:3d}  t={time.monotonic() - self.t0:6.1f}s  {what:32s} down: {down}{cuts}", flush=True)

    def apply_cuts(self, label):
        """Make the network drop exactly the union of self.cuts (one nft transaction, verified)."""
        pairs = set()
        for _, p in self.cuts:
            pairs |= p
        self.net.cut(pairs, label)

    def partition_fault(self, kind):
        if kind == "cut-blade":
            isolated = {label.split()[0] for label, _ in self.cuts if label.endswith("cut off")}
            b = self.rng.choice([b for b in BLADES if b not in isolated])
            label = f"{b} cut off"
            self.cuts.append((label, isolate(b, self.net.nodes)))
        elif kind == "cut-minority":
            minority = sorted(self.rng.sample(BLADES, self.rng.randint(1, MAX_DOWN)), key=BLADES.index)
            rest = [b for b in BLADES if b not in minority]
            if self.rng.random() < 0.5:
                label = f"loomd+{','.join(minority)} | rest"
                pairs = split(["loomd"] + minority, rest)
            else:
                label = f"{','.join(minority)} | loomd+rest"
                pairs = split(minority, ["loomd"] + rest)
            self.cuts.append((label, pairs))
        else:  # heal one cut
            label, _ = self.cuts.pop(self.rng.randrange(len(self.cuts)))
            label = f"heal {label}"
        self.apply_cuts(label)
        return label

    def agent(self, b):
        return f"agent-{b}"

    def round(self, rnd):
        up = [b for b in BLADES if b not in self.down]
        choices = []
        if len(self.down) < MAX_DOWN:
            choices += [("kill9-agent", 3), ("sigstop-agent", 3)]
        if self.down:
            choices += [("return", 2 + 2 * len(self.down))]
        choices += [("kill9-loomd", 1)]
        if self.net is not None:
            choices += [("cut-blade", 2)]
            if not any("|" in label for label, _ in self.cuts):  # one split at a time
                choices += [("cut-minority", 2)]
            if self.cuts:
                choices += [("heal", 2 + 2 * len(self.cuts))]
        kind = self.rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]
        if kind in ("cut-blade", "cut-minority", "heal"):
            self.log(rnd, self.partition_fault(kind))
        elif kind == "kill9-agent":
            b = self.rng.choice(up)
            self.fab.kill9(self.agent(b))
            self.down[b] = "killed"
            self.log(rnd, f"kill -9 agent {b}")
        elif kind == "sigstop-agent":
            b = self.rng.choice(up)
            self.fab.signal(self.agent(b), signal.SIGSTOP)
            self.down[b] = "stopped"
            self.log(rnd, f"SIGSTOP agent {b}")
        elif kind == "return":
            b = self.rng.choice(sorted(self.down))
            how = self.down.pop(b)
            if how == "stopped" and self.rng.random() < 0.25:
                self.fab.kill9(self.agent(b))  # a hung agent killed by the operator, then restarted
                self.faults["kill9-agent"] += 1
                self.fab.respawn(self.agent(b))
                self.log(rnd, f"return {b} (stopped -> kill -9, restart)")
            elif how == "stopped":
                self.fab.signal(self.agent(b), signal.SIGCONT)
                self.log(rnd, f"return {b} (SIGCONT)")
            else:
                self.fab.respawn(self.agent(b))
                self.log(rnd, f"return {b} (restart)")
        else:
            pause = self.rng.uniform(0, 1.5)
            self.fab.restart("loomd", pause=pause)
            self.log(rnd, f"kill -9 loomd, {pause:.1f} s down")
        self.faults[kind] += 1
        time.sleep(self.rng.uniform(0.2, 3.0))

    def bring_all_back(self):
        for b, how in sorted(self.down.items()):
            if how == "stopped":
                self.fab.signal(self.agent(b), signal.SIGCONT)
            else:
                self.fab.respawn(self.agent(b))
        self.down.clear()
        if not self.fab.alive("loomd"):
            self.fab.respawn("loomd")
        if self.cuts:
            self.cuts.clear()
            self.net.heal()

def converged(fab):
    servers = fab.get("/v1/servers") or []
    blades = fab.get("/v1/blades") or []
    return (len([b for b in blades if b["online"] and b["state"] in ("available", "active", "spare")]) == len(BLADES)
            and all(s["state"] == "running" for s in servers if s["name"] in POWER_ON)
            and len([s for s in servers if s["name"] in POWER_ON]) == len(POWER_ON))

def check(fab, converge_timeout):
    """The violations (strings)."""
    violations = []
    try:
        wait_until(lambda: converged(fab), converge_timeout, "every blade back and every power:on server running", interval=0.5)
    except Failure as e:
        violations.append(f"no convergence: {e}")
    entries = read_journal(fab.path("journal"))
    violations += double_runs(entries)
    runs = journal_runs(entries)
    servers = {s["name"]: s for s in (fab.get("/v1/servers") or [])}
    for name in sorted(POWER_ON):
        s = servers.get(name)
        if s is None:
            violations.append(f"{name}: not in GET /v1/servers")
            continue
        open_runs = [r for r in runs.get(s["uuid"], []) if r["to"] is None]
        if s["state"] != "running":
            violations.append(f"{name}: API state {s['state']} (blade {s['blade']})")
        if len(open_runs) != 1:
            violations.append(f"{name}: {len(open_runs)} open runs in the journal {[(r['blade'], r['from']) for r in open_runs]}")
        elif open_runs[0]["blade"] != s["blade"]:
            violations.append(f"{name}: runs on {open_runs[0]['blade']} per the journal, on {s['blade']} per the API")
    return violations, len(entries)

def main():
    ap = arg_parser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--converge-timeout", type=float, default=60)
    ap.add_argument("--partitions", action="store_true", help="add network partitions to the fault mix (netns.py; root)")
    ap.add_argument("--peer-channel", action="store_true", help="with --partitions: agents get netns.peer_args")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with contextlib.ExitStack() as stack:
        net = None
        if args.partitions:
            reason = netns.netns_unavailable()
            if reason:
                netns.skip_or_fail(reason)
            net = stack.enter_context(netns.TestNet(["loomd"] + BLADES))
            fab = stack.enter_context(netns.NetCluster(
                net, args.loomd, args.agent, prefix=f"loom-chaos-{args.seed}-", keep=args.keep, keep_on_failure=True,
                agent_extra=lambda blade, address: netns.peer_args(blade, address, args.peer_channel)))
        else:
            fab = stack.enter_context(Cluster(args.loomd, args.agent, prefix=f"loom-chaos-{args.seed}-", keep=args.keep,
                                              keep_on_failure=True))
        return run(args, rng, fab, net)

def run(args, rng, fab, net):
    """The chaos run on a started cluster; the exit code."""
    fab.write("fabric.yaml", FABRIC)
    fab.start_loomd(extra=TIMING)
    for b in BLADES:
        fab.start_sim_agent(fab.path("fabric.yaml"), only=b)
    wait_until(lambda: len(fab.online_blades()) == len(BLADES), 20, f"{len(BLADES)} blades online")
    status, body = fab.request("POST", "/v1/apply?source=chaos.yaml", DECLS)
    if status != 200:
        print("FAIL: apply ->", status, body[:500])
        return 1
    wait_until(lambda: converged(fab), 30, "every power:on server running")
    if args.peer_channel:
        wait_until(lambda: (fab.metric("loom_quorum_members") or 0) == len(BLADES), 15,
                   f"the quorum set holds the {len(BLADES)} blades")
        time.sleep(1)  # each blade takes the policy with its next heartbeat's answer
    chaos = Chaos(fab, rng, net)
    print(f"== chaos: seed {args.seed}, {args.rounds} rounds", flush=True)
    for rnd in range(1, args.rounds + 1):
        chaos.round(rnd)
    print("== bringing everything back", flush=True)
    chaos.bring_all_back()
    violations, n_entries = check(fab, args.converge_timeout)
    events = fab.events()
    kinds = collections.Counter()
    for e in events:
        for text in ("blade fenced: lease expired", "blade fenced: fence command", "fencing suspended",
                     "blade trusted again", "failover:"):
            if e["message"].startswith(text):
                kinds[text] += 1
    print(f"seed: {args.seed}")
    print(f"rounds: {args.rounds}")
    kinds_of_fault = ("kill9-agent", "sigstop-agent", "return", "kill9-loomd") + (
        ("cut-blade", "cut-minority", "heal") if net is not None else ())
    print("faults: " + ", ".join(f"{k}={chaos.faults[k]}" for k in kinds_of_fault)
          + f" (total {sum(chaos.faults.values())})")
    print(f"controller events: " + ", ".join(f"'{k}'={n}" for k, n in sorted(kinds.items())))
    print(f"journal entries checked: {n_entries}")
    print(f"violations: {len(violations)}")
    for v in violations:
        print("  VIOLATION:", v)
    print(f"time: {time.monotonic() - chaos.t0:.1f} s", flush=True)
    if violations:
        fab.dump_logs(30)
        return 1
    fab.passed = True
    return 0

if __name__ == "__main__":
    sys.exit(main())
