#!/usr/bin/env python3
"""kms-analyze --jobs (issue 13): several files analysed at once give exactly the output of one at a time
(records by file, then in capture order; errors on stderr after their file's records; the same exit
status and summary) in every format, and memory stays bounded when the output cannot keep up. So does
--pipeline (issue 10: reading, reassembly and printing on threads of their own), alone and with --jobs.

usage: jobs.py KMS_ANALYZE CAPTURES_DIR"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checks import FAILURES, check  # noqa: E402

analyze, captures = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
names = [e['file'] for e in json.load(open(os.path.join(captures, 'MANIFEST.json')))]
work = tempfile.mkdtemp(prefix='kms-jobs-')


def run(args, jobs, pipeline=False):
    """stdout and stderr of one run, in one stream (so their interleaving is compared too), and the exit
    status."""
    p = subprocess.run([analyze, '--no-progress', '--jobs', str(jobs)] + (['--pipeline'] if pipeline else []) + args,
                       cwd=work,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    return p.returncode, p.stdout.decode()


try:
    # The bundled captures, one of them twice, a damaged one (cut in the middle of a packet: its records
    # before the damage and then an error) and a file that does not exist, in the middle of the list.
    for n in names:
        shutil.copy(os.path.join(captures, n), work)
    damaged = 'damaged-' + names[-1]
    data = open(os.path.join(captures, names[-1]), 'rb').read()
    open(os.path.join(work, damaged), 'wb').write(data[:len(data) * 2 // 3])
    files = names[:6] + [damaged, 'missing.pcap', names[0]] + names[6:]

    for args in (['--format', 'table'], ['--format', 'json'], ['--format', 'csv'], ['--format', 'eve'],
                 ['--format', 'json', '--summary'], ['--format', 'table', '--summary', '--filter', 'verdict=fail']):
        rc1, out1 = run(args + files, 1)
        check(rc1 == 2, '%s: exit %d with a damaged and a missing file, want 2' % (args, rc1))
        for jobs, pipeline in ((2, False), (4, False), (0, False), (1, True), (3, True)):
            rc, out = run(args + files, jobs, pipeline)
            how = '--jobs %d%s' % (jobs, ' --pipeline' if pipeline else '')
            check(rc == rc1, '%s %s: exit %d, one at a time %d' % (args, how, rc, rc1))
            check(out == out1, '%s %s: output differs from --jobs 1' % (args, how))

    # Records come file by file in the order given, and a file's error follows its records.
    rc, out = run(['--format', 'json'] + files, 3)
    lines = out.splitlines()
    order = [json.loads(l)['file'] for l in lines if l.startswith('{')]
    firsts = []
    for f in order:
        if not firsts or firsts[-1] != f:
            firsts.append(f)
    want = [f for f in files if f in set(order)]
    want = [f for i, f in enumerate(want) if i == 0 or want[i - 1] != f]
    check(firsts == want, 'records not in file order: %s' % firsts[:12])
    err = [i for i, l in enumerate(lines) if l.startswith('kms-analyze:') and damaged in l]
    last_damaged = max(i for i, l in enumerate(lines) if l.startswith('{') and '"file":"%s"' % damaged in l)
    check(len(err) == 1 and err[0] == last_damaged + 1,
          'the damaged file\'s error is not right after its records: %s, last record %d' % (err, last_damaged))
    check(any('missing.pcap' in l for l in lines if l.startswith('kms-analyze:')), 'no error for the missing file')

    # Standard input can be read once: '-' twice is a usage error, found before any output file is made.
    report = os.path.join(work, 'r.html')
    p = subprocess.run([analyze, '--jobs', '2', '--html', report, '-', '-'], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    check(p.returncode == 2 and b'more than once' in p.stderr, "'-' twice: exit %d" % p.returncode)
    check(not os.path.exists(report), "'-' twice: the report file was created anyway")

    # Memory stays bounded when the output is blocked, into a pipe nobody reads. Six copies of a 24 MB
    # KMS-only capture, three at a time: every worker stops once its file's lane is full (without the lane
    # bound the six files' records, about 100,000 exchanges, would all be held). Then one big file followed
    # by 60 small ones, two at a time: a small file fits in its lane, so only the turns (at most two files
    # taken and not yet printed) keep the workers from reading all of them while the big one is printed.
    big = os.path.join(work, 'big.pcap')
    small = os.path.join(work, 'small.pcap')
    gen = os.path.join(HERE, '..', '..', 'bench', 'analyzer', 'gen_capture.py')
    for path, mb in ((big, '24'), (small, '1.5')):
        subprocess.run([sys.executable, gen, path, mb, '--kms-share', '1.0'], check=True, stdout=subprocess.DEVNULL,
                       timeout=300)

    # Under AddressSanitizer freed memory waits in a quarantine; without it, it is reused as in a normal build.
    env = dict(os.environ)
    env['ASAN_OPTIONS'] = (env.get('ASAN_OPTIONS', '') + ':quarantine_size_mb=0').lstrip(':')

    def blocked_peak(jobs, files):
        """Peak RSS (KiB) once every thread is blocked on the unread pipe, and the exchanges printed after."""
        p = subprocess.Popen([analyze, '--no-progress', '--format', 'json', '--jobs', str(jobs)] + files,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        try:
            def cpu_ticks():
                f = open('/proc/%d/stat' % p.pid).read().rsplit(')', 1)[1].split()
                return int(f[11]) + int(f[12])

            # Wait, without reading, until the process has used no CPU for 1 s (every thread blocked), at most
            # 60 s; a process starved by a busy machine only makes the reading lower, never a false failure.
            last, deadline = -1, time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(1)
                now = cpu_ticks()
                if now == last:
                    break
                last = now
            peak = 0
            for l in open('/proc/%d/status' % p.pid):
                if l.startswith('VmHWM:'):
                    peak = int(l.split()[1])
            out, _ = p.communicate(timeout=300)  # now let it finish
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        check(p.returncode == 0, 'jobs %d: exit %d' % (jobs, p.returncode))
        return peak, out.count(b'"kind":"exchange"')

    # "N files' worth": against one file read alone into the same blocked pipe (the sanitizer builds have a
    # larger one), with 16 MiB for the threads' stacks and buffers.
    one, _ = blocked_peak(1, [big])
    peak, exchanges = blocked_peak(3, [big] * 6)
    check(exchanges > 60000, 'big files: %d exchanges, want the six files\' 60,000 and more' % exchanges)
    check(peak < 3 * one + 16 * 1024,
          'memory not bounded with the output blocked: peak %d KiB for %d exchanges, one file %d KiB' % (peak, exchanges, one))
    print('one big file, blocked output: peak %.1f MiB' % (one / 1024))
    print('six big files, --jobs 3, blocked output: peak %.1f MiB, then %d exchanges' % (peak / 1024, exchanges))
    peak, exchanges = blocked_peak(2, [big] + [small] * 60)
    check(exchanges > 60 * 500, 'big and small files: %d exchanges' % exchanges)
    check(peak < 2 * one + 16 * 1024, 'memory grows with the files after a blocked one: peak %d KiB, one file %d KiB' % (peak, one))
    print('a big and 60 small files, --jobs 2, blocked output: peak %.1f MiB, then %d exchanges'
          % (peak / 1024, exchanges))
finally:
    shutil.rmtree(work, ignore_errors=True)

print('%d failures' % len(FAILURES))
sys.exit(1 if FAILURES else 0)
