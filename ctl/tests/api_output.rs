//! podswarmctl's output against podswarmd's real API router ([`support::TestNode`]: real
//! gossip, state, link, read model and router in this process, on a temporary Unix socket):
//! kubectl-shaped tables and every API command's transcript (golden files, compared with
//! `expectorate`; `EXPECTORATE=overwrite` regenerates), API errors as one clear line, and
//! `delete -f` of a file holding a Namespace and its objects, which the API cascades.
//!
//! Because the answers come from the daemon's own handlers, a change to what the daemon says
//! shows up here as a changed golden file or a failed read, never as a silently empty column.

// Helpers outside `#[test]` functions may unwrap too: a panic there is the failure report
// (clippy's allow-unwrap-in-tests only sees test functions and `#[cfg(test)]` modules).
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod support;

use std::net::Ipv4Addr;

use podswarm_api::{ContainerView, Phase, PodReason, PodView};
use serde_json::json;
use support::{TestNode, ctl, now};

/// A Deployment and a Service that selects its pods: port 80 by the containers' port name,
/// port 53 by a name no container has (so it has no endpoints).
const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web, tier: front}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
        - name: app
          image: localhost/busybox:latest
          ports: [{name: http, containerPort: 8080}]
"#;

const WEB_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web, tier: front}
  ports:
    - {name: http, port: 80, targetPort: http}
    - {name: dns, port: 53, protocol: UDP, targetPort: dns}
"#;

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  type: NodePort
  ports: [{port: 5432, protocol: TCP}]
"#;

