//! Placement without a leader: every node runs this same pure function over the same replicated
//! objects, the same set of ready nodes and the same pod status records (once gossip has
//! converged), so every node reaches the same answer and runs exactly the pods placed on itself.
//!
//! Moving a pod restarts it, so a pod that runs stays where it is while it still may: first, in
//! name order, every pod whose node in `current` (where the pod status records say it runs) is
//! ready, still matches the pod's `nodeSelector` (and `nodeName`, when set) and still has the
//! pod's host ports free (an earlier kept pod may hold them) is kept there, and counts toward that
//! node's load and its owner's spread. A node joining, other pods changing and restarts of
//! podswarm therefore move no running pod; only a pod whose node died or no longer fits moves.
//!
//! Then the other pods (new ones, surges of a rolling update, replacements) are placed one by one
//! in name order. A pod may go to a ready node that matches its `nodeSelector` (and `nodeName`)
//! and has none of its host ports taken yet. Among those it prefers the node with the fewest pods
//! of the same owner (spreading a Deployment's replicas, kept ones included), then the node with
//! the fewest pods overall, then the highest rendezvous hash of (pod, node) — so ties break the
//! same way everywhere. A pod nothing fits stays Pending with the reason.
//!
//! Maintenance follows kubectl: a cordoned node (`cordons/<node>` in the replicated state) takes
//! no new pod and keeps the ones it runs; a node being drained keeps none either, so each of its
//! pods is placed anew elsewhere (the reconcilers then hand it over: the old copy serves until the
//! new one is ready, see `execute.rs`). A pod nothing else takes says its matching nodes are
//! cordoned.
//!
//! Since running pods never move by themselves, a spread that went uneven (replicas placed while
//! one node was alone, a node back from maintenance) stays so until asked: `podswarmctl
//! rebalance` plans moves with [`rebalance`], over the pods placement keeps where they run. Per
//! owner, over the open nodes its pods may use, it moves one pod at a time from the node with the
//! most of that owner to the one with the fewest that fits the pod (selector, nodeName, host
//! ports), while the two differ by more than one; ties go to the fuller node overall as source and
//! the emptier as target, then name order, and the pod is the highest-named that may go. The
//! plan becomes replicated move records (`moves/<ns>/<pod>`), and [`steer`] makes placement
//! start from each moved pod on its new node (while that node may take it), so every node places
//! it there and the old node hands it over as in a drain. Cordoned nodes give and take nothing.
//!
//! The answer depends on the inputs as sets, never on their order (nodes, pods and `current` are
//! all taken in name order), so nodes whose mirrors list things differently still agree. The one
//! exception is two pods with one key (a bare Pod named like a Deployment's replica): the last
//! given is placed, as the reconciler keeps the last, and both list objects in the same order.
//!
//! Cost, for P pods and N ready nodes (it runs on every node at every reconcile pass): each pod
//! is read once and the pods are sorted, O(P log P). A kept pod then costs one step along
//! `current` and a node lookup, so a settled cluster costs about that. A pod placed anew compares
//! the integer counts of the nodes it may use, O(N), and hashes only the nodes tied for the
//! fewest: about N/2 when every node is open to it. The rendezvous tie-break needs the hash of
//! every tied node (any of them may be the highest), so placing all P pods anew, as at a whole
//! cluster's first start, is O(P·N) SHA-256s: linear in pods for a given cluster, and the only
//! term that grows with both. Nothing is recomputed per pod that does not depend on it: the ready
//! nodes are listed once, the nodes a selector matches once per distinct selector, and owners are
//! counted by number, not by name. `docs/SCALE.md` has the measured figures (`cargo bench -p
//! podswarm-tests --bench place`). [`steer`] costs nothing while no move record exists and one
//! pass over the pods while some do; [`rebalance`] runs only when asked.

use std::collections::{BTreeMap, BTreeSet};

use podswarm_manifest::PodInstance;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    /// Cordoned (`podswarmctl cordon`, `drain`): takes no new pod; the pods it runs stay.
    pub cordoned: bool,
    /// Being drained: keeps no pod either, so each moves (gracefully) to another node.
    pub draining: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Node(String),
    Pending(String),
}

pub fn pod_key(pod: &PodInstance) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

/// The rendezvous hash of one pod with each node: the first 8 bytes (big-endian) of
/// SHA-256(pod key, 0, node name). The pod's part is absorbed once and cloned per node.
struct Rendezvous(Sha256);

impl Rendezvous {
    fn new(pod: &str) -> Self {
        let mut h = Sha256::new();
        h.update(pod.as_bytes());
        h.update([0]);
        Rendezvous(h)
    }

    fn score(&self, node: &str) -> u64 {
        let mut h = self.0.clone();
        h.update(node.as_bytes());
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        u64::from_be_bytes(b)
    }
}

/// A pod as placement sees it, with what it needs worked out once.
struct Pod<'a> {
    key: String,
    /// Index of its owner (the Deployment, or the pod itself when it has none).
    owner: usize,
    selector: &'a BTreeMap<String, String>,
    node_name: Option<&'a str>,
    /// (protocol, host port) of every port that asks for one.
    ports: Vec<(&'a str, i32)>,
}

impl Pod<'_> {
    fn fits(&self, node: &NodeInfo) -> bool {
        self.node_name.is_none_or(|want| want == node.name)
            && self
                .selector
                .iter()
                .all(|(k, v)| node.labels.get(k) == Some(v))
    }

    /// Why no node takes it: `nodes` ready nodes, `matching` of which fit its constraints, `open`
    /// of those not cordoned.
    fn pending(&self, nodes: usize, matching: usize, open: usize) -> String {
        if nodes == 0 {
            return "no node is ready".to_owned();
        }
        if matching == 0 {
            let mut parts: Vec<String> = self
                .selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if let Some(n) = self.node_name {
                parts.push(format!("nodeName={n}"));
            }
            return format!("no ready node matches {} ({nodes} ready)", parts.join(","));
        }
        if open == 0 {
            return format!("every matching node ({matching}) is cordoned");
        }
        let list: Vec<String> = self
            .ports
            .iter()
            .map(|(proto, p)| format!("{p}/{proto}"))
            .collect();
        format!(
            "every matching node already has a pod on host port {}",
            list.join(", ")
        )
    }
}

fn host_ports(pod: &PodInstance) -> Vec<(&str, i32)> {
    pod.spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            p.host_port
                .map(|hp| (p.protocol.as_deref().unwrap_or("TCP"), hp))
        })
        .collect()
}

/// The ready nodes in name order. Two records of one name (a node that came back under a new
/// id) count once, the ready one first, whatever order they came in.
fn ready_nodes(nodes: &[NodeInfo]) -> Vec<&NodeInfo> {
    let mut nodes: Vec<&NodeInfo> = nodes.iter().collect();
    nodes.sort_by(|a, b| {
        (a.name.as_str(), !a.ready, &a.labels).cmp(&(b.name.as_str(), !b.ready, &b.labels))
    });
    nodes.dedup_by(|a, b| a.name == b.name);
    nodes.retain(|n| n.ready);
    nodes
}

