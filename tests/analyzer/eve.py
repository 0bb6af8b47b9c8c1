"""kms-analyze --format eve (issue 13): every line validates against docs/eve.schema.json, and the events
say what the JSON records say.

usage: eve.py ANALYZER CAPTURES_DIR SCHEMA

On the bundled captures: one "kms" event per JSON record with the record itself under "kms"; a
failed_activation alert for each exchange that is not ok, a rogue_server alert once per emulator server;
the Community ID of every event recomputed here from the specification (checked first against its
published vectors), one flow_id per connection, the timestamp the record's to the microsecond, and a
closing stats event with the counts. On a synthetic capture: an NXDOMAIN answer for _vlmcs._tcp and a
SYN to 1688 never answered give srv_lookup_failed and unanswered_connection alerts. An empty capture
gives one stats event; --summary with --format eve is a usage error.
"""
import base64, hashlib, ipaddress, json, os, struct, subprocess, sys, tempfile

import jsonschema

from synthcap import SYN, Pkt, dns_name, frame, raw_udp, session, write_pcap

ANALYZER, CAPTURES, SCHEMA = (os.path.abspath(a) for a in sys.argv[1:4])
WORK = tempfile.mkdtemp(prefix='kms-eve-')
from checks import CHECKS, FAILURES, check

def run(*args, expect_rc=0):
    p = subprocess.run([ANALYZER, '--no-progress'] + list(args), capture_output=True)
    if p.returncode != expect_rc:
        raise SystemExit('%s: exit %d (want %d)\n%s' % (' '.join(args), p.returncode, expect_rc, p.stderr.decode()))
    return p

def lines(*args):
    return [json.loads(l) for l in run(*args).stdout.decode().splitlines()]

def community_id(proto, a_ip, a_port, b_ip, b_port):
    """The Community ID v1 as its specification defines it, written here independently of the tool's."""
    a, b = ipaddress.ip_address(a_ip).packed, ipaddress.ip_address(b_ip).packed
    if (b, b_port) < (a, a_port):
        a, a_port, b, b_port = b, b_port, a, a_port
    data = struct.pack('>H', 0) + a + b + struct.pack('>BBHH', proto, 0, a_port, b_port)
    return '1:' + base64.b64encode(hashlib.sha1(data).digest()).decode()

# This implementation against the specification's published vectors first.
check(community_id(6, '128.232.110.120', 34855, '66.35.250.204', 80) == '1:LQU9qZlK+B5F3KDmev6m5PMibrg=', 'spec vector TCP')
check(community_id(17, '192.168.1.52', 54585, '8.8.8.8', 53) == '1:d/FP5EW3wiY1vCndhwleRRKHowQ=', 'spec vector UDP')
check(community_id(6, '2001:470:e5bf:dead:4957:2174:e82c:4887', 63943, '2607:f8b0:400c:c03::1a', 25)
      == '1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=', 'spec vector IPv6')

validator = jsonschema.Draft202012Validator(json.load(open(SCHEMA)), format_checker=jsonschema.FormatChecker())

def validate_all(events, where):
    bad = [(i, e.message) for i, ev in enumerate(events) for e in validator.iter_errors(ev)]
    check(not bad, '%s: %d lines, schema errors %s' % (where, len(events), bad[:3]))

def check_flow_fields(events, where):
    for ev in events:
        if ev['event_type'] == 'stats':
            continue
        k = ev['kms']
        proto = 17 if ev['proto'] == 'UDP' else 6
        want = community_id(proto, k['client_ip'], k['client_port'], k['server_ip'], k['server_port'])
        check(ev['community_id'] == want, '%s: community_id %s, computed %s' % (where, ev['community_id'], want))
        check((ev['src_ip'], ev['src_port'], ev['dest_ip'], ev['dest_port']) ==
              (k['client_ip'], k['client_port'], k['server_ip'], k['server_port']), '%s: src/dest are client/server' % where)
        ts = k['ts'].rstrip('Z')
        date, _, frac = ts.partition('.')
        check(ev['timestamp'] == '%s.%s+0000' % (date, (frac + '000000')[:6]), '%s: timestamp %s for ts %s' % (where, ev['timestamp'], k['ts']))

# The bundled captures.
caps = sorted(os.path.join(CAPTURES, f) for f in os.listdir(CAPTURES) if f.endswith(('.pcap', '.pcapng')))
events = lines('--format', 'eve', *caps)
records = lines('--format', 'json', *caps)
validate_all(events, 'bundled captures')
check_flow_fields(events, 'bundled captures')
kms = [e for e in events if e['event_type'] == 'kms']
alerts = [e for e in events if e['event_type'] == 'alert']
check([e['kms'] for e in kms] == records, 'one kms event per JSON record, the record itself (%d, %d)' % (len(kms), len(records)))
failed = [r for r in records if r['kind'] == 'exchange' and not r['verdict']['ok']]
fa = [a['kms'] for a in alerts if a['alert']['metadata']['kmscope_alert'] == ['failed_activation']]
check(len(failed) == 4 and fa == failed, 'a failed_activation alert per failed exchange (%d, %d)' % (len(fa), len(failed)))
check(all(a['alert']['signature'].startswith('KMS activation failed: FAIL') for a in alerts
          if a['alert']['signature_id'] == 1688001), 'failed_activation signatures carry the verdict')
