//! Events, as `kubectl get events` and `describe` show them: what changed between two
//! read-model snapshots, said the way Kubernetes' components say it (Scheduled, Started,
//! BackOff, Killing, ScalingReplicaSet, NodeNotReady …).
//!
//! Why derived, not written: every fact an event reports (a pod placed, its container up, its
//! restarts, a Deployment's pods per template, a node's readiness) already travels in the
//! replicated state, so every node sees it and can tell it. Writing events into the replicated
//! state would add gossip traffic for something Kubernetes itself keeps for an hour only. So each
//! node keeps its own log, in memory, of what it saw change: a pod started on node A shows in
//! `kubectl get events` through node B, timed when B learnt of it (within a gossip round).
//!
//! What is not news: the first snapshot after podswarmd starts, and a pod this node sees for the
//! first time that was made more than [`FRESH`] ago (it was there before this node looked), are
//! not reported; the log starts empty on every start, as a restarted Kubernetes keeps only what
//! its store held.
//!
//! As Kubernetes' event recorder does, a repeat of the same event for the same object (same type,
//! reason and message) counts up the event it repeats rather than adding one. The log keeps
//! events seen within [`TTL`] (Kubernetes' default event TTL), at most [`CAPACITY`].

use std::collections::BTreeMap;
use std::sync::Arc;

use podswarm_api::PodReason;

use crate::model::Snapshot;

/// How long an event stays after it was last seen (kube-apiserver's `--event-ttl` default).
pub const TTL: u64 = 3600;

/// The most events the log holds; the oldest go first.
pub const CAPACITY: usize = 1000;

/// A pod seen for the first time is news only when it was made this recently (seconds).
pub const FRESH: u64 = 120;

/// What the events are attributed to (an event's `source.component`).
pub const COMPONENT: &str = "podswarmd";

/// One event: what happened to which object, how often, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique in the log: `<object>.<hex>`, as Kubernetes names them.
    pub name: String,
    /// The object's namespace; node events are in `default`, as in Kubernetes.
    pub namespace: String,
    pub kind: &'static str,
    pub object: String,
    /// The object's uid where it has one (Deployments; a node's is its name, as kubectl asks).
    pub uid: Option<String>,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
    /// The node the event is about (the pod's node), empty when none.
    pub host: String,
    /// Seconds since the epoch.
    pub first: u64,
    pub last: u64,
    pub count: u32,
    /// The state version of the snapshot that last changed it.
    pub version: u64,
}

/// The events a node has seen, oldest first.
#[derive(Debug, Default, Clone)]
pub struct Log {
    events: Vec<Arc<Event>>,
    /// Makes names unique within one second.
    seq: u32,
}

impl Log {
    pub fn events(&self) -> &[Arc<Event>] {
        &self.events
    }
}

/// An event before it is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    namespace: String,
    kind: &'static str,
    object: String,
    uid: Option<String>,
    warning: bool,
    reason: &'static str,
    message: String,
    host: String,
}

/// The log after `next`, seen at `now`: `log` (the log `previous` carried) with what changed
/// from `previous` to `next`.
pub fn observe(log: &Arc<Log>, previous: &Snapshot, next: &Snapshot, now: u64) -> Arc<Log> {
    // podswarmd has just started: everything in `next` is news to it, none of it to a user.
    if previous.stamp == crate::model::Stamp::default() {
        return Arc::clone(log);
    }
    let mut seen = Vec::new();
    pods(previous, next, now, &mut seen);
    deployments(previous, next, now, &mut seen);
    nodes(previous, next, &mut seen);
    let expired = log.events.first().is_some_and(|e| e.last + TTL < now);
    if seen.is_empty() && !expired {
        return Arc::clone(log);
    }
    let mut out = Log::clone(log);
    out.events.retain(|e| e.last + TTL >= now);
    for s in seen {
        record(&mut out, s, now, next.stamp.state);
    }
    let over = out.events.len().saturating_sub(CAPACITY);
    out.events.drain(..over);
    Arc::new(out)
}

