//! podswarm's views as the Kubernetes objects kubectl reads: a pod's status record becomes a
//! `Pod` with the status kubectl's printers and `describe` read, a node's record a `Node`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, EndpointAddress, EndpointPort, EndpointSubset,
    Endpoints, Node as KNode, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
    ObjectReference, Pod, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use crate::{Endpoint, Node, PodReason, PodView};

/// The systemd unit that stands for a pod (`systemctl status`, `journalctl -u` take it), on the
/// pod's Kubernetes form. Like every `podswarm.io/` annotation below, podswarm sets it on what it
/// answers and takes it off what clients write ([`SERVER_ANNOTATIONS`]).
pub const UNIT_ANNOTATION: &str = "podswarm.io/unit";

/// On a pod: what podswarm does not do of its spec (a field it ignores, …), one per line, as
/// the node that runs it found it.
pub const WARNINGS_ANNOTATION: &str = "podswarm.io/warnings";

/// On a node being drained: `"true"`.
pub const DRAINING_ANNOTATION: &str = "podswarm.io/draining";

/// On a node, during a drain: the pods (`ns/name`, comma-separated) whose copy there is still
/// stopping while another node's copy serves them.
pub const STOPPING_ANNOTATION: &str = "podswarm.io/stopping";

/// A Deployment's (and its ReplicaSets') revision number, as Kubernetes' deployment controller
/// sets it.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Why a revision was made, as `kubectl rollout history` shows it.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// The label a ReplicaSet adds to its pods and template: the template's hash.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The annotations podswarm computes, never stored from a client's write (Deployments' revision
/// too: `rollout undo` writes the annotations it read back).
pub const SERVER_ANNOTATIONS: [&str; 5] = [
    UNIT_ANNOTATION,
    WARNINGS_ANNOTATION,
    DRAINING_ANNOTATION,
    STOPPING_ANNOTATION,
    REVISION_ANNOTATION,
];

/// An object's `kubernetes.io/change-cause`, where it has a non-empty one.
pub fn change_cause(meta: &ObjectMeta) -> Option<String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION))
        .filter(|c| !c.is_empty())
        .cloned()
}

/// How a container is named in a pod's `containerStatuses[].containerID`: podman's name for it,
/// which `podman inspect|logs|exec` take as they take an ID (podswarm names containers; podman
/// picks the IDs).
pub const CONTAINER_ID_PREFIX: &str = "podman://";

/// `seconds` since the epoch as a Kubernetes time; `None` for 0 (not known).
pub fn time(seconds: u64) -> Option<Time> {
    if seconds == 0 {
        return None;
    }
    let seconds = i64::try_from(seconds).ok()?;
    k8s_openapi::jiff::Timestamp::from_second(seconds)
        .ok()
        .map(Time)
}

/// The reasons that mean the container ran and stopped, which Kubernetes reports as a
/// terminated state rather than a waiting one.
fn terminated(reason: PodReason) -> bool {
    matches!(
        reason,
        PodReason::OOMKilled | PodReason::Error | PodReason::Completed
    )
}

