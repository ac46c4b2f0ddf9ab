//! Service endpoints: resolving a backend reference, choosing an endpoint, health.
//!
//! A backend (service + port in the Ingress's namespace) is resolved against the view's
//! services each time a view is loaded: its targets are the **ready** endpoints with an IP and
//! the target port serving that service port (a number names the service port with that port
//! number, a name the one with that name; the view gives each endpoint's target ports by
//! service-port name). Nothing is looked up per request.
//!
//! Choosing ([`Backend::pick`]) is round-robin over the first non-empty group of
//! 1. healthy endpoints on this node (a local hop is cheaper and keeps working when the
//!    network between nodes does not),
//! 2. healthy endpoints anywhere,
//! 3. any endpoint: when every endpoint is marked unhealthy the marks may be wrong (all pods
//!    restarted at once), and a request that might work beats a certain 502,
//!
//! leaving out endpoints this request has already tried.
//!
//! Health has two inputs, kept per endpoint address in a [`HealthRegistry`] that outlives view
//! reloads (a reload neither forgets a dead endpoint nor re-checks everything):
//! - **passive**: an endpoint that refused or timed out a connection is left out for
//!   `eject` (10 s by default);
//! - **active**: [`check_health`] opens a TCP connection to every endpoint every interval and
//!   marks those that do not accept one as down until a later check succeeds.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use podswarm_view::{BackendPort, IngressBackend, Service};

/// The health of one endpoint address.
#[derive(Debug, Default)]
pub struct Health {
    /// Milliseconds since the registry's start until which the endpoint is left out.
    ejected_until: AtomicU64,
    /// The last active check failed.
    down: AtomicBool,
}

/// Health of every endpoint the current view knows, by address.
#[derive(Debug)]
pub struct HealthRegistry {
    start: Instant,
    eject: Duration,
    endpoints: Mutex<HashMap<SocketAddr, Arc<Health>>>,
}

impl HealthRegistry {
    pub fn new(eject: Duration) -> HealthRegistry {
        HealthRegistry {
            start: Instant::now(),
            eject,
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<Health>>> {
        self.endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The health record of `addr`, made on first use.
    pub fn get(&self, addr: SocketAddr) -> Arc<Health> {
        self.lock().entry(addr).or_default().clone()
    }

    /// Forgets endpoints that are not in `keep` (gone from the view).
    pub fn retain(&self, keep: &HashSet<SocketAddr>) {
        self.lock().retain(|a, _| keep.contains(a));
    }

    /// Leaves `addr` out for the ejection time.
    pub fn eject(&self, health: &Health) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(self.eject.as_millis()).unwrap_or(u64::MAX));
        health.ejected_until.store(until, Ordering::Relaxed);
    }

    pub fn usable(&self, health: &Health) -> bool {
        !health.down.load(Ordering::Relaxed)
            && health.ejected_until.load(Ordering::Relaxed) <= self.now_ms()
    }
}

/// One ready endpoint of a backend.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub pod: String,
    pub node: String,
    /// On this node.
    pub local: bool,
    pub health: Arc<Health>,
}

/// A service port of one namespace, resolved to its ready endpoints.
#[derive(Debug)]
pub struct Backend {
    pub namespace: String,
    pub service: String,
    pub port: BackendPort,
    pub targets: Vec<Target>,
    /// Why there is no target (for the 503 body).
    pub problem: Option<String>,
    next: AtomicUsize,
}

impl Backend {
    /// Resolves `backend` of an Ingress in `namespace` against the view's services.
    pub fn resolve(
        namespace: &str,
        backend: &IngressBackend,
        services: &HashMap<(&str, &str), &Service>,
        local_node: &str,
        health: &HealthRegistry,
    ) -> Backend {
        let mut b = Backend {
            namespace: namespace.to_owned(),
            service: backend.service.clone(),
            port: backend.port.clone(),
            targets: Vec::new(),
            problem: None,
            next: AtomicUsize::new(0),
        };
        let name = format!("{namespace}/{}", backend.service);
        let Some(svc) = services.get(&(namespace, backend.service.as_str())) else {
            b.problem = Some(format!("service {name} does not exist"));
            return b;
        };
        let tcp = |protocol: &str| protocol.is_empty() || protocol.eq_ignore_ascii_case("TCP");
        let port = svc
            .ports
            .iter()
            .filter(|p| tcp(&p.protocol))
            .find(|p| match &backend.port {
                BackendPort::Number(n) => p.port == *n,
                BackendPort::Name(n) => p.name == *n,
            });
        let Some(port) = port else {
            b.problem = Some(format!("service {name} has no TCP port {}", backend.port));
            return b;
        };
        for e in svc.endpoints.iter().filter(|e| e.ready) {
            let Some(ip) = e.ip else { continue };
            let Some(target_port) = e
                .ports
                .iter()
                .find(|p| p.name == port.name && tcp(&p.protocol))
            else {
                continue;
            };
            let addr = SocketAddr::new(ip, target_port.port);
            b.targets.push(Target {
                addr,
                pod: e.pod.clone(),
                node: e.node.clone(),
                local: !local_node.is_empty() && e.node == local_node,
                health: health.get(addr),
            });
        }
        if b.targets.is_empty() {
            b.problem = Some(format!("service {name} has no ready endpoints"));
        }
        b
    }

