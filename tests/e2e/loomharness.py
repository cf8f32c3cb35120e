"""The process harness shared by the end-to-end tests (fabric_e2e.py, kvm_e2e.py,
tests/tools/loomctl_e2e.py). Python 3 stdlib only.

  arg_parser()                     argparse with --loomd PATH --agent PATH [--keep]
  printed_ports(log, offset, labels)  the ports a Loom process printed ("loomd: api-port N")
  refused_port()                   a loopback port where nothing listens, held so for the test
  skip_or_fail(reason, why_required)  exit 77 (ctest SKIP), or 1 under CI=true when required
  check(cond, message, detail="")  raise Failure(message) or print "  ok: message"
  run_scenarios(scenarios, args, cluster)  each selected scenario in a cluster of its own
  wait_until(pred, timeout, what)  poll pred until true; Failure "timed out after ..." if not
  http_request / http_get_json / http_post_json   one HTTP call, no exception on an error status;
                                   each sends $LOOM_TOKEN as its bearer token (token= overrides,
                                   "" sends none)
  admin_token(path)                the admin token loomd takes on its first start: read from
                                   `path`, or made and written there (0600); the Cluster puts
                                   it in $LOOM_TOKEN for its requests and every loomctl it runs
  metric(text, name)               one sample of a Prometheus text page
  read_journal(path)               the test driver's journal file (drivers/test/Journal.h) as dicts
  journal_runs / double_runs       runs per server and the invariant-1 check over a journal
  check_journal(fab, servers, what)  both, as every fault test ends
  Cluster(loomd, agent, ...)       loomd (--api/--agents on loopback port 0: the ports it prints
                                   are read from its log), fabric relays (the same) and agents
                                   (--simulate [--only] or --driver, direct or through
                                   a relay), logs in its temp dir;
                                   kill9/restart/respawn/signal; use it as a context manager: every process
                                   it started is killed on the way out, also on an exception
                                   or SIGTERM (and, on Linux, when the test itself is killed).
                                   launch_prefix(name) is the hook netns.NetCluster uses to start
                                   each process inside its network namespace.

From tests/tools: sys.path.insert(0, <repo>/tests/e2e) computed from __file__."""
import argparse, atexit, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.error, urllib.request

class Failure(Exception):
    pass

def check(cond, message, detail=""):
    if not cond:
        raise Failure(message + (("\n" + detail) if detail else ""))
    print("  ok:", message, flush=True)

