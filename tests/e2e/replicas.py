"""Controller replicas on etcd for the e2e tests (issue 16, DESIGN.md §7): a ReplicaCluster
is a loomharness.Cluster whose loomd are several replicas sharing a real etcd cluster
(Debian's etcd-server) on loopback.

  start_etcd(n)        n etcd members (processes etcd-1..n), short raft timings
  start_replicas(n)    n loomd --store etcd://... (processes loomd-1..n), each with a fixed
                       agents endpoint; self.controller lists all of them (agents follow
                       the leader), self.api is the leader's API (find_leader())
  find_leader()        the replica that says it leads (GET /v1/status), waited for
  status(name)         a replica's /v1/status, or None
  get_raw(name, path)  (status, headers, body) of a GET to one replica (a standby's answers
                       carry X-Loom-* headers: controller/README.md, "Replicas")

Ports: etcd members and the replicas' agents endpoints need ports known before anything
binds (a member's peers, an agent's list of replicas), so they are picked free on loopback
and handed over (a pick-then-close race, which port-0 binding avoids elsewhere; a clash
shows as a bind error in a log, not as a wrong result). The replicas' API ports are port 0,
read from their logs."""
import json, os, shutil, socket, subprocess, time, urllib.error, urllib.request
from loomharness import Cluster, Failure, admin_token, http_request, printed_ports, wait_until

