#!/usr/bin/env python3
"""Controller takeover benchmark (issue 16, DESIGN.md section 6), not a test: a real
3-member etcd cluster (Debian's etcd-server, raft timings of tools/etcd.sh), 3 loomd
--store etcd://... (--leader-ttl 1), N simulated blades (default 1,000) in 20 chassis, each
chassis behind a fabric relay whose --controller lists the three replicas, and S servers
running. Each round:

  kill -9 the leading loomd, then measure from the kill
    serve_s   until the new leader answers GET /v1/blades itself (X-Loom-Role: leader;
              standbys answer reads from their warm copy all along), then `loomctl
              --controller URL1,URL2,URL3 blade list` is checked to succeed
    step_s    until a server that was powered off before the kill, started through the new
              leader's API the moment it serves, runs on its blade (the journal's start):
              the new leader recovered, took the blades' registrations and sent a step
  then count, over the round
    self_fenced   agents that fenced themselves (their log)
    stopped       servers stopped by their own agent or watchdog (the journal)
  and start the killed replica again (a standby) before the next round.

With --steady SECONDS, before the rounds (issue 16's steady-state figures; --rounds 0 to
measure only this): the servers are applied in two requests, the first of min(10,000, S)
servers timed (apply_10k_s: parse, plan and the etcd store's commits, as fabric_bench.py
times it on SQLite); once every server runs, over SECONDS:
    leader_cpu_pct, leader_rss_mb      the leading loomd
    standby_cpu_pct, standby_rss_mb    each standby (the mean of them)
    etcd_cpu_pct, etcd_rss_mb          the etcd members, summed
    etcd_db_mb                         the leader member's database size (its status)
    heartbeats_per_s                   answered by the leader (its /metrics)

Prints every round and the medians. Every wait is bounded; every process is killed and
the work dir removed at the end (--keep keeps it).
With --keep --agent-log-level info, each round's times are in the work dir: the kill
(printed), the agents' "registered" lines (agents*.log) and the journal's start of probe-0.
Usage: takeover_bench.py --loomd PATH --agent PATH --loomctl PATH [--blades 1000 --servers 200
                         --rounds 5 --lease-ms 5000 --peer-channel --steady 0 --blades-per-process N
                         --phases --agent-log-level warn --keep]"""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time
import urllib.error, urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from loomharness import Failure, http_request, metric, prod_preamble, read_journal, now_ms, wait_until  # noqa: E402
from replicas import ReplicaCluster  # noqa: E402

CHASSIS = 20

def fabric_yaml(n):
    return "blades:\n" + "".join(
        f"  - {{name: b{i:05d}, chassis: c{i % CHASSIS:02d}, slot: {i // CHASSIS}, cores: 64, memory: 256GiB, hypervisor: [kvm]}}\n"
        for i in range(n))

def decls(servers, first=None):
    """The fabric's declarations. With `first`: a list of requests instead, the first with
    everything but servers beyond the first `first`, then the rest in requests of `first`
    servers each (as an operator grows a fabric; one etcd txn each)."""
    head = [prod_preamble("52:54:00:00:00:00-52:54:00:ff:ff:ff", "4c4f4f4d-0000-0000-0016-000000000000/20").rstrip("\n"),
            "kind: Pool\nname: p\npartition: prod\nhypervisor: kvm\nblades: {match: {hypervisor: kvm}}\nspares: 2",
            "kind: Server\nname: probe\nreplicas: 1\npartition: prod\npool: p\nvcpus: 1\nmemory: 1GiB\n"
            "nics: [{network: front}]\npower: off"]
    def servers_doc(name, n):
        return (f"kind: Server\nname: {name}\nreplicas: {n}\npartition: prod\npool: p\nvcpus: 1\nmemory: 1GiB\n"
                "nics: [{network: front}]\npower: on")
    if first is None:
        return "\n---\n".join(head + [servers_doc("s", servers)]) + "\n"
    out = ["\n---\n".join(head + [servers_doc("s", first)]) + "\n"]
    left, k = servers - first, 0
    while left > 0:
        out.append(servers_doc(f"t{k}", min(first, left)) + "\n")
        left -= first
        k += 1
    return out

