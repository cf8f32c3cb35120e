#!/usr/bin/env python3
"""What an operator installs runs a fabric: `cmake --install` into a prefix, then loomd, a
fabric relay and an agent started exactly as the installed systemd units start them
(their ExecStart lines, with the installed configuration files edited as an operator
would: keys, endpoints, this blade's name), on loopback, with CurveZMQ.

  1. the binaries, units, configuration and docs are where the units say; the units pass
     `systemd-analyze verify`; installing again keeps an edited configuration;
  2. loomd, loom-relay and loom-agent from their units' command lines, loomd with the
     environment systemd gives a Type=notify service with a watchdog: it says READY=1
     once its API serves and pings the watchdog at half its interval; the blade registers
     through the relay and `loomctl blade list` (installed) shows it online;
  3. SIGTERM (systemctl stop) ends each of them cleanly, exit code 0 (loomd says
     STOPPING=1 first);
  4. a key no option has in loomd.conf stops loomd before it opens anything, the file
     and the key named.

  install_e2e.py --build BUILD_DIR --cmake CMAKE [--keep]"""
import argparse, os, re, shlex, shutil, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loomharness import Cluster, Failure, check, wait_until  # noqa: E402

UNITS = ("loomd", "loom-agent", "loom-relay")


def set_option(path, key, value):
    """key: value in a configuration file: replaces the line that sets it, or that shows it
    commented out (`# key: ...`), else appends it."""
    with open(path) as f:
        lines = f.read().splitlines()
    pattern = re.compile(rf"^(# )?{re.escape(key)}:")
    for i, line in enumerate(lines):
        if pattern.match(line):
            lines[i] = f"{key}: {value}"
            break
    else:
        lines.append(f"{key}: {value}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def exec_start(unit_path):
    """The ExecStart command line of a unit file, split as systemd would (no specifiers used)."""
    with open(unit_path) as f:
        for line in f:
            if line.startswith("ExecStart="):
                return shlex.split(line[len("ExecStart="):])
    raise Failure(f"{unit_path} has no ExecStart")


class NotifySocket:
    """The datagram socket systemd gives a Type=notify service ($NOTIFY_SOCKET)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def messages(self, seconds, until=None):
        """(arrival time, message) pairs for `seconds`, or until a message holds `until`."""
        out, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            out.append((time.monotonic(), data))
            if until and until in data.split("\n"):
                break
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="the build directory to install from")
    ap.add_argument("--cmake", default="cmake")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()

    with Cluster(loomd=None, agent=None, prefix="loom-install-", keep=a.keep, keep_on_failure=True) as c:
        prefix = c.path("usr")
        bindir, etc = os.path.join(prefix, "bin"), os.path.join(prefix, "etc", "loom")
        unitdir = os.path.join(prefix, "lib", "systemd", "system")

        def install():
            r = subprocess.run([a.cmake, "--install", a.build, "--prefix", prefix],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise Failure("cmake --install failed", r.stdout + r.stderr)
            return r.stdout

        def scenario():
            print("== cmake --install --prefix", prefix, flush=True)
            install()
            for program in ("loomd", "loom-agent", "loomctl"):
                path = os.path.join(bindir, program)
                r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
                check(r.returncode == 0 and (program == "loomctl" or "--config" in r.stdout),
                      f"{program} installed in {bindir}, --help answers", r.stdout + r.stderr)
            commands = {}
            for unit in UNITS:
                path = os.path.join(unitdir, unit + ".service")
                check(os.path.isfile(path), f"unit {unit}.service installed")
                commands[unit] = exec_start(path)
            conf = {name: os.path.join(etc, name + ".conf") for name in ("loomd", "agent", "relay")}
            check(commands["loomd"] == [os.path.join(bindir, "loomd"), "--config", conf["loomd"]],
                  "loomd.service runs the installed loomd with the installed loomd.conf", str(commands["loomd"]))
            check(commands["loom-agent"] == [os.path.join(bindir, "loom-agent"), "--config", conf["agent"]],
                  "loom-agent.service runs the installed agent with agent.conf", str(commands["loom-agent"]))
            check(commands["loom-relay"] == [os.path.join(bindir, "loom-agent"), "relay", "--config", conf["relay"]],
                  "loom-relay.service runs the installed relay with relay.conf", str(commands["loom-relay"]))
            for name, path in conf.items():
                check(os.path.isfile(path), f"{name}.conf installed in {etc}")
            check(os.path.isfile(os.path.join(prefix, "share", "doc", "loom", "README.md")), "the README among the docs")
            analyze = shutil.which("systemd-analyze")
            check(analyze is not None, "systemd-analyze is there (tools/install-deps.sh installs systemd)")
            r = subprocess.run([analyze, "verify"] + [os.path.join(unitdir, u + ".service") for u in UNITS],
                               capture_output=True, text=True, timeout=60)
            check(r.returncode == 0, "systemd-analyze verify passes the three units", r.stdout + r.stderr)

            print("== the operator's configuration: keys, endpoints, this blade", flush=True)
            loomd_bin = os.path.join(bindir, "loomd")
            for name in ("loomd", "c1-s1", "relay-c1"):
                subprocess.run([loomd_bin, "keygen", "--out", etc, "--name", name], check=True,
                               stdout=subprocess.DEVNULL, timeout=10)

            def public_key(name):
                with open(os.path.join(etc, name + ".pub")) as f:
                    return f.read()
            with open(os.path.join(etc, "agents.allow"), "w") as f:
                f.write(public_key("c1-s1"))
            with open(os.path.join(etc, "relays.allow"), "w") as f:
                f.write(public_key("relay-c1"))
            # loomd and the relay listen on port 0 and print the ports they got: the relay's
            # `controller:` and the agent's are filled in from those once each has started.
            os.makedirs(c.path("state"))
            for key, value in (("state", c.path("state", "loomd.db")), ("agents", "tcp://127.0.0.1:0"),
                               ("api", "127.0.0.1:0"), ("key", f"{etc}/loomd.key"),
                               ("allow", f"{etc}/agents.allow"), ("allow-relays", f"{etc}/relays.allow")):
                set_option(conf["loomd"], key, value)
            for key, value in (("blade", "c1-s1"), ("chassis", "c1"), ("slot", "1"), ("driver", "test"),
                               ("key", f"{etc}/c1-s1.key"),
                               ("server-key", f"{etc}/relay-c1.pub"), ("peer-listen", "tcp://127.0.0.1:0"),
                               ("peer-allow", f"{etc}/agents.allow"), ("state-dir", c.path("agent-state"))):
                set_option(conf["agent"], key, value)
            for key, value in (("name", "c1"), ("listen", "tcp://127.0.0.1:0"), ("key", f"{etc}/relay-c1.key"),
                               ("server-key", f"{etc}/loomd.pub"), ("allow", f"{etc}/agents.allow")):
                set_option(conf["relay"], key, value)
            out = install()
            with open(conf["loomd"]) as f:
                check("api: 127.0.0.1:0" in f.read() and "Kept:" in out,
                      "installing again keeps the edited configuration", out)

            print("== loomd, loom-relay, loom-agent as their units start them", flush=True)
            notify = NotifySocket(c.path("notify"))
            # What systemd sets for Type=notify with WatchdogSec=2.
            c.spawn("loomd", commands["loomd"], env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"})
            ports = c.printed_ports("loomd", ["loomd: agents-port", "loomd: api-port"], timeout=15)
            c.api = f"http://127.0.0.1:{ports['loomd: api-port']}"
            said = notify.messages(15, until="READY=1")
            check(said and "READY=1" in said[-1][1].split("\n") and "STATUS=serving: agents on" in said[-1][1],
                  "loomd tells systemd READY=1, with its status", str(said))
            check(c.get("/v1/health") is not None, "its API serves when it says so")
            # Its first start wrote the admin token beside its state, readable by its owner only.
            token_file = c.path("state", "admin.token")
            check(os.path.exists(token_file) and os.stat(token_file).st_mode & 0o077 == 0,
                  "its first start wrote admin.token beside the state, readable by its owner only")
            with open(token_file) as f:
                os.environ["LOOM_TOKEN"] = f.read().strip()
            pings = [t for t, m in notify.messages(5) if m == "WATCHDOG=1"]
            gaps = [round(b - a, 2) for a, b in zip(pings, pings[1:])]
            check(len(pings) >= 3 and max(gaps) < 1.8,
                  f"its core loop pings the 2 s watchdog about every second (gaps {gaps})", str(gaps))
            set_option(conf["relay"], "controller", f"tcp://127.0.0.1:{ports['loomd: agents-port']}")
            c.spawn("relay", commands["loom-relay"])
            relay = c.printed_ports("relay", ["loom-agent: relay-port"])["loom-agent: relay-port"]
            set_option(conf["agent"], "controller", f"tcp://127.0.0.1:{relay}")
            c.spawn("agent", commands["loom-agent"])

            def online_via_relay():
                blades = c.get("/v1/blades") or []
                return any(b["name"] == "c1-s1" and b["online"] and b.get("relay") == "c1" for b in blades)
            wait_until(online_via_relay, 20, "blade c1-s1 registered through relay c1 and is online")
            # Its peer channel (CurveZMQ, askers from agents.allow) is up: loomd made it a member
            # of the outage rule's quorum set (docs/FENCING.md).
            wait_until(lambda: (c.get("/v1/blades/c1-s1") or {}).get("quorum_member") is True, 15,
                       "the installed agent listens on its peer channel: c1-s1 is in the quorum set")
            r = subprocess.run([os.path.join(bindir, "loomctl"), "--controller", c.api, "blade", "list"],
                               capture_output=True, text=True, timeout=20)
            rows = [line.split() for line in r.stdout.splitlines()]
            check(r.returncode == 0 and any(row[:2] == ["c1-s1", "c1"] and "c1" in row[2:] for row in rows[1:])
                  and "RELAY" in rows[0], "the installed loomctl lists c1-s1 in chassis c1, through relay c1", r.stdout + r.stderr)

            print("== systemctl stop: SIGTERM", flush=True)
            for name in ("agent", "relay", "loomd"):
                p = c.procs[name]
                p.send_signal(signal.SIGTERM)
                try:
                    rc = p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    raise Failure(f"{name} still runs 15 s after SIGTERM")
                check(rc == 0, f"{name} ends on SIGTERM with exit code 0", f"exit code {rc}")
            said = [m for _, m in notify.messages(1, until="STOPPING=1")]
            check(any("STOPPING=1" in m.split("\n") for m in said), "loomd told systemd STOPPING=1", str(said[-3:]))

            print("== a key no option has", flush=True)
            with open(conf["loomd"], "a") as f:
                f.write("lease-msec: 8000\n")
            before = sorted(os.listdir(c.path("state")))
            r = subprocess.run(commands["loomd"], capture_output=True, text=True, timeout=10)
            check(r.returncode != 0 and f"{conf['loomd']}: no option is named 'lease-msec'" in r.stderr,
                  "loomd refuses to start, naming the file and the key", r.stdout + r.stderr)
            check(sorted(os.listdir(c.path("state"))) == before, "and touched nothing in its state directory")

        return c.verdict(scenario, 30)


if __name__ == "__main__":
    sys.exit(main())
