//! Rolling updates without a leader: which pods of which revision a Deployment has, decided by
//! every node alike.
//!
//! Kubernetes runs one controller that scales ReplicaSets up and down and remembers what it did.
//! podswarm has no leader, so the pod set must be a **pure function of replicated facts**: the
//! Deployment object, its revision records (`revisions/<ns>/<name>/<template hash>`: an older
//! template, kept so its pods can still be rendered, placed and undone to), the status records of
//! the pods that exist (on live nodes), and the time. Every node computes the same answer from the
//! same facts, so each runs exactly its share, and the answer moves forward only as the facts do:
//!
//! - a new pod starts only while the total stays within `replicas + maxSurge` — counting the old
//!   pods that still exist, so the new count can only grow as old pods go;
//! - old pods go within Kubernetes' `maxScaledDown` (counting new pods not yet available as
//!   unavailable, nothing takes the cluster below `replicas - maxUnavailable`), unavailable ones
//!   first, then available ones while the pods available without them are still at least
//!   `replicas - maxUnavailable`; then the oldest revision, then the highest ordinal, the same
//!   order everywhere;
//! - terminating pods count for nothing, except that `Recreate` starts new pods only once no old
//!   pod exists, not even one on its way out;
//! - a paused Deployment, or one past its progress deadline, starts and stops nothing for the
//!   rollout (the old pods keep serving); scaling within the current template still works.
//!
//! Pods of a template without a revision record cannot be rendered again and go at once, as all
//! pods of a changed template did before revisions existed.
//!
//! Because pods of the current template keep their names (`<name>-<hash>-<ordinal>`, ordinals
//! from 0), any order of the same events ends in the same set: exactly `replicas` pods of the
//! current template, ordinals `0..replicas`, and nothing else. A partition during a rollout heals
//! to that set too, because each side's facts merge into the same facts.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use podswarm_api::{
    ConditionReason, ConditionStatus, ConditionType, DeploymentCondition, DeploymentStatus,
};
use podswarm_manifest::rollout::Rollout;
use podswarm_manifest::{Object, PodInstance, replica_ordinal, replicas_of, template_hash};
use serde::{Deserialize, Serialize};

/// An older (or the current) template of a Deployment, as its revision record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// Kubernetes' `deployment.kubernetes.io/revision`: grows with each new template.
    pub revision: u64,
    pub template: PodTemplateSpec,
    /// When this template was applied (seconds since the epoch): a rollout's deadline counts
    /// from here.
    pub created: u64,
    /// The Deployment's `kubernetes.io/change-cause` while this template was its own (the last
    /// one it had then), which `rollout history` shows for the revision. Absent from records
    /// of older versions and where the Deployment had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_cause: Option<String>,
}

/// What the replicated status record of one pod says, as far as rollouts care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seen {
    /// Ready since (seconds since the epoch); `None` when not ready.
    pub ready_since: Option<u64>,
    /// On its way out: counted by nothing (as in Kubernetes), except that `Recreate` starts no new
    /// pod while an old one still runs at all.
    pub terminating: bool,
}

/// The replicated facts rollouts decide from.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// By (namespace, Deployment): template hash → revision.
    pub revisions: BTreeMap<(String, String), BTreeMap<String, Revision>>,
    /// By (namespace, Deployment): pod name → what its record says. Only pods on live nodes.
    pub pods: BTreeMap<(String, String), BTreeMap<String, Seen>>,
    /// Seconds since the epoch.
    pub now: u64,
}

/// The pods a Deployment has now, and how its rollout stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub pods: Vec<PodInstance>,
    pub status: DeploymentStatus,
    /// When (seconds since the epoch) the decision may change with no new fact: a pod turns
    /// available after `minReadySeconds`, or the progress deadline passes.
    pub recheck: Option<u64>,
}

/// One existing pod of an older template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct OldPod {
    /// Sort key, in removal order: unavailable first, then oldest revision, highest ordinal.
    available: bool,
    revision: u64,
    ordinal: std::cmp::Reverse<u32>,
    hash: String,
}

