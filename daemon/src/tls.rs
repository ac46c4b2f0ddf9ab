//! The node's identity on the network: its certificate from the cluster CA, the HTTPS listener of
//! the TCP API, and the mTLS client of node-to-node requests.
//!
//! The key is made here, in podswarmd's memory, and never written anywhere: podswarm-gossip,
//! which holds the cluster CA, signs a request for it over the control socket (`sign-node`), and
//! a restart simply gets a new certificate. That keeps the CA's key with one process and the node
//! key with the other.
//!
//! Renewal swaps the rustls configurations behind a lock: a handshake takes the configuration
//! that stands when it starts, so connections made before a renewal (a `logs -f` stream, a kept
//! alive client) go on untouched. A certificate is renewed at two thirds of its lifetime, and at
//! once when the cluster's CA is not the one it chains to (the node joined another cluster).
//!
//! Handshakes run in tasks of their own, at most [`MAX_HANDSHAKES`] at once and each for at most
//! [`HANDSHAKE_TIMEOUT`]; connections beyond that are closed at once. So a flood of half-open
//! connections costs a bounded amount of memory, and only handshaken connections reach the
//! HTTP server, whose accept loop never waits on a slow client.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::link::{Link, unix_now};

/// Handshakes in progress at most; connections beyond are closed unanswered.
pub const MAX_HANDSHAKES: usize = 256;
/// How long a client has to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make a key for the node certificate")]
    Key(#[source] podswarm_cluster::ca::CaError),
    #[error("podswarm-gossip did not sign the node certificate")]
    Sign(#[source] podswarm_gossip::control::client::ClientError),
    #[error("the {what} is not PEM")]
    Pem {
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("cannot set up TLS with the node certificate")]
    Config(#[from] rustls::Error),
    #[error("cannot set up client certificate checks")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("node certificates are not ready yet")]
    NotReady,
}

/// What the node presents and trusts, from one signing.
#[derive(Debug)]
struct Current {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    ca_pem: String,
    /// Seconds since the epoch.
    issued: u64,
    not_after: u64,
}

/// The node certificate and the TLS configurations made from it; empty until the first signing.
#[derive(Debug)]
pub struct NodeTls {
    node: String,
    addresses: Vec<IpAddr>,
    lifetime: Duration,
    current: RwLock<Option<Arc<Current>>>,
    ready: watch::Sender<bool>,
}

impl NodeTls {
    /// No certificate yet: [`NodeTls::run`] gets and renews it. `addresses` go into the
    /// certificate next to the node's name and advertised address.
    pub fn new(node: &str, addresses: Vec<IpAddr>, lifetime: Duration) -> Arc<NodeTls> {
        Arc::new(NodeTls {
            node: node.to_owned(),
            addresses,
            lifetime,
            current: RwLock::new(None),
            ready: watch::channel(false).0,
        })
    }

    fn current(&self) -> Option<Arc<Current>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// The cluster CA (PEM) the node's certificate chains to.
    pub fn ca_pem(&self) -> Option<String> {
        self.current().map(|c| c.ca_pem.clone())
    }

    /// When the node's certificate expires (seconds since the epoch).
    pub fn not_after(&self) -> Option<u64> {
        self.current().map(|c| c.not_after)
    }

    /// Resolves once there is a certificate.
    pub async fn ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Signs a certificate for a new key and makes it the node's.
    async fn renew(&self, link: &Link) -> Result<(), TlsError> {
        let request =
            podswarm_cluster::ca::NodeRequest::generate(&self.node).map_err(TlsError::Key)?;
        let signed = link
            .sign_node(&request.csr_pem, self.lifetime, self.addresses.clone())
            .await
            .map_err(TlsError::Sign)?;
        self.install(&request.key_pem, &signed.cert, &signed.ca, signed.not_after)?;
        tracing::info!(
            node = %self.node,
            not_after = signed.not_after,
            "node certificate signed by the cluster CA"
        );
        Ok(())
    }

    /// Makes `cert_pem` (for `key_pem`, from the CA `ca_pem`, valid until `not_after`) the
    /// node's certificate from now on.
    fn install(
        &self,
        key_pem: &str,
        cert_pem: &str,
        ca_pem: &str,
        not_after: u64,
    ) -> Result<(), TlsError> {
        let (server, client) = configs(key_pem, cert_pem, ca_pem)?;
        let next = Current {
            server,
            client,
            ca_pem: ca_pem.to_owned(),
            issued: unix_now(),
            not_after,
        };
        if let Ok(mut current) = self.current.write() {
            *current = Some(Arc::new(next));
        }
        self.ready.send_replace(true);
        Ok(())
    }

    /// Gets the node's certificate, then renews it at two thirds of its lifetime, or at once
    /// when the cluster's CA changes; until `shutdown`.
    pub async fn run(self: Arc<Self>, link: Arc<Link>, mut shutdown: watch::Receiver<bool>) {
        let mut changes = link.changes();
        let mut failures = 0u32;
        loop {
            let wait = match self.current() {
                None => Duration::ZERO,
                Some(c) if ca_changed(&link, &c.ca_pem) => Duration::ZERO,
                Some(c) => {
                    let renew_at = c.issued + (c.not_after.saturating_sub(c.issued)) * 2 / 3;
                    Duration::from_secs(renew_at.saturating_sub(unix_now()))
                }
            };
            if wait.is_zero() {
                match self.renew(&link).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        let error = crate::reconcile::error_chain(&e);
                        // Expected for a moment while podswarm-gossip starts or the node joins.
                        if failures > 3 {
                            tracing::warn!(error = %error, "cannot renew the node certificate; retrying");
                        } else {
                            tracing::debug!(error = %error, "cannot renew the node certificate yet; retrying");
                        }
                        let retry = self
                            .current()
                            .map_or(Duration::from_secs(2), |c| {
                                Duration::from_secs(c.not_after.saturating_sub(unix_now()) / 20)
                            })
                            .clamp(Duration::from_secs(1), Duration::from_secs(30));
                        tokio::select! {
                            _ = tokio::time::sleep(retry) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // The cluster state changed: perhaps its CA (a join).
                r = changes.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// A TLS connection to node `node` at `address`, presenting this node's certificate and
    /// expecting one from the same CA for `node`'s name.
    pub async fn connect(
        &self,
        node: &str,
        address: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
        let current = self
            .current()
            .ok_or_else(|| std::io::Error::other(TlsError::NotReady))?;
        let name = ServerName::try_from(node.to_owned())
            .unwrap_or_else(|_| ServerName::IpAddress(address.ip().into()));
        let stream = TcpStream::connect(address).await?;
        TlsConnector::from(Arc::clone(&current.client))
            .connect(name, stream)
            .await
    }
}

/// Whether the cluster CA on record is not `ca_pem` (none on record: not changed).
fn ca_changed(link: &Link, ca_pem: &str) -> bool {
    link.value(podswarm_gossip::node::CA_KEY)
        .and_then(|v| v.get("cert")?.as_str().map(|c| c != ca_pem))
        .unwrap_or(false)
}

/// The server side (node certificate; a client certificate is asked for and, when given, must
/// chain to the CA) and the client side (node certificate; the server's must chain to the CA).
fn configs(
    key_pem: &str,
    cert_pem: &str,
    ca_pem: &str,
) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), TlsError> {
    let pem = |what| move |source| TlsError::Pem { what, source };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(pem("cluster CA"))?;
    let cert =
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(pem("node certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem("node key"))?;
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    let roots = Arc::new(roots);
    // Optional at the handshake: clients with a token have no certificate. Which requests a
    // node certificate admits is the router's business (`api::require_token`).
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()?;
    let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.clone()], key.clone_key())?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)?;
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(server), Arc::new(client)))
}

/// A TLS client of the API: its address, and whether it presented a certificate from the
/// cluster CA (another node; the handshake refuses any other certificate).
#[derive(Debug, Clone, Copy)]
pub struct TlsPeer {
    pub address: SocketAddr,
    pub node: bool,
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        *stream.remote_addr()
    }
}

type Accepted = (tokio_rustls::server::TlsStream<TcpStream>, TlsPeer);

/// The HTTPS side of a TCP listener, for `axum::serve`: connections whose handshake completed.
#[derive(Debug)]
pub struct TlsListener {
    accepted: mpsc::Receiver<Accepted>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` (once `tls` has a certificate) and handshakes in the background, until
    /// `shutdown`.
    pub fn new(
        tcp: TcpListener,
        tls: Arc<NodeTls>,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, accepted) = mpsc::channel(MAX_HANDSHAKES);
        tokio::spawn(async move {
            tokio::select! {
                () = tls.ready() => {}
                _ = shutdown.changed() => return,
            }
            let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
            loop {
                let (stream, address) = tokio::select! {
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors, most likely: let some close.
                            tracing::warn!(error = %e, "cannot accept an API connection");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = shutdown.changed() => return,
                };
                let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                    tracing::debug!(%address, "too many TLS handshakes in progress; closing");
                    continue;
                };
                let Some(config) = tls.current().map(|c| Arc::clone(&c.server)) else {
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake = TlsAcceptor::from(config).accept(stream);
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%address, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%address, "TLS handshake timed out");
                            return;
                        }
                    };
                    drop(permit);
                    let node = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .is_some_and(|c| !c.is_empty());
                    let _ = tx.send((stream, TlsPeer { address, node })).await;
                });
            }
        });
        Ok(TlsListener { accepted, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            address: self.local,
            node: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podswarm_cluster::ca::{ClusterCa, NodeRequest};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A node's TLS with a certificate from `ca`.
    fn node(ca: &ClusterCa, name: &str) -> Arc<NodeTls> {
        let tls = NodeTls::new(name, Vec::new(), Duration::from_secs(3600));
        let request = NodeRequest::generate(name).unwrap();
        let signed = ca
            .sign_node(
                &request.csr_pem,
                name,
                &[],
                Duration::from_secs(3600),
                std::time::SystemTime::now(),
            )
            .unwrap();
        tls.install(
            &request.key_pem,
            &signed.cert_pem,
            ca.cert_pem(),
            signed.not_after,
        )
        .unwrap();
        tls
    }

    /// A listener whose connections answer with whether the peer is a node, then close.
    async fn server(tls: Arc<NodeTls>) -> (SocketAddr, watch::Sender<bool>) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, shutdown) = watch::channel(false);
        let mut listener = TlsListener::new(tcp, tls, shutdown).unwrap();
        let address = listener.local.to_owned();
        tokio::spawn(async move {
            loop {
                let (mut stream, peer) = axum::serve::Listener::accept(&mut listener).await;
                let _ = stream
                    .write_all(if peer.node { b"node" } else { b"anon" })
                    .await;
                let _ = stream.shutdown().await;
            }
        });
        (address, stop)
    }

    async fn read_all(mut stream: impl AsyncReadExt + Unpin) -> std::io::Result<String> {
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        Ok(text)
    }

    #[tokio::test]
    async fn nodes_of_the_cluster_are_told_apart_from_clients_and_strangers_are_refused() {
        let ca = ClusterCa::generate(1).unwrap();
        let (address, _stop) = server(node(&ca, "node-1")).await;

        // Another node of the cluster, checking the server's name.
        let peer = node(&ca, "node-2");
        let stream = peer.connect("node-1", address).await.unwrap();
        assert_eq!(read_all(stream).await.unwrap(), "node");

        // The same node expecting another name: the server's certificate is not for it.
        let wrong = peer.connect("node-3", address).await.map(|_| ());
        assert!(
            wrong
                .as_ref()
                .is_err_and(|e| e.to_string().contains("certificate")),
            "{wrong:?}"
        );

        // A client without a certificate (a token holder) trusting the CA.
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
            .unwrap();
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let tcp = TcpStream::connect(address).await.unwrap();
        let stream = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(read_all(stream).await.unwrap(), "anon");

        // A node of another cluster: its certificate is refused (and it refuses the server's).
        let stranger = node(&ClusterCa::generate(2).unwrap(), "node-2");
        let refused = match stranger.connect("node-1", address).await {
            Ok(stream) => read_all(stream).await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(refused.is_err(), "a foreign node certificate was accepted");
    }

    #[tokio::test]
    async fn a_flood_of_half_open_connections_leaves_the_listener_answering() {
        let ca = ClusterCa::generate(1).unwrap();
        let (address, _stop) = server(node(&ca, "node-1")).await;
        let peer = node(&ca, "node-2");
        // More than the handshakes in progress allowed, none sending a byte.
        let mut flood = Vec::new();
        for _ in 0..(MAX_HANDSHAKES * 2) {
            flood.push(TcpStream::connect(address).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Those over the limit were closed at once.
        let mut closed = 0;
        for stream in &mut flood {
            let mut byte = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(5), stream.read(&mut byte)).await
            {
                closed += 1;
            }
        }
        assert!(
            closed >= MAX_HANDSHAKES,
            "only {closed} of the flood were closed"
        );
        // Once the flood goes away, handshakes are served again.
        drop(flood);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stream = peer.connect("node-1", address).await.unwrap();
        assert_eq!(read_all(stream).await.unwrap(), "node");
    }
}
