//! Benchmark: how the rollout planner (`podswarm_daemon::rollout::expand`, a pure function that
//! every node runs on every reconcile pass and every rebuild of its read model) grows with the
//! cluster: time and peak memory of one call.
//!
//! The input is what a pass hands it: every applied object (Deployments of 10 replicas, built
//! through the manifest crate, each with a Service) and the facts `Link::rollout_facts` reads from
//! the replicated state (revision records, what each pod's status record says, the time). Two
//! cases per size:
//! - **settled:** every Deployment's pods are its template's, all available;
//! - **rolling:** one Deployment in ten is halfway through a rolling update of a new image (two
//!   revisions with live pods: six old available and one terminating, six new of which four are
//!   ready).
//!
//! One process per point, peak and time as in `bench/place.rs` (see `common`). The same process
//! then times the planner's input being read as podswarmd reads it before each pass
//! (`Link::rollout_facts`: the revision records and every status record, decoded from the
//! mirror), with a real `Link` following a real podswarm-gossip node that holds the same state
//! (`common::cluster`), and checks that it reads the facts planned from (time only: the process
//! has built and freed too much by then for a peak to mean anything).
//!
//! Run: `cargo bench -p podswarm-tests --bench rollout` (with `PODSWARM_BENCH_TSV=1`, also writes
//! `docs/scale/rollout.tsv` for `bench/plot.sh`; with `PODSWARM_BENCH_RUNS=3`, each figure is the
//! lowest of three runs).

#[path = "common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;

use common::{NAMESPACE, NOW, POINTS, Times};
use podswarm_daemon::rollout::{Facts, expand};
use podswarm_daemon::state::Entry;
use podswarm_manifest::Object;

const POINT_VAR: &str = "PODSWARM_BENCH_ROLLOUT_POINT";
const CASES: &[&str] = &["settled", "rolling"];

/// The pass's input: the objects as the local state holds them, and the facts; with the
/// Deployments they come from, to be held: dropped, their pods would leave free memory that the
/// call measured would reuse.
fn input(pods: usize, rolling: bool) -> (Vec<Entry>, Facts, Vec<common::Deployment>) {
    let (deployments, services) = common::cluster(pods, rolling);
    let mut facts = Facts {
        now: NOW,
        ..Facts::default()
    };
    let mut objects = Vec::new();
    for d in &deployments {
        let at = (NAMESPACE.to_owned(), d.object.name().to_owned());
        facts.revisions.insert(at.clone(), d.revisions.clone());
        facts.pods.insert(
            at,
            d.records
                .iter()
                .map(|(pod, seen)| (pod.name.clone(), *seen))
                .collect::<BTreeMap<_, _>>(),
        );
        objects.push(d.object.clone());
    }
    objects.extend(services);
    let entries = objects
        .into_iter()
        .zip(1..)
        .map(|(object, version): (Object, u64)| Entry {
            object,
            version,
            created: NOW - 3_600,
            updated: NOW - 3_600,
        })
        .collect();
    (entries, facts, deployments)
}

/// One point, in this process: prints `time_ms peak_kib pods under_way facts_ms`.
fn measure(nodes: usize, pods: usize, rolling: bool) {
    let (entries, facts, _held) = input(pods, rolling);
    let (answer, peak) = common::peak_kib(|| expand(&entries, &facts));
    assert!(
        answer.deployments.values().all(|s| s.total > 0),
        "the facts name every Deployment's pods"
    );
    let under_way = answer
        .deployments
        .values()
        .filter(|s| s.up_to_date < s.total)
        .count();
    let expected = if rolling {
        pods / common::REPLICAS / 10
    } else {
        0
    };
    assert_eq!(under_way, expected, "rollouts under way");
    let out = answer.pods.len();
    drop(answer);
    let ms = common::median_ms(pods, || expand(&entries, &facts));

    // The facts as podswarmd reads them before each pass, from its mirror of the same state:
    // they must be the ones planned from above.
    let node = common::cluster::Daemon::start(common::cluster::state(nodes, pods, rolling));
    let read = node.link.rollout_facts(NOW);
    assert!(
        read.revisions == facts.revisions && read.pods == facts.pods,
        "the link reads other facts from the state"
    );
    let facts_ms = common::median_ms(pods, || node.link.rollout_facts(NOW));
    println!("{ms:.3} {peak} {out} {under_way} {facts_ms:.3}");
}

fn main() {
    if let Some((nodes, pods, case)) = common::point(POINT_VAR) {
        measure(nodes, pods, case == "rolling");
        return;
    }
    println!(
        "| nodes | pods | case | expand: time (median) | peak memory | pods out | rollouts | facts: time (median) |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|");
    let mut times = Times::new();
    let mut rows = Vec::new();
    for &(nodes, pods) in POINTS {
        for case in CASES {
            let words = common::run_point(POINT_VAR, nodes, pods, case);
            let [ms, kib, out, under_way, facts_ms] = &words[..] else {
                panic!("unexpected answer from a point: {words:?}");
            };
            let (ms, mib) = (common::number(ms), common::number(kib) / 1024.0);
            let facts_ms = common::number(facts_ms);
            times.insert((nodes, pods, (*case).to_owned()), ms);
            times.insert((nodes, pods, format!("{case}, facts")), facts_ms);
            println!(
                "| {nodes} | {pods} | {case} | {ms:.1} ms | {mib:.1} MiB | {out} | {under_way} | {facts_ms:.1} ms |"
            );
            rows.push(vec![
                nodes.to_string(),
                pods.to_string(),
                (*case).to_owned(),
                format!("{ms:.3}"),
                format!("{mib:.2}"),
                format!("{facts_ms:.3}"),
            ]);
        }
    }
    common::print_growth(
        &times,
        &["settled", "rolling", "settled, facts", "rolling, facts"],
    );
    common::write_tsv(
        "rollout",
        &["nodes", "pods", "case", "ms", "peak_mib", "facts_ms"],
        &rows,
    );
}