emulators = {r['server'] for r in records if r['kind'] == 'exchange' and r['server_impl'] in ('vlmcsd', 'py-kms')}
rogue = [a['kms']['server'] for a in alerts if a['alert']['metadata']['kmscope_alert'] == ['rogue_server']]
check(len(rogue) == len(set(rogue)) and set(rogue) == emulators and emulators,
      'one rogue_server alert per emulator server: %s vs %s' % (sorted(rogue), sorted(emulators)))
flows = {}
for e in kms:
    flows.setdefault((e['kms']['file'], e['kms']['stream']), set()).add(e['flow_id'])
ids = [next(iter(v)) for v in flows.values()]
check(all(len(v) == 1 for v in flows.values()) and len(set(ids)) == len(ids), 'one flow_id per connection, distinct across connections')
stats = events[-1]
want = {'exchanges': sum(r['kind'] == 'exchange' for r in records), 'ok': sum(r['kind'] == 'exchange' for r in records) - len(failed),
        'failed': len(failed), 'connections': sum(r['kind'] == 'connection' for r in records), 'dns': sum(r['kind'] == 'dns' for r in records)}
check(stats['event_type'] == 'stats' and all(stats['stats']['kms'][k] == v for k, v in want.items())
      and stats['stats']['kms']['alerts']['failed_activation'] == 4 and stats['stats']['kms']['alerts']['rogue_server'] == len(emulators),
      'closing stats event: %s, want %s' % (stats.get('stats'), want))

# Discovery that failed and a KMS host that never answered, beside a real session.
pkts = session(os.path.join(CAPTURES, 'vlmcs-vlmcsd-v4-win7pro-fixedid-1req.pcapng'))
t0 = pkts[0].ts - 10**9
c, s, dns = bytes([10, 0, 0, 5]), bytes([10, 0, 0, 1]), bytes([10, 0, 0, 53])
q = struct.pack('>HHHHHH', 0x4321, 0x0100, 1, 0, 0, 0) + dns_name('_vlmcs._tcp.corp.example') + struct.pack('>HH', 33, 1)
nx = struct.pack('>HHHHHH', 0x4321, 0x8183, 1, 0, 0, 0) + dns_name('_vlmcs._tcp.corp.example') + struct.pack('>HH', 33, 1)
extra = [raw_udp(t0, c, dns, 5353, 53, q), raw_udp(t0 + 1000, dns, c, 53, 5353, nx)]
syn = Pkt(t0 + 3000, c, s, 50001, 1688, 1000, 0, SYN, b'')
f = os.path.join(WORK, 'discovery.pcap')
write_pcap(f, [], 'eth', link_override=1, extra=sorted(extra + [(p.ts, frame(p, 'eth')[1]) for p in [syn] + pkts]))
events = lines('--format', 'eve', f)
validate_all(events, 'discovery capture')
check_flow_fields(events, 'discovery capture')
kinds = [a['alert']['metadata']['kmscope_alert'][0] for a in events if a['event_type'] == 'alert']
check('srv_lookup_failed' in kinds and 'unanswered_connection' in kinds, 'discovery alerts: %s' % kinds)
srv = [a for a in events if a['event_type'] == 'alert' and a['alert']['signature_id'] == 1688003]
check(len(srv) == 1 and srv[0]['proto'] == 'UDP' and srv[0]['app_proto'] == 'dns' and 'NXDOMAIN' in srv[0]['alert']['signature'],
      'srv_lookup_failed on the NXDOMAIN answer only: %s' % [a['alert'] for a in srv])
un = [a for a in events if a['event_type'] == 'alert' and a['alert']['signature_id'] == 1688002]
check(len(un) == 1 and un[0]['dest_port'] == 1688 and un[0]['kms']['state'] == 'no_answer', 'unanswered_connection for the SYN to 1688')

# An empty capture, and --summary.
empty = os.path.join(WORK, 'empty.pcap')
write_pcap(empty, [], 'eth')
events = lines('--format', 'eve', empty)
validate_all(events, 'empty capture')
check(len(events) == 1 and events[0]['event_type'] == 'stats' and events[0]['stats']['kms']['exchanges'] == 0, 'empty capture: one stats event')
p = run('--format', 'eve', '--summary', empty, expect_rc=2)
check(b'--summary' in p.stderr, '--summary with --format eve is refused')

print('%d checks, %d failures' % (CHECKS[0], len(FAILURES)))
sys.exit(1 if FAILURES else 0)
