//! Benchmark: the size of the replicated state and of an anti-entropy exchange as the cluster
//! grows, encoded by the real code (podswarm-gossip's replica and `proto::Sync` messages, sealed
//! by `podswarm_cluster::Sealer`; podswarmd's records through their own types), and what holding
//! and reading that state costs a node.
//!
//! The state is what a settled cluster holds (`common::cluster::state`): per Deployment (10
//! replicas, as in `bench/place.rs`) its object, its Service and its revision record; per pod its
//! status record (`pods/<ns>/<pod>`, the `PodView` podswarmd publishes for a running, ready pod,
//! with the units `render_pod` gives it on the node `schedule::place` chose); per node its record
//! (`nodes/<name>`, as podswarm-gossip writes it) and its subnet claim.
//!
//! Three processes per size:
//! - `build`: the replica file (`replica.json`, what every node stores) and its parts by key
//!   prefix; the bytes (sealed frames with their length prefix, as podswarm-gossip counts them)
//!   of one anti-entropy exchange between two nodes, in sync (`Hello`, `InSync`) and when the
//!   answering node lacks one pod record, 1% or 10% of them, or everything (a node that joins);
//!   the control socket's subscription snapshot (podswarmd's first read after every
//!   (re)connect), one line against the line limit; the SWIM delta of one pod record's change,
//!   and how many travel as a hint (receivers then pull with a full exchange) rather than
//!   inline; CPU: the fingerprint each side computes for every exchange, the whole exchange that
//!   lacks one record (both sides' work), and what podswarm-gossip does after changes (at most
//!   every 300 ms): the state taken and encoded under the replica's lock, then the file written;
//! - `load`: the time and peak memory to open the replica file, as podswarm-gossip does at every
//!   start: about what holding the state takes;
//! - `daemon`: podswarmd's side, a real `Link` following a real gossip node that holds the
//!   state: how long the subscription takes to fill the mirror, the copy of the whole mirror
//!   (`Link::mirror`) and the decoding of every status record (`Link::pod_records`) that its
//!   readers take.
//!
//! Run: `cargo bench -p podswarm-tests --bench state_size` (with `PODSWARM_BENCH_TSV=1`, also
//! writes `docs/scale/state_size.tsv` for `bench/plot.sh`; with `PODSWARM_BENCH_RUNS=3`, each
//! figure is the lowest of three runs).

#[path = "common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use common::POINTS;
use podswarm_cluster::{ClusterKey, Entry, Kind, Sealer, Store};
use podswarm_gossip::control::protocol::{Item, MAX_RESPONSE, Response};
use podswarm_gossip::proto::{Delta, MAX_FRAME, Sync};
use podswarm_gossip::replica::{Lineage, Replica};

const POINT_VAR: &str = "PODSWARM_BENCH_STATE_POINT";
/// podswarm-gossip's `INLINE_DELTA`: a delta whose JSON is larger travels as a hint.
const INLINE_DELTA: usize = 900;
const CLUSTER: u64 = 0x5eed_c1a5_7e40_0001;
/// The replica's own node id: a random 64-bit number with all 20 decimal digits, as most are.
const NODE_ID: u64 = 0xd1b5_4a32_d192_ed03;

/// Where a point's replica file goes between its `build` and `load` processes.
fn state_dir(nodes: usize, pods: usize, runner: u32) -> PathBuf {
    std::env::temp_dir().join(format!("podswarm-bench-state-{runner}-{nodes}-{pods}"))
}

/// Bytes on the wire of one message: sealed, with the frame's length prefix.
fn frame(sealer: &Sealer, msg: &Sync) -> usize {
    let plain = serde_json::to_vec(msg).unwrap_or_else(|e| panic!("{e}"));
    sealer.seal(Kind::Sync, &plain).len() + 4
}

/// One exchange started by the node holding `a` with one holding `b`, as `sync_with` and
/// `answer_sync` run it: total bytes both ways.
fn exchange(sealer: &Sealer, a: &Store, b: &Store) -> usize {
    let fingerprint = a.fingerprint();
    let hello = frame(
        sealer,
        &Sync::Hello {
            fingerprint,
            recovering: false,
        },
    );
    if b.fingerprint() == fingerprint {
        return hello + frame(sealer, &Sync::InSync);
    }
    let theirs = b.digest();
    let mine = a.digest();
    let push = Sync::Push {
        entries: a.newer_than(&theirs),
        digest: Some(mine.clone()),
    };
    let back = Sync::Push {
        entries: b.newer_than(&mine),
        digest: None,
    };
    let digest = Sync::Digest {
        digest: theirs,
        recovering: false,
    };
    hello + frame(sealer, &digest) + frame(sealer, &push) + frame(sealer, &back)
}

