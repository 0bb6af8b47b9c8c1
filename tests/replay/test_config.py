"""Configuration: the example INI (every option) loads; an INI's identity (ePID, HwId per family,
intervals, count) reaches the responses; command-line options override the INI; bad values and unknown
keys are refused; JSON activation log lines carry every field; ePIDs stay stable for the server's life."""
import json
import os
import subprocess
import tempfile

from replaylib import KMS_REPLAY, REPLAY_DIR, Server, capture, check, finish, run

V6 = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")
work = tempfile.mkdtemp(prefix="kms-replay-config-")

# The shipped example carries every option and loads as is (listen overridden for the test).
example = os.path.join(REPLAY_DIR, "kms-replay.ini")
with Server("--config", example) as srv:
    rc, out = run("send", V6, "--to", srv.v4)
    check(rc == 0, "example INI serves:\n" + out)
keys = [l.split("=")[0] for l in open(example) if "=" in l and not l.startswith("#")]
for opt in ["listen", "port", "threads", "foreground", "daemon", "state-dir", "pid-file", "ready-file", "ndr64", "btfn", "host-build", "lcid",
            "activation-interval", "renewal-interval", "hwid", "from", "max-n-policy", "max-time-skew",
            "strict-opnum", "count-policy", "fixed-count", "db", "db-sync", "idle-timeout", "max-connections",
            "max-pdu-size", "max-requests-per-connection", "allow", "log-format", "log-file", "quiet"]:
    check(opt in keys, f"example INI lacks {opt}")

EPID = "03612-00206-556-123456-03-1033-17763.0000-2772022"
ini = os.path.join(work, "custom.ini")
with open(ini, "w") as f:
    f.write("[server]\nfixed-count=77\nactivation-interval=60\nrenewal-interval=2000\nlog-format=json\n"
            "[epid]\nWindows=" + EPID + "\n[hwid]\nWindows=0011223344556677\n")
with Server("--config", ini, "--renewal-interval", "3000") as srv:
    rc, out = run("send", V6, "--to", srv.v4, "--json")
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{") and "call_id" in l]
    check(rc == 0 and len(lines) == 3, "custom INI send:\n" + out)
    check(all(l["epid"] == EPID and l["count"] == 77 and l["hwid"] == "0011223344556677" for l in lines),
          f"INI ePID/HwId/count not used: {lines}")
    # The INI says renewal 2000; the command line's 3000 wins.
    check(all(l["activation_interval"] == 60 and l["renewal_interval"] == 3000 for l in lines),
          f"intervals: {lines}")
    rc, chk = run("check", V6)  # unrelated: the capture itself still checks
    log = [json.loads(l) for l in srv.log().splitlines() if l.startswith("{")]
    acts = [l for l in log if "cmid" in l]
    check(len(acts) == 3, f"JSON activation lines: {log}")
    for field in ["kind", "ts", "client", "workstation", "cmid", "product", "version", "license_status", "result",
                  "count"]:
        check(all(field in a for a in acts), f"JSON log lacks {field}")
    # The vocabulary of docs/json.md: kind, ts in ISO 8601 UTC, version without a "v".
    check(all(a["kind"] == "activation" and a["version"] == "6.0" and a["ts"].endswith("Z") for a in acts),
          f"JSON activation lines off the shared vocabulary: {acts}")
# Stable ePIDs: two sends against one server see the same generated ePID.
with Server() as srv:
    a = run("send", V6, "--to", srv.v4)[1]
    b = run("send", V6, "--to", srv.v6)[1]
    ea = {l.split("ePID ")[1].split()[0] for l in a.splitlines() if "ePID " in l}
    eb = {l.split("ePID ")[1].split()[0] for l in b.splitlines() if "ePID " in l}
    check(len(ea) == 1 and ea == eb, f"ePID not stable: {ea} {eb}")

# Refusals: unknown key, bad value, bad family, bad HwId, bad CIDR, genuine without db.
bad = {"unknown key": "[server]\nlisten-port=1\n", "bad boolean": "[server]\nndr64=maybe\n",
       "unknown family": "[epid]\nWindows95=" + EPID + "\n", "bad hwid": "[server]\nhwid=123\n",
       "bad cidr": "[server]\nallow=10.0.0.0/33\n", "genuine without db": "[server]\ncount-policy=genuine\n",
       "bad epid": "[epid]\nWindows=12345\n", "unknown group": "[serverx]\nport=1\n"}
for name, text in bad.items():
    path = os.path.join(work, "bad.ini")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([KMS_REPLAY, "serve", "--foreground", "--config", path, "--listen", "127.0.0.1:0",
                        "--state-dir", os.path.join(work, "state")],
                       capture_output=True, text=True, timeout=20)
    check(p.returncode == 2 and p.stderr.strip(), f"{name}: exit {p.returncode} {p.stderr}")
subprocess.run(["rm", "-rf", work])
finish()
