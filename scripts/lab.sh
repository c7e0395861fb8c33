#!/usr/bin/env bash
# The lab command: ferrolb end to end on this machine, in network namespaces.
# Installs whatever is missing (Debian packages, the pinned kubectl and helm), builds the
# release binaries when they are missing or older than the sources (cargo decides: nothing is
# rebuilt when they are current), then runs `ferrolb-e2e lab` with every option passed on:
#   scripts/lab.sh                 live table, failover demo, summary
#   scripts/lab.sh --once          plain progress lines (logs, CI)
#   scripts/lab.sh --help          every option of the lab
# Run as root on Debian with Rust installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "lab.sh: the lab builds network namespaces and starts routing daemons: run it as root" >&2
  exit 1
fi
command -v cargo >/dev/null 2>&1 || {
  echo "lab.sh: cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
}

scripts/install-test-deps.sh

echo "[lab] building the release binaries (only what changed)" >&2
cargo build --release --locked -p ferrolb-controller -p ferrolb-speaker -p ferrolb-e2e

# The lab's own tools (kubectl printed in --keep hints, helm for --install helm) are the
# pinned ones.
export PATH="${FERROLB_TOOLS_DIR:-/opt/ferrolb-tools}/bin:$PATH"
exec target/release/ferrolb-e2e lab "$@"
