#!/usr/bin/env python3
"""Fault tests of failover (DESIGN.md section 5, invariant 1): real loomd and one
loom-agent process per blade on loopback, test driver with --sim-state (a blade's domains
outlive its agent process, as on a real host) and one --journal shared by every blade.
Short timing (heartbeat 200 ms, lease 1.5 s) so each scenario takes seconds; every wait
is bounded; every process is killed at the end.

  kill9-agent    kill -9 of an agent: its servers run again on the pool's spare, same UUID
                 and MACs, only after the fence event; the blade shows "fenced"; when it
                 comes back its domains end at the saved lease deadline ("watchdog")
  sigstop-agent  SIGSTOP (a partition): servers move after the lease; SIGCONT: the frozen
                 blade's domains end with "watchdog" at the lease, not at wake; the blade is
                 given nothing until it reports none running, then rejoins
  kill9-loomd    kill -9 of loomd right after the fence event, restart: the failover
                 completes, every server ends running exactly once
  storm          4 of 6 agents SIGSTOPped at once: nothing fenced, "fencing suspended", no
                 server started elsewhere; SIGCONT: the fabric recovers with no double run
  fence-command  --fence-command: a script that powers the blade off makes the failover
                 happen long before a 20 s lease; a failing one (exit 1) is an event and the
                 failover waits for the lease
  move-frozen-source[-kill9-loomd]
                 an operator move off a frozen blade (and kill -9 of loomd right after it):
                 the server starts on its new blade once the old one is fenced, not before
                 and without waiting for the old one to come back

Each scenario runs in a fabric of its own (ctest runs one per case) and ends with the
journal check: no server ran on two blades at overlapping times, and every power:on server
has exactly one open run, on the blade the API names.
Usage: failover_e2e.py --loomd PATH --agent PATH [--keep] [--scenario NAME ...]"""
import os, signal, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import (Cluster, arg_parser, Failure, check, prod_preamble, run_scenarios, wait_until, read_journal,
                         journal_runs, double_runs, now_ms)

HEARTBEAT, LEASE, SUSPECT, DEAD, MARGIN = 200, 1500, 500, 1000, 200

def timing(lease=LEASE):
    return ["--heartbeat-ms", str(HEARTBEAT), "--lease-ms", str(lease), "--suspect-ms", str(SUSPECT),
            "--dead-ms", str(DEAD), "--fence-margin-ms", str(MARGIN)]

def fabric(n):
    lines = ["blades:"]
    for i in range(1, n + 1):
        lines.append(f"  - {{name: b{i}, chassis: c1, slot: {i}, cores: 8, memory: 16GiB, hypervisor: [kvm]}}")
    return "\n".join(lines) + "\n"

POOLS = prod_preamble("52:54:00:20:00:00-52:54:00:20:ff:ff", "4c4f4f4d-0000-0000-0001-000000000000/16") + """---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {match: {chassis: c1}}
spares: 1
failover: spare
"""

