//! The read model: one immutable [`Snapshot`] of the cluster as this node sees it (objects, every
//! pod with its placement and status, Service endpoints, Deployment status, nodes, the DNS
//! whitelist, API token records), shared by everything that reads the cluster: the API handlers,
//! the routing view writer ([`crate::view`]) and `/metrics` ([`crate::metrics`]).
//!
//! Why one snapshot: every reader used to derive the same facts on its own, per request or per
//! second (each Service's endpoints cloned every object, re-expanded every Deployment into pods and
//! deserialised the gossip mirror again), and two readers could disagree within one moment. Now
//! the derivation happens once per change, in [`Snapshot::build`], a pure function of [`Inputs`]
//! (testable without a node), and readers share the result through an `Arc`.
//!
//! When: [`Model`] rebuilds when one of its sources moves on: the local state's version (objects,
//! and membership through [`State::touch`]), the link's mirror generation ([`Link::changes`]), or
//! the reconciler's pod views. The views have no change signal of their own (they are a plain
//! `RwLock` the reconciler and the prober write), so [`Model::run`] compares them every
//! [`VIEWS_POLL`]; the other two wake it at once. A rebuild is published by swapping the `Arc`
//! behind a `watch` channel, so a reader holds one consistent snapshot for as long as it needs.
//!
//! Read-your-writes: an API handler that wrote through the link calls [`Model::settled`], which
//! returns a snapshot no older than the state and mirror at that moment (building it there if the
//! background task has not yet), so the client's next request sees its write, as before. Handlers
//! that read what they are about to change (scale, whitelist edits, namespace deletes) read a
//! settled snapshot too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use podswarm_manifest::Object;
use podswarm_view::Whitelist;
use serde_json::Value;
use tokio::sync::watch;

use crate::link::{Link, NodeView};
use crate::reconcile::{PodView, PodViews};
use crate::rollout::Facts;
use crate::state::{Entry, ObjectKey, State, TokenRecord};

// What the API answers with is the API's contract; the snapshot derives it.
pub use podswarm_api::{DeploymentStatus, Endpoint};

/// The key of the DNS whitelist in the replicated state.
pub const WHITELIST_KEY: &str = "dns/whitelist";

/// How often [`Model::run`] looks for changed pod views (readiness flips, unit states).
pub const VIEWS_POLL: Duration = Duration::from_millis(250);

/// The versions of the sources a snapshot was built from. A snapshot is at least as new as its
/// stamp: the stamp is read before the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    /// [`State::version`].
    pub state: u64,
    /// The link's mirror generation ([`Link::changes`]).
    pub link: u64,
}

impl Stamp {
    fn covers(self, other: Stamp) -> bool {
        self.state >= other.state && self.link >= other.link
    }
}

/// A pod of the cluster: its status as the node that runs it reports it (this node's own
/// reconciler for its pods and for pods no node can take), and the names its spec gives it.
#[derive(Debug, Clone)]
pub struct Pod {
    pub view: PodView,
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
}

/// What a snapshot is made of, read from the live sources once per build.
#[derive(Debug, Default)]
pub struct Inputs {
    pub stamp: Stamp,
    pub node_name: String,
    /// The applied objects (the local copy of the replicated ones).
    pub entries: Vec<Entry>,
    /// This node's reconciler's views: its pods, and pods no node can take.
    pub local: BTreeMap<String, PodView>,
    /// Every node with a record.
    pub nodes: Vec<NodeView>,
    /// Status records other nodes published for their pods (`ns/pod` → view).
    pub records: BTreeMap<String, PodView>,
    /// The replicated whitelist value, if any.
    pub whitelist: Option<Value>,
    /// The cluster's API token records (hashes only).
    pub tokens: Vec<TokenRecord>,
    /// What rollouts decide from: revision records, pod records of live nodes, the time.
    pub facts: Facts,
}

/// The cluster at one moment. Immutable: a change makes a new one.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub stamp: Stamp,
    node_name: String,
    objects: BTreeMap<ObjectKey, Entry>,
    pods: BTreeMap<String, Pod>,
    /// By (namespace, Service name).
    endpoints: BTreeMap<(String, String), Vec<Endpoint>>,
    /// By (namespace, Deployment name).
    deployments: BTreeMap<(String, String), DeploymentStatus>,
    /// When rollout status may change with time alone (a pod turns available, a deadline passes).
    recheck: Option<u64>,
    nodes: Vec<NodeView>,
    whitelist: Whitelist,
    tokens: Vec<TokenRecord>,
    /// By (namespace, Deployment name): template hash → revision record.
    revisions: BTreeMap<(String, String), BTreeMap<String, crate::rollout::Revision>>,
    /// What this node has seen happen, up to this snapshot ([`crate::events`]).
    events: Arc<crate::events::Log>,
}

