//! Read and write buffers under each downstream connection, below rustls.
//!
//! pingora's own listeners give every accepted socket a 64 KiB read buffer and a 1,460 B write
//! buffer, but through `Stream::set_buffer`, which is crate-private in pingora 0.9; the public
//! `From<TcpStream>` our accept loop has to use makes a stream with no buffer at all. Without
//! one, pingora's HTTP/1 server writes a response's header and its body with separate calls, each
//! a system call and, with `TCP_NODELAY`, a TCP segment of its own; over TLS, every record rustls
//! produces goes out the same way. [`Buffered`] puts buffers back, between the socket and all
//! that sits on it (rustls included), through pingora's public `IO` traits only.
//!
//! - **Writes** wait in a buffer of up to [`WRITE_CAPACITY`] bytes (pingora's size) until the
//!   layer above flushes. A write that does not fit goes out at once, in one vectored write
//!   together with what was waiting: a small header and a large body leave in one system call,
//!   where pingora's own buffer sends the header first.
//! - **Nothing is held back for long**, because pingora flushes whenever bytes must reach the
//!   client: the end of each response, a `1xx` header, a header without `Content-Length`, each
//!   chunk of a chunked or upgraded (WebSocket) body, and h2 and rustls flush after what they
//!   write (HTTP/2 frames, each handshake flight). Only the pieces of a `Content-Length` body
//!   that fit in the buffer wait there, for the next piece or the end, as they do behind
//!   pingora's own listeners. Shutting down flushes first; dropping tries once, as pingora's
//!   stream does.
//! - **Reads** fill a buffer of up to [`READ_CAPACITY`] bytes (a TLS record) per system call.
//!   That is for rustls, which asks for about 4 KiB at a time: a full 16 KiB record then takes
//!   one call, not four or five. A read asking for at least that much (pingora's body reads)
//!   skips the buffer, and the buffer is allocated by the first read that uses it.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora_core::listeners::DEFAULT_L4_WRITE_BUFFER_SIZE;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The most bytes read from the socket per system call: one whole TLS record (16 KiB and the
/// record's overhead). pingora's listeners take 64 KiB, but the buffer stays with each open
/// connection, and 10,000 idle keep-alive clients would hold 640 MB of them.
pub(crate) const READ_CAPACITY: usize = 17 * 1024;
/// The most bytes kept waiting for a flush: a TCP segment's worth on Ethernet.
pub(crate) const WRITE_CAPACITY: usize = DEFAULT_L4_WRITE_BUFFER_SIZE;
/// The most slices in one merged vectored write (rustls hands over up to 64 records at once).
const MAX_SLICES: usize = 64;

/// A stream with the read and write buffers of the module docs.
pub(crate) struct Buffered<S: AsyncWrite + Unpin> {
    inner: S,
    /// Read from the socket, not yet from us.
    read: BytesMut,
    /// Written to us, not yet to the socket.
    write: Vec<u8>,
}

impl<S: AsyncWrite + Unpin> Buffered<S> {
    pub(crate) fn new(inner: S) -> Buffered<S> {
        Buffered {
            inner,
            read: BytesMut::new(),
            write: Vec::new(),
        }
    }

    /// Writes out what waits in the write buffer (not flushing `inner`).
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.write.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.write))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Buffered<S> {
    /// One read from `inner`, appended to the read buffer, with room for at least `want` bytes.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        // On a drained buffer this reuses the allocation instead of growing it.
        self.read
            .reserve(want.max(READ_CAPACITY.saturating_sub(self.read.len())));
        // tokio's `read_buf` future keeps no state of its own: one made per poll is fine, and it
        // reads into the buffer's spare room without zeroing it first.
        std::pin::pin!(self.inner.read_buf(&mut self.read)).poll(cx)
    }
}

