#!/usr/bin/env python3
"""Controller takeover benchmark (issue 16, DESIGN.md section 6), not a test: a real
3-member etcd cluster (Debian's etcd-server, raft timings of tools/etcd.sh), 3 loomd
--store etcd://... (--leader-ttl 1), N simulated blades (default 1,000) in 20 chassis, each
chassis behind a fabric relay whose --controller lists the three replicas, and S servers
running. Each round:

  kill -9 the leading loomd, then measure from the kill
    serve_s   until `loomctl --controller URL1,URL2,URL3 blade list` succeeds against the
              new leader (it follows a standby's 503 to the leader)
    step_s    until a server that was powered off before the kill, started through the new
              leader's API the moment it serves, runs on its blade (the journal's start):
              the new leader recovered, took the blades' registrations and sent a step
  then count, over the round
    self_fenced   agents that fenced themselves (their log)
    stopped       servers stopped by their own agent or watchdog (the journal)
  and start the killed replica again (a standby) before the next round.

Prints every round and the medians. Every wait is bounded; every process is killed and
the work dir removed at the end (--keep keeps it).
Usage: takeover_bench.py --loomd PATH --agent PATH --loomctl PATH [--blades 1000 --servers 200
                         --rounds 5 --lease-ms 5000]"""
import argparse, os, statistics, subprocess, sys, time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from loomharness import Failure, prod_preamble, read_journal, now_ms, wait_until  # noqa: E402
from replicas import ReplicaCluster  # noqa: E402

CHASSIS = 20

def fabric_yaml(n):
    return "blades:\n" + "".join(
        f"  - {{name: b{i:05d}, chassis: c{i % CHASSIS:02d}, slot: {i // CHASSIS}, cores: 64, memory: 256GiB, hypervisor: [kvm]}}\n"
        for i in range(n))

def decls(servers):
    docs = [prod_preamble("52:54:00:00:00:00-52:54:00:ff:ff:ff", "4c4f4f4d-0000-0000-0016-000000000000/20").rstrip("\n"),
            "kind: Pool\nname: p\npartition: prod\nhypervisor: kvm\nblades: {match: {hypervisor: kvm}}\nspares: 2",
            f"kind: Server\nname: s\nreplicas: {servers}\npartition: prod\npool: p\nvcpus: 1\nmemory: 1GiB\n"
            "nics: [{network: front}]\npower: on",
            "kind: Server\nname: probe\nreplicas: 1\npartition: prod\npool: p\nvcpus: 1\nmemory: 1GiB\n"
            "nics: [{network: front}]\npower: off"]
    return "\n---\n".join(docs) + "\n"

def self_fenced(fab):
    """Self-fence lines ("lease not renewed") in the agents' log so far."""
    with open(fab.path("agents.log"), errors="replace") as f:
        return sum("lease not renewed" in line for line in f)

def stopped_since(fab, t_ms):
    return sum(1 for e in read_journal(fab.path("journal")) if e["t"] >= t_ms and e["event"] in ("destroy", "watchdog"))

def journal_started(fab, domain, since_ms):
    return any(e["event"] == "start" and e["domain"] == domain and e["t"] >= since_ms
               for e in read_journal(fab.path("journal")))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loomd", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--loomctl", required=True)
    ap.add_argument("--blades", type=int, default=1000)
    ap.add_argument("--servers", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--lease-ms", type=int, default=5000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    rows = []
    with ReplicaCluster(args.loomd, args.agent, prefix="loom-takeover-", keep=args.keep) as fab:
        fab.write("fabric.yaml", fabric_yaml(args.blades))
        fab.start_etcd(3)
        fab.start_replicas(3, extra=["--lease-ms", str(args.lease_ms), "--log-level", "warn"])
        via = []
        for c in range(CHASSIS):
            fab.start_relay(f"c{c:02d}")
            via += ["--relay", f"c{c:02d}={fab.relays[f'c{c:02d}'][0]}"]
        fab.start_sim_agent(fab.path("fabric.yaml"), name="agents", extra=via + ["--log-level", "warn"])
        wait_until(lambda: len(fab.online_blades()) == args.blades, 120, f"{args.blades} blades online")
        status, body = fab.request("POST", "/v1/apply?source=bench.yaml", decls(args.servers))
        if status != 200:
            raise Failure(f"apply: {status} {body[:300]}")
        wait_until(lambda: sum(1 for s in fab.get("/v1/servers") or [] if s["state"] == "running") == args.servers,
                   120, f"{args.servers} servers running")
        urls = ",".join(r["api"] for r in fab.replicas.values())
        for rnd in range(1, args.rounds + 1):
            leader = fab.find_leader()
            # The probe server: powered off now, started by the new leader after the kill.
            fab.post("/v1/servers/probe-0/stop")
            wait_until(lambda: (fab.get("/v1/servers/probe-0") or {}).get("state") in ("stopped", "defined", "absent"),
                       30, "probe-0 stopped")
            time.sleep(2)
            fenced_before = self_fenced(fab)
            t_ms, t0 = now_ms(), time.monotonic()
            fab.kill9(f"loomd-{leader}")
            serve = None
            deadline = t0 + 30
            while time.monotonic() < deadline:
                r = subprocess.run([args.loomctl, "--controller", urls, "blade", "list", "-o", "json"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
                if r.returncode == 0:
                    serve = time.monotonic() - t0
                    break
                time.sleep(0.02)
            if serve is None:
                raise Failure(f"round {rnd}: no replica served blade list within 30 s of the kill")
            new = fab.find_leader(exclude=(leader,))
            fab.post("/v1/servers/probe-0/start")
            wait_until(lambda: journal_started(fab, "probe-0", t_ms), 30, "probe-0 started by the new leader",
                       interval=0.02)
            step = time.monotonic() - t0
            time.sleep(max(0.0, args.lease_ms / 1000 + 2 - (time.monotonic() - t0)))  # a whole lease after the kill
            row = {"round": rnd, "from": leader, "to": new, "serve_s": round(serve, 3), "step_s": round(step, 3),
                   "self_fenced": self_fenced(fab) - fenced_before, "stopped": stopped_since(fab, t_ms)}
            print(row, flush=True)
            rows.append(row)
            fab.respawn(f"loomd-{leader}")
        fab.passed = True
    if rows:
        for k in ("serve_s", "step_s", "self_fenced", "stopped"):
            print(f"median {k}: {statistics.median(r[k] for r in rows)}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
