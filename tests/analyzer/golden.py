#!/usr/bin/env python3
"""Golden outputs of kms-analyze for every capture in captures/ (JSON lines and table), plus the
manifest check (tests/tools/check_manifest.py, vendored) of every capture's JSON output.

usage: golden.py ANALYZER CAPTURES_DIR [--update]
Runs ANALYZER in CAPTURES_DIR on each capture named in MANIFEST.json, with --format json and with the
default table, and compares with tests/analyzer/golden/<capture>.{jsonl,table}. --update rewrites them.
"""
import json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, 'golden')

def run(analyzer, cwd, args):
    p = subprocess.run([analyzer] + args, cwd=cwd, capture_output=True)
    if p.returncode != 0:
        raise SystemExit('%s %s: exit %d\n%s' % (analyzer, ' '.join(args), p.returncode, p.stderr.decode()))
    return p.stdout.decode()

def main():
    analyzer, captures = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    update = '--update' in sys.argv[3:]
    names = [e['file'] for e in json.load(open(os.path.join(captures, 'MANIFEST.json')))]
    failures = []
    for name in names:
        for fmt, ext in (('json', 'jsonl'), ('table', 'table')):
            out = run(analyzer, captures, ['--format', fmt, name])
            path = os.path.join(GOLDEN, name + '.' + ext)
            if update:
                open(path, 'w').write(out)
            elif not os.path.exists(path) or open(path).read() != out:
                failures.append('%s: output differs from %s' % (name, os.path.relpath(path, HERE)))
        tmp = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'kms-analyze-golden-%d.jsonl' % os.getpid())
        open(tmp, 'w').write(run(analyzer, captures, ['--format', 'json', name]))
        p = subprocess.run([sys.executable, os.path.join(HERE, '..', 'tools', 'check_manifest.py'),
                            os.path.join(captures, 'MANIFEST.json'), name, 'analyzer', tmp], capture_output=True)
        os.unlink(tmp)
        if p.returncode != 0:
            failures.append('%s: manifest check failed:\n%s' % (name, p.stdout.decode()))
    for f in failures:
        print(f)
    print('%d captures, %d failures' % (len(names), len(failures)))
    sys.exit(1 if failures else 0)

main()