/// Every pod the applied objects ask for now, with its object's creation time (a Deployment's
/// pods as its rollout stands, any other kind's as written), each Deployment's status by
/// (namespace, name), and when the answer may next change with time alone. The reconciler and
/// the read model both expand through here, so what runs and what the API says agree.
#[derive(Debug, Default)]
pub struct Expansion {
    pub pods: Vec<(PodInstance, u64)>,
    pub deployments: BTreeMap<(String, String), DeploymentStatus>,
    pub recheck: Option<u64>,
}

pub fn expand(entries: &[crate::state::Entry], facts: &Facts) -> Expansion {
    let mut out = Expansion::default();
    for e in entries {
        let (namespace, name) = (e.object.namespace(), e.object.name());
        let pods = match &e.object {
            Object::Deployment(d) => {
                let decision = decide(namespace, name, d, e.created, e.version, facts);
                if let Some(t) = decision.recheck {
                    out.recheck = Some(out.recheck.map_or(t, |r| r.min(t)));
                }
                out.deployments
                    .insert((namespace.to_owned(), name.to_owned()), decision.status);
                decision.pods
            }
            other => podswarm_manifest::pods_of(other),
        };
        out.pods.extend(pods.into_iter().map(|p| (p, e.created)));
    }
    out
}

/// Decides a Deployment's pods and status. `created` and `version` are its entry's (the status
/// carries them); the current template counts as applied at `created` when it has no revision
/// record.
pub fn decide(
    namespace: &str,
    name: &str,
    d: &Deployment,
    created: u64,
    version: u64,
    facts: &Facts,
) -> Decision {
    let at = (namespace.to_owned(), name.to_owned());
    let spec = &d.spec;
    let replicas = u32::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    // Intake refuses bad settings; an object that slipped past an older intake rolls out with
    // Kubernetes' defaults rather than not at all.
    let settings = Rollout::of(spec).unwrap_or_default();
    let template = &spec.template;
    let hash = template_hash(template);
    let empty_revisions = BTreeMap::new();
    let revisions = facts.revisions.get(&at).unwrap_or(&empty_revisions);
    let empty_pods = BTreeMap::new();
    let seen = facts.pods.get(&at).unwrap_or(&empty_pods);
    let now = facts.now;
    let min_ready = u64::from(settings.min_ready_seconds);
    let available = |s: &Seen| {
        s.ready_since
            .is_some_and(|t| t.saturating_add(min_ready) <= now)
    };

    // What exists, by template.
    let mut new_pods: BTreeMap<u32, Seen> = BTreeMap::new();
    let mut old: Vec<OldPod> = Vec::new();
    let mut old_ready = 0;
    let mut old_leaving = 0;
    for (pod, s) in seen {
        let Some((h, ordinal)) = replica_ordinal(pod) else {
            continue;
        };
        if s.terminating {
            old_leaving += usize::from(h != hash);
            continue;
        }
        if h == hash {
            new_pods.insert(ordinal, *s);
        } else if let Some(rev) = revisions.get(h) {
            old_ready += usize::from(s.ready_since.is_some());
            old.push(OldPod {
                available: available(s),
                revision: rev.revision,
                ordinal: std::cmp::Reverse(ordinal),
                hash: h.to_owned(),
            });
        }
    }
    old.sort();

    let new_in_range = new_pods.range(..replicas).count();
    let complete = old.is_empty()
        && new_in_range == usize::try_from(replicas).unwrap_or(usize::MAX)
        && new_pods.range(..replicas).all(|(_, s)| available(s));
    let applied = revisions.get(&hash).map_or(created, |r| r.created);
    let last_progress = new_pods
        .values()
        .filter_map(|s| s.ready_since)
        .fold(applied, u64::max);
    // Kubernetes' "no deadline" (the largest int32) never passes.
    let deadline = settings
        .progress_deadline()
        .map_or(u64::MAX, |d| last_progress.saturating_add(u64::from(d)));
    // Kubernetes stops the clock once a rollout completed, which needs memory; the facts stand in
    // for it. A rollout is under way while pods of an older template exist. Without any, only a
    // Deployment's first template can still be rolling out (an older revision's pods went, so a
    // later rollout got far enough once), while pods are missing or none is available. So a pod
    // of a finished rollout that restarts, crash-loops or loses its node (its new copy counts
    // from an apply of long ago) never makes a timed-out rollout, nor an automatic rollback.
    let first_template = revisions.keys().all(|h| *h == hash);
    let under_way = !old.is_empty()
        || (first_template
            && (new_in_range < usize::try_from(replicas).unwrap_or(usize::MAX)
                || !new_pods.range(..replicas).any(|(_, s)| available(s))));
    let past_deadline = !complete && under_way && now > deadline;
    let frozen = settings.paused || past_deadline;

    // The decision: how many new pods (ordinals 0..new_count), which old pods stay.
    let recreate = settings.strategy.bounds(replicas).is_none();
    let (new_count, keep_old): (u32, Vec<&OldPod>) = if recreate && !frozen && old_leaving > 0 {
        // Recreate: the old version must be gone, not just going, before the new one starts.
        (0, Vec::new())
    } else if old.is_empty() {
        (replicas, Vec::new())
    } else if frozen {
        let started = new_pods
            .range(..replicas)
            .next_back()
            .map_or(0, |(i, _)| i + 1);
        (started, old.iter().collect())
    } else {
        match settings.strategy.bounds(replicas) {
            // Recreate: nothing new while anything old exists.
            None => (0, Vec::new()),
            Some((surge, unavailable)) => {
                let started = new_pods
                    .range(..replicas)
                    .next_back()
                    .map_or(0, |(i, _)| i + 1);
                let old_count = u32::try_from(old.len()).unwrap_or(u32::MAX);
                let room = replicas.saturating_add(surge).saturating_sub(old_count);
                let new_count = room.min(replicas).max(started);
                let new_available = new_pods
                    .range(..new_count)
                    .filter(|(_, s)| available(s))
                    .count();
                let old_available = old.iter().filter(|o| o.available).count();
                let floor = usize::try_from(replicas.saturating_sub(unavailable)).unwrap_or(0);
                // Kubernetes' bound (maxScaledDown): counting the new pods still to turn
                // available as unavailable, nothing may take the cluster below `floor`; so even
                // unavailable old pods go only within it (after a restart of podswarmd every pod
                // is briefly unready, and they must not all go at once).
                let new_total = usize::try_from(new_count).unwrap_or(usize::MAX);
                let new_unavailable = new_total.saturating_sub(new_available);
                let max_scaled_down =
                    (new_total + old.len()).saturating_sub(floor + new_unavailable);
                let mut cleanup = max_scaled_down;
                let mut may_stop = if max_scaled_down == 0 {
                    0
                } else {
                    (new_available + old_available).saturating_sub(floor)
                };
                let keep = old
                    .iter()
                    .filter(|o| {
                        if !o.available {
                            if cleanup > 0 {
                                cleanup -= 1;
                                return false;
                            }
                            return true;
                        }
                        if may_stop > 0 {
                            may_stop -= 1;
                            return false;
                        }
                        true
                    })
                    .collect();
                (new_count, keep)
            }
        }
    };
    let mut pods = replicas_of(namespace, name, template, 0..new_count);
    let mut kept: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for o in &keep_old {
        kept.entry(o.hash.as_str()).or_default().insert(o.ordinal.0);
    }
    for (h, ordinals) in kept {
        if let Some(rev) = revisions.get(h) {
            pods.extend(replicas_of(namespace, name, &rev.template, ordinals));
        }
    }

    let total = new_pods.len() + old.len();
    let updated = new_pods.len();
    let ready = new_pods
        .values()
        .filter(|s| s.ready_since.is_some())
        .count()
        + old_ready;
    let available_now = new_pods.values().filter(|s| available(s)).count()
        + old.iter().filter(|o| o.available).count();
    let floor = match settings.strategy.bounds(replicas) {
        Some((_, unavailable)) => replicas.saturating_sub(unavailable),
        None => replicas,
    };
    let mut status = status_shell(
        namespace,
        name,
        spec.replicas.unwrap_or(1),
        created,
        version,
    );
    status.total = total;
    status.up_to_date = updated;
    status.ready = ready;
    status.available = available_now;
    status.revision = revisions.get(&hash).map_or(0, |r| r.revision);
    let enough = available_now >= usize::try_from(floor).unwrap_or(usize::MAX);
    status.conditions = vec![
        DeploymentCondition {
            kind: ConditionType::Available,
            status: if enough {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: if enough {
                ConditionReason::MinimumReplicasAvailable
            } else {
                ConditionReason::MinimumReplicasUnavailable
            },
            message: if enough {
                "Deployment has minimum availability.".to_owned()
            } else {
                "Deployment does not have minimum availability.".to_owned()
            },
        },
        progressing(name, complete, settings.paused, past_deadline),
    ];

    let mut recheck: Option<u64> = None;
    let mut soon = |t: u64| {
        if t > now {
            recheck = Some(recheck.map_or(t, |r| r.min(t)));
        }
    };
    if min_ready > 0 {
        for s in seen.values() {
            if let Some(t) = s.ready_since {
                soon(t.saturating_add(min_ready));
            }
        }
    }
    if !complete && under_way && !past_deadline && deadline < u64::MAX {
        soon(deadline.saturating_add(1));
    }
    Decision {
        pods,
        status,
        recheck,
    }
}

fn status_shell(
    namespace: &str,
    name: &str,
    replicas: i32,
    created: u64,
    version: u64,
) -> DeploymentStatus {
    DeploymentStatus {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        replicas,
        ready: 0,
        up_to_date: 0,
        available: 0,
        created,
        version,
        total: 0,
        revision: 0,
        conditions: Vec::new(),
    }
}

/// The `Progressing` condition, with Kubernetes' reasons and messages.
fn progressing(
    name: &str,
    complete: bool,
    paused: bool,
    past_deadline: bool,
) -> DeploymentCondition {
    let (status, reason, message) = if paused {
        (
            ConditionStatus::Unknown,
            ConditionReason::DeploymentPaused,
            "Deployment is paused".to_owned(),
        )
    } else if complete {
        (
            ConditionStatus::True,
            ConditionReason::NewReplicaSetAvailable,
            format!("Deployment {name:?} has successfully progressed."),
        )
    } else if past_deadline {
        (
            ConditionStatus::False,
            ConditionReason::ProgressDeadlineExceeded,
            format!("Deployment {name:?} has timed out progressing."),
        )
    } else {
        (
            ConditionStatus::True,
            ConditionReason::ReplicaSetUpdated,
            format!("Deployment {name:?} is progressing."),
        )
    };
    DeploymentCondition {
        kind: ConditionType::Progressing,
        status,
        reason,
        message,
    }
}

/// The revisions to keep for a Deployment with `limit` old revisions: every revision with a pod
/// that exists, and the `limit` newest others; the hashes of the rest, for deletion.
pub fn expired_revisions(
    revisions: &BTreeMap<String, Revision>,
    current: &str,
    live: &BTreeSet<String>,
    limit: u32,
) -> Vec<String> {
    let mut old: Vec<(&u64, &String)> = revisions
        .iter()
        .filter(|(h, _)| *h != current && !live.contains(*h))
        .map(|(h, r)| (&r.revision, h))
        .collect();
    old.sort();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let drop = old.len().saturating_sub(limit);
    old.into_iter().take(drop).map(|(_, h)| h.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deployment `shop/web` at template version `v`, with extra spec lines.
    fn deployment(replicas: u32, v: u32, extra: &str) -> Deployment {
        let yaml = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n{extra}  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c, image: x, env: [{{name: V, value: '{v}'}}]}}]}}\n"
        );
        match crate::testing::objects(&yaml).remove(0) {
            Object::Deployment(d) => d,
            other => panic!("not a Deployment: {other:?}"),
        }
    }

    fn template(d: &Deployment) -> PodTemplateSpec {
        d.spec.template.clone()
    }

    /// A cluster in a test: revisions and the pods that exist, as the records would say.
    struct Sim {
        facts: Facts,
    }

    impl Sim {
        fn new() -> Sim {
            Sim {
                facts: Facts {
                    now: 1000,
                    ..Facts::default()
                },
            }
        }

        fn at() -> (String, String) {
            ("shop".into(), "web".into())
        }

        fn record(&mut self, d: &Deployment, revision: u64) {
            let t = template(d);
            self.facts.revisions.entry(Sim::at()).or_default().insert(
                template_hash(&t),
                Revision {
                    revision,
                    template: t,
                    created: self.facts.now,
                    change_cause: None,
                },
            );
        }

        fn pods(&mut self) -> &mut BTreeMap<String, Seen> {
            self.facts.pods.entry(Sim::at()).or_default()
        }

        fn decide(&self, d: &Deployment) -> Decision {
            decide("shop", "web", d, 0, 1, &self.facts)
        }

        /// Every node carries out the decision: pods not wanted stop, wanted ones start (not
        /// ready yet).
        fn step(&mut self, d: &Deployment) -> Decision {
            let decision = self.decide(d);
            let wanted: BTreeSet<String> = decision.pods.iter().map(|p| p.name.clone()).collect();
            let pods = self.pods();
            pods.retain(|name, _| wanted.contains(name));
            for name in wanted {
                pods.entry(name).or_default();
            }
            decision
        }

        fn ready(&mut self, name: &str) {
            let now = self.facts.now;
            self.pods().get_mut(name).unwrap().ready_since = Some(now);
        }

        fn all_ready(&mut self) {
            let now = self.facts.now;
            for s in self.pods().values_mut() {
                s.ready_since.get_or_insert(now);
            }
        }

        fn names(&mut self) -> Vec<String> {
            self.pods().keys().cloned().collect()
        }
    }

    /// A Deployment at v1, every pod ready, and then v2 of it applied (both recorded as revisions).
    fn rolling(replicas: u32, extra: &str) -> (Sim, Deployment, Deployment) {
        let mut sim = Sim::new();
        let v1 = deployment(replicas, 1, extra);
        sim.record(&v1, 1);
        steady(&mut sim, &v1);
        let v2 = deployment(replicas, 2, extra);
        sim.record(&v2, 2);
        (sim, v1, v2)
    }

    fn hashes(names: &[String]) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for n in names {
            *out.entry(replica_ordinal(n).unwrap().0.to_owned())
                .or_default() += 1;
        }
        out
    }

    /// Runs `d` to a steady state with every pod ready: v1's pods, all available.
    fn steady(sim: &mut Sim, d: &Deployment) {
        for _ in 0..10 {
            sim.step(d);
            sim.all_ready();
        }
    }

    #[test]
    fn a_new_deployment_starts_all_its_pods_at_once() {
        let sim = Sim::new();
        let d = deployment(4, 1, "");
        let decision = sim.decide(&d);
        let names: Vec<&str> = decision.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), 4);
        assert!(
            names
                .iter()
                .all(|n| n.ends_with(&format!("-{}", &n[n.len() - 1..])))
        );
    }

    #[test]
    fn a_rolling_update_keeps_three_of_four_serving_and_ends_on_the_new_template() {
        let (mut sim, _, v2) = rolling(4, "");
        let new = template_hash(&template(&v2));
        // First step: one surge pod, one old pod goes (25% of 4 = 1 each way).
        let first = sim.step(&v2);
        assert_eq!(first.pods.len(), 4, "{:?}", first.pods);
        let names = sim.names();
        assert_eq!(hashes(&names).get(&new), Some(&1));
        assert_eq!(
            first.status.up_to_date, 0,
            "counted from the facts before the step"
        );
        // With three old pods left, the surge allows a second new one; while neither is ready,
        // nothing more moves.
        sim.step(&v2);
        let names = sim.names();
        assert_eq!(hashes(&names).get(&new), Some(&2));
        assert_eq!(names.len(), 5);
        let stalled = sim.step(&v2);
        assert_eq!(sim.names(), names);
        assert_eq!(stalled.status.available, 3);
        // Each new pod that turns ready lets the rollout take one more step, never below 3
        // available.
        for _ in 0..20 {
            sim.all_ready();
            let d = sim.step(&v2);
            assert!(d.status.available >= 3, "{:?}", d.status);
            assert!(sim.names().len() <= 5);
        }
        let names = sim.names();
        assert_eq!(hashes(&names), BTreeMap::from([(new.clone(), 4)]));
        let done = sim.decide(&v2);
        assert_eq!(
            (
                done.status.up_to_date,
                done.status.available,
                done.status.total
            ),
            (4, 4, 4)
        );
        let progressing = done.status.condition(ConditionType::Progressing).unwrap();
        assert_eq!(progressing.reason, ConditionReason::NewReplicaSetAvailable);
    }

    #[test]
    fn a_rollout_whose_pods_never_turn_ready_stalls_then_passes_its_deadline() {
        let mut sim = Sim::new();
        let v2 = deployment(4, 2, "  progressDeadlineSeconds: 30\n");
        sim.record(&v2, 2);
        steady(&mut sim, &v2);
        let v3 = deployment(4, 3, "  progressDeadlineSeconds: 30\n");
        sim.record(&v3, 3);
        for _ in 0..5 {
            sim.step(&v3);
        }
        let old = template_hash(&template(&v2));
        let new = template_hash(&template(&v3));
        let counts = hashes(&sim.names());
        // maxUnavailable 1: three v2 pods keep serving; maxSurge 1: two v3 pods try.
        assert_eq!(counts, BTreeMap::from([(old.clone(), 3), (new.clone(), 2)]));
        let d = sim.decide(&v3);
        assert_eq!(
            d.status
                .condition(ConditionType::Progressing)
                .unwrap()
                .reason,
            ConditionReason::ReplicaSetUpdated
        );
        assert_eq!(d.recheck, Some(1031));
        sim.facts.now += 31;
        let d = sim.step(&v3);
        let progressing = d.status.condition(ConditionType::Progressing).unwrap();
        assert_eq!(
            (progressing.status, progressing.reason),
            (
                ConditionStatus::False,
                ConditionReason::ProgressDeadlineExceeded
            )
        );
        assert_eq!(
            hashes(&sim.names()),
            counts,
            "past the deadline nothing moves"
        );
        // Undo: v2's template again. Its three pods stay, the v3 pods go, a fourth v2 starts.
        sim.record(&v2, 4);
        for _ in 0..5 {
            sim.step(&v2);
            sim.all_ready();
        }
        assert_eq!(hashes(&sim.names()), BTreeMap::from([(old, 4)]));
    }

    #[test]
    fn recreate_stops_every_old_pod_before_starting_new_ones() {
        let extra = "  strategy: {type: Recreate}\n";
        let (mut sim, _, v2) = rolling(3, extra);
        let d = sim.step(&v2);
        assert!(d.pods.is_empty());
        assert!(sim.names().is_empty());
        let d = sim.step(&v2);
        assert_eq!(d.pods.len(), 3);
    }

    /// Was a defect (review): unavailable old pods all went at once. After a restart of podswarmd
    /// every pod is unready for a moment; an old pod still goes only within maxScaledDown.
    #[test]
    fn unready_old_pods_go_only_within_max_scaled_down() {
        let (mut sim, v1, v2) = rolling(4, "");
        for s in sim.pods().values_mut() {
            s.ready_since = None;
        }
        let d = sim.decide(&v2);
        let old = template_hash(&template(&v1));
        let kept_old = d
            .pods
            .iter()
            .filter(|p| replica_ordinal(&p.name).unwrap().0 == old)
            .count();
        // 4 old + 1 new, floor 3, the new one unavailable: at most one old pod may go.
        assert_eq!(kept_old, 3, "{:?}", d.pods);
    }

    /// Was a defect (review): Recreate started the new pods while the old ones were still on
    /// their way out.
    #[test]
    fn recreate_waits_for_terminating_old_pods_to_be_gone() {
        let extra = "  strategy: {type: Recreate}\n";
        let (mut sim, _, v2) = rolling(2, extra);
        for s in sim.pods().values_mut() {
            s.terminating = true;
        }
        assert!(sim.decide(&v2).pods.is_empty());
        sim.pods().clear();
        assert_eq!(sim.decide(&v2).pods.len(), 2);
    }

    #[test]
    fn min_ready_seconds_holds_a_ready_pod_back_until_it_has_been_ready_that_long() {
        let mut sim = Sim::new();
        let extra = "  minReadySeconds: 10\n";
        let v1 = deployment(2, 1, extra);
        sim.record(&v1, 1);
        sim.step(&v1);
        sim.all_ready();
        let d = sim.decide(&v1);
        assert_eq!((d.status.ready, d.status.available), (2, 0));
        assert_eq!(d.recheck, Some(1010));
        sim.facts.now += 10;
        assert_eq!(sim.decide(&v1).status.available, 2);
    }

    #[test]
    fn a_paused_deployment_makes_no_rollout_progress() {
        let mut sim = Sim::new();
        let v1 = deployment(2, 1, "");
        sim.record(&v1, 1);
        steady(&mut sim, &v1);
        let before = sim.names();
        let v2 = deployment(2, 2, "  paused: true\n");
        sim.record(&v2, 2);
        let d = sim.step(&v2);
        assert_eq!(sim.names(), before);
        assert_eq!(
            d.status
                .condition(ConditionType::Progressing)
                .unwrap()
                .reason,
            ConditionReason::DeploymentPaused
        );
    }

    #[test]
    fn pods_of_a_template_without_a_record_go_at_once() {
        let mut sim = Sim::new();
        let v1 = deployment(2, 1, "");
        steady(&mut sim, &v1);
        let v2 = deployment(2, 2, "");
        let d = sim.step(&v2);
        let new = template_hash(&template(&v2));
        assert_eq!(hashes(&sim.names()), BTreeMap::from([(new, 2)]));
        assert_eq!(d.pods.len(), 2);
    }

    #[test]
    fn old_revisions_beyond_the_limit_expire_unless_a_pod_uses_them() {
        let revs: BTreeMap<String, Revision> = (1..=5)
            .map(|n| {
                let d = deployment(1, n, "");
                (
                    template_hash(&template(&d)),
                    Revision {
                        revision: u64::from(n),
                        template: template(&d),
                        created: 0,
                        change_cause: None,
                    },
                )
            })
            .collect();
        let by_rev = |n: u64| {
            revs.iter()
                .find(|(_, r)| r.revision == n)
                .unwrap()
                .0
                .clone()
        };
        let live = BTreeSet::from([by_rev(1)]);
        let expired = expired_revisions(&revs, &by_rev(5), &live, 2);
        assert_eq!(expired, vec![by_rev(2)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever order pods turn ready in, and however many steps see the same facts, a rollout
        /// ends in exactly the new template's `replicas` pods; it never runs more than
        /// `replicas + maxSurge` pods, nor fewer than `replicas - maxUnavailable` available ones.
        #[test]
        fn any_order_of_readiness_converges_within_the_bounds(
            replicas in 1u32..8,
            surge in 0u32..4,
            unavailable in 0u32..4,
            order in prop::collection::vec((any::<prop::sample::Index>(), 0u32..3), 0..60),
        ) {
            prop_assume!(surge + unavailable > 0);
            let extra = format!("  strategy: {{rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}}}\n");
            let mut sim = Sim::new();
            let v1 = deployment(replicas, 1, &extra);
            sim.record(&v1, 1);
            steady(&mut sim, &v1);
            let v2 = deployment(replicas, 2, &extra);
            sim.record(&v2, 2);
            let floor = usize::try_from(replicas.saturating_sub(unavailable.min(replicas))).unwrap();
            let ceiling = usize::try_from(replicas + surge).unwrap();
            let expect: Vec<String> = replicas_of("shop", "web", &template(&v2), 0..replicas)
                .into_iter()
                .map(|p| p.name)
                .collect();
            let mut events = order.into_iter();
            for _ in 0..400 {
                if events.len() == 0 && sim.names() == expect {
                    break;
                }
                sim.step(&v2);
                prop_assert!(sim.names().len() <= ceiling, "{:?}", sim.names());
                // One event: a not-ready pod (chosen by the index) turns ready, after `repeat`
                // idle steps that see the same facts; once the list is used up, all turn ready.
                match events.next() {
                    Some((index, repeat)) => {
                        for _ in 0..repeat {
                            sim.step(&v2);
                        }
                        let waiting: Vec<String> = sim
                            .pods()
                            .iter()
                            .filter(|(_, s)| s.ready_since.is_none())
                            .map(|(n, _)| n.clone())
                            .collect();
                        if !waiting.is_empty() {
                            let name = waiting[index.index(waiting.len())].clone();
                            sim.ready(&name);
                        }
                    }
                    None => sim.all_ready(),
                }
                let available = sim.pods().values().filter(|s| s.ready_since.is_some()).count();
                prop_assert!(available >= floor, "{} available of {:?}", available, sim.names());
            }
            prop_assert_eq!(sim.names(), expect);
        }
    }
}
