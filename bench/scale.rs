//! Scale on booted nodes (issue 11): N Debian trixie nodes on one bridge, each with the `.deb`
//! installed and enabled as a user would, one cluster. For each N given (`PODSWARM_SCALE_NODES`,
//! default `5,10`), it measures:
//!
//! - the time from the first `cluster join` until the first node reports all N Ready;
//! - the time from `apply` of 10 Deployments × 10 replicas (a Service each, and an Ingress) until
//!   systemd on the nodes runs exactly those 100 pods, each once, and how far the spread is from
//!   even (the most and the fewest pods a node runs, against 100/N);
//! - the time from a new pod's unit becoming active until every node's DNS server answers for its
//!   Service;
//! - idle: RSS per node of podswarm's four processes, their CPU time per node per minute and the
//!   gossip bytes sent per node per second (over a minute, from `podswarmctl cluster status`);
//! - node loss: 20% of the nodes killed outright at once; the time until the others run exactly
//!   the 100 pods again, each once;
//! - partition: the remaining nodes split in half (two bridges) for 30 s, then healed; the time
//!   from the heal until every node is Ready again on the first and exactly the 100 pods run,
//!   each once.
//!
//! Needs root, the node tree and `packaging/build.sh`'s `.deb`. Each size's figures replace its
//! row in `docs/scale/booted.tsv` (drawn by `bench/plot.sh`) and are printed as a table for
//! `docs/SCALE.md`.
//! `cargo bench -p podswarm-tests --bench scale`.

use std::time::{Duration, Instant};

use podswarm_tests::ctl::{active_pods, deployment, ready_nodes};
use podswarm_tests::node::{BootOptions, Bridge, Node, built_deb, nodes_or_skip};

const APPS: usize = 10;
const REPLICAS: u32 = 10;

fn app_names() -> Vec<String> {
    (0..APPS).map(|i| format!("s{i}")).collect()
}

/// The app pods (unit, when it became active on the monotonic clock, µs) systemd on a node runs
/// now: one command per node, cheap enough to poll a loaded cluster.
fn pods_on(node: &Node) -> Vec<(String, u64)> {
    let out = node.sh(
        "u=$(systemctl list-units --no-legend --plain --state=active 'podswarm-default_s*.service' | cut -d' ' -f1); \
         [ -z \"$u\" ] || systemctl show -p Id -p ActiveEnterTimestampMonotonic $u",
    );
    let apps = app_names();
    let mut pods = Vec::new();
    let mut unit = None;
    for line in out.lines() {
        if let Some(id) = line.strip_prefix("Id=") {
            unit = Some(id.to_owned());
        } else if let Some(t) = line.strip_prefix("ActiveEnterTimestampMonotonic=")
            && let Some(u) = unit.take()
        {
            let ours = apps
                .iter()
                .any(|a| u.starts_with(&format!("podswarm-default_{a}-")));
            if ours {
                pods.push((u, t.trim().parse().unwrap_or(0)));
            }
        }
    }
    pods
}

/// The kernel's monotonic clock (µs), the one systemd stamps unit state changes with; the
/// nodes share it with this process.
fn monotonic_us() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|e| panic!("clock_gettime: {e}"));
    t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000
}

/// What systemd runs on `nodes`: pods per node, and the latest time one of them became active;
/// `None` when a pod is active on two nodes.
struct Census {
    per_node: Option<Vec<usize>>,
    last_start_us: u64,
}

fn census(nodes: &[&Node]) -> Census {
    let mut per_node = Vec::new();
    let mut all = Vec::new();
    let mut last_start_us = 0;
    for node in nodes {
        let mine = pods_on(node);
        per_node.push(mine.len());
        for (unit, at) in mine {
            last_start_us = last_start_us.max(at);
            all.push(unit);
        }
    }
    let total = all.len();
    all.sort();
    all.dedup();
    Census {
        per_node: (all.len() == total).then_some(per_node),
        last_start_us,
    }
}

fn exactly(c: &Census) -> bool {
    c.per_node
        .as_ref()
        .is_some_and(|c| c.iter().sum::<usize>() == APPS * REPLICAS as usize)
}

