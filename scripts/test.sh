#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every check and test.
# Run as root on Debian with Rust installed: network tests build namespaces and start routing
# daemons. Without root they are skipped with a printed reason, unless CI is set, where they
# fail loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
  scripts/install-test-deps.sh
else
  echo "test.sh: not root: skipping package installation; network tests will be skipped" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo build"
# The end-to-end tests run ferrolb-controller, ferrolb-speaker and ferrolb-e2e as processes in
# network namespaces: build every binary first.
cargo build --workspace --locked

echo "== image"
# e2e/tests/image.rs checks the shipped image (unpacked, its binaries run as its user, a lab
# on them): build it first. buildah's store needs root.
if [ "$(id -u)" -eq 0 ]; then
  scripts/build-image.sh
else
  echo "test.sh: not root: not building the image; its tests will be skipped" >&2
fi

echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