impl Snapshot {
    pub fn build(inputs: Inputs) -> Snapshot {
        let Inputs {
            stamp,
            node_name,
            entries,
            local,
            nodes,
            records,
            whitelist,
            tokens,
            facts,
        } = inputs;
        // Every pod the objects ask for, expanded once (a Deployment's as its rollout stands, with
        // its status decided alongside, the same way on every node): specs resolve named ports and
        // host names.
        let crate::rollout::Expansion {
            pods,
            deployments,
            recheck,
        } = crate::rollout::expand(&entries, &facts);
        let revisions = facts.revisions;
        let specs: BTreeMap<String, PodSpec> = pods
            .into_iter()
            .map(|(p, _)| (format!("{}/{}", p.namespace, p.name), p.spec))
            .collect();
        let views = merge_pods(&node_name, local, &nodes, records);
        let mut endpoints = BTreeMap::new();
        for e in &entries {
            if matches!(e.object, Object::Service(_)) {
                let at = (e.object.namespace().to_owned(), e.object.name().to_owned());
                endpoints.insert(at, endpoints_of(e, &views, &specs));
            }
        }
        let pods = views
            .into_iter()
            .map(|(key, view)| {
                let spec = specs.get(&key);
                let pod = Pod {
                    view,
                    hostname: spec.and_then(|s| s.hostname.clone()),
                    subdomain: spec.and_then(|s| s.subdomain.clone()),
                };
                (key, pod)
            })
            .collect();
        Snapshot {
            stamp,
            node_name,
            objects: entries
                .into_iter()
                .map(|e| (ObjectKey::of(&e.object), e))
                .collect(),
            pods,
            endpoints,
            deployments,
            recheck,
            nodes,
            whitelist: whitelist
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            tokens,
            revisions,
            events: Arc::default(),
        }
    }

