#!/usr/bin/env python3
"""Synthetic captures for kms-analyze, generated from the real ones in captures/ (stdlib only), and
assertions on the analyzer's output for each.

usage: synth.py ANALYZER CAPTURES_DIR [--keep DIR] [--only CASE,...]

Reassembly: every order of the data segments of a session, one-byte segments, duplicated and
overlapping retransmissions, gaps (a lost response segment, a lost request), a connection cut before
the response, reset instead of a response. Framing: 802.1Q, QinQ, Linux SLL and SLL2, raw IP, BSD
loopback, IPv6 with an extension header, a non-standard port with no handshake; a KMS session reusing the 4-tuple of a long non-DCE/RPC
connection. Discovery: a DNS SRV
query and answer, a SYN never answered and one refused. Input: gzip, standard input, a truncated file,
an unsupported link type; damaged gzip (in the data, in the CRC, no trailer) and gzip or plain data
through a named pipe; a pcapng merged from SLL2 and Ethernet captures (a link type per interface). Options: --filter, --strict, --format csv, --summary, --max-connections.
"""
import gzip, io, itertools, json, os, re, shutil, struct, subprocess, sys, tempfile, threading, zlib

from synthcap import (ACK, FIN, PSH, RST, SYN, Pkt, chop, conflicting, dns_name, duplicated, frame, lose_last_request,
                      lose_response_head, one_byte, overlapping, raw_udp, server_of, split_phases, write_pcap)
import synthcap

ANALYZER, CAPTURES = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
KEEP = sys.argv[sys.argv.index('--keep') + 1] if '--keep' in sys.argv else None
# --only case_a,case_b: run those cases alone (while working on one).
ONLY = sys.argv[sys.argv.index('--only') + 1].split(',') if '--only' in sys.argv else None
WORK = KEEP or tempfile.mkdtemp(prefix='kms-synth-')
os.makedirs(WORK, exist_ok=True)

def session(name):
    return synthcap.session(os.path.join(CAPTURES, name))

# ---------------------------------------------------------------- running the analyzer

def analyze(*args, stdin=None, expect_rc=0):
    p = subprocess.run([ANALYZER, '--no-progress'] + list(args), input=stdin, capture_output=True)
    if expect_rc is not None and p.returncode != expect_rc:
        raise AssertionError('%s: exit %d (want %d)\n%s' % (' '.join(args), p.returncode, expect_rc, p.stderr.decode()))
    return p

def records(*args, **kw):
    out = analyze('--format', 'json', *args, **kw).stdout.decode()
    return [json.loads(l) for l in out.splitlines() if l.strip()]

def exchanges(*args, **kw):
    return [r for r in records(*args, **kw) if r['kind'] == 'exchange']

def essence(r, keep_endpoints=False):
    """What must not change when only the framing or the segmentation changes."""
    e = {k: r[k] for k in ('call_id', 'ndr', 'version', 'request', 'response', 'fault', 'verdict', 'diagnostics')}
    if keep_endpoints:
        e['client'], e['server'] = r['client'], r['server']
    return e

from checks import CHECKS, FAILURES, check

def same(path, reference, what, keep_endpoints=False):
    got = [essence(r, keep_endpoints) for r in exchanges(path)]
    want = [essence(r, keep_endpoints) for r in reference]
    check(got == want, '%s: exchanges differ from the original\n got %s\nwant %s' % (what, str(got)[:600], str(want)[:300]))

def path(name):
    return os.path.join(WORK, name)

# ---------------------------------------------------------------- the cases

def case_orders():
    for name in ('vlmcs-vlmcsd-v4-win7pro-fixedid-1req.pcapng', 'pykms-vlmcsd-v6-windows10.pcapng',
                 'vlmcs-vlmcsd-v5-office2013-N0-1req.pcapng'):
        pkts = session(name)
        ref = exchanges(os.path.join(CAPTURES, name))
        head, data, tail = split_phases(pkts)
        n = 0
        for perm in itertools.permutations(data):
            f = write_pcap(path('order.pcap'), head + list(perm) + tail)
            same(f, ref, '%s order %s' % (name, [data.index(p) for p in perm]))
            n += 1
        print('orders: %s: %d permutations of %d data segments' % (name, n, len(data)))
    # A longer session (bind, alter_context, 3 requests): every order of the segments inside each
    # request/response pair would be too many; reverse the whole data phase and rotate it instead.
    name = 'vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng'
    pkts, ref = session(name), exchanges(os.path.join(CAPTURES, name))
    head, data, tail = split_phases(pkts)
    same(write_pcap(path('reversed.pcap'), head + data[::-1] + tail), ref, name + ' reversed')
    for k in range(1, len(data)):
        same(write_pcap(path('rotated.pcap'), head + data[k:] + data[:k] + tail), ref, '%s rotated %d' % (name, k))

