//! The columns `kubectl get` prints for each kind, filled the way kubectl's own printers
//! (`pkg/printers/internalversion`) fill them for a Kubernetes cluster. Rows come from the
//! Kubernetes objects the API answers (a pod's status says all a row needs, its deletion
//! timestamp that it is on its way out), so podswarmctl, reading the same objects, fills its
//! cells with the same functions (`pod_status`, `node_status` …); each row carries the object's
//! metadata for `-A`, `--show-labels` and `-L`.

use k8s_openapi::api::core::v1::{Endpoints, Event, Node as KNode, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};

use super::table::{Column, Row, Table};
use crate::DeploymentStatus;

/// Kubernetes' `duration.HumanDuration`, as the AGE column shows it: `45s`, `5m30s`, `12m`,
/// `5h20m`, `3d4h`, `120d`, `2y30d`.
pub fn human_duration(seconds: u64) -> String {
    let (m, h, d) = (60, 3600, 86_400);
    let y = 365 * d;
    match seconds {
        s if s < 2 * m => format!("{s}s"),
        s if s < 10 * m => {
            let (mins, secs) = (s / m, s % m);
            if secs == 0 {
                format!("{mins}m")
            } else {
                format!("{mins}m{secs}s")
            }
        }
        s if s < 3 * h => format!("{}m", s / m),
        s if s < 8 * h => {
            let (hours, mins) = (s / h, (s % h) / m);
            if mins == 0 {
                format!("{hours}h")
            } else {
                format!("{hours}h{mins}m")
            }
        }
        s if s < 48 * h => format!("{}h", s / h),
        s if s < 8 * d => {
            let (days, hours) = (s / d, (s % d) / h);
            if hours == 0 {
                format!("{days}d")
            } else {
                format!("{days}d{hours}h")
            }
        }
        s if s < 2 * y => format!("{}d", s / d),
        s if s < 8 * y => {
            let (years, days) = (s / y, (s % y) / d);
            if days == 0 {
                format!("{years}y")
            } else {
                format!("{years}y{days}d")
            }
        }
        s => format!("{}y", s / y),
    }
}

fn age(created: u64, now: u64) -> Value {
    if created == 0 {
        return json!("<unknown>");
    }
    json!(human_duration(now.saturating_sub(created)))
}

/// What a row carries besides its cells: the object's metadata, as Kubernetes sends it by
/// default (`includeObject=Metadata`).
fn partial(metadata: &ObjectMeta) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() { "<none>".to_owned() } else { s }
}

/// A Service's PORT(S) cell: `80/TCP,53/UDP` (empty without ports).
pub fn service_ports(svc: &Service) -> String {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| format!("{}/{}", p.port, p.protocol.as_deref().unwrap_or("TCP")))
        .collect::<Vec<_>>()
        .join(",")
}

/// A Service's TYPE cell.
pub fn service_type(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

/// Labels or a selector as kubectl writes them: `k=v,k2=v2` (empty for none).
pub fn label_pairs<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A Service's SELECTOR cell: `k=v,k2=v2` (empty without a selector).
pub fn service_selector(svc: &Service) -> String {
    label_pairs(
        svc.spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .into_iter()
            .flatten(),
    )
}

/// An Ingress's CLASS cell.
pub fn ingress_class(ing: &Ingress) -> &str {
    ing.spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .unwrap_or("<none>")
}

/// An Ingress's HOSTS cell: its rules' hosts, `*` for a rule without one or no rules at all.
pub fn ingress_hosts(ing: &Ingress) -> String {
    let hosts: Vec<&str> = ing
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_ref())
        .into_iter()
        .flatten()
        .map(|r| r.host.as_deref().unwrap_or("*"))
        .collect();
    if hosts.is_empty() {
        "*".to_owned()
    } else {
        hosts.join(",")
    }
}

/// An Ingress's PORTS cell: 443 too where it has TLS.
pub fn ingress_ports(ing: &Ingress) -> &'static str {
    let tls = ing
        .spec
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .is_some_and(|t| !t.is_empty());
    if tls { "80, 443" } else { "80" }
}

