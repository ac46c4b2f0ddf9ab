//! podswarm-ingress as a library: the node's HTTP/HTTPS ingress.
//!
//! One process per node, listening on `ingress.http_listen` (port 80) and
//! `ingress.https_listen` (443). It routes requests by the Kubernetes Ingresses in the routing
//! view podswarmd publishes (`routes`: host and path matching) to the ready endpoints of the
//! Services they name (`backend`: round-robin, local first, passive and active health), and
//! terminates TLS with the Ingresses' certificates chosen by SNI (`tls`).
//!
//! Design decisions:
//! - **pingora does the HTTP**: [`pingora_proxy`]'s `HttpProxy` runs our
//!   [`ProxyHttp`](pingora_proxy::ProxyHttp) implementation (`proxy`): HTTP/1.1 and HTTP/2
//!   downstream, keep-alive, streaming bodies, upstream connection pooling, retries. TLS is
//!   rustls (ring), the only TLS backend compiled in. `Upgrade` (WebSocket) requests are
//!   tunnelled by `upgrade` with pingora's HTTP/1 client session, around a pingora 0.9.1 bug
//!   that closes some tunnels right after the `101`.
//! - **Our own accept loop instead of pingora's `Server`.** pingora's `Server` owns the process
//!   (its own runtimes, signal handling, a fixed grace-period sleep, `process::exit`), binds its
//!   listeners inside a service task where a bind error is a panic, and cannot report the port it
//!   bound. pingora 0.9 supports driving `HttpProxy` from a custom accept loop
//!   ([`pingora_proxy::http_proxy`]), so [`serve`] binds with tokio (errors returned, port 0
//!   allowed), accepts, hands TLS to pingora's rustls `Acceptor`, and passes each connection to
//!   the proxy. It runs on any tokio runtime: the binary's, or a test's. systemd is told READY
//!   only after [`serve`] returns, that is, once both sockets are bound and the view is read.
//!   The stream pingora's public API makes of an accepted socket has no buffers, unlike those of
//!   its own listeners, so each response would leave in several writes; `buffered` puts read
//!   and write buffers under each connection, below rustls, flushed where pingora flushes.
//! - **One worker per CPU** (`Settings::workers`), nginx's model: each worker has its own
//!   `SO_REUSEPORT` listeners (the kernel spreads connections over them), its own
//!   single-threaded runtime (the first worker uses the caller's) and its own `HttpProxy`, hence
//!   its own upstream connection pool. A connection lives on one thread from accept to close:
//!   no task is handed between cores, no pooled socket is woken from another runtime. On one
//!   core this was worth 4% over tokio's multi-threaded runtime (bench/ingress.rs); on more it
//!   is what lets the ingress use them.
//! - **Graceful stop** ([`IngressServer::shutdown`]): stop accepting, tell pingora to close
//!   keep-alive connections after their current request, give requests in progress
//!   `shutdown_grace` (5 s) to finish, then drop what is left.
//! - **The view is data, not configuration**: it is watched (`podswarm_view::watch`, shared with
//!   podswarm-dns) and each new version becomes a [`snapshot::Snapshot`] (routes, resolved
//!   endpoints, certificates) built whole off the request path and swapped in atomically. A
//!   request routes with the snapshot current when it arrived, a TLS handshake picks its
//!   certificate from the snapshot current then; listeners never restart, so a reload drops no
//!   request and no connection. Listen addresses, class and timeouts come from the config file
//!   and need a restart.
//! - **Which Ingresses**: those whose `ingressClassName` (or `kubernetes.io/ingress.class`
//!   annotation) is `ingress.class` (default `podswarm`), and those that name no class.
//! - **Backends are resolved here**, not by podswarmd: the view carries references (service +
//!   port by number or name) and the services' endpoints; each loaded view resolves them once.
//! - **Errors are ours**: 404 (no rule), 503 (no ready endpoint), 502 (the endpoint failed),
//!   504 (it timed out), 308 (plain HTTP for a host with a certificate), each with a one-line
//!   plain-text body saying why.
//! - **Logs**: tracing; pingora's and rustls's `log` records are forwarded at warning level and
//!   above (`forward_library_logs`). One line per request (target `access`) with
//!   `ingress.access_log`; failed requests (5xx from errors) are always logged.

