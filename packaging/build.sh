#!/usr/bin/env bash
# Builds target/packages/podswarm_*.deb and podswarm-*.rpm: release binaries, man pages and
# completions from the binaries' own definitions, then cargo-deb and cargo-generate-rpm (installed
# from crates.io at the versions tests/setup.sh names, with cmake and a C compiler, when missing).
# Also target/packages/upgrade/podswarm_<version>+upgrade1_*.deb: the same package at a higher
# version, which the package test installs over a running node to check upgrades.
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
deb=$(cargo deb --locked --no-build -p podswarm-daemon -o target/packages/)
echo "$deb"
# The upgrade test's newer package: the same files at the version `<this one's>+upgrade1`, which
# dpkg sorts right after it. In a directory of its own so that `target/packages/podswarm_*.deb`
# (the README's install command, lintian in tests/run.sh) still names the one real package; made
# anew so the test never finds a stale one. --fast: a test artifact, not worth 15 s of xz on 2
# cores.
version=${deb##*/podswarm_}
version=${version%_*}+upgrade1
# The file name leaves out an epoch, which would make this version the lower one.
if command -v dpkg-deb >/dev/null && ! dpkg --compare-versions "$version" gt "$(dpkg-deb -f "$deb" Version)"; then
    echo "build.sh: $version does not sort after $(dpkg-deb -f "$deb" Version)" >&2
    exit 1
fi
rm -rf target/packages/upgrade
cargo deb --locked --no-build --fast -p podswarm-daemon --deb-version "$version" -o target/packages/upgrade/
cargo generate-rpm -p daemon -o target/packages/ ${CARGO_TARGET_DIR:+--target-dir "$CARGO_TARGET_DIR"}
ls -lR target/packages/
