#!/usr/bin/env python3
"""Controller replicas on etcd (issue 16, DESIGN.md §7): a real 3-member etcd cluster on
loopback, 3 loomd --store etcd://..., 8 simulated blades (one loom-agent each, test driver,
peer channel on, one shared journal) whose --controller lists the three replicas, 6
servers running. Scenarios, each in a cluster of its own:

  kill9-leader     kill -9 of the leading loomd: another takes over (the time from the
                   kill to the new leader serving /v1/blades is printed), every blade
                   keeps its lease, no server stops, and a step sent after the takeover
                   (a new server) runs
  sigstop-leader   kill -STOP of the leader past its etcd lease, a new leader, then
                   kill -CONT: the woken one does not act (it says its term ended and
                   stands by; nothing it sent is accepted)
  etcd-member      kill -9 of one etcd member: the fabric carries on; an apply commits
  etcd-quorum      two etcd members stopped: the leader stops acting within its lease
                   (no replica leads), no server stops (the blades hold under the outage
                   rule), and once the members are back a replica leads again and every
                   blade is online
  leader-cut       the leader's only etcd member made unreachable (an nft drop rule on
                   loopback, removed after): it stops acting before its etcd lease can
                   expire, a standby wins after the expiry; the margin between the two is
                   printed and must be positive
  apply-takeover   an apply sent while the leader is killed: if it was acknowledged its
                   servers are all there after the takeover; if not, all or none are

Each ends with the journal check (no server ran on two blades at once) and the check that
no server was stopped by its own agent or watchdog since the fault.
Usage: replica_e2e.py --loomd PATH --agent PATH [--scenario NAME]... [--keep]"""
import os, shutil, signal, subprocess, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import (Failure, arg_parser, skip_or_fail, check, prod_preamble, run_scenarios, wait_until, read_journal,
                         check_journal, now_ms, http_request)
from replicas import ReplicaCluster

BLADES = [f"b{i}" for i in range(1, 9)]
SERVERS = 6
LEASE_MS = 5000

FABRIC = "blades:\n" + "".join(
    f"  - {{name: {b}, chassis: c{1 + i // 4}, slot: {1 + i % 4}, cores: 8, memory: 16GiB, hypervisor: [kvm]}}\n"
    for i, b in enumerate(BLADES))

def decls(name="s", replicas=SERVERS):
    return prod_preamble("52:54:00:60:00:00-52:54:00:60:ff:ff", "4c4f4f4d-0000-0000-0016-000000000000/16") + f"""---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {{match: {{hypervisor: kvm}}}}
spares: 1
failover: spare
---
kind: Server
name: {name}
replicas: {replicas}
partition: prod
pool: web
vcpus: 1
memory: 1GiB
nics: [{{network: front}}]
power: on
"""

def servers(fab):
    return {s["name"]: s for s in (fab.get("/v1/servers") or [])}

def running(fab, names):
    ss = servers(fab)
    return all(n in ss and ss[n]["state"] == "running" and ss[n]["blade"] for n in names)

def names(prefix, n):
    return [f"{prefix}-{i}" for i in range(n)]

def bring_up(fab, **replicas):
    fab.write("fabric.yaml", FABRIC)
    fab.start_etcd(3)
    fab.start_replicas(3, extra=["--lease-ms", str(LEASE_MS)], **replicas)
    for b in BLADES:
        fab.start_sim_agent(fab.path("fabric.yaml"), only=b, extra=["--peer-listen", "tcp://127.0.0.1:0"])
    wait_until(lambda: len(fab.online_blades()) == len(BLADES), 30, f"{len(BLADES)} blades online")
    status, body = fab.request("POST", "/v1/apply?source=replicas.yaml", decls())
    check(status == 200, f"declarations applied ({status} {body[:300] if status != 200 else ''})")
    wait_until(lambda: running(fab, names("s", SERVERS)), 60, f"{SERVERS} servers running")
    wait_until(lambda: (fab.metric("loom_quorum_members") or 0) == len(BLADES), 15,
               f"the quorum set holds the {len(BLADES)} blades (the outage rule is armed)")
    time.sleep(1)

