#!/usr/bin/env bash
# Installs the real Azure clients the API tests drive: azure-cli and the Azure SDK for Python
# (azure-identity, azure-mgmt-resource, azure-mgmt-network), in a virtualenv of their own.
# Idempotent; HYBRIDNET_AZ_VENV chooses the place (default /opt/hybridnet-az), and a venv that
# already holds the pinned versions is kept, so CI can cache the directory. Works with pyenv's or
# Debian's python3 (then with python3-venv).
set -euo pipefail
VENV=${HYBRIDNET_AZ_VENV:-/opt/hybridnet-az}
# Pinned: the tests assert what these versions send and accept (az 2.91 has no hybrid profiles).
PKGS=(azure-cli==2.91.0 azure-identity==1.27.0 azure-mgmt-resource==24.0.0 azure-mgmt-network==33.1.0)
if [[ -x $VENV/bin/pip ]] && "$VENV/bin/pip" freeze 2>/dev/null | grep -qx 'azure-cli==2.91.0' &&
	"$VENV/bin/python" -c 'import azure.mgmt.network, azure.identity, azure.mgmt.resource' 2>/dev/null; then
	exit 0
fi
rm -rf "$VENV"
if ! python3 -m venv "$VENV" 2>/dev/null; then
	# Debian's python3 makes virtualenvs only with python3-venv
	rm -rf "$VENV"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
	python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/pip" install -q --disable-pip-version-check "${PKGS[@]}"
"$VENV/bin/az" version >/dev/null
