//! What the scale benchmarks without booted nodes share (`place`, `rollout`, `state_size`): the
//! sizes they run at, the workload (Deployments of 10 replicas built through the manifest crate,
//! nodes in two zones; the replicated state and one node in `cluster`), one process per point,
//! the peak resident set, growth exponents and the TSV files `bench/plot.sh` draws.
//!
//! Each bench includes this file with `#[path]` and uses part of it, hence the `dead_code`
//! allowance at each `mod common;`.

pub mod cluster;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use podswarm_daemon::rollout::{Revision, Seen};
use podswarm_daemon::schedule::NodeInfo;
use podswarm_manifest::{Limits, Object, PodInstance, Policy, parse, pods_of, replicas_of};

/// A size: (nodes, pods).
pub type Size = (usize, usize);

pub const POINTS: &[Size] = &[
    (50, 1_000),
    (50, 5_000),
    (50, 10_000),
    (500, 5_000),
    (500, 10_000),
    (500, 50_000),
];
/// Pairs of points to read the growth from.
pub const GROWTH: &[(Size, Size)] = &[
    ((50, 1_000), (50, 10_000)),
    ((500, 5_000), (500, 50_000)),
    ((50, 10_000), (500, 10_000)),
    ((50, 5_000), (500, 50_000)),
];
pub const REPLICAS: usize = 10;
/// Set (to anything) to have a bench write its figures to `docs/scale/<bench>.tsv`.
pub const TSV_VAR: &str = "PODSWARM_BENCH_TSV";
/// Where the objects are (none names one, so Kubernetes' default).
pub const NAMESPACE: &str = "default";

/// Deployment `app-<i>`: one in ten asks for a zone (`nodeSelector`), another one in ten for a
/// host port. `image` is the template's one change between revisions.
pub fn deployment_yaml(i: usize, image: &str) -> String {
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
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-{i}}}\nspec:\n  replicas: {REPLICAS}\n  selector: {{matchLabels: {{app: app-{i}}}}}\n  template:\n    metadata: {{labels: {{app: app-{i}}}}}\n    spec:\n{selector}      containers:\n      - name: c\n        image: {image}\n{ports}"
    )
}

/// The Service in front of Deployment `app-<i>`.
pub fn service_yaml(i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: app-{i}}}\nspec:\n  selector: {{app: app-{i}}}\n  ports: [{{name: http, port: 80, targetPort: 80}}]\n"
    )
}

/// Every object of one YAML document, as intake makes them.
pub fn objects_of(yaml: &str) -> Vec<Object> {
    parse(yaml, "bench", &Limits::default(), &Policy::default())
        .unwrap_or_else(|e| panic!("{e:?}"))
        .objects
        .into_iter()
        .map(|o| o.object)
        .collect()
}

/// The Deployments for `pods` pods.
pub fn deployments(pods: usize) -> Vec<Object> {
    (0..pods / REPLICAS)
        .flat_map(|i| objects_of(&deployment_yaml(i, "busybox")))
        .collect()
}

/// Every pod of `objects`, as the reconciler gets them before any rollout.
pub fn pods(objects: &[Object]) -> Vec<PodInstance> {
    objects.iter().flat_map(pods_of).collect()
}

/// The clock every rollout figure is taken at (seconds since the epoch): fixed, so every run
/// decides the same.
pub const NOW: u64 = 1_790_000_000;

/// A Deployment as the replicated state holds it: the object, its revision records and the pods
/// that have status records, with what those say.
#[derive(Debug)]
pub struct Deployment {
    pub object: Object,
    pub revisions: BTreeMap<String, Revision>,
    pub records: Vec<(PodInstance, Seen)>,
}

/// Whether Deployment `i` is halfway through a rollout in the `rolling` case: one in ten.
pub fn rolls(i: usize) -> bool {
    i % 10 == 5
}

/// The Deployments for `pods` pods, each with its Service, as the replicated state holds them.
/// Settled, every Deployment's pods are its template's, ready for an hour. With `rolling`, one
/// Deployment in ten ([`rolls`]) has a new template (a new image) and is halfway through the
/// default rolling update (25% surge, 25% unavailable): six old pods available and one
/// terminating, six new ones of which four are ready. Revision records as `Link::apply` writes
/// them: one for each template.
pub fn cluster(pods: usize, rolling: bool) -> (Vec<Deployment>, Vec<Object>) {
    let mut deployments = Vec::new();
    let mut services = Vec::new();
    for i in 0..pods / REPLICAS {
        let first = single(&deployment_yaml(i, "busybox"));
        let Object::Deployment(d) = &first else {
            panic!("not a Deployment");
        };
        let template = d.spec.template.clone();
        let revision = |revision, template, created| Revision {
            revision,
            template,
            created,
            change_cause: None,
        };
        let seen = |ready_since, terminating| Seen {
            ready_since,
            terminating,
        };
        let name = format!("app-{i}");
        let of = |t: &_, ordinals| replicas_of(NAMESPACE, &name, t, ordinals);
        let hash = podswarm_manifest::template_hash(&template);
        let settled = NOW - 3_600;
        let deployment = if rolling && rolls(i) {
            let next = single(&deployment_yaml(i, "busybox:1.37"));
            let Object::Deployment(n) = &next else {
                panic!("not a Deployment");
            };
            let new_template = n.spec.template.clone();
            let new_hash = podswarm_manifest::template_hash(&new_template);
            let mut records = Vec::new();
            records.extend(
                of(&template, 0..6)
                    .into_iter()
                    .map(|p| (p, seen(Some(settled), false))),
            );
            records.extend(
                of(&template, 6..7)
                    .into_iter()
                    .map(|p| (p, seen(None, true))),
            );
            records.extend(
                of(&new_template, 0..4)
                    .into_iter()
                    .map(|p| (p, seen(Some(NOW - 20), false))),
            );
            records.extend(
                of(&new_template, 4..6)
                    .into_iter()
                    .map(|p| (p, seen(None, false))),
            );
            Deployment {
                object: next,
                revisions: [
                    (hash, revision(1, template, settled)),
                    (new_hash, revision(2, new_template, NOW - 60)),
                ]
                .into(),
                records,
            }
        } else {
            let records = of(&template, 0..REPLICAS as u32)
                .into_iter()
                .map(|p| (p, seen(Some(settled), false)))
                .collect();
            Deployment {
                object: first,
                revisions: [(hash, revision(1, template, settled))].into(),
                records,
            }
        };
        deployments.push(deployment);
        services.push(single(&service_yaml(i)));
    }
    (deployments, services)
}

