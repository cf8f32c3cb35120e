#!/usr/bin/env python3
"""Fabric benchmark (DESIGN.md section 6), not a test: real loomd + `loom-agent
--simulate` processes on loopback (port 0: the ports loomd and the relays print; --insecure, fresh state dir), N simulated
blades in 20 chassis, M servers in 20 pools. With --relays every chassis's agents connect
to a fabric relay of their own (`loom-agent relay`, 20 of them) instead of to loomd; with
--relay-pairs to both relays of a pair per chassis (40).
Each run measures:
  apply_10k_s     POST /v1/apply of 10,000 servers (parse, validate, plan, persist)
  cpu_pct, rss_mb loomd steady state with N blades heartbeating at 1/s and all M servers
                  applied and converged (CPU over --measure seconds from /proc/PID/stat)
  agents_cpu_pct  the simulating agents' CPU over the same window (they share the cores)
  relays_cpu_pct, relays_rss_mb  the relays' CPU over that window and RSS, summed (--relays)
  restart_s       kill -9 loomd, exec again -> /v1/health answers (state recovered first)
  ready_s, store_s, recovery_s  loomd's own account of that restart (its log): serving
                  this long after its start, of which opening the store and recovering
  unregistered    blades not online when the steady-state window starts
  blades_get_s    GET /v1/blades (median of 5), during the steady state
  blade_list_s    `loomctl blade list` (median of 5), with --loomctl
  rss_soak_mb     RSS after --soak more seconds of heartbeats (ZeroMQ's per-connection
                  queues are touched page by page over minutes), with --soak
  self_fenced     agents that fenced themselves in the 15 s after the restart
  pair_loss_self_fenced, pair_loss_online  with --relay-pairs, before the restart: one
                  relay of every pair killed, then 15 s later the agents that fenced
                  themselves and the blades online (the restart follows with one relay each)
Prints every run and the medians. Every wait is bounded; all processes are killed and
the work dir removed at the end.
Usage: fabric_bench.py --loomd PATH --agent PATH [--loomctl PATH] [--blades 10000 --servers 100000
                       --runs 3 --soak 0 --lease-ms MS --recovery-nice N --relays|--relay-pairs]"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
import urllib.error, urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from loomharness import admin_token, printed_ports  # noqa: E402  (the lines "loomd: api-port N" ...; the admin token)

POOLS = 20
# loomd's line once it serves (controller/main.cpp).
READY = re.compile(r"ready ([0-9.]+) s after start: store opened in ([0-9.]+) s, recovered in ([0-9.]+) s")

def fabric_yaml(n):
    lines = ["blades:"]
    for i in range(n):
        lines.append(f"  - {{name: b{i:05d}, chassis: c{i % POOLS:02d}, slot: {i // POOLS}, cores: 64, memory: 256GiB, hypervisor: [kvm]}}")
    return "\n".join(lines) + "\n"

def base_yaml():
    docs = ["kind: Partition\nname: bench",
            "kind: Network\nname: net\npartition: bench",
            "kind: IdentityPool\nname: default\nmacs: 52:54:00:00:00:00-52:54:00:ff:ff:ff\n"
            "uuids: 4c4f4f4d-0000-0000-0000-000000000000/20"]
    for p in range(POOLS):
        docs.append(f"kind: Pool\nname: p{p:02d}\npartition: bench\nhypervisor: kvm\n"
                    f"blades: {{match: {{chassis: c{p:02d}}}}}\nspares: 1")
    return "\n---\n".join(docs) + "\n"

def servers_yaml(prefix, count, per_template=100):
    """`count` servers as templates of `per_template` replicas, spread over the pools,
    mixed sizes, a quarter in anti-affinity groups."""
    docs = []
    t = 0
    while count > 0:
        n = min(per_template, count)
        size = t % 4
        doc = (f"kind: Server\nname: {prefix}{t:04d}\nreplicas: {n}\npartition: bench\npool: p{t % POOLS:02d}\n"
               f"vcpus: {1 + size}\nmemory: {512 * (1 + size)}MiB\nnics: [{{network: net}}]\npower: on")
        if t % 4 == 0:
            doc += f"\nanti_affinity: g{t}"
        docs.append(doc)
        count -= n
        t += 1
    return "\n---\n".join(docs) + "\n"

class Bench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.procs = {}
        self.fabric_port = self.api_port = 0  # until loomd printed them (read_loomd_ports)
        self.api = None

    def request(self, method, path, body=None, timeout=120):
        req = urllib.request.Request(self.api + path, data=body.encode() if body is not None else None, method=method)
        if os.environ.get("LOOM_TOKEN"):
            req.add_header("Authorization", "Bearer " + os.environ["LOOM_TOKEN"])
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            return None, None

    def metrics(self):
        status, body = self.request("GET", "/metrics")
        out = {}
        for line in (body or "").splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def wait(self, pred, seconds, what, interval=0.5):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if pred():
                return time.monotonic()
            time.sleep(interval)
        raise RuntimeError(f"timed out after {seconds} s: {what}")

    def loomd_ports(self):
        """loomd's --agents and --api: port 0 on its first start, whose printed ports
        read_loomd_ports takes; on a restart the same ports, where the agents reconnect."""
        return ["--agents", f"tcp://127.0.0.1:{self.fabric_port}", "--api", f"127.0.0.1:{self.api_port}"]

    def read_loomd_ports(self, log_path, offset, timeout=120):
        """After loomd's first start: the ports it printed (its log after `offset`)."""
        if self.fabric_port:
            return
        ports = printed_ports(log_path, offset, ["loomd: agents-port", "loomd: api-port"], timeout,
                              proc=self.procs["loomd"], what="loomd")
        self.fabric_port, self.api_port = ports["loomd: agents-port"], ports["loomd: api-port"]
        self.api = f"http://127.0.0.1:{self.api_port}"

    def admin_token(self):
        """The admin token loomd takes on its first start (WORK/admin.token, beside its state),
        in $LOOM_TOKEN for this bench's requests and the loomctl it runs."""
        os.environ["LOOM_TOKEN"] = admin_token(os.path.join(self.work, "admin.token"))

    def start_loomd(self):
        self.admin_token()
        path = os.path.join(self.work, "loomd.log")
        log = open(path, "a")
        offset = os.path.getsize(path)
        t0 = time.monotonic()
        self.procs["loomd"] = subprocess.Popen(
            [self.args.loomd, "--state", os.path.join(self.work, "state.db"), "--insecure"] + self.loomd_ports()
            + (["--lease-ms", str(self.args.lease_ms)] if getattr(self.args, "lease_ms", None) else [])
            + (["--recovery-nice", str(self.args.recovery_nice)] if getattr(self.args, "recovery_nice", None) is not None else []),
            stdout=log, stderr=subprocess.STDOUT)
        self.read_loomd_ports(path, offset)
        # Polled every 50 ms: the restart is measured to a twentieth of a second.
        t1 = self.wait(lambda: self.request("GET", "/v1/health", timeout=2)[0] == 200, 120, "loomd serving", interval=0.05)
        return t1 - t0

    def start_relays(self, per_chassis=1):
        """`per_chassis` relays per chassis, each on port 0; returns (chassis, endpoint) pairs,
        one per relay, with the port it printed."""
        started = []
        for c in range(POOLS):
            for r in range(per_chassis):
                name = f"c{c:02d}" + "ab"[r] * (per_chassis > 1)
                path = os.path.join(self.work, f"relay-{name}.log")
                log = open(path, "a")
                started.append((c, f"relay-{name}", path, os.path.getsize(path)))
                self.procs[f"relay-{name}"] = subprocess.Popen(
                    [self.args.agent, "relay", "--name", name, "--listen", "tcp://127.0.0.1:0", "--insecure",
                     "--controller", f"tcp://127.0.0.1:{self.fabric_port}", "--log-level", "warn"],
                    stdout=log, stderr=subprocess.STDOUT)
        endpoints = []
        for c, name, path, offset in started:
            port = printed_ports(path, offset, ["loom-agent: relay-port"], 30, proc=self.procs[name], what=name)
            endpoints.append((c, f"tcp://127.0.0.1:{port['loom-agent: relay-port']}"))
        return endpoints

    def start_agent(self):
        # One process holds up to 5,000 blades: each costs two file descriptors and a
        # hard limit of 20,000 (common in containers) cannot hold 10,000 in one. With
        # relays, each blade connects to its chassis's relay (--relay CHASSIS=ENDPOINT).
        names = [f"b{i:05d}" for i in range(self.args.blades)]
        via = []
        if getattr(self.args, "relays", False) or getattr(self.args, "relay_pairs", False):
            for c, endpoint in self.start_relays(2 if getattr(self.args, "relay_pairs", False) else 1):
                via += ["--relay", f"c{c:02d}={endpoint}"]
        for k in range(0, len(names), 5000):
            log = open(os.path.join(self.work, f"agent{k // 5000}.log"), "a")
            self.procs[f"agent{k // 5000}"] = subprocess.Popen(
                [self.args.agent, "--controller", f"tcp://127.0.0.1:{self.fabric_port}", "--insecure",
                 "--simulate", os.path.join(self.work, "fabric.yaml"), "--only", ",".join(names[k:k + 5000]),
                 "--log-level", "warn"] + via,
                stdout=log, stderr=subprocess.STDOUT)

    def cpu_seconds(self, pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self, pid):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0

    def finish(self, keep):
        """Kills every process; removes the work dir unless `keep`."""
        self.stop_all()
        if keep:
            print("kept", self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        self.procs.clear()

def online(bench):
    # From /metrics, not /v1/blades: listing 10,000 blades ten times a second would be
    # the load being measured.
    m = bench.metrics()
    return int(sum(m.get(f'loom_blades{{state="{s}"}}', 0) for s in ("available", "active", "spare")))

def median_time(action, n=5):
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        action()
        times.append(time.monotonic() - t0)
    return statistics.median(times)

def self_fenced(work):
    """Self-fence lines ("lease not renewed") in the agents' logs so far."""
    count = 0
    for name in os.listdir(work):
        if name.startswith("agent") and name.endswith(".log"):
            with open(os.path.join(work, name), errors="replace") as f:
                count += sum("lease not renewed" in line for line in f)
    return count

def one_run(args, run):
    work = tempfile.mkdtemp(prefix="loom-bench-")
    b = Bench(args, work)
    result = {}
    try:
        with open(os.path.join(work, "fabric.yaml"), "w") as f:
            f.write(fabric_yaml(args.blades))
        b.start_loomd()
        b.start_agent()
        try:
            b.wait(lambda: online(b) >= args.blades, args.register_timeout, "all blades online")
        except RuntimeError:
            pass
        print(f"  {online(b)} blades online", flush=True)
        if online(b) == 0:
            raise RuntimeError(f"no blade registered; see the logs in {work} (--keep)")
        status, body = b.request("POST", "/v1/apply?source=base.yaml", base_yaml())
        assert status == 200, body[:500]
        # apply of 10,000 servers
        ten_k = servers_yaml("a", min(10000, args.servers))
        t0 = time.monotonic()
        status, body = b.request("POST", "/v1/apply?source=10k.yaml", ten_k, timeout=300)
        result["apply_10k_s"] = time.monotonic() - t0
        assert status == 200, (body or "")[:500]
        if args.servers > 10000:
            status, body = b.request("POST", "/v1/apply?source=rest.yaml", servers_yaml("r", args.servers - 10000), timeout=600)
            assert status == 200, (body or "")[:500]
        print(f"  applied; apply of 10k took {result['apply_10k_s']:.2f} s", flush=True)
        # converge: every operation answered
        def converged():
            m = b.metrics()
            return m.get("loom_operations_pending", 1) == 0 and \
                m.get('loom_servers{state="running"}', 0) + m.get('loom_servers{state="unplaceable"}', 0) >= args.servers
        b.wait(converged, args.converge_timeout, "servers running")
        result["unplaceable"] = int(b.metrics().get('loom_servers{state="unplaceable"}', 0))
        print("  converged", flush=True)
        time.sleep(args.settle)
        result["unregistered"] = args.blades - online(b)
        pid = b.procs["loomd"].pid
        agents = [p.pid for name, p in b.procs.items() if name.startswith("agent")]
        relays = [p.pid for name, p in b.procs.items() if name.startswith("relay")]
        c0, a0, r0, t0 = b.cpu_seconds(pid), sum(map(b.cpu_seconds, agents)), sum(map(b.cpu_seconds, relays)), time.monotonic()
        hb0 = b.metrics().get("loom_heartbeats_total", 0)
        time.sleep(args.measure)
        c1, a1, r1, t1 = b.cpu_seconds(pid), sum(map(b.cpu_seconds, agents)), sum(map(b.cpu_seconds, relays)), time.monotonic()
        hb1 = b.metrics().get("loom_heartbeats_total", 0)
        result["cpu_pct"] = 100 * (c1 - c0) / (t1 - t0)
        result["agents_cpu_pct"] = 100 * (a1 - a0) / (t1 - t0)
        if relays:
            result["relays_cpu_pct"] = 100 * (r1 - r0) / (t1 - t0)
            result["relays_rss_mb"] = sum(map(b.rss_mb, relays))
        result["rss_mb"] = b.rss_mb(pid)
        result["heartbeats_per_s"] = (hb1 - hb0) / (t1 - t0)
        result["blades_get_s"] = median_time(lambda: b.request("GET", "/v1/blades"))
        if args.loomctl:
            result["blade_list_s"] = median_time(lambda: subprocess.run(
                [args.loomctl, "--controller", b.api, "blade", "list"], stdout=subprocess.DEVNULL, check=True, timeout=60))
        if args.soak > 0:
            time.sleep(args.soak)
            result["rss_soak_mb"] = b.rss_mb(pid)
        if args.relay_pairs:
            # One relay of every pair dies: the agents go on through the other.
            fenced_before = self_fenced(work)
            for name in [n for n in b.procs if n.startswith("relay-") and n.endswith("a")]:
                b.procs[name].send_signal(signal.SIGKILL)
                b.procs.pop(name).wait(timeout=10)
            time.sleep(15)
            result["pair_loss_self_fenced"] = self_fenced(work) - fenced_before
            status, body = b.request("GET", "/v1/blades?fields=online")
            result["pair_loss_online"] = sum(bl["online"] for bl in json.loads(body)) if status == 200 else 0
        # restart with everything in the store
        b.procs["loomd"].send_signal(signal.SIGKILL)
        b.procs.pop("loomd").wait(timeout=10)
        fenced_before = self_fenced(work)
        result["restart_s"] = b.start_loomd()
        time.sleep(15)
        result["self_fenced"] = self_fenced(work) - fenced_before
        with open(os.path.join(work, "loomd.log"), errors="replace") as f:
            ready = [m for m in map(READY.search, f) if m]
        if ready:
            result["ready_s"], result["store_s"], result["recovery_s"] = map(float, ready[-1].groups())
        print(f"run {run}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()), flush=True)
        return result
    finally:
        b.finish(args.keep)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loomd", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--blades", type=int, default=10000)
    ap.add_argument("--servers", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--measure", type=float, default=30)
    ap.add_argument("--register-timeout", type=float, default=120)
    ap.add_argument("--converge-timeout", type=float, default=600)
    ap.add_argument("--loomctl", help="time `loomctl blade list` too")
    ap.add_argument("--soak", type=float, default=0, help="seconds more before a second RSS reading")
    ap.add_argument("--lease-ms", type=int, help="loomd's --lease-ms (default: loomd's own)")
    ap.add_argument("--recovery-nice", type=int, help="loomd's --recovery-nice (default: loomd's own)")
    ap.add_argument("--relays", action="store_true", help="agents connect through a relay per chassis (20)")
    ap.add_argument("--relay-pairs", action="store_true", help="agents connect through a pair of relays per chassis (40)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    results = [one_run(args, i + 1) for i in range(args.runs)]
    print(f"median of {len(results)} runs ({args.blades} blades, {args.servers} servers):")
    for k in results[0]:
        print(f"  {k}: {statistics.median(r[k] for r in results):.3f}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
