//! The routing view podswarmd publishes for podswarm-dns and podswarm-ingress (types in the
//! `podswarm-view` crate): Services with their endpoints (from every node's pods), pods with IPs,
//! who may use the DNS server for outside names, the DNS whitelist, and the Ingresses.
//!
//! It is computed from the same [`Snapshot`] the API answers from (one per change of the
//! cluster, [`crate::model`]), so `podswarmctl get svc` and what DNS serves cannot disagree, and
//! written only when its content changes (one atomic rename).
//!
//! The view is world-readable, so TLS keys never enter it: every Secret a `spec.tls` entry names
//! is written as one PEM file (`tls.crt`, then `tls.key`) to the TLS directory
//! (`paths.tls_dir`, `<namespace>_<secret>.pem`; `_` never occurs in Kubernetes names), which is
//! 0750 and whose files are 0640, both group `podswarm` when that group exists, so that
//! podswarm-ingress (in that group) can read them and other users cannot. The files are written
//! before the view that names them, and files no Ingress names any more are removed. Each view
//! entry carries the Secret's version, so a renewed certificate changes the view and the ingress
//! reloads it. Ingress backends stay references (service + port): the ingress resolves them
//! against the view's services.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use podswarm_manifest::Object;
use podswarm_view::{
    BackendPort, Endpoint, EndpointPort, Ingress, IngressBackend, IngressPath, IngressRule,
    IngressTls, PathType, Pod, Service, ServicePort, View,
};
use sha2::{Digest, Sha256};

use crate::model::Snapshot;
use crate::state::Entry;

/// The group that may read the TLS files (podswarm-ingress runs in it), when it exists.
pub const TLS_GROUP: &str = "podswarm";

/// The Ingresses for the view and the TLS files they need.
#[derive(Default, PartialEq, Eq)]
pub struct Ingresses {
    pub ingresses: Vec<Ingress>,
    /// Path → PEM text (certificate chain, then key). Never logged.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// Why some `spec.tls` entry has no file (no such Secret, no `tls.crt`/`tls.key`).
    pub problems: Vec<String>,
}

impl std::fmt::Debug for Ingresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material stays out of logs: paths only.
        f.debug_struct("Ingresses")
            .field("ingresses", &self.ingresses)
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("problems", &self.problems)
            .finish()
    }
}

fn backend_of(b: &k8s_openapi::api::networking::v1::IngressBackend) -> Option<IngressBackend> {
    let s = b.service.as_ref()?;
    let port = s.port.as_ref()?;
    let port = match (port.number, &port.name) {
        (Some(n), _) => BackendPort::Number(u16::try_from(n).ok()?),
        (None, Some(name)) => BackendPort::Name(name.clone()),
        (None, None) => return None,
    };
    Some(IngressBackend {
        service: s.name.clone(),
        port,
    })
}

