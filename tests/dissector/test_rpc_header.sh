#!/bin/sh
# dissector.rpc_header: the response-header RPC checks (rpc::response_header_anomalies, shared with the core's
# conversation model) fail the exchange as check `rpc` in the dissector too. Edited copies of a capture:
#  * headers.pcapng: response 1 cancel_count 1, response 2 alloc_hint 4, response 3 context id 0 (its
#    request used context 1);
#  * flags.pcapng: response 1 with PFC_DID_NOT_EXECUTE set.
# Each edited response must show kms.valid 0, kms.failed_check rpc and the anomaly as an expert info, the
# untouched ones must stay valid, and the core (kms-core-fields: the libpcap reader and the conversation
# model kms-analyze uses) must give the same verdicts.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
: "${KMS_CORE_FIELDS:?set KMS_CORE_FIELDS to the built kms-core-fields}"
status=0
check() {  # check NAME WANT GOT
  if [ "$2" != "$3" ]; then printf 'FAIL %s:\nwant: %s\ngot:  %s\n' "$1" "$2" "$3"; status=1; fi
}
fields() {  # fields FILE FIELD...: one line per KMS response frame, fields separated by |
  f=$1; shift; args=""
  for x in "$@"; do args="$args -e $x"; done
  # shellcheck disable=SC2086
  "$tshark_kms" -r - -Y kms.response -T fields -E separator='|' -E occurrence=a -E aggregator=, $args < "$f" \
    2>/dev/null | ws_bools | tr '\n' ';'
}
core_verdicts() {  # core_verdicts FILE: "valid|failed;" per response, in capture order
  "$KMS_CORE_FIELDS" "$1" | awk -F'\t' '$1 == "response" {printf "%s|%s;", $9, $10}'
}
w=$KMS_WORK_DIR/rpc_header; rm -rf "$w"; mkdir -p "$w"

# vlmcs-vlmcsd-v6-win10pro-ndr64-3req: responses to calls 2 (context 0), 3 and 4 (context 1), NDR64.
python3 - "$captures_dir/vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng" "$w" <<'PY'
import sys
src, out = sys.argv[1], sys.argv[2]
data = bytes(open(src, 'rb').read())
def response(call_id):  # offset of the response PDU of a call: version 5.0, type 2, FIRST|LAST, little endian
    at = data.index(bytes([5, 0, 2, 3, 0x10, 0, 0, 0]))
    while data[at + 12:at + 16] != call_id.to_bytes(4, 'little'):
        at = data.index(bytes([5, 0, 2, 3, 0x10, 0, 0, 0]), at + 1)
    return at
headers = bytearray(data)
r = response(2); assert headers[r + 22] == 0; headers[r + 22] = 1                       # cancel_count
r = response(3); headers[r + 16:r + 20] = (4).to_bytes(4, 'little')                     # alloc_hint
r = response(4); assert headers[r + 20:r + 22] == b'\1\0'; headers[r + 20:r + 22] = b'\0\0'  # context id
open(out + '/headers.pcapng', 'wb').write(headers)
flags = bytearray(data)
r = response(2); flags[r + 3] |= 0x20                                                     # PFC_DID_NOT_EXECUTE
open(out + '/flags.pcapng', 'wb').write(flags)
PY

fail="Verification failed (rpc): RPC response framing deviates from what a Windows client accepts"
tells="Emulator tell: stale bytes in the bind answer's padding (vlmcsd),Emulator tell: HwId 3A1C049600B60076 (vlmcsd default)"
check "header anomalies (dissector)" \
  "11|0|rpc|RPC response header: response cancel_count 1,$fail,$tells;\
13|0|rpc|RPC response header: response alloc_hint 4 differs from the padded stub size 288,$fail;\
15|0|rpc|RPC response header: response context id 0 differs from the request's 1,$fail;" \
  "$(fields "$w/headers.pcapng" frame.number kms.valid kms.failed_check _ws.expert.message)"
check "header anomalies (core)" "0|rpc;0|rpc;0|rpc;" "$(core_verdicts "$w/headers.pcapng")"
check "response flags (dissector)" \
  "11|0|rpc|RPC response header: unexpected response flags 0x00000023,$fail,$tells;13|1||;15|1||;" \
  "$(fields "$w/flags.pcapng" frame.number kms.valid kms.failed_check _ws.expert.message)"
check "response flags (core)" "0|rpc;1|;1|;" "$(core_verdicts "$w/flags.pcapng")"
check "untouched capture" "11|1||$tells;13|1||;15|1||;" \
  "$(fields "$captures_dir/vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng" frame.number kms.valid kms.failed_check \
     _ws.expert.message)"
[ $status = 0 ] && echo "OK: response-header RPC checks fail kms.valid as check rpc, as in the core"
exit $status
