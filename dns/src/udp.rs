//! The UDP side of the server: receive loops that answer cluster names inline.
//!
//! hickory-server's own UDP loop spawns a task per query and passes every response through a
//! channel to a separate sender task, and it logs two lines per query. For the queries that make
//! up almost all of a node's traffic (cluster names, answered from memory in microseconds) that
//! machinery costs more than the answer: measured with dnsperf on this 2-core machine, it left
//! podswarm-dns at 0.8x dnsmasq's throughput (docs/BENCHMARKS.md). So each loop here:
//! - reads up to [`BATCH`] datagrams per system call (`recvmmsg`) and sends their answers with
//!   one (`sendmmsg`): once the answers come from memory, the kernel's per-call work is most of
//!   a query's cost (perf: 96% of the loop's time is in the kernel);
//! - answers plain queries for cluster names from its packet cache ([`crate::fast`]): bytes
//!   patched and copied, nothing decoded or encoded;
//! - decodes the rest, runs the same pure policy the [`RequestHandler`] uses ([`plan`]), and
//!   answers what needs no upstream right away with hickory's own encoder (truncation for UDP
//!   included), keeping what qualifies in the cache. Only queries to forward become tasks; they
//!   go through the same [`Handler::handle_request`] as TCP queries, with a [`ResponseHandler`]
//!   that sends straight on the socket. TCP stays on hickory's server.
//!
//! A node runs one loop per CPU, each on its own socket bound with `SO_REUSEPORT` ([`socket`])
//! and its own thread: the kernel spreads clients over the sockets, and the loops share nothing
//! but the view (dnsmasq, single-threaded, cannot use the second core).

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
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
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, MultiHeaders, SockFlag, SockType, SockaddrStorage,
    recvmmsg, sendmmsg, setsockopt, sockopt,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::fast::{self, PacketCache};
use crate::handler::{Handler, Plan, answer_bytes_with, plan, reply_bytes};

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

/// Datagrams read (and answers sent) per system call. 16, as gdnsd does: under load a call
/// returns a full batch, when idle it returns the one datagram there is without waiting.
const BATCH: usize = 16;

/// The receive side of a batch: buffers allocated once. (nix's `MultiHeaders` holds raw
/// pointers, so it is not `Send` and cannot live across an await of this task: each call makes
/// its own, a few KiB for a batch of datagrams.)
struct Inbox {
    buffers: Vec<Vec<u8>>,
    /// Length and source of each datagram of the last batch. A source that is not an IP address
    /// cannot be answered (and cannot happen on a UDP socket): `None`, its slot unused.
    received: Vec<(usize, Option<SocketAddr>)>,
}

impl Inbox {
    fn new() -> Inbox {
        Inbox {
            buffers: vec![vec![0u8; MAX_DATAGRAM]; BATCH],
            received: Vec::with_capacity(BATCH),
        }
    }

    /// Reads what is waiting, up to a batch, without blocking.
    fn receive(&mut self, fd: RawFd) -> std::io::Result<()> {
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let results = recvmmsg(
            fd,
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        self.received.clear();
        for message in results {
            let src = message.address.as_ref().and_then(std_addr);
            self.received.push((message.bytes, src));
        }
        Ok(())
    }
}

/// The send side of a batch: the answers of the datagrams just read.
struct Outbox {
    buffers: Vec<Vec<u8>>,
    destinations: Vec<Option<SockaddrStorage>>,
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            buffers: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            destinations: Vec::with_capacity(BATCH),
        }
    }

    /// The buffer for the next answer, to `dst`.
    fn next(&mut self, dst: SocketAddr) -> &mut Vec<u8> {
        let at = self.destinations.len();
        self.destinations.push(Some(SockaddrStorage::from(dst)));
        &mut self.buffers[at]
    }

    /// Sends what the batch answered: one system call when the socket takes them all (it
    /// nearly always does), one `send_to` each for the rest.
    async fn flush(&mut self, socket: &UdpSocket) {
        let count = self.destinations.len();
        let fd = socket.as_raw_fd();
        let sent = socket
            .try_io(Interest::WRITABLE, || {
                let slices: Vec<[IoSlice<'_>; 1]> = self.buffers[..count]
                    .iter()
                    .map(|b| [IoSlice::new(b)])
                    .collect();
                let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(count, None);
                let results = sendmmsg(
                    fd,
                    &mut headers,
                    &slices,
                    &self.destinations,
                    [] as [ControlMessage<'_>; 0],
                    MsgFlags::MSG_DONTWAIT,
                )?;
                Ok(results.count())
            })
            .unwrap_or(0);
        for (buffer, dst) in self.buffers[sent..count]
            .iter()
            .zip(&self.destinations[sent..])
        {
            let Some(dst) = dst.as_ref().and_then(std_addr) else {
                continue;
            };
            if let Err(error) = socket.send_to(buffer, dst).await {
                tracing::debug!(%dst, %error, "cannot send a response");
            }
        }
        self.destinations.clear();
    }
}

fn std_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    addr.as_sockaddr_in()
        .map(|v4| SocketAddr::V4((*v4).into()))
        .or_else(|| {
            addr.as_sockaddr_in6()
                .map(|v6| SocketAddr::V6((*v6).into()))
        })
}