fn record(log: &mut Log, s: Seen, now: u64, version: u64) {
    let same = log.events.iter().rposition(|e| {
        e.kind == s.kind
            && e.namespace == s.namespace
            && e.object == s.object
            && e.warning == s.warning
            && e.reason == s.reason
            && e.message == s.message
    });
    if let Some(i) = same {
        let mut e = Event::clone(&log.events[i]);
        e.count += 1;
        e.last = now;
        e.version = version;
        e.uid = s.uid.or(e.uid);
        // The repeat moves to the end: the log stays in order of last sight.
        log.events.remove(i);
        log.events.push(Arc::new(e));
        return;
    }
    log.seq = log.seq.wrapping_add(1);
    let id = u128::from(now) * 1_000_000_000 + u128::from(log.seq % 1_000_000_000);
    log.events.push(Arc::new(Event {
        name: format!("{}.{id:x}", s.object),
        namespace: s.namespace,
        kind: s.kind,
        object: s.object,
        uid: s.uid,
        warning: s.warning,
        reason: s.reason,
        message: s.message,
        host: s.host,
        first: now,
        last: now,
        count: 1,
        version,
    }));
}

/// An event of pod `view`, as `snapshot` has it: with its uid there, which `kubectl describe
/// pod` selects its events by.
fn pod_event(
    snapshot: &Snapshot,
    view: &podswarm_api::PodView,
    warning: bool,
    reason: &'static str,
    message: String,
) -> Seen {
    Seen {
        namespace: view.namespace.clone(),
        kind: "Pod",
        object: view.name.clone(),
        uid: Some(snapshot.pod_uid(view)),
        warning,
        reason,
        message,
        host: view.node.clone(),
    }
}

/// Scheduled, Started, BackOff, Failed, Unhealthy, Killing: what a pod's record says changed.
fn pods(previous: &Snapshot, next: &Snapshot, now: u64, seen: &mut Vec<Seen>) {
    for pod in next.pods() {
        let v = &pod.view;
        let key = format!("{}/{}", v.namespace, v.name);
        let before = previous.pod(&key).map(|p| &p.view);
        if before.is_none() && now.saturating_sub(v.created) > FRESH {
            continue;
        }
        if !v.node.is_empty() && before.is_none_or(|b| b.node != v.node) {
            seen.push(pod_event(
                next,
                v,
                false,
                "Scheduled",
                format!("Successfully assigned {key} to {}", v.node),
            ));
        }
        for c in &v.containers {
            let was = before.and_then(|b| b.containers.iter().find(|p| p.name == c.name));
            let started =
                c.is_running() && was.is_none_or(|w| !w.is_running() || w.restarts < c.restarts);
            if started {
                seen.push(pod_event(
                    next,
                    v,
                    false,
                    "Started",
                    format!("Started container {}", c.name),
                ));
            }
        }
        if v.reason != before.and_then(|b| b.reason)
            && let Some(reason) = v.reason
            && let Some((warning, what, message)) = reason_event(v, reason)
        {
            seen.push(pod_event(next, v, warning, what, message));
        }
        if let Some(b) = before
            && b.ready
            && !v.ready
            && !v.terminating
            && v.containers.iter().all(|c| c.is_running())
        {
            let message = match &v.message {
                Some(m) => format!("Readiness probe failed: {m}"),
                None => "Readiness probe failed".to_owned(),
            };
            seen.push(pod_event(next, v, true, "Unhealthy", message));
        }
        if v.terminating && before.is_some_and(|b| !b.terminating) {
            seen.push(killing(next, v));
        }
    }
    for pod in previous.pods() {
        let v = &pod.view;
        if !v.terminating && next.pod(&format!("{}/{}", v.namespace, v.name)).is_none() {
            seen.push(killing(previous, v));
        }
    }
}

fn killing(snapshot: &Snapshot, v: &podswarm_api::PodView) -> Seen {
    let names: Vec<&str> = v.containers.iter().map(|c| c.name.as_str()).collect();
    let message = if names.is_empty() {
        format!("Stopping pod {}", v.name)
    } else {
        format!("Stopping container {}", names.join(", "))
    };
    pod_event(snapshot, v, false, "Killing", message)
}

