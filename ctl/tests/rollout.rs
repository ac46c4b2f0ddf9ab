//! `podswarmctl rollout …` against podswarmd's real router, link and gossip in this process
//! ([`support::TestNode`]): what a user sees (a golden transcript, `EXPECTORATE=overwrite`
//! regenerates it) and what each command leaves in the cluster state, checked from the node's
//! own read model: the template an undo writes, `spec.paused` after pause and resume, the
//! annotation a restart sets and the revision it makes, and nothing written by a refused undo.
//!
//! No reconciler runs here, so a Deployment's pods are the status records a test publishes (as
//! the nodes running them would), which is all rollout status is computed from.

// Helpers outside `#[test]` functions may unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use podswarm_api::{Phase, PodView};
use podswarm_manifest::Object;
use support::{TestNode, now};

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: localhost/busybox:1.36
          ports: [{name: http, containerPort: 8080}]
"#;

/// [`WEB`] with a new image, and why (the annotation `kubectl rollout history` shows).
fn web_v2() -> String {
    WEB.replace("busybox:1.36", "busybox:1.37").replace(
        "metadata: {name: web, namespace: default}",
        "metadata:\n  name: web\n  namespace: default\n  annotations: {kubernetes.io/change-cause: image busybox 1.37}",
    )
}

fn ctl(node: &TestNode, args: &[&str]) -> (i32, String, String) {
    support::ctl(&node.socket, args)
}

/// Runs each command line and appends what a user sees (exit status, stdout, stderr) to `out`.
fn transcript(node: &TestNode, out: &mut String, commands: &[&[&str]]) {
    for args in commands {
        support::transcribe(&node.socket, out, args);
    }
}

fn golden(name: &str, actual: &str) {
    expectorate::assert_contents(
        format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR")),
        actual,
    );
}

/// The Deployment `default/web` and the state version it was written at, as the node holds it.
fn web(node: &TestNode) -> (Deployment, u64) {
    let snapshot = node.api.model.settled();
    let entry = snapshot.entry("Deployment", "default", "web").unwrap();
    match &entry.object {
        Object::Deployment(d) => (d.clone(), entry.version),
        other => panic!("not a Deployment: {other:?}"),
    }
}

/// `default/web`'s revision records: revision → template.
fn revisions(node: &TestNode) -> BTreeMap<u64, PodTemplateSpec> {
    node.api
        .link
        .rollout_facts(now())
        .revisions
        .remove(&("default".to_owned(), "web".to_owned()))
        .unwrap_or_default()
        .into_values()
        .map(|r| (r.revision, r.template))
        .collect()
}

/// The names of `manifest`'s Deployment's pods (they carry its template's hash).
fn pod_names(manifest: &str) -> Vec<String> {
    let parsed = podswarm_manifest::parse(
        manifest,
        "web",
        &podswarm_manifest::Limits::default(),
        &podswarm_manifest::Policy::default(),
    )
    .unwrap();
    podswarm_manifest::pods_of(&parsed.objects[0].object)
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// A pod of `web` on this node, ready for 100 s, as the node running it reports it.
fn ready_pod(name: &str) -> PodView {
    let unit = format!("podswarm-default_{name}.service");
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
        labels: [("app".to_owned(), "web".to_owned())].into_iter().collect(),
        unit: unit.clone(),
        units: vec![unit],
        containers: Vec::new(),
        created: now() - 100,
        warnings: Vec::new(),
        ready_since: Some(now() - 100),
        terminating: false,
        moving: false,
        replaces: None,
    }
}

