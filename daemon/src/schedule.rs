//! Placement without a leader: every node runs this same pure function over the same replicated
//! objects and (once gossip has converged) the same set of ready nodes, so every node reaches the
//! same answer and runs exactly the pods placed on itself.
//!
//! Pods are placed one by one in name order. A pod may go to a ready node that matches its
//! `nodeSelector` (and `nodeName`, when set) and has none of its host ports taken yet. Among
//! those it prefers the node with the fewest pods of the same owner (spreading a Deployment's
//! replicas), then the node with the fewest pods overall, then the highest rendezvous hash of
//! (pod, node) — so ties break the same way everywhere and a node's arrival or departure moves
//! few pods. A pod nothing fits stays Pending with the reason.

use std::collections::{BTreeMap, BTreeSet};

use podswarm_manifest::PodInstance;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Node(String),
    Pending(String),
}

pub fn pod_key(pod: &PodInstance) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

fn rendezvous(pod: &str, node: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(pod.as_bytes());
    h.update([0]);
    h.update(node.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

fn host_ports(pod: &PodInstance) -> Vec<(String, i32)> {
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

pub fn place(pods: &[&PodInstance], nodes: &[NodeInfo]) -> BTreeMap<String, Placement> {
    let mut nodes: Vec<&NodeInfo> = nodes.iter().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes.dedup_by(|a, b| a.name == b.name);
    let mut pods: Vec<&PodInstance> = pods.to_vec();
    pods.sort_by_key(|p| pod_key(p));

    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    let mut owned: BTreeMap<(String, &str), usize> = BTreeMap::new();
    let mut ports: BTreeMap<&str, BTreeSet<(String, i32)>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for pod in pods {
        let key = pod_key(pod);
        let owner = pod
            .owner
            .as_ref()
            .map(|o| format!("{}/{}/{}", pod.namespace, o.kind, o.name))
            .unwrap_or_else(|| key.clone());
        let selector = pod.spec.node_selector.clone().unwrap_or_default();
        let wanted_ports = host_ports(pod);
        let ready: Vec<&NodeInfo> = nodes.iter().copied().filter(|n| n.ready).collect();
        let matching: Vec<&NodeInfo> = ready
            .iter()
            .copied()
            .filter(|n| selector.iter().all(|(k, v)| n.labels.get(k) == Some(v)))
            .filter(|n| {
                pod.spec
                    .node_name
                    .as_ref()
                    .is_none_or(|want| *want == n.name)
            })
            .collect();
        let free: Vec<&NodeInfo> = matching
            .iter()
            .copied()
            .filter(|n| {
                let taken = ports.get(n.name.as_str());
                wanted_ports
                    .iter()
                    .all(|p| taken.is_none_or(|t| !t.contains(p)))
            })
            .collect();
        let best = free.iter().copied().min_by_key(|n| {
            (
                owned
                    .get(&(owner.clone(), n.name.as_str()))
                    .copied()
                    .unwrap_or(0),
                load.get(n.name.as_str()).copied().unwrap_or(0),
                std::cmp::Reverse(rendezvous(&key, &n.name)),
            )
        });
        let placement = match best {
            Some(n) => {
                *load.entry(n.name.as_str()).or_default() += 1;
                *owned.entry((owner, n.name.as_str())).or_default() += 1;
                ports
                    .entry(n.name.as_str())
                    .or_default()
                    .extend(wanted_ports);
                Placement::Node(n.name.clone())
            }
            None if ready.is_empty() => Placement::Pending("no node is ready".to_owned()),
            None if matching.is_empty() => {
                let mut parts: Vec<String> =
                    selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                if let Some(n) = &pod.spec.node_name {
                    parts.push(format!("nodeName={n}"));
                }
                Placement::Pending(format!(
                    "no ready node matches {} ({} ready)",
                    parts.join(","),
                    ready.len()
                ))
            }
            None => {
                let list: Vec<String> = wanted_ports
                    .iter()
                    .map(|(proto, p)| format!("{p}/{proto}"))
                    .collect();
                Placement::Pending(format!(
                    "every matching node already has a pod on host port {}",
                    list.join(", ")
                ))
            }
        };
        out.insert(key, placement);
    }
    out
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

    fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ready: true,
        }
    }

    fn on(placed: &BTreeMap<String, Placement>) -> BTreeMap<String, usize> {
        let mut count = BTreeMap::new();
        for p in placed.values() {
            if let Placement::Node(n) = p {
                *count.entry(n.clone()).or_default() += 1;
            }
        }
        count
    }

    #[test]
    fn replicas_spread_one_per_node() {
        let ps = pods(&deployment("web", 3, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let placed = place(&refs, &[node("a", &[]), node("b", &[]), node("c", &[])]);
        assert_eq!(on(&placed).values().copied().collect::<Vec<_>>(), [1, 1, 1]);
    }

    #[test]
    fn a_dead_node_loses_its_pods_to_the_others() {
        let ps = pods(&deployment("web", 3, ""));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let mut nodes = vec![node("a", &[]), node("b", &[]), node("c", &[])];
        nodes[1].ready = false;
        let placed = place(&refs, &nodes);
        let count = on(&placed);
        assert_eq!(count.get("b"), None);
        assert_eq!(count.values().sum::<usize>(), 3);
    }

    #[test]
    fn node_selector_and_its_pending_reason() {
        let ps = pods(&deployment("db", 2, "      nodeSelector: {disk: ssd}\n"));
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let placed = place(&refs, &[node("a", &[]), node("b", &[("disk", "ssd")])]);
        assert!(placed.values().all(|p| *p == Placement::Node("b".into())));
        let placed = place(&refs, &[node("a", &[])]);
        assert!(
            placed
                .values()
                .all(|p| matches!(p, Placement::Pending(r) if r.contains("disk=ssd"))),
            "{placed:?}"
        );
    }

    #[test]
    fn host_ports_never_share_a_node() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: lb}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: lb}}\n  template:\n    metadata: {labels: {app: lb}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        ports: [{containerPort: 80, hostPort: 8080}]\n";
        let ps = pods(yaml);
        let refs: Vec<&PodInstance> = ps.iter().collect();
        let placed = place(&refs, &[node("a", &[]), node("b", &[])]);
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
        let placed = place(&refs, &[n]);
        assert_eq!(
            placed.values().next(),
            Some(&Placement::Pending("no node is ready".into()))
        );
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
            let a = place(&refs, &nodes);
            let b = place(&rev, &shuffled);
            prop_assert_eq!(&a, &b);
            let count = on(&a);
            prop_assert_eq!(count.values().sum::<usize>(), replicas);
            let max = count.values().max().copied().unwrap_or(0);
            let min = if count.len() < nodes.len() { 0 } else { count.values().min().copied().unwrap_or(0) };
            prop_assert!(max - min <= 1, "{:?}", count);
        }
    }
}