    /// The node this snapshot was taken on.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Every object, in key order (kind, namespace, name).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.objects.values()
    }

    /// One object.
    pub fn entry(&self, kind: &str, namespace: &str, name: &str) -> Option<&Entry> {
        self.objects.get(&ObjectKey {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The objects of one kind, in one namespace or all.
    pub fn objects<'a>(
        &'a self,
        kind: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Entry> {
        let from = ObjectKey {
            kind: kind.to_owned(),
            namespace: String::new(),
            name: String::new(),
        };
        self.objects
            .range(from..)
            .take_while(move |(k, _)| k.kind == kind)
            .map(|(_, e)| e)
            .filter(move |e| namespace.is_none_or(|n| e.object.namespace() == n))
    }

    /// Every pod of the cluster, by `namespace/name`.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    /// One pod, by `namespace/name`.
    pub fn pod(&self, key: &str) -> Option<&Pod> {
        self.pods.get(key)
    }

    /// A pod's uid: an applied Pod's object's; a Deployment's pod's made the same way from when
    /// the pod was made, so the same instance keeps it on every node and a new one gets another.
    pub fn pod_uid(&self, view: &crate::reconcile::PodView) -> String {
        self.entry("Pod", &view.namespace, &view.name).map_or_else(
            || crate::state::object_uid("Pod", &view.namespace, &view.name, view.created),
            crate::state::Entry::uid,
        )
    }

    /// A Service's endpoints: pods in its namespace matching its selector, one per pod and port.
    pub fn endpoints(&self, namespace: &str, service: &str) -> &[Endpoint] {
        self.endpoints
            .get(&(namespace.to_owned(), service.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Option<&DeploymentStatus> {
        self.deployments
            .get(&(namespace.to_owned(), name.to_owned()))
    }

    /// A Deployment's revision records, by template hash.
    pub fn revisions(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<&BTreeMap<String, crate::rollout::Revision>> {
        self.revisions.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Every node with a record, and whether it is a live member.
    pub fn nodes(&self) -> &[NodeView] {
        &self.nodes
    }

    pub fn whitelist(&self) -> &Whitelist {
        &self.whitelist
    }

    /// The cluster's API token records (this node's local ones are in [`State`]).
    pub fn tokens(&self) -> &[TokenRecord] {
        &self.tokens
    }

    /// The events this node has seen, oldest first.
    pub fn events(&self) -> &[Arc<crate::events::Event>] {
        self.events.events()
    }
}

/// Every pod of the cluster: this node's own views (its pods, and pods no node can take), and
/// the status other ready nodes published for theirs. A record from a node that is down is
/// stale: placement has moved its pods (the new node's record, or this node's view, stands).
fn merge_pods(
    node_name: &str,
    local: BTreeMap<String, PodView>,
    nodes: &[NodeView],
    records: BTreeMap<String, PodView>,
) -> BTreeMap<String, PodView> {
    let ready: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n.ready && n.name != node_name)
        .map(|n| n.name.as_str())
        .collect();
    let replaced: BTreeMap<String, String> = records
        .iter()
        .filter(|(_, v)| v.node == node_name)
        .filter_map(|(k, v)| Some((k.clone(), v.replaces.clone()?)))
        .collect();
    let mut pods = local;
    for (key, view) in records {
        if !ready.contains(view.node.as_str()) {
            continue;
        }
        match pods.get_mut(&key) {
            None => {
                pods.insert(key, view);
            }
            // A pod handed over between this node and another: the copy that serves stands. This
            // node's copy still getting ready leaves the other node's, still serving, in place;
            // this node's copy on its way out gives way to the one that took it over.
            Some(mine) if (mine.terminating || !mine.ready) && view.ready && !view.terminating => {
                *mine = view;
            }
            Some(_) => {}
        }
    }
    // This node's copy that took a pod over: its record says from which node (the view writer
    // confirms to that node that it routes here now).
    for view in pods.values_mut() {
        if view.node == node_name && view.replaces.is_none() {
            view.replaces = replaced
                .get(&format!("{}/{}", view.namespace, view.name))
                .cloned();
        }
    }
    pods
}

/// A Service's endpoints: pods in its namespace matching its selector, one entry per pod and port,
/// with named target ports resolved against the pod's containers.
fn endpoints_of(
    service: &Entry,
    pods: &BTreeMap<String, PodView>,
    specs: &BTreeMap<String, PodSpec>,
) -> Vec<Endpoint> {
    let Object::Service(svc) = &service.object else {
        return Vec::new();
    };
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // A terminating pod is no endpoint: it is leaving, and DNS and the ingress must send it
    // nothing new before it stops.
    for pod in pods.values().filter(|v| {
        !v.terminating
            && v.namespace == service.object.namespace()
            && selector.iter().all(|(k, val)| v.labels.get(k) == Some(val))
    }) {
        let Some(ip) = &pod.ip else { continue };
        let pod_spec = specs.get(&format!("{}/{}", pod.namespace, pod.name));
        for port in spec.ports.iter().flatten() {
            let target = match &port.target_port {
                None => Some(port.port),
                Some(IntOrString::Int(n)) => Some(*n),
                Some(IntOrString::String(name)) => pod_spec.and_then(|s| {
                    s.containers
                        .iter()
                        .flat_map(|c| c.ports.iter().flatten())
                        .find(|p| p.name.as_deref() == Some(name))
                        .map(|p| p.container_port)
                }),
            };
            let Some(target) = target else { continue };
            out.push(Endpoint {
                node: pod.node.clone(),
                pod_name: pod.name.clone(),
                address: ip.clone(),
                port: target,
                port_name: port.name.clone(),
                protocol: port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ready: pod.ready,
            });
        }
    }
    out
}

/// The live read model: keeps the current [`Snapshot`] of this node's sources.
pub struct Model {
    state: Arc<State>,
    link: Arc<Link>,
    views: PodViews,
    /// The link's generation, read for stamps.
    generation: watch::Receiver<u64>,
    current: watch::Sender<Arc<Snapshot>>,
    /// Serialises builds, so a slower build of older inputs never replaces a newer snapshot, and
    /// holds the pod views the current snapshot was built from (none before the first build).
    built: Mutex<Option<BTreeMap<String, PodView>>>,
    /// The last [`RECENT`] snapshots, oldest first: where a Kubernetes watch that names a
    /// version it listed at starts from, so it misses nothing that changed in between.
    recent: Mutex<std::collections::VecDeque<Arc<Snapshot>>>,
}

/// How many past snapshots a watch can start from. A list and the watch after it are
/// milliseconds apart; a client further behind gets 410 Gone and lists again.
const RECENT: usize = 16;

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("stamp", &self.current.borrow().stamp)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// The model of these sources, with a first snapshot built from them.
    pub fn new(state: Arc<State>, link: Arc<Link>, views: PodViews) -> Arc<Model> {
        let model = Arc::new(Model {
            generation: link.changes(),
            state,
            link,
            views,
            current: watch::channel(Arc::new(Snapshot::default())).0,
            built: Mutex::default(),
            recent: Mutex::default(),
        });
        model.refresh();
        model
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.borrow())
    }

    /// The earliest snapshot still held whose state version is `version` (or, for a version
    /// between two held, the last one before it): what the cluster looked like when a client
    /// read `version`. `None` when it is older than every snapshot held.
    pub fn at(&self, version: u64) -> Option<Arc<Snapshot>> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if version < recent.front()?.stamp.state {
            return None;
        }
        recent
            .iter()
            .find(|s| s.stamp.state == version)
            .or_else(|| recent.iter().rev().find(|s| s.stamp.state < version))
            .map(Arc::clone)
    }

    /// Each new snapshot, as it is published.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.current.subscribe()
    }

    fn stamp(&self) -> Stamp {
        Stamp {
            state: self.state.version(),
            link: *self.generation.borrow(),
        }
    }

    /// A snapshot that includes everything the state and the mirror hold now: for a handler
    /// that has just written (the link returns once its mirror holds the write), or that reads
    /// what it is about to change.
    pub fn settled(&self) -> Arc<Snapshot> {
        let current = self.current();
        if current.stamp.covers(self.stamp()) {
            current
        } else {
            self.refresh()
        }
    }

    /// Builds a new snapshot if a source moved on since the current one, and publishes it.
    pub fn refresh(&self) -> Arc<Snapshot> {
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        let stamp = self.stamp();
        let local = self
            .views
            .read()
            .map(|v| v.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        // The views have no version: compared with those the current snapshot was built from.
        let current = self.current();
        let now = crate::link::unix_now();
        if current.stamp == stamp
            && built.as_ref() == Some(&local)
            && current.recheck.is_none_or(|t| now < t)
        {
            return current;
        }
        *built = Some(local.clone());
        let mirror = self.link.mirror();
        let inputs = Inputs {
            stamp,
            node_name: self.link.node_name().to_owned(),
            entries: self.state.entries(),
            local,
            nodes: self.link.nodes(),
            records: self.link.pod_records(),
            whitelist: mirror.entries.get(WHITELIST_KEY).map(|(_, v)| v.clone()),
            tokens: self.link.tokens(),
            facts: self.link.rollout_facts(now),
        };
        let mut snapshot = Snapshot::build(inputs);
        snapshot.events = crate::events::observe(&current.events, &current, &snapshot, now);
        let snapshot = Arc::new(snapshot);
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(Arc::clone(&snapshot));
        }
        self.current.send_replace(Arc::clone(&snapshot));
        tracing::trace!(
            state = stamp.state,
            link = stamp.link,
            pods = snapshot.pods.len(),
            "cluster snapshot rebuilt"
        );
        snapshot
    }

    /// Rebuilds on every change of a source until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut state = self.state.subscribe();
        let mut cluster = self.link.changes();
        let mut poll = tokio::time::interval(VIEWS_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = state.changed() => {}
                _ = cluster.changed() => {}
                _ = poll.tick() => {}
            }
            self.refresh();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::node_view;
    use serde_json::json;

    pub(crate) fn view(key: &str, node: &str, phase: &str, ip: Option<&str>) -> PodView {
        let (ns, name) = key.split_once('/').unwrap();
        serde_json::from_value(json!({
            "namespace": ns, "name": name, "node": node, "ip": ip, "phase": phase,
            "ready": phase == "Running", "restarts": 0, "labels": {"app": "web"}, "unit": "",
            "units": [], "containers": [], "created": 0, "warnings": [],
            "owner": "Deployment/web"
        }))
        .unwrap()
    }

    fn entries(yaml: &str) -> Vec<Entry> {
        crate::testing::entries(yaml, 3)
    }

    const APP: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: http}
    - {name: admin, port: 81, targetPort: 9000}
    - {name: gone, port: 82, targetPort: nope}
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: shop, labels: {app: web}}
spec:
  hostname: solo-host
  subdomain: web
  containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]
