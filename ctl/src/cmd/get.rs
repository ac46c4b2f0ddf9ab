//! `podswarmctl get`: kubectl-shaped tables of the resources the API lists.
//!
//! Each kind's table is one [`Listing`] (where to fetch it, its columns, how a row reads), chosen
//! by the typed kind: a word can only ever pick its own kind's table, and the kinds `get`
//! accepts (and names in its help and errors) are exactly those with a listing.

use anyhow::{Result, bail};
use hyper::Method;
use podswarm_manifest::kinds::Kind;
use serde_json::{Value, json};

use super::{Scope, kind_among, kinds_help};
use crate::client::Client;
use crate::output::{Output, age, field, items, now, print_structured, table};

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

/// How one kind is listed.
struct Listing {
    path: &'static str,
    header: &'static [&'static str],
    /// Columns `-o wide` adds, filled by `wide_row`.
    wide_header: &'static [&'static str],
    row: fn(&Value, u64) -> Vec<String>,
    wide_row: fn(&Value) -> Vec<String>,
}

fn listing(kind: Kind) -> Option<Listing> {
    let no_wide: fn(&Value) -> Vec<String> = |_| Vec::new();
    Some(match kind {
        Kind::Pod => Listing {
            path: "/api/v1/pods",
            header: &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            wide_header: &["IP", "NODE"],
            row: pod_row,
            wide_row: |v| vec![field(v, "ip"), field(v, "node")],
        },
        Kind::Deployment => Listing {
            path: "/api/v1/deployments",
            header: &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            wide_header: &[],
            row: deployment_row,
            wide_row: no_wide,
        },
        Kind::Service => Listing {
            path: "/api/v1/services",
            header: &["NAME", "TYPE", "ENDPOINTS", "PORT(S)", "AGE"],
            wide_header: &["SELECTOR"],
            row: service_row,
            wide_row: service_selector,
        },
        Kind::Ingress => Listing {
            path: "/api/v1/ingresses",
            header: &["NAME", "CLASS", "HOSTS", "PORTS"],
            wide_header: &[],
            row: ingress_row,
            wide_row: no_wide,
        },
        Kind::Node => Listing {
            path: "/api/v1/nodes",
            header: &["NAME", "STATUS", "ADDRESS", "PODS", "POD-SUBNET"],
            wide_header: &[],
            row: node_row,
            wide_row: no_wide,
        },
        Kind::ConfigMap | Kind::Secret | Kind::Namespace => return None,
    })
}

/// The kinds `get` lists.
fn kinds() -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| listing(*k).is_some())
        .collect()
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
        let kind = kind_among(word, "get", &kinds())?;
        if let Some(listing) = listing(kind) {
            lists.push((word, kind, listing));
        }
    }
    for (i, (word, kind, listing)) in lists.iter().enumerate() {
        if i > 0 {
            println!();
        }
        get(client, word, *kind, listing, name, &args.scope, args.output).await?;
    }
    Ok(())
}

fn in_scope(v: &Value, scope: &Scope) -> bool {
    scope.all_namespaces
        || field(v, "namespace") == scope.namespace
        || v.pointer("/metadata/namespace").and_then(Value::as_str) == Some(&scope.namespace)
}

