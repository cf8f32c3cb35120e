"""BMCs for simulated blades: one OpenIPMI `ipmi_sim` (Debian `openipmi`) per blade on
127.0.0.1, each on its own UDP port with its own user and password (the password in a
file of mode 0600), whose chassis power is the blade's power, driven by the real
`fence_ipmilan` (Debian `fence-agents`, which runs `ipmitool -I lanplus`). Python 3
stdlib only.

How a blade's power follows its BMC (the facts: /work/shared/notes/ipmi-sim-bmc.md):
the BMC's lan.conf has a `serial 15 127.0.0.1 VMPORT codec VM` line (channel 15, the
system interface, as for a qemu guest) and `startcmd` = bmc_machine.py, started at once
(`startnow true`). ipmi_sim reports power on while that process exists. A power-off
("chassis power off") goes through channel 15: ipmi_sim sends the VM command "power off"
over the link, and the machine SIGKILLs the blade's agent, runs `loom-agent
sim-power-off` (its running domains end in the state file, journaled then) and exits;
ipmi_sim reaps it and answers "off" from then on. A power-on runs the startcmd again:
a new machine, a new agent. Without the serial line ipmi_sim refuses chassis control
(no power-capable channel 15); without `-C 3` ipmitool 1.8.19 first asks for cipher
suites ipmi_sim does not list and waits 10 s.

  Bmcs(work, harness_pid=None)          context manager; every process it started (ipmi_sim,
                                        machines, agents: one process group per BMC) is
                                        killed on the way out, also on an exception
  bmcs.add(blade, agent_argv, power_off_argv)
                                        generate the BMC's files and start its ipmi_sim (which
                                        powers the blade on: its machine starts the agent)
  bmcs.wait_ready(blades, timeout)      each answers `fence_ipmilan -o status` with ON and its
                                        agent runs (bounded)
  bmcs.fence_ipmilan(blade, action)     the real fence_ipmilan against the blade's BMC:
                                        (exit code, output, seconds)
  bmcs.status(blade)                    "ON" | "OFF" | None (no answer)
  bmcs.agent_pid(blade) / machine_alive(blade)
  bmcs.stop(blade)                      kill its ipmi_sim only: the BMC is unreachable, the
                                        blade keeps running
  bmcs.power_off_by_hand(blade)         what an operator does when the BMC is dead: pull the
                                        plug (SIGTERM to the machine: agent killed, domains
                                        ended, journaled), bounded
  bmcs.blades_yaml()                    the `kind: Blade` declarations of every BMC (address,
                                        port, user, password_file), for POST /v1/apply
  documented_fence_command()            loomd's fence-command as packaging/etc/loomd.conf
                                        documents it (fence_ipmilan, templated {bmc_*})
  write_loomd_conf(path)                a loomd --config file with that line and the options
                                        ipmi_sim needs (FENCE_TEST_OPTIONS)
"""
import json, os, secrets, shlex, signal, socket, subprocess, sys, time

sys.dont_write_bytecode = True

IPMI_SIM = "/usr/bin/ipmi_sim"
FENCE_IPMILAN = "/usr/sbin/fence_ipmilan"
MACHINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bmc_machine.py")

# Seconds fence_ipmilan sleeps after "chassis power off" before it polls for "off"
# (its default is 2, for BMCs that say "off" before the host is). ipmi_sim says "off"
# only once the machine has ended its domains (bmc_machine.py), so 0 is sound here.
POWER_WAIT = 0
# How long fence_ipmilan waits for any one ipmitool answer, and for "off": an unreachable
# BMC fails the fence command after this, well within loomd's --fence-timeout-ms.
POWER_TIMEOUT = 5
# What ipmi_sim needs beyond the documented line: -C 3 (ipmitool's default cipher-suite
# discovery costs 10 s against ipmi_sim) and no wait after "off" (see POWER_WAIT).
FENCE_TEST_OPTIONS = f"--cipher=3 --power-wait={POWER_WAIT}"
LOOMD_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging", "etc", "loomd.conf")

def documented_fence_command():
    """The `# fence-command: '...'` line of packaging/etc/loomd.conf, unquoted: the line
    README and docs/FENCING.md show, which this test runs (so the documentation stays true)."""
    with open(LOOMD_CONF) as f:
        for line in f:
            if line.startswith("# fence-command: '") and "{bmc_address}" in line:
                return line.split(": ", 1)[1].strip().strip("'")
    raise RuntimeError(f"{LOOMD_CONF} documents no fence_ipmilan fence-command with {{bmc_address}}")

