#!/usr/bin/env python3
"""loomctl end to end: the real loomctl against a real loomd and `loom-agent --simulate`
on loopback (port 0, the ports loomd prints; --insecure), the way an operator or a script runs it.

Suites (one fabric each, so a failure in one does not hide the others):
  core      apply --yes of config/examples onto the example fabric, then blade/server/
            pool list+show with filters and -o json, fabric, drain/undrain, events,
            unknown name and unreachable-controller errors
  newapi    commands whose endpoints arrived with issue 6: capacity, blade retire,
            server move, delete (--dry-run and for real)
  shell     `loomctl shell` driven through a pseudo-terminal: commands, TAB completion
            of a noun/verb and of a live blade name, an error that does not end the
            shell, history (up-arrow and ~/.loom_history), Ctrl-D

Every wait is bounded; every process started here is killed at the end.
Usage: loomctl_e2e.py --loomctl PATH --loomd PATH --agent PATH --examples DIR --suite NAME [--keep]"""
import json, os, pty, select, signal, subprocess, sys, time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from loomharness import Cluster, arg_parser, Failure, check, refused_port, wait_until

SMALL_FABRIC = """
blades:
  - {name: b1, chassis: c1, slot: 1, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: b2, chassis: c1, slot: 2, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: lonely-blade, chassis: c2, slot: 3, cores: 8, memory: 16GiB, hypervisor: [kvm]}
"""

def start_fabric(fab, fabric_file, blades):
    """loomd and one `loom-agent --simulate` for the whole fabric file; wait (through
    loomctl) until its blades are online."""
    fab.start_loomd(wait=False)
    fab.start_sim_agent(fabric_file)
    wait_for(lambda: len(online_blades(fab)) == blades, 30, f"{blades} blades registered")

def loomctl(fab, *args, timeout=60, url=None, env=None):
    e = dict(os.environ, NO_COLOR="1")
    e.pop("LOOM_CONTROLLER", None)
    if env:
        e.update(env)
    cmd = [fab.args.loomctl, "--controller", url or fab.api] + list(args)
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True, env=e)
    return r.returncode, r.stdout, r.stderr

def loomctl_json(fab, *args):
    rc, out, err = loomctl(fab, *args, "-o", "json")
    if rc != 0:
        raise Failure(f"loomctl {' '.join(args)} -o json exited {rc}: {err.strip()}")
    return json.loads(out)

def online_blades(fab):
    try:
        return [b for b in loomctl_json(fab, "blade", "list") if b.get("online")]
    except Exception:
        return []

def wait_for(pred, seconds, what):
    wait_until(pred, seconds, what, interval=0.3, retry_on=Failure)

def example_args(examples):
    out = []
    for f in ("partitions", "networks", "identity", "pools", "servers", "blades"):
        out += ["-f", os.path.join(examples, f + ".yaml")]
    return out

def apply_examples(fab):
    rc, out, err = loomctl(fab, "apply", "--yes", "--timeout", "90", *example_args(fab.args.examples), timeout=120)
    check(rc == 0, "apply --yes of the examples exits 0 once the servers settled", out + err)
    return out, err

class OldController:
    """A loomd from before issue 6: 404 "no such endpoint" for the new paths."""
    def __init__(self):
        import http.server, threading
        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                body = json.dumps({"error": f"no such endpoint '{self.command} {self.path}'"}).encode()
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_GET = do_POST = answer
            def log_message(self, *args):
                pass
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

# --- suites ---------------------------------------------------------------------------

