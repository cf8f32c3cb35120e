#!/usr/bin/env python3
"""End-to-end test of the running fabric: real loomd and loom-agent processes on
loopback, CurveZMQ on, test driver, one agent process per blade. Each scenario starts a
fabric of its own (4 blades), so one failing does not hide the others:

  apply          bad YAML refused precisely, a dry run changes nothing, a file naming a pool
                 not yet declared is refused; then every power:on server runs on a blade of
                 its pool, anti-affinity kept, identities unique
  loomd-restart  kill -9 of loomd and restart: same bindings, same identities
  agent-restart  kill -9 of an agent and restart: its domains adopted, no step sent, none
                 started twice (journal)
  unknown-key    an agent with a key loomd does not allow is refused and never registers
  garbage        junk on the fabric and API ports, odd paths: loomd, blades and servers live on
  operator-verbs capacity, a dry-run diff, move (refusals and a real one: stop before start),
                 delete, retire, retirement and identities kept across a restart

Every wait is bounded; every process is killed at the end.
Usage: fabric_e2e.py --loomd PATH --agent PATH [--keep] [--scenario NAME ...]"""
import collections, json, os, random, socket, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, arg_parser, Failure, check, run_scenarios, wait_until

FABRIC = """
blades:
  - {name: b1, chassis: c1, slot: 1, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: b2, chassis: c1, slot: 2, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: b3, chassis: c1, slot: 3, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: b4, chassis: c1, slot: 4, cores: 8, memory: 16GiB, hypervisor: [kvm]}
"""

POOLS = """
kind: Partition
name: prod
---
kind: Network
name: front
partition: prod
vlan: 100
---
kind: IdentityPool
name: default
macs: 52:54:00:10:00:00-52:54:00:10:ff:ff
uuids: 4c4f4f4d-0000-0000-0000-000000000000/16
---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {match: {chassis: c1}}
spares: 1
"""

# Applied after POOLS, in a request of its own: it names the pool, partition and
# network POOLS declared (apply validates the union of stored and new declarations).
SERVERS = """
kind: Server
name: web
replicas: 3
partition: prod
pool: web
vcpus: 2
memory: 2GiB
nics: [{network: front}]
disks: [{image: /var/lib/loom/images/web.qcow2}]
anti_affinity: web
power: on
---
kind: Server
name: app
replicas: 2
partition: prod
pool: web
vcpus: 1
memory: 1GiB
nics: [{network: front}, {network: front}]
power: on
---
kind: Server
name: cold
partition: prod
pool: web
vcpus: 1
memory: 1GiB
power: off
"""

DECLS = POOLS + "---" + SERVERS

APP = """
kind: Server
name: app
replicas: 2
partition: prod
pool: web
vcpus: 1
memory: 1GiB
nics: [{network: front}, {network: front}]
power: on
"""

EXTRA = """
kind: Server
name: extra
partition: prod
pool: web
vcpus: 1
memory: 512MiB
power: on
"""

BAD_YAML = """
kind: Server
name: broken
partition: prod
pool: web
vcpus: two
"""

def all_running(fab, servers_on):
    servers = fab.get("/v1/servers")
    return servers and all(s["state"] == "running" for s in servers if s["name"] in servers_on)

