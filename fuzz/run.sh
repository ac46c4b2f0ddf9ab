#!/usr/bin/env bash
# A bounded run of every fuzz target: FUZZ_SECONDS each (default 60), starting from the seeds kept
# in fuzz/seeds/<target> (plus ../shared/corpus for the manifest targets, where it exists). New
# inputs go to a working corpus outside the clone; a crash fails the run and leaves its input in
# fuzz/artifacts/<target>/ (rerun it with `cargo +nightly fuzz run <target> <file>`).
#
# cargo-fuzz needs a nightly toolchain. Without one (none can be downloaded here: only package
# registries are reachable) the run says SKIPPED and why, and exits 0; tests/run.sh counts it.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: no nightly toolchain (cargo-fuzz needs one; none can be downloaded here)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== cargo install cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/cache/podswarm-ci/fuzz-target}
work=${FUZZ_CORPUS_DIR:-/var/cache/podswarm-ci/fuzz-corpus}

targets=$(cargo +nightly fuzz list)
echo "== cargo fuzz build ($(echo $targets | wc -w) targets)"
cargo +nightly fuzz build
ran=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in $targets; do
    mkdir -p "$work/$t" "seeds/$t"
    dirs=("$work/$t" "$PWD/seeds/$t")
    case $t in
        manifest_parse | render)
            if [ -d ../../shared/corpus ]; then dirs+=("$(cd ../../shared/corpus && pwd)"); fi
            ;;
    esac
    echo "== fuzz $t (${seconds}s)"
    status=0
    cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz: $t FAILED (exit $status); inputs in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    ran=$((ran + 1))
done
echo "fuzz: $ran targets, ${seconds}s each: no crash"
