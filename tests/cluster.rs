//! The cluster story on three booted nodes on a bridge, each with podswarm installed as the
//! package does: a cluster formed by token, a 3-replica Deployment spread one pod per node, pods
//! reachable by IP from other nodes (host-gw routes), a partition that heals to exactly three
//! replicas, a killed node whose pod comes up elsewhere, and a rolling update that never runs
//! fewer pods than desired, and a drain of a node under load that fails no request.

use std::time::{Duration, Instant};

use podswarm_tests::ctl::{
    active_pods, assert_pods_answer, deployment, deployment_status, deployments, items, name,
    nodes_of, ready_nodes, running,
};
use podswarm_tests::node::{BootOptions, Bridge, Node, nodes_or_skip};
use serde_json::Value;

const SUBNET: &str = "10.98.0";

/// Deployment `web` (three replicas) with a Service in front.
fn web() -> String {
    deployment("web", 3)
        + "---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"
}

/// The routing view a node publishes for its DNS server and ingress.
fn view(node: &Node) -> Value {
    serde_json::from_str(&node.sh("cat /run/podswarm/view.json")).unwrap_or(Value::Null)
}

/// Pod units of Deployment `web` active on the node itself (what systemd runs, not what any API
/// says).
fn active_units(node: &Node) -> usize {
    active_pods(node, "web").len()
}

/// Starts a client on `node` that sends requests through its ingress (`curl`, one at a time,
/// without a pause) until [`stop_load`]; each answer's status and time go to `/root/codes`.
fn start_load(node: &Node, request: &str) {
    node.sh(&format!(
        "rm -f /root/codes /root/stop-load; nohup sh -c \"while [ ! -e /root/stop-load ]; do {request} >> /root/codes; done\" >/dev/null 2>&1 &"
    ));
}