/// Seconds since the epoch of a Kubernetes time; 0 (unknown) without one.
pub fn seconds(t: Option<&Time>) -> u64 {
    t.and_then(|t| u64::try_from(t.0.as_second()).ok())
        .unwrap_or(0)
}

/// kubectl's READY of a pod: containers ready and running, of those in its spec (at least one:
/// a pod whose containers podswarm has not made yet still has one).
pub fn pod_ready(pod: &Pod) -> String {
    let ready = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter(|c| c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .count();
    let total = pod.spec.as_ref().map_or(0, |s| s.containers.len()).max(1);
    format!("{ready}/{total}")
}

/// kubectl's STATUS of a pod (its printer's rules): Terminating once deleted; else the reason
/// a container is waiting or terminated with, else the pod's reason, else its phase; a pod whose
/// containers completed while one still runs is Running (or NotReady).
pub fn pod_status(pod: &Pod) -> String {
    if pod.metadata.deletion_timestamp.is_some() {
        return "Terminating".to_owned();
    }
    let status = pod.status.as_ref();
    let mut reason = status
        .and_then(|s| s.reason.clone().or_else(|| s.phase.clone()))
        .unwrap_or_else(|| "Pending".to_owned());
    let mut running = false;
    for c in status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .rev()
    {
        let state = c.state.as_ref();
        if let Some(r) = state.and_then(|s| s.waiting.as_ref()?.reason.clone()) {
            reason = r;
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            reason = match (&t.reason, t.signal) {
                (Some(r), _) => r.clone(),
                (None, Some(signal)) if signal != 0 => format!("Signal:{signal}"),
                (None, _) => format!("ExitCode:{}", t.exit_code),
            };
        } else if c.ready && state.is_some_and(|s| s.running.is_some()) {
            running = true;
        }
    }
    if reason == "Completed" && running {
        let ready = status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Ready" && c.status == "True");
        reason = if ready { "Running" } else { "NotReady" }.to_owned();
    }
    reason
}

/// kubectl's RESTARTS of a pod: its containers' restarts, summed.
pub fn pod_restarts(pod: &Pod) -> i64 {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| i64::from(c.restart_count))
        .sum()
}

/// `kubectl get pods`: NAME READY STATUS RESTARTS AGE, and IP NODE with `-o wide`.
pub fn pods<'a>(items: impl IntoIterator<Item = &'a Pod>, now: u64) -> Table {
    let columns = vec![
        Column::new("Name", "string", "Name must be unique within a namespace."),
        Column::new(
            "Ready",
            "string",
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        Column::new(
            "Status",
            "string",
            "The aggregate status of the containers in this pod.",
        ),
        Column::new(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted.",
        ),
        Column::new("Age", "string", "Time since the pod was created."),
        Column::new("IP", "string", "The pod's address.").wide(),
        Column::new("Node", "string", "The node the pod is placed on.").wide(),
        Column::new("Nominated Node", "string", "Not used by podswarm.").wide(),
        Column::new("Readiness Gates", "string", "Not used by podswarm.").wide(),
    ];
    let rows = items
        .into_iter()
        .map(|p| {
            let status = p.status.as_ref();
            Row {
                cells: vec![
                    json!(p.metadata.name.as_deref().unwrap_or_default()),
                    json!(pod_ready(p)),
                    json!(pod_status(p)),
                    json!(pod_restarts(p).to_string()),
                    age(seconds(p.metadata.creation_timestamp.as_ref()), now),
                    json!(status.and_then(|s| s.pod_ip.as_deref()).unwrap_or("<none>")),
                    json!(
                        p.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_deref())
                            .unwrap_or("<none>")
                    ),
                    json!("<none>"),
                    json!("<none>"),
                ],
                object: Some(partial(&p.metadata)),
            }
        })
        .collect();
    Table::new(columns, rows)
}

