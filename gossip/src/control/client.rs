//! A client for the control socket, for podswarmd, podswarmctl and tests.
//!
//! One connection per request: connecting to a local socket costs about a file open, and a
//! connection per call leaves nothing to reconnect when podswarm-gossip restarts. Each typed call
//! checks that the answer is the one its request gets; an error answer becomes
//! [`ClientError::Failed`] with its kind, so callers branch on the kind, never on the text.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use futures_util::{SinkExt, StreamExt};
use podswarm_cluster::Hlc;
use serde_json::Value;
use tokio::net::UnixStream;
use tokio_util::codec::Framed;

use super::protocol::JsonLines;
pub use super::protocol::{
    CertificateExpiry, Change, Failure, FailureKind, Initialized, Item, LineError, Member,
    NodeCertificate, Request, Response, Status,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach podswarm-gossip at {path} (is podswarm-gossip.service running?)")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lost the connection to podswarm-gossip")]
    Io(#[source] std::io::Error),
    #[error("podswarm-gossip closed the connection")]
    Closed,
    #[error("podswarm-gossip answered something unreadable")]
    Unreadable(#[source] LineError),
    #[error("podswarm-gossip answered {answer:?} to {request:?}")]
    Unexpected {
        request: &'static str,
        answer: &'static str,
    },
    /// podswarm-gossip did not do it, and said why.
    #[error("{message}")]
    Failed { kind: FailureKind, message: String },
}

impl ClientError {
    /// The server's kind of failure, when it answered with one.
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            ClientError::Failed { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl From<Failure> for ClientError {
    fn from(f: Failure) -> ClientError {
        ClientError::Failed {
            kind: f.kind,
            message: f.message,
        }
    }
}

type Connection = Framed<UnixStream, JsonLines<Response, Request>>;

async fn connect(path: &Path) -> Result<Connection, ClientError> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
    Ok(Framed::new(stream, JsonLines::client()))
}

/// The next answer; an error answer is an `Err`.
async fn receive(connection: &mut Connection) -> Result<Response, ClientError> {
    match connection.next().await {
        None => Err(ClientError::Closed),
        Some(Err(e)) => Err(ClientError::Io(e)),
        Some(Ok(Err(line))) => Err(ClientError::Unreadable(line)),
        Some(Ok(Ok(Response::Error(failure)))) => Err(failure.into()),
        Some(Ok(Ok(answer))) => Ok(answer),
    }
}

fn unexpected(request: &'static str, answer: &Response) -> ClientError {
    ClientError::Unexpected {
        request,
        answer: answer.name(),
    }
}

/// The control socket of one podswarm-gossip.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
}

impl Client {
    pub fn new(path: impl Into<PathBuf>) -> Client {
        Client { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and returns its answer, whichever it is.
    pub async fn call(&self, request: Request) -> Result<Response, ClientError> {
        let mut connection = connect(&self.path).await?;
        connection.send(request).await.map_err(ClientError::Io)?;
        receive(&mut connection).await
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        match self.call(Request::Status {}).await? {
            Response::Status(status) => Ok(*status),
            other => Err(unexpected("status", &other)),
        }
    }

    /// Every live entry under `prefix`.
    pub async fn get(&self, prefix: &str) -> Result<Vec<Item>, ClientError> {
        let request = Request::Get {
            prefix: prefix.to_owned(),
        };
        match self.call(request).await? {
            Response::Entries(items) => Ok(items),
            other => Err(unexpected("get", &other)),
        }
    }

    /// Writes `key`; returns once it is on the node's disk, with the version it got.
    pub async fn put(&self, key: &str, value: Value) -> Result<Hlc, ClientError> {
        let request = Request::Put {
            key: key.to_owned(),
            value,
        };
        match self.call(request).await? {
            Response::Stored { version } => Ok(version),
            other => Err(unexpected("put", &other)),
        }
    }

    /// Deletes `key`; returns once the tombstone is on the node's disk, with its version.
    pub async fn delete(&self, key: &str) -> Result<Hlc, ClientError> {
        let request = Request::Delete {
            key: key.to_owned(),
        };
        match self.call(request).await? {
            Response::Stored { version } => Ok(version),
            other => Err(unexpected("delete", &other)),
        }
    }

    /// The cluster's join token; `rotate` replaces it first.
    pub async fn join_token(&self, rotate: bool) -> Result<String, ClientError> {
        match self.call(Request::JoinToken { rotate }).await? {
            Response::JoinToken { token } => Ok(token),
            other => Err(unexpected("join-token", &other)),
        }
    }

    pub async fn init(&self, advertise_addr: Option<IpAddr>) -> Result<Initialized, ClientError> {
        match self.call(Request::Init { advertise_addr }).await? {
            Response::Initialized(initialized) => Ok(initialized),
            other => Err(unexpected("init", &other)),
        }
    }

    /// Joins the cluster `address` belongs to; returns the cluster's id.
    pub async fn join(
        &self,
        address: &str,
        token: &str,
        advertise_addr: Option<IpAddr>,
    ) -> Result<u64, ClientError> {
        let request = Request::Join {
            address: address.to_owned(),
            token: token.to_owned(),
            advertise_addr,
        };
        match self.call(request).await? {
            Response::Joined { cluster } => Ok(cluster),
            other => Err(unexpected("join", &other)),
        }
    }

    /// This node's certificate, signed by the cluster CA for the key of `csr` (PEM).
    pub async fn sign_node(
        &self,
        csr: &str,
        lifetime: std::time::Duration,
        addresses: Vec<IpAddr>,
    ) -> Result<NodeCertificate, ClientError> {
        let request = Request::SignNode {
            csr: csr.to_owned(),
            lifetime_seconds: lifetime.as_secs(),
            addresses,
        };
        match self.call(request).await? {
            Response::NodeCertificate(signed) => Ok(signed),
            other => Err(unexpected("sign-node", &other)),
        }
    }

    /// Leaves the cluster; returns the id of the one-node cluster the node is in now.
    pub async fn leave(&self) -> Result<u64, ClientError> {
        match self.call(Request::Leave {}).await? {
            Response::Left { cluster } => Ok(cluster),
            other => Err(unexpected("leave", &other)),
        }
    }

    pub async fn subscribe(&self, prefix: &str) -> Result<Subscription, ClientError> {
        Subscription::open(&self.path, prefix).await
    }
}

/// One message of a subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Every live entry under the prefix.
    Snapshot(Vec<Item>),
    /// One change; a delete has no value.
    Change(Change),
}

/// A subscription: a snapshot, then changes until the server ends it (the cluster changed,
/// the subscriber fell behind, the server stopped); then subscribe again.
#[derive(Debug)]
pub struct Subscription {
    connection: Connection,
}

impl Subscription {
    pub async fn open(path: &Path, prefix: &str) -> Result<Subscription, ClientError> {
        let mut connection = connect(path).await?;
        let request = Request::Subscribe {
            prefix: prefix.to_owned(),
        };
        connection.send(request).await.map_err(ClientError::Io)?;
        Ok(Subscription { connection })
    }

    /// The next message; an `Err` ends the subscription ([`FailureKind::resubscribe`] tells
    /// whether that is only a request to subscribe again).
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        match receive(&mut self.connection).await? {
            Response::Snapshot(items) => Ok(Event::Snapshot(items)),
            Response::Change(change) => Ok(Event::Change(change)),
            other => Err(unexpected("subscribe", &other)),
        }
    }
}
