#!/usr/bin/env bash
# Installs the two WireGuard peers that bench/run measures hybridnet against, besides strongSwan
# (bench/README.md, "The WireGuard peers"). Not part of the test suite (scripts/install-deps.sh is):
# boringtun is built from source, which takes minutes on 2 cores, and only the benchmark needs it.
#   wireguard-go + wg  Debian's packages wireguard-go and wireguard-tools
#   boringtun-cli      crates.io's boringtun-cli, `cargo install --locked` into /opt/boringtun
#                      (skipped when /opt/boringtun/bin/boringtun-cli is there)
# Idempotent. Needs scripts/install-deps.sh first (iperf3, strongSwan, matplotlib) for a full run.
set -euo pipefail
[[ $EUID -eq 0 ]] || { echo "install-bench-deps.sh must run as root" >&2; exit 1; }

# shellcheck source=scripts/apt.sh
source "$(dirname "$0")/apt.sh"
# wireguard-tools ships wg-quick@ units: never started (apt.sh keeps services down)
apt_install wireguard-go wireguard-tools
command -v wireguard-go >/dev/null || { echo "wireguard-go missing after install" >&2; exit 1; }
command -v wg >/dev/null || { echo "wg (wireguard-tools) missing after install" >&2; exit 1; }

BORINGTUN_ROOT=/opt/boringtun
if [[ ! -x $BORINGTUN_ROOT/bin/boringtun-cli ]]; then
	command -v cargo >/dev/null || { echo "cargo missing: boringtun-cli is built from crates.io" >&2; exit 1; }
	echo "building boringtun-cli from crates.io into $BORINGTUN_ROOT (a few minutes)" >&2
	# a target directory of its own, removed afterwards: the build leaves only the binary
	build=$(mktemp -d /tmp/boringtun-build.XXXXXX)
	trap 'rm -rf "$build"' EXIT
	CARGO_TARGET_DIR=$build cargo install --locked boringtun-cli --root "$BORINGTUN_ROOT"
fi
"$BORINGTUN_ROOT/bin/boringtun-cli" --version >/dev/null ||
	{ echo "boringtun-cli at $BORINGTUN_ROOT/bin does not run" >&2; exit 1; }
[[ -c /dev/net/tun ]] || { echo "/dev/net/tun missing: both peers need TUN" >&2; exit 1; }