/// A pod as Kubernetes shows it. `host_ip` is its node's address, where known.
pub fn pod(view: &PodView, host_ip: Option<&str>) -> Pod {
    let owner = view.owner.as_deref().and_then(|o| o.split_once('/'));
    let metadata = ObjectMeta {
        name: Some(view.name.clone()),
        namespace: Some(view.namespace.clone()),
        labels: (!view.labels.is_empty()).then(|| view.labels.clone()),
        annotations: {
            let annotations: BTreeMap<String, String> = [
                (UNIT_ANNOTATION, view.unit.clone()),
                (WARNINGS_ANNOTATION, view.warnings.join("\n")),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            (!annotations.is_empty()).then_some(annotations)
        },
        creation_timestamp: time(view.created),
        // What kubectl reads as Terminating. podswarm does not record when a pod's stop began,
        // so its creation time stands in.
        deletion_timestamp: view.terminating.then(|| time(view.created)).flatten(),
        owner_references: owner.map(|(kind, name)| {
            vec![OwnerReference {
                api_version: if kind == "Deployment" || kind == "ReplicaSet" {
                    "apps/v1"
                } else {
                    "v1"
                }
                .to_owned(),
                kind: kind.to_owned(),
                name: name.to_owned(),
                controller: Some(true),
                ..OwnerReference::default()
            }]
        }),
        ..ObjectMeta::default()
    };
    let spec = PodSpec {
        node_name: (!view.node.is_empty()).then(|| view.node.clone()),
        containers: view
            .containers
            .iter()
            .map(|c| Container {
                name: c.name.clone(),
                image: Some(c.image.clone()),
                ..Container::default()
            })
            .collect(),
        ..PodSpec::default()
    };
    let reason = view.reason.filter(|r| *r != PodReason::Unknown);
    let scheduled = !view.node.is_empty() && view.reason != Some(PodReason::Unschedulable);
    // A pod no node has taken has no containers yet, as in Kubernetes.
    let container_statuses: Vec<ContainerStatus> = view
        .containers
        .iter()
        .filter(|_| scheduled)
        .map(|c| {
            let running = c.is_running();
            let state = if running {
                ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                }
            } else if let Some(r) = reason.filter(|r| terminated(*r)) {
                ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        reason: Some(r.as_str().to_owned()),
                        message: view.message.clone(),
                        exit_code: i32::from(r != PodReason::Completed),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                }
            } else {
                ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(
                            reason
                                .unwrap_or(PodReason::ContainerCreating)
                                .as_str()
                                .to_owned(),
                        ),
                        message: view.message.clone(),
                    }),
                    ..ContainerState::default()
                }
            };
            ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone(),
                container_id: (!c.podman_name.is_empty())
                    .then(|| format!("{CONTAINER_ID_PREFIX}{}", c.podman_name)),
                ready: running && view.ready,
                started: Some(running),
                restart_count: i32::try_from(c.restarts).unwrap_or(i32::MAX),
                state: Some(state),
                ..ContainerStatus::default()
            }
        })
        .collect();
    let condition = |type_: &str, ok: bool, since: Option<u64>| PodCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        last_transition_time: since.and_then(time),
        ..PodCondition::default()
    };
    let mut conditions = vec![
        condition("PodScheduled", scheduled, None),
        condition("Ready", view.ready, view.ready_since),
        condition("ContainersReady", view.ready, view.ready_since),
    ];
    if view.reason == Some(PodReason::Unschedulable) {
        conditions[0].reason = Some("Unschedulable".to_owned());
        conditions[0].message = view.message.clone();
    }
    let status = PodStatus {
        phase: Some(view.phase.as_str().to_owned()),
        pod_ip: view.ip.clone(),
        pod_ips: view
            .ip
            .as_ref()
            .map(|ip| vec![k8s_openapi::api::core::v1::PodIP { ip: ip.clone() }]),
        host_ip: host_ip.filter(|a| !a.is_empty()).map(str::to_owned),
        start_time: time(view.created),
        conditions: Some(conditions),
        // Where no container says why (none created yet), the pod does, as kubectl's STATUS
        // reads it; an unschedulable pod is just Pending there (its PodScheduled condition
        // says why), as in Kubernetes.
        reason: reason
            .filter(|r| container_statuses.is_empty() && *r != PodReason::Unschedulable)
            .map(|r| r.as_str().to_owned()),
        container_statuses: Some(container_statuses),
        message: view.message.clone(),
        ..PodStatus::default()
    };
    Pod {
        metadata,
        spec: Some(spec),
        status: Some(status),
    }
}

/// A Deployment's status as Kubernetes reports it, from the counts every node computes
/// (`kubectl rollout status` reads `observedGeneration`, the replica counts and the
/// `Progressing` condition's reason).
pub fn deployment_status(
    status: &crate::DeploymentStatus,
) -> k8s_openapi::api::apps::v1::DeploymentStatus {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus as KStatus};
    let count = |n: usize| Some(i32::try_from(n).unwrap_or(i32::MAX));
    KStatus {
        observed_generation: i64::try_from(status.version).ok(),
        replicas: count(status.total),
        updated_replicas: count(status.up_to_date),
        ready_replicas: count(status.ready),
        available_replicas: count(status.available),
        unavailable_replicas: count(status.total.saturating_sub(status.available)),
        conditions: Some(
            status
                .conditions
                .iter()
                .map(|c| DeploymentCondition {
                    type_: Some(format!("{:?}", c.kind)),
                    status: Some(format!("{:?}", c.status)),
                    reason: Some(c.reason.as_str().to_owned()),
                    message: Some(c.message.clone()),
                    ..DeploymentCondition::default()
                })
                .collect(),
        ),
        ..KStatus::default()
    }
}

