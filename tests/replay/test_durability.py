"""Durability of the genuine count: kill -9 the server during a load of genuine-mode activations (each
with a fresh CMID), restart it on the same database, and find every CMID the
server answered (acknowledged) before the kill. Then the restarted host's count includes them (capped at 2 x N), and status reports them."""
import json
import os
import signal
import subprocess
import tempfile
import time

from replaylib import KMS_REPLAY, Server, capture, check, finish, run

CAP = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")
work = tempfile.mkdtemp(prefix="kms-replay-durability-")
db = os.path.join(work, "kms.db")
acks = os.path.join(work, "acks.txt")

srv = Server("--count-policy", "genuine", "--db", db, "--quiet", workdir=work)
load = subprocess.Popen([KMS_REPLAY, "send", CAP, "--to", srv.v4, "--vary-cmid", "--ack-file", acks, "--concurrency",
                         "4", "--duration", "4", "--timeout", "2", "--quiet"], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True)
time.sleep(1.5)
srv.proc.send_signal(signal.SIGKILL)
srv.proc.wait(timeout=10)
srv.stop()
out, _ = load.communicate(timeout=60)
acked = [l.strip() for l in open(acks) if l.strip()]
print(f"{len(acked)} activations acknowledged before kill -9")
check(len(acked) > 50, f"too few acknowledged activations: {len(acked)}\n{out}")

srv2 = Server("--count-policy", "genuine", "--db", db, "--quiet", workdir=work)
rc, js = run("status", "--db", db, "--json", "--cmids")
check(rc == 0, "status exit code")
status = json.loads(js)
stored = {c["cmid"] for c in status["cmids"]}
missing = [c for c in acked if c not in stored]
check(not missing, f"{len(missing)} acknowledged CMIDs lost, e.g. {missing[:3]}")
check(len(set(acked)) == len(acked), "CMIDs unique")
rows = status["kms_ids"]
check(len(rows) == 1 and rows[0]["distinct_cmids_30d"] >= len(acked), f"status counts: {rows}")
# The restarted host reports the capped count (2 x N = 50 for Windows clients with N 25) once it has
# seen enough machines.
rc, out = run("send", CAP, "--to", srv2.v4)
check(rc == 0 and "count 50" in out, "count after restart:\n" + out)
rc, text = run("status", "--db", db)
check(rc == 0 and "Current count:" in text and "Total requests received:" in text, "status text:\n" + text)
srv2.stop()
# A fresh database counts distinct machines: 3 requests with 3 fresh CMIDs -> counts 1, 2, 3.
db2 = os.path.join(work, "fresh.db")
with Server("--count-policy", "genuine", "--db", db2) as srv3:
    rc, out = run("send", CAP, "--to", srv3.v4, "--vary-cmid")
    counts = [l.split("count ")[1].split()[0] for l in out.splitlines() if "count " in l]
    check(counts == ["1", "2", "3"], f"genuine counts on a fresh table: {counts}\n{out}")
    rc, out = run("send", CAP, "--to", srv3.v4)  # the same recorded CMID three times counts once more
    counts = [l.split("count ")[1].split()[0] for l in out.splitlines() if "count " in l]
    check(counts == ["4", "4", "4"], f"repeated CMID counted once: {counts}")
subprocess.run(["rm", "-rf", work])
finish()
