#!/usr/bin/env bash
# The whole test suite, as the README gives it and as CI runs it (.ci/run adds only CI settings).
#
# Layers (docs: ../shared/docs/TESTING.md): formatting and lints; unit, property and golden tests;
# integration tests against real Podman/Quadlet in a cached Debian trixie node tree and on booted
# nodes. tests/setup.sh first installs whatever this machine lacks (as root: Debian packages and
# the node tree too). Without root the node tests print `SKIPPED <test>: <reason>` and pass, unless
# PODSWARM_REQUIRE_NODES=1 (CI), where skipping is a failure; the closing lines count the skips.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ] && [ "${PODSWARM_REQUIRE_NODES:-0}" = 1 ]; then
    echo "tests/run.sh: PODSWARM_REQUIRE_NODES=1 needs root to build and use the node tree" >&2
    exit 1
fi
# shellcheck source=tests/setup.sh
. tests/setup.sh test
# The kubectl clients the Kubernetes API tests run (ctl/tests/kubectl.rs).
PODSWARM_KUBECTLS=$(podswarm_kubectls)
export PODSWARM_KUBECTLS

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

# nextest shows a passing test's output only on request; its JUnit report, written where only this
# run looks (a tool config file: the repository's own .config/nextest.toml still wins), keeps it,
# so the `SKIPPED ` lines of tests that passed by skipping can be counted.
report=$(mktemp -d /tmp/podswarm-tests.XXXXXX)
trap 'rm -rf "$report"' EXIT
cat >"$report/nextest.toml" <<EOF
[profile.default.junit]
path = "$report/junit.xml"
store-success-output = true
EOF
echo "== cargo nextest"
status=0
cargo nextest run --workspace --locked --no-fail-fast --tool-config-file "podswarm-run:$report/nextest.toml" || status=$?

# A bounded run of every fuzz target from the seeds kept in fuzz/seeds (nightly; says SKIPPED
# without one). FUZZ_SECONDS=0 leaves it out.
if [ "${FUZZ_SECONDS:-45}" != 0 ]; then
    FUZZ_SECONDS=${FUZZ_SECONDS:-45} ./fuzz/run.sh || status=1
fi

echo "== summary"
if [ ! -s "$report/junit.xml" ]; then
    echo "no JUnit report from nextest (exit status $status): nothing to count"
    exit "$status"
fi
# One <testcase> per test; one that passed after printing `SKIPPED <test>: <reason>` (to stdout or
# stderr) is counted as skipped, with its reason.
awk '
    function unxml(s) {
        gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&quot;/, "\"", s); gsub(/&apos;/, "\047", s)
        gsub(/&amp;/, "\\&", s)
        return s
    }
    /<testcase / { n++ }
    /<failure|<error/ { if (n) failed[n] = 1 }
    {
        line = $0
        sub(/^.*<system-(out|err)>/, "", line)
        if (n && !(n in reason) && line ~ /^SKIPPED /) {
            r = substr(line, 9)
            if (i = index(r, ": ")) r = substr(r, i + 2)
            reason[n] = unxml(r)
        }
    }
    END {
        for (t = 1; t <= n; t++) {
            if (t in failed) { f++; continue }
            if (!(t in reason)) { p++; continue }
            s++
            r = reason[t]
            if (!(r in count)) order[++reasons] = r
            count[r]++
        }
        if (s) {
            printf "NOT A FULL RUN: %d test%s skipped (booted-node tests need root and the node tree; CI runs them all with PODSWARM_REQUIRE_NODES=1):\n", s, s == 1 ? " was" : "s were"
            for (k = 1; k <= reasons; k++) printf "  %4d skipped: %s\n", count[order[k]], order[k]
        }
        printf "tests: %d passed, %d failed, %d skipped\n", p, f, s
    }
' "$report/junit.xml"
exit "$status"
