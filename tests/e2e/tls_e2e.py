#!/usr/bin/env python3
"""End-to-end: loomd's API over TLS (--api-tls-cert/--api-tls-key) and loomctl verifying it
(--ca, LOOM_CA), with the self-signed pair `loomd keygen --tls` makes for a lab.

Scenarios (one ctest case each, --scenario NAME):
  works        loomctl over https lists the blades and applies servers that then run; the
               CA from LOOM_CA; a replica list "https://dead,https://live" finds the live one
  wrong-ca     another CA (and none: the system's) is refused, naming the CA file; exit 1
  wrong-name   a URL host the certificate does not name is refused, naming what it names
  plain-http   plain HTTP to the TLS port gets one plain 400 that says to use https://, a
               client that never speaks is cut off by the handshake timeout, and loomd
               goes on serving
  bad-pair     loomd with a key of another pair stops at once, exit 1, naming both files
  replicas     two replicas on etcd serving HTTPS: the standby names the leader by its
               https:// URL, and loomctl given the standby alone reaches the leader

Usage: tls_e2e.py --loomd PATH --agent PATH --loomctl PATH [--scenario NAME] [--keep]"""
import json, os, socket, ssl, stat, subprocess, sys, time, urllib.request
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, Failure, arg_parser, check, refused_port, run_scenarios, wait_until
from replicas import ReplicaCluster, free_ports

FABRIC = """
blades:
  - {name: t1, chassis: c1, slot: 1, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: t2, chassis: c1, slot: 2, cores: 8, memory: 16GiB, hypervisor: [kvm]}
"""

DECLS = """
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
macs: 52:54:00:70:00:00-52:54:00:70:ff:ff
uuids: 4c4f4f4d-0000-0000-0070-000000000000/16
---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {names: [t1, t2]}
---
kind: Server
name: web
replicas: 2
partition: prod
pool: web
vcpus: 2
memory: 2GiB
nics: [{network: front}]
disks: [{image: /var/lib/loom/images/web.qcow2}]
power: on
"""

HOST = "lab1"  # the certificate's DNS name; its other name is IP:127.0.0.1

def keygen_tls(fab, name, out):
    r = subprocess.run([fab.loomd, "keygen", "--tls", "--name", name, "--out", out], capture_output=True, text=True,
                       timeout=10)
    check(r.returncode == 0, f"loomd keygen --tls --name {name}", r.stdout + r.stderr)
    cert, key = os.path.join(out, f"{name}.tls.crt"), os.path.join(out, f"{name}.tls.key")
    check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, f"{name}'s TLS key is written 0600")
    return cert, key

def start_tls_loomd(fab):
    """loomd serving HTTPS with a fresh lab pair; (https URL, CA file)."""
    cert, key = keygen_tls(fab, HOST, fab.path("tls"))
    fab.start_loomd(wait=False, extra=["--api-tls-cert", cert, "--api-tls-key", key])
    url = f"https://127.0.0.1:{fab.api_port}"
    context = ssl.create_default_context(cafile=cert)
    def healthy():
        with urllib.request.urlopen(url + "/v1/health", timeout=5, context=context) as r:
            return r.status == 200
    wait_until(healthy, 10, "loomd answers /v1/health over https (Python's ssl, the lab CA)")
    return url, cert

