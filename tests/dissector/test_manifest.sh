#!/bin/sh
# dissector.manifest: for every capture, the dissector's fields agree with the values the peers logged
# (captures/MANIFEST.json), checked by the project's tests/tools/check_manifest.py.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
status=0; n=0
for c in $(list_captures); do
  n=$((n + 1))
  kms_fields "$c" frame.number kms.version.major kms.req.app_id kms.req.sku_id kms.req.kms_id kms.req.cmid \
    kms.req.workstation kms.req.license_status kms.req.n_policy kms.req.vm_info kms.req.binding_expiration \
    kms.resp.epid kms.resp.hwid kms.resp.count kms.resp.activation_interval kms.resp.renewal_interval \
    kms.hresult kms.valid > "$KMS_WORK_DIR/$c.manifest.tsv"
  if ! result=$(python3 "$here/../tools/check_manifest.py" "$captures_dir/MANIFEST.json" "$c" tshark \
                "$KMS_WORK_DIR/$c.manifest.tsv"); then
    echo "$result" | sed "s|^|$c: |"; status=1
  fi
done
[ $status = 0 ] && echo "OK: $n captures agree with MANIFEST.json"
exit $status