def journal_entries(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    return out

ON_SERVERS = {"web-0", "web-1", "web-2", "app-0", "app-1"}

def start_fabric(fab):
    """loomd and one agent process per blade, CurveZMQ on; every blade registered."""
    fabric_yaml = fab.write("fabric.yaml", FABRIC)
    fab.keygen("loomd", "agent", "rogue")
    print("== start loomd and one agent process per blade (CurveZMQ on)", flush=True)
    fab.start_loomd()
    for b in ["b1", "b2", "b3", "b4"]:
        fab.start_sim_agent(fabric_yaml, only=b)
    wait_until(lambda: len([b for b in fab.get("/v1/blades") if b["online"]]) == 4, 20, "4 blades registered")

def bring_up(fab):
    """start_fabric, then pools and servers applied and every power:on server running.
    Every server's (blade, uuid, macs)."""
    start_fabric(fab)
    print("== apply pools and servers", flush=True)
    status, body = fab.request("POST", "/v1/apply?source=servers.yaml", DECLS)
    check(status == 200, f"pools and servers -> 200 ({body[:300] if status != 200 else ''})")
    wait_until(lambda: all_running(fab, ON_SERVERS), 30, "all power:on servers running")
    return {s["name"]: (s["blade"], s["uuid"], tuple(s["macs"])) for s in fab.get("/v1/servers")}

def apply(fab):
    start_fabric(fab)
    on_servers = ON_SERVERS
    print("== bad YAML is refused precisely and changes nothing", flush=True)
    status, body = fab.request("POST", "/v1/apply?source=bad.yaml", BAD_YAML)
    check(status == 400, f"bad YAML -> HTTP 400 (got {status})")
    diags = json.loads(body).get("diagnostics", [])
    check(diags and diags[0].startswith("bad.yaml:") and diags[0].split(":")[1].isdigit(), f"diagnostic is FILE:LINE:COL ({diags[:1]})")
    check(fab.get("/v1/servers") == [], "no server declared after the refused apply")

    print("== dry run changes nothing", flush=True)
    status, body = fab.request("POST", "/v1/apply?dry_run=1", DECLS)
    check(status == 200 and json.loads(body)["dry_run"] is True, "dry run answers 200 with a plan")
    check(fab.get("/v1/servers") == [], "nothing declared after the dry run")

    print("== apply -> every power:on server running on a blade of its pool, anti-affinity kept", flush=True)
    status, body = fab.request("POST", "/v1/apply?source=servers.yaml", SERVERS)
    check(status == 400, f"servers.yaml alone -> 400: its pool is not declared yet (got {status})")
    diags = json.loads(body).get("diagnostics", [])
    check(diags and diags[0].startswith("servers.yaml:") and "is declared" in diags[0],
          f"diagnostic points into servers.yaml ({diags[:1]})")
    status, body = fab.request("POST", "/v1/apply?source=pools.yaml", POOLS)
    check(status == 200, f"pools.yaml -> 200 ({body[:200] if status != 200 else ''})")
    created = json.loads(body)["diff"]["created"]
    check({"kind": "Pool", "name": "web"} in created, f"diff lists created objects as kind+name ({created[:2]})")
    status, body = fab.request("POST", "/v1/apply?source=servers.yaml", SERVERS)
    check(status == 200, f"servers.yaml after pools.yaml -> 200, validated with the stored pools ({body[:300] if status != 200 else ''})")
    wait_until(lambda: all_running(fab, on_servers), 30, "all power:on servers running")
    servers = {s["name"]: s for s in fab.get("/v1/servers")}
    pool = fab.get("/v1/pools/web")
    for name in on_servers:
        check(servers[name]["blade"] in pool["blades"], f"{name} on {servers[name]['blade']}, a blade of pool web")
    web_blades = [servers[n]["blade"] for n in ("web-0", "web-1", "web-2")]
    check(len(set(web_blades)) == 3, f"anti-affinity group web on three different blades {web_blades}")
    check(servers["cold"]["state"] == "stopped" and servers["cold"]["blade"] is None, "power:off server holds no blade")
    uuids = [s["uuid"] for s in servers.values()]
    macs = [m for s in servers.values() for m in s["macs"]]
    check(len(set(uuids)) == len(uuids) and len(set(macs)) == len(macs), "identities unique")

def loomd_restart(fab):
    before = bring_up(fab)
    on_servers = ON_SERVERS
    print("== kill -9 loomd and restart: same bindings, same identities", flush=True)
    fab.restart("loomd")
    wait_until(lambda: len([b for b in fab.get("/v1/blades") if b["online"]]) == 4, 20, "4 blades re-registered")
    wait_until(lambda: all_running(fab, on_servers), 20, "all power:on servers running after the restart")
    after = {s["name"]: (s["blade"], s["uuid"], tuple(s["macs"])) for s in fab.get("/v1/servers")}
    check(after == before, "bindings and identities unchanged by kill -9 of loomd")

def agent_restart(fab):
    before = bring_up(fab)
    on_servers = ON_SERVERS
    print("== kill -9 an agent and restart it: domains adopted, none duplicated", flush=True)
    counts = collections.Counter(v[0] for v in before.values() if v[0])
    victim = counts.most_common(1)[0][0]
    victim_servers = {n for n, v in before.items() if v[0] == victim}
    sent_before = fab.metric('loom_operations_total{result="sent"}')
    fab.restart(f"agent-{victim}", pause=0.5)
    wait_until(lambda: any(b["name"] == victim and b["online"] and b["domains"] >= len(victim_servers)
                         for b in fab.get("/v1/blades")), 20, f"{victim} re-registered with its domains")
    wait_until(lambda: all_running(fab, on_servers), 20, "all power:on servers running")
    time.sleep(1.5)
    sent_after = fab.metric('loom_operations_total{result="sent"}')
    check(sent_after == sent_before, f"no step sent to adopt {sorted(victim_servers)} (sent {sent_before} -> {sent_after})")
    after = {s["name"]: (s["blade"], s["uuid"], tuple(s["macs"])) for s in fab.get("/v1/servers")}
    check(after == before, "bindings and identities unchanged by kill -9 of an agent")
    journal = journal_entries(fab.path("journal"))
    blades_of = collections.defaultdict(set)
    for e in journal:
        if e["event"] == "start":
            blades_of[e["uuid"]].add(e["blade"])
    check(all(len(b) == 1 for b in blades_of.values()), "journal: no server ever started on two blades")
    ends = [e for e in journal if e["event"] != "start" and e["domain"] in victim_servers]
    check(not ends, "journal: no adopted domain was stopped or destroyed")
    starts = collections.Counter(e["uuid"] for e in journal if e["event"] == "start")
    check(all(n == 1 for n in starts.values()), f"journal: every server started exactly once ({dict(starts)})")

def unknown_key(fab):
    start_fabric(fab)
    print("== an agent with an unknown key is refused", flush=True)
    fab.start_agent("rogue", "test", name="rogue", log="agent-rogue", key="rogue")
    wait_until(lambda: fab.metric('loom_fabric_rejected_total{reason="auth"}') >= 1, 15,
             "the rogue key is counted as refused")
    time.sleep(1)
    check(all(b["name"] != "rogue" for b in fab.get("/v1/blades")), "the rogue blade never registered")
    check(len([b for b in fab.get("/v1/blades") if b["online"]]) == 4, "the 4 blades still online")

def garbage(fab):
    bring_up(fab)
    on_servers = ON_SERVERS
    print("== garbage on the fabric and API ports is survived", flush=True)
    rng = random.Random(4)
    for i in range(20):
        with socket.create_connection(("127.0.0.1", fab.fabric_port), timeout=5) as s:
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096)))
            if i % 2:  # a plausible ZMTP greeting first, then junk
                payload = b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00CURVE" + b"\x00" * 15 + payload
            try:
                s.sendall(payload)
                s.settimeout(0.2)
                s.recv(64)
            except OSError:
                pass
    for junk in (b"GARBAGE\r\n\r\n", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n", b"\x00\xff" * 512):
        with socket.create_connection(("127.0.0.1", fab.api_port), timeout=5) as s:
            try:
                s.sendall(junk)
                s.settimeout(1)
                s.recv(1024)
            except OSError:
                pass
    for path in ("/v1/blades/%00", "/v1/events?since=abc&wait=-1", "/v1/servers/nope/start", "/nothing"):
        status, _ = fab.request("GET", path)
        check(status is not None and status < 500, f"GET {path} -> {status}")
    check(fab.alive("loomd"), "loomd still running")
    check(len([b for b in fab.get("/v1/blades") if b["online"]]) == 4, "all 4 blades still online")
    check(all_running(fab, on_servers), "all servers still running")
    events = fab.get("/v1/events?since=0")
    check(isinstance(events, list) and events, f"events recorded ({len(events)})")

def operator_verbs(fab):
    bring_up(fab)
    print("== operator verbs: capacity, dry-run diff, move, delete, retire", flush=True)
    cap = fab.get("/v1/capacity")
    web_cap = [c for c in cap if c["pool"] == "web"]
    check(web_cap and all(k in web_cap[0] for k in ("blades", "spares", "spares_declared", "cores_total", "cores_used",
          "memory_total_mib", "memory_used_mib", "servers", "survivable_failures", "spares_promise_met", "warning")),
          f"GET /v1/capacity reports pool web ({web_cap[:1]})")
    check(web_cap[0]["servers"] == 5 and web_cap[0]["spares_declared"] == 1, "capacity counts servers and declared spares")
    status, body = fab.request("POST", "/v1/apply?dry_run=1&source=extra.yaml", EXTRA)
    dry = json.loads(body)
    check(status == 200 and dry["diff"]["created"] == [{"kind": "Server", "name": "extra"}] and dry["diff"]["changed"] == []
          and dry["diff"]["deleted"] == [], f"dry-run diff names the new server only ({body[:300]})")
    check(any(p["server"] == "extra" for p in dry["plan"]["placements"]) and "steps" in dry["plan"]
          and "unplaceable" in dry["plan"], "dry-run plan places it")
    check(fab.get("/v1/servers/extra") is None, "the dry run declared nothing")

    servers = {s["name"]: s for s in fab.get("/v1/servers")}
    spare = fab.get("/v1/pools/web")["spare_blades"][0]
    status, body = fab.request("POST", "/v1/servers/web-0/move", json.dumps({"to": servers["web-1"]["blade"]}))
    check(status == 409 and "anti-affinity" in json.loads(body)["error"], f"move onto web-1's blade -> 409 anti-affinity ({body.strip()[:200]})")
    status, _ = fab.request("POST", "/v1/servers/web-0/move", json.dumps({"to": "nope"}))
    check(status == 404, f"move to an unknown blade -> 404 ({status})")
    status, _ = fab.request("POST", "/v1/servers/web-0/move", "{not json")
    check(status == 400, f"move with a bad body -> 400 ({status})")
    old_blade = servers["app-0"]["blade"]
    status, body = fab.request("POST", "/v1/servers/app-0/move", json.dumps({"to": spare}))
    check(status == 200, f"move app-0 {old_blade} -> {spare} ({body.strip()[:200]})")
    wait_until(lambda: fab.get("/v1/servers/app-0")["blade"] == spare and fab.get("/v1/servers/app-0")["state"] == "running",
             20, "app-0 running on its new blade")
    journal = [e for e in journal_entries(fab.path("journal")) if e["domain"] == "app-0"]
    stop_at = [e["t"] for e in journal if e["event"] == "stop" and e["blade"] == old_blade]
    start_at = [e["t"] for e in journal if e["event"] == "start" and e["blade"] == spare]
    check(stop_at and start_at and stop_at[0] <= start_at[0], f"app-0 stopped on {old_blade} before it started on {spare}")
    check(fab.get("/v1/servers/app-0")["uuid"] == servers["app-0"]["uuid"], "app-0 kept its identity across the move")

    holder = fab.get("/v1/servers/web-0")["blade"]
    status, body = fab.request("POST", f"/v1/blades/{holder}/retire")
    check(status == 409 and "still holds" in json.loads(body)["error"], f"retire a busy blade -> 409 ({body.strip()[:200]})")
    status, body = fab.request("POST", "/v1/delete", POOLS)
    check(status == 409 and "web" in json.loads(body)["error"], f"delete the pool its servers use -> 409 ({body.strip()[:200]})")
    status, _ = fab.request("POST", "/v1/delete", EXTRA)
    check(status == 404, f"delete an undeclared server -> 404 ({status})")
    status, body = fab.request("POST", "/v1/delete?dry_run=1", APP)
    check(status == 200 and fab.get("/v1/servers/app-0") is not None, "delete dry run changes nothing")
    old_ids = {n: (servers[n]["uuid"], tuple(servers[n]["macs"])) for n in ("app-0", "app-1")}
    app_blades = {n: fab.get("/v1/servers/" + n)["blade"] for n in ("app-0", "app-1")}
    status, body = fab.request("POST", "/v1/delete?source=app.yaml", APP)
    check(status == 200 and json.loads(body)["deleted"] == [{"kind": "Server", "name": "app-0"}, {"kind": "Server", "name": "app-1"}],
          f"delete app-0 and app-1 ({body.strip()[:200]})")
    check(fab.get("/v1/servers/app-0") is None, "app-0 is no longer declared")
    wait_until(lambda: all(b["domains"] == len(b["servers"]) for b in fab.get("/v1/blades")), 20,
             "their domains stopped and undefined")
    ends = {e["domain"] for e in journal_entries(fab.path("journal")) if e["event"] in ("stop", "destroy")
            and e["blade"] == app_blades.get(e["domain"])}
    check(ends == {"app-0", "app-1"}, f"journal: both stopped on their blades ({ends})")
    empty = [b["name"] for b in fab.get("/v1/blades") if not b["servers"] and b["domains"] == 0]
    check(empty, "a blade is empty after the delete")
    status, body = fab.request("POST", f"/v1/blades/{empty[0]}/retire")
    check(status == 200 and json.loads(body)["state"] == "retired", f"retire empty blade {empty[0]} -> retired ({body.strip()[:200]})")
    status, _ = fab.request("POST", f"/v1/blades/{empty[0]}/undrain")
    check(status == 409, "a retired blade cannot be undrained")
    status, body = fab.request("POST", "/v1/apply?source=app.yaml", APP)
    check(status == 200, "app re-declared")
    again = {s["name"]: (s["uuid"], tuple(s["macs"])) for s in fab.get("/v1/servers") if s["name"] in old_ids}
    used = {v[0] for v in old_ids.values()} | {m for v in old_ids.values() for m in v[1]}
    check(all(u not in used for v in again.values() for u in (v[0],) + v[1]), "re-declared servers got new identities (none reused)")
    wait_until(lambda: all_running(fab, {"app-0", "app-1"}), 20, "re-declared servers running")
    check(all(fab.get("/v1/servers/" + n)["blade"] != empty[0] for n in ("app-0", "app-1")), "nothing placed on the retired blade")
    fab.restart("loomd")
    wait_until(lambda: len([b for b in fab.get("/v1/blades") if b["online"]]) == 4, 20, "4 blades re-registered")
    check(any(b["name"] == empty[0] and b["state"] == "retired" for b in fab.get("/v1/blades")), "retirement survives a restart")
    again2 = {s["name"]: (s["uuid"], tuple(s["macs"])) for s in fab.get("/v1/servers") if s["name"] in old_ids}
    check(again2 == again, "identities unchanged by the restart")
    check(fab.get("/v1/servers/web-0") is not None and fab.get("/v1/pools/web") is not None, "pool and servers still there")

SCENARIOS = [("apply", apply), ("loomd-restart", loomd_restart), ("agent-restart", agent_restart),
             ("unknown-key", unknown_key), ("garbage", garbage), ("operator-verbs", operator_verbs)]

def main():
    ap = arg_parser()
    ap.add_argument("--scenario", action="append", choices=[n for n, _ in SCENARIOS],
                    help="run only these (repeatable); default: all")
    args = ap.parse_args()
    return run_scenarios(SCENARIOS, args, lambda name: Cluster(args.loomd, args.agent, prefix=f"loom-e2e-{name}-",
                                                               keep=args.keep), log_lines=25)

if __name__ == "__main__":
    sys.exit(main())
