"""Reads the captures in captures/ (stdlib only), for the test and benchmark generators."""
import struct


def read_capture(path):
    """(link_type, [(ts_ns, frame bytes)]) of a pcap or pcapng file (single interface)."""
    data = open(path, 'rb').read()
    out = []
    if data[:4] == b'\x0a\x0d\x0d\x0a':
        pos, link, res = 0, None, 10**6  # if_tsresol defaults to microseconds
        while pos + 12 <= len(data):
            btype, blen = struct.unpack_from('<II', data, pos)
            body = data[pos + 8: pos + blen - 4]
            if btype == 1:
                link = struct.unpack_from('<H', body, 0)[0]
                opt = 8
                while opt + 4 <= len(body):
                    code, olen = struct.unpack_from('<HH', body, opt)
                    if code == 0:
                        break
                    if code == 9:
                        r = body[opt + 4]
                        res = 10 ** (r & 0x7f) if not r & 0x80 else 2 ** (r & 0x7f)
                    opt += 4 + (olen + 3) // 4 * 4
            elif btype == 6:
                _, hi, lo, caplen, _ = struct.unpack_from('<IIIII', body, 0)
                out.append(((hi << 32 | lo) * 10**9 // res, body[20:20 + caplen]))
            pos += blen
        return link, out
    nano = struct.unpack_from('<I', data, 0)[0] == 0xa1b23c4d
    link = struct.unpack_from('<I', data, 20)[0]
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from('<IIII', data, pos)
        out.append((sec * 10**9 + (frac if nano else frac * 1000), data[pos + 16: pos + 16 + caplen]))
        pos += 16 + caplen
    return link, out