impl<S: AsyncWrite + Unpin + fmt::Debug> fmt::Debug for Buffered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffered")
            .field("inner", &self.inner)
            .field("read_buffered", &self.read.len())
            .field("write_buffered", &self.write.len())
            .finish()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Buffered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            if dst.remaining() >= READ_CAPACITY {
                return Pin::new(&mut this.inner).poll_read(cx, dst);
            }
            if dst.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Nothing read is the end of the stream; `dst` left empty says so to the caller.
            ready!(this.poll_fill(cx, 1))?;
        }
        let n = dst.remaining().min(this.read.len());
        dst.put_slice(&this.read[..n]);
        this.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Buffered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        loop {
            if this.write.len() + total <= WRITE_CAPACITY {
                if this.write.capacity() == 0 && total > 0 {
                    this.write.reserve_exact(WRITE_CAPACITY);
                }
                for b in bufs {
                    this.write.extend_from_slice(b);
                }
                return Poll::Ready(Ok(total));
            }
            if this.write.is_empty() {
                return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
            }
            // What waits and (the start of) the new data, in one system call.
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            slices[0] = IoSlice::new(&this.write);
            let more = bufs.len().min(MAX_SLICES - 1);
            slices[1..=more].copy_from_slice(&bufs[..more]);
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &slices[..=more]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let waiting = this.write.len();
            if n < waiting {
                this.write.drain(..n);
                continue;
            }
            this.write.clear();
            if n > waiting {
                return Poll::Ready(Ok(n - waiting));
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncWrite + Unpin> Drop for Buffered<S> {
    fn drop(&mut self) {
        // pingora's stream does the same: bytes nobody flushed (a TLS alert written on a failed
        // read, say) get one try that cannot block, since drop cannot wait.
        if !self.write.is_empty() {
            let _ = self.poll_write_out(&mut Context::from_waker(Waker::noop()));
        }
    }
}

#[async_trait]
impl<S: AsyncWrite + Unpin + Send> Shutdown for Buffered<S> {
    async fn shutdown(&mut self) {
        if let Err(error) = AsyncWriteExt::shutdown(self).await {
            tracing::debug!(%error, "cannot shut the connection down");
        }
    }
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Peek for Buffered<S> {
    /// Like pingora's stream: waits for `buf.len()` bytes, which later reads return again.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        while self.read.len() < buf.len() {
            let want = buf.len() - self.read.len();
            if std::future::poll_fn(|cx| self.poll_fill(cx, want)).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        buf.copy_from_slice(&self.read[..buf.len()]);
        Ok(true)
    }
}

impl<S: AsyncWrite + Unpin + UniqueID> UniqueID for Buffered<S> {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl<S: AsyncWrite + Unpin + Ssl> Ssl for Buffered<S> {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl<S: AsyncWrite + Unpin + GetTimingDigest> GetTimingDigest for Buffered<S> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl<S: AsyncWrite + Unpin + GetProxyDigest> GetProxyDigest for Buffered<S> {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl<S: AsyncWrite + Unpin + GetSocketDigest> GetSocketDigest for Buffered<S> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use pingora_core::protocols::l4::stream::Stream as L4Stream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// What a [`Recorder`] saw: the bytes of each write call, and how many flushes.
    #[derive(Debug, Default)]
    struct Seen {
        writes: Vec<Vec<u8>>,
        flushes: usize,
        shutdowns: usize,
    }

    /// Passes everything to `inner` and notes each write call, of `max_write` bytes at most.
    #[derive(Debug)]
    struct Recorder<S> {
        inner: S,
        seen: Arc<Mutex<Seen>>,
        max_write: usize,
    }

    impl<S> Recorder<S> {
        fn new(inner: S) -> (Recorder<S>, Arc<Mutex<Seen>>) {
            let seen = Arc::new(Mutex::new(Seen::default()));
            let r = Recorder {
                inner,
                seen: seen.clone(),
                max_write: usize::MAX,
            };
            (r, seen)
        }
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            all.truncate(self.max_write);
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &all))?;
            self.seen.lock().unwrap().writes.push(all[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.seen.lock().unwrap().flushes += 1;
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.seen.lock().unwrap().shutdowns += 1;
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    const HEADER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";

    fn writes(seen: &Mutex<Seen>) -> Vec<Vec<u8>> {
        seen.lock().unwrap().writes.clone()
    }

    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        server.set_nodelay(true).unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn a_small_response_leaves_in_one_write_at_the_flush() {
        let (recorder, seen) = Recorder::new(tokio::io::sink());
        let mut s = Buffered::new(recorder);
        s.write_all(HEADER).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        assert!(
            writes(&seen).is_empty(),
            "nothing goes out before the flush"
        );
        s.flush().await.unwrap();
        assert_eq!(writes(&seen), vec![[HEADER, b"hello"].concat()]);
        assert_eq!(seen.lock().unwrap().flushes, 1);
        // A flush with nothing waiting writes nothing.
        s.flush().await.unwrap();
        assert_eq!(writes(&seen).len(), 1);
    }

    #[tokio::test]
    async fn a_large_body_leaves_with_the_waiting_header_in_one_write() {
        let (recorder, seen) = Recorder::new(tokio::io::sink());
        let mut s = Buffered::new(recorder);
        let body = vec![b'x'; 3 * WRITE_CAPACITY];
        s.write_all(HEADER).await.unwrap();
        s.write_all(&body).await.unwrap();
        assert_eq!(writes(&seen), vec![[HEADER, &body].concat()]);
        s.flush().await.unwrap();
        assert_eq!(writes(&seen).len(), 1, "nothing was left behind");
        // Vectored writes too (rustls hands over its records that way).
        s.write_all(HEADER).await.unwrap();
        let n = s
            .write_vectored(&[IoSlice::new(&body), IoSlice::new(b"tail")])
            .await
            .unwrap();
        assert_eq!(n, body.len() + 4);
        assert_eq!(writes(&seen)[1], [HEADER, &body, b"tail"].concat());
    }

    #[tokio::test]
    async fn short_writes_lose_and_reorder_nothing() {
        let (mut recorder, seen) = Recorder::new(tokio::io::sink());
        recorder.max_write = 7;
        let mut s = Buffered::new(recorder);
        let mut expected = Vec::new();
        for i in 0..50_usize {
            let piece = vec![u8::try_from(i).unwrap(); i * 97 % 3000];
            s.write_all(&piece).await.unwrap();
            expected.extend_from_slice(&piece);
        }
        s.flush().await.unwrap();
        assert_eq!(writes(&seen).concat(), expected);
    }

    #[tokio::test]
    async fn shutdown_and_drop_send_what_waits() {
        let (recorder, seen) = Recorder::new(tokio::io::sink());
        let mut s = Buffered::new(recorder);
        s.write_all(b"bye").await.unwrap();
        Shutdown::shutdown(&mut s).await;
        assert_eq!(writes(&seen), vec![b"bye".to_vec()]);
        assert_eq!(seen.lock().unwrap().shutdowns, 1);

        let (recorder, seen) = Recorder::new(tokio::io::sink());
        let mut s = Buffered::new(recorder);
        s.write_all(b"alert").await.unwrap();
        drop(s);
        assert_eq!(writes(&seen), vec![b"alert".to_vec()]);
    }

    /// The real thing: pingora's stream over TCP with `TCP_NODELAY`, as `connection` builds it.
    #[tokio::test]
    async fn over_tcp_nothing_leaves_before_the_flush_and_all_of_it_in_one_read_after() {
        let (server, mut client) = tcp_pair().await;
        let mut s = Buffered::new(L4Stream::from(server));
        s.write_all(HEADER).await.unwrap();
        let mut buf = vec![0; 4096];
        let early = tokio::time::timeout(Duration::from_millis(100), client.read(&mut buf)).await;
        assert!(early.is_err(), "the header went out before the flush");
        s.write_all(b"hello").await.unwrap();
        s.flush().await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], [HEADER, b"hello"].concat());
    }

    #[tokio::test]
    async fn reads_and_peeks_go_through_the_buffer() {
        let (server, mut client) = tcp_pair().await;
        let mut s = Buffered::new(L4Stream::from(server));
        let message: Vec<u8> = (0..100_000_u32).map(|i| (i % 251) as u8).collect();
        let sent = message.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let mut peeked = [0; 24];
        assert!(s.try_peek(&mut peeked).await.unwrap());
        assert_eq!(peeked[..], message[..24]);
        let mut got = Vec::new();
        // Small reads (through the buffer), then large ones (past it), to the end.
        let mut small = [0; 1000];
        for _ in 0..10 {
            let n = s.read(&mut small).await.unwrap();
            got.extend_from_slice(&small[..n]);
        }
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, message);
        let _client = writer.await.unwrap();
        // Peeking at the end of the stream fails, as with pingora's stream.
        assert!(s.try_peek(&mut peeked).await.is_err());
    }

    /// Under rustls: a response's records leave in one write, the handshake is not held back.
    #[tokio::test]
    async fn tls_records_leave_in_one_write() {
        let certified = rcgen::generate_simple_self_signed(vec!["buffered.test".into()]).unwrap();
        let cert = certified.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let server_config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let (server, client) = tcp_pair().await;
        let (recorder, seen) = Recorder::new(server);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let name = rustls::pki_types::ServerName::try_from("buffered.test").unwrap();
        let (server, client) = tokio::join!(
            acceptor.accept(Buffered::new(recorder)),
            connector.connect(name, client)
        );
        let (mut server, mut client) = (server.unwrap(), client.unwrap());

        let before = writes(&seen).len();
        let body = vec![b'x'; 10_000];
        server.write_all(HEADER).await.unwrap();
        server.write_all(&body).await.unwrap();
        server.flush().await.unwrap();
        assert_eq!(
            writes(&seen).len(),
            before + 1,
            "{:?}",
            seen.lock().unwrap()
        );
        let mut got = vec![0; HEADER.len() + body.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [HEADER, &body].concat());
    }
}