pub mod backend;
mod buffered;
pub mod cli;
pub mod proxy;
pub mod routes;
pub mod snapshot;
pub mod tls;
mod upgrade;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use buffered::Buffered;
use pingora_core::apps::ServerApp;
use pingora_core::listeners::tls::Acceptor;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{GetSocketDigest, SocketDigest, Stream};
use pingora_core::server::configuration::ServerConf;
use pingora_proxy::HttpProxy;
use podswarm_config::Config;
use podswarm_view::View;
use podswarm_view::watch::{Current, Reloader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use proxy::{IngressProxy, Scheme};
pub use snapshot::{Scope, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {value:?} is not an address:port")]
    Listen { field: &'static str, value: String },
    #[error("nothing to listen on: neither an HTTP nor an HTTPS address is set")]
    NoListener,
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the HTTPS listener")]
    Tls(#[from] tls::TlsError),
    #[error("cannot start a worker thread")]
    Worker {
        #[source]
        source: std::io::Error,
    },
}

pub use podswarm_config::process::error_chain;

/// Everything [`serve`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Plain HTTP; port 0 picks a free port. `None`: no HTTP listener.
    pub http_listen: Option<SocketAddr>,
    /// HTTPS; port 0 picks a free port. `None`: no HTTPS listener (and no redirects).
    pub https_listen: Option<SocketAddr>,
    /// The routing view file.
    pub view: PathBuf,
    /// Which Ingresses are served, and this node's name.
    pub scope: Scope,
    /// How long connecting to an endpoint may take.
    pub connect_timeout: Duration,
    /// How long an endpoint may stay silent while we wait for it (then 504); also the idle
    /// limit of upgraded (WebSocket) connections.
    pub read_timeout: Duration,
    /// Further endpoints tried after a failed connection (idempotent methods only).
    pub retries: usize,
    /// How long an endpoint that failed a connection is left out.
    pub eject: Duration,
    /// How often every endpoint gets a TCP health check; `None`: never.
    pub health_interval: Option<Duration>,
    /// How long one health check may take.
    pub health_timeout: Duration,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long requests in progress may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// One info line per request (target `access`).
    pub access_log: bool,
    /// How often the view file is checked besides the file system events.
    pub view_poll: Duration,
    /// Accepting threads, each with its own runtime, listeners (`SO_REUSEPORT`: the kernel
    /// spreads connections over them) and upstream connection pool. The binary: one per CPU it
    /// may run on.
    pub workers: usize,
}

impl Settings {
    /// Defaults for everything but the listeners (none) and the view path.
    pub fn new(view: &Path) -> Settings {
        Settings {
            http_listen: None,
            https_listen: None,
            view: view.to_owned(),
            scope: Scope {
                class: "podswarm".to_owned(),
                node: String::new(),
            },
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(60),
            retries: 2,
            eject: Duration::from_secs(10),
            health_interval: Some(Duration::from_secs(5)),
            health_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            access_log: false,
            view_poll: Duration::from_secs(5),
            workers: 1,
        }
    }

    /// The settings of the binary, from the `[ingress]` section and `paths.view`.
    pub fn from_config(config: &Config) -> Result<Settings, Error> {
        let i = &config.ingress;
        let listen = |field: &'static str, value: &str| -> Result<Option<SocketAddr>, Error> {
            if value.is_empty() {
                return Ok(None);
            }
            value.parse().map(Some).map_err(|_| Error::Listen {
                field,
                value: value.to_owned(),
            })
        };
        let mut s = Settings::new(&config.paths.view);
        s.http_listen = listen("ingress.http_listen", &i.http_listen)?;
        s.https_listen = listen("ingress.https_listen", &i.https_listen)?;
        if s.http_listen.is_none() && s.https_listen.is_none() {
            return Err(Error::NoListener);
        }
        s.scope = Scope {
            class: i.class.clone(),
            node: config
                .node_name
                .clone()
                .unwrap_or_else(podswarm_config::process::hostname),
        };
        s.connect_timeout = Duration::from_millis(i.connect_timeout_ms.max(1));
        s.read_timeout = Duration::from_secs(i.read_timeout_secs.max(1));
        s.retries = i.retries;
        s.eject = Duration::from_secs(i.eject_secs);
        s.health_interval =
            (i.health_interval_secs > 0).then(|| Duration::from_secs(i.health_interval_secs));
        s.shutdown_grace = Duration::from_secs(i.shutdown_grace_secs);
        s.access_log = i.access_log;
        // Affinity counts (systemd's CPUAffinity=, taskset): a process pinned to one CPU gets one.
        s.workers = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(s)
    }
}

/// A running ingress. [`IngressServer::shutdown`] stops it gracefully; dropping it stops
/// accepting at once and lets connections finish within the grace time in the background.
pub struct IngressServer {
    http_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    current: Arc<Current<Snapshot>>,
    view_status: watch::Receiver<podswarm_view::watch::Status>,
    stop: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for IngressServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressServer")
            .field("http_addr", &self.http_addr)
            .field("https_addr", &self.https_addr)
            .finish_non_exhaustive()
    }
}