fn host_of(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The Ingresses of `entries` as the view carries them, and the PEM files of the Secrets their
/// `spec.tls` entries name (under `tls_dir`).
pub fn ingresses<'a>(entries: impl IntoIterator<Item = &'a Entry>, tls_dir: &Path) -> Ingresses {
    let entries: Vec<&Entry> = entries.into_iter().collect();
    let secrets: BTreeMap<(&str, &str), &Entry> = entries
        .iter()
        .filter(|e| matches!(e.object, Object::Secret(_)))
        .map(|e| ((e.object.namespace(), e.object.name()), *e))
        .collect();
    let mut out = Ingresses::default();
    let mut list: Vec<&Entry> = entries
        .iter()
        .copied()
        .filter(|e| matches!(e.object, Object::Ingress(_)))
        .collect();
    list.sort_by(|a, b| {
        (a.object.namespace(), a.object.name()).cmp(&(b.object.namespace(), b.object.name()))
    });
    for e in list {
        let Object::Ingress(ing) = &e.object else {
            continue;
        };
        let namespace = e.object.namespace().to_owned();
        let spec = ing.spec.as_ref();
        let class = spec.and_then(|s| s.ingress_class_name.clone()).or_else(|| {
            ing.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/ingress.class").cloned())
        });
        let rules = spec
            .iter()
            .flat_map(|s| s.rules.iter().flatten())
            .map(|r| IngressRule {
                host: r.host.as_deref().map(host_of).filter(|h| !h.is_empty()),
                paths: r
                    .http
                    .iter()
                    .flat_map(|h| h.paths.iter())
                    .filter_map(|p| {
                        Some(IngressPath {
                            path: p
                                .path
                                .clone()
                                .filter(|p| !p.is_empty())
                                .unwrap_or_else(|| "/".into()),
                            path_type: if p.path_type == "Exact" {
                                PathType::Exact
                            } else {
                                PathType::Prefix
                            },
                            backend: backend_of(&p.backend)?,
                        })
                    })
                    .collect(),
            })
            .collect();
        let mut tls = Vec::new();
        for t in spec.iter().flat_map(|s| s.tls.iter().flatten()) {
            let Some(secret) = t.secret_name.clone() else {
                continue;
            };
            let hosts = t.hosts.iter().flatten().map(|h| host_of(h)).collect();
            let (cert_file, secret_version) =
                match tls_pem(secrets.get(&(namespace.as_str(), secret.as_str()))) {
                    Ok((pem, version)) => {
                        let path = tls_dir.join(format!("{namespace}_{secret}.pem"));
                        out.files.insert(path.clone(), pem);
                        (Some(path), version)
                    }
                    Err(why) => {
                        out.problems.push(format!(
                            "Ingress {namespace}/{}: TLS Secret {namespace}/{secret} {why}",
                            e.object.name()
                        ));
                        (None, 0)
                    }
                };
            tls.push(IngressTls {
                hosts,
                secret,
                cert_file,
                secret_version,
            });
        }
        out.ingresses.push(Ingress {
            namespace,
            name: e.object.name().to_owned(),
            class,
            rules,
            default_backend: spec
                .and_then(|s| s.default_backend.as_ref())
                .and_then(backend_of),
            tls,
        });
    }
    out
}

/// A TLS Secret's certificate chain and key as one PEM text, and the Secret's version.
fn tls_pem(secret: Option<&&Entry>) -> Result<(Vec<u8>, u64), &'static str> {
    let Some(entry) = secret else {
        return Err("does not exist");
    };
    let Object::Secret(s) = &entry.object else {
        return Err("does not exist");
    };
    // `stringData` wins over `data`, as in Kubernetes.
    let value = |key: &str| -> Option<Vec<u8>> {
        s.string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.clone().into_bytes())
            .or_else(|| {
                s.data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|v| v.0.clone())
            })
            .filter(|v| !v.is_empty())
    };
    let (Some(mut pem), Some(key)) = (value("tls.crt"), value("tls.key")) else {
        return Err("has no tls.crt and tls.key");
    };
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(&key);
    Ok((pem, entry.version))
}