def servers_yaml(web, app):
    return f"""
kind: Server
name: web
replicas: {web}
partition: prod
pool: web
vcpus: 2
memory: 2GiB
nics: [{{network: front}}]
anti_affinity: web
priority: 100
power: on
---
kind: Server
name: app
replicas: {app}
partition: prod
pool: web
vcpus: 1
memory: 1GiB
nics: [{{network: front}}, {{network: front}}]
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

# --- helpers -------------------------------------------------------------------------------

def start_agent(fab, blade):
    p = fab.start_sim_agent(fab.path("fabric.yaml"), only=blade)
    os.makedirs(fab.path("pids"), exist_ok=True)
    with open(fab.path("pids", blade), "w") as f:  # for fence scripts
        f.write(str(p.pid))
    return p

def respawn_agent(fab, blade):
    p = fab.respawn(f"agent-{blade}")
    with open(fab.path("pids", blade), "w") as f:
        f.write(str(p.pid))
    return p

def bring_up(fab, n_blades, web, app, loomd_extra):
    """loomd, one agent process per blade, pools and servers applied, all running.
    The names of the power:on servers."""
    fab.write("fabric.yaml", fabric(n_blades))
    fab.start_loomd(extra=loomd_extra)
    blades = [f"b{i}" for i in range(1, n_blades + 1)]
    for b in blades:
        start_agent(fab, b)
    wait_until(lambda: len(fab.online_blades()) == n_blades, 20, f"{n_blades} blades online")
    status, body = fab.request("POST", "/v1/apply?source=pools.yaml", POOLS)
    check(status == 200, f"pools applied ({status} {body[:300] if status != 200 else ''})")
    status, body = fab.request("POST", "/v1/apply?source=servers.yaml", servers_yaml(web, app))
    check(status == 200, f"servers applied ({status} {body[:300] if status != 200 else ''})")
    on = {f"web-{i}" for i in range(web)} | {f"app-{i}" for i in range(app)}
    wait_until(lambda: all_running(fab, on), 30, f"{len(on)} power:on servers running")
    return on

def servers(fab):
    return {s["name"]: s for s in (fab.get("/v1/servers") or [])}

def all_running(fab, names):
    ss = servers(fab)
    return bool(ss) and all(ss[n]["state"] == "running" and ss[n]["blade"] for n in names)

def running_elsewhere(fab, names, victim):
    ss = servers(fab)
    return bool(ss) and all(ss[n]["state"] == "running" and ss[n]["blade"] not in (None, victim) for n in names)

def blade(fab, name):
    return fab.get(f"/v1/blades/{name}") or {}

def pick_victims(fab, count=1):
    """The `count` blades holding the most servers (name order on ties)."""
    held = sorted(((len(b["servers"]), b["name"]) for b in fab.get("/v1/blades")), key=lambda x: (-x[0], x[1]))
    return [name for n, name in held[:count]]

def take_victim(fab):
    """The blade a scenario takes down, and what is known before: the servers it runs, the
    web pool's spares, every server's identity, the moved servers' UUIDs."""
    victim = pick_victims(fab)[0]
    moved = set(blade(fab, victim)["servers"])
    spares = fab.get("/v1/pools/web")["spare_blades"]
    before = {n: identity(s) for n, s in servers(fab).items()}
    return victim, moved, spares, before, {before[n][0] for n in moved}

def events_for(fab, blade_name, text, since_ms=0):
    return [e for e in fab.events() if e["blade"] == blade_name and text in e["message"] and e["time_ms"] >= since_ms]

def first_event(fab, blade_name, text, since_ms=0):
    evs = events_for(fab, blade_name, text, since_ms)
    return evs[0] if evs else None

def identity(s):
    return (s["uuid"], tuple(s["macs"]))

def journal(fab):
    return read_journal(fab.path("journal"))

def check_journal(fab, on):
    """Invariant 1 over the whole journal, and every power:on server running exactly once,
    on the blade the API names."""
    # "Ends" running: convergence may still be under way (a blade trusted again a moment
    # ago gets its displaced servers back), so it gets a bounded while to settle first.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all_running(fab, on):
        time.sleep(0.2)
    entries = journal(fab)
    violations = double_runs(entries)
    check(not violations, f"journal ({len(entries)} entries): no server ran on two blades at overlapping times",
          "\n".join(violations))
    runs = journal_runs(entries)
    ss = servers(fab)
    bad = []
    for name in sorted(on):
        s = ss[name]
        open_runs = [r for r in runs.get(s["uuid"], []) if r["to"] is None]
        if s["state"] != "running" or len(open_runs) != 1 or open_runs[0]["blade"] != s["blade"]:
            bad.append(f"{name}: API {s['state']} on {s['blade']}, journal open runs {open_runs}")
    check(not bad, "every power:on server ends running exactly once, where the API says", "\n".join(bad))

def wait_trusted(fab, name, since_ms, timeout=20):
    wait_until(lambda: blade(fab, name).get("state") in ("available", "spare", "active"), timeout,
               f"{name} trusted again and back in the fabric")
    ev = first_event(fab, name, "blade trusted again", since_ms)
    check(ev is not None, f"event 'blade trusted again' for {name}")
    return ev

def starts_after(entries, uuids, t_ms, not_on=None):
    return [e for e in entries if e["event"] == "start" and e["uuid"] in uuids and e["t"] > t_ms
            and e["blade"] != not_on]

