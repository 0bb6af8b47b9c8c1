"""Memory of keep-alive connections (issue 11): a connection that sent one large PDU and then keeps
binding must not pin that PDU's buffer. 1,000 connections each send a 60 KB request (answered with an
HRESULT) then a bind, and stay open: the server's resident memory grows by less than 16 KB per
connection (before the fix the framing buffer kept each PDU's 64 KB: about 64 MB for 1,000).
Loopback only; every loop is bounded. KMS_MEMORY_CONNECTIONS=10000 makes it the 10,000-connection figure of
bench/replay/README.md."""
import os
import resource
import socket
import struct
import time

from replaylib import Server, capture, check, finish, pdus, read_pdu

N = int(os.environ.get("KMS_MEMORY_CONNECTIONS", "1000"))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < N + 200:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(N + 200, hard) if hard != resource.RLIM_INFINITY else N + 200,
                                                hard))
GOOD = capture("vlmcs-vlmcsd-v6-server2019dc-N0-B0-2req.pcapng")
BIND = [b for c, d, b in pdus(GOOD) if c == 0 and d == "C"][0]
STUB = 60000
# A single-fragment request on context 0 (bound by BIND) whose stub is not a KMS request.
BIG = struct.pack("<BBBB4sHHI", 5, 0, 0, 3, b"\x10\0\0\0", 24 + STUB, 0, 2) + struct.pack("<IHH", STUB, 0, 0) + \
    b"\0" * STUB


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def client(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(BIND)
    ok = (p := read_pdu(s)) is not None and p[2] == 12
    s.sendall(BIG)
    ok = ok and (p := read_pdu(s)) is not None and p[2] in (2, 3)  # response (HRESULT) or fault
    s.sendall(BIND)  # keep-alive traffic
    ok = ok and (p := read_pdu(s)) is not None and p[2] == 12
    return s, ok


# ASan keeps freed memory in quarantine; without it freed buffers are reused as in a normal build.
env = dict(os.environ)
env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0").lstrip(":")
with Server("--max-connections", str(N + 100), "--idle-timeout", "120", "--quiet", listen=("127.0.0.1:0",),
            env=env) as srv:
    warm = [client(srv.port()) for _ in range(50)]  # allocator warm-up, then released
    for s, _ in warm:
        s.close()
    time.sleep(0.5)
    base = rss_kib(srv.proc.pid)
    socks, ok = [], 0
    t0 = time.time()
    for _ in range(N):
        s, good = client(srv.port())
        socks.append(s)
        ok += good
    time.sleep(0.5)
    grown = rss_kib(srv.proc.pid) - base
    print(f"{N} keep-alive connections after a {STUB}-byte PDU each: RSS +{grown} KiB "
          f"({grown / N:.1f} KiB per connection), {time.time() - t0:.1f} s")
    check(ok == N, f"{ok} of {N} connections answered")
    check(grown < 16 * N, f"RSS grew by {grown} KiB for {N} connections")
    for s in socks:
        s.close()
finish()
