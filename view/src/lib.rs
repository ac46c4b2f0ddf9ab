//! The routing view: what podswarm-dns and podswarm-ingress need to know, and nothing else.
//!
//! podswarmd writes it as one JSON file (default `/run/podswarm/view.json`, 0644) whenever what it
//! contains changes, replacing the file atomically (temp file + rename), so a reader sees the old
//! view or the new one, never half of each. Readers watch the directory and swap the parsed view
//! in whole; while podswarmd is down they keep serving the last view they read.
//!
//! The view holds no secrets: TLS keys for the ingress travel separately.

use std::net::IpAddr;
use std::path::Path;

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
                    ip: Some("10.244.0.2".parse().unwrap_or_else(|e| panic!("{e}"))),
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
        let text = serde_json::to_string(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::from_str::<View>(&text).ok(), Some(v));
    }
}
