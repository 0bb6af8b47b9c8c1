#!/usr/bin/env python3
"""kms-replay check on many sessions that share one 4-tuple, against the same sessions on distinct
connections (issue #10): the time must grow linearly with the number of sessions in both cases.

usage: check_reuse.py KMS_REPLAY [--sessions 1000,3000] [--capture NAME] [--repeat 3]

Every session is a copy of one real capture (handshake, bind, requests, teardown), shifted in time; on
one 4-tuple every copy keeps the client port, spread out each copy has a port of its own. Prints the best
of --repeat runs per case and the ratio of the two. Not a test: the figures depend on the machine."""
import argparse, os, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'analyzer'))
from synthcap import session, write_pcap  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument('kms_replay')
ap.add_argument('--sessions', default='1000,3000')
ap.add_argument('--capture', default='vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng')
ap.add_argument('--repeat', type=int, default=3)
args = ap.parse_args()

base = session(os.path.join(ROOT, 'captures', args.capture))
client_port = base[0].sport  # the first packet is the client's SYN
work = tempfile.mkdtemp(prefix='kms-bench-reuse-')

def build(n, same_tuple):
    pkts = []
    span = base[-1].ts - base[0].ts + 10**6
    for i in range(n):
        port = client_port if same_tuple else 20000 + i
        for p in base:
            q = p.copy(ts=p.ts + i * span)
            if p.sport == client_port:
                q.sport = port
            else:
                q.dport = port
            pkts.append(q)
    return write_pcap(os.path.join(work, '%s-%d.pcap' % ('one' if same_tuple else 'many', n)), pkts)

def best(path):
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        p = subprocess.run([args.kms_replay, 'check', path], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        summary = (p.stdout.strip().splitlines() or [''])[-1]
    return min(times), p.returncode, summary

print('%-9s %-10s %8s  %s' % ('sessions', 'layout', 'seconds', 'check summary (exit code)'))
for n in (int(x) for x in args.sessions.split(',')):
    for same in (True, False):
        secs, rc, summary = best(build(n, same))
        print('%-9d %-10s %8.2f  %s (%d)' % (n, 'one-tuple' if same else 'distinct', secs, summary, rc), flush=True)
