//! Test support: a server with a view file in a temporary directory, real DNS clients (hickory's
//! UDP and TCP clients, bound to 127.0.0.1), and a fake upstream server.

// Test helpers, outside #[test] functions: a panic is the failure report here too.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_resolver::net::client::{Client, ClientHandle};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::tcp::TcpClientStream;
use hickory_resolver::net::udp::UdpClientStream;
use podswarm_dns::{Dns, Settings};
use podswarm_view::{Endpoint, EndpointPort, Pod, Service, ServicePort, View, Whitelist};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn endpoint(addr: &str, ready: bool, port: u16) -> Endpoint {
    Endpoint {
        ip: Some(ip(addr)),
        pod: format!("web-{addr}"),
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

/// Two services (one with ready endpoints, one without) and two pods.
pub fn cluster_view() -> View {
    View {
        version: 1,
        cluster_domain: "cluster.local".into(),
        services: vec![
            Service {
                namespace: "default".into(),
                name: "web".into(),
                ports: vec![ServicePort {
                    name: "http".into(),
                    protocol: "TCP".into(),
                    port: 80,
                }],
                endpoints: vec![
                    endpoint("10.244.1.5", true, 8080),
                    endpoint("10.244.2.7", true, 8080),
                    endpoint("10.244.3.9", false, 8080),
                ],
            },
            Service {
                namespace: "default".into(),
                name: "idle".into(),
                ports: vec![],
                endpoints: vec![endpoint("10.244.1.8", false, 80)],
            },
        ],
        pods: vec![Pod {
            namespace: "default".into(),
            name: "web-0".into(),
            ip: Some(ip("10.244.1.5")),
            hostname: Some("web-0".into()),
            subdomain: Some("web".into()),
            node: "n1".into(),
        }],
        recursion_clients: vec![],
        whitelist: Whitelist::default(),
        ingresses: Vec::new(),
    }
}

/// Replaces the view file the way podswarmd does: temp file, fsync, rename.
pub fn write_view(path: &Path, view: &View) {
    let bytes = serde_json::to_vec_pretty(view).unwrap();
    podswarm_config::process::write_atomic(path, &bytes, 0o644).unwrap();
}

pub struct TestServer {
    pub dns: Dns,
    pub dir: tempfile::TempDir,
    pub view_path: PathBuf,
}

impl TestServer {
    pub fn addr(&self) -> SocketAddr {
        self.dns.local_addr()
    }
}

pub fn settings(view_path: &Path, upstreams: Vec<SocketAddr>, trust_loopback: bool) -> Settings {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut s = Settings::new(listen, view_path, upstreams);
    s.trust_loopback = trust_loopback;
    s.upstream_timeout = Duration::from_millis(500);
    // The watch must do the work in tests, not the periodic check.
    s.view_poll = Duration::from_secs(30);
    // Two UDP loops, as on a 2-core node: each with its own packet cache.
    s.udp_workers = 2;
    s
}

/// A server on 127.0.0.1 (random port) with `view` written first (`None`: no file yet).
pub async fn start(
    view: Option<&View>,
    upstreams: Vec<SocketAddr>,
    trust_loopback: bool,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let view_path = dir.path().join("view.json");
    if let Some(v) = view {
        write_view(&view_path, v);
    }
    let dns = podswarm_dns::serve(settings(&view_path, upstreams, trust_loopback))
        .await
        .unwrap_or_else(|e| panic!("serve: {e}"));
    TestServer {
        dns,
        dir,
        view_path,
    }
}

pub type DnsClient = Client<TokioRuntimeProvider>;

/// hickory's UDP client, from 127.0.0.1, one try per query.
pub fn udp_client(server: SocketAddr) -> DnsClient {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_bind_addr(Some(SocketAddr::new(ip("127.0.0.1"), 0)))
        .with_timeout(Some(Duration::from_secs(3)))
        .with_max_retries(0)
        .build();
    let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(bg);
    client
}

/// hickory's TCP client, one connection.
pub async fn tcp_client(server: SocketAddr) -> DnsClient {
    let (connect, sender) = TcpClientStream::new(
        server,
        Some(SocketAddr::new(ip("127.0.0.1"), 0)),
        Some(Duration::from_secs(3)),
        TokioRuntimeProvider::default(),
    );
    let stream = connect.await.unwrap_or_else(|e| panic!("tcp connect: {e}"));
    let (client, bg) =
        Client::<TokioRuntimeProvider>::with_timeout(stream, sender, Duration::from_secs(3));
    tokio::spawn(bg);
    client
}

pub async fn query(client: &mut DnsClient, n: &str, t: RecordType) -> Message {
    client
        .query(name(n), DNSClass::IN, t)
        .await
        .unwrap_or_else(|e| panic!("{n} {t}: {e}"))
        .into_message()
}

pub async fn udp(server: SocketAddr, n: &str, t: RecordType) -> Message {
    query(&mut udp_client(server), n, t).await
}

pub async fn tcp(server: SocketAddr, n: &str, t: RecordType) -> Message {
    query(&mut tcp_client(server).await, n, t).await
}

pub fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// A fake upstream on 127.0.0.1, UDP and TCP on one port, answering from a fixed table and
/// recording what it was asked (name, over TCP).
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub asked: Arc<Mutex<Vec<(String, bool)>>>,
}

impl Upstream {
    pub fn asked(&self) -> Vec<(String, bool)> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn was_asked(&self, n: &str) -> bool {
        self.asked().iter().any(|(q, _)| q.eq_ignore_ascii_case(n))
    }
}

fn soa(zone: &str) -> Record {
    Record::from_rdata(
        name(zone),
        300,
        RData::SOA(SOA::new(
            name(&format!("ns.{zone}")),
            name(&format!("hostmaster.{zone}")),
            1,
            3600,
            600,
            86400,
            60,
        )),
    )
}

/// The fake upstream's zone:
/// - `www.example.com.` A 192.0.2.10
/// - `nx.example.com.` NXDOMAIN (with SOA)
/// - `nodata.example.com.` NOERROR, no answer (with SOA)
/// - `big.example.com.` over UDP: TC set and nothing else; over TCP: A 192.0.2.20
/// - `alias.example.com.` CNAME `target.elsewhere.net.`, which is A 192.0.2.30
/// - `fail.example.com.` SERVFAIL
/// - anything else: NXDOMAIN
fn upstream_answer(request: &Message, over_tcp: bool) -> Message {
    let mut m = Message::response(request.metadata.id, OpCode::Query);
    m.metadata.recursion_desired = request.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    let Some(q) = request.queries.first() else {
        m.metadata.response_code = ResponseCode::FormErr;
        return m;
    };
    m.add_query(q.clone());
    if let Some(edns) = &request.edns {
        let mut e = edns.clone();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    let qname = q.name().to_ascii().to_ascii_lowercase();
    let qtype = q.query_type();
    let a = |n: &str, addr: [u8; 4]| {
        Record::from_rdata(
            name(n),
            60,
            RData::A(A::new(addr[0], addr[1], addr[2], addr[3])),
        )
    };
    match qname.as_str() {
        "www.example.com." if qtype == RecordType::A => {
            m.add_answer(a("www.example.com.", [192, 0, 2, 10]));
        }
        "www.example.com." => {
            m.add_authority(soa("example.com."));
        }
        "nodata.example.com." => {
            m.add_authority(soa("example.com."));
        }
        "big.example.com." if !over_tcp => {
            m.metadata.truncation = true;
        }
        "big.example.com." => {
            m.add_answer(a("big.example.com.", [192, 0, 2, 20]));
        }
        "alias.example.com." => {
            m.add_answer(Record::from_rdata(
                name("alias.example.com."),
                60,
                RData::CNAME(CNAME(name("target.elsewhere.net."))),
            ));
            if qtype == RecordType::A {
                m.add_answer(a("target.elsewhere.net.", [192, 0, 2, 30]));
            }
        }
        "target.elsewhere.net." if qtype == RecordType::A => {
            m.add_answer(a("target.elsewhere.net.", [192, 0, 2, 30]));
        }
        "fail.example.com." => {
            m.metadata.response_code = ResponseCode::ServFail;
        }
        _ => {
            m.metadata.response_code = ResponseCode::NXDomain;
            m.add_authority(soa("example.com."));
        }
    }
    m
}

fn record(asked: &Mutex<Vec<(String, bool)>>, request: &Message, over_tcp: bool) {
    if let Some(q) = request.queries.first() {
        asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((q.name().to_ascii(), over_tcp));
    }
}

/// Starts the fake upstream on 127.0.0.1 (random port, the same for UDP and TCP).
pub async fn upstream() -> Upstream {
    let (mut udp, tcp) = podswarm_dns::bind("127.0.0.1:0".parse().unwrap(), 1)
        .await
        .unwrap();
    let udp = tokio::net::UdpSocket::from_std(udp.remove(0)).unwrap();
    let addr = udp.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((len, from)) = udp.recv_from(&mut buf).await else {
                return;
            };
            let Ok(request) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            if request.metadata.message_type != MessageType::Query {
                continue;
            }
            record(&log, &request, false);
            if let Ok(bytes) = upstream_answer(&request, false).to_vec() {
                let _ = udp.send_to(&bytes, from).await;
            }
        }
    });
    let log = asked.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = tcp.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                loop {
                    let Ok(len) = conn.read_u16().await else {
                        return;
                    };
                    let mut buf = vec![0u8; usize::from(len)];
                    if conn.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let Ok(request) = Message::from_vec(&buf) else {
                        return;
                    };
                    record(&log, &request, true);
                    let Ok(bytes) = upstream_answer(&request, true).to_vec() else {
                        return;
                    };
                    let Ok(len) = u16::try_from(bytes.len()) else {
                        return;
                    };
                    if conn.write_u16(len).await.is_err() || conn.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Upstream { addr, asked }
}

/// A raw query in wire format, for sockets that are not a DNS client.
pub fn raw_query(id: u16, n: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(n), t));
    m.to_vec().unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so a failure can be replayed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

pub async fn udp_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}