#[test]
fn rollout_status_waits_for_the_rollout_and_says_when_it_is_done() {
    let node = TestNode::start("node1", Ipv4Addr::LOCALHOST.into());
    node.apply(WEB);
    let waiting = "Waiting for deployment \"web\" rollout to finish: 0 out of 2 new replicas have been updated...\n";

    // Once, without waiting: the line, and success (kubectl's --watch=false).
    let (code, out, err) = ctl(&node, &["rollout", "status", "deploy/web", "--watch=false"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, waiting, ""));
    // Waiting with a limit: the line once (it does not change), then kubectl's timeout error.
    let (code, out, err) = ctl(
        &node,
        &["rollout", "status", "deploy/web", "--timeout", "1500ms"],
    );
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (1, waiting, "error: timed out waiting for the condition\n")
    );

    // Both pods ready (as their node publishes them): the rollout is complete.
    node.pods(pod_names(WEB).iter().map(|n| ready_pod(n)));
    node.wait_for("both pods available", |n| {
        n.api
            .model
            .current()
            .deployment("default", "web")
            .is_some_and(|s| s.available == 2 && s.up_to_date == 2)
    });
    let done = "deployment \"web\" successfully rolled out\n";
    for args in [
        &["rollout", "status", "deploy/web"][..],
        &["rollout", "status", "deployments", "web"],
        &[
            "rollout",
            "status",
            "web",
            "-n",
            "default",
            "--timeout",
            "30s",
        ],
    ] {
        let (code, out, err) = ctl(&node, args);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, done, ""),
            "{args:?}"
        );
    }

    // What it is not given.
    let (code, out, err) = ctl(&node, &["rollout", "status", "deploy/nope"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (1, "", "error: deployments.apps \"nope\" not found\n")
    );
    let (code, _, err) = ctl(&node, &["rollout", "status", "svc/web"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: rollout works on deployments: podswarmctl rollout SUBCOMMAND deploy/NAME\n"
        )
    );
}

#[test]
fn history_undo_pause_resume_and_restart_work_like_kubectl() {
    let node = TestNode::start("node1", Ipv4Addr::LOCALHOST.into());
    node.apply(WEB);
    node.apply(&web_v2());
    let before = revisions(&node);
    assert_eq!(before.keys().copied().collect::<Vec<_>>(), [1, 2]);
    let mut out = String::new();
    transcript(
        &node,
        &mut out,
        &[
            &["rollout", "history", "deploy/web"],
            &["rollout", "history", "deployment/web", "--revision", "1"],
            &["rollout", "history", "deploy/web", "--revision", "7"],
            &["rollout", "history", "deploy/nope"],
        ],
    );

    // An unknown revision: refused, and nothing written.
    let (object, version) = web(&node);
    transcript(
        &node,
        &mut out,
        &[&["rollout", "undo", "deploy/web", "--to-revision", "9"]],
    );
    assert_eq!(web(&node), (object, version));
    assert_eq!(revisions(&node), before);

    // Back to revision 1: the Deployment's template is revision 1's again, recorded as 3.
    transcript(
        &node,
        &mut out,
        &[
            &["rollout", "undo", "deploy/web", "--to-revision", "2"],
            &["rollout", "undo", "deploy/web", "--to-revision", "1"],
            &["rollout", "history", "deploy/web"],
        ],
    );
    let (object, _) = web(&node);
    assert_eq!(object.spec.template, before[&1]);
    assert_eq!(revisions(&node).get(&3), Some(&before[&1]));

    // Pause and resume round-trip `spec.paused`; while paused, undo and restart are refused.
    let (unpaused, _) = web(&node);
    transcript(
        &node,
        &mut out,
        &[
            &["rollout", "pause", "deploy/web"],
            &["rollout", "pause", "deploy/web"],
        ],
    );
    assert_eq!(web(&node).0.spec.paused, Some(true));
    transcript(
        &node,
        &mut out,
        &[
            &["rollout", "undo", "deploy/web"],
            &["rollout", "restart", "deploy/web"],
            &["rollout", "resume", "deploy/web"],
            &["rollout", "resume", "deploy/web"],
        ],
    );
    // The same object again, but for when podswarmctl last wrote it (its managedFields' time).
    let written = |mut d: k8s_openapi::api::apps::v1::Deployment| {
        d.metadata.managed_fields = None;
        d
    };
    assert_eq!(written(web(&node).0), written(unpaused));

    // Restart: a time stamp on the template, so a new revision (4); undo goes back to 3's.
    transcript(&node, &mut out, &[&["rollout", "restart", "deploy/web"]]);
    let (object, _) = web(&node);
    let stamp = object
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("kubectl.kubernetes.io/restartedAt"))
        .cloned()
        .unwrap_or_default();
    let parsed: k8s_openapi::jiff::Timestamp = stamp.parse().unwrap();
    assert!(
        stamp.ends_with('Z') && parsed.as_second().abs_diff(i64::try_from(now()).unwrap()) < 60,
        "{stamp}"
    );
    assert_eq!(revisions(&node).get(&4), Some(&object.spec.template));
    transcript(
        &node,
        &mut out,
        &[
            &["rollout", "history", "deploy/web"],
            &["rollout", "undo", "deploy/web"],
            &["rollout", "history", "deploy/web"],
        ],
    );
    assert_eq!(web(&node).0.spec.template, before[&1]);
    golden("rollout.txt", &out);
}
