//! The local control socket: one JSON request per line, one JSON answer per line (a subscription
//! keeps answering). podswarmd reads, writes and follows the replicated state through it;
//! podswarmctl's `cluster` commands drive joins. Only root and the daemon's own user may connect
//! (checked by peer credentials), and the socket is 0660.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::Error;
use crate::node::Node;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Status,
    Get {
        #[serde(default)]
        prefix: String,
    },
    Put {
        key: String,
        value: Value,
    },
    Delete {
        key: String,
    },
    Subscribe {
        #[serde(default)]
        prefix: String,
    },
    JoinToken {
        #[serde(default)]
        rotate: bool,
    },
    Init {
        #[serde(default, rename = "advertiseAddr")]
        advertise_addr: Option<IpAddr>,
    },
    Join {
        address: String,
        token: String,
        #[serde(default, rename = "advertiseAddr")]
        advertise_addr: Option<IpAddr>,
    },
    Leave,
}

pub use podswarm_config::process::error_chain as chain;

fn entry_json(key: &str, entry: &podswarm_cluster::Entry) -> Value {
    json!({ "key": key, "version": entry.version.to_string(), "value": entry.value })
}

pub fn bind(path: &Path) -> Result<UnixListener, Error> {
    use std::os::unix::fs::PermissionsExt;
    let write = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(write(e)),
    }
    let listener = UnixListener::bind(path).map_err(write)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(write)?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, node: Arc<Node>) {
    let own_uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let allowed = stream
            .peer_cred()
            .map(|c| c.uid() == 0 || c.uid() == own_uid)
            .unwrap_or(false);
        let node = node.clone();
        tokio::spawn(async move {
            if allowed {
                handle(stream, node).await;
            } else {
                let mut stream = stream;
                let _ = stream
                    .write_all(b"{\"error\":\"permission denied: only root and the podswarm user may use this socket\"}\n")
                    .await;
            }
        });
    }
}

async fn handle(stream: UnixStream, node: Arc<Node>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let _ = send(&mut write, &json!({ "error": format!("bad request: {e}") })).await;
                continue;
            }
        };
        if let Request::Subscribe { prefix } = request {
            subscribe(&mut write, &node, &prefix).await;
            return;
        }
        let answer = match answer(&node, request).await {
            Ok(v) => json!({ "ok": v }),
            Err(e) => json!({ "error": chain(&e) }),
        };
        if send(&mut write, &answer).await.is_err() {
            return;
        }
    }
}

async fn send(w: &mut tokio::net::unix::OwnedWriteHalf, v: &Value) -> std::io::Result<()> {
    let mut line = v.to_string();
    line.push('\n');
    w.write_all(line.as_bytes()).await
}

