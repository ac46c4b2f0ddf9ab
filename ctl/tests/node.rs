//! `podswarmctl cordon|uncordon|drain|rebalance` against podswarmd's real router, link and gossip
//! in this process ([`support::TestNode`]): what a user sees (golden transcripts,
//! `EXPECTORATE=overwrite` regenerates them) and the maintenance state each command leaves, as
//! `get nodes` shows it, or the move records a rebalance writes.
//!
//! No reconciler runs here, so the node runs only the pods a test puts in, a drain has nothing
//! to wait for and no pod actually moves; moving pods away under load is the booted cluster
//! test's job (`tests/cluster.rs`).

// Helpers outside `#[test]` functions may unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod support;

use std::net::Ipv4Addr;

use podswarm_api::{Phase, PodView};
use podswarm_daemon::schedule::Placement;
use podswarm_manifest::PodInstance;
use serde_json::json;
use support::TestNode;

fn status(node: &TestNode) -> (bool, bool) {
    node.api
        .model
        .settled()
        .nodes()
        .iter()
        .find(|n| n.name == "node1")
        .map(|n| (n.cordoned, n.draining))
        .unwrap()
}

#[test]
fn cordon_drain_and_uncordon_work_like_kubectl() {
    let node = TestNode::start("node1", Ipv4Addr::LOCALHOST.into());
    let mut out = String::new();
    let mut run = |args: &[&str]| support::transcribe(&node.socket, &mut out, args);
    assert_eq!(run(&["cordon", "node1"]), 0);
    assert_eq!(status(&node), (true, false));
    assert_eq!(run(&["get", "nodes", "-o", "wide"]), 0);
    // Cordoning twice is no error, as in kubectl.
    assert_eq!(run(&["cordon", "node1"]), 0);
    assert_eq!(run(&["drain", "node1", "--timeout", "30s"]), 0);
    assert_eq!(status(&node), (true, true));
    assert_eq!(run(&["uncordon", "node1"]), 0);
    assert_eq!(status(&node), (false, false));
    // Bad input: an unknown node, a timeout that is no duration. Nothing changes.
    assert_eq!(run(&["drain", "node9"]), 1);
    assert_eq!(run(&["cordon", "node9"]), 1);
    assert_eq!(run(&["drain", "node1", "--timeout", "soon"]), 2);
    assert_eq!(status(&node), (false, false));
    assert_eq!(run(&["get", "nodes"]), 0);
    expectorate::assert_contents(
        format!("{}/tests/golden/node.txt", env!("CARGO_MANIFEST_DIR")),
        &out,
    );
}

/// Four replicas, all running on node1 (placed while it was alone).
const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: localhost/busybox:latest}]}
"#;

fn web_pods() -> Vec<PodInstance> {
    let manifest = podswarm_manifest::parse(
        WEB,
        "web",
        &podswarm_manifest::Limits::default(),
        &podswarm_manifest::Policy::default(),
    )
    .unwrap();
    podswarm_manifest::pods_of(&manifest.objects[0].object)
}

/// A ready pod of the Deployment on node1, as the reconciler reports it.
fn running(name: &str) -> PodView {
    PodView {
        namespace: "default".into(),
        name: name.into(),
        node: "node1".into(),
        ip: None,
        phase: Phase::Running,
        ready: true,
        restarts: 0,
        reason: None,
        message: None,
        owner: Some("Deployment/web".into()),
        labels: [("app".to_owned(), "web".to_owned())].into(),
        unit: format!("podswarm-default_{name}.service"),
        units: Vec::new(),
        containers: Vec::new(),
        created: support::now(),
        warnings: Vec::new(),
        ready_since: None,
        terminating: false,
        moving: false,
        replaces: None,
    }
}

/// The move records in the replicated state: `ns/pod` → the node it goes to.
fn move_records(node: &TestNode) -> Vec<(String, String)> {
    node.api
        .link
        .mirror()
        .entries
        .iter()
        .filter_map(|(k, (_, v))| {
            let pod = k.strip_prefix("moves/")?;
            Some((pod.to_owned(), v["to"].as_str()?.to_owned()))
        })
        .collect()
}

#[test]
fn rebalance_lists_and_starts_graceful_moves() {
    let node = TestNode::start("node1", Ipv4Addr::LOCALHOST.into());
    let mut out = String::new();
    let mut run = |args: &[&str]| support::transcribe(&node.socket, &mut out, args);
    // One node: nothing can move anywhere.
    assert_eq!(run(&["rebalance", "--dry-run"]), 0);
    assert_eq!(run(&["rebalance"]), 0);
    // Bad input: the flag takes no value, the command no argument.
    assert_eq!(run(&["rebalance", "--dry-run=yes"]), 2);
    assert_eq!(run(&["rebalance", "node2"]), 2);

    // The Deployment's four pods run on node1; node2 joins (a live member: a node record under
    // this process's gossip id, with a pod subnet) and gets none of them by itself.
    node.apply(WEB);
    let pods = web_pods();
    node.pods(pods.iter().map(|p| running(&p.name)));
    let id = node.api.link.mirror().self_id.unwrap();
    node.put(
        "nodes/node2",
        json!({"name": "node2", "nodeId": id, "address": "127.0.0.2"}),
    );
    node.put("subnets/node2", json!({"subnet": "10.244.1.0/24"}));
    let refs: Vec<&PodInstance> = pods.iter().collect();
    let on_node2 = |node: &TestNode| {
        node.api
            .link
            .place(&refs)
            .values()
            .filter(|p| **p == Placement::Node("node2".into()))
            .count()
    };
    assert_eq!(on_node2(&node), 0);
    assert_eq!(run(&["rebalance", "--dry-run"]), 0);
    assert_eq!(move_records(&node), [], "a dry run writes nothing");
    assert_eq!(run(&["rebalance"]), 0);
    let records = move_records(&node);
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records.iter().all(|(_, to)| to == "node2"), "{records:?}");
    // Every node now places those two on node2 (where node1 hands them over).
    assert_eq!(on_node2(&node), 2);
    // Moves under way count as made.
    assert_eq!(run(&["rebalance", "--dry-run"]), 0);
    expectorate::assert_contents(
        format!("{}/tests/golden/rebalance.txt", env!("CARGO_MANIFEST_DIR")),
        &out,
    );
}
