"""The command line: exit codes 0/1/2 as kms-analyze's (CLI11's 105-109 never leak out), --help and
--version exit 0, errors go to standard error (check, send, status, serve) with nothing on standard
output; status opens the database read-only (an empty or foreign file is refused with exit 2 and left
byte for byte, mtime included); --listen takes host names (localhost: every address it resolves to)."""
import os
import socket
import subprocess
import tempfile
import time

from replaylib import KMS_REPLAY, Server, capture, check, finish, run

V6 = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")
TAMPERED = capture("tampered-vlmcs-vlmcsd-v4-office2010-ndr64-2req-req1-mac.pcapng")
work = tempfile.mkdtemp(prefix="kms-replay-cli-")


def sh(*args):
    p = subprocess.run([KMS_REPLAY, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


# Help and version: 0, on standard output.
for args in (["--help"], ["serve", "--help"], ["status", "--help"], ["--version"]):
    rc, out, err = sh(*args)
    check(rc == 0 and out.strip(), f"{args}: exit {rc}, stdout {out[:80]!r}")
# Usage errors: 2 (CLI11 would say 105-109), message on stderr only.
usage = {"no subcommand": [], "unknown option": ["serve", "--no-such-option"],
         "missing required": ["status"], "bad number": ["serve", "--threads", "many"],
         "missing file": ["check", os.path.join(work, "missing.pcapng")], "extra argument": ["status", "--db", "x", "y"],
         "send without --to": ["send", V6], "unknown subcommand": ["frobnicate"],
         "foreground and daemon": ["serve", "--foreground", "--daemon"]}
for name, args in usage.items():
    rc, out, err = sh(*args)
    check(rc == 2 and err.strip() and not out.strip(), f"{name}: exit {rc}, stdout {out!r}, stderr {err!r}")

# check: 0 on a matching capture, 1 on a tampered one, 2 on an unreadable one (stderr).
junk = os.path.join(work, "junk.pcapng")
with open(junk, "wb") as f:
    f.write(b"not a capture at all")
rc, out, err = sh("check", V6)
check(rc == 0, f"check ok: {rc}")
rc, out, err = sh("check", TAMPERED)
check(rc == 1 and "TAMPERED" in out, f"check tampered: {rc}")
rc, out, err = sh("check", junk)
check(rc == 2 and junk in err and junk not in out, f"check unreadable capture: {rc} {out!r} {err!r}")

# send: input errors are 2 on stderr; failed exchanges are 1.
rc, out, err = sh("send", junk, "--to", "127.0.0.1:1688")
check(rc == 2 and err.strip() and not out.strip(), f"send unreadable capture: {rc} {out!r} {err!r}")
rc, out, err = sh("send", V6, "--to", "no-such-host.invalid:1688")
check(rc == 2 and "no-such-host.invalid" in err and not out.strip(), f"send bad target: {rc} {out!r} {err!r}")
rc, out, err = sh("send", V6, "--to", "127.0.0.1:1688", "--ack-file", os.path.join(work, "no", "dir", "acks"))
check(rc == 2 and "ack" in err, f"send unwritable ack file: {rc} {err!r}")

# serve: configuration errors are 2 on stderr.
rc, out, err = sh("serve", "--listen", "999.1.1.1:1", "--state-dir", os.path.join(work, "s"))
check(rc == 2 and "999.1.1.1" in err and not out.strip(), f"serve bad listen: {rc} {err!r}")
rc, out, err = sh("serve", "--count-policy", "sometimes", "--listen", "127.0.0.1:0", "--state-dir", os.path.join(work, "s"))
check(rc == 2 and "count-policy" in err, f"serve bad policy: {rc} {err!r}")

# status: read-only. A missing file, an empty file and a foreign file are errors (2, stderr) and no file
# is created or changed.
missing = os.path.join(work, "missing.db")
rc, out, err = sh("status", "--db", missing)
check(rc == 2 and "no such database" in err and not os.path.exists(missing), f"status missing: {rc} {err!r}")
for name, content in (("empty.db", b""), ("foreign.db", b"SQLite format 3\0 is what this is not\n" * 10)):
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(content)
    old = os.stat(path)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns - 10_000_000_000))  # a visibly old mtime
    before = os.stat(path)
    rc, out, err = sh("status", "--db", path)
    after = os.stat(path)
    check(rc == 2 and err.strip() and not out.strip(), f"status {name}: {rc} {out!r} {err!r}")
    check(open(path, "rb").read() == content, f"status {name}: bytes unchanged")
    check(after.st_mtime_ns == before.st_mtime_ns and after.st_size == before.st_size, f"status {name}: mtime kept")
    check(not os.path.exists(path + "-wal") and not os.path.exists(path + "-journal"), f"status {name}: no journal")
    if name == "empty.db":
        check("not a kms-replay database" in err, f"status empty: clear message: {err!r}")
# A real database still reports (read-only) after the server wrote it and stopped.
db = os.path.join(work, "kms.db")
with Server("--db", db, "--count-policy", "genuine") as srv:
    check(run("send", V6, "--to", srv.v4)[0] in (0, 1), "send to genuine server")
    rc, out, err = sh("status", "--db", db)
    check(rc == 0 and "Total requests received: 3" in out, f"status while serving: {rc} {out} {err}")
before = open(db, "rb").read()
rc, out, err = sh("status", "--db", db, "--json")
check(rc == 0 and '"kms_ids"' in out, f"status after stop: {rc} {out} {err}")
check(open(db, "rb").read() == before, "status left the database bytes unchanged")

# --listen with a host name: every address of localhost, each answering.
names = {ai[4][0] for ai in socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)}
with Server(listen=("localhost:0",)) as srv:
    hosts = {a.rsplit(":", 1)[0].strip("[]") for a in srv.addrs}
    check(hosts == names and hosts <= {"127.0.0.1", "::1"}, f"localhost resolved to {srv.addrs}, expected {names}")
    for a in srv.addrs:
        rc, out = run("send", V6, "--to", a)
        check(rc == 0, f"answer on {a}:\n{out}")
# ... including a name with a fixed port, and the same name for send.
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
with Server(listen=(f"localhost:{port}",)) as srv:
    check(all(a.endswith(f":{port}") for a in srv.addrs), f"fixed port on every address: {srv.addrs}")
    rc, out = run("send", V6, "--to", f"localhost:{port}")
    check(rc == 0, "send --to localhost:PORT against serve --listen localhost:PORT:\n" + out)
rc, out, err = sh("serve", "--listen", "no-such-host.invalid:1688", "--state-dir", os.path.join(work, "s"))
check(rc == 2 and "no-such-host.invalid" in err, f"serve unresolvable name: {rc} {err!r}")
subprocess.run(["rm", "-rf", work])
finish()
