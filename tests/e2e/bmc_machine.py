#!/usr/bin/env python3
"""The "machine" of a simulated blade whose BMC is OpenIPMI's ipmi_sim (tests/e2e/bmc.py).
Python 3 stdlib only.

ipmi_sim runs this as its `startcmd` (ipmi_lan(5)) at power-on, and its chassis power
is this process existing: "Chassis Power is on" while it runs, "off" once ipmi_sim has
reaped it. It runs the blade's agent as its child and speaks ipmi_sim's serial "VM"
codec (lanserv/serial_ipmi.c, the protocol qemu's ipmi-bmc-extern speaks) over the TCP
port of the BMC's `serial 15 ... codec VM` line, the way a qemu guest's BMC link does.

Power-off (the VM command 0x03 "power off" or 0x09 "force off", or SIGTERM, which
ipmi_sim sends when the link is down or the machine is slow): SIGKILL the agent (a
frozen one too), then `loom-agent sim-power-off` (the blade's running domains end in
its state file, journaled now, as destroy), then exit 0. So the BMC never says "off"
before the domains ended: a fence agent that sees "off" may have the servers restarted.
Only after that does the BMC answer "off".

The BMC going away (ipmi_sim killed: end of file on the link) powers nothing off: the
blade keeps running, as a host does when its BMC's network dies. The agent exiting on
its own (kill -9) does not either: the host and its domains stay up.

Bounded life: when the harness process (`harness_pid`) is gone, the machine kills its
agent and exits, so a killed test leaves nothing behind.

Usage: bmc_machine.py CONFIG.json, where CONFIG holds blade, vm_port, agent_argv,
power_off_argv, agent_log, agent_pid_file, log, harness_pid."""
import json, os, selectors, signal, socket, subprocess, sys, time

sys.dont_write_bytecode = True

# The VM codec (lanserv/serial_ipmi.c): a frame ends with 0xA0 (an IPMI message) or 0xA1
# (a control command); 0xAA escapes the next byte (its bit 4 was set).
MSG_END, CMD_END, ESCAPE = 0xA0, 0xA1, 0xAA
CMD_VERSION, CMD_POWEROFF, CMD_FORCEOFF, CMD_CAPABILITIES = 0xFF, 0x03, 0x09, 0x08
CAN_POWER = 0x01

class PowerOff(Exception):
    pass

class VmLink:
    """Frames from the BMC, unescaped; only control commands matter here."""

    def __init__(self):
        self.buf, self.escape = bytearray(), False

    def feed(self, data):
        """The complete control commands (bytes) in `data`, in order."""
        out = []
        for b in data:
            if b in (MSG_END, CMD_END):
                if b == CMD_END and self.buf:
                    out.append(bytes(self.buf))
                self.buf.clear()
                self.escape = False
            elif b == ESCAPE:
                self.escape = True
            else:
                self.buf.append(b & ~0x10 if self.escape else b)
                self.escape = False
                if len(self.buf) > 1024:  # no frame of ours is that long: resynchronise
                    self.buf.clear()
        return out

def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    log = open(cfg["log"], "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)

    def say(what):
        print(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} machine {cfg['blade']} "
              f"(pid {os.getpid()}): {what}", flush=True)

    def on_sigterm(signum, frame):
        raise PowerOff("SIGTERM from the BMC")

    signal.signal(signal.SIGTERM, on_sigterm)
    harness = process_identity(cfg["harness_pid"])
    if harness is None:
        say(f"the harness (pid {cfg['harness_pid']}) is gone: not powering on")
        return 1
    say("power on")

    # The link first: ipmi_sim listens before it runs its startcmd, but give it a bounded while.
    link, deadline = None, time.monotonic() + 10
    while link is None and time.monotonic() < deadline:
        try:
            link = socket.create_connection(("127.0.0.1", cfg["vm_port"]), timeout=1)
        except OSError:
            time.sleep(0.05)
    if link is None:
        say(f"no BMC link on 127.0.0.1:{cfg['vm_port']} after 10 s; running without one")
    else:
        link.setblocking(False)
        link.sendall(bytes([CMD_CAPABILITIES, CAN_POWER, CMD_END]))

    agent_log = open(cfg["agent_log"], "a")
    agent = subprocess.Popen(cfg["agent_argv"], stdout=agent_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             preexec_fn=die_with_parent)
    tmp = cfg["agent_pid_file"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(agent.pid))
    os.rename(tmp, cfg["agent_pid_file"])
    say(f"agent started (pid {agent.pid})")

    sel = selectors.DefaultSelector()
    if link is not None:
        sel.register(link, selectors.EVENT_READ)
    frames = VmLink()
    agent_gone = False
    try:
        while True:
            for _key, _ in sel.select(timeout=0.2):
                try:
                    data = link.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    say("BMC link closed (the BMC is gone); the blade keeps running")
                    sel.unregister(link)
                    link.close()
                    break
                for cmd in frames.feed(data):
                    if cmd[0] in (CMD_POWEROFF, CMD_FORCEOFF):
                        raise PowerOff("force off" if cmd[0] == CMD_FORCEOFF else "power off")
                    if cmd[0] != CMD_VERSION:
                        say(f"BMC command {cmd.hex()} ignored")
            if not agent_gone and agent.poll() is not None:
                agent_gone = True
                say(f"agent exited ({agent.returncode}); the blade and its domains stay up")
            if process_identity(cfg["harness_pid"]) != harness:
                say("the harness is gone: agent killed, machine exits")
                agent.kill()
                return 0
    except PowerOff as why:
        t0 = time.monotonic()
        say(f"{why}: powering off")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
        if agent.poll() is None:
            agent.kill()
        agent.wait(timeout=10)
        try:
            os.unlink(cfg["agent_pid_file"])
        except FileNotFoundError:
            pass
        r = subprocess.run(cfg["power_off_argv"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        say(f"{r.stdout.strip()} (exit {r.returncode}); off {int((time.monotonic() - t0) * 1000)} ms after the request")
        return 0 if r.returncode == 0 else 1

def process_identity(pid):
    """(state, start time) of a process from /proc, or None when there is none: a zombie
    (killed, not yet reaped) counts as gone, and the start time tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]

try:  # resolved here, not in the forked child
    import ctypes
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):
    _prctl = None

def die_with_parent():
    # The agent is part of the machine: it goes when the machine goes (PR_SET_PDEATHSIG).
    if _prctl is not None:
        _prctl(1, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)

if __name__ == "__main__":
    sys.exit(main())
