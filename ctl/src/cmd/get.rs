//! `podswarmctl get`: kubectl-shaped tables of the resources the API lists.
//!
//! It reads the Kubernetes API's lists, as kubectl does, into k8s-openapi's types: each kind's
//! table is one [`Listed`] type (its columns, how a row reads from its typed fields), chosen by
//! the typed kind, so a word can only ever pick its own kind's table, and the kinds `get`
//! accepts (and names in its help and errors) are exactly those [`is_listed`] admits. Cells that
//! kubectl shows too are filled by the functions that fill the server's `Table` for kubectl
//! (`podswarm_api::kube::tables`). podswarm's own columns come from the same API: a Service's
//! ready endpoints from its `Endpoints`, a node's pods from the pod list. `-o json|yaml` prints
//! the Kubernetes objects, a list as kubectl's `kind: List`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use podswarm_api::List;
use podswarm_api::kube::{objects, tables};
use podswarm_manifest::kinds::Kind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Scope, kind_among, kinds_help};
use crate::client::Client;
use crate::kube::list_path;
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
trait Listed: DeserializeOwned + Serialize + Resource + Metadata<Ty = ObjectMeta> {
    const HEADER: &'static [&'static str];
    /// Columns `-o wide` adds, filled by `wide_row`.
    const WIDE_HEADER: &'static [&'static str] = &[];
    /// What rows read besides the objects: another list of the API.
    const NEEDS: Needs = Needs::Nothing;
    fn row(&self, now: u64, related: &Related) -> Vec<String>;
    fn wide_row(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Another list a kind's rows read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    /// Services: their Endpoints, for ENDPOINTS.
    Endpoints,
    /// Nodes: every pod, for PODS.
    Pods,
}

/// What the other list said: ready endpoints by (namespace, Service), pods by node.
#[derive(Debug, Default)]
struct Related {
    ready_endpoints: BTreeMap<(String, String), usize>,
    pods_on: BTreeMap<String, usize>,
}

