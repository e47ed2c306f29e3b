#!/usr/bin/env bash
# Packet capture's cost, side by side in one run: TCP throughput VM to VM across the seed's
# tunnel (iperf3, one stream) with no capture, then with a gateway capture running on the
# sending gateway (Azure's default filterData: inner + ESP + IKE, 120 bytes per packet), in
# alternation, REPS times each. Prints a markdown table (median Gbit/s, ratio to no capture)
# and writes it to bench/results/capture.txt (BENCH_RESULTS to put it elsewhere).
#
#   cargo build --release -p hybridnet
#   sudo bench/capture.sh [REPS] [SECONDS]          # default 3 × 5 s: about a minute
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
SECS=${2:-5}
BIN=${HYBRIDNET_BIN:-$PWD/target/release/hybridnet}
[[ -x $BIN ]] || { echo "build it first: cargo build --release -p hybridnet" >&2; exit 1; }
OUT=${BENCH_RESULTS:-$PWD/bench/results}
STATE=$(mktemp -d /tmp/hn-bench-capture.XXXXXX)
export HYBRIDNET_STATE_DIR=$STATE
hn() { "$BIN" "$@"; }
cleanup() {
	hn lab down examples/hybrid-connection >/dev/null 2>&1 || true
	rm -rf "$STATE"
}
trap cleanup EXIT INT TERM
hn lab up --no-verify examples/hybrid-connection >/dev/null 2>&1
hn lab exec stackhub/vm1 -- iperf3 -s -D -p 5301 >/dev/null
sleep 1
run() {
	hn lab exec azure/vm1 -- iperf3 -c 10.2.1.4 -p 5301 -t "$SECS" -J |
		jq '.end.sum_received.bits_per_second / 1e9 * 100 | round / 100'
}
declare -a off on
for ((i = 0; i < REPS; i++)); do
	off+=("$(run)")
	hn lab capture start --site azure --gateway azure-gw -o "$STATE/c.pcapng" >/dev/null
	on+=("$(run)")
	hn lab capture stop --site azure --gateway azure-gw >"$STATE/stop.txt"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
m_off=$(median "${off[@]}")
m_on=$(median "${on[@]}")
mkdir -p "$OUT"
{
	echo "# packet capture cost — $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
	echo
	echo "| TCP one stream, ${SECS} s × ${REPS} | median Gbit/s | samples | ratio to no capture |"
	echo "|---|---|---|---|"
	echo "| no capture | $m_off | ${off[*]} | 1.00 |"
	echo "| gateway capture (inner + ESP + IKE, 120 B) | $m_on | ${on[*]} | $(awk -v a="$m_on" -v b="$m_off" 'BEGIN {printf "%.2f", a/b}') |"
	echo
	echo "last capture: $(cat "$STATE/stop.txt")"
} | tee "$OUT/capture.txt"
