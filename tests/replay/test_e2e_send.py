"""End to end on loopback: kms-replay serve --from CAPTURE answers, kms-replay send CAPTURE replays the
recorded connections (same PDUs, NDR choices and call ids) and verifies every answer, over IPv4 and
IPv6, for every capture (v4/v5/v6, NDR32/NDR64, BTFN, several requests and connections)."""
import os

from replaylib import Server, capture, captures, check, finish, run

for path in captures():
    name = os.path.basename(path)
    with Server("--from", path) as srv:
        for v6 in (False, True):
            target = srv.v6 if v6 else srv.v4
            rc, out = run("send", path, "--to", target, "--timeout", "5")
            if name.startswith("tampered-") and "req1-mac" in name:
                check(rc == 1 and "FAIL request_mac" in out, f"{name} {target}: tampered request not flagged:\n{out}")
            else:
                check(rc == 0, f"{name} {target}: exit {rc}:\n{out}")
                # The verdict text is kms-analyze's: a refusal of an unsupported version reads "FAIL version,
                # HRESULT 0x8007000D ..." and passes when the recorded server refused it too.
                failing = [l for l in out.splitlines() if "FAIL" in l and "(refused as recorded)" not in l]
                check(not failing and "NO RESPONSE" not in out and " 0 not, " in out, f"{name} {target}:\n{out}")
        log = srv.log()
        check(" ok" in log or "HRESULT" in log, f"{name}: nothing logged:\n{log}")

# The default server (no --from): NDR64 host, fixed count; every vlmcsd capture that offers NDR64 or
# binds NDR32 only verifies against it.
with Server() as srv:
    for name in ["vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng", "vlmcs-vlmcsd-v5-win8pro-ndr64-2req.pcapng",
                 "vlmcs-vlmcsd-v4-office2010-ndr64-2req.pcapng", "vlmcs-vlmcsd-v6-server2019dc-N0-B0-2req.pcapng",
                 "vlmcs-vlmcsd-v6-office2016-T-3conn.pcapng", "vlmcs-vlmcsd-v5-ipv6-office2013-visio.pcapng"]:
        rc, out = run("send", capture(name), "--to", srv.v6)
        check(rc == 0 and "FAIL" not in out, f"default server, {name}:\n{out}")
    # JSON lines from send.
    rc, out = run("send", capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng"), "--to", srv.v4, "--json")
    check(rc == 0 and out.count('"pass":true') == 3, "send --json:\n" + out)
    # Load generator mode: concurrency and repeat.
    rc, out = run("send", capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng"), "--to", srv.v4, "--concurrency",
                  "4", "--repeat", "50", "--quiet")
    check(rc == 0 and "150 exchanges ok, 0 failed, 0 connection errors" in out, "send load:\n" + out)
    check("p99" in out, "send load prints percentiles")
    code = srv.stop()
    check(code == 0, f"serve exit code after SIGTERM: {code}")
    check("shutting down on signal" in srv.log(), "shutdown logged")

# Several event-loop threads; SIGINT shuts down cleanly and removes the pid file.
import signal  # noqa: E402
import tempfile  # noqa: E402

pid_dir = tempfile.mkdtemp(prefix="kms-replay-pid-")
pid_file = os.path.join(pid_dir, "serve.pid")
with Server("--threads", "3", "--pid-file", pid_file) as srv:
    check(int(open(pid_file).read()) == srv.proc.pid, "pid file holds the server's pid")
    rc, out = run("send", capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng"), "--to", srv.v6, "--concurrency",
                  "6", "--repeat", "100", "--quiet")
    check(rc == 0 and "300 exchanges ok, 0 failed" in out, "threads: " + out)
    srv.proc.send_signal(signal.SIGINT)
    check(srv.proc.wait(timeout=10) == 0, "SIGINT exit code")
    check(not os.path.exists(pid_file), "pid file removed at shutdown")
os.rmdir(pid_dir)

# send against a closed port reports connection errors and fails.
rc, out = run("send", capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng"), "--to", "127.0.0.1:1", "--timeout", "1")
check(rc != 0 and "connect" in out, "send to closed port:\n" + out)
finish()
