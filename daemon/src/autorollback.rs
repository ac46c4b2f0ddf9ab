//! Automatic rollback, opted into per Deployment with `podswarm.io/auto-rollback: "true"`: a
//! rollout that passes its progress deadline (`Progressing=False`, `ProgressDeadlineExceeded`) is
//! undone, as Nomad's `auto_revert` does.
//!
//! **An undo is a write, not a decision.** [`crate::rollout::decide`] is pure and keeps no memory,
//! so "roll back" cannot be one of its answers: the next pass would forget it. The undo is what
//! `podswarmctl rollout undo` does: the previous revision's template written back over the
//! Deployment's through [`Link::apply`], which records revisions as for any template change (the
//! old template moves up to a new revision number, as in Kubernetes). From then on every node's
//! `decide` rolls the old template back out the ordinary way, `rollout history` shows it, and the
//! object says what runs.
//!
//! **One writer, and a second one is harmless.** A write needs a writer and there is no leader, so
//! the live node with the lowest name writes ([`is_writer`]); the others only watch. While views
//! of the membership differ (a join, a node going down) two nodes may both write. Both compute the
//! same object from the same facts, so whichever lands second is `unchanged` in [`Link::apply`]'s
//! eyes (and writes nothing); and a writer first checks that the mirror still holds the template
//! that stalled, so a snapshot that lags the mirror never undoes twice.
//!
//! **Only on settled facts.** [`Link::apply`] writes revision records before the object, so in
//! between a node sees a revision newer than the object's template: another node's undo, or a
//! person's apply, is under way. Undoing then would pick the wrong revision or fight the apply,
//! so nothing happens until the object lands ([`Verdict::Unsettled`]).
//!
//! **No ping-pong.** The restored template may stall too when the cause was the cluster, not the
//! template (no room left, a registry down). Undoing again would alternate two templates forever,
//! restarting pods at each deadline. So the undo also marks the Deployment
//! ([`ROLLED_BACK_TO`]`: <template hash>`), and a stalled template that an automatic rollback put
//! in place is left for a person ([`Verdict::RolledBackAlready`]). Any other template (an apply, a
//! restart, a manual undo) has another hash, so the mark stops matching by itself. The mark is a
//! fact in the object, not memory of one node, so whichever node writes next honours it.
//!
//! A stalled Deployment with nothing to go back to stays stalled; that, a mark that holds, and an
//! annotation value an older intake let through are each said once per object version, by the
//! writer, not at every snapshot.
//!
//! [`stalled`], [`judge`] and [`decide`] are pure (snapshot, revision records and membership in,
//! verdicts out); [`run`] is the task that follows the snapshots and writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use podswarm_api::kube::objects::CHANGE_CAUSE_ANNOTATION;
use podswarm_api::{Action, ConditionReason, ConditionStatus, ConditionType, DeploymentStatus};
use podswarm_manifest::rollout::{AUTO_ROLLBACK, RolloutError, auto_rollback};
use podswarm_manifest::{Object, template_hash};
use tokio::sync::watch;

use crate::config::process::error_chain;
use crate::link::{Link, LinkError};
use crate::model::Snapshot;
use crate::rollout::Revision;

/// The mark an automatic rollback leaves on the Deployment: the hash of the template it restored.
pub const ROLLED_BACK_TO: &str = "podswarm.io/auto-rolled-back-to";

/// How long the writer waits before trying a failed write again.
const RETRY: Duration = Duration::from_secs(5);

/// Revision records by (namespace, Deployment), then template hash ([`crate::rollout::Facts`]).
pub type Revisions = BTreeMap<(String, String), BTreeMap<String, Revision>>;

/// A Deployment whose rollout passed its progress deadline and that asks for an automatic
/// rollback (or carries an annotation value an older intake let through).
#[derive(Debug, Clone)]
pub struct Stalled<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The object's state version: a verdict other than an undo holds until the object changes.
    pub version: u64,
    pub deployment: &'a Deployment,
    /// The annotation as read; `Ok(false)` never comes out of [`stalled`].
    pub annotation: Result<bool, RolloutError>,
}

