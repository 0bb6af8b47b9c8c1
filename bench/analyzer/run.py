#!/usr/bin/env python3
"""kms-analyze throughput and memory on large generated captures, against tshark with the kms plugin.

usage: run.py KMS_ANALYZE [--plugin KMS_SO] [--sizes 1024,4096] [--tshark-size 1024] [--dir /tmp] [--keep]
             [--kms-share 0.1] [--reps 3] [--dcerpc-baseline] [--floor PCAP_FLOOR]

For each size (MB): builds the capture with gen_capture.py, reads it once to have it in the page cache,
runs `kms-analyze --format json FILE` (output to a file) and, for --tshark-size, runs
`tshark -r - -Y kms -T fields -e ...` with the plugin (tests/dissector/tshark-kms; without --plugin,
tshark with its own DCE/RPC dissection only, -Y dcerpc) on the same file. kms-analyze runs --reps times
and the median run is reported; tshark runs once. --dcerpc-baseline also runs tshark without the plugin
(-Y dcerpc), the figure issue 4 quotes. Reports wall time, MB/s, verified exchanges per second, peak RSS
(wait4), and the ratio. Deletes the captures unless --keep. --floor PCAP_FLOOR (bench/analyzer/pcap_floor.cpp,
a bare libpcap loop: one pcap_next_ex per packet) is timed the same way, and kms-analyze's throughput is
reported as a fraction of it. Verified exchanges per CPU-second count user and system time over all threads.
"""
import argparse, json, os, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument('analyzer')
ap.add_argument('--plugin')
ap.add_argument('--sizes', default='1024,4096')
ap.add_argument('--tshark-size', type=int, default=1024)
ap.add_argument('--dir', default='/tmp')
ap.add_argument('--keep', action='store_true')
ap.add_argument('--kms-share', default='0.1', help='fraction of the bytes in KMS sessions (gen_capture.py)')
ap.add_argument('--reps', type=int, default=3, help='kms-analyze runs per capture (the median is reported)')
ap.add_argument('--dcerpc-baseline', action='store_true', help='also time tshark without the plugin (-Y dcerpc)')
ap.add_argument('--floor', help='the bare libpcap loop (pcap_floor) to report kms-analyze against')
args = ap.parse_args()

def timed(cmd, stdin=None, stdout=None, env=None):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors='replace')
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit('%s: exit %d\n%s' % (cmd[0], code, err))
    return wall, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime

def warm(path):
    with open(path, 'rb') as f:
        while f.read(1 << 24):
            pass