impl IngressServer {
    /// The bound HTTP address (with the port chosen for port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The version of the view requests are routed with right now.
    pub fn view_version(&self) -> u64 {
        self.current.get().version
    }

    /// What the view's reloader has done: how many file versions it read, and the file's
    /// current problem (a bad file keeps the last good view).
    pub fn view_status(&self) -> watch::Receiver<podswarm_view::watch::Status> {
        self.view_status.clone()
    }

    /// The snapshot requests are routed with right now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.get()
    }

    /// Stops accepting, lets requests in progress finish (up to the grace time), stops
    /// watching the view and checking endpoints.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for l in std::mem::take(&mut self.listeners) {
            let _ = l.await;
        }
        for b in &self.background {
            b.abort();
        }
    }

    /// Returns when a listener stops (they do not before [`IngressServer::shutdown`]).
    /// Cancel-safe: a binary can wait for this and for signals in a loop.
    pub async fn wait(&mut self) {
        std::future::poll_fn(|cx| {
            for i in 0..self.listeners.len() {
                if std::pin::Pin::new(&mut self.listeners[i])
                    .poll(cx)
                    .is_ready()
                {
                    // Never polled again once finished.
                    self.listeners.remove(i);
                    return std::task::Poll::Ready(());
                }
            }
            if self.listeners.is_empty() {
                return std::task::Poll::Ready(());
            }
            std::task::Poll::Pending
        })
        .await;
    }
}

impl Drop for IngressServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for b in &self.background {
            b.abort();
        }
    }
}

/// `count` listeners (at least one) on `addr` with `SO_REUSEPORT`; with port 0 the first picks
/// the port and the rest take the same. Each is a std listener, to be registered with the
/// runtime of the worker that accepts on it.
fn bind(addr: SocketAddr, count: usize) -> Result<(Vec<std::net::TcpListener>, SocketAddr), Error> {
    let listener = |addr: SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        // As std's own listen backlog; the kernel caps it at net.core.somaxconn.
        socket.listen(1024)?.into_std()
    };
    let first = listener(addr).map_err(|source| Error::Bind { addr, source })?;
    let local = first
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(listener(local).map_err(|source| Error::Bind {
            addr: local,
            source,
        })?);
    }
    Ok((all, local))
}

/// One worker's share: its listeners and what it serves them with. It builds its own pingora
/// apps, so each worker has its own upstream connection pool and never touches another's
/// sockets.
struct Worker {
    http: Option<std::net::TcpListener>,
    https: Option<std::net::TcpListener>,
    shared: Arc<proxy::Shared>,
    conf: Arc<ServerConf>,
    acceptor: Option<Arc<Acceptor>>,
    stop: watch::Receiver<bool>,
    settings: Settings,
}

