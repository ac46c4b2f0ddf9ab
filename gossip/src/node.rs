//! A running cluster session on this node: the sockets, foca, the replica and the loops around
//! them (anti-entropy, pulls, persistence, garbage collection), plus the join handshake on both
//! sides. `join`, `init` and `leave` end one session and start another with a new identity, so
//! they are methods of [`Node`], which owns the current session.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podswarm_cluster::{
    ClusterCa, ClusterKey, Entry, JoinToken, Kind, OpenError, ReplayWindow, Sealer, seal,
};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::identity::{Identity, random_id};
use crate::proto::{self, CaReply, Delta, JoinReply, JoinRequest, Refusal, Sync};
use crate::replica::{Lineage, Replica};
use crate::swim::{self, Event, Handler, Id, Input};
use crate::{Error, Metrics};

/// The key holding the current join token.
pub const TOKEN_KEY: &str = "cluster/join-token";
/// The cluster CA (`podswarm_cluster::ca`): `{"cert": PEM, "key": sealed with the cluster key}`.
pub const CA_KEY: &str = "cluster/ca";
/// Node certificates' expiry (`certs/<node>`: `{"node", "notAfter"}`), written where they are signed.
pub const CERTS_PREFIX: &str = "certs/";
/// Deltas whose JSON is larger than this travel as a hint (receivers pull them).
const INLINE_DELTA: usize = 900;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub node_name: String,
    pub advertise_ip: Option<std::net::IpAddr>,
    pub state_dir: PathBuf,
    pub key_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub tombstone_ttl: Duration,
    pub sync_interval: Duration,
    pub probe_period: Duration,
    /// How often nodes on record that are not active members are contacted again.
    pub reconnect_interval: Duration,
}

impl Settings {
    /// A node alone on loopback (an ephemeral port), its state in `dir/state` and its keys in
    /// `dir/keys`: the one-node cluster that tests here and in podswarmd start, so they do not
    /// each spell out every field. Hidden because no deployment wants these intervals.
    #[doc(hidden)]
    pub fn loopback(dir: &std::path::Path) -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            node_name: "n1".to_owned(),
            advertise_ip: Some([127, 0, 0, 1].into()),
            state_dir: dir.join("state"),
            key_dir: dir.join("keys"),
            labels: BTreeMap::new(),
            tombstone_ttl: Duration::from_secs(60),
            sync_interval: Duration::from_secs(5),
            probe_period: Duration::from_secs(1),
            reconnect_interval: Duration::from_secs(5),
        }
    }
}

