//! `podswarmctl describe`: one object in detail, read from the Kubernetes API's endpoints as
//! `kubectl describe` reads them: the object, what goes with it (a Deployment's pods, a
//! Service's `Endpoints`, a node's pods) and the events about it, with what a user looks at next
//! (a pod's unit and where its logs are). What podswarm adds to Kubernetes' objects is shown
//! from where it puts it: a pod's unit and warnings (`podswarm.io/` annotations), a container's
//! podman name (its `containerID`).

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerState, Endpoints, Event, Namespace, Node, Pod, Secret, Service,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use podswarm_api::List;
use podswarm_api::kube::objects::{
    DRAINING_ANNOTATION, REVISION_ANNOTATION, STOPPING_ANNOTATION, UNIT_ANNOTATION,
    WARNINGS_ANNOTATION,
};
use podswarm_api::kube::tables::{
    event_last_seen, event_source, human_duration, ingress_class, label_pairs, node_internal_ip,
    node_status, pod_ready, pod_restarts, pod_status, seconds, service_ports, service_selector,
    service_type,
};
use podswarm_manifest::kinds::Kind;

use super::{Scope, kind_among, kinds_help};
use crate::client::Client;
use crate::kube::{list_path, object_path, path_of};
use crate::output::now;

/// The kinds describe shows: every kind.
const KINDS: [Kind; 8] = Kind::ALL;

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
    let mut out = Fields::default();
    let meta = match kind {
        Kind::Pod => pod(client, ns, name, &mut out).await?,
        Kind::Deployment => deployment(client, ns, name, &mut out).await?,
        Kind::Service => service(client, ns, name, &mut out).await?,
        Kind::Node => node(client, name, &mut out).await?,
        Kind::Ingress => ingress(client, ns, name, &mut out).await?,
        Kind::ConfigMap => config_map(client, ns, name, &mut out).await?,
        Kind::Secret => secret(client, ns, name, &mut out).await?,
        Kind::Namespace => namespace(client, name, &mut out).await?,
    };
    events(client, kind, &meta, &mut out).await;
    print!("{}", out.0);
    Ok(())
}

/// `Label:` and value lines, aligned as kubectl aligns them.
#[derive(Default)]
struct Fields(String);

impl Fields {
    /// A field at `indent`, left out when it has no value. Top-level values line up at column
    /// 15, a container's (indented) ones after its longest label, `Restart Count:`.
    fn field(&mut self, indent: usize, label: &str, value: impl AsRef<str>) {
        let value = value.as_ref();
        if !value.is_empty() {
            let label = format!("{label}:");
            let width = if indent == 0 { 15 } else { 16 }.max(label.len() + 1);
            self.0
                .push_str(&format!("{:indent$}{label:<width$}{value}\n", ""));
        }
    }

    /// Which object this is: its name, namespace (cluster-scoped kinds have none) and labels.
    fn identity(&mut self, meta: &ObjectMeta) {
        self.field(0, "Name", meta.name.as_deref().unwrap_or_default());
        self.field(
            0,
            "Namespace",
            meta.namespace.as_deref().unwrap_or_default(),
        );
        self.field(0, "Labels", labels(meta));
    }