def arg_parser():
    """The arguments every e2e script takes: --loomd PATH --agent PATH [--keep]."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--loomd", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, state)")
    return ap

def prod_preamble(macs, uuids):
    """What every scenario declares first: Partition prod, its Network front and the
    IdentityPool default with the given MAC range and UUID prefix (one per scenario, so
    no two scenarios' identities look alike in a log)."""
    return ("kind: Partition\nname: prod\n---\nkind: Network\nname: front\npartition: prod\n---\n"
            f"kind: IdentityPool\nname: default\nmacs: {macs}\nuuids: {uuids}\n")

SKIP = 77  # ctest's SKIP_RETURN_CODE for the e2e tests

def skip_or_fail(reason, why_required=None):
    """This test cannot run here, for `reason`: it is skipped (exit 77, "SKIP: reason"); but
    under CI (CI=true) when `why_required` names why this machine must run it (its tier can
    run here, tools/install-deps.sh and tools/test.sh provide what it needs), it fails
    (exit 1) saying both, so a CI run cannot stay green with the tier skipped."""
    if why_required and os.environ.get("CI") == "true":
        print(f"FAIL: {reason}; not skipped, because CI=true and {why_required}", flush=True)
        sys.exit(1)
    print(f"SKIP: {reason}", flush=True)
    sys.exit(SKIP)

_held = []  # sockets refused_port() keeps bound for the life of the test

def refused_port():
    """A loopback TCP port where nothing listens, for as long as the test runs: bound and
    never listened on (a connection is refused), and held, so nothing else can take it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]

def printed_ports(log_path, offset, labels, timeout=10, proc=None, what=None):
    """The ports a Loom process started on port 0 printed on stdout, one line each:
    "loomd: agents-port N", "loomd: api-port N", "loom-agent: relay-port N". Read from its
    log `log_path` after byte `offset` (where this start of it began writing); {label: N}
    once every label in `labels` has its line. Waits at most `timeout` s; Failure (with the
    log's tail) if the process `proc` exits first or the time runs out."""
    pattern = re.compile(r"^(" + "|".join(re.escape(label) for label in labels) + r") (\d+)$", re.M)
    what = what or os.path.basename(log_path)
    deadline = time.monotonic() + timeout
    while True:
        with open(log_path, errors="replace") as f:
            f.seek(offset)
            text = f.read()
        found = {}
        for m in pattern.finditer(text):
            found.setdefault(m.group(1), int(m.group(2)))
        if len(found) == len(labels):
            return found
        missing = ", ".join(f"'{label} N'" for label in labels if label not in found)
        tail = "\n".join(text.splitlines()[-15:])
        if proc is not None and proc.poll() is not None:
            raise Failure(f"{what} exited (code {proc.returncode}) before it printed {missing}", tail)
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {timeout} s waiting for {what} to print {missing}", tail)
        time.sleep(0.05)

def run_scenarios(scenarios, args, cluster, log_lines=40):
    """Run each (name, fn) of `scenarios` that args.scenario selects (all when it is empty),
    each as fn(fab) in a fresh cluster(name) of its own, so one failure hides no other;
    "#### NAME" and its time around each. 0 when all passed, else 1 after naming the failed.
    ctest runs one scenario per case (--scenario NAME)."""
    failed = []
    for name, fn in scenarios:
        if args.scenario and name not in args.scenario:
            continue
        print(f"#### {name}", flush=True)
        t0 = time.monotonic()
        with cluster(name) as fab:
            if fab.verdict(lambda: fn(fab), log_lines=log_lines):
                failed.append(name)
        print(f"#### {name}: {time.monotonic() - t0:.1f} s", flush=True)
    if failed:
        print("FAILED:", ", ".join(failed), flush=True)
        return 1
    print("ALL PASSED", flush=True)
    return 0

def wait_until(pred, timeout, what, interval=0.2, retry_on=Exception):
    """Poll pred() every `interval` s until it is true, at most `timeout` s. An exception
    of the kinds in `retry_on` counts as "not yet"; any other propagates. On time-out:
    Failure naming `what` and the last exception pred raised, if any."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if pred():
                print("  ok:", what, flush=True)
                return
            last = None
        except retry_on as e:
            last = e
        time.sleep(interval)
    why = f" (last attempt raised {type(last).__name__}: {last})" if last is not None else ""
    raise Failure(f"timed out after {timeout} s waiting for: {what}{why}")

def admin_token(path):
    """The admin token in `path`, else a new one (loom_ID_SECRET from the OS's CSPRNG)
    written there readable by its owner only: loomd's first start stores its hash
    (controller/access/AdminTokenFile.h), so the test knows the token before loomd runs."""
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip()
    import secrets
    token = f"loom_{secrets.token_hex(6)}_{secrets.token_hex(32)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token

def http_request(url, method="GET", body=None, timeout=10, token=None):
    """(status, text) of one request; (None, None) when nothing answers. The bearer token is
    `token`, else $LOOM_TOKEN; "" sends none."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method)
    token = os.environ.get("LOOM_TOKEN", "") if token is None else token
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return None, None

def http_get_json(url, timeout=10):
    """The decoded JSON of a 200 answer, else None."""
    status, text = http_request(url, "GET", timeout=timeout)
    return json.loads(text) if status == 200 else None

def http_post_json(url, body=None, timeout=10):
    """(status, decoded JSON or None); a dict/list body is sent as JSON, a str as is."""
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    status, text = http_request(url, "POST", body, timeout=timeout)
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, None

def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None

# --- the test driver's journal (drivers/test/Journal.h) -------------------------------

def read_journal(path):
    """Every entry of a journal file ({"t","blade","event","domain","uuid"}), in file order;
    [] when it does not exist yet."""
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError as e:
                        raise Failure(f"{path}:{n}: not a journal line ({e}): {line[:200]}")
    return out

def journal_runs(entries, now_ms=None):
    """uuid -> [{"blade", "domain", "from", "to"}]: a run is a "start" until the next
    non-start event of that uuid on that blade; an open run has "to" None (it lasts until
    now_ms, default: now). Entries are taken in time order, file order among equal times."""
    runs, open_ = {}, {}
    for e in sorted(entries, key=lambda e: e["t"]):  # stable: file order within one ms
        key = (e["uuid"], e["blade"])
        if e["event"] == "start":
            if key not in open_:
                run = {"blade": e["blade"], "domain": e["domain"], "from": e["t"], "to": None}
                runs.setdefault(e["uuid"], []).append(run)
                open_[key] = run
        elif key in open_:
            open_.pop(key)["to"] = e["t"]
    return runs

def double_runs(entries, now_ms=None):
    """Invariant 1 over a journal: every pair of runs of one server on two blades at
    overlapping times (half-open [from, to): an end at t and a start elsewhere at t do not
    overlap), described; [] when there is none."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    out = []
    for uuid, runs in journal_runs(entries).items():
        for i, a in enumerate(runs):
            for b in runs[i + 1:]:
                a_to = a["to"] if a["to"] is not None else now_ms + 1
                b_to = b["to"] if b["to"] is not None else now_ms + 1
                if a["blade"] != b["blade"] and a["from"] < b_to and b["from"] < a_to:
                    out.append(f"server '{a['domain']}' (uuid {uuid}) ran on {a['blade']} "
                               f"[{a['from']}, {a['to'] or 'open'}) and on {b['blade']} [{b['from']}, {b['to'] or 'open'}) at once")
    return out

def check_journal(fab, servers, what):
    """The journal check that ends a fault test: no server ran on two blades at once
    (double_runs over WORK/journal), and every server in `servers` (name -> the API's
    object) has exactly one open run, on the blade the API says."""
    entries = read_journal(fab.path("journal"))
    violations = double_runs(entries)
    check(not violations, f"{what}: journal ({len(entries)} entries): no server ran on two blades at once",
          "\n".join(violations))
    runs = journal_runs(entries)
    bad = []
    for name, s in sorted(servers.items()):
        open_runs = [r for r in runs.get(s["uuid"], []) if r["to"] is None]
        if len(open_runs) != 1 or open_runs[0]["blade"] != s["blade"]:
            bad.append(f"{name}: API on {s['blade']}, journal open runs {open_runs}")
    check(not bad, f"{what}: every server runs exactly once, where the API says", "\n".join(bad))

def now_ms():
    """Wall-clock ms, the clock of the journal and of loomd's event times."""
    return int(time.time() * 1000)

# --- every process any Cluster started, killed however the test ends -------------------

_live = set()

def _kill(p):
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGKILL)
        except OSError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    _live.discard(p)

atexit.register(lambda: [_kill(p) for p in list(_live)])

def _on_sigterm(signum, frame):
    # Unwinds through the tests' finally blocks (which kill and clean up) and exits 143.
    raise SystemExit(128 + signum)

try:  # resolved here, not in the forked child
    import ctypes
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (ImportError, OSError, AttributeError):
    _prctl = None

def _die_with_parent():
    # Linux: the child gets SIGKILL if the test process dies without unwinding (kill -9,
    # ctest's time-out). Best effort.
    _prctl(1, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG

class Cluster:
    """loomd and its agents on loopback. With keys (keygen()) the fabric runs CurveZMQ:
    loomd --key keys/loomd.key --allow keys/agent.pub, agents --key keys/KEY.key
    --server-key keys/loomd.pub; without, everything runs --insecure.

    Processes are named ("loomd", "agent-b1", ...); self.procs maps name -> Popen.
    Logs go to WORK/<log>.log, appended across restarts.

    Ports: loomd and relays bind port 0 and print the port they got; start_loomd and
    start_relay read it from the log (no port is picked, closed and handed over, which
    another process could take in between). Until loomd has started, self.controller and
    self.api are None. netns.NetCluster sets fixed ports instead (its own namespaces)."""

    def __init__(self, loomd, agent, prefix="loom-e2e-", keep=False, keep_on_failure=False, request_timeout=10):
        self.loomd, self.agent = loomd, agent
        self.keep, self.keep_on_failure = keep, keep_on_failure
        self.request_timeout = request_timeout
        self.work = tempfile.mkdtemp(prefix=prefix)
        print("work dir", self.work, flush=True)
        self.fabric_port = self.api_port = 0  # 0 until loomd printed them (start_loomd)
        self.api = self.controller = None
        self.procs = {}
        self._output = {}  # name -> (log path, size before its latest start): printed_ports
        self.relays = {}  # name -> (endpoint, key name), see start_relay
        self._specs = {}
        self._logs = {}
        self.secure = False
        self.passed = False  # set by the test; with keep_on_failure, WORK stays unless it is

    # -- lifetime --
    def __enter__(self):
        self._old_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop_all()
        signal.signal(signal.SIGTERM, self._old_sigterm)
        failed = exc_type is not None or not self.passed
        if self.keep_on_failure and failed:
            print("logs kept in", self.work, flush=True)
        elif not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        return False

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def write(self, name, text):
        """Write WORK/name; its path."""
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def keygen(self, *names):
        """loomd keygen for each name into WORK/keys; from then on the fabric is Curve."""
        for name in names:
            subprocess.run([self.loomd, "keygen", "--out", self.path("keys"), "--name", name], check=True,
                           stdout=subprocess.DEVNULL, timeout=10)
        self.secure = True

    # -- processes --
    def spawn(self, name, argv, log=None, ready=None, env=None):
        """Start argv as `name`, output appended to WORK/<log or name>.log, with `env` added
        to the environment; then ready(), if any."""
        self._specs[name] = (list(argv), log or name, ready, env)
        logf = self._logs.get(log or name)
        if logf is None or logf.closed:
            logf = self._logs[log or name] = open(self.path((log or name) + ".log"), "a")
        self._output[name] = (logf.name, os.path.getsize(logf.name))
        p = subprocess.Popen(self.launch_prefix(name) + list(argv), stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env={**os.environ, **env} if env else None,
                             preexec_fn=_die_with_parent if _prctl else None)
        self.procs[name] = p
        _live.add(p)
        if ready:
            ready()
        return p

    def launch_prefix(self, name):
        """What goes before process `name`'s argv when it is started (and restarted): nothing
        here; netns.NetCluster runs each process inside its network namespace."""
        return []

    def printed_ports(self, name, labels, timeout=10):
        """{label: port} that process `name` printed since its latest start (printed_ports())."""
        log, offset = self._output[name]
        return printed_ports(log, offset, labels, timeout, proc=self.procs.get(name), what=name)

    def start_loomd(self, wait=True, extra=()):
        """loomd with its state in WORK/state.db, then `extra` options. The first start binds
        port 0 for the fabric and the API and reads the ports loomd prints (10 s); then
        self.controller, self.api, self.fabric_port and self.api_port name them. With `wait`,
        waits (10 s) until it serves /v1/health.

        A restart (restart(), respawn()) binds the ports the first start printed: agents and
        relays reconnect to the endpoint they were given, so loomd must come back on the same
        one. (In the moment between kill and restart another process could take the port;
        binding port 0 again cannot keep the agents' endpoint at all.)"""
        def argv():
            out = [self.loomd, "--state", self.path("state.db"),
                   "--agents", self.controller or "tcp://127.0.0.1:0", "--api", f"127.0.0.1:{self.api_port}"] + list(extra)
            return out + (["--key", self.path("keys/loomd.key"), "--allow", self.path("keys/agent.pub")]
                          if self.secure else ["--insecure"])
        ready = (lambda: wait_until(lambda: self.get("/v1/health") is not None, 10, "loomd serves its API")) if wait else None
        # The admin token, known before loomd's first start (WORK/admin.token, beside the
        # state: where loomd looks), for every request and loomctl of the test.
        self.token = admin_token(self.path("admin.token"))
        os.environ["LOOM_TOKEN"] = self.token
        if self.controller is not None:  # ports known (a start after the first, or NetCluster's)
            return self.spawn("loomd", argv(), ready=ready)
        p = self.spawn("loomd", argv())
        ports = self.printed_ports("loomd", ["loomd: agents-port", "loomd: api-port"])
        self.fabric_port, self.api_port = ports["loomd: agents-port"], ports["loomd: api-port"]
        self.controller = f"tcp://127.0.0.1:{self.fabric_port}"
        self.api = f"http://127.0.0.1:{self.api_port}"
        print(f"  loomd: agents on {self.controller}, API on {self.api}", flush=True)
        self._specs["loomd"] = (argv(), "loomd", ready, None)  # restarts: these ports
        if ready:
            ready()
        return p

    def _agent_argv(self, key, via=None):
        """An agent's connection options: to loomd, or to relay `via` (start_relay), or to
        each of the relays in the tuple `via` (a chassis's pair; they share one key)."""
        if via is None:
            if self.controller is None:
                raise Failure("an agent connects to loomd's fabric port: start loomd first")
            controller, server = self.controller, "loomd"
        else:
            names = via if isinstance(via, tuple) else (via,)
            controller, server = ",".join(self.relays[n][0] for n in names), self.relays[names[0]][1]
        argv = [self.agent, "--controller", controller]
        argv += (["--key", self.path(f"keys/{key}.key"), "--server-key", self.path(f"keys/{server}.pub")]
                 if self.secure else ["--insecure"])
        return argv

    def start_relay(self, name, key=None, listen=None):
        """loom-agent relay --name NAME on `listen` (default: loopback port 0, and the port it
        prints is read from its log, 10 s), as process relay-NAME, with key keys/KEY (default
        relay-NAME) and the agents' allow-list; agents started with via=NAME connect to it.
        Restarted (respawn), it binds the port it printed, where its agents reconnect."""
        if self.controller is None:
            raise Failure(f"relay {name} connects to loomd's fabric port: start loomd first")
        key = key or f"relay-{name}"
        def argv(endpoint):
            out = [self.agent, "relay", "--name", name, "--listen", endpoint, "--controller", self.controller]
            return out + (["--key", self.path(f"keys/{key}.key"), "--server-key", self.path("keys/loomd.pub"),
                           "--allow", self.path("keys/agent.pub")] if self.secure else ["--insecure"])
        if listen is not None:
            self.relays[name] = (listen, key)
            return self.spawn(f"relay-{name}", argv(listen))
        p = self.spawn(f"relay-{name}", argv("tcp://127.0.0.1:0"))
        port = self.printed_ports(f"relay-{name}", ["loom-agent: relay-port"])["loom-agent: relay-port"]
        listen = f"tcp://127.0.0.1:{port}"
        self.relays[name] = (listen, key)
        self._specs[f"relay-{name}"] = (argv(listen), f"relay-{name}", None, None)  # respawns: this port
        return p

    def sim_agent_argv(self, fabric_file, only=None, key="agent", via=None):
        """The command line of start_sim_agent (for a process something else starts: the
        machine of a simulated blade under a BMC, tests/e2e/bmc.py)."""
        os.makedirs(self.path("sim"), exist_ok=True)
        argv = self._agent_argv(key, via) + ["--simulate", fabric_file] + (["--only", only] if only else [])
        return argv + ["--journal", self.path("journal"), "--sim-state", self.path("sim")]

    def sim_power_off_argv(self, blade):
        """`loom-agent sim-power-off` for blade's state in WORK/sim, journaled in WORK/journal:
        what a power-off does to a simulated blade (its agent killed first)."""
        return [self.agent, "sim-power-off", "--sim-state", self.path("sim"), "--blade", blade,
                "--journal", self.path("journal")]

    def start_sim_agent(self, fabric_file, only=None, name=None, key="agent", via=None, extra=()):
        """loom-agent --simulate fabric_file [--only BLADE] EXTRA..., journal WORK/journal, state
        WORK/sim, through relay `via` if given. Named agent-BLADE with --only, else "agent"."""
        argv = self.sim_agent_argv(fabric_file, only, key, via) + list(extra)
        name = name or (f"agent-{only}" if only else "agent")
        return self.spawn(name, argv)

    def start_agent(self, blade, driver, *extra, name=None, log=None, key="agent", via=None):
        """loom-agent --driver DRIVER --blade BLADE EXTRA... (a real or the test driver),
        through relay `via` if given."""
        argv = self._agent_argv(key, via) + ["--driver", driver, "--blade", blade] + list(extra)
        return self.spawn(name or "agent", argv, log=log)

    def alive(self, name):
        return name in self.procs and self.procs[name].poll() is None

    def kill9(self, name):
        p = self.procs.pop(name)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        _live.discard(p)

    def respawn(self, name):
        """Start `name` again as it was first started (after kill9, or when it died)."""
        if self.alive(name):
            raise Failure(f"respawn {name}: it is still running")
        argv, log, ready, env = self._specs[name]
        return self.spawn(name, argv, log=log, ready=ready, env=env)

    def signal(self, name, sig):
        """Send `sig` (e.g. signal.SIGSTOP / SIGCONT) to process `name`."""
        self.procs[name].send_signal(sig)

    def restart(self, name, pause=0.0):
        """kill -9 `name`, wait `pause` s, start it again as before (loomd: and wait for its API)."""
        self.kill9(name)
        if pause:
            time.sleep(pause)
        argv, log, ready, env = self._specs[name]
        return self.spawn(name, argv, log=log, ready=ready, env=env)

    def stop_all(self):
        for p in list(self.procs.values()):
            _kill(p)
        self.procs.clear()
        for f in self._logs.values():
            f.close()

    def verdict(self, scenario, log_lines):
        """Run scenario(); PASS and 0, or FAIL (the Failure, then the tail of every log) and 1."""
        try:
            scenario()
        except Failure as e:
            print("FAIL:", e, flush=True)
            self.dump_logs(log_lines)
            return 1
        print("PASS", flush=True)
        self.passed = True
        return 0

    def dump_logs(self, lines):
        """The last `lines` lines of every log in WORK."""
        for name in sorted(os.listdir(self.work)):
            if name.endswith(".log"):
                print(f"---- {name} (tail)")
                with open(self.path(name)) as f:
                    print("".join(f.readlines()[-lines:]))

    # -- the HTTP API --
    def request(self, method, path, body=None):
        return http_request(self.api + path, method, body, timeout=self.request_timeout)

    def get(self, path):
        """Decoded JSON of a 200 answer (the text, for /metrics), else None."""
        status, body = self.request("GET", path)
        if status != 200:
            return None
        return body if path == "/metrics" else json.loads(body)

    def post(self, path, body=None):
        return http_post_json(self.api + path, body, timeout=self.request_timeout)

    def metric(self, name):
        text = self.get("/metrics")
        if text is None:
            raise Failure("GET /metrics did not answer 200")
        return metric(text, name)

    def online_blades(self):
        return [b for b in self.get("/v1/blades") if b["online"]]

    def events(self, since=0):
        """Every event after id `since` (paged), as loomd's /v1/events gives them."""
        out = []
        while True:
            page = self.get(f"/v1/events?since={since}&limit=1000")
            if not page:
                return out
            out += page
            since = page[-1]["id"]