    /// `namespace/service:port`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.service, self.port)
    }

    /// The next endpoint for a request that has already tried `tried` (module docs).
    pub fn pick(&self, tried: &[SocketAddr], health: &HealthRegistry) -> Option<&Target> {
        let fresh = |t: &&Target| !tried.contains(&t.addr);
        let groups: [&dyn Fn(&Target) -> bool; 3] = [
            &|t| t.local && health.usable(&t.health),
            &|t| health.usable(&t.health),
            &|_| true,
        ];
        for group in groups {
            let count = self
                .targets
                .iter()
                .filter(fresh)
                .filter(|t| group(t))
                .count();
            if count > 0 {
                let n = self.next.fetch_add(1, Ordering::Relaxed) % count;
                return self
                    .targets
                    .iter()
                    .filter(fresh)
                    .filter(|t| group(t))
                    .nth(n);
            }
        }
        None
    }

    /// Whether an endpoint is left that this request has not tried.
    pub fn has_untried(&self, tried: &[SocketAddr]) -> bool {
        self.targets.iter().any(|t| !tried.contains(&t.addr))
    }
}

/// Checks every target once: a TCP connection within `timeout` or the target is down. Logs
/// changes.
pub async fn check_health(targets: Vec<Target>, timeout: Duration) {
    let mut checks = tokio::task::JoinSet::new();
    for t in targets {
        checks.spawn(async move {
            let up = matches!(
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(t.addr)).await,
                Ok(Ok(_))
            );
            let was_down = t.health.down.swap(!up, Ordering::Relaxed);
            if was_down && up {
                tracing::info!(endpoint = %t.addr, POD = %t.pod, "endpoint passes its health check again");
            } else if !was_down && !up {
                tracing::warn!(endpoint = %t.addr, POD = %t.pod, "endpoint fails its health check (no TCP connection); left out until it passes");
            }
        });
    }
    while checks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use podswarm_view::{Endpoint, EndpointPort, ServicePort};

    fn endpoint(ip: &str, node: &str, ready: bool, ports: &[(&str, u16)]) -> Endpoint {
        Endpoint {
            ip: ip.parse().ok(),
            pod: format!("pod-{ip}"),
            node: node.into(),
            ready,
            hostname: None,
            ports: ports
                .iter()
                .map(|(n, p)| EndpointPort {
                    name: (*n).into(),
                    protocol: "TCP".into(),
                    port: *p,
                })
                .collect(),
        }
    }

    fn service() -> Service {
        Service {
            namespace: "default".into(),
            name: "web".into(),
            ports: vec![
                ServicePort {
                    name: "http".into(),
                    protocol: "TCP".into(),
                    port: 80,
                },
                ServicePort {
                    name: "admin".into(),
                    protocol: "TCP".into(),
                    port: 9000,
                },
                ServicePort {
                    name: "dns".into(),
                    protocol: "UDP".into(),
                    port: 53,
                },
            ],
            endpoints: vec![
                endpoint("10.0.0.1", "n1", true, &[("http", 8080), ("admin", 9090)]),
                endpoint("10.0.0.2", "n2", true, &[("http", 8080)]),
                endpoint("10.0.0.3", "n2", false, &[("http", 8080)]),
            ],
        }
    }

    fn resolve(port: BackendPort, svc: &Service, node: &str, h: &HealthRegistry) -> Backend {
        let services = HashMap::from([(("default", "web"), svc)]);
        Backend::resolve(
            "default",
            &IngressBackend {
                service: "web".into(),
                port,
            },
            &services,
            node,
            h,
        )
    }

    fn addrs(b: &Backend) -> Vec<String> {
        b.targets.iter().map(|t| t.addr.to_string()).collect()
    }

    #[test]
    fn ports_resolve_by_number_and_by_name_to_ready_endpoints() {
        let h = HealthRegistry::new(Duration::from_secs(10));
        let svc = service();
        let b = resolve(BackendPort::Number(80), &svc, "n1", &h);
        assert_eq!(addrs(&b), ["10.0.0.1:8080", "10.0.0.2:8080"]);
        assert!(b.problem.is_none());
        assert!(b.targets[0].local && !b.targets[1].local);
        let b = resolve(BackendPort::Name("admin".into()), &svc, "n1", &h);
        assert_eq!(addrs(&b), ["10.0.0.1:9090"]);
        let b = resolve(BackendPort::Number(9000), &svc, "n1", &h);
        assert_eq!(addrs(&b), ["10.0.0.1:9090"]);

        let b = resolve(BackendPort::Number(81), &svc, "n1", &h);
        assert_eq!(
            b.problem.as_deref(),
            Some("service default/web has no TCP port 81")
        );
        let b = resolve(BackendPort::Name("dns".into()), &svc, "n1", &h);
        assert!(b.problem.is_some_and(|p| p.contains("no TCP port dns")));
        let empty = HashMap::new();
        let b = Backend::resolve(
            "default",
            &IngressBackend {
                service: "nope".into(),
                port: BackendPort::Number(80),
            },
            &empty,
            "n1",
            &h,
        );
        assert_eq!(
            b.problem.as_deref(),
            Some("service default/nope does not exist")
        );
        let mut idle = service();
        idle.endpoints.iter_mut().for_each(|e| e.ready = false);
        let b = resolve(BackendPort::Number(80), &idle, "n1", &h);
        assert!(b.targets.is_empty());
        assert_eq!(
            b.problem.as_deref(),
            Some("service default/web has no ready endpoints")
        );
    }

    #[test]
    fn round_robin_skips_tried_and_ejected_endpoints() {
        let h = HealthRegistry::new(Duration::from_secs(10));
        let mut svc = service();
        svc.endpoints
            .push(endpoint("10.0.0.4", "n3", true, &[("http", 8080)]));
        let b = resolve(BackendPort::Number(80), &svc, "elsewhere", &h);
        let picks: Vec<String> = (0..6)
            .filter_map(|_| b.pick(&[], &h).map(|t| t.addr.to_string()))
            .collect();
        assert_eq!(
            picks,
            [
                "10.0.0.1:8080",
                "10.0.0.2:8080",
                "10.0.0.4:8080",
                "10.0.0.1:8080",
                "10.0.0.2:8080",
                "10.0.0.4:8080"
            ]
        );
        let tried = [b.targets[0].addr, b.targets[1].addr];
        for _ in 0..3 {
            assert_eq!(b.pick(&tried, &h).map(|t| t.addr), Some(b.targets[2].addr));
        }
        assert!(b.has_untried(&tried));
        let all: Vec<SocketAddr> = b.targets.iter().map(|t| t.addr).collect();
        assert!(b.pick(&all, &h).is_none());
        assert!(!b.has_untried(&all));

        h.eject(&b.targets[1].health);
        for _ in 0..4 {
            assert_ne!(b.pick(&[], &h).map(|t| t.addr), Some(b.targets[1].addr));
        }
        // Every other endpoint tried: the ejected one is still a last resort.
        let others = [b.targets[0].addr, b.targets[2].addr];
        assert_eq!(b.pick(&others, &h).map(|t| t.addr), Some(b.targets[1].addr));
    }

    #[test]
    fn ejection_ends_after_its_time() {
        let h = HealthRegistry::new(Duration::from_millis(30));
        let health = h.get("10.0.0.1:80".parse().unwrap());
        assert!(h.usable(&health));
        h.eject(&health);
        assert!(!h.usable(&health));
        std::thread::sleep(Duration::from_millis(60));
        assert!(h.usable(&health));
    }

    #[test]
    fn a_healthy_local_endpoint_is_preferred() {
        let h = HealthRegistry::new(Duration::from_secs(10));
        let svc = service();
        let b = resolve(BackendPort::Number(80), &svc, "n2", &h);
        for _ in 0..4 {
            assert_eq!(
                b.pick(&[], &h).map(|t| t.node.as_str()),
                Some("n2"),
                "local first"
            );
        }
        h.eject(&b.targets[1].health);
        assert_eq!(b.pick(&[], &h).map(|t| t.node.as_str()), Some("n1"));
    }

    #[test]
    fn health_is_kept_per_address_across_resolutions() {
        let h = HealthRegistry::new(Duration::from_secs(10));
        let svc = service();
        let first = resolve(BackendPort::Number(80), &svc, "", &h);
        h.eject(&first.targets[0].health);
        let again = resolve(BackendPort::Number(80), &svc, "", &h);
        assert!(!h.usable(&again.targets[0].health));
        h.retain(&HashSet::new());
        let fresh = resolve(BackendPort::Number(80), &svc, "", &h);
        assert!(h.usable(&fresh.targets[0].health));
    }

    #[tokio::test]
    async fn the_active_check_marks_closed_ports_down_and_open_ones_up() {
        let h = HealthRegistry::new(Duration::from_secs(10));
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open_addr = open.local_addr().unwrap();
        let closed_addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let target = |addr: SocketAddr| Target {
            addr,
            pod: "p".into(),
            node: "n".into(),
            local: false,
            health: h.get(addr),
        };
        let (up, down) = (target(open_addr), target(closed_addr));
        check_health(vec![up.clone(), down.clone()], Duration::from_secs(1)).await;
        assert!(h.usable(&up.health));
        assert!(!h.usable(&down.health));
        drop(open);
    }
}