/// What the writer does about one stalled Deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Write the previous revision's template back (boxed: a whole Deployment).
    Undo(Box<Undo>),
    /// Nothing older is on record (the first template, or older ones expired): it stays stalled.
    NoOlderRevision { revision: u64 },
    /// The stalled template is the one an automatic rollback restored: it is not undone again.
    RolledBackAlready { revision: u64 },
    /// The annotation is neither `"true"` nor `"false"` (an older intake let it through): off.
    BadAnnotation(RolloutError),
    /// A revision newer than the object's template is on record: a write is under way. The next
    /// snapshot decides again.
    Unsettled,
}

/// An undo: the Deployment as it is to be written, and which revisions it goes from and to.
#[derive(Debug, Clone, PartialEq)]
pub struct Undo {
    pub from_revision: u64,
    pub from_hash: String,
    /// The revision whose template is restored (its record then becomes the newest revision).
    pub to_revision: u64,
    pub to_hash: String,
    pub object: Deployment,
}

/// A verdict about one Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub namespace: String,
    pub name: String,
    pub version: u64,
    pub verdict: Verdict,
}

/// Whether `me` is the node that writes: the lowest-named of the live nodes. `me` counts as live
/// whatever the list says, since it is running this.
pub fn is_writer<'a>(me: &'a str, live: impl IntoIterator<Item = &'a str>) -> bool {
    live.into_iter()
        .chain(std::iter::once(me))
        .min()
        .is_some_and(|lowest| lowest == me)
}

/// The names of the nodes `snapshot` holds live.
pub fn live_nodes(snapshot: &Snapshot) -> impl Iterator<Item = &str> {
    snapshot
        .nodes()
        .iter()
        .filter(|n| n.ready)
        .map(|n| n.name.as_str())
}

/// Whether a Deployment's status says its rollout passed its progress deadline.
fn past_deadline(status: &DeploymentStatus) -> bool {
    status
        .condition(ConditionType::Progressing)
        .is_some_and(|c| {
            c.status == ConditionStatus::False
                && c.reason == ConditionReason::ProgressDeadlineExceeded
        })
}

/// The Deployments of `snapshot` whose rollout passed its deadline and that are not plainly off.
/// Cheap (no revision records), so the writer reads those only when this finds something.
pub fn stalled(snapshot: &Snapshot) -> Vec<Stalled<'_>> {
    snapshot
        .objects("Deployment", None)
        .filter_map(|e| {
            let Object::Deployment(d) = &e.object else {
                return None;
            };
            let annotation = auto_rollback(&d.metadata);
            if annotation == Ok(false) {
                return None;
            }
            let (namespace, name) = (e.object.namespace(), e.object.name());
            past_deadline(snapshot.deployment(namespace, name)?).then_some(Stalled {
                namespace,
                name,
                version: e.version,
                deployment: d,
                annotation,
            })
        })
        .collect()
}

/// What to do about one stalled Deployment, given its revision records (template hash →
/// revision); `None` when it is not opted in.
pub fn judge(
    stalled: &Stalled<'_>,
    revisions: Option<&BTreeMap<String, Revision>>,
) -> Option<Verdict> {
    match &stalled.annotation {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => return Some(Verdict::BadAnnotation(e.clone())),
    }
    let d = stalled.deployment;
    let hash = template_hash(&d.spec.template);
    let Some(revisions) = revisions.filter(|r| !r.is_empty()) else {
        // Written before revisions existed, and never since: nothing to go back to.
        return Some(Verdict::NoOlderRevision { revision: 0 });
    };
    let Some(current) = revisions.get(&hash) else {
        // The object's template has no record, yet others have: a write is under way.
        return Some(Verdict::Unsettled);
    };
    // The current template must be the newest revision, alone: a newer (or equally new) one means
    // a write has not landed yet, and undoing then would restore the wrong template.
    let previous = revisions
        .iter()
        .filter(|(h, _)| **h != hash)
        .max_by_key(|(_, r)| r.revision);
    if previous.is_some_and(|(_, r)| r.revision >= current.revision) {
        return Some(Verdict::Unsettled);
    }
    let revision = current.revision;
    if rolled_back_to(d) == Some(hash.as_str()) {
        return Some(Verdict::RolledBackAlready { revision });
    }
    let Some((to_hash, to)) = previous else {
        return Some(Verdict::NoOlderRevision { revision });
    };
    Some(Verdict::Undo(Box::new(Undo {
        from_revision: revision,
        from_hash: hash,
        to_revision: to.revision,
        to_hash: to_hash.clone(),
        object: undone(d, to_hash, to),
    })))
}