def check_moved(fab, before, moved, victim, spares, fence, since_ms):
    """Each of `moved` runs on a spare of the pool with its identity, and every start of
    theirs elsewhere after the fault (at since_ms) came at or after the fence event."""
    ss = servers(fab)
    for n in sorted(moved):
        check(ss[n]["blade"] in spares, f"{n} moved {victim} -> {ss[n]['blade']}, a spare of the pool {spares}")
        check(identity(ss[n]) == before[n], f"{n} kept its UUID and MACs")
    uuids = {before[n][0] for n in moved}
    starts = starts_after(journal(fab), uuids, since_ms, not_on=victim)
    early = [e for e in starts if e["t"] < fence["time_ms"]]
    check(starts and not early, f"journal: every restart elsewhere ({len(starts)}) is at or after the fence event "
          f"({fence['time_ms']})", str(early))

# --- scenarios -------------------------------------------------------------------------------

def kill9_agent(fab):
    on = bring_up(fab, 4, web=3, app=2, loomd_extra=timing())
    victim, moved, spares, before, _ = take_victim(fab)
    print(f"== kill -9 of agent {victim} (servers {sorted(moved)}; spares {spares})", flush=True)
    t_kill = now_ms()
    fab.kill9(f"agent-{victim}")
    wait_until(lambda: running_elsewhere(fab, moved, victim), 20, f"{sorted(moved)} running elsewhere")
    t_done = now_ms()
    fence = first_event(fab, victim, "blade fenced", t_kill)
    check(fence is not None and "lease expired" in fence["message"], f"fence event: {fence and fence['message']}")
    check(fence["time_ms"] >= t_kill + LEASE - HEARTBEAT - 100,
          f"fenced {fence['time_ms'] - t_kill} ms after the kill: not before the lease ({LEASE} ms) can have run out")
    print(f"  failover done {t_done - t_kill} ms after the kill", flush=True)
    check_moved(fab, before, moved, victim, spares, fence, t_kill)
    failovers = [e for e in fab.events() if e["message"].startswith("failover:") and e["time_ms"] >= t_kill]
    check({e["server"] for e in failovers} >= moved, f"a failover event per moved server ({len(failovers)})")
    check(blade(fab, victim).get("state") == "fenced", f"{victim} shows state fenced ({blade(fab, victim).get('state')})")

    print(f"== {victim} comes back (agent restarted on its state)", flush=True)
    t_back = now_ms()
    respawn_agent(fab, victim)
    wait_trusted(fab, victim, t_back)
    ends = [e for e in journal(fab) if e["blade"] == victim and e["uuid"] in {before[n][0] for n in moved}
            and e["event"] != "start"]
    check(ends and all(e["event"] == "watchdog" and e["t"] <= fence["time_ms"] for e in ends),
          f"journal: {victim}'s domains ended by its watchdog at the saved lease deadline, before the fence", str(ends))
    check_journal(fab, on)

def sigstop_agent(fab):
    on = bring_up(fab, 4, web=3, app=2, loomd_extra=timing())
    victim, moved, spares, before, uuids = take_victim(fab)
    print(f"== SIGSTOP of agent {victim} (servers {sorted(moved)})", flush=True)
    t_stop = now_ms()
    fab.signal(f"agent-{victim}", signal.SIGSTOP)
    wait_until(lambda: running_elsewhere(fab, moved, victim), 20, f"{sorted(moved)} running elsewhere")
    fence = first_event(fab, victim, "blade fenced", t_stop)
    check(fence is not None and "lease expired" in fence["message"], f"fence event: {fence and fence['message']}")
    check(fence["time_ms"] >= t_stop + LEASE - HEARTBEAT - 100,
          f"fenced {fence['time_ms'] - t_stop} ms after the stop: not before the lease ({LEASE} ms)")
    check_moved(fab, before, moved, victim, spares, fence, t_stop)
    check(blade(fab, victim).get("state") == "fenced", f"{victim} shows state fenced")
    time.sleep(1.0)  # frozen a while longer: waking must not move its domains' end to the wake time

    print(f"== SIGCONT of agent {victim}: it wakes with stale domains", flush=True)
    t_cont = now_ms()
    fab.signal(f"agent-{victim}", signal.SIGCONT)
    seen = []  # (state, servers) of the victim while it comes back
    def back():
        b = blade(fab, victim)
        seen.append((b.get("state"), tuple(b.get("servers", ()))))
        return b.get("state") in ("available", "spare", "active")
    wait_until(back, 20, f"{victim} back in the fabric", interval=0.05)
    trusted = first_event(fab, victim, "blade trusted again", t_cont)
    check(trusted is not None, "event 'blade trusted again'")
    entries = journal(fab)
    ends = {e["uuid"]: e for e in entries if e["blade"] == victim and e["uuid"] in uuids and e["event"] != "start"}
    check(set(ends) == uuids, f"journal: each of {victim}'s domains ended ({len(ends)}/{len(uuids)})")
    first_start = {u: min(e["t"] for e in starts_after(entries, {u}, t_stop, not_on=victim)) for u in uuids}
    late = [e for u, e in ends.items() if e["event"] != "watchdog" or e["t"] > first_start[u] or e["t"] >= t_cont]
    check(not late, f"journal: they ended with event watchdog at the lease deadline (<= {t_cont - t_stop} ms after the "
          f"stop, before the restart elsewhere), not when the agent woke", str(late))
    given = [s for s in seen if s[0] not in ("available", "spare", "active") and s[1]]
    check(not given, f"{victim} was given no server before it was trusted (states seen: {sorted({s[0] for s in seen})})",
          str(given[:5]))
    early = [e for e in entries if e["blade"] == victim and e["event"] == "start" and t_stop < e["t"] < trusted["time_ms"]]
    check(not early, f"journal: nothing started on {victim} between the stop and 'blade trusted again'", str(early))
    check_journal(fab, on)

