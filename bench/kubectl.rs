//! Benchmark: the Kubernetes API under kubectl's load (issue 16).
//!
//! One podswarmd API (the real router, state, link and read model in this process, as
//! podswarmctl's output tests run it: `ctl/tests/support`) serving HTTPS with a token, holding a
//! Deployment of 1,000 pods spread over 3 nodes (the other two nodes are their records in the
//! state; their pods are held as this node's pod views, since the read model takes status
//! records only from live members).
//!
//! - **List latency:** `kubectl get pods` (a `Table`), `kubectl get pods -o json` (the full
//!   `PodList`) and `podswarmctl get pods` (the same `PodList`, printed as its table), each a
//!   whole command as a user runs it over HTTPS with the same kubeconfig, alternating,
//!   [`ROUNDS`] rounds of [`BATCH`]; medians, and their ratio to podswarmctl. Then the server's
//!   share: one `curl` request per answer shape (`time_total`, same connection setup for both).
//! - **Watch cost:** 100 watchers (`curl` processes holding `GET /api/v1/pods?watch=true` from the
//!   listed version, as kubectl's watch does after its list) against none: this process's resident
//!   set (the whole node but gossip's sockets) and its CPU time, idle for [`IDLE`] and while
//!   [`CHURN`] changes of 10 pods each go through the state; every watcher must have seen every
//!   change, or the figures are void.
//!
//! Run: `cargo bench -p podswarmctl --bench kubectl` (kubectl from `PODSWARM_KUBECTLS`' first
//! entry or PATH, and curl).

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../ctl/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use podswarm_api::PodView;
use serde_json::json;
use support::{NODE_NAMES, first_pod_names, https_node, kubeconfig, running_pod};

const PODS: usize = 1000;
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const ROUNDS: usize = 7;
const BATCH: usize = 3;
const WATCHERS: usize = 100;
const IDLE: Duration = Duration::from_secs(10);
const CHURN: usize = 20;