/// A node as Kubernetes shows it: `Ready` from membership, cordoned as `unschedulable`, its
/// address as `InternalIP`, its pod subnet as `podCIDR`.
pub fn node(view: &Node, version: &str) -> KNode {
    let mut labels: BTreeMap<String, String> = view.labels.clone();
    labels
        .entry("kubernetes.io/hostname".to_owned())
        .or_insert_with(|| view.name.clone());
    labels
        .entry("kubernetes.io/os".to_owned())
        .or_insert_with(|| "linux".to_owned());
    KNode {
        metadata: ObjectMeta {
            name: Some(view.name.clone()),
            labels: Some(labels),
            annotations: node_annotations(view),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            unschedulable: view.unschedulable.then_some(true),
            pod_cidr: view.pod_subnet.clone(),
            pod_cidrs: view.pod_subnet.clone().map(|s| vec![s]),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(
                std::iter::once(NodeAddress {
                    type_: "Hostname".to_owned(),
                    address: view.name.clone(),
                })
                .chain((!view.address.is_empty()).then(|| NodeAddress {
                    type_: "InternalIP".to_owned(),
                    address: view.address.clone(),
                }))
                .collect(),
            ),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".to_owned(),
                status: if view.ready { "True" } else { "Unknown" }.to_owned(),
                reason: Some(
                    if view.ready {
                        "MemberAlive"
                    } else {
                        "MemberNotAlive"
                    }
                    .to_owned(),
                ),
                message: Some(
                    if view.ready {
                        "a live member of the cluster's gossip"
                    } else {
                        "not a live member of the cluster's gossip"
                    }
                    .to_owned(),
                ),
                ..NodeCondition::default()
            }]),
            node_info: Some(NodeSystemInfo {
                kubelet_version: format!("podswarm/{version}"),
                operating_system: "linux".to_owned(),
                architecture: std::env::consts::ARCH.to_owned(),
                container_runtime_version: "podman".to_owned(),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    }
}

/// A node's drain, where one is under way: [`DRAINING_ANNOTATION`] and [`STOPPING_ANNOTATION`].
fn node_annotations(view: &Node) -> Option<BTreeMap<String, String>> {
    let mut annotations = BTreeMap::new();
    if view.draining {
        annotations.insert(DRAINING_ANNOTATION.to_owned(), "true".to_owned());
    }
    if !view.stopping.is_empty() {
        annotations.insert(STOPPING_ANNOTATION.to_owned(), view.stopping.join(","));
    }
    (!annotations.is_empty()).then_some(annotations)
}

