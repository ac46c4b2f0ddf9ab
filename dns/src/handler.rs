//! From a decoded request to the reply: who may ask what, and how the reply is encoded.
//!
//! [`plan`] is the whole policy and is pure: cluster names are answered from the view to anyone;
//! any other name is forwarded only for sources in the view's `recursion_clients` (and loopback,
//! when trusted), and with the whitelist on only when the whitelist allows it; everything else is
//! REFUSED, so the server is never an open resolver. The server's [`Handler`] and the I/O-free
//! [`answer_bytes`] (for fuzzing) both go through it.
//!
//! Every path ends in a reply: a request the handler cannot serve gets an error code, never a
//! panic and never silence (hickory's `Server` drops only what it cannot decode a header from, and
//! answers undecodable bodies with FORMERR itself).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use podswarm_view::View;

use crate::cluster::{self, Reply};
use crate::forward::Forwarder;
use crate::watch::ViewStore;

/// The UDP payload we answer with at most, whatever the client offers: 1232 bytes fits any path
/// without IP fragmentation (DNS flag day 2020); larger answers are truncated and the client
/// retries over TCP.
const MAX_UDP_PAYLOAD: u16 = 1232;

/// The knobs of [`plan`] that do not come from the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// TTL of cluster records, seconds.
    pub ttl: u32,
    /// Whether loopback sources may recurse without being listed in `recursion_clients` (the
    /// node's own processes). Tests turn it off to see refusals from 127.0.0.1.
    pub trust_loopback: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            ttl: 5,
            trust_loopback: true,
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Answer with this.
    Reply(Reply),
    /// Ask the upstreams.
    Forward { name: Name, qtype: RecordType },
}

/// Whether `src` may have names outside the cluster domain resolved.
pub fn may_recurse(view: &View, src: IpAddr, policy: &Policy) -> bool {
    // A v4 client reaching a v6 wildcard socket shows up as ::ffff:a.b.c.d.
    let src = src.to_canonical();
    (policy.trust_loopback && src.is_loopback())
        || view.recursion_clients.iter().any(|net| net.contains(&src))
}

/// Decides a request (see the module docs).
pub fn plan(view: &View, request: &Request, src: IpAddr, policy: &Policy) -> Plan {
    let refuse = || Plan::Reply(Reply::error(ResponseCode::Refused));
    if request.metadata.op_code != OpCode::Query {
        return Plan::Reply(Reply::error(ResponseCode::NotImp));
    }
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return Plan::Reply(Reply::error(ResponseCode::BADVERS));
    }
    let [query] = request.queries.queries() else {
        return Plan::Reply(Reply::error(ResponseCode::FormErr));
    };
    // Only the Internet class is served; zone transfers are not offered.
    let qtype = query.query_type();
    if query.query_class() != DNSClass::IN || matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return refuse();
    }
    let name = query.original().name();
    if let Some(reply) = cluster::lookup(view, name, qtype, policy.ttl) {
        return Plan::Reply(reply);
    }
    if !may_recurse(view, src, policy) {
        tracing::debug!(%src, %name, "refused: not a recursion client");
        return refuse();
    }
    if !view.whitelist.allows(&name.to_ascii()) {
        tracing::debug!(%src, %name, "refused: not in the whitelist");
        return refuse();
    }
    Plan::Forward {
        name: name.clone(),
        qtype,
    }
}

/// The EDNS section of a response to `request`: present when the request had one, with the
/// payload size we are willing to send.
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        edns.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
        edns.set_version(0);
        edns
    })
}

fn response_metadata(request: &Request, reply: &Reply) -> Metadata {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = reply.code;
    metadata.authoritative = reply.authoritative;
    metadata.recursion_available = reply.recursion_available;
    metadata
}

/// Sends `reply` for `request`.
pub async fn send<R: ResponseHandler>(
    request: &Request,
    reply: &Reply,
    mut response_handle: R,
) -> ResponseInfo {
    let edns = response_edns(request);
    let metadata = response_metadata(request, reply);
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = &edns {
        builder.edns(edns);
    }
    let response = builder.build(
        metadata,
        reply.answers.iter(),
        reply.authorities.iter(),
        std::iter::empty(),
        reply.additionals.iter(),
    );
    match response_handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(src = %request.src(), %error, "cannot send a response");
            let mut metadata = metadata;
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        }
    }
}