async fn answer(node: &Node, request: Request) -> Result<Value, Error> {
    match request {
        Request::Status => {
            let metrics = node.metrics.snapshot();
            node.with(|s| {
                let id = s.identity();
                let replica = s.replica().lock().unwrap_or_else(|p| p.into_inner());
                let names: std::collections::BTreeMap<String, String> = replica
                    .store()
                    .live("nodes/")
                    .filter_map(|(_, v)| {
                        Some((v.get("nodeId")?.as_str()?.to_owned(), v.get("name")?.as_str()?.to_owned()))
                    })
                    .collect();
                let members: Vec<Value> = s
                    .members()
                    .iter()
                    .map(|m| {
                        let node_id = format!("{:016x}", m.node);
                        json!({ "nodeId": node_id, "name": names.get(&node_id), "address": m.addr.to_string() })
                    })
                    .collect();
                json!({
                    "cluster": format!("{:016x}", id.cluster),
                    "nodeId": format!("{:016x}", id.node_id),
                    "nodeName": id.node_name,
                    "advertise": id.advertise.to_string(),
                    "members": members,
                    "entries": replica.store().len(),
                    "fingerprint": replica.store().fingerprint().iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    "metrics": metrics,
                })
            })
            .await
        }
        Request::Get { prefix } => {
            node.with(|s| {
                let replica = s.replica().lock().unwrap_or_else(|p| p.into_inner());
                let entries: Vec<Value> = replica
                    .store()
                    .range(&prefix)
                    .filter(|(_, e)| !e.is_tombstone())
                    .map(|(k, e)| entry_json(k, e))
                    .collect();
                json!({ "entries": entries })
            })
            .await
        }
        // Acknowledged only once on disk here (see `Session::until_durable`).
        Request::Put { key, value } => {
            check_key(&key)?;
            let (answer, durable) = node
                .with(|s| {
                    let e = s.write(&key, Some(value));
                    (
                        json!({ "version": e.version.to_string() }),
                        s.until_durable(),
                    )
                })
                .await?;
            durable.await?;
            Ok(answer)
        }
        Request::Delete { key } => {
            check_key(&key)?;
            let (answer, durable) = node
                .with(|s| {
                    let e = s.write(&key, None);
                    (
                        json!({ "version": e.version.to_string() }),
                        s.until_durable(),
                    )
                })
                .await?;
            durable.await?;
            Ok(answer)
        }
        Request::JoinToken { rotate } => {
            let token = node.join_token(rotate).await?;
            Ok(json!({ "token": token }))
        }
        Request::Init { advertise_addr } => {
            let (cluster, token) = node.init(advertise_addr).await?;
            Ok(json!({ "cluster": format!("{cluster:016x}"), "token": token }))
        }
        Request::Join {
            address,
            token,
            advertise_addr,
        } => {
            let cluster = node.join(&address, &token, advertise_addr).await?;
            Ok(json!({ "cluster": format!("{cluster:016x}") }))
        }
        Request::Leave => {
            let cluster = node.leave().await?;
            Ok(json!({ "cluster": format!("{cluster:016x}") }))
        }
        Request::Subscribe { .. } => Err(Error::Refused("subscribe is a stream".to_owned())),
    }
}

/// Keys are written by podswarm's own daemons; the join token only through `join-token`.
fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > 1024 || key.chars().any(char::is_control) {
        return Err(Error::Refused(format!("{key:?} is not a valid key")));
    }
    if key == crate::node::TOKEN_KEY {
        return Err(Error::Refused(
            "the join token is changed with join-token --rotate".to_owned(),
        ));
    }
    Ok(())
}

/// A snapshot of `prefix`, then every change under it, until the cluster changes (join, leave)
/// or the subscriber falls too far behind; either way the client re-subscribes.
async fn subscribe(w: &mut tokio::net::unix::OwnedWriteHalf, node: &Node, prefix: &str) {
    let mut generation = node.generation();
    let start = node
        .with(|s| {
            let replica = s.replica().lock().unwrap_or_else(|p| p.into_inner());
            let rx = replica.subscribe();
            let entries: Vec<Value> = replica
                .store()
                .range(prefix)
                .filter(|(_, e)| !e.is_tombstone())
                .map(|(k, e)| entry_json(k, e))
                .collect();
            (rx, entries)
        })
        .await;
    let (mut rx, entries) = match start {
        Ok(x) => x,
        Err(e) => {
            let _ = send(w, &json!({ "error": chain(&e) })).await;
            return;
        }
    };
    if send(w, &json!({ "snapshot": entries })).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            change = rx.recv() => match change {
                Ok(c) if c.key.starts_with(prefix) => {
                    if send(w, &json!({ "change": entry_json(&c.key, &c.entry) })).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let _ = send(w, &json!({ "error": format!("subscriber fell {n} changes behind; subscribe again") })).await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = generation.changed() => {
                let _ = send(w, &json!({ "error": "the cluster changed; subscribe again" })).await;
                return;
            }
        }
    }
}

/// A client for this socket, for podswarmd, podswarmctl and tests.
pub mod client {
    use std::path::Path;

    use serde_json::Value;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixStream;

