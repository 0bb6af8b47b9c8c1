#!/bin/sh
# dissector.fields: tshark -T fields of every capture equals tests/dissector/golden/<capture>.tsv
# (TZ=UTC, stderr not compared). KMS_UPDATE_GOLDEN=1 rewrites the golden files (review the diff!).
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
status=0; n=0
for c in $(list_captures); do
  n=$((n + 1))
  # shellcheck disable=SC2086
  kms_fields "$c" $GOLDEN_FIELDS > "$KMS_WORK_DIR/$c.golden.tsv"
  if [ "${KMS_UPDATE_GOLDEN:-0}" = 1 ]; then
    cp "$KMS_WORK_DIR/$c.golden.tsv" "$here/golden/$c.tsv"
  elif ! diff -u "$here/golden/$c.tsv" "$KMS_WORK_DIR/$c.golden.tsv"; then
    echo "FAIL: $c differs from its golden file"; status=1
  fi
done
[ $status = 0 ] && echo "OK: $n captures match their golden files"
exit $status