def stops_since(fab, t_ms):
    return [e for e in read_journal(fab.path("journal")) if e["t"] >= t_ms and e["event"] in ("destroy", "watchdog")]

def check_fabric(fab, t_fault, what, expect=()):
    """After `what`: every blade online, every server of the declarations (plus `expect`)
    running exactly once where the API says, none stopped since t_fault, journal clean."""
    wait_until(lambda: len(fab.online_blades()) == len(BLADES), 30, f"all {len(BLADES)} blades online after {what}")
    wanted = names("s", SERVERS) + list(expect)
    wait_until(lambda: running(fab, wanted), 30, f"all {len(wanted)} servers running after {what}")
    stopped = stops_since(fab, t_fault)
    check(not stopped, f"{what}: no server stopped by its own agent or watchdog",
          "; ".join(f"{e['blade']}/{e['domain']} {e['event']} at +{e['t'] - t_fault} ms" for e in stopped[:12]))
    check_journal(fab, servers(fab), what)

def takeover(fab, old, t0):
    """Waits for a leader other than `old`; its name, and the seconds from t0 (monotonic)."""
    new = fab.find_leader(timeout=15, exclude=(old,))
    took = time.monotonic() - t0
    print(f"  takeover: {new} leads {took:.3f} s after the fault (epoch {fab.epoch(new)})", flush=True)
    return new, took

def kill9_leader(fab):
    bring_up(fab)
    old = fab.find_leader()
    old_epoch = fab.epoch(old)
    t, t0 = now_ms(), time.monotonic()
    fab.kill9(f"loomd-{old}")
    new, took = takeover(fab, old, t0)
    check(fab.epoch(new) > old_epoch, f"the new leader's epoch {fab.epoch(new)} is above the old {old_epoch}")
    check(took <= 5, f"a new leader served within 5 s of the kill ({took:.3f} s)")
    # A step sent by the new leader runs: one more server.
    status, body = fab.request("POST", "/v1/apply?source=more.yaml", decls("t", 1))
    check(status == 200, f"an apply on the new leader is acknowledged ({status} {body[:200] if status != 200 else ''})")
    check_fabric(fab, t, "kill -9 of the leader", expect=["t-0"])

def sigstop_leader(fab):
    bring_up(fab)
    old = fab.find_leader()
    t, t0 = now_ms(), time.monotonic()
    fab.signal(f"loomd-{old}", signal.SIGSTOP)
    new, _ = takeover(fab, old, t0)
    time.sleep(1)
    fab.signal(f"loomd-{old}", signal.SIGCONT)
    wait_until(lambda: (fab.status(old) or {}).get("role") == "standby", 10, f"the woken {old} stands by")
    check(fab.leaders() == [new], f"only {new} leads after {old} woke up ({fab.leaders()})")
    with open(fab.path(f"loomd-{old}.log")) as f:
        log = f.read()
    check("ended" in log, f"{old} says its term ended")
    check_fabric(fab, t, "SIGSTOP of the leader past its lease, then SIGCONT")

def etcd_member(fab):
    bring_up(fab)
    leader = fab.find_leader()
    t = now_ms()
    fab.kill9("etcd-1")
    time.sleep(3)
    status, body = fab.request("POST", "/v1/apply?source=more.yaml", decls("t", 1))
    check(status == 200, f"an apply commits with one etcd member down ({status} {body[:200] if status != 200 else ''})")
    check(fab.find_leader() is not None, "a replica leads with 2 of 3 etcd members")
    check_fabric(fab, t, "kill -9 of one etcd member", expect=["t-0"])
    del leader

def etcd_quorum(fab):
    bring_up(fab)
    old = fab.find_leader()
    t = now_ms()
    fab.signal("etcd-2", signal.SIGSTOP)
    fab.signal("etcd-3", signal.SIGSTOP)
    wait_until(lambda: not fab.leaders(), 10, "no replica leads without etcd's quorum")
    time.sleep(LEASE_MS / 1000 * 2)  # twice the blades' lease without a controller
    fab.signal("etcd-2", signal.SIGCONT)
    fab.signal("etcd-3", signal.SIGCONT)
    fab.find_leader(timeout=20)
    check_fabric(fab, t, f"etcd's quorum lost for {2 * LEASE_MS // 1000} s")
    del old

