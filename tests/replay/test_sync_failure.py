"""A sync of the genuine-count database that fails (an I/O error from fdatasync, injected with
LD_PRELOAD while a flag file exists): the counts of that batch were committed but are not durable, so
they are not acknowledged. Every request of the batch gets an error answer (HRESULT 0x8007000D) with a
log line, instead of the connection being closed with no answer; the server keeps running, and answers
normally again once syncs succeed. Loopback only; every loop is bounded."""
import os
import re
import subprocess
import tempfile

from replaylib import KMS_REPLAY, Server, capture, check, finish

SHIM = os.environ["KMS_FAIL_SYNC_SHIM"]
CAP = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")
work = tempfile.mkdtemp(prefix="kms-sync-")
flag = os.path.join(work, "fail-sync")
env = dict(os.environ, LD_PRELOAD=SHIM, KMS_FAIL_SYNC_FLAG=flag)
# The shim is preloaded ahead of the sanitizer runtime in the ASan build.
env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")


def send(addr):
    r = subprocess.run([KMS_REPLAY, "send", CAP, "--to", addr, "--timeout", "5"], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout + r.stderr


with Server("--count-policy", "genuine", "--db", os.path.join(work, "kms.db"), "--db-sync", "full",
            workdir=work, env=env) as srv:
    rc, out = send(srv.v4)
    check(rc in (0, 1) and "connection error" not in out.replace("0 connection errors", ""),
          f"before the fault: answered\n{out}")
    check("0x8007000D" not in out, f"before the fault: no error answer\n{out}")
    open(flag, "w").close()
    rc, out = send(srv.v4)
    check(len(re.findall(r"0x8007000D", out)) >= 3, f"sync failing: each of the 3 requests gets 0x8007000D\n{out}")
    check("0 connection errors" in out, f"sync failing: no connection closed without an answer\n{out}")
    log = srv.log()
    check(log.count("answer withdrawn: the database could not make it durable") == 3,
          f"sync failing: one log line per withdrawn answer\n{log[-3000:]}")
    check(srv.proc.poll() is None, "server still running")
    os.remove(flag)
    rc, out = send(srv.v4)
    check("0x8007000D" not in out and "0 connection errors" in out, f"after the fault: answered normally\n{out}")
finish()