/// The pods (`ns/name`) a node's [`STOPPING_ANNOTATION`] names.
pub fn stopping(node: &KNode) -> Vec<String> {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STOPPING_ANNOTATION))
        .map(|s| {
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A Service's endpoints as the `Endpoints` object Kubernetes' endpoints controller keeps for
/// it: one subset per port (each endpoint podswarm tracks is a pod's address on one port, with
/// that port's number on the pod), ready pods as `addresses`, the others as
/// `notReadyAddresses`. Made `created` (the Service's creation time).
pub fn endpoints(namespace: &str, name: &str, endpoints: &[Endpoint], created: u64) -> Endpoints {
    let mut subsets: BTreeMap<(Option<&str>, i32, &str), EndpointSubset> = BTreeMap::new();
    for e in endpoints {
        let subset = subsets
            .entry((e.port_name.as_deref(), e.port, e.protocol.as_str()))
            .or_insert_with(|| EndpointSubset {
                ports: Some(vec![EndpointPort {
                    name: e.port_name.clone(),
                    port: e.port,
                    protocol: Some(e.protocol.clone()),
                    ..EndpointPort::default()
                }]),
                ..EndpointSubset::default()
            });
        let address = EndpointAddress {
            ip: e.address.clone(),
            node_name: (!e.node.is_empty()).then(|| e.node.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".to_owned()),
                namespace: Some(namespace.to_owned()),
                name: Some(e.pod_name.clone()),
                ..ObjectReference::default()
            }),
            ..EndpointAddress::default()
        };
        let list = if e.ready {
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        list.get_or_insert_with(Vec::new).push(address);
    }
    Endpoints {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            creation_timestamp: time(created),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then(|| subsets.into_values().collect()),
    }
}

/// How many ready endpoints (address and port) an `Endpoints` object holds.
pub fn ready_endpoints(e: &Endpoints) -> usize {
    e.subsets
        .iter()
        .flatten()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len) * s.ports.as_ref().map_or(0, Vec::len))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContainerView, Phase};

    fn view() -> PodView {
        PodView {
            namespace: "default".into(),
            name: "web-abc-0".into(),
            node: "c2".into(),
            ip: Some("10.244.2.5".into()),
            phase: Phase::Running,
            ready: true,
            restarts: 2,
            reason: None,
            message: None,
            owner: Some("Deployment/web".into()),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            unit: "podswarm-default_web-abc-0.service".into(),
            units: vec![],
            containers: vec![ContainerView {
                name: "web".into(),
                podman_name: "default_web-abc-0_web".into(),
                image: "localhost/web:1".into(),
                unit: "podswarm-default_web-abc-0_web.service".into(),
                state: "active/running".into(),
                restarts: 2,
            }],
            created: 1_700_000_000,
            warnings: vec![],
            ready_since: Some(1_700_000_010),
            terminating: false,
            moving: false,
            replaces: None,
        }
    }

    #[test]
    fn a_running_pod_reads_as_kubectl_expects() {
        let p = serde_json::to_value(pod(&view(), Some("192.168.1.2"))).unwrap();
        assert_eq!(p["kind"], "Pod");
        assert_eq!(p["apiVersion"], "v1");
        assert_eq!(p["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!(p["spec"]["nodeName"], "c2");
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["podIP"], "10.244.2.5");
        assert_eq!(p["status"]["hostIP"], "192.168.1.2");
        let c = &p["status"]["containerStatuses"][0];
        assert_eq!(c["ready"], true);
        assert_eq!(c["restartCount"], 2);
        assert!(c["state"]["running"].is_object());
        assert_eq!(p["status"]["conditions"][1]["type"], "Ready");
        assert_eq!(p["status"]["conditions"][1]["status"], "True");
    }

    #[test]
    fn reasons_become_container_states() {
        for (reason, state) in [
            (PodReason::CrashLoopBackOff, "waiting"),
            (PodReason::ImagePullBackOff, "waiting"),
            (PodReason::OOMKilled, "terminated"),
            (PodReason::Completed, "terminated"),
        ] {
            let mut v = view();
            v.ready = false;
            v.reason = Some(reason);
            v.containers[0].state = "failed/failed".into();
            let p = serde_json::to_value(pod(&v, None)).unwrap();
            let s = &p["status"]["containerStatuses"][0]["state"][state];
            assert_eq!(s["reason"], reason.as_str(), "{reason}");
            assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
        }
    }

    #[test]
    fn a_node_has_its_address_readiness_and_subnet() {
        let n = Node {
            name: "c1".into(),
            address: "192.168.1.1".into(),
            ready: false,
            pod_subnet: Some("10.244.1.0/24".into()),
            labels: BTreeMap::new(),
            pods: 3,
            unschedulable: true,
            draining: false,
            stopping: vec![],
        };
        let k = serde_json::to_value(node(&n, "0.1.0")).unwrap();
        assert_eq!(k["kind"], "Node");
        assert_eq!(k["spec"]["unschedulable"], true);
        assert_eq!(k["spec"]["podCIDR"], "10.244.1.0/24");
        assert_eq!(k["status"]["addresses"][1]["address"], "192.168.1.1");
        assert_eq!(k["status"]["conditions"][0]["status"], "Unknown");
        assert_eq!(k["status"]["nodeInfo"]["kubeletVersion"], "podswarm/0.1.0");
    }
}
