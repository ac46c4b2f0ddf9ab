//! The local control socket: one JSON request per line, one JSON answer per line (a subscription
//! keeps answering); the messages and their framing are in [`protocol`], a client in [`client`].
//! podswarmd reads, writes and follows the replicated state through it; podswarmctl's `cluster`
//! commands drive joins. Only root and the daemon's own user may connect (checked by peer
//! credentials), and the socket is 0660.
//!
//! A line that is not a request (malformed, an unknown op, too long) is answered with a
//! `bad-request` error and the connection stays usable: a client that sent one wrong line learns
//! why and may go on.
//!
//! While the node refills a replica whose file was damaged (`replica`), everything that reads or
//! writes the state (`get`, `put`, `delete`, `subscribe`, `join-token`) is answered `recovering`
//! with the reason; `status` and the cluster commands still work.

pub mod client;
pub mod protocol;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::Framed;

use crate::Error;
use crate::node::{Node, Session, Settings};
pub use protocol::Request;
use protocol::{
    CertificateExpiry, Change, Failure, FailureKind, Initialized, Item, JsonLines, Member,
    Response, Status,
};

pub use podswarm_config::process::error_chain as chain;

type Connection = Framed<UnixStream, JsonLines<Request, Response>>;

fn item(key: &str, entry: &podswarm_cluster::Entry) -> Option<Item> {
    Some(Item {
        key: key.to_owned(),
        version: entry.version,
        value: entry.value.clone()?,
    })
}

fn failure(kind: FailureKind, message: impl Into<String>) -> Response {
    Response::Error(Failure {
        kind,
        message: message.into(),
    })
}

/// The kind a client acts on; the message is the whole chain, as it was always sent.
fn failure_of(e: &Error) -> Response {
    let kind = match e {
        Error::Refused(_) | Error::Token(_) => FailureKind::Refused,
        Error::JoinRefused { .. } | Error::CaMismatch { .. } => FailureKind::JoinRefused,
        Error::NotDurable(_) => FailureKind::NotDurable,
        Error::Recovering { .. } => FailureKind::Recovering,
        _ => FailureKind::Failed,
    };
    failure(kind, chain(e))
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

/// Starts [`Settings::loopback`] under `dir` and serves its control socket at `dir/gossip.sock`:
/// the one-node cluster that tests of this crate and of its users talk to.
#[doc(hidden)]
pub async fn serve_test_node(dir: &Path) -> Result<(Arc<Node>, PathBuf), Error> {
    let settings = Settings::loopback(dir);
    std::fs::create_dir_all(&settings.state_dir).map_err(|source| Error::Write {
        path: settings.state_dir.clone(),
        source,
    })?;
    let node = Node::start(settings).await?;
    let socket = dir.join("gossip.sock");
    tokio::spawn(serve(bind(&socket)?, Arc::clone(&node)));
    Ok((node, socket))
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
            let mut connection = Framed::new(stream, JsonLines::server());
            if allowed {
                handle(connection, node).await;
            } else {
                let _ = connection
                    .send(failure(
                        FailureKind::PermissionDenied,
                        "permission denied: only root and the podswarm user may use this socket",
                    ))
                    .await;
            }
        });
    }
}

