//! `podswarmctl describe`: one object in detail, with what a user looks at next (its pods, its
//! endpoints, where its logs are).

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Pod;
use podswarm_api::{DeploymentDetail, DeploymentStatus, List, PodView, ServiceDetail};
use podswarm_manifest::kinds::Kind;

use super::{Scope, kind_among, kinds_help};
use crate::client::Client;
use crate::kube::list_path;
use crate::output::cell;

/// The kinds the API has a detailed view of.
const KINDS: [Kind; 3] = [Kind::Pod, Kind::Deployment, Kind::Service];

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(help = kinds_help(&KINDS))]
    pub resource: String,
    /// The object's name
    pub name: String,
    #[command(flatten)]
    pub scope: Scope,
}

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let kind = kind_among(&args.resource, "describe", &KINDS)?;
    let name = &args.name;
    let ns = &args.scope.namespace;
    let out = match kind {
        Kind::Pod => pod(client, ns, name).await?,
        Kind::Deployment => deployment(client, ns, name).await?,
        Kind::Service => service(client, ns, name).await?,
        // `kind_among` admits only KINDS; this arm keeps the match honest if the two drift.
        other => bail!("describe cannot show {}", other.plural()),
    };
    print!("{out}");
    Ok(())
}

async fn pod(client: &Client, ns: &str, name: &str) -> Result<String> {
    let mut out = String::new();
    let p: PodView = client.get(&format!("/api/v1/pods/{ns}/{name}")).await?;
    for (label, value) in [
        ("Name", p.name.clone()),
        ("Namespace", p.namespace.clone()),
        ("Node", p.node.clone()),
        ("IP", cell(p.ip.as_ref())),
        ("Status", p.phase.to_string()),
        ("Ready", p.ready.to_string()),
        ("Restarts", p.restarts.to_string()),
        ("Reason", cell(p.reason.as_ref())),
        ("Message", cell(p.message.as_ref())),
        ("Controlled By", cell(p.owner.as_ref())),
        ("Unit", p.unit.clone()),
    ] {
        if !value.is_empty() {
            out.push_str(&format!("{:<15}{value}\n", format!("{label}:")));
        }
    }
    out.push_str("Containers:\n");
    for c in &p.containers {
        out.push_str(&format!(
            "  {}:\n    Image:     {}\n    Unit:      {}\n    State:     {}\n    Restarts:  {}\n",
            c.name, c.image, c.unit, c.state, c.restarts
        ));
    }
    if !p.warnings.is_empty() {
        out.push_str("Warnings:\n");
        for w in &p.warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    out.push_str(&format!(
        "Logs:          podswarmctl logs -n {ns} {name}   (or journalctl -u {})\n",
        p.unit
    ));
    Ok(out)
}

async fn deployment(client: &Client, ns: &str, name: &str) -> Result<String> {
    let mut out = String::new();
    let d: DeploymentDetail = client
        .get(&format!("/api/v1/deployments/{ns}/{name}"))
        .await?;
    // An answer without counts (`status: null`, which the contract allows) shows empty ones.
    let st = |f: fn(&DeploymentStatus) -> String| d.status.as_ref().map(f).unwrap_or_default();
    out.push_str(&format!(
        "Name:          {}\nNamespace:     {}\nReplicas:      {} desired | {} updated | {} ready | {} available\n",
        st(|s| s.name.clone()),
        st(|s| s.namespace.clone()),
        st(|s| s.replicas.to_string()),
        st(|s| s.up_to_date.to_string()),
        st(|s| s.ready.to_string()),
        st(|s| s.available.to_string())
    ));
    if let Some(labels) = &d.object.spec.selector.match_labels {
        out.push_str(&format!(
            "Selector:      {}\n",
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    let pods: List<Pod> = client.get(&list_path::<Pod>(Some(ns))).await?;
    out.push_str("Pods:\n");
    for p in pods.items.iter().filter(|p| {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Deployment" && o.name == name)
    }) {
        let status = p.status.as_ref();
        out.push_str(&format!(
            "  {}  {}  {}\n",
            p.metadata.name.as_deref().unwrap_or_default(),
            cell(status.and_then(|s| s.phase.as_ref())),
            cell(status.and_then(|s| s.pod_ip.as_ref()))
        ));
    }
    Ok(out)
}

async fn service(client: &Client, ns: &str, name: &str) -> Result<String> {
    let mut out = String::new();
    let v: ServiceDetail = client.get(&format!("/api/v1/services/{ns}/{name}")).await?;
    out.push_str(&format!(
        "Name:          {name}\nNamespace:     {ns}\nEndpoints:\n"
    ));
    for e in &v.endpoints {
        out.push_str(&format!(
            "  {}:{}  {}  ready={}\n",
            e.address, e.port, e.pod_name, e.ready
        ));
    }
    Ok(out)
}