/// The template hash an automatic rollback restored, as the Deployment's mark says.
fn rolled_back_to(d: &Deployment) -> Option<&str> {
    d.metadata
        .annotations
        .as_ref()?
        .get(ROLLED_BACK_TO)
        .map(String::as_str)
}

/// `d` with revision `to`'s template (whose hash is `hash`) written back: everything else of the
/// object stays, but for the change cause, which becomes the one the revision last had (its
/// record's, none where it had none), as `rollout undo` sets it from the revision's ReplicaSet,
/// and the mark. The result depends on nothing but the arguments, so two writers write the same.
fn undone(d: &Deployment, hash: &str, to: &Revision) -> Deployment {
    let mut object = d.clone();
    object.spec.template = to.template.clone();
    let annotations = object.metadata.annotations.get_or_insert_default();
    match &to.change_cause {
        Some(cause) => annotations.insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone()),
        None => annotations.remove(CHANGE_CAUSE_ANNOTATION),
    };
    annotations.insert(ROLLED_BACK_TO.to_owned(), hash.to_owned());
    object
}

/// Every verdict node `me` acts on, given the live nodes: none unless it is the writer.
pub fn decide<'a>(
    me: &'a str,
    live: impl IntoIterator<Item = &'a str>,
    stalled: &[Stalled<'_>],
    revisions: &Revisions,
) -> Vec<Judged> {
    if !is_writer(me, live) {
        return Vec::new();
    }
    stalled
        .iter()
        .filter_map(|s| {
            let at = (s.namespace.to_owned(), s.name.to_owned());
            let verdict = judge(s, revisions.get(&at))?;
            Some(Judged {
                namespace: at.0,
                name: at.1,
                version: s.version,
                verdict,
            })
        })
        .collect()
}

/// How a write of an undo went.
enum Written {
    /// Written now ([`Action::Configured`]), or found written by another node.
    Done(Action),
    /// The mirror no longer holds the stalled template: another node's undo or a person's write
    /// landed since the snapshot.
    Overtaken,
    /// The mirror is not following the cluster right now.
    NotSynced,
}

async fn write(
    link: &Link,
    namespace: &str,
    name: &str,
    undo: &Undo,
) -> Result<Written, LinkError> {
    let mirror = link.mirror();
    if !mirror.synced {
        return Ok(Written::NotSynced);
    }
    let held = mirror
        .entries
        .get(&format!("objects/Deployment/{namespace}/{name}"))
        .and_then(|(_, v)| serde_json::from_value::<Deployment>(v.clone()).ok());
    let Some(mut object) = held.filter(|d| template_hash(&d.spec.template) == undo.from_hash)
    else {
        return Ok(Written::Overtaken);
    };
    // Built on the object as the mirror holds it now, not as the snapshot had it: a scale or a
    // pause that landed meanwhile stays. Only the template and the two annotations change.
    object.spec.template = undo.object.spec.template.clone();
    let wanted = undo.object.metadata.annotations.as_ref();
    let annotations = object.metadata.annotations.get_or_insert_default();
    for key in [CHANGE_CAUSE_ANNOTATION, ROLLED_BACK_TO] {
        match wanted.and_then(|a| a.get(key)) {
            Some(v) => annotations.insert(key.to_owned(), v.clone()),
            None => annotations.remove(key),
        };
    }
    let actions = link.apply(&[Object::Deployment(object)]).await?;
    Ok(Written::Done(
        actions.into_iter().next().unwrap_or(Action::Unchanged),
    ))
}

/// What the task remembers between snapshots.
#[derive(Debug, Default)]
struct Memory {
    /// Deployments dealt with, by (namespace, name): the object version the verdict was about.
    /// Each verdict is said (and its revision records read) once per version.
    done: BTreeMap<(String, String), u64>,
    /// Undos whose write failed, by (namespace, name), with the object version they undo. A
    /// failure can fall between the revision record and the object ([`Link::apply`] writes both),
    /// which leaves the facts [`Verdict::Unsettled`]: only the writer knows the rest of the write
    /// is its own to finish.
    pending: BTreeMap<(String, String), (u64, Box<Undo>)>,
    /// A write is failing: said once until one works again.
    failing: bool,
}

