//! Forwarding names outside the cluster domain to the upstream servers.
//!
//! hickory-resolver does the work: one [`Resolver`] for the process, each upstream configured with
//! UDP and TCP so that a truncated UDP answer is asked again over TCP, a shared answer cache
//! (`dns.cache_size` entries), no `/etc/hosts` and no search domains (clients send fully
//! qualified names; expanding them again here would ask upstreams for names nobody asked for).
//!
//! The resolver reports negative answers as errors; [`reply_from`] turns them back into what the
//! upstream said: NXDOMAIN stays NXDOMAIN (with the upstream's SOA, so clients cache it as long as
//! the zone wants), NODATA stays an empty NOERROR, and only failures (timeouts, unreachable or
//! failing upstreams) become SERVFAIL.
//!
//! Who may use forwarding and which names are forwarded is decided before this module is
//! reached (see `handler`); what this module still checks is the answer: with the whitelist on, an
//! answer whose CNAME chain leads to a name the whitelist does not allow is refused whole, so an
//! allowed name cannot be used to smuggle out the address of a disallowed one.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{Resolver, TokioResolver};
use podswarm_view::Whitelist;

use crate::Error;
use crate::cluster::Reply;

/// The forwarding side of the server.
pub struct Forwarder {
    resolver: TokioResolver,
    upstreams: Vec<SocketAddr>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder to `upstreams` (none: every forwarded question fails with SERVFAIL).
    pub fn new(
        upstreams: &[SocketAddr],
        cache_size: usize,
        timeout: Duration,
    ) -> Result<Forwarder, Error> {
        let servers = upstreams
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut builder = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        );
        let options = builder.options_mut();
        options.cache_size = u64::try_from(cache_size).unwrap_or(u64::MAX);
        options.use_hosts_file = ResolveHosts::Never;
        // Clients send absolute names; never append search domains.
        options.ndots = 0;
        // A forwarder passes the CNAME chain on (RFC 1034 4.3.2), and the whitelist check needs it.
        options.preserve_intermediates = true;
        // `timeout` bounds one pass over the upstreams (UDP retransmissions and the TCP retry
        // included); `attempts` counts further passes. One pass keeps a dead upstream's SERVFAIL
        // within a stub resolver's own timeout (5 s for glibc and dig), so the client hears a
        // clear failure instead of retrying into the same wait.
        options.timeout = timeout;
        options.attempts = 0;
        let resolver = builder
            .build()
            .map_err(|source| Error::Resolver { source })?;
        Ok(Forwarder {
            resolver,
            upstreams: upstreams.to_vec(),
        })
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Asks the upstreams; never fails, a failure is a SERVFAIL reply.
    pub async fn forward(&self, name: Name, qtype: RecordType, whitelist: &Whitelist) -> Reply {
        let mut name = name;
        name.set_fqdn(true);
        let result = self.resolver.lookup(name.clone(), qtype).await;
        if let Err(error) = &result
            && !error.is_no_records_found()
        {
            tracing::debug!(%name, %qtype, %error, "forwarding failed");
        }
        reply_from(result, whitelist)
    }
}

/// Turns the resolver's result back into the upstream's answer (see the module docs).
pub fn reply_from(result: Result<Lookup, NetError>, whitelist: &Whitelist) -> Reply {
    let mut reply = match result {
        Ok(lookup) => {
            if let Some(name) = leaves_whitelist(lookup.answers(), whitelist) {
                tracing::debug!(%name, "refused: the answer's CNAME chain leaves the whitelist");
                return Reply::error(ResponseCode::Refused);
            }
            let mut reply = Reply::error(ResponseCode::NoError);
            reply.answers = lookup.answers().to_vec();
            reply
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(no_records))) => {
            let code = match no_records.response_code {
                code @ (ResponseCode::NXDomain | ResponseCode::NoError) => code,
                _ => ResponseCode::ServFail,
            };
            let mut reply = Reply::error(code);
            if let Some(soa) = no_records.soa {
                reply.authorities.push(soa.into_record_of_rdata());
            }
            reply
        }
        Err(_) => Reply::error(ResponseCode::ServFail),
    };
    reply.recursion_available = true;
    reply
}

