#!/usr/bin/env python3
"""Power fencing with the fence agent operators use (DESIGN.md section 5, invariant 1;
docs/FENCING.md, the power route): real loomd, and every simulated blade behind its own
BMC, an OpenIPMI `ipmi_sim` on 127.0.0.1 (tests/e2e/bmc.py) whose power-off powers the
blade off (its agent dies, its running domains end in its state file, journaled then).
loomd's --fence-command runs the real `fence_ipmilan` (Debian fence-agents, ipmitool
lanplus) against the failed blade's BMC. The lease (20 s) is far longer than failure
detection (heartbeat 200 ms, dead after 1 s), so a failover that happens within
seconds can only come from the confirmed power-off.

  frozen-blade     SIGSTOP of a blade's agent: "fence command started", then "blade fenced:
                   fence command confirmed power-off"; its servers run elsewhere seconds
                   after the freeze, long before the lease; the journal shows its domains
                   ended by the power-off before any restart elsewhere; fence_ipmilan -o
                   status says OFF. Power on through the BMC: the blade boots, its agent
                   registers and the blade is trusted again.
  killed-agent     kill -9 of a blade's agent (the blade and its domains stay up; its BMC
                   still says ON): the same, by the power route.
  bmc-unreachable  the blade's BMC is gone (its ipmi_sim killed), then the blade freezes:
                   the fence command fails with an error event, nothing moves until the
                   lease (10 s) runs out, then the lease route fences it; the blade itself
                   stayed powered the whole time.

Each scenario ends with the journal check: no server ran on two blades at overlapping
times, and every power:on server has exactly one open run, on the blade the API names.
Needs /usr/bin/ipmi_sim and /usr/sbin/fence_ipmilan (tools/install-deps.sh); without
them it exits 77 (skipped) and says so, except under CI (CI=true), where it fails: CI
installs them. The BMCs' UDP and TCP ports are picked free and handed to ipmi_sim, which
cannot say which port it bound; loomd binds port 0 and says.
Usage: power_fence_e2e.py --loomd PATH --agent PATH [--keep] [--scenario NAME ...]"""
import os, signal, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, arg_parser, Failure, check, prod_preamble, skip_or_fail, wait_until, now_ms
from failover_e2e import (fabric, servers_yaml, timing, all_running, running_elsewhere, blade, take_victim,
                          first_event, journal, check_journal, wait_trusted, starts_after, check_moved, HEARTBEAT)
import bmc

N_BLADES = 4
POOLS = prod_preamble("52:54:00:21:00:00-52:54:00:21:ff:ff", "4c4f4f4d-0000-0000-0003-000000000000/16") + """---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {match: {chassis: c1}}
spares: 1
failover: spare
"""

def bring_up(fab, bmcs, lease):
    """loomd with the fence command, every blade powered on by its BMC (whose machine
    starts its agent), pools and servers applied and running. The power:on servers."""
    fab.write("fabric.yaml", fabric(N_BLADES))
    blades = [f"b{i}" for i in range(1, N_BLADES + 1)]
    # loomd first (its agents need the fabric port it prints); the fence wrapper names the
    # BMCs' ports, so it is written again once they are added.
    fence = bmcs.write_fence_command(fab.path("fence-ipmilan.sh"), calls_log=fab.path("fence-calls"))
    fab.start_loomd(extra=timing(lease) + ["--fence-command", fence])
    for b in blades:
        bmcs.add(b, fab.sim_agent_argv(fab.path("fabric.yaml"), only=b), fab.sim_power_off_argv(b))
    bmcs.write_fence_command(fab.path("fence-ipmilan.sh"), calls_log=fab.path("fence-calls"))
    try:
        bmcs.wait_ready(timeout=30)
    except RuntimeError as e:
        raise Failure(str(e))
    print(f"  ok: {N_BLADES} BMCs answer fence_ipmilan -o status with ON, each blade's agent runs", flush=True)
    wait_until(lambda: len(fab.online_blades()) == N_BLADES, 20, f"{N_BLADES} blades online")
    status, body = fab.request("POST", "/v1/apply?source=pools.yaml", POOLS)
    check(status == 200, f"pools applied ({status} {body[:300] if status != 200 else ''})")
    status, body = fab.request("POST", "/v1/apply?source=servers.yaml", servers_yaml(3, 2))
    check(status == 200, f"servers applied ({status} {body[:300] if status != 200 else ''})")
    on = {f"web-{i}" for i in range(3)} | {f"app-{i}" for i in range(2)}
    wait_until(lambda: all_running(fab, on), 30, f"{len(on)} power:on servers running")
    return on