/// Makes `dir` hold exactly `files` (besides anything not ending in `.pem`): writes the ones
/// whose content differs (atomically, 0640), removes `.pem` files no longer wanted, and gives
/// the directory (0750) and the files to group `gid` when there is one.
pub fn sync_tls_dir(
    dir: &Path,
    files: &BTreeMap<PathBuf, Vec<u8>>,
    gid: Option<u32>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if files.is_empty() && !dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
    if gid.is_some() {
        std::os::unix::fs::chown(dir, None, gid)?;
    }
    for (path, bytes) in files {
        if std::fs::read(path).ok().as_deref() != Some(bytes.as_slice()) {
            podswarm_config::process::write_atomic(path, bytes, 0o640)?;
        }
        if gid.is_some() {
            std::os::unix::fs::chown(path, None, gid)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Our files and the temporary files of an interrupted write.
        let ours = name.ends_with(".pem") || (name.starts_with('.') && name.contains(".pem.tmp"));
        if ours && !files.contains_key(&path) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn digest_of(files: &BTreeMap<PathBuf, Vec<u8>>) -> [u8; 32] {
    let mut h = Sha256::new();
    for (path, bytes) in files {
        h.update(path.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.finalize().into()
}

/// The routing view of `snapshot`, and the TLS files its Ingresses need (under `tls_dir`).
pub fn build(
    snapshot: &Snapshot,
    node_ip: Option<IpAddr>,
    cluster_domain: &str,
    pod_cidr: IpNet,
    tls_dir: &Path,
) -> (View, Ingresses) {
    let mut ingresses = ingresses(snapshot.entries(), tls_dir);
    let mut services = Vec::new();
    for e in snapshot.objects("Service", None) {
        let Object::Service(svc) = &e.object else {
            continue;
        };
        let namespace = e.object.namespace();
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
        for ep in snapshot.endpoints(namespace, e.object.name()) {
            let entry = by_pod
                .entry(ep.pod_name.clone())
                .or_insert_with(|| Endpoint {
                    ip: ep.address.parse().ok(),
                    pod: ep.pod_name.clone(),
                    node: ep.node.clone(),
                    ready: ep.ready,
                    hostname: snapshot
                        .pod(&format!("{namespace}/{}", ep.pod_name))
                        .and_then(|p| p.hostname.clone()),
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
            namespace: namespace.to_owned(),
            name: e.object.name().to_owned(),
            ports,
            endpoints: by_pod.into_values().collect(),
        });
    }
    let pods = snapshot
        .pods()
        .filter(|p| !p.view.terminating)
        .filter_map(|p| {
            let ip: IpAddr = p.view.ip.as_deref()?.parse().ok()?;
            Some(Pod {
                namespace: p.view.namespace.clone(),
                name: p.view.name.clone(),
                ip: Some(ip),
                hostname: p.hostname.clone(),
                subdomain: p.subdomain.clone(),
                node: p.view.node.clone(),
            })
        })
        .collect();
    let mut recursion_clients = vec![pod_cidr];
    recursion_clients.extend(
        snapshot
            .nodes()
            .iter()
            .filter_map(|n| n.address.parse::<IpAddr>().ok())
            .map(IpNet::from),
    );
    recursion_clients.extend(node_ip.map(IpNet::from));
    recursion_clients.sort();
    recursion_clients.dedup();
    let view = View {
        version: 0,
        cluster_domain: cluster_domain.trim_end_matches('.').to_owned(),
        services,
        pods,
        recursion_clients,
        whitelist: snapshot.whitelist().clone(),
        ingresses: std::mem::take(&mut ingresses.ingresses),
    };
    (view, ingresses)
}

/// Publishes the view of each new snapshot when it differs from the last one, after the TLS files
/// it names (in `tls_dir`); a failed write is tried again every second. Once the file on disk
/// reflects a snapshot, `drained` gets that snapshot's terminating pods (`ns/name`): the view no
/// longer holds them, which the link tells the cluster so that their nodes may stop them.
#[allow(clippy::too_many_arguments)]
pub async fn publish(
    mut snapshots: tokio::sync::watch::Receiver<Arc<Snapshot>>,
    drained: tokio::sync::watch::Sender<BTreeSet<String>>,
    node_ip: Option<IpAddr>,
    path: PathBuf,
    tls_dir: PathBuf,
    cluster_domain: String,
    pod_cidr: IpNet,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last: Option<View> = None;
    let mut version = 0u64;
    let mut failing = false;
    let mut tls_synced: Option<[u8; 32]> = None;
    let mut tls_failing = false;
    let mut tls_problems: Vec<String> = Vec::new();
    loop {
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        let (mut view, tls) = build(&snapshot, node_ip, &cluster_domain, pod_cidr, &tls_dir);
        // What this view no longer sends anything to: terminating pods, and the old copies of
        // pods taken over by another node's copy (`ns/name@<old node>`).
        let terminating: BTreeSet<String> = snapshot
            .pods()
            .filter_map(|p| {
                let key = format!("{}/{}", p.view.namespace, p.view.name);
                if p.view.terminating {
                    return Some(key);
                }
                let from = p.view.replaces.as_deref().filter(|n| *n != p.view.node)?;
                Some(format!("{key}@{from}"))
            })
            .collect();
        drop(snapshot);
        if tls.problems != tls_problems {
            for problem in &tls.problems {
                tracing::warn!("{problem}: its hosts get no certificate");
            }
            tls_problems = tls.problems;
        }
        let digest = digest_of(&tls.files);
        if tls_synced != Some(digest) {
            let dir = tls_dir.clone();
            let files = tls.files;
            // The group lookup goes through NSS, and the writes are file I/O: both may block.
            let synced = tokio::task::spawn_blocking(move || {
                sync_tls_dir(&dir, &files, crate::groups::gid_of(TLS_GROUP))
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match synced {
                Ok(()) => {
                    tls_synced = Some(digest);
                    tls_failing = false;
                }
                Err(e) => {
                    if !tls_failing {
                        tracing::error!(dir = %tls_dir.display(), error = %e, "cannot write the ingress TLS files");
                        tls_failing = true;
                    }
                    // Named only once written: the view changes when they are, and the ingress
                    // reloads then.
                    for t in view.ingresses.iter_mut().flat_map(|i| i.tls.iter_mut()) {
                        t.cert_file = None;
                    }
                }
            }
        }
        // Whether the file on disk now reflects this snapshot.
        let mut reflected = last.as_ref() == Some(&view);
        if !reflected {
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
                        ingresses = view.ingresses.len(),
                        "routing view published"
                    );
                    last = Some(view);
                    reflected = true;
                    failing = false;
                }
                Err(e) if !failing => {
                    tracing::error!(path = %path.display(), error = %e, "cannot publish the routing view");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        if reflected {
            drained.send_if_modified(|d| {
                let changed = *d != terminating;
                *d = terminating;
                changed
            });
        }
        let retry = failing || tls_failing;
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(1)), if retry => {}
        }
        // Batch bursts of changes into one view.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::entries;

    const INGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: podswarm
  defaultBackend: {service: {name: fallback, port: {number: 80}}}
  tls:
    - hosts: [Shop.Example.com, "*.shop.example.com"]
      secretName: shop-cert
    - hosts: [other.example.com]
      secretName: missing
  rules:
    - host: shop.example.com
      http:
        paths:
          - {path: /api, pathType: Exact, backend: {service: {name: api, port: {name: http}}}}
          - {pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 8080}}}}
    - http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 8080}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: legacy
  namespace: shop
  annotations: {kubernetes.io/ingress.class: nginx}
spec:
  rules:
    - host: legacy.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 8080}}}}