def case_one_byte():
    for name in ('vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng', 'vlmcs-vlmcsd-v4-office2010-ndr64-2req.pcapng'):
        pkts, ref = session(name), exchanges(os.path.join(CAPTURES, name))
        out = []
        for p in pkts:
            out += one_byte(p) if p.payload else [p]
        same(write_pcap(path('onebyte.pcap'), out), ref, name + ' one-byte segments')
        # One-byte segments of each PDU in reverse order.
        out = []
        for p in pkts:
            out += one_byte(p)[::-1] if p.payload else [p]
        same(write_pcap(path('onebyte-rev.pcap'), out), ref, name + ' one-byte segments reversed')

def case_retransmissions():
    name = 'vlmcs-vlmcsd-v5-win8pro-ndr64-2req.pcapng'
    pkts, ref = session(name), exchanges(os.path.join(CAPTURES, name))
    same(write_pcap(path('dup.pcap'), duplicated(pkts)), ref, 'duplicated segments')
    same(write_pcap(path('overlap.pcap'), overlapping(pkts)), ref, 'overlapping retransmissions')
    # A retransmission that carries different bytes over already delivered ones: the first copy wins.
    same(write_pcap(path('conflict.pcap'), conflicting(pkts)), ref, 'conflicting retransmission (first copy wins)')

def case_gaps():
    name = 'vlmcs-vlmcsd-v5-win8pro-ndr64-2req.pcapng'
    pkts = session(name)
    # Lose the first half of the second response.
    ex = exchanges(write_pcap(path('gap-resp.pcap'), lose_response_head(pkts)))
    check(len(ex) == 2, 'gap in a response: 2 exchanges, got %d' % len(ex))
    if len(ex) == 2:
        check(ex[0]['verdict']['ok'], 'gap in response 2: exchange 1 still ok')
        check(ex[1]['verdict']['outcome'] == 'no_response', 'gap in response 2: exchange 2 no_response, got %s' % ex[1]['verdict'])
        check(any('missing' in d for d in ex[1]['diagnostics']), 'gap in response 2: diagnostic names the missing bytes: %s' % ex[1]['diagnostics'])
        check(ex[1]['request'] is not None, 'gap in response 2: request 2 still decoded')
    # Lose the second request entirely: its answer acknowledges bytes never seen.
    ex = exchanges(write_pcap(path('gap-req.pcap'), lose_last_request(pkts)))
    check(len(ex) == 2 and ex[0]['verdict']['ok'], 'lost request 2: exchange 1 ok')
    if len(ex) == 2:
        check(ex[1]['verdict']['outcome'] == 'orphan' and ex[1]['request'] is None,
              'lost request 2: its answer is reported without a request: %s' % ex[1]['verdict'])
        check(any('missing' in d for d in ex[1]['diagnostics']), 'lost request 2: diagnostic %s' % ex[1]['diagnostics'])

def case_cut():
    name = 'vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng'
    pkts = session(name)
    head, data, tail = split_phases(pkts)
    client = (data[0].src, data[0].sport)
    req1 = [p for p in data if (p.src, p.sport) == client and p.payload[2] == 0][0]
    cut = pkts[:pkts.index(req1) + 1]
    ex = exchanges(write_pcap(path('cut.pcap'), cut))
    check(len(ex) == 1 and ex[0]['verdict']['outcome'] == 'no_response' and ex[0]['response'] is None
          and ex[0]['request'] is not None, 'cut before the response: one unanswered exchange')
    check(len(ex) == 1 and any('capture ended' in d for d in ex[0]['diagnostics']), 'cut: says the capture ended')
    # The server resets the connection instead of answering.
    rst = req1.copy(src=req1.dst, dst=req1.src, sport=req1.dport, dport=req1.sport, seq=req1.ack,
                    ack=req1.seq + len(req1.payload), flags=RST | ACK, payload=b'', ts=req1.ts + 1000)
    ex = exchanges(write_pcap(path('reset.pcap'), cut + [rst]))
    check(len(ex) == 1 and ex[0]['verdict']['outcome'] == 'no_response'
          and any('reset' in d for d in ex[0]['diagnostics']), 'reset before the response: %s' % ex[:1])
    check(analyze('--strict', path('reset.pcap'), expect_rc=None).returncode == 1, '--strict: exit 1 on an unanswered request')

def case_framing():
    name = 'vlmcs-vlmcsd-v6-office2016-T-3conn.pcapng'
    pkts, ref = session(name), exchanges(os.path.join(CAPTURES, name))
    for framing in ('eth', 'vlan', 'qinq', 'sll', 'sll2', 'raw', 'null'):
        same(write_pcap(path('frame-%s.pcap' % framing), pkts, framing), ref, 'framing ' + framing, keep_endpoints=True)
    # IPv6 (with a hop-by-hop header) and addresses that need brackets.
    a6, b6 = bytes.fromhex('fd000000000000000000000000000001'), bytes.fromhex('fd0000000000000000000000000000aa')
    kport = pkts[0].dport  # the first packet is the client's SYN
    six = [p.copy(v6=True, src=a6 if p.dport == kport else b6, dst=b6 if p.dport == kport else a6) for p in pkts]
    for framing in ('eth', 'eth6ext', 'null', 'raw', 'sll2'):
        f = write_pcap(path('ipv6-%s.pcap' % framing), six, framing)
        ex = exchanges(f)
        same(f, ref, 'IPv6 ' + framing)
        check(all(r['client'].startswith('[fd00::1]:') and r['server'] == '[fd00::aa]:%d' % pkts[0].dport for r in ex),
              'IPv6 %s endpoints: %s' % (framing, [(r['client'], r['server']) for r in ex]))

