#!/bin/sh
# dissector.robustness: tshark with the plugin over mutated copies of every capture (editcap -E random
# byte errors with fixed seeds, snap-length truncations, chopped packet ends, the bind removed) must exit 0
# without a crash or a dissector bug (the wrapper sets WIRESHARK_ABORT_ON_DISSECTOR_BUG). Bounded: per
# setting the mutated captures are concatenated into one file and dissected by one tshark run, with the
# full tree (-V), both passes (-2) and Decode As of port 31688 on every other run, and the statistics taps.
# KMS_ROBUSTNESS_SEEDS (default "1 2 3") and KMS_ROBUSTNESS_PROBS (default "0.002 0.01 0.05") bound the run.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
seeds=${KMS_ROBUSTNESS_SEEDS:-1 2 3}
probs=${KMS_ROBUSTNESS_PROBS:-0.002 0.01 0.05}
dir=$KMS_WORK_DIR/robustness
rm -rf "$dir"; mkdir -p "$dir"
settings=""
for p in $probs; do for s in $seeds; do settings="$settings E:$p:$s"; done; done
settings="$settings s:80 s:150 s:250 s:320 C:-7 C:-60 nobind nobind nobindE:0.01:7"
status=0; runs=0; frames=0; i=0
for setting in $settings; do
  i=$((i + 1))
  parts=""
  for c in $(list_captures); do
    out="$dir/$i-$c.pcapng"
    case $setting in
      E:*) p=${setting#E:}; p=${p%:*}; s=${setting##*:}
           editcap -F pcapng -E "$p" --seed "$s" -o 40 "$captures_dir/$c" "$out" >/dev/null 2>&1 ;;
      s:*) editcap -F pcapng -s "${setting#s:}" "$captures_dir/$c" "$out" >/dev/null 2>&1 ;;
      C:*) editcap -F pcapng -C "${setting#C:}" "$captures_dir/$c" "$out" >/dev/null 2>&1 ;;
      nobind*) # drop the frames that carry the bind / bind_ack / alter_context (mid-stream capture)
           frames_to_drop=$("$tshark_kms" -r - -Y 'dcerpc.pkt_type == 11 || dcerpc.pkt_type == 12 || dcerpc.pkt_type == 14 || dcerpc.pkt_type == 15' -T fields -e frame.number \
                            < "$captures_dir/$c" 2>/dev/null | tr '\n' ' ')
           # shellcheck disable=SC2086
           editcap -F pcapng "$captures_dir/$c" "$out" $frames_to_drop >/dev/null 2>&1
           case $setting in nobindE:*)  # ... then random byte errors (the mid-stream decoder's input)
             p=${setting#nobindE:}; p=${p%:*}; s=${setting##*:}
             mv "$out" "$out.tmp"; editcap -F pcapng -E "$p" --seed "$s" -o 40 "$out.tmp" "$out" >/dev/null 2>&1
             rm -f "$out.tmp" ;;
           esac ;;
    esac
    parts="$parts $out"
  done
  # shellcheck disable=SC2086
  mergecap -F pcapng -a -w "$dir/$i.pcapng" $parts
  rc=0
  if [ $((i % 2)) = 0 ]; then
    # Two passes need a seekable file, readable by the user tshark-kms runs as (nobody when root).
    ro=$(mktemp -d /tmp/kms-robustness.XXXXXX); chmod 755 "$ro"; cp "$dir/$i.pcapng" "$ro/in.pcapng"
    chmod 644 "$ro/in.pcapng"
    # ... and the vlmcsd captures' server port through Decode As: the port path and, for "nobind", the
    # mid-stream decoder get the mutated bytes too.
    "$tshark_kms" -r "$ro/in.pcapng" -2 -d tcp.port==31688,kms_tcp -V -z kms,tree -z kms,clients \
      > "$dir/$i.out" 2> "$dir/$i.err" || rc=$?
    rm -rf "$ro"
  else
    "$tshark_kms" -r - -V -z kms,tree -z kms,clients < "$dir/$i.pcapng" > "$dir/$i.out" 2> "$dir/$i.err" || rc=$?
  fi
  runs=$((runs + 1))
  n=$(grep -c '^Frame [0-9]' "$dir/$i.out" || true)
  frames=$((frames + n))
  if [ $rc != 0 ] || grep -q 'Dissector bug\|dissector bug' "$dir/$i.out" "$dir/$i.err"; then
    echo "FAIL: setting $setting: tshark exit $rc"; tail -5 "$dir/$i.err"; status=1
  fi
  kms=$(grep -c '^Microsoft Key Management Service' "$dir/$i.out" || true)
  malformed=$(grep -c 'Malformed Packet\|Malformed KMS' "$dir/$i.out" || true)
  echo "setting $setting: exit $rc, $n frames, $kms KMS trees, $malformed malformed marks"
done
# The mutations must reach the KMS decoder and be reported there, not only stop at DCE/RPC.
if ! grep -q 'Malformed KMS' "$dir"/*.out; then
  echo "FAIL: no mutated KMS message was reported as malformed"; status=1
fi
[ $status = 0 ] && echo "OK: $runs tshark runs over $frames mutated frames, exit 0, no dissector bug"
exit $status
