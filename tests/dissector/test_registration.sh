#!/bin/sh
# dissector.registration: the plugin loads, and every field name of issue 3 is registered with its type.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp); trap 'rm -f "$out"' EXIT
"$here/tshark-kms" -G plugins 2>/dev/null | grep -q '^kms\.so' || { echo "kms.so not loaded"; exit 1; }
"$here/tshark-kms" -G fields 2>/dev/null | awk -F'\t' '$1 == "F" && $5 == "kms" { print $3 "\t" $4 }' > "$out"
status=0
while IFS='	' read -r name type; do
  case "$name" in ''|'#'*) continue ;; esac
  got=$(awk -F'\t' -v n="$name" '$1 == n { print $2 }' "$out")
  if [ "$got" != "$type" ]; then
    echo "field $name: want $type, got '${got:-missing}'"; status=1
  fi
done < "$here/fields.txt"
"$here/tshark-kms" -G protocols 2>/dev/null | grep -q "	KMS	kms$" || { echo "protocol kms not registered"; status=1; }
# The expert infos (registered as FT_NONE fields) and the statistics (-z help prints on stderr).
for ei in kms.check_failed kms.malformed kms.truncated kms.hresult.error kms.count_below_policy kms.clock_skew \
          kms.emulator kms.unknown_product; do
  awk -F'\t' -v n="$ei" '$1 == n && $2 == "FT_NONE"' "$out" | grep -q . || {
    echo "expert info $ei not registered"; status=1; }
done
"$here/tshark-kms" -z help 2>&1 | grep -q '^ *kms,tree$' || { echo "kms,tree missing from -z help"; status=1; }
"$here/tshark-kms" -z help 2>&1 | grep -q '^ *kms,clients$' || { echo "kms,clients missing from -z help"; status=1; }
[ $status = 0 ] && echo "OK: $(grep -vc '^#' "$here/fields.txt") fields, expert infos and statistics registered"
exit $status
