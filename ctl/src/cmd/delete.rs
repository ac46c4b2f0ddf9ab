//! `podswarmctl delete`: the objects of manifests (`-f`), or one object by kind and name, each by
//! a `DELETE` of its Kubernetes API path, as kubectl deletes it.
//!
//! A file that holds a Namespace and its objects deletes cleanly, as with kubectl: the API
//! deletes a Namespace's objects with it, so Namespaces go last, after everything that lives in
//! them; and an object listed twice is deleted once, never reported as "not found". Each object
//! is deleted by its own request, so a failure names the object it concerns and the others are
//! still attempted.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use hyper::Method;
use podswarm_manifest::kinds::{self, Kind};
use serde::de::IgnoredAny;

use super::Scope;
use crate::client::Client;
use crate::input::{MAX_MANIFEST_BYTES, inputs, parse_input, read_input};
use crate::kube::path_of;

/// The kinds manifests hold: what the API can delete.
fn deletable() -> Vec<Kind> {
    Kind::ALL.into_iter().filter(|k| k.in_manifests()).collect()
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest file, directory of .yaml/.yml/.json files, or - for standard input, whose
    /// objects are deleted (repeatable)
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<String>,
    #[arg(help = format!("Resource type (or TYPE/NAME), without -f: {}", kinds::list(&deletable())))]
    pub kind: Option<String>,
    /// The object's name, without -f
    pub name: Option<String>,
    #[command(flatten)]
    pub scope: Scope,
}

/// One object to delete. Namespaces have an empty namespace, as in the API's answers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    kind: Kind,
    namespace: String,
    name: String,
}

impl Target {
    fn new(kind: Kind, namespace: &str, name: &str) -> Target {
        Target {
            kind,
            namespace: if kind.is_namespaced() {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }
}

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let mut targets = if args.files.is_empty() {
        let (word, name) = match (args.kind.as_deref(), args.name.as_deref()) {
            // kubectl's `delete deploy/web`.
            (Some(both), None) if both.contains('/') => both.split_once('/').unwrap_or_default(),
            (Some(word), Some(name)) => (word, name),
            _ => bail!("give -f FILE, KIND and NAME, or KIND/NAME"),
        };
        if name.is_empty() {
            bail!("give the object's name: KIND NAME or KIND/NAME");
        }
        vec![Target::new(kind_of(word)?, &args.scope.namespace, name)]
    } else {
        from_files(&args.files)?
    };
    // A Namespace takes its objects with it: delete them first (the sort is stable, so the
    // file's order holds otherwise).
    targets.sort_by_key(|t| t.kind == Kind::Namespace);

    // What it has dealt with: an object listed twice (a file given twice) is dealt with once.
    let mut handled = BTreeSet::new();
    let mut failed = false;
    for target in targets {
        if !handled.insert(target.clone()) {
            continue;
        }
        let path = path_of(target.kind, &target.namespace, &target.name);
        match client
            .call::<IgnoredAny>(Method::DELETE, &path, None, &[])
            .await
        {
            Ok(_) => println!("{}/{} deleted", target.kind.singular(), target.name),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        bail!("some objects were not deleted");
    }
    Ok(())
}

/// The kind a `delete KIND NAME` word names.
fn kind_of(word: &str) -> Result<Kind> {
    match Kind::from_word(word) {
        Some(kind) if kind.in_manifests() => Ok(kind),
        // A node is a cluster member, not an object: it leaves rather than being deleted.
        Some(Kind::Node) => {
            bail!("nodes are not deleted: run podswarmctl cluster leave on the node")
        }
        _ => bail!(
            "unknown resource type {word:?}: use {}",
            kinds::list(&deletable())
        ),
    }
}

/// Every object of the files, in their order.
fn from_files(files: &[String]) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for input in inputs(files)? {
        let (source, text) = read_input(&input, MAX_MANIFEST_BYTES)?;
        let manifest = parse_input(&text, &source)?;
        for o in manifest.objects {
            targets.push(Target::new(
                Kind::of(&o.object),
                o.object.namespace(),
                o.object.name(),
            ));
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_words() {
        assert_eq!(kind_of("cm").ok(), Some(Kind::ConfigMap));
        assert_eq!(kind_of("ns").ok(), Some(Kind::Namespace));
        let err = |w| kind_of(w).map_err(|e| e.to_string()).err();
        assert_eq!(
            err("no"),
            Some("nodes are not deleted: run podswarmctl cluster leave on the node".into())
        );
        assert_eq!(
            err("sts"),
            Some("unknown resource type \"sts\": use pods (po), deployments (deploy), services (svc), ingresses (ing), configmaps (cm), secrets or namespaces (ns)".into())
        );
    }
}