def write_loomd_conf(path):
    """A loomd --config file holding the documented fence-command (uncommented, quoted as
    the file shows it) plus FENCE_TEST_OPTIONS. Returns the command loomd will run."""
    command = documented_fence_command() + " " + FENCE_TEST_OPTIONS
    with open(path, "w") as f:
        f.write(f"# the documented line of packaging/etc/loomd.conf, and what ipmi_sim needs\nfence-command: '{command}'\n")
    return command

def fence_ipmilan_argv(address, port, user, password_file, action, power_wait=POWER_WAIT, power_timeout=POWER_TIMEOUT):
    """The fence_ipmilan command line for one BMC, for the test's own calls (status, on).
    loomd builds its own from the documented template and the Blade declarations."""
    return [FENCE_IPMILAN, f"--ip={address}", f"--ipport={port}", f"--username={user}",
            f"--password-script=cat {shlex.quote(password_file)}", "--lanplus", "--cipher=3",
            f"--action={action}", f"--power-wait={power_wait}", f"--power-timeout={power_timeout}"]

def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def _safe(path):
    # lan.conf strings are "..." with no escapes, and startcmd runs under /bin/sh -c.
    if any(c in path for c in " \"'\\$`\n"):
        raise ValueError(f"BMC path {path!r} has a character lan.conf or /bin/sh would misread")
    return path

class Bmc:
    """One blade's BMC: where it listens, who may log in, its files and its ipmi_sim."""

    def __init__(self, blade, work):
        self.blade = blade
        self.address = "127.0.0.1"
        self.port = free_udp_port()
        self.vm_port = free_tcp_port()
        self.user = f"fence-{blade}"[:16]  # IPMI user names are at most 16 bytes
        self.dir = os.path.join(work, f"bmc-{blade}")
        self.password_file = os.path.join(self.dir, "password")
        self.proc = None

    def argv(self, action, **kw):
        return fence_ipmilan_argv(self.address, self.port, self.user, self.password_file, action, **kw)