/// The server's request handler: the view, the forwarder and the policy.
#[derive(Debug, Clone)]
pub struct Handler {
    pub views: Arc<ViewStore>,
    pub forwarder: Arc<Forwarder>,
    pub policy: Policy,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        // One view for the whole request, even if a reload lands while we forward.
        let view = self.views.get();
        let src = request.src().ip();
        let reply = match plan(&view, request, src, &self.policy) {
            Plan::Reply(reply) => reply,
            Plan::Forward { name, qtype } => {
                self.forwarder.forward(name, qtype, &view.whitelist).await
            }
        };
        send(request, &reply, response_handle).await
    }
}

/// Answers one DNS message (wire format) from `src` without I/O, as the server would over UDP:
/// `Some(response bytes)` for cluster names and for everything the server answers itself
/// (refusals, errors), `None` for what it would forward to an upstream or not answer at all
/// (undecodable messages, responses). For fuzzing; uses the default [`Policy`].
pub fn answer_bytes(view: &View, packet: &[u8], src: IpAddr) -> Option<Vec<u8>> {
    answer_bytes_with(view, packet, src, &Policy::default())
}

/// [`answer_bytes`] with an explicit policy.
pub fn answer_bytes_with(
    view: &View,
    packet: &[u8],
    src: IpAddr,
    policy: &Policy,
) -> Option<Vec<u8>> {
    let request =
        Request::from_bytes(packet.to_vec(), SocketAddr::new(src, 53), Protocol::Udp).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let Plan::Reply(reply) = plan(view, &request, src, policy) else {
        return None;
    };
    reply_bytes(&request, &reply).ok()
}

