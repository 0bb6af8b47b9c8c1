#!/bin/sh
# dissector.profile: the colouring rules (dissector/profile/kms.colorfilters) and the configuration profile
# (dissector/profile/kmscope) that ship with the plugin, loaded by tshark as Wireshark loads them: each rule
# colours the frames it is meant for (frame.coloring_rule.name with --color), and the profile's columns show the
# workstation, product, count, verdict, failed checks and server of the real captures.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
status=0
fail() { echo "FAIL: $*"; status=1; }
expect() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; }
profile=$KMS_SOURCE_DIR/dissector/profile
v5bad=tampered-vlmcs-vlmcsd-v5-win8pro-ndr64-2req-resp2-hash.pcapng
v4bad=tampered-vlmcs-vlmcsd-v4-office2010-ndr64-2req-req1-mac.pcapng
refused=vlmcs-vlmcsd-err-K7.0-8007000D.pcapng
ro=$(mktemp -d /tmp/kms-profile.XXXXXX)
trap 'rm -rf "$ro"' EXIT INT TERM
cp "$captures_dir/$v5bad" "$ro/"
chmod -R a+rX "$ro"

# rules CAPTURE [TSHARK-ARGS]: "frame rule" of every coloured frame.
rules() {
  c=$1; shift
  KMS_TSHARK_COLORFILTERS=$profile/kms.colorfilters "$tshark_kms" "$@" --color -T fields -e frame.number \
    -e frame.coloring_rule.name < "$c" 2>/dev/null | awk -F'\t' '$2 != "" { print $1 " " $2 }'
}
expect "rules, one pass ($v5bad)" "$(rules "$captures_dir/$v5bad" -r -)" "11 KMS emulator tell
13 KMS verification failed"
# As in Wireshark, which dissects a frame again to colour it: the request of the failed exchange too.
expect "rules, two passes ($v5bad)" "$(rules /dev/null -2 -r "$ro/$v5bad")" "11 KMS emulator tell
12 KMS verification failed
13 KMS verification failed"
expect "rules ($v4bad)" "$(rules "$captures_dir/$v4bad" -r -)" "10 KMS verification failed
11 KMS verification failed
13 KMS emulator tell"
got=$(rules "$captures_dir/$refused" -r - | grep -c 'KMS refused (HRESULT)' || true)
expect "refusals coloured ($refused)" "$got" 1

# The profile's packet list columns, in tshark's one-line summaries.
KMS_TSHARK_PROFILE=$profile/kmscope "$tshark_kms" -C kmscope -r - < "$captures_dir/$v5bad" 2>"$KMS_WORK_DIR/profile.err" |
  ws_bools > "$KMS_WORK_DIR/profile.txt"
grep -q . "$KMS_WORK_DIR/profile.err" && { fail "tshark complained about the profile:"; cat "$KMS_WORK_DIR/profile.err"; }
grep -Eq '^ *12 .* KMS 366 win8-desk-42 Windows 8 Professional +KMS v5 request' "$KMS_WORK_DIR/profile.txt" ||
  fail "request columns (workstation, product) missing"
grep -Eq '^ *13 .* KMS 330 +50 (False|0) hash vlmcsd KMS v5 response' "$KMS_WORK_DIR/profile.txt" ||
  fail "response columns (count, valid, failed checks, server) missing"
[ $status = 0 ] || sed -n 10,13p "$KMS_WORK_DIR/profile.txt"
[ $status = 0 ] && echo "OK: colouring rules and the kmscope profile's columns on the real captures"
exit $status
