#!/bin/sh
# dissector.crosscheck: for every capture, the dissector's fields equal the core's decoded values.
# The core side is kms-core-fields (libpcap reader + the core's conversation model, as kms-analyze uses),
# which shares nothing with Wireshark's TCP reassembly, DCE/RPC binding and call matching.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
: "${KMS_CORE_FIELDS:?set KMS_CORE_FIELDS to the built kms-core-fields}"
status=0; n=0; lines=0
for c in $(list_captures); do
  n=$((n + 1))
  "$KMS_CORE_FIELDS" "$captures_dir/$c" | LC_ALL=C sort > "$KMS_WORK_DIR/$c.core.txt"
  kms_fields "$c" kms.req.cmid kms.version.major kms.version.minor kms.req.sku_id kms.req.kms_id kms.req.app_id \
    kms.req.workstation kms.req.license_status kms.req.n_policy kms.req.vm_info kms.req.binding_expiration \
    kms.product kms.kms_product kms.application kms.req.previous_cmid \
    kms.resp.epid kms.resp.count kms.resp.activation_interval kms.resp.renewal_interval kms.resp.hwid \
    kms.resp.cmid kms.valid kms.failed_check kms.hresult kms.server_impl \
    > "$KMS_WORK_DIR/$c.crosscheck.tsv"
  python3 - "$KMS_WORK_DIR/$c.crosscheck.tsv" > "$KMS_WORK_DIR/$c.dissector.txt" <<'PY'
import sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
head, rows = rows[0], rows[1:]
out, impl = [], None
for r in rows:
    d = dict(zip(head, r + [''] * (len(head) - len(r))))
    if d['kms.req.cmid']:
        out.append('\t'.join(['request', d['kms.version.major'], d['kms.version.minor']] + [d[k] for k in (
            'kms.req.cmid', 'kms.req.sku_id', 'kms.req.kms_id', 'kms.req.app_id', 'kms.req.workstation',
            'kms.req.license_status', 'kms.req.n_policy', 'kms.req.vm_info', 'kms.req.binding_expiration',
            'kms.product', 'kms.kms_product', 'kms.application', 'kms.req.previous_cmid')]))
    elif d['kms.resp.epid']:
        out.append('\t'.join(['response', d['kms.version.major']] + [d[k] for k in (
            'kms.resp.epid', 'kms.resp.count', 'kms.resp.activation_interval', 'kms.resp.renewal_interval',
            'kms.resp.hwid', 'kms.resp.cmid', 'kms.valid', 'kms.failed_check')]))
    elif d['kms.hresult']:
        out.append('hresult\t0x%08x' % int(d['kms.hresult'], 16))
    if d['kms.server_impl']:
        impl = d['kms.server_impl']
if impl:
    out.append('server\t' + impl)
print('\n'.join(sorted(out)))
PY
  # kms.server_impl lives on KMS response frames: a capture whose requests all went unanswered has no
  # frame to carry it, so the core's server line is not compared there.
  if ! grep -q '^server' "$KMS_WORK_DIR/$c.dissector.txt" && ! grep -q '^response\|^hresult' "$KMS_WORK_DIR/$c.core.txt"; then
    grep -v '^server' "$KMS_WORK_DIR/$c.core.txt" > "$KMS_WORK_DIR/$c.core.cmp" || true
  else
    cp "$KMS_WORK_DIR/$c.core.txt" "$KMS_WORK_DIR/$c.core.cmp"
  fi
  if ! diff -u "$KMS_WORK_DIR/$c.core.cmp" "$KMS_WORK_DIR/$c.dissector.txt"; then
    echo "FAIL: $c: dissector fields differ from the core's values (- core, + dissector)"; status=1
  fi
  lines=$((lines + $(wc -l < "$KMS_WORK_DIR/$c.core.txt")))
done
[ $status = 0 ] && echo "OK: $n captures, $lines request/response/server lines agree with the core"
exit $status
