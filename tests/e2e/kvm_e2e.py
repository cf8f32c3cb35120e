#!/usr/bin/env python3
"""The fabric once with real guests: loomd + one `loom-agent --driver kvm` on
qemu:///system, loopback, --insecure. Apply two small servers (no disks, a NIC on a
network the agent has no bridge for -> isolated user-mode NIC, no boot ROM), check that
libvirt shows each server's name, UUID and MAC, kill -9 the agent and restart it (the
guests are adopted: same domain ids, nothing sent), stop one through the API.
Exit 77 (ctest SKIP) with the reason when qemu:///system does not answer.
Usage: kvm_e2e.py --loomd PATH --agent PATH [--keep]"""
import argparse, json, os, random, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.error, urllib.request

URI = "qemu:///system"
PREFIX = "loomtest-e2e-"
SKIP = 77

class Failure(Exception):
    pass

def check(cond, message):
    if not cond:
        raise Failure(message)
    print("  ok:", message, flush=True)

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def virsh(*args, timeout=30):
    r = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr

def wait_for(pred, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if pred():
                print("  ok:", what, flush=True)
                return
        except Exception:
            pass
        time.sleep(0.25)
    raise Failure(f"timed out after {seconds} s waiting for: {what}")

def cleanup_domains():
    rc, out = virsh("list", "--all", "--name")
    for name in out.split():
        if name.startswith(PREFIX):
            virsh("destroy", name)
            virsh("undefine", name)

def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loomd", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if shutil.which("virsh") is None:
        print("SKIP: virsh is not installed", flush=True)
        return SKIP
    try:
        rc, out = virsh("version", timeout=10)
    except subprocess.TimeoutExpired:
        rc, out = 1, "virsh version timed out"
    if rc != 0:
        print(f"SKIP: {URI} does not answer (start it with tools/libvirtd.sh start): {out.strip()[:300]}", flush=True)
        return SKIP

    work = tempfile.mkdtemp(prefix="loom-kvm-e2e-")
    print("work dir", work, flush=True)
    fabric_port, api_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    procs = {}
    blade = PREFIX + "blade"
    names = [PREFIX + "a", PREFIX + "b"]
    # A UUID/MAC range of this run only, so leftovers of another run never collide.
    tag = random.randrange(0x10000)
    decls = f"""
kind: Partition
name: lab
---
kind: Network
name: isolated
partition: lab
---
kind: IdentityPool
name: default
macs: 52:54:00:7e:{tag >> 8:02x}:00-52:54:00:7e:{tag >> 8:02x}:ff
uuids: 4c4f4f4d-7e57-{tag:04x}-0000-000000000000/16
---
kind: Pool
name: kvm
partition: lab
hypervisor: kvm
blades: {{names: [{blade}]}}
---
kind: Server
name: {names[0]}
partition: lab
pool: kvm
vcpus: 1
memory: 64MiB
nics: [{{network: isolated}}]
power: on
---
kind: Server
name: {names[1]}
partition: lab
pool: kvm
vcpus: 1
memory: 128MiB
nics: [{{network: isolated}}]
power: on
"""

    def request(method, path, body=None):
        req = urllib.request.Request(api + path, data=body.encode() if body is not None else None, method=method)
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            return None, None

    def get(path):
        status, body = request("GET", path)
        return None if status != 200 else (body if path == "/metrics" else json.loads(body))

    def start_loomd():
        log = open(os.path.join(work, "loomd.log"), "a")
        procs["loomd"] = subprocess.Popen(
            [args.loomd, "--state", os.path.join(work, "state.db"), "--insecure",
             "--agents", f"tcp://127.0.0.1:{fabric_port}", "--api", f"127.0.0.1:{api_port}"],
            stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: get("/v1/health") is not None, 10, "loomd serves its API")

    def start_agent():
        log = open(os.path.join(work, "agent.log"), "a")
        procs["agent"] = subprocess.Popen(
            [args.agent, "--controller", f"tcp://127.0.0.1:{fabric_port}", "--insecure", "--driver", "kvm",
             "--blade", blade, "--uri", URI, "--driver-param", "domain_type=auto"],
            stdout=log, stderr=subprocess.STDOUT)

    def servers():
        return {s["name"]: s for s in get("/v1/servers")}

    def domstate(name):
        return virsh("domstate", name)[1].strip()

    try:
        cleanup_domains()
        print("== loomd + one KVM agent; apply two servers", flush=True)
        start_loomd()
        start_agent()
        wait_for(lambda: any(b["name"] == blade and b["online"] for b in get("/v1/blades")), 30, "the KVM blade registered")
        status, body = request("POST", "/v1/apply?source=kvm.yaml", decls)
        check(status == 200, f"apply -> 200 ({body.strip()[:300] if status != 200 else ''})")
        wait_for(lambda: all(servers()[n]["state"] == "running" for n in names), 90, "both servers running")
        s = servers()
        for n in names:
            rc, info = virsh("dominfo", n)
            check(rc == 0 and s[n]["uuid"] in info and "running" in info, f"virsh dominfo {n}: running, UUID {s[n]['uuid']}")
            rc, uuid = virsh("domuuid", n)
            check(uuid.strip() == s[n]["uuid"], f"virsh domuuid {n} is the server's UUID")
            rc, ifs = virsh("domiflist", n)
            check(rc == 0 and s[n]["macs"][0] in ifs, f"virsh domiflist {n} shows MAC {s[n]['macs'][0]}")
        ids = {n: virsh("domid", n)[1].strip() for n in names}

        print("== kill -9 the agent and restart it: guests adopted, not restarted", flush=True)
        sent_before = metric(get("/metrics"), 'loom_operations_total{result="sent"}')
        procs.pop("agent").send_signal(signal.SIGKILL)
        time.sleep(0.5)
        start_agent()
        wait_for(lambda: any(b["name"] == blade and b["online"] and b["domains"] >= 2 for b in get("/v1/blades")), 30,
                 "the blade re-registered with its 2 domains")
        time.sleep(2)
        check(all(servers()[n]["state"] == "running" for n in names), "both still running")
        check(metric(get("/metrics"), 'loom_operations_total{result="sent"}') == sent_before, "no step sent to adopt them")
        check({n: virsh("domid", n)[1].strip() for n in names} == ids, f"same domain ids {ids}: no second copy, no restart")
        rc, out = virsh("list", "--all", "--name")
        check(sorted(x for x in out.split() if x.startswith(PREFIX)) == sorted(names), "exactly the two guests exist")

        print("== stop one through the API", flush=True)
        status, body = request("POST", f"/v1/servers/{names[1]}/stop")
        check(status == 200, f"stop -> 200 ({body.strip()[:200] if status != 200 else ''})")
        # A guest without an OS ignores the ACPI shutdown: the driver destroys it after
        # its timeout. The agent keeps heartbeating meanwhile (driver worker thread).
        wait_for(lambda: domstate(names[1]) == "shut off", 60, f"{names[1]} shut off")
        wait_for(lambda: servers()[names[1]]["state"] == "stopped", 20, "the API shows it stopped")
        check(domstate(names[0]) == "running", f"{names[0]} still running ({domstate(names[0])!r}, {servers()[names[0]]['state']})")
        suspect = [e for e in get("/v1/events?since=0&limit=10000") if "suspect" in e["message"] or "failed:" in e["message"]]
        check(not suspect, f"the blade was never suspected while the driver worked ({suspect[:1]})")
        print("PASS", flush=True)
        return 0
    except Failure as e:
        print("FAIL:", e, flush=True)
        for name in sorted(os.listdir(work)):
            if name.endswith(".log"):
                print(f"---- {name} (tail)")
                with open(os.path.join(work, name)) as f:
                    print("".join(f.readlines()[-30:]))
        return 1
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        cleanup_domains()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
