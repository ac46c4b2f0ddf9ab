//! `podswarmctl get`: kubectl-shaped tables of the resources the API lists.
//!
//! Each kind's table is one [`Listed`] type of the API's contract (where to fetch it, its
//! columns, how a row reads from its typed fields), chosen by the typed kind: a word can only
//! ever pick its own kind's table, and the kinds `get` accepts (and names in its help and
//! errors) are exactly those [`is_listed`] admits.

use anyhow::{Result, bail};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use podswarm_api::kube::tables;
use podswarm_api::{DeploymentStatus, List, Node, PodView, ServiceItem};
use podswarm_manifest::kinds::Kind;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Scope, kind_among, kinds_help};
use crate::client::Client;
use crate::output::{Output, age, cell, now, print_structured, table};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(help = format!("{}; several separated by commas", kinds_help(&kinds())))]
    pub resource: String,
    /// Only the object with this name
    pub name: Option<String>,
    #[command(flatten)]
    pub scope: Scope,
    /// Output format (default: a table)
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

/// A type the API lists, and how `get` shows it.
trait Listed: DeserializeOwned + Serialize {
    const PATH: &'static str;
    const HEADER: &'static [&'static str];
    /// Columns `-o wide` adds, filled by `wide_row`.
    const WIDE_HEADER: &'static [&'static str] = &[];
    /// Empty for cluster-scoped things (nodes).
    fn namespace(&self) -> &str;
    fn name(&self) -> &str;
    fn row(&self, now: u64) -> Vec<String>;
    fn wide_row(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Whether `get` lists a kind: every kind is decided here, so a new one cannot be forgotten.
fn is_listed(kind: Kind) -> bool {
    match kind {
        Kind::Pod | Kind::Deployment | Kind::Service | Kind::Ingress | Kind::Node => true,
        Kind::ConfigMap | Kind::Secret | Kind::Namespace => false,
    }
}

/// The kinds `get` lists.
fn kinds() -> Vec<Kind> {
    Kind::ALL.into_iter().filter(|k| is_listed(*k)).collect()
}

/// `get pods,deploy`: one table per resource type, separated by a blank line, as kubectl does.
pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let name = args.name.as_deref();
    let words: Vec<&str> = args.resource.split(',').filter(|r| !r.is_empty()).collect();
    if words.len() > 1
        && (name.is_some() || matches!(args.output, Some(Output::Json | Output::Yaml)))
    {
        bail!("a list of resource types works with tables only, without a name");
    }
    if words.is_empty() {
        kind_among(&args.resource, "get", &kinds())?;
    }
    // Every word is checked before anything is printed, so a typo in the last one does not
    // leave half the tables on the screen.
    let mut lists = Vec::new();
    for word in words {
        lists.push((word, kind_among(word, "get", &kinds())?));
    }
    for (i, (word, kind)) in lists.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let request = Request {
            word,
            kind: *kind,
            name,
            scope: &args.scope,
            output: args.output,
        };
        get_kind(client, &request).await?;
    }
    Ok(())
}

/// One table (or object) asked for.
struct Request<'a> {
    word: &'a str,
    kind: Kind,
    name: Option<&'a str>,
    scope: &'a Scope,
    output: Option<Output>,
}

async fn get_kind(client: &Client, request: &Request<'_>) -> Result<()> {
    match request.kind {
        Kind::Pod => get::<PodView>(client, request).await,
        Kind::Deployment => get::<DeploymentStatus>(client, request).await,
        Kind::Service => get::<ServiceItem>(client, request).await,
        Kind::Ingress => get::<Ingress>(client, request).await,
        Kind::Node => get::<Node>(client, request).await,
        // `kind_among` admits only `kinds()`; this arm keeps the match honest if the two drift.
        other => bail!("get cannot list {}", other.plural()),
    }
}

async fn get<T: Listed>(client: &Client, request: &Request<'_>) -> Result<()> {
    let &Request {
        word,
        kind,
        name,
        scope,
        output,
    } = request;
    let now = now();
    let all: List<T> = client.get(T::PATH).await?;
    let cluster_scoped = !kind.is_namespaced();
    let mut list: Vec<T> = all
        .items
        .into_iter()
        .filter(|v| cluster_scoped || scope.all_namespaces || v.namespace() == scope.namespace)
        .collect();
    if let Some(name) = name {
        list.retain(|v| v.name() == name);
        if list.is_empty() {
            let ns = if cluster_scoped {
                String::new()
            } else {
                format!(" in namespace {}", scope.namespace)
            };
            bail!("{word} {name:?} not found{ns}");
        }
    }
    let printed = match list.as_slice() {
        [one] if name.is_some() => print_structured(one, output)?,
        _ => print_structured(&List::from(list.iter().collect::<Vec<&T>>()), output)?,
    };
    if printed {
        return Ok(());
    }
    if list.is_empty() {
        let ns = if cluster_scoped || scope.all_namespaces {
            String::new()
        } else {
            format!(" in {} namespace", scope.namespace)
        };
        eprintln!("No resources found{ns}.");
        return Ok(());
    }
    let wide = matches!(output, Some(Output::Wide));
    let with_namespace = scope.all_namespaces && !cluster_scoped;
    let mut rows = Vec::new();
    for v in &list {
        let mut row = v.row(now);
        if wide {
            row.extend(v.wide_row());
        }
        if with_namespace {
            row.insert(0, v.namespace().to_owned());
        }
        rows.push(row);
    }
    let mut head: Vec<&str> = T::HEADER.to_vec();
    if wide {
        head.extend(T::WIDE_HEADER);
    }
    if with_namespace {
        head.insert(0, "NAMESPACE");
    }
    print!("{}", table(&head, &rows));
    Ok(())
}

