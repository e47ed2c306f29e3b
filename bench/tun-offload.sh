#!/usr/bin/env bash
# TUN offload work (TSO split, receive coalescing): the gateway's own code against tun-rs's,
# on the same packets, in one run. No root or network needed. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p gateway --example tun_offload
exec target/release/examples/tun_offload
