#!/bin/sh
# dissector.stats: tshark -z kms,tree and -z kms,clients on three captures merged into one file give the
# counts of golden/stats.txt (Count column of the tree; CMID, workstation, products and requests of the
# client table; rates and times depend on capture timing and are not compared, but first and last seen must
# be absolute times and the client table's columns must line up).
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
merged=$KMS_WORK_DIR/stats-merged.pcapng
(cd "$captures_dir" && mergecap -F pcapng -w "$merged" vlmcs-vlmcsd-err-K7.0-8007000D.pcapng \
  tampered-vlmcs-vlmcsd-v5-win8pro-ndr64-2req-resp2-hash.pcapng vlmcs-vlmcsd-v6-office2016-T-3conn.pcapng)
"$tshark_kms" -r - -q -z kms,tree -z kms,clients < "$merged" 2>/dev/null > "$KMS_WORK_DIR/stats.raw"
python3 - "$KMS_WORK_DIR/stats.raw" > "$KMS_WORK_DIR/stats.txt" <<'PY'
import re, sys
section = None
header_bars = None
for line in open(sys.argv[1]):
    line = line.rstrip('\n')
    if re.match(r'KMS ?/ ?Exchanges:', line):  # 4.3 and later print the menu path's separator as ' / '
        section = 'tree'; print('[kms,tree]'); continue
    if line.startswith('KMS Clients:'):
        section = 'clients'; print('[kms,clients]'); continue
    if section == 'tree':
        m = re.match(r'^(\s*)(\S.*?)\s{2,}(\d+)\s', line)
        if m and not line.startswith('Topic'):
            print('%s%s\t%s' % (m.group(1), m.group(2), m.group(3)))
    elif section == 'clients' and line.count('|') >= 6:
        # Columns: CMID, requests, first and last seen (absolute, UTC), products, workstation (last: its width
        # varies). The separators before the workstation line up in every row, the header's included.
        bars = [i for i, ch in enumerate(line) if ch == '|'][:5]
        if header_bars is None:
            header_bars = bars
        elif bars != header_bars:
            sys.exit('misaligned kms,clients row: %r' % line)
        if line.startswith('CMID'):
            continue
        cols = [c.strip() for c in line.split('|')]
        for t in cols[2:4]:
            if not re.fullmatch(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', t):
                sys.exit('first/last seen %r is not an absolute time' % t)
        print('\t'.join([cols[0], cols[5], cols[4], cols[1]]))
PY
if [ "${KMS_UPDATE_GOLDEN:-0}" = 1 ]; then cp "$KMS_WORK_DIR/stats.txt" "$here/golden/stats.txt"; fi
diff -u "$here/golden/stats.txt" "$KMS_WORK_DIR/stats.txt"
echo "OK: kms,tree and kms,clients counts match golden/stats.txt"
