#!/usr/bin/env bash
# Installs the real Azure clients the API tests drive, each in a virtualenv of its own:
# - azure-cli (latest pinned) and the Azure SDK for Python (azure-identity, azure-mgmt-resource,
#   azure-mgmt-network) in HYBRIDNET_AZ_VENV (default /opt/hybridnet-az);
# - azure-cli 2.66 LTS in HYBRIDNET_AZ_LTS_VENV (default /opt/hybridnet-az-lts): the release
#   Microsoft names for Azure Stack Hub, which still has the hybrid API profiles
#   (`az cloud register --profile 2019-03-01-hybrid`; az 2.73 and later dropped them).
# Idempotent: a venv that already holds its pinned versions is kept, so CI can cache the
# directories. Works with pyenv's or Debian's python3 (then with python3-venv).
set -euo pipefail

# ensure_venv DIR CHECK_IMPORTS PACKAGE==VERSION…: (re)creates DIR unless it has the first
# package's pinned version and CHECK_IMPORTS (a Python statement) runs in it.
ensure_venv() {
	local venv=$1 check=$2
	shift 2
	if [[ -x $venv/bin/pip ]] && "$venv/bin/pip" freeze 2>/dev/null | grep -qx "$1" &&
		"$venv/bin/python" -c "$check" 2>/dev/null; then
		return 0
	fi
	rm -rf "$venv"
	if ! python3 -m venv "$venv" 2>/dev/null; then
		# Debian's python3 makes virtualenvs only with python3-venv
		rm -rf "$venv"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
		python3 -m venv "$venv"
	fi
	"$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
	"$venv/bin/pip" install -q --disable-pip-version-check "$@"
	"$venv/bin/az" version >/dev/null
}

# Pinned: the tests assert what these versions send and accept.
ensure_venv "${HYBRIDNET_AZ_VENV:-/opt/hybridnet-az}" \
	'import azure.mgmt.network, azure.identity, azure.mgmt.resource' \
	azure-cli==2.91.0 azure-identity==1.27.0 azure-mgmt-resource==24.0.0 azure-mgmt-network==33.1.0
ensure_venv "${HYBRIDNET_AZ_LTS_VENV:-/opt/hybridnet-az-lts}" 'import azure.cli.core' azure-cli==2.66.2