/// What the TCP side of a session needs; cheap to clone into tasks.
#[derive(Debug, Clone)]
struct Shared {
    identity: Arc<Identity>,
    replica: Arc<Mutex<Replica>>,
    sealer: Arc<Sealer>,
    window: Arc<Mutex<ReplayWindow>>,
    members: watch::Receiver<Vec<Id>>,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Replica> {
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cluster CA on record, if there is one (a cluster from before CAs has none until its
    /// first upgraded node makes it).
    fn cluster_ca(&self) -> Option<Result<ClusterCa, Error>> {
        let record = self.lock().store().value(CA_KEY).cloned()?;
        Some(ca_from_record(&record, &self.identity))
    }

    /// The cluster CA on record, for what needs one now (a join token, a node certificate);
    /// refused, saying when to come back, while a cluster from before CAs has none.
    fn standing_ca(&self) -> Result<ClusterCa, Error> {
        self.cluster_ca().unwrap_or_else(|| {
            Err(Error::Refused(
                "this cluster has no CA yet (it was made by an older podswarm; an upgraded node makes one once it has its peers' state); try again in a minute".to_owned(),
            ))
        })
    }

    /// Nodes on record (name, gossip address) that are not active members now.
    fn absent_peers(&self) -> Vec<(String, SocketAddr)> {
        let active: Vec<SocketAddr> = self.members.borrow().iter().map(|m| m.addr).collect();
        let mut peers = self.lock().peers_on_record();
        peers.retain(|(_, addr)| !active.contains(addr));
        peers
    }

    async fn send(&self, stream: &mut TcpStream, peer: &str, msg: &Sync) -> Result<(), Error> {
        let bytes = serde_json::to_vec(msg).map_err(|e| Error::Protocol {
            peer: peer.to_owned(),
            message: e.to_string(),
        })?;
        let frame = self.sealer.seal(Kind::Sync, &bytes);
        Metrics::add(&self.metrics.bytes_sent, frame.len() as u64 + 4);
        proto::write_frame(stream, &frame)
            .await
            .map_err(|source| Error::Stream {
                peer: peer.to_owned(),
                source,
            })
    }

    async fn recv(&self, stream: &mut TcpStream, peer: &str) -> Result<Sync, Error> {
        let frame = proto::read_frame(stream)
            .await
            .map_err(|source| Error::Stream {
                peer: peer.to_owned(),
                source,
            })?;
        self.open_sync(&frame, peer)
    }

    fn open_sync(&self, frame: &[u8], peer: &str) -> Result<Sync, Error> {
        Metrics::add(&self.metrics.bytes_received, frame.len() as u64 + 4);
        let opened = {
            let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
            self.sealer.open(frame, Kind::Sync, &mut window)
        };
        let (_, plain) = opened.map_err(|source| {
            self.count_drop(&source);
            Error::Frame {
                peer: peer.to_owned(),
                source,
            }
        })?;
        serde_json::from_slice(&plain).map_err(|e| Error::Protocol {
            peer: peer.to_owned(),
            message: e.to_string(),
        })
    }

    fn count_drop(&self, e: &OpenError) {
        let counter = match e {
            OpenError::Replayed { .. } => &self.metrics.dropped_replayed,
            OpenError::Authentication => &self.metrics.dropped_unauthenticated,
            _ => &self.metrics.dropped_malformed,
        };
        Metrics::add(counter, 1);
    }

    fn merge(&self, entries: Vec<(String, Entry)>) -> usize {
        let mut replica = self.lock();
        let n = entries
            .into_iter()
            .filter(|(k, e)| replica.merge(k, e.clone()) == podswarm_cluster::Applied::Newer)
            .count();
        Metrics::add(&self.metrics.entries_received, n as u64);
        n
    }

    /// Ends this node's recovery (its replica file was damaged, see `replica`) once `peer` has
    /// sent everything it holds that this node lacks, unless `peer` is recovering too: two
    /// refilling nodes hold nothing the cluster lost.
    fn refilled_by(&self, peer: &str, peer_recovering: bool) {
        if peer_recovering {
            return;
        }
        let mut replica = self.lock();
        if let Some(recovery) = replica.recovered() {
            tracing::info!(
                peer,
                entries = replica.store().len(),
                set_aside = %recovery.set_aside.display(),
                "the cluster state is refilled from a member; serving it again"
            );
        }
    }

    /// Anti-entropy with one peer; returns how many entries this node took from it.
    async fn sync_with(&self, addr: SocketAddr) -> Result<usize, Error> {
        let peer = addr.to_string();
        let run = async {
            let mut stream = TcpStream::connect(addr)
                .await
                .map_err(|source| Error::Connect {
                    addr: peer.clone(),
                    source,
                })?;
            let (fingerprint, recovering) = {
                let replica = self.lock();
                (
                    replica.store().fingerprint(),
                    replica.recovering().is_some(),
                )
            };
            self.send(
                &mut stream,
                &peer,
                &Sync::Hello {
                    fingerprint,
                    recovering,
                },
            )
            .await?;
            match self.recv(&mut stream, &peer).await? {
                Sync::InSync => {
                    // Only a node that cannot be recovering (an older version) answers a
                    // recovering node with `InSync`: it holds what this node holds.
                    self.refilled_by(&peer, false);
                    Ok(0)
                }
                Sync::Digest {
                    digest,
                    recovering: theirs,
                } => {
                    let (entries, mine) = {
                        let replica = self.lock();
                        (
                            replica.store().newer_than(&digest),
                            replica.store().digest(),
                        )
                    };
                    self.send(
                        &mut stream,
                        &peer,
                        &Sync::Push {
                            entries,
                            digest: Some(mine),
                        },
                    )
                    .await?;
                    match self.recv(&mut stream, &peer).await? {
                        Sync::Push { entries, .. } => {
                            let n = self.merge(entries);
                            self.refilled_by(&peer, theirs);
                            Ok(n)
                        }
                        other => Err(unexpected(&peer, &other)),
                    }
                }
                other => Err(unexpected(&peer, &other)),
            }
        };
        let result = match tokio::time::timeout(IO_TIMEOUT, run).await {
            Ok(r) => r,
            Err(_) => Err(Error::Stream {
                peer: peer.clone(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "sync timed out"),
            }),
        };
        match &result {
            Ok(_) => Metrics::add(&self.metrics.syncs, 1),
            Err(_) => Metrics::add(&self.metrics.sync_failures, 1),
        }
        result
    }

    /// The responder's side of anti-entropy, after the first frame.
    async fn answer_sync(
        &self,
        mut stream: TcpStream,
        peer: &str,
        hello: Sync,
    ) -> Result<(), Error> {
        let Sync::Hello {
            fingerprint,
            recovering: theirs,
        } = hello
        else {
            return Err(unexpected(peer, &hello));
        };
        let (same, digest, recovering) = {
            let replica = self.lock();
            let recovering = replica.recovering().is_some();
            // A recovering side always takes the full exchange: it learns from the digest
            // whether the other one is recovering too.
            let same = !theirs && !recovering && replica.store().fingerprint() == fingerprint;
            (
                same,
                if same {
                    Vec::new()
                } else {
                    replica.store().digest()
                },
                recovering,
            )
        };
        if same {
            return self.send(&mut stream, peer, &Sync::InSync).await;
        }
        self.send(&mut stream, peer, &Sync::Digest { digest, recovering })
            .await?;
        let Sync::Push { entries, digest } = self.recv(&mut stream, peer).await? else {
            return Err(Error::Protocol {
                peer: peer.to_owned(),
                message: "expected a push".to_owned(),
            });
        };
        let their_digest = digest.unwrap_or_default();
        self.merge(entries);
        self.refilled_by(peer, theirs);
        let back = self.lock().store().newer_than(&their_digest);
        Metrics::add(&self.metrics.syncs, 1);
        self.send(
            &mut stream,
            peer,
            &Sync::Push {
                entries: back,
                digest: None,
            },
        )
        .await
    }

    /// The admitting side of a join: the request must open with the current token's key.
    async fn answer_join(
        &self,
        mut stream: TcpStream,
        peer: &str,
        frame: &[u8],
    ) -> Result<(), Error> {
        let token = self
            .lock()
            .store()
            .value(TOKEN_KEY)
            .and_then(|v| v.get("token"))
            .and_then(|t| t.as_str())
            .and_then(|t| JoinToken::parse(t).ok());
        let refuse = |reason: &str| Refusal {
            refused: reason.to_owned(),
        };
        let opened = token.as_ref().map(|t| {
            let sealer = Sealer::new(&t.join_key(), self.identity.node_id);
            (sealer.open_unchecked(frame, Kind::JoinRequest), sealer)
        });
        let (request, header, sealer) = match opened {
            Some((Ok((header, plain)), sealer)) => {
                match serde_json::from_slice::<JoinRequest>(&plain) {
                    Ok(r) => (r, header, sealer),
                    Err(e) => {
                        return self
                            .refuse(
                                stream,
                                peer,
                                refuse(&format!("malformed join request: {e}")),
                            )
                            .await;
                    }
                }
            }
            _ => {
                return self
                    .refuse(stream, peer, refuse("invalid join token for this cluster"))
                    .await;
            }
        };
        let clash = {
            let replica = self.lock();
            replica
                .store()
                .value(&format!("nodes/{}", request.node_name))
                .and_then(|v| v.get("nodeId").and_then(|n| n.as_str()).map(str::to_owned))
        };
        let alive: Vec<Id> = self.members.borrow().clone();
        if let Some(existing) = clash {
            let taken = existing == format!("{:016x}", self.identity.node_id)
                || alive.iter().any(|m| format!("{:016x}", m.node) == existing);
            if taken {
                let reason = format!("a node named {:?} is already a member", request.node_name);
                return self.refuse(stream, peer, refuse(&reason)).await;
            }
        }
        let mut seeds: Vec<SocketAddr> = alive.iter().map(|m| m.addr).collect();
        seeds.insert(0, self.identity.advertise);
        let reply = JoinReply {
            cluster: self.identity.cluster,
            key: self.identity.key().map(|k| k.to_hex()).unwrap_or_default(),
            seeds,
            answers: header.counter,
        };
        let bytes = serde_json::to_vec(&reply).map_err(|e| Error::Protocol {
            peer: peer.to_owned(),
            message: e.to_string(),
        })?;
        proto::write_frame(&mut stream, &sealer.seal(Kind::JoinReply, &bytes))
            .await
            .map_err(|source| Error::Stream {
                peer: peer.to_owned(),
                source,
            })?;
        Metrics::add(&self.metrics.joins_admitted, 1);
        tracing::info!(node = %request.node_name, address = %request.advertise, "admitted a node");
        Ok(())
    }

    async fn refuse(
        &self,
        mut stream: TcpStream,
        peer: &str,
        refusal: Refusal,
    ) -> Result<(), Error> {
        Metrics::add(&self.metrics.joins_refused, 1);
        tracing::warn!(peer, reason = %refusal.refused, "join refused");
        let bytes = serde_json::to_vec(&refusal).unwrap_or_default();
        proto::write_frame(&mut stream, &bytes)
            .await
            .map_err(|source| Error::Stream {
                peer: peer.to_owned(),
                source,
            })
    }

    /// Answers a joiner's [`proto::CA_REQUEST`] with the cluster CA's certificate (or why there
    /// is none), in the clear.
    async fn answer_ca(&self, stream: &mut TcpStream, peer: &str) -> Result<(), Error> {
        let bytes = match self.cluster_ca() {
            Some(Ok(ca)) => serde_json::to_vec(&CaReply {
                ca_cert: ca.cert_pem().to_owned(),
            }),
            Some(Err(e)) => serde_json::to_vec(&Refusal {
                refused: format!("this member's cluster CA is not usable: {e}"),
            }),
            None => serde_json::to_vec(&Refusal {
                refused: "this cluster has no CA yet (it was made by an older podswarm and no upgraded node has made one yet); try again in a minute".to_owned(),
            }),
        }
        .unwrap_or_default();
        proto::write_frame(stream, &bytes)
            .await
            .map_err(|source| Error::Stream {
                peer: peer.to_owned(),
                source,
            })
    }

    async fn serve_connection(&self, mut stream: TcpStream, peer: SocketAddr) {
        let peer = peer.to_string();
        let result = async {
            let read = async |stream: &mut TcpStream| {
                tokio::time::timeout(IO_TIMEOUT, proto::read_frame(stream))
                    .await
                    .map_err(|_| Error::Stream {
                        peer: peer.clone(),
                        source: std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"),
                    })?
                    .map_err(|source| Error::Stream {
                        peer: peer.clone(),
                        source,
                    })
            };
            let mut frame = read(&mut stream).await?;
            // A joiner first asks for the CA, then (if it is the one its token pins) sends its
            // sealed request on the same connection.
            if frame == proto::CA_REQUEST {
                self.answer_ca(&mut stream, &peer).await?;
                frame = read(&mut stream).await?;
            }
            match seal::peek(&frame) {
                Ok(h) if h.kind == Kind::JoinRequest => {
                    self.answer_join(stream, &peer, &frame).await
                }
                Ok(h) if h.kind == Kind::Sync => {
                    let hello = self.open_sync(&frame, &peer)?;
                    tokio::time::timeout(IO_TIMEOUT, self.answer_sync(stream, &peer, hello))
                        .await
                        .map_err(|_| Error::Stream {
                            peer: peer.clone(),
                            source: std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "sync timed out",
                            ),
                        })?
                }
                Ok(h) => Err(Error::Protocol {
                    peer: peer.clone(),
                    message: format!("{:?} is not a stream message", h.kind),
                }),
                Err(source) => {
                    self.count_drop(&source);
                    Err(Error::Frame {
                        peer: peer.clone(),
                        source,
                    })
                }
            }
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %crate::control::chain(&e), "connection dropped");
        }
    }
}

