//! `podswarmctl rollout status|history|undo|restart|pause|resume deploy/NAME`, as kubectl means
//! them, and through the Kubernetes API as kubectl does them.
//!
//! The daemon rolls Deployments out by itself (the Deployment's `status` says how far it is, its
//! ReplicaSets, one per revision, which templates it had); these commands only read that or
//! patch the Deployment as kubectl patches it: undo writes an older template back (a JSON patch
//! of `spec.template` and the annotations; the daemon then records it as the newest revision),
//! restart stamps the template with `kubectl.kubernetes.io/restartedAt`, pause and resume set
//! `spec.paused` (merge patches). So a Deployment changed by `rollout` reads exactly like one
//! kubectl changed.
//!
//! Messages and refusals are kubectl's (`k8s.io/kubectl/pkg/polymorphichelpers` and
//! `pkg/cmd/rollout`), so scripts written for kubectl read the same lines.

mod history;
pub(crate) mod status;
mod template;

use anyhow::{Context, Result, anyhow, bail};
use hyper::Method;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use podswarm_api::kube::objects::{
    self, CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION, TEMPLATE_HASH_LABEL,
};
use podswarm_api::kube::tables;
use podswarm_api::{DeploymentRevision, List};
use podswarm_manifest::kinds::Kind;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use crate::client::Client;
use crate::kube::{list_path, object_path};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Rollout,
}

#[derive(Debug, clap::Subcommand)]
pub enum Rollout {
    /// Show the status of the rollout, and by default wait until it is done
    Status(status::Args),
    /// View the rollout history: the revisions, or one revision's pod template
    History(history::Args),
    /// Roll back to the previous revision, or to --to-revision
    Undo(UndoArgs),
    /// Restart a deployment's pods with a rolling update (stamps its template)
    Restart(Target),
    /// Mark a deployment as paused: template changes do not roll out until it is resumed
    Pause(Target),
    /// Resume a paused deployment
    Resume(Target),
}

/// The Deployment a rollout command works on, as kubectl takes it.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// deploy/NAME (or deployment/NAME, deployments/NAME), deploy followed by NAME, or NAME
    pub target: String,
    /// The deployment's name, when TARGET is only the resource type
    pub name: Option<String>,
    /// Namespace
    #[arg(
        short = 'n',
        long,
        default_value = "default",
        env = "PODSWARM_NAMESPACE"
    )]
    pub namespace: String,
}

#[derive(Debug, clap::Args)]
pub struct UndoArgs {
    #[command(flatten)]
    pub target: Target,
    /// The revision to roll back to; 0 is the previous one
    #[arg(long, default_value_t = 0)]
    pub to_revision: u64,
}

const USAGE: &str = "rollout works on deployments: podswarmctl rollout SUBCOMMAND deploy/NAME";

impl Target {
    /// The Deployment's name: `deploy/NAME`, `deploy NAME` or `NAME`.
    pub fn name(&self) -> Result<&str> {
        let (word, name) = match (self.target.split_once('/'), self.name.as_deref()) {
            (Some((word, name)), None) => (Some(word), name),
            (None, Some(name)) => (Some(self.target.as_str()), name),
            (None, None) => (None, self.target.as_str()),
            (Some(_), Some(extra)) => bail!("unexpected argument {extra:?}: {USAGE}"),
        };
        if let Some(word) = word
            && Kind::from_word(word) != Some(Kind::Deployment)
        {
            bail!("{USAGE}");
        }
        if name.is_empty() {
            bail!("give the deployment's name: {USAGE}");
        }
        Ok(name)
    }

    fn path(&self) -> Result<String> {
        Ok(object_path::<Deployment>(&self.namespace, self.name()?))
    }
}

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    match &args.command {
        Rollout::Status(a) => status::run(client, a).await,
        Rollout::History(a) => history::run(client, a).await,
        Rollout::Undo(a) => undo(client, a).await,
        Rollout::Restart(t) => restart(client, t).await,
        Rollout::Pause(t) => set_paused(client, t, true).await,
        Rollout::Resume(t) => set_paused(client, t, false).await,
    }
}

/// The Deployment, with the status the API computes for it, as it is now.
async fn detail(client: &Client, target: &Target) -> Result<Deployment> {
    client.get(&target.path()?).await
}

