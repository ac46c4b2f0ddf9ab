//! Answers for names under the cluster domain, computed from the routing view alone.
//!
//! Everything here is a pure function of a [`View`]: no clock, no I/O, no randomness, so the same
//! view and question always give the same answer (unit tests and the fuzz target rely on it).
//!
//! The names follow Kubernetes' DNS specification, as far as podswarm has the data:
//!
//! | name | records |
//! |---|---|
//! | `<svc>.<ns>.svc.<domain>`, `<svc>.<ns>.<domain>` | A/AAAA: every ready endpoint IP, once |
//! | `_<port>._<proto>.<svc>.<ns>.svc.<domain>` | SRV: one per ready endpoint with that port, target `<ip-dashed>.<ns>.pod.<domain>.`, addresses in the additional section |
//! | `<a-b-c-d>.<ns>.pod.<domain>` | A (or AAAA, colons dashed) when a pod of that namespace, or an endpoint of one of its services, has the address |
//! | `<hostname>.<subdomain>.<ns>.svc.<domain>` | A/AAAA of pods with that `hostname`/`subdomain`, and of ready endpoints of service `<subdomain>` with that hostname |
//!
//! Names that exist without records of their own (the domain, `svc.<domain>`, a namespace, a
//! service without ready endpoints, `_<proto>.<svc>…`) and names asked for another type answer
//! NODATA (NOERROR, no answer); every other name under the domain is NXDOMAIN. The difference
//! matters: resolvers walking a search list (`<ns>.svc.cluster.local svc.cluster.local
//! cluster.local`) move on to the next suffix only on NXDOMAIN, and an empty NOERROR for an
//! unknown name would make them give up early. Negative answers carry the domain's SOA (with the
//! record TTL as its minimum) so that caches keep them no longer than positive ones.
//!
//! Two shapes overlap: `<x>.svc.<domain>` and `<x>.pod.<domain>` are read as namespaces, never as
//! the short form of a service `x` in a namespace called `svc` or `pod`; such services are still
//! reachable through the long form `<x>.svc.svc.<domain>`.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use podswarm_view::{Service, ServicePort, View};