"#;

    #[test]
    fn pods_come_from_this_nodes_views_and_other_ready_nodes_records() {
        let snap = Snapshot::build(Inputs {
            node_name: "me".into(),
            local: BTreeMap::from([
                ("shop/a".into(), view("shop/a", "me", "Running", None)),
                ("shop/both".into(), view("shop/both", "me", "Running", None)),
            ]),
            nodes: vec![
                node_view("me", true),
                node_view("up", true),
                node_view("down", false),
            ],
            records: BTreeMap::from([
                ("shop/b".into(), view("shop/b", "up", "Running", None)),
                ("shop/c".into(), view("shop/c", "down", "Running", None)),
                // This node's own view wins over another node's (stale) record.
                ("shop/both".into(), view("shop/both", "up", "Pending", None)),
            ]),
            ..Inputs::default()
        });
        let pods: Vec<(&str, &str)> = snap
            .pods()
            .map(|p| (p.view.name.as_str(), p.view.node.as_str()))
            .collect();
        assert_eq!(pods, [("a", "me"), ("b", "up"), ("both", "me")]);
    }

    /// During a hand-over both nodes run a copy of one pod: each node's view holds the copy that
    /// serves, never none; this node's copy that took over says from which node.
    #[test]
    fn a_handed_over_pod_is_the_serving_copy_in_every_view() {
        let mut leaving = view("shop/out", "me", "Running", None);
        leaving.terminating = true;
        let mut took_over = view("shop/in", "me", "Running", None);
        took_over.replaces = Some("up".into());
        let snap = Snapshot::build(Inputs {
            node_name: "me".into(),
            local: BTreeMap::from([
                // Starting here; the other node's copy still serves.
                ("shop/new".into(), view("shop/new", "me", "Pending", None)),
                // Handed over: the other node's copy serves.
                ("shop/out".into(), leaving),
                ("shop/in".into(), view("shop/in", "me", "Running", None)),
            ]),
            nodes: vec![node_view("me", true), node_view("up", true)],
            records: BTreeMap::from([
                ("shop/new".into(), view("shop/new", "up", "Running", None)),
                ("shop/out".into(), view("shop/out", "up", "Running", None)),
                ("shop/in".into(), took_over),
            ]),
            ..Inputs::default()
        });
        let pods: Vec<(&str, &str, Option<&str>)> = snap
            .pods()
            .map(|p| {
                let v = &p.view;
                (v.name.as_str(), v.node.as_str(), v.replaces.as_deref())
            })
            .collect();
        assert_eq!(
            pods,
            [
                ("in", "me", Some("up")),
                ("new", "up", None),
                ("out", "up", None)
            ]
        );
    }

    #[test]
    fn endpoints_resolve_named_ports_against_the_pods_spec() {
        let snap = Snapshot::build(Inputs {
            node_name: "me".into(),
            entries: entries(APP),
            local: BTreeMap::from([
                (
                    "shop/solo".into(),
                    view("shop/solo", "me", "Running", Some("10.244.0.2")),
                ),
                // No address yet: no endpoint.
                ("shop/new".into(), view("shop/new", "me", "Pending", None)),
                (
                    "other/solo".into(),
                    view("other/solo", "me", "Running", Some("10.244.0.3")),
                ),
            ]),
            nodes: vec![node_view("me", true)],
            ..Inputs::default()
        });
        let eps = snap.endpoints("shop", "web");
        let ports: Vec<(i32, Option<&str>)> = eps
            .iter()
            .map(|e| (e.port, e.port_name.as_deref()))
            .collect();
        assert_eq!(ports, [(8080, Some("http")), (9000, Some("admin"))]);
        assert!(eps.iter().all(|e| e.address == "10.244.0.2" && e.ready));
        assert!(snap.endpoints("shop", "nope").is_empty());
        let solo = snap.pod("shop/solo").unwrap();
        assert_eq!(solo.hostname.as_deref(), Some("solo-host"));
        assert_eq!(solo.subdomain.as_deref(), Some("web"));
        assert_eq!(snap.objects("Service", Some("shop")).count(), 1);
        assert_eq!(snap.objects("Service", Some("other")).count(), 0);
        assert_eq!(snap.objects("Pod", None).count(), 1);
        assert!(snap.entry("Pod", "shop", "solo").is_some());
    }

    /// A pod on its way out is no endpoint anywhere, whichever node reports it, so DNS and the
    /// ingress send it nothing new; `get pods` still lists it.
    #[test]
    fn terminating_pods_are_no_endpoints() {
        let mut leaving = view("shop/solo", "other", "Running", Some("10.244.1.2"));
        leaving.terminating = true;
        let snap = Snapshot::build(Inputs {
            node_name: "me".into(),
            entries: entries(APP),
            nodes: vec![node_view("me", true), node_view("other", true)],
            records: BTreeMap::from([("shop/solo".into(), leaving)]),
            ..Inputs::default()
        });
        assert!(snap.endpoints("shop", "web").is_empty());
        assert_eq!(snap.pod("shop/solo").unwrap().view.status(), "Terminating");
    }

    #[test]
    fn deployments_count_their_pods_from_the_replicated_records() {
        let entries = entries(crate::testing::DEPLOYMENT);
        let current: Vec<String> = podswarm_manifest::pods_of(&entries[0].object)
            .iter()
            .map(|p| p.name.clone())
            .collect();
        // The records say one pod is ready, one is not; this node's own views are not asked:
        // every node counts from the same replicated facts.
        let mut facts = Facts {
            now: 100,
            ..Facts::default()
        };
        facts.pods.insert(
            ("shop".into(), "web".into()),
            BTreeMap::from([
                (
                    current[0].clone(),
                    crate::rollout::Seen {
                        ready_since: Some(10),
                        ..Default::default()
                    },
                ),
                (current[1].clone(), crate::rollout::Seen::default()),
            ]),
        );
        let snap = Snapshot::build(Inputs {
            node_name: "me".into(),
            entries,
            nodes: vec![node_view("me", true)],
            facts,
            ..Inputs::default()
        });
        let status = snap.deployment("shop", "web").unwrap();
        assert_eq!(
            (
                status.replicas,
                status.total,
                status.ready,
                status.up_to_date,
                status.available
            ),
            (2, 2, 1, 2, 1)
        );
    }

    #[test]
    fn the_whitelist_and_tokens_come_from_the_mirror() {
        let snap = Snapshot::build(Inputs {
            whitelist: Some(json!({"enabled": true, "hosts": ["example.com"]})),
            ..Inputs::default()
        });
        assert!(snap.whitelist().enabled);
        assert_eq!(snap.whitelist().hosts, ["example.com"]);
        // A value this node cannot read is no whitelist.
        let bad = Snapshot::build(Inputs {
            whitelist: Some(json!("nonsense")),
            ..Inputs::default()
        });
        assert_eq!(bad.whitelist(), &Whitelist::default());
    }

    fn live() -> (tempfile::TempDir, Arc<State>, PodViews, Arc<Model>) {
        let dir = tempfile::tempdir().unwrap();
        let (state, link, views) = crate::testing::offline(dir.path());
        let model = Model::new(Arc::clone(&state), link, Arc::clone(&views));
        (dir, state, views, model)
    }

    #[test]
    fn a_snapshot_is_rebuilt_only_when_a_source_changed() {
        let (_dir, state, views, model) = live();
        let first = model.current();
        assert!(Arc::ptr_eq(&first, &model.refresh()));
        assert!(Arc::ptr_eq(&first, &model.settled()));

        // A write is in the snapshot a handler reads right after it.
        let objects = crate::testing::objects(APP);
        state.apply(objects).unwrap();
        let settled = model.settled();
        assert!(!Arc::ptr_eq(&first, &settled));
        assert!(settled.entry("Service", "shop", "web").is_some());
        assert!(Arc::ptr_eq(&settled, &model.current()));

        // Changed pod views make a new snapshot; the same views do not.
        views
            .write()
            .unwrap()
            .insert("shop/solo".into(), view("shop/solo", "me", "Running", None));
        let with_pod = model.refresh();
        assert!(with_pod.pod("shop/solo").is_some());
        assert!(Arc::ptr_eq(&with_pod, &model.refresh()));
    }

    #[tokio::test]
    async fn the_model_follows_its_sources_in_the_background() {
        let (_dir, _state, views, model) = live();
        let mut snapshots = model.subscribe();
        let (_stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(Arc::clone(&model).run(shutdown));
        views
            .write()
            .unwrap()
            .insert("shop/solo".into(), view("shop/solo", "me", "Running", None));
        let seen = tokio::time::timeout(
            Duration::from_secs(5),
            snapshots.wait_for(|s| s.pod("shop/solo").is_some()),
        )
        .await;
        assert!(matches!(seen, Ok(Ok(_))));
        task.abort();
    }
}