def loomctl(fab, *args, env=None, timeout=60):
    r = subprocess.run([fab.args.loomctl, *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    return r.returncode, r.stdout, r.stderr

def works(fab):
    url, ca = start_tls_loomd(fab)
    fabric = fab.write("fabric.yaml", FABRIC)
    for b in ("t1", "t2"):
        fab.start_sim_agent(fabric, only=b)
    def blades():
        rc, out, _ = loomctl(fab, "--controller", url, "--ca", ca, "blade", "list", "-o", "json")
        return rc == 0 and sorted(b["name"] for b in json.loads(out) if b["online"]) == ["t1", "t2"]
    wait_until(blades, 20, "loomctl --ca over https: blade list shows t1 and t2 online")
    decls = fab.write("decls.yaml", DECLS)
    rc, out, err = loomctl(fab, "--controller", url, "--ca", ca, "apply", "--yes", "--timeout", "60", "-f", decls,
                           timeout=90)
    check(rc == 0, "loomctl apply over https: exit 0 once the servers run", out + err)
    rc, out, err = loomctl(fab, "--controller", url, "server", "list", "-o", "json", env={"LOOM_CA": ca})
    running = sorted(s["name"] for s in json.loads(out) if s.get("state") == "running") if rc == 0 else []
    check(running == ["web-0", "web-1"], f"LOOM_CA: server list over https shows both servers running ({running})",
          out + err)
    dead = f"https://127.0.0.1:{refused_port()}"
    rc, out, err = loomctl(fab, "--controller", f"{dead},{url}", "--ca", ca, "blade", "list", "-o", "json")
    check(rc == 0 and len(json.loads(out)) == 2, "a replica list of https URLs: the one that answers is used",
          out + err)

def wrong_ca(fab):
    url, _ = start_tls_loomd(fab)
    other, _ = keygen_tls(fab, "elsewhere", fab.path("other"))
    rc, out, err = loomctl(fab, "--controller", url, "--ca", other, "blade", "list")
    check(rc != 0 and out == "", f"another CA: loomctl exits {rc}, prints nothing on stdout")
    check(f"is not signed by the CA in '{other}' (--ca, LOOM_CA)" in err and f"at {url}" in err,
          "... and says which controller and which CA file", err)
    rc, out, err = loomctl(fab, "--controller", url, "blade", "list")
    check(rc != 0 and "is not signed by any CA this system trusts (give loomd's CA with --ca FILE)" in err,
          f"no CA given: refused against the system's CAs, exit {rc}", err)
    rc, out, err = loomctl(fab, "--controller", url, "--ca", fab.path("no-such.crt"), "blade", "list")
    check(rc != 0 and "cannot read the CA file" in err and "no-such.crt" in err, "a CA file that is not there", err)

def wrong_name(fab):
    url, ca = start_tls_loomd(fab)
    other_host = url.replace("127.0.0.1", "localhost")
    rc, out, err = loomctl(fab, "--controller", other_host, "--ca", ca, "blade", "list")
    check(rc != 0 and out == "", f"a host the certificate does not name: exit {rc}")
    check(f"its TLS certificate is not for 'localhost' (it names DNS:{HOST}, IP:127.0.0.1)" in err,
          "... saying the name asked for and the names the certificate holds", err)

def plain_http(fab):
    url, ca = start_tls_loomd(fab)
    plain = f"http://127.0.0.1:{fab.api_port}"
    rc, out, err = loomctl(fab, "--controller", plain, "blade", "list")
    check(rc != 0 and "this loomd API speaks HTTPS only: use an https:// URL" in err,
          f"loomctl with http:// to the TLS port: exit {rc}, told to use https://", err)
    status, body = None, ""
    try:
        urllib.request.urlopen(plain + "/v1/blades", timeout=5)
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode()
    check(status == 400 and "HTTPS only" in body, f"plain HTTP client: one plain 400 ({status})", body)
    s = socket.create_connection(("127.0.0.1", fab.api_port))
    s.settimeout(30)
    t0 = time.monotonic()
    got = s.recv(100)
    waited = time.monotonic() - t0
    s.close()
    check(got == b"" and waited < 15, f"a client that connects and says nothing is cut off after {waited:.1f} s "
          "(the 10 s handshake timeout)")
    rc, out, err = loomctl(fab, "--controller", url, "--ca", ca, "blade", "list", "-o", "json")
    check(rc == 0 and json.loads(out) == [], "loomd goes on serving https afterwards", out + err)

def bad_pair(fab):
    cert, _ = keygen_tls(fab, HOST, fab.path("tls"))
    _, other_key = keygen_tls(fab, "elsewhere", fab.path("other"))
    t0 = time.monotonic()
    r = subprocess.run([fab.loomd, "--insecure", "--state", fab.path("state.db"), "--agents", "tcp://127.0.0.1:0",
                        "--api", "127.0.0.1:0", "--api-tls-cert", cert, "--api-tls-key", other_key],
                       capture_output=True, text=True, timeout=20)
    took = time.monotonic() - t0
    expected = f"loomd: TLS key (--api-tls-key) '{other_key}': does not match the certificate in '{cert}'"
    check(r.returncode == 1 and expected in r.stderr and took < 5,
          f"loomd with another pair's key: exit {r.returncode} in {took:.2f} s, naming both files", r.stderr)
    check("api-port" not in r.stdout and not os.path.exists(fab.path("state.db")),
          "... before it listened or opened its store")

def replicas(fab):
    cert, key = keygen_tls(fab, HOST, fab.path("tls"))
    fab.start_etcd(1)
    context = ssl.create_default_context(cafile=cert)
    def status(name):
        req = urllib.request.Request(f"https://127.0.0.1:{ports[name]}/v1/status",
                                     headers={"Authorization": "Bearer " + fab.token})
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            return json.loads(r.read())
    ports = {}
    for name, agents in zip(("r1", "r2"), free_ports(2)):
        fab.replicas[name] = {"agents": f"tcp://127.0.0.1:{agents}", "api": None}
        fab.start_replica(name, extra=["--api-tls-cert", cert, "--api-tls-key", key])
        ports[name] = int(fab.replicas[name]["api"].rsplit(":", 1)[1])
        if name == "r1":
            wait_until(lambda: status("r1").get("role") == "leader", 15, "r1 leads, answering over https")
    leader_api = f"https://127.0.0.1:{ports['r1']}"
    wait_until(lambda: status("r2").get("leader", {}).get("api") == leader_api, 15,
               f"the standby r2 names the leader by its https URL ({leader_api})")
    rc, out, err = loomctl(fab, "--controller", f"https://127.0.0.1:{ports['r2']}", "--ca", cert, "status")
    check(rc == 0 and "r1" in out, "loomctl given the standby's https URL alone: status answers", out + err)
    both = f"https://127.0.0.1:{ports['r2']},https://127.0.0.1:{ports['r1']}"
    decls = fab.write("decls.yaml", DECLS.split("---\nkind: Server")[0])
    rc, out, err = loomctl(fab, "--controller", both, "--ca", cert, "apply", "--yes", "-f", decls)
    check(rc == 0, "an apply through the replica list of https URLs reaches the leader", out + err)

SCENARIOS = [("works", works), ("wrong-ca", wrong_ca), ("wrong-name", wrong_name), ("plain-http", plain_http),
             ("bad-pair", bad_pair), ("replicas", replicas)]

def main():
    ap = arg_parser()
    ap.add_argument("--loomctl", required=True)
    ap.add_argument("--scenario", action="append", default=[])
    args = ap.parse_args()
    def cluster(name):
        kind = ReplicaCluster if name == "replicas" else Cluster
        fab = kind(args.loomd, args.agent, prefix=f"loom-tls-{name}-", keep=args.keep)
        fab.args = args
        return fab
    return run_scenarios(SCENARIOS, args, cluster)

if __name__ == "__main__":
    sys.exit(main())
