//! A settled cluster's replicated state as podswarm writes it (`state`), and one node of it in
//! this process (`Daemon`): podswarm-gossip's node and podswarmd's link, so podswarmd's readers
//! of the state are measured as they run.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podswarm_daemon::lifecycle::podman_names;
use podswarm_daemon::link::Link;
use podswarm_daemon::plan::{container_units, service};
use podswarm_daemon::reconcile::{ContainerView, Phase, PodView, PodViews};
use podswarm_daemon::rollout::Seen;
use podswarm_daemon::schedule::{Placement, place};
use podswarm_daemon::state::State;
use podswarm_generator::{NodeContext, Objects, Options, PodNetwork, render_pod};
use podswarm_gossip::node::{Node as Gossip, Settings};
use podswarm_manifest::{Object, PodInstance, Policy};
use serde_json::{Value, json};

use super::{NAMESPACE, NOW};

/// Node ids are random 64-bit numbers; these have all 20 decimal digits, as most do.
const NODE_ID: u64 = 0xd1b5_4a32_d192_ed03;

struct Node {
    name: String,
    id: u64,
    address: Ipv4Addr,
    network: PodNetwork,
    zone: String,
    /// Addresses given so far.
    given: u32,
}

fn cluster_nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let byte = |v: usize| u8::try_from(v).unwrap_or_else(|e| panic!("{e}"));
            Node {
                name: super::node_name(i),
                id: NODE_ID.wrapping_add(i as u64 * 0x9e37_79b9),
                address: Ipv4Addr::new(192, 168, byte(i / 250), byte(i % 250 + 2)),
                network: PodNetwork {
                    subnet: format!("10.{}.{}.0/24", 64 + i / 256, i % 256)
                        .parse()
                        .unwrap_or_else(|e| panic!("{e}")),
                },
                zone: format!("z{}", i % 2),
                given: 0,
            }
        })
        .collect()
}