/// Waits until `nodes` run exactly the 100 pods, each once, printing the pods per node whenever
/// they change (a slow phase shows its shape: all nodes slow alike, or a few late). Returns the
/// time from `since` (monotonic, µs) until the last of them became active, by systemd's own
/// stamps, so the polling (slow on a loaded machine) adds nothing to it.
fn until_exactly(what: &str, nodes: &[&Node], since_us: u64) -> Duration {
    let started = Instant::now();
    let mut last = None;
    loop {
        let now = census(nodes);
        if now.per_node != last {
            println!(
                "  {:6.1} s: {}",
                started.elapsed().as_secs_f64(),
                now.per_node
                    .as_ref()
                    .map_or("a pod active twice".to_owned(), |c| format!("{c:?}"))
            );
            last = now.per_node.clone();
        }
        if exactly(&now) {
            return Duration::from_micros(now.last_start_us.saturating_sub(since_us));
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// RSS (KiB) of podswarm's four processes on a node.
fn rss_kib(node: &Node) -> u64 {
    node.sh("ps -o rss= -C podswarmd,podswarm-gossip,podswarm-dns,podswarm-ingress || true")
        .split_whitespace()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

/// CPU time (s) podswarm's four processes have used on a node since they started.
fn cpu_s(node: &Node) -> f64 {
    let ticks: f64 = node
        .sh(
            "for p in $(pidof podswarmd podswarm-gossip podswarm-dns podswarm-ingress); do \
             awk '{print $14 + $15}' /proc/$p/stat; done || true",
        )
        .split_whitespace()
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux architecture podswarm packages for.
    ticks / 100.0
}

/// A monotonic timestamp (µs) of a unit's property on a node; 0 when unset.
fn monotonic(node: &Node, unit: &str, property: &str) -> u64 {
    node.sh(&format!(
        "systemctl show -p {property} --value {unit} || true"
    ))
    .trim()
    .parse()
    .unwrap_or(0)
}

/// Seconds from a new pod's unit becoming active until every node's DNS server answers for its
/// Service. Each node runs a watcher (a transient unit polling its own server every 20 ms) that
/// exits when the answer appears; the kernel's monotonic clock is shared by every node, so the
/// watchers' exit times and the pod's start compare directly.
fn dns_spread(first: &Node, nodes: &[&Node]) -> f64 {
    const NAME: &str = "dnsprobe.default.svc.cluster.local";
    for node in nodes {
        node.sh(&format!(
            "systemd-run --quiet --unit=dnswatch -p RemainAfterExit=yes sh -c \
             'until dig @127.0.0.1 +short +time=1 +tries=1 {NAME} | grep -q .; do sleep 0.02; done'"
        ));
    }
    let mut manifest = deployment("dnsprobe", 1);
    manifest.push_str(
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: dnsprobe}\nspec:\n  selector: {app: dnsprobe}\n  ports: [{name: http, port: 80, targetPort: http}]\n",
    );
    first.write("/root/dnsprobe.yaml", manifest.as_bytes());
    first.sh("podswarmctl apply -f /root/dnsprobe.yaml >/dev/null");
    let mut started = 0;
    wait("the probe pod to start", Duration::from_secs(120), || {
        started = nodes
            .iter()
            .find_map(|n| {
                let unit = active_pods(n, "dnsprobe").into_iter().next()?;
                Some(monotonic(n, &unit, "ActiveEnterTimestampMonotonic"))
            })
            .unwrap_or(0);
        started > 0
    });
    let mut seen = Vec::new();
    wait(
        "every node's DNS to answer",
        Duration::from_secs(120),
        || {
            seen = nodes
                .iter()
                .map(|n| monotonic(n, "dnswatch", "ExecMainExitTimestampMonotonic"))
                .collect();
            seen.iter().all(|&t| t > 0)
        },
    );
    for node in nodes {
        node.sh("systemctl stop dnswatch || true");
    }
    first.sh("podswarmctl delete -f /root/dnsprobe.yaml >/dev/null");
    let last = seen.iter().copied().max().unwrap_or(0);
    last.saturating_sub(started) as f64 / 1e6
}

/// A counter of the node's gossip metrics (`podswarmctl cluster status`); 0 when unreadable.
fn gossip_counter(node: &Node, name: &str) -> u64 {
    let out = node.sh("podswarmctl cluster status -o json || true");
    serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| v["metrics"][name].as_u64())
        .unwrap_or(0)
}

fn bytes_sent(node: &Node) -> u64 {
    gossip_counter(node, "bytesSent")
}

/// Waits (at most `limit`) until no node has taken a change of the state for 10 s; how long
/// that took, or `None` when the cluster was still changing at the limit.
fn until_quiet(nodes: &[Node], limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut last: Vec<u64> = Vec::new();
    let mut since = Instant::now();
    while started.elapsed() < limit {
        let now: Vec<u64> = nodes
            .iter()
            .map(|n| gossip_counter(n, "entriesReceived"))
            .collect();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(10) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    None
}

fn wait(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
    started.elapsed()
}

fn run(n: usize, deb: &std::path::Path) -> Row {
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
    let applied = monotonic_us();
    first.sh("podswarmctl apply -f /root/scale.yaml >/dev/null");
    let running = until_exactly("100 pods running", &all, applied);
    let spread = census(&all).per_node.unwrap_or_default();
    let (most, fewest) = (
        spread.iter().copied().max().unwrap_or(0),
        spread.iter().copied().min().unwrap_or(0),
    );

    let dns = dns_spread(first, &all);

    // Idle figures, over a minute once the probe is gone and the state has stopped changing.
    const IDLE: f64 = 60.0;
    std::thread::sleep(Duration::from_secs(10));
    match until_quiet(&booted, Duration::from_secs(300)) {
        Some(t) => println!(
            "  quiet {:.1} s after the probe's delete + 10 s",
            t.as_secs_f64()
        ),
        None => println!("  NOT QUIET: the state still changed 300 s after the probe's delete"),
    }
    let sent_before: Vec<u64> = booted.iter().map(bytes_sent).collect();
    let cpu_before: Vec<f64> = booted.iter().map(cpu_s).collect();
    std::thread::sleep(Duration::from_secs_f64(IDLE));
    let sent_after: Vec<u64> = booted.iter().map(bytes_sent).collect();
    let cpu_after: Vec<f64> = booted.iter().map(cpu_s).collect();
    let gossip_bps = sent_after
        .iter()
        .zip(&sent_before)
        .map(|(a, b)| a.saturating_sub(*b))
        .sum::<u64>() as f64
        / IDLE
        / n as f64;
    let cpu_per_min = cpu_after
        .iter()
        .zip(&cpu_before)
        .map(|(a, b)| (a - b).max(0.0))
        .sum::<f64>()
        / n as f64
        * (60.0 / IDLE);
    let rss_mib = booted.iter().map(rss_kib).sum::<u64>() as f64 / 1024.0 / n as f64;

    // Node loss: the last 20% at once.
    let lost = (n / 5).max(1);
    let kill_at = monotonic_us();
    for node in booted.iter_mut().skip(n - lost) {
        node.kill_hard();
    }
    let alive: Vec<&Node> = booted.iter().take(n - lost).collect();
    let recovered = until_exactly("the 100 pods again on the others", &alive, kill_at);

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
        || ready_nodes(alive[0]).len() == alive.len() && exactly(&census(&alive)),
    );
    let healed = healed_at.elapsed();

    let row = Row {
        n,
        ready_s: ready.as_secs_f64(),
        running_s: running.as_secs_f64(),
        most,
        fewest,
        rss_mib,
        gossip_bps,
        cpu_s_per_min: cpu_per_min,
        loss_s: recovered.as_secs_f64(),
        heal_s: healed.as_secs_f64(),
        dns_s: dns,
    };
    println!("{}", row.markdown());
    drop(booted);
    drop(bridge);
    drop(other);
    row
}

/// One cluster size's figures: a row of `docs/scale/booted.tsv` (which bench/plot.sh draws).
struct Row {
    n: usize,
    ready_s: f64,
    running_s: f64,
    most: usize,
    fewest: usize,
    rss_mib: f64,
    gossip_bps: f64,
    cpu_s_per_min: f64,
    loss_s: f64,
    heal_s: f64,
    dns_s: f64,
}

const TSV_HEADER: &str = "n\tready_s\trunning_s\tmost\tfewest\trss_mib\tgossip_bps\tcpu_s_per_min\tloss_s\theal_s\tdns_s";

impl Row {
    fn tsv(&self) -> String {
        format!(
            "{}\t{:.1}\t{:.1}\t{}\t{}\t{:.1}\t{:.0}\t{:.2}\t{:.1}\t{:.1}\t{:.2}",
            self.n,
            self.ready_s,
            self.running_s,
            self.most,
            self.fewest,
            self.rss_mib,
            self.gossip_bps,
            self.cpu_s_per_min,
            self.loss_s,
            self.heal_s,
            self.dns_s
        )
    }

    fn markdown(&self) -> String {
        format!(
            "| {} | {:.1} s | {:.1} s | {} / {} (even: {:.1}) | {:.2} s | {:.0} MiB | {:.1} s | {:.0} B/s | {} killed: {:.1} s | {:.1} s |",
            self.n,
            self.ready_s,
            self.running_s,
            self.most,
            self.fewest,
            100.0 / self.n as f64,
            self.dns_s,
            self.rss_mib,
            self.cpu_s_per_min,
            self.gossip_bps,
            (self.n / 5).max(1),
            self.loss_s,
            self.heal_s,
        )
    }
}

/// Replaces the rows of `docs/scale/booted.tsv` for the sizes just measured, keeping the others,
/// so sizes can be measured in separate runs.
fn record(rows: &[Row]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scale/booted.tsv");
    let mut kept: Vec<(usize, String)> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| Some((l.split('\t').next()?.parse().ok()?, l.to_owned())))
        .filter(|(n, _)| rows.iter().all(|r| r.n != *n))
        .collect();
    kept.extend(rows.iter().map(|r| (r.n, r.tsv())));
    kept.sort_by_key(|(n, _)| *n);
    let mut out = format!("{TSV_HEADER}\n");
    for (_, l) in kept {
        out.push_str(&l);
        out.push('\n');
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    std::fs::write(&path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!("wrote {}", path.display());
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
    let mut rows = Vec::new();
    for n in sizes {
        let row = run(n, &deb);
        // Written after each size, so a later size's failure keeps the earlier ones.
        rows.push(row);
        record(&rows);
    }
    println!(
        "| N | all Ready after the joins | apply → 100 pods running | pods per node, most / fewest | new pod → every node's DNS | RSS per node (podswarm's 4 processes) | CPU per node per idle minute | gossip sent per node, idle | 20% node loss → 100 pods again | half/half partition 30 s → healed |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!("{}", r.markdown());
    }
}
