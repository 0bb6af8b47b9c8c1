"""The service: serve stays in the foreground by default (--foreground still accepted), --daemon detaches
(new session, pid file written before the launcher exits, clean SIGTERM); SIGHUP reopens the log file
(logrotate) and re-reads the INI file (count, intervals, HwId, log format applied; listen addresses
need a restart; a broken INI keeps the old configuration); sd_notify READY/RELOADING/STOPPING/STATUS on
a NOTIFY_SOCKET of our own (a unix datagram socket, no systemd)."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

from replaylib import KMS_REPLAY, Server, capture, check, finish, run

V6 = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")
work = tempfile.mkdtemp(prefix="kms-replay-service-")


def wait_for(pred, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def send_json(target):
    rc, out = run("send", V6, "--to", target, "--json")
    return rc, [json.loads(l) for l in out.splitlines() if l.startswith("{") and "call_id" in l]


# 1. Foreground by default: the process we started is the server, and stays; --foreground is accepted.
with Server() as srv:
    time.sleep(0.3)
    check(srv.proc.poll() is None, "serve without --foreground keeps running in the foreground")
    rc, _ = run("send", V6, "--to", srv.v4)
    check(rc == 0, "default foreground server answers")
with Server("--foreground") as srv:
    check(srv.proc.poll() is None, "--foreground is still accepted")
rc, out = run("serve", "--foreground", "--daemon", "--listen", "127.0.0.1:0")
check(rc == 2 and "exclude" in out, f"--foreground with --daemon is a usage error (2): {rc} {out}")

# 2. --daemon: the launcher returns 0 once the daemon is ready; the daemon is another process in its own
# session, named in the pid file; it answers, and SIGTERM stops it and removes the pid file.
pid_file = os.path.join(work, "d.pid")
ready = os.path.join(work, "d.ready")
log = os.path.join(work, "d.log")
launcher = subprocess.Popen([KMS_REPLAY, "serve", "--daemon", "--pid-file", pid_file, "--ready-file", ready,
                             "--log-file", log, "--listen", "127.0.0.1:0", "--state-dir",
                             os.path.join(work, "state")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
try:
    lout, lerr = launcher.communicate(timeout=20)
except subprocess.TimeoutExpired:
    launcher.kill()
    lout, lerr = launcher.communicate()
check(launcher.returncode == 0, f"--daemon launcher exit {launcher.returncode}: {lerr}")
check(os.path.exists(pid_file) and os.path.exists(ready), "pid and ready files exist when the launcher returns")
dpid = int(open(pid_file).read()) if os.path.exists(pid_file) else 0
if check(dpid > 0 and dpid != launcher.pid and pid_alive(dpid), f"daemon pid {dpid} alive, not the launcher"):
    # Double fork: the daemon is in the new session (setsid) but does not lead it (no controlling tty ever).
    check(os.getsid(dpid) != os.getsid(0), "the daemon left the test's session (setsid)")
    check(os.getsid(dpid) != dpid, "the daemon is not a session leader (second fork)")
    addr = open(ready).read().split()[0]
    rc, out = run("send", V6, "--to", addr)
    check(rc == 0, "daemon answers:\n" + out)
    os.kill(dpid, signal.SIGTERM)
    check(wait_for(lambda: not pid_alive(dpid)), "daemon stops on SIGTERM")
    check(wait_for(lambda: not os.path.exists(pid_file)), "daemon removes its pid file")
    check("shutting down on signal" in open(log).read(), "daemon logged its shutdown")
if dpid > 0 and pid_alive(dpid):
    os.kill(dpid, signal.SIGKILL)
# A daemon that cannot start reports it through the launcher's exit code.
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
rc, out = run("serve", "--daemon", "--listen", f"127.0.0.1:{busy.getsockname()[1]}", "--state-dir",
              os.path.join(work, "state"))
check(rc == 2 and "cannot listen" in out, f"daemon start failure (port in use) is exit 2: {rc} {out}")
busy.close()

# 3. SIGHUP: the log file is reopened (logrotate renames it) and the INI is read again.
ini = os.path.join(work, "hup.ini")
EPID = "03612-00206-556-123456-03-1033-17763.0000-2772022"
with open(ini, "w") as f:
    f.write("[server]\nfixed-count=77\nrenewal-interval=2000\nhwid=0011223344556677\n[epid]\nWindows=" + EPID + "\n")
with Server("--config", ini) as srv:
    rc, lines = send_json(srv.v4)
    check(rc == 0 and lines and all(l["count"] == 77 and l["renewal_interval"] == 2000 and
                                    l["hwid"] == "0011223344556677" for l in lines), f"before SIGHUP: {lines}")
    rotated = srv.logpath + ".1"
    os.rename(srv.logpath, rotated)
    with open(ini, "w") as f:
        f.write("[server]\nfixed-count=88\nrenewal-interval=3000\nhwid=8899AABBCCDDEEFF\nlog-format=json\n"
                "threads=2\n[epid]\nWindows=" + EPID + "\n")
    srv.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: os.path.exists(srv.logpath) and "configuration applied" in srv.log()),
          "SIGHUP reopened the log file under its name and applied the INI")
    check(srv.proc.poll() is None, "SIGHUP does not stop the server")
    rc, lines = send_json(srv.v4)
    check(rc == 0 and lines and all(l["count"] == 88 and l["renewal_interval"] == 3000 and
                                    l["hwid"] == "8899AABBCCDDEEFF" and l["epid"] == EPID for l in lines),
          f"after SIGHUP the new count, interval and HwId answer: {lines}")
    new_log = srv.log()
    old_log = open(rotated).read()
    check("threads changed; it takes effect at the next restart" in new_log, "threads need a restart:\n" + new_log)
    acts = [json.loads(l) for l in new_log.splitlines() if l.startswith("{") and "cmid" in l]
    check(len(acts) == 3, f"new activations in the new file, as JSON (log-format reloaded): {new_log}")
    check(old_log.count("CMID") == 3 and "8899AABBCCDDEEFF" not in old_log, "old file keeps only the old lines")
    # A broken INI on reload: the server keeps its configuration and says why.
    with open(ini, "w") as f:
        f.write("[server]\nfixed-count=not-a-number\n")
    srv.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: "the previous configuration stays" in srv.log()), "broken INI on reload is logged")
    rc, lines = send_json(srv.v4)
    check(rc == 0 and lines and all(l["count"] == 88 for l in lines), f"previous configuration kept: {lines}")
    # SIGHUP without --config only reopens the log.
with Server() as srv:
    os.rename(srv.logpath, srv.logpath + ".old")
    srv.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: os.path.exists(srv.logpath)), "SIGHUP without --config reopens the log")
    check(srv.proc.poll() is None, "and the server keeps running")
    rc, _ = run("send", V6, "--to", srv.v4)
    check(rc == 0 and srv.log().count("CMID") == 3, "activations go to the reopened log")

# 4. sd_notify on our own NOTIFY_SOCKET.
sock_path = os.path.join(work, "notify.sock")
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(sock_path)
ns.settimeout(0.5)
messages = []


def collect_until(pred, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if any(pred(m) for m in messages):
            return True
        try:
            messages.append(ns.recv(4096).decode())
        except socket.timeout:
            pass
    return any(pred(m) for m in messages)


env = dict(os.environ, NOTIFY_SOCKET=sock_path)
with Server("--listen", "127.0.0.1:0", listen=(), env=env) as srv:
    check(collect_until(lambda m: "READY=1" in m), f"READY=1 sent: {messages}")
    ready_msg = next((m for m in messages if "READY=1" in m), "")
    check("STATUS=Serving on 127.0.0.1:" in ready_msg and "HwId" in ready_msg, f"STATUS line: {ready_msg}")
    check("MAINPID" not in ready_msg, "foreground: systemd knows the pid already")
    messages.clear()
    srv.proc.send_signal(signal.SIGHUP)
    check(collect_until(lambda m: "READY=1" in m), f"READY=1 after reload: {messages}")
    check(len(messages) >= 2 and "RELOADING=1" in messages[0] and "MONOTONIC_USEC=" in messages[0],
          f"RELOADING=1 first: {messages}")
    messages.clear()
    srv.stop()
    check(collect_until(lambda m: "STOPPING=1" in m), f"STOPPING=1 on SIGTERM: {messages}")
ns.close()
subprocess.run(["rm", "-rf", work])
finish()