/// The domain used when the view does not name one (no view yet).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// What the server sends back: a response code, its flags and its records, owned so that it can
/// outlive the view it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: ResponseCode,
    /// AA: set for cluster names, which this server is the authority for.
    pub authoritative: bool,
    /// RA: set on forwarded answers.
    pub recursion_available: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Reply {
    /// A reply with a code and no records.
    pub fn error(code: ResponseCode) -> Reply {
        Reply {
            code,
            authoritative: false,
            recursion_available: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// What a name under the cluster domain refers to. Labels are lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterName {
    /// The cluster domain itself.
    Apex,
    /// `svc.<domain>`.
    ServiceZone,
    /// `pod.<domain>`.
    PodZone,
    /// `<ns>.svc.<domain>`, `<ns>.pod.<domain>` or `<ns>.<domain>`.
    Namespace { namespace: String },
    /// `<svc>.<ns>.svc.<domain>` or `<svc>.<ns>.<domain>`.
    Service { namespace: String, service: String },
    /// `_<proto>.<svc>.<ns>.svc.<domain>`: exists when the service has a port of that protocol.
    ServiceProtocol {
        namespace: String,
        service: String,
        protocol: String,
    },
    /// `_<port>._<proto>.<svc>.<ns>.svc.<domain>`.
    ServicePort {
        namespace: String,
        service: String,
        protocol: String,
        port: String,
    },
    /// `<hostname>.<subdomain>.<ns>.svc.<domain>`.
    PodHostname {
        namespace: String,
        subdomain: String,
        hostname: String,
    },
    /// `<ip-dashed>.<ns>.pod.<domain>`.
    PodAddress { namespace: String, ip: IpAddr },
    /// Under the domain, but of no shape podswarm serves: NXDOMAIN.
    Unknown,
}

/// The cluster domain of a view, lower case, without dots at either end.
pub fn cluster_domain(view: &View) -> String {
    let domain = view.cluster_domain.trim_matches('.');
    if domain.is_empty() {
        DEFAULT_CLUSTER_DOMAIN.to_owned()
    } else {
        domain.to_ascii_lowercase()
    }
}

/// Reads `name` relative to `domain`; `None` when the name is not under it.
pub fn parse(name: &Name, domain: &str) -> Option<ClusterName> {
    let domain_labels: Vec<&str> = domain
        .trim_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .collect();
    let labels: Vec<&[u8]> = name.iter().collect();
    if domain_labels.is_empty() || labels.len() < domain_labels.len() {
        return None;
    }
    let split = labels.len() - domain_labels.len();
    let under = labels[split..]
        .iter()
        .zip(&domain_labels)
        .all(|(l, d)| l.eq_ignore_ascii_case(d.as_bytes()));
    if !under {
        return None;
    }
    // A label that is not text cannot name anything in the view.
    let Some(rest) = labels[..split]
        .iter()
        .map(|l| std::str::from_utf8(l).ok().map(str::to_ascii_lowercase))
        .collect::<Option<Vec<String>>>()
    else {
        return Some(ClusterName::Unknown);
    };
    Some(classify(rest))
}

fn classify(rest: Vec<String>) -> ClusterName {
    let underscored = |l: &str| l.strip_prefix('_').map(str::to_owned);
    let parts: Vec<&str> = rest.iter().map(String::as_str).collect();
    match parts.as_slice() {
        [] => ClusterName::Apex,
        ["svc"] => ClusterName::ServiceZone,
        ["pod"] => ClusterName::PodZone,
        [ns] | [ns, "svc" | "pod"] => ClusterName::Namespace {
            namespace: (*ns).to_owned(),
        },
        [svc, ns] | [svc, ns, "svc"] => ClusterName::Service {
            namespace: (*ns).to_owned(),
            service: (*svc).to_owned(),
        },
        [ip, ns, "pod"] => match parse_dashed_ip(ip) {
            Some(ip) => ClusterName::PodAddress {
                namespace: (*ns).to_owned(),
                ip,
            },
            None => ClusterName::Unknown,
        },
        [first, svc, ns, "svc"] => match underscored(first) {
            Some(protocol) => ClusterName::ServiceProtocol {
                namespace: (*ns).to_owned(),
                service: (*svc).to_owned(),
                protocol,
            },
            None => ClusterName::PodHostname {
                namespace: (*ns).to_owned(),
                subdomain: (*svc).to_owned(),
                hostname: (*first).to_owned(),
            },
        },
        [port, proto, svc, ns, "svc"] => match (underscored(port), underscored(proto)) {
            (Some(port), Some(protocol)) => ClusterName::ServicePort {
                namespace: (*ns).to_owned(),
                service: (*svc).to_owned(),
                protocol,
                port,
            },
            _ => ClusterName::Unknown,
        },
        _ => ClusterName::Unknown,
    }
}

/// `10-244-1-5` → 10.244.1.5; `fd00--5` → fd00::5 (colons dashed, as in SRV targets).
pub fn parse_dashed_ip(label: &str) -> Option<IpAddr> {
    if label.is_empty() {
        return None;
    }
    label
        .replace('-', ".")
        .parse::<std::net::Ipv4Addr>()
        .map(IpAddr::V4)
        .ok()
        .or_else(|| {
            label
                .replace('-', ":")
                .parse::<std::net::Ipv6Addr>()
                .map(IpAddr::V6)
                .ok()
        })
}

/// The label form of an address: dots (IPv4) or colons (IPv6) replaced by dashes.
pub fn dashed_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// Answers a question about a cluster name; `None` when `name` is not under the view's domain
/// (the caller then forwards or refuses it).
pub fn lookup(view: &View, name: &Name, qtype: RecordType, ttl: u32) -> Option<Reply> {
    let domain = cluster_domain(view);
    let parsed = parse(name, &domain)?;
    // Built only for the answers that carry it (negative ones, SOA queries): making three names
    // for every positive answer was a fifth of the time spent on a query.
    let soa = || soa_record(view, &domain, ttl);
    let found = find(view, &parsed, &domain);
    let mut reply = Reply::error(ResponseCode::NoError);
    reply.authoritative = true;
    let Some(found) = found else {
        reply.code = ResponseCode::NXDomain;
        reply.authorities.extend(soa());
        return Some(reply);
    };
    let any = qtype == RecordType::ANY;
    // Records are owned by the name in lower case, as the view spells everything else. hickory
    // copies the question verbatim and never compresses onto it, so an owner in the question's
    // case would make the answer's bytes differ with every 0x20-randomised query; in one case
    // they are the same for all, which lets the UDP loop's packet cache (`fast`) serve them.
    // Resolvers compare owner names without regard to case (RFC 4343).
    let owner = || name.to_lowercase();
    match found {
        Found::Node => {
            if matches!(parsed, ClusterName::Apex) && (qtype == RecordType::SOA || any) {
                reply.answers.extend(soa());
            }
        }
        Found::Addresses(ips) => {
            reply.answers = address_records(&owner(), &ips, qtype, ttl);
        }
        Found::Srv(targets) => {
            if qtype == RecordType::SRV || any {
                let owner = owner();
                let weight = srv_weight(targets.len());
                for t in &targets {
                    reply.answers.push(Record::from_rdata(
                        owner.clone(),
                        ttl,
                        RData::SRV(SRV::new(0, weight, t.port, t.target.clone())),
                    ));
                }
                let mut seen: Vec<&Name> = Vec::new();
                for t in &targets {
                    if !seen.contains(&&t.target) {
                        seen.push(&t.target);
                        reply.additionals.push(Record::from_rdata(
                            t.target.clone(),
                            ttl,
                            address_rdata(t.ip),
                        ));
                    }
                }
            }
        }
    }
    if reply.answers.is_empty() {
        // NODATA: the name exists, the type does not.
        reply.authorities.extend(soa());
    }
    Some(reply)
}

/// The relative weight of each of `n` equal SRV records: shares of 100, as CoreDNS does.
fn srv_weight(n: usize) -> u16 {
    u16::try_from(100 / n.max(1)).unwrap_or(1).max(1)
}

enum Found {
    /// The name exists; it has no address or SRV records of its own.
    Node,
    /// The name exists with these addresses (possibly none: NODATA).
    Addresses(Vec<IpAddr>),
    /// The name exists with these SRV targets (possibly none).
    Srv(Vec<SrvTarget>),
}

struct SrvTarget {
    ip: IpAddr,
    port: u16,
    target: Name,
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn service<'v>(view: &'v View, namespace: &str, name: &str) -> Option<&'v Service> {
    // The reloader keeps services in (namespace, name) order and Kubernetes names are lower
    // case, as the query's labels are by now: a binary search finds them. A view that is not in
    // order (built by hand) or names in other cases still answer, by the scan.
    if let Ok(i) = view
        .services
        .binary_search_by(|s| (s.namespace.as_str(), s.name.as_str()).cmp(&(namespace, name)))
    {
        return view.services.get(i);
    }
    view.services
        .iter()
        .find(|s| same(&s.name, name) && same(&s.namespace, namespace))
}

fn push_unique(ips: &mut Vec<IpAddr>, ip: IpAddr) {
    if !ips.contains(&ip) {
        ips.push(ip);
    }
}

fn ready_ips(service: &Service) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for ip in service
        .endpoints
        .iter()
        .filter(|e| e.ready)
        .filter_map(|e| e.ip)
    {
        push_unique(&mut ips, ip);
    }
    ips
}

