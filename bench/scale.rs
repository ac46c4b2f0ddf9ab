//! Scale on booted nodes (issue 11): N Debian trixie nodes on one bridge, each with the `.deb`
//! installed and enabled as a user would, one cluster. For each N given (`PODSWARM_SCALE_NODES`,
//! default `5,10`), it measures:
//!
//! - the time from the first `cluster join` until the first node reports all N Ready;
//! - the time from `apply` of 10 Deployments × 10 replicas (a Service each, and an Ingress) until
//!   systemd on the nodes runs exactly those 100 pods, each once, and how far the spread is from
//!   even (the most and the fewest pods a node runs, against 100/N);
//! - idle: RSS per node of podswarm's four processes, gossip bytes sent per node per second (over
//!   20 s, from `podswarmctl cluster status`);
//! - node loss: 20% of the nodes killed outright at once; the time until the others run exactly
//!   the 100 pods again, each once;
//! - partition: the remaining nodes split in half (two bridges) for 30 s, then healed; the time
//!   from the heal until every node is Ready again on the first and exactly the 100 pods run,
//!   each once.
//!
//! Needs root, the node tree and `packaging/build.sh`'s `.deb`; results go to `docs/SCALE.md`.
//! `cargo bench -p podswarm-tests --bench scale`.

use std::time::{Duration, Instant};

use podswarm_tests::ctl::{active_pods, deployment, ready_nodes};
use podswarm_tests::node::{BootOptions, Bridge, Node, built_deb, nodes_or_skip};

const APPS: usize = 10;
const REPLICAS: u32 = 10;

fn app_names() -> Vec<String> {
    (0..APPS).map(|i| format!("s{i}")).collect()
}

/// Pods of every app that systemd runs on `nodes`, per node; `None` when a pod is active twice.
fn census(nodes: &[&Node]) -> Option<Vec<usize>> {
    let mut per_node = Vec::new();
    let mut all = Vec::new();
    for node in nodes {
        let mine: Vec<String> = app_names()
            .iter()
            .flat_map(|a| active_pods(node, a))
            .collect();
        per_node.push(mine.len());
        all.extend(mine);
    }
    let total = all.len();
    all.sort();
    all.dedup();
    (all.len() == total).then_some(per_node)
}

fn exactly(nodes: &[&Node]) -> bool {
    census(nodes).is_some_and(|c| c.iter().sum::<usize>() == APPS * REPLICAS as usize)
}

/// RSS (KiB) of podswarm's four processes on a node.
fn rss_kib(node: &Node) -> u64 {
    node.sh("ps -o rss= -C podswarmd,podswarm-gossip,podswarm-dns,podswarm-ingress || true")
        .split_whitespace()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

fn bytes_sent(node: &Node) -> u64 {
    let out = node.sh("podswarmctl cluster status -o json || true");
    serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| v["metrics"]["bytesSent"].as_u64())
        .unwrap_or(0)
}

fn wait(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
    started.elapsed()
}

