"""Real network partitions for the end-to-end tests (issue 15): every process group in a
network namespace of its own, joined by veth pairs to a Linux bridge in a "switch"
namespace; partitions are nft drop rules on that bridge. Python 3 stdlib, iproute2's `ip`
and nftables' `nft`; must run as root.

                 switch namespace  loomt-PID-sw            (nft table bridge loomcut)
          +-------------------- br0 (Linux bridge) ---------------------+
          | p-loomd            | p-b1              | p-b2         ...   |
          | veth               | veth              | veth               |
   loomt-PID-loomd       loomt-PID-b1        loomt-PID-b2    ...
   eth0 10.77.X.1/24     eth0 10.77.X.2/24   eth0 10.77.X.3/24
   lo: loomd's API on 127.0.0.1:7780 (the test reaches it through setns, see call())

Nothing is added to the root namespace: every veth is created inside the switch
namespace with its peer moved straight into the node's namespace (`ip -n SW link add
p-N type veth peer name eth0 netns NS`), addresses and routes exist only in those
namespaces, and the only nft table is the switch namespace's. X is derived from the
test's pid; it only makes logs of parallel runs look different, because two runs never
share a bridge, so equal addresses could not collide anyway.

  TestNet(nodes)                 the network, as a context manager: built on enter
                                 (after removing leftovers of crashed runs), removed on
                                 exit, at exit, and on SIGTERM/SIGHUP/SIGINT
  net.call(node, fn, *args)      fn(*args) on a thread inside node's namespace: sockets it
                                 opens live there (the test's HTTP calls to loomd's API)
  net.cut(pairs, label)          replace the partition by `pairs` (one nft transaction),
                                 then prove it with probes; net.heal() = cut(())
  isolate / split / between      the pair sets of the usual partitions
  NetCluster(net, loomd, agent)  loomharness.Cluster whose loomd and agents run in their
                                 nodes' namespaces (`ip netns exec`)
  netns_unavailable()            why namespaces cannot be made here, or None
  skip_or_fail(reason)           exit 77 (ctest SKIP), or 1 with CI=true

A crash of the test (kill -9) leaves its namespaces (with the bridge, the veths and the
nft table inside them, all out of the root namespace); its processes die with it
(PR_SET_PDEATHSIG survives `ip netns exec`, which execs without forking). The next run
deletes every namespace named loomt-PID-* whose PID is no longer a running python
process, after killing -9 any process still inside one."""
import atexit, ctypes, errno, os, re, selectors, shutil, signal, socket, subprocess, sys, threading, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, Failure, http_post_json, http_request
import loomharness

PREFIX = "loomt-"
FABRIC_PORT, API_PORT = 7700, 7780   # loomd's, inside its own namespace (nothing else binds there)
PROBE_PORT = 9                       # nothing listens on it: a probe is answered by a RST, or dropped
PROBE_TIMEOUT = 0.8                  # a cut pair's SYN must go unanswered this long
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)

