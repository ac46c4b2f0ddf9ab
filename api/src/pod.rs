//! Pods as the API shows them. The same [`PodView`] is the status record a node publishes for
//! each pod it runs (`pods/<ns>/<pod>` in the replicated state), which every other node reads
//! back: so it must also read records written by other podswarm versions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a pod is not simply running and ready, in Kubernetes' words (`kubectl get pods`' STATUS
/// column). Serialised as the Kubernetes string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PodReason {
    /// Placed here and being set up: units not started yet, or waiting for a ConfigMap or Secret.
    ContainerCreating,
    /// No node can take the pod now.
    Unschedulable,
    /// The pod cannot become units here: the generator refused it, or Quadlet rejected a file.
    CreateContainerConfigError,
    /// Podman could not create or start the container, though its image is there.
    CreateContainerError,
    /// The image is not there and could not be pulled; the unit stays down.
    ErrImagePull,
    /// The image could not be pulled, and systemd waits to try again.
    ImagePullBackOff,
    /// The container exited and systemd waits to restart it.
    CrashLoopBackOff,
    /// The kernel's OOM killer ended the container, which stays down.
    #[allow(clippy::upper_case_acronyms)]
    OOMKilled,
    /// The container failed and stays down.
    Error,
    /// The pod's containers exited successfully and stay down.
    Completed,
    /// A reason this podswarm does not know: a status record written by another version. Also the
    /// default, so `Option<PodReason>::unwrap_or_default` reads as "no known reason".
    #[default]
    #[serde(other)]
    Unknown,
}

impl PodReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PodReason::ContainerCreating => "ContainerCreating",
            PodReason::Unschedulable => "Unschedulable",
            PodReason::CreateContainerConfigError => "CreateContainerConfigError",
            PodReason::CreateContainerError => "CreateContainerError",
            PodReason::ErrImagePull => "ErrImagePull",
            PodReason::ImagePullBackOff => "ImagePullBackOff",
            PodReason::CrashLoopBackOff => "CrashLoopBackOff",
            PodReason::OOMKilled => "OOMKilled",
            PodReason::Error => "Error",
            PodReason::Completed => "Completed",
            PodReason::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for PodReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    pub name: String,
    /// The container's name in podman (and the journal's CONTAINER_NAME=).
    pub podman_name: String,
    pub image: String,
    pub unit: String,
    /// systemd's `ActiveState/SubState` of the container's unit, e.g. `active/running`.
    pub state: String,
    pub restarts: u32,
}

impl ContainerView {
    /// Whether the container runs (its unit is active), as `kubectl get pods`' READY counts it.
    pub fn is_running(&self) -> bool {
        self.state.starts_with("active/")
    }
}

/// A pod as the API shows it (`GET /api/v1/pods[/:ns/:name]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub ip: Option<String>,
    pub phase: Phase,
    pub ready: bool,
    pub restarts: u32,
    pub reason: Option<PodReason>,
    /// What a person needs to act on `reason`: podman's error line, what the pod waits for.
    /// Absent from records of older versions, which put their prose in `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The controller, as `Kind/name` (`Deployment/web`).
    pub owner: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The service that stands for the pod.
    pub unit: String,
    /// Every systemd unit of the pod (for logs).
    pub units: Vec<String>,
    pub containers: Vec<ContainerView>,
    /// Seconds since the epoch.
    pub created: u64,
    pub warnings: Vec<String>,
    /// Since when (seconds since the epoch) the pod has been ready without a break; rollouts
    /// count it available `minReadySeconds` later. Absent while not ready, and from older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<u64>,
    /// On its way out (rollout, scale down, delete, moved): no node's DNS or ingress sends it
    /// anything new, and it stops once every node's view has dropped it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminating: bool,
    /// Being handed over to another node (a drain, a node that no longer fits): this copy serves
    /// until the new node's copy is ready and takes over this record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moving: bool,
    /// The node whose copy this one took over from: once a node's view routes to this copy, it
    /// says so (`drained/<node>` lists `ns/name@<that node>`), and the old copy may stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

impl PodView {
    /// `kubectl get pods`' STATUS: Terminating for a pod on its way out, else the reason when there
    /// is one (CrashLoopBackOff,
    /// ImagePullBackOff, ContainerCreating …: the words users search for), else the phase. An
    /// unschedulable pod shows its phase, Pending, as kubectl does.
    pub fn status(&self) -> &'static str {
        if self.terminating {
            return "Terminating";
        }
        match self.reason {
            Some(PodReason::Unschedulable) | None => self.phase.as_str(),
            Some(reason) => reason.as_str(),
        }
    }

    /// Whether `Kind/name` (`Deployment/web`) controls this pod.
    pub fn is_owned_by(&self, kind: &str, name: &str) -> bool {
        self.owner
            .as_deref()
            .and_then(|o| o.split_once('/'))
            .is_some_and(|(k, n)| k == kind && n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_are_kubernetes_strings_and_unknown_ones_are_kept_apart() {
        for (reason, text) in [
            (PodReason::CrashLoopBackOff, "CrashLoopBackOff"),
            (PodReason::OOMKilled, "OOMKilled"),
            (PodReason::ErrImagePull, "ErrImagePull"),
            (PodReason::ImagePullBackOff, "ImagePullBackOff"),
            (
                PodReason::CreateContainerConfigError,
                "CreateContainerConfigError",
            ),
        ] {
            assert_eq!(serde_json::to_value(reason).ok(), Some(json!(text)));
            assert_eq!(reason.to_string(), text);
            assert_eq!(
                serde_json::from_value::<PodReason>(json!(text)).ok(),
                Some(reason)
            );
        }
        // A record of an older podswarm (prose in `reason`) still reads, as an unknown reason.
        assert_eq!(
            serde_json::from_value::<PodReason>(json!("waiting for ConfigMap a/b")).ok(),
            Some(PodReason::Unknown)
        );
    }

    fn pod() -> serde_json::Value {
        json!({
            "namespace": "shop", "name": "web-0", "node": "n1", "ip": null, "phase": "Pending",
            "ready": false, "restarts": 0, "reason": "ContainerCreating", "owner": "Deployment/web",
            "labels": {}, "unit": "u", "units": [], "containers": [], "created": 1, "warnings": []
        })
    }

    /// The wire format clients read: `null` for absent values, `message` only when there is one.
    #[test]
    fn a_pod_reads_and_writes_as_before() {
        let view: PodView = serde_json::from_value(pod()).unwrap();
        assert_eq!(serde_json::to_value(&view).unwrap(), pod());
        assert_eq!(view.status(), "ContainerCreating");
        assert!(view.is_owned_by("Deployment", "web"));
        assert!(!view.is_owned_by("Deployment", "we"));
        let with_message = PodView {
            message: Some("waiting for Secret shop/db".into()),
            reason: Some(PodReason::Unschedulable),
            ..view
        };
        let value = serde_json::to_value(&with_message).unwrap();
        assert_eq!(value["message"], "waiting for Secret shop/db");
        assert_eq!(with_message.status(), "Pending");
    }
}
