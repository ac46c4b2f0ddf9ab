//! What the API derives from the applied objects: Deployment status, Service endpoints, and the
//! nodes. Services and Ingresses are returned as the Kubernetes objects that were applied, with
//! podswarm's own figures beside them under `podswarm` (so a Kubernetes reader of the object
//! sees nothing it does not know).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use serde::{Deserialize, Serialize};

/// A Deployment's pods as the API counts them (`GET /api/v1/deployments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    pub namespace: String,
    pub name: String,
    /// Desired pods.
    pub replicas: i32,
    /// Ready pods of any revision.
    pub ready: usize,
    /// Pods of the current template (Kubernetes' `updatedReplicas`).
    pub up_to_date: usize,
    /// Pods of any revision ready for at least `minReadySeconds` (Kubernetes'
    /// `availableReplicas`).
    pub available: usize,
    /// Seconds since the epoch.
    pub created: u64,
    /// The state version the Deployment was last written at. Every node computes the status from
    /// the object at this version, so it is also Kubernetes' `observedGeneration`.
    pub version: u64,
    /// Pods of every revision that exist (Kubernetes' `status.replicas`); older podswarm said
    /// nothing here.
    #[serde(default)]
    pub total: usize,
    /// The current template's revision (`deployment.kubernetes.io/revision`); 0 before the first
    /// rollout was recorded.
    #[serde(default)]
    pub revision: u64,
    /// `Available` and `Progressing`, as Kubernetes reports them.
    #[serde(default)]
    pub conditions: Vec<DeploymentCondition>,
}

impl DeploymentStatus {
    /// The condition of a type, if reported.
    pub fn condition(&self, kind: ConditionType) -> Option<&DeploymentCondition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

/// One of a Deployment's conditions (`status.conditions[]` in Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentCondition {
    #[serde(rename = "type")]
    pub kind: ConditionType,
    pub status: ConditionStatus,
    pub reason: ConditionReason,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionType {
    Available,
    Progressing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// Kubernetes' reasons, spelled as `kubectl` prints them (and as `rollout status` matches them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionReason {
    MinimumReplicasAvailable,
    MinimumReplicasUnavailable,
    NewReplicaSetAvailable,
    ReplicaSetUpdated,
    ProgressDeadlineExceeded,
    DeploymentPaused,
    /// A reason a newer podswarm reports; readers show the message.
    #[serde(other)]
    Other,
}

impl ConditionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionReason::MinimumReplicasAvailable => "MinimumReplicasAvailable",
            ConditionReason::MinimumReplicasUnavailable => "MinimumReplicasUnavailable",
            ConditionReason::NewReplicaSetAvailable => "NewReplicaSetAvailable",
            ConditionReason::ReplicaSetUpdated => "ReplicaSetUpdated",
            ConditionReason::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            ConditionReason::DeploymentPaused => "DeploymentPaused",
            ConditionReason::Other => "Other",
        }
    }
}

/// One Deployment (`GET /api/v1/deployments/:ns/:name`): its counts and the object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentDetail {
    /// podswarmd has counts for every Deployment it holds; `null` has always been allowed here,
    /// so readers keep accepting it.
    pub status: Option<DeploymentStatus>,
    pub object: Deployment,
}

/// One revision of a Deployment (`GET /api/v1/deployments/:ns/:name/revisions`): a template it
/// has had, as its revision record keeps it, so `rollout history` can list it and `rollout undo`
/// can write it back. A template applied again (an undo) moves up to the newest revision, as in
/// Kubernetes, so each template appears once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRevision {
    /// Kubernetes' `deployment.kubernetes.io/revision`: grows with each new template.
    pub revision: u64,
    /// The template's hash, the middle part of its pods' names (`<name>-<hash>-<n>`).
    pub template_hash: String,
    /// When the template was applied, in seconds since the epoch.
    pub created: u64,
    pub template: PodTemplateSpec,
    /// `kubernetes.io/change-cause` as `kubectl rollout history` shows it: the Deployment's
    /// annotation for its current template, else the template's own.
    #[serde(default)]
    pub change_cause: Option<String>,
}

