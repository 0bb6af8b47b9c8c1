#!/usr/bin/env python3
"""Builds a large KMS-heavy pcap for the dissector benchmark from the PDUs of captures/.

usage: make_capture.py PAYLOADS.tsv COPIES OUT.pcap
PAYLOADS.tsv: tshark -T fields -e tcp.stream -e tcp.srcport -e tcp.dstport -e tcp.payload of the DCE/RPC
segments of captures/ (see run.sh). Every TCP connection is replayed COPIES times, each copy on its own
client address and port (Ethernet/IPv4/TCP, server port 1688, sequence numbers continuing per direction),
so that every copy is a new connection to Wireshark. Only payload-carrying segments are written (no
handshake, no pure ACKs): the worst case for the plugin's share of the work.
"""
import struct, sys
from collections import OrderedDict

def checksum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def frame(src, dst, sport, dport, seq, ack, payload):
    tcp = struct.pack('!HHIIBBHHH', sport, dport, seq, ack, 5 << 4, 0x18, 65535, 0, 0) + payload
    pseudo = struct.pack('!4s4sBBH', src, dst, 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack('!H', checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack('!H', checksum(ip)) + ip[12:]
    return b'\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00' + ip + tcp

def main():
    payloads, copies, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    streams = OrderedDict()
    for line in open(payloads):
        parts = line.rstrip('\n').split('\t')
        if len(parts) < 4 or not parts[3]:
            continue
        stream, sport, dport, hexdata = parts[0], int(parts[1]), int(parts[2]), parts[3].replace(':', '')
        s = streams.setdefault(stream, {'server': dport, 'pdus': []})
        s['pdus'].append((sport != s['server'], bytes.fromhex(hexdata)))  # (to_server, bytes)
    server_ip = bytes([10, 255, 0, 1])
    t = 1_700_000_000.0
    with open(out, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        n = 0
        for copy in range(copies):
            for index, s in enumerate(streams.values()):
                conn = copy * len(streams) + index
                client_ip = bytes([10, (conn >> 16) & 0xff, (conn >> 8) & 0xff, conn & 0xff])
                client_port = 20000 + conn % 40000
                cseq, sseq = 1000, 5000
                for to_server, data in s['pdus']:
                    if to_server:
                        pkt = frame(client_ip, server_ip, client_port, 1688, cseq, sseq, data)
                        cseq += len(data)
                    else:
                        pkt = frame(server_ip, client_ip, 1688, client_port, sseq, cseq, data)
                        sseq += len(data)
                    t += 0.0005
                    f.write(struct.pack('<IIII', int(t), int((t % 1) * 1e6), len(pkt), len(pkt)) + pkt)
                    n += 1
    print('%d frames, %d connections' % (n, copies * len(streams)))

main()
