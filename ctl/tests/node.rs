//! `podswarmctl cordon|uncordon|drain` against podswarmd's real router, link and gossip in this
//! process ([`support::TestNode`]): what a user sees (a golden transcript, `EXPECTORATE=overwrite`
//! regenerates it) and the maintenance state each command leaves, as `get nodes` shows it.
//!
//! No reconciler runs here, so the node runs no pod and a drain has nothing to wait for; moving
//! pods away under load is the booted cluster test's job (`tests/cluster.rs`).

// Helpers outside `#[test]` functions may unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod support;

use std::net::Ipv4Addr;

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
    let mut run = |args: &[&str]| {
        let (code, stdout, stderr) = support::ctl(&node.socket, args);
        out.push_str(&format!(
            "$ podswarmctl {}\n[exit {code}]\n--- stdout\n{stdout}--- stderr\n{stderr}\n",
            args.join(" ")
        ));
        code
    };
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
