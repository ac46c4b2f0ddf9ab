//! podswarm-gossip as a library: the cluster membership (SWIM, through foca), the replicated
//! state that rides on it, the join handshake, and the local socket podswarmd and podswarmctl use.
//!
//! One process per node. Everything it sends is sealed with the cluster key (`podswarm-cluster`'s
//! `seal`); a packet that does not open, or opens twice, is dropped and counted. Small state
//! changes piggy-back on SWIM packets as foca custom broadcasts; large ones travel as a hint that
//! makes receivers pull from the writer; every few seconds each node also compares fingerprints
//! with a random peer over TCP and exchanges whatever differs, which heals anything the broadcasts
//! missed (late joiners, partitions, restarts).

pub mod cli;
pub mod control;
pub mod identity;
pub mod node;
pub mod proto;
pub mod replica;
pub mod swim;

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters exposed on the control socket (`status`) and by podswarmd's `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub packets_sent: AtomicU64,
    pub packets_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub dropped_unauthenticated: AtomicU64,
    pub dropped_replayed: AtomicU64,
    pub dropped_malformed: AtomicU64,
    pub syncs: AtomicU64,
    pub sync_failures: AtomicU64,
    pub entries_received: AtomicU64,
    pub joins_admitted: AtomicU64,
    pub joins_refused: AtomicU64,
    /// Join requests this node sent (each sealed with a key derived from a token's secret).
    pub join_requests_sent: AtomicU64,
    /// Joins this node called off because the member's CA was not the one its token pins.
    pub join_ca_mismatches: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            packets_sent: get(&self.packets_sent),
            packets_received: get(&self.packets_received),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            dropped_unauthenticated: get(&self.dropped_unauthenticated),
            dropped_replayed: get(&self.dropped_replayed),
            dropped_malformed: get(&self.dropped_malformed),
            syncs: get(&self.syncs),
            sync_failures: get(&self.sync_failures),
            entries_received: get(&self.entries_received),
            joins_admitted: get(&self.joins_admitted),
            joins_refused: get(&self.joins_refused),
            join_requests_sent: get(&self.join_requests_sent),
            join_ca_mismatches: get(&self.join_ca_mismatches),
        }
    }
}

/// [`Metrics`] read at one moment, as `status` answers them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counters {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub dropped_unauthenticated: u64,
    pub dropped_replayed: u64,
    pub dropped_malformed: u64,
    pub syncs: u64,
    pub sync_failures: u64,
    pub entries_received: u64,
    pub joins_admitted: u64,
    pub joins_refused: u64,
    pub join_requests_sent: u64,
    pub join_ca_mismatches: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is damaged: {message}")]
    Damaged {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot set aside the damaged {path}")]
    SetAside {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// This node's replica file was damaged and set aside: the node serves no reads or writes of
    /// the state until a peer has refilled it (see `replica`).
    #[error(
        "this node is refilling its copy of the cluster state from the other members (the damaged file was set aside as {set_aside}); try again once one of them has answered"
    )]
    Recovering { set_aside: std::path::PathBuf },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to {peer} failed")]
    Stream {
        peer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{peer} sent a frame that does not open: {source}")]
    Frame {
        peer: String,
        #[source]
        source: podswarm_cluster::OpenError,
    },
    #[error("{peer} sent an unexpected message: {message}")]
    Protocol { peer: String, message: String },
    #[error("join refused by {peer}: {reason}")]
    JoinRefused { peer: String, reason: String },
    #[error(
        "the member at {peer} presents the cluster CA {presented}, but the join token pins {pinned}: the token is from another cluster, or something between this node and the member answers in its place; nothing was sent"
    )]
    CaMismatch {
        peer: String,
        pinned: String,
        presented: String,
    },
    #[error("the cluster CA is not usable")]
    Ca(#[from] podswarm_cluster::CaError),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Token(#[from] podswarm_cluster::TokenError),
    /// The write is applied here (and may spread) but could not be made durable on this node.
    #[error("the write could not be stored on disk: {0}")]
    NotDurable(String),
}
