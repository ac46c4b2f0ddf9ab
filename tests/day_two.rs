//! Issue 13's acceptance, as a user would run it on booted nodes with the real package: three
//! nodes (a fourth joins later), a 4-replica Deployment of a small HTTP server with a readiness
//! probe behind a Service and an Ingress, and a constant open-loop load through one node's ingress
//! (`podswarm-loadgen`: a request every 1/rate s on a new connection, each one's status and time
//! recorded) during every step:
//!
//! 1. v1 → v2 (an env change) with the default strategy; `rollout status` completes, `get deploy`
//!    says 4/4 up to date;
//! 2. v2 → v3, whose readiness probe never passes: the rollout stalls within `maxUnavailable` while
//!    v2 serves, `rollout status` exits 1 at the short `progressDeadlineSeconds` with
//!    `ProgressDeadlineExceeded`, and `rollout undo` returns to v2;
//! 3. scale 4 → 8 → 2;
//! 4. a fourth node joins, and no running pod moves (names and systemd `InvocationID`s);
//! 5. `drain` a node with pods: they move; `uncordon`;
//! 6. the package on a node with pods is upgraded to a newer version built from the same tree: its
//!    workload units keep their `InvocationID`s;
//! 7. the load stops, and `delete -f` of the whole app removes every pod.
//!
//! Across steps 1–6 not one request may fail (a non-2xx answer, or none). Each step's request
//! count and slowest answer are printed (`docs/BENCHMARKS.md` records a run).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podswarm_tests::ctl::{active_pods, deployment_status, ready_nodes};
use podswarm_tests::node::{BootOptions, Bridge, Node, built_deb, nodes_or_skip, workspace_binary};
use serde_json::Value;

const SUBNET: &str = "10.96.0";
/// Requests per second through the ingress.
const RATE: u32 = 40;

/// The app at a version: `v` goes into the environment (a new template each time); `ready_path`
/// is what the readiness probe asks for (busybox httpd answers 404 for a file it does not have,
/// so a missing one never passes).
fn app(v: u32, ready_path: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 4
  progressDeadlineSeconds: 20
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: localhost/busybox:latest
        imagePullPolicy: Never
        command: [/bin/httpd, -f, -p, '8080', -h, /www]
        env: [{{name: VERSION, value: '{v}'}}]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: {ready_path}, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  rules:
  - host: web.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}
"
    )
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// `podswarmctl ARGS` on a node: (exit status, stdout, stderr).
fn ctl(node: &Node, args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["podswarmctl"];
    argv.extend_from_slice(args);
    let out = node.exec(&argv);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Deployment `web`'s status as `node` computes it.
fn web_status(node: &Node) -> Value {
    deployment_status(node, "web")
}

/// Each node's active pod units of web, with their systemd invocation.
fn invocations(nodes: &[&Node]) -> BTreeMap<String, Vec<(String, String)>> {
    nodes
        .iter()
        .map(|n| {
            let units = active_pods(n, "web")
                .into_iter()
                .map(|u| {
                    let id = n.unit_property(&u, "InvocationID");
                    (u, id)
                })
                .collect();
            (n.sh("hostname").trim().to_owned(), units)
        })
        .collect()
}

/// One request's record from the load generator's file.
struct Record {
    at: u128,
    micros: u64,
    ok: bool,
    line: String,
}

fn records(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let at = f.next()?.parse().ok()?;
            let micros = f.next()?.parse().ok()?;
            let status = f.next()?;
            Some(Record {
                at,
                micros,
                ok: status.starts_with('2'),
                line: l.to_owned(),
            })
        })
        .collect()
}

