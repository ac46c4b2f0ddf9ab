//! A podswarm node in the test process, for podswarmctl to talk to: a real podswarm-gossip node
//! (a one-node cluster on loopback) behind its control socket, and podswarmd's real `State`,
//! `Link`, `Model` and API router serving a Unix socket in a temporary directory.
//!
//! Why so much of a node: podswarmctl's output must fail when the daemon's answers change, so
//! it runs against the daemon's own router rather than a stand-in; and writes (apply, delete,
//! scale, tokens) only answer once the replicated state holds them, which takes gossip.
//!
//! What is not real: no reconciler runs, so pods are the views a test puts in (as a reconciler
//! would write them), and `journalctl` is a script that echoes its arguments. Other nodes are
//! their records in the replicated state (written straight into gossip), which is all any node
//! knows of the others: they are not live members, so they read as NotReady. Creation times
//! come from a clock the test sets back before writing ([`TestNode::at`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::Method;
use podswarm_api::{ApplyResult, ContainerView, CreatedToken, NewToken, Phase, PodView};
use podswarm_daemon::api::{Api, routes, tcp_router};
use podswarm_daemon::link::Link;
use podswarm_daemon::reconcile::PodViews;
use podswarm_daemon::state::State;
use podswarm_gossip::node::{Node as Gossip, Settings};
use podswarm_manifest::Policy;
use podswarmctl::client::Client;
use serde_json::Value;

/// A running, ready pod of the web Deployment (one container, `web`) on `node`, as its node's
/// reconciler reports it, restarted `restarts` times.
pub fn running_pod(name: &str, node: &str, restarts: u32) -> PodView {
    let unit = format!("podswarm-default_{name}.service");
    PodView {
        namespace: "default".into(),
        name: name.into(),
        node: node.into(),
        ip: Some("10.244.0.2".into()),
        phase: Phase::Running,
        ready: true,
        restarts,
        reason: None,
        message: None,
        owner: Some("Deployment/web".into()),
        labels: [("app".to_owned(), "web".to_owned())].into(),
        unit: unit.clone(),
        units: vec![unit.clone()],
        containers: vec![ContainerView {
            name: "web".into(),
            podman_name: format!("default_{name}_web"),
            image: "localhost/web:1".into(),
            unit,
            state: "active/running".into(),
            restarts,
        }],
        created: now() - 930,
        warnings: Vec::new(),
        ready_since: Some(now() - 300),
        terminating: false,
        moving: false,
        replaces: None,
    }
}

/// The names of the first `count` pods of the Deployment `manifest` starts with, as its current
/// revision names them (so they count as up to date).
pub fn first_pod_names(manifest: &str, count: u32) -> Vec<String> {
    let parsed = podswarm_manifest::parse(
        manifest,
        "app.yaml",
        &podswarm_manifest::Limits::default(),
        &podswarm_manifest::Policy::default(),
    )
    .unwrap();
    let podswarm_manifest::Object::Deployment(d) = &parsed.objects[0].object else {
        panic!("the manifest starts with a Deployment");
    };
    let ns = d.metadata.namespace.as_deref().unwrap_or("default");
    let name = d.metadata.name.as_deref().unwrap_or_default();
    podswarm_manifest::replicas_of(ns, name, &d.spec.template, 0..count)
        .into_iter()
        .map(|p| p.name)
        .collect()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug)]
pub struct TestNode {
    pub dir: tempfile::TempDir,
    /// The API's socket (podswarmctl's `--socket`).
    pub socket: PathBuf,
    pub api: Arc<Api>,
    views: PodViews,
    gossip: Arc<Gossip>,
    /// How far the daemon's clock is behind the real one, in seconds.
    behind: Arc<AtomicU64>,
    _stop: tokio::sync::watch::Sender<bool>,
    /// Last, so the tasks stop before the directory goes.
    runtime: tokio::runtime::Runtime,
}

const MAX_BODY: usize = 1 << 20;

impl TestNode {
    /// A node called `name` whose address (its node record's) is `address`.
    pub fn start(name: &str, address: IpAddr) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let behind = Arc::new(AtomicU64::new(0));
        let clock = {
            let behind = Arc::clone(&behind);
            Arc::new(move || now() - behind.load(Ordering::SeqCst))
        };
        let journalctl = dir.path().join("journalctl");
        // What the API asked journalctl for, as the one line the pod "logged", and one more,
        // each with the fields journalctl's JSON has: the time (always), the container's
        // instance (the second line is a later one: the container restarted in between).
        std::fs::write(
            &journalctl,
            concat!(
                "#!/bin/sh\n",
                r#"printf '{"MESSAGE":"journalctl %s","__REALTIME_TIMESTAMP":"1764646801000000","CONTAINER_NAME":"c","CONTAINER_ID":"1"}\n' "$*""#,
                "\n",
                r#"printf '{"MESSAGE":"second line\\n","__REALTIME_TIMESTAMP":"1764646802500000","CONTAINER_NAME":"c","CONTAINER_ID":"2"}\n'"#,
                "\n",
            ),
        )
        .unwrap();
        std::fs::set_permissions(&journalctl, std::fs::Permissions::from_mode(0o755)).unwrap();

