#!/usr/bin/env bash
# Draws the plots of docs/SCALE.md (PNG) from the TSV files the benchmarks write beside them:
#   place.tsv, rollout.tsv, state_size.tsv  PODSWARM_BENCH_TSV=1 cargo bench -p podswarm-tests
#                                           --bench place | rollout | state_size
#   booted.tsv                              cargo bench -p podswarm-tests --bench scale
# A missing file skips its plots, with a message.
#
# Usage: bench/plot.sh [DIR]    (default: docs/scale; the PNG files go to the same directory)
# The awk conditions given to `points` in single quotes name awk's fields ($1), not the shell's.
# shellcheck disable=SC2016
set -euo pipefail

cd "$(dirname "$0")/.."
dir=${1:-docs/scale}

if ! command -v gnuplot >/dev/null; then
    echo "installing gnuplot (Debian's gnuplot-nox)"
    apt-get install -y gnuplot-nox || { apt-get update && apt-get install -y gnuplot-nox; }
fi

# Steady gossip traffic per member predicted by SWIM: a constant whatever the cluster size (each
# member probes one other per period and gossips to a fixed fanout), at the level measured for
# idle podswarm-gossip members in docs/BENCHMARKS.md ("Cluster membership and state
# convergence": about 250 bytes per node per second at 10, 50 and 100 members).
swim_bps=${PODSWARM_SWIM_BPS:-250}

# The style every plot shares. Data files are TSV with a header line.
common='
set terminal pngcairo size 900,560 font ",11" noenhanced
set encoding utf8
set datafile separator "\t"
set grid
set key top left
set style data linespoints
'

have() {
    if [[ -f $dir/$1 ]]; then
        return 0
    fi
    echo "$dir/$1 not found: skipping its plots ($2)" >&2
    return 1
}

