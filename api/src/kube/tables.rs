//! The columns `kubectl get` prints for each kind, filled the way kubectl's own printers
//! (`pkg/printers/internalversion`) fill them for a Kubernetes cluster. Rows come from
//! podswarm's views, which know more than the objects (a pod on its way out, a Service's ready
//! endpoints); each row carries the object's metadata for `-A`, `--show-labels` and `-L`.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::table::{Column, Row, Table};
use crate::{DeploymentStatus, Node, PodView};

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

fn meta(
    namespace: &str,
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
        labels: (!labels.is_empty()).then(|| labels.clone()),
        ..ObjectMeta::default()
    }
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

/// A Service's SELECTOR cell: `k=v,k2=v2` (empty without a selector).
pub fn service_selector(svc: &Service) -> String {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
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

/// `kubectl get pods`: NAME READY STATUS RESTARTS AGE, and IP NODE with `-o wide`.
pub fn pods<'a>(views: impl IntoIterator<Item = &'a PodView>, now: u64) -> Table {
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
    let rows = views
        .into_iter()
        .map(|v| {
            let running = v.containers.iter().filter(|c| c.is_running()).count();
            let total = v.containers.len().max(1);
            let ready = if v.ready { running } else { 0 };
            Row {
                cells: vec![
                    json!(v.name),
                    json!(format!("{ready}/{total}")),
                    json!(pod_status(v)),
                    json!(v.restarts.to_string()),
                    age(v.created, now),
                    json!(v.ip.clone().unwrap_or_else(|| "<none>".to_owned())),
                    json!(none_if_empty(v.node.clone())),
                    json!("<none>"),
                    json!("<none>"),
                ],
                object: Some(partial(&meta(&v.namespace, &v.name, &v.labels))),
            }
        })
        .collect();
    Table::new(columns, rows)
}

/// kubectl's STATUS: Terminating for a pod on its way out, else the reason, else the phase.
pub fn pod_status(v: &PodView) -> String {
    if v.terminating {
        return "Terminating".to_owned();
    }
    match v.reason {
        Some(r) if r != crate::PodReason::Unknown => r.as_str().to_owned(),
        _ => v.phase.as_str().to_owned(),
    }
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
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
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

/// `kubectl get nodes`: NAME STATUS ROLES AGE VERSION, and INTERNAL-IP … CONTAINER-RUNTIME with
/// `-o wide`. Every podswarm node is the same kind of member, hence no roles.
pub fn nodes<'a>(items: impl IntoIterator<Item = &'a Node>, version: &str) -> Table {
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
        .map(|n| Row {
            cells: vec![
                json!(n.name),
                json!(n.status()),
                json!("<none>"),
                json!("<unknown>"),
                json!(format!("podswarm/{version}")),
                json!(none_if_empty(n.address.clone())),
                json!("<none>"),
                json!("<unknown>"),
                json!("<unknown>"),
                json!("podman"),
            ],
            object: Some(partial(&meta("", &n.name, &n.labels))),
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
        let pod: PodView = serde_json::from_value(json!({
            "namespace": "d", "name": "p", "node": "n", "ip": null, "phase": "Pending",
            "ready": false, "restarts": 0, "reason": "ImagePullBackOff", "owner": null,
            "labels": {}, "unit": "", "units": [], "containers": [], "created": 0, "warnings": []
        }))
        .unwrap();
        let t = pods([&pod], 100);
        assert_eq!(t.rows[0].cells.len(), t.column_definitions.len());
        assert_eq!(t.rows[0].cells[1], "0/1");
        assert_eq!(t.rows[0].cells[2], "ImagePullBackOff");
        let node: Node = serde_json::from_value(json!({
            "name": "n", "address": "", "ready": true, "podSubnet": null, "labels": {}, "pods": 0
        }))
        .unwrap();
        let t = nodes([&node], "0.1.0");
        assert_eq!(t.rows[0].cells.len(), t.column_definitions.len());
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
}
