"""1,000 concurrent connections are held: each binds and stays open while a verified client keeps
being served; then every held connection sends a request and gets a verified-size answer."""
import resource
import socket
import subprocess
import time

from replaylib import KMS_REPLAY, Server, capture, check, finish, pdus, read_pdu

N = 1000
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = N + 200
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
check(soft >= want, f"RLIMIT_NOFILE {soft} too low for {N} connections")

GOOD = capture("vlmcs-vlmcsd-v6-server2019dc-N0-B0-2req.pcapng")
BIND, REQ = [b for c, d, b in pdus(GOOD) if c == 0 and d == "C"][:2]


with Server("--max-connections", str(N + 100), "--idle-timeout", "120", "--quiet") as srv:
    socks = []
    t0 = time.time()
    for i in range(N):
        s = socket.create_connection(("127.0.0.1" if i % 2 else "::1", srv.port(v6=i % 2 == 0)), timeout=10)
        s.sendall(BIND)
        socks.append(s)
    acks = sum(1 for s in socks if (p := read_pdu(s)) is not None and p[2] == 12)
    check(acks == N, f"{acks} of {N} binds answered")
    rc = subprocess.run([KMS_REPLAY, "send", GOOD, "--to", srv.v4, "--repeat", "20", "--quiet"], capture_output=True,
                        text=True, timeout=120)
    check(rc.returncode == 0, "served while 1,000 connections are held:\n" + rc.stdout)
    for s in socks:
        s.sendall(REQ)
    answers = 0
    for s in socks:
        p = read_pdu(s)
        answers += p is not None and p[2] == 2 and len(p) > 200
    check(answers == N, f"{answers} of {N} held connections answered a request")
    print(f"{N} connections bound, held and answered in {time.time() - t0:.2f} s")
    for s in socks:
        s.close()
finish()
