# Shared by the dissector tests: paths, the tshark wrapper and the field list of the golden files.
here=$(cd "$(dirname "$0")" && pwd)
: "${KMS_SOURCE_DIR:=$(cd "$here/../.." && pwd)}"
if [ -z "${KMS_WORK_DIR:-}" ]; then  # run by hand: a private folder, removed at exit
  KMS_WORK_DIR=$(mktemp -d /tmp/kms-dissector-tests.XXXXXX)
  trap 'rm -rf "$KMS_WORK_DIR"' EXIT
fi
mkdir -p "$KMS_WORK_DIR"
captures_dir=$KMS_SOURCE_DIR/captures
tshark_kms=$here/tshark-kms
export KMS_PLUGIN

# Every capture of captures/ (pcap and pcapng), one name per line.
list_captures() {
  (cd "$captures_dir" && ls -1 -- *.pcap *.pcapng 2>/dev/null)
}

# The fields of the golden files: everything the manifest check needs plus the verdict, the fingerprint,
# pairing and the expert infos.
GOLDEN_FIELDS="frame.number kms.version.major kms.version.minor kms.req.vm_info kms.req.license_status
 kms.req.binding_expiration kms.req.app_id kms.req.sku_id kms.req.kms_id kms.req.cmid kms.req.n_policy
 kms.req.client_time kms.req.previous_cmid kms.req.workstation kms.application kms.product kms.kms_product
 kms.iv kms.mac kms.resp.epid kms.epid.platform kms.epid.group kms.epid.key_id kms.epid.channel kms.epid.lcid
 kms.epid.build kms.epid.date kms.resp.cmid kms.resp.client_time kms.resp.count kms.resp.activation_interval
 kms.resp.renewal_interval kms.resp.hwid kms.hash kms.hmac kms.hresult kms.valid kms.failed_check
 kms.server_impl kms.request_in kms.time _ws.expert.message"

# ws_bools: stdin to stdout, with a boolean field's value (kms.valid) as 1 / 0. Wireshark 4.0 prints
# booleans as 1 / 0 in -T fields output, 4.4 and 4.6 print True / False; the golden files and the tests'
# expected strings keep 1 / 0. Only whole values change: a cell between tab, |, comma or ; separators.
ws_bools() {
  sed -E -e ':t' -e 's/(^|[\t|,;])True([\t|,;]|$)/\11\2/' -e 'tt' \
         -e ':f' -e 's/(^|[\t|,;])False([\t|,;]|$)/\10\2/' -e 'tf'
}

# kms_fields CAPTURE FIELD...: tshark -T fields (header row, tab-separated, all occurrences) of KMS frames.
kms_fields() {
  capture=$1; shift
  args=""
  for f in "$@"; do args="$args -e $f"; done
  # shellcheck disable=SC2086
  "$tshark_kms" -r - -Y kms -T fields -E header=y -E separator=/t -E occurrence=a -E aggregator=, -E quote=n \
    $args < "$captures_dir/$capture" 2>/dev/null | ws_bools
}
