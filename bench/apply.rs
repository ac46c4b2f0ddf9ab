//! Benchmark: apply → every unit active, podswarm against the floor.
//!
//! The floor is what a careful person would do by hand on the same node: write the same number of
//! Quadlet `.container` files, run one `systemctl daemon-reload` and one `systemctl start` for all
//! units. Both run on one booted node (Debian trixie, systemd 257, Podman 5.4) in the same session,
//! alternating, and the median of the rounds is reported as a ratio.
//!
//! The same apply with `hostUsers: true` (allowed on the bench node) measures what the pods' own
//! user namespaces cost (podswarm's default, which the floor's hand-written units do not have).
//!
//! Run: `cargo bench -p podswarm-tests --bench apply` (root; builds the node tree if needed).

use std::time::{Duration, Instant};

use podswarm_tests::node::{BootOptions, Node, nodes_or_skip};

const ROUNDS: usize = 4;

fn active(node: &Node, pattern: &str) -> usize {
    let out = node.exec(&[
        "systemctl",
        "list-units",
        "--no-legend",
        "--plain",
        "--state=active",
        pattern,
    ]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn wait_active(node: &Node, pattern: &str, n: usize) {
    let start = Instant::now();
    while active(node, pattern) < n {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "timed out waiting for {n} active {pattern}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_gone(node: &Node, pattern: &str) {
    let start = Instant::now();
    loop {
        let out = node.exec(&[
            "systemctl",
            "list-units",
            "--no-legend",
            "--plain",
            "--all",
            pattern,
        ]);
        if String::from_utf8_lossy(&out.stdout)
            .lines()
            .all(|l| !l.contains(" active "))
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "timed out waiting for {pattern} to stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One apply of N pods; `host_users`: in the host's user namespace (`hostUsers: true`) instead of
/// one of their own each (the default).
fn podswarm_round(node: &Node, n: usize, host_users: bool) -> Duration {
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: bench}}\nspec:\n  replicas: {n}\n  selector: {{matchLabels: {{app: bench}}}}\n  template:\n    metadata: {{labels: {{app: bench}}}}\n    spec:\n      hostUsers: {host_users}\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {{name: c, image: localhost/busybox:latest, imagePullPolicy: Never, command: [/bin/sleep, '3600']}}\n"
    );
    node.write("/root/bench.yaml", manifest.as_bytes());
    let start = Instant::now();
    node.sh("podswarmctl apply -f /root/bench.yaml >/dev/null");
    wait_active(node, "podswarm-default_bench-*", n);
    let took = start.elapsed();
    node.sh("podswarmctl delete deployment bench >/dev/null");
    wait_gone(node, "podswarm-default_bench-*");
    took
}

fn floor_round(node: &Node, n: usize) -> Duration {
    let mut script = String::from("set -e; d=/etc/containers/systemd/floor; mkdir -p $d; ");
    let units: Vec<String> = (0..n).map(|i| format!("floor-{i}.service")).collect();
    for i in 0..n {
        script.push_str(&format!(
            "printf '[Container]\\nImage=localhost/busybox:latest\\nPull=never\\nNetwork=podswarm.network\\nExec=/bin/sleep 3600\\nStopTimeout=1\\n' > $d/floor-{i}.container; "
        ));
    }
    script.push_str(&format!(
        "systemctl daemon-reload; systemctl start {}",
        units.join(" ")
    ));
    let start = Instant::now();
    node.sh(&script);
    wait_active(node, "floor-*", n);
    let took = start.elapsed();
    node.sh(&format!("systemctl stop {}; rm -rf /etc/containers/systemd/floor; systemctl daemon-reload; systemctl reset-failed 'floor-*' || true", units.join(" ")));
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if nodes_or_skip("bench apply").is_none() {
        return;
    }
    let node = Node::boot("bench", &BootOptions::default());
    node.import_busybox();
    // The host's user namespace is allowed, for the rounds that measure what one's own costs.
    node.write(
        "/etc/podswarm/podswarm.toml",
        b"[workloads]\nallow_host_users = true\n",
    );
    node.install_podswarm();
    println!(
        "| pods | podswarm median | floor median | ratio | podswarm, hostUsers: true | user namespaces cost | rounds |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in [1usize, 10, 50] {
        let (mut ours, mut host, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        // One warm-up of each, not counted: the first container start pays for podman's caches.
        podswarm_round(&node, n, false);
        podswarm_round(&node, n, true);
        floor_round(&node, n);
        // The two podswarm variants swap places every round: a round pays for some of the
        // teardown of the one before it.
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                ours.push(podswarm_round(&node, n, false));
                host.push(podswarm_round(&node, n, true));
            } else {
                host.push(podswarm_round(&node, n, true));
                ours.push(podswarm_round(&node, n, false));
            }
            floor.push(floor_round(&node, n));
        }
        let (o, h, f) = (median(ours), median(host), median(floor));
        println!(
            "| {n} | {:.2} s | {:.2} s | {:.2}× | {:.2} s | {:.2}× | {ROUNDS} |",
            o.as_secs_f64(),
            f.as_secs_f64(),
            o.as_secs_f64() / f.as_secs_f64(),
            h.as_secs_f64(),
            o.as_secs_f64() / h.as_secs_f64()
        );
    }
}
