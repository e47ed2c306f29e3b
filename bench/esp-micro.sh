#!/usr/bin/env bash
# ESP micro-benchmark: seal/open of 1400-byte inner packets on one core with the esp crate,
# next to bare aws-lc-rs AES-GCM / AES-CBC+HMAC on the same buffers. Each case runs REPEAT
# times (default 3); the table shows medians and the spread (min..max) of the esp/raw ratio,
# where 1.00 means the ESP framing (header, padding, replay window, counters) costs nothing.
# Usage: bench/esp-micro.sh [SECONDS_PER_CASE] [INNER_LEN]   (env REPEAT=n)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-1}"
len="${2:-1400}"
repeat="${REPEAT:-3}"
cargo build --quiet --release -p esp --example esp-micro
bin=target/release/examples/esp-micro
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "inner packet: $len bytes, $secs s per case, $repeat runs, single core"
for _ in $(seq "$repeat"); do "$bin" "$secs" "$len"; done | grep -v '^#' | python3 -c '
import sys, statistics
len_ = int(sys.argv[1])
rows = {}
order = []
for line in sys.stdin:
    cipher, op, esp, raw = line.rstrip("\n").split("\t")
    key = (cipher, op)
    if key not in rows:
        rows[key] = []
        order.append(key)
    rows[key].append((float(esp), float(raw)))
print("{:<31} {:<14} {:>9} {:>9} {:>9} {:>9} {:>8} {:>11}".format("transform", "op", "esp Mpps", "esp Gb/s", "raw Mpps", "raw Gb/s", "esp/raw", "spread"))
for key in order:
    r = rows[key]
    esp = statistics.median(e for e, _ in r)
    raw = statistics.median(w for _, w in r)
    ratios = [e / w for e, w in r]
    gb = lambda pps: pps * len_ * 8 / 1e9
    print(f"{key[0]:<31} {key[1]:<14} {esp/1e6:>9.3f} {gb(esp):>9.2f} {raw/1e6:>9.3f} {gb(raw):>9.2f} {statistics.median(ratios):>8.2f} {min(ratios):>5.2f}..{max(ratios):<5.2f}")
' "$len"
