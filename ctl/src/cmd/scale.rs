//! `podswarmctl scale deploy/NAME --replicas N` (or `deploy NAME`), as kubectl spells it.

use anyhow::{Context, Result, bail};
use hyper::Method;
use podswarm_api::{Scale, Scaled};
use podswarm_manifest::kinds::Kind;

use super::Scope;
use crate::client::Client;

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
    let _: Scaled = client
        .send_json(
            Method::PUT,
            &format!("/api/v1/deployments/{}/{name}/scale", args.scope.namespace),
            &Scale {
                replicas: args.replicas,
            },
        )
        .await?;
    println!("deployment/{name} scaled");
    Ok(())
}
