#!/usr/bin/env python3
"""The power route (docs/FENCING.md; DESIGN.md section 5, invariant 1): real loomd, and
every simulated blade behind its own BMC, an OpenIPMI `ipmi_sim` on 127.0.0.1
(tests/e2e/bmc.py) whose power-off powers the blade off (its agent dies, its running
domains end in its state file, journaled then). The BMCs are declared as an operator
declares them (`kind: Blade` with `bmc: {address, port, user, password_file}`), and
loomd runs the fence command packaging/etc/loomd.conf documents, the real `fence_ipmilan`
templated with {bmc_address} {bmc_port} {bmc_user} {bmc_password_file} (plus what
ipmi_sim needs: bmc.FENCE_TEST_OPTIONS), from a --config file as an installed loomd reads
it. Every agent reaches loomd through a link of its own (a TCP relay in this process)
that the test can cut, leaving the agent running.

  frozen-blade     SIGSTOP of a blade's agent: "fence command started" with its BMC's
                   address and port, then "blade fenced: fence command confirmed
                   power-off"; its servers run elsewhere seconds after the freeze, long
                   before the 20 s lease; the journal shows its domains ended by the
                   power-off before any restart elsewhere; fence_ipmilan -o status says
                   OFF. Power on through the BMC: the blade boots, its agent registers
                   and the blade is trusted again.
  killed-agent     kill -9 of a blade's agent (the blade and its domains stay up; its BMC
                   still says ON): the same, by the power route.
  bmc-unreachable  the power route's last resort. The blade's BMC dies (its ipmi_sim
                   killed), then its link to loomd is cut: its agent runs on, holding the
                   power-fenced policy. Its lease (4 s) runs out and nothing moves: loomd
                   does not fence it by lease, its agent does not fence itself (its
                   domains keep running, its watchdog is disarmed), and the fence command
                   fails, is retried with backoff (one error event for them all). The
                   test then powers the blade off by hand and `loomctl blade fence NAME
                   --confirm-powered-off` moves its servers (refused without the flag, and
                   for a blade that is heard).

Each scenario ends with the journal check: no server ran on two blades at overlapping
times, and every power:on server has exactly one open run, on the blade the API names.
Needs /usr/bin/ipmi_sim and /usr/sbin/fence_ipmilan (tools/install-deps.sh); without
them it exits 77 (skipped) and says so, except under CI (CI=true), where it fails: CI
installs them. The BMCs' UDP and TCP ports are picked free and handed to ipmi_sim, which
cannot say which port it bound; loomd binds port 0 and says.
Usage: power_fence_e2e.py --loomd PATH --agent PATH [--loomctl PATH] [--keep] [--scenario NAME ...]"""
import contextlib, json, os, re, selectors, signal, socket, subprocess, sys, threading, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, run_scenarios, arg_parser, Failure, check, prod_preamble, skip_or_fail, wait_until, now_ms
from failover_e2e import (fabric, servers_yaml, timing, all_running, running_elsewhere, blade, take_victim,
                          first_event, events_for, journal, check_journal, wait_trusted, starts_after, check_moved)
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

