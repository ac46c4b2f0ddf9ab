//! Benchmark: what TLS costs a user of the API. `podswarmctl get pods` (10 pods listed) over the
//! node's Unix socket against the same command over HTTPS to the same node with a kubeconfig
//! (`token create --kubeconfig`): one process, one connection, one TLS handshake with the node
//! certificate, one request, as a user or a script runs it.
//!
//! Both run inside one booted node, alternating in batches of [`BATCH`] commands timed by the
//! node's own clock, [`ROUNDS`] rounds; medians per command are reported, and their ratio.
//!
//! Then the memory TLS costs: podswarmd's resident set [`SETTLE`] after a restart, serving
//! HTTPS (the default) and serving plain HTTP (`api.insecure_plain_http`), the same pods running.
//!
//! Run: `cargo bench -p podswarm-tests --bench tls` (root; builds the node tree if needed).

use std::time::Duration;

use podswarm_tests::node::{BootOptions, Node, nodes_or_skip};

const ROUNDS: usize = 7;
const BATCH: usize = 20;
const SETTLE: Duration = Duration::from_secs(20);

/// podswarmd's resident set (KiB) [`SETTLE`] after a restart with `config` as podswarm.toml.
fn rss_after_restart(node: &Node, config: &str) -> u64 {
    node.write("/etc/podswarm/podswarm.toml", config.as_bytes());
    node.sh("systemctl restart podswarm.service");
    std::thread::sleep(SETTLE);
    node.unit_rss_kib("podswarm.service")
}

/// Time per command of `BATCH` runs of `command` on `node`.
fn batch(node: &Node, command: &str) -> Duration {
    let script = format!(
        "s=$(date +%s%N); for i in $(seq {BATCH}); do {command} >/dev/null || exit 1; done; echo $(( $(date +%s%N) - s ))"
    );
    let nanos: u64 = node
        .sh(&script)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    Duration::from_nanos(nanos / BATCH as u64)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if nodes_or_skip("bench tls").is_none() {
        return;
    }
    let node = Node::boot("benchtls", &BootOptions::default());
    node.import_busybox();
    node.install_podswarm();
    node.write(
        "/root/app.yaml",
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  replicas: 10\n  selector: {matchLabels: {app: app}}\n  template:\n    metadata: {labels: {app: app}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {name: c, image: localhost/busybox:latest, imagePullPolicy: Never, command: [/bin/sleep, '3600']}\n",
    );
    node.sh("podswarmctl apply -f /root/app.yaml >/dev/null");
    node.wait_for("ten running pods", Duration::from_secs(120), || {
        node.sh("podswarmctl get pods").matches("Running").count() == 10
    });
    node.sh("podswarmctl token create --kubeconfig /root/kc 2>/dev/null");
    let socket = "podswarmctl get pods";
    let https = "podswarmctl --kubeconfig /root/kc get pods";
    // Warm-up of each, not counted.
    batch(&node, socket);
    batch(&node, https);
    let (mut unix, mut tls) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        unix.push(batch(&node, socket));
        tls.push(batch(&node, https));
    }
    let (u, t) = (median(unix), median(tls));
    println!("| command | Unix socket | HTTPS | ratio | commands |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| `podswarmctl get pods` (10 pods) | {:.1} ms | {:.1} ms | {:.2}× | {} each |",
        u.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() / u.as_secs_f64(),
        ROUNDS * BATCH
    );
    let (https, plain) = (
        rss_after_restart(&node, ""),
        rss_after_restart(&node, "[api]\ninsecure_plain_http = true\n"),
    );
    println!();
    println!("| podswarmd RSS | HTTPS | plain HTTP | difference |");
    println!("|---|---:|---:|---:|");
    println!(
        "| {:.0}s after a restart, 10 pods | {:.1} MB | {:.1} MB | {:+.1} MB |",
        SETTLE.as_secs_f64(),
        https as f64 / 1024.0,
        plain as f64 / 1024.0,
        (https as f64 - plain as f64) / 1024.0
    );
}
