#!/bin/sh
# dissector.presentation: what issue 12 asked of the plugin that tshark can show, on the real captures.
#   * the ePID activation date as a calendar date (ISO 8601 value, "Oct 4, 2022" in the tree) and its raw digits;
#   * with kms.decrypt off, the message size and the ciphertext stay fields, over the same bytes;
#   * the v4 MAC, v5/v6 hash and v6 HMAC as checksums: status fields and the expected value when bad;
#   * the request frame of a failed exchange is marked on the second pass (tshark -2, as in Wireshark);
#   * every kms field has a description (tshark -G fields);
#   * frame.protocols names kms;
#   * renamed fields keep their former names (kms.request, kms.response, kms.epid.*, kms.failed_check) as
#     aliases with the same values;
#   * one visible request/response link per direction in the KMS tree (DCE/RPC's), ours hidden but filterable.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
status=0
fail() { echo "FAIL: $*"; status=1; }
# expect WHAT GOT WANT
expect() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; }

v6=vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng               # ePID ...-2772022, three good v6 exchanges
v5bad=tampered-vlmcs-vlmcsd-v5-win8pro-ndr64-2req-resp2-hash.pcapng  # second response's hash altered
v4bad=tampered-vlmcs-vlmcsd-v4-office2010-ndr64-2req-req1-mac.pcapng  # first request's MAC altered

# tshark -2 cannot read stdin, and nobody (tshark-kms drops to it as root) must be able to read the file.
ro=$(mktemp -d /tmp/kms-presentation.XXXXXX)
trap 'rm -rf "$ro"' EXIT INT TERM
cp "$captures_dir/$v5bad" "$captures_dir/$v4bad" "$ro/"
chmod -R a+rX "$ro"

# --- dates: day 277 of 2022 is October 4
got=$(kms_fields "$v6" frame.number kms.resp.epid.date kms.resp.epid.day_year kms.epid.date | awk -F'\t' 'NR > 1 && $2 != ""' | head -n1)
expect "ePID date fields of frame 11 ($v6)" "$got" "11	2022-10-04	2772022	2022/277:00:00:00.000000000 UTC"
"$tshark_kms" -r - -Y 'frame.number == 11' -V < "$captures_dir/$v6" 2>/dev/null > "$KMS_WORK_DIR/presentation-v6.txt"
grep -q '^ *\[Activation date: Oct 4, 2022\]$' "$KMS_WORK_DIR/presentation-v6.txt" || fail "tree does not show 'Activation date: Oct 4, 2022'"
grep -q '^ *\[Day and year: 2772022\]$' "$KMS_WORK_DIR/presentation-v6.txt" || fail "tree does not show 'Day and year: 2772022'"

# --- decryption off: message size and ciphertext are fields over the same bytes as with decryption on
pdml_fields() {  # CAPTURE EXTRA-ARGS: "frame name pos size value" of kms.message_size, kms.ciphertext, kms.iv
  # shellcheck disable=SC2086
  "$tshark_kms" -r - $2 -Y kms -T pdml < "$captures_dir/$1" 2>/dev/null | awk '
    /<field name="num"/ { if (match($0, /show="[0-9]+"/)) frame = substr($0, RSTART + 6, RLENGTH - 7) }
    /name="kms\.(message_size|ciphertext|iv)"/ {
      n = $0; sub(/.*<field name="/, "", n); sub(/".*/, "", n)
      p = $0; sub(/.* pos="/, "", p); sub(/".*/, "", p)
      z = $0; sub(/.* size="/, "", z); sub(/".*/, "", z)
      v = $0; sub(/.* value="/, "", v); sub(/".*/, "", v)
      print frame, n, p, z, v }'
}
for c in "$v6" "$v5bad"; do
  pdml_fields "$c" "" > "$KMS_WORK_DIR/presentation-on.txt"
  pdml_fields "$c" "-o kms.decrypt:FALSE" > "$KMS_WORK_DIR/presentation-off.txt"
  n=$(grep -c ' kms.ciphertext ' "$KMS_WORK_DIR/presentation-off.txt" || true)
  expect "ciphertext fields with decryption off ($c)" "$n" "$(grep -c ' kms.ciphertext ' "$KMS_WORK_DIR/presentation-on.txt")"
  [ "$n" -ge 4 ] || fail "only $n ciphertext fields in $c"
  grep -q ' kms.message_size ' "$KMS_WORK_DIR/presentation-off.txt" || fail "no kms.message_size with decryption off ($c)"
  diff -u "$KMS_WORK_DIR/presentation-on.txt" "$KMS_WORK_DIR/presentation-off.txt" ||
    fail "message size, IV or ciphertext differ (value or bytes) with decryption off ($c)"