const APP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  replicas: 1000
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: localhost/web:1}]
";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Time per command of [`BATCH`] runs of `program args`.
fn batch(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Duration {
    let start = Instant::now();
    for _ in 0..BATCH {
        let out = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // The whole list, every time: 1,000 pods and a header or the list's envelope.
        assert!(out.stdout.len() > PODS * 20, "{args:?}: a short answer");
    }
    start.elapsed() / BATCH as u32
}

/// This process's resident set, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// This process's CPU time (user + system).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th
    // of the whole line, in clock ticks.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields[11] + fields[12];
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
fn clock_ticks() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn main() {
    let kubectl: std::path::PathBuf = std::env::var("PODSWARM_KUBECTLS")
        .ok()
        .and_then(|l| l.split(':').next().map(Into::into))
        .filter(|p: &std::path::PathBuf| !p.as_os_str().is_empty())
        .unwrap_or_else(|| "kubectl".into());
    let ctl = Path::new(env!("CARGO_BIN_EXE_podswarmctl"));

    let (node, pki, address, token) = https_node(NODE_NAMES);
    node.apply(APP);
    for (i, other) in NODES[1..].iter().enumerate() {
        node.put(
            &format!("nodes/{other}"),
            json!({"name": other, "nodeId": format!("00000000000000b{i}"), "address": format!("192.0.2.{}", 11 + i), "labels": {}}),
        );
        node.put(
            &format!("subnets/{other}"),
            json!({"subnet": format!("10.244.{}.0/24", i + 1)}),
        );
    }
    let names = first_pod_names(APP, PODS as u32);
    let views: Vec<PodView> = names
        .iter()
        .enumerate()
        .map(|(i, n)| PodView {
            ip: Some(format!("10.244.{}.{}", i % 3, 2 + i / 3)),
            ..running_pod(n, NODES[i % 3], 0)
        })
        .collect();
    // All 1,000 as this node's views: the read model takes other nodes' status records only
    // from live members, which the other two (records in the state, no gossip of their own)
    // are not. The list the API renders is the same either way: 1,000 pods on 3 nodes.
    node.pods(views.iter().cloned());
    node.wait_for("1,000 pods in the read model", |n| {
        n.api.model.current().pods().count() == PODS
    });

    let home = tempfile::tempdir().unwrap();
    let cluster = format!(
        "    server: https://{address}\n    certificate-authority-data: {}\n",
        BASE64.encode(&pki.ca_pem)
    );
    let config = kubeconfig(home.path(), "config", &cluster, &token);
    let ca = home.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let cache = home.path().join("cache");
    let home_s = home.path().display().to_string();
    let cache_s = cache.display().to_string();
    let kenv: Vec<(&str, &str)> = vec![
        ("HOME", &home_s),
        ("KUBECONFIG", &config),
        ("KUBECACHEDIR", &cache_s),
    ];

    // List latency.
    let commands: [(&str, &Path, Vec<&str>); 3] = [
        ("kubectl get pods", &kubectl, vec!["get", "pods"]),
        (
            "kubectl get pods -o json",
            &kubectl,
            vec!["get", "pods", "-o", "json"],
        ),
        (
            "podswarmctl get pods",
            ctl,
            vec!["--kubeconfig", &config, "get", "pods"],
        ),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); commands.len()];
    let rounds = std::env::var("PODSWARM_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    for round in 0..=rounds {
        for (i, (_, program, args)) in commands.iter().enumerate() {
            let t = batch(program, args, &kenv);
            // The first round warms caches (kubectl's discovery cache included) and is dropped.
            if round > 0 {
                times[i].push(t);
            }
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    let reference = medians[2];
    println!("\n| command ({PODS} pods, 3 nodes) | median | ratio to podswarmctl |");
    println!("|---|---:|---:|");
    for ((name, _, _), m) in commands.iter().zip(&medians) {
        println!(
            "| `{name}` | {:.0} ms | {:.2}× |",
            m.as_secs_f64() * 1000.0,
            m.as_secs_f64() / reference.as_secs_f64()
        );
    }

    // The server's share: one request per answer shape.
    let url = format!("https://{address}/api/v1/pods");
    let bearer = format!("Authorization: Bearer {token}");
    let ca_s = ca.display().to_string();
    let shapes = [
        ("PodList (JSON)", "application/json"),
        (
            "Table (kubectl get)",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        ),
    ];
    println!("\n| `GET /api/v1/pods` as | median (curl `time_total`) | bytes |");
    println!("|---|---:|---:|");
    for (name, accept) in shapes {
        let mut samples = Vec::new();
        let mut bytes = 0;
        for _ in 0..15 {
            let out = Command::new("curl")
                .args(["-sS", "--cacert", &ca_s, "-H", &bearer])
                .args(["-H", &format!("Accept: {accept}")])
                .args(["-o", "/dev/null", "-w", "%{time_total} %{size_download}"])
                .arg(&url)
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let (t, b) = text.trim().split_once(' ').unwrap();
            samples.push(Duration::from_secs_f64(t.parse().unwrap()));
            bytes = b.parse::<u64>().unwrap();
        }
        println!(
            "| {name} | {:.1} ms | {} KiB |",
            median(samples).as_secs_f64() * 1000.0,
            bytes / 1024
        );
    }

    // Watch cost.
    let list_version = || -> String {
        let list: serde_json::Value = serde_json::from_slice(
            &Command::new("curl")
                .args(["-sS", "--cacert", &ca_s, "-H", &bearer])
                .arg(format!("{url}?limit=1"))
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mine: Vec<PodView> = views
        .iter()
        .filter(|v| v.node == "node-a")
        .cloned()
        .collect();
    // `CHURN` changes, each a restart of 10 of node-a's pods, as a reconciler reports them.
    let mut restarts = 0u32;
    let mut churn = || {
        let start = cpu();
        for _ in 0..CHURN {
            restarts += 1;
            let changed: Vec<PodView> = mine[..10]
                .iter()
                .map(|v| {
                    let mut changed = v.clone();
                    changed.restarts = restarts;
                    changed.containers[0].restarts = restarts;
                    changed
                })
                .collect();
            node.pods(changed);
        }
        (cpu() - start, restarts)
    };
    let idle = || {
        let start = cpu();
        std::thread::sleep(IDLE);
        cpu() - start
    };
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = rss_kib();
    let idle_none = idle();
    let (churn_none, _) = churn();

    let out_dir = tempfile::tempdir().unwrap();
    let watch_url = format!(
        "{url}?watch=true&resourceVersion={}&allowWatchBookmarks=true",
        list_version()
    );
    let mut watchers: Vec<std::process::Child> = (0..WATCHERS)
        .map(|i| {
            Command::new("curl")
                .args(["-sSN", "--cacert", &ca_s, "-H", &bearer])
                .args([
                    "-o",
                    &out_dir.path().join(i.to_string()).display().to_string(),
                ])
                .arg(&watch_url)
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let rss_watched = rss_kib();
    let idle_watched = idle();
    let (churn_watched, last) = churn();
    // Every watcher saw the last change (a lagging watch may fold changes into one event).
    let seen = format!("\"restartCount\":{last}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let behind = (0..WATCHERS)
            .filter(|i| {
                std::fs::read_to_string(out_dir.path().join(i.to_string()))
                    .map(|t| !t.contains(&seen))
                    .unwrap_or(true)
            })
            .count();
        if behind == 0 {
            break;
        }
        if Instant::now() > deadline {
            let first = std::fs::read_to_string(out_dir.path().join("0")).unwrap_or_default();
            let tail = &first[first.len().saturating_sub(600)..];
            panic!(
                "{behind} watchers missed the last change ({seen}); the first one's end: {tail}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = std::fs::read_to_string(out_dir.path().join("0"))
        .unwrap()
        .matches("\"MODIFIED\"")
        .count();
    for w in &mut watchers {
        let _ = w.kill();
        let _ = w.wait();
    }
    println!("\n| {PODS} pods | no watcher | {WATCHERS} watchers | difference |");
    println!("|---|---:|---:|---:|");
    println!(
        "| resident set of the node's API process | {} MiB | {} MiB | {:+} KiB per watcher |",
        rss_before / 1024,
        rss_watched / 1024,
        (rss_watched as i64 - rss_before as i64) / WATCHERS as i64
    );
    println!(
        "| CPU idle, per {} s | {} ms | {} ms | |",
        IDLE.as_secs(),
        idle_none.as_millis(),
        idle_watched.as_millis()
    );
    println!(
        "| CPU for {CHURN} changes of 10 pods | {} ms | {} ms | {:.2} ms per change per watcher |",
        churn_none.as_millis(),
        churn_watched.as_millis(),
        (churn_watched.as_secs_f64() - churn_none.as_secs_f64()) * 1000.0
            / (CHURN * WATCHERS) as f64
    );
    println!(
        "| `MODIFIED` events a watcher got for the {} pod changes | | {events} | |",
        CHURN * 10
    );
}
