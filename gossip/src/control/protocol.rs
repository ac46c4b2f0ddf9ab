//! The control socket's messages and their framing, shared by the server and every client.
//!
//! One JSON document per line, both ways: a client sends a [`Request`], the server answers one
//! [`Response`] per request, or for `subscribe` a stream of them (a `snapshot`, then `change`s,
//! until an `error` says why it ended). JSON lines rather than a binary framing so that the socket
//! can still be read and driven by hand (`socat - UNIX:…`) on a broken node.
//!
//! Design decisions:
//! - **One enum per direction.** Every server line is a [`Response`], externally tagged (`{"status":
//!   {…}}`, `{"stored": {…}}`, `{"error": {…}}`), so a line can be decoded without knowing what it
//!   answers and an answer to the wrong request is a typed mismatch, not a missing field.
//! - **Versions are parsed once.** A version ([`Hlc`]) is written as its text form
//!   (`millis.counter@node`) so the wire stays readable, but it is a `Hlc` on both sides: a bad one
//!   is a decoding error at the edge, never a string someone parses later.
//! - **Errors are answers with a kind.** [`Failure`] carries a [`FailureKind`] next to the message,
//!   so a client tells "subscribe again" from "refused" from "not on disk" without matching text.
//! - **Strict requests, lenient answers.** A request with an unknown op or field is refused (a
//!   typo must not silently do something else); an answer may carry fields a client does not know.
//! - **Bounded lines.** [`JsonLines`] is built on `LinesCodec` with a maximum length: a peer cannot
//!   make the other side buffer without limit. An over-long or unreadable line is an item
//!   ([`LineError`]), not a stream error, so the server answers it and keeps the connection (the
//!   codec skips the rest of an over-long line by itself).

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, BytesMut};
use podswarm_cluster::Hlc;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder, LinesCodec, LinesCodecError};

use crate::Counters;
use crate::identity::hex_u64;

/// Longest request line the server reads. A request carries at most one object, and a whole
/// manifest is at most 4 MiB of YAML, so any object fits as JSON with room to spare.
pub const MAX_REQUEST: usize = 16 << 20;
/// Longest answer line a client reads: a snapshot carries the whole state, which anti-entropy
/// moves in one frame of at most [`crate::proto::MAX_FRAME`] bytes anyway.
pub const MAX_RESPONSE: usize = crate::proto::MAX_FRAME;

/// What a client asks. The tag is the operation (`{"op": "join-token", "rotate": true}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Answered with [`Response::Status`]. (Braces, not a unit variant: serde ignores unknown
    /// fields next to the tag of a unit variant, and a request's stray field must be refused.)
    Status {},
    /// Every live entry under `prefix`; answered with [`Response::Entries`].
    Get {
        #[serde(default)]
        prefix: String,
    },
    /// Answered with [`Response::Stored`] once the write is on disk.
    Put { key: String, value: Value },
    /// Answered with [`Response::Stored`] (the tombstone's version) once it is on disk.
    Delete { key: String },
    /// Answered with a [`Response::Snapshot`], then [`Response::Change`]s, until an error ends it.
    Subscribe {
        #[serde(default)]
        prefix: String,
    },
    /// Answered with [`Response::JoinToken`].
    JoinToken {
        #[serde(default)]
        rotate: bool,
    },
    /// Answered with [`Response::Initialized`].
    Init {
        #[serde(
            default,
            rename = "advertiseAddr",
            skip_serializing_if = "Option::is_none"
        )]
        advertise_addr: Option<IpAddr>,
    },
    /// Answered with [`Response::Joined`].
    Join {
        address: String,
        token: String,
        #[serde(
            default,
            rename = "advertiseAddr",
            skip_serializing_if = "Option::is_none"
        )]
        advertise_addr: Option<IpAddr>,
    },
    /// Answered with [`Response::Left`].
    Leave {},
    /// Signs this node's certificate with the cluster CA for the key of `csr` (PEM); answered
    /// with [`Response::NodeCertificate`]. The names are the node's (its name, `addresses` and
    /// the advertised one), not the request's.
    SignNode {
        csr: String,
        #[serde(rename = "lifetimeSeconds")]
        lifetime_seconds: u64,
        #[serde(default)]
        addresses: Vec<IpAddr>,
    },
}