def kill9_loomd(fab):
    on = bring_up(fab, 4, web=3, app=2, loomd_extra=timing())
    victim, moved, _, before, uuids = take_victim(fab)
    last_id = max([e["id"] for e in fab.events()] or [0])
    print(f"== kill -9 of agent {victim}, then of loomd right after the fence event", flush=True)
    t_kill = now_ms()
    fab.kill9(f"agent-{victim}")
    fence = None
    deadline = time.monotonic() + 15
    while fence is None and time.monotonic() < deadline:
        page = fab.get(f"/v1/events?since={last_id}&wait=1") or []
        for e in page:
            last_id = max(last_id, e["id"])
            if e["blade"] == victim and e["message"].startswith("blade fenced"):
                fence = e
    if fence is None:
        raise Failure(f"timed out after 15 s waiting for the fence event of {victim}")
    fab.kill9("loomd")
    t_loomd = now_ms()
    started = starts_after(journal(fab), uuids, t_kill, not_on=victim)
    print(f"  loomd killed {t_loomd - fence['time_ms']} ms after the fence event; {len({e['uuid'] for e in started})} "
          f"of {len(uuids)} servers had started elsewhere", flush=True)
    time.sleep(0.5)
    fab.respawn("loomd")
    wait_until(lambda: running_elsewhere(fab, moved, victim) and all_running(fab, on), 30,
               "after the restart the failover completes: every power:on server running")
    for n in sorted(moved):
        check(identity(servers(fab)[n]) == before[n], f"{n} kept its UUID and MACs")
    starts = starts_after(journal(fab), uuids, t_kill, not_on=victim)
    per = {u: sum(1 for e in starts if e["uuid"] == u) for u in uuids}
    check(all(n == 1 for n in per.values()), f"journal: each moved server started exactly once elsewhere ({per})")

    # The restarted loomd has not heard from the victim since it started: it must hold it
    # fenced (again), so that its return goes through the trust check.
    wait_until(lambda: blade(fab, victim).get("state") == "fenced", LEASE / 1000 + 10, f"{victim} shows state fenced")
    print(f"== {victim} comes back", flush=True)
    t_back = now_ms()
    respawn_agent(fab, victim)
    wait_trusted(fab, victim, t_back)
    check_journal(fab, on)