/// The Deployment's revisions, oldest first: the ReplicaSets it controls, as kubectl reads them.
async fn revisions(client: &Client, target: &Target) -> Result<Vec<DeploymentRevision>> {
    let name = target.name()?;
    let list: List<ReplicaSet> = client
        .get(&list_path::<ReplicaSet>(Some(&target.namespace)))
        .await?;
    let mut items: Vec<DeploymentRevision> = list
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "Deployment" && o.name == name && o.controller == Some(true))
        })
        .filter_map(revision_of)
        .collect();
    items.sort_by_key(|r| r.revision);
    Ok(items)
}

/// A ReplicaSet as the revision it stands for: its number, its template without the hash label
/// (as kubectl takes it off before writing a template back), why it was made.
fn revision_of(rs: ReplicaSet) -> Option<DeploymentRevision> {
    let revision = revision_number(&rs.metadata)?;
    let mut template = rs.spec.template?;
    let labels = template.metadata.as_mut()?.labels.as_mut()?;
    let template_hash = labels.remove(TEMPLATE_HASH_LABEL)?;
    Some(DeploymentRevision {
        revision,
        template_hash,
        created: tables::seconds(rs.metadata.creation_timestamp.as_ref()),
        template,
        change_cause: objects::change_cause(&rs.metadata),
    })
}

/// The revision number an object's `deployment.kubernetes.io/revision` says.
fn revision_number(meta: &ObjectMeta) -> Option<u64> {
    meta.annotations
        .as_ref()?
        .get(REVISION_ANNOTATION)?
        .parse()
        .ok()
}

/// Patches the Deployment: `patch` as a merge patch, or a JSON patch (an array).
async fn patch(client: &Client, target: &Target, patch: &Value) -> Result<()> {
    let media = if patch.is_array() {
        "application/json-patch+json"
    } else {
        "application/merge-patch+json"
    };
    let body = serde_json::to_vec(patch).context("cannot write the patch")?;
    let _: IgnoredAny = client
        .call(Method::PATCH, &target.path()?, Some((body, media)), &[])
        .await?;
    Ok(())
}

/// `rollout pause` / `rollout resume`: kubectl refuses to pause a paused Deployment (and to
/// resume a running one) rather than saying nothing happened.
async fn set_paused(client: &Client, target: &Target, paused: bool) -> Result<()> {
    let name = target.name()?;
    let object = detail(client, target).await?;
    let is_paused = object.spec.paused.unwrap_or(false);
    if is_paused == paused {
        let state = if paused {
            "already paused"
        } else {
            "not paused"
        };
        bail!("deployments.apps {name:?} is {state}");
    }
    // Resuming removes the field, as kubectl's patch does, so pause and resume leave the object
    // as it was.
    patch(
        client,
        target,
        &json!({"spec": {"paused": if paused { json!(true) } else { Value::Null }}}),
    )
    .await?;
    println!(
        "deployment.apps/{name} {}",
        if paused { "paused" } else { "resumed" }
    );
    Ok(())
}

/// The template annotation `kubectl rollout restart` sets.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// `rollout restart`: a new template (the same but for the time stamp) rolls every pod over.
async fn restart(client: &Client, target: &Target) -> Result<()> {
    let name = target.name()?;
    let object = detail(client, target).await?;
    if object.spec.paused.unwrap_or(false) {
        bail!(
            "deployments.apps {name:?} can't restart paused deployment (run rollout resume first)"
        );
    }
    let now = i64::try_from(crate::output::now()).unwrap_or(i64::MAX);
    // RFC 3339 to the second, as Go's time.RFC3339 writes it (in UTC here).
    let stamp = k8s_openapi::jiff::Timestamp::from_second(now)
        .map_err(|e| anyhow!("the clock is out of range: {e}"))?
        .to_string();
    patch(
        client,
        target,
        &json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}),
    )
    .await?;
    println!("deployment.apps/{name} restarted");
    Ok(())
}

