#!/usr/bin/env bash
# The long runs of issue 11's faults, which CI runs in their short form: 50 rounds of `kill -9`
# of podswarmd (then the gossip burst and the power cut, as in CI), and a node isolated for 10
# minutes. Each test checks its invariant from systemd's and podman's own view; docs/RELIABILITY.md
# records the runs. About 25 minutes on 2 cores; run as root, after `tests/run.sh` has set the
# machine up (packages, node tree) once.
#
#   tests/soak.sh                      # everything
#   PODSWARM_CHAOS_SEED=N tests/soak.sh  # replay the chaos rounds of a seed it printed
set -euo pipefail
cd "$(dirname "$0")/.."

export PODSWARM_REQUIRE_NODES=1
export PODSWARM_CHAOS_ITERATIONS=${PODSWARM_CHAOS_ITERATIONS:-50}
export PODSWARM_ISOLATION_SECS=${PODSWARM_ISOLATION_SECS:-600}

cargo build --workspace --bins --locked
echo "== chaos: $PODSWARM_CHAOS_ITERATIONS rounds"
cargo nextest run -p podswarm-tests --test chaos --no-capture
echo "== a node isolated for $PODSWARM_ISOLATION_SECS s"
cargo nextest run -p podswarm-tests --test partition --no-capture an_isolated_node_rejoins
