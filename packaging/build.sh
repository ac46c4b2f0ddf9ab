#!/usr/bin/env bash
# Builds target/packages/podswarm_*.deb and podswarm-*.rpm: release binaries, man pages and
# completions from the binaries' own definitions, then cargo-deb and cargo-generate-rpm (installed
# from crates.io at the versions tests/setup.sh names, with cmake and a C compiler, when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}

# shellcheck source=tests/setup.sh
. tests/setup.sh packages

cargo build --release --locked --workspace --bins
rm -rf packaging/generated
"$target/release/gen-assets" packaging/generated
gzip -9n packaging/generated/man/*
mkdir -p target/packages
cargo deb --locked --no-build -p podswarm-daemon -o target/packages/
cargo generate-rpm -p daemon -o target/packages/ ${CARGO_TARGET_DIR:+--target-dir "$CARGO_TARGET_DIR"}
ls -l target/packages/