/// Which revision an undo goes to: `to` itself, or with 0 the second newest, as kubectl's
/// `deploymentRevision` picks it.
fn undo_target(
    name: &str,
    revisions: &[DeploymentRevision],
    to: u64,
) -> Result<DeploymentRevision> {
    if to > 0 {
        return revisions
            .iter()
            .find(|r| r.revision == to)
            .cloned()
            .with_context(|| format!("unable to find specified revision {to} in history"));
    }
    let mut newest_first: Vec<&DeploymentRevision> = revisions.iter().collect();
    newest_first.sort_by_key(|r| std::cmp::Reverse(r.revision));
    newest_first
        .get(1)
        .map(|r| (*r).clone())
        .with_context(|| format!("no rollout history found for deployment {name:?}"))
}

/// `rollout undo`: client-side, as kubectl does it: the revision's template written back over
/// the Deployment's.
async fn undo(client: &Client, args: &UndoArgs) -> Result<()> {
    let target = &args.target;
    let name = target.name()?;
    let mut object = detail(client, target).await?;
    let revision = undo_target(name, &revisions(client, target).await?, args.to_revision)?;
    if object.spec.paused.unwrap_or(false) {
        bail!(
            "you cannot rollback a paused deployment; resume it first with 'podswarmctl rollout resume deployment/{name}' and try again"
        );
    }
    if podswarm_manifest::template_hash(&object.spec.template) == revision.template_hash {
        println!(
            "deployment.apps/{name} skipped rollback (current template already matches revision {})",
            revision.revision
        );
        return Ok(());
    }
    // kubectl gives the Deployment the annotations of the revision's ReplicaSet, which are the
    // Deployment's own but for the revision's change cause (and a stale one from the newer
    // template goes); the revision number is the server's.
    let mut annotations = object.metadata.annotations.take().unwrap_or_default();
    annotations.remove(REVISION_ANNOTATION);
    match revision.change_cause {
        Some(cause) => annotations.insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause),
        None => annotations.remove(CHANGE_CAUSE_ANNOTATION),
    };
    // As kubectl's undo patches: the template replaced, the annotations set ("add" also where
    // the Deployment has none).
    patch(
        client,
        target,
        &json!([
            {"op": "replace", "path": "/spec/template", "value": revision.template},
            {"op": "add", "path": "/metadata/annotations", "value": annotations},
        ]),
    )
    .await?;
    println!("deployment.apps/{name} rolled back");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(target: &str, name: Option<&str>) -> Target {
        Target {
            target: target.to_owned(),
            name: name.map(str::to_owned),
            namespace: "default".to_owned(),
        }
    }

    #[test]
    fn targets_read_as_kubectl_takes_them() {
        for (t, n) in [
            ("deploy/web", None),
            ("deployment/web", None),
            ("deployments/web", None),
            ("deployments.apps/web", None),
            ("deploy", Some("web")),
            ("web", None),
        ] {
            assert_eq!(target(t, n).name().ok(), Some("web"), "{t} {n:?}");
        }
        let refused =
            |t: &str, n: Option<&str>| target(t, n).name().map_err(|e| e.to_string()).expect_err(t);
        assert_eq!(refused("svc/web", None), USAGE);
        assert_eq!(refused("pods", Some("web")), USAGE);
        assert!(refused("deploy/", None).starts_with("give the deployment's name"));
        assert!(refused("deploy/web", Some("x")).starts_with("unexpected argument \"x\""));
    }

    fn revision(n: u64, hash: &str) -> DeploymentRevision {
        DeploymentRevision {
            revision: n,
            template_hash: hash.to_owned(),
            created: 0,
            template: Default::default(),
            change_cause: None,
        }
    }

    #[test]
    fn undo_goes_to_the_second_newest_or_the_revision_asked_for() {
        let revs = [revision(1, "a"), revision(3, "c"), revision(2, "b")];
        assert_eq!(undo_target("web", &revs, 0).unwrap().revision, 2);
        assert_eq!(undo_target("web", &revs, 1).unwrap().template_hash, "a");
        assert_eq!(
            undo_target("web", &revs, 7).unwrap_err().to_string(),
            "unable to find specified revision 7 in history"
        );
        assert_eq!(
            undo_target("web", &revs[..1], 0).unwrap_err().to_string(),
            "no rollout history found for deployment \"web\""
        );
    }
}