def case_port():
    # Server on port 443 (client port 40000 > 443 would pass a port guess; use 80 vs 50000 reversed:
    # client port 80, server port 50000), and no handshake: the bind alone must identify the client.
    name = 'vlmcs-vlmcsd-v6-server2019dc-N0-B0-2req.pcapng'
    pkts, ref = session(name), exchanges(os.path.join(CAPTURES, name))
    cport = pkts[0].sport  # the first packet is the client's SYN
    out = []
    for p in pkts:
        if p.flags & SYN:
            continue
        if p.sport == cport:
            out.append(p.copy(sport=80, dport=50000))
        else:
            out.append(p.copy(sport=50000, dport=80))
    f = write_pcap(path('port.pcap'), out)
    ex = exchanges(f)
    same(f, ref, 'non-standard ports without handshake')
    check(all(r['server'].endswith(':50000') and r['client'].endswith(':80') for r in ex), 'non-standard port: roles from the bind')

def case_discovery():
    name = 'vlmcs-vlmcsd-v4-win7pro-fixedid-1req.pcapng'
    pkts = session(name)
    t0 = pkts[0].ts - 10**9
    c, s, dns = bytes([10, 0, 0, 5]), bytes([10, 0, 0, 1]), bytes([10, 0, 0, 53])
    q = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0) + dns_name('_vlmcs._tcp.corp.example') + struct.pack('>HH', 33, 1)
    rdata = struct.pack('>HHH', 0, 100, 1688) + dns_name('kms1.corp.example')
    a = (struct.pack('>HHHHHH', 0x1234, 0x8180, 1, 1, 0, 0) + dns_name('_vlmcs._tcp.corp.example') +
         struct.pack('>HH', 33, 1) + b'\xc0\x0c' + struct.pack('>HHIH', 33, 1, 3600, len(rdata)) + rdata)
    other = struct.pack('>HHHHHH', 7, 0x0100, 1, 0, 0, 0) + dns_name('www.example.com') + struct.pack('>HH', 1, 1)
    extra = [raw_udp(t0, c, dns, 5353, 53, q), raw_udp(t0 + 1000, dns, c, 53, 5353, a), raw_udp(t0 + 2000, c, dns, 5354, 53, other)]
    # A SYN to 1688 never answered, and one answered with a reset.
    syn1 = Pkt(t0 + 3000, c, s, 50001, 1688, 1000, 0, SYN, b'')
    syn2 = Pkt(t0 + 4000, c, s, 50002, 1688, 2000, 0, SYN, b'')
    rst2 = Pkt(t0 + 5000, s, c, 1688, 50002, 0, 2001, RST | ACK, b'')
    # A SYN to the capture's own (non-standard) KMS port, before that port is known to carry KMS.
    kport = pkts[0].dport
    syn3 = Pkt(t0 + 6000, c, s, 50003, kport, 3000, 0, SYN, b'')
    # Unrelated: a SYN to port 80 never answered is not reported.
    syn4 = Pkt(t0 + 7000, c, s, 50004, 80, 4000, 0, SYN, b'')
    all_pkts = [syn1, syn2, rst2, syn3, syn4] + pkts
    recs = []
    for p in all_pkts:
        recs.append((p.ts,) + (frame(p, 'eth')[1],))
    f = path('discovery.pcap')
    write_pcap(f, [], 'eth', link_override=1, extra=sorted(extra + recs))
    rs = records(f)
    d = [r for r in rs if r['kind'] == 'dns']
    check(len(d) == 2, 'DNS: the SRV query and its answer (not the A query): %d' % len(d))
    if len(d) == 2:
        check(d[0]['name'] == '_vlmcs._tcp.corp.example' and not d[0]['response'] and d[0]['client'] == '10.0.0.5:5353', 'DNS query record %s' % d[0])
        check(d[1]['response'] and d[1]['rcode'] == 'NOERROR' and d[1]['answers'] == [
            {'target': 'kms1.corp.example', 'port': 1688, 'priority': 0, 'weight': 100, 'ttl': 3600}], 'DNS answer record %s' % d[1])
    conns = {r['server']: r for r in rs if r['kind'] == 'connection'}
    check(conns.get('10.0.0.1:1688', {}).get('state') in ('no_answer', 'refused'), 'connections to 1688 reported: %s' % conns)
    states = sorted(r['state'] for r in rs if r['kind'] == 'connection' and r['server'] == '10.0.0.1:1688')
    check(states == ['no_answer', 'refused'], 'SYN never answered and SYN refused: %s' % states)
    check('10.0.0.1:%d' % kport in conns, 'unanswered SYN to a port seen carrying KMS later: %s' % list(conns))
    check('10.0.0.1:80' not in conns, 'a SYN to port 80 is not a KMS connection')
    table = analyze(f).stdout.decode()
    check('DNS answer NOERROR SRV _vlmcs._tcp.corp.example -> kms1.corp.example:1688' in table, 'DNS in the table:\n' + table)
    check('CONNECTION no_answer' in table and 'CONNECTION refused' in table, 'connections in the table')
    # CSV keeps what DNS and connection rows carry (issue 13), in the columns named by the JSON paths.
    import csv as csvmod
    rows = list(csvmod.DictReader(io.StringIO(analyze('--format', 'csv', f).stdout.decode())))
    dns_rows = [r for r in rows if r['kind'] == 'dns']
    check(len(dns_rows) == 2 and dns_rows[1]['name'] == '_vlmcs._tcp.corp.example' and dns_rows[1]['qtype'] == 'SRV'
          and dns_rows[1]['rcode'] == 'NOERROR' and dns_rows[1]['response'] == 'true' and dns_rows[1]['id'] == str(0x1234)
          and dns_rows[1]['answers'] == 'target=kms1.corp.example port=1688 priority=0 weight=100 ttl=3600'
          and dns_rows[0]['response'] == 'false' and dns_rows[0]['rcode'] == '', 'CSV DNS rows keep their fields: %s' % dns_rows)
    conn_rows = [r for r in rows if r['kind'] == 'connection']
    json_conns = [r for r in rs if r['kind'] == 'connection']
    check(len(conn_rows) == len(json_conns) and all(
        c['state'] == j['state'] and c['client_bytes'] == str(j['client_bytes']) and c['server_bytes'] == str(j['server_bytes'])
        and c['kms'] == str(j['kms']).lower() and c['server_ip'] == j['server_ip'] and c['server_port'] == str(j['server_port'])
        for c, j in zip(conn_rows, json_conns)), 'CSV connection rows keep their fields: %s' % conn_rows[:2])
    s = records('--summary', f)[-1]
    check(s['kind'] == 'summary' and s['dns_srv_messages'] == 2 and s['unanswered_connections'] == 3, 'summary counts discovery: %s' % {k: s.get(k) for k in ('dns_srv_messages', 'unanswered_connections')})