impl Request {
    /// The operation's wire name, for messages.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Status {} => "status",
            Request::Get { .. } => "get",
            Request::Put { .. } => "put",
            Request::Delete { .. } => "delete",
            Request::Subscribe { .. } => "subscribe",
            Request::JoinToken { .. } => "join-token",
            Request::Init { .. } => "init",
            Request::Join { .. } => "join",
            Request::Leave {} => "leave",
            Request::SignNode { .. } => "sign-node",
        }
    }
}

/// What the server sends: one per request, or a subscription's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Response {
    Status(Box<Status>),
    Entries(Vec<Item>),
    /// A put or delete is on this node's disk, at this version.
    Stored {
        #[serde(with = "version_text")]
        version: Hlc,
    },
    JoinToken {
        token: String,
    },
    Initialized(Initialized),
    Joined {
        #[serde(with = "hex_u64")]
        cluster: u64,
    },
    /// This node left; it is now the only member of `cluster`.
    Left {
        #[serde(with = "hex_u64")]
        cluster: u64,
    },
    NodeCertificate(NodeCertificate),
    /// A subscription's first message: every live entry under its prefix.
    Snapshot(Vec<Item>),
    Change(Change),
    Error(Failure),
}

impl Response {
    /// The tag's wire name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Status(_) => "status",
            Response::Entries(_) => "entries",
            Response::Stored { .. } => "stored",
            Response::JoinToken { .. } => "joinToken",
            Response::Initialized { .. } => "initialized",
            Response::Left { .. } => "left",
            Response::NodeCertificate(_) => "nodeCertificate",
            Response::Joined { .. } => "joined",
            Response::Snapshot(_) => "snapshot",
            Response::Change(_) => "change",
            Response::Error(_) => "error",
        }
    }
}

/// A new one-node cluster and its first join token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Initialized {
    #[serde(with = "hex_u64")]
    pub cluster: u64,
    pub token: String,
}

/// This node's place in its cluster, its live members and its counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(with = "hex_u64")]
    pub cluster: u64,
    #[serde(with = "hex_u64")]
    pub node_id: u64,
    pub node_name: String,
    pub advertise: SocketAddr,
    /// Live members other than this node.
    pub members: Vec<Member>,
    /// Entries held, tombstones included.
    pub entries: usize,
    /// The store's fingerprint in hex: equal on two nodes when they hold the same state.
    pub fingerprint: String,
    /// The cluster CA's fingerprint (`sha256:<hex>`, as join tokens pin it); none while a
    /// cluster from before CAs has not made one yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Node certificates on record, by node name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateExpiry>,
    pub metrics: Counters,
}

/// A node certificate the cluster CA signed, and the CA it chains to (both PEM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCertificate {
    pub cert: String,
    pub ca: String,
    /// Seconds since the epoch.
    pub not_before: u64,
    pub not_after: u64,
}

/// When a node's certificate expires, as its node recorded it (`certs/<node>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateExpiry {
    pub node: String,
    /// Seconds since the epoch.
    pub not_after: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    #[serde(with = "hex_u64")]
    pub node_id: u64,
    /// From the member's node record; `None` until that record has arrived.
    pub name: Option<String>,
    pub address: SocketAddr,
}

/// A live entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub key: String,
    #[serde(with = "version_text")]
    pub version: Hlc,
    pub value: Value,
}

/// One change under a subscription's prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    #[serde(with = "version_text")]
    pub version: Hlc,
    /// `None` (`null` on the wire) for a delete.
    pub value: Option<Value>,
}