---
apiVersion: v1
kind: Secret
metadata: {name: shop-cert, namespace: shop}
type: kubernetes.io/tls
data:
  tls.crt: Q0VSVA==
  tls.key: S0VZCg==
"#;

    #[test]
    fn ingresses_are_resolved_for_the_view_and_their_secrets_become_files() {
        let dir = Path::new("/run/podswarm/tls");
        let out = ingresses(&entries(INGRESS, 7), dir);
        assert_eq!(out.ingresses.len(), 2);
        let legacy = &out.ingresses[0];
        assert_eq!(legacy.name, "legacy");
        assert_eq!(legacy.class.as_deref(), Some("nginx"));
        let web = &out.ingresses[1];
        assert_eq!(web.class.as_deref(), Some("podswarm"));
        assert_eq!(
            web.default_backend,
            Some(IngressBackend {
                service: "fallback".into(),
                port: BackendPort::Number(80)
            })
        );
        assert_eq!(web.rules[0].host.as_deref(), Some("shop.example.com"));
        let paths = &web.rules[0].paths;
        assert_eq!(
            (paths[0].path.as_str(), paths[0].path_type),
            ("/api", PathType::Exact)
        );
        assert_eq!(paths[0].backend.port, BackendPort::Name("http".into()));
        // No path: "/"; ImplementationSpecific: Prefix.
        assert_eq!(
            (paths[1].path.as_str(), paths[1].path_type),
            ("/", PathType::Prefix)
        );
        assert_eq!(web.rules[1].host, None);

        let file = dir.join("shop_shop-cert.pem");
        assert_eq!(web.tls[0].hosts, ["shop.example.com", "*.shop.example.com"]);
        assert_eq!(web.tls[0].cert_file.as_ref(), Some(&file));
        assert_eq!(web.tls[0].secret_version, 7);
        // The certificate, a line break added, then the key.
        assert_eq!(
            out.files.get(&file).map(Vec::as_slice),
            Some(&b"CERT\nKEY\n"[..])
        );
        assert_eq!(web.tls[1].cert_file, None);
        assert_eq!(out.problems.len(), 1);
        assert!(out.problems[0].contains("shop/missing does not exist"));
        // Key material never shows in Debug output.
        assert!(!format!("{out:?}").contains("KEY"));
        // Nor in the view.
        let json = serde_json::to_string(&out.ingresses).unwrap_or_default();
        assert!(!json.contains("KEY") && !json.contains("S0VZ"));
    }

    #[test]
    fn a_secret_without_a_key_gets_no_file() {
        // (Intake refuses a kubernetes.io/tls Secret without both keys; an Opaque one can lack
        // them.)
        let yaml = INGRESS
            .replace("  tls.key: S0VZCg==\n", "")
            .replace("type: kubernetes.io/tls", "type: Opaque");
        let out = ingresses(&entries(&yaml, 1), Path::new("/t"));
        assert!(out.files.is_empty());
        assert!(
            out.problems
                .iter()
                .any(|p| p.contains("shop/shop-cert has no tls.crt and tls.key"))
        );
    }

    #[test]
    fn the_view_is_built_from_the_snapshot() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}, {name: admin, port: 81, targetPort: 9000}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: shop, labels: {app: web}}
