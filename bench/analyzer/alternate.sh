#!/bin/bash
# Compares builds or options of kms-analyze on one capture by CPU time: the variants run in turn, round
# after round, so that the machine's slow minutes fall on all of them alike; the output goes to /dev/null
# (writing over the previous run's output file slows whichever run comes second). Needs perf.
#
# usage: bench/analyzer/alternate.sh CAPTURE ROUNDS "LABEL|COMMAND [OPTIONS]"...
# e.g.   bench/analyzer/alternate.sh /tmp/k256.pcap 12 "one|build/release/analyzer/kms-analyze" \
#            "pipeline|build/release/analyzer/kms-analyze --pipeline"
# Prints, per variant, the median and the least CPU time (task-clock, every thread) and the wall time of
# the median run.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,9p' "$0"; exit 2; }
capture=$1 rounds=$2
shift 2
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((round = 0; round < rounds; round++)); do
    for spec in "$@"; do
        label=${spec%%|*} cmd=${spec#*|}
        # shellcheck disable=SC2086  # the command and its options are meant to split
        perf stat -x, -e task-clock,duration_time $cmd --no-progress --format json "$capture" 2>&1 >/dev/null |
            awk -F, -v l="$label" '/task-clock/ {t = $1} /duration_time/ {w = $1 / 1e6} END {print l, t, w}' >>"$results"
    done
done
for spec in "$@"; do
    label=${spec%%|*}
    awk -v l="$label" '$1 == l {print $2, $3}' "$results" | sort -n |
        awk -v l="$label" '{c[NR] = $1; w[NR] = $2}
            END {m = int((NR + 1) / 2); printf "%-24s CPU median %5.0f ms, least %5.0f ms; wall of the median run %5.0f ms (%d runs)\n", l, c[m], c[1], w[m], NR}'
done
