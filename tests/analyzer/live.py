"""kms-analyze --live end to end (issue 13), in a network namespace of its own (unshare --net, so no
other test's traffic is seen): its loopback carries

* kms-replay serve (the expected server, --expect-server 127.0.0.1:1688) and send: ok exchanges, no alert;
* kms-replay serve --from a vlmcsd capture on another port: a server with emulator tells, not expected:
  one rogue_server alert naming the tells;
* a tampered session (the response hash of a bundled capture altered), replayed over real TCP to a
  third port: a failed_activation alert, and a rogue_server alert (not an expected server);
* a SYN to 127.0.0.2:1688 answered with a reset, a SYN never answered (a listener with a full accept
  queue) and the connection that did get through without an answer: unanswered_connection alerts;
* a _vlmcs._tcp SRV query answered NXDOMAIN: a srv_lookup_failed alert.

It also checks: every line against docs/eve.schema.json; privileges dropped to nobody once the interface
is open; statistics lines on stderr every second; --output reopened on SIGHUP (logrotate's move);
a clean stop on SIGTERM with the closing stats event; a bad BPF filter and a missing interface are
errors (exit 2). Every wait is bounded.

usage: live.py ANALYZER KMS_REPLAY CAPTURES_DIR SCHEMA   (as root)
"""
import json, os, signal, socket, struct, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
if os.environ.get('KMS_LIVE_NETNS') != '1':
    # Re-run inside a new network namespace: its loopback is ours alone.
    env = dict(os.environ, KMS_LIVE_NETNS='1')
    sys.exit(subprocess.run(['unshare', '--net', sys.executable] + sys.argv, env=env, timeout=240).returncode)

import jsonschema

sys.path.insert(0, HERE)
from synthcap import dns_name, session

ANALYZER, REPLAY, CAPTURES, SCHEMA = (os.path.abspath(a) for a in sys.argv[1:5])
WORK = tempfile.mkdtemp(prefix='kms-live-')
os.chmod(WORK, 0o1777)  # the analyzer runs as nobody once the interface is open, and reopens its output here
from checks import CHECKS, FAILURES, check