impl Memory {
    /// One look at a snapshot; `true` when a write should be tried again later.
    async fn pass(&mut self, link: &Link, snapshot: &Snapshot) -> bool {
        let me = snapshot.node_name();
        if !is_writer(me, live_nodes(snapshot)) {
            // Another node writes; if this one becomes the writer, it says things afresh.
            self.done.clear();
            return false;
        }
        let stalled = stalled(snapshot);
        // A Deployment that is no longer stalled (or changed) is forgotten, so a later stall is
        // dealt with again.
        let still = |(ns, name): &(String, String), version: u64| {
            stalled
                .iter()
                .any(|s| s.namespace == ns && s.name == name && s.version == version)
        };
        self.done.retain(|at, version| still(at, *version));
        self.pending.retain(|at, (version, _)| still(at, *version));
        let open: Vec<Stalled<'_>> = stalled
            .into_iter()
            .filter(|s| {
                self.done
                    .get(&(s.namespace.to_owned(), s.name.to_owned()))
                    .is_none_or(|v| *v != s.version)
            })
            .collect();
        if open.is_empty() {
            return false;
        }
        let facts = link.rollout_facts(crate::link::unix_now());
        let mut retry = false;
        for judged in decide(me, live_nodes(snapshot), &open, &facts.revisions) {
            let Judged {
                namespace,
                name,
                version,
                verdict,
            } = judged;
            let deployment = format!("{namespace}/{name}");
            let at = (namespace.clone(), name.clone());
            let verdict = match (verdict, self.pending.remove(&at)) {
                (Verdict::Unsettled, Some((v, undo))) if v == version => Verdict::Undo(undo),
                (verdict, _) => verdict,
            };
            let settled = match verdict {
                Verdict::Undo(undo) => match write(link, &namespace, &name, &undo).await {
                    Ok(Written::Done(action)) => {
                        self.failing = false;
                        if action == Action::Unchanged {
                            tracing::debug!(
                                deployment,
                                "another node rolled the Deployment back already"
                            );
                        } else {
                            tracing::warn!(
                                deployment,
                                from_revision = undo.from_revision,
                                to_revision = undo.to_revision,
                                template = %undo.to_hash,
                                annotation = AUTO_ROLLBACK,
                                "the rollout passed its progress deadline: rolled back to the previous revision"
                            );
                        }
                        true
                    }
                    Ok(Written::Overtaken) => {
                        tracing::debug!(
                            deployment,
                            "the stalled template was replaced meanwhile; not rolling back"
                        );
                        true
                    }
                    Ok(Written::NotSynced) => {
                        tracing::debug!(
                            deployment,
                            "not following the cluster state; rolling back later"
                        );
                        retry = true;
                        false
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut self.failing, true) {
                            tracing::warn!(deployment, from_revision = undo.from_revision, to_revision = undo.to_revision, error = %error_chain(&e), "cannot roll the stalled rollout back yet; trying again");
                        }
                        self.pending.insert(at.clone(), (version, undo));
                        retry = true;
                        false
                    }
                },
                Verdict::NoOlderRevision { revision } => {
                    tracing::warn!(
                        deployment,
                        revision,
                        annotation = AUTO_ROLLBACK,
                        "the rollout passed its progress deadline, but no older revision is on record to roll back to; it stays as it is"
                    );
                    true
                }
                Verdict::RolledBackAlready { revision } => {
                    tracing::warn!(
                        deployment,
                        revision,
                        annotation = AUTO_ROLLBACK,
                        "the template an automatic rollback restored passed its progress deadline too; not rolling back again (apply a fixed template, or roll back by hand)"
                    );
                    true
                }
                Verdict::BadAnnotation(e) => {
                    tracing::warn!(deployment, error = %e, "the rollout passed its progress deadline; the automatic rollback annotation is not understood, so nothing is rolled back");
                    true
                }
                Verdict::Unsettled => {
                    tracing::debug!(
                        deployment,
                        "a write of the Deployment is under way; deciding on rollback once it lands"
                    );
                    false
                }
            };
            if settled {
                self.done.insert(at, version);
            }
        }
        retry
    }
}

