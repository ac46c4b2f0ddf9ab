//! The routing view podswarmd publishes for podswarm-dns and podswarm-ingress (types in the
//! `podswarm-view` crate): Services with their endpoints (from every node's pods), pods with IPs,
//! who may use the DNS server for outside names, and the DNS whitelist.
//!
//! It is computed from the same functions the API answers with, so `podswarmctl get svc` and
//! what DNS serves cannot disagree, and written only when its content changes (one atomic rename).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use podswarm_manifest::Object;
use podswarm_view::{Endpoint, EndpointPort, Pod, Service, ServicePort, View, Whitelist};

use crate::api::{Api, endpoints_of, pod_map};

/// The key of the DNS whitelist in the replicated state.
pub const WHITELIST_KEY: &str = "dns/whitelist";

pub fn whitelist(api: &Api) -> Whitelist {
    api.link
        .as_ref()
        .and_then(|l| {
            l.mirror()
                .entries
                .get(WHITELIST_KEY)
                .map(|(_, v)| v.clone())
        })
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

pub fn build(api: &Api, cluster_domain: &str, pod_cidr: IpNet) -> View {
    let entries = api.state.entries();
    let specs: BTreeMap<String, k8s_openapi::api::core::v1::PodSpec> = entries
        .iter()
        .flat_map(|e| podswarm_manifest::pods_of(&e.object))
        .map(|p| (format!("{}/{}", p.namespace, p.name), p.spec))
        .collect();
    let mut services = Vec::new();
    for e in &entries {
        let Object::Service(svc) = &e.object else {
            continue;
        };
        let ports: Vec<ServicePort> = svc
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .filter_map(|p| {
                Some(ServicePort {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    port: u16::try_from(p.port).ok()?,
                })
            })
            .collect();
        let mut by_pod: BTreeMap<String, Endpoint> = BTreeMap::new();
        for ep in endpoints_of(api, e) {
            let spec = specs.get(&format!("{}/{}", e.object.namespace(), ep.pod_name));
            let entry = by_pod
                .entry(ep.pod_name.clone())
                .or_insert_with(|| Endpoint {
                    ip: ep.address.parse().ok(),
                    pod: ep.pod_name.clone(),
                    node: ep.node.clone(),
                    ready: ep.ready,
                    hostname: spec.and_then(|s| s.hostname.clone()),
                    ports: Vec::new(),
                });
            if let Ok(port) = u16::try_from(ep.port) {
                entry.ports.push(EndpointPort {
                    name: ep.port_name.clone().unwrap_or_default(),
                    protocol: ep.protocol.clone(),
                    port,
                });
            }
        }
        services.push(Service {
            namespace: e.object.namespace().to_owned(),
            name: e.object.name().to_owned(),
            ports,
            endpoints: by_pod.into_values().collect(),
        });
    }
    let pods = pod_map(api)
        .into_iter()
        .filter_map(|(key, p)| {
            let ip: IpAddr = p.ip.as_deref()?.parse().ok()?;
            let spec = specs.get(&key);
            Some(Pod {
                namespace: p.namespace,
                name: p.name,
                ip: Some(ip),
                hostname: spec.and_then(|s| s.hostname.clone()),
                subdomain: spec.and_then(|s| s.subdomain.clone()),
                node: p.node,
            })
        })
        .collect();
    let mut recursion_clients = vec![pod_cidr];
    if let Some(link) = &api.link {
        recursion_clients.extend(
            link.nodes()
                .iter()
                .filter_map(|n| n.address.parse::<IpAddr>().ok())
                .map(IpNet::from),
        );
    }
    if let Some(ip) = api
        .node_ip
        .as_deref()
        .and_then(|a| a.parse::<IpAddr>().ok())
    {
        recursion_clients.push(IpNet::from(ip));
    }
    recursion_clients.sort();
    recursion_clients.dedup();
    View {
        version: 0,
        cluster_domain: cluster_domain.trim_end_matches('.').to_owned(),
        services,
        pods,
        recursion_clients,
        whitelist: whitelist(api),
    }
}

/// Publishes the view whenever it changes (checked on every state or cluster change, and every
/// second for pod readiness).
pub async fn publish(
    api: Arc<Api>,
    path: PathBuf,
    cluster_domain: String,
    pod_cidr: IpNet,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut state = api.state.subscribe();
    let mut cluster = api.link.as_ref().map(|l| l.changes());
    let mut last: Option<View> = None;
    let mut version = 0u64;
    let mut failing = false;
    loop {
        let view = build(&api, &cluster_domain, pod_cidr);
        if last.as_ref() != Some(&view) {
            version += 1;
            let published = View {
                version,
                ..view.clone()
            };
            let result = serde_json::to_vec_pretty(&published)
                .map_err(std::io::Error::other)
                .and_then(|bytes| podswarm_config::process::write_atomic(&path, &bytes, 0o644));
            match result {
                Ok(()) => {
                    tracing::debug!(
                        version,
                        services = view.services.len(),
                        "routing view published"
                    );
                    last = Some(view);
                    failing = false;
                }
                Err(e) if !failing => {
                    tracing::error!(path = %path.display(), error = %e, "cannot publish the routing view");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        let cluster_changed = async {
            match cluster.as_mut() {
                Some(c) => {
                    let _ = c.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = state.changed() => {}
            _ = cluster_changed => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // Batch bursts of changes into one view.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
