#!/usr/bin/env python3
"""The analyzer and the Wireshark dissector (dissector/, kms.so) agree field by field on every capture.

usage: agree_dissector.py ANALYZER KMS_PLUGIN CAPTURES_DIR
Runs tshark with the plugin (through tests/dissector/tshark-kms) and kms-analyze --format json on each
capture, pairs the dissector's request frames with the analyzer's exchanges in request order (and each
response frame with its request through kms.request_in), and compares every field both report.
Fails when the plugin or tshark is missing (the test is only registered where the plugin is built).
Every field must agree, kms.server_impl included: the dissector hands the bind answers to the core's
fingerprint too.
"""
import datetime, json, os, shutil, subprocess, sys

ANALYZER, PLUGIN, CAPTURES = sys.argv[1:4]
HERE = os.path.dirname(os.path.abspath(__file__))
WRAPPER = os.path.join(HERE, '..', 'dissector', 'tshark-kms')
if not os.path.exists(PLUGIN) or not shutil.which('tshark') or not os.path.exists(WRAPPER):
    print('FAIL: no kms.so plugin, tshark or tests/dissector/tshark-kms')
    sys.exit(2)

# tshark field -> (where in the analyzer record, how to normalise the tshark text)
REQ = [
    ('tcp.stream', lambda r: r['stream'], int),  # the analyzer numbers connections as tshark does
    ('kms.version.major', lambda r: r['version'].split('.')[0] if r['version'] else None, str),
    ('kms.req.vm_info', lambda r: r['request']['vm_info'], int),
    ('kms.req.license_status', lambda r: r['request']['license_status'], int),
    ('kms.req.binding_expiration', lambda r: r['request']['binding_expiration'], int),
    ('kms.req.app_id', lambda r: r['request']['app_id'], str.lower),
    ('kms.req.sku_id', lambda r: r['request']['sku_id'], str.lower),
    ('kms.req.kms_id', lambda r: r['request']['kms_id'], str.lower),
    ('kms.req.cmid', lambda r: r['request']['cmid'], str.lower),
    ('kms.req.previous_cmid', lambda r: r['request']['previous_cmid'], str.lower),
    ('kms.req.n_policy', lambda r: r['request']['n_policy'], int),
    ('kms.req.workstation', lambda r: r['request']['workstation'], str),
    ('kms.req.client_time', lambda r: r['request']['client_time'], 'time'),
    ('kms.application', lambda r: r['request']['application'], str),
    ('kms.product', lambda r: r['request']['product'], str),
    ('kms.kms_product', lambda r: r['request']['kms_product'], str),
]
RESP = [
    ('kms.resp.epid', lambda r: r['response']['epid'], str),
    ('kms.epid.platform', lambda r: (r['response']['epid_parts'] or {}).get('platform'), int),
    ('kms.epid.group', lambda r: (r['response']['epid_parts'] or {}).get('group'), int),
    ('kms.epid.key_id', lambda r: (r['response']['epid_parts'] or {}).get('key_id'), int),
    ('kms.epid.channel', lambda r: (r['response']['epid_parts'] or {}).get('channel'), int),
    ('kms.epid.lcid', lambda r: (r['response']['epid_parts'] or {}).get('lcid'), int),
    ('kms.epid.build', lambda r: (r['response']['epid_parts'] or {}).get('build'), int),
    ('kms.epid.date', lambda r: (r['response']['epid_parts'] or {}).get('date'), 'epid_date'),
    ('kms.resp.count', lambda r: r['response']['count'], int),
    ('kms.resp.activation_interval', lambda r: r['response']['activation_interval'], int),
    ('kms.resp.renewal_interval', lambda r: r['response']['renewal_interval'], int),
    ('kms.resp.hwid', lambda r: r['response']['hwid'].lower() if r['response']['hwid'] else None, 'hex'),
    ('kms.hresult', lambda r: int(r['response']['hresult'], 16) if r['response']['hresult'] != '0x00000000' else None, 'int0'),
    ('kms.valid', lambda r: r['verdict']['ok'], 'bool'),
    ('kms.server_impl', lambda r: r['server_impl'], str),
]
FIELDS = ['frame.number', 'kms.request_in', 'kms.failed_check'] + [f for f, _, _ in REQ + RESP]

