//! The routing view: what podswarm-dns and podswarm-ingress need to know, and nothing else.
//!
//! podswarmd writes it as one JSON file (default `/run/podswarm/view.json`, 0644) whenever what it
//! contains changes, replacing the file atomically (temp file + rename), so a reader sees the old
//! view or the new one, never half of each. Readers watch the directory and swap the parsed view
//! in whole; while podswarmd is down they keep serving the last view they read.
//!
//! The view holds no secrets: TLS keys for the ingress travel separately. For each `spec.tls`
//! entry of an Ingress, podswarmd writes the Secret's certificate chain and key as one PEM file
//! under its TLS directory (default `/run/podswarm/tls/<namespace>_<secret>.pem`, root:podswarm
//! 0640) and the view names only that file ([`IngressTls::cert_file`]).
//!
//! Ingress backends are references (service name + port in the ingress's namespace), not
//! addresses: podswarm-ingress resolves them against [`View::services`] each time it loads a
//! view, so the same endpoint list serves DNS and the ingress.
//!
//! With the `watch` feature, [`watch`] keeps a reader's copy of the view current.

#[cfg(feature = "watch")]
pub mod watch;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct View {
    /// Bumped on every change; readers can log which view they serve.
    pub version: u64,
    /// Without a trailing dot, e.g. `cluster.local`.
    pub cluster_domain: String,
    pub services: Vec<Service>,
    /// Every running pod of the cluster with an IP (for `<a-b-c-d>.<ns>.pod.<domain>` and
    /// `hostname`/`subdomain` records).
    pub pods: Vec<Pod>,
    /// Sources that may use the DNS server for names outside the cluster domain: the pod CIDR,
    /// the cluster's node addresses, loopback.
    pub recursion_clients: Vec<IpNet>,
    pub whitelist: Whitelist,
    /// Every Ingress of the cluster (all classes: the ingress filters), in namespace/name order.
    /// Absent in views written before podswarm-ingress existed: empty.
    pub ingresses: Vec<Ingress>,
}

/// One Kubernetes Ingress, as podswarm-ingress needs it: defaults filled in, hosts in lower case,
/// `ImplementationSpecific` paths turned into `Prefix`, TLS Secrets turned into file paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Ingress {
    pub namespace: String,
    pub name: String,
    /// `spec.ingressClassName` (or the older `kubernetes.io/ingress.class` annotation); `None`
    /// for an Ingress that names no class.
    pub class: Option<String>,
    pub rules: Vec<IngressRule>,
    /// `spec.defaultBackend`: for requests no rule matches.
    pub default_backend: Option<IngressBackend>,
    pub tls: Vec<IngressTls>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressRule {
    /// A DNS name in lower case, or `*.` and one: the wildcard matches exactly one more label.
    /// `None`: every host.
    pub host: Option<String>,
    pub paths: Vec<IngressPath>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressPath {
    /// Starts with `/` (`/` when the manifest gave none).
    pub path: String,
    #[serde(default)]
    pub path_type: PathType,
    pub backend: IngressBackend,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathType {
    /// The whole path, case-sensitive.
    Exact,
    /// Path segments (split at `/`) are a prefix of the request's (`ImplementationSpecific` too).
    #[default]
    #[serde(alias = "ImplementationSpecific")]
    Prefix,
}

/// A Service in the Ingress's namespace and one of its ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackend {
    pub service: String,
    pub port: BackendPort,
}

/// The service port by number or by name (JSON: a number or a string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BackendPort {
    Number(u16),
    Name(String),
}