impl Related {
    async fn read(client: &Client, needs: Needs, namespace: Option<&str>) -> Result<Related> {
        let mut related = Related::default();
        match needs {
            Needs::Nothing => {}
            Needs::Endpoints => {
                let eps: List<Endpoints> = client.get(&list_path::<Endpoints>(namespace)).await?;
                for e in &eps.items {
                    related.ready_endpoints.insert(
                        (
                            namespace_of(&e.metadata).to_owned(),
                            name_of(&e.metadata).to_owned(),
                        ),
                        objects::ready_endpoints(e),
                    );
                }
            }
            Needs::Pods => {
                let pods: List<Pod> = client.get(&list_path::<Pod>(None)).await?;
                for node in pods
                    .items
                    .iter()
                    .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                {
                    *related.pods_on.entry(node).or_default() += 1;
                }
            }
        }
        Ok(related)
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
        Kind::Pod => get::<Pod>(client, request).await,
        Kind::Deployment => get::<Deployment>(client, request).await,
        Kind::Service => get::<Service>(client, request).await,
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
    let cluster_scoped = !kind.is_namespaced();
    let namespace = (!cluster_scoped && !scope.all_namespaces).then_some(scope.namespace.as_str());
    let all: List<T> = client.get(&list_path::<T>(namespace)).await?;
    let mut list = all.items;
    if let Some(name) = name {
        list.retain(|v| name_of(v.metadata()) == name);
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
        // As kubectl prints a list.
        _ => print_structured(
            &json!({
                "apiVersion": "v1",
                "kind": "List",
                "metadata": {"resourceVersion": ""},
                "items": list,
            }),
            output,
        )?,
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
    let related = Related::read(client, T::NEEDS, namespace).await?;
    let wide = matches!(output, Some(Output::Wide));
    let with_namespace = scope.all_namespaces && !cluster_scoped;
    let mut rows = Vec::new();
    for v in &list {
        let mut row = v.row(now, &related);
        if wide {
            row.extend(v.wide_row());
        }
        if with_namespace {
            row.insert(0, namespace_of(v.metadata()).to_owned());
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

fn namespace_of(m: &ObjectMeta) -> &str {
    m.namespace.as_deref().unwrap_or_default()
}

fn name_of(m: &ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or_default()
}

/// When an object was made, for AGE.
fn created(m: &ObjectMeta) -> u64 {
    tables::seconds(m.creation_timestamp.as_ref())
}

impl Listed for Pod {
    const HEADER: &'static [&'static str] = &["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    const WIDE_HEADER: &'static [&'static str] = &["IP", "NODE"];

    fn row(&self, now: u64, _: &Related) -> Vec<String> {
        vec![
            name_of(&self.metadata).to_owned(),
            tables::pod_ready(self),
            tables::pod_status(self),
            tables::pod_restarts(self).to_string(),
            age(created(&self.metadata), now),
        ]
    }

    fn wide_row(&self) -> Vec<String> {
        vec![
            cell(self.status.as_ref().and_then(|s| s.pod_ip.as_ref())),
            cell(self.spec.as_ref().and_then(|s| s.node_name.as_ref())),
        ]
    }
}

impl Listed for Deployment {
    const HEADER: &'static [&'static str] = &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"];

    fn row(&self, now: u64, _: &Related) -> Vec<String> {
        let status = self.status.as_ref();
        let count = |f: fn(&k8s_openapi::api::apps::v1::DeploymentStatus) -> Option<i32>| {
            status.and_then(f).unwrap_or(0)
        };
        let desired = self.spec.replicas.unwrap_or(1);
        vec![
            name_of(&self.metadata).to_owned(),
            format!("{}/{desired}", count(|s| s.ready_replicas)),
            count(|s| s.updated_replicas).to_string(),
            count(|s| s.available_replicas).to_string(),
            age(created(&self.metadata), now),
        ]
    }
}

impl Listed for Service {
    const HEADER: &'static [&'static str] = &["NAME", "TYPE", "ENDPOINTS", "PORT(S)", "AGE"];
    const WIDE_HEADER: &'static [&'static str] = &["SELECTOR"];
    const NEEDS: Needs = Needs::Endpoints;

    fn row(&self, now: u64, related: &Related) -> Vec<String> {
        let key = (
            namespace_of(&self.metadata).to_owned(),
            name_of(&self.metadata).to_owned(),
        );
        vec![
            key.1.clone(),
            tables::service_type(self).to_owned(),
            related
                .ready_endpoints
                .get(&key)
                .copied()
                .unwrap_or(0)
                .to_string(),
            tables::service_ports(self),
            age(created(&self.metadata), now),
        ]
    }

    fn wide_row(&self) -> Vec<String> {
        vec![tables::service_selector(self)]
    }
}

impl Listed for Ingress {
    const HEADER: &'static [&'static str] = &["NAME", "CLASS", "HOSTS", "PORTS"];

    fn row(&self, _now: u64, _: &Related) -> Vec<String> {
        vec![
            name_of(&self.metadata).to_owned(),
            tables::ingress_class(self).to_owned(),
            tables::ingress_hosts(self),
            tables::ingress_ports(self).to_owned(),
        ]
    }
}

impl Listed for Node {
    const HEADER: &'static [&'static str] = &["NAME", "STATUS", "ADDRESS", "PODS", "POD-SUBNET"];
    const NEEDS: Needs = Needs::Pods;

    fn row(&self, _now: u64, related: &Related) -> Vec<String> {
        let name = name_of(&self.metadata);
        vec![
            name.to_owned(),
            tables::node_status(self),
            tables::node_internal_ip(self)
                .unwrap_or_default()
                .to_owned(),
            related.pods_on.get(name).copied().unwrap_or(0).to_string(),
            cell(self.spec.as_ref().and_then(|s| s.pod_cidr.as_ref())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits<T: Listed>(value: serde_json::Value) {
        let v: T = serde_json::from_value(value).unwrap();
        let related = Related::default();
        assert_eq!(v.row(0, &related).len(), T::HEADER.len(), "{}", T::KIND);
        assert_eq!(v.wide_row().len(), T::WIDE_HEADER.len(), "{}", T::KIND);
    }

    /// Every listed kind's rows have as many cells as its header, wide or not.
    #[test]
    fn rows_fit_their_headers() {
        fits::<Pod>(json!({"metadata": {"name": "p"}}));
        fits::<Deployment>(json!({"metadata": {"name": "w"}}));
        fits::<Service>(json!({"metadata": {"name": "s"}}));
        fits::<Ingress>(json!({"metadata": {"name": "i"}}));
        fits::<Node>(json!({"metadata": {"name": "n"}}));
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