/// The pods in name order, each key once (the last given wins, as it does where the reconciler
/// collects them), with their owners numbered. Returns the pods and the number of owners.
///
/// Each pod is read once, in the order given (which is how they lie in memory), and only the
/// small [`Pod`]s are sorted: reading large pod specs in name order instead costs a cache miss
/// each at tens of thousands of pods.
fn prepare<'a>(
    pods: &[&'a PodInstance],
    no_labels: &'a BTreeMap<String, String>,
) -> (Vec<Pod<'a>>, usize) {
    let mut owners: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    // Consecutive pods mostly share their owner: the last one is checked before the map.
    let mut last: Option<((&str, &str, &str), usize)> = None;
    let mut all: Vec<Pod<'a>> = pods
        .iter()
        .map(|pod| {
            // A kind is never empty, so a pod without an owner cannot share one with a Deployment.
            let owner = match &pod.owner {
                Some(o) => (pod.namespace.as_str(), o.kind, o.name.as_str()),
                None => (pod.namespace.as_str(), "", pod.name.as_str()),
            };
            let owner = match last {
                Some((o, i)) if o == owner => i,
                _ => {
                    let next = owners.len();
                    let i = *owners.entry(owner).or_insert(next);
                    last = Some((owner, i));
                    i
                }
            };
            Pod {
                key: pod_key(pod),
                owner,
                selector: pod.spec.node_selector.as_ref().unwrap_or(no_labels),
                node_name: pod.spec.node_name.as_deref(),
                ports: host_ports(pod),
            }
        })
        .collect();
    // Stable: of equal keys the one given last stays last, and is swapped into the place of
    // the one kept before it.
    all.sort_by(|a, b| a.key.cmp(&b.key));
    all.dedup_by(|later, kept| {
        let same = later.key == kept.key;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
    (all, owners.len())
}

/// What a pod asks of its node: `nodeSelector` and `nodeName`.
type Constraints<'a> = (&'a BTreeMap<String, String>, Option<&'a str>);

/// What is placed so far, per ready node (by index in name order).
struct Loads<'a> {
    load: Vec<u32>,
    /// Per owner: its pods on each node that has any.
    owned: Vec<BTreeMap<usize, u32>>,
    /// `owned` of the owner in `spread_of`, laid out per node, so that comparing nodes for one
    /// pod reads an array; consecutive pods (in name order) mostly share their owner.
    spread: Vec<u32>,
    spread_of: Option<usize>,
    ports: Vec<BTreeSet<(&'a str, i32)>>,
}

impl<'a> Loads<'a> {
    fn new(nodes: usize, owners: usize) -> Self {
        Loads {
            load: vec![0; nodes],
            owned: vec![BTreeMap::new(); owners],
            spread: vec![0; nodes],
            spread_of: None,
            ports: vec![BTreeSet::new(); nodes],
        }
    }

    fn ports_free(&self, pod: &Pod<'_>, node: usize) -> bool {
        pod.ports.iter().all(|p| !self.ports[node].contains(p))
    }

    fn assign(&mut self, pod: &Pod<'a>, node: usize) {
        self.load[node] += 1;
        *self.owned[pod.owner].entry(node).or_default() += 1;
        if self.spread_of == Some(pod.owner) {
            self.spread[node] += 1;
        }
        self.ports[node].extend(pod.ports.iter().copied());
    }

    /// Undoes [`Loads::assign`] (a planned move takes the pod off its node). The node held the
    /// pod's host ports alone: kept pods never share one on a node.
    fn unassign(&mut self, pod: &Pod<'a>, node: usize) {
        self.load[node] = self.load[node].saturating_sub(1);
        if let Some(count) = self.owned[pod.owner].get_mut(&node) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.owned[pod.owner].remove(&node);
            }
        }
        if self.spread_of == Some(pod.owner) {
            self.spread[node] = self.spread[node].saturating_sub(1);
        }
        for p in &pod.ports {
            self.ports[node].remove(p);
        }
    }

    /// How many pods of `owner` are on `node`.
    fn owned_on(&self, owner: usize, node: usize) -> u32 {
        self.owned[owner].get(&node).copied().unwrap_or(0)
    }

    fn spread_for(&mut self, owner: usize) {
        if self.spread_of == Some(owner) {
            return;
        }
        if let Some(old) = self.spread_of {
            for &n in self.owned[old].keys() {
                self.spread[n] = 0;
            }
        }
        for (&n, &count) in &self.owned[owner] {
            self.spread[n] = count;
        }
        self.spread_of = Some(owner);
    }

    /// The node for a pod among `candidates` (the ready nodes that match it, in name order):
    /// fewest of its owner, then fewest overall, then the highest rendezvous hash. Only the
    /// nodes tied on the counts are hashed.
    fn choose(
        &mut self,
        pod: &Pod<'a>,
        candidates: &[usize],
        nodes: &[&NodeInfo],
    ) -> Option<usize> {
        self.spread_for(pod.owner);
        let free = |n: usize| pod.ports.is_empty() || self.ports_free(pod, n);
        let mut least: Option<(u32, u32)> = None;
        for &n in candidates {
            let counts = (self.spread[n], self.load[n]);
            if least.is_none_or(|l| counts < l) && free(n) {
                least = Some(counts);
            }
        }
        let least = least?;
        let hash = Rendezvous::new(&pod.key);
        let mut best: Option<(u64, usize)> = None;
        for &n in candidates {
            if (self.spread[n], self.load[n]) != least || !free(n) {
                continue;
            }
            let score = hash.score(&nodes[n].name);
            // Strictly higher: on equal hashes the first node in name order stays.
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, n));
            }
        }
        best.map(|(_, n)| n)
    }
}

/// The pods (in name order) that stay on the node they run on: the index of that node for each
/// one kept, counted in `loads`. Pods that run stay first, in name order, so they count for
/// everything placed after them.
fn keep<'a>(
    pods: &[Pod<'a>],
    nodes: &[&NodeInfo],
    index: &BTreeMap<&str, usize>,
    current: &BTreeMap<String, String>,
    loads: &mut Loads<'a>,
) -> Vec<Option<usize>> {
    // Both in key order: one walk along `current` instead of a lookup per pod.
    let mut records = current.iter().peekable();
    pods.iter()
        .map(|pod| {
            while records
                .next_if(|(k, _)| k.as_str() < pod.key.as_str())
                .is_some()
            {}
            let &n = records
                .peek()
                .filter(|(k, _)| **k == pod.key)
                .and_then(|(_, node)| index.get(node.as_str()))?;
            let stays = !nodes[n].draining && pod.fits(nodes[n]) && loads.ports_free(pod, n);
            stays.then(|| {
                loads.assign(pod, n);
                n
            })
        })
        .collect()
}

/// Places `pods` on `nodes`, keeping each pod on its node in `current` (`ns/pod` → node) while
/// that node is ready and still fits it (see the module doc). Every pod given gets an answer.
pub fn place(
    pods: &[&PodInstance],
    nodes: &[NodeInfo],
    current: &BTreeMap<String, String>,
) -> BTreeMap<String, Placement> {
    let nodes = ready_nodes(nodes);
    let index: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let no_labels = BTreeMap::new();
    let (pods, owners) = prepare(pods, &no_labels);
    let mut loads = Loads::new(nodes.len(), owners);
    let mut out: Vec<Option<Placement>> = keep(&pods, &nodes, &index, current, &mut loads)
        .into_iter()
        .map(|kept| kept.map(|n| Placement::Node(nodes[n].name.clone())))
        .collect();

    // The ready nodes each (selector, nodeName) matches: pods of one Deployment share them.
    // With how many match at all, cordoned ones included (for the reason a pod stays Pending).
    let mut matching: BTreeMap<Constraints<'_>, (Vec<usize>, usize)> = BTreeMap::new();
    for (pod, slot) in pods.iter().zip(out.iter_mut()) {
        if slot.is_some() {
            continue;
        }
        let candidates = matching
            .entry((pod.selector, pod.node_name))
            .or_insert_with(|| {
                let fitting: Vec<usize> =
                    (0..nodes.len()).filter(|&n| pod.fits(nodes[n])).collect();
                let open: Vec<usize> = fitting
                    .iter()
                    .copied()
                    .filter(|&n| !nodes[n].cordoned)
                    .collect();
                (open, fitting.len())
            });
        *slot = Some(match loads.choose(pod, &candidates.0, &nodes) {
            Some(n) => {
                loads.assign(pod, n);
                Placement::Node(nodes[n].name.clone())
            }
            None => Placement::Pending(pod.pending(nodes.len(), candidates.1, candidates.0.len())),
        });
    }

    // In key order already, so the map is built in one pass.
    pods.into_iter()
        .zip(out)
        .filter_map(|(pod, placement)| Some((pod.key, placement?)))
        .collect()
}