def fence_calls(fab):
    """(blade, start_ms, exit code, end_ms) of every fence command run so far."""
    if not os.path.exists(fab.path("fence-calls")):
        return []
    with open(fab.path("fence-calls")) as f:
        return [(b, int(s), int(rc), int(e)) for b, s, rc, e in (line.split() for line in f if line.strip())]

def power_fenced(fab, bmcs, sig):
    """The power route after `sig` (SIGSTOP: a frozen blade; SIGKILL: its agent dies, the
    blade stays up) to the agent of the blade holding the most servers."""
    lease = 20000
    on = bring_up(fab, bmcs, lease)
    victim, moved, spares, before, uuids = take_victim(fab)
    check(bmcs.status(victim) == "ON", f"fence_ipmilan -o status says ON for {victim} before the fault")
    print(f"== {sig.name} of {victim}'s agent (lease {lease} ms; its BMC will power it off)", flush=True)
    t_fault = now_ms()
    os.kill(bmcs.agent_pid(victim), sig)
    if sig == signal.SIGKILL:
        check(bmcs.status(victim) == "ON", f"{victim}'s BMC still says ON after its agent died: the blade runs")
    wait_until(lambda: running_elsewhere(fab, moved, victim), 15, f"{sorted(moved)} running elsewhere")
    t_done = now_ms()
    fence = first_event(fab, victim, "blade fenced", t_fault)
    started = first_event(fab, victim, "fence command started", t_fault)
    check(fence is not None and fence["message"].startswith("blade fenced: fence command confirmed power-off"),
          f"fence event: {fence and fence['message']}")
    check(started is not None and "fence-ipmilan.sh" in started["message"] and started["time_ms"] <= fence["time_ms"],
          f"event 'fence command started' {started and started['time_ms'] - t_fault} ms after the fault, before the fence")
    calls = [c for c in fence_calls(fab) if c[0] == victim]
    check(len(calls) == 1 and calls[0][2] == 0, f"fence_ipmilan ran once for {victim} and exited 0 ({calls})")
    print(f"  timing: failure detected and fence command started {started['time_ms'] - t_fault} ms after the fault; "
          f"fence_ipmilan took {calls[0][3] - calls[0][1]} ms; fenced at {fence['time_ms'] - t_fault} ms; "
          f"servers running elsewhere at {t_done - t_fault} ms (lease {lease} ms)", flush=True)
    check(t_done - t_fault < lease / 4, f"failover done {t_done - t_fault} ms after the fault, long before the "
          f"{lease} ms lease")
    check_moved(fab, before, moved, victim, spares, fence, t_fault)
    entries = journal(fab)
    ends = {e["uuid"]: e for e in entries if e["blade"] == victim and e["uuid"] in uuids and e["event"] != "start"}
    first_start = {u: min(e["t"] for e in starts_after(entries, {u}, t_fault, not_on=victim)) for u in uuids}
    bad = [(u, e) for u, e in ends.items() if e["event"] != "destroy" or e["t"] > fence["time_ms"] or e["t"] > first_start[u]]
    check(set(ends) == uuids and not bad,
          f"journal: each of {victim}'s {len(uuids)} domains ended by the power-off (destroy), before the fence "
          f"event and before its restart elsewhere", str(bad or sorted(set(uuids) - set(ends))))
    check(bmcs.status(victim) == "OFF", f"fence_ipmilan -o status says OFF for {victim}")
    check(not bmcs.agent_alive(victim), f"{victim}'s agent process is gone with the power")
    check(blade(fab, victim).get("state") == "fenced", f"{victim} shows state fenced")

    print(f"== {victim} powered on through its BMC: it boots, registers and is trusted again", flush=True)
    t_on = now_ms()
    rc, out, _ = bmcs.fence_ipmilan(victim, "on")
    check(rc == 0 and bmcs.status(victim) == "ON", f"fence_ipmilan -o on: {out.strip()}; status ON")
    wait_trusted(fab, victim, t_on)
    check_journal(fab, on)

def frozen_blade(fab, bmcs):
    power_fenced(fab, bmcs, signal.SIGSTOP)