/// Follows the snapshots until shutdown; on the writer node, rolls back the Deployments that ask
/// for it (see the module documentation).
pub async fn run(
    link: Arc<Link>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut memory = Memory::default();
    loop {
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        let retry = memory.pass(&link, &snapshot).await;
        if retry {
            // Not at every snapshot (they come often): a failing write waits a while.
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(RETRY) => continue,
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Inputs;
    use crate::rollout::Facts;
    use crate::state::Entry;

    /// Deployment `shop/web` at template version `v`, with `annotations` (YAML flow map entries).
    fn deployment(v: u32, annotations: &str) -> Deployment {
        let yaml = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop, annotations: {{{annotations}}}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}, annotations: {{kubernetes.io/change-cause: 'v{v}'}}}}\n    spec: {{containers: [{{name: c, image: 'x:{v}'}}]}}\n"
        );
        match crate::testing::objects(&yaml).remove(0) {
            Object::Deployment(d) => d,
            other => panic!("not a Deployment: {other:?}"),
        }
    }

    const OPTED_IN: &str = "podswarm.io/auto-rollback: 'true', kubernetes.io/change-cause: 'v3'";

    fn hash(d: &Deployment) -> String {
        template_hash(&d.spec.template)
    }

    /// Revision records of `shop/web`: template version → revision number.
    fn revisions(records: &[(u32, u64)]) -> Revisions {
        let records = records
            .iter()
            .map(|(v, n)| {
                let d = deployment(*v, "");
                (
                    hash(&d),
                    Revision {
                        revision: *n,
                        template: d.spec.template,
                        created: 0,
                        // Not the template's own annotation: an undo takes the record's.
                        change_cause: Some(format!("recorded v{v}")),
                    },
                )
            })
            .collect();
        BTreeMap::from([(("shop".to_owned(), "web".to_owned()), records)])
    }

    /// The read model of node `me` holding `d` at time `now`, with a pod of each older revision
    /// still serving (a rollout under way; no pod of `d`'s template exists): with the default
    /// deadline of 600 s, a rollout recorded at 0 has passed it at 1000 and not at 100.
    fn snapshot(d: &Deployment, revisions: &Revisions, now: u64) -> Snapshot {
        let current = hash(d);
        let serving = revisions
            .values()
            .flat_map(|r| r.keys())
            .filter(|h| **h != current)
            .map(|h| {
                let seen = crate::rollout::Seen {
                    ready_since: Some(0),
                    terminating: false,
                };
                (format!("web-{h}-0"), seen)
            })
            .collect();
        let pods = BTreeMap::from([(("shop".to_owned(), "web".to_owned()), serving)]);
        snapshot_with(d, revisions, pods, now)
    }

    fn snapshot_with(
        d: &Deployment,
        revisions: &Revisions,
        pods: BTreeMap<(String, String), BTreeMap<String, crate::rollout::Seen>>,
        now: u64,
    ) -> Snapshot {
        Snapshot::build(Inputs {
            node_name: "me".into(),
            entries: vec![Entry {
                object: Object::Deployment(d.clone()),
                version: 7,
                created: 0,
                updated: 0,
            }],
            facts: Facts {
                revisions: revisions.clone(),
                pods,
                now,
            },
            ..Inputs::default()
        })
    }

    /// The verdicts node `me` comes to, with `live` the other live nodes.
    fn verdicts(snapshot: &Snapshot, revisions: &Revisions, live: &[&str]) -> Vec<Verdict> {
        decide("me", live.iter().copied(), &stalled(snapshot), revisions)
            .into_iter()
            .map(|j| j.verdict)
            .collect()
    }

    #[test]
    fn a_stalled_opted_in_rollout_goes_back_to_the_previous_revision() {
        let v3 = deployment(3, OPTED_IN);
        let revs = revisions(&[(1, 1), (2, 2), (3, 3)]);
        let snap = snapshot(&v3, &revs, 1000);
        let judged = decide("me", ["other"], &stalled(&snap), &revs);
        assert_eq!(judged.len(), 1, "{judged:?}");
        assert_eq!(
            (
                judged[0].namespace.as_str(),
                judged[0].name.as_str(),
                judged[0].version
            ),
            ("shop", "web", 7)
        );
        let Verdict::Undo(undo) = &judged[0].verdict else {
            panic!("{judged:?}");
        };
        let v2 = deployment(2, "");
        assert_eq!((undo.from_revision, undo.to_revision), (3, 2));
        assert_eq!((&undo.from_hash, &undo.to_hash), (&hash(&v3), &hash(&v2)));
        // The template is v2's; the rest of the object stays, but for the change cause (v2's
        // record's, as `rollout undo` sets it from v2's ReplicaSet) and the mark.
        assert_eq!(undo.object.spec.template, v2.spec.template);
        let mut expected = v3.clone();
        expected.spec.template = v2.spec.template.clone();
        let annotations = expected.metadata.annotations.get_or_insert_default();
        annotations.insert(CHANGE_CAUSE_ANNOTATION.into(), "recorded v2".into());
        annotations.insert(ROLLED_BACK_TO.into(), hash(&v2));
        assert_eq!(undo.object, expected);
        // Whichever node computes it, from the same facts: the same object, so a second writer's
        // write is `unchanged`.
        assert_eq!(decide("me", ["other"], &stalled(&snap), &revs), judged);
    }

    #[test]
    fn a_deployment_that_did_not_opt_in_stays_stalled() {
        let revs = revisions(&[(1, 1), (2, 2)]);
        for annotations in ["", "podswarm.io/auto-rollback: 'false'"] {
            let d = deployment(2, annotations);
            let snap = snapshot(&d, &revs, 1000);
            assert!(stalled(&snap).is_empty(), "{annotations}");
            assert_eq!(verdicts(&snap, &revs, &[]), [], "{annotations}");
        }
    }

    #[test]
    fn a_rollout_within_its_deadline_is_left_alone() {
        let d = deployment(3, OPTED_IN);
        let revs = revisions(&[(2, 2), (3, 3)]);
        let snap = snapshot(&d, &revs, 100);
        assert_eq!(verdicts(&snap, &revs, &[]), []);
        // The same at 1000: past it.
        let snap = snapshot(&d, &revs, 1000);
        assert!(matches!(
            verdicts(&snap, &revs, &[])[..],
            [Verdict::Undo(_)]
        ));
    }

    /// A finished rollout (no pod of an older revision left) whose pods are all unavailable (a
    /// restart, a lost node) long after its apply is no stalled rollout: nothing is undone.
    #[test]
    fn a_finished_rollout_that_loses_its_pods_is_not_undone() {
        let d = deployment(3, OPTED_IN);
        let revs = revisions(&[(2, 2), (3, 3)]);
        let snap = snapshot_with(&d, &revs, BTreeMap::new(), 1000);
        assert!(stalled(&snap).is_empty());
        assert_eq!(verdicts(&snap, &revs, &[]), []);
    }

    #[test]
    fn with_no_older_revision_nothing_is_written() {
        let d = deployment(3, OPTED_IN);
        let revs = revisions(&[(3, 1)]);
        let snap = snapshot(&d, &revs, 1000);
        assert_eq!(
            verdicts(&snap, &revs, &[]),
            [Verdict::NoOlderRevision { revision: 1 }]
        );
        // Written before revisions existed, and never since.
        let none = Revisions::new();
        let snap = snapshot(&d, &none, 1000);
        assert_eq!(
            verdicts(&snap, &none, &[]),
            [Verdict::NoOlderRevision { revision: 0 }]
        );
    }

    #[test]
    fn only_the_lowest_named_live_node_writes() {
        let d = deployment(3, OPTED_IN);
        let revs = revisions(&[(2, 2), (3, 3)]);
        let snap = snapshot(&d, &revs, 1000);
        assert_eq!(verdicts(&snap, &revs, &["alpha", "zulu"]), []);
        assert!(matches!(
            verdicts(&snap, &revs, &["mf", "zulu"])[..],
            [Verdict::Undo(_)]
        ));
        assert!(is_writer("me", []));
        assert!(!is_writer("me", ["a"]));
        assert!(is_writer("a", ["me", "a", "b"]));
    }

    /// Was a hazard of the plain rule: if the restored template stalls too (the cluster, not the
    /// template, was the cause), undoing again would alternate two templates forever.
    #[test]
    fn a_template_an_automatic_rollback_restored_is_not_undone_again() {
        let v2 = deployment(2, "");
        let record = Revision {
            revision: 2,
            template: v2.spec.template.clone(),
            created: 0,
            change_cause: None,
        };
        let rolled_back = undone(&deployment(3, OPTED_IN), &hash(&v2), &record);
        // v2 is the newest revision now (moved up to 4), and stalls too.
        let revs = revisions(&[(1, 1), (3, 3), (2, 4)]);
        let snap = snapshot(&rolled_back, &revs, 1000);
        assert_eq!(
            verdicts(&snap, &revs, &[]),
            [Verdict::RolledBackAlready { revision: 4 }]
        );
        // A new template (a restart, an apply keeping the annotations) makes the mark stale.
        let mut v5 = rolled_back.clone();
        v5.spec.template = deployment(5, "").spec.template;
        let revs = revisions(&[(1, 1), (3, 3), (2, 4), (5, 5)]);
        let snap = snapshot(&v5, &revs, 1000);
        let found = verdicts(&snap, &revs, &[]);
        let [Verdict::Undo(undo)] = &found[..] else {
            panic!("{found:?}");
        };
        assert_eq!((undo.from_revision, undo.to_revision), (5, 4));
    }

    /// Link::apply records revisions before it writes the object: in between, a newer revision
    /// than the object's template is on record, and undoing then would restore the wrong one.
    #[test]
    fn nothing_is_decided_while_a_write_is_under_way() {
        let d = deployment(3, OPTED_IN);
        // Another node's undo to v2 is half done: v2 moved up to 4, the object still says v3.
        // The plain "newest older than the current" would pick v1.
        let revs = revisions(&[(1, 1), (3, 3), (2, 4)]);
        let snap = snapshot(&d, &revs, 1000);
        assert_eq!(verdicts(&snap, &revs, &[]), [Verdict::Unsettled]);
        // The object's template has no record yet, while others have one.
        let revs = revisions(&[(1, 1), (2, 2)]);
        let snap = snapshot(&d, &revs, 1000);
        assert_eq!(verdicts(&snap, &revs, &[]), [Verdict::Unsettled]);
    }

    /// An object an older intake let through (which only warned about the annotation) is not
    /// read as opted in, and the writer says so.
    #[test]
    fn an_annotation_value_that_is_not_true_or_false_is_not_acted_on() {
        let mut d = deployment(3, OPTED_IN);
        d.metadata
            .annotations
            .get_or_insert_default()
            .insert(AUTO_ROLLBACK.into(), "yes".into());
        let revs = revisions(&[(2, 2), (3, 3)]);
        let snap = snapshot(&d, &revs, 1000);
        let found = verdicts(&snap, &revs, &[]);
        assert!(
            matches!(&found[..], [Verdict::BadAnnotation(e)] if e.to_string().contains("got \"yes\"")),
            "{found:?}"
        );
    }

    /// The daemon's real pieces over a one-node podswarm-gossip: a Deployment whose v2 never
    /// becomes available (no reconciler runs its pods) is rolled back to v1 by the task through
    /// the link, once; the same write again is `unchanged`.
    #[tokio::test]
    async fn the_writer_rolls_a_stalled_rollout_back_through_the_link() {
        use crate::model::Model;
        use crate::reconcile::PodViews;
        use crate::state::State;
        use podswarm_manifest::Policy;

        let dir = tempfile::tempdir().unwrap();
        let (_node, socket) = podswarm_gossip::control::serve_test_node(dir.path())
            .await
            .unwrap();
        let state_dir = dir.path().join("podswarmd");
        std::fs::create_dir_all(&state_dir).unwrap();
        let state = Arc::new(
            State::open(&state_dir, &Policy::default(), crate::state::system_clock()).unwrap(),
        );
        let link = Link::new(socket, "n1".into(), Arc::clone(&state), Policy::default());
        let views = PodViews::default();
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(Arc::clone(&link).run(views.clone(), shutdown.clone()));
        assert!(link.synced(Duration::from_secs(10)).await);
        let model = Model::new(Arc::clone(&state), Arc::clone(&link), views);
        tokio::spawn(Arc::clone(&model).run(shutdown.clone()));
        tokio::spawn(run(Arc::clone(&link), model.subscribe(), shutdown.clone()));

        // A deadline of 1 s (it must exceed minReadySeconds, 0).
        let web = |v: u32| {
            let mut d = deployment(v, "podswarm.io/auto-rollback: 'true'");
            d.spec.progress_deadline_seconds = Some(1);
            d
        };
        let (v1, v2) = (web(1), web(2));
        let key = "objects/Deployment/shop/web";
        let held = |link: &Link| -> Deployment {
            serde_json::from_value(link.mirror().entries[key].1.clone()).unwrap()
        };
        let history = |link: &Link| -> Vec<(u64, String)> {
            let mut out: Vec<(u64, String)> = link
                .rollout_facts(0)
                .revisions
                .remove(&("shop".to_owned(), "web".to_owned()))
                .unwrap_or_default()
                .into_iter()
                .map(|(h, r)| (r.revision, h))
                .collect();
            out.sort();
            out
        };
        // Pod records as another live node (n2) publishes them: only a rollout whose old pods
        // still exist can be a stalled one.
        let id = link.mirror().self_id.unwrap();
        link.write(
            "nodes/n2",
            Some(serde_json::json!({"name": "n2", "nodeId": id})),
        )
        .await
        .unwrap();
        let pod = |link: &Arc<Link>, d: &Deployment, ready: bool| {
            let name = format!("web-{}-0", hash(d));
            let record = serde_json::json!({
                "namespace": "shop", "name": name, "node": "n2", "ip": null,
                "phase": "Running", "ready": ready, "restarts": 0, "reason": null,
                "owner": "Deployment/web", "labels": {}, "unit": "", "units": [],
                "containers": [], "created": 0, "warnings": [],
                "readySince": if ready { Some(0) } else { None },
            });
            let link = Arc::clone(link);
            async move {
                link.write(&format!("pods/shop/{name}"), Some(record))
                    .await
                    .unwrap()
            }
        };
        link.apply(&[Object::Deployment(v1.clone())]).await.unwrap();
        pod(&link, &v1, true).await;
        link.apply(&[Object::Deployment(v2.clone())]).await.unwrap();
        assert_eq!(hash(&held(&link)), hash(&v2));

        // v2 passes its deadline within 2 s; the task writes v1's template back.
        let mut changes = link.changes();
        tokio::time::timeout(Duration::from_secs(15), async {
            while hash(&held(&link)) != hash(&v1) {
                let _ = changes.changed().await;
            }
        })
        .await
        .expect("rolled back to v1");
        // v1's record keeps the cause the Deployment had while v1 was its template.
        let record = Revision {
            revision: 1,
            template: v1.spec.template.clone(),
            created: 0,
            change_cause: podswarm_api::kube::objects::change_cause(&v1.metadata),
        };
        let expected = undone(&v2, &hash(&v1), &record);
        assert_eq!(held(&link), expected);
        // As for any template change: v1 moved up to revision 3.
        assert_eq!(history(&link), [(2, hash(&v2)), (3, hash(&v1))]);

        // v1 stalls too (its pod is no longer ready, a pod of v2 still exists): it is not undone
        // again.
        pod(&link, &v1, false).await;
        pod(&link, &v2, true).await;
        let mut snapshots = model.subscribe();
        tokio::time::timeout(
            Duration::from_secs(15),
            snapshots.wait_for(|s| {
                s.deployment("shop", "web")
                    .is_some_and(|st| st.revision == 3 && past_deadline(st))
            }),
        )
        .await
        .expect("v1 passes its deadline")
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(held(&link), expected);
        assert_eq!(history(&link), [(2, hash(&v2)), (3, hash(&v1))]);

        // A second writer (membership views differed) writes the same object: nothing changes.
        let again = link.apply(&[Object::Deployment(expected.clone())]).await;
        assert_eq!(again.unwrap(), [Action::Unchanged]);
        assert_eq!(history(&link), [(2, hash(&v2)), (3, hash(&v1))]);
        let _ = stop.send(true);
    }
}