const INGRESSES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  ingressClassName: podswarm
  rules:
    - host: a.example
      http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
    - {}
  tls: [{secretName: a, hosts: [a.example]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bare, namespace: default}
spec: {}
"#;

/// The names of the Deployment's pods (they carry its template's hash).
fn web_pods() -> Vec<String> {
    let manifest = podswarm_manifest::parse(
        WEB,
        "web",
        &podswarm_manifest::Limits::default(),
        &podswarm_manifest::Policy::default(),
    )
    .unwrap();
    podswarm_manifest::pods_of(&manifest.objects[0].object)
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// A single-container pod on `node1` as the reconciler reports it.
fn pod(ns: &str, name: &str, age: u64, state: Option<&str>) -> PodView {
    let unit = format!("podswarm-{ns}_{name}.service");
    PodView {
        namespace: ns.into(),
        name: name.into(),
        node: "node1".into(),
        ip: None,
        phase: Phase::Running,
        ready: false,
        restarts: 0,
        reason: None,
        message: None,
        owner: None,
        labels: [("app", "web"), ("tier", "front")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        unit: unit.clone(),
        units: vec![unit.clone()],
        containers: state
            .map(|state| ContainerView {
                name: "app".into(),
                podman_name: format!("podswarm-{ns}_{name}"),
                image: "localhost/busybox:latest".into(),
                unit,
                state: state.into(),
                restarts: 0,
            })
            .into_iter()
            .collect(),
        created: now() - age,
        warnings: Vec::new(),
        ready_since: None,
        terminating: false,
        moving: false,
        replaces: None,
    }
}

/// node1 (this node) with the web Deployment's two pods (one crash-looping), a pod in `shop`
/// waiting for a Secret, Services, Ingresses, a second node that is down, and three tokens.
fn cluster() -> (TestNode, Vec<String>) {
    let node = TestNode::start("node1", Ipv4Addr::new(192, 0, 2, 10).into());
    // Ages are mid-way through what they print as (7m, 6m …), so a slow run prints the same.
    node.at(450).apply(WEB_SERVICE);
    node.at(390).apply(WEB);
    node.at(90000).apply(SHOP);
    node.at(0).apply(INGRESSES);
    let names = web_pods();
    let owned = |p: PodView| PodView {
        owner: Some("Deployment/web".into()),
        ..p
    };
    node.pods([
        owned(PodView {
            ip: Some("10.244.0.2".into()),
            ready: true,
            warnings: vec!["spec.affinity is not supported and is ignored".into()],
            ..pod("default", &names[0], 330, Some("active/running"))
        }),
        owned({
            let mut p = PodView {
                ip: Some("10.244.0.3".into()),
                restarts: 4,
                reason: Some(PodReason::CrashLoopBackOff),
                message: Some("container app exited with status 1; restarting (4 restarts)".into()),
                ..pod("default", &names[1], 7300, Some("activating/auto-restart"))
            };
            // A pod's restarts are its containers' (the reconciler sums them).
            p.containers[0].restarts = 4;
            p
        }),
        PodView {
            phase: Phase::Pending,
            reason: Some(PodReason::ContainerCreating),
            message: Some("waiting for Secret shop/db".into()),
            units: Vec::new(),
            ..pod("shop", "db-x-0", 90000, None)
        },
    ]);
    node.put("subnets/node1", json!({"subnet": "10.244.0.0/24"}));
    node.put(
        "nodes/node2",
        json!({"name": "node2", "nodeId": "00000000000000b2", "address": "192.0.2.11", "labels": {}}),
    );
    node.put("subnets/node2", json!({"subnet": "10.244.1.0/24"}));
    let t = now();
    for (id, description, created, expires) in [
        ("a1b2", "ci", t - 3990, Some(t + 88200)),
        ("c3d4", "", t - 300, Some(t - 10)),
        ("e5f6", "admin", t - 90000, None),
    ] {
        node.put(
            &format!("tokens/{id}"),
            json!({"id": id, "hash": "00", "description": description, "created": created, "expires": expires}),
        );
    }
    (node, names)
}

/// Compares `actual` with `tests/golden/{name}`; `EXPECTORATE=overwrite` regenerates it.
fn golden(name: &str, actual: &str) {
    expectorate::assert_contents(
        format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR")),
        actual,
    );
}

#[test]
fn tables_read_like_kubectl() {
    let (node, _) = cluster();
    let socket = &node.socket;
    let (code, out, err) = ctl(socket, &["get", "pods"]);
    assert_eq!(code, 0, "{err}");
    golden("get-pods.txt", &out);
    let (_, out, _) = ctl(socket, &["get", "pods", "-A", "-o", "wide"]);
    golden("get-pods-all-wide.txt", &out);
    let (_, out, _) = ctl(socket, &["get", "deploy"]);
    golden("get-deploy.txt", &out);
    let (code, out, err) = ctl(socket, &["get", "pods,deploy"]);
    assert_eq!(code, 0, "{err}");
    golden("get-pods-deploy.txt", &out);
    let (code, out, err) = ctl(socket, &["get", "pods", "-n", "empty"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "", "No resources found in empty namespace.\n")
    );
}

#[test]
fn api_errors_are_one_line_and_fail() {
    let (node, _) = cluster();
    let socket = &node.socket;
    let (code, _, err) = ctl(socket, &["delete", "deployment", "nope"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: deployments.apps \"nope\" not found\n"),
        "{err}"
    );
    // kubectl's spelling asks the same.
    let (code, _, err2) = ctl(socket, &["delete", "deploy/nope"]);
    assert_eq!((code, err2), (1, err));
    let (code, _, err) = ctl(socket, &["delete", "deploy/"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: give the object's name: KIND NAME or KIND/NAME\n")
    );
    let (code, _, err) = ctl(socket, &["get", "pods", "nope"]);
    assert_eq!(code, 1);
    assert_eq!(err, "error: pods \"nope\" not found in namespace default\n");
    // A manifest's problems: one line each.
    let file = node.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ncolour: red\n",
    )
    .unwrap();
    let (code, _, err) = ctl(socket, &["apply", "-f", &file.display().to_string()]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: ")
            && err.contains("colour: unknown field")
            && err.lines().count() == 1,
        "{err}"
    );
    let (code, _, err) = ctl(&node.path().join("missing.sock"), &["get", "pods"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot reach the podswarm API at") && err.lines().count() == 1,
        "{err}"
    );
}

/// Runs each command line against `socket` and writes what a user sees (exit status, stdout,
/// stderr) one after another, with the node's directory shown as `$DIR`, and the token that
/// `token create` prints (and its id) as `$TOKEN` and `$ID`, so the transcript is stable.
fn transcript(node: &TestNode, commands: &[Vec<String>]) -> String {
    let mut out = String::new();
    let mut secrets = Vec::new();
    for args in commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = ctl(&node.socket, &args);
        if args.starts_with(&["token", "create"]) {
            let id = stderr.split_whitespace().nth(1).unwrap_or_default();
            secrets.push((stdout.trim().to_owned(), "$TOKEN"));
            secrets.push((id.to_owned(), "$ID"));
        }
        out.push_str(&format!(
            "$ podswarmctl {}\n[exit {code}]\n--- stdout\n{stdout}--- stderr\n{stderr}\n",
            args.join(" ")
        ));
    }
    for (secret, placeholder) in secrets {
        out = out.replace(&secret, placeholder);
    }
    let mut events = false;
    out.replace(&node.path().display().to_string(), "$DIR")
        .lines()
        .map(|l| {
            // `describe`'s events happened while the test ran: their ages are the clock's.
            events = l == "Events:" || (events && l.starts_with("  "));
            if events && l.starts_with("  ") {
                let mut cells: Vec<&str> = l
                    .split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect();
                if cells.len() > 2 && cells[0] != "Type" && cells[0] != "----" {
                    cells[2] = "$AGE";
                }
                return format!("  {}\n", cells.join(" | "));
            }
            stable(l) + "\n"
        })
        .collect()
}

/// A line of JSON output with what the clock decides (an object's creation time, when a manager
/// wrote its fields, and its uid, which is made from the creation time) as `$TIME` and `$UID`.
fn stable(line: &str) -> String {
    for (key, placeholder) in [
        ("\"creationTimestamp\": \"", "$TIME"),
        ("\"time\": \"", "$TIME"),
        ("\"uid\": \"", "$UID"),
    ] {
        if let Some(start) = line.find(key).map(|i| i + key.len())
            && let Some(len) = line[start..].find('"')
        {
            return format!("{}{placeholder}{}", &line[..start], &line[start + len..]);
        }
    }
    line.to_owned()
}

#[test]
fn every_api_command_prints_like_kubectl() {
    let (node, names) = cluster();
    let file = node.path().join("app.yaml");
    // The Namespace as it is, the Deployment changed, a new ConfigMap, and a field podswarm
    // ignores (a warning).
    let app = format!(
        "{SHOP}---\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{a: b}}\n",
        WEB.replace("    spec:\n", "    spec:\n      affinity: {}\n")
    );
    std::fs::write(&file, app).unwrap();
    let file = file.display().to_string();
    let commands: Vec<Vec<String>> = [
        &["get", "svc"][..],
        &["get", "services", "-A", "-o", "wide"],
        &["get", "ingress", "web", "-o", "json"],
        &["get", "ing"],
        &["get", "ingresses", "-A"],
        &["get", "no"],
        &["get", "nodes", "-o", "wide"],
        &["get", "node", "node2", "-o", "yaml"],
        &["get", "deployments", "-A", "-o", "wide"],
        &["get", "po", &names[0]],
        &["get", "pods,svc,no"],
        &["describe", "pod", &names[0]],
        &["describe", "deploy", "web"],
        &["describe", "deployment", "web", "-n", "shop"],
        &["describe", "svc", "web"],
        &["describe", "node", "node2"],
        &["apply", "-f", &file],
        &["describe", "cm", "settings"],
        &["describe", "ing", "web"],
        &["describe", "ns", "shop"],
        &["describe", "secret", "nope"],
        &["scale", "deploy/web", "--replicas", "3"],
        &[
            "scale",
            "deployments",
            "web",
            "--replicas",
            "0",
            "-n",
            "shop",
        ],
        &["logs", &names[0], "--tail", "5", "-c", "app"],
        &["logs", "-f", &names[1]],
        &["logs", &names[1], "--previous", "--timestamps"],
        &["logs", "-f", "db-x-0", "-n", "shop"],
        &["token", "list"],
        &["token", "create", "--description", "ci", "--ttl", "90m"],
        &["token", "revoke", "a1b2"],
        &["dns", "whitelist", "set", "Example.COM."],
        &["dns", "whitelist", "add", "a.example", "b.example"],
        &["dns", "whitelist", "remove", "a.example"],
        &["dns", "whitelist", "get"],
    ]
    .iter()
    .map(|args| args.iter().map(|a| (*a).to_owned()).collect())
    .collect();
    golden("commands.txt", &transcript(&node, &commands));
}

const SHOP_FILE: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: app, image: localhost/busybox:latest}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {a: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n";

/// A node holding the objects of [`SHOP_FILE`], and that file.
/// `apply` and `scale` are recorded in `managedFields` as the Kubernetes API records writes,
/// under podswarmctl's name: the scale apart (its subresource), taking `spec.replicas` from the
/// apply until the next apply takes it back.
#[test]
fn writes_are_recorded_as_podswarmctls() {
    let node = TestNode::start("node1", Ipv4Addr::LOCALHOST.into());
    let file = node.path().join("web.yaml");
    std::fs::write(&file, WEB).unwrap();
    let file = file.display().to_string();
    let managers = |node: &TestNode| {
        let (code, out, err) = ctl(&node.socket, &["get", "deploy", "web", "-o", "json"]);
        assert_eq!(code, 0, "{err}");
        let d: serde_json::Value = serde_json::from_str(&out).unwrap();
        d["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap().to_owned(),
                    e["operation"].as_str().unwrap().to_owned(),
                    e["subresource"].as_str().map(str::to_owned),
                    e["fieldsV1"]["f:spec"].get("f:replicas").is_some(),
                )
            })
            .collect::<Vec<_>>()
    };
    let ours = |subresource: Option<&str>, replicas: bool| {
        (
            "podswarmctl".to_owned(),
            "Update".to_owned(),
            subresource.map(str::to_owned),
            replicas,
        )
    };
    assert_eq!(ctl(&node.socket, &["apply", "-f", &file]).0, 0);
    assert_eq!(managers(&node), [ours(None, true)]);
    assert_eq!(
        ctl(&node.socket, &["scale", "deploy/web", "--replicas", "3"]).0,
        0
    );
    assert_eq!(
        managers(&node),
        [ours(None, false), ours(Some("scale"), true)]
    );
    // The file says 2 again: the apply takes the field back.
    let (code, out, _) = ctl(&node.socket, &["apply", "-f", &file]);
    assert_eq!((code, out.as_str()), (0, "deployment/web configured\n"));
    assert_eq!(managers(&node), [ours(None, true)]);
    let (_, out, _) = ctl(&node.socket, &["apply", "-f", &file]);
    assert_eq!(out, "deployment/web unchanged\n");
}

fn shop() -> (TestNode, String) {
    let node = TestNode::start("node1", Ipv4Addr::LOCALHOST.into());
    node.apply(SHOP_FILE);
    let file = node.path().join("shop.yaml");
    std::fs::write(&file, SHOP_FILE).unwrap();
    (node, file.display().to_string())
}

fn objects_left(node: &TestNode) -> Vec<String> {
    node.api
        .model
        .settled()
        .entries()
        .map(|e| format!("{} {}", e.object.kind(), e.object.name()))
        .collect()
}

#[test]
fn deleting_a_file_with_its_namespace_removes_everything_cleanly() {
    let (node, file) = shop();
    // The Namespace comes first in the file; deleting it first would take the other objects
    // with it and report each of them as not found.
    let (code, out, err) = ctl(&node.socket, &["delete", "-f", &file]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(
        out,
        "deployment/web deleted\nservice/web deleted\nconfigmap/settings deleted\nconfigmap/settings deleted\nnamespace/shop deleted\n"
    );
    node.wait_for("the state to be empty", |n| objects_left(n).is_empty());
}

#[test]
fn an_object_the_same_delete_already_removed_is_not_a_failure() {
    let (node, file) = shop();
    let (code, out, err) = ctl(&node.socket, &["delete", "-f", &file, "-f", &file]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(
        out.lines().count(),
        5,
        "each object is reported once: {out}"
    );
    node.wait_for("the state to be empty", |n| objects_left(n).is_empty());

    // Objects that really are missing still fail the command, with one line each.
    let (code, out, err) = ctl(&node.socket, &["delete", "-f", &file]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err.lines().filter(|l| l.contains("not found")).count(),
        5,
        "{err}"
    );
}

/// A Namespace's delete takes what is in it, as in Kubernetes, and says so.
#[test]
fn a_namespace_takes_its_objects_with_it() {
    let (node, _) = shop();
    let (code, out, err) = ctl(&node.socket, &["delete", "ns", "shop"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "namespace/shop deleted\n", "")
    );
    node.wait_for("only the default namespace's ConfigMap left", |n| {
        objects_left(n) == ["ConfigMap settings"]
    });
}

/// `apply` checks a file whole before writing any of it: an object the API refuses (here by the node's
/// policy, which only the API knows) keeps the file's other objects from being written, even
/// those before it; and a Deployment's selector cannot be changed (as in Kubernetes), so the
/// file that tries it changes nothing.
#[test]
fn apply_checks_a_file_whole_before_writing_any_of_it() {
    let node = TestNode::start("node1", Ipv4Addr::LOCALHOST.into());
    let file = node.path().join("app.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\ndata: {a: b}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: busybox}]\n  volumes: [{name: h, hostPath: {path: /srv/data}}]\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let (code, out, err) = ctl(&node.socket, &["apply", "-f", &file]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("/srv/data"), "{err}");
    assert!(objects_left(&node).is_empty(), "{:?}", objects_left(&node));
    // Without the host path, both are written; applied again, neither changes.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("\n  volumes: [{name: h, hostPath: {path: /srv/data}}]", ""),
    )
    .unwrap();
    for expected in ["created", "unchanged"] {
        let (code, out, err) = ctl(&node.socket, &["apply", "-f", &file]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out,
            format!("configmap/first {expected}\npod/p {expected}\n")
        );
    }
    assert_eq!(ctl(&node.socket, &["delete", "-f", &file]).0, 0);
    node.wait_for("the state to be empty", |n| objects_left(n).is_empty());

    let web = node.path().join("web.yaml");
    std::fs::write(&web, WEB).unwrap();
    let web = web.display().to_string();
    assert_eq!(ctl(&node.socket, &["apply", "-f", &web]).0, 0);
    std::fs::write(
        node.path().join("web.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: second}}\n---\n{}",
            WEB.replace("app: web", "app: other")
        ),
    )
    .unwrap();
    let (code, out, err) = ctl(&node.socket, &["apply", "-f", &web]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains("spec.selector") && err.contains("immutable"),
        "{err}"
    );
    assert_eq!(objects_left(&node), ["Deployment web"]);
}
