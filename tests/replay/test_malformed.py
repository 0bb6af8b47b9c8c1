"""The malformed-input matrix: every hostile or broken input gets a fault, an HRESULT, a bind_nak or a
close, each with a line in the log naming the client, while a well-behaved client (kms-replay send with
verification) is served at the same time without a single failure."""
import os
import socket
import struct
import subprocess
import threading
import time

from replaylib import KMS_REPLAY, Server, capture, check, finish, pdus, wait_closed

V6 = capture("vlmcs-vlmcsd-v6-server2019dc-N0-B0-2req.pcapng")  # NDR32-only bind, v6 requests on context 0
V4 = capture("vlmcs-vlmcsd-H7601-v4-noNDR64-2req.pcapng")
GOOD = capture("vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng")

p6 = [b for c, d, b in pdus(V6) if c == 0 and d == "C"]
BIND, REQ = p6[0], p6[1]
REQ4 = [b for c, d, b in pdus(V4) if c == 0 and d == "C"][1]


def hdr(ptype, flags, frag_len, call_id=2, auth=0, ver=5, minor=0, drep=b"\x10\x00\x00\x00"):
    return struct.pack("<BBBB4sHHI", ver, minor, ptype, flags, drep, frag_len, auth, call_id)


def with_header(pdu, **kw):
    b = bytearray(pdu)
    for k, v in kw.items():
        off, fmt = {"ptype": (2, "B"), "flags": (3, "B"), "frag": (8, "<H"), "auth": (10, "<H"), "call": (12, "<I"),
                    "ctx": (20, "<H"), "opnum": (22, "<H"), "ver": (0, "B"), "minor": (1, "B"), "drep": (4, "B")}[k]
        struct.pack_into(fmt, b, off, v)
    return bytes(b)


def request_with_stub(stub, call_id=2, ctx=0, opnum=0, flags=3):
    return hdr(0, flags, 24 + len(stub), call_id) + struct.pack("<IHH", len(stub), ctx, opnum) + stub


MSG = REQ[32:]  # the v6 KMS message (260 bytes)


def stub32(msg, size=None, conf=None):
    return struct.pack("<II", len(msg) if size is None else size, len(msg) if conf is None else conf) + msg


def mutate(pdu, off, data):
    b = bytearray(pdu)
    b[off:off + len(data)] = data
    return bytes(b)


def bind_with(contexts, call_id=2, ptype=11):
    body = struct.pack("<HHIB3x", 5840, 5840, 0, len(contexts))
    for i, (abstract, transfers) in enumerate(contexts):
        body += struct.pack("<HBx", i, len(transfers)) + abstract + b"".join(transfers)
    return hdr(ptype, 3, 16 + len(body), call_id) + body


KMS_IF = BIND[32:52]
NDR32 = BIND[52:72]
OTHER_IF = bytes(range(16)) + b"\x01\x00\x00\x00"
FRAG_FIRST = request_with_stub(stub32(MSG)[:100], flags=1)
FRAG_MID = request_with_stub(stub32(MSG)[100:200], flags=0)

