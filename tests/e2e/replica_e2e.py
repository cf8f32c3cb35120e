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
  standby-reads    an apply through the leader, then GET /v1/servers, /v1/blades and
                   /v1/pools from each standby: answered from its warm copy with the
                   X-Loom-* headers (role, replica, leader, the copy's etcd revision and
                   age), every stored field equal to the leader's, what only the leader
                   knows shown as unknown or left out; a change sent to a standby is a 503
                   naming the leader; with --loomctl, `loomctl server list` at a standby
                   prints the list on stdout and one line on stderr saying so
  takeover-reads   kill -STOP of the leader: reads sent to the standbys every 50 ms keep
                   answering, with every server, through the takeover (from their copies,
                   then from the new leader)
  relay-takeover   kill -9 of the leader with the 8 blades behind 2 relays, a 1.5 s
                   heartbeat and a 3 s --leader-ttl: a server powered on through the new
                   leader the moment it serves runs within half a heartbeat, so its steps did not wait
                   for the blades' next heartbeats: each relay held its blades' latest
                   frames while no leader was bound and carried them at the bind, and
                   each blade registered on the new leader's first renewal (its restart
                   gate waits for every blade); no blade fenced itself, no server stopped
  standby-tokens   a standby checks tokens from its warm copy: 401 without one; a token
                   made on the leader is taken there once the copy has it, and refused
                   there once the copy holds its revocation (the time is printed)

