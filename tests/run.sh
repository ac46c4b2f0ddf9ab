#!/usr/bin/env bash
# The whole test suite, as the README gives it and as CI runs it.
#
# Layers (docs: ../shared/docs/TESTING.md): formatting and lints; unit, property and golden tests;
# integration tests against real Podman/Quadlet in a cached Debian trixie node tree. The node tree
# is built here when running as root; without root those tests say they are skipped, unless
# PODSWARM_REQUIRE_NODES=1 (CI), where skipping is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
    ./tests/nodes/build-image.sh
elif [ "${PODSWARM_REQUIRE_NODES:-0}" = 1 ]; then
    echo "tests/run.sh: PODSWARM_REQUIRE_NODES=1 needs root to build and use the node tree" >&2
    exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The node tests install the workspace binaries into booted nodes; the package test installs the
# .deb, so the packages are built (and linted) first.
cargo build --workspace --bins --locked
echo "== packages"
./packaging/build.sh
echo "== lintian"
lintian --fail-on error target/packages/*.deb
echo "== rpmlint"
rpmlint --file packaging/rpmlintrc target/packages/*.rpm
echo "== cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast
