#!/usr/bin/env python3
"""The fabric once with real guests: loomd + one `loom-agent --driver kvm` on
qemu:///system, loopback, --insecure. Apply two small servers (no disks, a NIC on a
network the agent has no bridge for -> isolated user-mode NIC, no boot ROM), check that
libvirt shows each server's name, UUID and MAC, kill -9 the agent and restart it (the
guests are adopted: same domain ids, nothing sent), stop one through the API, resize the
other (it restarts, and libvirt then defines it with the new memory).
Exit 77 (ctest SKIP) with the reason when qemu:///system does not answer; under CI
(CI=true) on a machine with /dev/kvm, exit 1 instead: the real-KVM tier can run there
(tools/test.sh starts libvirtd), so a skip would hide that it did not.
Usage: kvm_e2e.py --loomd PATH --agent PATH [--keep]"""
import os, random, shutil, subprocess, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, arg_parser, Failure, check, skip_or_fail, wait_until

URI = "qemu:///system"
PREFIX = "loomtest-e2e-"
# Why this machine must run the test under CI=true (skip_or_fail), or None when it may skip.
REQUIRED = ("/dev/kvm exists: the real-KVM tier must run here (start libvirtd: sudo tools/libvirtd.sh start, "
            "as tools/test.sh does)" if os.path.exists("/dev/kvm") else None)

def virsh(*args, timeout=30):
    r = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr

def wait_for(pred, seconds, what):
    wait_until(pred, seconds, what, interval=0.25)

def cleanup_domains():
    rc, out = virsh("list", "--all", "--name")
    for name in out.split():
        if name.startswith(PREFIX):
            virsh("destroy", name)
            virsh("undefine", name)

def main():
    args = arg_parser().parse_args()
    if shutil.which("virsh") is None:
        skip_or_fail("virsh is not installed (Debian libvirt-clients)", REQUIRED)
    try:
        rc, out = virsh("version", timeout=10)
    except subprocess.TimeoutExpired:
        rc, out = 1, "virsh version timed out"
    if rc != 0:
        skip_or_fail(f"{URI} does not answer (start it with tools/libvirtd.sh start): {' '.join(out.split())[:300]}",
                     REQUIRED)

    with Cluster(args.loomd, args.agent, prefix="loom-kvm-e2e-", keep=args.keep, request_timeout=15) as fab:
        try:
            return fab.verdict(lambda: scenario(fab), log_lines=30)
        finally:
            fab.stop_all()
            cleanup_domains()

def scenario(fab):
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

    get, request = fab.get, fab.request

    def servers():
        return {s["name"]: s for s in get("/v1/servers")}

    def domstate(name):
        return virsh("domstate", name)[1].strip()

    cleanup_domains()
    print("== loomd + one KVM agent; apply two servers", flush=True)
    fab.start_loomd()
    fab.start_agent(blade, "kvm", "--uri", URI, "--driver-param", "domain_type=auto")
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
    sent_before = fab.metric('loom_operations_total{result="sent"}')
    fab.restart("agent", pause=0.5)
    wait_for(lambda: any(b["name"] == blade and b["online"] and b["domains"] >= 2 for b in get("/v1/blades")), 30,
             "the blade re-registered with its 2 domains")
    time.sleep(2)
    check(all(servers()[n]["state"] == "running" for n in names), "both still running")
    check(fab.metric('loom_operations_total{result="sent"}') == sent_before, "no step sent to adopt them")
    check({n: virsh("domid", n)[1].strip() for n in names} == ids, f"same domain ids {ids}: no second copy, no restart")
    rc, out = virsh("list", "--all", "--name")
    check(sorted(x for x in out.split() if x.startswith(PREFIX)) == sorted(names), "exactly the two guests exist")

    print("== stop one through the API", flush=True)
    # The agent's kill -9 and restart above may have made it suspect (that takes 2.5 s
    # without a beat); what counts here is the slow stop that follows.
    since = max([e["id"] for e in get("/v1/events?since=0&limit=10000")], default=0)
    status, body = request("POST", f"/v1/servers/{names[1]}/stop")
    check(status == 200, f"stop -> 200 ({body.strip()[:200] if status != 200 else ''})")
    # A guest without an OS ignores the ACPI shutdown: the driver destroys it after
    # its timeout. The agent keeps heartbeating meanwhile (driver worker thread).
    wait_for(lambda: domstate(names[1]) == "shut off", 60, f"{names[1]} shut off")
    wait_for(lambda: servers()[names[1]]["state"] == "stopped", 20, "the API shows it stopped")
    check(domstate(names[0]) == "running", f"{names[0]} still running ({domstate(names[0])!r}, {servers()[names[0]]['state']})")
    suspect = [e for e in get(f"/v1/events?since={since}&limit=10000") if "suspect" in e["message"] or "failed:" in e["message"]]
    check(not suspect, f"the blade was never suspected while the driver stopped a guest ({suspect[:1]})")

    print("== resize the running one: stopped, defined with the new memory, started (docs/SERVERS.md)", flush=True)
    def max_memory_kib(name):
        for line in virsh("dominfo", name)[1].splitlines():
            if line.startswith("Max memory:"):
                return int(line.split()[2])
        return None
    check(max_memory_kib(names[0]) == 64 * 1024, f"{names[0]}: libvirt defines it with 64 MiB")
    resized = decls[decls.index(f"kind: Server\nname: {names[0]}"):decls.index(f"---\nkind: Server\nname: {names[1]}")]
    resized = resized.replace("memory: 64MiB", "memory: 96MiB")
    status, body = request("POST", "/v1/apply?source=resize.yaml", resized)
    check(status == 200 and body and "memory" in body, f"apply -> 200 ({body.strip()[:300] if status != 200 else ''})")
    # Its stop waits out the driver's shutdown timeout (no OS answers ACPI), then it starts.
    wait_for(lambda: max_memory_kib(names[0]) == 96 * 1024 and domstate(names[0]) == "running"
             and "restart_pending" not in servers()[names[0]], 90, f"{names[0]} running with 96 MiB")
    check(servers()[names[0]]["blade"] == blade, f"{names[0]} restarted on its blade")
    check(domstate(names[1]) == "shut off", f"{names[1]} (stopped) was not started")

if __name__ == "__main__":
    sys.exit(main())