/// The first name in `answers` (an owner or a CNAME target) the whitelist does not allow.
fn leaves_whitelist(answers: &[hickory_proto::rr::Record], whitelist: &Whitelist) -> Option<Name> {
    if !whitelist.enabled {
        return None;
    }
    answers.iter().find_map(|r| {
        if !whitelist.allows(&r.name.to_ascii()) {
            return Some(r.name.clone());
        }
        match &r.data {
            RData::CNAME(target) if !whitelist.allows(&target.0.to_ascii()) => {
                Some(target.0.clone())
            }
            _ => None,
        }
    })
}

/// `IP` (port 53) or `IP:port` (`[v6]:port` for IPv6).
pub fn parse_upstream(value: &str) -> Result<SocketAddr, Error> {
    let value = value.trim();
    value
        .parse::<SocketAddr>()
        .or_else(|_| value.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| Error::Upstream {
            value: value.to_owned(),
        })
}

/// The `nameserver` addresses of a resolv.conf text, in order. Zone indices (`fe80::1%eth0`)
/// cannot be expressed in a `SocketAddr` without an interface index, so such entries are skipped.
pub fn resolv_conf_nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => addr.parse().ok(),
                _ => None,
            }
        })
        .collect()
}

/// Whether sending to `upstream` would reach this server itself (a forwarding loop).
pub fn is_self(upstream: SocketAddr, listen: SocketAddr) -> bool {
    if upstream.port() != listen.port() {
        return false;
    }
    let (up, own) = (upstream.ip().to_canonical(), listen.ip().to_canonical());
    // Bound to the wildcard, every loopback address on our port is us. Other local addresses
    // would be too, but listing them needs netlink; DESIGN.md has the server listen on one
    // address anyway.
    up == own || (own.is_unspecified() && up.is_loopback())
}

