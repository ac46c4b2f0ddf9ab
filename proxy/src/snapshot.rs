//! What requests are served from: one view's routes, resolved backends and certificates,
//! built whole before it is swapped in.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use podswarm_view::{Ingress, View};
use rustls::crypto::CryptoProvider;

use crate::backend::{Backend, HealthRegistry};
use crate::routes::Router;
use crate::tls::{CertCache, Certs};

/// Which Ingresses this process serves, and where it runs.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Ingresses with this class are served, and those with none.
    pub class: String,
    /// This node's name (endpoints on it are preferred).
    pub node: String,
}

impl Scope {
    /// Ingresses that name no class are served too: on a cluster with one ingress per node
    /// that is what users expect (Kubernetes leaves them to the default class, and podswarm's is
    /// the only one).
    pub fn serves(&self, ingress: &Ingress) -> bool {
        ingress.class.as_deref().is_none_or(|c| c == self.class)
    }
}

#[derive(Debug, Default)]
pub struct Snapshot {
    /// The view's version.
    pub version: u64,
    pub router: Router<Arc<Backend>>,
    pub certs: Certs,
    /// Ingresses served (of the class, or without one).
    pub ingresses: usize,
}

impl Snapshot {
    /// Builds everything requests need from `view`. Reads certificate files that `cache` does
    /// not hold yet. Returns the problems found besides (logged by the caller).
    pub fn build(
        view: &View,
        scope: &Scope,
        health: &HealthRegistry,
        cache: &mut CertCache,
        provider: &CryptoProvider,
    ) -> (Snapshot, Vec<String>) {
        let services: HashMap<(&str, &str), &podswarm_view::Service> = view
            .services
            .iter()
            .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
            .collect();
        let mut served: Vec<&Ingress> = view.ingresses.iter().filter(|i| scope.serves(i)).collect();
        served.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        // One Backend per (namespace, service, port), shared by its rules: one round-robin.
        let mut backends: HashMap<(String, String, String), Arc<Backend>> = HashMap::new();
        let router = Router::build(served.iter().copied(), |namespace, b| {
            backends
                .entry((
                    namespace.to_owned(),
                    b.service.clone(),
                    format!("{:?}", b.port),
                ))
                .or_insert_with(|| {
                    Arc::new(Backend::resolve(
                        namespace,
                        b,
                        &services,
                        &scope.node,
                        health,
                    ))
                })
                .clone()
        });
        let in_use: HashSet<std::net::SocketAddr> = backends
            .values()
            .flat_map(|b| b.targets.iter().map(|t| t.addr))
            .collect();
        health.retain(&in_use);
        let (certs, problems) = Certs::load(served.iter().copied(), cache, provider);
        (
            Snapshot {
                version: view.version,
                router,
                certs,
                ingresses: served.len(),
            },
            problems,
        )
    }

    /// Every endpoint the routes can reach, once each (for health checks).
    pub fn targets(&self) -> Vec<crate::backend::Target> {
        let mut seen = HashSet::new();
        self.router
            .targets()
            .flat_map(|b| b.targets.iter())
            .filter(|t| seen.insert(t.addr))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podswarm_view::{
        BackendPort, Endpoint, EndpointPort, IngressBackend, IngressPath, IngressRule, PathType,
        Service, ServicePort,
    };
    use std::time::Duration;

    fn view() -> View {
        let rule = |host: &str, svc: &str| IngressRule {
            host: Some(host.into()),
            paths: vec![IngressPath {
                path: "/".into(),
                path_type: PathType::Prefix,
                backend: IngressBackend {
                    service: svc.into(),
                    port: BackendPort::Name("http".into()),
                },
            }],
        };
        View {
            version: 9,
            services: vec![Service {
                namespace: "default".into(),
                name: "web".into(),
                ports: vec![ServicePort {
                    name: "http".into(),
                    protocol: "TCP".into(),
                    port: 80,
                }],
                endpoints: vec![Endpoint {
                    ip: "10.0.0.1".parse().ok(),
                    node: "n1".into(),
                    ready: true,
                    ports: vec![EndpointPort {
                        name: "http".into(),
                        protocol: "TCP".into(),
                        port: 8080,
                    }],
                    ..Endpoint::default()
                }],
            }],
            ingresses: vec![
                Ingress {
                    namespace: "default".into(),
                    name: "mine".into(),
                    class: Some("podswarm".into()),
                    rules: vec![rule("mine.test", "web"), rule("also.test", "web")],
                    ..Ingress::default()
                },
                Ingress {
                    namespace: "default".into(),
                    name: "classless".into(),
                    class: None,
                    rules: vec![rule("classless.test", "web")],
                    ..Ingress::default()
                },
                Ingress {
                    namespace: "default".into(),
                    name: "theirs".into(),
                    class: Some("nginx".into()),
                    rules: vec![rule("theirs.test", "web")],
                    ..Ingress::default()
                },
            ],
            ..View::default()
        }
    }

    #[test]
    fn only_ingresses_of_the_class_or_without_one_are_served() {
        let health = HealthRegistry::new(Duration::from_secs(10));
        let scope = Scope {
            class: "podswarm".into(),
            node: "n1".into(),
        };
        let (s, problems) = Snapshot::build(
            &view(),
            &scope,
            &health,
            &mut CertCache::new(),
            &crate::tls::provider(),
        );
        assert!(problems.is_empty());
        assert_eq!(s.version, 9);
        assert_eq!(s.ingresses, 2);
        assert!(s.router.route("mine.test", "/").is_some());
        assert!(s.router.route("classless.test", "/").is_some());
        assert!(s.router.route("theirs.test", "/").is_none());
        // Rules naming the same service port share one backend (one round-robin).
        let a = s.router.route("mine.test", "/").cloned();
        let b = s.router.route("also.test", "/").cloned();
        assert!(a.zip(b).is_some_and(|(a, b)| Arc::ptr_eq(&a, &b)));
        let targets = s.targets();
        assert_eq!(targets.len(), 1);
        assert!(targets[0].local);

        let other = Scope {
            class: "nginx".into(),
            node: "n1".into(),
        };
        let (s, _) = Snapshot::build(
            &view(),
            &other,
            &health,
            &mut CertCache::new(),
            &crate::tls::provider(),
        );
        assert!(s.router.route("theirs.test", "/").is_some());
        assert!(s.router.route("mine.test", "/").is_none());
    }
}