# name: (bytes to send, half-close afterwards, expected answer kinds, connection closed by the server)
CASES = {
    "truncated header then half-close": (BIND[:8], True, [], True),
    "truncated bind then half-close": (BIND[:40], True, [], True),
    "rpc version 4": (with_header(BIND, ver=4), False, [], True),
    "rpc minor version 1": (with_header(BIND, minor=1), False, [], True),
    "big-endian drep": (with_header(BIND, drep=0), False, [], True),
    "frag_length below header size": (with_header(BIND, frag=10), False, [], True),
    "frag_length above max-pdu-size": (with_header(BIND, frag=60000) + bytes(100), False, [], True),
    "frag_length beyond the data then half-close": (with_header(BIND, frag=200), True, [], True),
    "unknown pdu type 99": (with_header(BIND, ptype=99), False, [], True),
    "response pdu from the client": (with_header(BIND, ptype=2), False, [], True),
    "bind_ack from the client": (with_header(BIND, ptype=12), False, [], True),
    "request before bind": (REQ, False, ["fault:1c010003"], False),
    "request on an unbound context": (BIND + with_header(REQ, ctx=5), False, ["ack", "fault:1c010003"], False),
    "wrong opnum": (BIND + with_header(REQ, opnum=1), False, ["ack", "fault:1c010002"], False),
    "bad kms version 7.0": (BIND + mutate(REQ, 34, b"\x07\x00"), False, ["ack", "hresult:8007000d"], False),
    "bad kms version 3.0": (BIND + mutate(REQ, 34, b"\x03\x00"), False, ["ack", "hresult:8007000d"], False),
    "kms minor version 1": (BIND + mutate(REQ, 32, b"\x01\x00"), False, ["ack", "hresult:8007000d"], False),
    "short kms message": (BIND + request_with_stub(stub32(MSG[:100])), False, ["ack", "hresult:8007000d"], False),
    # Trailing bytes after a complete message are tolerated (as vlmcsd does, docs/protocol.md §11.1: only short is refused).
    "long kms message": (BIND + request_with_stub(stub32(MSG + bytes(64))), False, ["ack", "response"], False),
    "empty stub": (BIND + request_with_stub(b""), False, ["ack", "hresult:8007000d"], False),
    "stub sizes disagree": (BIND + request_with_stub(stub32(MSG, conf=200)), False, ["ack", "hresult:8007000d"], False),
    "stub size beyond the stub": (BIND + request_with_stub(stub32(MSG, size=5000, conf=5000)), False,
                                  ["ack", "hresult:8007000d"], False),
    "v4 n policy above max-n-policy": (BIND + mutate(REQ4, 112, struct.pack("<I", 5000)), False,
                                       ["ack", "hresult:8007000d"], False),
    "fragment flood": (BIND + FRAG_FIRST + FRAG_MID * 40, False, ["ack", "fault:1c01000b"], True),
    "middle fragment without a first": (BIND + FRAG_MID, False, ["ack", "fault:1c01000b"], True),
    "garbage": (bytes((i * 37 + 11) % 256 for i in range(1000)), False, [], True),
    "http request": (b"GET / HTTP/1.1\r\nHost: kms\r\n\r\n", False, [], True),
    "bind with an unknown interface": (bind_with([(OTHER_IF, [NDR32])]), False, ["ack"], False),
    "bind with no context": (bind_with([]), False, ["ack"], False),
    "bind with 50 contexts": (bind_with([(KMS_IF, [NDR32])] * 50), False, ["nak"], False),
    "bind body cut short": (with_header(BIND[:40], frag=40), False, ["nak"], False),
    "alter_context before bind": (bind_with([(KMS_IF, [NDR32])], ptype=14), False, ["ack"], False),
    "half-closed after bind and request": (BIND + REQ, True, ["ack", "response"], True),
    "pipelined bind and three requests": (BIND + REQ + with_header(REQ, call=3) + with_header(REQ, call=4), False,
                                          ["ack", "response", "response", "response"], False),
    "connect and close at once": (b"", True, [], True),
}


def classify(pdu):
    ptype = pdu[2]
    if ptype in (12, 15):
        return "ack"
    if ptype == 13:
        return "nak"
    if ptype == 3:
        return "fault:%08x" % struct.unpack_from("<I", pdu, 24)[0]
    if ptype == 2:
        stub = pdu[24:]
        if struct.unpack_from("<I", stub, 4 if len(stub) > 8 else 0)[0] == 0 and len(stub) <= 16:
            return "hresult:%08x" % struct.unpack_from("<I", stub, len(stub) - 4)[0]
        return "response"
    return "ptype %d" % ptype


def run_case(port, data, half_close):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    local = s.getsockname()[1]
    if data:
        s.sendall(data)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    got, buf, closed = [], b"", False
    s.settimeout(0.3)
    end = time.time() + 4
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            if got or buf:
                break
            continue
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        buf += chunk
        while len(buf) >= 16 and len(buf) >= struct.unpack_from("<H", buf, 8)[0]:
            n = struct.unpack_from("<H", buf, 8)[0]
            got.append(classify(buf[:n]))
            buf = buf[n:]
    if not closed and not half_close:
        closed = wait_closed(s, 0.5) if not got else False
    s.close()
    return local, got, closed


