//! The UDP side of the server: one receive loop that answers cluster names inline.
//!
//! hickory-server's own UDP loop spawns a task per query and passes every response through a
//! channel to a separate sender task, and it logs two lines per query. For the queries that make
//! up almost all of a node's traffic (cluster names, answered from memory in microseconds) that
//! machinery costs more than the answer: measured with dnsperf on this 2-core machine, it left
//! podswarm-dns at 0.8x dnsmasq's throughput (docs/BENCHMARKS.md). So this loop decodes each
//! datagram, runs the same pure policy the [`RequestHandler`] uses ([`plan`]), and answers
//! what needs no upstream right away, on the receiving task, with hickory's own encoder
//! (truncation for UDP included). Only queries to forward become tasks; they go through the same
//! [`Handler::handle_request`] as TCP queries, with a [`ResponseHandler`] that sends straight
//! on the socket. TCP stays on hickory's server.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Header, HeaderCounts, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::handler::{Handler, Plan, plan, send};

/// Forwarded queries in flight at once; beyond that new ones are dropped (the client retries),
/// so a flood of outside names cannot grow memory without bound.
const MAX_FORWARDS: usize = 4096;

/// The largest datagram read: EDNS payloads above 4096 are not accepted anyway.
const MAX_DATAGRAM: usize = 4096;

/// Sends a response as one datagram to the query's source.
#[derive(Clone)]
struct Responder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for Responder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let id = response.metadata().id;
        let (info, buffer) = match encode(response) {
            Ok(encoded) => encoded,
            Err(error) => {
                // Not a size problem (those truncate): a record that cannot be written.
                tracing::warn!(%error, "cannot encode a response, sending SERVFAIL");
                let reply = Message::error_msg(id, OpCode::Query, ResponseCode::ServFail);
                let info = ResponseInfo::from(Header {
                    metadata: reply.metadata,
                    counts: HeaderCounts::default(),
                });
                (info, reply.to_vec()?)
            }
        };
        self.socket.send_to(&buffer, self.dst).await?;
        Ok(info)
    }
}

/// Encodes a response for UDP: within the requester's EDNS payload size, or 512 bytes without
/// EDNS (RFC 1035 4.2.1), truncating (TC set) what does not fit.
pub fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> Result<(ResponseInfo, Vec<u8>), ProtoError> {
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(response.edns().map_or(512, Edns::max_payload));
    let info = response.destructive_emit(&mut encoder)?;
    Ok((info, bytes))
}

/// Serves UDP on `socket` until `shutdown` is cancelled, then lets forwarded queries finish.
pub async fn serve(
    socket: UdpSocket,
    handler: Handler,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let socket = Arc::new(socket);
    let mut forwards: JoinSet<()> = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, src) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                // ICMP errors from earlier sends (a client that went away) surface here on
                // Linux; they concern that client only.
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e),
            },
            _ = shutdown.cancelled() => break,
        };
        while forwards.try_join_next().is_some() {}
        let packet = &buf[..len];
        let request = match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
            Ok(r) => r,
            Err(_) => {
                form_error(&socket, packet, src).await;
                continue;
            }
        };
        // Never answer responses: that is how reflection loops start.
        if request.metadata.message_type != MessageType::Query {
            continue;
        }
        let view = handler.views.get();
        let responder = Responder {
            socket: socket.clone(),
            dst: src,
        };
        match plan(&view, &request, src.ip(), &handler.policy) {
            Plan::Reply(reply) => {
                send(&request, &reply, responder).await;
            }
            Plan::Forward { .. } if forwards.len() >= MAX_FORWARDS => {
                tracing::debug!(%src, "dropped: too many forwarded queries in flight");
            }
            Plan::Forward { .. } => {
                let handler = handler.clone();
                forwards.spawn(async move {
                    handler
                        .handle_request::<_, TokioTime>(&request, responder)
                        .await;
                });
            }
        }
    }
    while forwards.join_next().await.is_some() {}
    Ok(())
}

/// FORMERR for a datagram whose header reads but whose body does not, as hickory's server does;
/// anything shorter than a header, or a response, gets nothing.
async fn form_error(socket: &UdpSocket, packet: &[u8], src: SocketAddr) {
    let Ok(header) = Header::read(&mut BinDecoder::new(packet)) else {
        return;
    };
    if header.metadata.message_type != MessageType::Query {
        return;
    }
    let reply = Message::error_msg(
        header.metadata.id,
        header.metadata.op_code,
        ResponseCode::FormErr,
    );
    if let Ok(bytes) = reply.to_vec() {
        let _ = socket.send_to(&bytes, src).await;
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | HostUnreachable | NetworkUnreachable | Interrupted
    )
}