def log_time(line):
    """Wall-clock ms of a loomd log line ("2026-12-07T09:14:23.123 ...", local time)."""
    stamp = line.split(" ", 1)[0]
    whole, ms = stamp.split(".")
    return int(time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 1000) + int(ms)

def log_lines(fab, name, needle):
    with open(fab.path(f"loomd-{name}.log")) as f:
        return [line for line in f if needle in line]

def leader_cut(fab):
    nft = shutil.which("nft")
    if not nft or os.geteuid() != 0:
        skip_or_fail("needs root and nft for the drop rule", "tools/test.sh runs as root and installs nftables")
    # r1 knows only etcd member 1, r2 and r3 only members 2 and 3: a drop rule on member 1's
    # client port cuts r1 from etcd and nobody else (the members talk on their peer ports).
    bring_up(fab, members={"r1": [1], "r2": [2, 3], "r3": [2, 3]}, first_leads=True)
    port = fab.etcd_endpoints[0].rsplit(":", 1)[1]
    table = f"loom_replica_{os.getpid()}"
    rules = (f"table inet {table} {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n"
             f"    ip daddr 127.0.0.1 tcp dport {port} drop\n  }}\n}}\n")
    t, t0 = now_ms(), time.monotonic()
    subprocess.run([nft, "-f", "-"], input=rules, text=True, check=True, timeout=10)
    try:
        new, took = takeover(fab, "r1", t0)
        ended = log_lines(fab, "r1", "acting ended at")
        won = log_lines(fab, new, "election: won epoch")
        check(ended and won, "r1 says when it stopped acting and the new leader when it won")
        stop_ms = int(ended[-1].rsplit("acting ended at ", 1)[1].split()[0])
        margin = log_time(won[-1]) - stop_ms
        print(f"  margin: r1 stopped acting {margin} ms before {new} won (takeover {took:.3f} s)", flush=True)
        check(margin > 0, f"the cut leader stopped acting before a standby could win (margin {margin} ms)")
    finally:
        subprocess.run([nft, "delete", "table", "inet", table], timeout=10)
    wait_until(lambda: (fab.status("r1") or {}).get("role") == "standby", 15, "r1 stands by once it reaches etcd again")
    check_fabric(fab, t, "the leader cut from etcd")

def apply_takeover(fab):
    bring_up(fab)
    old = fab.find_leader()
    import threading
    answer = {}
    def apply():
        answer["r"] = http_request(fab.api + "/v1/apply?source=more.yaml", "POST", decls("u", 4), timeout=10)
    th = threading.Thread(target=apply)
    t, t0 = now_ms(), time.monotonic()
    th.start()
    time.sleep(0.01)
    fab.kill9(f"loomd-{old}")
    th.join(15)
    takeover(fab, old, t0)
    status, _ = answer.get("r", (None, None))
    present = [n for n in names("u", 4) if n in servers(fab)]
    if status == 200:
        check(len(present) == 4, f"the acknowledged apply survived the takeover ({len(present)} of 4 servers)")
        check_fabric(fab, t, "an acknowledged apply and a takeover", expect=names("u", 4))
    else:
        check(len(present) in (0, 4), f"the unacknowledged apply ({status}) is all there or absent ({len(present)} of 4)")
        check_fabric(fab, t, "an unacknowledged apply and a takeover", expect=present)

SCENARIOS = [("kill9-leader", kill9_leader), ("sigstop-leader", sigstop_leader), ("etcd-member", etcd_member),
             ("etcd-quorum", etcd_quorum), ("leader-cut", leader_cut), ("apply-takeover", apply_takeover)]

def main():
    ap = arg_parser()
    ap.add_argument("--scenario", action="append", choices=[n for n, _ in SCENARIOS])
    args = ap.parse_args()
    return run_scenarios(SCENARIOS, args,
                         lambda name: ReplicaCluster(args.loomd, args.agent, prefix=f"loom-{name}-", keep=args.keep))

if __name__ == "__main__":
    sys.exit(main())