def free_ports(n):
    """n distinct loopback ports free at the moment of asking."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports

# Raft timings of the test cluster: etcd's minimum lease TTL is 1.5 x the election
# timeout, so with 500 ms a leader's 1 s lease is granted as asked.
# The transaction limits are what loomd's etcd store needs (tools/etcd.sh, controller/README).
ETCD_TIMING = ["--heartbeat-interval", "50", "--election-timeout", "500",
               "--max-txn-ops", "1000000", "--max-request-bytes", "134217728"]

class ReplicaCluster(Cluster):
    def __init__(self, loomd, agent, prefix="loom-replicas-", **kw):
        super().__init__(loomd, agent, prefix=prefix, **kw)
        self.etcd_endpoints = []
        self.replicas = {}  # name -> {"agents": endpoint, "api": url or None}
        self.store_prefix = "/loom"

    def start_etcd(self, n=3, extra=()):
        etcd = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.path.exists(etcd):
            raise Failure("etcd is not installed (Debian's etcd-server: tools/install-deps.sh)")
        ports = free_ports(2 * n)
        client, peer = ports[:n], ports[n:]
        initial = ",".join(f"m{i + 1}=http://127.0.0.1:{peer[i]}" for i in range(n))
        for i in range(n):
            name = f"m{i + 1}"
            argv = [etcd, "--name", name, "--data-dir", self.path(f"etcd-{name}"),
                    "--listen-client-urls", f"http://127.0.0.1:{client[i]}",
                    "--advertise-client-urls", f"http://127.0.0.1:{client[i]}",
                    "--listen-peer-urls", f"http://127.0.0.1:{peer[i]}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer[i]}",
                    "--initial-cluster", initial, "--initial-cluster-token", os.path.basename(self.work),
                    "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"] + ETCD_TIMING + list(extra)
            self.spawn(f"etcd-{i + 1}", argv)
        self.etcd_endpoints = [f"127.0.0.1:{p}" for p in client]
        wait_until(lambda: all(self.etcd_healthy(e) for e in self.etcd_endpoints), 20,
                   f"etcd: {n} members healthy on {', '.join(self.etcd_endpoints)}")

    def etcd_healthy(self, endpoint):
        status, body = http_request(f"http://{endpoint}/health", timeout=2)
        return status == 200 and json.loads(body).get("health") == "true"

    def store_url(self, members=None):
        """etcd://... of every member, or of the members numbered in `members` (1-based)."""
        endpoints = self.etcd_endpoints if members is None else [self.etcd_endpoints[m - 1] for m in members]
        return "etcd://" + ",".join(endpoints) + self.store_prefix

    def start_replicas(self, n=3, extra=(), members=None, first_leads=False):
        """n replicas r1..rn; `members` maps a replica's name to the etcd members it is told
        of (default all). With first_leads, r1 is started and leads before the others start."""
        agents = free_ports(n)
        names = [f"r{i + 1}" for i in range(n)]
        for name, port in zip(names, agents):
            self.replicas[name] = {"agents": f"tcp://127.0.0.1:{port}", "api": None}
        # Agents and relays list every replica: the DEALER reaches whichever is bound.
        self.controller = ",".join(r["agents"] for r in self.replicas.values())
        for i, name in enumerate(names):
            self.start_replica(name, extra, (members or {}).get(name))
            if first_leads and i == 0:
                check_leader = self.find_leader()
                if check_leader != name:
                    raise Failure(f"{name} was started first but {check_leader} leads")
        self.find_leader()

    def start_replica(self, name, extra=(), members=None):
        r = self.replicas[name]
        api_port = int(r["api"].rsplit(":", 1)[1]) if r["api"] else 0
        # One admin token for the fabric, known before any replica starts: whichever leads
        # first stores its hash (--admin-token-file, the same on every replica).
        self.token = admin_token(self.path("admin.token"))
        os.environ["LOOM_TOKEN"] = self.token
        argv = [self.loomd, "--store", self.store_url(members), "--name", name, "--agents", r["agents"],
                "--api", f"127.0.0.1:{api_port}", "--admin-token-file", self.path("admin.token")] + list(extra)
        argv += (["--key", self.path("keys/loomd.key"), "--allow", self.path("keys/agent.pub")]
                 if self.secure else ["--insecure"])
        self.spawn(f"loomd-{name}", argv)
        if not r["api"]:
            port = self.printed_ports(f"loomd-{name}", ["loomd: api-port"])["loomd: api-port"]
            r["api"] = f"http://127.0.0.1:{port}"
            # Restarts (respawn) keep this API port, so loomctl's list stays right.
            spec = self._specs[f"loomd-{name}"]
            self._specs[f"loomd-{name}"] = ([a if a != "127.0.0.1:0" else f"127.0.0.1:{port}" for a in spec[0]],) + spec[1:]
            print(f"  {name}: agents on {r['agents']}, API on {r['api']}", flush=True)

    def status(self, name):
        try:
            status, body = http_request(self.replicas[name]["api"] + "/v1/status", timeout=2)
        except OSError:
            return None
        return json.loads(body) if status == 200 else None

    def leaders(self):
        """Names of the live replicas that say they lead."""
        out = []
        for name in self.replicas:
            if self.alive(f"loomd-{name}"):
                s = self.status(name)
                if s and s.get("role") == "leader":
                    out.append(name)
        return out

    def find_leader(self, timeout=15, exclude=()):
        """The one replica that leads (not one of `exclude`), once its API serves; self.api
        then points at it."""
        found = []
        def one():
            found[:] = [n for n in self.leaders() if n not in exclude]
            return len(found) == 1 and self.get_from(found[0], "/v1/blades") is not None
        wait_until(one, timeout, "one replica leads and serves /v1/blades" + (f" (not {', '.join(exclude)})" if exclude else ""),
                   interval=0.05)
        self.api = self.replicas[found[0]]["api"]
        return found[0]

    def get_from(self, name, path):
        try:
            status, body = http_request(self.replicas[name]["api"] + path, timeout=2)
        except OSError:
            return None
        return json.loads(body) if status == 200 else None

    def get_raw(self, name, path, timeout=2):
        """(status, headers with lower-case names, body text); (None, {}, None) when the
        replica does not answer in time."""
        try:
            req = urllib.request.Request(self.replicas[name]["api"] + path)
            if os.environ.get("LOOM_TOKEN"):
                req.add_header("Authorization", "Bearer " + os.environ["LOOM_TOKEN"])
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError):
            return None, {}, None

    def epoch(self, name):
        s = self.status(name)
        return s.get("epoch") if s else None
