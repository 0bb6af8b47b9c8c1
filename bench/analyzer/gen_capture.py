#!/usr/bin/env python3
"""Builds a large synthetic capture for benchmarking kms-analyze (stdlib only; never committed).

usage: gen_capture.py OUT.pcap SIZE_MB [--kms-share 0.1] [--flows 64] [--captures DIR]

The real KMS sessions of captures/ (every Ethernet IPv4 one) are tiled: each copy gets its own client
address and port, one of 16 server addresses, and times on one running clock. Between them run bulk
non-KMS TCP flows (HTTP-like: handshake, 1448-byte segments, FIN). --flows connections are open at once,
their packets interleaved; --kms-share is the fraction of bytes that belongs to KMS sessions.
Classic pcap, Ethernet, nanosecond time stamps. Prints the number of KMS sessions and exchanges written.
"""
import argparse, os, random, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'analyzer'))
from pcapfile import read_capture  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument('out')
ap.add_argument('size_mb', type=float)
ap.add_argument('--kms-share', type=float, default=0.1)
ap.add_argument('--flows', type=int, default=64)
ap.add_argument('--captures', default=os.path.join(HERE, '..', '..', 'captures'))
ap.add_argument('--seed', type=int, default=1)
args = ap.parse_args()

FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
ETH = b'\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00'
IP_OFF, TCP_OFF = 16 + 14, 16 + 14 + 20  # offsets inside a pcap record

def sessions_of(path):
    """Each TCP connection as [(from_client, seq, ack, flags, payload)], for Ethernet IPv4 KMS captures."""
    conns = {}
    link, frames = read_capture(path)
    for ts, f in frames:
        if link != 1 or f[12:14] != b'\x08\x00':
            return []
        ip = f[14:]
        if ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack_from('>H', ip, 2)[0]
        tcp = ip[ihl:total]
        sport, dport, seq, ack = struct.unpack_from('>HHII', tcp, 0)
        payload = tcp[(tcp[12] >> 4) * 4:]
        key = tuple(sorted([(ip[12:16], sport), (ip[16:20], dport)]))
        if key not in conns:
            conns[key] = {'client': (ip[12:16], sport), 'pkts': []}
        c = conns[key]
        c['pkts'].append(((ip[12:16], sport) == c['client'], seq, ack, tcp[13], bytes(payload)))
    return [c['pkts'] for c in conns.values() if any(p[4] for p in c['pkts'])]

def record(from_client, seq, ack, flags, payload):
    tcp = struct.pack('>HHIIBBHHH', 0, 0, seq & 0xffffffff, ack & 0xffffffff, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, b'\0' * 4, b'\0' * 4)
    frame = ETH + ip + tcp
    return bytearray(struct.pack('<IIII', 0, 0, len(frame), len(frame)) + frame), from_client

def template(pkts):
    return [record(*p) for p in pkts]

# KMS session templates from every usable capture (tampered ones included: they must fail).
kms_templates, kms_exchanges = [], []
for name in sorted(os.listdir(args.captures)):
    if not name.endswith(('.pcap', '.pcapng')):
        continue
    for s in sessions_of(os.path.join(args.captures, name)):
        if any(p[4][:1] == b'\x05' for p in s):  # DCE/RPC (skip the HTTP noise connections)
            kms_templates.append(template(s))
            kms_exchanges.append(sum(1 for p in s if p[0] and len(p[4]) > 2 and p[4][2] == 0))
if not kms_templates:
    raise SystemExit('no KMS sessions found in ' + args.captures)

def bulk_template(segments):
    body = bytes(random.Random(7).randrange(256) for _ in range(1448))
    pkts = [(True, 1000, 0, SYN, b''), (False, 5000, 1001, SYN | ACK, b''), (True, 1001, 5001, ACK, b''),
            (True, 1001, 5001, PSH | ACK, b'GET /blob HTTP/1.1\r\nHost: example\r\n\r\n')]
    seq = 5001
    for i in range(segments):
        pkts.append((False, seq, 1039, ACK, body))
        seq += len(body)
        if i % 2:
            pkts.append((True, 1039, seq, ACK, b''))
    pkts += [(False, seq, 1039, FIN | ACK, b''), (True, 1039, seq + 1, FIN | ACK, b''), (False, seq + 1, 1040, ACK, b'')]
    return template(pkts)

bulk_templates = [bulk_template(n) for n in (16, 64, 256)]
kms_bytes_per = sum(len(r) for t in kms_templates for r, _ in t) / len(kms_templates)
bulk_bytes_per = sum(len(r) for t in bulk_templates for r, _ in t) / len(bulk_templates)
# Probability that a new flow is a KMS session, so that KMS gets about --kms-share of the bytes.
share = min(max(args.kms_share, 0.0), 1.0)
p_kms = 1.0 if share >= 1 else (share / kms_bytes_per) / (share / kms_bytes_per + (1 - share) / bulk_bytes_per)

rng = random.Random(args.seed)
limit = int(args.size_mb * 1024 * 1024)
out = open(args.out, 'wb', buffering=1 << 22)
out.write(struct.pack('<IHHiIII', 0xa1b23c4d, 2, 4, 0, 0, 262144, 1))
written = 24
clock = 1_790_000_000 * 10**9
next_client = 0
sessions = exchanges = 0
servers = [bytes([192, 168, 0, 1 + i]) for i in range(16)]

def new_flow():
    global next_client, sessions, exchanges
    next_client += 1
    n = next_client
    client = bytes([10, (n >> 16) & 255, (n >> 8) & 255, n & 255])
    cport = 1024 + (n * 7919) % 64000
    if rng.random() < p_kms:
        i = rng.randrange(len(kms_templates))
        t, sport = kms_templates[i], 1688
        sessions += 1
        exchanges += kms_exchanges[i]
    else:
        t, sport = rng.choice(bulk_templates), 80
    return {'t': t, 'i': 0, 'client': client, 'server': rng.choice(servers), 'cport': cport, 'sport': sport}

flows = [new_flow() for _ in range(args.flows)]
chunks, pending = [], 0
k = 0
while written < limit:
    k = (k + 1) % len(flows)
    f = flows[k]
    rec, from_client = f['t'][f['i']]
    clock += 7000 + (k * 131) % 5000
    struct.pack_into('<II', rec, 0, clock // 10**9, clock % 10**9)
    if from_client:
        struct.pack_into('>4s4s', rec, IP_OFF + 12, f['client'], f['server'])
        struct.pack_into('>HH', rec, TCP_OFF, f['cport'], f['sport'])
    else:
        struct.pack_into('>4s4s', rec, IP_OFF + 12, f['server'], f['client'])
        struct.pack_into('>HH', rec, TCP_OFF, f['sport'], f['cport'])
    chunks.append(bytes(rec))
    written += len(rec)
    pending += len(rec)
    if pending > 1 << 22:
        out.write(b''.join(chunks))
        chunks, pending = [], 0
    f['i'] += 1
    if f['i'] == len(f['t']):
        flows[k] = new_flow()
out.write(b''.join(chunks))
out.close()
# Sessions still open at the end were cut: count only the completed ones' exchanges as a lower bound.
print('wrote %s: %.1f MB, %d KMS sessions started (%d requests), %d flows open at the end' %
      (args.out, written / 1e6, sessions, exchanges, len(flows)))