Each ends with the journal check (no server ran on two blades at once) and the check that
no server was stopped by its own agent or watchdog since the fault.
Usage: replica_e2e.py --loomd PATH --agent PATH [--loomctl PATH] [--scenario NAME]... [--keep]"""
import json, os, shutil, signal, subprocess, sys, time
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
    # It took over from its warm copy (at the epoch: controller/PreloadedStore.h), not by
    # reading the store again; what it serves is checked below.
    check(any(f"term {fab.epoch(new)}: starting from the warm copy" in line
              for line in log_lines(fab, new, "starting from the warm copy")),
          f"{new} started its term from its warm copy (its log)")
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
    # A leader whose commit went unanswered by the dying member hands over (its memory may
    # be behind the store, controller/Journal.h): the apply goes to whoever leads now.
    fab.find_leader()
    status, body = fab.request("POST", "/v1/apply?source=more.yaml", decls("t", 1))
    if status == 503 and "standby" in (body or ""):
        fab.find_leader()
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
        # r1 writes the line when its election thread gives the term up, which may come after
        # the new leader serves (its renewal calls time out one by one); the time in it is
        # when acting ended.
        wait_until(lambda: log_lines(fab, "r1", "acting ended at"), 10, "r1 logs when it stopped acting")
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

# What a standby's copy holds and shows as the leader does, and what only the leader
# knows (controller/api/StandbyViews.h).
SERVER_STORED = ["name", "partition", "pool", "blade", "vcpus", "memory_mib", "uuid", "macs", "power", "priority",
                 "anti_affinity", "home"]
BLADE_STORED = ["name", "chassis", "slot", "cores", "memory_mib", "hypervisor", "hypervisors", "pool", "role", "servers",
                "driver", "cpu_model", "bmc"]
BLADE_LIVE = ["online", "relay", "domains", "pending_operations", "heartbeat_age_ms", "lease_left_ms"]

def by_name(objs):
    return {o["name"]: {k: sorted(v) if isinstance(v, list) and k != "macs" else v for k, v in o.items()} for o in objs}

def stored_differences(fab, leader, standby):
    """How `standby`'s answers differ from the leader's in the fields the store holds ("" when
    they do not)."""
    out = []
    for path, fields in (("/v1/servers", SERVER_STORED), ("/v1/blades", BLADE_STORED), ("/v1/pools", None)):
        theirs, ours = fab.get_from(leader, path), fab.get_from(standby, path)
        if theirs is None or ours is None:
            return f"{path}: no answer"
        a, b = by_name(theirs), by_name(ours)
        if set(a) != set(b):
            return f"{path}: names {sorted(set(a) ^ set(b))} on one only"
        for name in a:
            for f in fields or a[name].keys():
                if a[name].get(f) != b[name].get(f):
                    out.append(f"{path} {name}.{f}: leader {a[name].get(f)!r}, {standby} {b[name].get(f)!r}")
    return "; ".join(out[:6])

def standby_reads(fab, loomctl=None):
    bring_up(fab)
    leader = fab.find_leader()
    t = now_ms()
    status, body = fab.request("POST", "/v1/apply?source=more.yaml", decls("t", 2))
    check(status == 200, f"an apply through the leader is acknowledged ({status} {body[:200] if status != 200 else ''})")
    wait_until(lambda: running(fab, names("t", 2)), 30, "t-0 and t-1 running")
    leader_api = fab.replicas[leader]["api"]
    for name in [n for n in fab.replicas if n != leader]:
        status, headers, body = fab.get_raw(name, "/v1/servers")
        check(status == 200, f"{name} (standby) answers GET /v1/servers itself ({status}"
              f"{' ' + (body or '')[:200] if status != 200 else ''})")
        check(headers.get("x-loom-role") == "standby" and headers.get("x-loom-replica") == name
              and headers.get("x-loom-leader") == leader_api, f"{name}'s answer says it is a standby and names the leader",
              str(headers))
        revision, age = int(headers.get("x-loom-store-revision", "0")), int(headers.get("x-loom-copy-age-ms", "-1"))
        print(f"  {name}: copy at etcd revision {revision}, last known current {age} ms ago", flush=True)
        check(revision > 0 and 0 <= age < 5000, f"{name} says its copy's revision ({revision}) and age ({age} ms)")
        last = {}
        def same():
            last["why"] = stored_differences(fab, leader, name)
            return not last["why"]
        wait_until(same, 10, f"{name}'s servers, blades and pools equal the leader's in every stored field")
        ours = fab.get_from(name, "/v1/servers")
        check({s["name"] for s in ours} >= set(names("t", 2)), f"{name} shows the servers applied through the leader")
        check(all(s["state"] == "unknown" for s in ours), f"{name} does not invent servers' states (unknown)")
        blades = fab.get_from(name, "/v1/blades")
        check(all(b["state"] == "unknown" and not any(f in b for f in BLADE_LIVE) for b in blades),
              f"{name} shows blades' live state as unknown and leaves the leader's live fields out",
              json.dumps([b for b in blades if b["state"] != "unknown" or any(f in b for f in BLADE_LIVE)][:2]))
        status, headers, body = fab.get_raw(name, "/v1/servers/t-0")
        check(status == 200 and json.loads(body)["blade"], f"{name} answers GET /v1/servers/t-0 ({status})")
        status, body = http_request(fab.replicas[name]["api"] + "/v1/servers/t-0/stop", "POST", "")
        answer = json.loads(body or "{}") if status else {}
        check(status == 503 and answer.get("standby") and (answer.get("leader") or {}).get("api") == leader_api,
              f"a change sent to {name} is a 503 naming the leader ({status})", (body or "")[:300])
        if loomctl:
            out = subprocess.run([loomctl, "--controller", fab.replicas[name]["api"], "-o", "json", "server", "list"],
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
            listed = json.loads(out.stdout) if out.returncode == 0 else []
            check(out.returncode == 0 and {s["name"] for s in listed} >= set(names("t", 2)),
                  f"loomctl server list at {name} prints the servers as JSON on stdout", out.stdout[:300] + out.stderr[:300])
            check(f"answered by standby {name}" in out.stderr and "etcd revision" in out.stderr,
                  f"loomctl says on stderr that {name}, a standby, answered", out.stderr.strip())
            print(f"  loomctl: {out.stderr.strip()}", flush=True)
    check_fabric(fab, t, "reads from the standbys", expect=names("t", 2))

def takeover_reads(fab):
    bring_up(fab)
    old = fab.find_leader()
    standbys = [n for n in fab.replicas if n != old]
    expected = set(servers(fab))
    t, t0 = now_ms(), time.monotonic()
    fab.signal(f"loomd-{old}", signal.SIGSTOP)
    answered, from_copy, failed = 0, 0, []
    new, led_at = None, None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (led_at is None or time.monotonic() < led_at + 1.0):
        for name in standbys:
            status, headers, body = fab.get_raw(name, "/v1/servers", timeout=2)
            if status == 200 and {s["name"] for s in json.loads(body)} == expected:
                answered += 1
                from_copy += headers.get("x-loom-role") == "standby"
            else:
                failed.append(f"{name} at +{time.monotonic() - t0:.2f} s: {status} {headers.get('x-loom-role')} "
                              f"{(body or '')[:120]}")
        if new is None:
            leading = [n for n in standbys if (fab.status(n) or {}).get("role") == "leader"]
            if leading:
                new, led_at = leading[0], time.monotonic()
        time.sleep(0.05)
    check(new is not None, f"a standby took over from the stopped {old}")
    print(f"  takeover: {new} leads {led_at - t0:.3f} s after the SIGSTOP; {answered} reads answered "
          f"({from_copy} from a standby's copy), {len(failed)} not", flush=True)
    check(not failed, "every read sent to a standby during the takeover answered with every server", "; ".join(failed[:8]))
    check(from_copy > 0, "reads were answered from the standbys' copies while no replica served as leader")
    fab.signal(f"loomd-{old}", signal.SIGCONT)
    wait_until(lambda: (fab.status(old) or {}).get("role") == "standby", 10, f"the woken {old} stands by")
    fab.find_leader()
    check_fabric(fab, t, "reads during a takeover")

def standby_tokens(fab):
    bring_up(fab)
    leader = fab.find_leader()
    standby = next(n for n in fab.replicas if n != leader)
    api = fab.replicas[standby]["api"]
    status, _ = http_request(api + "/v1/servers", token="")
    check(status == 401, f"{standby} (standby): GET /v1/servers without a token is 401 ({status})")
    status, body = fab.request("POST", "/v1/tokens", json.dumps({"role": "reader"}))
    check(status == 201, f"the leader makes a reader token ({status})", body or "")
    made = json.loads(body)
    token, tid = made["token"], made["id"]
    wait_until(lambda: http_request(api + "/v1/servers", token=token)[0] == 200, 5,
               f"{standby} takes the new token once its copy has it")
    status, _ = http_request(api + "/v1/status", token=token)
    check(status == 200, f"{standby}'s GET /v1/status with it ({status})")
    status, _ = fab.request("POST", f"/v1/tokens/{tid}/revoke", "")
    check(status == 200, f"the leader revokes it ({status})")
    t0 = time.monotonic()
    wait_until(lambda: http_request(api + "/v1/servers", token=token)[0] == 401, 5,
               f"{standby} refuses the revoked token once its copy holds the revocation", interval=0.01)
    print(f"  {standby} refused it {(time.monotonic() - t0) * 1000:.0f} ms after the leader acknowledged the revocation",
          flush=True)
    check(http_request(api + "/v1/status", token=token)[0] == 401, f"{standby}'s /v1/status refuses it too")

# Every blade beats during the takeover (the leader's etcd lease of 3 s outlasts a beat), so
# each relay holds a frame of each of its blades when the new leader binds; without the
# hold a blade is heard at its next beat, up to 1.5 s (plus the relay's reconnect) later.
RELAY_HEARTBEAT_MS = 1500

def probe_decl():
    return """---
