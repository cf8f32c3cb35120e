#!/usr/bin/env python3
"""End-to-end: access control as an operator meets it (issue 17, DESIGN.md section 8).
A real loomd (its first start writes WORK/admin.token) and one simulated agent process
with two blades: b1 in chassis c1 serves pool web of partition prod (server web-0), b2 in
chassis c2 serves pool lab of partition dev (server lab-0). Tokens are made, used and
revoked with the real loomctl, as an admin would; each scenario ends by reading
`loomctl audit` for what it did: who (token id and role), from where, what, the outcome.

  no-token          without a token every endpoint but /v1/health is 401 (an unknown or
                    malformed token too); loomctl says how to give one
  partition-reader  a partition-reader of prod lists only prod's servers, pools and blades
                    and gets "no server named 'lab-0'" (404) for dev's server
  partition-admin   a partition-admin of dev applies and stops dev's servers; an apply of
                    prod's pool is 403 naming it, and so is a Partition (fabric-wide)
  operator          an operator drains and undrains a blade but cannot apply (403)
  revoke            a revoked token is 401 from the very next request
  login             `loomctl login` checks the token and keeps URL and token in
                    ~/.config/loom/loomctl.yaml (0600); then loomctl needs no option; the
                    options and LOOM_TOKEN come before the file

Usage: access_e2e.py --loomd PATH --agent PATH --loomctl PATH [--scenario NAME ...] [--keep]"""
import json, os, stat, subprocess, sys
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, Failure, arg_parser, check, http_request, run_scenarios, wait_until

FABRIC = """blades:
  - {name: b1, chassis: c1, slot: 1, cores: 8, memory: 16GiB, hypervisor: [kvm]}
  - {name: b2, chassis: c2, slot: 1, cores: 8, memory: 16GiB, hypervisor: [kvm]}
"""

DECLARATIONS = """kind: Partition
name: prod
---
kind: Partition
name: dev
---
kind: IdentityPool
name: default
macs: 52:54:00:70:00:00-52:54:00:70:ff:ff
uuids: 4c4f4f4d-0000-0000-0070-000000000000/16
---
kind: Network
name: front
partition: prod
---
kind: Network
name: devnet
partition: dev
---
kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {match: {chassis: c1}}
---
kind: Pool
name: lab
partition: dev
hypervisor: kvm
blades: {match: {chassis: c2}}
---
kind: Server
name: web-0
partition: prod
pool: web
vcpus: 1
memory: 512MiB
nics: [{network: front}]
---
kind: Server
name: lab-0
partition: dev
pool: lab
vcpus: 1
memory: 512MiB
nics: [{network: devnet}]
"""

LAB1 = """kind: Server
name: lab-1
partition: dev
pool: lab
vcpus: 1
memory: 512MiB
nics: [{network: devnet}]
"""

PROD_POOL = """kind: Pool
name: web
partition: prod
hypervisor: kvm
blades: {match: {chassis: c1}}
spares: 1
"""

def loomctl(fab, *args, token=None, env=None, home=None):
    """(exit code, stdout, stderr) of the real loomctl against this loomd; `token`: its
    --token (None: the admin's, through LOOM_TOKEN; "": none at all)."""
    e = dict(os.environ, NO_COLOR="1", HOME=home or fab.path("home"))
    e.pop("XDG_CONFIG_HOME", None)
    if token is not None:
        e.pop("LOOM_TOKEN", None)
    e.update(env or {})
    argv = [fab.args.loomctl, "--controller", fab.api] + (["--token", token] if token else []) + list(args)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=e)
    return r.returncode, r.stdout, r.stderr

def loomctl_json(fab, *args, token=None):
    rc, out, err = loomctl(fab, *args, "-o", "json", token=token)
    if rc != 0:
        raise Failure(f"loomctl {' '.join(args)} -o json exited {rc}: {err.strip()}")
    return json.loads(out)

def make_token(fab, role, partition=None, ttl=None):
    """A token made with `loomctl token create` by the admin: (token, id)."""
    args = ["token", "create", "--role", role, "--description", f"e2e {role}"]
    if partition:
        args += ["--partition", partition]
    if ttl:
        args += ["--ttl", ttl]
    rc, out, err = loomctl(fab, *args)
    check(rc == 0 and out.startswith("loom_") and "shown this once" in err,
          f"loomctl token create --role {role}{' --partition ' + partition if partition else ''} prints the token once",
          out + err)
    token = out.strip()
    return token, token.split("_")[1]