/// A non-blocking UDP socket bound to `addr` with `SO_REUSEPORT`, so every loop can have one
/// on the same address, and with larger buffers than the default, so a burst waits in the kernel
/// rather than being dropped (best effort: the kernel caps them at `net.core.[rw]mem_max`).
pub fn socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = nix::sys::socket::socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    let _ = setsockopt(&fd, sockopt::RcvBuf, &SOCKET_BUFFER);
    let _ = setsockopt(&fd, sockopt::SndBuf, &SOCKET_BUFFER);
    nix::sys::socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(std::net::UdpSocket::from(fd))
}

/// Asked for each socket's receive and send buffers.
const SOCKET_BUFFER: usize = 1 << 20;

/// Serves UDP on `socket` until `shutdown` is cancelled, then lets forwarded queries finish.
/// Forwarded queries run as tasks on `forwards` (the runtime the resolver was made on), whatever
/// runtime this loop runs on.
pub async fn serve(
    socket: UdpSocket,
    handler: Handler,
    shutdown: CancellationToken,
    forwards_on: tokio::runtime::Handle,
) -> std::io::Result<()> {
    let socket = Arc::new(socket);
    let fd = socket.as_raw_fd();
    let mut forwards: JoinSet<()> = JoinSet::new();
    let mut inbox = Inbox::new();
    let mut outbox = Outbox::new();
    let mut cache = PacketCache::default();
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            ready = socket.readable() => ready?,
            _ = &mut cancelled => break,
        }
        match socket.try_io(Interest::READABLE, || inbox.receive(fd)) {
            Ok(()) => {}
            // ICMP errors from earlier sends (a client that went away) surface here on
            // Linux; they concern that client only.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || is_transient(&e) => continue,
            Err(e) => return Err(e),
        }
        while forwards.try_join_next().is_some() {}
        // Read once per batch: a swap lands between batches, and the first batch after it
        // finds the cache emptied (`fast`).
        let generation = handler.views.generation();
        for (i, &(len, src)) in inbox.received.iter().enumerate() {
            let Some(src) = src else {
                continue;
            };
            let packet = &inbox.buffers[i][..len];
            let query = fast::Query::parse(packet);
            if let Some(query) = &query {
                let out = outbox.next(src);
                if cache.answer(generation, packet, query, out) {
                    continue;
                }
                // Not kept: the slot goes back, the slow path decides.
                outbox.destinations.pop();
            }
            slow(
                packet,
                src,
                query.as_ref(),
                generation,
                &socket,
                &handler,
                &mut cache,
                &mut outbox,
                (&mut forwards, &forwards_on),
            );
        }
        outbox.flush(&socket).await;
    }
    while forwards.join_next().await.is_some() {}
    Ok(())
}

/// A datagram the cache did not answer: decoded and planned by hickory's types. Its answer (or
/// FORMERR) joins the batch's, and is kept in the cache if it qualifies; a forwarded query
/// becomes a task.
#[allow(clippy::too_many_arguments)]
fn slow(
    packet: &[u8],
    src: SocketAddr,
    query: Option<&fast::Query>,
    generation: u64,
    socket: &Arc<UdpSocket>,
    handler: &Handler,
    cache: &mut PacketCache,
    outbox: &mut Outbox,
    (forwards, forwards_on): (&mut JoinSet<()>, &tokio::runtime::Handle),
) {
    let request = match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
        Ok(r) => r,
        Err(_) => {
            if let Some(reply) = form_error(packet) {
                *outbox.next(src) = reply;
            }
            return;
        }
    };
    // Never answer responses: that is how reflection loops start.
    if request.metadata.message_type != MessageType::Query {
        return;
    }
    let view = handler.views.get();
    match plan(&view, &request, src.ip(), &handler.policy) {
        Plan::Reply(reply) => {
            let bytes = match reply_bytes(&request, &reply) {
                Ok(bytes) => bytes,
                Err(error) => {
                    // Not a size problem (those truncate): a record that cannot be written.
                    tracing::warn!(%error, "cannot encode a response, sending SERVFAIL");
                    let id = request.metadata.id;
                    let Ok(bytes) =
                        Message::error_msg(id, OpCode::Query, ResponseCode::ServFail).to_vec()
                    else {
                        return;
                    };
                    bytes
                }
            };
            if let Some(query) = query {
                cache.fill(generation, packet, query, &bytes, |variant| {
                    answer_bytes_with(&view, variant, src.ip(), &handler.policy)
                });
            }
            let out = outbox.next(src);
            out.clear();
            out.extend_from_slice(&bytes);
        }
        Plan::Forward { .. } if forwards.len() >= MAX_FORWARDS => {
            tracing::debug!(%src, "dropped: too many forwarded queries in flight");
        }
        Plan::Forward { .. } => {
            let handler = handler.clone();
            let responder = Responder {
                socket: socket.clone(),
                dst: src,
            };
            forwards.spawn_on(
                async move {
                    handler
                        .handle_request::<_, TokioTime>(&request, responder)
                        .await;
                },
                forwards_on,
            );
        }
    }
}

/// FORMERR for a datagram whose header reads but whose body does not, as hickory's server does;
/// anything shorter than a header, or a response, gets nothing.
fn form_error(packet: &[u8]) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
    if header.metadata.message_type != MessageType::Query {
        return None;
    }
    Message::error_msg(
        header.metadata.id,
        header.metadata.op_code,
        ResponseCode::FormErr,
    )
    .to_vec()
    .ok()
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | HostUnreachable | NetworkUnreachable | Interrupted
    )
}