fn run(n: usize, deb: &std::path::Path) -> String {
    let subnet = "10.94";
    let bridge = Bridge::create(&format!("pswsc{}", std::process::id() % 100_000));
    let other = Bridge::create(&format!("pswsd{}", std::process::id() % 100_000));
    let options = BootOptions {
        bridge: Some(bridge.name.clone()),
    };
    let mut booted: Vec<Node> = Vec::new();
    for i in 0..n {
        let node = Node::boot(&format!("s{i:02}"), &options);
        node.set_address(&format!("{subnet}.{}.{}/16", i / 200, i % 200 + 1));
        node.import_busybox();
        node.install(deb, "/root/podswarm.deb", 0o644);
        node.sh("dpkg -i /root/podswarm.deb >/dev/null && systemctl enable --now podswarm");
        booted.push(node);
    }
    for node in &booted {
        node.wait_for("podswarmd to answer", Duration::from_secs(120), || {
            node.exec(&["podswarmctl", "get", "nodes"]).status.success()
        });
    }
    let first = &booted[0];
    first.sh(&format!(
        "podswarmctl cluster init --advertise-addr {subnet}.0.1"
    ));
    let token = first.sh("podswarmctl cluster join-token").trim().to_owned();
    let joins = Instant::now();
    for node in &booted[1..] {
        node.sh(&format!(
            "podswarmctl cluster join {subnet}.0.1 --token {token}"
        ));
    }
    wait("every node Ready", Duration::from_secs(300), || {
        ready_nodes(first).len() == n
    });
    let ready = joins.elapsed();

    let mut manifest = String::new();
    for a in app_names() {
        manifest.push_str(&deployment(&a, REPLICAS));
        manifest.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {a}}}\nspec:\n  selector: {{app: {a}}}\n  ports: [{{name: http, port: 80, targetPort: http}}]\n---\n"
        ));
    }
    manifest.push_str("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: scale}\nspec:\n  rules:\n  - host: scale.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: s0, port: {name: http}}}}\n");
    first.write("/root/scale.yaml", manifest.as_bytes());
    let all: Vec<&Node> = booted.iter().collect();
    let applied = Instant::now();
    first.sh("podswarmctl apply -f /root/scale.yaml >/dev/null");
    wait("100 pods running", Duration::from_secs(900), || {
        exactly(&all)
    });
    let running = applied.elapsed();
    let spread = census(&all).unwrap_or_default();
    let (most, fewest) = (
        spread.iter().copied().max().unwrap_or(0),
        spread.iter().copied().min().unwrap_or(0),
    );

    // Idle figures.
    std::thread::sleep(Duration::from_secs(5));
    let sent_before: Vec<u64> = booted.iter().map(bytes_sent).collect();
    std::thread::sleep(Duration::from_secs(20));
    let sent_after: Vec<u64> = booted.iter().map(bytes_sent).collect();
    let gossip_bps = sent_after
        .iter()
        .zip(&sent_before)
        .map(|(a, b)| a.saturating_sub(*b))
        .sum::<u64>() as f64
        / 20.0
        / n as f64;
    let rss_mib = booted.iter().map(rss_kib).sum::<u64>() as f64 / 1024.0 / n as f64;

    // Node loss: the last 20% at once.
    let lost = (n / 5).max(1);
    let kill_at = Instant::now();
    for node in booted.iter_mut().skip(n - lost) {
        node.kill_hard();
    }
    let alive: Vec<&Node> = booted.iter().take(n - lost).collect();
    wait(
        "the 100 pods again on the others",
        Duration::from_secs(600),
        || exactly(&alive),
    );
    let recovered = kill_at.elapsed();

    // Partition: half of the remaining nodes onto the other bridge for 30 s.
    let half = alive.len() / 2;
    for node in &alive[half..] {
        other.attach(node);
    }
    std::thread::sleep(Duration::from_secs(30));
    for node in &alive[half..] {
        bridge.attach(node);
    }
    let healed_at = Instant::now();
    wait(
        "the halves merged, exactly the 100 pods",
        Duration::from_secs(600),
        || ready_nodes(alive[0]).len() == alive.len() && exactly(&alive),
    );
    let healed = healed_at.elapsed();

    let line = format!(
        "| {n} | {:.1} s | {:.1} s | {most} / {fewest} (even: {:.1}) | {rss_mib:.0} MiB | {gossip_bps:.0} B/s | {lost} killed: {:.1} s | {:.1} s |",
        ready.as_secs_f64(),
        running.as_secs_f64(),
        100.0 / n as f64,
        recovered.as_secs_f64(),
        healed.as_secs_f64(),
    );
    println!("{line}");
    drop(booted);
    drop(bridge);
    drop(other);
    line
}

fn main() {
    if nodes_or_skip("bench scale").is_none() {
        return;
    }
    let Some(deb) = built_deb("target/packages", "bench scale") else {
        return;
    };
    let sizes: Vec<usize> = std::env::var("PODSWARM_SCALE_NODES")
        .unwrap_or_else(|_| "5,10".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut lines = Vec::new();
    for n in sizes {
        lines.push(run(n, &deb));
    }
    println!(
        "| N | all Ready after the joins | apply → 100 pods running | pods per node, most / fewest | RSS per node (podswarm's 4 processes) | gossip sent per node, idle | 20% node loss → 100 pods again | half/half partition 30 s → healed |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|");
    for l in lines {
        println!("{l}");
    }
}