fn meta_namespace(m: &ObjectMeta) -> &str {
    m.namespace.as_deref().unwrap_or_default()
}

fn meta_name(m: &ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or_default()
}

impl Listed for PodView {
    const PATH: &'static str = "/api/v1/pods";
    const HEADER: &'static [&'static str] = &["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    const WIDE_HEADER: &'static [&'static str] = &["IP", "NODE"];

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn row(&self, now: u64) -> Vec<String> {
        let ready = self.containers.iter().filter(|c| c.is_running()).count();
        vec![
            self.name.clone(),
            format!("{ready}/{}", self.containers.len().max(1)),
            self.status().to_owned(),
            self.restarts.to_string(),
            age(self.created, now),
        ]
    }

    fn wide_row(&self) -> Vec<String> {
        vec![cell(self.ip.as_ref()), self.node.clone()]
    }
}

impl Listed for DeploymentStatus {
    const PATH: &'static str = "/api/v1/deployments";
    const HEADER: &'static [&'static str] = &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"];

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn row(&self, now: u64) -> Vec<String> {
        vec![
            self.name.clone(),
            format!("{}/{}", self.ready, self.replicas),
            self.up_to_date.to_string(),
            self.available.to_string(),
            age(self.created, now),
        ]
    }
}

impl Listed for ServiceItem {
    const PATH: &'static str = "/api/v1/services";
    const HEADER: &'static [&'static str] = &["NAME", "TYPE", "ENDPOINTS", "PORT(S)", "AGE"];
    const WIDE_HEADER: &'static [&'static str] = &["SELECTOR"];

    fn namespace(&self) -> &str {
        meta_namespace(&self.object.metadata)
    }

    fn name(&self) -> &str {
        meta_name(&self.object.metadata)
    }

    fn row(&self, now: u64) -> Vec<String> {
        vec![
            self.name().to_owned(),
            tables::service_type(&self.object).to_owned(),
            self.podswarm.ready_endpoints.to_string(),
            tables::service_ports(&self.object),
            age(self.podswarm.created, now),
        ]
    }

    fn wide_row(&self) -> Vec<String> {
        vec![tables::service_selector(&self.object)]
    }
}

impl Listed for Ingress {
    const PATH: &'static str = "/api/v1/ingresses";
    const HEADER: &'static [&'static str] = &["NAME", "CLASS", "HOSTS", "PORTS"];

    fn namespace(&self) -> &str {
        meta_namespace(&self.metadata)
    }

    fn name(&self) -> &str {
        meta_name(&self.metadata)
    }

    fn row(&self, _now: u64) -> Vec<String> {
        vec![
            self.name().to_owned(),
            tables::ingress_class(self).to_owned(),
            tables::ingress_hosts(self),
            tables::ingress_ports(self).to_owned(),
        ]
    }
}

impl Listed for Node {
    const PATH: &'static str = "/api/v1/nodes";
    const HEADER: &'static [&'static str] = &["NAME", "STATUS", "ADDRESS", "PODS", "POD-SUBNET"];

    fn namespace(&self) -> &str {
        ""
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn row(&self, _now: u64) -> Vec<String> {
        vec![
            self.name.clone(),
            self.status(),
            self.address.clone(),
            self.pods.to_string(),
            cell(self.pod_subnet.as_ref()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fits<T: Listed>(value: serde_json::Value) {
        let v: T = serde_json::from_value(value).unwrap();
        assert_eq!(v.row(0).len(), T::HEADER.len(), "{}", T::PATH);
        assert_eq!(v.wide_row().len(), T::WIDE_HEADER.len(), "{}", T::PATH);
    }

    /// Every listed kind's rows have as many cells as its header, wide or not.
    #[test]
    fn rows_fit_their_headers() {
        fits::<PodView>(json!({
            "namespace": "d", "name": "p", "node": "n", "ip": null, "phase": "Pending",
            "ready": false, "restarts": 0, "reason": null, "owner": null, "labels": {},
            "unit": "", "units": [], "containers": [], "created": 0, "warnings": []
        }));
        fits::<DeploymentStatus>(json!({
            "namespace": "d", "name": "w", "replicas": 1, "ready": 0, "upToDate": 0,
            "available": 0, "created": 0, "version": 1
        }));
        fits::<ServiceItem>(json!({
            "metadata": {"name": "s"},
            "podswarm": {"created": 0, "readyEndpoints": 0, "endpoints": 0}
        }));
        fits::<Ingress>(json!({"metadata": {"name": "i"}}));
        fits::<Node>(json!({
            "name": "n", "address": "", "ready": true, "podSubnet": null, "labels": {}, "pods": 0
        }));
        assert_eq!(
            kinds(),
            [
                Kind::Pod,
                Kind::Deployment,
                Kind::Service,
                Kind::Ingress,
                Kind::Node
            ]
        );
    }
}
