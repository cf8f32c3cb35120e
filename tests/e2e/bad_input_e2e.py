#!/usr/bin/env python3
"""End-to-end: one malformed request must not take loomd down (DESIGN invariant 8).

The 18-byte body ", {network: back}]" (a stray top-level ',') made Debian's yaml-cpp 0.7
loop (jbeder/yaml-cpp#1040): loomd's core stalled 14 s allocating until the OOM killer,
and `loomctl validate` died of std::bad_alloc. Here a real loomd gets that body (dry-run,
real apply, delete) and other hostile bodies; each must be a 400 naming FILE:LINE:COL in
well under a second, loomd's RSS must stay flat, and loomd must go on serving: /v1/health
answers and a valid apply afterwards works. Then the real `loomctl validate` on the file:
exit 1 and the one-line diagnostic. Prints the time each rejection took.

Usage: bad_input_e2e.py --loomd PATH --agent PATH --loomctl PATH [--keep]"""
import json, os, subprocess, sys, time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from loomharness import Cluster, arg_parser, check, prod_preamble

STRAY = ", {network: back}]"
STRAY_MESSAGE = "YAML syntax error: unexpected ',' (a comma separates items only inside [ ] or { })"
REJECT_WITHIN_S = 1.0      # the bound asked for; measured: under a millisecond
READ_AHEAD_WITHIN_S = 3.0  # that one costs yaml-cpp scanning 256 KiB first (~0.25 s here)
RSS_GROWTH_KB = 4096       # "flat": the stray comma used to take gigabytes
REPEATS = 20               # each form of the stray-comma request, so a leak would show

def laughs():
    text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 10):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    return text + "kind: Partition\nname: *a9\n"

# (what, body, "LINE:COL: message" expected after "bad.yaml:"[, bound in s])
HOSTILE = [
    ("deep nesting", "[" * 65 + "]" * 65 + "\n",
     "1:65: YAML nested more than 64 deep (collections inside collections; a declaration nests 4)"),
    ("billion laughs", laughs(),
     "6:45: alias '*a4' takes the input past 1000000 YAML nodes (an alias counts as every node it stands for)"),
    ("a NUL byte", "kind: Partition\nname: a\0b\n",
     "2:8: character U+0000 is not allowed in YAML (a NUL byte: is this a binary or UTF-16 file?)"),
    ("a stray ',' after a valid document", "kind: Partition\nname: a\n---\n, x\n", "4:1: " + STRAY_MESSAGE),
    ("a body past the size limit", "#" * (8 * 1024 * 1024 + 1),
     " the input is 8388609 bytes; the most read at once is 8388608 (split it into several applies)"),
    ("a flow list past the read-ahead limit", "[" + "0," * (256 * 1024) + "0]\n",
     "1:1: a YAML flow collection ([...] or {...}) or scalar after this point is longer than 262144 bytes, "
     "the most read ahead (write a long list as a block sequence, one '- item' per line)", READ_AHEAD_WITHIN_S),
]

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")

def timed(fab, method, path, body):
    t0 = time.monotonic()
    status, text = fab.request(method, path, body)
    return status, text, time.monotonic() - t0

def expect_400(fab, method, path, body, expected, what, within=REJECT_WITHIN_S):
    status, text, seconds = timed(fab, method, path, body)
    diagnostics = json.loads(text).get("diagnostics") if status == 400 and text else None
    check(status == 400 and diagnostics == [expected] and seconds < within,
          f"{what}: 400 with ['{expected[:90]}'] in {seconds * 1000:.1f} ms",
          f"status {status}, {seconds:.3f} s, body {(text or '')[:400]}")
    return seconds

def main():
    ap = arg_parser()
    ap.add_argument("--loomctl", required=True)
    args = ap.parse_args()
    with Cluster(args.loomd, args.agent, prefix="loom-badinput-", keep=args.keep) as fab:
        def scenario():
            fab.start_loomd()
            pid = fab.procs["loomd"].pid
            status, _ = fab.post("/v1/apply?source=pools.yaml", prod_preamble(
                "52:54:00:30:00:00-52:54:00:30:ff:ff", "4c4f4f4d-0000-0000-0030-000000000000/16"))
            check(status == 200, "a valid apply before (partition, network, identity pool)")
            before = rss_kb(pid)
            expected = "bad.yaml:1:1: " + STRAY_MESSAGE
            times = []
            for path, what in (("/v1/apply?dry_run=1&source=bad.yaml", "dry-run apply"),
                               ("/v1/apply?source=bad.yaml", "apply"),
                               ("/v1/delete?source=bad.yaml", "delete")):
                times.append(expect_400(fab, "POST", path, STRAY, expected, f"the 18-byte body, {what}"))
                statuses = set()
                for _ in range(REPEATS - 1):
                    status, _, seconds = timed(fab, "POST", path, STRAY)
                    statuses.add(status)
                    times.append(seconds)
                check(statuses == {400}, f"the 18-byte body, {what}, {REPEATS - 1} times more: 400 each", str(statuses))
            after = rss_kb(pid)
            print(f"  stray comma: {len(times)} requests, {min(times) * 1000:.1f}-{max(times) * 1000:.1f} ms each, "
                  f"loomd RSS {before} kB -> {after} kB", flush=True)
            check(max(times) < REJECT_WITHIN_S, f"every one rejected within {REJECT_WITHIN_S} s")
            check(after - before <= RSS_GROWTH_KB, f"loomd's RSS grew by {after - before} kB (at most {RSS_GROWTH_KB})")
            check(fab.get("/v1/health") is not None, "/v1/health still answers")

            for what, body, expected_at, *within in HOSTILE:
                expect_400(fab, "POST", "/v1/apply?dry_run=1&source=bad.yaml", body, "bad.yaml:" + expected_at, what,
                           *within)
            check(fab.procs["loomd"].poll() is None, "loomd is still running")
            check(fab.get("/v1/health") is not None, "/v1/health still answers after the hostile bodies")

            status, answer = fab.post("/v1/apply?source=pool.yaml",
                                      "kind: Pool\nname: web\npartition: prod\nhypervisor: kvm\n"
                                      "blades: {match: {chassis: c1}}\n")
            check(status == 200 and answer["created"] == [{"kind": "Pool", "name": "web"}],
                  "a valid apply afterwards still works (Pool web created)", str(answer)[:300])

            bad = fab.write("bad.yaml", STRAY)
            t0 = time.monotonic()
            run = subprocess.run([args.loomctl, "validate", "-f", bad], capture_output=True, text=True, timeout=30)
            seconds = time.monotonic() - t0
            check(run.returncode == 1 and run.stderr == f"{bad}:1:1: {STRAY_MESSAGE}\n" and seconds < REJECT_WITHIN_S,
                  f"loomctl validate -f bad.yaml: exit 1, one line naming {os.path.basename(bad)}:1:1, "
                  f"in {seconds * 1000:.0f} ms",
                  f"exit {run.returncode} after {seconds:.3f} s, stderr {run.stderr[:400]!r}")
        return fab.verdict(scenario, 40)

if __name__ == "__main__":
    sys.exit(main())