#[test]
fn day_two_operations_fail_no_request() {
    if nodes_or_skip("day_two_operations_fail_no_request").is_none() {
        return;
    }
    let test = "day_two_operations_fail_no_request";
    let (Some(deb), Some(newer)) = (
        built_deb("target/packages", test),
        built_deb("target/packages/upgrade", test),
    ) else {
        return;
    };
    let bridge = Bridge::create(&format!("pswdt{}", std::process::id() % 100_000));
    let options = BootOptions {
        bridge: Some(bridge.name.clone()),
    };
    let nodes: Vec<Node> = ["d1", "d2", "d3", "d4"]
        .iter()
        .map(|n| Node::boot(n, &options))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        node.set_address(&format!("{SUBNET}.{}/24", i + 1));
        node.import_busybox();
        node.install(&deb, "/root/podswarm.deb", 0o644);
        node.sh("dpkg -i /root/podswarm.deb >/dev/null && systemctl enable --now podswarm");
        node.wait_for("podswarmd to answer", Duration::from_secs(60), || {
            node.exec(&["podswarmctl", "get", "nodes"]).status.success()
        });
    }
    let (d1, d2, d3, d4) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let first = [d1, d2, d3];
    d1.sh(&format!(
        "podswarmctl cluster init --advertise-addr {SUBNET}.1"
    ));
    let token = d1.sh("podswarmctl cluster join-token").trim().to_owned();
    for node in [d2, d3] {
        node.sh(&format!(
            "podswarmctl cluster join {SUBNET}.1 --token {token}"
        ));
    }
    d1.wait_for("three nodes ready", Duration::from_secs(90), || {
        ready_nodes(d1) == ["d1", "d2", "d3"]
    });

    // The app, v1, serving through d1's ingress.
    d1.write("/root/app.yaml", app(1, "/").as_bytes());
    d1.sh("podswarmctl apply -f /root/app.yaml");
    let (code, out, err) = ctl(d1, &["rollout", "status", "deploy/web", "--timeout", "3m"]);
    assert_eq!(code, 0, "v1 never came up: {out}{err}");
    d1.wait_for("the ingress serves web", Duration::from_secs(30), || {
        d1.sh(
            "curl -s -o /dev/null -w '%{http_code}' -H 'Host: web.test' http://127.0.0.1/ || true",
        ) == "200"
    });
    d1.install(
        &workspace_binary("podswarm-loadgen"),
        "/usr/local/bin/podswarm-loadgen",
        0o755,
    );
    d1.sh(&format!(
        "rm -f /root/stop-load; nohup podswarm-loadgen 127.0.0.1:80 web.test / {RATE} /root/load.txt /root/stop-load 3600 >/root/loadgen.err 2>&1 &"
    ));
    let mut steps: Vec<(&str, u128, u128)> = Vec::new();
    std::thread::sleep(Duration::from_secs(2));

    // 1. v1 → v2 with the default strategy (25%/25% of 4: one surge, one unavailable).
    let started = now_ms();
    d1.write("/root/app.yaml", app(2, "/").as_bytes());
    d1.sh("podswarmctl apply -f /root/app.yaml");
    let (code, out, err) = ctl(d1, &["rollout", "status", "deploy/web", "--timeout", "3m"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("successfully rolled out"), "{out}");
    let table = d1.sh("podswarmctl get deploy web");
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row.get(1..4), Some(&["4/4", "4", "4"][..]), "{table}");
    steps.push(("1 rollout v1 → v2", started, now_ms()));

    // 2. v3 never turns ready: the rollout stalls within maxUnavailable (3 of 4 stay available),
    // fails at its 20 s deadline, and `rollout undo` brings v2 back.
    let started = now_ms();
    d1.write("/root/app-v3.yaml", app(3, "/not-there").as_bytes());
    d1.sh("podswarmctl apply -f /root/app-v3.yaml");
    let (code, out, err) = ctl(d1, &["rollout", "status", "deploy/web", "--timeout", "3m"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("exceeded its progress deadline"), "{out}{err}");
    let status = web_status(d1);
    assert!(
        status["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["reason"] == "ProgressDeadlineExceeded")),
        "{status}"
    );
    assert!(status["availableReplicas"].as_u64() >= Some(3), "{status}");
    let (code, out, err) = ctl(d1, &["rollout", "undo", "deploy/web"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = ctl(d1, &["rollout", "status", "deploy/web", "--timeout", "3m"]);
    assert_eq!(code, 0, "{out}{err}");
    let status = web_status(d1);
    assert_eq!(
        (
            &status["updatedReplicas"],
            &status["availableReplicas"],
            &status["replicas"]
        ),
        (&Value::from(4), &Value::from(4), &Value::from(4)),
        "{status}"
    );
    steps.push(("2 stalled v3, undo to v2", started, now_ms()));

    // 3. Scale 4 → 8 → 2.
    let started = now_ms();
    for replicas in ["8", "2"] {
        d1.sh(&format!(
            "podswarmctl scale deploy/web --replicas {replicas}"
        ));
        let want: u64 = replicas.parse().unwrap_or(0);
        d1.wait_for("the scale settles", Duration::from_secs(120), || {
            let s = web_status(d1);
            s["availableReplicas"].as_u64() == Some(want) && s["replicas"].as_u64() == Some(want)
        });
        d1.wait_for(
            "systemd runs exactly that many",
            Duration::from_secs(60),
            || {
                first
                    .iter()
                    .map(|n| active_pods(n, "web").len())
                    .sum::<usize>() as u64
                    == want
            },
        );
    }
    steps.push(("3 scale 4 → 8 → 2", started, now_ms()));

    // 4. A fourth node joins: no running pod moves.
    let started = now_ms();
    let before = invocations(&first);
    d4.sh(&format!(
        "podswarmctl cluster join {SUBNET}.1 --token {token}"
    ));
    d1.wait_for("four nodes ready", Duration::from_secs(90), || {
        ready_nodes(d1) == ["d1", "d2", "d3", "d4"]
    });
    // Long enough for every node's placement to run with d4 in it, several times.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        invocations(&first),
        before,
        "a running pod moved or restarted"
    );
    assert!(active_pods(d4, "web").is_empty());
    steps.push(("4 a fourth node joins", started, now_ms()));

    // 5. Drain a node that runs a pod of web (not d1, whose ingress takes the load), uncordon.
    let started = now_ms();
    let (drained, name) = [(d2, "d2"), (d3, "d3")]
        .into_iter()
        .find(|(n, _)| !active_pods(n, "web").is_empty())
        .unwrap_or((d1, "d1"));
    let (code, out, err) = ctl(d1, &["drain", name, "--timeout", "3m"]);
    println!("podswarmctl drain {name}:\n{out}{err}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(active_pods(drained, "web").is_empty());
    assert_eq!(
        nodes
            .iter()
            .map(|n| active_pods(n, "web").len())
            .sum::<usize>(),
        2
    );
    assert!(
        d1.sh("podswarmctl get nodes")
            .contains("Ready,SchedulingDisabled")
    );
    let (code, out, err) = ctl(d1, &["uncordon", name]);
    assert_eq!(code, 0, "{out}{err}");
    steps.push(("5 drain a node, uncordon", started, now_ms()));

    // 6. Upgrade the package on a node that runs pods of web: podswarm restarts, they do not.
    // Not d1: its ingress takes the load, and a restarted ingress refuses connections until it
    // listens again (see docs/BENCHMARKS.md).
    let started = now_ms();
    let upgraded = [d2, d3, d4]
        .into_iter()
        .find(|n| !active_pods(n, "web").is_empty())
        .unwrap_or(d2);
    let workloads = invocations(&[upgraded]);
    let agent = upgraded.unit_property("podswarm.service", "InvocationID");
    let version = upgraded.sh("dpkg-query -W -f '${Version}' podswarm");
    upgraded.install(&newer, "/root/podswarm-newer.deb", 0o644);
    upgraded.sh("dpkg -i /root/podswarm-newer.deb >/dev/null");
    assert_ne!(
        upgraded.sh("dpkg-query -W -f '${Version}' podswarm"),
        version
    );
    assert_ne!(
        upgraded.unit_property("podswarm.service", "InvocationID"),
        agent,
        "the upgrade restarts podswarmd"
    );
    upgraded.wait_for("podswarmd answers again", Duration::from_secs(60), || {
        upgraded
            .exec(&["podswarmctl", "get", "pods"])
            .status
            .success()
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        invocations(&[upgraded]),
        workloads,
        "the upgrade restarted a workload"
    );
    steps.push(("6 upgrade the package on a node", started, now_ms()));

    // The load stops (requests under way finish), then 7: the app goes.
    d1.sh("touch /root/stop-load; for i in $(seq 50); do pgrep -x podswarm-loadgen >/dev/null || break; sleep 0.2; done");
    let load = records(&d1.sh("cat /root/load.txt"));
    d1.sh("podswarmctl delete -f /root/app.yaml");
    d1.wait_for("every pod of web gone", Duration::from_secs(60), || {
        nodes.iter().all(|n| active_pods(n, "web").is_empty())
    });

    println!("load: {RATE} requests/s through d1's ingress, a new connection each");
    println!(
        "{:<34} {:>9} {:>7} {:>12}",
        "step", "requests", "failed", "slowest ms"
    );
    let mut failures = Vec::new();
    for (name, from, to) in &steps {
        let within: Vec<&Record> = load
            .iter()
            .filter(|r| r.at >= *from && r.at < *to)
            .collect();
        let failed: Vec<&Record> = within.iter().copied().filter(|r| !r.ok).collect();
        let slowest = within.iter().map(|r| r.micros).max().unwrap_or(0);
        println!(
            "{name:<34} {:>9} {:>7} {:>12.1}",
            within.len(),
            failed.len(),
            slowest as f64 / 1000.0
        );
        failures.extend(failed.iter().map(|r| format!("{name}: {}", r.line)));
    }
    let failed_anywhere: Vec<&str> = load
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.line.as_str())
        .collect();
    println!(
        "whole run: {} requests, {} failed, slowest {:.1} ms",
        load.len(),
        failed_anywhere.len(),
        load.iter().map(|r| r.micros).max().unwrap_or(0) as f64 / 1000.0
    );
    assert!(load.len() > 100, "too few requests to tell: {}", load.len());
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert!(
        failed_anywhere.is_empty(),
        "failed requests between steps: {failed_anywhere:#?}"
    );
    drop(nodes);
    drop(bridge);
}