/// `kubectl get deployments`: NAME READY UP-TO-DATE AVAILABLE AGE, and CONTAINERS IMAGES
/// SELECTOR with `-o wide`.
pub fn deployments<'a>(
    items: impl IntoIterator<
        Item = (
            &'a DeploymentStatus,
            &'a k8s_openapi::api::apps::v1::Deployment,
        ),
    >,
    now: u64,
) -> Table {
    let columns = vec![
        Column::new("Name", "string", "Name must be unique within a namespace."),
        Column::new("Ready", "string", "Number of the pod with ready state"),
        Column::new(
            "Up-to-date",
            "string",
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
        ),
        Column::new(
            "Available",
            "string",
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        Column::new("Age", "string", "Time since the Deployment was created."),
        Column::new(
            "Containers",
            "string",
            "Names of each container in the template.",
        )
        .wide(),
        Column::new(
            "Images",
            "string",
            "Images referenced by each container in the template.",
        )
        .wide(),
        Column::new("Selector", "string", "Label selector for pods.").wide(),
    ];
    let rows = items
        .into_iter()
        .map(|(s, d)| {
            let template = d.spec.template.spec.as_ref();
            let containers = template
                .map(|t| t.containers.as_slice())
                .unwrap_or_default();
            let selector = d
                .spec
                .selector
                .match_labels
                .as_ref()
                .map(label_pairs)
                .unwrap_or_default();
            Row {
                cells: vec![
                    json!(s.name),
                    json!(format!("{}/{}", s.ready, s.replicas)),
                    json!(s.up_to_date),
                    json!(s.available),
                    age(s.created, now),
                    json!(
                        containers
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    json!(
                        containers
                            .iter()
                            .map(|c| c.image.as_deref().unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    json!(none_if_empty(selector)),
                ],
                object: Some(partial(&d.metadata)),
            }
        })
        .collect();
    Table::new(columns, rows)
}

/// `kubectl get services`: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE, and SELECTOR with
/// `-o wide`. podswarm gives Services no virtual IP: clients reach the endpoints through DNS,
/// as for a headless Service, hence `None`.
pub fn services<'a>(items: impl IntoIterator<Item = (&'a Service, u64)>, now: u64) -> Table {
    let columns = vec![
        Column::new("Name", "string", "Name must be unique within a namespace."),
        Column::new("Type", "string", "How the Service is exposed."),
        Column::new(
            "Cluster-IP",
            "string",
            "podswarm answers a Service's name with its endpoints: no virtual IP.",
        ),
        Column::new("External-IP", "string", "Not used by podswarm."),
        Column::new("Port(s)", "string", "The ports the Service exposes."),
        Column::new("Age", "string", "Time since the Service was created."),
        Column::new(
            "Selector",
            "string",
            "Route service traffic to pods with label keys and values matching this selector.",
        )
        .wide(),
    ];
    let rows = items
        .into_iter()
        .map(|(svc, created)| Row {
            cells: vec![
                json!(svc.metadata.name.as_deref().unwrap_or_default()),
                json!(service_type(svc)),
                json!("None"),
                json!("<none>"),
                json!(none_if_empty(service_ports(svc))),
                age(created, now),
                json!(none_if_empty(service_selector(svc))),
            ],
            object: Some(partial(&svc.metadata)),
        })
        .collect();
    Table::new(columns, rows)
}

/// `kubectl get ingresses`: NAME CLASS HOSTS ADDRESS PORTS AGE.
pub fn ingresses<'a>(items: impl IntoIterator<Item = (&'a Ingress, u64)>, now: u64) -> Table {
    let columns = vec![
        Column::new("Name", "string", "Name must be unique within a namespace."),
        Column::new("Class", "string", "The name of the IngressClass resource."),
        Column::new(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against.",
        ),
        Column::new(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        Column::new("Ports", "string", "Ports of TLS configurations that open"),
        Column::new("Age", "string", "Time since the Ingress was created."),
    ];
    let rows = items
        .into_iter()
        .map(|(ing, created)| Row {
            cells: vec![
                json!(ing.metadata.name.as_deref().unwrap_or_default()),
                json!(ingress_class(ing)),
                json!(ingress_hosts(ing)),
                json!(""),
                json!(ingress_ports(ing)),
                age(created, now),
            ],
            object: Some(partial(&ing.metadata)),
        })
        .collect();
    Table::new(columns, rows)
}

/// `kubectl get events`: LAST SEEN TYPE REASON OBJECT MESSAGE, and SUBOBJECT SOURCE FIRST SEEN
/// COUNT NAME with `-o wide`, filled as Kubernetes' event printer fills them (a repeated event's
/// LAST SEEN reads `5m (x3 over 20m)`).
pub fn events<'a>(items: impl IntoIterator<Item = &'a Event>, now: u64) -> Table {
    let columns = vec![
        Column::new("Last Seen", "string", "Time since the event was last seen."),
        Column::new("Type", "string", "Normal or Warning."),
        Column::new("Reason", "string", "Why the event happened, in one word."),
        Column::new("Object", "string", "The object the event is about."),
        Column::new("Subobject", "string", "The part of the object.").wide(),
        Column::new(
            "Source",
            "string",
            "The component that reported it, and its node.",
        )
        .wide(),
        Column::new("Message", "string", "What happened."),
        Column::new(
            "First Seen",
            "string",
            "Time since the event was first seen.",
        )
        .wide(),
        Column::new("Count", "string", "How often it happened.").wide(),
        Column::new("Name", "string", "The event's name.").wide(),
    ];
    let rows = items
        .into_iter()
        .map(|e| {
            let first = seconds(e.first_timestamp.as_ref());
            let count = e.count.unwrap_or(1);
            let o = &e.involved_object;
            Row {
                cells: vec![
                    json!(event_last_seen(e, now)),
                    json!(e.type_.as_deref().unwrap_or("Normal")),
                    json!(e.reason.as_deref().unwrap_or_default()),
                    json!(format!(
                        "{}/{}",
                        o.kind.as_deref().unwrap_or_default().to_lowercase(),
                        o.name.as_deref().unwrap_or_default()
                    )),
                    json!(o.field_path.as_deref().unwrap_or_default()),
                    json!(event_source(e)),
                    json!(e.message.as_deref().unwrap_or_default()),
                    json!(human_duration(now.saturating_sub(first))),
                    json!(count.to_string()),
                    json!(e.metadata.name.as_deref().unwrap_or_default()),
                ],
                object: Some(partial(&e.metadata)),
            }
        })
        .collect();
    Table::new(columns, rows)
}

