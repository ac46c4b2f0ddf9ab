//! podswarm-dns as a library: the cluster's DNS server.
//!
//! One process per node, listening on UDP and TCP (`dns.listen`, the node address's port 53 in
//! production). It answers names under the cluster domain from the routing view podswarmd
//! publishes (`cluster`), and forwards everything else to upstream servers for pods and nodes
//! only, optionally restricted to a whitelist (`forward`, `handler`).
//!
//! Design decisions:
//! - **hickory-server's [`hickory_server::Server`] does TCP** (framing, idle timeouts, FORMERR
//!   for undecodable bodies) and podswarm-dns implements its `RequestHandler`. UDP, nearly all of
//!   the traffic, has its own receive loops (`udp`, one per CPU on `SO_REUSEPORT` sockets, in
//!   batches of datagrams) that answer cluster names inline, most from pre-encoded answers
//!   (`fast`), and hand only forwarded queries to the same handler: hickory's loop costs a task
//!   and a channel hop per query, which the benchmark showed. There is no zone file and no `Catalog`: the cluster "zone"
//!   is computed per question from the view, which is small and replaced often, so building and
//!   swapping an in-memory zone on every view change would buy nothing.
//! - **The view is data, not configuration:** it is re-read when its file is replaced and swapped
//!   in atomically (`watch`), while the listen address, upstreams and TTL come from the config
//!   file and need a restart.
//! - **The policy is pure** (`handler::plan`, `cluster::lookup`): it can be unit-tested and
//!   fuzzed without sockets ([`answer_bytes`]).
//! - **Forwarding goes through hickory-resolver** rather than relaying packets: it brings the
//!   cache, retries across upstreams and the UDP→TCP retry on truncation, at the price of
//!   re-encoding answers (we pass on the answer section, the CNAME chain included, and negative
//!   answers with their SOA).
//!
//! [`serve`] starts everything and returns a [`Dns`] handle; the binary adds configuration,
//! logging and systemd's notify protocol.

pub mod cli;
pub mod cluster;
pub mod fast;
pub mod forward;
pub mod handler;
pub mod udp;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use podswarm_config::Config;
use podswarm_view::View;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

pub use cluster::Reply;
pub use handler::{Policy, answer_bytes, answer_bytes_with};

use crate::forward::Forwarder;
use crate::handler::Handler;
use crate::watch::ViewStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dns.listen: {value:?} is not an address:port")]
    Listen {
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("dns.upstreams: {value:?} is not an address or address:port")]
    Upstream { value: String },
    #[error("network.pod_cidr: {value:?} is not a network")]
    PodCidr {
        value: String,
        #[source]
        source: ipnet::AddrParseError,
    },
    #[error("cannot read {path} for the upstream servers")]
    ResolvConf {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the forwarding resolver")]
    Resolver {
        #[source]
        source: hickory_resolver::net::NetError,
    },
    #[error("the DNS server stopped")]
    Server {
        #[source]
        source: hickory_resolver::net::NetError,
    },
    #[error("the UDP socket failed")]
    Udp {
        #[source]
        source: std::io::Error,
    },
}

/// Everything [`serve`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// UDP and TCP address; port 0 picks a free port (the same for both).
    pub listen: SocketAddr,
    /// The routing view file.
    pub view: PathBuf,
    /// Where names outside the cluster domain go (see [`forward::upstreams`]); empty: forwarded
    /// questions fail with SERVFAIL.
    pub upstreams: Vec<SocketAddr>,
    /// TTL of cluster records, seconds.
    pub ttl_secs: u32,
    /// Forwarded answers kept in the cache.
    pub cache_size: usize,
    /// Whether loopback sources may recurse without being listed in the view (true in the
    /// binary: the node's own processes).
    pub trust_loopback: bool,
    /// The cluster domain while the view names none (before the first view is read).
    pub cluster_domain: String,
    /// Who may recurse while there is no view yet, besides loopback (the binary: the pod CIDR).
    pub initial_recursion_clients: Vec<IpNet>,
    /// How long forwarding one question may take, all upstreams together; then SERVFAIL.
    pub upstream_timeout: Duration,
    /// How long a TCP connection may stay idle.
    pub tcp_timeout: Duration,
    /// How often the view file is checked besides the file system events.
    pub view_poll: Duration,
    /// UDP sockets on the listen address (`SO_REUSEPORT`: the kernel spreads clients over them),
    /// each served by a thread of its own. The binary: one per CPU it may run on.
    pub udp_workers: usize,
}