/// `a` without every `every`-th pod record.
fn lacking(a: &Store, every: usize) -> Store {
    let mut b = Store::new();
    let mut n = 0;
    for (key, entry) in a.range("") {
        if key.starts_with("pods/") {
            n += 1;
            if n % every == 0 {
                continue;
            }
        }
        b.apply(key, entry.clone());
    }
    b
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Builds the state into a replica at `dir` and prints the sizes (see the module's doc).
fn build(nodes: usize, pods: usize, dir: &std::path::Path) {
    let kv = common::cluster::state(nodes, pods, false);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let mut replica =
        Replica::open_as(dir, CLUSTER, NODE_ID, Lineage::New).unwrap_or_else(|e| panic!("{e}"));
    for (key, value) in kv {
        replica.write(&key, Some(value));
    }
    replica.flush().unwrap_or_else(|e| panic!("{e}"));
    let file = std::fs::metadata(dir.join("replica.json"))
        .unwrap_or_else(|e| panic!("{e}"))
        .len();
    let a = replica.store();

    let mut parts: BTreeMap<String, usize> = BTreeMap::new();
    for (key, entry) in a.range("") {
        let prefix = key.split('/').next().unwrap_or("");
        let bytes = serde_json::to_vec(&(key, entry))
            .unwrap_or_else(|e| panic!("{e}"))
            .len();
        *parts.entry(prefix.to_owned()).or_default() += bytes;
    }
    let part = |p: &str| parts.get(p).copied().unwrap_or(0);

    let sealer = Sealer::new(&ClusterKey::generate(), NODE_ID);
    let in_sync = exchange(&sealer, a, a);
    let records = a.range("pods/").count();
    let one = lacking(a, records);
    let mut sizes: Vec<usize> = [records, 100, 10]
        .into_iter()
        .map(|every| exchange(&sealer, a, &lacking(a, every)))
        .collect();
    // A node that joins holds nothing yet.
    sizes.push(exchange(&sealer, a, &Store::new()));
    let digest = frame(
        &sealer,
        &Sync::Digest {
            digest: a.digest(),
            recovering: false,
        },
    );

    let items: Vec<Item> = a
        .range("")
        .filter_map(|(key, e)| {
            Some(Item {
                key: key.to_owned(),
                version: e.version,
                value: e.value.clone()?,
            })
        })
        .collect();
    let snapshot = serde_json::to_vec(&Response::Snapshot(items))
        .unwrap_or_else(|e| panic!("{e}"))
        .len()
        + 1;

    let origin = SocketAddr::from(([192, 168, 0, 2], 7946));
    let delta = |key: &str, entry: &Entry| {
        let d = Delta {
            key: key.to_owned(),
            version: entry.version,
            entry: Some(entry.clone()),
            origin,
        };
        serde_json::to_vec(&d)
            .unwrap_or_else(|e| panic!("{e}"))
            .len()
    };
    let pod_deltas: Vec<usize> = a.range("pods/").map(|(k, e)| delta(k, e)).collect();
    let hints = pod_deltas.iter().filter(|&&b| b > INLINE_DELTA).count();
    let deployment_delta = median(
        a.range("objects/Deployment/")
            .map(|(k, e)| delta(k, e))
            .collect(),
    );

    let fingerprint_ms = common::median_ms(pods, || a.fingerprint());
    let one_ms = common::median_ms(pods, || exchange(&sealer, a, &one));
    let key = a
        .range("pods/")
        .next()
        .map(|(k, e)| (k.to_owned(), e.value.clone()))
        .unwrap_or_else(|| panic!("no pod record"));
    let entries = a.len();
    // What podswarm-gossip does after a change (at most every 300 ms): the state taken and
    // encoded under the replica's lock, then written and synced outside it.
    let (mut taking, mut writing) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        replica.write(&key.0, key.1.clone());
        let start = Instant::now();
        let pending = replica
            .pending()
            .unwrap_or_else(|| panic!("a change left nothing to write"));
        taking.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        pending.write().unwrap_or_else(|e| panic!("{e}"));
        writing.push(start.elapsed().as_secs_f64() * 1e3);
    }

    let words = [
        entries.to_string(),
        file.to_string(),
        part("objects").to_string(),
        part("revisions").to_string(),
        part("pods").to_string(),
        (part("nodes") + part("subnets")).to_string(),
        digest.to_string(),
        in_sync.to_string(),
        sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        snapshot.to_string(),
        median(pod_deltas.clone()).to_string(),
        format!("{:.4}", hints as f64 / pod_deltas.len() as f64),
        deployment_delta.to_string(),
        format!("{fingerprint_ms:.3}"),
        format!("{one_ms:.3}"),
        format!("{:.3}", median(taking)),
        format!("{:.3}", median(writing)),
    ];
    println!("{}", words.join(" "));
}

/// Opens the replica file at `dir` as podswarm-gossip does at its start: prints
/// `time_ms peak_kib`.
fn load(dir: &std::path::Path) {
    let start = Instant::now();
    let (replica, peak) = common::peak_kib(|| {
        Replica::open_as(dir, CLUSTER, NODE_ID, Lineage::Member).unwrap_or_else(|e| panic!("{e}"))
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert!(!replica.store().is_empty(), "the replica file was not read");
    assert!(
        replica.recovering().is_none(),
        "the replica file was damaged"
    );
    println!("{ms:.3} {peak}");
}

/// podswarmd's side, in a fresh process: a real link following a real gossip node that holds
/// the state. Prints the time (ms) of `Link::mirror` (the copy of the whole mirror that the read
/// model's rebuild, the status publisher every second and most readers take) and of
/// `Link::pod_records` (every status record decoded, at each rebuild of the read model).
fn daemon(nodes: usize, pods: usize) {
    let node = common::cluster::Daemon::start(common::cluster::state(nodes, pods, false));
    let mirror_ms = common::median_ms(pods, || node.link.mirror());
    let records_ms = common::median_ms(pods, || node.link.pod_records());
    let follow_ms = node.follow.as_secs_f64() * 1e3;
    println!("{follow_ms:.3} {mirror_ms:.3} {records_ms:.3}");
}

fn mib(bytes: f64) -> String {
    format!("{:.2}", bytes / (1024.0 * 1024.0))
}

fn main() {
    if let Some((nodes, pods, case)) = common::point(POINT_VAR) {
        let dir = state_dir(nodes, pods, std::os::unix::process::parent_id());
        match case.as_str() {
            "build" => build(nodes, pods, &dir),
            "load" => load(&dir),
            _ => daemon(nodes, pods),
        }
        return;
    }
    // The words the point's processes print, in order (`build`, `load`, `daemon`).
    let words_of = [
        "entries",
        "state_bytes",
        "objects_bytes",
        "revisions_bytes",
        "pods_bytes",
        "nodes_bytes",
        "digest_bytes",
        "insync_bytes",
        "lack_one_bytes",
        "lack_1pct_bytes",
        "lack_10pct_bytes",
        "join_bytes",
        "snapshot_bytes",
        "pod_delta_bytes",
        "hint_share",
        "deployment_delta_bytes",
        "fingerprint_ms",
        "lack_one_ms",
        "take_state_ms",
        "write_file_ms",
        "load_ms",
        "load_peak_kib",
        "follow_ms",
        "mirror_copy_ms",
        "pod_records_ms",
    ];
    println!(
        "| nodes | pods | keys | state file | digest | in sync | lacks 1 record | lacks 1% | lacks 10% | joining | snapshot | fingerprint | lacks-1 CPU | take state | write file | load | load peak | link follows | mirror copy | pod records |"
    );
    println!(
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let me = std::process::id();
    for &(nodes, pods) in POINTS {
        let mut words = common::run_point(POINT_VAR, nodes, pods, "build");
        words.extend(common::run_point(POINT_VAR, nodes, pods, "load"));
        let _ = std::fs::remove_dir_all(state_dir(nodes, pods, me));
        words.extend(common::run_point(POINT_VAR, nodes, pods, "daemon"));
        assert_eq!(words.len(), words_of.len(), "answer: {words:?}");
        let got: BTreeMap<&str, &str> = words_of
            .iter()
            .copied()
            .zip(words.iter().map(String::as_str))
            .collect();
        let n = |name: &str| common::number(got[name]);
        let m = |name: &str| mib(n(name));
        println!(
            "| {nodes} | {pods} | {} | {} MiB | {} MiB | {} B | {} MiB | {} MiB | {} MiB | {} MiB | {} MiB | {} ms | {} ms | {} ms | {} ms | {} ms | {} MiB | {} ms | {} ms | {} ms |",
            got["entries"],
            m("state_bytes"),
            m("digest_bytes"),
            got["insync_bytes"],
            m("lack_one_bytes"),
            m("lack_1pct_bytes"),
            m("lack_10pct_bytes"),
            m("join_bytes"),
            m("snapshot_bytes"),
            got["fingerprint_ms"],
            got["lack_one_ms"],
            got["take_state_ms"],
            got["write_file_ms"],
            got["load_ms"],
            mib(n("load_peak_kib") * 1024.0),
            got["follow_ms"],
            got["mirror_copy_ms"],
            got["pod_records_ms"],
        );
        notes.push(format!(
            "{nodes}×{pods}: state {} MiB (objects {}, revisions {}, pod records {}, nodes {}); pod record delta {} B, {:.1}% as hints; Deployment delta {} B; joining push at {:.0}% of the frame limit, snapshot at {:.0}% of the line limit",
            m("state_bytes"),
            m("objects_bytes"),
            m("revisions_bytes"),
            m("pods_bytes"),
            m("nodes_bytes"),
            got["pod_delta_bytes"],
            n("hint_share") * 100.0,
            got["deployment_delta_bytes"],
            n("join_bytes") / MAX_FRAME as f64 * 100.0,
            n("snapshot_bytes") / MAX_RESPONSE as f64 * 100.0,
        ));
        let mut row = vec![nodes.to_string(), pods.to_string()];
        row.extend(words);
        rows.push(row);
    }
    println!();
    for note in notes {
        println!("{note}");
    }
    let mut header = vec!["nodes", "pods"];
    header.extend(words_of);
    common::write_tsv("state_size", &header, &rows);
}
