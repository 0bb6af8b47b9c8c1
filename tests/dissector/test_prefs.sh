#!/bin/sh
# dissector.prefs: the preferences and the ways a connection is found (IVs as in golden/).
#  * kms.decrypt:FALSE shows the v5/v6 envelope (version, IV) without decrypting or verifying;
#  * with both TCP heuristics off (kms_tcp, dcerpc_tcp) nothing is KMS, unless the port preference
#    (kms.tcp.port) or Decode As (tcp.port==P,kms_tcp) names the server port.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
c=vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng   # server port 31688, three v6 exchanges
status=0
check() {  # check NAME WANT GOT
  if [ "$2" != "$3" ]; then printf 'FAIL %s:\nwant: %s\ngot:  %s\n' "$1" "$2" "$3"; status=1; fi
}
run() {
  "$tshark_kms" -r - -Y kms -T fields -E separator=/t "$@" < "$captures_dir/$c" 2>/dev/null | ws_bools | tr '\t\n' '|;'
}

check "decryption on" "10|2||;11||50|1;12|2||;13||50|1;14|2||;15||50|1;" \
  "$(run -e frame.number -e kms.req.license_status -e kms.resp.count -e kms.valid)"
check "decryption off" \
  "10|6|252691e474451b6980c9c85380014c3d||KMS v6 request (not decrypted);11|6|7f8eca11abf3c7f5dcfdc373f8d9f9f5||KMS v6 response (not decrypted);12|6|5de7db9665b6c5cb5f957ffb1184c7cf||KMS v6 request (not decrypted);13|6|307fd31eb310e364fc2862ef6cba459f||KMS v6 response (not decrypted);14|6|f5e7a9c24c60038bf978cb6287840912||KMS v6 request (not decrypted);15|6|c1f0151ef93c607dee3b483a241a1bba||KMS v6 response (not decrypted);" \
  "$(run -o kms.decrypt:FALSE -e frame.number -e kms.version.major -e kms.iv -e kms.req.cmid -e _ws.col.Info)"
nohe="--disable-heuristic kms_tcp --disable-heuristic dcerpc_tcp"
# shellcheck disable=SC2086
check "no heuristic, no port" "" "$(run $nohe -e frame.number)"
# shellcheck disable=SC2086
check "port preference" "10|;11|vlmcsd;12|;13|vlmcsd;14|;15|vlmcsd;" \
  "$(run $nohe -o kms.tcp.port:31688 -e frame.number -e kms.server_impl)"
# shellcheck disable=SC2086
check "Decode As" "10|;11|vlmcsd;12|;13|vlmcsd;14|;15|vlmcsd;" \
  "$(run $nohe -d tcp.port==31688,kms_tcp -e frame.number -e kms.server_impl)"
# Mid-stream: the frames carrying bind, bind_ack, alter_context and alter_context_resp removed. DCE/RPC
# alone cannot decode the calls; on the KMS port (preference) or with Decode As the plugin still does, with
# NDR32 and NDR64 stubs, request/response matching and verification.
drop=$("$tshark_kms" -r - -Y 'dcerpc.pkt_type == 11 || dcerpc.pkt_type == 12 || dcerpc.pkt_type == 14 || dcerpc.pkt_type == 15' \
       -T fields -e frame.number < "$captures_dir/$c" 2>/dev/null | tr '\n' ' ')
# shellcheck disable=SC2086
editcap "$captures_dir/$c" "$KMS_WORK_DIR/midstream.pcapng" $drop
c_orig=$c; captures_dir_orig=$captures_dir; captures_dir=$KMS_WORK_DIR; c=midstream.pcapng
check "mid-stream, no port" "" "$(run -e frame.number)"
want="6|TESTPC-W10.lab.example.net||||1;7||50|1|6|1;8|TESTPC-W10.lab.example.net||||1;9||50|1|8|1;10|TESTPC-W10.lab.example.net||||1;11||50|1|10|1;"
check "mid-stream, port preference" "$want" "$(run -o kms.tcp.port:31688 -e frame.number -e kms.req.workstation \
  -e kms.resp.count -e kms.valid -e kms.request_in -e kms.midstream)"
check "mid-stream, Decode As" "$want" "$(run -d tcp.port==31688,kms_tcp -e frame.number -e kms.req.workstation \
  -e kms.resp.count -e kms.valid -e kms.request_in -e kms.midstream)"
c=$c_orig; captures_dir=$captures_dir_orig
[ $status = 0 ] && echo "OK: decrypt preference, port preference, Decode As, mid-stream capture"
exit $status