impl Worker {
    /// Accepts on the worker's listeners until told to stop, then lets their connections finish.
    async fn run(self) {
        let app = |scheme| {
            Arc::new(pingora_proxy::http_proxy(
                &self.conf,
                IngressProxy {
                    shared: self.shared.clone(),
                    scheme,
                },
            ))
        };
        let listen =
            |listener: Option<std::net::TcpListener>, scheme, tls: Option<Arc<Acceptor>>| {
                let app = app(scheme);
                let (stop, settings) = (self.stop.clone(), self.settings.clone());
                async move {
                    let Some(listener) = listener else {
                        return;
                    };
                    match TcpListener::from_std(listener) {
                        Ok(listener) => accept(listener, tls, app, stop, settings).await,
                        Err(error) => tracing::error!(%error, "cannot register a listener"),
                    }
                }
            };
        let http = listen(self.http, Scheme::Http, None);
        let https = listen(self.https, Scheme::Https, self.acceptor.clone());
        tokio::join!(http, https);
    }
}

/// Starts the ingress: binds, reads the view (an absent or broken file gives an empty table,
/// logged, and is picked up when it appears), starts watching it and checking endpoints, and
/// serves. Returns once connections are being accepted.
pub async fn serve(settings: Settings) -> Result<IngressServer, Error> {
    if settings.http_listen.is_none() && settings.https_listen.is_none() {
        return Err(Error::NoListener);
    }
    let workers = settings.workers.max(1);
    let (mut http, http_addr) = match settings.http_listen {
        Some(a) => {
            let (listeners, addr) = bind(a, workers)?;
            (listeners, Some(addr))
        }
        None => (Vec::new(), None),
    };
    let (mut https, https_addr) = match settings.https_listen {
        Some(a) => {
            let (listeners, addr) = bind(a, workers)?;
            (listeners, Some(addr))
        }
        None => (Vec::new(), None),
    };

    let current = Arc::new(Current::new(Snapshot::default()));
    let health = Arc::new(backend::HealthRegistry::new(settings.eject));
    let mut reloader = reloader(&settings, current.clone(), health.clone());
    // The first read happens before anything is accepted, so a node that has a view never
    // answers from the empty one. (A small file read once at start.)
    reloader.check();
    let view_status = reloader.status();
    let mut background = vec![tokio::spawn(podswarm_view::watch::watch(
        reloader,
        settings.view_poll,
    ))];
    if let Some(interval) = settings.health_interval {
        let current = current.clone();
        let timeout = settings.health_timeout;
        background.push(tokio::spawn(async move {
            loop {
                backend::check_health(current.get().targets(), timeout).await;
                tokio::time::sleep(interval).await;
            }
        }));
    }

    let shared = Arc::new(proxy::Shared {
        current: current.clone(),
        health,
        connect_timeout: settings.connect_timeout,
        read_timeout: settings.read_timeout,
        retries: settings.retries,
        https_port: https_addr.map(|a| a.port()),
        access_log: settings.access_log,
    });
    let conf = Arc::new(ServerConf {
        // pingora counts attempts, not retries.
        max_retries: settings.retries + 1,
        // No task per idle backend connection: a keep-alive request would otherwise pay a task
        // spawn, a timer and two wake-ups to hand its backend connection back and forth
        // (third_party/README.md). A backend that closes an idle connection is noticed when the
        // connection is next picked, and the pool holds at most its size in such connections.
        upstream_keepalive_lazy_idle_check: true,
        ..ServerConf::default()
    });
    let acceptor = match https_addr {
        Some(_) => {
            let config = tls::server_config(current.clone())?;
            Some(Arc::new(Acceptor::from_server_config(Arc::new(config))))
        }
        None => None,
    };
    let (stop, _) = watch::channel(false);
    if let Some(addr) = http_addr {
        tracing::info!(listen = %addr, workers, "serving HTTP");
    }
    if let Some(addr) = https_addr {
        tracing::info!(listen = %addr, workers, "serving HTTPS");
    }
    let mut listeners = Vec::new();
    for index in 0..workers {
        let worker = Worker {
            http: (!http.is_empty()).then(|| http.remove(0)),
            https: (!https.is_empty()).then(|| https.remove(0)),
            shared: shared.clone(),
            conf: conf.clone(),
            acceptor: acceptor.clone(),
            stop: stop.subscribe(),
            settings: settings.clone(),
        };
        if index == 0 {
            // The first worker is the caller's runtime.
            listeners.push(tokio::spawn(worker.run()));
            continue;
        }
        // The others are threads with a runtime each: nginx's worker model, where one
        // multi-threaded runtime would pass tasks and wake-ups between the cores.
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("podswarm-ingress-worker".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(worker.run()),
                    Err(error) => tracing::error!(%error, "cannot start a worker's runtime"),
                }
                let _ = done.send(());
            });
        if let Err(source) = thread {
            return Err(Error::Worker { source });
        }
        listeners.push(tokio::spawn(async move {
            let _ = finished.await;
        }));
    }
    Ok(IngressServer {
        http_addr,
        https_addr,
        current,
        view_status,
        stop,
        listeners,
        background,
    })
}