/// The status record podswarmd publishes for `pod` running on `node` (as `reconcile`'s `view`
/// and `observe` fill it in): ready as `seen` says.
fn record(pod: &PodInstance, node: &mut Node, seen: Seen) -> PodView {
    node.given += 1;
    let ip = Ipv4Addr::from(u32::from(node.network.gateway()) + node.given);
    let context = NodeContext {
        node_name: node.name.clone(),
        node_ip: Some(node.address.into()),
        network: node.network.clone(),
        dns_server: Some(node.network.gateway().into()),
        cluster_domain: "cluster.local".to_owned(),
    };
    let options = Options::default();
    let rendered = render_pod(pod, Some(ip), &context, &options, &Objects::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let podman = podman_names(pod, &options);
    let containers = container_units(pod, &rendered)
        .into_iter()
        .map(|(name, unit)| ContainerView {
            podman_name: podman.get(&name).cloned().unwrap_or_default(),
            image: pod
                .spec
                .containers
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            name,
            unit,
            state: "active/running".to_owned(),
            restarts: 0,
        })
        .collect();
    PodView {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        node: node.name.clone(),
        ip: Some(ip.to_string()),
        phase: Phase::Running,
        ready: seen.ready_since.is_some(),
        restarts: 0,
        reason: None,
        message: None,
        owner: pod.owner.as_ref().map(|o| format!("{}/{}", o.kind, o.name)),
        labels: pod.labels.clone(),
        unit: rendered.service.clone(),
        units: rendered.units.iter().filter_map(service).collect(),
        containers,
        created: NOW - 3_600,
        warnings: rendered.warnings,
        ready_since: seen.ready_since,
        terminating: seen.terminating,
        moving: false,
        replaces: None,
    }
}

/// Every key of the replicated state of a cluster of this size ([`super::cluster`]), with its
/// value: per node its record (as podswarm-gossip writes it) and subnet claim; per Deployment its
/// object, Service and revision records; per pod its status record, on the node
/// `schedule::place` chose.
pub fn state(nodes: usize, pods: usize, rolling: bool) -> Vec<(String, Value)> {
    let (deployments, services) = super::cluster(pods, rolling);
    let mut nodes = cluster_nodes(nodes);
    let infos = super::nodes(nodes.len());
    let mut kv = Vec::new();
    for n in &nodes {
        kv.push((
            format!("nodes/{}", n.name),
            json!({
                "name": n.name,
                "nodeId": format!("{:016x}", n.id),
                "address": n.address.to_string(),
                "gossip": SocketAddr::from((n.address, 7946)).to_string(),
                "labels": {"zone": n.zone},
            }),
        ));
        kv.push((
            format!("subnets/{}", n.name),
            json!({"subnet": n.network.subnet.to_string()}),
        ));
    }
    let object_key = |o: &Object| format!("objects/{}/{}/{}", o.kind(), o.namespace(), o.name());
    for s in &services {
        kv.push((object_key(s), s.to_value()));
    }
    let mut records = Vec::new();
    for d in deployments {
        kv.push((object_key(&d.object), d.object.to_value()));
        for (hash, revision) in &d.revisions {
            kv.push((
                format!("revisions/{NAMESPACE}/{}/{hash}", d.object.name()),
                serde_json::to_value(revision).unwrap_or_else(|e| panic!("{e}")),
            ));
        }
        records.extend(d.records);
    }
    let refs: Vec<&PodInstance> = records.iter().map(|(p, _)| p).collect();
    let placed = place(&refs, &infos, &BTreeMap::new());
    let index: BTreeMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    for (pod, seen) in &records {
        let key = format!("{}/{}", pod.namespace, pod.name);
        let Some(Placement::Node(on)) = placed.get(&key) else {
            panic!("{key} not placed");
        };
        let view = record(pod, &mut nodes[index[on]], *seen);
        kv.push((
            format!("pods/{key}"),
            serde_json::to_value(&view).unwrap_or_else(|e| panic!("{e}")),
        ));
    }
    kv
}

/// One node in this process: a real podswarm-gossip node (alone, on loopback) holding a state,
/// and podswarmd's real `Link` following it over its control socket, as on a node.
#[derive(Debug)]
pub struct Daemon {
    pub link: Arc<Link>,
    /// From the link's start until its mirror held the node's state: the subscription's
    /// snapshot, sent, read and taken in (what podswarmd does at every (re)connect).
    pub follow: Duration,
    _gossip: Arc<Gossip>,
    _stop: tokio::sync::watch::Sender<bool>,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts the node with `state` written into its replica and waits until the link's mirror
    /// holds all of it. The node is the only live member, so every status record is rewritten to
    /// name it: pods on nodes that are down count for nothing in rollouts, and the other nodes
    /// cannot be live members of a cluster of one process.
    pub fn start(state: Vec<(String, Value)>) -> Daemon {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let name = super::node_name(0);
        let keys = state.len();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let (gossip, link, follow) = runtime.block_on(async {
            let settings = Settings {
                node_name: name.clone(),
                ..Settings::loopback(dir.path())
            };
            std::fs::create_dir_all(&settings.state_dir).unwrap_or_else(|e| panic!("{e}"));
            let gossip = Gossip::start(settings)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            // Into the replica directly: as a state this node already held (or took in one
            // exchange), not as writes of its own to broadcast, which a node without peers would
            // queue for ever.
            gossip
                .with(|s| {
                    let mut replica = s.replica().lock().unwrap_or_else(|p| p.into_inner());
                    for (key, mut value) in state {
                        if key.starts_with("pods/") {
                            value["node"] = json!(name);
                        }
                        replica.write(&key, Some(value));
                    }
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let control = dir.path().join("control.sock");
            let listener =
                podswarm_gossip::control::bind(&control).unwrap_or_else(|e| panic!("{e}"));
            tokio::spawn(podswarm_gossip::control::serve(
                listener,
                Arc::clone(&gossip),
            ));
            let clock: podswarm_daemon::state::Clock = Arc::new(|| NOW);
            let state = State::open(&dir.path().join("daemon"), &Policy::default(), clock)
                .unwrap_or_else(|e| panic!("{e}"));
            let link = Link::new(control, name.clone(), Arc::new(state), Policy::default());
            // Nothing runs here: publishing this node's (empty) views would delete the records.
            link.hold_views();
            let start = Instant::now();
            tokio::spawn(Arc::clone(&link).run(PodViews::default(), shutdown));
            if !link.synced(Duration::from_secs(600)).await {
                let m = link.mirror();
                panic!(
                    "the link did not follow the node within 10 minutes (mirror: synced {}, {} of {keys} keys)",
                    m.synced,
                    m.entries.len()
                );
            }
            (gossip, link, start.elapsed())
        });
        let held = link.mirror().entries.len();
        // Its own node record, and the join token a new cluster writes.
        assert!(held >= keys, "the mirror holds {held} of {keys} keys");
        Daemon {
            link,
            follow,
            _gossip: gossip,
            _stop: stop,
            _runtime: runtime,
            _dir: dir,
        }
    }
}