class Bmcs:
    def __init__(self, work, harness_pid=None):
        self.work = work
        self.harness_pid = harness_pid or os.getpid()
        self.bmcs = {}
        self._logs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __getitem__(self, blade):
        return self.bmcs[blade]

    def add(self, blade, agent_argv, power_off_argv):
        """Generate blade's BMC (lan.conf, command file, password, machine config in
        WORK/bmc-BLADE, logs WORK/bmc-BLADE.log, machine-BLADE.log, agent-BLADE.log) and
        start its ipmi_sim, which powers the blade on at once."""
        b = Bmc(blade, self.work)
        os.makedirs(os.path.join(b.dir, "state"), mode=0o700)
        password = secrets.token_hex(8)  # IPMI 2.0 passwords: at most 20 bytes
        fd = os.open(b.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        machine_cfg = os.path.join(b.dir, "machine.json")
        with open(machine_cfg, "w") as f:
            json.dump({"blade": blade, "vm_port": b.vm_port, "agent_argv": list(agent_argv),
                       "power_off_argv": list(power_off_argv),
                       "agent_log": os.path.join(self.work, f"agent-{blade}.log"),
                       "agent_pid_file": os.path.join(b.dir, "agent.pid"),
                       "log": os.path.join(self.work, f"machine-{blade}.log"),
                       "harness_pid": self.harness_pid}, f)
        startcmd = f"{_safe(sys.executable)} {_safe(MACHINE)} {_safe(machine_cfg)}"
        lan_conf = os.path.join(b.dir, "lan.conf")
        # The password is in here too (ipmi_sim reads it from nowhere else): 0600 as well.
        fd = os.open(lan_conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"""# BMC of simulated blade {blade} (generated by tests/e2e/bmc.py)
name "bmc-{blade}"
set_working_mc 0x20
  startlan 1
    addr {b.address} {b.port}
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid {secrets.token_hex(16)}
  endlan
  # The machine's link: its power follows this channel (power-off is sent over it).
  serial 15 127.0.0.1 {b.vm_port} codec VM
  startcmd "{startcmd}"
  startnow true
  # The machine powers off within milliseconds of the request; these are backstops.
  poweroff_wait 5
  kill_wait 5
  user 1 false "" "" user 1 md5
  user 2 true "{b.user}" "{password}" admin 4 md5
""")
        cmds = os.path.join(b.dir, "ipmisim.emu")
        with open(cmds, "w") as f:
            # mc_setbmc first (else "No bmc_ipmb specified or configured"); a malformed
            # mc_add makes ipmi_sim segfault.
            f.write("mc_setbmc 0x20\n"
                    "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n"
                    "mc_enable 0x20\n")
        log = open(os.path.join(self.work, f"bmc-{blade}.log"), "a")
        self._logs.append(log)
        # stdin stays an open pipe: ipmi_sim reads console commands from it and exits at
        # its end. Its own session: the machine and the agent it starts share the group,
        # so close() ends them all, whichever are left.
        b.proc = subprocess.Popen([IPMI_SIM, "-c", lan_conf, "-f", cmds, "-s", os.path.join(b.dir, "state")],
                                  stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  preexec_fn=_die_with_parent if _prctl else None)
        self.bmcs[blade] = b
        return b

    def fence_ipmilan(self, blade, action, timeout=30, **kw):
        """Run the real fence_ipmilan against blade's BMC: (exit code, output, seconds)."""
        t0 = time.monotonic()
        try:
            r = subprocess.run(self.bmcs[blade].argv(action, **kw), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        except subprocess.TimeoutExpired as e:
            return None, (e.stdout or "") + f"\n(killed after {timeout} s)", time.monotonic() - t0
        return r.returncode, r.stdout, time.monotonic() - t0

    def status(self, blade):
        """What fence_ipmilan -o status says: "ON", "OFF", or None when the BMC does not answer."""
        _, out, _ = self.fence_ipmilan(blade, "status")
        for line in out.splitlines():
            if line.startswith("Status: "):
                return line.split()[1]
        return None

    def agent_pid(self, blade):
        """The pid of the agent blade's machine runs; None when powered off (or not yet on)."""
        try:
            with open(os.path.join(self.bmcs[blade].dir, "agent.pid")) as f:
                return int(f.read())
        except (FileNotFoundError, ValueError):
            return None

    def agent_alive(self, blade):
        pid = self.agent_pid(blade)
        if pid is None:
            return False
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    def wait_ready(self, blades=None, timeout=20):
        """Every BMC (or those of `blades`) answers `fence_ipmilan -o status` with ON and its
        agent runs; raises RuntimeError naming the first that did not within `timeout` s."""
        deadline = time.monotonic() + timeout
        for blade in blades or list(self.bmcs):
            while True:
                b = self.bmcs[blade]
                if b.proc.poll() is not None:
                    raise RuntimeError(f"ipmi_sim of {blade} exited ({b.proc.returncode}); see bmc-{blade}.log")
                if self.agent_alive(blade) and self.status(blade) == "ON":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the BMC of {blade} did not answer 'Status: ON' with its agent running "
                                       f"within {timeout} s")
                time.sleep(0.1)

    def stop(self, blade):
        """Kill blade's ipmi_sim alone (SIGKILL): the BMC no longer answers; the machine,
        its agent and its domains keep running."""
        p = self.bmcs[blade].proc
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)

    def blades_yaml(self, blades=None):
        """`kind: Blade` declarations of the BMCs (of `blades`, default all): what an
        operator applies so that loomd's templated fence command reaches each."""
        docs = []
        for blade in sorted(blades or self.bmcs):
            b = self.bmcs[blade]
            docs.append(f"kind: Blade\nname: {blade}\ndescription: simulated blade behind ipmi_sim\n"
                        f"bmc: {{address: {b.address}, port: {b.port}, user: {b.user}, password_file: {b.password_file}}}\n")
        return "---\n".join(docs)

    def machine_pid(self, blade):
        """The pid of blade's machine (its agent's parent), or None when it is off."""
        pid = self.agent_pid(blade)
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/stat") as f:
                return int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def power_off_by_hand(self, blade, timeout=20):
        """Pull blade's plug, as an operator does when its BMC is dead: SIGTERM to its
        machine, which kills the agent, ends the running domains (journaled) and exits.
        Returns once the machine is gone (bounded); RuntimeError otherwise."""
        machine = self.machine_pid(blade)
        if machine is None:
            raise RuntimeError(f"{blade} has no running machine to power off")
        os.kill(machine, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{machine}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                        return
            except FileNotFoundError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{blade}'s machine (pid {machine}) did not power off within {timeout} s")

    def close(self):
        """Kill every process group this started (ipmi_sim, machines, agents)."""
        for b in self.bmcs.values():
            if b.proc is None:
                continue
            try:
                os.killpg(b.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                b.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for f in self._logs:
            f.close()
        self._logs.clear()

try:  # resolved here, not in the forked child
    import ctypes
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (ImportError, OSError, AttributeError):
    _prctl = None

def _die_with_parent():
    # ipmi_sim dies with the harness (its machine notices the harness is gone by itself).
    _prctl(1, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)
