//! `podswarmctl describe`: one object in detail, with what a user looks at next (its pods, its
//! endpoints, where its logs are).

use anyhow::{Result, bail};
use hyper::Method;
use podswarm_manifest::kinds::Kind;
use serde_json::Value;

use super::{Scope, kind_among, kinds_help};
use crate::client::Client;
use crate::output::{field, items};

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
    let p = client
        .json(Method::GET, &format!("/api/v1/pods/{ns}/{name}"), None, &[])
        .await?;
    for (k, label) in [
        ("name", "Name"),
        ("namespace", "Namespace"),
        ("node", "Node"),
        ("ip", "IP"),
        ("phase", "Status"),
        ("ready", "Ready"),
        ("restarts", "Restarts"),
        ("reason", "Reason"),
        ("message", "Message"),
        ("owner", "Controlled By"),
        ("unit", "Unit"),
    ] {
        let value = field(&p, k);
        if !value.is_empty() {
            out.push_str(&format!("{:<15}{value}\n", format!("{label}:")));
        }
    }
    out.push_str("Containers:\n");
    for c in p
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "  {}:\n    Image:     {}\n    Unit:      {}\n    State:     {}\n    Restarts:  {}\n",
            field(c, "name"),
            field(c, "image"),
            field(c, "unit"),
            field(c, "state"),
            field(c, "restarts")
        ));
    }
    let warnings: Vec<&str> = p
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !warnings.is_empty() {
        out.push_str("Warnings:\n");
        for w in warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    out.push_str(&format!(
        "Logs:          podswarmctl logs -n {ns} {name}   (or journalctl -u {})\n",
        field(&p, "unit")
    ));
    Ok(out)
}

async fn deployment(client: &Client, ns: &str, name: &str) -> Result<String> {
    let mut out = String::new();
    let d = client
        .json(
            Method::GET,
            &format!("/api/v1/deployments/{ns}/{name}"),
            None,
            &[],
        )
        .await?;
    let st = &d["status"];
    out.push_str(&format!("Name:          {}\nNamespace:     {}\nReplicas:      {} desired | {} updated | {} ready | {} available\n", field(st, "name"), field(st, "namespace"), field(st, "replicas"), field(st, "upToDate"), field(st, "ready"), field(st, "available")));
    if let Some(sel) = d
        .pointer("/object/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        out.push_str(&format!(
            "Selector:      {}\n",
            sel.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    let pods = client
        .json(
            Method::GET,
            &format!("/api/v1/pods?namespace={ns}"),
            None,
            &[],
        )
        .await?;
    out.push_str("Pods:\n");
    for p in items(&pods)
        .iter()
        .filter(|p| field(p, "owner") == format!("Deployment/{name}"))
    {
        out.push_str(&format!(
            "  {}  {}  {}\n",
            field(p, "name"),
            field(p, "phase"),
            field(p, "ip")
        ));
    }
    Ok(out)
}

async fn service(client: &Client, ns: &str, name: &str) -> Result<String> {
    let mut out = String::new();
    let v = client
        .json(
            Method::GET,
            &format!("/api/v1/services/{ns}/{name}"),
            None,
            &[],
        )
        .await?;
    out.push_str(&format!(
        "Name:          {name}\nNamespace:     {ns}\nEndpoints:\n"
    ));
    for e in v
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "  {}:{}  {}  ready={}\n",
            field(e, "address"),
            field(e, "port"),
            field(e, "podName"),
            field(e, "ready")
        ));
    }
    Ok(out)
}
