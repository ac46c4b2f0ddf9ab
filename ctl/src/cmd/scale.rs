//! `podswarmctl scale deploy/NAME --replicas N` (or `deploy NAME`), as kubectl spells it, and
//! as kubectl does it: a merge patch of the Deployment's `scale` subresource.

use anyhow::{Context, Result, bail};
use hyper::Method;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;
use podswarm_manifest::kinds::Kind;

use super::Scope;
use crate::client::Client;
use crate::kube::object_path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// deploy/NAME, or deploy followed by NAME
    pub target: String,
    /// The deployment's name, when TARGET is only the resource type
    pub name: Option<String>,
    /// How many pods the deployment runs
    #[arg(long)]
    pub replicas: i32,
    #[command(flatten)]
    pub scope: Scope,
}

const USAGE: &str = "scale works on deployments: podswarmctl scale deploy/NAME --replicas N";

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let (word, name) = match args.target.split_once('/') {
        Some((word, name)) => (word, Some(name)),
        None => (args.target.as_str(), args.name.as_deref()),
    };
    if Kind::from_word(word) != Some(Kind::Deployment) {
        bail!("{USAGE}");
    }
    let name = name
        .filter(|n| !n.is_empty())
        .context("give the deployment's name")?;
    // The Kubernetes API's scale subresource, patched as kubectl patches it.
    let patch = serde_json::json!({"spec": {"replicas": args.replicas}});
    let _: Scale = client
        .call(
            Method::PATCH,
            &format!(
                "{}/scale",
                object_path::<Deployment>(&args.scope.namespace, name)
            ),
            Some((
                patch.to_string().into_bytes(),
                "application/merge-patch+json",
            )),
            &[],
        )
        .await?;
    println!("deployment/{name} scaled");
    Ok(())
}
