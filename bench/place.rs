//! Benchmark: how placement (`podswarm_daemon::schedule::place`, a pure function that every node
//! runs on every reconcile pass) grows with the cluster: time and peak memory of one call.
//!
//! The pods are Deployments of 10 replicas built through the manifest crate (`parse`, `pods_of`),
//! as the reconciler gets them; one Deployment in ten asks for a zone (`nodeSelector`), another
//! one in ten for a host port. Nodes are ready, half in each zone. Two cases per size:
//! - **empty:** nothing runs yet (`current` empty): every pod is placed by the spread rules;
//! - **full:** every pod runs where a first call put it (`current` = that answer): every pod is
//!   kept, the common case of a pass in a settled cluster.
//!
//! Each point runs in its own process (this binary again, told which point by an environment
//! variable), so one point's memory does not hide another's: the peak is the growth of the
//! resident set during the first call (the kernel's high-water mark, reset just before through
//! `/proc/self/clear_refs`), the time the median of further calls.
//!
//! Run: `cargo bench -p podswarm-tests --bench place` (with `PODSWARM_BENCH_TSV=1`, also writes
//! `docs/scale/place.tsv` for `bench/plot.sh`; with `PODSWARM_BENCH_RUNS=3`, each figure is the
//! lowest of three runs).

#[path = "common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;

use common::{POINTS, Times};
use podswarm_daemon::schedule::{Placement, place};
use podswarm_manifest::PodInstance;

const POINT_VAR: &str = "PODSWARM_BENCH_PLACE_POINT";
const CASES: &[&str] = &["empty", "full"];

/// One point, in this process: prints `time_ms peak_kib placed`.
fn measure(nodes: usize, pods: usize, full: bool) {
    // The objects are held, not dropped: the call measured would reuse the memory they free.
    let objects = common::deployments(pods);
    let all = common::pods(&objects);
    let node_list = common::nodes(nodes);
    let refs: Vec<&PodInstance> = all.iter().collect();
    // The first answer is kept alive, so the call measured allocates anew rather than reusing
    // what dropping it would free.
    let first = if full {
        place(&refs, &node_list, &BTreeMap::new())
    } else {
        BTreeMap::new()
    };
    let current: BTreeMap<String, String> = first
        .iter()
        .filter_map(|(k, p)| match p {
            Placement::Node(n) => Some((k.clone(), n.clone())),
            Placement::Pending(_) => None,
        })
        .collect();

    let (answer, peak) = common::peak_kib(|| place(&refs, &node_list, &current));
    let placed = answer
        .values()
        .filter(|p| matches!(p, Placement::Node(_)))
        .count();
    if full {
        assert_eq!(answer, first, "a settled cluster must keep every pod");
    }
    drop(answer);

    let ms = common::median_ms(pods, || place(&refs, &node_list, &current));
    println!("{ms:.3} {peak} {placed}");
}

fn main() {
    if let Some((nodes, pods, case)) = common::point(POINT_VAR) {
        measure(nodes, pods, case == "full");
        return;
    }
    println!("| nodes | pods | current | time (median) | peak memory | placed |");
    println!("|---:|---:|---|---:|---:|---:|");
    let mut times = Times::new();
    let mut rows = Vec::new();
    for &(nodes, pods) in POINTS {
        for case in CASES {
            let words = common::run_point(POINT_VAR, nodes, pods, case);
            let [ms, kib, placed] = &words[..] else {
                panic!("unexpected answer from a point: {words:?}");
            };
            let (ms, mib) = (common::number(ms), common::number(kib) / 1024.0);
            times.insert((nodes, pods, (*case).to_owned()), ms);
            println!("| {nodes} | {pods} | {case} | {ms:.1} ms | {mib:.1} MiB | {placed} |");
            rows.push(vec![
                nodes.to_string(),
                pods.to_string(),
                (*case).to_owned(),
                format!("{ms:.3}"),
                format!("{mib:.2}"),
            ]);
        }
    }
    common::print_growth(&times, CASES);
    common::write_tsv("place", &["nodes", "pods", "case", "ms", "peak_mib"], &rows);
}
