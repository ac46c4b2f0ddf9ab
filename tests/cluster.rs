//! The cluster story on three booted nodes on a bridge, each with podswarm installed as the
//! package does: a cluster formed by token, a 3-replica Deployment spread one pod per node, pods
//! reachable by IP from other nodes (host-gw routes), a partition that heals to exactly three
//! replicas, and a killed node whose pod comes up elsewhere.

use std::time::{Duration, Instant};

use podswarm_tests::node::{BootOptions, Bridge, Node, nodes_or_skip};
use serde_json::Value;

const SUBNET: &str = "10.98.0";

const DEPLOYMENT: &[u8] = b"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: localhost/busybox:latest
        imagePullPolicy: Never
        command: [/bin/sh, -c, 'echo web is up; exec /bin/httpd -f -p 8080 -h /www']
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
";

/// The routing view a node publishes for its DNS server and ingress.
fn view(node: &Node) -> Value {
    serde_json::from_str(&node.sh("cat /run/podswarm/view.json")).unwrap_or(Value::Null)
}

fn pods(node: &Node) -> Vec<Value> {
    let out = node.exec(&["podswarmctl", "get", "pods", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.get("items")
        .or(Some(&v))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Running pods as (pod, node, ip) in the cluster view of `node`.
fn running(node: &Node) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = pods(node)
        .iter()
        .filter(|p| p["phase"] == "Running")
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_owned(),
                p["node"].as_str().unwrap_or("").to_owned(),
                p["ip"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Pod units active on the node itself (what systemd runs, not what any API says).
fn active_units(node: &Node) -> usize {
    node.sh("systemctl list-units --no-legend --plain --state=active 'podswarm-default_web-*.service' | wc -l")
        .trim()
        .parse()
        .unwrap_or(0)
}

fn ready_nodes(node: &Node) -> Vec<String> {
    let out = node.exec(&["podswarmctl", "get", "nodes", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let mut names: Vec<String> = v
        .get("items")
        .or(Some(&v))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|n| n["ready"] == true)
        .filter_map(|n| n["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[test]
fn three_nodes_form_a_cluster_spread_a_deployment_survive_partition_and_node_loss() {
    if nodes_or_skip(
        "three_nodes_form_a_cluster_spread_a_deployment_survive_partition_and_node_loss",
    )
    .is_none()
    {
        return;
    }
    let bridge = Bridge::create(&format!("pswbr{}", std::process::id() % 100_000));
    let options = BootOptions {
        bridge: Some(bridge.name.clone()),
    };
    let mut nodes: Vec<Node> = ["c1", "c2", "c3"]
        .iter()
        .map(|n| Node::boot(n, &options))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        node.sh(&format!(
            "ip addr add {SUBNET}.{}/24 dev host0 && ip link set host0 up",
            i + 1
        ));
        node.import_busybox();
        node.install_podswarm();
    }
    let (c1, c2, c3) = (&nodes[0], &nodes[1], &nodes[2]);

    // A fresh node is a one-node cluster; init gives it the address the others reach it at.
    let init = c1.sh(&format!(
        "podswarmctl cluster init --advertise-addr {SUBNET}.1"
    ));
    assert!(init.contains("initialized"), "{init}");
    let token = c1.sh("podswarmctl cluster join-token").trim().to_owned();
    let wrong = format!("{}{}", &token[..token.len() - 4], "0000");
    let refused = c2.exec(&[
        "podswarmctl",
        "cluster",
        "join",
        &format!("{SUBNET}.1"),
        "--token",
        &wrong,
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("invalid join token"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    for node in [c2, c3] {
        node.sh(&format!(
            "podswarmctl cluster join {SUBNET}.1 --token {token}"
        ));
    }
    for node in [c1, c2, c3] {
        node.wait_for("all three nodes ready", Duration::from_secs(90), || {
            ready_nodes(node) == ["c1", "c2", "c3"]
        });
    }
    // Each node holds a different pod subnet (two of them move off the one they started on).
    c1.wait_for(
        "three distinct pod subnets",
        Duration::from_secs(60),
        || {
            let out = c1.exec(&["podswarmctl", "get", "nodes", "-o", "json"]);
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let mut claimed: Vec<String> = v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["podSubnet"].as_str().map(str::to_owned))
                .collect();
            claimed.sort();
            claimed.dedup();
            claimed.len() == 3
        },
    );

    // One Deployment, applied on any node, spread one pod per node.
    c2.write("/root/web.yaml", DEPLOYMENT);
    c2.sh("podswarmctl apply -f /root/web.yaml");
    c1.wait_for(
        "three pods running, one per node",
        Duration::from_secs(120),
        || {
            let r = running(c1);
            let mut on: Vec<&str> = r.iter().map(|(_, n, _)| n.as_str()).collect();
            on.sort();
            on == ["c1", "c2", "c3"]
        },
    );
    // Every pod answers from every node, by pod IP: host-gw routes between the nodes.
    for (pod, on, ip) in running(c1) {
        for from in [c1, c2, c3] {
            let body = from.sh(&format!("curl -sf --max-time 5 http://{ip}:8080/"));
            assert!(
                body.contains("hello from podswarm"),
                "{pod} on {on} from {}",
                from.name
            );
        }
    }

    // Every node's routing view has the Service with all three endpoints, wherever they run.
    for node in [c1, c2, c3] {
        node.wait_for(
            "three ready endpoints in the view",
            Duration::from_secs(30),
            || {
                let v = view(node);
                let eps = v["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|s| s["name"] == "web")
                    .and_then(|s| s["endpoints"].as_array().cloned())
                    .unwrap_or_default();
                eps.len() == 3
                    && eps
                        .iter()
                        .all(|e| e["ready"] == true && e["ports"][0]["port"] == 8080)
            },
        );
    }
    // The DNS whitelist is cluster state: set on one node, in every node's view.
    c1.sh("podswarmctl dns whitelist set example.com");
    c3.wait_for(
        "the whitelist in c3's view",
        Duration::from_secs(30),
        || {
            let w = &view(c3)["whitelist"];
            w["enabled"] == true && w["hosts"][0] == "example.com"
        },
    );
    assert!(
        c2.sh("podswarmctl dns whitelist get")
            .contains("example.com")
    );

    // A pod's logs from any node: c1 asks the node that runs it.
    let (remote, _, _) = running(c1)
        .into_iter()
        .find(|(_, n, _)| n == "c3")
        .unwrap_or_else(|| panic!("no pod on c3"));
    let logs = c1.sh(&format!("podswarmctl logs {remote}"));
    assert!(
        logs.contains("web is up"),
        "logs of {remote} through c1: {logs:?}"
    );
    // An API token made on one node works on every node.
    let token = c1
        .sh("podswarmctl token create --description e2e 2>/dev/null")
        .trim()
        .to_owned();
    let nodes_via_c3 = c1.sh(&format!(
        "podswarmctl --server http://{SUBNET}.3:8080 --token {token} get nodes"
    ));
    assert!(
        nodes_via_c3.contains("c1") && nodes_via_c3.contains("c3"),
        "{nodes_via_c3}"
    );

    // Partition c3: both sides keep three replicas running; after healing, exactly three.
    bridge.set_link(c3, false);
    c1.wait_for(
        "the majority side runs three pods without c3",
        Duration::from_secs(60),
        || ready_nodes(c1) == ["c1", "c2"] && active_units(c1) + active_units(c2) == 3,
    );
    c3.wait_for(
        "the cut-off node runs all three itself",
        Duration::from_secs(60),
        || active_units(c3) == 3,
    );
    bridge.set_link(c3, true);
    c1.wait_for(
        "exactly three replicas after the partition heals",
        Duration::from_secs(120),
        || {
            ready_nodes(c1) == ["c1", "c2", "c3"]
                && active_units(c1) == 1
                && active_units(c2) == 1
                && active_units(c3) == 1
        },
    );

    // The API of every node shows the same three pods again.
    for node in [c1, c2, c3] {
        node.wait_for(
            "one running pod per node in the API",
            Duration::from_secs(30),
            || {
                let on: Vec<String> = running(node).into_iter().map(|(_, n, _)| n).collect();
                on == ["c1", "c2", "c3"] || {
                    let mut sorted = on.clone();
                    sorted.sort();
                    sorted == ["c1", "c2", "c3"]
                }
            },
        );
    }

    // Kill c3 outright: its pod comes up on c1 or c2.
    let moved = running(c1)
        .into_iter()
        .find(|(_, n, _)| n == "c3")
        .map(|(p, _, _)| p)
        .unwrap_or_else(|| panic!("no pod on c3: {:?}", running(c1)));
    let killed = Instant::now();
    nodes[2].kill_hard();
    let (c1, c2) = (&nodes[0], &nodes[1]);
    c1.wait_for(
        "c3's pod running elsewhere",
        Duration::from_secs(60),
        || {
            running(c1)
                .iter()
                .any(|(p, n, _)| *p == moved && (n == "c1" || n == "c2"))
                && active_units(c1) + active_units(c2) == 3
        },
    );
    println!(
        "pod {moved} of the killed node ran elsewhere {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    drop(nodes);
    drop(bridge);
}