done
got=$("$tshark_kms" -r - -o kms.decrypt:FALSE -Y kms -T fields -e kms.resp.count -e kms.hash < "$captures_dir/$v6" 2>/dev/null | tr -d '\t\n')
expect "decrypted fields with decryption off" "$got" ""

# --- checksums: status 0 bad, 1 good (Wireshark's proto_checksum_vals), expected value when bad
got=$(kms_fields "$v5bad" frame.number kms.hash.status kms.hash.expected kms.hash | awk -F'\t' 'NR > 1 && $2 != ""' | cut -f1-3)
expect "hash status ($v5bad)" "$got" "11	1	
13	0	398034fa57d3c2b2015ddd4f901aba923858d2fda4e3633755e918721e5969d1"
got=$(kms_fields "$v4bad" frame.number kms.mac.status kms.mac.expected kms.mac | awk -F'\t' 'NR > 1')
expect "MAC status ($v4bad)" "$got" "10	0	671ece6b7f4cc0aed05a6ff9fa2af6cf	671ece6b7f4cc051d05a6ff9fa2af6cf
11	1		82a94a1c7279b28593cab6b8e5d12985
12	1		ebcb07816c3e5d1ec32cea6322320998
13	1		39a40dd35b78c5af1666be8ca9b584df"
got=$(kms_fields "$v6" frame.number kms.hmac.status kms.hash.status kms.hmac.expected | awk -F'\t' 'NR > 1 && $2 != ""')
expect "HMAC and hash status ($v6)" "$got" "11	1	1	
13	1	1	
15	1	1	"
grep -q '^ *HMAC: 47ed0c7bbecf0412f8a968ac04ff9c65 \[correct\]$' "$KMS_WORK_DIR/presentation-v6.txt" || fail "HMAC not shown as [correct]"
"$tshark_kms" -r - -Y 'frame.number == 13' -V < "$captures_dir/$v5bad" 2>/dev/null |
  grep -q '^ *Hash: 3980fa48359e64b5aac00680480dc47764f6d2fda41c633755e918721e5969d1 \[incorrect, should be 398034fa57d3c2b2015ddd4f901aba923858d2fda4e3633755e918721e5969d1\]$' ||
  fail "bad hash not shown as [incorrect, should be ...]"
# Decrypted fields sit under the "Decrypted" subtree.
awk '/^ *Decrypted$/ { d = length($0) - length(ltrim($0)) } function ltrim(s) { sub(/^ +/, "", s); return s }
     /^ *Count: / { c = length($0) - length(ltrim($0)) } END { exit !(d > 0 && c > d) }' "$KMS_WORK_DIR/presentation-v6.txt" ||
  fail "Count is not under the Decrypted subtree"