def wait_until(cond, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    check(False, 'timed out after %ss waiting for %s' % (seconds, what))
    return False

def events(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except FileNotFoundError:
        return []

def alerts(evs, name):
    return [e for e in evs if e['event_type'] == 'alert' and e['alert']['metadata']['kmscope_alert'] == [name]]

subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True, timeout=10)

# Errors first: a filter that does not compile, an interface that does not exist.
p = subprocess.run([ANALYZER, '--live', 'lo', '--bpf', 'tcp port banana'], capture_output=True, timeout=20)
check(p.returncode == 2 and b"filter 'tcp port banana'" in p.stderr, 'bad BPF filter: exit 2 with the reason: %r' % p.stderr)
p = subprocess.run([ANALYZER, '--live', 'kms-nonesuch0'], capture_output=True, timeout=20)
check(p.returncode == 2 and b'kms-nonesuch0' in p.stderr, 'missing interface: exit 2: %r' % p.stderr)

out, rotated, err = (os.path.join(WORK, n) for n in ('eve.json', 'eve.json.1', 'stderr.txt'))
analyzer = subprocess.Popen([ANALYZER, '--live', 'lo', '--format', 'eve', '--output', out, '--stats-interval', '1',
                             '--expect-server', '127.0.0.1:1688', '--bpf', 'tcp or udp port 53'],
                            stderr=open(err, 'wb'))
servers = []
try:
    wait_until(lambda: 'live lo: 0 packets' in open(err).read() or os.path.exists(out), 10, 'the capture to start')
    time.sleep(1.2)  # one statistics line: the interface is open and privileges dropped
    uid = [l.split()[1] for l in open('/proc/%d/status' % analyzer.pid) if l.startswith('Uid:')]
    check(uid == ['65534'], 'privileges dropped to nobody once the interface is open: Uid %s' % uid)

    # The expected server, and a vlmcsd impersonation on another port.
    for port, extra in ((1688, []), (31688, ['--from', os.path.join(CAPTURES, 'vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng')])):
        ready = os.path.join(WORK, 'ready-%d' % port)
        servers.append(subprocess.Popen([REPLAY, 'serve', '--listen', '127.0.0.1:%d' % port, '--state-dir',
                                         os.path.join(WORK, 'state-%d' % port), '--ready-file', ready] + extra,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: os.path.exists(ready) and os.path.getsize(ready) > 0, 15, 'kms-replay serve on %d' % port)
    send = lambda port: subprocess.run([REPLAY, 'send', os.path.join(CAPTURES, 'vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng'),
                                        '--to', '127.0.0.1:%d' % port], capture_output=True, timeout=30)
    check(send(1688).returncode == 0, 'send to the expected server')
    check(send(31688).returncode == 0, 'send to the vlmcsd impersonation')

    # A tampered session over real TCP: the recorded client and server bytes, in their order.
    pkts = [q for q in session(os.path.join(CAPTURES, 'tampered-vlmcs-vlmcsd-v5-win8pro-ndr64-2req-resp2-hash.pcapng')) if q.payload]
    sport = pkts[0].dport
    listener = socket.socket()
    listener.bind(('127.0.0.1', 41688))
    listener.listen(1)
    client = socket.create_connection(('127.0.0.1', 41688), timeout=5)
    server, _ = listener.accept()
    for q in pkts:
        sender, receiver = (client, server) if q.dport == sport else (server, client)
        sender.sendall(q.payload)
        got = b''
        receiver.settimeout(5)
        while len(got) < len(q.payload):
            got += receiver.recv(65536)
    client.close(), server.close(), listener.close()

    # A KMS port that answers with a reset, and a SYN never answered: a listener whose accept queue is
    # full (backlog 0, one connection waiting) drops further SYNs without a word.
    try:
        socket.create_connection(('127.0.0.2', 1688), timeout=5)
    except OSError:
        pass
    full = socket.socket()
    full.bind(('127.0.0.3', 1688))
    full.listen(0)
    waiting = socket.create_connection(('127.0.0.3', 1688), timeout=5)
    silent = socket.socket()
    silent.setblocking(False)
    try:
        silent.connect(('127.0.0.3', 1688))
    except BlockingIOError:
        pass
    # KMS discovery answered NXDOMAIN by a resolver here.
    name = '_vlmcs._tcp.corp.example'
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(('127.0.0.1', 53))
    q = struct.pack('>HHHHHH', 0x5151, 0x0100, 1, 0, 0, 0) + dns_name(name) + struct.pack('>HH', 33, 1)
    asker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    asker.settimeout(5)
    asker.sendto(q, ('127.0.0.1', 53))
    query, addr = dns.recvfrom(512)
    dns.sendto(struct.pack('>HHHHHH', 0x5151, 0x8183, 1, 0, 0, 0) + query[12:], addr)
    asker.recvfrom(512)
    dns.close(), asker.close()

    waiting.close()  # the connection that got through, never answered (half-closed: 'open' at the stop)
    want = lambda evs: (alerts(evs, 'srv_lookup_failed') and alerts(evs, 'unanswered_connection')
                        and alerts(evs, 'failed_activation') and alerts(evs, 'rogue_server'))
    wait_until(lambda: want(events(out)), 15, 'the four alerts, printed as they happen')
    before = events(out)

    # logrotate: move the file, SIGHUP, then the next records go to a new file at the same path.
    os.rename(out, rotated)
    analyzer.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    check(send(1688).returncode == 0, 'send after SIGHUP')
    wait_until(lambda: len([e for e in events(out) if e['event_type'] == 'kms']) >= 3, 15, 'records in the reopened file')
finally:
    analyzer.send_signal(signal.SIGTERM)
    try:
        rc = analyzer.wait(timeout=10)
    except subprocess.TimeoutExpired:
        analyzer.kill()
        rc = 'killed'
    for s in servers:
        s.terminate()
        s.wait(timeout=10)

check(rc == 0, 'clean stop on SIGTERM: exit %s' % rc)
first, second = events(rotated), events(out)
validator = jsonschema.Draft202012Validator(json.load(open(SCHEMA)), format_checker=jsonschema.FormatChecker())
bad = [e.message for ev in first + second for e in validator.iter_errors(ev)]
check(not bad, 'every line valid against the EVE schema: %s' % bad[:3])
ok = [e for e in first if e['event_type'] == 'kms' and e['kms']['kind'] == 'exchange' and e['kms']['verdict']['ok']]
check(len([e for e in ok if e['dest_port'] == 1688]) == 3 and len([e for e in ok if e['dest_port'] == 31688]) == 3,
      'the six sent exchanges are ok: %s' % [(e['dest_port'], e['kms']['verdict']) for e in ok])
check(not [a for a in first if a['event_type'] == 'alert' and a['dest_port'] == 1688 and a['dest_ip'] == '127.0.0.1'],
      'no alert about the expected server')
rogue = {a['dest_port']: a['alert']['signature'] for a in alerts(first, 'rogue_server')}
check(len(alerts(first, 'rogue_server')) == 2 and set(rogue) == {31688, 41688} and 'tells of vlmcsd' in rogue[31688]
      and 'not in --expect-server' in rogue[41688], 'one rogue_server alert per unexpected server, with the tells: %s' % rogue)
failed = alerts(first, 'failed_activation')
check(len(failed) == 1 and failed[0]['dest_port'] == 41688 and 'hash' in failed[0]['alert']['signature'],
      'failed_activation for the tampered session: %s' % [a['alert']['signature'] for a in failed])
un = sorted((a['dest_ip'], a['kms']['state']) for a in alerts(first + second, 'unanswered_connection'))
check(un == [('127.0.0.2', 'refused'), ('127.0.0.3', 'no_answer'), ('127.0.0.3', 'open')],
      'unanswered_connection for the reset, the silent SYN (told at the stop) and the unanswered connection: %s' % un)
srv = alerts(first, 'srv_lookup_failed')
check(len(srv) == 1 and 'NXDOMAIN' in srv[0]['alert']['signature'] and srv[0]['proto'] == 'UDP', 'srv_lookup_failed: %s' % [a['alert'] for a in srv])
check(len(before) <= len(first), 'nothing written to the moved file after SIGHUP but what was there')
check(second and second[-1]['event_type'] == 'stats' and second[-1]['stats']['kms']['exchanges'] == 3 + 3 + 2 + 3,
      'closing stats event in the reopened file: %s' % (second[-1] if second else None))
stats_lines = [l for l in open(err).read().splitlines() if l.startswith('kms-analyze: live lo:')]
check(len(stats_lines) >= 3 and 'packets received' in stats_lines[-1] and '7 alerts' in stats_lines[-1] and 'connections open' in stats_lines[-1],
      'periodic statistics on stderr, the last one after the stop: %s' % stats_lines[-2:])

print('%d checks, %d failures' % (CHECKS[0], len(FAILURES)))
sys.exit(1 if FAILURES else 0)
