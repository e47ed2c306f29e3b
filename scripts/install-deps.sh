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
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	# keep apt from starting daemons (charon, iperf3) in the host namespace
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[[ -x /usr/lib/ipsec/charon ]] || { echo "strongSwan charon missing after install" >&2; exit 1; }
[[ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ]] ||
	{ echo "strongSwan kernel-libipsec plugin missing after install" >&2; exit 1; }
# the web view's test drives headless chromium over the DevTools protocol; `lab up --metrics`
# runs prometheus as the lab's own child process (never as the system service apt would start)
command -v chromium >/dev/null || { echo "chromium missing after install" >&2; exit 1; }
command -v prometheus >/dev/null || { echo "prometheus missing after install" >&2; exit 1; }
[[ -c /dev/net/tun ]] || { echo "/dev/net/tun missing: the gateway needs TUN" >&2; exit 1; }