spec:
  hostname: solo-host
  subdomain: web
  containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]
"#;
        let view: crate::reconcile::PodView = serde_json::from_value(serde_json::json!({
            "namespace": "shop", "name": "solo", "node": "me", "ip": "10.244.0.2",
            "phase": "Running", "ready": true, "restarts": 0, "labels": {"app": "web"},
            "unit": "", "units": [], "containers": [], "created": 0, "warnings": []
        }))
        .unwrap();
        let me = crate::link::NodeView {
            name: "me".into(),
            node_id: String::new(),
            address: "192.168.1.10".into(),
            labels: BTreeMap::new(),
            subnet: None,
            ready: true,
            cordoned: false,
            draining: false,
            stopping: Vec::new(),
        };
        let snapshot = Snapshot::build(crate::model::Inputs {
            node_name: "me".into(),
            entries: entries(yaml, 1),
            local: BTreeMap::from([("shop/solo".to_owned(), view)]),
            nodes: vec![me],
            whitelist: Some(serde_json::json!({"enabled": true, "hosts": ["example.com"]})),
            ..crate::model::Inputs::default()
        });
        let cidr: IpNet = "10.244.0.0/16".parse().unwrap();
        let (view, _) = build(
            &snapshot,
            "192.168.1.10".parse().ok(),
            "cluster.local.",
            cidr,
            Path::new("/t"),
        );
        assert_eq!(view.cluster_domain, "cluster.local");
        let endpoint = &view.services[0].endpoints[0];
        assert_eq!(endpoint.ip, "10.244.0.2".parse().ok());
        assert_eq!(endpoint.hostname.as_deref(), Some("solo-host"));
        let ports: Vec<u16> = endpoint.ports.iter().map(|p| p.port).collect();
        assert_eq!(ports, [8080, 9000]);
        assert_eq!(view.pods[0].subdomain.as_deref(), Some("web"));
        // The pod CIDR and the node (named twice) once each.
        let node: IpNet = "192.168.1.10/32".parse().unwrap();
        assert_eq!(view.recursion_clients, [cidr, node]);
        assert_eq!(view.whitelist.hosts, ["example.com"]);
    }

    #[test]
    fn the_tls_dir_holds_exactly_the_wanted_files() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        // Nothing wanted, no directory: nothing created.
        sync_tls_dir(&dir, &BTreeMap::new(), None).unwrap();
        assert!(!dir.exists());

        let a = dir.join("ns_a.pem");
        let b = dir.join("ns_b.pem");
        let mut files = BTreeMap::from([(a.clone(), b"A1".to_vec()), (b.clone(), b"B1".to_vec())]);
        // Our own group: a chown any user may make, so the group path runs without root.
        let gid = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(tmp.path()).map(|m| m.gid()).ok()
        };
        sync_tls_dir(&dir, &files, gid).unwrap();
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode(&dir), 0o750);
        assert_eq!(mode(&a), 0o640);
        let group = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p).map(|m| m.gid()).ok()
        };
        assert_eq!(group(&a), gid);
        assert_eq!(group(&dir), gid);
        assert_eq!(std::fs::read(&b).unwrap_or_default(), b"B1");

        // Something else in the directory is left alone; a stale .pem goes.
        std::fs::write(dir.join("README"), b"x").unwrap();
        files.remove(&b);
        files.insert(a.clone(), b"A2".to_vec());
        sync_tls_dir(&dir, &files, None).unwrap();
        assert_eq!(std::fs::read(&a).unwrap_or_default(), b"A2");
        assert!(!b.exists());
        assert!(dir.join("README").exists());

        // The digest follows content and names.
        let d1 = digest_of(&files);
        files.insert(a.clone(), b"A3".to_vec());
        assert_ne!(d1, digest_of(&files));
    }
}
