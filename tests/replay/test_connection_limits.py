"""Per-connection bounds (issue 11): a peer that keeps a connection alive with binds is closed when it
binds more than --max-binds-per-connection times, or when the connection is older than
--max-connection-age however busy it is; each close has one log line naming the reason. A bind that
binds nothing is logged exactly once. A well-behaved client is served throughout. Loopback only;
every loop is bounded in count and time."""
import socket
import subprocess
import time

from replaylib import KMS_REPLAY, Server, capture, check, finish, pdus, read_pdu

GOOD = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")
BIND = [b for c, d, b in pdus(GOOD) if c == 0 and d == "C"][0]
# The same bind with another abstract syntax in every context: nothing binds.
KMS_UUID = bytes.fromhex("7521c8514e845047b0d8ec255555bc06")
check(KMS_UUID in BIND, "the recorded bind offers the KMS interface")
FOREIGN = BIND.replace(KMS_UUID, bytes(16))

# Binds past the limit: three are answered, the fourth closes the connection without an answer.
with Server("--max-binds-per-connection", "3", "--idle-timeout", "30") as srv:
    s = socket.create_connection(("127.0.0.1", srv.port()), timeout=5)
    local = s.getsockname()[1]
    answers = []
    for _ in range(4):
        s.sendall(BIND)
        p = read_pdu(s)
        answers.append(p[2] if p else None)
    check(answers == [12, 12, 12, None], f"three bind_acks then a close, got {answers}")
    s.close()
    f = socket.create_connection(("127.0.0.1", srv.port()), timeout=5)
    f.sendall(FOREIGN)
    p = read_pdu(f)
    check(p is not None and p[2] == 12, "a bind of another interface is answered (bind_ack, nothing accepted)")
    f.close()
    rc = subprocess.run([KMS_REPLAY, "send", GOOD, "--to", srv.v4], capture_output=True, text=True, timeout=60)
    check(rc.returncode == 0, "well-behaved client served:\n" + rc.stdout)
    time.sleep(0.2)
    log = srv.log()
    check(f":{local}  closing: bind call" in log and "more than 3 binds on one connection" in log,
          "bind limit logged with the client:\n" + log)
    check(log.count("no context accepted") == 1, "a bind that binds nothing is logged once:\n" + log)

# Connection age: binds every 0.25 s keep the idle clock fresh, but the connection is closed once it is
# older than 1.5 s (the sweep runs every 100 ms).
AGE = 1.5
with Server("--max-connection-age", str(AGE), "--idle-timeout", "30") as srv:
    s = socket.create_connection(("127.0.0.1", srv.port()), timeout=5)
    local = s.getsockname()[1]
    t0 = time.time()
    closed_at, binds = None, 0
    while time.time() - t0 < AGE + 4 and closed_at is None:
        try:
            s.sendall(BIND)
            p = read_pdu(s)
        except OSError:
            p = None
        if p is None:
            closed_at = time.time() - t0
        else:
            binds += 1
            time.sleep(0.25)
    s.close()
    check(closed_at is not None, "busy connection closed at its maximum age")
    if closed_at is not None:
        check(AGE <= closed_at <= AGE + 1.0, f"closed after {closed_at:.2f} s (age limit {AGE} s)")
    check(binds >= 4, f"the connection was busy until then ({binds} binds answered)")
    # A client connecting later gets its own age.
    rc = subprocess.run([KMS_REPLAY, "send", GOOD, "--to", srv.v4], capture_output=True, text=True, timeout=60)
    check(rc.returncode == 0, "new client served:\n" + rc.stdout)
    time.sleep(0.2)
    log = srv.log()
    check(f":{local}  closing: connection older than 1.5 s (max-connection-age)" in log,
          "age close logged with the client:\n" + log)
finish()