/// The CA from its replicated record, the key opened with `identity`'s cluster key.
fn ca_from_record(record: &serde_json::Value, identity: &Identity) -> Result<ClusterCa, Error> {
    let field = |f: &str| record.get(f).and_then(|v| v.as_str()).unwrap_or_default();
    let key = identity
        .key()
        .ok_or_else(|| Error::Refused("this node holds no cluster key".to_owned()))?;
    Ok(ClusterCa::from_record(field("cert"), field("key"), &key)?)
}

fn unexpected(peer: &str, msg: &Sync) -> Error {
    Error::Protocol {
        peer: peer.to_owned(),
        message: format!("{msg:?}").chars().take(60).collect(),
    }
}

/// How far the replica's file has caught up with its changes.
#[derive(Debug, Clone, Default)]
struct Durability {
    /// Every change up to this count is on disk.
    flushed: u64,
    /// Write attempts begun so far.
    begun: u64,
    /// The latest failed write: which attempt it was, the changes it held (up to this count) and
    /// why it failed. Only an attempt that began after a waiter asked, and held its change, speaks
    /// for that change (one already under way may fail for a cause since removed).
    failed: Option<(u64, u64, String)>,
}

/// One running session.
#[derive(Debug)]
pub struct Session {
    shared: Shared,
    input: mpsc::Sender<Input>,
    tasks: JoinSet<()>,
    durability: watch::Receiver<Durability>,
    persist_now: Arc<tokio::sync::Notify>,
}