/// The event a pod's new reason stands for, as the kubelet or scheduler would say it; `None`
/// for reasons that are no news of their own (creating, completed).
fn reason_event(
    v: &podswarm_api::PodView,
    reason: PodReason,
) -> Option<(bool, &'static str, String)> {
    let down = v
        .containers
        .iter()
        .find(|c| !c.is_running())
        .or(v.containers.first());
    let container = down.map_or("", |c| c.name.as_str());
    let image = down.map_or("", |c| c.image.as_str());
    let detail = v
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    Some(match reason {
        PodReason::CrashLoopBackOff => (
            true,
            "BackOff",
            format!(
                "Back-off restarting failed container {container} in pod {}_{}",
                v.name, v.namespace
            ),
        ),
        PodReason::ImagePullBackOff => {
            (true, "BackOff", format!("Back-off pulling image {image:?}"))
        }
        PodReason::ErrImagePull => (
            true,
            "Failed",
            format!("Failed to pull image {image:?}{detail}"),
        ),
        PodReason::CreateContainerConfigError
        | PodReason::CreateContainerError
        | PodReason::Error
        | PodReason::OOMKilled => (
            true,
            "Failed",
            format!("Error: {}{detail}", reason.as_str()),
        ),
        PodReason::Unschedulable => (
            true,
            "FailedScheduling",
            v.message
                .clone()
                .unwrap_or_else(|| "no node can take the pod".to_owned()),
        ),
        PodReason::ContainerCreating | PodReason::Completed | PodReason::Unknown => return None,
    })
}

/// A Deployment's pods per template hash that are not on their way out: what its ReplicaSets'
/// sizes are.
fn sizes(snapshot: &Snapshot) -> BTreeMap<(String, String, String), usize> {
    let mut out = BTreeMap::new();
    for p in snapshot.pods() {
        let v = &p.view;
        let Some(deployment) = v
            .owner
            .as_deref()
            .and_then(|o| o.strip_prefix("Deployment/"))
        else {
            continue;
        };
        let Some((hash, _)) = podswarm_manifest::replica_ordinal(&v.name) else {
            continue;
        };
        if !v.terminating {
            *out.entry((v.namespace.clone(), deployment.to_owned(), hash.to_owned()))
                .or_default() += 1;
        }
    }
    out
}

/// ScalingReplicaSet: a Deployment's pods of one template went up or down.
fn deployments(previous: &Snapshot, next: &Snapshot, now: u64, seen: &mut Vec<Seen>) {
    let (before, after) = (sizes(previous), sizes(next));
    let mut keys: Vec<&(String, String, String)> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (ns, name, hash) = key;
        let (from, to) = (
            before.get(key).copied().unwrap_or(0),
            after.get(key).copied().unwrap_or(0),
        );
        if from == to {
            continue;
        }
        let entry = next
            .entry("Deployment", ns, name)
            .or_else(|| previous.entry("Deployment", ns, name));
        // A Deployment this node learns of long after it was made: not news.
        if from == 0
            && previous.entry("Deployment", ns, name).is_none()
            && entry.is_none_or(|e| now.saturating_sub(e.created) > FRESH)
        {
            continue;
        }
        let way = if to > from { "up" } else { "down" };
        seen.push(Seen {
            namespace: ns.clone(),
            kind: "Deployment",
            object: name.clone(),
            uid: entry.map(crate::state::Entry::uid),
            warning: false,
            reason: "ScalingReplicaSet",
            message: format!("Scaled {way} replica set {name}-{hash} from {from} to {to}"),
            host: String::new(),
        });
    }
}