def move_frozen_source(fab, restart_loomd):
    """An operator moves a server off a blade whose agent is frozen (SIGSTOP), optionally
    with kill -9 of loomd right after the move: the server may start on its new blade only
    once the old one is fenced (the restarted loomd does not know what the frozen blade
    runs), and must not wait for the old blade to come back."""
    on = bring_up(fab, 4, web=3, app=2, loomd_extra=timing())
    name = "app-0"
    src = servers(fab)[name]["blade"]
    dst = fab.get("/v1/pools/web")["spare_blades"][0]
    uuid = servers(fab)[name]["uuid"]
    print(f"== SIGSTOP of agent {src}, then move {name} {src} -> {dst}"
          + (", then kill -9 of loomd and restart" if restart_loomd else ""), flush=True)
    t_stop = now_ms()
    fab.signal(f"agent-{src}", signal.SIGSTOP)
    status, body = fab.request("POST", f"/v1/servers/{name}/move", f'{{"to": "{dst}"}}')
    check(status == 200, f"move accepted ({status} {body[:200] if status != 200 else ''})")
    if restart_loomd:
        fab.restart("loomd")
    wait_until(lambda: servers(fab)[name]["state"] == "running" and servers(fab)[name]["blade"] == dst,
               LEASE / 1000 + 10, f"{name} running on {dst} while {src} is still frozen")
    fence = first_event(fab, src, "blade fenced", t_stop)
    starts = starts_after(journal(fab), {uuid}, t_stop, not_on=src)
    # Wake the frozen blade first: its watchdog entries close its runs, so a double run
    # shows as one in the journal check.
    fab.signal(f"agent-{src}", signal.SIGCONT)
    wait_until(lambda: blade(fab, src).get("state") in ("available", "spare", "active"), 20, f"{src} back in the fabric")
    violations = double_runs(journal(fab))
    check(not violations, "journal: no server ran on two blades at overlapping times", "\n".join(violations))
    check(fence is not None, f"{src} was fenced before {name} ran on {dst} ({fence and fence['message']})")
    check(starts and all(e["t"] >= fence["time_ms"] for e in starts),
          f"journal: {name} started on {dst} only after {src} was fenced", str(starts))
    check(first_event(fab, src, "blade trusted again", t_stop) is not None, f"event 'blade trusted again' for {src}")
    check_journal(fab, on)

def storm(fab):
    on = bring_up(fab, 6, web=4, app=3, loomd_extra=timing())
    frozen = pick_victims(fab, 4)
    print(f"== SIGSTOP of 4 of 6 agents at once: {frozen}", flush=True)
    t_stop = now_ms()
    for b in frozen:
        fab.signal(f"agent-{b}", signal.SIGSTOP)
    wait_until(lambda: any("fencing suspended" in e["message"] and e["time_ms"] >= t_stop for e in fab.events()), 15,
               "event 'fencing suspended'")
    susp = [e for e in fab.events() if "fencing suspended" in e["message"] and e["time_ms"] >= t_stop]
    check(susp[0]["level"] == "error", f"it is an error event: {susp[0]['message']}")
    # Well past the time they would have been fenced without the guard.
    time.sleep(max(0.0, (t_stop + LEASE + MARGIN + 2500 - now_ms()) / 1000))
    fenced = [e for e in fab.events() if e["message"].startswith("blade fenced") and e["time_ms"] >= t_stop]
    check(not fenced, "nothing was fenced", str(fenced))
    states = {b: blade(fab, b).get("state") for b in frozen}
    check(all(s != "fenced" for s in states.values()), f"no frozen blade shows fenced ({states})")
    started = [e for e in journal(fab) if e["event"] == "start" and e["t"] >= t_stop]
    check(not started, "journal: no server was started anywhere while fencing was suspended", str(started))

    print("== SIGCONT of the 4: the fabric recovers", flush=True)
    for b in frozen:
        fab.signal(f"agent-{b}", signal.SIGCONT)
    wait_until(lambda: len(fab.online_blades()) == 6 and all_running(fab, on), 30,
               "all 6 blades online and every power:on server running")
    check_journal(fab, on)

FENCE_OK = """#!/bin/sh
# A fence command for a simulated blade: record the call, then power the blade off the
# way a BMC would (the agent process dies, its domains end).
echo "$1 $(date +%s%3N)" >> '{work}/fence-calls'
kill -9 "$(cat '{work}/pids/'"$1")" 2>/dev/null
exec '{agent}' sim-power-off --sim-state '{work}/sim' --blade "$1" --journal '{work}/journal'
"""

FENCE_FAIL = """#!/bin/sh
echo "$1 $(date +%s%3N)" >> '{work}/fence-calls'
echo "BMC did not answer" >&2
exit 1
"""

def fence_calls(fab):
    if not os.path.exists(fab.path("fence-calls")):
        return []
    with open(fab.path("fence-calls")) as f:
        return [line.split()[0] for line in f if line.strip()]

