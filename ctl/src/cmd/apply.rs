//! `podswarmctl apply -f`: each file's objects written through the Kubernetes API's endpoints, in
//! the file's order, and what became of each (created, configured, unchanged).
//!
//! A file is checked whole before any of it is written, as far as anything can be known before
//! writing:
//! - it is read with the API's own intake here, so a mistake anywhere in it is shown with its
//!   file, document and field before anything is sent (the node's policy on host paths and user
//!   namespaces is the API's alone, and is left to the next step);
//! - every object is then sent as a dry run (`dryRun=All`), which the API refuses as it would
//!   refuse the write (its policy, a Deployment's selector changed, …);
//! - only then is each written: a new one by a `POST`, an existing one by a `PUT` of the whole
//!   object. The file is the object, as podswarm's apply has always been: what the file leaves
//!   out goes (a replica count set by `scale` too), and the write is recorded as podswarmctl's
//!   update in `managedFields`. The `PUT` carries the `resourceVersion` read before, so a write
//!   by someone else in between is not overwritten unseen: the object is read again and the
//!   file applied over it (and one deleted in between is created again).
//!
//! What can still fail after the checks (the cluster unreachable halfway, an object changed by
//! others at every attempt) leaves the objects before it written, as with kubectl; applying the
//! file again finishes it.
//!
//! An object is "created" when the API answers 201, "unchanged" when it keeps its
//! `resourceVersion` (the API writes nothing when nothing changes), else "configured". The
//! intake's warnings are printed with where they are in the file; the API's own warnings only
//! where they say something more (a node of another version).

use anyhow::{Context, Result, bail};
use hyper::{Method, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use podswarm_api::Action;
use podswarm_manifest::kinds::Kind;
use podswarm_manifest::{Object, ParsedObject, Problem};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::client::{Answer, Client};
use crate::input::{Inputs, MAX_MANIFEST_BYTES, inputs, parse_input, read_input};
use crate::kube::{collection_of, path_of};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub inputs: Inputs,
}

/// How often an object changed by someone else between reading and writing it is read again.
const ATTEMPTS: usize = 3;

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    for input in inputs(&args.inputs.files)? {
        let (source, text) = read_input(&input, MAX_MANIFEST_BYTES)?;
        let manifest = parse_input(&text, &source)?;
        for w in &manifest.warnings {
            eprintln!("warning: {w}");
        }
        for object in &manifest.objects {
            let (_, answer) = attempt(client, &object.object, true).await?;
            for w in news(&answer.warnings, object, &manifest.warnings) {
                eprintln!("warning: {}: {w}", label(&object.object));
            }
        }
        for object in &manifest.objects {
            let (live, answer) = attempt(client, &object.object, false).await?;
            let written: Written = answer.decode(&label(&object.object))?;
            let action = if answer.status == StatusCode::CREATED {
                Action::Created
            } else if written.metadata.resource_version == live {
                Action::Unchanged
            } else {
                Action::Configured
            };
            println!("{} {action}", label(&object.object));
        }
    }
    Ok(())
}

/// Writes one object (or tries it, as a dry run), from a fresh read each time someone else
/// changed it in between: a conflict (changed, or created meanwhile) or a replace of what was
/// deleted meanwhile. Returns the version the write was made over and the API's answer, which
/// is a success or the refusal to show.
async fn attempt(
    client: &Client,
    object: &Object,
    dry_run: bool,
) -> Result<(Option<String>, Answer)> {
    for _ in 0..ATTEMPTS {
        let live = version_of(client, object).await?;
        let answer = write(client, object, live.as_deref(), dry_run).await?;
        let raced = answer.status == StatusCode::CONFLICT
            || (live.is_some() && answer.status == StatusCode::NOT_FOUND);
        if raced {
            continue;
        }
        if !answer.status.is_success() {
            // The refusal as the one sentence the API gave.
            answer.decode::<IgnoredAny>(&label(object))?;
        }
        return Ok((live, answer));
    }
    bail!(
        "{} kept changing while it was applied ({ATTEMPTS} attempts): apply again",
        label(object)
    )
}

/// What a write answers with, as far as apply reads it.
#[derive(Deserialize)]
struct Written {
    metadata: ObjectMeta,
}

/// The `resourceVersion` of the object as the API holds it, `None` where there is none to
/// replace: none at all, or only a deleted pod still stopping (its node's record of it, which
/// has no version: no write made it), which a new one may follow as soon as it is applied.
async fn version_of(client: &Client, object: &Object) -> Result<Option<String>> {
    let path = path_of(Kind::of(object), object.namespace(), object.name());
    let answer = client.exchange(Method::GET, &path, None, &[]).await?;
    if answer.status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let live: Written = answer.decode(&path)?;
    Ok(live.metadata.resource_version)
}

/// A create (no `live` version) or a replace of what has version `live`.
async fn write(
    client: &Client,
    object: &Object,
    live: Option<&str>,
    dry_run: bool,
) -> Result<Answer> {
    let kind = Kind::of(object);
    let mut body = object.to_value();
    let (method, path) = match live {
        None => (Method::POST, collection_of(kind, object.namespace())),
        Some(version) => {
            body["metadata"]["resourceVersion"] = version.into();
            (
                Method::PUT,
                path_of(kind, object.namespace(), object.name()),
            )
        }
    };
    let query = if dry_run {
        "?fieldValidation=Strict&dryRun=All"
    } else {
        "?fieldValidation=Strict"
    };
    let bytes = serde_json::to_vec(&body).context("cannot write the request body")?;
    client
        .exchange(
            method,
            &format!("{path}{query}"),
            Some((bytes, "application/json")),
            &[],
        )
        .await
}

/// `deployment/web`, as the output names objects.
fn label(object: &Object) -> String {
    format!("{}/{}", Kind::of(object).singular(), object.name())
}

/// The API's warnings about `object` that its intake here did not already give.
fn news<'a>(
    warnings: &'a [String],
    object: &ParsedObject,
    known: &[Problem],
) -> impl Iterator<Item = &'a String> {
    // A warning header is one line: the API sends line breaks as spaces.
    let one_line = |w: &str| w.replace(['\r', '\n'], " ");
    let known: Vec<String> = known
        .iter()
        .filter(|p| p.origin == object.origin)
        .map(|p| one_line(&p.brief()))
        .collect();
    warnings
        .iter()
        .filter(move |w| !known.contains(&one_line(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_warnings_the_file_did_not_give_are_news() {
        let manifest = parse_input(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  affinity: {}\n  containers: [{name: a, image: busybox}]\n",
            "p.yaml",
        )
        .unwrap();
        assert_eq!(manifest.warnings.len(), 1);
        let server = vec![
            manifest.warnings[0].brief(),
            "spec.x: something a newer node says".to_owned(),
        ];
        let news: Vec<&String> = news(&server, &manifest.objects[0], &manifest.warnings).collect();
        assert_eq!(news, [&server[1]]);
    }
}
