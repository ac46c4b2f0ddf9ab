//! `podswarmctl cordon|uncordon|drain NODE`, as kubectl means them: a cordoned node takes no new
//! pod; `drain` cordons it and moves its pods away, and waits until none is left on it.
//! `cordon` and `uncordon` are kubectl's patch of the node's `spec.unschedulable`; a drain is
//! podswarm's own endpoint, since its moves are not Kubernetes' evictions.
//!
//! A drain's moves are graceful on the daemons' side: each pod keeps serving on the drained node
//! until its copy on another node is ready and has taken over (a surge first, so capacity does
//! not drop where other nodes have room), then leaves every node's DNS and ingress, then stops.
//! This command only starts the drain and follows the pod list (the API has no watch), printing
//! a line whenever the set of pods left changes, and fails once `--timeout` passes.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, bail};
use hyper::Method;
use k8s_openapi::api::core::v1::{Node as KNode, Pod};
use podswarm_api::kube::objects;
use podswarm_api::{List, Node};
use podswarm_manifest::kinds::Kind;
use serde_json::json;
use tokio::time::Instant;

use super::rollout::status::parse_duration;
use crate::client::Client;
use crate::kube::{list_path, path_of};

#[derive(Debug, clap::Args)]
pub struct CordonArgs {
    /// The node's name (as `podswarmctl get nodes` lists it)
    pub node: String,
}

#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// The node's name (as `podswarmctl get nodes` lists it)
    pub node: String,
    /// How long to wait for the node's pods to leave, e.g. 90s, 5m; 0 means forever
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// How often the pod list is read again while draining.
const POLL: Duration = Duration::from_secs(1);

/// `kubectl cordon|uncordon`'s change: a strategic merge patch of the node's
/// `spec.unschedulable`, sent only when the node is not so already.
async fn set(client: &Client, node: &str, unschedulable: bool) -> Result<()> {
    let path = path_of(Kind::Node, "", node);
    let (done, already) = if unschedulable {
        ("cordoned", "already cordoned")
    } else {
        ("uncordoned", "already uncordoned")
    };
    let current: KNode = client.get(&path).await?;
    let name = current.metadata.name.as_deref().unwrap_or(node);
    if current.spec.and_then(|s| s.unschedulable).unwrap_or(false) == unschedulable {
        println!("node/{name} {already}");
        return Ok(());
    }
    let patch = serde_json::to_vec(&json!({"spec": {"unschedulable": unschedulable}}))?;
    let _: KNode = client
        .call(
            Method::PATCH,
            &path,
            Some((patch, "application/strategic-merge-patch+json")),
            &[],
        )
        .await?;
    println!("node/{name} {done}");
    Ok(())
}

pub async fn cordon(client: &Client, args: &CordonArgs) -> Result<()> {
    set(client, &args.node, true).await
}

pub async fn uncordon(client: &Client, args: &CordonArgs) -> Result<()> {
    set(client, &args.node, false).await
}

/// The pods on `node` (`ns/name`): those the pod list places there (terminating ones included)
/// and the copies it still stops after another node's copy took them over (the node's
/// `podswarm.io/stopping`); and the Pending ones (no node takes them) among `of`.
async fn pods_on(
    client: &Client,
    node: &str,
    of: &BTreeSet<String>,
) -> Result<(BTreeSet<String>, Vec<String>)> {
    let pods: List<Pod> = client.get(&list_path::<Pod>(None)).await?;
    let nodes: List<KNode> = client.get(&list_path::<KNode>(None)).await?;
    let key = |p: &Pod| {
        format!(
            "{}/{}",
            p.metadata.namespace.as_deref().unwrap_or_default(),
            p.metadata.name.as_deref().unwrap_or_default()
        )
    };
    let node_of = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
    let on = pods
        .items
        .iter()
        .filter(|p| node_of(p).as_deref() == Some(node))
        .map(key)
        .chain(
            nodes
                .items
                .iter()
                .filter(|n| n.metadata.name.as_deref() == Some(node))
                .flat_map(objects::stopping),
        )
        .collect();
    let pending = pods
        .items
        .iter()
        .filter(|p| node_of(p).is_none() && of.contains(&key(p)))
        .map(key)
        .collect();
    Ok((on, pending))
}

pub async fn drain(client: &Client, args: &DrainArgs) -> Result<()> {
    // podswarm's own endpoint: a drain moves pods gracefully (a copy ready elsewhere first),
    // which Kubernetes' evictions do not.
    let node: Node = client
        .call(
            Method::POST,
            &format!("/api/v1/nodes/{}/drain", args.node),
            None,
            &[],
        )
        .await?;
    println!("node/{} cordoned", node.name);
    let (first, _) = pods_on(client, &node.name, &BTreeSet::new()).await?;
    for pod in &first {
        println!("evicting pod {pod}");
    }
    let deadline = (!args.timeout.is_zero()).then(|| Instant::now() + args.timeout);
    let mut last = first.clone();
    loop {
        let (left, pending) = pods_on(client, &node.name, &first).await?;
        if left.is_empty() {
            for pod in pending {
                eprintln!(
                    "warning: pod {pod} left node/{} but no other node can take it (Pending)",
                    node.name
                );
            }
            println!("node/{} drained", node.name);
            return Ok(());
        }
        if left != last {
            let names: Vec<&str> = left.iter().map(String::as_str).collect();
            println!(
                "waiting for {} pod(s) to leave node/{}: {}",
                left.len(),
                node.name,
                names.join(", ")
            );
            last = left;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            bail!(
                "timed out after {:?} draining node/{}: {} pod(s) still on it (it stays cordoned; drain again to keep waiting)",
                args.timeout,
                node.name,
                last.len()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