# --- the request of a failed exchange, on the second pass
got=$("$tshark_kms" -2 -r "$ro/$v5bad" -Y kms -T fields -E separator=/t -e frame.number -e kms.valid -e kms.verdict.failed -e _ws.col.Info 2>/dev/null | ws_bools)
expect "two-pass verdicts ($v5bad)" "$got" "10	1		KMS v5 request: Windows 8 Professional from win8-desk-42
11	1		KMS v5 response: count 50, ePID 05426-00206-560-703075-03-9226-9200.0000-3072023
12	0	hash	KMS v5 request: Windows 8 Professional from win8-desk-42 [verification failed]
13	0	hash	KMS v5 response: count 50, ePID 05426-00206-560-703075-03-9226-9200.0000-3072023 [verification failed]"
# The request's own failed check is listed once, with its expert info; the exchange verdict adds none.
got=$("$tshark_kms" -2 -r "$ro/$v4bad" -Y 'frame.number == 10' -T fields -e kms.verdict.failed -e _ws.expert.message 2>/dev/null)
expect "two-pass v4 request ($v4bad)" "$got" "request_mac	Verification failed (request_mac): v4 request MAC does not match the base request"

# --- descriptions: every field of kms (expert infos included) explains itself
"$tshark_kms" -G fields 2>/dev/null | awk -F'\t' '$1 == "F" && $5 == "kms"' > "$KMS_WORK_DIR/presentation-fields.txt"
n=$(wc -l < "$KMS_WORK_DIR/presentation-fields.txt")
[ "$n" -ge 70 ] || fail "only $n kms fields"
awk -F'\t' '$8 == "" { print "FAIL: field " $3 " has no description" }' "$KMS_WORK_DIR/presentation-fields.txt" | grep . && status=1

# --- frame.protocols names kms on every KMS frame (and the KMS-TCP helper under it)
got=$(kms_fields "$v6" frame.protocols | awk 'NR > 1' | sort -u)
expect "frame.protocols ($v6)" "$got" "eth:ethertype:ip:tcp:kms_tcp:dcerpc:kms"

# --- aliases: the former names carry the same values as the new ones
for c in "$v6" "$v5bad" "$v4bad"; do
  kms_fields "$c" kms.req kms.resp kms.resp.epid.platform kms.resp.epid.group kms.resp.epid.key_id \
    kms.resp.epid.channel kms.resp.epid.lcid kms.resp.epid.build kms.verdict.failed | awk 'NR > 1' > "$KMS_WORK_DIR/presentation-new.txt"
  kms_fields "$c" kms.request kms.response kms.epid.platform kms.epid.group kms.epid.key_id \
    kms.epid.channel kms.epid.lcid kms.epid.build kms.failed_check | awk 'NR > 1' > "$KMS_WORK_DIR/presentation-old.txt"
  diff -u "$KMS_WORK_DIR/presentation-new.txt" "$KMS_WORK_DIR/presentation-old.txt" || fail "aliases differ from the new names ($c)"
  grep -q '[0-9]' "$KMS_WORK_DIR/presentation-new.txt" || fail "no values to compare ($c)"
done

# --- links: one visible per direction (DCE/RPC's), ours hidden but filterable
"$tshark_kms" -2 -r "$ro/$v5bad" -Y 'frame.number == 12 || frame.number == 13' -V 2>/dev/null |
  sed -n '/^Microsoft Key Management Service/,/^[^ ]/p' > "$KMS_WORK_DIR/presentation-links.txt"  # the KMS trees
expect "visible 'Response in' links in the KMS tree of frame 12" "$(grep -c 'Response in' "$KMS_WORK_DIR/presentation-links.txt")" 1
expect "visible 'Request in' links in the KMS tree of frame 13" "$(grep -c 'Request in' "$KMS_WORK_DIR/presentation-links.txt")" 1
got=$("$tshark_kms" -2 -r "$ro/$v5bad" -Y 'kms.response_in == 13 || kms.request_in == 12' -T fields -e frame.number 2>/dev/null | tr '\n' ' ')
expect "kms.request_in / kms.response_in filters" "$got" "12 13 "

[ $status = 0 ] && echo "OK: dates, ciphertext without decryption, checksum statuses, request-side verdict, $n field descriptions, frame.protocols, aliases and links"
exit $status