fn single(yaml: &str) -> Object {
    let mut objects = objects_of(yaml);
    assert_eq!(objects.len(), 1, "one object expected");
    objects.remove(0)
}

/// `n` ready nodes, half in each zone.
pub fn nodes(n: usize) -> Vec<NodeInfo> {
    (0..n)
        .map(|i| NodeInfo {
            name: node_name(i),
            labels: [("zone".to_owned(), format!("z{}", i % 2))].into(),
            ready: true,
            cordoned: false,
            draining: false,
        })
        .collect()
}

pub fn node_name(i: usize) -> String {
    format!("node-{i:03}")
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_else(|e| panic!("{e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Runs `f` once and returns its answer with how far the resident set grew meanwhile at its
/// highest (KiB): the kernel's high-water mark, reset just before. The answer is returned, not
/// dropped, so it counts.
pub fn peak_kib<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = status_kib("VmRSS:");
    std::fs::write("/proc/self/clear_refs", "5").unwrap_or_else(|e| {
        panic!("cannot reset the peak resident set (/proc/self/clear_refs): {e}")
    });
    let answer = f();
    (answer, status_kib("VmHWM:").saturating_sub(before))
}

/// The median time of `f` in milliseconds over a few calls (fewer for the largest sizes).
pub fn median_ms<T>(pods: usize, mut f: impl FnMut() -> T) -> f64 {
    let rounds = if pods >= 50_000 { 3 } else { 7 };
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let answer = f();
            let took = start.elapsed();
            // Dropped outside the timing, as the caller would keep it.
            drop(answer);
            took
        })
        .collect();
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

/// The point this process was started for (`nodes,pods,case` in `var`), if any.
pub fn point(var: &str) -> Option<(usize, usize, String)> {
    let point = std::env::var(var).ok()?;
    let parts: Vec<&str> = point.split(',').collect();
    let [nodes, pods, case] = parts[..] else {
        panic!("{var}={point}: want nodes,pods,case");
    };
    let number = |s: &str| s.parse::<usize>().unwrap_or_else(|e| panic!("{s}: {e}"));
    Some((number(nodes), number(pods), case.to_owned()))
}

/// Set to a number of runs per point: each figure is then the lowest of that many runs, the one
/// least disturbed by whatever else the machine runs.
pub const RUNS_VAR: &str = "PODSWARM_BENCH_RUNS";

/// Runs one point in a new process of this binary (so no point's memory hides another's), as
/// many times as [`RUNS_VAR`] says, and returns the words it printed: numbers are the lowest
/// of the runs.
pub fn run_point(var: &str, nodes: usize, pods: usize, case: &str) -> Vec<String> {
    let runs: usize = std::env::var(RUNS_VAR)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let mut best = run_once(var, nodes, pods, case);
    for _ in 1..runs {
        for (kept, word) in best.iter_mut().zip(run_once(var, nodes, pods, case)) {
            if let (Ok(a), Ok(b)) = (kept.parse::<f64>(), word.parse::<f64>())
                && b < a
            {
                *kept = word;
            }
        }
    }
    best
}

fn run_once(var: &str, nodes: usize, pods: usize, case: &str) -> Vec<String> {
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(&me)
        .env(var, format!("{nodes},{pods},{case}"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "point {nodes}×{pods} {case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

pub fn number(word: &str) -> f64 {
    word.parse()
        .unwrap_or_else(|e| panic!("{word:?} is no number: {e}"))
}

/// Times by (nodes, pods, case) in milliseconds.
pub type Times = BTreeMap<(usize, usize, String), f64>;

/// Prints the exponent k in time ∝ size^k between the [`GROWTH`] pairs of points: 1 is linear,
/// 2 quadratic.
pub fn print_growth(times: &Times, cases: &[&str]) {
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
        for case in cases {
            let at = |n: usize, p: usize| times.get(&(n, p, (*case).to_owned()));
            let (Some(t1), Some(t2)) = (at(*n1, *p1), at(*n2, *p2)) else {
                continue;
            };
            println!(
                "  {n1}×{p1} → {n2}×{p2} ({case}): k = {:.2} in {what}",
                (t2 / t1).ln() / ratio.ln()
            );
        }
    }
}

/// Writes `docs/scale/<name>.tsv` (a header line, then one line per row) when [`TSV_VAR`] is
/// set. The path is the workspace's whatever directory cargo runs the bench in.
pub fn write_tsv(name: &str, header: &[&str], rows: &[Vec<String>]) {
    if std::env::var_os(TSV_VAR).is_none() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/scale");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut text = header.join("\t");
    text.push('\n');
    for row in rows {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    let path = dir.join(format!("{name}.tsv"));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!("\nwrote {}", path.display());
}
