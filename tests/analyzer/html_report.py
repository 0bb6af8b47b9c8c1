"""kms-analyze --html (issue 13): the report renders in headless Chromium without a console message, its
counts (data-* attributes in the DOM after its script ran) equal `--summary --format json`'s on the same
input, a 1280x2000 screenshot is taken and is not blank, and capture-derived markup stays text.

usage: html_report.py ANALYZER CAPTURES_DIR

Inputs: every bundled capture at once, an empty capture, and a discovery capture (an NXDOMAIN answer and
an SRV answer for a `_vlmcs._tcp.<script>...` name, a SYN to 1688 never answered, one real session) whose
file name holds markup too. Needs Debian's `chromium`; every subprocess has a timeout.
"""
import glob, html.parser, json, os, shutil, struct, subprocess, sys, tempfile, zlib

from synthcap import SYN, Pkt, dns_name, frame, raw_udp, session, write_pcap

ANALYZER, CAPTURES = (os.path.abspath(a) for a in sys.argv[1:3])
WORK = tempfile.mkdtemp(prefix='kms-html-')
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
from checks import CHECKS, FAILURES, check

def run(args, timeout=300):
    p = subprocess.run([ANALYZER, '--no-progress'] + args, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise SystemExit('%s: exit %d\n%s' % (' '.join(args), p.returncode, p.stderr.decode()))
    return p.stdout

def chromium(page, *args):
    """Runs headless Chromium on the page; returns (stdout, console lines)."""
    profile = tempfile.mkdtemp(dir=WORK)
    p = subprocess.run([CHROMIUM, '--headless', '--disable-gpu', '--no-sandbox', '--enable-logging=stderr', '--v=0',
                        '--user-data-dir=' + profile, '--no-first-run'] + list(args) + ['file://' + page],
                       capture_output=True, timeout=120)
    console = [l for l in p.stderr.decode(errors='replace').splitlines() if ':CONSOLE' in l]
    return p.stdout.decode(errors='replace'), console

class Dom(html.parser.HTMLParser):
    """Elements by id and the attributes of every element (the dumped DOM)."""
    def __init__(self, text):
        super().__init__()
        self.elements, self.by_id, self.texts = [], {}, {}
        self.current = None
        self.feed(text)
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        a['<tag>'] = tag
        self.elements.append(a)
        if 'id' in a:
            self.by_id[a['id']] = a
            self.current = a['id']
    def handle_data(self, data):
        if self.current:
            self.texts[self.current] = self.texts.get(self.current, '') + data
    def rows(self, key):
        return {e[key]: e for e in self.elements if e['<tag>'] == 'tr' and key in e}

def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit PNG, unfiltered (stdlib only)."""
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat = 8, b''
    while pos < len(data):
        n, kind = struct.unpack_from('>I4s', data, pos)
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            w, h, depth, colour = struct.unpack_from('>IIBB', body)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    assert depth == 8 and colour in (2, 6), 'unexpected PNG format %d/%d' % (depth, colour)
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 2:
            line = bytearray(map(lambda a, b: (a + b) & 255, line, prev))
        elif f in (1, 3, 4):
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                up, ul = prev[i], (prev[i - bpp] if i >= bpp else 0)
                if f == 1:
                    pred = left
                elif f == 3:
                    pred = (left + up) >> 1
                else:
                    pa, pb, pc = abs(up - ul), abs(left - ul), abs(left + up - 2 * ul)
                    pred = left if pa <= pb and pa <= pc else up if pb <= pc else ul
                line[i] = (line[i] + pred) & 255
        rows.append(line)
        prev = line
    return w, h, bpp, rows

def check_screenshot(path, name, want_green):
    w, h, bpp, rows = png_pixels(path)
    check((w, h) == (1280, 2000), '%s: screenshot is 1280x2000, not %dx%d' % (name, w, h))
    pixels = [tuple(r[i:i + 3]) for r in rows[::8] for i in range(0, len(r), 8 * bpp)]
    lum = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b in pixels]
    mean = sum(lum) / len(lum)
    variance = sum((v - mean) ** 2 for v in lum) / len(lum)
    dark = sum(v < 128 for v in lum) / len(lum)
    check(variance > 50 and len(set(pixels)) > 20 and dark > 0.002,
          '%s: screenshot not blank (variance %.1f, %d colours, %.4f dark)' % (name, variance, len(set(pixels)), dark))
    if want_green:  # the ok colour of the time chart and the KMS ID bars (#2e7d32), give or take antialiasing
        green = sum(abs(r - 0x2e) < 24 and abs(g - 0x7d) < 24 and abs(b - 0x32) < 24 for r, g, b in pixels)
        check(green > 20, '%s: the charts are drawn (%d ok-green pixels sampled)' % (name, green))

def report(name, files, want_green=False):
    page = os.path.join(WORK, name + '.html')
    plain = run(['--summary', '--format', 'json'] + files)
    with_html = run(['--html', page, '--summary', '--format', 'json'] + files)
    check(plain == with_html, '%s: --html leaves the normal output unchanged' % name)
    summary = json.loads(plain.decode().splitlines()[-1])
    text = open(page, encoding='utf-8').read()
    check(len(text) < 3 << 20, '%s: page under 3 MB (%d bytes)' % (name, len(text)))
    dom_text, console = chromium(page, '--dump-dom')
    check(console == [], '%s: no console message: %s' % (name, console))
    dom = Dom(dom_text)
    check("default-src 'none'" in text and not any(e['<tag>'] in ('link', 'img', 'iframe', 'object') or 'src' in e or 'href' in e
                                                   for e in dom.elements),
          '%s: self-contained (CSP forbids fetches; no src, href, link or img)' % name)
    totals = dom.by_id.get('totals', {})
    for attr, key in (('data-exchanges', 'exchanges'), ('data-ok', 'ok'), ('data-failed', 'failed'),
                      ('data-dns', 'dns_srv_messages'), ('data-unanswered', 'unanswered_connections')):
        check(totals.get(attr) == str(summary[key]), '%s: %s %s, --summary %s' % (name, attr, totals.get(attr), summary[key]))
    rows = dom.rows('data-kms-id')
    check(len(rows) == len(summary['kms_ids']), '%s: %d KMS ID rows, --summary %d' % (name, len(rows), len(summary['kms_ids'])))
    for k in summary['kms_ids']:
        r = rows.get(k['kms_id'], {})
        check((r.get('data-current-count'), r.get('data-n-policy'), r.get('data-requests'), r.get('data-ok'), r.get('data-failed'))
              == tuple(str(k[f]) for f in ('current_count', 'n_policy', 'requests', 'ok', 'failed')),
              '%s: KMS ID %s: %s, --summary %s' % (name, k['kms_id'], r, k))
    for table, key in (('clients', 'client'), ('servers', 'server'), ('products', 'product')):
        rows = dom.rows('data-' + key)
        check(len(rows) == len(summary[table]), '%s: %d %s rows, --summary %d' % (name, len(rows), table, len(summary[table])))
        for s in summary[table]:
            r = rows.get(s[key], {})
            check((r.get('data-requests'), r.get('data-ok'), r.get('data-failed')) == (str(s['requests']), str(s['ok']), str(s['failed'])),
                  '%s: %s %s: %s, --summary %s' % (name, key, s[key], r, s))
            if key == 'server':
                check(r.get('data-impl') == s['server_impl'], '%s: server %s fingerprint %s' % (name, s[key], r.get('data-impl')))
    legend = {e['data-verdict']: int(e['data-count']) for e in dom.elements if 'data-verdict' in e}
    check(sum(legend.values()) == summary['exchanges'] and legend.get('ok') == summary['ok'],
          '%s: the legend counts every exchange: %s' % (name, legend))
    check(dom.texts.get('kms-ids-shown', '').strip().endswith('of %d rows' % len(summary['kms_ids'])),
          "%s: the page's script ran (row count beside the filter): %r" % (name, dom.texts.get('kms-ids-shown')))
    shot = os.path.join(WORK, name + '.png')
    chromium(page, '--screenshot=' + shot, '--window-size=1280,2000', '--hide-scrollbars')
    check(os.path.exists(shot), '%s: screenshot taken' % name)
    if os.path.exists(shot):
        check_screenshot(shot, name, want_green)
    return dom, text

if not CHROMIUM:
    raise SystemExit('chromium not found (scripts/install-deps installs it)')

# The console check itself: a page that logs is caught.
probe = os.path.join(WORK, 'probe.html')
open(probe, 'w').write('<script>console.error("probe")</script>')
check(any('probe' in l for l in chromium(probe, '--dump-dom')[1]), 'a console message is detected')

# Every bundled capture at once.
caps = sorted(glob.glob(os.path.join(CAPTURES, '*.pcapng')))
dom, _ = report('bundled', caps, want_green=True)
check(int(dom.by_id['totals']['data-exchanges']) > 0 and len(dom.rows('data-server')) > 1, 'bundled: exchanges and servers')

# An empty capture.
empty = os.path.join(WORK, 'empty.pcap')
write_pcap(empty, [], 'eth')
dom, _ = report('empty', [empty])
check(dom.by_id['totals']['data-exchanges'] == '0', 'empty: no exchange')

# Discovery that failed, an unanswered SYN and markup in capture-derived strings.
pkts = session(os.path.join(CAPTURES, 'vlmcs-vlmcsd-v4-win7pro-fixedid-1req.pcapng'))
t0 = pkts[0].ts - 10**9
c, s, dns = bytes([10, 0, 0, 5]), bytes([10, 0, 0, 1]), bytes([10, 0, 0, 53])
evil = '_vlmcs._tcp.<script>alert(1)</script><b id=injected>x'
q = struct.pack('>HHHHHH', 0x4321, 0x0100, 1, 0, 0, 0) + dns_name(evil) + struct.pack('>HH', 33, 1)
nx = struct.pack('>HHHHHH', 0x4321, 0x8183, 1, 0, 0, 0) + dns_name(evil) + struct.pack('>HH', 33, 1)
extra = [raw_udp(t0, c, dns, 5353, 53, q), raw_udp(t0 + 1000, dns, c, 53, 5353, nx)]
syn = Pkt(t0 + 3000, c, s, 50001, 1688, 1000, 0, SYN, b'')
disc = os.path.join(WORK, 'disc <img src=x onerror=alert(2)> "quoted" \'it\' &amp.pcap')
write_pcap(disc, [], 'eth', link_override=1, extra=sorted(extra + [(p.ts, frame(p, 'eth')[1]) for p in [syn] + pkts]))
dom, text = report('discovery', [disc])
tags = [e['<tag>'] for e in dom.elements]
check(tags.count('script') == 1 and 'img' not in tags and 'injected' not in dom.by_id,
      'discovery: capture-derived markup stays text (%d scripts, img %s, injected %s)' % (tags.count('script'), 'img' in tags, 'injected' in dom.by_id))
check('&lt;script&gt;alert(1)&lt;/script&gt;' in text and '&lt;img src=x onerror=alert(2)&gt;' in text,
      'discovery: the DNS name and the file name are escaped in the page')
d = dom.by_id.get('discovery', {})
check((d.get('data-queries'), d.get('data-answers'), d.get('data-failed-answers')) == ('1', '1', '1'),
      'discovery: one query, one NXDOMAIN answer: %s' % d)
check(dom.by_id['totals']['data-unanswered'] == '1', 'discovery: the SYN never answered is counted')

if '--keep' not in sys.argv:
    shutil.rmtree(WORK, ignore_errors=True)
print('%d checks, %d failed' % (CHECKS[0], len(FAILURES)))
sys.exit(1 if FAILURES else 0)