class Links:
    """One TCP relay per blade between its agent and loomd's fabric port, all served by one
    thread. cut(blade) turns that blade's relay into a black hole: what either side sends
    is read and dropped, connections stay open and new ones are accepted and ignored, as
    when a switch port dies. The agent keeps running; loomd hears nothing from it."""

    def __init__(self):
        self.target = None  # loomd's fabric endpoint, known once it started (start)
        self.sel = selectors.DefaultSelector()
        self.listeners, self.cut_blades, self.peer = {}, set(), {}
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def add(self, blade):
        """A relay for `blade`; its endpoint for the agent's --controller."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        s.setblocking(False)
        with self.lock:
            self.listeners[s] = blade
            self.sel.register(s, selectors.EVENT_READ, ("listen", blade))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"

    def start(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.thread.start()

    def cut(self, blade):
        with self.lock:
            self.cut_blades.add(blade)

    def _serve(self):
        while not self.stopping:
            with self.lock:
                events = self.sel.select(timeout=0.1)
                for key, _ in events:
                    kind, blade = key.data
                    if kind == "listen":
                        self._accept(key.fileobj, blade)
                    else:
                        self._pump(key.fileobj, blade)

    def _accept(self, listener, blade):
        try:
            agent, _ = listener.accept()
        except OSError:
            return
        agent.setblocking(False)
        if blade in self.cut_blades:
            self.sel.register(agent, selectors.EVENT_READ, ("conn", blade))  # read, drop, never answer
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            agent.close()
            return
        upstream.setblocking(False)
        self.peer[agent], self.peer[upstream] = upstream, agent
        self.sel.register(agent, selectors.EVENT_READ, ("conn", blade))
        self.sel.register(upstream, selectors.EVENT_READ, ("conn", blade))

    def _pump(self, sock, blade):
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        other = self.peer.get(sock)
        if not data:
            for s in (sock, other):
                if s is None:
                    continue
                self.peer.pop(s, None)
                try:
                    self.sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()
            return
        if other is None or blade in self.cut_blades:
            return  # cut: dropped
        try:
            other.setblocking(True)
            other.settimeout(2)
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            pass

    def close(self):
        self.stopping = True
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()

def agent_log(fab, b):
    try:
        with open(fab.path(f"agent-{b}.log")) as f:
            return f.read()
    except FileNotFoundError:
        return ""

def bring_up(fab, bmcs, links, lease):
    """loomd with the documented fence command (from a --config file), every blade powered
    on by its BMC (whose machine starts its agent, connected through its link), pools,
    servers and the BMCs' Blade declarations applied, every agent holding the power-fenced
    policy, the servers running. The power:on servers."""
    fab.write("fabric.yaml", fabric(N_BLADES))
    blades = [f"b{i}" for i in range(1, N_BLADES + 1)]
    # loomd first: the links and agents need the fabric port it prints.
    command = bmc.write_loomd_conf(fab.path("loomd.conf"))
    fab.start_loomd(extra=timing(lease) + ["--config", fab.path("loomd.conf")])
    links.start(fab.fabric_port)
    for b in blades:
        argv = fab.sim_agent_argv(fab.path("fabric.yaml"), only=b)
        argv[argv.index("--controller") + 1] = links.add(b)
        bmcs.add(b, argv, fab.sim_power_off_argv(b))
    try:
        bmcs.wait_ready(timeout=30)
    except RuntimeError as e:
        raise Failure(str(e))
    print(f"  ok: {N_BLADES} BMCs answer fence_ipmilan -o status with ON, each blade's agent runs", flush=True)
    wait_until(lambda: len(fab.online_blades()) == N_BLADES, 20, f"{N_BLADES} blades online")
    with open(fab.path("loomd.log")) as f:
        check(f"fence command: {command}" in f.read(), "loomd runs the documented fence command from its --config file",
              command)
    status, body = fab.request("POST", "/v1/apply?source=pools.yaml", POOLS)
    check(status == 200, f"pools applied ({status} {body[:300] if status != 200 else ''})")
    status, body = fab.request("POST", "/v1/apply?source=servers.yaml", servers_yaml(3, 2))
    check(status == 200, f"servers applied ({status} {body[:300] if status != 200 else ''})")
    status, body = fab.request("POST", "/v1/apply?source=blades.yaml", bmcs.blades_yaml())
    check(status == 200 and any(o.get("kind") == "Blade" for o in json.loads(body)["created"] + json.loads(body)["changed"]),
          f"the BMCs declared (kind: Blade): {body[:200]}")
    wait_until(lambda: all("fencing by power" in agent_log(fab, b) for b in blades), 10,
               "every agent holds the power-fenced policy (its log: 'fencing by power')")
    check(all(blade(fab, b).get("fencing") == "power" for b in blades), "blade show says fencing: power for each")
    on = {f"web-{i}" for i in range(3)} | {f"app-{i}" for i in range(2)}
    wait_until(lambda: all_running(fab, on), 30, f"{len(on)} power:on servers running")
    return on

def command_ms(fence_event):
    """How long fence_ipmilan ran, from loomd's "... confirmed power-off (exit 0 in N ms...)"."""
    m = re.search(r"exit 0 in (\d+) ms", fence_event["message"])
    return int(m.group(1)) if m else None

