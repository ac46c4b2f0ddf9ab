//! Test support: real backends (hyper servers on 127.0.0.x, ephemeral ports), the ingress on
//! 127.0.0.1 with its view in a temporary directory (replaced the way podswarmd replaces it),
//! and real HTTP clients (hyper over TCP and over rustls).

// Test helpers, outside #[test] functions: a panic is the failure report here too.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Channel, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use podswarm_ingress::{IngressServer, Settings};
use podswarm_view::{
    BackendPort, Endpoint, EndpointPort, Ingress, IngressBackend, IngressPath, IngressRule,
    IngressTls, PathType, Service, ServicePort, View,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

// ---- backends ----

/// A backend pod: answers every request with JSON describing what it received, accepts
/// WebSocket upgrades (except under `/refuse`) and echoes what comes through, sleeps first for
/// paths under `/sleep/<ms>`, and sends `/drip/<n>/<ms>` as `n` lines, one every `ms`.
#[derive(Clone)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Backend {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting (the port then refuses connections).
    pub fn stop(&self) {
        self.task.abort();
    }
}

fn header(req: &Request<Incoming>, name: &str) -> serde_json::Value {
    let values: Vec<&str> = req
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::String(values.join(", "))
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

async fn answer(
    name: String,
    hits: Arc<AtomicUsize>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    let drip: Vec<u64> = path
        .strip_prefix("/drip/")
        .map(|r| r.split('/').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    if let [n, ms] = drip[..] {
        let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
        tokio::spawn(async move {
            for i in 0..n {
                if tx
                    .send_data(Bytes::from(format!("line {i}\n")))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        });
        return Ok(Response::new(body.boxed()));
    }
    if let Some(ms) = path
        .strip_prefix("/sleep/")
        .and_then(|r| r.split('/').next())
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if !path.starts_with("/refuse")
        && req
            .headers()
            .get(hyper::header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let resp = Response::builder()
            .status(101)
            .header(hyper::header::CONNECTION, "upgrade")
            .header(hyper::header::UPGRADE, "websocket")
            .body(full(Bytes::new()))
            .unwrap();
        return Ok(resp);
    }
    let described = serde_json::json!({
        "backend": name,
        "method": req.method().as_str(),
        "path": path,
        "query": req.uri().query(),
        "host": header(&req, "host"),
        "xff": header(&req, "x-forwarded-for"),
        "xfp": header(&req, "x-forwarded-proto"),
        "xfh": header(&req, "x-forwarded-host"),
    });
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let mut described = described;
    described["bodyBytes"] = serde_json::json!(body);
    Ok(Response::new(full(described.to_string())))
}

/// Starts a backend on `addr` (`127.0.0.x:0`).
pub async fn backend(name: &str, addr: &str) -> Backend {
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("{addr}: {e}"));
    let local = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let (n, h) = (name.to_owned(), hits.clone());
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (n, h) = (n.clone(), h.clone());
            connections.spawn(async move {
                let service =
                    hyper::service::service_fn(move |req| answer(n.clone(), h.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
            while connections.try_join_next().is_some() {}
        }
    });
    Backend {
        name: name.to_owned(),
        addr: local,
        hits,
        task: Arc::new(task),
    }
}

/// An address on which nothing listens.
pub fn dead_addr(host: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind(format!("{host}:0")).unwrap();
    l.local_addr().unwrap()
}

// ---- views ----

pub fn endpoint(addr: SocketAddr, node: &str, ready: bool) -> Endpoint {
    Endpoint {
        ip: Some(addr.ip()),
        pod: format!("pod-{addr}"),
        node: node.into(),
        ready,
        hostname: None,
        ports: vec![EndpointPort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: addr.port(),
        }],
    }
}

/// A service with one port (`http`, 80) and these endpoints.
pub fn service(name: &str, endpoints: Vec<Endpoint>) -> Service {
    Service {
        namespace: "default".into(),
        name: name.into(),
        ports: vec![ServicePort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 80,
        }],
        endpoints,
    }
}

pub fn to(service: &str) -> IngressBackend {
    IngressBackend {
        service: service.into(),
        port: BackendPort::Number(80),
    }
}

pub fn prefix(path: &str, service: &str) -> IngressPath {
    IngressPath {
        path: path.into(),
        path_type: PathType::Prefix,
        backend: to(service),
    }
}

pub fn rule(host: Option<&str>, paths: Vec<IngressPath>) -> IngressRule {
    IngressRule {
        host: host.map(str::to_owned),
        paths,
    }
}

pub fn ingress(name: &str, rules: Vec<IngressRule>) -> Ingress {
    Ingress {
        namespace: "default".into(),
        name: name.into(),
        class: Some("podswarm".into()),
        rules,
        ..Ingress::default()
    }
}

pub fn tls(hosts: &[&str], file: &Path) -> IngressTls {
    IngressTls {
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        secret: "cert".into(),
        cert_file: Some(file.to_owned()),
        secret_version: 1,
    }
}

pub fn view(version: u64, services: Vec<Service>, ingresses: Vec<Ingress>) -> View {
    View {
        version,
        cluster_domain: "cluster.local".into(),
        services,
        ingresses,
        ..View::default()
    }
}

/// Replaces the view file the way podswarmd does: temp file, fsync, rename.
pub fn write_view(path: &Path, view: &View) {
    let bytes = serde_json::to_vec_pretty(view).unwrap();
    podswarm_config::process::write_atomic(path, &bytes, 0o644).unwrap();
}

/// A self-signed certificate for `hosts`, written with its key as one PEM file (as podswarmd
/// writes Secrets); returns the file and the certificate's DER.
pub fn certificate(dir: &Path, name: &str, hosts: &[&str]) -> (PathBuf, Vec<u8>) {
    let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
    let cert = rcgen::generate_simple_self_signed(names).unwrap();
    let pem = format!("{}{}", cert.cert.pem(), cert.signing_key.serialize_pem());
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, pem).unwrap();
    (path, cert.cert.der().to_vec())
}