/// NodeReady, NodeNotReady, NodeSchedulable, NodeNotSchedulable, RegisteredNode.
fn nodes(previous: &Snapshot, next: &Snapshot, seen: &mut Vec<Seen>) {
    let node_event = |name: &str, reason: &'static str, message: String| Seen {
        namespace: "default".to_owned(),
        kind: "Node",
        object: name.to_owned(),
        uid: Some(name.to_owned()),
        warning: false,
        reason,
        message,
        host: name.to_owned(),
    };
    for n in next.nodes() {
        let Some(b) = previous.nodes().iter().find(|b| b.name == n.name) else {
            if !previous.nodes().is_empty() {
                seen.push(node_event(
                    &n.name,
                    "RegisteredNode",
                    format!(
                        "Node {} event: Registered Node {} in Controller",
                        n.name, n.name
                    ),
                ));
            }
            continue;
        };
        if b.ready != n.ready {
            let status = if n.ready { "NodeReady" } else { "NodeNotReady" };
            seen.push(node_event(
                &n.name,
                status,
                format!("Node {} status is now: {status}", n.name),
            ));
        }
        if b.cordoned != n.cordoned {
            let status = if n.cordoned {
                "NodeNotSchedulable"
            } else {
                "NodeSchedulable"
            };
            seen.push(node_event(
                &n.name,
                status,
                format!("Node {} status is now: {status}", n.name),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::NodeView;
    use crate::model::{Inputs, Stamp};
    use podswarm_api::{ContainerView, PodView};
    use serde_json::json;

    const NOW: u64 = 1_000_000;

    fn pod(key: &str, node: &str, running: bool, restarts: u32) -> PodView {
        let (ns, name) = key.split_once('/').unwrap();
        let mut v: PodView = serde_json::from_value(json!({
            "namespace": ns, "name": name, "node": node, "ip": null,
            "phase": if running { "Running" } else { "Pending" },
            "ready": running, "restarts": restarts, "labels": {}, "unit": "", "units": [],
            "containers": [], "created": NOW - 5, "warnings": [], "owner": "Deployment/web"
        }))
        .unwrap();
        v.containers.push(ContainerView {
            name: "app".into(),
            podman_name: String::new(),
            image: "localhost/app:1".into(),
            unit: String::new(),
            state: if running {
                "active/running"
            } else {
                "inactive/dead"
            }
            .into(),
            restarts,
        });
        v
    }

    fn node(name: &str, ready: bool, cordoned: bool) -> NodeView {
        NodeView {
            cordoned,
            ..crate::testing::node_view(name, ready)
        }
    }

    fn snapshot(state: u64, pods: &[PodView], nodes: Vec<NodeView>, yaml: &str) -> Snapshot {
        let mut entries = crate::testing::entries(yaml, state);
        for e in &mut entries {
            e.created = NOW - 5;
        }
        Snapshot::build(Inputs {
            stamp: Stamp { state, link: state },
            node_name: "a".into(),
            entries,
            local: pods
                .iter()
                .map(|p| (format!("{}/{}", p.namespace, p.name), p.clone()))
                .collect(),
            nodes,
            ..Inputs::default()
        })
    }

    /// The events after each snapshot in turn, as (type, reason, object, message, count).
    fn after(snapshots: &[Snapshot], now: u64) -> Vec<(bool, &'static str, String, String, u32)> {
        let mut log = Arc::new(Log::default());
        let mut previous = &Snapshot::default();
        for s in snapshots {
            log = observe(&log, previous, s, now);
            previous = s;
        }
        log.events()
            .iter()
            .map(|e| {
                (
                    e.warning,
                    e.reason,
                    e.object.clone(),
                    e.message.clone(),
                    e.count,
                )
            })
            .collect()
    }

    fn nodes() -> Vec<NodeView> {
        vec![node("a", true, false), node("b", true, false)]
    }

    #[test]
    fn what_a_node_finds_at_start_is_no_news() {
        let first = snapshot(1, &[pod("d/p", "a", true, 0)], nodes(), "");
        assert_eq!(after(&[first], NOW), []);
    }

    #[test]
    fn a_new_pod_is_scheduled_then_started() {
        let events = after(
            &[
                snapshot(1, &[], nodes(), ""),
                snapshot(2, &[pod("d/p", "b", false, 0)], nodes(), ""),
                snapshot(3, &[pod("d/p", "b", true, 0)], nodes(), ""),
            ],
            NOW,
        );
        assert_eq!(
            events,
            [
                (
                    false,
                    "Scheduled",
                    "p".into(),
                    "Successfully assigned d/p to b".into(),
                    1
                ),
                (
                    false,
                    "Started",
                    "p".into(),
                    "Started container app".into(),
                    1
                ),
            ]
        );
    }

    #[test]
    fn a_pod_made_long_ago_that_this_node_learns_of_late_is_no_news() {
        let mut old = pod("d/p", "b", true, 0);
        old.created = NOW - FRESH - 1;
        let events = after(
            &[
                snapshot(1, &[], nodes(), ""),
                snapshot(2, &[old], nodes(), ""),
            ],
            NOW,
        );
        assert_eq!(events, []);
    }

    #[test]
    fn restarts_count_up_one_event_and_a_crash_loop_warns() {
        let mut crashing = pod("d/p", "a", false, 2);
        crashing.reason = Some(PodReason::CrashLoopBackOff);
        let events = after(
            &[
                snapshot(1, &[pod("d/p", "a", true, 0)], nodes(), ""),
                snapshot(2, &[pod("d/p", "a", true, 1)], nodes(), ""),
                snapshot(3, &[crashing], nodes(), ""),
                snapshot(4, &[pod("d/p", "a", true, 2)], nodes(), ""),
            ],
            NOW,
        );
        assert_eq!(
            events,
            [
                (
                    true,
                    "BackOff",
                    "p".into(),
                    "Back-off restarting failed container app in pod p_d".into(),
                    1
                ),
                (
                    false,
                    "Started",
                    "p".into(),
                    "Started container app".into(),
                    2
                ),
            ]
        );
    }

    #[test]
    fn a_pod_on_its_way_out_is_killed_once() {
        let mut leaving = pod("d/p", "a", true, 0);
        leaving.terminating = true;
        let events = after(
            &[
                snapshot(1, &[pod("d/p", "a", true, 0)], nodes(), ""),
                snapshot(2, &[leaving], nodes(), ""),
                snapshot(3, &[], nodes(), ""),
            ],
            NOW,
        );
        assert_eq!(
            events,
            [(
                false,
                "Killing",
                "p".into(),
                "Stopping container app".into(),
                1
            )]
        );
    }

    #[test]
    fn a_deployment_scaled_up_says_by_how_much() {
        const WEB: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: d}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: x}]}
";
        let events = after(
            &[
                snapshot(1, &[pod("d/web-bcdfghjk-0", "a", true, 0)], nodes(), WEB),
                snapshot(
                    2,
                    &[
                        pod("d/web-bcdfghjk-0", "a", true, 0),
                        pod("d/web-bcdfghjk-1", "b", true, 0),
                    ],
                    nodes(),
                    WEB,
                ),
            ],
            NOW,
        );
        let scaled: Vec<_> = events
            .iter()
            .filter(|e| e.1 == "ScalingReplicaSet")
            .collect();
        assert_eq!(
            scaled,
            [&(
                false,
                "ScalingReplicaSet",
                "web".into(),
                "Scaled up replica set web-bcdfghjk from 1 to 2".into(),
                1
            )]
        );
    }

    #[test]
    fn nodes_going_down_and_cordoned_are_events() {
        let events = after(
            &[
                snapshot(1, &[], nodes(), ""),
                snapshot(
                    2,
                    &[],
                    vec![node("a", true, true), node("b", false, false)],
                    "",
                ),
            ],
            NOW,
        );
        assert_eq!(
            events,
            [
                (
                    false,
                    "NodeNotSchedulable",
                    "a".into(),
                    "Node a status is now: NodeNotSchedulable".into(),
                    1
                ),
                (
                    false,
                    "NodeNotReady",
                    "b".into(),
                    "Node b status is now: NodeNotReady".into(),
                    1
                ),
            ]
        );
    }

    #[test]
    fn events_expire_after_their_ttl_and_the_log_is_bounded() {
        let start = snapshot(1, &[], nodes(), "");
        let moved = snapshot(
            2,
            &[],
            vec![node("a", true, false), node("b", false, false)],
            "",
        );
        let log = observe(&Arc::new(Log::default()), &start, &moved, NOW);
        assert_eq!(log.events().len(), 1);
        let later = snapshot(3, &[], nodes(), "");
        let log = observe(&log, &moved, &later, NOW + TTL + 1);
        assert_eq!(
            log.events().iter().map(|e| e.reason).collect::<Vec<_>>(),
            ["NodeReady"],
            "the NodeNotReady event expired"
        );
        let mut big = Log::default();
        for i in 0..CAPACITY + 5 {
            let message = format!("m{i}");
            record(
                &mut big,
                Seen {
                    namespace: "d".into(),
                    kind: "Pod",
                    object: "p".into(),
                    uid: None,
                    warning: false,
                    reason: "Started",
                    message,
                    host: String::new(),
                },
                NOW,
                1,
            );
        }
        let log = observe(&Arc::new(big), &later, &moved, NOW);
        assert_eq!(log.events().len(), CAPACITY);
        assert_eq!(log.events().last().unwrap().reason, "NodeNotReady");
        let names: std::collections::BTreeSet<&str> =
            log.events().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names.len(), CAPACITY, "names are unique");
    }
}