fn find(view: &View, parsed: &ClusterName, domain: &str) -> Option<Found> {
    match parsed {
        ClusterName::Apex | ClusterName::ServiceZone | ClusterName::PodZone => Some(Found::Node),
        ClusterName::Namespace { namespace } => {
            let known = view.services.iter().any(|s| same(&s.namespace, namespace))
                || view.pods.iter().any(|p| same(&p.namespace, namespace));
            known.then_some(Found::Node)
        }
        ClusterName::Service {
            namespace,
            service: name,
        } => service(view, namespace, name).map(|s| Found::Addresses(ready_ips(s))),
        ClusterName::ServiceProtocol {
            namespace,
            service: name,
            protocol,
        } => {
            let s = service(view, namespace, name)?;
            s.ports
                .iter()
                .any(|p| same(&p.protocol, protocol))
                .then_some(Found::Node)
        }
        ClusterName::ServicePort {
            namespace,
            service: name,
            protocol,
            port,
        } => {
            let s = service(view, namespace, name)?;
            // Unnamed ports have no SRV name (`_._tcp` is not one).
            let sp = s.ports.iter().find(|p| {
                !p.name.is_empty() && same(&p.name, port) && same(&p.protocol, protocol)
            })?;
            Some(Found::Srv(srv_targets(s, sp, domain)))
        }
        ClusterName::PodHostname {
            namespace,
            subdomain,
            hostname,
        } => {
            let mut exists = false;
            let mut ips = Vec::new();
            for pod in view.pods.iter().filter(|p| {
                same(&p.namespace, namespace)
                    && p.subdomain.as_deref().is_some_and(|s| same(s, subdomain))
                    && p.hostname.as_deref().is_some_and(|h| same(h, hostname))
            }) {
                exists = true;
                if let Some(ip) = pod.ip {
                    push_unique(&mut ips, ip);
                }
            }
            if let Some(s) = service(view, namespace, subdomain) {
                for e in s
                    .endpoints
                    .iter()
                    .filter(|e| e.ready && e.hostname.as_deref().is_some_and(|h| same(h, hostname)))
                {
                    exists = true;
                    if let Some(ip) = e.ip {
                        push_unique(&mut ips, ip);
                    }
                }
            }
            exists.then_some(Found::Addresses(ips))
        }
        ClusterName::PodAddress { namespace, ip } => {
            // Endpoints are pods too: SRV targets must resolve even if a view lists a pod only
            // as an endpoint.
            let known = view
                .pods
                .iter()
                .any(|p| same(&p.namespace, namespace) && p.ip == Some(*ip))
                || view
                    .services
                    .iter()
                    .filter(|s| same(&s.namespace, namespace))
                    .flat_map(|s| &s.endpoints)
                    .any(|e| e.ip == Some(*ip));
            known.then(|| Found::Addresses(vec![*ip]))
        }
        ClusterName::Unknown => None,
    }
}