check(len(CASES) >= 30, "at least 30 cases")
with Server("--max-pdu-size", "4096", "--idle-timeout", "5", "--max-n-policy", "1000") as srv:
    port = srv.port()
    good = subprocess.Popen([KMS_REPLAY, "send", GOOD, "--to", srv.v6, "--concurrency", "2", "--repeat", "150",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for name, (data, half, want, want_closed) in CASES.items():
        local, got, closed = run_case(port, data, half)
        ok = got == want and (want_closed is None or closed == want_closed)
        check(ok, f"{name}: got {got} closed={closed}, want {want} closed={want_closed}")
        time.sleep(0.05)
        # Normal answers (the core accepts alter_context as a first PDU, like a bind) need no log line.
        if name not in ("connect and close at once", "half-closed after bind and request",
                        "pipelined bind and three requests", "alter_context before bind", "long kms message"):
            check(f":{local} " in srv.log(), f"{name}: no log line for client port {local}")
    out, _ = good.communicate(timeout=120)
    check(good.returncode == 0 and "0 failed, 0 connection errors" in out, "well-behaved client:\n" + out)
    # Still serving afterwards.
    rc = subprocess.run([KMS_REPLAY, "send", GOOD, "--to", srv.v4], capture_output=True, text=True, timeout=60)
    check(rc.returncode == 0, "served after the matrix:\n" + rc.stdout)
    check(srv.proc.poll() is None, "server still running")
    log = srv.log()
for needle in ["not DCE/RPC", "unexpected", "context id 5 is not bound", "opnum 1", "unsupported KMS protocol version",
               "N policy 5000", "client closed in the middle of a PDU"]:
    check(needle in log, f"log mentions '{needle}'")

# Allow-list: 127.0.0.1 outside 10.0.0.0/8 is refused with a log line; ::1 inside ::1/128 is served.
with Server("--allow", "10.0.0.0/8", "--allow", "::1/128") as srv:
    s = socket.create_connection(("127.0.0.1", srv.port()), timeout=5)
    check(wait_closed(s, 3), "allow-list: refused connection closed")
    s.close()
    rc = subprocess.run([KMS_REPLAY, "send", GOOD, "--to", srv.v6], capture_output=True, text=True, timeout=60)
    check(rc.returncode == 0, "allow-list: ::1 served")
    time.sleep(0.1)
    check("refused: not in the allow-list" in srv.log(), "allow-list refusal logged")

# max-connections: the third concurrent connection is refused with a log line.
with Server("--max-connections", "2") as srv:
    a = socket.create_connection(("127.0.0.1", srv.port()), timeout=5)
    b = socket.create_connection(("127.0.0.1", srv.port()), timeout=5)
    time.sleep(0.2)
    c = socket.create_connection(("127.0.0.1", srv.port()), timeout=5)
    check(wait_closed(c, 3), "max-connections: third connection closed")
    check("max-connections" in srv.log(), "max-connections refusal logged")
    for x in (a, b, c):
        x.close()

# max-requests-per-connection: the third request gets a fault and the connection closes.
with Server("--max-requests-per-connection", "2") as srv:
    s = socket.create_connection(("127.0.0.1", srv.port()), timeout=5)
    s.sendall(BIND + REQ + with_header(REQ, call=3) + with_header(REQ, call=4))
    buf, end = b"", time.time() + 5
    while time.time() < end:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    kinds = []
    while len(buf) >= 16:
        n = struct.unpack_from("<H", buf, 8)[0]
        kinds.append(classify(buf[:n]))
        buf = buf[n:]
    check(kinds[:3] == ["ack", "response", "response"] and kinds[3].startswith("fault"), f"max-requests: {kinds}")
    s.close()
finish()