impl Session {
    /// A session of `identity`'s cluster; `lineage` says whether this node was in it before (so
    /// that a damaged replica file is refilled from the members rather than taken as empty).
    pub async fn start(
        identity: Identity,
        lineage: Lineage,
        settings: &Settings,
        metrics: Arc<Metrics>,
    ) -> Result<Session, Error> {
        let key = identity.key().ok_or_else(|| Error::Damaged {
            path: Identity::path(&settings.key_dir),
            message: "the cluster key is unreadable".to_owned(),
        })?;
        let replica = Replica::open_as(
            &settings.state_dir,
            identity.cluster,
            identity.node_id,
            lineage,
        )?;
        let replica = Arc::new(Mutex::new(replica));
        let udp = UdpSocket::bind(settings.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: settings.listen,
                source,
            })?;
        let udp = Arc::new(udp);
        let tcp = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: settings.listen,
                source,
            })?;
        let sealer = Arc::new(Sealer::new(&key, identity.node_id));
        let (members_tx, members_rx) = watch::channel(Vec::new());
        let (input_tx, input_rx) = mpsc::channel(1024);
        let (pull_tx, mut pull_rx) = mpsc::unbounded_channel();
        let (event_tx, mut event_rx) = mpsc::unbounded_channel();
        let shared = Shared {
            identity: Arc::new(identity.clone()),
            replica: replica.clone(),
            sealer: sealer.clone(),
            window: Arc::new(Mutex::new(ReplayWindow::new())),
            members: members_rx,
            metrics: metrics.clone(),
        };
        let me = Id {
            addr: identity.advertise,
            node: identity.node_id,
            bump: podswarm_cluster::hlc::wall_millis() / 1000,
        };
        let handler = Handler {
            replica: replica.clone(),
            pulls: pull_tx.clone(),
            metrics: metrics.clone(),
        };
        let rng: rand::rngs::StdRng = rand::make_rng();
        let foca_config = swim::config(
            settings.probe_period,
            1400usize.saturating_sub(seal::OVERHEAD),
        );
        let swim =
            swim::Swim::with_custom_broadcast(me, foca_config, rng, foca::PostcardCodec, handler);
        let mut tasks = JoinSet::new();
        tasks.spawn(swim::run(
            swim,
            input_rx,
            input_tx.clone(),
            udp.clone(),
            sealer.clone(),
            members_tx,
            event_tx,
            metrics.clone(),
            replica.clone(),
        ));
        // UDP receive: open, then hand to foca.
        {
            let input = input_tx.clone();
            let sealer = sealer.clone();
            let metrics = metrics.clone();
            let shared = shared.clone();
            tasks.spawn(async move {
                let mut window = ReplayWindow::new();
                let mut buf = vec![0u8; 65536];
                loop {
                    let Ok((n, _from)) = udp.recv_from(&mut buf).await else {
                        continue;
                    };
                    Metrics::add(&metrics.packets_received, 1);
                    Metrics::add(&metrics.bytes_received, n as u64);
                    match sealer.open(&buf[..n], Kind::Swim, &mut window) {
                        Ok((_, plain)) => {
                            if input.send(Input::Data(plain)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => shared.count_drop(&e),
                    }
                }
            });
        }
        // TCP: anti-entropy and joins.
        {
            let shared = shared.clone();
            tasks.spawn(async move {
                let mut conns = JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = tcp.accept() => {
                            if let Ok((stream, peer)) = accepted {
                                let shared = shared.clone();
                                conns.spawn(async move { shared.serve_connection(stream, peer).await });
                            }
                        }
                        Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    }
                }
            });
        }
        // Pulls (hints, new members) and periodic anti-entropy with a random member.
        {
            let shared = shared.clone();
            let interval = settings.sync_interval;
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let target = tokio::select! {
                        _ = tick.tick() => {
                            use rand::seq::IndexedRandom;
                            let members = shared.members.borrow().clone();
                            let mut rng = rand::rng();
                            members.choose(&mut rng).map(|m| m.addr)
                        }
                        Some(addr) = pull_rx.recv() => Some(addr),
                        Some(event) = event_rx.recv() => match event {
                            Event::Up(id) => Some(id.addr),
                            Event::Down(_) => None,
                        },
                    };
                    let Some(addr) = target else { continue };
                    // Coalesce: several hints from one writer need one exchange.
                    while pull_rx.try_recv().is_ok() {}
                    match shared.sync_with(addr).await {
                        Ok(n) if n > 0 => tracing::debug!(peer = %addr, entries = n, "synced"),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %crate::control::chain(&e), "sync failed")
                        }
                    }
                }
            });
        }
        // Reconnecting. foca announces to members it holds down only while it still has an
        // active one, so the two halves of a split that each declared the other dead (or a node
        // left alone) would wait for each other forever. Like Serf's reconnect_interval, every
        // node named in the replicated state that is not an active member is announced to and
        // offered a state exchange; foca's own TurnUndead/renew then lets both sides back in.
        {
            let shared = shared.clone();
            let input = input_tx.clone();
            let every = settings.reconnect_interval;
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let absent = shared.absent_peers();
                    if absent.is_empty() {
                        continue;
                    }
                    tracing::debug!(peers = absent.len(), "reconnecting to absent nodes");
                    let mut exchanges = JoinSet::new();
                    for (name, addr) in absent {
                        let _ = input.try_send(Input::Announce(addr));
                        let shared = shared.clone();
                        exchanges.spawn(async move {
                            match shared.sync_with(addr).await {
                                Ok(n) if n > 0 => tracing::info!(member = %name, address = %addr, entries = n, "took state from a node that is not a member"),
                                Ok(_) => {}
                                Err(e) => tracing::debug!(member = %name, error = %crate::control::chain(&e), "reconnect exchange failed"),
                            }
                        });
                    }
                    // An unreachable node must not hold up the next round.
                    let _ = tokio::time::timeout(every, async {
                        while exchanges.join_next().await.is_some() {}
                    })
                    .await;
                }
            });
        }
        // Persistence and tombstone collection. The state is written every 300 ms when it
        // changed, and at once when a write waits to be acknowledged (writes that arrive while
        // one file is being written share the next: group commit).
        let (durability_tx, durability) = watch::channel(Durability::default());
        let persist_now = Arc::new(tokio::sync::Notify::new());
        {
            let replica = replica.clone();
            let persist_now = persist_now.clone();
            let ttl = u64::try_from(settings.tombstone_ttl.as_millis()).unwrap_or(u64::MAX);
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(300));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last_gc = tokio::time::Instant::now();
                let mut failing = false;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = persist_now.notified() => {}
                    }
                    let pending = {
                        let mut r = replica.lock().unwrap_or_else(|p| p.into_inner());
                        if last_gc.elapsed() >= Duration::from_secs(3600) {
                            last_gc = tokio::time::Instant::now();
                            let n = r.collect_garbage(ttl);
                            if n > 0 {
                                tracing::info!(tombstones = n, "collected old deletes");
                            }
                        }
                        r.pending()
                    };
                    let Some(pending) = pending else { continue };
                    let holds = pending.written;
                    durability_tx.send_modify(|d| d.begun += 1);
                    let attempt = durability_tx.borrow().begun;
                    let written = tokio::task::spawn_blocking(move || pending.write()).await;
                    match written {
                        Ok(Ok(flushed)) => {
                            if failing {
                                tracing::info!("the cluster state is stored again");
                            }
                            failing = false;
                            durability_tx.send_modify(|d| {
                                d.flushed = d.flushed.max(flushed);
                                d.failed = None;
                            });
                        }
                        Ok(Err(e)) => {
                            replica.lock().unwrap_or_else(|p| p.into_inner()).unflushed();
                            let message = crate::control::chain(&e);
                            if !failing {
                                failing = true;
                                tracing::error!(error = %message, "cannot persist the cluster state");
                            }
                            durability_tx.send_modify(|d| {
                                d.failed = Some((attempt, holds, message));
                            });
                        }
                        Err(e) => {
                            replica.lock().unwrap_or_else(|p| p.into_inner()).unflushed();
                            tracing::error!(error = %e, "the state writer failed");
                        }
                    }
                }
            });
        }
        let session = Session {
            shared,
            input: input_tx,
            tasks,
            durability,
            persist_now,
        };
        session.publish_node_record(settings);
        // A restarted node finds its cluster again through the node records it kept.
        for (_, peer) in session.shared.lock().peers_on_record() {
            session.announce(peer);
        }
        Ok(session)
    }

    fn publish_node_record(&self, settings: &Settings) {
        let id = &self.shared.identity;
        let record = json!({
            "name": id.node_name,
            "nodeId": format!("{:016x}", id.node_id),
            "address": id.advertise.ip().to_string(),
            "gossip": id.advertise.to_string(),
            "labels": settings.labels,
        });
        let key = format!("nodes/{}", id.node_name);
        let current = self.shared.lock().store().value(&key).cloned();
        if current.as_ref() != Some(&record) {
            self.write(&key, Some(record));
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.shared.identity
    }

    pub fn replica(&self) -> &Arc<Mutex<Replica>> {
        &self.shared.replica
    }

    pub fn members(&self) -> Vec<Id> {
        self.shared.members.borrow().clone()
    }

    /// Refused while this node's replica is being refilled after its file was damaged: nothing
    /// may read the empty stand-in as the cluster's state, nor write over the cluster's with it.
    pub fn check_serving(&self) -> Result<(), Error> {
        match self.shared.lock().recovering() {
            Some(r) => Err(Error::Recovering {
                set_aside: r.set_aside.clone(),
            }),
            None => Ok(()),
        }
    }

    /// A local write, applied now and disseminated.
    pub fn write(&self, key: &str, value: Option<serde_json::Value>) -> Entry {
        let entry = self.shared.lock().write(key, value);
        let mut delta = Delta {
            key: key.to_owned(),
            version: entry.version,
            entry: Some(entry.clone()),
            origin: self.shared.identity.advertise,
        };
        let mut bytes = serde_json::to_vec(&delta).unwrap_or_default();
        if bytes.len() > INLINE_DELTA {
            delta.entry = None;
            bytes = serde_json::to_vec(&delta).unwrap_or_default();
        }
        if self.input.try_send(Input::Broadcast(bytes)).is_err() {
            // The next anti-entropy round carries it instead.
            tracing::debug!(key, "broadcast queue full");
        }
        entry
    }

    /// Resolves once every change made so far is on this node's disk, or fails when writing
    /// it fails (a full disk): what a write waits for before it is acknowledged, so that an
    /// acknowledged write survives a crash of this process even before any peer has it.
    pub fn until_durable(&self) -> impl Future<Output = Result<(), Error>> + Send + use<> {
        let target = self.shared.lock().written();
        let mut durability = self.durability.clone();
        let asked = durability.borrow().begun;
        let persist_now = self.persist_now.clone();
        async move {
            persist_now.notify_one();
            // Done when a write that holds this change succeeded, or one begun since it was
            // asked for, holding it, failed.
            let wait = durability.wait_for(|d| {
                d.flushed >= target
                    || d.failed
                        .as_ref()
                        .is_some_and(|(attempt, holds, _)| *attempt > asked && *holds >= target)
            });
            match tokio::time::timeout(IO_TIMEOUT, wait).await {
                Ok(Ok(d)) if d.flushed >= target => Ok(()),
                Ok(Ok(d)) => Err(Error::NotDurable(
                    d.failed
                        .as_ref()
                        .map(|(_, _, m)| m.clone())
                        .unwrap_or_default(),
                )),
                Ok(Err(_)) => Err(Error::NotDurable("the session stopped".to_owned())),
                Err(_) => Err(Error::NotDurable(format!(
                    "not written within {}s",
                    IO_TIMEOUT.as_secs()
                ))),
            }
        }
    }

    pub fn announce(&self, addr: SocketAddr) {
        let _ = self.input.try_send(Input::Announce(addr));
    }

    pub async fn sync_with(&self, addr: SocketAddr) -> Result<usize, Error> {
        self.shared.sync_with(addr).await
    }

    /// Flushes the replica and stops every task; the sockets close with them.
    pub async fn stop(mut self) {
        {
            let mut r = self.shared.lock();
            if let Err(e) = r.flush() {
                tracing::error!(error = %crate::control::chain(&e), "cannot persist the cluster state");
            }
        }
        self.tasks.shutdown().await;
    }

    /// Tells the members this node is leaving, then stops.
    pub async fn leave(self) {
        let key = format!("nodes/{}", self.shared.identity.node_name);
        self.write(&key, None);
        // A direct exchange makes the departure certain to reach someone even if the
        // broadcast is lost.
        if let Some(peer) = self.members().first() {
            let _ = self.sync_with(peer.addr).await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.input.send(Input::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        self.stop().await;
    }
}

/// The address this node is reached at when nobody said: the source address of the default
/// route (no packet is sent), or loopback without one.
pub fn default_advertise_ip() -> std::net::IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("192.0.2.1:9")?;
        s.local_addr()
    });
    match probe {
        Ok(addr) if !addr.ip().is_unspecified() => addr.ip(),
        _ => std::net::IpAddr::from([127, 0, 0, 1]),
    }
}

