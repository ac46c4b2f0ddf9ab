//! `podswarm-units` against real systemd 257 on a booted node, over the node's system bus.

// Test helpers, outside #[test] functions: a panic is the failure report here too.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use podswarm_tests::node::{BootOptions, Node, nodes_or_skip};
use podswarm_units::{DbusSystemd, JobResult, Systemd};

async fn connect(node: &Node) -> DbusSystemd {
    let conn = zbus::connection::Builder::address(node.bus_address().as_str())
        .build()
        .await
        .unwrap_or_else(|e| panic!("cannot reach the node's bus: {e}"));
    DbusSystemd::with_connection(conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn units_drive_real_systemd() {
    if nodes_or_skip("units_drive_real_systemd").is_none() {
        return;
    }
    let node = Node::boot("units", &BootOptions::default());
    let systemd = connect(&node).await;
    let mut changes = systemd.changes();

    // Quadlet units exist only once a reload has run the generator; a file Quadlet rejects (here:
    // no Image=) yields no unit at all, which is how podswarm must recognise a rejection.
    node.write(
        "/etc/containers/systemd/podswarm-q.container",
        b"[Container]\nImage=localhost/busybox:latest\n",
    );
    node.write(
        "/etc/containers/systemd/podswarm-bad.container",
        b"[Container]\nExec=/bin/true\n",
    );
    let before = systemd.unit_state("podswarm-q.service").await.unwrap();
    assert_eq!(
        before.load_state, "not-found",
        "Quadlet units appear only after a reload"
    );
    systemd.reload().await.unwrap();
    assert_eq!(systemd.reload_count(), 1);
    let after = systemd.unit_state("podswarm-q.service").await.unwrap();
    assert_eq!(
        (after.load_state.as_str(), after.active_state.as_str()),
        ("loaded", "inactive")
    );
    let bad = systemd.unit_state("podswarm-bad.service").await.unwrap();
    assert_eq!(bad.load_state, "not-found", "{bad:?}");

    node.write(
        "/etc/systemd/system/podswarm-probe.service",
        b"[Service]\nExecStart=/bin/sleep infinity\n",
    );

    assert_eq!(
        systemd.start("podswarm-probe.service").await.unwrap(),
        JobResult::Done
    );
    let running = systemd.unit_state("podswarm-probe.service").await.unwrap();
    assert_eq!(
        (running.active_state.as_str(), running.sub_state.as_str()),
        ("active", "running")
    );
    assert_eq!(running.invocation_id.len(), 32, "{running:?}");

    // The change feed names the unit.
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(name) = changes.recv().await
                && name == "podswarm-probe.service"
            {
                return;
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "no change event for the unit");

    let listed = systemd.list_units(&["podswarm-*"]).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|u| u.name == "podswarm-probe.service" && u.active_state == "active"),
        "{listed:?}"
    );

    assert_eq!(
        systemd.restart("podswarm-probe.service").await.unwrap(),
        JobResult::Done
    );
    let restarted = systemd.unit_state("podswarm-probe.service").await.unwrap();
    assert_ne!(
        restarted.invocation_id, running.invocation_id,
        "a restart gives a new invocation"
    );

    // Many jobs at once: every one is awaited through JobRemoved, none is lost.
    for i in 0..20 {
        node.write(
            &format!("/etc/systemd/system/podswarm-many{i}.service"),
            b"[Service]\nExecStart=/bin/sleep infinity\n",
        );
    }
    systemd.reload().await.unwrap();
    let names: Vec<String> = (0..20)
        .map(|i| format!("podswarm-many{i}.service"))
        .collect();
    let results = futures_join(names.iter().map(|n| systemd.start(n))).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(JobResult::Done))),
        "{results:?}"
    );

    // A failing unit reports its job result and its service result.
    node.write(
        "/etc/systemd/system/podswarm-fails.service",
        b"[Service]\nType=oneshot\nExecStart=/bin/false\n",
    );
    systemd.reload().await.unwrap();
    assert_eq!(
        systemd.start("podswarm-fails.service").await.unwrap(),
        JobResult::Failed
    );
    let failed = systemd.unit_state("podswarm-fails.service").await.unwrap();
    assert_eq!(
        (
            failed.active_state.as_str(),
            failed.result.as_str(),
            failed.exec_main_status
        ),
        ("failed", "exit-code", 1)
    );
    systemd
        .reset_failed("podswarm-fails.service")
        .await
        .unwrap();
    let reset = systemd.unit_state("podswarm-fails.service").await.unwrap();
    assert_eq!(reset.active_state, "inactive");

    assert_eq!(
        systemd.stop("podswarm-probe.service").await.unwrap(),
        JobResult::Done
    );
    let stopped = systemd.unit_state("podswarm-probe.service").await.unwrap();
    assert_eq!(stopped.active_state, "inactive");
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}