/// Why a request was not carried out, or why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The line is not a request: not JSON, an unknown op or field, or too long.
    BadRequest,
    /// Only root and the daemon's own user may use the socket.
    PermissionDenied,
    /// Understood and not done: a bad key, a busy node, between clusters, a malformed token.
    Refused,
    /// The member asked to admit this node said no (wrong token, name taken).
    JoinRefused,
    /// Applied in memory (and maybe spreading) but not stored on this node's disk.
    NotDurable,
    /// This node's replica file was damaged and set aside, and no member has refilled the
    /// empty one yet: nothing is read or written until one has (ask again later). Not a
    /// reason to drop a copy a client already holds.
    Recovering,
    /// A subscription ended because the node moved to another cluster (its session was
    /// replaced or stopped): subscribe again.
    ClusterChanged,
    /// A subscription ended because its reader fell too far behind: subscribe again.
    Lagged,
    /// Anything else (I/O, a peer that could not be reached).
    Failed,
}

impl FailureKind {
    /// Whether the answer only means "subscribe again" (nothing is wrong).
    pub fn resubscribe(self) -> bool {
        matches!(self, FailureKind::ClusterChanged | FailureKind::Lagged)
    }
}

/// A line that arrived but is not a message.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("a line longer than {max} bytes")]
    TooLong { max: usize },
    #[error("a line that is not UTF-8")]
    NotUtf8,
    #[error("unreadable message")]
    Json {
        #[source]
        source: serde_json::Error,
    },
}

/// JSON lines: decodes `In`, encodes `Out`. The server is `JsonLines<Request, Response>`, a client
/// `JsonLines<Response, Request>`.
#[derive(Debug)]
pub struct JsonLines<In, Out> {
    lines: LinesCodec,
    max: usize,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> JsonLines<In, Out> {
    pub fn new(max_length: usize) -> Self {
        JsonLines {
            lines: LinesCodec::new_with_max_length(max_length),
            max: max_length,
            _types: PhantomData,
        }
    }
}

impl JsonLines<Request, Response> {
    pub fn server() -> Self {
        JsonLines::new(MAX_REQUEST)
    }
}

impl JsonLines<Response, Request> {
    pub fn client() -> Self {
        JsonLines::new(MAX_RESPONSE)
    }
}

impl<In, Out> JsonLines<In, Out>
where
    In: DeserializeOwned,
{
    fn parse(
        &self,
        decoded: Result<Option<String>, LinesCodecError>,
    ) -> Option<Result<In, LineError>> {
        match decoded {
            Ok(None) => None,
            Ok(Some(line)) => {
                Some(serde_json::from_str(&line).map_err(|source| LineError::Json { source }))
            }
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                Some(Err(LineError::TooLong { max: self.max }))
            }
            // `decode` does no I/O: its only I/O error is a line that is not UTF-8 (already
            // taken off the buffer, so the next line reads normally).
            Err(LinesCodecError::Io(_)) => Some(Err(LineError::NotUtf8)),
        }
    }
}

impl<In, Out> Decoder for JsonLines<In, Out>
where
    In: DeserializeOwned,
{
    type Item = Result<In, LineError>;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, std::io::Error> {
        let decoded = self.lines.decode(buf);
        Ok(self.parse(decoded))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, std::io::Error> {
        let decoded = self.lines.decode_eof(buf);
        Ok(self.parse(decoded))
    }
}

impl<In, Out> Encoder<Out> for JsonLines<In, Out>
where
    Out: Serialize,
{
    type Error = std::io::Error;

    /// Written straight into the buffer (a snapshot can be large): compact JSON escapes every
    /// newline inside strings, so the document is one line without `LinesCodec` checking it.
    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        serde_json::to_writer(dst.writer(), &item).map_err(std::io::Error::other)?;
        dst.put_u8(b'\n');
        Ok(())
    }
}

/// A version as its `Display` text on the wire, a [`Hlc`] in memory.
mod version_text {
    use podswarm_cluster::Hlc;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Hlc, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hlc, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hlc(millis: u64) -> Hlc {
        Hlc {
            millis,
            counter: 3,
            node: 0xabc,
        }
    }