def metric_of(fab, name):
    """A metric of the leader's /metrics; 0 when absent or unanswered. (Not /v1/blades or
    /v1/servers: listing 100,000 servers every second would be the load measured.)"""
    text = fab.get("/metrics")
    value = metric(text, name) if text else None
    return value or 0

def online_count(fab):
    return sum(metric_of(fab, f'loom_blades{{state="{s}"}}') for s in ("available", "active", "spare"))

def leader_answers(url):
    """True when `url` is answered 200 by a replica that leads (its X-Loom-Role)."""
    try:
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ.get("LOOM_TOKEN", "")})
        with urllib.request.urlopen(req, timeout=2) as r:
            r.read()
            return r.status == 200 and r.headers.get("X-Loom-Role") == "leader"
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return False

def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def proc_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def etcd_db_mb(fab):
    """The database size etcd's leader member reports (maintenance status)."""
    sizes = []
    for ep in fab.etcd_endpoints:
        try:
            status, body = http_request(f"http://{ep}/v3/maintenance/status", "POST", "{}", timeout=5, token="")
        except OSError:
            continue
        if status == 200:
            st = json.loads(body)
            if st.get("leader") == st.get("header", {}).get("member_id"):
                return int(st.get("dbSize", 0)) / 1e6
            sizes.append(int(st.get("dbSize", 0)) / 1e6)
    return max(sizes) if sizes else 0.0

def steady_state(fab, leader, seconds):
    """CPU and RSS of the leader, the standbys and etcd over `seconds`."""
    groups = {"leader": [fab.procs[f"loomd-{leader}"].pid],
              "standby": [p.pid for n, p in fab.procs.items() if n.startswith("loomd-") and n != f"loomd-{leader}"],
              "etcd": [p.pid for n, p in fab.procs.items() if n.startswith("etcd-")]}
    c0 = {g: [proc_cpu_s(p) for p in pids] for g, pids in groups.items()}
    hb0, t0 = fab.metric("loom_heartbeats_total"), time.monotonic()
    time.sleep(seconds)
    c1 = {g: [proc_cpu_s(p) for p in pids] for g, pids in groups.items()}
    hb1, t1 = fab.metric("loom_heartbeats_total"), time.monotonic()
    out = {}
    for g, pids in groups.items():
        pct = [100 * (b - a) / (t1 - t0) for a, b in zip(c0[g], c1[g])]
        rss = [proc_rss_mb(p) for p in pids]
        if g == "standby":  # the mean of them: what one standby costs
            out["standby_cpu_pct"], out["standby_rss_mb"] = statistics.mean(pct), statistics.mean(rss)
        else:
            out[f"{g}_cpu_pct"], out[f"{g}_rss_mb"] = sum(pct), sum(rss)
    out["etcd_db_mb"] = etcd_db_mb(fab)
    out["heartbeats_per_s"] = (hb1 - hb0) / (t1 - t0)
    return {k: round(v, 2) for k, v in out.items()}

def self_fenced(fab):
    """Self-fence lines ("lease not renewed") in the agents' logs so far."""
    count = 0
    for name in os.listdir(fab.work):
        if name.startswith("agents") and name.endswith(".log"):
            with open(fab.path(name), errors="replace") as f:
                count += sum("lease not renewed" in line for line in f)
    return count

def stopped_since(fab, t_ms):
    return sum(1 for e in read_journal(fab.path("journal")) if e["t"] >= t_ms and e["event"] in ("destroy", "watchdog"))

def journal_started(fab, domain, since_ms):
    return any(e["event"] == "start" and e["domain"] == domain and e["t"] >= since_ms
               for e in read_journal(fab.path("journal")))

def event_ms(e):
    """An event's wall time in ms, whichever way the API spells it."""
    for k in ("time_ms", "t"):
        if isinstance(e.get(k), (int, float)):
            return int(e[k])
    ts = e.get("time")
    if isinstance(ts, str):
        from datetime import datetime
        return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)
    return None