impl Settings {
    /// Defaults for everything but the addresses and the view path.
    pub fn new(listen: SocketAddr, view: &Path, upstreams: Vec<SocketAddr>) -> Settings {
        Settings {
            listen,
            view: view.to_owned(),
            upstreams,
            ttl_secs: 5,
            cache_size: 4096,
            trust_loopback: true,
            cluster_domain: cluster::DEFAULT_CLUSTER_DOMAIN.to_owned(),
            initial_recursion_clients: Vec::new(),
            upstream_timeout: Duration::from_secs(3),
            tcp_timeout: Duration::from_secs(10),
            view_poll: Duration::from_secs(5),
            udp_workers: 1,
        }
    }

    /// The settings of the binary: from the configuration, upstreams from `resolv_conf` when the
    /// configuration names none.
    pub fn from_config(config: &Config, resolv_conf: &Path) -> Result<Settings, Error> {
        let listen = config
            .dns
            .listen
            .parse::<SocketAddr>()
            .map_err(|source| Error::Listen {
                value: config.dns.listen.clone(),
                source,
            })?;
        let upstreams = forward::upstreams(&config.dns.upstreams, listen, resolv_conf)?;
        let pod_cidr =
            config
                .network
                .pod_cidr
                .parse::<IpNet>()
                .map_err(|source| Error::PodCidr {
                    value: config.network.pod_cidr.clone(),
                    source,
                })?;
        let mut settings = Settings::new(listen, &config.paths.view, upstreams);
        settings.ttl_secs = config.dns.ttl_secs;
        settings.cache_size = config.dns.cache_size;
        settings.cluster_domain = config.network.cluster_domain.clone();
        settings.initial_recursion_clients = vec![pod_cidr];
        // Affinity counts (systemd's CPUAffinity=, taskset): a process pinned to one CPU gets one.
        settings.udp_workers = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(settings)
    }
}

/// A running server. Dropping it stops it at once (queries in progress are dropped);
/// [`Dns::shutdown`] lets them finish first.
pub struct Dns {
    local_addr: SocketAddr,
    views: Arc<ViewStore>,
    view_status: tokio::sync::watch::Receiver<podswarm_view::watch::Status>,
    server: hickory_server::Server<Handler>,
    /// Cancels the UDP loops and hickory's TCP server.
    shutdown: CancellationToken,
    udp: tokio::task::JoinHandle<std::io::Result<()>>,
    /// How each further UDP loop (a thread of its own) ended, one message each.
    workers: tokio::sync::mpsc::UnboundedReceiver<std::io::Result<()>>,
    running_workers: usize,
    watcher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Dns {
    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The view queries are answered from right now.
    pub fn view(&self) -> Arc<View> {
        self.views.get()
    }

    /// What the view's reloader has done: how many file versions it read, and the file's
    /// current problem (a bad file keeps the last good view).
    pub fn view_status(&self) -> tokio::sync::watch::Receiver<podswarm_view::watch::Status> {
        self.view_status.clone()
    }

    /// Runs until the sockets fail (they do not, normally); for a binary without other work.
    pub async fn wait(&mut self) -> Result<(), Error> {
        tokio::select! {
            tcp = self.server.block_until_done() => tcp.map_err(|source| Error::Server { source }),
            udp = &mut self.udp => udp_outcome(udp),
            Some(worker) = self.workers.recv() => {
                self.running_workers -= 1;
                worker.map_err(|source| Error::Udp { source })
            }
        }
    }

    /// Stops accepting queries, lets those in progress finish, stops watching the view.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.watcher.abort();
        // Cancels the UDP loop too: it shares the server's shutdown token.
        let tcp = self
            .server
            .shutdown_gracefully()
            .await
            .map_err(|source| Error::Server { source });
        let mut udp = udp_outcome((&mut self.udp).await);
        while self.running_workers > 0 {
            self.running_workers -= 1;
            if let Some(Err(source)) = self.workers.recv().await {
                udp = udp.and(Err(Error::Udp { source }));
            }
        }
        tcp.and(udp)
    }
}

fn udp_outcome(joined: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), Error> {
    match joined {
        Ok(result) => result.map_err(|source| Error::Udp { source }),
        Err(e) => Err(Error::Udp {
            source: std::io::Error::other(e),
        }),
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        // The server's tasks end with its JoinSet; the watcher and UDP loop are separate tasks,
        // and the other UDP loops threads that stop when cancelled.
        self.watcher.abort();
        self.udp.abort();
        self.shutdown.cancel();
    }
}