def case_inputs():
    name = 'vlmcs-vlmcsd-v5-win8ent-classic.pcap'
    src = os.path.join(CAPTURES, name)
    ref = exchanges(src)
    gz = path(name + '.gz')
    open(gz, 'wb').write(gzip.compress(open(src, 'rb').read()))
    same(gz, ref, 'gzip input')
    same_stdin = exchanges('-', stdin=open(src, 'rb').read())
    check([essence(r) for r in same_stdin] == [essence(r) for r in ref], 'standard input')
    check(all(r['file'] == '-' for r in same_stdin), 'standard input is named -')
    gz_stdin = exchanges('-', stdin=open(gz, 'rb').read())
    check([essence(r) for r in gz_stdin] == [essence(r) for r in ref], 'gzip on standard input')
    # A truncated file: what came before is reported, the error names the file and the offset,
    # and the next file is still analysed; exit 2.
    data = open(os.path.join(CAPTURES, 'vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng'), 'rb').read()
    trunc = path('truncated.pcapng')
    open(trunc, 'wb').write(data[:len(data) * 2 // 3])
    p = analyze('--format', 'json', trunc, src, expect_rc=2)
    err = p.stderr.decode()
    check(trunc in err and 'at byte' in err, 'truncated file: error names file and offset: %r' % err)
    rs = [json.loads(l) for l in p.stdout.decode().splitlines()]
    check(sum(1 for r in rs if r['file'] == src and r['kind'] == 'exchange') == len(ref), 'the file after a bad one is analysed')
    check(any(r['file'] == trunc and r['kind'] == 'exchange' for r in rs), 'exchanges before the damage are reported')
    # Unsupported link type (USER0 = 147).
    pkts = session(name)
    bad = write_pcap(path('user0.pcap'), pkts, 'eth', link_override=147)
    p = analyze(bad, src, expect_rc=2)
    check('unsupported link type 147' in p.stderr.decode() and bad in p.stderr.decode(), 'unsupported link type: %r' % p.stderr.decode())
    # The progress line: on a terminal only (script gives the analyzer one), never in a pipe.
    check(analyze(src).stderr == b'', 'no progress output when stderr is not a terminal')
    if shutil.which('script'):
        big = path('progress.pcap')
        write_pcap(big, session(name) * 12000)  # enough packets for the progress line to be drawn
        ts = path('typescript')
        subprocess.run(['script', '-qc', '%s %s > /dev/null' % (ANALYZER, big), ts], capture_output=True)
        check('%' in open(ts, errors='replace').read(), 'progress line on a terminal')
    p = analyze(path('does-not-exist.pcap'), expect_rc=2)
    check('does-not-exist.pcap' in p.stderr.decode(), 'missing file named')
    notpcap = path('not-a-capture.txt')
    open(notpcap, 'w').write('hello\n' * 100)
    analyze(notpcap, expect_rc=2)
    analyze('--format', 'yaml', src, expect_rc=2)
    analyze('--filter', 'colour=red', src, expect_rc=2)
    analyze(expect_rc=2)

def case_options():
    caps = sorted(os.path.join(CAPTURES, f) for f in os.listdir(CAPTURES) if f.endswith(('.pcap', '.pcapng')))
    allx = exchanges(*caps)
    fails = exchanges('--filter', 'verdict=fail', *caps)
    check(len(fails) == 4 and all(not r['verdict']['ok'] for r in fails), 'verdict=fail: the 2 tampered and 2 bad-version exchanges (%d)' % len(fails))
    check(len(exchanges('--filter', 'verdict=ok', *caps)) == len(allx) - 4, 'verdict=ok')
    check(len(exchanges('--filter', 'verdict=hresult', *caps)) == 1, 'verdict=hresult')
    v4 = exchanges('--filter', 'version=4', *caps)
    check(len(v4) > 0 and all(r['version'] == '4.0' for r in v4), 'version=4')
    off = exchanges('--filter', 'product=office', '--filter', 'version=6.0', *caps)
    check(len(off) > 0 and all('Office' in r['request']['product'] and r['version'] == '6.0' for r in off), 'product=office and version=6.0')
    ip6 = exchanges('--filter', 'client=::1', *caps)
    check(len(ip6) == 1 and ip6[0]['client'].startswith('[::1]'), 'client=::1')
    sp = exchanges('--filter', 'server=127.0.0.1:31689,127.0.0.1:31690', *caps)
    check(len(sp) > 0 and all(r['server'].endswith((':31689', ':31690')) for r in sp), 'server=a,b')
    # The table's own forms and the new keys (issue 13): what the table prints can be filtered on.
    check(exchanges('--filter', 'version=v6', *caps) == exchanges('--filter', 'version=6', *caps)
          and len(exchanges('--filter', 'version=V6.0', *caps)) > 0, 'version=v6 and V6.0 as the table prints it')
    v4_clients = [r for r in allx if not r['client'].startswith('[')]
    cidr = exchanges('--filter', 'client=127.0.0.0/8', *caps)
    check(len(v4_clients) > 0 and cidr == v4_clients, 'client=127.0.0.0/8: every IPv4 client (%d of %d)' % (len(cidr), len(v4_clients)))
    check(exchanges('--filter', 'client=127.0.0.1/32', *caps) == v4_clients, 'client=127.0.0.1/32')
    check(exchanges('--filter', 'client=128.0.0.0/1,10.0.0.0/8', *caps) == [], 'client=128.0.0.0/1,10.0.0.0/8 matches none, exit 0')
    check(exchanges('--filter', 'client=127.0.0.0/1', *caps) == v4_clients, 'client=127.0.0.0/1 (a partial byte)')
    lo = exchanges('--filter', 'server=127.0.0.0/8', *caps)
    check(len(lo) > 0 and all(r['server'].startswith('127.') for r in lo), 'server=127.0.0.0/8')
    check(exchanges('--filter', 'client=::/0', *caps) == ip6, 'client=::/0 is every IPv6 client')
    check(exchanges('--filter', 'client=[::1]:' + ip6[0]['client'].rsplit(':', 1)[1], *caps) == ip6, 'client=[::1]:port')
    named = [r for r in allx if r['request'] and r['request']['workstation']]
    ws = named[0]['request']['workstation']
    by_ws = exchanges('--filter', 'workstation=' + ws.upper(), *caps)
    check(len(by_ws) > 0 and all(ws.lower() in r['request']['workstation'].lower() for r in by_ws)
          and len(by_ws) == sum(ws.lower() in r['request']['workstation'].lower() for r in named), 'workstation= (any case)')
    cmid = named[0]['request']['cmid']
    by_cmid = exchanges('--filter', 'cmid={' + cmid.upper() + '}', *caps)
    check(len(by_cmid) > 0 and all(r['request']['cmid'] == cmid or (r['response'] or {}).get('cmid') == cmid for r in by_cmid), 'cmid= (braces, any case)')
    kms_id = named[0]['request']['kms_id']
    by_kms = exchanges('--filter', 'kms_id=' + kms_id, *caps)
    check(len(by_kms) == sum(1 for r in named if r['request']['kms_id'] == kms_id), 'kms_id=')
    # A value that can never match is an error, not an empty output.
    for bad in ('client=10.0.0.0/33', 'client=10.0.0.300', 'server=example.com', 'client=::1:1688x',
                'version=six', 'version=v', 'cmid=not-a-guid', 'kms_id=8449b1fb-f0ea-497a-99ab-66ca96e9a0f',
                'verdict=good', 'workstation='):
        p = analyze('--filter', bad, caps[0], expect_rc=2)
        check(b'kms-analyze:' in p.stderr, 'rejected with a message: ' + bad)
    check(analyze('--strict', *caps, expect_rc=None).returncode == 1, '--strict exits 1 when a verdict failed')
    check(analyze('--strict', '--filter', 'verdict=ok', *caps, expect_rc=None).returncode == 0, '--strict exits 0 when all shown are ok')
    csv = analyze('--format', 'csv', *caps).stdout.decode().splitlines()
    check(csv[0].startswith('kind,ts,file,stream,client,server,call_id,ndr,version,request.cmid,') and len(csv) == 1 + len(allx),
          'csv: header and one row per exchange (%d rows)' % (len(csv) - 1))
    import csv as csvmod
    rows = list(csvmod.DictReader(io.StringIO('\n'.join(csv))))
    check(all(r['request.cmid'] == x['request']['cmid'] for r, x in zip(rows, allx) if x['request']), 'csv cmid column')
    check(any('Büro' in r['request.workstation'] for r in rows), 'csv keeps UTF-8 workstation names')
    # --summary: a genuine host's count per KMS ID = distinct CMIDs (30 days), capped at 2 x N.
    s = records('--summary', *caps)[-1]
    check(s['kind'] == 'summary' and s['exchanges'] == len(allx), 'summary totals')
    win10 = [k for k in s['kms_ids'] if k['kms_id'] == '58e2134f-8e11-4d17-9cb2-91069c151148']
    cmids = {x['request']['cmid'] for x in allx if x['request'] and x['request']['kms_id'] == '58e2134f-8e11-4d17-9cb2-91069c151148' and x['version'] in ('4.0', '5.0', '6.0')}
    check(len(win10) == 1 and win10[0]['current_count'] == min(len(cmids), 50), 'summary: Windows 10 count %s vs %d CMIDs' % (win10[:1] and win10[0]['current_count'], len(cmids)))
    check(all('server_impl' in x for x in s['servers']), 'summary: servers with fingerprint')
    text = analyze('--summary', *caps).stdout.decode()
    for heading in ('Per KMS ID', 'Per client', 'Per server', 'Per product', 'current count'):
        check(heading in text, 'summary text has %r' % heading)

def case_limits():
    # Three KMS sessions interleaved packet by packet, with room for only two open connections:
    # the least recently seen one is ended early, which must not crash or mix connections up.
    sessions = [session(n) for n in ('vlmcs-vlmcsd-v4-win7pro-fixedid-1req.pcapng',
                                     'vlmcs-vlmcsd-v5-office2013-N0-1req.pcapng',
                                     'pykms-vlmcsd-v6-windows10.pcapng')]
    t0 = 1_800_000_000 * 10**9
    mixed = []
    for i, s in enumerate(sessions):
        base = s[0].ts
        for j, p in enumerate(s):
            fwd = p.sport == s[0].sport
            mixed.append(p.copy(ts=t0 + j * 3000 + i * 1000, src=bytes([10, 0, i, 1]) if fwd else bytes([10, 0, i, 2]),
                                dst=bytes([10, 0, i, 2]) if fwd else bytes([10, 0, i, 1])))
    mixed.sort(key=lambda p: p.ts)
    f = write_pcap(path('interleaved.pcap'), mixed)
    ex = exchanges(f)
    check(len(ex) == 3 and all(r['verdict']['ok'] for r in ex), 'three interleaved sessions all ok')
    ex2 = exchanges('--max-connections', '1', f)
    check(len(ex2) >= 1 and all(r['request'] is None or r['request']['cmid'] in {x['request']['cmid'] for x in ex} for r in ex2),
          'with one connection allowed the analyzer still terminates and never mixes connections')
    # Idle timeout: a connection idle longer than --idle-timeout is ended (its request unanswered).
    s = sessions[0]
    head, data, tail = split_phases(s)
    late = [p.copy(ts=p.ts + 3600 * 10**9) for p in s[s.index(data[-1]):]]  # the response an hour later
    f = write_pcap(path('idle.pcap'), s[:s.index(data[-1])] + late)
    ex = exchanges('--idle-timeout', '60', f)
    check(len(ex) >= 1 and ex[0]['verdict']['outcome'] == 'no_response' and any('timed out' in d for d in ex[0]['diagnostics']),
          'idle timeout ends the connection: %s' % [(r['verdict'], r['diagnostics']) for r in ex])

def case_reuse():
    # A long connection that is not DCE/RPC (its payload bytes are then handed over uncopied between the
    # analyzer's threads), then a KMS session on the very same addresses and ports: started by a new SYN,
    # or (mid-stream, no handshake) after a silence longer than the idle timeout. Both must decode.
    name = 'vlmcs-vlmcsd-v6-server2019dc-N0-B0-2req.pcapng'
    kms, ref = session(name), exchanges(os.path.join(CAPTURES, name))
    c, sv = kms[0], kms[1]  # the client's SYN and the server's SYN/ACK
    t = kms[0].ts - 10**9
    bulk = [c.copy(ts=t, seq=1000, ack=0, flags=SYN, payload=b''),
            sv.copy(ts=t + 1, seq=5000, ack=1001, flags=SYN | ACK, payload=b'')]
    for i in range(40000):  # more packets than the analyzer's threads keep in flight
        bulk.append(c.copy(ts=t + 10 + i, seq=1001 + 8 * i, ack=5001, flags=PSH | ACK, payload=b'GET %04d' % (i % 10000)))
    f = write_pcap(path('reuse-syn.pcap'), bulk + kms)
    ex = exchanges(f)
    check(len(ex) == len(ref) and all(r['verdict']['ok'] for r in ex), 'KMS after a non-DCE/RPC connection on the same 4-tuple (new SYN)')
    same(f, ref, 'port reuse after a non-DCE/RPC connection')
    late = [p.copy(ts=p.ts + 700 * 10**9) for p in kms if not p.flags & SYN]
    f = write_pcap(path('reuse-idle.pcap'), bulk + late)
    ex = exchanges(f)
    check(len(ex) == len(ref) and all(r['verdict']['ok'] for r in ex),
          'KMS mid-stream after an idle non-DCE/RPC connection on the same 4-tuple: %s' % [r['verdict'] for r in ex])

def many_sessions(name, n):
    """n copies of a capture's session, each on a client port of its own, one after the other."""
    base = session(name)
    cport, span = base[0].sport, base[-1].ts - base[0].ts + 10**6
    out = []
    for i in range(n):
        for p in base:
            q = p.copy(ts=p.ts + i * span)
            if p.sport == cport:
                q.sport = 20000 + i
            else:
                q.dport = 20000 + i
            out.append(q)
    return out

def gzip_error_at(gz):
    """(compressed bytes consumed, uncompressed bytes out, reason) where zlib first fails on gz, or None."""
    d, out = zlib.decompressobj(wbits=31), 0
    for i in range(len(gz)):
        try:
            out += len(d.decompress(gz[i:i + 1]))
        except zlib.error as e:
            return i + 1, out, str(e)
    return None

def reported_gzip_error(err):
    """(compressed byte, uncompressed byte, after packet, reason) of kms-analyze's gzip error line."""
    m = re.search(r'at byte (\d+) of the compressed file \(uncompressed byte (\d+), after packet (\d+)\): gzip: (.*)', err)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)) if m else None