/// An event's LAST SEEN, as Kubernetes' event printer and `kubectl describe` write it: how long
/// ago, and for a repeated event how often over how long (`5m (x3 over 20m)`).
pub fn event_last_seen(e: &Event, now: u64) -> String {
    let (first, last) = (
        seconds(e.first_timestamp.as_ref()),
        seconds(e.last_timestamp.as_ref()),
    );
    match e.count.unwrap_or(1) {
        count if count > 1 => format!(
            "{} (x{count} over {})",
            human_duration(now.saturating_sub(last)),
            human_duration(now.saturating_sub(first))
        ),
        _ => human_duration(now.saturating_sub(last)),
    }
}

/// An event's SOURCE: the component that reported it, and its node.
pub fn event_source(e: &Event) -> String {
    let source = e.source.as_ref();
    let component = source.and_then(|s| s.component.as_deref()).unwrap_or("");
    match source.and_then(|s| s.host.as_deref()).unwrap_or("") {
        "" => component.to_owned(),
        host => format!("{component}, {host}"),
    }
}

/// kubectl's STATUS of a node: `Ready` or `NotReady` (its Ready condition), with
/// `,SchedulingDisabled` while cordoned.
pub fn node_status(node: &KNode) -> String {
    let ready = node
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let mut s = if ready { "Ready" } else { "NotReady" }.to_owned();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        s.push_str(",SchedulingDisabled");
    }
    s
}

/// A node's `InternalIP` address, where it has published one.
pub fn node_internal_ip(node: &KNode) -> Option<&str> {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.as_str())
}