def phases(fab, t_ms, step_s):
    """Where a round's time went, from the new leader's events (ms after the kill): its term's
    recovery ("controller started"), the first and last blade registered with it, the restart
    gate opening ("starts resume"), and probe-0 started (the journal)."""
    events = fab.get("/v1/events?tail=5000") or []
    out = {}
    regs = [event_ms(e) for e in events if "registered (agent" in e.get("message", "") and (event_ms(e) or 0) >= t_ms]
    for e in events:
        t, m = event_ms(e), e.get("message", "")
        if t is None or t < t_ms:
            continue
        if m.startswith("controller started") and "recovered_ms" not in out:
            out["recovered_ms"] = t - t_ms
        if m.startswith("every blade known before the restart has registered") and "gate_open_ms" not in out:
            out["gate_open_ms"] = t - t_ms
    if regs:
        regs.sort()
        out["registers"] = len(regs)
        for q in (0, 50, 90, 100):
            out[f"register_p{q}_ms"] = regs[min(len(regs) - 1, len(regs) * q // 100)] - t_ms
    out["step_ms"] = round(step_s * 1000)
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loomd", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--loomctl", required=True)
    ap.add_argument("--blades", type=int, default=1000)
    ap.add_argument("--servers", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--lease-ms", type=int, default=5000)
    ap.add_argument("--leader-ttl", type=int, default=1,
                    help="loomd's --leader-ttl (s): 1 for the fastest takeover; longer where etcd or the machine "
                         "can be busy for a second (a 10,000-server apply commits 10,000 keys twice, then 20,000 pending operations: etcd applies each for a second or more)")
    ap.add_argument("--peer-channel", action="store_true",
                    help="the blades listen on the peer channel (the outage rule's shield, docs/FENCING.md)")
    ap.add_argument("--steady", type=float, default=0,
                    help="seconds of steady state to measure before the rounds (0: none)")
    ap.add_argument("--agent-log-level", default="warn",
                    help="the simulated agents' --log-level: info puts each blade's registration with the new leader "
                         "in their logs (with --keep, to see where a takeover's time goes; loomd stays at warn)")
    ap.add_argument("--blades-per-process", type=int, default=0,
                    help="blades one simulating loom-agent process runs (default 2,000 with --peer-channel, else "
                         "5,000). One thread runs them all: at a takeover every blade registers with the new leader "
                         "at once, and one process of 1,000 took 2 s to (a real blade's agent runs on its own machine)")
    ap.add_argument("--sim-state-tmpfs", action="store_true",
                    help="keep the simulated blades' state (their epoch, policy and watchdog files, WORK/sim) on "
                         "/dev/shm: each real agent writes its own on its own disk, but 1,000 blades' files in one "
                         "ext4 directory on a shared disk made a takeover's epoch files (one new inode per blade, "
                         "ext4's inode search) the simulating process's whole cost, about 2 ms a blade")
    ap.add_argument("--phases", action="store_true",
                    help="after each round print where its time went, from the new leader's events: its recovery, "
                         "the blades' registrations with it, the restart gate opening (ms after the kill)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    rows = []
    shm = None
    # Requests wait up to 5 minutes: an apply of 10,000 servers at 10,000 blades is seconds.
    with ReplicaCluster(args.loomd, args.agent, prefix="loom-takeover-", keep=args.keep, request_timeout=300) as fab:
        fab.write("fabric.yaml", fabric_yaml(args.blades))
        fab.start_etcd(3)
        fab.start_replicas(3, extra=["--lease-ms", str(args.lease_ms), "--leader-ttl", str(args.leader_ttl),
                                     "--log-level", "warn"])
        via = []
        for c in range(CHASSIS):
            fab.start_relay(f"c{c:02d}")
            via += ["--relay", f"c{c:02d}={fab.relays[f'c{c:02d}'][0]}"]
        # One process simulates up to 5,000 blades (two file descriptors each; fabric_bench.py),
        # 2,000 with the peer channel (each blade listens too).
        if args.sim_state_tmpfs:
            shm = tempfile.mkdtemp(prefix="loom-takeover-sim-", dir="/dev/shm")
            os.symlink(shm, fab.path("sim"))
        names = [f"b{i:05d}" for i in range(args.blades)]
        per = args.blades_per_process or (2000 if args.peer_channel else 5000)
        for k in range(0, len(names), per):
            fab.start_sim_agent(fab.path("fabric.yaml"), name=f"agents{k // per}",
                                extra=via + ["--only", ",".join(names[k:k + per]), "--log-level", args.agent_log_level]
                                + (["--peer-listen", "tcp://127.0.0.1:0"] if args.peer_channel else []))
        wait_until(lambda: online_count(fab) >= args.blades, 300, f"{args.blades} blades online", interval=1)
        steady = {}
        if args.steady > 0:
            first, *rest = decls(args.servers, min(10000, args.servers))
            t0 = time.monotonic()
            status, body = fab.request("POST", "/v1/apply?source=first.yaml", first)
            steady["apply_10k_s"] = round(time.monotonic() - t0, 3)
            if status != 200:
                raise Failure(f"apply: {status} {(body or '')[:300]}")
            for i, more in enumerate(rest):
                # An apply is declarative: one whose leader stood down meanwhile (503) is sent
                # again to whoever leads, as loomctl would.
                for _ in range(3):
                    status, body = fab.request("POST", f"/v1/apply?source=more-{i}.yaml", more)
                    if status == 200:
                        break
                    steady["applies_retried"] = steady.get("applies_retried", 0) + 1
                    fab.find_leader(timeout=60)
                if status != 200:
                    raise Failure(f"apply of more-{i}: {status} {(body or '')[:300]}")
            print(f"  applied; apply of {min(10000, args.servers)} servers took {steady['apply_10k_s']} s", flush=True)
        else:
            status, body = fab.request("POST", "/v1/apply?source=bench.yaml", decls(args.servers))
            if status != 200:
                raise Failure(f"apply: {status} {(body or '')[:300]}")
        wait_until(lambda: (metric_of(fab, 'loom_servers{state="running"}') >= args.servers
                            and metric_of(fab, "loom_operations_pending") == 0),
                   600, f"{args.servers} servers running", interval=1)
        if args.steady > 0:
            time.sleep(10)  # settle
            steady.update(steady_state(fab, fab.find_leader(), args.steady))
            print("steady:", steady, flush=True)
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
            if args.agent_log_level != "warn":
                print(f"  round {rnd}: killed loomd-{leader} at {time.strftime('%H:%M:%S', time.localtime(t_ms / 1000))}"
                      f".{t_ms % 1000:03d}", flush=True)
            # Standbys answer reads from their warm copy all along (X-Loom-Role: standby);
            # serving here is the new leader's own answer.
            serve = None
            deadline = t0 + 30
            while time.monotonic() < deadline and serve is None:
                for name, r in fab.replicas.items():
                    if name != leader and leader_answers(r["api"] + "/v1/blades"):
                        serve = time.monotonic() - t0
                        break
                else:
                    time.sleep(0.02)
            if serve is None:
                raise Failure(f"round {rnd}: no new leader served /v1/blades within 30 s of the kill")
            r = subprocess.run([args.loomctl, "--controller", urls, "blade", "list", "-o", "json"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
            if r.returncode != 0:
                raise Failure(f"round {rnd}: loomctl --controller {urls} blade list failed after the takeover")
            new = fab.find_leader(exclude=(leader,))
            fab.post("/v1/servers/probe-0/start")
            wait_until(lambda: journal_started(fab, "probe-0", t_ms), 30, "probe-0 started by the new leader",
                       interval=0.02)
            step = time.monotonic() - t0
            time.sleep(max(0.0, args.lease_ms / 1000 + 2 - (time.monotonic() - t0)))  # a whole lease after the kill
            row = {"round": rnd, "from": leader, "to": new, "serve_s": round(serve, 3), "step_s": round(step, 3),
                   "self_fenced": self_fenced(fab) - fenced_before, "stopped": stopped_since(fab, t_ms)}
            print(row, flush=True)
            if args.phases:
                print("  phases:", phases(fab, t_ms, step), flush=True)
            rows.append(row)
            fab.respawn(f"loomd-{leader}")
        fab.passed = True
    if shm:
        shutil.rmtree(shm, ignore_errors=True)
    if rows:
        for k in ("serve_s", "step_s", "self_fenced", "stopped"):
            print(f"median {k}: {statistics.median(r[k] for r in rows)}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