/// The upstreams to use: `configured` when given, else the nameservers of `resolv_conf`, in both
/// cases without ourselves.
pub fn upstreams(
    configured: &[String],
    listen: SocketAddr,
    resolv_conf: &Path,
) -> Result<Vec<SocketAddr>, Error> {
    let candidates = if configured.is_empty() {
        let text = std::fs::read_to_string(resolv_conf).map_err(|source| Error::ResolvConf {
            path: resolv_conf.to_owned(),
            source,
        })?;
        resolv_conf_nameservers(&text)
            .into_iter()
            .map(|ip| SocketAddr::new(ip, 53))
            .collect()
    } else {
        configured
            .iter()
            .map(|u| parse_upstream(u))
            .collect::<Result<Vec<_>, _>>()?
    };
    Ok(candidates
        .into_iter()
        .filter(|u| {
            let own = is_self(*u, listen);
            if own {
                tracing::info!(upstream = %u, "skipping an upstream that is this server");
            }
            !own
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, CNAME, SOA};
    use hickory_resolver::net::NoRecords;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn whitelist(hosts: &[&str]) -> Whitelist {
        Whitelist {
            enabled: true,
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    fn chain() -> Lookup {
        let q = Query::query(name("www.example.com."), RecordType::A);
        Lookup::new_with_max_ttl(
            q,
            [
                Record::from_rdata(
                    name("www.example.com."),
                    60,
                    RData::CNAME(CNAME(name("cdn.elsewhere.net."))),
                ),
                Record::from_rdata(
                    name("cdn.elsewhere.net."),
                    60,
                    RData::A(A::new(192, 0, 2, 1)),
                ),
            ],
        )
    }

    #[test]
    fn answers_pass_with_ra_and_their_cname_chain() {
        let r = reply_from(Ok(chain()), &Whitelist::default());
        assert_eq!(r.code, ResponseCode::NoError);
        assert!(r.recursion_available && !r.authoritative);
        assert_eq!(r.answers.len(), 2);
        let r = reply_from(Ok(chain()), &whitelist(&["example.com", "elsewhere.net"]));
        assert_eq!(r.answers.len(), 2);
    }

    #[test]
    fn a_cname_chain_leaving_the_whitelist_is_refused() {
        let r = reply_from(Ok(chain()), &whitelist(&["example.com"]));
        assert_eq!(r.code, ResponseCode::Refused);
        assert!(r.answers.is_empty());
    }

    #[test]
    fn negative_answers_keep_their_code_and_soa() {
        let q = Query::query(name("nope.example.com."), RecordType::A);
        let mut nx = NoRecords::new(q.clone(), ResponseCode::NXDomain);
        let soa = SOA::new(
            name("ns.example.com."),
            name("hostmaster.example.com."),
            1,
            2,
            3,
            4,
            300,
        );
        nx.soa = Some(Box::new(Record::from_rdata(name("example.com."), 300, soa)));
        let r = reply_from(Err(nx.into()), &Whitelist::default());
        assert_eq!(r.code, ResponseCode::NXDomain);
        assert!(r.recursion_available);
        assert_eq!(r.authorities.len(), 1);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);

        let nodata = NoRecords::new(q, ResponseCode::NoError);
        let r = reply_from(Err(nodata.into()), &Whitelist::default());
        assert_eq!(r.code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
    }

    #[test]
    fn failures_are_servfail() {
        for e in [
            NetError::Timeout,
            NetError::NoConnections,
            NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)),
        ] {
            let r = reply_from(Err(e), &Whitelist::default());
            assert_eq!(r.code, ResponseCode::ServFail);
            assert!(r.recursion_available);
        }
    }

    #[test]
    fn upstreams_parse_with_and_without_ports() {
        assert_eq!(parse_upstream("192.0.2.1").ok(), Some(sa("192.0.2.1:53")));
        assert_eq!(
            parse_upstream(" 192.0.2.1:5353 ").ok(),
            Some(sa("192.0.2.1:5353"))
        );
        assert_eq!(
            parse_upstream("2001:db8::1").ok(),
            Some(sa("[2001:db8::1]:53"))
        );
        assert_eq!(
            parse_upstream("[2001:db8::1]:54").ok(),
            Some(sa("[2001:db8::1]:54"))
        );
        assert!(matches!(
            parse_upstream("dns.example"),
            Err(Error::Upstream { .. })
        ));
    }

    #[test]
    fn resolv_conf_nameservers_in_order() {
        let text = "# generated\nsearch example.com\nnameserver 192.0.2.1\n  nameserver\t2001:db8::1 # v6\n; nameserver 192.0.2.9\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:5\n";
        assert_eq!(
            resolv_conf_nameservers(text),
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ]
        );
    }

    #[test]
    fn our_own_address_is_never_an_upstream() {
        assert!(is_self(sa("10.0.0.1:53"), sa("10.0.0.1:53")));
        assert!(is_self(sa("127.0.0.53:53"), sa("0.0.0.0:53")));
        assert!(is_self(sa("[::1]:53"), sa("[::]:53")));
        assert!(!is_self(sa("127.0.0.53:53"), sa("10.0.0.1:53")));
        assert!(!is_self(sa("127.0.0.1:53"), sa("0.0.0.0:5353")));

        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("resolv.conf");
        std::fs::write(&conf, "nameserver 127.0.0.1\nnameserver 192.0.2.1\n").unwrap();
        assert_eq!(
            upstreams(&[], sa("0.0.0.0:53"), &conf).ok(),
            Some(vec![sa("192.0.2.1:53")])
        );
        assert_eq!(
            upstreams(&["127.0.0.1:5300".into()], sa("0.0.0.0:53"), &conf).ok(),
            Some(vec![sa("127.0.0.1:5300")])
        );
        assert!(matches!(
            upstreams(&[], sa("0.0.0.0:53"), &dir.path().join("missing")),
            Err(Error::ResolvConf { .. })
        ));
    }
}
