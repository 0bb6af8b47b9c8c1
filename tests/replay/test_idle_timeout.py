"""Slow clients are closed at the idle timeout: a client that trickles a PDU byte by byte, one that
sends half a PDU and stops, and one that never sends; a well-behaved client on the same server is
answered meanwhile. The timeout counts from the last complete PDU, so trickling does not extend it."""
import socket
import subprocess
import time

from replaylib import KMS_REPLAY, Server, capture, check, finish, pdus

GOOD = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")
BIND = [b for c, d, b in pdus(GOOD) if c == 0 and d == "C"][0]
IDLE = 1.5

with Server("--idle-timeout", str(IDLE)) as srv:
    port = srv.port()
    t0 = time.time()
    silent = socket.create_connection(("127.0.0.1", port), timeout=5)
    half = socket.create_connection(("127.0.0.1", port), timeout=5)
    half.sendall(BIND[: len(BIND) // 2])
    trickle = socket.create_connection(("127.0.0.1", port), timeout=5)
    # A complete bind first: it is answered and restarts the idle clock once.
    done = socket.create_connection(("127.0.0.1", port), timeout=5)
    done.sendall(BIND)
    check(done.recv(4096)[2] == 12, "bind answered")
    closed = {}
    socks = {"silent": silent, "half": half, "trickle": trickle, "after-bind": done}
    for s in socks.values():
        s.setblocking(False)
    i = 0
    while time.time() - t0 < IDLE + 3 and len(closed) < len(socks):
        if "trickle" not in closed and i < len(BIND) - 1:
            try:
                trickle.send(BIND[i:i + 1])
                i += 1
            except OSError:
                pass
        for name, s in socks.items():
            if name in closed:
                continue
            try:
                if s.recv(4096) == b"":
                    closed[name] = time.time() - t0
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed[name] = time.time() - t0
        time.sleep(0.05)
    # Meanwhile the server keeps answering.
    rc = subprocess.run([KMS_REPLAY, "send", GOOD, "--to", srv.v4], capture_output=True, text=True, timeout=60)
    check(rc.returncode == 0, "well-behaved client served:\n" + rc.stdout)
    for name in socks:
        check(name in closed, f"{name}: not closed")
        if name in closed:
            check(IDLE - 0.2 <= closed[name] <= IDLE + 1.5, f"{name}: closed after {closed[name]:.2f} s (timeout {IDLE})")
    for s in socks.values():
        s.close()
    log = srv.log()
    check(log.count("idle timeout with a partial PDU") >= 2, "partial PDUs logged at the idle timeout:\n" + log)
    check(log.count("closed: idle timeout") >= 4, "every idle close logged")
finish()