def killed_agent(fab, bmcs):
    power_fenced(fab, bmcs, signal.SIGKILL)

def bmc_unreachable(fab, bmcs):
    lease = 10000
    on = bring_up(fab, bmcs, lease)
    victim, moved, spares, before, uuids = take_victim(fab)
    print(f"== {victim}'s BMC dies (ipmi_sim killed), then its agent freezes: the failover waits for the {lease} ms lease",
          flush=True)
    bmcs.stop(victim)
    check(bmcs.status(victim) is None, f"{victim}'s BMC does not answer")
    agent_pid = bmcs.agent_pid(victim)
    t_stop = now_ms()
    os.kill(agent_pid, signal.SIGSTOP)
    wait_until(lambda: first_event(fab, victim, "fence command failed", t_stop) is not None, lease / 1000,
               "event 'fence command failed'")
    failed = first_event(fab, victim, "fence command failed", t_stop)
    check(failed["level"] == "error", f"an error event: {failed['message'][:160]}")
    check(first_event(fab, victim, "fence command started", t_stop) is not None, "event 'fence command started' before it")
    check(not starts_after(journal(fab), uuids, t_stop, not_on=victim) and not running_elsewhere(fab, moved, victim),
          f"nothing moved when the fence command failed ({failed['time_ms'] - t_stop} ms after the freeze)")
    wait_until(lambda: running_elsewhere(fab, moved, victim), lease / 1000 + 15, f"{sorted(moved)} running elsewhere")
    fence = first_event(fab, victim, "blade fenced", t_stop)
    check(fence is not None and "lease expired" in fence["message"], f"fence event: {fence and fence['message']}")
    check(fence["time_ms"] >= t_stop + lease - HEARTBEAT - 100,
          f"fenced {fence['time_ms'] - t_stop} ms after the freeze: after the lease ({lease} ms)")
    check_moved(fab, before, moved, victim, spares, fence, t_stop)
    check(os.path.exists(f"/proc/{agent_pid}"), f"{victim} stayed powered (its machine and frozen agent are there)")

    print(f"== SIGCONT of {victim}'s agent: its domains ended at the lease deadline (watchdog)", flush=True)
    t_cont = now_ms()
    os.kill(agent_pid, signal.SIGCONT)
    wait_trusted(fab, victim, t_cont)
    entries = journal(fab)
    ends = {e["uuid"]: e for e in entries if e["blade"] == victim and e["uuid"] in uuids and e["event"] != "start"}
    first_start = {u: min(e["t"] for e in starts_after(entries, {u}, t_stop, not_on=victim)) for u in uuids}
    late = [e for u, e in ends.items() if e["event"] != "watchdog" or e["t"] > first_start[u]]
    check(set(ends) == uuids and not late, f"journal: each of {victim}'s domains ended by its watchdog, before its "
          f"restart elsewhere", str(late or sorted(set(uuids) - set(ends))))
    check_journal(fab, on)

SCENARIOS = [("frozen-blade", frozen_blade), ("killed-agent", killed_agent), ("bmc-unreachable", bmc_unreachable)]

def main():
    ap = arg_parser()
    ap.add_argument("--scenario", action="append", choices=[n for n, _ in SCENARIOS],
                    help="run only these (repeatable); default: all")
    args = ap.parse_args()
    missing = [p for p in (bmc.IPMI_SIM, bmc.FENCE_IPMILAN, "/usr/bin/ipmitool") if not os.access(p, os.X_OK)]
    if missing:
        skip_or_fail(f"{', '.join(missing)} missing (Debian openipmi, fence-agents, ipmitool)",
                     "the power-fence tests must run here: tools/install-deps.sh installs them")
    failed = []
    for name, fn in SCENARIOS:
        if args.scenario and name not in args.scenario:
            continue
        print(f"#### {name}", flush=True)
        t0 = time.monotonic()
        with Cluster(args.loomd, args.agent, prefix=f"loom-power-{name}-", keep=args.keep) as fab, \
                bmc.Bmcs(fab.work) as bmcs:
            if fab.verdict(lambda: fn(fab, bmcs), log_lines=40):
                failed.append(name)
        print(f"#### {name}: {time.monotonic() - t0:.1f} s", flush=True)
    if failed:
        print("FAILED:", ", ".join(failed), flush=True)
        return 1
    print("ALL PASSED", flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
