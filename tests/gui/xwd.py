#!/usr/bin/env python3
"""Reads the X window dumps (xwd) that tests/gui/wireshark-gui takes of Xvfb's screen, with the standard library
only (no ImageMagick or PIL on the test machines).

  xwd.py png IN.xwd OUT.png [X Y W H]   write IN as PNG, optionally only the rectangle X Y W H
  xwd.py colour IN.xwd X Y W H          name the colour of the saturated pixels in the rectangle: red, yellow,
                                        cyan, blue, green, or none (no saturated pixel)

`colour` reads Wireshark's expert indicator in the status bar: an icon of one colour per severity (error red,
warning yellow, note cyan, chat blue, comment green; grey when there is no expert info)."""
import struct
import sys
import zlib


def read_xwd(path):
    """Width, height and rows of RGB bytes of a ZPixmap xwd with 24 or 32 bits per pixel (what Xvfb gives)."""
    data = open(path, 'rb').read()
    hdr = struct.unpack('>25I', data[:100])
    header_size, version, fmt, width, height = hdr[0], hdr[1], hdr[2], hdr[4], hdr[5]
    byte_order, bpp, bpl, ncolors = hdr[7], hdr[11], hdr[12], hdr[19]
    masks = hdr[14], hdr[15], hdr[16]
    if version != 7 or fmt != 2 or bpp not in (24, 32):
        sys.exit('xwd.py: unsupported xwd (version %d, format %d, %d bits per pixel)' % (version, fmt, bpp))
    pix = data[header_size + ncolors * 12:]
    step = bpp // 8
    shifts = [(m & -m).bit_length() - 1 for m in masks]
    order = 'little' if byte_order == 0 else 'big'
    rows = []
    for y in range(height):
        line = pix[y * bpl: y * bpl + width * step]
        out = bytearray(width * 3)
        for x in range(width):
            v = int.from_bytes(line[x * step: x * step + step], order)
            for i in range(3):
                out[3 * x + i] = (v & masks[i]) >> shifts[i]
        rows.append(bytes(out))
    return width, height, rows


def crop(rows, x, y, w, h):
    return [r[3 * x: 3 * (x + w)] for r in rows[y: y + h]]


def write_png(path, rows):
    width, height = len(rows[0]) // 3, len(rows)

    def chunk(kind, body):
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff)
    raw = b''.join(b'\x00' + r for r in rows)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)) +
                chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b''))


def colour_name(r, g, b):
    """The hue family of a saturated pixel."""
    if r > 150 and g < 120 and b < 120:
        return 'red'
    if r > 150 and g > 150 and b < 120:
        return 'yellow'
    if g > 150 and b > 150 and r < 170:
        return 'cyan' if g > 190 else 'blue'
    if b > 150 and r < 120 and g < 150:
        return 'blue'
    if g > 120 and r < 120 and b < 120:
        return 'green'
    return None


def dominant_colour(rows):
    counts = {}
    for row in rows:
        for i in range(0, len(row), 3):
            r, g, b = row[i], row[i + 1], row[i + 2]
            if max(r, g, b) - min(r, g, b) < 60:  # grey, white, black: not the icon's colour
                continue
            name = colour_name(r, g, b)
            if name:
                counts[name] = counts.get(name, 0) + 1
    if not counts:
        return 'none', counts
    return max(counts, key=counts.get), counts


def main(argv):
    if len(argv) >= 4 and argv[1] == 'png':
        _, _, rows = read_xwd(argv[2])
        if len(argv) == 8:
            rows = crop(rows, *map(int, argv[4:8]))
        write_png(argv[3], rows)
    elif len(argv) == 7 and argv[1] == 'colour':
        _, _, rows = read_xwd(argv[2])
        name, counts = dominant_colour(crop(rows, *map(int, argv[3:7])))
        print(name, ' '.join('%s=%d' % kv for kv in sorted(counts.items())))
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main(sys.argv)