async fn get(
    client: &Client,
    word: &str,
    kind: Kind,
    listing: &Listing,
    name: Option<&str>,
    scope: &Scope,
    output: Option<Output>,
) -> Result<()> {
    let now = now();
    let all = client.json(Method::GET, listing.path, None, &[]).await?;
    let cluster_scoped = !kind.is_namespaced();
    let mut list: Vec<Value> = items(&all)
        .into_iter()
        .filter(|v| cluster_scoped || in_scope(v, scope))
        .collect();
    if let Some(name) = name {
        list.retain(|v| {
            field(v, "name") == name
                || v.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        });
        if list.is_empty() {
            let ns = if cluster_scoped {
                String::new()
            } else {
                format!(" in namespace {}", scope.namespace)
            };
            bail!("{word} {name:?} not found{ns}");
        }
    }
    if print_structured(
        &if name.is_some() && list.len() == 1 {
            list[0].clone()
        } else {
            json!({"items": list})
        },
        output,
    )? {
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
        let mut row = (listing.row)(v, now);
        if wide {
            row.extend((listing.wide_row)(v));
        }
        if with_namespace {
            let ns = if field(v, "namespace").is_empty() {
                v.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            } else {
                field(v, "namespace")
            };
            row.insert(0, ns);
        }
        rows.push(row);
    }
    let mut head: Vec<&str> = listing.header.to_vec();
    if wide {
        head.extend(listing.wide_header);
    }
    if with_namespace {
        head.insert(0, "NAMESPACE");
    }
    print!("{}", table(&head, &rows));
    Ok(())
}

/// `metadata.name` of a Kubernetes object (services and ingresses come as such).
fn object_name(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn pod_row(v: &Value, now: u64) -> Vec<String> {
    let containers = v
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = containers
        .iter()
        .filter(|c| field(c, "state").starts_with("active/"))
        .count();
    // As kubectl: the reason when there is one (CrashLoopBackOff, ImagePullBackOff,
    // ContainerCreating …: the words users search for), else the phase. An unschedulable pod
    // shows its phase, Pending, as kubectl does.
    let reason = field(v, "reason");
    let status = if reason.is_empty() || reason == "Unschedulable" {
        field(v, "phase")
    } else {
        reason
    };
    vec![
        field(v, "name"),
        format!("{ready}/{}", containers.len().max(1)),
        status,
        field(v, "restarts"),
        age(v["created"].as_u64().unwrap_or(now), now),
    ]
}

fn deployment_row(v: &Value, now: u64) -> Vec<String> {
    vec![
        field(v, "name"),
        format!("{}/{}", field(v, "ready"), field(v, "replicas")),
        field(v, "upToDate"),
        field(v, "available"),
        age(v["created"].as_u64().unwrap_or(now), now),
    ]
}

fn service_row(v: &Value, now: u64) -> Vec<String> {
    let ports: Vec<String> = v
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{}/{}",
                field(p, "port"),
                p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
            )
        })
        .collect();
    let typ = v
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();
    let ready = v
        .pointer("/podswarm/readyEndpoints")
        .map(|x| x.to_string())
        .unwrap_or_default();
    let created = v
        .pointer("/podswarm/created")
        .and_then(Value::as_u64)
        .unwrap_or(now);
    vec![
        object_name(v),
        typ,
        ready,
        ports.join(","),
        age(created, now),
    ]
}

fn service_selector(v: &Value) -> Vec<String> {
    vec![
        v.pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
    ]
}

fn ingress_row(v: &Value, _now: u64) -> Vec<String> {
    let hosts: Vec<String> = v
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            r.get("host")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_owned()
        })
        .collect();
    let tls = v
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    vec![
        object_name(v),
        v.pointer("/spec/ingressClassName")
            .and_then(Value::as_str)
            .unwrap_or("<none>")
            .to_owned(),
        if hosts.is_empty() {
            "*".to_owned()
        } else {
            hosts.join(",")
        },
        if tls {
            "80, 443".to_owned()
        } else {
            "80".to_owned()
        },
    ]
}

fn node_row(v: &Value, _now: u64) -> Vec<String> {
    vec![
        field(v, "name"),
        if v["ready"].as_bool() == Some(true) {
            "Ready".into()
        } else {
            "NotReady".into()
        },
        field(v, "address"),
        field(v, "pods"),
        field(v, "podSubnet"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed kind's rows have as many cells as its header, wide or not.
    #[test]
    fn rows_fit_their_headers() {
        let v = json!({});
        for kind in kinds() {
            let Some(l) = listing(kind) else { continue };
            assert_eq!((l.row)(&v, 0).len(), l.header.len(), "{kind}");
            assert_eq!((l.wide_row)(&v).len(), l.wide_header.len(), "{kind}");
        }
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