rows = []
for size in [int(s) for s in args.sizes.split(',')]:
    cap = os.path.join(args.dir, 'kms-bench-%d.pcap' % size)
    out = os.path.join(args.dir, 'kms-bench-%d.jsonl' % size)
    t0 = time.monotonic()
    gen = subprocess.run([sys.executable, os.path.join(HERE, 'gen_capture.py'), cap, str(size),
                          '--kms-share', args.kms_share],
                         capture_output=True, check=True).stdout.decode().strip()
    gen_s = time.monotonic() - t0
    mb = os.path.getsize(cap) / 1e6
    warm(cap)
    runs = []
    for _ in range(max(args.reps, 1)):
        with open(out, 'wb') as o:
            runs.append(timed([args.analyzer, '--no-progress', '--format', 'json', cap], stdout=o))
    wall, rss, cpu = sorted(runs)[len(runs) // 2]
    ex = ok = 0
    with open(out) as f:
        for line in f:
            if line.startswith('{"kind":"exchange"'):
                ex += 1
                ok += '"verdict":{"ok":true' in line
    row = {'kms_share': args.kms_share, 'size_mb': mb, 'gen': gen, 'gen_s': gen_s, 'wall_s': wall, 'cpu_s': cpu, 'mb_s': mb / wall,
           'exchanges': ex, 'ok': ok, 'verified_per_s': ex / wall, 'verified_per_cpu_s': ex / cpu, 'rss_mib': rss}
    if args.floor:
        floor = sorted(timed([args.floor, cap], stdout=subprocess.DEVNULL) for _ in range(max(args.reps, 1)))
        fwall, _, fcpu = floor[len(floor) // 2]
        row.update({'floor_wall_s': fwall, 'floor_cpu_s': fcpu, 'floor_mb_s': mb / fwall,
                    'of_floor': fwall / wall})
    if size == args.tshark_size:
        tsv = os.path.join(args.dir, 'kms-bench-%d.tsv' % size)
        if args.plugin:
            cmd = [os.path.join(HERE, '..', '..', 'tests', 'dissector', 'tshark-kms'), '-r', '-', '-Y', 'kms',
                   '-T', 'fields', '-e', 'frame.number', '-e', 'kms.req.cmid', '-e', 'kms.req.workstation',
                   '-e', 'kms.product', '-e', 'kms.resp.epid', '-e', 'kms.resp.count', '-e', 'kms.hresult',
                   '-e', 'kms.valid', '-e', 'kms.failed_check']
            env = dict(os.environ, KMS_PLUGIN=os.path.abspath(args.plugin))
        else:
            cmd = ['tshark', '-r', '-', '-Y', 'dcerpc', '-T', 'fields', '-e', 'frame.number', '-e', 'dcerpc.cn_call_id']
            env = None
        warm(cap)
        with open(cap, 'rb') as i, open(tsv, 'wb') as o:
            twall, trss, tcpu = timed(cmd, stdin=i, stdout=o, env=env)
        with open(tsv) as f:
            trows = sum(1 for _ in f)
        if args.dcerpc_baseline:
            warm(cap)
            with open(cap, 'rb') as i, open(tsv, 'wb') as o:
                bwall, _, bcpu = timed(['tshark', '-r', '-', '-Y', 'dcerpc', '-T', 'fields', '-e', 'frame.number',
                                        '-e', 'dcerpc.cn_call_id'], stdin=i, stdout=o)
            row.update({'dcerpc_wall_s': bwall, 'dcerpc_cpu_s': bcpu, 'dcerpc_mb_s': mb / bwall,
                        'dcerpc_ratio': bwall / wall})
        row.update({'tshark': 'plugin' if args.plugin else 'dcerpc only', 'tshark_wall_s': twall, 'tshark_cpu_s': tcpu,
                    'cpu_ratio': tcpu / cpu,
                    'tshark_mb_s': mb / twall, 'tshark_rows': trows, 'tshark_rss_mib': trss,
                    'ratio': twall / wall})
        if not args.keep:
            os.unlink(tsv)
    rows.append(row)
    print(json.dumps(row), flush=True)
    if not args.keep:
        os.unlink(cap)
        os.unlink(out)

print()
print('| capture (KMS share) | kms-analyze wall (CPU) | MB/s | exchanges (ok) | verified exchanges/s | peak RSS | tshark wall (CPU) | tshark MB/s | tshark RSS | ratio wall (CPU) |')
print('|---|---|---|---|---|---|---|---|---|---|')
for r in rows:
    t = ('%.1f s (%.1f s; %s, %d rows)' % (r['tshark_wall_s'], r['tshark_cpu_s'], r['tshark'], r['tshark_rows']),
         '%.2f' % r['tshark_mb_s'], '%.0f MiB' % r['tshark_rss_mib'], '%.0fx (%.0fx)' % (r['ratio'], r['cpu_ratio'])) \
        if 'tshark_wall_s' in r else ('-', '-', '-', '-')
    print('| %.0f MB (%s) | %.2f s (%.2f s) | %.0f | %d (%d) | %.0f | %.1f MiB | %s | %s | %s | %s |' %
          (r['size_mb'], r['kms_share'], r['wall_s'], r['cpu_s'], r['mb_s'], r['exchanges'], r['ok'], r['verified_per_s'],
           r['rss_mib'], *t))
for r in rows:
    print('\n%.0f MB (%s): %.0f verified exchanges per CPU-second (%.2f s CPU over all threads)' %
          (r['size_mb'], r['kms_share'], r['verified_per_cpu_s'], r['cpu_s']))
    if 'floor_wall_s' in r:
        print('bare libpcap loop: %.2f s wall (%.2f s CPU), %.0f MB/s; kms-analyze runs at %.2f of it' %
              (r['floor_wall_s'], r['floor_cpu_s'], r['floor_mb_s'], r['of_floor']))
for r in rows:
    if 'dcerpc_wall_s' in r:
        print('\ntshark without the plugin (-Y dcerpc) on the %.0f MB file: %.1f s wall (%.1f s CPU), %.1f MB/s; '
              'kms-analyze is %.0fx faster' % (r['size_mb'], r['dcerpc_wall_s'], r['dcerpc_cpu_s'], r['dcerpc_mb_s'],
                                               r['dcerpc_ratio']))