// ---- the ingress ----

pub struct TestIngress {
    pub server: IngressServer,
    pub dir: tempfile::TempDir,
    pub view_path: PathBuf,
}

impl TestIngress {
    pub fn http(&self) -> SocketAddr {
        self.server
            .http_addr()
            .unwrap_or_else(|| panic!("no HTTP listener"))
    }

    pub fn https(&self) -> SocketAddr {
        self.server
            .https_addr()
            .unwrap_or_else(|| panic!("no HTTPS listener"))
    }

    pub fn write(&self, view: &View) {
        write_view(&self.view_path, view);
    }

    /// Writes `view` and waits until requests are routed with it.
    pub async fn load(&self, view: &View) {
        self.write(view);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.server.view_version() != view.version {
            assert!(
                tokio::time::Instant::now() < deadline,
                "view {} not loaded",
                view.version
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

pub fn settings(view_path: &Path) -> Settings {
    let mut s = Settings::new(view_path);
    s.http_listen = Some("127.0.0.1:0".parse().unwrap());
    s.https_listen = Some("127.0.0.1:0".parse().unwrap());
    s.scope.node = "test-node".into();
    // The watch must do the work in tests, not the periodic check; active checks only where a
    // test asks for them.
    s.view_poll = Duration::from_secs(30);
    s.health_interval = None;
    s.connect_timeout = Duration::from_secs(1);
    s.shutdown_grace = Duration::from_secs(2);
    // Two workers, as on a 2-core node: connections land on either, each with its own pool.
    s.workers = 2;
    s
}

/// The ingress on 127.0.0.1 (random ports) with `view` written first (`None`: no file yet).
pub async fn start_with(view: Option<&View>, adjust: impl FnOnce(&mut Settings)) -> TestIngress {
    let dir = tempfile::tempdir().unwrap();
    let view_path = dir.path().join("view.json");
    if let Some(v) = view {
        write_view(&view_path, v);
    }
    let mut s = settings(&view_path);
    adjust(&mut s);
    let server = podswarm_ingress::serve(s)
        .await
        .unwrap_or_else(|e| panic!("serve: {}", podswarm_ingress::error_chain(&e)));
    TestIngress {
        server,
        dir,
        view_path,
    }
}

pub async fn start(view: Option<&View>) -> TestIngress {
    start_with(view, |_| {}).await
}

// ---- clients ----

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The backend that answered.
    pub fn backend(&self) -> String {
        self.json()["backend"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 connection (keep-alive) over any stream.
pub async fn http1<S>(io: S) -> Sender
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap_or_else(|e| panic!("handshake: {e}"));
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender
}

pub fn request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

pub async fn send_on(sender: &mut Sender, req: Request<Full<Bytes>>) -> Result<Answer, String> {
    sender.ready().await.map_err(|e| format!("ready: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// One request on a new connection.
pub async fn try_send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Answer, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut sender = http1(tcp).await;
    send_on(&mut sender, req).await
}

pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Answer {
    try_send(addr, req).await.unwrap()
}

pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Answer {
    send(addr, request("GET", host, path, &[], "")).await
}

/// A rustls client trusting `roots` (DER), offering `alpn`.
pub fn tls_client(roots: &[&[u8]], alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store
            .add(rustls::pki_types::CertificateDer::from(r.to_vec()))
            .unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS connection with `sni`; returns the stream and the certificate the server presented.
pub async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    sni: &str,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>), String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name =
        rustls::pki_types::ServerName::try_from(sni.to_owned()).map_err(|e| format!("{e}"))?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    Ok((stream, presented))
}

/// One HTTP/2 request over an established TLS stream that negotiated h2.
pub async fn h2_get(
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    authority: &str,
    path: &str,
) -> Answer {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap_or_else(|e| panic!("h2 handshake: {e}"));
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(format!("https://{authority}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .unwrap_or_else(|e| panic!("h2 request: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Counts by backend name.
pub fn tally(answers: &[Answer]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for a in answers {
        *t.entry(a.backend()).or_insert(0) += 1;
    }
    t
}

/// Collected log of outcomes from concurrent clients.
#[derive(Default, Clone)]
pub struct Outcomes(pub Arc<Mutex<Vec<Result<String, String>>>>);

impl Outcomes {
    pub fn push(&self, r: Result<String, String>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    }

    pub fn all(&self) -> Vec<Result<String, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A WebSocket-style upgrade over `io` (plain or TLS) and three echoed messages; `Err` says what
/// went wrong.
pub async fn upgrade_roundtrip<S>(mut io: S, host: &str) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!(
        "GET /chat HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), io.read(&mut byte))
            .await
            .map_err(|_| "no response head".to_owned())?
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {:?}", String::from_utf8_lossy(&head)));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") || !head.contains("upgrade: websocket") {
        return Err(format!("not upgraded: {head}"));
    }
    // Both directions stream, several times over.
    for msg in ["hello", "ping pong", "bye"] {
        io.write_all(msg.as_bytes())
            .await
            .map_err(|e| format!("write {msg}: {e}"))?;
        let mut echo = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut echo))
            .await
            .map_err(|_| format!("no echo of {msg}"))?
            .map_err(|e| format!("echo of {msg}: {e}"))?;
        if echo != msg.as_bytes() {
            return Err(format!(
                "{msg} came back as {:?}",
                String::from_utf8_lossy(&echo)
            ));
        }
    }
    Ok(())
}