/// `kubectl get nodes`: NAME STATUS ROLES AGE VERSION, and INTERNAL-IP … CONTAINER-RUNTIME with
/// `-o wide`. Every podswarm node is the same kind of member, hence no roles.
pub fn nodes<'a>(items: impl IntoIterator<Item = &'a KNode>) -> Table {
    let columns = vec![
        Column::new("Name", "string", "The node's name."),
        Column::new(
            "Status",
            "string",
            "Ready while a live member of the cluster; SchedulingDisabled while cordoned.",
        ),
        Column::new(
            "Roles",
            "string",
            "Every podswarm node is the same kind of member.",
        ),
        Column::new("Age", "string", "Not recorded by podswarm."),
        Column::new("Version", "string", "podswarm's version on the node."),
        Column::new(
            "Internal-IP",
            "string",
            "The address other nodes reach it at.",
        )
        .wide(),
        Column::new("External-IP", "string", "Not used by podswarm.").wide(),
        Column::new("OS-Image", "string", "Not recorded by podswarm.").wide(),
        Column::new("Kernel-Version", "string", "Not recorded by podswarm.").wide(),
        Column::new("Container-Runtime", "string", "The container runtime.").wide(),
    ];
    let rows = items
        .into_iter()
        .map(|n| {
            let info = n.status.as_ref().and_then(|s| s.node_info.as_ref());
            Row {
                cells: vec![
                    json!(n.metadata.name.as_deref().unwrap_or_default()),
                    json!(node_status(n)),
                    json!("<none>"),
                    json!("<unknown>"),
                    json!(info.map(|i| i.kubelet_version.as_str()).unwrap_or_default()),
                    json!(node_internal_ip(n).unwrap_or("<none>")),
                    json!("<none>"),
                    json!("<unknown>"),
                    json!("<unknown>"),
                    json!(
                        info.map(|i| i.container_runtime_version.as_str())
                            .unwrap_or_default()
                    ),
                ],
                object: Some(partial(&n.metadata)),
            }
        })
        .collect();
    Table::new(columns, rows)
}

/// `kubectl get endpoints`: NAME ENDPOINTS AGE, the ready `ip:port`s (kubectl shows at most
/// three, then `+ N more...`).
pub fn endpoints<'a>(items: impl IntoIterator<Item = &'a Endpoints>, now: u64) -> Table {
    let columns = vec![
        Column::new("Name", "string", "Name must be unique within a namespace."),
        Column::new(
            "Endpoints",
            "string",
            "The ready endpoints of the Service, as address:port.",
        ),
        Column::new("Age", "string", "Time since the Service was created."),
    ];
    let rows = items
        .into_iter()
        .map(|e| {
            let ready: Vec<String> = e
                .subsets
                .iter()
                .flatten()
                .flat_map(|s| {
                    let ports = s.ports.as_deref().unwrap_or_default();
                    s.addresses.iter().flatten().flat_map(move |a| {
                        ports.iter().map(move |p| format!("{}:{}", a.ip, p.port))
                    })
                })
                .collect();
            let cell = match ready.len() {
                0 => "<none>".to_owned(),
                n if n <= 3 => ready.join(","),
                n => format!("{} + {} more...", ready[..3].join(","), n - 3),
            };
            Row {
                cells: vec![
                    json!(e.metadata.name.as_deref().unwrap_or_default()),
                    json!(cell),
                    age(seconds(e.metadata.creation_timestamp.as_ref()), now),
                ],
                object: Some(partial(&e.metadata)),
            }
        })
        .collect();
    Table::new(columns, rows)
}

