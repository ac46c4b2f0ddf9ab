//! The commands that talk to a podswarm API: apply, get, describe, delete, logs, scale, token.
//! Output follows kubectl's shapes so that habits carry over.

use std::io::Write;

use anyhow::{Context, Result, bail};
use hyper::Method;
use podswarm_manifest::{Limits, Policy};
use serde_json::{Value, json};

use crate::client::Client;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Wide,
    Json,
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct Scope {
    /// Namespace
    #[arg(
        short = 'n',
        long,
        default_value = "default",
        env = "PODSWARM_NAMESPACE"
    )]
    pub namespace: String,
    /// All namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// kubectl's AGE: 45s, 12m, 5h, 3d.
pub fn age(created: u64, now: u64) -> String {
    let s = now.saturating_sub(created);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Left-aligned columns separated by three spaces, as kubectl prints them.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn print_structured(value: &Value, output: Option<Output>) -> Result<bool> {
    match output {
        Some(Output::Json) => {
            println!("{}", serde_json::to_string_pretty(value)?);
            Ok(true)
        }
        Some(Output::Yaml) => {
            print!(
                "{}",
                serde_saphyr::to_string(value).context("cannot write YAML")?
            );
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn items(v: &Value) -> Vec<Value> {
    v.get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn in_scope(v: &Value, scope: &Scope) -> bool {
    scope.all_namespaces
        || s(v, "namespace") == scope.namespace
        || v.pointer("/metadata/namespace").and_then(Value::as_str) == Some(&scope.namespace)
}

pub async fn apply(client: &Client, files: &[String], max_bytes: usize) -> Result<()> {
    for input in crate::render::inputs(files)? {
        let (name, text) = crate::render::read_input(&input, max_bytes)?;
        let result = client
            .json(
                Method::POST,
                "/api/v1/manifests",
                Some((text.into_bytes(), "application/yaml")),
                &[("x-podswarm-source", name.clone())],
            )
            .await?;
        for w in result
            .get("warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            eprintln!("warning: {}", w.as_str().unwrap_or_default());
        }
        for a in result
            .get("applied")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            println!(
                "{}/{} {}",
                s(a, "kind").to_ascii_lowercase(),
                s(a, "name"),
                s(a, "action")
            );
        }
    }
    Ok(())
}

/// `get pods,deploy`: one table per resource type, separated by a blank line, as kubectl does.
pub async fn get_many(
    client: &Client,
    resources: &str,
    name: Option<&str>,
    scope: &Scope,
    output: Option<Output>,
) -> Result<()> {
    let list: Vec<&str> = resources.split(',').filter(|r| !r.is_empty()).collect();
    if list.len() > 1 && (name.is_some() || matches!(output, Some(Output::Json | Output::Yaml))) {
        bail!("a list of resource types works with tables only, without a name");
    }
    for (i, resource) in list.iter().enumerate() {
        if i > 0 {
            println!();
        }
        get(client, resource, name, scope, output).await?;
    }
    Ok(())
}

pub async fn get(
    client: &Client,
    resource: &str,
    name: Option<&str>,
    scope: &Scope,
    output: Option<Output>,
) -> Result<()> {
    let now = now();
    let (path, header, wide_header): (&str, &[&str], &[&str]) = match resource {
        "pods" | "pod" | "po" => (
            "/api/v1/pods",
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE"],
        ),
        "deployments" | "deployment" | "deploy" => (
            "/api/v1/deployments",
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &[],
        ),
        "services" | "service" | "svc" => (
            "/api/v1/services",
            &["NAME", "TYPE", "ENDPOINTS", "PORT(S)", "AGE"],
            &["SELECTOR"],
        ),
        "ingresses" | "ingress" | "ing" => (
            "/api/v1/ingresses",
            &["NAME", "CLASS", "HOSTS", "PORTS"],
            &[],
        ),
        "nodes" | "node" | "no" => (
            "/api/v1/nodes",
            &["NAME", "STATUS", "ADDRESS", "PODS", "POD-SUBNET"],
            &[],
        ),
        other => bail!(
            "unknown resource type {other:?}: use pods, deployments, services, ingresses or nodes"
        ),
    };
    let all = client.json(Method::GET, path, None, &[]).await?;
    let cluster_scoped = path == "/api/v1/nodes";
    let mut list: Vec<Value> = items(&all)
        .into_iter()
        .filter(|v| cluster_scoped || in_scope(v, scope))
        .collect();
    if let Some(name) = name {
        list.retain(|v| {
            s(v, "name") == name
                || v.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        });
        if list.is_empty() {
            let ns = if cluster_scoped {
                String::new()
            } else {
                format!(" in namespace {}", scope.namespace)
            };
            bail!("{resource} {name:?} not found{ns}");
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
    let mut rows = Vec::new();
    for v in &list {
        let mut row = match resource.chars().next() {
            Some('p') => {
                let containers = v
                    .get("containers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let ready = containers
                    .iter()
                    .filter(|c| s(c, "state").starts_with("active/"))
                    .count();
                let reason = s(v, "reason");
                let status = if reason.contains("restarting after exiting") {
                    "CrashLoopBackOff".to_owned()
                } else if reason.starts_with("waiting for") {
                    "Pending".to_owned()
                } else {
                    s(v, "phase")
                };
                vec![
                    s(v, "name"),
                    format!("{ready}/{}", containers.len().max(1)),
                    status,
                    s(v, "restarts"),
                    age(v["created"].as_u64().unwrap_or(now), now),
                ]
            }
            Some('d') => vec![
                s(v, "name"),
                format!("{}/{}", s(v, "ready"), s(v, "replicas")),
                s(v, "upToDate"),
                s(v, "available"),
                age(v["created"].as_u64().unwrap_or(now), now),
            ],
            Some('s') => {
                let ports: Vec<String> = v
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            s(p, "port"),
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
                    v.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    typ,
                    ready,
                    ports.join(","),
                    age(created, now),
                ]
            }
            Some('i') => {
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
                    v.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
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
            _ => vec![
                s(v, "name"),
                if v["ready"].as_bool() == Some(true) {
                    "Ready".into()
                } else {
                    "NotReady".into()
                },
                s(v, "address"),
                s(v, "pods"),
                s(v, "podSubnet"),
            ],
        };
        if wide {
            match resource.chars().next() {
                Some('p') => row.extend([s(v, "ip"), s(v, "node")]),
                Some('s') => row.push(
                    v.pointer("/spec/selector")
                        .and_then(Value::as_object)
                        .map(|m| {
                            m.iter()
                                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default(),
                ),
                _ => {}
            }
        }
        if scope.all_namespaces && !cluster_scoped {
            let ns = if s(v, "namespace").is_empty() {
                v.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            } else {
                s(v, "namespace")
            };
            row.insert(0, ns);
        }
        rows.push(row);
    }
    let mut head: Vec<&str> = header.to_vec();
    if wide {
        head.extend(wide_header);
    }
    if scope.all_namespaces && !cluster_scoped {
        head.insert(0, "NAMESPACE");
    }
    print!("{}", table(&head, &rows));
    Ok(())
}

pub async fn describe(client: &Client, resource: &str, name: &str, scope: &Scope) -> Result<()> {
    let ns = &scope.namespace;
    let mut out = String::new();
    match resource {
        "pod" | "pods" | "po" => {
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
                ("owner", "Controlled By"),
                ("unit", "Unit"),
            ] {
                let value = s(&p, k);
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
                out.push_str(&format!("  {}:\n    Image:     {}\n    Unit:      {}\n    State:     {}\n    Restarts:  {}\n", s(c, "name"), s(c, "image"), s(c, "unit"), s(c, "state"), s(c, "restarts")));
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
                s(&p, "unit")
            ));
        }
        "deployment" | "deployments" | "deploy" => {
            let d = client
                .json(
                    Method::GET,
                    &format!("/api/v1/deployments/{ns}/{name}"),
                    None,
                    &[],
                )
                .await?;
            let st = &d["status"];
            out.push_str(&format!("Name:          {}\nNamespace:     {}\nReplicas:      {} desired | {} updated | {} ready | {} available\n", s(st, "name"), s(st, "namespace"), s(st, "replicas"), s(st, "upToDate"), s(st, "ready"), s(st, "available")));
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
                .filter(|p| s(p, "owner") == format!("Deployment/{name}"))
            {
                out.push_str(&format!(
                    "  {}  {}  {}\n",
                    s(p, "name"),
                    s(p, "phase"),
                    s(p, "ip")
                ));
            }
        }
        "service" | "services" | "svc" => {
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
                    s(e, "address"),
                    s(e, "port"),
                    s(e, "podName"),
                    s(e, "ready")
                ));
            }
        }
        other => bail!("describe supports pods, deployments and services, not {other:?}"),
    }
    print!("{out}");
    Ok(())
}

/// `delete -f FILE`: every object in the file; `delete KIND NAME`: one.
pub async fn delete(
    client: &Client,
    files: &[String],
    kind: Option<&str>,
    name: Option<&str>,
    scope: &Scope,
    max_bytes: usize,
) -> Result<()> {
    let mut targets: Vec<(String, String, String)> = Vec::new();
    if !files.is_empty() {
        for input in crate::render::inputs(files)? {
            let (source, text) = crate::render::read_input(&input, max_bytes)?;
            let manifest = podswarm_manifest::parse(
                &text,
                &source,
                &Limits {
                    max_bytes,
                    ..Limits::default()
                },
                &Policy {
                    host_path_allow: vec!["/".into()],
                },
            )?;
            for o in manifest.objects {
                let ns = if o.object.kind() == "Namespace" {
                    "-".to_owned()
                } else {
                    o.object.namespace().to_owned()
                };
                targets.push((ns, o.object.kind().to_owned(), o.object.name().to_owned()));
            }
        }
    } else {
        let (Some(kind), Some(name)) = (kind, name) else {
            bail!("give -f FILE, or KIND and NAME")
        };
        targets.push((scope.namespace.clone(), kind.to_owned(), name.to_owned()));
    }
    let mut failed = false;
    for (ns, kind, name) in targets {
        match client
            .json(
                Method::DELETE,
                &format!("/api/v1/manifests/{ns}/{kind}/{name}"),
                None,
                &[],
            )
            .await
        {
            Ok(_) => println!("{}/{name} deleted", kind.to_ascii_lowercase()),
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

pub async fn logs(
    client: &Client,
    pod: &str,
    container: Option<&str>,
    follow: bool,
    tail: Option<u64>,
    scope: &Scope,
) -> Result<()> {
    use http_body_util::BodyExt;
    let mut path = format!(
        "/api/v1/pods/{}/{pod}/logs?follow={follow}",
        scope.namespace
    );
    if let Some(n) = tail {
        path.push_str(&format!("&tail={n}"));
    }
    if let Some(c) = container {
        path.push_str(&format!("&container={c}"));
    }
    let response = client.send(Method::GET, &path, None, &[]).await?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let bytes = body.collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        bail!(
            "{}",
            value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("the API refused the request")
        );
    }
    let mut stdout = std::io::stdout().lock();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.context("the log stream broke")?.into_data() {
            stdout.write_all(&data)?;
            stdout.flush()?;
        }
    }
    Ok(())
}

pub async fn scale(
    client: &Client,
    target: &str,
    name: Option<&str>,
    replicas: i32,
    scope: &Scope,
) -> Result<()> {
    let name = match target.split_once('/') {
        Some(("deploy" | "deployment" | "deployments", n)) => n.to_owned(),
        None if matches!(target, "deploy" | "deployment" | "deployments") => name
            .map(str::to_owned)
            .context("give the deployment's name")?,
        _ => bail!("scale works on deployments: podswarmctl scale deploy/NAME --replicas N"),
    };
    let body = serde_json::to_vec(&json!({"replicas": replicas}))?;
    client
        .json(
            Method::PUT,
            &format!("/api/v1/deployments/{}/{name}/scale", scope.namespace),
            Some((body, "application/json")),
            &[],
        )
        .await?;
    println!("deployment/{name} scaled");
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token (printed once; only its hash is stored)
    Create {
        #[arg(long, default_value = "")]
        description: String,
        /// Lifetime, e.g. 3600s, 90m, 24h, 30d (default: until revoked)
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List tokens (ids and descriptions, never the tokens)
    List,
    /// Revoke a token by id
    Revoke { id: String },
}

fn parse_duration(s: &str) -> Result<u64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .with_context(|| format!("{s:?} is not a duration like 90m or 24h"))?;
    Ok(n * match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("{s:?} is not a duration like 90m or 24h"),
    })
}

pub async fn token(client: &Client, command: &TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create { description, ttl } => {
            let ttl = ttl.as_deref().map(parse_duration).transpose()?;
            let body = serde_json::to_vec(&json!({"description": description, "ttlSeconds": ttl}))?;
            let v = client
                .json(
                    Method::POST,
                    "/api/v1/tokens",
                    Some((body, "application/json")),
                    &[],
                )
                .await?;
            eprintln!("token {} created; it is shown only now:", s(&v, "id"));
            println!("{}", s(&v, "token"));
        }
        TokenCommand::List => {
            let v = client
                .json(Method::GET, "/api/v1/tokens", None, &[])
                .await?;
            let now = now();
            let rows: Vec<Vec<String>> = items(&v)
                .iter()
                .map(|t| {
                    vec![
                        s(t, "id"),
                        s(t, "description"),
                        age(t["created"].as_u64().unwrap_or(now), now),
                        t["expires"]
                            .as_u64()
                            .map(|e| {
                                if e > now {
                                    format!("in {}", age(now, e))
                                } else {
                                    "expired".into()
                                }
                            })
                            .unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            print!("{}", table(&["ID", "DESCRIPTION", "AGE", "EXPIRES"], &rows));
        }
        TokenCommand::Revoke { id } => {
            client
                .json(Method::DELETE, &format!("/api/v1/tokens/{id}"), None, &[])
                .await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(100, 145), "45s");
        assert_eq!(age(0, 720), "12m");
        assert_eq!(age(0, 5 * 3600), "5h");
        assert_eq!(age(0, 3 * 86400), "3d");
        assert_eq!(age(200, 100), "0s");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["NAME", "READY"],
            &[
                vec!["web-abc-0".into(), "1/1".into()],
                vec!["x".into(), "0/1".into()],
            ],
        );
        assert_eq!(t, "NAME        READY\nweb-abc-0   1/1\nx           0/1\n");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m").ok(), Some(5400));
        assert_eq!(parse_duration("24h").ok(), Some(86400));
        assert!(parse_duration("soon").is_err());
    }
}