/// Stops the client of [`start_load`] and says how it went: requests sent, the lines of those
/// that failed (not 200, or no answer), and the slowest answer's time in seconds.
fn stop_load(node: &Node) -> (usize, Vec<String>, f64) {
    node.sh("touch /root/stop-load; sleep 6");
    let codes = node.sh("cat /root/codes");
    let failed = codes
        .lines()
        .filter(|c| !c.starts_with("200 "))
        .map(str::to_owned)
        .collect();
    let slowest = codes
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .fold(0.0, f64::max);
    (codes.lines().count(), failed, slowest)
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
        node.set_address(&format!("{SUBNET}.{}/24", i + 1));
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
            let mut claimed: Vec<String> = items(c1, "nodes")
                .iter()
                .filter_map(|n| n["spec"]["podCIDR"].as_str().map(str::to_owned))
                .collect();
            claimed.sort();
            claimed.dedup();
            claimed.len() == 3
        },
    );

    // One Deployment, applied on any node, spread one pod per node.
    c2.write("/root/web.yaml", web().as_bytes());
    c2.sh("podswarmctl apply -f /root/web.yaml");
    c1.wait_for(
        "three pods running, one per node",
        Duration::from_secs(120),
        || nodes_of(&running(c1)) == ["c1", "c2", "c3"],
    );
    // Every pod answers from every node, by pod IP: host-gw routes between the nodes.
    assert_pods_answer(c1, [c1, c2, c3]);

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
    // An API token made on one node works on every node: its kubeconfig names c1, and the CA
    // in it is every node's.
    c1.sh("podswarmctl token create --description e2e --kubeconfig /root/kc 2>/dev/null");
    let nodes_via_c3 = c1.sh(&format!(
        "podswarmctl --kubeconfig /root/kc --server https://{SUBNET}.3:8080 get nodes"
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
    // Both sides ran every pod; after the heal each pod runs once. Placement is sticky (a running
    // pod stays on its live node), so which copy stays follows the pod's status record, the later
    // one: the spread may be uneven, the count is exact.
    let units = |nodes: &[&Node]| {
        let mut all: Vec<String> = nodes.iter().flat_map(|n| active_pods(n, "web")).collect();
        let total = all.len();
        all.sort();
        all.dedup();
        (total, all.len())
    };
    c1.wait_for(
        "exactly three replicas, each once, after the partition heals",
        Duration::from_secs(120),
        || ready_nodes(c1) == ["c1", "c2", "c3"] && units(&[c1, c2, c3]) == (3, 3),
    );

    // The API of every node shows the same three running pods again.
    let pods_of = |node: &Node| {
        let mut names: Vec<String> = running(node).into_iter().map(|(p, _, _)| p).collect();
        names.sort();
        names
    };
    // Which copy of a pod both sides ran stays is settled by the status records, which merge
    // within a second or two of the heal: compared across the nodes as they are now, not with a
    // listing taken before.
    c1.wait_for(
        "the same three running pods in every API",
        Duration::from_secs(60),
        || {
            let names = pods_of(c1);
            names.len() == 3 && pods_of(c2) == names && pods_of(c3) == names
        },
    );

    // Kill c3 outright: its pods come up on c1 or c2. (Should the heal have left c3 nothing, a
    // fourth replica goes to it, the node with the fewest.)
    // Which copies stay settles within the drain of the others: wait until the listing and
    // systemd agree and hold still for two seconds.
    let settled = |replicas: usize| {
        let listed = running(c1);
        std::thread::sleep(Duration::from_secs(2));
        listed.len() == replicas
            && units(&[c1, c2, c3]) == (replicas, replicas)
            && running(c1) == listed
    };
    c1.wait_for(
        "the pods settle after the heal",
        Duration::from_secs(60),
        || settled(3),
    );
    let mut replicas = 3;
    if !running(c1).iter().any(|(_, n, _)| n == "c3") {
        c1.sh("podswarmctl scale deploy/web --replicas 4");
        replicas = 4;
        c3.wait_for("a pod on c3, settled", Duration::from_secs(60), || {
            running(c1).iter().any(|(_, n, _)| n == "c3") && settled(4)
        });
    }
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
                && units(&[c1, c2]) == (replicas, replicas)
        },
    );
    println!(
        "pod {moved} of the killed node ran elsewhere {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );

    // With c3 dead, cut c1 and c2 apart. Each declares the other down and is left with no live
    // member: the split that SWIM alone never heals (foca stops announcing once it has nobody).
    // Both sides take writes; once the link is back the halves merge within the documented bound
    // (`reconnect_interval_ms`, 5 s, plus a few probe periods), every write from both sides is
    // there (the later of two writes to one key wins) and exactly the desired replicas run.
    let cut = Instant::now();
    bridge.set_link(c2, false);
    for (node, alone) in [(c1, "c1"), (c2, "c2")] {
        node.wait_for("each side alone", Duration::from_secs(60), || {
            ready_nodes(node) == [alone]
        });
    }
    c1.write("/root/left.yaml", deployment("left", 1).as_bytes());
    c1.sh("podswarmctl apply -f /root/left.yaml && podswarmctl scale deploy/web --replicas 4");
    c2.write("/root/right.yaml", deployment("right", 1).as_bytes());
    c2.sh("podswarmctl apply -f /root/right.yaml && podswarmctl scale deploy/web --replicas 2");
    c1.wait_for("c1 runs its side's view", Duration::from_secs(60), || {
        active_pods(c1, "web").len() == 4 && active_pods(c1, "left").len() == 1
    });
    c2.wait_for("c2 runs its side's view", Duration::from_secs(60), || {
        active_pods(c2, "web").len() == 2 && active_pods(c2, "right").len() == 1
    });
    std::thread::sleep(Duration::from_secs(20).saturating_sub(cut.elapsed()));
    bridge.set_link(c2, true);
    let healed = Instant::now();
    for node in [c1, c2] {
        node.wait_for(
            "both nodes ready again after the split",
            Duration::from_secs(30),
            || ready_nodes(node) == ["c1", "c2"],
        );
    }
    println!(
        "the two halves merged {:.1} s after the link came back",
        healed.elapsed().as_secs_f64()
    );
    let want = [("left", 1), ("right", 1), ("web", 2)];
    for node in [c1, c2] {
        node.wait_for(
            "every write from both sides, the later scale winning",
            Duration::from_secs(30),
            || deployments(node) == want.map(|(n, r)| (n.to_owned(), r)).into(),
        );
    }
    c1.wait_for(
        "exactly the desired replicas after the split heals",
        Duration::from_secs(90),
        || {
            want.iter().all(|(app, replicas)| {
                let mut units = active_pods(c1, app);
                units.extend(active_pods(c2, app));
                let total = units.len();
                units.sort();
                units.dedup();
                i64::try_from(total) == Ok(*replicas) && units.len() == total
            })
        },
    );
    println!(
        "exactly the desired replicas {:.1} s after the link came back",
        healed.elapsed().as_secs_f64()
    );

    // A rolling update of `web` (2 replicas: 25% surge rounds up to 1, 25% unavailable down to
    // 0): a new template's pods start one at a time, an old pod stops only once a new one is
    // ready, so systemd never runs fewer than 2 pods of it, nor more than 3. It ends with exactly
    // the new template's 2 pods, and the status every node computes says so.
    let v2 = deployment("web", 2).replace(
        "        imagePullPolicy: Never\n",
        "        imagePullPolicy: Never\n        env: [{name: VERSION, value: '2'}]\n        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}\n",
    );
    assert_ne!(v2, deployment("web", 2), "the template changed");
    // Meanwhile a client sends requests through c1's ingress without a pause: a leaving pod is
    // taken out of every node's view before it is stopped, and a new one is sent requests once its
    // readiness probe passes, so not one request fails.
    c1.write(
        "/root/web-ingress.yaml",
        b"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: web.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
",
    );
    c1.sh("podswarmctl apply -f /root/web-ingress.yaml");
    let through_ingress = "curl -s -o /dev/null -w '%{http_code} %{time_total}\\n' --max-time 5 -H 'Host: web.test' http://127.0.0.1/";
    c1.wait_for("the ingress serves web", Duration::from_secs(30), || {
        c1.sh(&format!("{through_ingress} || true"))
            .starts_with("200 ")
    });
    start_load(c1, through_ingress);
    let before: Vec<String> = [c1, c2]
        .iter()
        .flat_map(|n| active_pods(n, "web"))
        .collect();
    c1.write("/root/web-v2.yaml", v2.as_bytes());
    let rollout = Instant::now();
    c1.sh("podswarmctl apply -f /root/web-v2.yaml");
    // The two nodes are read one after the other, so a sample can straddle a change on each; a
    // count holds only when two samples in a row show it (a pod moving or stopped early leaves a
    // gap of a second or more, several samples).
    let (mut fewest, mut most) = (usize::MAX, 0);
    let mut previous: Option<Vec<String>> = None;
    let mut samples: Vec<String> = Vec::new();
    c1.wait_for("the rollout completes", Duration::from_secs(120), || {
        let active: Vec<String> = [c1, c2]
            .iter()
            .flat_map(|n| active_pods(n, "web"))
            .collect();
        samples.push(active.join(" "));
        if let Some(previous) = &previous {
            fewest = fewest.min(active.len().max(previous.len()));
            most = most.max(active.len().min(previous.len()));
        }
        previous = Some(active.clone());
        let status = deployment_status(c1, "web");
        active.len() == 2
            && active.iter().all(|u| !before.contains(u))
            && status["updatedReplicas"] == 2
            && status["replicas"] == 2
            && status["availableReplicas"] == 2
            && status["conditions"][1]["reason"] == "NewReplicaSetAvailable"
    });
    println!(
        "rolling update of 2 pods done in {:.1} s; pods of web active during it: {fewest}..{most}",
        rollout.elapsed().as_secs_f64()
    );
    // The load goes on a little past the end, then stops.
    std::thread::sleep(Duration::from_secs(2));
    let (total, failed, slowest) = stop_load(c1);
    println!(
        "requests through the ingress during the rolling update: {total}, failed: {}, slowest: {:.0} ms",
        failed.len(),
        slowest * 1000.0
    );
    assert!(total >= 20, "too few requests to tell: {total}");
    assert!(
        failed.is_empty(),
        "{} of {total} requests failed during the rollout: {failed:?}",
        failed.len()
    );
    assert!(
        fewest >= 2 && most <= 3,
        "pods of web active during the rollout: {fewest}..{most} (want 2..3); samples:\n{}",
        samples.join("\n")
    );
    for node in [c1, c2] {
        let web = items(node, "deployments")
            .into_iter()
            .find(|d| name(d) == "web")
            .unwrap_or_default();
        assert_eq!(
            web["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2",
            "{web}"
        );
    }

    // Maintenance under the same load: `drain` cordons a node and moves its pods to the other
    // one, where each new copy starts while the old one still serves; an old copy stops only once
    // the new one is ready and every view routes to it. So systemd never runs fewer than 2 pods of
    // web, not one request fails, and the other node's own pods are never touched (same systemd
    // invocations). `uncordon` moves nothing back. (The rollout placed web's pods one by one, so
    // both may be on one node: that one is drained then.)
    let (from, to, from_name) = if active_pods(c2, "web").is_empty() {
        (c1, c2, "c1")
    } else {
        (c2, c1, "c2")
    };
    let kept_units = active_pods(to, "web");
    let invocations = |units: &[String]| -> Vec<String> {
        units
            .iter()
            .map(|u| to.unit_property(u, "InvocationID"))
            .collect()
    };
    let kept_invocations = invocations(&kept_units);
    c1.sh("rm -f /root/drain.rc");
    start_load(c1, through_ingress);
    std::thread::sleep(Duration::from_secs(1));
    let drain = Instant::now();
    c1.sh(&format!("nohup sh -c 'podswarmctl drain {from_name} --timeout 120s > /root/drain.out 2>&1; echo $? > /root/drain.rc' >/dev/null 2>&1 &"));
    let (mut fewest, mut previous) = (usize::MAX, None::<usize>);
    let mut samples: Vec<String> = Vec::new();
    c1.wait_for("the drain ends", Duration::from_secs(150), || {
        let active: Vec<String> = [c1, c2]
            .iter()
            .flat_map(|n| active_pods(n, "web"))
            .collect();
        samples.push(active.join(" "));
        if let Some(p) = previous {
            fewest = fewest.min(active.len().max(p));
        }
        previous = Some(active.len());
        c1.sh("cat /root/drain.rc 2>/dev/null || true").trim() != ""
    });
    let drained_in = drain.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let (total, failed, slowest) = stop_load(c1);
    println!(
        "drain of {from_name} took {drained_in:.1} s:\n{}",
        c1.sh("cat /root/drain.out")
    );
    assert_eq!(
        c1.sh("cat /root/drain.rc").trim(),
        "0",
        "{}",
        c1.sh("cat /root/drain.out")
    );
    assert!(
        active_pods(from, "web").is_empty(),
        "{from_name} still runs web"
    );
    let after = active_pods(to, "web");
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(
        invocations(&kept_units),
        kept_invocations,
        "a pod on the node that was not drained was restarted"
    );
    println!(
        "requests through the ingress during the drain: {total}, failed: {}, slowest: {:.0} ms; pods of web active: at least {fewest}",
        failed.len(),
        slowest * 1000.0
    );
    assert!(total >= 20, "too few requests to tell: {total}");
    assert!(
        failed.is_empty(),
        "{} of {total} requests failed during the drain: {failed:?}",
        failed.len()
    );
    assert!(
        fewest >= 2,
        "pods of web active during the drain: at least {fewest} (want 2); samples:\n{}",
        samples.join("\n")
    );
    let cordoned = || {
        items(c1, "nodes")
            .into_iter()
            .find(|n| name(n) == from_name)
            .map(|n| n["spec"]["unschedulable"] == true)
    };
    assert_eq!(cordoned(), Some(true));
    assert!(
        c1.sh("podswarmctl get nodes")
            .contains("Ready,SchedulingDisabled")
    );
    c1.sh(&format!("podswarmctl uncordon {from_name}"));
    assert_eq!(cordoned(), Some(false));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(active_pods(to, "web"), after, "uncordon moves nothing back");
    assert!(active_pods(from, "web").is_empty());
    drop(nodes);
    drop(bridge);
}
