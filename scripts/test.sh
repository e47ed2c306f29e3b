#!/usr/bin/env bash
# The whole test suite, as CI runs it (as root: the lab and interop tests build network
# namespaces, TUN devices and start strongSwan).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# the real Azure clients the API tests drive (azure-cli and the Python SDK, in a virtualenv)
bash scripts/install-az.sh

if ! cargo nextest --version >/dev/null 2>&1; then
	echo "installing cargo-nextest" >&2
	cargo install cargo-nextest --locked
fi

# A one-off build (CI's clean clone) gains nothing from the incremental cache but its disk.
if [[ -n "${CI:-}" ]]; then
	export CARGO_INCREMENTAL=0
fi
echo "disk before the build: $(df -h --output=avail . | tail -1 | tr -d ' ') free" >&2

# The interop and lab tests run the `hybridnet` binary; build it with the same profile first.
cargo build -p hybridnet --bin hybridnet
cargo nextest run --workspace --profile ci --no-run
echo "disk after the build: $(df -h --output=avail . | tail -1 | tr -d ' ') free, target $(du -sh target | cut -f1)" >&2
cargo nextest run --workspace --profile ci