/// Stores `ca` as the cluster's CA record, its key sealed with the session's cluster key.
fn write_ca(session: &Session, ca: &ClusterCa) {
    let sealed = session
        .identity()
        .key()
        .map(|k| ca.sealed_key(&k))
        .unwrap_or_default();
    session.write(
        CA_KEY,
        Some(json!({ "cert": ca.cert_pem(), "key": sealed })),
    );
}

/// `ADDR` as users type it: an IP, a host name, either with or without a port.
fn with_default_port(addr: &str, port: u16) -> String {
    if addr.parse::<SocketAddr>().is_ok() {
        return addr.to_owned();
    }
    if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return SocketAddr::new(ip, port).to_string();
    }
    match addr.rsplit_once(':') {
        Some((_, p)) if p.parse::<u16>().is_ok() => addr.to_owned(),
        _ => format!("{addr}:{port}"),
    }
}

/// The node: its settings and whichever session is current.
#[derive(Debug)]
pub struct Node {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    session: tokio::sync::Mutex<Option<Session>>,
    /// Bumped whenever the session (and so the cluster) changes; subscribers restart.
    generation: watch::Sender<u64>,
    /// Set when no session could be brought back after a failed init, join or leave: the
    /// process must exit so that systemd restarts it, rather than answer "between clusters"
    /// for good while its watchdog pings say all is well.
    stuck: watch::Sender<bool>,
}

impl Node {
    /// Starts the saved session, or creates a one-node cluster when there is none.
    pub async fn start(settings: Settings) -> Result<Arc<Node>, Error> {
        let node = Arc::new(Node {
            settings,
            metrics: Arc::new(Metrics::default()),
            session: tokio::sync::Mutex::new(None),
            generation: watch::channel(0).0,
            stuck: watch::channel(false).0,
        });
        let (identity, lineage) = match Identity::load(&node.settings.key_dir)? {
            Some(id) => (id, Lineage::Member),
            None => (node.create_identity(None)?, Lineage::New),
        };
        let session =
            Session::start(identity, lineage, &node.settings, node.metrics.clone()).await?;
        // Only the node that creates a cluster makes its CA and first token: a member that
        // restarts before it has synced must not replace the cluster's with its own.
        let upgrade = lineage == Lineage::Member && session.shared.cluster_ca().is_none();
        if lineage == Lineage::New {
            node.new_cluster_secrets(&session)?;
        }
        *node.session.lock().await = Some(session);
        if upgrade {
            tokio::spawn(Arc::clone(&node).make_missing_ca());
        }
        Ok(node)
    }