/// Turns each new view into a snapshot and swaps it in.
fn reloader(
    settings: &Settings,
    current: Arc<Current<Snapshot>>,
    health: Arc<backend::HealthRegistry>,
) -> Reloader {
    let scope = settings.scope.clone();
    let provider = tls::provider();
    let mut cache = tls::CertCache::new();
    let mut last: Option<View> = None;
    Reloader::new(&settings.view, move |view: View| {
        if last.as_ref() == Some(&view) {
            return;
        }
        let (snapshot, problems) = Snapshot::build(&view, &scope, &health, &mut cache, &provider);
        for p in &problems {
            tracing::warn!("{p}; its hosts get no certificate");
        }
        tracing::info!(
            version = view.version,
            previous = current.get().version,
            ingresses = snapshot.ingresses,
            rules = snapshot.router.len(),
            certificates = snapshot.certs.len(),
            "routing view loaded"
        );
        current.set(Arc::new(snapshot));
        last = Some(view);
    })
    .when_missing("no routing view yet: every request gets 404 until it appears")
}

type App = Arc<HttpProxy<IngressProxy>>;

/// Accepts connections until told to stop, then waits for them (up to the grace time).
async fn accept(
    listener: TcpListener,
    tls: Option<Arc<Acceptor>>,
    app: App,
    mut stop: watch::Receiver<bool>,
    settings: Settings,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(connection(
                        tcp,
                        tls.clone(),
                        app.clone(),
                        stop.clone(),
                        settings.handshake_timeout,
                    ));
                }
                Err(error) => {
                    // Out of file descriptors, usually: wait rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    // Wakes keep-alive connections waiting for their next request, so that they close.
    app.cleanup().await;
    while connections.try_join_next().is_some() {}
    let pending = connections.len();
    if pending > 0 {
        tracing::info!(
            connections = pending,
            grace_secs = settings.shutdown_grace.as_secs(),
            "waiting for requests in progress"
        );
    }
    let finished = tokio::time::timeout(settings.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "requests still in progress after the grace time: closing them"
        );
        connections.abort_all();
    }
}

/// One downstream connection: TLS handshake if any, then HTTP until it closes.
async fn connection(
    tcp: TcpStream,
    tls: Option<Arc<Acceptor>>,
    app: App,
    stop: watch::Receiver<bool>,
    handshake_timeout: Duration,
) {
    let _ = tcp.set_nodelay(true);
    let mut l4 = L4Stream::from(tcp);
    let digest = SocketDigest::from_raw_fd(l4.as_raw_fd());
    l4.set_socket_digest(digest);
    // The buffers pingora's own listeners would give the stream (`buffered`), under rustls too.
    let l4 = Buffered::new(l4);
    let stream: Stream = match tls {
        None => Box::new(l4),
        Some(acceptor) => {
            match tokio::time::timeout(handshake_timeout, acceptor.tls_handshake(l4)).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let mut next = app.process_new(stream, &stop).await;
    while let Some(stream) = next {
        next = app.process_new(stream, &stop).await;
    }
}

/// Forwards the `log` records of pingora and rustls to tracing (`tracing-log`), up to `level`.
/// Call once, in the binary.
pub fn forward_library_logs(level: log::LevelFilter) {
    // Already set (a second call, or a test harness): the first bridge stays.
    let _ = tracing_log::LogTracer::builder()
        .with_max_level(level)
        .init();
}
