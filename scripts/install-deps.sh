#!/usr/bin/env bash
# Installs everything hybridnet's lab, tests and benchmarks need on a fresh Debian machine.
# Idempotent: packages already present are left alone. Services are never started by apt.
set -euo pipefail
[[ $EUID -eq 0 ]] || { echo "install-deps.sh must run as root" >&2; exit 1; }

PKGS=(iproute2 nftables iperf3 jq tcpdump iputils-ping procps psmisc
      strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins
      libstrongswan-extra-plugins python3 python3-matplotlib
      dnsmasq-base bind9-dnsutils bird2 frr tshark
      chromium fonts-dejavu-core prometheus)
# shellcheck source=scripts/apt.sh
source "$(dirname "$0")/apt.sh"
apt_install "${PKGS[@]}"
[[ -x /usr/lib/ipsec/charon ]] || { echo "strongSwan charon missing after install" >&2; exit 1; }
[[ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ]] ||
	{ echo "strongSwan kernel-libipsec plugin missing after install" >&2; exit 1; }
# the web view's test drives headless chromium over the DevTools protocol; `lab up --metrics`
# runs prometheus as the lab's own child process (never as the system service apt would start)
command -v chromium >/dev/null || { echo "chromium missing after install" >&2; exit 1; }
command -v prometheus >/dev/null || { echo "prometheus missing after install" >&2; exit 1; }
[[ -c /dev/net/tun ]] || { echo "/dev/net/tun missing: the gateway needs TUN" >&2; exit 1; }