    fn line(&mut self, text: impl AsRef<str>) {
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> &'a str {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map_or("", String::as_str)
}

fn labels(meta: &ObjectMeta) -> String {
    label_pairs(meta.labels.iter().flatten())
}

async fn pod(client: &Client, ns: &str, name: &str, out: &mut Fields) -> Result<ObjectMeta> {
    let p: Pod = client.get(&object_path::<Pod>(ns, name)).await?;
    let meta = &p.metadata;
    let status = p.status.clone().unwrap_or_default();
    let node = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    out.field(0, "Name", name);
    out.field(0, "Namespace", ns);
    out.field(
        0,
        "Node",
        match status.host_ip.as_deref() {
            Some(ip) if !node.is_empty() => format!("{node}/{ip}"),
            _ => node,
        },
    );
    out.field(0, "Labels", labels(meta));
    out.field(0, "IP", status.pod_ip.as_deref().unwrap_or_default());
    out.field(0, "Status", pod_status(&p));
    out.field(0, "Ready", pod_ready(&p));
    out.field(0, "Restarts", pod_restarts(&p).to_string());
    out.field(0, "Message", status.message.as_deref().unwrap_or_default());
    if let Some(owner) = meta.owner_references.iter().flatten().next() {
        out.field(0, "Controlled By", format!("{}/{}", owner.kind, owner.name));
    }
    let unit = annotation(meta, UNIT_ANNOTATION);
    out.field(0, "Unit", unit);
    out.line("Containers:");
    let statuses = status.container_statuses.unwrap_or_default();
    for c in p.spec.iter().flat_map(|s| &s.containers) {
        out.line(format!("  {}:", c.name));
        let st = statuses.iter().find(|s| s.name == c.name);
        out.field(
            4,
            "Container ID",
            st.and_then(|s| s.container_id.as_deref())
                .unwrap_or_default(),
        );
        out.field(4, "Image", c.image.as_deref().unwrap_or_default());
        if let Some(st) = st {
            state(st.state.as_ref(), out);
            out.field(4, "Ready", st.ready.to_string());
            out.field(4, "Restart Count", st.restart_count.to_string());
        }
    }
    let warnings = annotation(meta, WARNINGS_ANNOTATION);
    if !warnings.is_empty() {
        out.line("Warnings:");
        for w in warnings.lines() {
            out.line(format!("  {w}"));
        }
    }
    if !unit.is_empty() {
        out.field(
            0,
            "Logs",
            format!("podswarmctl logs -n {ns} {name}   (or journalctl -u {unit})"),
        );
    }
    Ok(p.metadata)
}

/// A container's state as kubectl describes it: `Running`, or `Waiting`/`Terminated` with the
/// reason and message.
fn state(state: Option<&ContainerState>, out: &mut Fields) {
    let Some(state) = state else { return };
    if state.running.is_some() {
        out.field(4, "State", "Running");
    } else if let Some(w) = &state.waiting {
        out.field(4, "State", "Waiting");
        out.field(6, "Reason", w.reason.as_deref().unwrap_or_default());
        out.field(6, "Message", w.message.as_deref().unwrap_or_default());
    } else if let Some(t) = &state.terminated {
        out.field(4, "State", "Terminated");
        out.field(6, "Reason", t.reason.as_deref().unwrap_or_default());
        out.field(6, "Message", t.message.as_deref().unwrap_or_default());
        out.field(6, "Exit Code", t.exit_code.to_string());
    }
}

/// A pod's line under its Deployment or node: name, status, IP.
fn pod_line(p: &Pod) -> String {
    format!(
        "  {}  {}  {}",
        p.metadata.name.as_deref().unwrap_or_default(),
        pod_status(p),
        p.status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .unwrap_or("<none>")
    )
}

async fn deployment(client: &Client, ns: &str, name: &str, out: &mut Fields) -> Result<ObjectMeta> {
    let d: Deployment = client.get(&object_path::<Deployment>(ns, name)).await?;
    let spec = d.spec.clone();
    let status = d.status.clone().unwrap_or_default();
    out.identity(&d.metadata);
    out.field(
        0,
        "Selector",
        label_pairs(spec.selector.match_labels.iter().flatten()),
    );
    out.field(
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} ready | {} available",
            spec.replicas.unwrap_or(1),
            status.updated_replicas.unwrap_or(0),
            status.ready_replicas.unwrap_or(0),
            status.available_replicas.unwrap_or(0)
        ),
    );
    out.field(
        0,
        "StrategyType",
        spec.strategy
            .and_then(|s| s.type_)
            .unwrap_or_else(|| "RollingUpdate".to_owned()),
    );
    out.field(0, "Revision", annotation(&d.metadata, REVISION_ANNOTATION));
    if spec.paused == Some(true) {
        out.field(0, "Paused", "true");
    }
    for c in status.conditions.iter().flatten() {
        out.field(
            0,
            c.type_.as_deref().unwrap_or_default(),
            format!(
                "{} {}",
                c.status.as_deref().unwrap_or_default(),
                c.reason
                    .as_deref()
                    .map(|r| format!("({r})"))
                    .unwrap_or_default()
            )
            .trim_end(),
        );
    }
    let pods: List<Pod> = client.get(&list_path::<Pod>(Some(ns))).await?;
    out.line("Pods:");
    for p in pods.items.iter().filter(|p| {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Deployment" && o.name == name)
    }) {
        out.line(pod_line(p));
    }
    Ok(d.metadata)
}