# Points "pods<TAB>value" of a TSV file ($1), in order of pods: the rows where the awk condition
# $2 holds (columns by number), the value of column $3, averaged over the rows of the same pods
# (the number of nodes does not enter the rollout planner at all, nor the state but for its node
# records).
points() {
    awk -F '\t' -v col="$3" "NR > 1 && ($2) { sum[\$2] += \$col; n[\$2]++ }
        END { for (p in sum) printf \"%s\\t%.9g\\n\", p, sum[p] / n[p] }" "$dir/$1" | sort -n
}

# The slope-1 reference (time ∝ pods) goes through the first row of `file` whose column 3 is
# `case`, so that the measured lines can be compared with it by eye.
anchor() {
    awk -F '\t' -v c="$2" 'NR > 1 && $3 == c { printf "%.9g", $4 / $2; exit }' "$dir/$1"
}

if have place.tsv "PODSWARM_BENCH_TSV=1 cargo bench -p podswarm-tests --bench place"; then
    a=$(anchor place.tsv full)
    gnuplot <<EOF
$common
\$empty50 << END
$(points place.tsv '$1 == 50 && $3 == "empty"' 4)
END
\$empty500 << END
$(points place.tsv '$1 == 500 && $3 == "empty"' 4)
END
\$full50 << END
$(points place.tsv '$1 == 50 && $3 == "full"' 4)
END
\$full500 << END
$(points place.tsv '$1 == 500 && $3 == "full"' 4)
END
set output "$dir/place.png"
set title "schedule::place: time of one call (median)"
set logscale xy
set xlabel "pods"
set ylabel "ms"
plot \$empty50 title "nothing running, 50 nodes" lw 2, \
     \$empty500 title "nothing running, 500 nodes" lw 2, \
     \$full50 title "settled, 50 nodes" lw 2, \
     \$full500 title "settled, 500 nodes" lw 2, \
     $a * x with lines dt 2 lc rgb "gray40" title "∝ pods (slope 1)"
EOF
    echo "wrote $dir/place.png"
fi

if have rollout.tsv "PODSWARM_BENCH_TSV=1 cargo bench -p podswarm-tests --bench rollout"; then
    a=$(anchor rollout.tsv settled)
    gnuplot <<EOF
$common
\$settled << END
$(points rollout.tsv '$3 == "settled"' 4)
END
\$rolling << END
$(points rollout.tsv '$3 == "rolling"' 4)
END
\$facts << END
$(points rollout.tsv '$3 == "rolling"' 6)
END
set output "$dir/rollout.png"
set title "Rollout planner, per pass: time of one call (median)"
set logscale xy
set xlabel "pods"
set ylabel "ms"
plot \$settled title "rollout::expand, settled" lw 2, \
     \$rolling title "rollout::expand, 10% of Deployments rolling" lw 2, \
     \$facts title "its input: Link::rollout_facts (10% rolling)" lw 2, \
     $a * x with lines dt 2 lc rgb "gray40" title "∝ pods (slope 1)"
EOF
    echo "wrote $dir/rollout.png"
fi

if have state_size.tsv "PODSWARM_BENCH_TSV=1 cargo bench -p podswarm-tests --bench state_size"; then
    # Columns by name, so the plot survives a new column.
    col() { head -1 "$dir/state_size.tsv" | tr '\t' '\n' | grep -nx "$1" | cut -d: -f1; }
    mib() { points state_size.tsv 1 "$(col "$1")" | awk -F '\t' '{ printf "%s\t%.9g\n", $1, $2 / 1048576 }'; }
    gnuplot <<EOF
$common
\$state << END
$(mib state_bytes)
END
\$join << END
$(mib join_bytes)
END
\$one << END
$(mib lack_one_bytes)
END
\$digest << END
$(mib digest_bytes)
END
\$insync << END
$(mib insync_bytes)
END
set output "$dir/state_size.png"
set title "Replicated state, and one anti-entropy exchange (bytes both ways, sealed)"
set logscale xy
set xlabel "pods"
set ylabel "MiB"
set key right center
plot \$state title "the whole state (replica file)" lw 2, \
     \$join title "exchange with a node that joins" lw 2, \
     \$one title "exchange, one status record missing" lw 2, \
     \$digest title "one digest (every key and version)" lw 2, \
     \$insync title "exchange in sync" lw 2, \
     64 with lines dt 2 lc rgb "red" title "frame limit (64 MiB)"
EOF
    echo "wrote $dir/state_size.png"
fi

if have booted.tsv "cargo bench -p podswarm-tests --bench scale: the booted-cluster plots come once it has run"; then
    gnuplot <<EOF
$common
set xlabel "nodes (N)"
set xrange [0:*]
set offsets 0, graph 0.05, 0, 0
set key below

set output "$dir/booted-times.png"
set title "Booted cluster: times (s)"
set ylabel "s"
plot "$dir/booted.tsv" skip 1 using 1:2 title "all N nodes Ready" lw 2, \
     "" skip 1 using 1:3 title "100 pods running" lw 2, \
     "" skip 1 using 1:9 title "20% of nodes lost → 100 pods again" lw 2, \
     "" skip 1 using 1:10 title "partition healed → all Ready, 100 pods" lw 2, \
     "" skip 1 using 1:11 title "new pod → every node's DNS" lw 2

set output "$dir/booted-gossip.png"
set title "Booted cluster: gossip traffic per node, idle"
set ylabel "bytes sent per node per second"
set yrange [0:*]
plot "$dir/booted.tsv" skip 1 using 1:7 title "measured" lw 2, \
     $swim_bps with lines dt 2 lc rgb "gray40" title "SWIM prediction: constant per member ($swim_bps B/s, docs/BENCHMARKS.md)"
set autoscale y

set output "$dir/booted-resources.png"
set title "Booted cluster: podswarm's four processes per node, idle"
set ylabel "RSS (MiB)"
set y2label "CPU (s per minute)"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
plot "$dir/booted.tsv" skip 1 using 1:6 axes x1y1 title "RSS (MiB)" lw 2, \
     "" skip 1 using 1:8 axes x1y2 title "CPU (s per minute)" lw 2
EOF
    echo "wrote $dir/booted-times.png, $dir/booted-gossip.png, $dir/booted-resources.png"
fi