        let control = dir.path().join("gossip/control.sock");
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            node_name: name.to_owned(),
            advertise_ip: Some(address),
            state_dir: dir.path().join("gossip/state"),
            key_dir: dir.path().join("gossip/keys"),
            labels: Default::default(),
            tombstone_ttl: Duration::from_secs(600),
            sync_interval: Duration::from_secs(60),
            probe_period: Duration::from_secs(1),
            reconnect_interval: Duration::from_secs(60),
        };
        let socket = dir.path().join("api.sock");
        let state_dir = dir.path().join("state");
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let views = PodViews::default();
        let (gossip, api) = runtime.block_on(async {
            std::fs::create_dir_all(&settings.state_dir).unwrap();
            let gossip = Gossip::start(settings).await.unwrap();
            let listener = podswarm_gossip::control::bind(&control).unwrap();
            tokio::spawn(podswarm_gossip::control::serve(
                listener,
                Arc::clone(&gossip),
            ));
            let state = Arc::new(State::open(&state_dir, &Policy::default(), clock).unwrap());
            let link = Link::new(
                control,
                name.to_owned(),
                Arc::clone(&state),
                Policy::default(),
            );
            tokio::spawn(Arc::clone(&link).run(Arc::clone(&views), shutdown.clone()));
            let api = Arc::new(Api::without_reconciler(
                state,
                link,
                Arc::clone(&views),
                journalctl,
            ));
            tokio::spawn(Arc::clone(&api.model).run(shutdown));
            let listener = tokio::net::UnixListener::bind(&socket).unwrap();
            let app = routes(Arc::clone(&api), MAX_BODY);
            tokio::spawn(async move { axum::serve(listener, app).await });
            (gossip, api)
        });
        let node = TestNode {
            dir,
            socket,
            api,
            views,
            gossip,
            behind,
            _stop: stop,
            runtime,
        };
        let own = format!("nodes/{name}");
        node.wait_for("the link to follow gossip", |n| {
            let m = n.api.link.mirror();
            m.synced && m.entries.contains_key(&own)
        });
        node
    }

    /// From now on, the daemon's clock reads `seconds` before the real time: what is written
    /// next was created that long ago.
    pub fn at(&self, seconds: u64) -> &Self {
        self.behind.store(seconds, Ordering::SeqCst);
        self
    }

    /// Polls `done` until it holds; panics after 10 s, naming `what`.
    pub fn wait_for(&self, what: &str, done: impl Fn(&TestNode) -> bool) {
        for _ in 0..1000 {
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("timed out waiting for {what}");
    }

    /// A client of this node's API (the library podswarmctl is built on).
    pub fn client(&self) -> Client {
        Client::unix(self.socket.clone())
    }

    /// Applies manifests through the API, and waits until the node's own state holds them (so
    /// their creation time is the clock's before it moves again).
    pub fn apply(&self, yaml: &str) -> ApplyResult {
        let result: ApplyResult = self
            .runtime
            .block_on(self.client().call(
                Method::POST,
                "/api/v1/manifests",
                Some((yaml.as_bytes().to_vec(), "application/yaml")),
                &[],
            ))
            .unwrap_or_else(|e| panic!("{e:#}"));
        for a in &result.applied {
            self.wait_for(&format!("{} {} in the state", a.kind, a.name), |n| {
                n.api
                    .state
                    .entries()
                    .iter()
                    .any(|e| e.object.kind() == a.kind && e.object.name() == a.name)
            });
        }
        result
    }

    /// Writes a key of the replicated state as another node (or the cluster) would, and waits
    /// until this node's link holds it.
    pub fn put(&self, key: &str, value: Value) {
        self.runtime
            .block_on(self.gossip.with(|s| s.write(key, Some(value))))
            .unwrap();
        self.wait_for(&format!("{key} in the mirror"), |n| {
            n.api.link.mirror().entries.contains_key(key)
        });
    }

    /// Puts pods in, as this node's reconciler reports them, and waits until the link has
    /// published this node's ones as their status records: Deployment status (and so rollouts)
    /// counts pods from those records, as every node does, not from one node's own views.
    pub fn pods(&self, pods: impl IntoIterator<Item = PodView>) {
        let mut views = self.views.write().unwrap();
        let mut published = Vec::new();
        for p in pods {
            if p.node == self.api.node_name {
                let key = format!("pods/{}/{}", p.namespace, p.name);
                published.push((key, serde_json::to_value(&p).unwrap()));
            }
            views.insert(format!("{}/{}", p.namespace, p.name), p);
        }
        drop(views);
        self.wait_for("the pods' status records", |n| {
            let mirror = n.api.link.mirror();
            published
                .iter()
                .all(|(key, value)| mirror.entries.get(key).map(|(_, v)| v) == Some(value))
        });
        self.api.model.refresh();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a future on the node's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Serves the TCP API's router (bearer tokens required) on a port of 127.0.0.1, over TLS
    /// with `tls` (the node certificate a test made), and returns its address.
    pub fn serve_https(&self, tls: Arc<rustls::ServerConfig>) -> std::net::SocketAddr {
        let api = Arc::clone(&self.api);
        self.runtime.block_on(async move {
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = tcp.local_addr().unwrap();
            let listener = TlsListener {
                tcp,
                acceptor: tokio_rustls::TlsAcceptor::from(tls),
            };
            tokio::spawn(async move { axum::serve(listener, tcp_router(api, MAX_BODY)).await });
            address
        })
    }
}

/// TCP with a TLS handshake per connection; a failed handshake (a client that refused the
/// certificate) just drops that connection.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, address)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, address);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Runs the real `podswarmctl` against a node's socket: (exit status, stdout, stderr). The
/// namespace comes from the flags only, not from the environment the tests run in.
pub fn ctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_podswarmctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("PODSWARM_NAMESPACE")
        .env_remove("PODSWARM_SERVER")
        .env_remove("PODSWARM_TOKEN")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `podswarmctl ARGS` ([`ctl`]) and appends what a user sees (the command line, exit status,
/// stdout, stderr) to a golden transcript; returns the exit status.
pub fn transcribe(socket: &Path, out: &mut String, args: &[&str]) -> i32 {
    let (code, stdout, stderr) = ctl(socket, args);
    out.push_str(&format!(
        "$ podswarmctl {}\n[exit {code}]\n--- stdout\n{stdout}--- stderr\n{stderr}\n",
        args.join(" ")
    ));
    code
}

// ---- HTTPS: a cluster CA, a node certificate, a token and a kubeconfig, as a cluster has them ----

/// A cluster CA, and a server configuration whose certificate it signed for `names`.
pub struct Pki {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

pub fn pki(names: &[&str]) -> Pki {
    pki_named("podswarm CA", names)
}

/// [`pki`] with a CA called `ca_name`: every cluster's CA has the same name, so another
/// cluster's CA fails the signature check (BadSignature) rather than the issuer lookup.
pub fn pki_named(ca_name: &str, names: &[&str]) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    }
}

/// What a node's certificate names.
pub const NODE_NAMES: &[&str] = &["node-a", "127.0.0.1", "::1", "localhost"];

/// A token of the node's API, created over its socket.
pub fn token(node: &TestNode) -> String {
    let request = NewToken {
        description: "https test".into(),
        ttl_seconds: None,
    };
    let created: CreatedToken = node
        .block_on(
            node.client()
                .send_json(Method::POST, "/api/v1/tokens", &request),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    node.wait_for("the token in the read model", |n| {
        n.api
            .model
            .current()
            .tokens()
            .iter()
            .any(|t| t.id == created.id)
    });
    created.token
}

/// A kubeconfig as kubectl writes it, with `cluster` the cluster's fields (indented by 4).
pub fn kubeconfig(dir: &Path, name: &str, cluster: &str, token: &str) -> String {
    let text = format!(
        "apiVersion: v1\nkind: Config\npreferences: {{}}\nclusters:\n- name: podswarm\n  cluster:\n{cluster}contexts:\n- name: podswarm\n  context:\n    cluster: podswarm\n    user: me\ncurrent-context: podswarm\nusers:\n- name: me\n  user:\n    token: {token}\n"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

pub fn https_node(names: &[&str]) -> (TestNode, Pki, SocketAddr, String) {
    let node = TestNode::start("node-a", Ipv4Addr::LOCALHOST.into());
    let pki = pki(names);
    let address = node.serve_https(Arc::clone(&pki.server));
    let token = token(&node);
    (node, pki, address, token)
}