fn srv_targets(service: &Service, port: &ServicePort, domain: &str) -> Vec<SrvTarget> {
    let mut targets: Vec<SrvTarget> = Vec::new();
    for e in service.endpoints.iter().filter(|e| e.ready) {
        let Some(ip) = e.ip else { continue };
        // The endpoint's target port for this service port; an endpoint without it (the pod
        // lacks the named container port) cannot serve it.
        let Some(ep) = e.ports.iter().find(|p| {
            same(&p.name, &port.name)
                && (p.protocol.is_empty() || same(&p.protocol, &port.protocol))
        }) else {
            continue;
        };
        if targets.iter().any(|t| t.ip == ip && t.port == ep.port) {
            continue;
        }
        let target = format!(
            "{}.{}.pod.{}.",
            dashed_ip(ip),
            service.namespace.to_ascii_lowercase(),
            domain
        );
        if let Ok(target) = Name::from_ascii(&target) {
            targets.push(SrvTarget {
                ip,
                port: ep.port,
                target,
            });
        }
    }
    targets
}

fn address_rdata(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}

fn address_records(name: &Name, ips: &[IpAddr], qtype: RecordType, ttl: u32) -> Vec<Record> {
    ips.iter()
        .filter(|ip| match qtype {
            RecordType::A => ip.is_ipv4(),
            RecordType::AAAA => ip.is_ipv6(),
            RecordType::ANY => true,
            _ => false,
        })
        .map(|ip| Record::from_rdata(name.clone(), ttl, address_rdata(*ip)))
        .collect()
}