/// `reply` to `request` as one UDP datagram (see [`crate::udp::encode`]).
pub fn reply_bytes(request: &Request, reply: &Reply) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let edns = response_edns(request);
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = &edns {
        builder.edns(edns);
    }
    let response = builder.build(
        response_metadata(request, reply),
        reply.answers.iter(),
        reply.authorities.iter(),
        std::iter::empty(),
        reply.additionals.iter(),
    );
    crate::udp::encode(response).map(|(_, bytes)| bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;
    use podswarm_view::{Endpoint, Service, Whitelist};

    fn view() -> View {
        View {
            version: 1,
            cluster_domain: "cluster.local".into(),
            services: vec![Service {
                namespace: "default".into(),
                name: "web".into(),
                ports: vec![],
                endpoints: vec![Endpoint {
                    ip: Some(IpAddr::from([10, 244, 1, 5])),
                    ready: true,
                    ..Endpoint::default()
                }],
            }],
            recursion_clients: vec!["10.244.0.0/16".parse().unwrap()],
            whitelist: Whitelist {
                enabled: true,
                hosts: vec!["example.com".into()],
            },
            ..View::default()
        }
    }

    fn request(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    fn decode(bytes: Option<Vec<u8>>) -> Message {
        let bytes = bytes.unwrap_or_else(|| panic!("no answer"));
        Message::from_vec(&bytes).unwrap()
    }

    fn local() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    fn pod() -> IpAddr {
        IpAddr::from([10, 244, 3, 3])
    }

    fn outsider() -> IpAddr {
        IpAddr::from([192, 0, 2, 9])
    }

    #[test]
    fn cluster_names_are_answered_to_anyone_with_aa() {
        let m = decode(answer_bytes(
            &view(),
            &request("web.default.svc.cluster.local.", RecordType::A),
            outsider(),
        ));
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].data, RData::A(A::new(10, 244, 1, 5)));
    }

    #[test]
    fn outside_names_are_refused_to_strangers_and_forwarded_for_clients() {
        let v = view();
        let q = request("www.example.com.", RecordType::A);
        let m = decode(answer_bytes(&v, &q, outsider()));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.recursion_available);
        // Pods and loopback (trusted by default) get it forwarded.
        assert_eq!(answer_bytes(&v, &q, pod()), None);
        assert_eq!(answer_bytes(&v, &q, local()), None);
        let strict = Policy {
            trust_loopback: false,
            ..Policy::default()
        };
        let m = decode(answer_bytes_with(&v, &q, local(), &strict));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        // IPv4 clients of a v6 socket.
        assert!(may_recurse(
            &v,
            "::ffff:10.244.3.3".parse().unwrap(),
            &strict
        ));
    }

    #[test]
    fn names_outside_the_whitelist_are_refused_even_to_clients() {
        let m = decode(answer_bytes(
            &view(),
            &request("www.example.org.", RecordType::A),
            pod(),
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn odd_requests_get_error_codes() {
        let v = view();
        // Two questions.
        let mut m = Message::query();
        m.add_query(Query::query(Name::root(), RecordType::A));
        m.add_query(Query::query(Name::root(), RecordType::A));
        let bytes = m.to_vec().unwrap();
        assert_eq!(
            decode(answer_bytes(&v, &bytes, pod()))
                .metadata
                .response_code,
            ResponseCode::FormErr
        );
        // No question.
        let bytes = Message::query().to_vec().unwrap();
        assert_eq!(
            decode(answer_bytes(&v, &bytes, pod()))
                .metadata
                .response_code,
            ResponseCode::FormErr
        );
        // A zone transfer.
        let bytes = request("cluster.local.", RecordType::AXFR);
        assert_eq!(
            decode(answer_bytes(&v, &bytes, pod()))
                .metadata
                .response_code,
            ResponseCode::Refused
        );
        // Another class.
        let mut m = Message::query();
        let mut q = Query::query(Name::from_ascii("cluster.local.").unwrap(), RecordType::A);
        q.set_query_class(DNSClass::CH);
        m.add_query(q);
        let bytes = m.to_vec().unwrap();
        assert_eq!(
            decode(answer_bytes(&v, &bytes, pod()))
                .metadata
                .response_code,
            ResponseCode::Refused
        );
        // A NOTIFY.
        let mut m = Message::query();
        m.metadata.op_code = OpCode::Notify;
        m.add_query(Query::query(Name::root(), RecordType::SOA));
        let bytes = m.to_vec().unwrap();
        assert_eq!(
            decode(answer_bytes(&v, &bytes, pod()))
                .metadata
                .response_code,
            ResponseCode::NotImp
        );
        // A response is never answered; garbage neither.
        let mut m = Message::response(1, OpCode::Query);
        m.add_query(Query::query(Name::root(), RecordType::A));
        assert_eq!(answer_bytes(&v, &m.to_vec().unwrap(), pod()), None);
        assert_eq!(answer_bytes(&v, &[1, 2, 3], pod()), None);
        assert_eq!(answer_bytes(&v, &[], pod()), None);
    }

    #[test]
    fn edns_requests_get_edns_answers_and_newer_versions_badvers() {
        let v = view();
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        m.set_edns(edns.clone());
        let r = decode(answer_bytes(&v, &m.to_vec().unwrap(), pod()));
        assert_eq!(
            r.edns.as_ref().map(Edns::max_payload),
            Some(MAX_UDP_PAYLOAD)
        );
        edns.set_version(1);
        m.set_edns(edns);
        let r = decode(answer_bytes(&v, &m.to_vec().unwrap(), pod()));
        // BADVERS shares its number (16) with BADSIG, which is how it decodes.
        assert_eq!(
            u16::from(r.metadata.response_code),
            u16::from(ResponseCode::BADVERS)
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic stand-in for the fuzz target: every prefix and bit flip of a
        // valid request.
        let v = view();
        let base = request("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        for len in 0..=base.len() {
            let _ = answer_bytes(&v, &base[..len], pod());
        }
        for i in 0..base.len() {
            for bit in 0..8 {
                let mut b = base.clone();
                b[i] ^= 1 << bit;
                let _ = answer_bytes(&v, &b, pod());
            }
        }
    }
}