def _run(argv, input=None, timeout=20):
    """Run one command; Failure with its stderr when it fails."""
    try:
        r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failure(f"{' '.join(argv)}: {e}")
    if r.returncode != 0:
        raise Failure(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout

def list_netns():
    """Names of the named network namespaces (/run/netns)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]

def _owner_alive(pid):
    """Is `pid` a live python process other than this one (a test run still using its
    namespaces)? A dead pid, or one reused by another program, means a crashed run."""
    if pid == os.getpid():
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"python" in f.read()
    except OSError:
        return False

def _remove_ns(ns):
    """Kill -9 whatever still runs in namespace `ns` (a crashed run's processes), then delete
    it; its devices (veths, bridge) and nft tables go with it."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.05)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)

def remove_leftovers():
    """Delete the namespaces of crashed runs (loomt-PID-* with PID gone); their names."""
    gone = []
    for ns in list_netns():
        m = re.match(re.escape(PREFIX) + r"(\d+)-", ns)
        if m and not _owner_alive(int(m.group(1))):
            _remove_ns(ns)
            gone.append(ns)
    if gone:
        print(f"netns: removed {len(gone)} namespace(s) left by a crashed run: {' '.join(sorted(gone))}", flush=True)
    return gone

def netns_unavailable():
    """Why this test cannot make namespaces, veths and bridge nft rules here; None if it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"'{tool}' not found (Debian package {pkg}; tools/install-deps.sh installs it)"
    ns = f"{PREFIX}{os.getpid()}-check"
    try:
        _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1"])
        _run(["ip", "netns", "exec", ns, "nft", "-f", "-"],
             input="table bridge t {\n chain f {\n  type filter hook forward priority 0; policy accept;\n }\n}\n")
    except Failure as e:
        return f"cannot build a test network: {e}"
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    return None

def skip_or_fail(reason):
    """Namespaces cannot be made: fail with the reason on CI (CI=true), else skip (77)."""
    loomharness.skip_or_fail(reason, "the partition tests must run here: CI runs as root, and tools/install-deps.sh "
                                     "installs iproute2 and nftables")

# --- partitions as pair sets -----------------------------------------------------------------

def between(group_a, group_b):
    """Every pair (a, b), a in group_a, b in group_b: what a cut of A from B drops."""
    return {frozenset((a, b)) for a in group_a for b in group_b if a != b}

def isolate(node, nodes):
    """`node` cut from every other node."""
    return between([node], [n for n in nodes if n != node])

def split(*sides):
    """Each side cut from every other side (nodes of one side still talk)."""
    out = set()
    for i, a in enumerate(sides):
        for b in sides[i + 1:]:
            out |= between(a, b)
    return out

# --- the network -------------------------------------------------------------------------------

def _on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the context managers, which clean up

class TestNet:
    """The test network of `nodes` (names of 1..13 letters, digits, '-'): one namespace
    each, plus the switch. Use as a context manager."""

    def __init__(self, nodes):
        if len(set(nodes)) != len(nodes) or not 0 < len(nodes) <= 250:
            raise ValueError(f"TestNet: 1..250 distinct node names, got {nodes}")
        self.nodes = list(nodes)
        self.pid = os.getpid()
        self.prefix = f"{PREFIX}{self.pid}-"
        x = self.pid % 254 + 1
        self.subnet = f"10.77.{x}.0/24"
        self.addr = {n: f"10.77.{x}.{i + 1}" for i, n in enumerate(self.nodes)}
        self.ns = {n: self.prefix + n for n in self.nodes}
        self.port = {n: (f"p-{n}" if len(n) <= 13 else f"p{i}") for i, n in enumerate(self.nodes)}
        self.switch = self.prefix + "sw"
        self.current = set()      # the pairs cut now
        self.cuts = 0             # cuts applied (heals included)
        self.built = False
        self._old_handlers = {}

    # -- lifetime --
    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            self._old_handlers[sig] = signal.signal(sig, _on_signal)
        atexit.register(self.teardown)
        remove_leftovers()
        try:
            self.build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.teardown()
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        return False

    def build(self):
        t0 = time.monotonic()
        sw = self.switch
        _run(["ip", "netns", "add", sw])
        self.built = True
        _run(["ip", "-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0"])
        for n in self.nodes:
            _run(["ip", "netns", "add", self.ns[n]])
            # Created in the switch namespace, its peer moved straight into the node's: no
            # device ever exists in the root namespace.
            _run(["ip", "-n", sw, "link", "add", self.port[n], "type", "veth", "peer", "name", "eth0", "netns", self.ns[n]])
            _run(["ip", "-n", sw, "link", "set", self.port[n], "master", "br0", "up"])
            _run(["ip", "-n", self.ns[n], "-b", "-"],
                 input=f"addr add {self.addr[n]}/24 dev eth0\nlink set eth0 up\nlink set lo up\n")
        _run(["ip", "-n", sw, "link", "set", "br0", "up"])
        self._nft(set())
        print(f"netns: {len(self.nodes)} namespaces on bridge {sw}/br0, {self.subnet}, built in "
              f"{time.monotonic() - t0:.2f} s: " + " ".join(f"{n}={self.addr[n]}" for n in self.nodes), flush=True)
        self.verify(set(), "fresh network")

    def teardown(self):
        """Delete every namespace of this run (idempotent); processes still inside are killed."""
        if not self.built:
            return
        self.built = False
        for ns in [self.switch] + [self.ns[n] for n in self.nodes]:
            _remove_ns(ns)
        left = [ns for ns in list_netns() if ns.startswith(self.prefix)]
        if left:
            print(f"netns: could not delete {' '.join(left)}", flush=True)
        else:
            print("netns: network removed", flush=True)

    # -- processes and sockets in a node's namespace --
    def exec_prefix(self, node):
        """The argv prefix that runs a command in `node`'s namespace. `ip netns exec` execs
        the command in place (no fork): the pid Popen sees is the command's."""
        return ["ip", "netns", "exec", self.ns[node]]

    def call(self, node, fn, *args, **kwargs):
        """fn(*args, **kwargs) on a fresh thread that entered `node`'s network namespace
        (setns(2) changes only the calling thread): every socket it opens lives there, and
        stays usable from any thread afterwards. Its result, or its exception."""
        out = {}
        def run():
            try:
                fd = os.open(f"/run/netns/{self.ns[node]}", os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        e = ctypes.get_errno()
                        raise OSError(e, f"setns into {self.ns[node]}: {os.strerror(e)}")
                finally:
                    os.close(fd)
                out["value"] = fn(*args, **kwargs)
            except BaseException as e:  # handed to the caller
                out["error"] = e
        t = threading.Thread(target=run, name=f"netns-{node}", daemon=True)
        t.start()
        t.join()
        if "error" in out:
            raise out["error"]
        return out["value"]

    # -- partitions --
    def _nft(self, pairs):
        """Make `pairs` the set of cut links, in one nft transaction: the table is created
        (if missing), deleted and written again with its set, so no frame ever sees half
        of a cut. Bridge-family rules on the switch: a frame from port A to port B is
        dropped when {A, B} is cut (both directions)."""
        elems = sorted(f'"{self.port[a]}" . "{self.port[b]}"' for p in pairs for a, b in (tuple(p), tuple(p)[::-1]))
        elements = f"\n    elements = {{ {', '.join(elems)} }}" if elems else ""
        text = ("table bridge loomcut\ndelete table bridge loomcut\n"
                "table bridge loomcut {\n"
                f"  set cut {{\n    type ifname . ifname{elements}\n  }}\n"
                "  chain forward {\n    type filter hook forward priority 0; policy accept;\n"
                "    iifname . oifname @cut counter drop\n  }\n}\n")
        _run(["ip", "netns", "exec", self.switch, "nft", "-f", "-"], input=text)

    def cut(self, pairs, label=""):
        """Cut exactly `pairs` (a set of frozenset({a, b}) of node names; everything else
        heals), atomically, then verify it: each cut pair drops in both directions, every
        other pair connects. The wall-clock ms at which the rules took effect (the clock of
        the journal and of loomd's events)."""
        pairs = {frozenset(p) for p in pairs}
        bad = [p for p in pairs if len(p) != 2 or not p <= set(self.nodes)]
        if bad:
            raise ValueError(f"cut: not a pair of nodes of this network: {bad}")
        before = self.dropped() if self.current else None
        self._nft(pairs)
        t = int(time.time() * 1000)
        if before is not None:
            print(f"netns: the cut before '{label}' dropped {before} frame(s)", flush=True)
        self.current = pairs
        self.cuts += 1
        self.verify(pairs, label)
        return t

    def heal(self, label="heal"):
        return self.cut(set(), label)

    def probe(self, pairs_to_try, timeout=PROBE_TIMEOUT):
        """{(src, dst): True if a TCP connect from src's namespace to dst's address was
        answered (accepted or refused: the SYN and the answer crossed the switch), False if
        it was dropped (no answer within `timeout`, or host unreachable after ARP failed)}.
        Every connect runs at once; the whole probe takes at most `timeout`."""
        by_src = {}
        for src, dst in pairs_to_try:
            by_src.setdefault(src, []).append(dst)
        result, pending = {}, {}
        sel = selectors.DefaultSelector()
        def connect_all(dsts):
            out = []
            for dst in dsts:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                out.append((dst, s, s.connect_ex((self.addr[dst], PROBE_PORT))))
            return out
        try:
            for src, dsts in by_src.items():
                for dst, s, rc in self.call(src, connect_all, dsts):
                    if rc == errno.EINPROGRESS:
                        pending[s] = (src, dst)
                        sel.register(s, selectors.EVENT_WRITE)
                    else:
                        result[(src, dst)] = rc in (0, errno.ECONNREFUSED)
                        s.close()
            deadline = time.monotonic() + timeout
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
                    s = key.fileobj
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    result[pending.pop(s)] = err in (0, errno.ECONNREFUSED)
                    sel.unregister(s)
                    s.close()
            for s, pair in pending.items():
                result[pair] = False
        finally:
            for s in pending:
                s.close()
            sel.close()
        return result

    def verify(self, pairs, label=""):
        """Failure unless every ordered pair of nodes in `pairs` drops and every other
        connects. A pair that should connect gets three tries (ARP may still be settling
        after a heal); one that should drop must drop on the first."""
        t0 = time.monotonic()
        cut = {(a, b) for p in pairs for a, b in (tuple(p), tuple(p)[::-1])}
        every = [(a, b) for a in self.nodes for b in self.nodes if a != b]
        res = self.probe(every)
        leaks = sorted(f"{a}->{b}" for (a, b) in cut if res[(a, b)])
        if leaks:
            raise Failure(f"netns: cut '{label}' does not drop: {', '.join(leaks)} connected")
        todo = [pair for pair in every if pair not in cut and not res[pair]]
        for _ in range(2):
            if not todo:
                break
            again = self.probe(todo)
            todo = [pair for pair in todo if not again[pair]]
        if todo:
            raise Failure(f"netns: after cut '{label}', {len(todo)} pair(s) that should connect do not: "
                          + ", ".join(f"{a}->{b}" for a, b in sorted(todo)[:20]))
        print(f"netns: '{label}' verified in {time.monotonic() - t0:.2f} s: {len(cut)} directed pair(s) drop, "
              f"{len(every) - len(cut)} connect", flush=True)

    def dropped(self):
        """Frames the cut has dropped so far (the rule's counter)."""
        out = subprocess.run(["ip", "netns", "exec", self.switch, "nft", "list", "table", "bridge", "loomcut"],
                             capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"counter packets (\d+)", out)
        return int(m.group(1)) if m else 0

# --- loomd and agents inside the network ----------------------------------------------------

def peer_args(blade, address, enabled):
    """The agent options of the peer channel (docs/FENCING.md: `--peer-listen`, peers reached
    blade to blade over the test network). The one place the partition tests and the chaos
    run add them; `enabled` comes from their --peer-channel flag."""
    return ["--peer-listen", f"tcp://{address}:7710"] if enabled else []

class NetCluster(Cluster):
    """loomharness.Cluster inside a TestNet: loomd runs in node "loomd" (fabric endpoint
    tcp://ADDR:7700 on its veth, API on 127.0.0.1:7780 of its own namespace, which the
    test reaches through TestNet.call), agent-BLADE in node BLADE, relay-NAME in node
    "relay-NAME". `agent_extra(blade, address)` gives extra options per agent."""

    def __init__(self, net, loomd, agent, agent_extra=None, **kw):
        super().__init__(loomd, agent, **kw)
        self.net = net
        self.fabric_port, self.api_port = FABRIC_PORT, API_PORT
        self.controller = f"tcp://{net.addr['loomd']}:{FABRIC_PORT}"
        self.api = f"http://127.0.0.1:{API_PORT}"
        self.agent_extra = agent_extra or (lambda blade, address: [])

    def node_of(self, name):
        for node in (name, name[len("agent-"):] if name.startswith("agent-") else None):
            if node in self.net.addr:
                return node
        raise Failure(f"NetCluster: process '{name}' has no node in the test network")

    def launch_prefix(self, name):
        return self.net.exec_prefix(self.node_of(name))

    def start_relay(self, name, key=None, listen=None):
        """A fabric relay in node relay-NAME, listening on its veth address (port 7701)."""
        return super().start_relay(name, key=key, listen=listen or f"tcp://{self.net.addr[f'relay-{name}']}:7701")

    def start_sim_agent(self, fabric_file, only=None, name=None, key="agent", via=None, extra=()):
        """One blade's agent (--only BLADE) in node BLADE, with agent_extra's options."""
        if only is None or "," in only:
            raise Failure("NetCluster: one blade per agent process (--only BLADE), each in its namespace")
        return super().start_sim_agent(fabric_file, only=only, name=name, key=key, via=via,
                                       extra=list(self.agent_extra(only, self.net.addr[only])) + list(extra))

    def request(self, method, path, body=None):
        return self.net.call("loomd", http_request, self.api + path, method, body, timeout=self.request_timeout)

    def post(self, path, body=None):
        return self.net.call("loomd", http_post_json, self.api + path, body, timeout=self.request_timeout)