def case_gzip():
    # 600 sessions of 3 exchanges, 2 MB of pcap, about 100 KB of gzip.
    name = 'vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng'
    raw = synthcap.pcap_bytes(many_sessions(name, 600))
    per_session = (len(raw) - 24) // 600
    gz = gzip.compress(raw, 6, mtime=0)
    whole = path('many.pcap.gz')
    open(whole, 'wb').write(gz)
    check(len(exchanges(whole)) == 1800, 'gzip: 600 sessions, 1800 exchanges')
    # Damage in the middle of the compressed data: reported where zlib finds it (not at a read boundary),
    # and every session inflated before it is reported.
    for at in (len(gz) // 2, len(gz) // 3, 2 * len(gz) // 3):
        bad = bytearray(gz)
        bad[at:at + 16] = b'\xff' * 16
        found = gzip_error_at(bytes(bad))
        if found and found[0] < len(gz) - 8:
            break
    check(found and found[0] < len(gz) - 8, 'gzip: damage that zlib finds before the trailer: %s' % (found,))
    f = path('damaged.pcap.gz')
    open(f, 'wb').write(bad)
    p = analyze('--format', 'json', f, expect_rc=2)
    err = p.stderr.decode()
    got = reported_gzip_error(err)
    check(got is not None and f in err, 'damaged gzip: error names the file and both offsets: %r' % err)
    if got and found:
        check(abs(got[0] - found[0]) <= 16 and at <= got[0], 'damaged gzip: at compressed byte %d, zlib finds it at %d (damage at %d)' % (got[0], found[0], at))
        check(abs(got[1] - found[1]) <= 65536, 'damaged gzip: uncompressed byte %d, zlib %d' % (got[1], found[1]))
        check('Bad file descriptor' not in err and 'Success' not in err and got[3] == found[2].split(': ', 1)[1], 'damaged gzip: reason %r, zlib says %r' % (got[3], found[2]))
    n = sum(1 for l in p.stdout.decode().splitlines() if json.loads(l)['kind'] == 'exchange')
    complete = (found[1] - 24) // per_session if found else 0
    check(3 * (complete - 1) <= n < 1800, 'damaged gzip: %d exchanges kept, %d sessions lie wholly before the damage' % (n, complete))
    # A damaged CRC: found at the trailer, after every packet.
    bad = bytearray(gz)
    bad[-8] ^= 0xff
    f = path('crc.pcap.gz')
    open(f, 'wb').write(bad)
    p = analyze('--format', 'json', f, expect_rc=2)
    got = reported_gzip_error(p.stderr.decode())
    check(got is not None and got[3] == 'incorrect data check' and len(gz) - 8 <= got[0] <= len(gz) and got[1] == len(raw),
          'damaged CRC: %r' % p.stderr.decode())
    check(sum(1 for l in p.stdout.decode().splitlines() if json.loads(l)['kind'] == 'exchange') == 1800, 'damaged CRC: every exchange kept')
    # No trailer: gzip -t fails, so must kms-analyze.
    f = path('notrailer.pcap.gz')
    open(f, 'wb').write(gz[:-8])
    check(subprocess.run(['gzip', '-t', f], capture_output=True).returncode != 0, 'gzip -t fails without the trailer')
    p = analyze('--format', 'json', f, expect_rc=2)
    got = reported_gzip_error(p.stderr.decode())
    check(got is not None and got[0] == len(gz) - 8 and got[1] == len(raw) and 'unexpected end of file' in got[3],
          'gzip without its trailer: %r' % p.stderr.decode())
    check(sum(1 for l in p.stdout.decode().splitlines() if json.loads(l)['kind'] == 'exchange') == 1800, 'no trailer: every exchange kept')
    # Through a named pipe, gzip or not.
    src = os.path.join(CAPTURES, 'vlmcs-vlmcsd-v5-win8ent-classic.pcap')
    ref = exchanges(src)
    for label, content in (('gzip', gzip.compress(open(src, 'rb').read())), ('plain', open(src, 'rb').read())):
        fifo = path('fifo-%s' % label)
        if os.path.exists(fifo):
            os.remove(fifo)
        os.mkfifo(fifo)
        def feed():
            with open(fifo, 'wb') as w:
                w.write(content)
        t = threading.Thread(target=feed)
        t.start()
        try:
            got = exchanges(fifo)
        finally:
            t.join(timeout=30)
        check([essence(r) for r in got] == [essence(r) for r in ref] and len(ref) > 0, '%s through a named pipe' % label)

def case_mixed_links():
    # mergecap of an SLL2 capture and an Ethernet one: a pcapng with two interfaces of different link
    # types, which libpcap refuses and tshark reads. Every exchange of both must come out.
    a = 'vlmcs-vlmcsd-v4-win7pro-fixedid-1req.pcapng'
    b = 'pykms-vlmcsd-v6-windows10.pcapng'
    if not shutil.which('mergecap'):
        check(False, 'mergecap (wireshark-common) is needed for the mixed link type test')
        return
    sll2 = write_pcap(path('a-sll2.pcap'), session(a), 'sll2')
    eth = write_pcap(path('b-eth.pcap'), session(b), 'eth')
    merged = path('mixed.pcapng')
    subprocess.run(['mergecap', '-F', 'pcapng', '-w', merged, sll2, eth], check=True, capture_output=True)
    want = sorted([essence(r) for r in exchanges(sll2)] + [essence(r) for r in exchanges(eth)], key=lambda e: json.dumps(e, sort_keys=True))
    got = sorted([essence(r) for r in exchanges(merged)], key=lambda e: json.dumps(e, sort_keys=True))
    check(len(want) == 2 and got == want, 'mixed link types: every exchange of both interfaces (%d of %d)' % (len(got), len(want)))
    # Through gzip too, and with an interface of a link type that is not supported: its packets are skipped.
    gz = path('mixed.pcapng.gz')
    open(gz, 'wb').write(gzip.compress(open(merged, 'rb').read()))
    check(len(exchanges(gz)) == 2, 'mixed link types, gzip')
    user0 = write_pcap(path('c-user0.pcap'), session(a), 'eth', link_override=147)
    merged3 = path('mixed3.pcapng')
    subprocess.run(['mergecap', '-F', 'pcapng', '-w', merged3, user0, eth], check=True, capture_output=True)
    check([essence(r) for r in exchanges(merged3)] == [essence(r) for r in exchanges(eth)], 'an unsupported interface beside a supported one')
    user0ng = path('user0.pcapng')
    subprocess.run(['editcap', '-F', 'pcapng', user0, user0ng], check=True, capture_output=True)
    p = analyze(user0ng, expect_rc=2)
    check('unsupported link type 147' in p.stderr.decode() and user0ng in p.stderr.decode(), 'pcapng with only an unsupported link type: %r' % p.stderr.decode())

for case in (case_orders, case_one_byte, case_retransmissions, case_gaps, case_cut, case_framing, case_port,
             case_discovery, case_inputs, case_options, case_limits, case_reuse, case_gzip, case_mixed_links):
    if ONLY and case.__name__ not in ONLY:
        continue
    try:
        case()
    except AssertionError as e:
        FAILURES.append('%s: %s' % (case.__name__, e))
        print('FAIL', case.__name__, e)
print('%d checks, %d failures' % (CHECKS[0], len(FAILURES)))
sys.exit(1 if FAILURES else 0)