def fence_command_ok(fab):
    lease = 20000
    script = fab.write("fence.sh", FENCE_OK.format(work=fab.work, agent=fab.agent))
    on = bring_up(fab, 4, web=3, app=2, loomd_extra=timing(lease) + ["--fence-command", f"sh '{script}' {{blade}}"])
    victim, moved, spares, before, uuids = take_victim(fab)
    print(f"== fence command powers off {victim} (SIGSTOPped) with a {lease} ms lease", flush=True)
    t_stop = now_ms()
    fab.signal(f"agent-{victim}", signal.SIGSTOP)
    wait_until(lambda: running_elsewhere(fab, moved, victim), 12, f"{sorted(moved)} running elsewhere")
    t_done = now_ms()
    check(t_done - t_stop < lease / 2, f"failover done {t_done - t_stop} ms after the stop, well before the {lease} ms lease")
    check(victim in fence_calls(fab), f"the fence command was called for {victim} ({fence_calls(fab)})")
    fence = first_event(fab, victim, "blade fenced", t_stop)
    check(fence is not None and "fence command" in fence["message"], f"fence event: {fence and fence['message']}")
    check_moved(fab, before, moved, victim, spares, fence, t_stop)
    ends = [e for e in journal(fab) if e["blade"] == victim and e["uuid"] in uuids and e["event"] != "start"]
    check(len(ends) == len(uuids) and all(e["event"] == "destroy" and e["t"] <= fence["time_ms"] for e in ends),
          f"journal: {victim}'s domains were destroyed by the power-off, before the fence event", str(ends))
    check(not fab.alive(f"agent-{victim}"), f"the fence script killed {victim}'s agent")
    t_back = now_ms()
    respawn_agent(fab, victim)
    wait_trusted(fab, victim, t_back)
    check_journal(fab, on)

def fence_command_fails(fab):
    lease = 6000
    script = fab.write("fence.sh", FENCE_FAIL.format(work=fab.work))
    on = bring_up(fab, 4, web=3, app=2, loomd_extra=timing(lease) + ["--fence-command", f"sh '{script}' {{blade}}"])
    victim, moved, spares, before, uuids = take_victim(fab)
    print(f"== a failing fence command for {victim} (killed -9): the failover waits for the {lease} ms lease", flush=True)
    t_kill = now_ms()
    fab.kill9(f"agent-{victim}")
    wait_until(lambda: first_event(fab, victim, "fence command failed", t_kill) is not None, 10,
               "event 'fence command failed'")
    failed = first_event(fab, victim, "fence command failed", t_kill)
    check(victim in fence_calls(fab), f"the fence command was called for {victim}")
    check(not starts_after(journal(fab), uuids, t_kill, not_on=victim) and not running_elsewhere(fab, moved, victim),
          f"nothing moved when the fence command failed ({failed['time_ms'] - t_kill} ms after the kill)")
    wait_until(lambda: running_elsewhere(fab, moved, victim), lease / 1000 + 15, f"{sorted(moved)} running elsewhere")
    fence = first_event(fab, victim, "blade fenced", t_kill)
    check(fence is not None and "lease expired" in fence["message"], f"fence event: {fence and fence['message']}")
    check(fence["time_ms"] >= t_kill + lease - HEARTBEAT - 100,
          f"fenced {fence['time_ms'] - t_kill} ms after the kill: after the lease ({lease} ms)")
    check_moved(fab, before, moved, victim, spares, fence, t_kill)
    t_back = now_ms()
    respawn_agent(fab, victim)
    wait_trusted(fab, victim, t_back)
    check_journal(fab, on)

SCENARIOS = [("kill9-agent", kill9_agent), ("sigstop-agent", sigstop_agent), ("kill9-loomd", kill9_loomd),
             ("storm", storm), ("fence-command-ok", fence_command_ok), ("fence-command-fails", fence_command_fails),
             ("move-frozen-source", lambda fab: move_frozen_source(fab, False)),
             ("move-frozen-source-kill9-loomd", lambda fab: move_frozen_source(fab, True))]

def main():
    ap = arg_parser()
    ap.add_argument("--scenario", action="append", choices=[n for n, _ in SCENARIOS],
                    help="run only these (repeatable); default: all")
    args = ap.parse_args()
    return run_scenarios(SCENARIOS, args, lambda name: Cluster(args.loomd, args.agent, prefix=f"loom-failover-{name}-",
                                                               keep=args.keep), log_lines=40)

if __name__ == "__main__":
    sys.exit(main())
