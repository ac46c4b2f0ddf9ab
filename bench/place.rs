//! Benchmark: how placement (`podswarm_daemon::schedule::place`, a pure function that every node
//! runs on every reconcile pass) grows with the cluster: time and peak memory of one call.
//!
//! The pods are Deployments of 10 replicas built through the manifest crate (`parse`, `pods_of`),
//! as the reconciler gets them; one Deployment in ten asks for a zone (`nodeSelector`), another
//! one in ten for a host port. Nodes are ready, half in each zone. Two cases per size:
//! - **empty:** nothing runs yet (`current` empty): every pod is placed by the spread rules;
//! - **full:** every pod runs where a first call put it (`current` = that answer): every pod is
//!   kept, the common case of a pass in a settled cluster.
//!
//! Each point runs in its own process (this binary again, told which point by an environment
//! variable), so one point's memory does not hide another's: the peak is the growth of the
//! resident set during the first call (the kernel's high-water mark, reset just before through
//! `/proc/self/clear_refs`), the time the median of further calls.
//!
//! Run: `cargo bench -p podswarm-tests --bench place`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use podswarm_daemon::schedule::{NodeInfo, Placement, place};
use podswarm_manifest::{Limits, PodInstance, Policy, parse, pods_of};

/// A size: (nodes, pods).
type Size = (usize, usize);

const POINTS: &[Size] = &[
    (50, 1_000),
    (50, 5_000),
    (50, 10_000),
    (500, 5_000),
    (500, 10_000),
    (500, 50_000),
];
/// Pairs of points to read the growth from.
const GROWTH: &[(Size, Size)] = &[
    ((50, 1_000), (50, 10_000)),
    ((500, 5_000), (500, 50_000)),
    ((50, 10_000), (500, 10_000)),
    ((50, 5_000), (500, 50_000)),
];
const REPLICAS: usize = 10;
const POINT_VAR: &str = "PODSWARM_BENCH_PLACE_POINT";

fn deployment(i: usize) -> String {
    let selector = if i % 10 == 3 {
        format!("      nodeSelector: {{zone: z{}}}\n", i % 2)
    } else {
        String::new()
    };
    let ports = if i % 10 == 7 {
        format!(
            "        ports: [{{containerPort: 80, hostPort: {}}}]\n",
            30_000 + i % 2_000
        )
    } else {
        String::new()
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-{i}}}\nspec:\n  replicas: {REPLICAS}\n  selector: {{matchLabels: {{app: app-{i}}}}}\n  template:\n    metadata: {{labels: {{app: app-{i}}}}}\n    spec:\n{selector}      containers:\n      - name: c\n        image: busybox\n{ports}"
    )
}

fn workload(nodes: usize, pods: usize) -> (Vec<PodInstance>, Vec<NodeInfo>) {
    let mut all = Vec::with_capacity(pods);
    for i in 0..pods / REPLICAS {
        let m = parse(
            &deployment(i),
            "bench",
            &Limits::default(),
            &Policy::default(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        all.extend(m.objects.iter().flat_map(|o| pods_of(&o.object)));
    }
    let nodes = (0..nodes)
        .map(|i| NodeInfo {
            name: format!("node-{i:03}"),
            labels: [("zone".to_owned(), format!("z{}", i % 2))].into(),
            ready: true,
            cordoned: false,
            draining: false,
        })
        .collect();
    (all, nodes)
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_else(|e| panic!("{e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// One point, in this process: prints `time_ms peak_kib placed`.
fn measure(nodes: usize, pods: usize, full: bool) {
    let (all, node_list) = workload(nodes, pods);
    let refs: Vec<&PodInstance> = all.iter().collect();
    // The first answer is kept alive, so the call measured allocates anew rather than reusing
    // what dropping it would free.
    let first = if full {
        place(&refs, &node_list, &BTreeMap::new())
    } else {
        BTreeMap::new()
    };
    let current: BTreeMap<String, String> = first
        .iter()
        .filter_map(|(k, p)| match p {
            Placement::Node(n) => Some((k.clone(), n.clone())),
            Placement::Pending(_) => None,
        })
        .collect();

    let before = status_kib("VmRSS:");
    std::fs::write("/proc/self/clear_refs", "5").unwrap_or_else(|e| {
        panic!("cannot reset the peak resident set (/proc/self/clear_refs): {e}")
    });
    let answer = place(&refs, &node_list, &current);
    let peak = status_kib("VmHWM:").saturating_sub(before);
    let placed = answer
        .values()
        .filter(|p| matches!(p, Placement::Node(_)))
        .count();
    if full {
        assert_eq!(answer, first, "a settled cluster must keep every pod");
    }
    drop(answer);

    let rounds = if pods >= 50_000 { 3 } else { 7 };
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let answer = place(&refs, &node_list, &current);
            let took = start.elapsed();
            drop(answer);
            took
        })
        .collect();
    times.sort();
    println!(
        "{:.3} {peak} {placed}",
        times[times.len() / 2].as_secs_f64() * 1e3
    );
}

fn main() {
    if let Ok(point) = std::env::var(POINT_VAR) {
        let parts: Vec<&str> = point.split(',').collect();
        let [nodes, pods, case] = parts[..] else {
            panic!("{POINT_VAR}={point}: want nodes,pods,empty|full");
        };
        let number = |s: &str| s.parse::<usize>().unwrap_or_else(|e| panic!("{s}: {e}"));
        measure(number(nodes), number(pods), case == "full");
        return;
    }
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    println!("| nodes | pods | current | time (median) | peak memory | placed |");
    println!("|---:|---:|---|---:|---:|---:|");
    let mut times: BTreeMap<(usize, usize, &str), f64> = BTreeMap::new();
    for &(nodes, pods) in POINTS {
        for case in ["empty", "full"] {
            let out = Command::new(&me)
                .env(POINT_VAR, format!("{nodes},{pods},{case}"))
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                out.status.success(),
                "point {nodes}×{pods} {case}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8_lossy(&out.stdout);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [ms, kib, placed] = fields[..] else {
                panic!("unexpected answer from a point: {line}");
            };
            let ms: f64 = ms.parse().unwrap_or_else(|e| panic!("{ms}: {e}"));
            let kib: f64 = kib.parse().unwrap_or_else(|e| panic!("{kib}: {e}"));
            times.insert((nodes, pods, case), ms);
            println!(
                "| {nodes} | {pods} | {case} | {ms:.1} ms | {:.1} MiB | {placed} |",
                kib / 1024.0
            );
        }
    }
    // The exponent k in time ∝ size^k between two points: 1 is linear, 2 quadratic.
    println!();
    println!("growth (time ∝ size^k):");
    for ((n1, p1), (n2, p2)) in GROWTH {
        let what = match (n1 == n2, p1 == p2) {
            (true, _) => "pods, nodes fixed",
            (_, true) => "nodes, pods fixed",
            _ => "cluster size, pods per node fixed",
        };
        let ratio = if n1 == n2 {
            *p2 as f64 / *p1 as f64
        } else {
            *n2 as f64 / *n1 as f64
        };
        for case in ["empty", "full"] {
            let (Some(t1), Some(t2)) = (times.get(&(*n1, *p1, case)), times.get(&(*n2, *p2, case)))
            else {
                continue;
            };
            println!(
                "  {n1}×{p1} → {n2}×{p2} ({case}): k = {:.2} in {what}",
                (t2 / t1).ln() / ratio.ln()
            );
        }
    }
}
