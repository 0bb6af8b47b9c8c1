"""The systemd unit (replay/kms-replay.service.in), configured as CMake does: Type=notify, ExecReload
sending SIGHUP, no --foreground (the default), the state directory kept for the generated identity, the
hardening in place and `systemd-analyze security --offline=true` at most 2.0 (3.7 before). With strace
(SYSCALL_CHECK=1): every system call a serving, reloading and stopping kms-replay makes is allowed by
the unit's SystemCallFilter (in @system-service, not in @privileged or @resources)."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from replaylib import KMS_REPLAY, REPLAY_DIR, capture, check, finish, run

work = tempfile.mkdtemp(prefix="kms-replay-unit-")
template = open(os.path.join(REPLAY_DIR, "kms-replay.service.in")).read()
check("@KMSCOPE_FULL_BINDIR@/kms-replay serve" in template, "ExecStart uses the configured bindir")
unit_text = template.replace("@KMSCOPE_FULL_BINDIR@", os.path.dirname(KMS_REPLAY))
unit = os.path.join(work, "kms-replay.service")
with open(unit, "w") as f:
    f.write(unit_text)
keys = {}
for line in unit_text.splitlines():
    if "=" in line and not line.startswith("#"):
        k, v = line.split("=", 1)
        keys.setdefault(k, []).append(v)
exec_start = keys["ExecStart"][0]
check(keys.get("Type") == ["notify"], "Type=notify")
check(keys.get("ExecReload") == ["/bin/kill -HUP $MAINPID"], "ExecReload sends SIGHUP")
check("--foreground" not in exec_start and "--daemon" not in exec_start, "no --foreground/--daemon in ExecStart")
check(keys.get("StateDirectory") == ["kms-replay"], "StateDirectory for the generated identity")
for k, v in {"UMask": "0077", "ProtectClock": "yes", "ProtectKernelLogs": "yes", "ProtectHostname": "yes",
             "ProtectProc": "invisible", "ProcSubset": "pid", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes",
             "RemoveIPC": "yes", "DevicePolicy": "closed", "SystemCallErrorNumber": "EPERM"}.items():
    check(keys.get(k) == [v], f"{k}={v}")
check(keys.get("SystemCallFilter") == ["@system-service", "~@privileged @resources"], "SystemCallFilter")
check("PrivateUsers" not in keys, "no PrivateUsers (it would void CAP_NET_BIND_SERVICE on the host's network)")

# ExecStart as systemd runs it: its options, the example INI as the configuration, the folders systemd
# creates, $STATE_DIRECTORY set (the identity must land there). Only the listen address is added.
state, logs = os.path.join(work, "state"), os.path.join(work, "logs")
os.makedirs(state)
os.makedirs(logs)
argv = [a.replace("/etc/kms-replay/kms-replay.ini", os.path.join(REPLAY_DIR, "kms-replay.ini"))
        .replace("/var/lib/kms-replay", state).replace("/var/log/kms-replay", logs) for a in exec_start.split()]
ready = os.path.join(work, "unit.ready")
proc = subprocess.Popen(argv + ["--listen", "127.0.0.1:0", "--ready-file", ready], stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, env=dict(os.environ, STATE_DIRECTORY=state))
for _ in range(200):
    if os.path.exists(ready) or proc.poll() is not None:
        break
    time.sleep(0.05)
check(proc.poll() is None and os.path.exists(ready), "ExecStart's command line serves")
if os.path.exists(ready):
    rc, out = run("send", capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng"), "--to", open(ready).read().split()[0])
    check(rc == 0, "ExecStart's server answers:\n" + out)
check(os.path.exists(os.path.join(state, "identity")), "identity stored in $STATE_DIRECTORY")
check(os.path.exists(os.path.join(state, "kms.db")), "database in the state directory")
proc.send_signal(signal.SIGTERM)
check(proc.wait(timeout=20) == 0, "ExecStart's server stops cleanly")
check("activations.log" in os.listdir(logs), "log in LogsDirectory")

p = subprocess.run(["systemd-analyze", "security", "--offline=true", unit], capture_output=True, text=True,
                   timeout=60, cwd=work)
m = re.search(r"Overall exposure level for kms-replay.service: ([0-9.]+)", p.stdout)
check(m is not None, f"systemd-analyze security output:\n{p.stdout}\n{p.stderr}")
if m:
    print("systemd-analyze security --offline=true:", m.group(1))
    check(float(m.group(1)) <= 2.0, f"exposure {m.group(1)} > 2.0")


def expand(group, seen):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True, text=True,
                         timeout=60).stdout
    names = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            if line not in seen:
                seen.add(line)
                names |= expand(line, seen)
        else:
            names.add(line)
    return names


allowed = expand("@system-service", set())
denied = expand("@privileged", set()) | expand("@resources", set())
check("accept4" in allowed and "setuid" in denied, "syscall groups expanded")

if os.environ.get("SYSCALL_CHECK") == "1":
    # Serve (genuine counts in SQLite, two threads, a host name to resolve), reload, stop: under strace.
    trace, ready = os.path.join(work, "trace"), os.path.join(work, "ready")
    with open(os.path.join(work, "s.ini"), "w") as f:
        f.write("[server]\nfixed-count=5\n")
    # The unit runs as a dynamic user, never root: SQLite's fchown of its journal happens only as root.
    cmd = [shutil.which("strace"), "-f", "-qq", "-o", trace, KMS_REPLAY, "serve", "--config",
           os.path.join(work, "s.ini"), "--listen", "localhost:0", "--ready-file", ready, "--db",
           os.path.join(work, "kms.db"), "--count-policy", "genuine", "--log-file", os.path.join(work, "log"),
           "--state-dir", os.path.join(work, "state2"), "--threads", "2", "--pid-file", os.path.join(work, "pid")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            # LeakSanitizer cannot run under ptrace (sanitizer builds); the other tests cover leaks.
                            env=dict(os.environ, NOTIFY_SOCKET=os.path.join(work, "nosuch"),
                                     ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")))
    for _ in range(200):
        if os.path.exists(ready) or proc.poll() is not None:
            break
        time.sleep(0.05)
    addr = open(ready).read().split()[0] if os.path.exists(ready) else "127.0.0.1:1"
    v6 = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")
    run("send", v6, "--to", addr)
    run("send", v6, "--to", addr, "--vary-cmid", "--concurrency", "2", "--repeat", "3", "--quiet")
    os.rename(os.path.join(work, "log"), os.path.join(work, "log.1"))
    # Signals go to the server, not to strace.
    server_pid = int(open(os.path.join(work, "pid")).read()) if os.path.exists(os.path.join(work, "pid")) else 0
    check(server_pid > 0, "traced server wrote its pid")
    os.kill(server_pid or proc.pid, signal.SIGHUP)
    time.sleep(0.5)
    run("send", v6, "--to", addr)
    os.kill(server_pid or proc.pid, signal.SIGTERM)
    try:
        check(proc.wait(timeout=20) == 0, "traced server stops cleanly")
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        check(False, "traced server did not stop")
    used = set()
    for line in open(trace):
        m = re.match(r"^\d+ +(?:<\.\.\. )?([a-z_0-9]+)(?:\(| resumed)", line)
        if m:
            used.add(m.group(1))
    # systemd applies the filter before execve: the loader's calls count too.
    check(len(used) > 20, f"strace saw the server: {sorted(used)}")
    check(not (used - allowed), f"system calls outside @system-service: {sorted(used - allowed)}")
    root_only = {"fchown"} if os.geteuid() == 0 else set()
    check(not ((used & denied) - root_only), f"system calls in ~@privileged @resources: {sorted(used & denied)}")
shutil.rmtree(work, ignore_errors=True)
finish()