/// The kinds with nothing but a name and an age worth a column: namespaces (with their
/// status), ConfigMaps and Secrets (with their number of keys).
pub fn simple<'a>(
    items: impl IntoIterator<Item = (&'a ObjectMeta, Vec<Value>, u64)>,
    extra: &[(&str, &str)],
    now: u64,
) -> Table {
    let mut columns = vec![Column::new(
        "Name",
        "string",
        "Name must be unique within a namespace.",
    )];
    columns.extend(
        extra
            .iter()
            .map(|(name, description)| Column::new(name, "string", description)),
    );
    columns.push(Column::new(
        "Age",
        "string",
        "Time since the object was created.",
    ));
    let rows = items
        .into_iter()
        .map(|(m, cells, created)| {
            let mut all = vec![json!(m.name.as_deref().unwrap_or_default())];
            all.extend(cells);
            all.push(age(created, now));
            Row {
                cells: all,
                object: Some(partial(m)),
            }
        })
        .collect();
    Table::new(columns, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        for (s, want) in [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (330, "5m30s"),
            (720, "12m"),
            (3 * 3600 + 120, "3h2m"),
            (5 * 3600, "5h"),
            (30 * 3600, "30h"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
            (120 * 86_400, "120d"),
            (800 * 86_400, "2y70d"),
            (9 * 365 * 86_400, "9y"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn every_row_has_a_cell_per_column() {
        let view: crate::PodView = serde_json::from_value(json!({
            "namespace": "d", "name": "p", "node": "n", "ip": null, "phase": "Pending",
            "ready": false, "restarts": 0, "reason": "ImagePullBackOff", "owner": null,
            "labels": {}, "unit": "", "units": [], "containers": [], "created": 0, "warnings": []
        }))
        .unwrap();
        let pod = super::super::objects::pod(&view, None);
        let t = pods([&pod], 100);
        assert_eq!(t.rows[0].cells.len(), t.column_definitions.len());
        assert_eq!(t.rows[0].cells[1], "0/1");
        assert_eq!(t.rows[0].cells[2], "ImagePullBackOff");
        let view: crate::Node = serde_json::from_value(json!({
            "name": "n", "address": "", "ready": true, "podSubnet": null, "labels": {}, "pods": 0
        }))
        .unwrap();
        let node = super::super::objects::node(&view, "0.1.0");
        let t = nodes([&node]);
        assert_eq!(t.rows[0].cells.len(), t.column_definitions.len());
        assert_eq!(t.rows[0].cells[4], "podswarm/0.1.0");
        let eps = super::super::objects::endpoints("d", "s", &[], 0);
        let t = endpoints([&eps], 0);
        assert_eq!(t.rows[0].cells.len(), t.column_definitions.len());
        assert_eq!(t.rows[0].cells[1], "<none>");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}
        }))
        .unwrap();
        let t = services([(&svc, 0)], 0);
        assert_eq!(t.rows[0].cells.len(), t.column_definitions.len());
        assert_eq!(t.rows[0].cells[4], "80/TCP");
        let ing: Ingress = serde_json::from_value(json!({"metadata": {"name": "i"}})).unwrap();
        let t = ingresses([(&ing, 0)], 0);
        assert_eq!(t.rows[0].cells.len(), t.column_definitions.len());
        let t = simple(
            [(&svc.metadata, vec![json!("1")], 0)],
            &[("Data", "keys")],
            0,
        );
        assert_eq!(t.rows[0].cells.len(), t.column_definitions.len());
    }

    fn pod(value: Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    /// kubectl's printer rules for STATUS, READY and RESTARTS, case by case.
    #[test]
    fn pod_cells_follow_kubectls_printer() {
        let running = json!({"running": {}});
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "image": "", "imageID": "", "ready": true, "restartCount": 1, "state": running},
                {"name": "b", "image": "", "imageID": "", "ready": false, "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        }));
        assert_eq!(
            (pod_ready(&p), pod_status(&p), pod_restarts(&p)),
            ("1/2".to_owned(), "CrashLoopBackOff".to_owned(), 4)
        );
        // A sidecar that completed while the main container runs: Running.
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                {"name": "a", "image": "", "imageID": "", "ready": true, "restartCount": 0, "state": running},
                {"name": "b", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}
            ]}
        }));
        assert_eq!(pod_status(&p), "Running");
        // No reason: the exit code.
        let p = pod(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 2}}}
            ]}
        }));
        assert_eq!(
            (pod_ready(&p), pod_status(&p)),
            ("0/1".to_owned(), "ExitCode:2".to_owned())
        );
        // The pod's own reason where no container says one; Terminating above all.
        let mut p = pod(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Pending", "reason": "ContainerCreating"}
        }));
        assert_eq!(pod_status(&p), "ContainerCreating");
        p.metadata.deletion_timestamp = super::super::objects::time(1);
        assert_eq!(pod_status(&p), "Terminating");
    }
}