def start(fab):
    fab.start_loomd()
    check(os.path.exists(fab.path("admin.token")) and stat.S_IMODE(os.stat(fab.path("admin.token")).st_mode) == 0o600,
          "loomd's first start left admin.token (0600) beside its state")
    fab.start_sim_agent(fab.write("fabric.yaml", FABRIC))
    wait_until(lambda: len([b for b in (fab.get("/v1/blades") or []) if b.get("online")]) == 2, 30, "b1 and b2 online")
    path = fab.write("fabric-decl.yaml", DECLARATIONS)
    rc, out, err = loomctl(fab, "apply", "--yes", "--timeout", "60", "-f", path)
    check(rc == 0, "the admin applies prod and dev (loomctl apply, LOOM_TOKEN = admin.token)", out + err)

def audit(fab, **filters):
    """`loomctl audit -o json` as the admin: the records."""
    args = ["audit"] + [a for k, v in filters.items() for a in (f"--{k}", v)]
    return loomctl_json(fab, *args)

def audited(fab, what, pred):
    """The audit log holds a record `pred` accepts (the admin reads it with loomctl)."""
    records = audit(fab)
    hit = [r for r in records if pred(r)]
    check(len(hit) >= 1, f"loomctl audit shows {what}", json.dumps(records[-8:], indent=1))
    return hit[-1]

# --- scenarios ------------------------------------------------------------------------

def no_token(fab):
    start(fab)
    endpoints = [("GET", "/v1/blades"), ("GET", "/v1/blades/b1"), ("POST", "/v1/blades/b1/drain"),
                 ("GET", "/v1/servers"), ("GET", "/v1/servers/web-0"), ("POST", "/v1/servers/web-0/stop"),
                 ("GET", "/v1/pools"), ("GET", "/v1/partitions"), ("GET", "/v1/capacity"), ("GET", "/v1/events"),
                 ("GET", "/metrics"), ("GET", "/v1/status"), ("POST", "/v1/apply"), ("POST", "/v1/delete"),
                 ("GET", "/v1/tokens"), ("POST", "/v1/tokens"), ("GET", "/v1/audit"), ("GET", "/v1/whoami")]
    for method, path in endpoints:
        status, _ = http_request(fab.api + path, method, "" if method == "POST" else None, token="")
        bad, _ = http_request(fab.api + path, method, "" if method == "POST" else None,
                              token="loom_000000000000_" + "0" * 64)
        check(status == 401 and bad == 401, f"{method} {path}: 401 without a token and with an unknown one",
              f"{status}, {bad}")
    status, _ = http_request(fab.api + "/v1/health", token="")
    check(status == 200, "GET /v1/health answers without a token")
    rc, out, err = loomctl(fab, "server", "list", token="")
    check(rc != 0 and "needs a valid API token" in err and "loomctl login" in err,
          "loomctl without a token fails saying how to give one", out + err)
    check(fab.get("/v1/servers/web-0")["power"] == "on", "nothing was stopped")
    audited(fab, "the refusals: 401, no token, from 127.0.0.1",
            lambda r: r["status"] == 401 and r["token"] == "" and r["source"].startswith("127.0.0.1:")
            and r["path"] == "/v1/servers/web-0/stop")

def partition_reader(fab):
    start(fab)
    token, tid = make_token(fab, "partition-reader", "prod")
    names = [s["name"] for s in loomctl_json(fab, "server", "list", token=token)]
    check(names == ["web-0"], "a partition-reader of prod lists only prod's servers", str(names))
    pools = [p["name"] for p in loomctl_json(fab, "pool", "list", token=token)]
    check(pools == ["web"], "... and only prod's pools", str(pools))
    blades = [b["name"] for b in loomctl_json(fab, "blade", "list", token=token)]
    check(blades == ["b1"], "... and only the blades that serve them", str(blades))
    rc, out, err = loomctl(fab, "server", "show", "lab-0", token=token)
    check(rc != 0 and "no server named 'lab-0'" in err, "dev's server is unknown to it (404)", out + err)
    status, _ = http_request(fab.api + "/v1/servers/lab-0", token=token)
    check(status == 404, "GET /v1/servers/lab-0: 404")
    rc, out, err = loomctl(fab, "server", "stop", "web-0", token=token)
    check(rc != 0 and "forbidden" in err, "it may not stop even its own partition's server (403)", out + err)
    audited(fab, f"its refused stop of web-0: token {tid}, partition-reader, 403",
            lambda r: r["token"] == tid and r["role"] == "partition-reader" and r["status"] == 403
            and r["path"] == "/v1/servers/web-0/stop")
    mine = audit(fab, token=tid)
    check(mine and all(r["token"] == tid for r in mine), "loomctl audit --token ID shows that token's records only",
          json.dumps(mine, indent=1))

