#!/bin/sh
# dissector.experts: the expert infos that no bundled capture triggers, on edited copies of captures:
#  * the capture clock moved one day ahead (editcap -t): kms.clock_skew on every request;
#  * a v4 response whose count is patched from 50 to 1: kms.count_below_policy, failed checks
#    response_mac and count, kms.valid false;
#  * a v4 request whose SKU GUID is patched: kms.unknown_product (a note) and the request MAC fails.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
status=0
check() {  # check NAME WANT GOT
  if [ "$2" != "$3" ]; then printf 'FAIL %s:\nwant: %s\ngot:  %s\n' "$1" "$2" "$3"; status=1; fi
}
fields() {  # fields FILE FIELD...: one line per KMS frame, fields separated by |
  f=$1; shift; args=""
  for x in "$@"; do args="$args -e $x"; done
  # shellcheck disable=SC2086
  "$tshark_kms" -r - -Y kms -T fields -E separator='|' -E occurrence=a -E aggregator=, $args < "$f" 2>/dev/null \
    | ws_bools | tr '\n' ';'
}
w=$KMS_WORK_DIR/experts; rm -rf "$w"; mkdir -p "$w"

editcap -t 86400 "$captures_dir/vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng" "$w/skew.pcapng"
check "clock skew" \
  "10|1|Client time is 86400 s behind the capture time (more than 4 h);11||Emulator tell: stale bytes in the bind answer's padding (vlmcsd),Emulator tell: HwId 3A1C049600B60076 (vlmcsd default);12|1|Client time is 86400 s behind the capture time (more than 4 h);13||;14|1|Client time is 86400 s behind the capture time (more than 4 h);15||;" \
  "$(fields "$w/skew.pcapng" frame.number kms.clock_skew _ws.expert.message)"

# pykms-pykms-v4-windows7: ePID 03612-00206-538-405779-03-1033-17763.0000-0132026, count 50 (N policy 25);
# SKU ae2ee509-1b34-41c0-acb7-6d4650168915 (Windows 7 Enterprise).
python3 - "$captures_dir/pykms-pykms-v4-windows7.pcapng" "$w" <<'PY'
import sys, uuid
src, out = sys.argv[1], sys.argv[2]
data = bytearray(open(src, 'rb').read())
epid = '03612-00206-538-405779-03-1033-17763.0000-0132026'.encode('utf-16-le') + b'\0\0'
at = data.index(epid) + len(epid) + 16 + 8           # CMID and client time follow the ePID, then the count
assert data[at:at + 4] == (50).to_bytes(4, 'little')
count = bytearray(data); count[at:at + 4] = (1).to_bytes(4, 'little')
open(out + '/count.pcapng', 'wb').write(count)
sku = uuid.UUID('ae2ee509-1b34-41c0-acb7-6d4650168915').bytes_le
at = data.index(sku)
unknown = bytearray(data); unknown[at] ^= 0xff
open(out + '/sku.pcapng', 'wb').write(unknown)
PY
check "count below N policy" \
  "8|25|||||;10||1|0|response_mac,count|1|;" \
  "$(fields "$w/count.pcapng" frame.number kms.req.n_policy kms.resp.count kms.valid kms.failed_check kms.count_below_policy kms.unknown_product)"
check "unknown product" \
  "8|ae2ee5f6-1b34-41c0-acb7-6d4650168915|request_mac|1;10||request_mac|;" \
  "$(fields "$w/sku.pcapng" frame.number kms.product kms.failed_check kms.unknown_product)"
[ $status = 0 ] && echo "OK: clock skew, count below N policy and unknown product expert infos"
exit $status