async fn handle(mut connection: Connection, node: Arc<Node>) {
    while let Some(line) = connection.next().await {
        let request = match line {
            Ok(Ok(request)) => request,
            Ok(Err(bad)) => {
                let answer = failure(
                    FailureKind::BadRequest,
                    format!("bad request: {}", chain(&bad)),
                );
                if connection.send(answer).await.is_err() {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        if let Request::Subscribe { prefix } = request {
            subscribe(&mut connection, &node, &prefix).await;
            return;
        }
        let answer = answer(&node, request)
            .await
            .unwrap_or_else(|e| failure_of(&e));
        if connection.send(answer).await.is_err() {
            return;
        }
    }
}

async fn answer(node: &Node, request: Request) -> Result<Response, Error> {
    match request {
        Request::Status {} => {
            let metrics = node.metrics.snapshot();
            node.with(|s| {
                let id = s.identity();
                let replica = s.replica().lock().unwrap_or_else(|p| p.into_inner());
                let names: BTreeMap<String, String> = replica
                    .store()
                    .live("nodes/")
                    .filter_map(|(_, v)| {
                        Some((
                            v.get("nodeId")?.as_str()?.to_owned(),
                            v.get("name")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect();
                let members = s
                    .members()
                    .iter()
                    .map(|m| Member {
                        node_id: m.node,
                        name: names.get(&format!("{:016x}", m.node)).cloned(),
                        address: m.addr,
                    })
                    .collect();
                Response::Status(Box::new(Status {
                    cluster: id.cluster,
                    node_id: id.node_id,
                    node_name: id.node_name.clone(),
                    advertise: id.advertise,
                    members,
                    entries: replica.store().len(),
                    fingerprint: replica
                        .store()
                        .fingerprint()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                    ca: replica
                        .store()
                        .value(crate::node::CA_KEY)
                        .and_then(|v| v.get("cert")?.as_str())
                        .and_then(|pem| podswarm_cluster::ca::fingerprint_of(pem).ok())
                        .map(|f| podswarm_cluster::ca::fingerprint_text(&f)),
                    certificates: replica
                        .store()
                        .live(crate::node::CERTS_PREFIX)
                        .filter_map(|(_, v)| {
                            Some(CertificateExpiry {
                                node: v.get("node")?.as_str()?.to_owned(),
                                not_after: v.get("notAfter")?.as_u64()?,
                            })
                        })
                        .collect(),
                    metrics,
                }))
            })
            .await
        }
        Request::Get { prefix } => {
            node.with(|s| {
                s.check_serving()?;
                let replica = s.replica().lock().unwrap_or_else(|p| p.into_inner());
                Ok(Response::Entries(
                    replica
                        .store()
                        .range(&prefix)
                        .filter_map(|(k, e)| item(k, e))
                        .collect(),
                ))
            })
            .await?
        }
        // Acknowledged only once on disk here (see `Session::until_durable`).
        Request::Put { key, value } => write(node, &key, Some(value)).await,
        Request::Delete { key } => write(node, &key, None).await,
        Request::JoinToken { rotate } => {
            // An empty stand-in holds no token: a new one would replace the cluster's.
            node.with(Session::check_serving).await??;
            let token = node.join_token(rotate).await?;
            Ok(Response::JoinToken { token })
        }
        Request::Init { advertise_addr } => {
            let (cluster, token) = node.init(advertise_addr).await?;
            Ok(Response::Initialized(Initialized { cluster, token }))
        }
        Request::Join {
            address,
            token,
            advertise_addr,
        } => {
            let cluster = node.join(&address, &token, advertise_addr).await?;
            Ok(Response::Joined { cluster })
        }
        Request::Leave {} => {
            let cluster = node.leave().await?;
            Ok(Response::Left { cluster })
        }
        Request::SignNode {
            csr,
            lifetime_seconds,
            addresses,
        } => Ok(Response::NodeCertificate(
            node.sign_node(
                &csr,
                std::time::Duration::from_secs(lifetime_seconds),
                &addresses,
            )
            .await?,
        )),
        Request::Subscribe { .. } => Err(Error::Refused("subscribe is a stream".to_owned())),
    }
}

/// A put (`Some`) or delete (`None`), answered once it is on this node's disk.
async fn write(
    node: &Node,
    key: &str,
    value: Option<serde_json::Value>,
) -> Result<Response, Error> {
    check_key(key)?;
    let (version, durable) = node
        .with(|s| {
            s.check_serving()?;
            Ok::<_, Error>((s.write(key, value).version, s.until_durable()))
        })
        .await??;
    durable.await?;
    Ok(Response::Stored { version })
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
    if key == crate::node::CA_KEY {
        return Err(Error::Refused(
            "the cluster CA is podswarm-gossip's own".to_owned(),
        ));
    }
    Ok(())
}

/// A snapshot of `prefix`, then every change under it, until the cluster changes (join, leave)
/// or the subscriber falls too far behind; either way the client re-subscribes.
async fn subscribe(connection: &mut Connection, node: &Node, prefix: &str) {
    let mut generation = node.generation();
    let start = node
        .with(|s| {
            s.check_serving()?;
            let replica = s.replica().lock().unwrap_or_else(|p| p.into_inner());
            let rx = replica.subscribe();
            let items: Vec<Item> = replica
                .store()
                .range(prefix)
                .filter_map(|(k, e)| item(k, e))
                .collect();
            Ok((rx, items))
        })
        .await
        .and_then(|r| r);
    let (mut rx, items) = match start {
        Ok(x) => x,
        Err(e) => {
            let _ = connection.send(failure_of(&e)).await;
            return;
        }
    };
    if connection.send(Response::Snapshot(items)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            change = rx.recv() => match change {
                Ok(c) if c.key.starts_with(prefix) => {
                    let change = Change { key: c.key, version: c.entry.version, value: c.entry.value };
                    if connection.send(Response::Change(change)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let message = format!("subscriber fell {n} changes behind; subscribe again");
                    let _ = connection.send(failure(FailureKind::Lagged, message)).await;
                    return;
                }
                // The session stopped: replaced by a join, init or leave (often before the
                // generation moves), or the process is stopping.
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    let message = "the cluster session ended; subscribe again";
                    let _ = connection.send(failure(FailureKind::ClusterChanged, message)).await;
                    return;
                }
            },
            _ = generation.changed() => {
                let message = "the cluster changed; subscribe again";
                let _ = connection.send(failure(FailureKind::ClusterChanged, message)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::client::{Client, ClientError, Event};
    use super::*;

    /// A one-node cluster serving its control socket in `dir`.
    async fn serving(dir: &Path) -> (Arc<Node>, Client) {
        let (node, socket) = serve_test_node(dir).await.unwrap();
        (node, Client::new(socket))
    }

    /// Raw lines, as a hand-written client would send them.
    async fn raw(client: &Client, lines: &[&[u8]]) -> Vec<Response> {
        let stream = UnixStream::connect(client.path()).await.unwrap();
        let (read, mut write) = stream.into_split();
        for line in lines {
            write.write_all(line).await.unwrap();
        }
        let mut read = BufReader::new(read).lines();
        let mut out = Vec::new();
        for _ in lines {
            let line = read.next_line().await.unwrap().unwrap();
            out.push(serde_json::from_str(&line).unwrap());
        }
        out
    }

    fn kind_of(r: &Response) -> Option<FailureKind> {
        match r {
            Response::Error(f) => Some(f.kind),
            _ => None,
        }
    }

    #[tokio::test]
    async fn writes_reads_and_a_subscription_speak_typed_messages() {
        let dir = tempfile::tempdir().unwrap();
        let (_node, client) = serving(dir.path()).await;
        let status = client.status().await.unwrap();
        assert_eq!(status.node_name, "n1");
        assert!(status.members.is_empty());
        assert_eq!(status.fingerprint.len(), 64);

        let mut sub = client.subscribe("objects/").await.unwrap();
        assert_eq!(sub.next().await.unwrap(), Event::Snapshot(Vec::new()));
        let put = client
            .put("objects/Pod/default/a", json!({"v": 1}))
            .await
            .unwrap();
        let items = client.get("objects/").await.unwrap();
        assert_eq!(
            items,
            [Item {
                key: "objects/Pod/default/a".to_owned(),
                version: put,
                value: json!({"v": 1}),
            }]
        );
        let Event::Change(change) = sub.next().await.unwrap() else {
            panic!("a change");
        };
        assert_eq!((change.version, change.value), (put, Some(json!({"v": 1}))));
        let deleted = client.delete("objects/Pod/default/a").await.unwrap();
        assert!(deleted > put);
        let Event::Change(change) = sub.next().await.unwrap() else {
            panic!("a change");
        };
        assert_eq!((change.version, change.value), (deleted, None));
        assert!(client.get("objects/").await.unwrap().is_empty());
        // Outside the prefix: not sent.
        client.put("nodes/x", json!({})).await.unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
        assert!(quiet.is_err(), "{quiet:?}");
    }

    #[tokio::test]
    async fn bad_keys_are_refused_with_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let (_node, client) = serving(dir.path()).await;
        for key in [
            "",
            "a\nb",
            &"k".repeat(1025),
            crate::node::TOKEN_KEY,
            crate::node::CA_KEY,
        ] {
            let e = client.put(key, json!(1)).await.unwrap_err();
            assert_eq!(e.kind(), Some(FailureKind::Refused), "{key:?}: {e}");
        }
        let e = client.delete(crate::node::TOKEN_KEY).await.unwrap_err();
        assert!(e.to_string().contains("join-token --rotate"), "{e}");
        let e = client.join("127.0.0.1:1", "hello", None).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Failed { kind: FailureKind::Refused, message } if message.contains("PSWTKN-2-")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_unknown_op_or_an_over_long_line_is_answered_and_the_connection_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (_node, client) = serving(dir.path()).await;
        let mut long = br#"{"op":"put","key":"k","value":""#.to_vec();
        long.resize(protocol::MAX_REQUEST + 10, b'x');
        long.extend_from_slice(b"\"}\n");
        let answers = raw(
            &client,
            &[
                b"{\"op\":\"frobnicate\"}\n",
                b"not json\n",
                &long,
                b"{\"op\":\"status\",\"prefix\":\"x\"}\n",
                b"{\"op\":\"status\"}\n",
            ],
        )
        .await;
        let message = |r: &Response| match r {
            Response::Error(f) => f.message.clone(),
            other => panic!("{other:?}"),
        };
        assert!(
            answers[..4]
                .iter()
                .all(|a| kind_of(a) == Some(FailureKind::BadRequest))
        );
        assert!(
            message(&answers[0])
                .starts_with("bad request: unreadable message: unknown variant `frobnicate`"),
            "{}",
            message(&answers[0])
        );
        assert_eq!(
            message(&answers[2]),
            format!(
                "bad request: a line longer than {} bytes",
                protocol::MAX_REQUEST
            )
        );
        assert!(message(&answers[3]).contains("unknown field `prefix`"));
        assert!(
            matches!(answers[4], Response::Status(_)),
            "{:?}",
            answers[4]
        );
        // Nothing of the long line was stored.
        assert!(client.get("k").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_subscription_ends_when_the_cluster_changes_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (node, client) = serving(dir.path()).await;
        let mut sub = client.subscribe("").await.unwrap();
        assert!(matches!(sub.next().await.unwrap(), Event::Snapshot(_)));
        let cluster = client.status().await.unwrap().cluster;
        let init = client.init(None).await.unwrap();
        assert_ne!(init.cluster, cluster);
        assert_eq!(client.join_token(false).await.unwrap(), init.token);
        let e = loop {
            match sub.next().await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), Some(FailureKind::ClusterChanged), "{e}");
        assert!(e.kind().is_some_and(FailureKind::resubscribe));
        assert_eq!(client.status().await.unwrap().cluster, init.cluster);
        drop(node);
    }

    #[tokio::test]
    async fn a_node_refilling_a_damaged_state_serves_none_of_it_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (node, client) = serving(dir.path()).await;
        client.put("objects/Pod/default/a", json!(1)).await.unwrap();
        node.shutdown().await;
        let file = dir.path().join("state/replica.json");
        let whole = std::fs::read(&file).unwrap();
        std::fs::write(&file, &whole[..whole.len() / 2]).unwrap();

        // It starts (no crash loop), and says why it serves nothing: an empty stand-in read as
        // the cluster's state would make podswarmd stop every pod.
        let (_node, client) = serving(dir.path()).await;
        assert!(client.status().await.is_ok());
        let refused = [
            client.put("objects/Pod/default/b", json!(2)).await.err(),
            client.delete("objects/Pod/default/a").await.err(),
            client.get("objects/").await.err(),
            client.join_token(false).await.err(),
            client.subscribe("").await.unwrap().next().await.err(),
        ];
        for e in refused {
            let e = e.expect("refused while recovering");
            assert_eq!(e.kind(), Some(FailureKind::Recovering), "{e}");
            assert!(!e.kind().is_some_and(FailureKind::resubscribe));
            assert!(
                e.to_string().contains("state/replica.json.corrupt-"),
                "names the set-aside file: {e}"
            );
        }
        // A node with no other member has nobody to refill it; a new cluster is its way out.
        client.init(None).await.unwrap();
        client.put("objects/Pod/default/b", json!(2)).await.unwrap();
        assert_eq!(client.get("objects/").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_write_that_cannot_be_stored_is_answered_as_not_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (_node, client) = serving(dir.path()).await;
        let state = dir.path().join("state");
        std::fs::remove_dir_all(&state).unwrap();
        std::fs::write(&state, b"a file where the directory was").unwrap();
        let e = client.put("objects/a", json!(1)).await.unwrap_err();
        assert_eq!(e.kind(), Some(FailureKind::NotDurable), "{e}");
        assert!(e.to_string().contains("replica.json"), "{e}");
    }
}
