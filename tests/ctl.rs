//! What a user reads off a node with `podswarmctl` and `systemctl`, for the cluster tests: the
//! API's view (nodes, Deployments) next to what systemd on that node actually runs.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::node::Node;

/// The `items` of `podswarmctl get KIND -o json` on `node`: Kubernetes objects, as kubectl
/// prints them (empty when the command fails).
pub fn items(node: &Node, kind: &str) -> Vec<Value> {
    let out = node.exec(&["podswarmctl", "get", kind, "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.get("items")
        .or(Some(&v))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// An object's `metadata.name` ("" without one).
pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// Whether a Kubernetes pod is Running and not on its way out (a copy being drained from every
/// view, then stopped, has a deletion timestamp).
pub fn is_running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod["metadata"].get("deletionTimestamp").is_none()
}

/// Whether a Kubernetes object's condition `type_` is True (a pod's or node's `Ready`).
pub fn condition(object: &Value, type_: &str) -> bool {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

/// The systemd unit that stands for a pod (its `podswarm.io/unit` annotation; "" before it has one).
pub fn unit(pod: &Value) -> &str {
    pod["metadata"]["annotations"]["podswarm.io/unit"]
        .as_str()
        .unwrap_or_default()
}

/// A pod's address ("" before it has one).
pub fn pod_ip(pod: &Value) -> &str {
    pod["status"]["podIP"].as_str().unwrap_or_default()
}

/// The podman name of a pod's container `container` (its `containerID`, `podman://<name>`).
pub fn podman_name<'a>(pod: &'a Value, container: &str) -> &'a str {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container)
        .and_then(|c| c["containerID"].as_str()?.strip_prefix("podman://"))
        .unwrap_or_default()
}

/// Names of the nodes `node` reports Ready, sorted.
pub fn ready_nodes(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = items(node, "nodes")
        .iter()
        .filter(|n| condition(n, "Ready"))
        .map(|n| name(n).to_owned())
        .collect();
    names.sort();
    names
}

/// Deployments in `node`'s view, with their desired replicas.
pub fn deployments(node: &Node) -> BTreeMap<String, i64> {
    items(node, "deployments")
        .iter()
        .filter_map(|d| Some((name(d).to_owned(), d["spec"]["replicas"].as_i64()?)))
        .collect()
}

/// Deployment `name`'s `status` in `node`'s view (Null when it has none).
pub fn deployment_status(node: &Node, deployment: &str) -> Value {
    items(node, "deployments")
        .into_iter()
        .find(|d| name(d) == deployment)
        .map(|d| d["status"].clone())
        .unwrap_or_default()
}

/// Running pods as (pod, node, ip) in `node`'s view of the cluster, sorted; a copy on its way
/// out (terminating: drained from every view, then stopped) is not one of them.
pub fn running(node: &Node) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = items(node, "pods")
        .iter()
        .filter(|p| is_running(p))
        .map(|p| {
            let field = |v: &Value| v.as_str().unwrap_or("").to_owned();
            (
                name(p).to_owned(),
                field(&p["spec"]["nodeName"]),
                pod_ip(p).to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The nodes of `pods` (as [`running`] lists them), sorted, one per pod.
pub fn nodes_of(pods: &[(String, String, String)]) -> Vec<&str> {
    let mut on: Vec<&str> = pods.iter().map(|(_, on, _)| on.as_str()).collect();
    on.sort();
    on
}

/// Every pod running in `view`'s list serves the test image's page to every node of `from`, by
/// pod IP: host-gw routes carry traffic between the nodes.
pub fn assert_pods_answer<'a>(view: &Node, from: impl IntoIterator<Item = &'a Node> + Clone) {
    for (pod, on, ip) in running(view) {
        for node in from.clone() {
            // Not `-f` alone: a failed request must show up in the assertion, with what came back.
            let body = node.sh(&format!("curl -sf --max-time 5 http://{ip}:8080/ || true"));
            assert!(
                body.contains("hello from podswarm"),
                "{pod} on {on} at {ip} from {}: {body:?}",
                node.name
            );
        }
    }
}

/// Pod units of Deployment `app` (namespace default) that systemd on `node` runs: what is really
/// running there, whatever any API says.
pub fn active_pods(node: &Node, app: &str) -> Vec<String> {
    node.sh(&format!(
        "systemctl list-units --no-legend --plain --state=active 'podswarm-default_{app}-*.service'"
    ))
    .lines()
    .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
    .collect()
}

/// A Deployment of the test image's web server (busybox httpd on 8080) with `replicas` pods.
pub fn deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: localhost/busybox:latest
        imagePullPolicy: Never
        command: [/bin/sh, -c, 'echo {name} is up; exec /bin/httpd -f -p 8080 -h /www']
        ports: [{{name: http, containerPort: 8080}}]
"
    )
}

/// How many pods of each of `apps` systemd runs on `nodes` together; an app with a pod name active
/// on two nodes at once counts `usize::MAX`, never two replicas.
pub fn census(nodes: &[&Node], apps: &[&str]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for app in apps {
        let mut units: Vec<String> = nodes.iter().flat_map(|n| active_pods(n, app)).collect();
        let total = units.len();
        units.sort();
        units.dedup();
        // A pod name active on two nodes at once counts as a mismatch, never as two replicas.
        counts.insert(
            (*app).to_owned(),
            if units.len() == total {
                total
            } else {
                usize::MAX
            },
        );
    }
    counts
}
