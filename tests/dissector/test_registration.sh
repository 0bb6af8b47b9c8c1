#!/bin/sh
# dissector.registration: the plugin loads with the project version, and every field name of issues 3 and 12 is
# registered with its type.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp); trap 'rm -f "$out"' EXIT
# -G plugins: name, version, type, path. The version is the project's (KMS_PROJECT_VERSION, from CMake),
# and the type is "dissector" (from 4.4 on, what plugin_describe() answers).
plugin=$("$here/tshark-kms" -G plugins 2>/dev/null | awk -F'\t' '$1 ~ /^kms\.so *$/ { print $2 "\t" $3 }')
[ -n "$plugin" ] || { echo "kms.so not loaded"; exit 1; }
want="${KMS_PROJECT_VERSION:?set KMS_PROJECT_VERSION to the project version}	dissector"
[ "$plugin" = "$want" ] || { echo "tshark -G plugins: kms.so '$plugin', want '$want'"; exit 1; }
"$here/tshark-kms" -G fields 2>/dev/null | awk -F'\t' '$1 == "F" && $5 == "kms" { print $3 "\t" $4 }' > "$out"
status=0
while IFS='	' read -r name type; do
  case "$name" in ''|'#'*) continue ;; esac
  got=$(awk -F'\t' -v n="$name" '$1 == n { print $2 }' "$out")
  if [ "$got" != "$type" ]; then
    echo "field $name: want $type, got '${got:-missing}'"; status=1
  fi
done < "$here/fields.txt"
# -G protocols: name, short name, filter name (4.4 and 4.6 add three T/F flag columns).
"$here/tshark-kms" -G protocols 2>/dev/null | awk -F'\t' '$2 == "KMS" && $3 == "kms"' | grep -q . || {
  echo "protocol kms not registered"; status=1; }
# The expert infos (registered as FT_NONE fields) and the statistics (-z help prints on stderr).
for ei in kms.check_failed kms.malformed kms.truncated kms.hresult.error kms.count_below_policy kms.clock_skew \
          kms.emulator kms.unknown_product; do
  awk -F'\t' -v n="$ei" '$1 == n && $2 == "FT_NONE"' "$out" | grep -q . || {
    echo "expert info $ei not registered"; status=1; }
done
"$here/tshark-kms" -z help 2>&1 | grep -q '^ *kms,tree$' || { echo "kms,tree missing from -z help"; status=1; }
"$here/tshark-kms" -z help 2>&1 | grep -q '^ *kms,clients$' || { echo "kms,clients missing from -z help"; status=1; }
[ $status = 0 ] && echo "OK: kms.so $KMS_PROJECT_VERSION loaded; $(grep -vc '^#' "$here/fields.txt") fields, expert infos and statistics registered"
exit $status