    /// Encodes `item` as one line and decodes it back; returns the line.
    fn round_trip<T>(item: T) -> String
    where
        T: Serialize + DeserializeOwned + PartialEq + Clone + std::fmt::Debug,
    {
        let mut out = JsonLines::<T, T>::new(1 << 20);
        let mut buf = BytesMut::new();
        out.encode(item.clone(), &mut buf).unwrap();
        let text = String::from_utf8(buf.to_vec()).unwrap();
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text}"
        );
        let back = out.decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(back, item);
        assert!(buf.is_empty());
        text
    }

    #[test]
    fn every_request_round_trips_with_the_wire_names_of_before() {
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let cases = [
            (Request::Status {}, json!({"op": "status"})),
            (
                Request::Get {
                    prefix: "nodes/".to_owned(),
                },
                json!({"op": "get", "prefix": "nodes/"}),
            ),
            (
                Request::Put {
                    key: "objects/Pod/default/a".to_owned(),
                    value: json!({"line": "one\ntwo"}),
                },
                json!({"op": "put", "key": "objects/Pod/default/a", "value": {"line": "one\ntwo"}}),
            ),
            (
                Request::Delete {
                    key: "k".to_owned(),
                },
                json!({"op": "delete", "key": "k"}),
            ),
            (
                Request::Subscribe {
                    prefix: String::new(),
                },
                json!({"op": "subscribe", "prefix": ""}),
            ),
            (
                Request::JoinToken { rotate: true },
                json!({"op": "join-token", "rotate": true}),
            ),
            (
                Request::Init {
                    advertise_addr: Some(ip),
                },
                json!({"op": "init", "advertiseAddr": "10.0.0.2"}),
            ),
            (
                Request::Join {
                    address: "node1".to_owned(),
                    token: "PSWTKN-1-x".to_owned(),
                    advertise_addr: None,
                },
                json!({"op": "join", "address": "node1", "token": "PSWTKN-1-x"}),
            ),
            (Request::Leave {}, json!({"op": "leave"})),
            (
                Request::SignNode {
                    csr: "PEM".to_owned(),
                    lifetime_seconds: 60,
                    addresses: vec![ip],
                },
                json!({"op": "sign-node", "csr": "PEM", "lifetimeSeconds": 60, "addresses": ["10.0.0.2"]}),
            ),
        ];
        for (request, wire) in cases {
            let text = round_trip(request.clone());
            let sent: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(sent, wire, "{}", request.op());
            assert_eq!(sent["op"], request.op());
        }
        // What clients of before sent still reads: defaults, and null for an absent address.
        let old: Request = serde_json::from_str(r#"{"op":"init","advertiseAddr":null}"#).unwrap();
        assert_eq!(
            old,
            Request::Init {
                advertise_addr: None
            }
        );
        let old: Request = serde_json::from_str(r#"{"op":"get"}"#).unwrap();
        assert_eq!(
            old,
            Request::Get {
                prefix: String::new()
            }
        );
    }

    #[test]
    fn every_response_round_trips_and_versions_travel_as_text() {
        let status = Status {
            cluster: 0x1234,
            node_id: 0xfeed,
            node_name: "n1".to_owned(),
            advertise: "10.0.0.1:7946".parse().unwrap(),
            members: vec![
                Member {
                    node_id: 7,
                    name: Some("n2".to_owned()),
                    address: "10.0.0.2:7946".parse().unwrap(),
                },
                Member {
                    node_id: 8,
                    name: None,
                    address: "[fd00::3]:7946".parse().unwrap(),
                },
            ],
            entries: 12,
            fingerprint: "ab".repeat(32),
            ca: Some(format!("sha256:{}", "cd".repeat(32))),
            certificates: vec![CertificateExpiry {
                node: "n1".to_owned(),
                not_after: 1_800_000_000,
            }],
            metrics: Counters {
                joins_refused: 2,
                ..Counters::default()
            },
        };
        let item = Item {
            key: "nodes/n1".to_owned(),
            version: hlc(5),
            value: json!({"name": "n1"}),
        };
        let cases = [
            Response::Status(Box::new(status)),
            Response::Entries(vec![item.clone()]),
            Response::Entries(Vec::new()),
            Response::Stored { version: hlc(9) },
            Response::JoinToken {
                token: "PSWTKN-1-x".to_owned(),
            },
            Response::Initialized(Initialized {
                cluster: 1,
                token: "PSWTKN-1-y".to_owned(),
            }),
            Response::Joined { cluster: u64::MAX },
            Response::Left { cluster: 2 },
            Response::NodeCertificate(NodeCertificate {
                cert: "CERT".to_owned(),
                ca: "CA".to_owned(),
                not_before: 1,
                not_after: 2,
            }),
            Response::Snapshot(vec![item]),
            Response::Change(Change {
                key: "a".to_owned(),
                version: hlc(6),
                value: Some(json!(1)),
            }),
            Response::Change(Change {
                key: "a".to_owned(),
                version: hlc(7),
                value: None,
            }),
            Response::Error(Failure {
                kind: FailureKind::NotDurable,
                message: "the write could not be stored on disk: full".to_owned(),
            }),
        ];
        for response in cases {
            let text = round_trip(response.clone());
            let wire: Value = serde_json::from_str(&text).unwrap();
            assert!(wire.get(response.name()).is_some(), "{text}");
        }
        let text = round_trip(Response::Stored { version: hlc(9) });
        assert_eq!(
            text,
            "{\"stored\":{\"version\":\"9.3@0000000000000abc\"}}\n"
        );
        let text = round_trip(Response::Joined { cluster: 0xa });
        assert_eq!(text, "{\"joined\":{\"cluster\":\"000000000000000a\"}}\n");
        let text = round_trip(Response::Error(Failure {
            kind: FailureKind::ClusterChanged,
            message: "m".to_owned(),
        }));
        assert_eq!(
            text,
            "{\"error\":{\"kind\":\"cluster-changed\",\"message\":\"m\"}}\n"
        );
    }

    #[test]
    fn a_bad_version_is_refused_where_it_is_read() {
        let mut codec = JsonLines::<Response, Request>::client();
        let mut buf = BytesMut::from(&b"{\"stored\":{\"version\":\"yesterday\"}}\n"[..]);
        let e = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
        let text = crate::control::chain(&e);
        assert!(text.contains("\"yesterday\" is not a version"), "{text}");
    }

    #[test]
    fn an_unknown_op_is_an_error_that_names_it() {
        let mut codec = JsonLines::<Request, Response>::server();
        let mut buf = BytesMut::from(&b"{\"op\":\"frobnicate\"}\n{\"op\":\"status\"}\n"[..]);
        let e = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
        let text = crate::control::chain(&e);
        assert!(
            text.contains("unknown variant `frobnicate`") && text.contains("`status`"),
            "{text}"
        );
        // The line is consumed; the next one reads.
        let next = codec.decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(next, Request::Status {});
        // An unknown field is refused too, not ignored.
        let mut buf = BytesMut::from(&b"{\"op\":\"leave\",\"force\":true}\n"[..]);
        let e = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
        assert!(
            crate::control::chain(&e).contains("unknown field `force`"),
            "{e}"
        );
    }

    #[test]
    fn an_over_long_line_is_refused_and_the_next_line_reads() {
        let mut codec = JsonLines::<Request, Response>::new(32);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(br#"{"op":"put","key":"k","value":""#);
        buf.extend_from_slice(&[b'x'; 100]);
        // Refused before the line ends: nothing waits for the rest of it.
        let e = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
        assert!(matches!(e, LineError::TooLong { max: 32 }), "{e:?}");
        assert_eq!(e.to_string(), "a line longer than 32 bytes");
        buf.extend_from_slice(b"xxxx\"}\n{\"op\":\"leave\"}\n");
        let next = codec.decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(next, Request::Leave {});
        // Invalid UTF-8 costs that line only.
        let mut buf = BytesMut::from(&b"\xff\xfe\n{\"op\":\"status\"}\n"[..]);
        let e = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
        assert!(matches!(e, LineError::NotUtf8), "{e:?}");
        let next = codec.decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(next, Request::Status {});
    }
}