def norm(v, how):
    if v is None or v == '':
        return None
    if how == 'time':  # "Nov 21, 2026 23:53:02.000000000 UTC" -> ISO like the analyzer
        whole, frac = v.replace(' UTC', '').split('.')
        d = datetime.datetime.strptime(whole, '%b %d, %Y %H:%M:%S')
        ticks = int(frac.ljust(9, '0')[:9]) // 100
        return d.strftime('%Y-%m-%dT%H:%M:%S') + ('.%07d' % ticks if ticks else '') + 'Z'
    if how == 'epid_date':  # "2018/154:00:00:00..." -> "1542018"
        y, rest = v.split('/', 1)
        return '%03d%s' % (int(rest.split(':')[0]), y)
    if how == 'hex':
        return v.replace(':', '').lower()
    if how == 'bool':
        return v.lower() in ('1', 'true')
    if how in (int, 'int0'):
        return int(v, 0)
    return how(v)

def tshark_rows(capture):
    cmd = [WRAPPER, '-r', '-', '-Y', 'kms', '-T', 'fields', '-E', 'header=y', '-E', 'separator=/t',
           '-E', 'occurrence=a', '-E', 'aggregator=,', '-E', 'quote=n']
    for f in FIELDS:
        cmd += ['-e', f]
    env = dict(os.environ, KMS_PLUGIN=os.path.abspath(PLUGIN))
    out = subprocess.run(cmd, stdin=open(os.path.join(CAPTURES, capture), 'rb'), capture_output=True, env=env,
                         check=True).stdout.decode()
    lines = [l.split('\t') for l in out.splitlines() if l]
    head = lines[0]
    return [dict(zip(head, l + [''] * (len(head) - len(l)))) for l in lines[1:]]

def main():
    names = [e['file'] for e in json.load(open(os.path.join(CAPTURES, 'MANIFEST.json')))]
    bad, total = [], 0
    for name in names:
        rows = tshark_rows(name)
        recs = [json.loads(l) for l in subprocess.run([ANALYZER, '--format', 'json', name], cwd=CAPTURES,
                capture_output=True, check=True).stdout.decode().splitlines()]
        ex = sorted([r for r in recs if r['kind'] == 'exchange' and r['request']], key=lambda r: r['ts'])
        reqs = [r for r in rows if r.get('kms.req.cmid')]
        answers = {r['kms.request_in']: r for r in rows if r.get('kms.request_in')}
        total += 1
        if len(reqs) != len(ex):
            bad.append('%s: dissector %d requests, analyzer %d' % (name, len(reqs), len(ex)))
            continue
        for i, (row, r) in enumerate(zip(reqs, ex), 1):
            for f, get, how in REQ:
                total += 1
                if norm(row.get(f), how) != get(r):
                    bad.append('%s request %d %s: dissector %r analyzer %r' % (name, i, f, row.get(f), get(r)))
            ans = answers.get(row['frame.number'])
            total += 1
            if (ans is None) != (r['response'] is None):
                bad.append('%s request %d: dissector answer %s, analyzer response %s' % (name, i, ans is not None, r['response'] is not None))
                continue
            checks = set(filter(None, (row.get('kms.failed_check', '') + ',' + (ans or {}).get('kms.failed_check', '')).split(',')))
            total += 1
            if checks != set(r['verdict']['failed_checks']):
                bad.append('%s request %d failed checks: dissector %s analyzer %s' % (name, i, sorted(checks), r['verdict']['failed_checks']))
            if ans is None:
                continue
            for f, get, how in RESP:
                total += 1
                want = get(r) if r['response'] else None
                if f == 'kms.valid' and ans.get(f, '') == '':
                    continue
                if norm(ans.get(f), how) != want:
                    msg = '%s response %d %s: dissector %r analyzer %r' % (name, i, f, ans.get(f), want)
                    bad.append(msg)
    for b in bad:
        print(b)
    print('%d captures, %d values compared, %d disagreements' % (len(names), total, len(bad)))
    sys.exit(1 if bad else 0)

main()
