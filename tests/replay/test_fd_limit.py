"""Descriptor limits (issue 11): accept must not spin when the process runs out of descriptors.
1. Started with a hard RLIMIT_NOFILE of 64 and --max-connections 1000: a warning at start,
   max-connections lowered to what the limit allows; connections beyond it are refused one log line
   each, and the server keeps serving.
2. The limit lowered under a running server (prlimit): accept fails with EMFILE; the server pauses
   accepting (CPU stays low, the EMFILE line is rate-limited) and serves again once connections close.
Loopback only; every loop is bounded in count and time."""
import os
import re
import resource
import socket
import subprocess
import time

import replaylib
from replaylib import Server, capture, check, finish, run

CAP = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_clients(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        s.connect(("127.0.0.1", port))  # completes in the kernel's backlog even when not accepted
        socks.append(s)
    return socks


def served(srv):
    rc, out = run("send", CAP, "--to", srv.v4, "--timeout", "10", timeout=60)
    return rc == 0 and len(re.findall(r"\bcount \d+", out)) == 3, out


# 1. The limit at start.
def low_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


orig_popen = subprocess.Popen


class LimitedPopen(orig_popen):
    """The server's Popen, with the limit set in the child before exec (Server has no hook for it)."""

    def __init__(self, *a, **kw):
        kw.setdefault("preexec_fn", low_limit)
        super().__init__(*a, **kw)


replaylib.subprocess.Popen = LimitedPopen
with Server("--max-connections", "1000", listen=("127.0.0.1:0",)) as srv:
    replaylib.subprocess.Popen = orig_popen
    err = open(srv.errpath).read()
    m = re.search(r"max-connections lowered from 1000 to (\d+)", err)
    check(m is not None, f"warning at start:\n{err}")
    cap = int(m.group(1)) if m else 0
    check(0 < cap < 64, f"max-connections within the limit: {cap}")
    socks = open_clients(srv.port(), 60)
    time.sleep(1.0)
    ok, out = served(srv)
    check(not ok, "the extra client is refused while the limit's connections are open")
    for s in socks:
        s.close()
    end = time.time() + 10
    while time.time() < end and not served(srv)[0]:
        time.sleep(0.2)
    ok, out = served(srv)
    check(ok, f"served after the connections closed:\n{out}")
    log = srv.log()
    refused = log.count("(max-connections)")
    check(refused >= 60 - cap - 1 and refused <= 60 + 10, f"{refused} refusal lines for {60 - cap} refused")
    check("Too many open files" not in log, "no EMFILE with the lowered max-connections")
replaylib.subprocess.Popen = orig_popen

# 2. The limit lowered at run time: EMFILE in accept.
with Server("--max-connections", "1000", listen=("127.0.0.1:0",)) as srv:
    ok, out = served(srv)
    check(ok, f"served before the limit:\n{out}")
    resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (48, 48))
    socks = open_clients(srv.port(), 100)
    time.sleep(0.5)
    cpu0, t0 = cpu_seconds(srv.proc.pid), time.time()
    time.sleep(3.0)
    cpu = cpu_seconds(srv.proc.pid) - cpu0
    wall = time.time() - t0
    log = srv.log()
    emfile = [l for l in log.splitlines() if "Too many open files" in l]
    print(f"EMFILE: server CPU {cpu:.2f} s in {wall:.1f} s, {len(emfile)} log lines, log {len(log)} bytes")
    check(emfile, "EMFILE logged")
    check(len(emfile) <= 2, f"EMFILE lines rate-limited: {len(emfile)}")
    check(cpu < 0.5 * wall, f"no accept spin: {cpu:.2f} s of CPU in {wall:.1f} s")
    check(len(log) < 100_000, f"log size {len(log)}")
    for s in socks:
        s.close()
    end, ok = time.time() + 15, False
    while time.time() < end and not ok:
        ok, out = served(srv)
        if not ok:
            time.sleep(0.2)
    check(ok, f"served again after the connections closed:\n{out}")
finish()
