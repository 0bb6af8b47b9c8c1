"""The server's own identity on the wire: without identity options serve answers with a HwId and ePIDs
generated once and stored in the state directory (not vlmcsd's 3A1C049600B60076); two starts with the
same state directory answer the same, two state directories differ; systemd's $STATE_DIRECTORY is the
default; --hwid, --epid and --from override it (impersonation stays explicit) without touching the file;
a damaged identity file stops the start with exit 2 and stays as it was."""
import json
import os
import subprocess
import tempfile
import time

from replaylib import KMS_REPLAY, Server, capture, check, finish, run

V6 = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")
OFFICE = capture("vlmcs-vlmcsd-v6-office2016-T-3conn.pcapng")
VLMCSD_HWID = "3A1C049600B60076"
work = tempfile.mkdtemp(prefix="kms-replay-identity-")


def identity(srv, cap=V6):
    rc, out = run("send", cap, "--to", srv.v4, "--json")
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{") and "call_id" in l]
    check(rc == 0 and lines, f"send {cap}:\n{out}")
    return {(l.get("hwid"), l.get("epid")) for l in lines}


def stored(state):
    text = open(os.path.join(state, "identity")).read()
    kv = dict(l.split("=", 1) for l in text.splitlines() if "=" in l and not l.startswith("#"))
    return text, kv


a, b = os.path.join(work, "a"), os.path.join(work, "b")
with Server(state_dir=a) as srv:
    first = identity(srv)
    first_office = identity(srv, OFFICE)
text_a, kv = stored(a)
check(len(first) == 1, f"one identity per family: {first}")
hwid, epid = next(iter(first))
check(hwid != VLMCSD_HWID and len(hwid) == 16, f"generated HwId, not vlmcsd's: {hwid}")
check(kv.get("hwid") == hwid and kv.get("Windows") == epid, f"the answer is the stored identity: {kv} {first}")
check({e for _, e in first_office} == {kv.get("Office2016")}, f"Office 2016 ePID from the file: {first_office}")
check(kv.get("Office2016") != epid, "per-family ePIDs")
# Restart with the same folder: the same host; the file is not rewritten.
with Server(state_dir=a) as srv:
    check(identity(srv) == first, "same state directory, same identity after a restart")
check(stored(a)[0] == text_a, "identity file unchanged by a restart")
# Another installation.
with Server(state_dir=b) as srv:
    other = identity(srv)
check(other.isdisjoint(first) and next(iter(other))[0] != hwid, f"another state directory, another identity: {other}")

# systemd's StateDirectory= ($STATE_DIRECTORY) is the default folder.
sd = os.path.join(work, "systemd-state")
os.mkdir(sd)
env = dict(os.environ, STATE_DIRECTORY=sd)
ready = os.path.join(work, "sd.ready")
proc = subprocess.Popen([KMS_REPLAY, "serve", "--listen", "127.0.0.1:0", "--ready-file", ready, "--quiet"],
                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
try:
    for _ in range(200):
        if os.path.exists(ready) or proc.poll() is not None:
            break
        time.sleep(0.05)
    check(os.path.exists(os.path.join(sd, "identity")), "identity stored in $STATE_DIRECTORY")
finally:
    proc.terminate()
    proc.wait(timeout=10)

# Explicit options win and leave the file alone: impersonating vlmcsd is a choice.
EPID = "03612-00206-556-123727-03-1033-17763.0000-2972018"
with Server("--hwid", VLMCSD_HWID, "--epid", "Windows=" + EPID, state_dir=a) as srv:
    check(identity(srv) == {(VLMCSD_HWID, EPID)}, "--hwid/--epid override the generated identity")
    check({e for _, e in identity(srv, OFFICE)} == {kv.get("Office2016")}, "other families keep the stored ePIDs")
check(stored(a)[0] == text_a, "identity file unchanged by explicit options")
ini = os.path.join(work, "i.ini")
with open(ini, "w") as f:
    f.write("[server]\nhwid=\n[hwid]\nWindows=0102030405060708\n")
with Server("--config", ini, state_dir=a) as srv:
    check(identity(srv) == {("0102030405060708", epid)}, "INI: empty hwid means generated, [hwid] per family wins")
# --from: the recorded server's identity; the state directory is not even created.
c = os.path.join(work, "c")
with Server("--from", V6, state_dir=c) as srv:
    got = identity(srv)
    check({h for h, _ in got} == {VLMCSD_HWID}, f"--from takes the recorded (vlmcsd) HwId: {got}")
check(not os.path.exists(c), "--from leaves the state directory alone")

# A damaged identity file: exit 2, a clear message, the file untouched.
bad = os.path.join(work, "bad")
os.mkdir(bad)
with open(os.path.join(bad, "identity"), "w") as f:
    f.write("[identity]\nhwid=nothex\n")
rc, out = run("serve", "--listen", "127.0.0.1:0", "--state-dir", bad)
check(rc == 2 and "identity" in out and "malformed" in out, f"damaged identity file: {rc} {out}")
check(open(os.path.join(bad, "identity")).read() == "[identity]\nhwid=nothex\n", "damaged file left as it was")
subprocess.run(["rm", "-rf", work])
finish()