kind: Server
name: probe
replicas: 1
partition: prod
pool: web
vcpus: 1
memory: 1GiB
nics: [{network: front}]
power: off
"""

def started_since(fab, domain, t_ms):
    return [e["t"] for e in read_journal(fab.path("journal")) if e["event"] == "start" and e["domain"] == domain
            and e["t"] >= t_ms]

def relay_takeover(fab):
    fab.write("fabric.yaml", FABRIC)
    fab.start_etcd(3)
    fab.start_replicas(3, extra=["--lease-ms", str(8 * RELAY_HEARTBEAT_MS), "--heartbeat-ms", str(RELAY_HEARTBEAT_MS),
                                 "--suspect-ms", str(3 * RELAY_HEARTBEAT_MS), "--dead-ms", str(4 * RELAY_HEARTBEAT_MS),
                                 "--leader-ttl", "3"])
    for chassis in ("c1", "c2"):
        fab.start_relay(chassis)
    for i, b in enumerate(BLADES):
        fab.start_sim_agent(fab.path("fabric.yaml"), only=b, via=f"c{1 + i // 4}",
                            extra=["--peer-listen", "tcp://127.0.0.1:0"])
    wait_until(lambda: len(fab.online_blades()) == len(BLADES), 60, f"{len(BLADES)} blades online through 2 relays")
    status, body = fab.request("POST", "/v1/apply?source=replicas.yaml", decls() + probe_decl())
    check(status == 200, f"declarations applied ({status} {body[:300] if status != 200 else ''})")
    wait_until(lambda: running(fab, names("s", SERVERS)), 60, f"{SERVERS} servers running")
    wait_until(lambda: (fab.metric("loom_quorum_members") or 0) == len(BLADES), 30,
               f"the quorum set holds the {len(BLADES)} blades")
    time.sleep(1)
    old = fab.find_leader()
    t, t0 = now_ms(), time.monotonic()
    fab.kill9(f"loomd-{old}")
    new, took = takeover(fab, old, t0)
    serving = time.monotonic()
    status, body = http_request(fab.replicas[new]["api"] + "/v1/servers/probe-0/start", "POST", "", timeout=10)
    check(status in (200, 202), f"probe-0 powered on through the new leader {new} ({status} {body[:200]})")
    wait_until(lambda: started_since(fab, "probe-0", t), 30, "probe-0 started by the new leader", interval=0.02)
    after = time.monotonic() - serving
    print(f"  probe-0 ran {after:.3f} s after {new} served ({took + after:.3f} s after the kill)", flush=True)
    check(after < RELAY_HEARTBEAT_MS / 2000,
          f"the new leader's steps reached a blade {after:.3f} s after it served, within half a heartbeat "
          f"({RELAY_HEARTBEAT_MS / 2000:.2f} s): every blade registered with it without waiting for its next beat")
    fenced = [line for name in os.listdir(fab.work) if name.startswith("agent") and name.endswith(".log")
              for line in open(fab.path(name), errors="replace") if "lease not renewed" in line]
    check(not fenced, "no blade fenced itself through the takeover", "; ".join(fenced[:3]))
    check_fabric(fab, t, "kill -9 of the leader, blades behind relays", expect=["probe-0"])

SCENARIOS = [("kill9-leader", kill9_leader), ("sigstop-leader", sigstop_leader), ("etcd-member", etcd_member),
             ("etcd-quorum", etcd_quorum), ("leader-cut", leader_cut), ("apply-takeover", apply_takeover),
             ("standby-reads", standby_reads), ("takeover-reads", takeover_reads), ("standby-tokens", standby_tokens),
             ("relay-takeover", relay_takeover)]

def main():
    ap = arg_parser()
    ap.add_argument("--scenario", action="append", choices=[n for n, _ in SCENARIOS])
    ap.add_argument("--loomctl", help="also read through `loomctl server list` at a standby")
    args = ap.parse_args()
    scenarios = [(n, (lambda fab: standby_reads(fab, args.loomctl)) if n == "standby-reads" else f) for n, f in SCENARIOS]
    return run_scenarios(scenarios, args,
                         lambda name: ReplicaCluster(args.loomd, args.agent, prefix=f"loom-{name}-", keep=args.keep))

if __name__ == "__main__":
    sys.exit(main())