/// One port of one pod behind a Service (`GET /api/v1/services/:ns/:name/endpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub node: String,
    pub pod_name: String,
    pub address: String,
    pub port: i32,
    pub port_name: Option<String>,
    pub protocol: String,
    pub ready: bool,
}

/// `GET /api/v1/services/:ns/:name/endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub endpoints: Vec<Endpoint>,
}

/// `GET /api/v1/services/:ns/:name/addresses`: the ready endpoints as `ip:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    pub addresses: Vec<String>,
}

/// One Service (`GET /api/v1/services/:ns/:name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceDetail {
    pub object: Service,
    pub endpoints: Vec<Endpoint>,
    /// Seconds since the epoch.
    pub created: u64,
}

/// A node of the cluster (`GET /api/v1/nodes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    /// The address other nodes reach it at; empty before the node has published one.
    pub address: String,
    /// A live member of the cluster (this node always is, to itself).
    pub ready: bool,
    /// The pod subnet its claim holds, if one stands.
    pub pod_subnet: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// How many of the cluster's pods it runs.
    pub pods: usize,
    /// Cordoned: takes no new pod (`kubectl`'s `spec.unschedulable`). Absent from older nodes.
    #[serde(default)]
    pub unschedulable: bool,
    /// Being drained: its pods move to other nodes, each once its replacement is ready.
    #[serde(default)]
    pub draining: bool,
    /// Pods (`ns/name`) whose copy here is stopping while another node's copy serves them (a
    /// drain's moves): not in the pod list, which shows the serving copy, but still here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopping: Vec<String>,
}

impl Node {
    /// `kubectl get nodes`' STATUS: `Ready` or `NotReady`, with `,SchedulingDisabled` while
    /// cordoned.
    pub fn status(&self) -> String {
        let mut s = if self.ready { "Ready" } else { "NotReady" }.to_owned();
        if self.unschedulable {
            s.push_str(",SchedulingDisabled");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A revision as `GET /api/v1/deployments/:ns/:name/revisions` lists it; an answer without
    /// `changeCause` still reads.
    #[test]
    fn a_revision_carries_its_template_and_hash() {
        let wire = json!({"revision": 2, "templateHash": "8r45t6h2", "created": 5,
            "template": {"metadata": {"labels": {"app": "web"}}}, "changeCause": "v2"});
        let rev: DeploymentRevision = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(rev.change_cause.as_deref(), Some("v2"));
        assert_eq!(serde_json::to_value(&rev).unwrap(), wire);
        let older: DeploymentRevision = serde_json::from_value(
            json!({"revision": 1, "templateHash": "x", "created": 0, "template": {}}),
        )
        .unwrap();
        assert_eq!(older.change_cause, None);
    }

    #[test]
    fn a_node_without_a_subnet_says_null() {
        let node = Node {
            name: "n1".into(),
            address: String::new(),
            ready: true,
            pod_subnet: None,
            labels: BTreeMap::new(),
            pods: 0,
            unschedulable: false,
            draining: false,
            stopping: Vec::new(),
        };
        assert_eq!(
            serde_json::to_value(&node).unwrap(),
            json!({"name": "n1", "address": "", "ready": true, "podSubnet": null, "labels": {},
                "pods": 0, "unschedulable": false, "draining": false})
        );
        // Older nodes' answers have neither field: schedulable, not draining.
        let old: Node = serde_json::from_value(json!({"name": "n1", "address": "", "ready": false,
            "podSubnet": null, "labels": {}, "pods": 0}))
        .unwrap();
        assert_eq!(old.status(), "NotReady");
        assert_eq!(
            Node {
                unschedulable: true,
                ..node
            }
            .status(),
            "Ready,SchedulingDisabled"
        );
    }
}