    #[derive(Debug, thiserror::Error)]
    pub enum ClientError {
        #[error("cannot reach podswarm-gossip at {path} (is podswarm-gossip.service running?)")]
        Connect {
            path: std::path::PathBuf,
            #[source]
            source: std::io::Error,
        },
        #[error("podswarm-gossip closed the connection")]
        Closed,
        #[error("podswarm-gossip answered something unreadable: {0}")]
        Answer(String),
        #[error("{0}")]
        Failed(String),
    }

    /// One message of a subscription.
    #[derive(Debug)]
    pub enum Event {
        /// Every live entry under the prefix: `(key, version, value)`.
        Snapshot(Vec<(String, String, Value)>),
        /// One change; `None` is a delete.
        Change(String, String, Option<Value>),
    }

    /// A subscription: a snapshot, then changes until the server ends it (the cluster changed,
    /// the subscriber fell behind, the server stopped); then subscribe again.
    #[derive(Debug)]
    pub struct Subscription {
        lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
        _write: tokio::net::unix::OwnedWriteHalf,
    }

    fn triple(v: &Value) -> Option<(String, String, Option<Value>)> {
        Some((
            v.get("key")?.as_str()?.to_owned(),
            v.get("version")?.as_str()?.to_owned(),
            v.get("value").filter(|v| !v.is_null()).cloned(),
        ))
    }

    impl Subscription {
        pub async fn open(path: &Path, prefix: &str) -> Result<Subscription, ClientError> {
            let stream =
                UnixStream::connect(path)
                    .await
                    .map_err(|source| ClientError::Connect {
                        path: path.to_owned(),
                        source,
                    })?;
            let (read, mut write) = stream.into_split();
            let mut line = serde_json::json!({"op": "subscribe", "prefix": prefix}).to_string();
            line.push('\n');
            write
                .write_all(line.as_bytes())
                .await
                .map_err(|_| ClientError::Closed)?;
            Ok(Subscription {
                lines: BufReader::new(read).lines(),
                _write: write,
            })
        }

        pub async fn next(&mut self) -> Result<Event, ClientError> {
            let line = self
                .lines
                .next_line()
                .await
                .map_err(|_| ClientError::Closed)?
                .ok_or(ClientError::Closed)?;
            let v: Value =
                serde_json::from_str(&line).map_err(|e| ClientError::Answer(e.to_string()))?;
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                return Err(ClientError::Failed(e.to_owned()));
            }
            if let Some(entries) = v.get("snapshot").and_then(Value::as_array) {
                return Ok(Event::Snapshot(
                    entries
                        .iter()
                        .filter_map(triple)
                        .map(|(k, ver, val)| (k, ver, val.unwrap_or(Value::Null)))
                        .collect(),
                ));
            }
            match v.get("change").and_then(triple) {
                Some((k, ver, val)) => Ok(Event::Change(k, ver, val)),
                None => Err(ClientError::Answer(line.chars().take(200).collect())),
            }
        }
    }

    /// Sends one request and returns the `ok` part of the answer.
    pub async fn request(path: &Path, request: &Value) -> Result<Value, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.to_owned(),
                source,
            })?;
        let (read, mut write) = stream.into_split();
        let mut line = request.to_string();
        line.push('\n');
        write
            .write_all(line.as_bytes())
            .await
            .map_err(|_| ClientError::Closed)?;
        let answer = BufReader::new(read)
            .lines()
            .next_line()
            .await
            .map_err(|_| ClientError::Closed)?
            .ok_or(ClientError::Closed)?;
        let mut value: Value =
            serde_json::from_str(&answer).map_err(|e| ClientError::Answer(e.to_string()))?;
        if let Some(e) = value.get("error").and_then(Value::as_str) {
            return Err(ClientError::Failed(e.to_owned()));
        }
        value
            .get_mut("ok")
            .map(Value::take)
            .ok_or_else(|| ClientError::Answer(answer.chars().take(200).collect()))
    }
}