def suite_core(fab):
    rc, out, err = loomctl(fab, "apply", "--dry-run", *example_args(fab.args.examples))
    check(rc == 0 and "created" in out and "dry run: nothing changed" in out, "apply --dry-run shows the diff", out + err)
    check("Server/web-0" in out or "Server/web" in out, "the diff names the servers", out)
    servers = loomctl_json(fab, "server", "list")
    check(servers == [], "a dry run changed nothing")

    out, err = apply_examples(fab)
    check("applied" in out and "+ Pool/web" in out, "apply prints the diff (+ created) and 'applied'", out)
    check("+ Blade/c1-s1" in out, "apply names the declared blades (+ Blade/c1-s1)", out)
    check("servers settled: 17/17" in out, "apply reports the servers settled / total", out)
    check("SERVER" in out and "BLADE" in out, "apply shows the resulting placements", out)
    check("Apply these changes?" not in out, "no confirmation question when stdin is not a terminal", out)

    blades = loomctl_json(fab, "blade", "list")
    check(len(blades) == 24, "blade list -o json lists the 24 blades")
    for field in ("name", "chassis", "slot", "cores", "memory_mib", "hypervisor", "state", "pool", "servers"):
        check(all(field in b for b in blades), f"every blade has '{field}'")
    web = [b for b in blades if b["pool"] == "web"]
    check(len(web) == 8 and all(b["chassis"] == "c1" for b in web), "8 blades of chassis c1 are in pool web")
    check(sum(len(b["servers"]) for b in blades) == 17, "the blades carry the 17 servers")

    check({b["name"] for b in loomctl_json(fab, "blade", "list", "--pool", "web")} == {b["name"] for b in web},
          "blade list --pool web")
    check(all(b["chassis"] == "c3" for b in loomctl_json(fab, "blade", "list", "--chassis", "c3")) and
          len(loomctl_json(fab, "blade", "list", "--chassis", "c3")) == 8, "blade list --chassis c3")
    check({b["name"] for b in loomctl_json(fab, "blade", "list", "--selector", "pool=db,chassis=c2")} ==
          {"c2-s1", "c2-s2", "c2-s3", "c2-s4"}, "blade list --selector pool=db,chassis=c2")
    check(all(b["pool"] in ("web", "db") for b in loomctl_json(fab, "blade", "list", "--partition", "prod")) and
          len(loomctl_json(fab, "blade", "list", "--partition", "prod")) == 12, "blade list --partition prod (via pools)")
    spares = loomctl_json(fab, "blade", "list", "--state", "spare")
    check(len(spares) >= 1 and all(b["state"] == "spare" for b in spares), "blade list --state spare")
    dev = loomctl_json(fab, "server", "list", "--partition", "dev")
    check(len(dev) == 4 and all(s["partition"] == "dev" for s in dev), "server list --partition dev")
    # A filter that can never match is an error naming what there is, not an empty table.
    for args, says in ((("blade", "list", "--state", "bogus"), "--state: bogus not in {discovered,available"),
                       (("server", "list", "--state", "spare"), "--state: spare not in {pending,"),
                       (("blade", "list", "--pool", "nosuch"), "no pool 'nosuch' (pools: db, dev, global-spares, web)"),
                       (("server", "list", "--partition", "nope"), "no partition 'nope' (partitions: dev, prod)"),
                       (("fabric", "--chassis", "c9"), "no chassis 'c9' (chassis: c1, c2, c3)"),
                       (("blade", "list", "-l", "nosuchfield=1"), "no field 'nosuchfield' in blades (fields: ")):
        rc, out, err = loomctl(fab, *args)
        check(rc == 2 and says in err and out == "", f"loomctl {' '.join(args)}: exit 2 saying {says!r}",
              f"rc {rc}, stderr {err[:300]!r}, stdout {out[:200]!r}")
    rc, out, err = loomctl(fab, "server", "list", "--state", "unplaceable")
    check(rc == 0, "a filter that exists and matches nothing is an empty answer, exit 0", err)

    rc, out, err = loomctl(fab, "blade", "list")
    header = out.splitlines()[0].split()
    check(header == ["NAME", "CHASSIS", "SLOT", "CORES", "MEMORY", "HYPERVISOR", "STATE", "POOL", "SERVERS"],
          "blade list table columns", out)
    check("\x1b[" not in out, "no colour when piped")

    servers = loomctl_json(fab, "server", "list")
    for field in ("name", "partition", "pool", "blade", "state", "vcpus", "memory_mib", "uuid", "macs"):
        check(all(field in s for s in servers), f"every server has '{field}'")
    check(all(s["state"] == "running" for s in servers if s.get("power") != "off"), "every server runs")
    rc, out, err = loomctl(fab, "server", "show", "db-01")
    check(rc == 0 and "name:" in out and "db-01" in out and "blade:" in out and "running" in out and "uuid:" in out,
          "server show db-01 prints a key: value block", out + err)
    one = loomctl_json(fab, "server", "show", "db-01")
    check(one["name"] == "db-01" and one["blade"] in {"c2-s1", "c2-s2", "c2-s3", "c2-s4"}, "server show -o json")

    pools = loomctl_json(fab, "pool", "list")
    for field in ("name", "partition", "hypervisor", "blades", "spares", "failover", "servers"):
        check(all(field in p for p in pools), f"every pool has '{field}'")
    rc, out, err = loomctl(fab, "pool", "show", "web")
    check(rc == 0 and "failover:" in out and "c1-s1" in out and "web-0" in out,
          "pool show web: the block, its blades and servers", out + err)
    rc, out, err = loomctl(fab, "pool", "show", "web", "-o", "yaml")
    check(rc == 0 and "\nname: web\n" in "\n" + out and "  - c1-s1\n" in out, "pool show -o yaml", out)

    rc, out, err = loomctl(fab, "fabric")
    check(rc == 0, "fabric exits 0", err)
    for c in ("chassis c1", "chassis c2", "chassis c3"):
        check(c in out, f"fabric draws {c}", out)
    check("slot 1" in out and "slot 8" in out and "c2-s7" in out and "c3-s8" in out, "fabric shows slots and blades", out)
    check("web" in out and "spare" in out, "fabric shows pools and states", out)

    held = loomctl_json(fab, "blade", "show", "c3-s1")["servers"]
    rc, out, err = loomctl(fab, "blade", "drain", "c3-s1")
    check(rc == 0 and "maintenance" in out, "blade drain c3-s1", out + err)
    check(not held or f"c3-s1: drained, {len(held)} server" in out, "drain says how many servers moved off", out)
    check(loomctl_json(fab, "blade", "show", "c3-s1")["state"] == "maintenance", "a drained blade shows maintenance")
    check(loomctl_json(fab, "blade", "show", "c3-s1")["servers"] == [], "drain returns once its servers moved away")
    check(all(s["state"] == "running" for s in loomctl_json(fab, "server", "list") if s["name"] in held),
          "the drained blade's servers run elsewhere when drain returns")
    rc, out, err = loomctl(fab, "blade", "undrain", "c3-s1")
    check(rc == 0, "blade undrain c3-s1", err)
    check(loomctl_json(fab, "blade", "show", "c3-s1")["state"] != "maintenance", "an undrained blade leaves maintenance")
    # Every blade of pool dev drained: the last one is said to be the last before acting,
    # and a server that cannot leave makes drain exit 1 naming it.
    dev = sorted(b["name"] for b in loomctl_json(fab, "blade", "list", "--pool", "dev"))
    for b in dev[:-1]:
        check(loomctl(fab, "blade", "drain", "--no-wait", b)[0] == 0, f"blade drain --no-wait {b}")
    rc, out, err = loomctl(fab, "blade", "drain", "--timeout", "5", dev[-1])
    check(f"{dev[-1]} is the last blade of pool dev that takes servers" in err, "draining a pool's last blade is said first", err)
    print(f"  (drain of the last blade of dev: exit {rc}: {err.strip()})", flush=True)
    left = loomctl_json(fab, "blade", "show", dev[-1])["servers"]
    check((rc == 0 and left == []) or (rc == 1 and "could not leave " + dev[-1] in err and all(s in err for s in left)),
          "drain exits 0 only when the servers left, else 1 naming each", f"rc {rc} left {left}: {err}")
    for b in dev:
        check(loomctl(fab, "blade", "undrain", b)[0] == 0, f"blade undrain {b}")

    rc, out, err = loomctl(fab, "events")
    check(rc == 0 and "applied" in out and "blade drained" in out, "events shows the apply and the drain", out + err)
    events = loomctl_json(fab, "events")
    check(isinstance(events, list) and events and "id" in events[0], "events -o json is an array")
    last = events[-1]["id"]
    check(loomctl_json(fab, "events", "--since", str(last)) == [], "events --since LAST is empty")
    check([x["id"] for x in loomctl_json(fab, "events", "--tail", "3")] == [x["id"] for x in events[-3:]],
          "events --tail 3: the latest three")
    rc, out, err = loomctl(fab, "events", "--tail", "3")
    lines = out.splitlines()
    # id (6 wide), time, level (7 wide), then the message: the same columns on every line.
    check(rc == 0 and len(lines) == 3 and all(line[:6].strip().isdigit() and line[6:8] == "  " and
                                              line[27:29] == "  " and line[36:38] == "  " and line[38] != " "
                                              for line in lines), "events --tail 3 prints three aligned lines", out)
    # --follow: a bounded run, then new events appear in its output; without --since it
    # starts with the latest, not the whole history.
    e = dict(os.environ, NO_COLOR="1")
    p = subprocess.Popen([fab.args.loomctl, "--controller", fab.api, "events", "--follow", "--tail", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    try:
        time.sleep(0.5)
        loomctl(fab, "server", "stop", "sandbox-0")
        loomctl(fab, "server", "start", "sandbox-0")
        time.sleep(3)
    finally:
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
    check("server stop requested" in out, "events --follow prints new events as they come", out + err)
    check("applied" not in out, "events --follow --tail 0 prints none of the history", out)

    rc, out, err = loomctl(fab, "blade", "show", "c9-s9")
    check(rc != 0 and err == "loomctl: no blade named 'c9-s9'\n" and out == "", "unknown blade: one line, non-zero", err)
    rc, out, err = loomctl(fab, "server", "show", "nope")
    check(rc != 0 and err == "loomctl: no server named 'nope'\n", "unknown server: one line, non-zero", err)
    rc, out, err = loomctl(fab, "pool", "show", "nope")
    check(rc != 0 and err == "loomctl: no pool named 'nope'\n", "unknown pool: one line, non-zero", err)
    rc, out, err = loomctl(fab, "blade", "frob")
    check(rc == 2 and err.count("\n") == 1 and "unknown blade command 'frob'" in err, "unknown verb: usage error", err)

    dead = f"http://127.0.0.1:{refused_port()}"
    rc, out, err = loomctl(fab, "blade", "list", url=dead)
    check(rc != 0 and err == f"loomctl: cannot reach the controller at {dead}: connection refused\n",
          "unreachable controller: one line, non-zero", err)

    bad = os.path.join(fab.work, "bad.yaml")
    with open(bad, "w") as f:
        f.write("kind: Server\nname: broken\npartition: prod\npool: web\nmemory: 1GiB\nvcpus: two\n")
    rc, out, err = loomctl(fab, "apply", "--yes", "-f", os.path.join(fab.args.examples, "partitions.yaml"), "-f", bad)
    check(rc == 1 and f"{bad}:6:8: " in err and err.strip().endswith("loomctl: invalid declarations (1 error, above)"),
          "apply of two files: the controller's diagnostics point into the right file and line", err)
    check(not any(s["name"] == "broken" for s in loomctl_json(fab, "server", "list")), "nothing of a bad apply lands")

    old = OldController()
    try:
        for args, feature in ((["capacity"], "capacity"), (["blade", "retire", "c1-s1"], "blade retire"),
                              (["server", "move", "web-0", "--to", "c1-s2"], "server move"),
                              (["delete", "-f", os.path.join(fab.args.examples, "partitions.yaml")], "delete")):
            rc, out, err = loomctl(fab, *args, url=old.url)
            check(rc != 0 and err == f"loomctl: the controller does not support {feature} (upgrade loomd)\n",
                  f"an older loomd: '{' '.join(args)}' says it needs an upgrade", err)
    finally:
        old.close()

    rc, out, err = loomctl(fab, "blade", "--help")
    check(rc == 0 and "drain" in out and "retire" in out, "blade --help lists its verbs", out)
    complete = lambda *words: subprocess.run([fab.args.loomctl, "__complete"] + list(words), capture_output=True, text=True,
                                             timeout=20, env=dict(os.environ, LOOM_CONTROLLER=fab.api)).stdout.split()
    check(complete("blade", "show", "c2-s") == [f"c2-s{i}" for i in range(1, 9)], "__complete completes live blade names")
    check(complete("blade", "list", "--pool", "") == ["db", "dev", "global-spares", "web"], "__complete completes pool names")
    check(complete("ser") == ["server"], "__complete completes nouns")
    # The bash script itself, as bash runs it.
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "loomctl", "loomctl.bash-completion")
    bash = (f"source {script}; loomctl() {{ {fab.args.loomctl} \"$@\"; }}; COMP_WORDS=(loomctl blade show c3-s); COMP_CWORD=3; "
            f"_loomctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    r = subprocess.run(["bash", "-c", bash], capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, LOOM_CONTROLLER=fab.api))
    check(r.stdout.split() == [f"c3-s{i}" for i in range(1, 9)], "the bash completion script completes blade names",
          r.stdout + r.stderr)

def suite_newapi(fab):
    apply_examples(fab)
    rc, out, err = loomctl(fab, "capacity")
    check(rc == 0, "capacity exits 0", err)
    for p in ("web", "db", "dev", "global-spares"):
        check(p in out, f"capacity lists pool {p}", out)
    cap = loomctl_json(fab, "capacity")
    for field in ("pool", "blades", "spares", "spares_declared", "cores_total", "cores_used", "memory_total_mib",
                  "memory_used_mib", "survivable_failures", "spares_promise_met"):
        check(all(field in c for c in cap), f"capacity -o json has '{field}'")

    moving = loomctl_json(fab, "server", "show", "sandbox-0")
    target = [b["name"] for b in loomctl_json(fab, "blade", "list", "--pool", "dev") if b["name"] != moving["blade"]
              and b["state"] in ("active", "spare", "available")][0]
    rc, out, err = loomctl(fab, "server", "move", "sandbox-0", "--to", target)
    check(rc == 0, f"server move sandbox-0 --to {target}", out + err)
    wait_for(lambda: loomctl_json(fab, "server", "show", "sandbox-0")["blade"] == target and
             loomctl_json(fab, "server", "show", "sandbox-0")["state"] == "running", 30, "the server runs on its new blade")

    rc, out, err = loomctl(fab, "blade", "retire", "c3-s6")
    check(rc == 0, "blade retire c3-s6", out + err)
    check(loomctl_json(fab, "blade", "show", "c3-s6")["state"] == "retired", "a retired blade shows retired")
    rc, out, err = loomctl(fab, "blade", "retire", "c9-s9")
    check(rc != 0 and err == "loomctl: no blade named 'c9-s9'\n", "retire of an unknown blade", err)

    doomed = os.path.join(fab.work, "doomed.yaml")
    with open(doomed, "w") as f:
        # Just the Server: the controller reads the file onto what is applied, so its
        # partition, pool and network need not be repeated (and must not be: they'd go too).
        f.write("kind: Server\nname: analytics\npartition: prod\npool: db\nvcpus: 16\nmemory: 64GiB\n"
                "nics: [{network: back}]\ndedicated: true\npower: on\n")
    rc, out, err = loomctl(fab, "delete", "--dry-run", "-f", doomed)
    check(rc == 0 and "- Server/analytics" in out and "dry run" in out, "delete --dry-run names what would go", out + err)
    check(any(s["name"] == "analytics" for s in loomctl_json(fab, "server", "list")), "a dry-run delete keeps it")
    rc, out, err = loomctl(fab, "delete", "-f", doomed)
    check(rc == 0 and "- Server/analytics" in out and "deleted" in out, "delete (stdin not a terminal: no question)", out + err)
    check(not any(s["name"] == "analytics" for s in loomctl_json(fab, "server", "list")), "the deleted server is gone")
    rc, out, err = loomctl(fab, "delete", "-f", doomed)
    check(rc != 0 and err.count("\n") == 1 and "analytics" in err, "deleting it again: one-line error", err)

    huge = os.path.join(fab.work, "huge.yaml")
    with open(huge, "w") as f:
        f.write("kind: Server\nname: huge\npartition: prod\npool: web\nvcpus: 512\nmemory: 4TiB\npower: on\n")
    rc, out, err = loomctl(fab, "apply", "--dry-run", "-f", huge)
    check(rc == 1 and "loomctl: 1 server would be unplaceable" in err and "dry run: nothing changed" in out,
          "apply --dry-run of a server nothing can hold exits 1, like plan", f"rc {rc}: {out[-300:]} {err}")
    rc, out, err = loomctl(fab, "apply", "--yes", "--timeout", "30", "-f", huge)
    check(rc != 0 and "unplaceable huge" in out, "apply of a server nothing can hold names it", out + err)
    check(err.startswith("loomctl: 1 server did not start: huge unplaceable") and err.count("\n") == 1,
          "... and exits non-zero with one line naming it and why", err)

SMALL_DECLS = """
kind: Partition
name: lab
---
kind: IdentityPool
name: default
macs: 52:54:00:20:00:00-52:54:00:20:00:ff
uuids: 4c4f4f4d-0000-0000-0000-000000000000/16
---
kind: Pool
name: bench
partition: lab
hypervisor: kvm
blades: {match: {chassis: c1}}
---
kind: Server
name: probe
partition: lab
pool: bench
vcpus: 1
memory: 1GiB
power: on
"""

def run_on_terminal(fab, args, answer, seconds=60):
    """loomctl on a pseudo-terminal, typing `answer` at its question; (exit code, output)."""
    env = dict(os.environ, NO_COLOR="1", TERM="xterm")
    pid, master = pty.fork()
    if pid == 0:
        os.execve(fab.args.loomctl, [fab.args.loomctl, "--controller", fab.api] + args, env)
    out, answered, status = b"", False, None
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not answered and b"[y/N]" in out:
                os.write(master, answer.encode() + b"\r")
                answered = True
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                out += data
                if data:
                    continue
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status, pid = st, None
                break
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)
    code = os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None
    return code, out.decode(errors="replace")

def suite_shell(fab):
    decls = os.path.join(fab.work, "lab.yaml")
    with open(decls, "w") as f:
        f.write(SMALL_DECLS)
    code, out = run_on_terminal(fab, ["apply", "-f", decls], "n")
    check("+ Server/probe" in out and "Apply these changes? [y/N]" in out, "apply on a terminal shows the diff and asks", out)
    check(code == 1 and "loomctl: not applied" in out, "answering n applies nothing (exit 1)", out)
    check(loomctl_json(fab, "server", "list") == [], "nothing was applied")
    code, out = run_on_terminal(fab, ["apply", "-f", decls], "y")
    check(code == 0 and "applied" in out and "servers settled: 1/1" in out, "answering y applies and waits", out)

    home = os.path.join(fab.work, "home")
    os.makedirs(home)
    env = dict(os.environ, HOME=home, TERM="xterm", NO_COLOR="1")
    env.pop("LOOM_CONTROLLER", None)
    pid, master = pty.fork()
    if pid == 0:
        os.execve(fab.args.loomctl, [fab.args.loomctl, "--controller", fab.api, "shell"], env)
    buf = [b""]

    def expect(text, seconds=10):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text.encode() in buf[0]:
                i = buf[0].index(text.encode()) + len(text)
                seen, buf[0] = buf[0][:i], buf[0][i:]
                return seen.decode(errors="replace")
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                buf[0] += data
        raise Failure(f"shell: timed out after {seconds} s waiting for {text!r}; got:\n" + buf[0].decode(errors="replace"))

    def type_(text):
        os.write(master, text.encode())

    try:
        expect("loom> ")
        check(True, "the shell prompts")
        type_("blade list\r")
        out = expect("loom> ")
        check("lonely-blade" in out and "CHASSIS" in out, "a command runs without the loomctl prefix", out)
        # libedit redraws a completed line with cursor motions, so the screen is not
        # the line's text: the proof of each completion is what the command then does.
        for keys in ("bla\t", "li\t", "\r"):
            type_(keys)
            time.sleep(0.3)
        out = expect("loom> ")
        check("lonely-blade" in out and "HYPERVISOR" in out, "TAB completes a noun and a verb (bla<TAB> li<TAB>)", out)
        for keys in ("blade sh\t", "lon\t", "\r"):
            type_(keys)
            time.sleep(0.3)
        out = expect("loom> ")
        check("chassis:" in out and "lonely-blade" in out and "slot:" in out,
              "TAB completes a live blade name (blade sh<TAB> lon<TAB>)", out)
        type_("frobnicate\r")
        out = expect("loom> ")
        check("loomctl: unknown command 'frobnicate'" in out, "a bad command prints one error line", out)
        type_("blade show c9-s9\r")
        out = expect("loom> ")
        check("loomctl: no blade named 'c9-s9'" in out, "an unknown name is an error, not an exit", out)
        type_("blade li")
        time.sleep(0.3)
        type_("\x03")  # Ctrl-C abandons the line, not the shell
        expect("loom> ")
        type_("pool list -o json\r")
        out = expect("loom> ")
        check("[" in out and '"name": "bench"' in out, "Ctrl-C abandons a line; -o json works in the shell", out)
        type_("blade list\r")
        expect("loom> ")
        check(True, "the shell keeps going after errors")
        type_("blade retire b2\r")
        expect("[y/N] ")
        type_("n\r")
        out = expect("loom> ")
        check("loomctl: not retired" in out, "a question inside the shell reads the answer; 'n' declines", out)
        type_("help\r")
        out = expect("loom> ")
        check("blade" in out and "capacity" in out, "help lists the commands", out)
        type_("\x1b[A\x1b[A\x1b[A\r")  # up three times: `blade list`
        out = expect("loom> ")
        check("lonely-blade" in out and "CHASSIS" in out, "up-arrow recalls history", out)
        type_("\x04")  # Ctrl-D
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            try:
                r, _, _ = select.select([master], [], [], 0.2)
                if r:
                    os.read(master, 65536)
            except OSError:
                pass
        check(status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "Ctrl-D leaves the shell (exit 0)")
        pid = None
        with open(os.path.join(home, ".loom_history")) as f:
            history = f.read().replace("\\040", " ")  # libedit's file format escapes blanks
        check("blade list" in history and "frobnicate" in history, "history is saved to ~/.loom_history", history)
    finally:
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        os.close(master)

def main():
    ap = arg_parser()
    for a in ("--loomctl", "--examples"):
        ap.add_argument(a, required=True)
    ap.add_argument("--suite", choices=("core", "newapi", "shell"), required=True)
    args = ap.parse_args()
    ok = False
    with Cluster(args.loomd, args.agent, prefix=f"loomctl-e2e-{args.suite}-", keep=args.keep,
                 keep_on_failure=True) as fab:
        fab.args = args
        if args.suite == "shell":
            fabric_file, blades = fab.write("fabric.yaml", SMALL_FABRIC), 3
        else:
            fabric_file, blades = os.path.join(args.examples, "fabric.yaml"), 24
        try:
            start_fabric(fab, fabric_file, blades)
            {"core": suite_core, "newapi": suite_newapi, "shell": suite_shell}[args.suite](fab)
            ok = fab.passed = True
        except Failure as e:
            print("FAIL:", e, flush=True)
    print("PASS" if ok else "FAILED", flush=True)
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
