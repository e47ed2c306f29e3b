#!/usr/bin/env bash
# Installs the real Azure clients the API tests drive: azure-cli and the Azure SDK for Python
# (azure-identity, azure-mgmt-resource, azure-mgmt-network), in a virtualenv of their own.
# Idempotent; HYBRIDNET_AZ_VENV chooses the place (default /opt/hybridnet-az), and a venv that
# already answers `az version` is kept, so CI can cache the directory.
set -euo pipefail
VENV=${HYBRIDNET_AZ_VENV:-/opt/hybridnet-az}
if [[ -x $VENV/bin/az ]] && "$VENV/bin/python" -c 'import azure.mgmt.network, azure.identity, azure.mgmt.resource' 2>/dev/null; then
	exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/pip" install -q --disable-pip-version-check \
	'azure-cli>=2.60' azure-identity azure-mgmt-resource azure-mgmt-network
"$VENV/bin/az" version >/dev/null
