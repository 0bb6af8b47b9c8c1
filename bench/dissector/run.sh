#!/bin/sh
# Overhead of the kms.so plugin on tshark: the same large KMS-heavy capture, dissected by the same tshark
# (same user, environment and options) with and without the plugin, REPS times each, interleaved, in one
# run. Prints every run, the medians of wall and CPU (user+sys) time and their ratios, and the median of
# the CPU ratios of back-to-back pairs (target <= 1.15).
#
# usage: bench/dissector/run.sh [BUILD_DIR] [COPIES] [REPS]
#   BUILD_DIR  a configured build tree (default build/release); kms.so is built there if needed
#   COPIES     how many times the connections of captures/ are replayed (default 300)
#   REPS       runs per configuration and mode (default 5)
# The capture is generated at run time into BUILD_DIR/bench-dissector/ (never committed) by
# make_capture.py from the DCE/RPC segments of every capture in captures/.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build/release}
copies=${2:-300}
reps=${3:-5}
cmake --build "$build" --target kms >/dev/null
plugin=$build/dissector/kms.so
wrapper=$root/tests/dissector/tshark-kms
work=$build/bench-dissector
mkdir -p "$work"
big=$work/kms-bench-$copies.pcap
if [ ! -s "$big" ]; then
  (cd "$root/captures" && mergecap -F pcapng -a -w "$work/base.pcapng" -- *.pcap *.pcapng)
  KMS_PLUGIN=$plugin "$wrapper" -r - -Y 'tcp.len > 0 && dcerpc' -T fields -E separator=/t -e tcp.stream \
    -e tcp.srcport -e tcp.dstport -e tcp.payload < "$work/base.pcapng" 2>/dev/null > "$work/payloads.tsv"
  python3 "$root/bench/dissector/make_capture.py" "$work/payloads.tsv" "$copies" "$big"
fi
frames=$(capinfos -c -M "$big" | awk '/Number of packets/ {print $NF}')
kms=$(KMS_PLUGIN=$plugin "$wrapper" -r - -Y kms -T fields -e frame.number < "$big" 2>/dev/null | wc -l)
echo "capture: $big ($frames frames, $kms KMS messages decoded by the plugin)"
echo "tshark: $(tshark --version 2>/dev/null | head -1); $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"

# one PLUGIN ARGS...: "wall cpu" seconds of one tshark run over the capture (output discarded)
one() {
  p=$1; shift
  KMS_PLUGIN=$p /usr/bin/time -f '%e %U %S' -o "$work/time.txt" "$wrapper" -r - "$@" < "$big" > /dev/null 2>&1
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$work/time.txt"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for mode in summary verbose; do
  args=""; [ $mode = verbose ] && args="-V"
  : > "$work/with.$mode"; : > "$work/without.$mode"
  r=0
  while [ $r -lt "$reps" ]; do
    # shellcheck disable=SC2086
    one none $args >> "$work/without.$mode"
    # shellcheck disable=SC2086
    one "$plugin" $args >> "$work/with.$mode"
    r=$((r + 1))
  done
  echo "== tshark -r FILE ${args:-(summary lines)}"
  for w in without with; do
    echo "  $w plugin (wall cpu): $(awk '{printf "%s/%s  ", $1, $2}' "$work/$w.$mode")"
  done
  wo_wall=$(cut -d' ' -f1 "$work/without.$mode" | median); w_wall=$(cut -d' ' -f1 "$work/with.$mode" | median)
  wo_cpu=$(cut -d' ' -f2 "$work/without.$mode" | median); w_cpu=$(cut -d' ' -f2 "$work/with.$mode" | median)
  echo "  median wall: $wo_wall s -> $w_wall s, ratio $(echo "scale=3; $w_wall / $wo_wall" | bc)"
  echo "  median cpu:  $wo_cpu s -> $w_cpu s, ratio $(echo "scale=3; $w_cpu / $wo_cpu" | bc)"
  # Each "with" run follows its "without" run: the median of the pairs' ratios cancels the machine's drift
  # (this VM's speed wanders by a quarter over minutes), which the ratio of medians does not.
  pair=$(paste -d' ' "$work/without.$mode" "$work/with.$mode" | awk '{printf "%.4f\n", $4 / $2}' | median)
  echo "  median of the per-pair cpu ratios: $pair"
done