/// The domain's SOA: the serial is the view version (so it changes with the data), the minimum
/// is the record TTL (RFC 2308: negative answers are cached for min(SOA TTL, minimum)).
fn soa_record(view: &View, domain: &str, ttl: u32) -> Option<Record> {
    let apex = Name::from_ascii(format!("{domain}.")).ok()?;
    let mname = Name::from_ascii(format!("ns.dns.{domain}.")).ok()?;
    let rname = Name::from_ascii(format!("hostmaster.{domain}.")).ok()?;
    // Serial numbers wrap (RFC 1982); the low 32 bits keep increasing with the version.
    let serial = (view.version & u64::from(u32::MAX)) as u32;
    Some(Record::from_rdata(
        apex,
        ttl,
        RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, ttl)),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use podswarm_view::{Endpoint, EndpointPort, Pod};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    pub(crate) fn endpoint(addr: &str, ready: bool, port: u16) -> Endpoint {
        Endpoint {
            ip: Some(ip(addr)),
            pod: format!("pod-{addr}"),
            node: "n1".into(),
            ready,
            hostname: None,
            ports: vec![EndpointPort {
                name: "http".into(),
                protocol: "TCP".into(),
                port,
            }],
        }
    }

    fn view() -> View {
        View {
            version: 7,
            cluster_domain: "cluster.local".into(),
            services: vec![
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
                            name: String::new(),
                            protocol: "UDP".into(),
                            port: 53,
                        },
                    ],
                    endpoints: vec![
                        endpoint("10.244.1.5", true, 8080),
                        endpoint("10.244.2.7", true, 8080),
                        // Same pod listed twice (two ports): one record.
                        endpoint("10.244.1.5", true, 8080),
                        endpoint("10.244.3.9", false, 8080),
                        endpoint("fd00::5", true, 8080),
                    ],
                },
                Service {
                    namespace: "default".into(),
                    name: "idle".into(),
                    ports: vec![],
                    endpoints: vec![endpoint("10.244.1.8", false, 80)],
                },
            ],
            pods: vec![
                Pod {
                    namespace: "default".into(),
                    name: "web-0".into(),
                    ip: Some(ip("10.244.1.5")),
                    hostname: Some("web-0".into()),
                    subdomain: Some("web".into()),
                    node: "n1".into(),
                },
                Pod {
                    namespace: "other".into(),
                    name: "x".into(),
                    ip: Some(ip("10.244.9.9")),
                    hostname: None,
                    subdomain: None,
                    node: "n2".into(),
                },
            ],
            ..View::default()
        }
    }

    fn ips_of(reply: &Reply) -> Vec<IpAddr> {
        reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    }

    fn ask(v: &View, n: &str, t: RecordType) -> Reply {
        lookup(v, &name(n), t, 5).unwrap_or_else(|| panic!("{n} is not a cluster name"))
    }

    #[test]
    fn parses_every_shape() {
        let d = "cluster.local";
        let p = |s: &str| parse(&name(s), d);
        assert_eq!(p("example.com."), None);
        assert_eq!(p("local."), None);
        assert_eq!(p("CLUSTER.Local."), Some(ClusterName::Apex));
        assert_eq!(p("svc.cluster.local."), Some(ClusterName::ServiceZone));
        assert_eq!(p("pod.cluster.local"), Some(ClusterName::PodZone));
        assert_eq!(
            p("Web.Default.svc.cluster.local."),
            Some(ClusterName::Service {
                namespace: "default".into(),
                service: "web".into()
            })
        );
        assert_eq!(
            p("web.default.cluster.local."),
            Some(ClusterName::Service {
                namespace: "default".into(),
                service: "web".into()
            })
        );
        assert_eq!(
            p("default.svc.cluster.local."),
            Some(ClusterName::Namespace {
                namespace: "default".into()
            })
        );
        assert_eq!(
            p("_http._tcp.web.default.svc.cluster.local."),
            Some(ClusterName::ServicePort {
                namespace: "default".into(),
                service: "web".into(),
                protocol: "tcp".into(),
                port: "http".into()
            })
        );
        assert_eq!(
            p("_tcp.web.default.svc.cluster.local."),
            Some(ClusterName::ServiceProtocol {
                namespace: "default".into(),
                service: "web".into(),
                protocol: "tcp".into()
            })
        );
        assert_eq!(
            p("web-0.web.default.svc.cluster.local."),
            Some(ClusterName::PodHostname {
                namespace: "default".into(),
                subdomain: "web".into(),
                hostname: "web-0".into()
            })
        );
        assert_eq!(
            p("10-244-1-5.default.pod.cluster.local."),
            Some(ClusterName::PodAddress {
                namespace: "default".into(),
                ip: ip("10.244.1.5")
            })
        );
        assert_eq!(
            p("fd00--5.default.pod.cluster.local."),
            Some(ClusterName::PodAddress {
                namespace: "default".into(),
                ip: ip("fd00::5")
            })
        );
        assert_eq!(
            p("nonsense.default.pod.cluster.local."),
            Some(ClusterName::Unknown)
        );
        assert_eq!(p("a.b.c.d.e.f.cluster.local."), Some(ClusterName::Unknown));
        assert_eq!(
            p("http._tcp.web.default.svc.cluster.local."),
            Some(ClusterName::Unknown)
        );
    }

    #[test]
    fn dashed_addresses_round_trip() {
        for s in ["10.244.1.5", "fd00::5", "2001:db8::1:2"] {
            assert_eq!(parse_dashed_ip(&dashed_ip(ip(s))), Some(ip(s)));
        }
        assert_eq!(parse_dashed_ip(""), None);
        assert_eq!(parse_dashed_ip("10-244-1"), None);
        assert_eq!(parse_dashed_ip("256-1-1-1"), None);
    }

    #[test]
    fn service_names_answer_ready_endpoints_once_in_both_forms() {
        let v = view();
        for n in [
            "web.default.svc.cluster.local.",
            "WEB.default.cluster.local.",
            "web.default.svc.cluster.local",
        ] {
            let r = ask(&v, n, RecordType::A);
            assert_eq!(r.code, ResponseCode::NoError, "{n}");
            assert!(r.authoritative);
            assert_eq!(ips_of(&r), vec![ip("10.244.1.5"), ip("10.244.2.7")], "{n}");
            assert!(r.answers.iter().all(|a| a.ttl == 5));
        }
        let r = ask(&v, "web.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(ips_of(&r), vec![ip("fd00::5")]);
    }

    #[test]
    fn a_service_without_ready_endpoints_is_nodata_not_nxdomain() {
        let r = ask(&view(), "idle.default.svc.cluster.local.", RecordType::A);
        assert_eq!(r.code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities.len(), 1);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn other_types_on_existing_names_are_nodata() {
        let v = view();
        for (n, t) in [
            ("web.default.svc.cluster.local.", RecordType::MX),
            ("web.default.svc.cluster.local.", RecordType::TXT),
            ("web.default.svc.cluster.local.", RecordType::SRV),
            ("idle.default.svc.cluster.local.", RecordType::AAAA),
            ("default.svc.cluster.local.", RecordType::A),
            ("svc.cluster.local.", RecordType::A),
            ("cluster.local.", RecordType::A),
            ("_tcp.web.default.svc.cluster.local.", RecordType::SRV),
            ("_http._tcp.web.default.svc.cluster.local.", RecordType::A),
            ("10-244-1-5.default.pod.cluster.local.", RecordType::AAAA),
        ] {
            let r = ask(&v, n, t);
            assert_eq!(r.code, ResponseCode::NoError, "{n} {t}");
            assert!(r.answers.is_empty(), "{n} {t}");
            assert!(r.authoritative);
        }
    }

    #[test]
    fn unknown_names_are_nxdomain_with_the_soa() {
        let v = view();
        for n in [
            "nope.default.svc.cluster.local.",
            "web.nope.svc.cluster.local.",
            "nope.svc.cluster.local.",
            "google.com.default.svc.cluster.local.",
            "_sctp.web.default.svc.cluster.local.",
            "_https._tcp.web.default.svc.cluster.local.",
            "_http._udp.web.default.svc.cluster.local.",
            "10-244-1-6.default.pod.cluster.local.",
            "10-244-9-9.default.pod.cluster.local.",
            "x.y.z.pod.cluster.local.",
        ] {
            let r = ask(&v, n, RecordType::A);
            assert_eq!(r.code, ResponseCode::NXDomain, "{n}");
            assert!(r.answers.is_empty());
            assert!(r.authoritative);
            let Some(RData::SOA(soa)) = r.authorities.first().map(|r| &r.data) else {
                panic!("{n}: no SOA")
            };
            assert_eq!(soa.serial, 7);
            assert_eq!(soa.minimum, 5);
        }
    }

    #[test]
    fn srv_has_real_ports_pod_targets_and_additional_addresses() {
        let r = ask(
            &view(),
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(r.code, ResponseCode::NoError);
        let srvs: Vec<&SRV> = r
            .answers
            .iter()
            .filter_map(|a| match &a.data {
                RData::SRV(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(srvs.len(), 3);
        assert!(srvs.iter().all(|s| s.port == 8080 && s.priority == 0));
        assert!(
            srvs.iter()
                .all(|s| s.weight == srvs[0].weight && s.weight > 0)
        );
        let targets: Vec<String> = srvs.iter().map(|s| s.target.to_ascii()).collect();
        assert_eq!(
            targets,
            [
                "10-244-1-5.default.pod.cluster.local.",
                "10-244-2-7.default.pod.cluster.local.",
                "fd00--5.default.pod.cluster.local.",
            ]
        );
        assert_eq!(r.additionals.len(), 3);
        assert_eq!(
            r.additionals[0].name,
            name("10-244-1-5.default.pod.cluster.local.")
        );
        assert_eq!(r.additionals[0].data, RData::A(A::new(10, 244, 1, 5)));
        assert_eq!(r.additionals[2].record_type(), RecordType::AAAA);
    }

    #[test]
    fn unnamed_ports_have_no_srv_name() {
        let r = ask(
            &view(),
            "_._udp.web.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(r.code, ResponseCode::NXDomain);
    }

    #[test]
    fn pod_records_by_address_and_by_hostname() {
        let v = view();
        let r = ask(&v, "10-244-1-5.default.pod.cluster.local.", RecordType::A);
        assert_eq!(ips_of(&r), vec![ip("10.244.1.5")]);
        // The address belongs to a pod of another namespace: not here.
        let r = ask(&v, "10-244-9-9.default.pod.cluster.local.", RecordType::A);
        assert_eq!(r.code, ResponseCode::NXDomain);
        let r = ask(&v, "10-244-9-9.other.pod.cluster.local.", RecordType::A);
        assert_eq!(ips_of(&r), vec![ip("10.244.9.9")]);
        // Listed only as an endpoint (every SRV target resolves).
        let r = ask(&v, "10-244-2-7.default.pod.cluster.local.", RecordType::A);
        assert_eq!(ips_of(&r), vec![ip("10.244.2.7")]);
        let r = ask(&v, "web-0.web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(ips_of(&r), vec![ip("10.244.1.5")]);
        let r = ask(&v, "web-1.web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(r.code, ResponseCode::NXDomain);
    }

    #[test]
    fn namespaces_exist_only_with_services_or_pods() {
        let v = view();
        assert_eq!(
            ask(&v, "other.pod.cluster.local.", RecordType::A).code,
            ResponseCode::NoError
        );
        assert_eq!(
            ask(&v, "default.cluster.local.", RecordType::A).code,
            ResponseCode::NoError
        );
        assert_eq!(
            ask(&v, "ghost.cluster.local.", RecordType::A).code,
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn the_apex_answers_its_soa() {
        let r = ask(&view(), "cluster.local.", RecordType::SOA);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn an_empty_view_uses_the_default_domain_and_knows_no_names() {
        let v = View::default();
        assert_eq!(
            ask(&v, "web.default.svc.cluster.local.", RecordType::A).code,
            ResponseCode::NXDomain
        );
        assert!(lookup(&v, &name("example.com."), RecordType::A, 5).is_none());
    }

    #[test]
    fn another_domain_is_honoured() {
        let mut v = view();
        v.cluster_domain = "Swarm.Example.".into();
        assert!(
            lookup(
                &v,
                &name("web.default.svc.cluster.local."),
                RecordType::A,
                5
            )
            .is_none()
        );
        let r = ask(&v, "web.default.svc.swarm.example.", RecordType::A);
        assert_eq!(ips_of(&r).len(), 2);
        let r = ask(
            &v,
            "_http._tcp.web.default.svc.swarm.example.",
            RecordType::SRV,
        );
        assert!(r.answers.iter().all(|a| match &a.data {
            RData::SRV(s) => s.target.to_ascii().ends_with(".default.pod.swarm.example."),
            _ => false,
        }));
    }

    #[test]
    fn srv_weights_stay_positive() {
        assert_eq!(srv_weight(1), 100);
        assert_eq!(srv_weight(3), 33);
        assert_eq!(srv_weight(1000), 1);
        assert_eq!(srv_weight(0), 100);
    }
}
