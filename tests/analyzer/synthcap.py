"""Synthetic captures cut from the real ones in captures/ (stdlib only): the session surgery and the pcap
writer shared by the analyzer's synthetic tests (synth.py) and kms-replay's (tests/replay), so that both
tools are tried on the very same reordered, duplicated, overlapping and gapped sessions."""
import io, struct

from pcapfile import read_capture

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

class Pkt:
    def __init__(self, ts, src, dst, sport, dport, seq, ack, flags, payload, v6=False):
        self.ts, self.src, self.dst, self.sport, self.dport = ts, src, dst, sport, dport
        self.seq, self.ack, self.flags, self.payload, self.v6 = seq, ack, flags, payload, v6
    def copy(self, **kw):
        p = Pkt(self.ts, self.src, self.dst, self.sport, self.dport, self.seq, self.ack, self.flags, self.payload, self.v6)
        for k, v in kw.items():
            setattr(p, k, v)
        return p

# ---------------------------------------------------------------- reading the real captures

def parse_tcp(link, ts, frame):
    if link == 1:
        if frame[12:14] == b'\x08\x00':
            ip = frame[14:]
        elif frame[12:14] == b'\x86\xdd':
            ip = frame[14:]
        else:
            return None
    elif link == 276:
        ip = frame[20:]
    else:
        return None
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 15) * 4
        if ip[9] != 6:
            return None
        total = struct.unpack_from('>H', ip, 2)[0]
        src, dst, tcp, v6 = ip[12:16], ip[16:20], ip[ihl:total], False
    else:
        if ip[6] != 6:
            return None
        plen = struct.unpack_from('>H', ip, 4)[0]
        src, dst, tcp, v6 = ip[8:24], ip[24:40], ip[40:40 + plen], True
    sport, dport, seq, ack = struct.unpack_from('>HHII', tcp, 0)
    off = (tcp[12] >> 4) * 4
    return Pkt(ts, src, dst, sport, dport, seq, ack, tcp[13], bytes(tcp[off:]), v6)

def session(path):
    """The TCP packets of a capture (Ethernet or SLL2), in file order."""
    link, frames = read_capture(path)
    return [p for p in (parse_tcp(link, ts, f) for ts, f in frames) if p]

# ---------------------------------------------------------------- writing synthetic captures

def ip_packet(p, ext_header=False):
    tcp = struct.pack('>HHIIBBHHH', p.sport, p.dport, p.seq & 0xffffffff, p.ack & 0xffffffff, 5 << 4, p.flags,
                      65535, 0, 0) + p.payload
    if not p.v6:
        hdr = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, p.src, p.dst)
        return hdr + tcp
    nxt, ext = 6, b''
    if ext_header:  # a hop-by-hop options header (PadN) before TCP
        ext, nxt = bytes([6, 0, 1, 4, 0, 0, 0, 0]), 0
    return struct.pack('>IHBB16s16s', 0x60000000, len(ext) + len(tcp), nxt, 64, p.src, p.dst) + ext + tcp

def frame(p, framing):
    ip = ip_packet(p, ext_header=(framing == 'eth6ext'))
    et = b'\x86\xdd' if p.v6 else b'\x08\x00'
    macs = b'\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb'
    if framing in ('eth', 'eth6ext'):
        return 1, macs + et + ip
    if framing == 'vlan':
        return 1, macs + b'\x81\x00\x00\x2a' + et + ip
    if framing == 'qinq':
        return 1, macs + b'\x88\xa8\x00\x64\x81\x00\x00\x2a' + et + ip
    if framing == 'sll':
        return 113, struct.pack('>HHH8s', 0, 772, 6, b'\0' * 8) + et + ip
    if framing == 'sll2':
        return 276, et + b'\0\0' + struct.pack('>IHBB8s', 1, 772, 0, 6, b'\0' * 8) + ip
    if framing == 'raw':
        return 101, ip
    if framing == 'null':
        return 0, struct.pack('<I', 30 if p.v6 else 2) + ip
    raise ValueError(framing)