    /// A cluster made by a podswarm from before cluster CAs gets one from the first upgraded node
    /// that has its peers' state (or is alone on record): never before, so that an upgraded node
    /// that restarts does not put a CA of its own over one the cluster made meanwhile. Two nodes
    /// upgraded at the same moment may both make one; the record's last write wins on every
    /// node, and the join token follows whichever CA stands (see [`Node::join_token`]).
    async fn make_missing_ca(self: Arc<Self>) {
        let mut generation = self.generation.subscribe();
        loop {
            let done = self
                .with(|s| {
                    if s.shared.cluster_ca().is_some() {
                        return Ok(true);
                    }
                    // A replica being refilled lists no peers, but it has them.
                    if s.check_serving().is_err() {
                        return Ok(false);
                    }
                    let alone = s
                        .shared
                        .lock()
                        .peers_on_record()
                        .iter()
                        .all(|(name, _)| *name == s.identity().node_name);
                    let synced = self.metrics.snapshot().syncs > 0;
                    if !(alone || synced) {
                        return Ok(false);
                    }
                    let ca = ClusterCa::generate(s.identity().cluster)?;
                    write_ca(s, &ca);
                    tracing::info!(fingerprint = %podswarm_cluster::ca::fingerprint_text(&ca.fingerprint()), "made the cluster CA this cluster did not have yet");
                    Ok::<_, Error>(true)
                })
                .await;
            match done {
                Ok(Ok(true)) => return,
                Ok(Err(e)) => {
                    tracing::error!(error = %crate::control::chain(&e), "cannot make the cluster CA");
                }
                _ => {}
            }
            // A new session (init, join, leave) brings its own CA.
            tokio::select! {
                _ = generation.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    fn advertise(&self, ip: Option<std::net::IpAddr>) -> SocketAddr {
        let ip = ip
            .or(self.settings.advertise_ip)
            .unwrap_or_else(default_advertise_ip);
        SocketAddr::new(ip, self.settings.listen.port())
    }

    fn create_identity(&self, ip: Option<std::net::IpAddr>) -> Result<Identity, Error> {
        let identity = Identity::create(&self.settings.node_name, self.advertise(ip));
        identity.save(&self.settings.key_dir)?;
        tracing::info!(cluster = %format!("{:016x}", identity.cluster), address = %identity.advertise, "created a new cluster");
        Ok(identity)
    }

    /// A new cluster's CA and first join token.
    fn new_cluster_secrets(&self, session: &Session) -> Result<JoinToken, Error> {
        let ca = ClusterCa::generate(session.identity().cluster)?;
        write_ca(session, &ca);
        Ok(self.write_token(session, &ca))
    }

    fn write_token(&self, session: &Session, ca: &ClusterCa) -> JoinToken {
        let token = JoinToken::generate(session.identity().cluster, ca.fingerprint());
        session.write(TOKEN_KEY, Some(json!({ "token": token.to_string() })));
        token
    }

    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Resolves once the node has no session and could not start one again (see `stuck`).
    pub async fn stuck(&self) {
        let mut rx = self.stuck.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Runs `f` with the current session.
    pub async fn with<T>(&self, f: impl FnOnce(&Session) -> T) -> Result<T, Error> {
        let guard = self.session.lock().await;
        match guard.as_ref() {
            Some(s) => Ok(f(s)),
            None => Err(Error::Refused(
                "the node is between clusters; try again".to_owned(),
            )),
        }
    }

    /// The cluster's join token; a new one when asked to rotate it, or when the one on record
    /// does not pin the CA that stands (a token from before CAs, or a CA two upgraded nodes made
    /// at once that lost its record).
    pub async fn join_token(&self, rotate: bool) -> Result<String, Error> {
        self.with(|s| {
            let ca = s.shared.standing_ca()?;
            let current = s
                .replica()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .store()
                .value(TOKEN_KEY)
                .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(str::to_owned))
                .and_then(|t| JoinToken::parse(&t).ok());
            Ok(match current {
                Some(t) if !rotate && t.ca == ca.fingerprint() => t.to_string(),
                _ => self.write_token(s, &ca).to_string(),
            })
        })
        .await?
    }

    /// This node's certificate, signed by the cluster CA for the key of `csr_pem`, for its name,
    /// advertised address and `addresses`; recorded as `certs/<node>` (its expiry) so that
    /// `cluster status` shows every node's.
    pub async fn sign_node(
        &self,
        csr_pem: &str,
        lifetime: Duration,
        addresses: &[std::net::IpAddr],
    ) -> Result<crate::control::protocol::NodeCertificate, Error> {
        self.with(|s| {
            s.check_serving()?;
            let ca = s.shared.standing_ca()?;
            let id = s.identity();
            let mut names = addresses.to_vec();
            if !id.advertise.ip().is_unspecified() {
                names.push(id.advertise.ip());
            }
            let signed = ca.sign_node(
                csr_pem,
                &id.node_name,
                &names,
                lifetime,
                std::time::SystemTime::now(),
            )?;
            s.write(
                &format!("{CERTS_PREFIX}{}", id.node_name),
                Some(serde_json::json!({
                    "node": id.node_name,
                    "notAfter": signed.not_after,
                })),
            );
            Ok(crate::control::protocol::NodeCertificate {
                cert: signed.cert_pem,
                ca: ca.cert_pem().to_owned(),
                not_before: signed.not_before,
                not_after: signed.not_after,
            })
        })
        .await?
    }

    async fn replace(
        &self,
        next: impl AsyncFnOnce(Session) -> Result<Session, Error>,
    ) -> Result<(), Error> {
        let mut guard = self.session.lock().await;
        let Some(current) = guard.take() else {
            return Err(Error::Refused(
                "the node is between clusters; try again".to_owned(),
            ));
        };
        let result = next(current).await;
        self.generation.send_modify(|g| *g += 1);
        match result {
            Ok(s) => {
                *guard = Some(s);
                Ok(())
            }
            Err(e) => {
                // Whatever happened, come back up on the identity on disk (the old session's
                // sockets may take a moment to close).
                for _ in 0..20 {
                    let Ok(Some(id)) = Identity::load(&self.settings.key_dir) else {
                        break;
                    };
                    match Session::start(id, Lineage::Member, &self.settings, self.metrics.clone())
                        .await
                    {
                        Ok(s) => {
                            *guard = Some(s);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %crate::control::chain(&e), "restarting the session")
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if guard.is_none() {
                    tracing::error!("no cluster session could be started again");
                    self.stuck.send_replace(true);
                }
                Err(e)
            }
        }
    }

    fn refuse_if_busy(session: &Session, what: &str) -> Result<(), Error> {
        let members = session.members().len();
        if members > 0 {
            return Err(Error::Refused(format!(
                "this node is in a cluster with {members} other member(s); run `podswarmctl cluster leave` before {what}"
            )));
        }
        let objects = session
            .replica()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .store()
            .live("objects/")
            .count();
        if objects > 0 {
            return Err(Error::Refused(format!(
                "this node holds {objects} applied object(s); delete them before {what} (they would not follow the node)"
            )));
        }
        Ok(())
    }

    /// A new one-node cluster (only for a node that is alone and empty).
    pub async fn init(&self, ip: Option<std::net::IpAddr>) -> Result<(u64, String), Error> {
        self.with(|s| Node::refuse_if_busy(s, "creating a new cluster"))
            .await??;
        let mut out = None;
        self.replace(async |current| {
            current.stop().await;
            let identity = self.create_identity(ip)?;
            let session =
                Session::start(identity, Lineage::New, &self.settings, self.metrics.clone())
                    .await?;
            let token = self.new_cluster_secrets(&session)?;
            out = Some((session.identity().cluster, token.to_string()));
            Ok(session)
        })
        .await?;
        out.ok_or_else(|| Error::Refused("init did not finish".to_owned()))
    }

    /// Joins the cluster `addr` belongs to, with its token.
    pub async fn join(
        &self,
        addr: &str,
        token: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<u64, Error> {
        let token = JoinToken::parse(token)?;
        let addr = with_default_port(addr, self.settings.listen.port());
        self.with(|s| Node::refuse_if_busy(s, "joining another cluster"))
            .await??;
        // The handshake comes first: a refused join leaves the current session untouched.
        let (identity, seeds) = self.handshake(&addr, &token, ip).await?;
        let mut cluster = 0;
        self.replace(async |current| {
            current.stop().await;
            identity.save(&self.settings.key_dir)?;
            cluster = identity.cluster;
            let session =
                Session::start(identity, Lineage::New, &self.settings, self.metrics.clone())
                    .await?;
            for seed in &seeds {
                session.announce(*seed);
            }
            // Take the cluster's state now rather than at the next anti-entropy round; if this
            // fails the periodic exchange still brings it.
            if let Some(first) = seeds.first()
                && let Err(e) = session.sync_with(*first).await
            {
                tracing::warn!(error = %crate::control::chain(&e), "first state exchange failed");
            }
            tracing::info!(cluster = %format!("{cluster:016x}"), via = %addr, "joined the cluster");
            Ok(session)
        })
        .await?;
        Ok(cluster)
    }

    async fn handshake(
        &self,
        addr: &str,
        token: &JoinToken,
        ip: Option<std::net::IpAddr>,
    ) -> Result<(Identity, Vec<SocketAddr>), Error> {
        let io = |source| Error::Stream {
            peer: addr.to_owned(),
            source,
        };
        let mut stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Connect {
                addr: addr.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
            })?
            .map_err(|source| Error::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // The member's CA first, checked against the token's fingerprint: nothing derived from the
        // token's secret goes to a member of another cluster, or to whatever answers in its place.
        proto::write_frame(&mut stream, proto::CA_REQUEST)
            .await
            .map_err(io)?;
        let frame = tokio::time::timeout(IO_TIMEOUT, proto::read_frame(&mut stream))
            .await
            .map_err(|_| io(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer")))?
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Error::Protocol {
                        peer: addr.to_owned(),
                        message: "the member closed the connection instead of presenting its cluster CA (it may run a podswarm from before cluster CAs: upgrade it first)".to_owned(),
                    }
                } else {
                    io(e)
                }
            })?;
        let presented = match serde_json::from_slice::<CaReply>(&frame) {
            Ok(reply) => podswarm_cluster::ca::fingerprint_of(&reply.ca_cert)?,
            Err(_) => {
                let reason = serde_json::from_slice::<Refusal>(&frame)
                    .map(|r| r.refused)
                    .unwrap_or_else(|_| "no cluster CA presented".to_owned());
                return Err(Error::JoinRefused {
                    peer: addr.to_owned(),
                    reason,
                });
            }
        };
        if presented != token.ca {
            Metrics::add(&self.metrics.join_ca_mismatches, 1);
            return Err(Error::CaMismatch {
                peer: addr.to_owned(),
                pinned: token.ca_text(),
                presented: podswarm_cluster::ca::fingerprint_text(&presented),
            });
        }
        // Unless told otherwise, advertise the address this node reached the member from.
        let local_ip = stream.local_addr().map_err(io)?.ip();
        let advertise = SocketAddr::new(
            ip.or(self.settings.advertise_ip).unwrap_or(local_ip),
            self.settings.listen.port(),
        );
        let node_id = random_id();
        let sealer = Sealer::new(&token.join_key(), node_id);
        let request = JoinRequest {
            node_id,
            node_name: self.settings.node_name.clone(),
            advertise,
        };
        let packet = sealer.seal(
            Kind::JoinRequest,
            &serde_json::to_vec(&request).unwrap_or_default(),
        );
        let counter = seal::peek(&packet).map(|h| h.counter).unwrap_or_default();
        Metrics::add(&self.metrics.join_requests_sent, 1);
        proto::write_frame(&mut stream, &packet).await.map_err(io)?;
        let frame = tokio::time::timeout(IO_TIMEOUT, proto::read_frame(&mut stream))
            .await
            .map_err(|_| {
                io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer",
                ))
            })?
            .map_err(io)?;
        if seal::peek(&frame).is_err() {
            let reason = serde_json::from_slice::<Refusal>(&frame)
                .map(|r| r.refused)
                .unwrap_or_else(|_| "no reason given".to_owned());
            return Err(Error::JoinRefused {
                peer: addr.to_owned(),
                reason,
            });
        }
        let (_, plain) = sealer
            .open_unchecked(&frame, Kind::JoinReply)
            .map_err(|source| Error::Frame {
                peer: addr.to_owned(),
                source,
            })?;
        let reply: JoinReply = serde_json::from_slice(&plain).map_err(|e| Error::Protocol {
            peer: addr.to_owned(),
            message: e.to_string(),
        })?;
        let key = ClusterKey::from_hex(&reply.key);
        if reply.answers != counter || reply.cluster != token.cluster || key.is_none() {
            return Err(Error::Protocol {
                peer: addr.to_owned(),
                message: "the join reply does not answer this request".to_owned(),
            });
        }
        let key = key.ok_or_else(|| Error::Refused("no key".to_owned()))?;
        let identity = Identity::joined(
            reply.cluster,
            node_id,
            &self.settings.node_name,
            advertise,
            &key,
        );
        Ok((identity, reply.seeds))
    }

    /// Leaves the cluster gracefully and starts a new one-node cluster.
    pub async fn leave(&self) -> Result<u64, Error> {
        let mut cluster = 0;
        self.replace(async |current| {
            let ip = Some(current.identity().advertise.ip());
            current.leave().await;
            // The old state belongs to the old cluster; the new session sets it aside.
            let identity = self.create_identity(ip)?;
            cluster = identity.cluster;
            let session =
                Session::start(identity, Lineage::New, &self.settings, self.metrics.clone())
                    .await?;
            self.new_cluster_secrets(&session)?;
            Ok(session)
        })
        .await?;
        Ok(cluster)
    }

    pub async fn shutdown(&self) {
        if let Some(s) = self.session.lock().await.take() {
            s.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_is_acknowledged_once_it_is_on_disk_and_refused_when_it_cannot_be() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let node = Node::start(Settings::loopback(dir.path())).await.unwrap();
        let durable = node
            .with(|s| {
                s.write("objects/Pod/default/a", Some(json!({"v": 1})));
                s.until_durable()
            })
            .await
            .unwrap();
        durable.await.unwrap();
        // On disk already: the 300 ms round has not necessarily come.
        let text = std::fs::read_to_string(state.join("replica.json")).unwrap();
        assert!(text.contains("objects/Pod/default/a"), "{text}");

        // Where nothing can be written, the write is not acknowledged, with the reason.
        std::fs::remove_dir_all(&state).unwrap();
        std::fs::write(&state, b"a file where the directory was").unwrap();
        let durable = node
            .with(|s| {
                s.write("objects/Pod/default/b", Some(json!({"v": 2})));
                s.until_durable()
            })
            .await
            .unwrap();
        let e = durable.await.unwrap_err();
        assert!(
            matches!(&e, Error::NotDurable(m) if m.contains("replica.json")),
            "{e}"
        );
        // Once it can be written again, both writes are there.
        std::fs::remove_file(&state).unwrap();
        let durable = node.with(|s| s.until_durable()).await.unwrap();
        durable.await.unwrap();
        let text = std::fs::read_to_string(state.join("replica.json")).unwrap();
        assert!(text.contains("objects/Pod/default/b"), "{text}");
    }

    /// A node of a test cluster on its own loopback address (127.71.0.`n`, port 7946), with
    /// short intervals.
    fn member(root: &std::path::Path, n: u8) -> Settings {
        let dir = root.join(format!("n{n}"));
        let ip = std::net::IpAddr::from([127, 71, 0, n]);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        Settings {
            listen: SocketAddr::new(ip, 7946),
            node_name: format!("n{n}"),
            advertise_ip: Some(ip),
            probe_period: Duration::from_millis(200),
            sync_interval: Duration::from_millis(300),
            reconnect_interval: Duration::from_millis(500),
            ..Settings::loopback(&dir)
        }
    }

    async fn entry(node: &Node, key: &str) -> Option<Entry> {
        node.with(|s| s.replica().lock().unwrap().store().entry(key).cloned())
            .await
            .unwrap()
    }

    async fn value(node: &Node, key: &str) -> Option<serde_json::Value> {
        entry(node, key).await.and_then(|e| e.value)
    }

    /// A cluster from before cluster CAs (no CA record, a `PSWTKN-1-` token on record) gets a
    /// CA from its upgraded node once that node may make one (alone on record here), and the join
    /// token follows: a new one that pins it. A new cluster has both from the start.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upgraded_cluster_gets_a_ca_and_a_token_that_pins_it() {
        let root = tempfile::tempdir().unwrap();
        let settings = member(root.path(), 1);
        let node = Node::start(settings.clone()).await.unwrap();
        let first = node.join_token(false).await.unwrap();
        let ca = node
            .with(|s| s.shared.cluster_ca())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(JoinToken::parse(&first).unwrap().ca, ca.fingerprint());
        // As an older podswarm left it.
        let old = format!("PSWTKN-1-{:016x}-{}", 1, "ab".repeat(32));
        let durable = node
            .with(|s| {
                s.write(CA_KEY, None);
                s.write(TOKEN_KEY, Some(json!({ "token": old })));
                s.until_durable()
            })
            .await
            .unwrap();
        durable.await.unwrap();
        node.shutdown().await;
        drop(node);

        let node = Node::start(settings).await.unwrap();
        let mut made = None;
        for _ in 0..100 {
            made = node.with(|s| s.shared.cluster_ca()).await.unwrap();
            if made.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let made = made.expect("the upgraded node made a CA").unwrap();
        assert_ne!(made.fingerprint(), ca.fingerprint());
        let token = JoinToken::parse(&node.join_token(false).await.unwrap()).unwrap();
        assert_eq!(token.ca, made.fingerprint());
        assert_eq!(
            node.join_token(false).await.unwrap(),
            token.to_string(),
            "stable once it pins the CA"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_replica_is_refilled_from_a_member_without_losing_a_delete() {
        let root = tempfile::tempdir().unwrap();
        let a = Node::start(member(root.path(), 1)).await.unwrap();
        let b_settings = member(root.path(), 2);
        let b = Node::start(b_settings.clone()).await.unwrap();
        let token = a.join_token(false).await.unwrap();
        b.join("127.71.0.1", &token, None).await.unwrap();
        let durable = a
            .with(|s| {
                s.write("objects/Pod/default/kept", Some(json!({"v": 1})));
                s.write("objects/Pod/default/gone", Some(json!({"v": 1})));
                s.write("objects/Pod/default/gone", None);
                s.until_durable()
            })
            .await
            .unwrap();
        durable.await.unwrap();
        let mut held = false;
        for _ in 0..600 {
            held = value(&b, "objects/Pod/default/kept").await.is_some()
                && entry(&b, "objects/Pod/default/gone").await.is_some();
            if held {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(held, "b took the writes");
        b.shutdown().await;

        let file = b_settings.state_dir.join("replica.json");
        let whole = std::fs::read(&file).unwrap();
        std::fs::write(&file, &whole[..whole.len() / 3]).unwrap();
        let b = Node::start(b_settings.clone()).await.unwrap();
        let aside = std::fs::read_dir(&b_settings.state_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("replica.json.corrupt-")
            })
            .map(|e| std::fs::read(e.path()).unwrap());
        assert_eq!(aside.as_deref(), Some(&whole[..whole.len() / 3]));
        let mut serving = false;
        for _ in 0..600 {
            serving = b.with(|s| s.check_serving().is_ok()).await.unwrap();
            if serving {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(serving, "a member refilled b");
        assert_eq!(
            value(&b, "objects/Pod/default/kept").await,
            Some(json!({"v": 1}))
        );
        let gone = entry(&b, "objects/Pod/default/gone").await;
        assert!(gone.is_some_and(|e| e.is_tombstone()), "the delete is back");
        assert_eq!(
            b.join_token(false).await.unwrap(),
            token,
            "the cluster's join token, not a new one"
        );
        // Refilled is on disk: a restart serves at once.
        b.shutdown().await;
        let b = Node::start(b_settings).await.unwrap();
        assert!(b.with(|s| s.check_serving().is_ok()).await.unwrap());
        assert!(value(&b, "objects/Pod/default/kept").await.is_some());
        b.shutdown().await;
        a.shutdown().await;
    }

    /// Damages a stopped node's replica file.
    fn damage(settings: &Settings) {
        std::fs::write(settings.state_dir.join("replica.json"), b"{\"cluster\":").unwrap();
    }

    async fn exchange(from: &Node, to: SocketAddr) {
        let guard = from.session.lock().await;
        let session = guard.as_ref().unwrap();
        session.sync_with(to).await.unwrap();
    }

    async fn recovering(node: &Node) -> bool {
        node.with(|s| s.check_serving().is_err()).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_recovering_nodes_do_not_end_each_others_recovery() {
        let root = tempfile::tempdir().unwrap();
        let (a_settings, b_settings) = (member(root.path(), 11), member(root.path(), 12));
        let a = Node::start(a_settings.clone()).await.unwrap();
        let b = Node::start(b_settings.clone()).await.unwrap();
        let token = a.join_token(false).await.unwrap();
        b.join("127.71.0.11", &token, None).await.unwrap();
        a.shutdown().await;
        b.shutdown().await;
        damage(&a_settings);
        damage(&b_settings);
        let a = Node::start(a_settings.clone()).await.unwrap();
        let b = Node::start(b_settings.clone()).await.unwrap();
        // Whole exchanges both ways: each learns only the other's stand-in.
        exchange(&a, b_settings.listen).await;
        exchange(&b, a_settings.listen).await;
        assert!(recovering(&a).await && recovering(&b).await);
        b.shutdown().await;
        a.shutdown().await;
    }

    #[tokio::test]
    async fn a_node_that_cannot_start_a_session_again_says_it_is_stuck() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let node = Node::start(Settings::loopback(dir.path())).await.unwrap();
        // Nothing can be saved or loaded where the keys live now.
        let keys = dir.path().join("keys");
        std::fs::remove_dir_all(&keys).unwrap();
        std::fs::write(&keys, b"not a directory").unwrap();
        assert!(node.init(None).await.is_err());
        tokio::time::timeout(Duration::from_secs(10), node.stuck())
            .await
            .expect("the node reports that it is stuck");
        assert!(node.with(|_| ()).await.is_err());
    }

    #[tokio::test]
    async fn a_failed_init_that_can_start_again_is_not_stuck() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let node = Node::start(Settings::loopback(dir.path())).await.unwrap();
        // A successful replace leaves the node serving.
        node.init(None).await.unwrap();
        assert!(node.with(|_| ()).await.is_ok());
        let stuck = tokio::time::timeout(Duration::from_millis(300), node.stuck()).await;
        assert!(stuck.is_err(), "a working node is not stuck");
    }

    #[test]
    fn join_addresses_get_the_gossip_port_when_they_have_none() {
        assert_eq!(with_default_port("10.0.0.1", 7946), "10.0.0.1:7946");
        assert_eq!(with_default_port("10.0.0.1:9000", 7946), "10.0.0.1:9000");
        assert_eq!(with_default_port("fd00::1", 7946), "[fd00::1]:7946");
        assert_eq!(with_default_port("[fd00::1]:5", 7946), "[fd00::1]:5");
        assert_eq!(with_default_port("node2", 7946), "node2:7946");
        assert_eq!(with_default_port("node2:1", 7946), "node2:1");
    }
}