def power_fenced(fab, bmcs, links, sig):
    """The power route after `sig` (SIGSTOP: a frozen blade; SIGKILL: its agent dies, the
    blade stays up) to the agent of the blade holding the most servers."""
    lease = 20000
    on = bring_up(fab, bmcs, links, lease)
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
    b = bmcs[victim]
    check(started is not None and started["message"].startswith("fence command started: fence_ipmilan ")
          and f"--ip='{b.address}' --ipport='{b.port}' --username='{b.user}'" in started["message"]
          and f"--password-script=\"cat '{b.password_file}'\"" in started["message"]
          and started["time_ms"] <= fence["time_ms"],
          f"event 'fence command started' {started and started['time_ms'] - t_fault} ms after the fault, with "
          f"{victim}'s BMC fields, before the fence", started and started["message"])
    check(len(events_for(fab, victim, "fence command started", t_fault)) == 1
          and not events_for(fab, victim, "fence command failed", t_fault), "fence_ipmilan ran once and did not fail")
    took = command_ms(fence)
    print(f"  timing: failure detected and fence command started {started['time_ms'] - t_fault} ms after the fault; "
          f"fence_ipmilan took {took} ms; fenced at {fence['time_ms'] - t_fault} ms; "
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

def frozen_blade(fab, bmcs, links, loomctl):
    power_fenced(fab, bmcs, links, signal.SIGSTOP)

def killed_agent(fab, bmcs, links, loomctl):
    power_fenced(fab, bmcs, links, signal.SIGKILL)

def run_loomctl(fab, loomctl, *args):
    r = subprocess.run([loomctl, "--controller", fab.api, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30, env={**os.environ, "NO_COLOR": "1", "USER": "e2e-operator"})
    return r.returncode, r.stdout, r.stderr

def confirm_by_hand(fab, loomctl, name, flag=True):
    """`loomctl blade fence NAME --confirm-powered-off` (or the API call it makes, without a
    loomctl): (exit code, output)."""
    if loomctl:
        rc, out, err = run_loomctl(fab, loomctl, "blade", "fence", name, *(["--confirm-powered-off"] if flag else []))
        return rc, out + err
    status, body = fab.request("POST", f"/v1/blades/{name}/fence",
                               '{"confirm_powered_off": true, "by": "e2e-operator"}' if flag else "{}")
    return (0 if status == 200 else 1 if status in (404, 409) else 2), body

def bmc_unreachable(fab, bmcs, links, loomctl):
    lease = 4000
    on = bring_up(fab, bmcs, links, lease)
    victim, moved, spares, before, uuids = take_victim(fab)
    print(f"== {victim}'s BMC dies (ipmi_sim killed), then its link to loomd is cut: its agent runs on, "
          f"power-fenced (lease {lease} ms)", flush=True)
    bmcs.stop(victim)
    check(bmcs.status(victim) is None, f"{victim}'s BMC does not answer")
    agent_pid = bmcs.agent_pid(victim)
    t_cut = now_ms()
    links.cut(victim)
    # Past the lease, two failed fence commands and a retry after each.
    wait_until(lambda: (blade(fab, victim).get("fence_attempts") or 0) >= 3, 40, "a third fence command (two retries)")
    t_check = now_ms()
    b = blade(fab, victim)
    check(t_check - t_cut > lease + 2000, f"{t_check - t_cut} ms after the cut, well past the {lease} ms lease")
    check(b["state"] == "failed", f"{victim} is failed, not fenced: {b['state']}")
    check(first_event(fab, victim, "blade not fenced by its lease: it is power-fenced", t_cut) is not None,
          "event: not fenced by its lease (power-fenced)")
    check(not first_event(fab, victim, "blade fenced", t_cut), "no fence event")
    check(not starts_after(journal(fab), uuids, t_cut, not_on=victim) and not running_elsewhere(fab, moved, victim),
          "nothing moved")
    failed = events_for(fab, victim, "fence command failed", t_cut)
    check(len(failed) == 1 and failed[0]["level"] == "error" and "retrying in 2 s" in failed[0]["message"],
          f"{b['fence_attempts']} fence commands failed alike, one error event saying it is retried: "
          f"{failed[0]['message'][:220] if failed else None}", str([e["message"][:200] for e in failed]))
    next_attempt = ("running now" if b.get("fence_command_running")
                    else f"next in {b['next_fence_attempt_ms']} ms" if "next_fence_attempt_ms" in b else None)
    check("Connection timed out" in b.get("last_fence_error", "") and next_attempt is not None,
          f"blade show: fence_attempts {b['fence_attempts']}, {next_attempt}, "
          f"last_fence_error '{b.get('last_fence_error', '')[:80]}'", str(b))
    # The backoff, from loomd's log (retries after the first failure log a line, not an
    # event): attempt 2 failed and waits 4 s, and the retries counter says so.
    with open(fab.path("loomd.log")) as f:
        log = f.read()
    check(f"{victim}: fence command failed again (attempt 2)" in log and "next in 4 s" in log,
          "loomd's log: attempt 2 failed again, next in 4 s (backoff 2, 4 ... 60 s)")
    retries = fab.metric("loom_fence_command_retries_total")
    check(retries is not None and retries >= 2, f"metric loom_fence_command_retries_total {retries}")
    check(os.path.exists(f"/proc/{agent_pid}") and bmcs.agent_alive(victim), f"{victim}'s agent still runs")
    ended = [e for e in journal(fab) if e["blade"] == victim and e["uuid"] in uuids and e["event"] != "start"]
    check(not ended, f"its agent did not fence itself: {victim}'s {len(uuids)} domains still run (no end in the "
          f"journal {t_check - t_cut} ms after the cut)", str(ended))
    since_policy = agent_log(fab, victim).split("fencing by power")[-1]
    check("lease not renewed" not in since_policy and "fencing" not in since_policy.replace("fencing by", ""),
          f"{victim}'s agent log: its lease ran out and it fenced nothing (it holds the power-fenced policy)",
          since_policy[-600:])

    if loomctl:
        rc, out = confirm_by_hand(fab, loomctl, victim, flag=False)
        check(rc == 2 and "needs --confirm-powered-off" in out and "run twice" in out,
              f"loomctl blade fence without --confirm-powered-off refuses and says the risk: {out.strip()[:160]}")
    live = next(n for n in (f"b{i}" for i in range(1, N_BLADES + 1)) if n != victim)
    rc, out = confirm_by_hand(fab, loomctl, live)
    check(rc == 1 and "refusing to fence a live blade by hand" in out, f"{live} is heard: refused ({out.strip()[:120]})")
    status, body = fab.request("POST", f"/v1/blades/{live}/fence", '{"confirm_powered_off": true}')
    check(status == 409 and blade(fab, live)["state"] != "fenced" and not first_event(fab, live, "blade fenced", t_cut),
          f"POST /v1/blades/{live}/fence answers 409 for a heard blade and fences nothing ({status})")

    print(f"== the operator powers {victim} off by hand, then confirms it", flush=True)
    t_off = now_ms()
    bmcs.power_off_by_hand(victim)
    check(not bmcs.agent_alive(victim), f"{victim} is off (its machine and agent are gone)")
    rc, out = confirm_by_hand(fab, loomctl, victim)
    check(rc == 0, f"loomctl blade fence {victim} --confirm-powered-off: {out.strip()[:200]}")
    fence = first_event(fab, victim, "blade fenced", t_cut)
    check(fence is not None and "operator confirmed power-off" in fence["message"]
          and ("e2e-operator" in fence["message"]), f"fence event: {fence and fence['message']}")
    wait_until(lambda: running_elsewhere(fab, moved, victim), 15, f"{sorted(moved)} running elsewhere")
    check_moved(fab, before, moved, victim, spares, fence, t_cut)
    entries = journal(fab)
    ends = {e["uuid"]: e for e in entries if e["blade"] == victim and e["uuid"] in uuids and e["event"] != "start"}
    first_start = {u: min(e["t"] for e in starts_after(entries, {u}, t_cut, not_on=victim)) for u in uuids}
    bad = [(u, e) for u, e in ends.items()
           if e["event"] != "destroy" or e["t"] < t_off or e["t"] > fence["time_ms"] or e["t"] > first_start[u]]
    check(set(ends) == uuids and not bad,
          f"journal: each of {victim}'s domains ran until the power-off by hand ({t_off - t_cut} ms after the cut, "
          f"not at its lease) and ended before its restart elsewhere", str(bad or sorted(set(uuids) - set(ends))))
    check_journal(fab, on)

SCENARIOS = [("frozen-blade", frozen_blade), ("killed-agent", killed_agent), ("bmc-unreachable", bmc_unreachable)]

def main():
    ap = arg_parser()
    ap.add_argument("--loomctl", help="loomctl binary (bmc-unreachable confirms with it; else through the API)")
    ap.add_argument("--scenario", action="append", choices=[n for n, _ in SCENARIOS],
                    help="run only these (repeatable); default: all")
    args = ap.parse_args()
    missing = [p for p in (bmc.IPMI_SIM, bmc.FENCE_IPMILAN, "/usr/bin/ipmitool") if not os.access(p, os.X_OK)]
    if missing:
        skip_or_fail(f"{', '.join(missing)} missing (Debian openipmi, fence-agents, ipmitool)",
                     "the power-fence tests must run here: tools/install-deps.sh installs them")
    @contextlib.contextmanager
    def cluster(name):
        """A fabric with a BMC per blade and a cuttable link per agent (Links)."""
        with Cluster(args.loomd, args.agent, prefix=f"loom-power-{name}-", keep=args.keep) as fab, \
                bmc.Bmcs(fab.work) as bmcs:
            links = Links()
            try:
                fab.bmcs, fab.links = bmcs, links
                yield fab
            finally:
                links.close()

    return run_scenarios([(name, lambda fab, fn=fn: fn(fab, fab.bmcs, fab.links, args.loomctl))
                          for name, fn in SCENARIOS], args, cluster)

if __name__ == "__main__":
    sys.exit(main())