/// Binds `udp_workers` UDP sockets (at least one) and TCP on the same address. With port 0 the
/// kernel picks the UDP port and the rest take the same one, retrying with another when TCP's is
/// taken.
pub async fn bind(
    listen: SocketAddr,
    udp_workers: usize,
) -> Result<(Vec<std::net::UdpSocket>, TcpListener), Error> {
    let bind_error = |addr, source| Error::Bind { addr, source };
    let mut attempts = 0;
    loop {
        let first = udp::socket(listen).map_err(|e| bind_error(listen, e))?;
        let addr = first.local_addr().map_err(|e| bind_error(listen, e))?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => {
                let mut sockets = vec![first];
                for _ in 1..udp_workers {
                    sockets.push(udp::socket(addr).map_err(|e| bind_error(addr, e))?);
                }
                return Ok((sockets, tcp));
            }
            Err(e) if listen.port() == 0 && attempts < 20 => {
                attempts += 1;
                tracing::debug!(%addr, error = %e, "tcp port taken, trying another");
            }
            Err(e) => return Err(bind_error(addr, e)),
        }
    }
}

/// Starts the server: binds, reads the view (an absent or broken file gives an empty view,
/// logged, and is picked up when it appears), starts watching it, and serves. Returns once
/// queries are being answered.
pub async fn serve(settings: Settings) -> Result<Dns, Error> {
    let (mut sockets, tcp) = bind(settings.listen, settings.udp_workers).await?;
    let bound = |source| Error::Bind {
        addr: settings.listen,
        source,
    };
    let udp = UdpSocket::from_std(sockets.remove(0)).map_err(bound)?;
    let local_addr = udp.local_addr().map_err(bound)?;

    let views = Arc::new(ViewStore::new(View {
        cluster_domain: settings.cluster_domain.clone(),
        recursion_clients: settings.initial_recursion_clients.clone(),
        ..View::default()
    }));
    let mut reloader = watch::reloader(&settings.view, views.clone(), &settings.cluster_domain);
    // The first read happens before we answer anything, so a node that has a view never answers
    // from the empty one.
    // (A small file read once at start; blocking here holds up nothing else.)
    reloader.check();
    let view_status = reloader.status();
    let watcher = tokio::spawn(watch::watch(reloader, settings.view_poll));

    let forwarder = Forwarder::new(
        &settings.upstreams,
        settings.cache_size,
        settings.upstream_timeout,
    )?;
    if settings.upstreams.is_empty() {
        tracing::warn!("no upstream DNS servers: names outside the cluster domain fail");
    }
    let handler = Handler {
        views: views.clone(),
        forwarder: Arc::new(forwarder),
        policy: Policy {
            ttl: settings.ttl_secs,
            trust_loopback: settings.trust_loopback,
        },
    };
    let mut server = hickory_server::Server::new(handler.clone());
    let shutdown = server.shutdown_token().clone();
    // Forwarded queries of every loop run here, where the resolver lives.
    let forwards = tokio::runtime::Handle::current();
    let udp = tokio::spawn(udp::serve(
        udp,
        handler.clone(),
        shutdown.clone(),
        forwards.clone(),
    ));
    let (report, workers) = tokio::sync::mpsc::unbounded_channel();
    let running_workers = sockets.len();
    for socket in sockets {
        let (handler, shutdown, forwards, report) = (
            handler.clone(),
            shutdown.clone(),
            forwards.clone(),
            report.clone(),
        );
        let worker = move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    runtime.block_on(async {
                        let socket = UdpSocket::from_std(socket)?;
                        udp::serve(socket, handler, shutdown, forwards).await
                    })
                });
            let _ = report.send(outcome);
        };
        std::thread::Builder::new()
            .name("podswarm-dns-udp".into())
            .spawn(worker)
            .map_err(bound)?;
    }
    // 32 responses may queue per TCP connection, as in hickory's own server.
    server.register_listener(tcp, settings.tcp_timeout, 32);
    tracing::info!(
        listen = %local_addr,
        udp_workers = settings.udp_workers.max(1),
        upstreams = ?settings.upstreams,
        view = %settings.view.display(),
        "serving DNS"
    );
    Ok(Dns {
        local_addr,
        views,
        view_status,
        server,
        shutdown,
        udp,
        workers,
        running_workers,
        watcher,
    })
}