def pcap_bytes(pkts, framing='eth', link_override=None, extra=()):
    """Classic pcap with nanosecond time stamps; `extra` are (ts_ns, raw frame) appended in time order."""
    recs = []
    link = 1
    for p in pkts:
        link, f = frame(p, framing)
        recs.append((p.ts, f))
    recs += list(extra)
    if link_override is not None:
        link = link_override
    out = io.BytesIO()
    out.write(struct.pack('<IHHiIII', 0xa1b23c4d, 2, 4, 0, 0, 262144, link))
    for ts, f in recs:
        out.write(struct.pack('<IIII', ts // 10**9, ts % 10**9, len(f), len(f)) + f)
    return out.getvalue()

def write_pcap(path, pkts, framing='eth', link_override=None, extra=()):
    with open(path, 'wb') as f:
        f.write(pcap_bytes(pkts, framing, link_override, extra))
    return path

# ---------------------------------------------------------------- session surgery

def split_phases(pkts):
    """(handshake, data segments, teardown) of a one-connection session."""
    data = [p for p in pkts if p.payload]
    first = pkts.index(data[0])
    last = pkts.index(data[-1])
    return pkts[:first], data, [p for p in pkts[last + 1:]]

def chop(p, sizes):
    """Cuts a data segment into pieces of the given sizes (the last piece takes the rest)."""
    out, off = [], 0
    for i, n in enumerate(sizes):
        n = len(p.payload) - off if i == len(sizes) - 1 else min(n, len(p.payload) - off)
        if n <= 0:
            break
        out.append(p.copy(seq=p.seq + off, payload=p.payload[off:off + n], ts=p.ts + i))
        off += n
    return out

def one_byte(p):
    return [p.copy(seq=p.seq + i, payload=p.payload[i:i + 1], ts=p.ts + i) for i in range(len(p.payload))]

def reversed_data(pkts):
    """Every data segment of a one-connection session in reverse order (handshake and teardown kept)."""
    head, data, tail = split_phases(pkts)
    return head + data[::-1] + tail

def duplicated(pkts):
    """Every data segment retransmitted once, right after the original."""
    out = []
    for p in pkts:
        out += [p, p.copy(ts=p.ts + 1)] if p.payload else [p]
    return out

def overlapping(pkts):
    """Every data segment longer than 40 bytes sent as three overlapping pieces out of order, then whole again."""
    out = []
    for p in pkts:
        if p.payload and len(p.payload) > 40:
            a = p.copy(payload=p.payload[:30])
            b = p.copy(seq=p.seq + 10, payload=p.payload[10:50], ts=p.ts + 1)  # overlaps a
            c = p.copy(seq=p.seq + 20, payload=p.payload[20:], ts=p.ts + 2)    # overlaps b
            d = p.copy(ts=p.ts + 3)                                            # the whole again
            out += [a, c, b, d]
        else:
            out.append(p)
    return out

def conflicting(pkts):
    """Every data segment retransmitted with different bytes (the first copy must win)."""
    out = []
    for p in pkts:
        out.append(p)
        if p.payload:
            out.append(p.copy(payload=b'\xff' * len(p.payload), ts=p.ts + 1))
    return out

def server_of(pkts):
    """(address, port) of the server: the side that answers the first data segment."""
    data = [p for p in pkts if p.payload]
    return (data[1].src, data[1].sport)

def lose_response_head(pkts):
    """The first 40 bytes of the last response segment never captured (a gap in the server's stream)."""
    server = server_of(pkts)
    resp = [p for p in pkts if p.payload and (p.src, p.sport) == server][-1]
    _, rest = chop(resp, [40, 10**6])
    return [x for p in pkts for x in ([rest] if p is resp else [p])]

def lose_last_request(pkts):
    """The last request segment never captured: its answer acknowledges bytes that were not seen."""
    server = server_of(pkts)
    req = [p for p in pkts if p.payload and (p.src, p.sport) != server][-1]
    return [p for p in pkts if p is not req]

def raw_udp(ts, src, dst, sport, dport, payload):
    udp = struct.pack('>HHHH', sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst) + udp
    return ts, b'\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00' + ip

def dns_name(n):
    return b''.join(bytes([len(x)]) + x.encode() for x in n.split('.')) + b'\0'