impl std::fmt::Display for BackendPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendPort::Number(n) => write!(f, "{n}"),
            BackendPort::Name(n) => f.write_str(n),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressTls {
    /// Hosts the certificate is for (lower case, `*.` wildcards allowed); empty: the certificate
    /// for connections whose server name matches no other.
    pub hosts: Vec<String>,
    /// `spec.tls[].secretName`, in the Ingress's namespace.
    pub secret: String,
    /// The PEM file with the Secret's `tls.crt` and `tls.key`; `None` while there is none (no
    /// such Secret, no `tls.crt`/`tls.key` in it, or the file could not be written).
    pub cert_file: Option<PathBuf>,
    /// The Secret's version in podswarmd's state: changes whenever the file's content does, so
    /// that a new certificate changes the view and readers load it again.
    pub secret_version: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub ports: Vec<ServicePort>,
    /// Pods selected by the service, ready or not.
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePort {
    /// Empty for an unnamed port.
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The service's port.
    pub port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoint {
    pub ip: Option<IpAddr>,
    pub pod: String,
    pub node: String,
    pub ready: bool,
    /// The pod's `hostname` when it has one (headless-style records).
    pub hostname: Option<String>,
    /// Target ports, by the service port name they serve (named target ports already resolved
    /// against the pod's containers); a port the pod does not have is left out.
    pub ports: Vec<EndpointPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointPort {
    /// The service port's name (empty for an unnamed one).
    pub name: String,
    pub protocol: String,
    pub port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub ip: Option<IpAddr>,
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
    pub node: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Whitelist {
    /// When false, every name outside the cluster domain is forwarded (to allowed clients).
    pub enabled: bool,
    /// Domains whose names (the domain itself and its subdomains) may be forwarded; lower case,
    /// without a trailing dot.
    pub hosts: Vec<String>,
}

impl Whitelist {
    /// Whether `name` (any case, trailing dot or not) may be forwarded.
    pub fn allows(&self, name: &str) -> bool {
        if !self.enabled {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|h| {
            let h = h.trim_end_matches('.');
            name == h || name.strip_suffix(h).is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot read the routing view {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the routing view {path} is not valid: {message}")]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
}

impl View {
    pub fn load(path: &Path) -> Result<View, ViewError> {
        let bytes = std::fs::read(path).map_err(|source| ViewError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ViewError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist_allows_the_domain_and_its_subdomains_only() {
        let w = Whitelist {
            enabled: true,
            hosts: vec!["example.com".into()],
        };
        assert!(w.allows("example.com."));
        assert!(w.allows("WWW.Example.com"));
        assert!(!w.allows("badexample.com"));
        assert!(!w.allows("example.org"));
        assert!(Whitelist::default().allows("anything.net"));
    }

    #[test]
    fn round_trip() {
        let v = View {
            version: 3,
            cluster_domain: "cluster.local".into(),
            services: vec![Service {
                namespace: "default".into(),
                name: "hello".into(),
                ports: vec![ServicePort {
                    name: "http".into(),
                    protocol: "TCP".into(),
                    port: 80,
                }],
                endpoints: vec![Endpoint {
                    ip: Some("10.244.0.2".parse().unwrap()),
                    pod: "hello-0".into(),
                    node: "n1".into(),
                    ready: true,
                    hostname: None,
                    ports: vec![EndpointPort {
                        name: "http".into(),
                        protocol: "TCP".into(),
                        port: 8080,
                    }],
                }],
            }],
            ..View::default()
        };
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<View>(&text).ok(), Some(v));
    }

    #[test]
    fn a_view_without_ingresses_still_loads() {
        let v: View = serde_json::from_str(r#"{"version": 7, "services": []}"#).unwrap();
        assert_eq!(v.version, 7);
        assert!(v.ingresses.is_empty());
    }

    #[test]
    fn ingress_json_shape() {
        let text = r#"{"ingresses": [{
            "namespace": "default", "name": "web", "class": "podswarm",
            "rules": [{"host": "*.example.com", "paths": [
                {"path": "/api", "pathType": "Exact", "backend": {"service": "api", "port": 8080}},
                {"path": "/", "pathType": "ImplementationSpecific", "backend": {"service": "web", "port": "http"}},
                {"path": "/x", "backend": {"service": "web", "port": "http"}}
            ]}],
            "defaultBackend": {"service": "fallback", "port": 80},
            "tls": [{"hosts": ["a.example.com"], "secret": "a-cert", "certFile": "/run/podswarm/tls/default_a-cert.pem", "secretVersion": 4}]
        }]}"#;
        let v: View = serde_json::from_str(text).unwrap();
        let ing = &v.ingresses[0];
        let paths = &ing.rules[0].paths;
        assert_eq!(paths[0].path_type, PathType::Exact);
        assert_eq!(paths[0].backend.port, BackendPort::Number(8080));
        assert_eq!(paths[1].path_type, PathType::Prefix);
        assert_eq!(paths[1].backend.port, BackendPort::Name("http".into()));
        assert_eq!(paths[2].path_type, PathType::Prefix);
        assert_eq!(
            ing.tls[0].cert_file.as_deref(),
            Some(Path::new("/run/podswarm/tls/default_a-cert.pem"))
        );
        let again: View =
            serde_json::from_str(&serde_json::to_string(&v).unwrap_or_default()).unwrap();
        assert_eq!(again, v);
    }
}