async fn service(client: &Client, ns: &str, name: &str, out: &mut Fields) -> Result<ObjectMeta> {
    let s: Service = client.get(&object_path::<Service>(ns, name)).await?;
    let e: Endpoints = client.get(&object_path::<Endpoints>(ns, name)).await?;
    out.identity(&s.metadata);
    out.field(0, "Selector", service_selector(&s));
    out.field(0, "Type", service_type(&s));
    out.field(
        0,
        "IP",
        s.spec
            .as_ref()
            .and_then(|s| s.cluster_ip.as_deref())
            .unwrap_or_default(),
    );
    out.field(0, "Port(s)", service_ports(&s));
    out.line("Endpoints:");
    for subset in e.subsets.iter().flatten() {
        for port in subset.ports.iter().flatten() {
            for (addresses, ready) in [
                (&subset.addresses, true),
                (&subset.not_ready_addresses, false),
            ] {
                for a in addresses.iter().flatten() {
                    out.line(format!(
                        "  {}:{}  {}  ready={ready}",
                        a.ip,
                        port.port,
                        a.target_ref
                            .as_ref()
                            .and_then(|r| r.name.as_deref())
                            .unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(s.metadata)
}

async fn node(client: &Client, name: &str, out: &mut Fields) -> Result<ObjectMeta> {
    let n: Node = client.get(&path_of(Kind::Node, "", name)).await?;
    let status = n.status.clone().unwrap_or_default();
    out.identity(&n.metadata);
    out.field(0, "Status", node_status(&n));
    out.field(0, "InternalIP", node_internal_ip(&n).unwrap_or_default());
    if let Some(info) = &status.node_info {
        out.field(0, "Version", &info.kubelet_version);
        out.field(0, "OS Image", &info.os_image);
        out.field(0, "Runtime", &info.container_runtime_version);
    }
    out.field(0, "Draining", annotation(&n.metadata, DRAINING_ANNOTATION));
    out.field(0, "Stopping", annotation(&n.metadata, STOPPING_ANNOTATION));
    for c in status.conditions.iter().flatten() {
        let since = seconds(c.last_transition_time.as_ref());
        out.field(
            0,
            &c.type_,
            format!(
                "{}{}{}",
                c.status,
                // Without a transition time (a node never heard from), no "for".
                if since == 0 {
                    String::new()
                } else {
                    format!(" for {}", human_duration(now().saturating_sub(since)))
                },
                c.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
        );
    }
    let pods: List<Pod> = client.get(&list_path::<Pod>(None)).await?;
    out.line("Pods:");
    for p in pods.items.iter().filter(|p| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| n == name)
    }) {
        out.line(format!(
            "  {}/{}",
            p.metadata.namespace.as_deref().unwrap_or_default(),
            pod_line(p).trim_start()
        ));
    }
    Ok(n.metadata)
}

async fn ingress(client: &Client, ns: &str, name: &str, out: &mut Fields) -> Result<ObjectMeta> {
    let i: Ingress = client.get(&object_path::<Ingress>(ns, name)).await?;
    out.identity(&i.metadata);
    out.field(0, "Class", ingress_class(&i));
    let spec = i.spec.clone().unwrap_or_default();
    for tls in spec.tls.iter().flatten() {
        out.field(
            0,
            "TLS",
            format!(
                "{} terminates {}",
                tls.secret_name.as_deref().unwrap_or("<default>"),
                match tls.hosts.as_deref() {
                    Some(hosts) if !hosts.is_empty() => hosts.join(","),
                    _ => "every host".to_owned(),
                }
            ),
        );
    }
    let backend = |b: &k8s_openapi::api::networking::v1::IngressBackend| match &b.service {
        Some(s) => {
            let port = s.port.as_ref().map_or(String::new(), |p| {
                p.number
                    .map(|n| n.to_string())
                    .or_else(|| p.name.clone())
                    .unwrap_or_default()
            });
            format!("{}:{port}", s.name)
        }
        None => "<none>".to_owned(),
    };
    if let Some(b) = &spec.default_backend {
        out.field(0, "Default backend", backend(b));
    }
    out.line("Rules:");
    for rule in spec.rules.iter().flatten() {
        out.line(format!("  {}", rule.host.as_deref().unwrap_or("*")));
        for path in rule.http.iter().flat_map(|h| &h.paths) {
            out.line(format!(
                "    {} ({})  {}",
                path.path.as_deref().unwrap_or("/"),
                path.path_type,
                backend(&path.backend)
            ));
        }
    }
    Ok(i.metadata)
}

/// A ConfigMap's data as kubectl describe shows it: each key and its value.
async fn config_map(client: &Client, ns: &str, name: &str, out: &mut Fields) -> Result<ObjectMeta> {
    let c: ConfigMap = client.get(&object_path::<ConfigMap>(ns, name)).await?;
    out.identity(&c.metadata);
    out.line("Data:");
    for (key, value) in c.data.iter().flatten() {
        out.line(format!(
            "  {key}:\n  ----\n  {}",
            value.trim_end().replace('\n', "\n  ")
        ));
    }
    for (key, value) in c.binary_data.iter().flatten() {
        out.line(format!("  {key}:  {} bytes (binary)", value.0.len()));
    }
    Ok(c.metadata)
}

/// A Secret as kubectl describe shows it: its keys and their sizes, never their values.
async fn secret(client: &Client, ns: &str, name: &str, out: &mut Fields) -> Result<ObjectMeta> {
    let s: Secret = client.get(&object_path::<Secret>(ns, name)).await?;
    out.identity(&s.metadata);
    out.field(0, "Type", s.type_.as_deref().unwrap_or("Opaque"));
    out.line("Data:");
    for (key, value) in s.data.iter().flatten() {
        out.line(format!("  {key}:  {} bytes", value.0.len()));
    }
    for (key, value) in s.string_data.iter().flatten() {
        out.line(format!("  {key}:  {} bytes", value.len()));
    }
    Ok(s.metadata)
}

async fn namespace(client: &Client, name: &str, out: &mut Fields) -> Result<ObjectMeta> {
    let n: Namespace = client.get(&path_of(Kind::Namespace, "", name)).await?;
    out.identity(&n.metadata);
    out.field(
        0,
        "Status",
        n.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Active"),
    );
    Ok(n.metadata)
}

/// The events about the object, as kubectl describe lists them (from the node asked: each node
/// keeps the events it saw).
async fn events(client: &Client, kind: Kind, meta: &ObjectMeta, out: &mut Fields) {
    let ns = meta.namespace.as_deref();
    let mut selector = format!(
        "involvedObject.kind={},involvedObject.name={}",
        kind.name(),
        meta.name.as_deref().unwrap_or_default()
    );
    if let Some(ns) = ns {
        selector.push_str(&format!(",involvedObject.namespace={ns}"));
    }
    if let Some(uid) = &meta.uid {
        selector.push_str(&format!(",involvedObject.uid={uid}"));
    }
    let path = format!("{}?fieldSelector={selector}", list_path::<Event>(ns));
    // The object is what was asked for: without its events (a node that cannot list them), it
    // is still shown, as kubectl shows it.
    let mut list: List<Event> = match client.get(&path).await {
        Ok(list) => list,
        Err(e) => {
            eprintln!("warning: the events cannot be read: {e:#}");
            out.line("Events:        <unknown>");
            return;
        }
    };
    if list.items.is_empty() {
        out.line("Events:        <none>");
        return;
    }
    // By when each last happened, as kubectl orders them.
    list.items
        .sort_by_key(|e| seconds(e.last_timestamp.as_ref().or(e.first_timestamp.as_ref())));
    let now = now();
    let rows: Vec<Vec<String>> = list
        .items
        .iter()
        .map(|e| {
            vec![
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                event_last_seen(e, now),
                event_source(e),
                e.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.line("Events:");
    let header = ["Type", "Reason", "Age", "From", "Message"];
    let rule: Vec<String> = header.iter().map(|h| "-".repeat(h.len())).collect();
    let mut all = vec![rule];
    all.extend(rows);
    for line in crate::output::table(&header, &all).lines() {
        out.line(format!("  {line}"));
    }
}