def partition_admin(fab):
    start(fab)
    token, tid = make_token(fab, "partition-admin", "dev")
    rc, out, err = loomctl(fab, "apply", "--yes", "--timeout", "60", "-f", fab.write("lab-1.yaml", LAB1), token=token)
    check(rc == 0, "a partition-admin of dev applies a dev server", out + err)
    rc, out, err = loomctl(fab, "server", "stop", "lab-0", token=token)
    check(rc == 0, "... and stops dev's server lab-0", out + err)
    check(fab.get("/v1/servers/lab-0")["power"] == "off", "lab-0 is off")
    rc, out, err = loomctl(fab, "apply", "--yes", "-f", fab.write("prod-pool.yaml", PROD_POOL), token=token)
    check(rc != 0 and "forbidden" in err and "Pool 'web'" in err and "partition 'prod'" in err,
          "an apply of prod's pool is 403 naming it", out + err)
    rc, out, err = loomctl(fab, "apply", "--yes", "-f", fab.write("qa.yaml", "kind: Partition\nname: qa\n"), token=token)
    check(rc != 0 and "Partition 'qa'" in err and "fabric-wide" in err, "a Partition (fabric-wide) is 403 too", out + err)
    rc, out, err = loomctl(fab, "server", "stop", "web-0", token=token)
    check(rc != 0 and "no server named 'web-0'" in err, "prod's server is unknown to it", out + err)
    check(fab.get("/v1/servers/web-0")["power"] == "on" and fab.get("/v1/pools/web")["spares"] == 0,
          "prod is untouched")
    audited(fab, f"its apply: token {tid}, partition-admin, applied Server/lab-1",
            lambda r: r["token"] == tid and r["path"] == "/v1/apply" and r["outcome"] == "applied"
            and "Server/lab-1" in r["targets"])
    audited(fab, "its stop of lab-0", lambda r: r["token"] == tid and r["targets"] == "server/lab-0"
            and r["outcome"] == "applied")
    audited(fab, "its refused apply of prod's pool, naming it",
            lambda r: r["token"] == tid and r["status"] == 403 and "Pool 'web'" in r["outcome"])

def operator(fab):
    start(fab)
    token, tid = make_token(fab, "operator", ttl="1d")
    # --no-wait: what is tested is the right to drain; b1's servers have nowhere to go here.
    rc, out, err = loomctl(fab, "blade", "drain", "--no-wait", "b1", token=token)
    check(rc == 0, "an operator drains b1", out + err)
    check(fab.get("/v1/blades/b1")["state"] == "maintenance", "b1 is in maintenance")
    rc, out, err = loomctl(fab, "blade", "undrain", "b1", token=token)
    check(rc == 0, "... and undrains it", out + err)
    rc, out, err = loomctl(fab, "apply", "--yes", "-f", fab.write("prod-pool.yaml", PROD_POOL), token=token)
    check(rc != 0 and "forbidden" in err and "operator" in err, "but an apply is 403", out + err)
    rc, out, err = loomctl(fab, "token", "list", token=token)
    check(rc != 0 and "forbidden" in err, "and tokens are the admin's", out + err)
    listed = {t["id"]: t for t in loomctl_json(fab, "token", "list")}
    check(listed[tid]["role"] == "operator" and listed[tid]["expires_ms"] is not None and "hash" not in listed[tid],
          "loomctl token list: its role and expiry, never a secret or hash", json.dumps(listed[tid]))
    audited(fab, f"the drain: token {tid}, operator, blade/b1, applied",
            lambda r: r["token"] == tid and r["role"] == "operator" and r["path"] == "/v1/blades/b1/drain"
            and r["targets"] == "blade/b1" and r["outcome"] == "applied")
    audited(fab, "the refused apply", lambda r: r["token"] == tid and r["path"] == "/v1/apply" and r["status"] == 403)