/// A pod that [`rebalance`] moves (`ns/pod`), from the node it runs on to another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Move {
    pub pod: String,
    pub from: String,
    pub to: String,
}

/// The moves that even out each owner's spread (`podswarmctl rebalance`; see the module doc):
/// `current` says where pods run, and only pods that placement keeps there (see [`place`]) are
/// counted and moved; a pod about to be placed anew, or not running yet, is placement's. In name
/// order of the pods; empty when every owner is spread within one over the nodes it may use.
pub fn rebalance(
    pods: &[&PodInstance],
    nodes: &[NodeInfo],
    current: &BTreeMap<String, String>,
) -> Vec<Move> {
    let nodes = ready_nodes(nodes);
    let index: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let no_labels = BTreeMap::new();
    let (pods, owners) = prepare(pods, &no_labels);
    let mut loads = Loads::new(nodes.len(), owners);
    let kept = keep(&pods, &nodes, &index, current, &mut loads);
    let mut at = kept.clone();

    // Each owner's kept pods (in name order), owners in the order of their first pod's name:
    // the same on every node whatever order the pods came in.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); owners];
    let mut order = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        if kept[i].is_none() {
            continue;
        }
        if members[pod.owner].is_empty() {
            order.push(pod.owner);
        }
        members[pod.owner].push(i);
    }
    // The nodes each owner may be spread over: open ones (a cordoned node keeps its pods and
    // takes none; its pods neither count nor move) that fit any of its kept pods.
    let usable: Vec<Vec<usize>> = order
        .iter()
        .map(|&o| {
            (0..nodes.len())
                .filter(|&n| !nodes[n].cordoned && !nodes[n].draining)
                .filter(|&n| members[o].iter().any(|&p| pods[p].fits(nodes[n])))
                .collect()
        })
        .collect();
    // Owners interact only through host ports and the overall loads that break ties, so a move
    // of one may let another move: rounds until one moves nothing. Every move lowers the sum of
    // the squares of every owner's per-node counts, so this ends.
    loop {
        let mut moved = false;
        for (&o, usable) in order.iter().zip(&usable) {
            while let Some((p, from, to)) =
                next_move(o, &members[o], usable, &pods, &nodes, &at, &loads)
            {
                loads.unassign(&pods[p], from);
                loads.assign(&pods[p], to);
                at[p] = Some(to);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    pods.iter()
        .zip(kept.iter().zip(&at))
        .filter_map(|(pod, (&from, &to))| match (from, to) {
            (Some(from), Some(to)) if from != to => Some(Move {
                pod: pod.key.clone(),
                from: nodes[from].name.clone(),
                to: nodes[to].name.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// One move that evens out owner `o`'s spread over `usable`, if any: (pod, from, to). From the
/// node with the most of its pods (then the most pods overall, then name order) to the node with
/// the fewest (then the fewest overall, then name order) that takes one of them (its selector,
/// nodeName and host ports), while the two differ by more than one; of the pods that may go,
/// the one with the highest name.
fn next_move(
    o: usize,
    members: &[usize],
    usable: &[usize],
    pods: &[Pod<'_>],
    nodes: &[&NodeInfo],
    at: &[Option<usize>],
    loads: &Loads<'_>,
) -> Option<(usize, usize, usize)> {
    use std::cmp::Reverse;
    let count = |n: usize| loads.owned_on(o, n);
    let mut sources: Vec<usize> = usable.iter().copied().filter(|&n| count(n) > 1).collect();
    sources.sort_by_key(|&n| (Reverse(count(n)), Reverse(loads.load[n]), n));
    let mut targets = usable.to_vec();
    targets.sort_by_key(|&n| (count(n), loads.load[n], n));
    for &from in &sources {
        let here: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&p| at[p] == Some(from))
            .collect();
        for &to in &targets {
            if count(from) < count(to) + 2 {
                break;
            }
            let pod = here
                .iter()
                .rev()
                .find(|&&p| pods[p].fits(nodes[to]) && loads.ports_free(&pods[p], to));
            if let Some(&p) = pod {
                return Some((p, from, to));
            }
        }
    }
    None
}

/// Where placement starts from while pods are being moved on request (`moves`: `ns/pod` → the
/// node it goes to, from `podswarmctl rebalance`): `current`, with each pod that runs and has a
/// move put on the move's node while that node may take it (ready, neither cordoned nor
/// draining, matching the pod's `nodeSelector` and `nodeName`). [`place`] then keeps the pod
/// there as it keeps any running pod (a host port taken there first makes it place the pod
/// anew), and the node it runs on hands it over. A move whose node may not take it changes
/// nothing: the pod stays where it runs.
pub fn steer(
    mut current: BTreeMap<String, String>,
    moves: &BTreeMap<String, String>,
    pods: &[&PodInstance],
    nodes: &[NodeInfo],
) -> BTreeMap<String, String> {
    if moves.is_empty() {
        return current;
    }
    let nodes = ready_nodes(nodes);
    // Of two pods with one key the last given counts, as in placement.
    let mut wanted: BTreeMap<String, &PodInstance> = BTreeMap::new();
    for pod in pods {
        let key = pod_key(pod);
        if moves.contains_key(&key) {
            wanted.insert(key, pod);
        }
    }
    for (key, to) in moves {
        let (Some(pod), Some(runs_on)) = (wanted.get(key), current.get_mut(key)) else {
            continue;
        };
        let open = nodes
            .binary_search_by(|n| n.name.as_str().cmp(to))
            .ok()
            .map(|i| nodes[i])
            .filter(|n| !n.cordoned && !n.draining);
        let fits = |n: &NodeInfo| {
            pod.spec
                .node_name
                .as_ref()
                .is_none_or(|want| *want == n.name)
                && pod
                    .spec
                    .node_selector
                    .iter()
                    .flatten()
                    .all(|(k, v)| n.labels.get(k) == Some(v))
        };
        if open.is_some_and(fits) {
            runs_on.clone_from(to);
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use podswarm_manifest::{Limits, Policy, parse, pods_of};
    use proptest::prelude::*;

    fn pods(yaml: &str) -> Vec<PodInstance> {
        let m = parse(yaml, "t", &Limits::default(), &Policy::default()).unwrap();
        m.objects.iter().flat_map(|o| pods_of(&o.object)).collect()
    }

    fn deployment(name: &str, replicas: usize, extra: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n{extra}      containers:\n      - name: c\n        image: busybox\n"
        )
    }

    /// A Deployment whose pods may ask for a zone label and a host port.
    fn shaped(name: &str, replicas: usize, zone: Option<&str>, port: Option<i32>) -> String {
        let selector = zone
            .map(|z| format!("      nodeSelector: {{zone: {z}}}\n"))
            .unwrap_or_default();
        let mut yaml = deployment(name, replicas, &selector);
        if let Some(p) = port {
            yaml.push_str(&format!(
                "        ports: [{{containerPort: 80, hostPort: {p}}}]\n"
            ));
        }
        yaml
    }

    fn bare(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra}  containers:\n  - name: c\n    image: busybox\n"
        )
    }

    fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            cordoned: false,
            draining: false,
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ready: true,
        }
    }

    fn nodes(names: &[&str]) -> Vec<NodeInfo> {
        names.iter().map(|n| node(n, &[])).collect()
    }

    const NOTHING: &BTreeMap<String, String> = &BTreeMap::new();

    fn on(placed: &BTreeMap<String, Placement>) -> BTreeMap<String, usize> {
        let mut count = BTreeMap::new();
        for p in placed.values() {
            if let Placement::Node(n) = p {
                *count.entry(n.clone()).or_default() += 1;
            }
        }
        count
    }

    /// Where an answer put pods, as the status records would say it (`current`).
    fn running(placed: &BTreeMap<String, Placement>) -> BTreeMap<String, String> {
        placed
            .iter()
            .filter_map(|(k, p)| match p {
                Placement::Node(n) => Some((k.clone(), n.clone())),
                Placement::Pending(_) => None,
            })
            .collect()
    }

    /// The rules written out plainly, with no care for cost: what `place` must answer.
    fn reference(
        pods: &[&PodInstance],
        nodes: &[NodeInfo],
        current: &BTreeMap<String, String>,
    ) -> BTreeMap<String, Placement> {
        fn rendezvous(pod: &str, node: &str) -> u64 {
            let mut h = Sha256::new();
            h.update(pod.as_bytes());
            h.update([0]);
            h.update(node.as_bytes());
            let d = h.finalize();
            u64::from_be_bytes(d[..8].try_into().unwrap())
        }
        fn ports(pod: &PodInstance) -> Vec<(String, i32)> {
            pod.spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter_map(|p| {
                    p.host_port
                        .map(|hp| (p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()), hp))
                })
                .collect()
        }
        fn fits(pod: &PodInstance, n: &NodeInfo) -> bool {
            let selector = pod.spec.node_selector.clone().unwrap_or_default();
            selector.iter().all(|(k, v)| n.labels.get(k) == Some(v))
                && pod.spec.node_name.as_ref().is_none_or(|w| *w == n.name)
        }
        let mut nodes: Vec<&NodeInfo> = nodes.iter().collect();
        nodes.sort_by_key(|n| (n.name.clone(), !n.ready, n.labels.clone()));
        nodes.dedup_by(|a, b| a.name == b.name);
        let ready: Vec<&NodeInfo> = nodes.into_iter().filter(|n| n.ready).collect();
        let mut sorted: Vec<&PodInstance> = pods.to_vec();
        sorted.sort_by_key(|p| pod_key(p));
        let mut pods: Vec<&PodInstance> = Vec::new();
        for p in sorted {
            if pods.last().is_some_and(|l| pod_key(l) == pod_key(p)) {
                pods.pop();
            }
            pods.push(p);
        }
        let owner = |p: &PodInstance| match &p.owner {
            Some(o) => format!("{}/{}/{}", p.namespace, o.kind, o.name),
            None => pod_key(p),
        };
        #[derive(Default)]
        struct Counts {
            load: BTreeMap<String, usize>,
            owned: BTreeMap<(String, String), usize>,
            taken: BTreeMap<String, BTreeSet<(String, i32)>>,
        }
        impl Counts {
            fn free(&self, p: &PodInstance, n: &str) -> bool {
                ports(p)
                    .iter()
                    .all(|x| self.taken.get(n).is_none_or(|t| !t.contains(x)))
            }
            fn assign(&mut self, p: &PodInstance, owner: String, n: &str) {
                *self.load.entry(n.to_owned()).or_default() += 1;
                *self.owned.entry((owner, n.to_owned())).or_default() += 1;
                self.taken.entry(n.to_owned()).or_default().extend(ports(p));
            }
        }
        let mut c = Counts::default();
        let mut out = BTreeMap::new();
        let mut rest = Vec::new();
        for p in pods {
            let keep = current
                .get(&pod_key(p))
                .and_then(|on| ready.iter().find(|n| n.name == *on))
                .filter(|n| fits(p, n) && c.free(p, &n.name));
            match keep {
                Some(n) => {
                    c.assign(p, owner(p), &n.name);
                    out.insert(pod_key(p), Placement::Node(n.name.clone()));
                }
                None => rest.push(p),
            }
        }
        for p in rest {
            let matching: Vec<&NodeInfo> = ready.iter().copied().filter(|n| fits(p, n)).collect();
            let best = matching
                .iter()
                .copied()
                .filter(|n| c.free(p, &n.name))
                .min_by_key(|n| {
                    (
                        c.owned
                            .get(&(owner(p), n.name.clone()))
                            .copied()
                            .unwrap_or(0),
                        c.load.get(&n.name).copied().unwrap_or(0),
                        std::cmp::Reverse(rendezvous(&pod_key(p), &n.name)),
                    )
                });
            let placement = match best {
                Some(n) => {
                    c.assign(p, owner(p), &n.name);
                    Placement::Node(n.name.clone())
                }
                None if ready.is_empty() => Placement::Pending("no node is ready".to_owned()),
                None if matching.is_empty() => {
                    let selector = p.spec.node_selector.clone().unwrap_or_default();
                    let mut parts: Vec<String> =
                        selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    if let Some(n) = &p.spec.node_name {
                        parts.push(format!("nodeName={n}"));
                    }
                    Placement::Pending(format!(
                        "no ready node matches {} ({} ready)",
                        parts.join(","),
                        ready.len()
                    ))
                }
                None => {
                    let list: Vec<String> =
                        ports(p).iter().map(|(pr, n)| format!("{n}/{pr}")).collect();
                    Placement::Pending(format!(
                        "every matching node already has a pod on host port {}",
                        list.join(", ")
                    ))
                }
            };
            out.insert(pod_key(p), placement);
        }
        out
    }

    #[test]
    fn replicas_spread_one_per_node() {
        let ps = pods(&deployment("web", 3, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let placed = place(&refs, &nodes(&["a", "b", "c"]), NOTHING);
        assert_eq!(on(&placed).values().copied().collect::<Vec<_>>(), [1, 1, 1]);
    }

    #[test]
    fn a_dead_node_loses_its_pods_to_the_others() {
        let ps = pods(&deployment("web", 3, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let mut nodes = nodes(&["a", "b", "c"]);
        nodes[1].ready = false;
        let placed = place(&refs, &nodes, NOTHING);
        let count = on(&placed);
        assert_eq!(count.get("b"), None);
        assert_eq!(count.values().sum::<usize>(), 3);
    }

    #[test]
    fn node_selector_and_its_pending_reason() {
        let ps = pods(&deployment("db", 2, "      nodeSelector: {disk: ssd}\n"));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let placed = place(
            &refs,
            &[node("a", &[]), node("b", &[("disk", "ssd")])],
            NOTHING,
        );
        assert!(placed.values().all(|p| *p == Placement::Node("b".into())));
        let placed = place(&refs, &[node("a", &[])], NOTHING);
        assert!(
            placed
                .values()
                .all(|p| matches!(p, Placement::Pending(r) if r.contains("disk=ssd"))),
            "{placed:?}"
        );
    }

    #[test]
    fn host_ports_never_share_a_node() {
        let ps = pods(&shaped("lb", 3, None, Some(8080)));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let placed = place(&refs, &nodes(&["a", "b"]), NOTHING);
        assert_eq!(on(&placed).values().copied().collect::<Vec<_>>(), [1, 1]);
        let pending: Vec<&Placement> = placed
            .values()
            .filter(|p| matches!(p, Placement::Pending(_)))
            .collect();
        assert!(
            matches!(pending[..], [Placement::Pending(r)] if r.contains("8080/TCP")),
            "{pending:?}"
        );
    }

    #[test]
    fn no_ready_node_is_said() {
        let ps = pods(&deployment("web", 1, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let mut n = node("a", &[]);
        n.ready = false;
        let placed = place(&refs, &[n], NOTHING);
        assert_eq!(
            placed.values().next(),
            Some(&Placement::Pending("no node is ready".into()))
        );
    }

    #[test]
    fn a_joining_node_moves_no_pod() {
        let ps = pods(&deployment("web", 6, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let before = place(&refs, &nodes(&["a", "b", "c"]), NOTHING);
        let joined = nodes(&["a", "b", "c", "d"]);
        let after = place(&refs, &joined, &running(&before));
        assert_eq!(after, before);
        // Placed from scratch, the same pods would move: that is what keeping them prevents.
        assert_ne!(place(&refs, &joined, NOTHING), before);
    }

    #[test]
    fn a_cordoned_node_keeps_its_pods_and_takes_no_new_one() {
        let ps = pods(&deployment("web", 6, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let mut all = nodes(&["a", "b", "c"]);
        let before = place(&refs, &all, NOTHING);
        all[1].cordoned = true;
        assert_eq!(place(&refs, &all, &running(&before)), before);
        // Scaled up, the new pods avoid it.
        let more = pods(&deployment("web", 9, ""));
        let refs: Vec<&PodInstance> = more.iter().collect();
        let after = place(&refs, &all, &running(&before));
        assert_eq!(on(&after).get("b"), Some(&2));
        assert_eq!(on(&after).values().sum::<usize>(), 9);
        // With every matching node cordoned, a new pod waits and says why.
        for n in &mut all {
            n.cordoned = true;
        }
        let fresh = pods(&deployment("new", 1, ""));
        let refs: Vec<&PodInstance> = fresh.iter().collect();
        assert_eq!(
            place(&refs, &all, NOTHING).values().next(),
            Some(&Placement::Pending(
                "every matching node (3) is cordoned".into()
            ))
        );
    }

    #[test]
    fn a_draining_node_keeps_no_pod_and_only_its_pods_move() {
        let ps = pods(&deployment("web", 6, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let mut all = nodes(&["a", "b", "c"]);
        let before = place(&refs, &all, NOTHING);
        all[1].cordoned = true;
        all[1].draining = true;
        let after = place(&refs, &all, &running(&before));
        for (key, was) in &before {
            if *was == Placement::Node("b".into()) {
                assert!(
                    matches!(&after[key], Placement::Node(n) if n != "b"),
                    "{key}"
                );
            } else {
                assert_eq!(&after[key], was, "{key}");
            }
        }
        assert_eq!(on(&after).values().copied().collect::<Vec<_>>(), [3, 3]);
    }

    #[test]
    fn a_dead_node_moves_only_its_pods() {
        let ps = pods(&deployment("web", 6, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let mut all = nodes(&["a", "b", "c"]);
        let before = place(&refs, &all, NOTHING);
        all[1].ready = false;
        let after = place(&refs, &all, &running(&before));
        for (key, was) in &before {
            if *was == Placement::Node("b".into()) {
                assert!(
                    matches!(&after[key], Placement::Node(n) if n != "b"),
                    "{key}: {:?}",
                    after[key]
                );
            } else {
                assert_eq!(&after[key], was, "{key}");
            }
        }
        assert_eq!(on(&after).values().copied().collect::<Vec<_>>(), [3, 3]);
    }

    #[test]
    fn a_pod_whose_host_port_now_conflicts_moves() {
        // `p` runs on `a`; `q` too, and now asks for the same host port: the first in name order
        // keeps `a`, the other moves.
        let with_port = "  containers:\n  - name: c\n    image: busybox\n    ports: [{containerPort: 80, hostPort: 8080}]\n";
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{with_port}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: q}}\nspec:\n{with_port}"
        );
        let ps = pods(&yaml);
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let current: BTreeMap<String, String> = [
            ("default/p".to_owned(), "a".to_owned()),
            ("default/q".to_owned(), "a".to_owned()),
        ]
        .into();
        let placed = place(&refs, &nodes(&["a", "b"]), &current);
        assert_eq!(placed["default/p"], Placement::Node("a".into()));
        assert_eq!(placed["default/q"], Placement::Node("b".into()));
    }

    #[test]
    fn a_pod_whose_selector_no_longer_matches_moves() {
        let ps = pods(&deployment("db", 1, "      nodeSelector: {disk: ssd}\n"));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let key = pod_key(&ps[0]);
        let current: BTreeMap<String, String> = [(key.clone(), "a".to_owned())].into();
        let all = [node("a", &[("disk", "hdd")]), node("b", &[("disk", "ssd")])];
        assert_eq!(
            place(&refs, &all, &current)[&key],
            Placement::Node("b".into())
        );
        // nodeName likewise.
        let ps = pods(&bare("pinned", "  nodeName: b\n"));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let current: BTreeMap<String, String> =
            [("default/pinned".to_owned(), "a".to_owned())].into();
        assert_eq!(
            place(&refs, &nodes(&["a", "b"]), &current)["default/pinned"],
            Placement::Node("b".into())
        );
    }

    #[test]
    fn a_record_naming_an_unknown_node_is_not_kept() {
        let ps = pods(&deployment("web", 2, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let current: BTreeMap<String, String> =
            ps.iter().map(|p| (pod_key(p), "gone".to_owned())).collect();
        let all = nodes(&["a", "b"]);
        assert_eq!(place(&refs, &all, &current), place(&refs, &all, NOTHING));
    }

    #[test]
    fn new_replicas_spread_evenly_around_kept_ones() {
        // Two replicas run on `a` (they were placed when it was the only node); three more come.
        let ps = pods(&deployment("web", 5, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let kept: Vec<String> = ps.iter().take(2).map(pod_key).collect();
        let current: BTreeMap<String, String> =
            kept.iter().map(|k| (k.clone(), "a".to_owned())).collect();
        let placed = place(&refs, &nodes(&["a", "b", "c"]), &current);
        for k in &kept {
            assert_eq!(placed[k], Placement::Node("a".into()));
        }
        let count = on(&placed);
        // `b` and `c` take one each, then the fifth goes to one of them (fewest of `web`).
        let mut others = vec![count["b"], count["c"]];
        others.sort();
        assert_eq!((count["a"], others), (2, vec![1, 2]), "{placed:?}");
    }

    #[test]
    fn a_new_revision_spreads_around_the_old_one() {
        // A rolling update: the old revision's three pods run one per node; the new revision's
        // three (other names, same owner) go one per node too, and the old ones stay.
        let old = pods(&deployment("web", 3, ""));
        let new = pods(&deployment(
            "web",
            3,
            "      terminationGracePeriodSeconds: 5\n",
        ));
        assert!(old.iter().all(|o| new.iter().all(|n| n.name != o.name)));
        let all = nodes(&["a", "b", "c"]);
        let before = place(&old.iter().collect::<Vec<_>>(), &all, NOTHING);
        let both: Vec<&PodInstance> = old.iter().chain(&new).collect();
        let during = place(&both, &all, &running(&before));
        for (k, p) in &before {
            assert_eq!(&during[k], p);
        }
        assert_eq!(on(&during).values().copied().collect::<Vec<_>>(), [2, 2, 2]);
    }

    #[test]
    fn of_two_pods_with_one_key_the_last_given_is_placed() {
        // A bare Pod named like a Deployment's replica: the reconciler keeps the last one given,
        // and placement answers for that one.
        let replica = pods(&deployment("db", 1, "      nodeSelector: {disk: ssd}\n"));
        let mut twin = pods(&bare("x", ""));
        twin[0].name = replica[0].name.clone();
        let all = [node("a", &[]), node("b", &[("disk", "ssd")])];
        let placed = place(&[&twin[0], &replica[0]], &all, NOTHING);
        assert_eq!(placed.len(), 1);
        assert_eq!(placed.values().next(), Some(&Placement::Node("b".into())));
        let placed = place(&[&replica[0], &twin[0]], &all, NOTHING);
        assert_eq!(placed, reference(&[&replica[0], &twin[0]], &all, NOTHING));
    }

    #[test]
    fn duplicate_node_records_count_once_in_any_order() {
        let ps = pods(&deployment("web", 4, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let mut stale = node("b", &[("zone", "x")]);
        stale.ready = false;
        let one = vec![node("a", &[]), node("b", &[]), stale.clone()];
        let other = vec![stale, node("b", &[]), node("a", &[])];
        let placed = place(&refs, &one, NOTHING);
        assert_eq!(placed, place(&refs, &other, NOTHING));
        assert_eq!(on(&placed).values().copied().collect::<Vec<_>>(), [2, 2]);
    }

    /// Fisher-Yates driven by a xorshift generator from `seed`.
    fn shuffle<T>(v: &mut [T], seed: u64) {
        let mut x = seed | 1;
        for i in (1..v.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let j = usize::try_from(x % (i as u64 + 1)).unwrap();
            v.swap(i, j);
        }
    }

    /// A random cluster: Deployments (some asking for a zone or a host port), bare pods, nodes
    /// in two zones (some not ready), and records of where pods run (some on unknown nodes, some
    /// of pods that are gone).
    #[derive(Debug, Clone)]
    struct World {
        pods: Vec<PodInstance>,
        nodes: Vec<NodeInfo>,
        current: BTreeMap<String, String>,
    }

    fn world() -> impl Strategy<Value = World> {
        let deployments = prop::collection::vec(
            (
                1usize..10,
                prop::option::weighted(0.3, prop::sample::select(vec!["x", "y"])),
                prop::option::weighted(0.3, prop::sample::select(vec![80, 81])),
            ),
            1..5,
        );
        let bare_pods = prop::collection::vec(
            prop::option::weighted(0.5, prop::sample::select(vec![80, 81])),
            0..3,
        );
        let nodes = prop::collection::btree_map(
            "[a-h]{1,3}",
            (
                prop::sample::select(vec!["x", "y"]),
                prop::bool::weighted(0.85),
            ),
            1..7,
        );
        (deployments, bare_pods, nodes)
            .prop_flat_map(|(deployments, bare_pods, nodes)| {
                let mut yaml = Vec::new();
                for (i, (replicas, zone, port)) in deployments.iter().enumerate() {
                    yaml.push(shaped(&format!("d{i}"), *replicas, *zone, *port));
                }
                for (i, port) in bare_pods.iter().enumerate() {
                    let extra = port
                        .map(|p| format!("  containers:\n  - name: c\n    image: busybox\n    ports: [{{containerPort: 80, hostPort: {p}}}]\n"));
                    yaml.push(match extra {
                        Some(spec) => format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: solo-{i}}}\nspec:\n{spec}"),
                        None => bare(&format!("solo-{i}"), ""),
                    });
                }
                let pods = pods(&yaml.join("---\n"));
                let nodes: Vec<NodeInfo> = nodes
                    .iter()
                    .map(|(name, (zone, ready))| NodeInfo {
                        ready: *ready,
                        ..node(name, &[("zone", zone)])
                    })
                    .collect();
                let mut names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
                names.push("gone".to_owned());
                let mut keys: Vec<String> = pods.iter().map(pod_key).collect();
                // Records of pods that are gone, between and around the others' keys.
                keys.extend(
                    ["default/a", "default/d1", "default/d2-", "default/solo", "default/zz", "other/x"]
                        .map(str::to_owned),
                );
                let current = prop::collection::vec(
                    prop::option::weighted(0.6, prop::sample::select(names)),
                    keys.len(),
                )
                .prop_map(move |on| {
                    keys.iter()
                        .zip(on)
                        .filter_map(|(k, n)| Some((k.clone(), n?)))
                        .collect::<BTreeMap<_, _>>()
                });
                (Just(pods), Just(nodes), current)
            })
            .prop_map(|(pods, nodes, current)| World {
                pods,
                nodes,
                current,
            })
    }

    proptest! {
        #[test]
        fn placement_is_deterministic_and_spreads(
            replicas in 1usize..12,
            names in prop::collection::btree_set("[a-z]{1,6}", 1..6),
            rotate in 0usize..6,
        ) {
            let ps = pods(&deployment("web", replicas, ""));
            let refs: Vec<&PodInstance> = ps.iter().collect();
            let nodes: Vec<NodeInfo> = names.iter().map(|n| node(n, &[])).collect();
            let mut shuffled = nodes.clone();
            shuffled.rotate_left(rotate % nodes.len());
            let mut rev = refs.clone();
            rev.reverse();
            let a = place(&refs, &nodes, NOTHING);
            let b = place(&rev, &shuffled, NOTHING);
            prop_assert_eq!(&a, &b);
            let count = on(&a);
            prop_assert_eq!(count.values().sum::<usize>(), replicas);
            let max = count.values().max().copied().unwrap_or(0);
            let min = if count.len() < nodes.len() { 0 } else { count.values().min().copied().unwrap_or(0) };
            prop_assert!(max - min <= 1, "{:?}", count);
        }

        #[test]
        fn place_answers_as_the_plain_rules_do(w in world()) {
            let refs: Vec<&PodInstance> = w.pods.iter().collect();
            prop_assert_eq!(place(&refs, &w.nodes, &w.current), reference(&refs, &w.nodes, &w.current));
            prop_assert_eq!(place(&refs, &w.nodes, NOTHING), reference(&refs, &w.nodes, NOTHING));
        }

        #[test]
        fn the_answer_does_not_depend_on_input_order(w in world(), seed in any::<u64>()) {
            let refs: Vec<&PodInstance> = w.pods.iter().collect();
            let mut shuffled_pods = refs.clone();
            let mut shuffled_nodes = w.nodes.clone();
            shuffle(&mut shuffled_pods, seed);
            shuffle(&mut shuffled_nodes, seed.rotate_left(17));
            prop_assert_eq!(
                place(&refs, &w.nodes, &w.current),
                place(&shuffled_pods, &shuffled_nodes, &w.current)
            );
        }

        #[test]
        fn placing_again_with_what_runs_moves_nothing(w in world()) {
            // A restart of podswarm: the same inputs and what the first answer runs.
            let refs: Vec<&PodInstance> = w.pods.iter().collect();
            let first = place(&refs, &w.nodes, &w.current);
            prop_assert_eq!(place(&refs, &w.nodes, &running(&first)), first);
        }

        #[test]
        fn a_joining_node_moves_no_running_pod(
            w in world(),
            zone in prop::sample::select(vec!["x", "y"]),
        ) {
            let refs: Vec<&PodInstance> = w.pods.iter().collect();
            let first = place(&refs, &w.nodes, &w.current);
            let mut joined = w.nodes.clone();
            joined.push(node("zz-new", &[("zone", zone)]));
            let second = place(&refs, &joined, &running(&first));
            for (key, was) in &first {
                match was {
                    Placement::Node(_) => prop_assert_eq!(&second[key], was, "{}", key),
                    // Only the new node can take a pod nothing took before.
                    Placement::Pending(_) => prop_assert!(
                        matches!(&second[key], Placement::Pending(_))
                            || second[key] == Placement::Node("zz-new".into()),
                        "{}: {:?}", key, second[key]
                    ),
                }
            }
        }

        #[test]
        fn removing_a_node_moves_only_its_pods(
            w in world(),
            pick in any::<prop::sample::Index>(),
            dies in any::<bool>(),
        ) {
            let refs: Vec<&PodInstance> = w.pods.iter().collect();
            let first = place(&refs, &w.nodes, &w.current);
            let mut left = w.nodes.clone();
            let gone = pick.index(left.len());
            let name = left[gone].name.clone();
            if dies {
                left[gone].ready = false;
            } else {
                left.remove(gone);
            }
            let second = place(&refs, &left, &running(&first));
            for (key, was) in &first {
                match was {
                    Placement::Node(n) if *n == name => prop_assert_ne!(&second[key], was),
                    Placement::Node(_) => prop_assert_eq!(&second[key], was, "{}", key),
                    Placement::Pending(_) => {}
                }
            }
        }

        #[test]
        fn new_pods_spread_within_one_when_nothing_is_kept(
            replicas in prop::collection::vec(1usize..15, 1..4),
            names in prop::collection::btree_set("[a-z]{1,6}", 1..8),
        ) {
            let yaml: Vec<String> = replicas
                .iter()
                .enumerate()
                .map(|(i, r)| deployment(&format!("d{i}"), *r, ""))
                .collect();
            let ps = pods(&yaml.join("---\n"));
            let refs: Vec<&PodInstance> = ps.iter().collect();
            let all: Vec<NodeInfo> = names.iter().map(|n| node(n, &[])).collect();
            let placed = place(&refs, &all, NOTHING);
            // Each Deployment spreads within one (the owner rule comes first).
            for (i, r) in replicas.iter().enumerate() {
                let prefix = format!("default/d{i}-");
                let mine: BTreeMap<String, Placement> = placed
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, p)| (k.clone(), p.clone()))
                    .collect();
                let count = on(&mine);
                prop_assert_eq!(count.values().sum::<usize>(), *r);
                let max = count.values().max().copied().unwrap_or(0);
                let min = if count.len() < all.len() { 0 } else { count.values().min().copied().unwrap_or(0) };
                prop_assert!(max - min <= 1, "{:?}", count);
            }
        }
    }

    /// `current` with `moves` made, each from where `current` says the pod runs.
    fn moved(current: &BTreeMap<String, String>, moves: &[Move]) -> BTreeMap<String, String> {
        let mut after = current.clone();
        for m in moves {
            assert_ne!(m.from, m.to, "{m:?}");
            assert_eq!(
                after.insert(m.pod.clone(), m.to.clone()),
                Some(m.from.clone())
            );
        }
        after
    }

    fn fits_node(p: &PodInstance, n: &NodeInfo) -> bool {
        p.spec.node_name.as_ref().is_none_or(|w| *w == n.name)
            && p.spec
                .node_selector
                .iter()
                .flatten()
                .all(|(k, v)| n.labels.get(k) == Some(v))
    }

    /// Per owner that runs pods: how many run on each node it may use (ready, open, fitting one
    /// of its running pods), in name order.
    fn spreads(
        pods: &[PodInstance],
        nodes: &[NodeInfo],
        current: &BTreeMap<String, String>,
    ) -> BTreeMap<String, Vec<usize>> {
        let mut owners: BTreeMap<String, Vec<&PodInstance>> = BTreeMap::new();
        for p in pods.iter().filter(|p| current.contains_key(&pod_key(p))) {
            let owner = match &p.owner {
                Some(o) => format!("{}/{}/{}", p.namespace, o.kind, o.name),
                None => pod_key(p),
            };
            owners.entry(owner).or_default().push(p);
        }
        let ready = ready_nodes(nodes);
        owners
            .into_iter()
            .map(|(owner, mine)| {
                let counts = ready
                    .iter()
                    .filter(|n| !n.cordoned && !n.draining)
                    .filter(|n| mine.iter().any(|p| fits_node(p, n)))
                    .map(|n| {
                        mine.iter()
                            .filter(|p| current.get(&pod_key(p)) == Some(&n.name))
                            .count()
                    })
                    .collect();
                (owner, counts)
            })
            .collect()
    }

    fn within_one(counts: &[usize]) -> bool {
        let max = counts.iter().max().copied().unwrap_or(0);
        let min = counts.iter().min().copied().unwrap_or(0);
        max - min <= 1
    }

    #[test]
    fn rebalancing_spreads_what_ran_on_one_node_and_then_rests() {
        // Six replicas ran on `a` while it was the only node; `b` and `c` joined since.
        let ps = pods(&deployment("web", 6, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let mut keys: Vec<String> = ps.iter().map(pod_key).collect();
        keys.sort();
        let current: BTreeMap<String, String> =
            keys.iter().map(|k| (k.clone(), "a".to_owned())).collect();
        let all = nodes(&["a", "b", "c"]);
        let moves = rebalance(&refs, &all, &current);
        // One at a time from the fullest node to the emptiest (name order on ties), the highest
        // name first: the two lowest-named stay.
        let expected: Vec<Move> = [(2, "c"), (3, "b"), (4, "c"), (5, "b")]
            .iter()
            .map(|(i, to)| Move {
                pod: keys[*i].clone(),
                from: "a".into(),
                to: (*to).into(),
            })
            .collect();
        assert_eq!(moves, expected);
        let after = moved(&current, &moves);
        // Placement keeps each moved pod where it went.
        let placed = place(&refs, &all, &after);
        assert_eq!(running(&placed), after);
        assert_eq!(on(&placed).values().copied().collect::<Vec<_>>(), [2, 2, 2]);
        assert_eq!(rebalance(&refs, &all, &after), []);
    }

    #[test]
    fn a_spread_within_one_and_lone_pods_stay() {
        let yaml = [deployment("web", 4, ""), bare("solo", "")].join("---\n");
        let ps = pods(&yaml);
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let all = nodes(&["a", "b", "c"]);
        let current = running(&place(&refs, &all, NOTHING));
        assert_eq!(rebalance(&refs, &all, &current), []);
        // All on one node: only the Deployment's pods move; a bare pod is an owner of one.
        let piled: BTreeMap<String, String> = current
            .keys()
            .map(|k| (k.clone(), "a".to_owned()))
            .collect();
        let moves = rebalance(&refs, &all, &piled);
        assert!(moves.iter().all(|m| m.pod != "default/solo"), "{moves:?}");
        assert_eq!(moves.len(), 2, "{moves:?}");
        // Nothing runs: nothing to move (placement places new pods evenly by itself).
        assert_eq!(rebalance(&refs, &all, NOTHING), []);
    }

    #[test]
    fn cordoned_and_draining_nodes_neither_give_nor_take() {
        let ps = pods(&deployment("web", 6, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let mut keys: Vec<String> = ps.iter().map(pod_key).collect();
        keys.sort();
        let mut all = nodes(&["a", "b", "c", "d"]);
        all[0].cordoned = true;
        all[3].cordoned = true;
        all[3].draining = true;
        // Four on cordoned `a` (they stay: cordoning moves nothing), two on `b`.
        let current: BTreeMap<String, String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), if i < 4 { "a" } else { "b" }.to_owned()))
            .collect();
        let moves = rebalance(&refs, &all, &current);
        assert_eq!(
            moves,
            [Move {
                pod: keys[5].clone(),
                from: "b".into(),
                to: "c".into()
            }]
        );
    }

    #[test]
    fn pods_move_only_where_they_fit() {
        // A Deployment that wants ssd disks, all on `a`; `c` has no ssd.
        let ps = pods(&deployment("db", 4, "      nodeSelector: {disk: ssd}\n"));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let current: BTreeMap<String, String> =
            ps.iter().map(|p| (pod_key(p), "a".to_owned())).collect();
        let all = [
            node("a", &[("disk", "ssd")]),
            node("b", &[("disk", "ssd")]),
            node("c", &[("disk", "hdd")]),
        ];
        let moves = rebalance(&refs, &all, &current);
        assert_eq!(moves.len(), 2, "{moves:?}");
        assert!(moves.iter().all(|m| m.to == "b"), "{moves:?}");

        // Mid-rollout: three old pods and a new one that asks for host port 8080 run on `a`;
        // `b` runs another pod on that port, so the new one cannot go there, old ones can.
        let old = pods(&deployment("web", 3, ""));
        let new = pods(&shaped("web", 1, None, Some(8080)));
        let lb = pods(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: lb}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    ports: [{containerPort: 80, hostPort: 8080}]\n",
        );
        let refs: Vec<&PodInstance> = old.iter().chain(&new).chain(&lb).collect();
        let mut current: BTreeMap<String, String> = old
            .iter()
            .chain(&new)
            .map(|p| (pod_key(p), "a".to_owned()))
            .collect();
        current.insert("default/lb".into(), "b".into());
        let all = nodes(&["a", "b"]);
        let moves = rebalance(&refs, &all, &current);
        assert_eq!(moves.len(), 2, "{moves:?}");
        assert!(moves.iter().all(|m| m.pod != pod_key(&new[0])), "{moves:?}");
        let after = moved(&current, &moves);
        assert_eq!(running(&place(&refs, &all, &after)), after);
    }

    #[test]
    fn a_move_steers_placement_only_to_a_node_that_may_take_the_pod() {
        let ps = pods(&deployment("db", 1, "      nodeSelector: {disk: ssd}\n"));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let key = pod_key(&ps[0]);
        let mut all = vec![
            node("a", &[("disk", "ssd")]),
            node("b", &[("disk", "ssd")]),
            node("c", &[("disk", "hdd")]),
            node("d", &[("disk", "ssd")]),
            node("e", &[("disk", "ssd")]),
        ];
        all[3].cordoned = true;
        all[4].ready = false;
        let current: BTreeMap<String, String> = [(key.clone(), "a".to_owned())].into();
        let to = |node: &str| BTreeMap::from([(key.clone(), node.to_owned())]);
        let steered = steer(current.clone(), &to("b"), &refs, &all);
        assert_eq!(steered, to("b"));
        assert_eq!(
            place(&refs, &all, &steered)[&key],
            Placement::Node("b".into())
        );
        // No ssd, cordoned, not ready, unknown: the pod stays where it runs.
        for node in ["c", "d", "e", "gone"] {
            assert_eq!(
                steer(current.clone(), &to(node), &refs, &all),
                current,
                "{node}"
            );
        }
        // A move of a pod that does not run (or no longer exists) places nothing.
        assert_eq!(steer(NOTHING.clone(), &to("b"), &refs, &all), *NOTHING);
        let other = BTreeMap::from([("default/gone".to_owned(), "b".to_owned())]);
        assert_eq!(steer(current.clone(), &other, &refs, &all), current);
    }

    /// Node states for a [`World`]'s nodes, by index: open, cordoned, or draining.
    fn maintenance() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![0u8, 0, 0, 0, 1, 2]), 8)
    }

    fn with_maintenance(nodes: &[NodeInfo], states: &[u8]) -> Vec<NodeInfo> {
        nodes
            .iter()
            .zip(states)
            .map(|(n, s)| NodeInfo {
                cordoned: *s > 0,
                draining: *s == 2,
                ..n.clone()
            })
            .collect()
    }

    proptest! {
        #[test]
        fn rebalancing_spreads_each_owner_within_one_and_placement_keeps_it(
            w in world(),
            states in maintenance(),
            seed in any::<u64>(),
            pile in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let refs: Vec<&PodInstance> = w.pods.iter().collect();
            let all = with_maintenance(&w.nodes, &states);
            // Records as they are, or (as after nodes joined a cluster that was one node) all
            // naming one node.
            let mut current = w.current.clone();
            if let Some(pick) = pile {
                let name = &w.nodes[pick.index(w.nodes.len())].name;
                for node in current.values_mut() {
                    node.clone_from(name);
                }
            }
            // Where pods run once placement has acted on the records.
            let before = running(&place(&refs, &all, &current));
            let moves = rebalance(&refs, &all, &before);
            let mut shuffled_pods = refs.clone();
            let mut shuffled_nodes = all.clone();
            shuffle(&mut shuffled_pods, seed);
            shuffle(&mut shuffled_nodes, seed.rotate_left(17));
            prop_assert_eq!(&rebalance(&shuffled_pods, &shuffled_nodes, &before), &moves);
            let after = moved(&before, &moves);
            // Every move is one a move record steers placement to, and placement keeps it.
            let targets: BTreeMap<String, String> =
                moves.iter().map(|m| (m.pod.clone(), m.to.clone())).collect();
            prop_assert_eq!(&steer(before.clone(), &targets, &refs, &all), &after);
            let placed = place(&refs, &all, &after);
            for (key, node) in &after {
                prop_assert_eq!(&placed[key], &Placement::Node(node.clone()), "{}", key);
            }
            for (owner, counts) in spreads(&w.pods, &all, &after) {
                prop_assert!(within_one(&counts), "{}: {:?} {:?}", owner, counts, moves);
            }
            prop_assert_eq!(rebalance(&refs, &all, &after), Vec::<Move>::new());
        }

        #[test]
        fn a_cluster_placed_from_scratch_needs_no_rebalancing(
            w in world(),
            states in maintenance(),
        ) {
            let refs: Vec<&PodInstance> = w.pods.iter().collect();
            let all = with_maintenance(&w.nodes, &states);
            let placed = running(&place(&refs, &all, NOTHING));
            prop_assert_eq!(rebalance(&refs, &all, &placed), Vec::<Move>::new());
        }
    }
}