def revoke(fab):
    start(fab)
    token, tid = make_token(fab, "reader")
    check(loomctl(fab, "server", "list", token=token)[0] == 0, "a reader lists servers")
    rc, out, err = loomctl(fab, "token", "revoke", tid)
    check(rc == 0 and f"token {tid} revoked" in out, "loomctl token revoke", out + err)
    rc, out, err = loomctl(fab, "server", "list", token=token)
    check(rc != 0 and "needs a valid API token" in err, "the revoked token is 401 at once", out + err)
    listed = {t["id"]: t for t in loomctl_json(fab, "token", "list")}
    check(listed[tid]["state"] == "revoked", "token list shows it revoked")
    audited(fab, "the revocation: the admin's token, token/ID",
            lambda r: r["path"] == f"/v1/tokens/{tid}/revoke" and r["role"] == "admin" and r["targets"] == f"token/{tid}")
    audited(fab, "the refused request after it", lambda r: r["status"] == 401 and r["path"] == "/v1/servers")

def login(fab):
    start(fab)
    token, tid = make_token(fab, "reader")
    home = fab.path("home-login")
    os.makedirs(home)
    env = dict(os.environ, HOME=home, NO_COLOR="1")
    env.pop("LOOM_TOKEN", None)
    env.pop("LOOM_CONTROLLER", None)
    env.pop("XDG_CONFIG_HOME", None)
    r = subprocess.run([fab.args.loomctl, "--controller", fab.api, "login"], input=token + "\n", capture_output=True,
                       text=True, timeout=30, env=env)
    config = os.path.join(home, ".config", "loom", "loomctl.yaml")
    check(r.returncode == 0 and f"as token {tid} (reader)" in r.stdout, "loomctl login (the token on stdin)",
          r.stdout + r.stderr)
    check(stat.S_IMODE(os.stat(config).st_mode) == 0o600, "it wrote ~/.config/loom/loomctl.yaml, 0600")
    with open(config) as f:
        text = f.read()
    check(f"controller: {fab.api}" in text and f"token: {token}" in text, "with the controller and the token", text)
    r = subprocess.run([fab.args.loomctl, "whoami", "-o", "json"], capture_output=True, text=True, timeout=30, env=env)
    check(r.returncode == 0 and json.loads(r.stdout)["token"] == tid, "then loomctl needs no option", r.stdout + r.stderr)
    admin_id = fab.token.split("_")[1]
    r = subprocess.run([fab.args.loomctl, "whoami", "-o", "json"], capture_output=True, text=True, timeout=30,
                       env=dict(env, LOOM_TOKEN=fab.token))
    check(r.returncode == 0 and json.loads(r.stdout)["token"] == admin_id, "LOOM_TOKEN comes before the file",
          r.stdout + r.stderr)
    r = subprocess.run([fab.args.loomctl, "--token", token, "whoami", "-o", "json"], capture_output=True, text=True,
                       timeout=30, env=dict(env, LOOM_TOKEN=fab.token))
    check(r.returncode == 0 and json.loads(r.stdout)["token"] == tid, "--token comes before LOOM_TOKEN",
          r.stdout + r.stderr)
    r = subprocess.run([fab.args.loomctl, "--controller", fab.api, "login"], input="loom_bad\n", capture_output=True,
                       text=True, timeout=30, env=env)
    check(r.returncode != 0, "a login with a bad token fails", r.stdout + r.stderr)
    with open(config) as f:
        check(f.read() == text, "and leaves the file as it was")

SCENARIOS = [("no-token", no_token), ("partition-reader", partition_reader), ("partition-admin", partition_admin),
             ("operator", operator), ("revoke", revoke), ("login", login)]

def main():
    ap = arg_parser()
    ap.add_argument("--loomctl", required=True)
    ap.add_argument("--scenario", action="append", choices=[n for n, _ in SCENARIOS],
                    help="run only this scenario (repeatable); default: all")
    args = ap.parse_args()
    def cluster(name):
        fab = Cluster(args.loomd, args.agent, prefix=f"loom-access-{name}-", keep=args.keep)
        fab.args = args
        return fab
    return run_scenarios(SCENARIOS, args, cluster)

if __name__ == "__main__":
    sys.exit(main())
