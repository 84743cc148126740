//! Client connections: a cap on how many are open at once, and a deadline for
//! each request head as a whole.
//!
//! pingora 0.9 times out each *read* of a request head (60 s for a first
//! request, the keep-alive timeout after one), never the head as a whole, and
//! it has no connection cap: a client that sends one header line every few
//! seconds holds its connection for ever, and enough of them hold every file
//! descriptor (slowloris; pingora#447, open; the per-read timeout is PR #539).
//! pingora has no hook between accept and the head, and no connection cap
//! (its `connection_filter` decides by address only), so
//! [`Guarded`] wraps its HTTP app:
//!
//! - a new connection past `server.max_connections` is closed before a byte
//!   is read, with a metric and a rate-limited `warn`;
//! - every other one is handed on as a [`Clocked`] stream, whose reads fail
//!   once a request head has taken longer than `server.request_head_timeout`.
//!   The clock starts at accept for the first request and at the first byte
//!   of each later one (the keep-alive wait in between is the idle timeout's),
//!   and the proxy stops it as soon as pingora has parsed the head
//!   ([`head_read`]), so a slow body or a long response is never cut.
//!
//! The cost for a normal request is one downcast and one relaxed store; the
//! timer is only armed when a read of the head would block.
//!
//! HTTP/2 (chosen by ALPN on a TLS listener) gets the same deadline for its
//! first request: pingora waits for the client's preface and then for a
//! stream with no timeout at all (no pingora issue yet; its optional idle
//! timeout is PR #899/#977, asked for in #563), so a client that completed the handshake
//! and went quiet held its connection (and a slot of the cap) for ever. The
//! clock runs from the handshake until a request head has arrived whole, seen
//! by following the client's frames ([`H2Head`]): a HEADERS or CONTINUATION
//! frame with END_HEADERS, payload included. After that, an HTTP/2 connection
//! without streams ends after `server.client_idle_timeout` (pingora's
//! `h2_idle_timeout`, set by `server`); a header block left unfinished stalls
//! the whole connection (RFC 9113 §6.10), so that timeout bounds it too.
//!
//! TLS listeners are plain TCP listeners to pingora, and [`Guarded`] runs the
//! handshake itself: pingora's own TLS listener handshakes before any app sees
//! the connection, under a fixed 60 s deadline (PR #543) that cannot be set and
//! is outside any cap, so a client that sends half a ClientHello holds a
//! descriptor for a minute, uncounted. Here the
//! connection is counted at accept and its handshake must finish within
//! `server.request_head_timeout` too (counted as a head timeout otherwise).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::metrics::METRICS;

/// The limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most client connections open at once, all workers together.
    pub max_connections: u64,
    /// Longest a request head may take to arrive.
    pub head_timeout: Duration,
}

/// pingora's HTTP app behind the connection cap and the head deadline.
pub(crate) struct Guarded<A> {
    app: Arc<A>,
    limits: Limits,
    counts: &'static Counts,
    /// The TLS listening addresses of this service and their acceptors.
    tls: Vec<(std::net::SocketAddr, Arc<Acceptor>)>,
}

/// The counters of one kind of listener, all its services together.
#[derive(Debug)]
struct Counts {
    /// Connections open now.
    open: &'static AtomicU64,
    /// Connections closed at accept because `open` was at the cap.
    refused: &'static AtomicU64,
    /// Connections closed because a request head was overdue.
    head_timeouts: &'static AtomicU64,
    /// The setting a refusal names in its log line.
    cap_name: &'static str,
}

/// Client listeners: the connection metrics.
static CLIENT: Counts = Counts {
    open: &METRICS.connections_open,
    refused: &METRICS.connections_refused,
    head_timeouts: &METRICS.head_timeouts,
    cap_name: "server.max_connections",
};

/// The admin listener: counted apart (not metrics: the admin API is not traffic).
static ADMIN: Counts = Counts {
    open: &ADMIN_COUNTERS[0],
    refused: &ADMIN_COUNTERS[1],
    head_timeouts: &ADMIN_COUNTERS[2],
    cap_name: "the admin listener's cap",
};
static ADMIN_COUNTERS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Most admin connections open at once: operators and probes need few, and
/// without a cap of its own a flood on the admin port could spend the file
/// descriptors client traffic needs.
pub(crate) const ADMIN_MAX_CONNECTIONS: u64 = 64;

impl<A> Guarded<A> {
    /// Wrap a proxy worker's app (pingora's `HttpProxy`): `server.*` limits,
    /// counted in the connection metrics.
    pub(crate) fn new(app: A, limits: Limits) -> Self {
        Guarded {
            app: Arc::new(app),
            limits,
            counts: &CLIENT,
            tls: Vec::new(),
        }
    }

    /// Connections accepted on `addr` speak TLS, handshaken by `acceptor`.
    pub(crate) fn with_tls(mut self, addr: std::net::SocketAddr, acceptor: Arc<Acceptor>) -> Self {
        self.tls.push((addr, acceptor));
        self
    }

    /// The acceptor of the listener `stream` was accepted on, if it is TLS.
    fn acceptor(&self, stream: &Stream) -> Option<&Arc<Acceptor>> {
        if self.tls.is_empty() {
            return None;
        }
        let local = stream
            .get_socket_digest()?
            .local_addr()?
            .as_inet()
            .copied()?;
        // A listener on 0.0.0.0 or [::] sees the address the client dialled.
        self.tls
            .iter()
            .find(|(addr, _)| {
                addr.port() == local.port()
                    && (addr.ip() == local.ip() || addr.ip().is_unspecified())
            })
            .map(|(_, acceptor)| acceptor)
    }

    /// Wrap the admin service: the same head deadline, its own small cap.
    pub(crate) fn admin(app: A, head_timeout: Duration) -> Self {
        Guarded {
            app: Arc::new(app),
            limits: Limits {
                max_connections: ADMIN_MAX_CONNECTIONS,
                head_timeout,
            },
            counts: &ADMIN,
            tls: Vec::new(),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // pingora hands a kept-alive connection back here for its next request.
        // `(*stream)`: the concrete stream's `as_any`, not the box's.
        let stream: Stream = if (*stream).as_any().is::<Clocked>() {
            let mut clocked = stream.into_any().downcast::<Clocked>().ok()?;
            clocked.next_request();
            clocked
        } else {
            let open = self.counts.open.fetch_add(1, Ordering::Relaxed) + 1;
            if open > self.limits.max_connections {
                self.counts.open.fetch_sub(1, Ordering::Relaxed);
                refused(self.counts, self.limits.max_connections);
                return None; // dropping the stream closes it
            }
            let stream = match self.acceptor(&stream) {
                None => stream,
                Some(acceptor) => {
                    match handshake(acceptor, stream, self.limits.head_timeout, self.counts).await {
                        Some(tls) => tls,
                        None => {
                            self.counts.open.fetch_sub(1, Ordering::Relaxed);
                            return None;
                        }
                    }
                }
            };
            Box::new(Clocked::new(stream, self.limits.head_timeout, self.counts))
        };
        self.app.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

/// The TLS handshake of a new connection, within `timeout`; `None` when it
/// failed or took too long (the connection is then closed).
async fn handshake(
    acceptor: &Acceptor,
    stream: Stream,
    timeout: Duration,
    counts: &Counts,
) -> Option<Stream> {
    // pingora accepts TCP connections as its L4 stream, which its TLS code takes.
    let l4 = stream
        .into_any()
        .downcast::<pingora::protocols::l4::stream::Stream>()
        .ok()?;
    match tokio::time::timeout(timeout, acceptor.tls_handshake(*l4)).await {
        Ok(Ok(tls)) => Some(Box::new(tls)),
        Ok(Err(e)) => {
            // A port scan, a client that distrusts the certificate, TLS 1.1: routine.
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            counts.head_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?timeout, "TLS handshake too slow: connection closed");
            None
        }
    }
}

/// Count a refused connection; `warn` at most every 10 s (all listeners together).
fn refused(counts: &Counts, max: u64) {
    let total = counts.refused.fetch_add(1, Ordering::Relaxed) + 1;
    static LAST_WARN: AtomicU64 = AtomicU64::new(0);
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    // Seconds since the first refusal, plus 10 so that the first one warns.
    let now = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs()
        + 10;
    let last = LAST_WARN.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST_WARN
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            max_connections = max,
            refused_total = total,
            "connections at {}: new ones are closed at once",
            counts.cap_name
        );
    }
}

/// Tell the connection's clock that its request head has been read.
pub(crate) fn head_read(session: &pingora::protocols::http::ServerSession) {
    if let Some(stream) = session.stream() {
        if let Some(clocked) = (**stream).as_any().downcast_ref::<Clocked>() {
            clocked.head_done.store(true, Ordering::Relaxed);
        }
    }
}

/// A client stream whose reads fail once a request head is overdue.
#[derive(Debug)]
pub(crate) struct Clocked {
    inner: Stream,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    /// The head of the current request is being read, against the deadline.
    running: bool,
    /// Set by the proxy once pingora has parsed the head (through `&self`),
    /// or by [`H2Head`] on an HTTP/2 connection.
    head_done: AtomicBool,
    /// HTTP/2: the client's frames, followed until its first request head
    /// is whole (pingora gives the proxy no way back to the connection).
    h2: Option<H2Head>,
    /// The counters of its listener (it is in `open`).
    counts: &'static Counts,
}

impl Clocked {
    fn new(inner: Stream, timeout: Duration, counts: &'static Counts) -> Self {
        // HTTP/2's clock runs from here, the end of the handshake: its
        // client speaks first (the preface), and silence is the attack.
        let h2 = (inner.selected_alpn_proto() == Some(ALPN::H2)).then(H2Head::new);
        Clocked {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            running: true,
            head_done: AtomicBool::new(false),
            h2,
            counts,
        }
    }

    /// A kept-alive connection waits for its next request: the clock starts
    /// again at that request's first byte. (pingora never hands an HTTP/2
    /// connection back: its streams are sessions of their own.)
    fn next_request(&mut self) {
        if self.inner.selected_alpn_proto() != Some(ALPN::H2) {
            self.running = false;
            self.head_done.store(false, Ordering::Relaxed);
        }
    }

    fn overdue(&self) -> io::Error {
        self.counts.head_timeouts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(timeout = ?self.timeout, "request head too slow: connection closed");
        io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not complete within server.request_head_timeout",
        )
    }
}

/// Follows a client's HTTP/2 byte stream (RFC 9113 §3.4 preface, §4.1 frame
/// layout) until a header block has ended: a HEADERS (0x1) or CONTINUATION
/// (0x9) frame with END_HEADERS (0x4), its payload read in full, so that a
/// client cannot send the frame's 9-byte header and stall on the rest.
#[derive(Debug)]
struct H2Head {
    /// Bytes still to pass over: the preface, then each frame's payload.
    skip: usize,
    /// The frame header being collected, and how much of it has arrived.
    header: [u8; 9],
    have: usize,
    /// The payload being passed over ends a header block.
    ends_head: bool,
}

impl H2Head {
    /// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
    const PREFACE_LEN: usize = 24;

    fn new() -> Self {
        H2Head {
            skip: Self::PREFACE_LEN,
            header: [0; 9],
            have: 0,
            ends_head: false,
        }
    }

    /// Take the next bytes the client sent; `true` once a header block has
    /// arrived whole. (A malformed preface is pingora's to refuse.)
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        const HEADERS: u8 = 0x1;
        const CONTINUATION: u8 = 0x9;
        const END_HEADERS: u8 = 0x4;
        loop {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            bytes = &bytes[n..];
            if self.skip > 0 {
                return false;
            }
            if self.ends_head {
                return true;
            }
            let n = (self.header.len() - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < self.header.len() {
                return false;
            }
            self.have = 0;
            let [l0, l1, l2, kind, flags, ..] = self.header;
            self.skip = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
            self.ends_head = matches!(kind, HEADERS | CONTINUATION) && flags & END_HEADERS != 0;
        }
    }
}

/// Every `Clocked` was counted in its listener's `open` at accept.
impl Drop for Clocked {
    fn drop(&mut self) {
        self.counts.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Clocked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.head_done.load(Ordering::Relaxed) {
            return poll;
        }
        match poll {
            Poll::Ready(Ok(())) if this.h2.is_some() => {
                let read = &buf.filled()[before..];
                if this.h2.as_mut().is_some_and(|h| h.feed(read)) {
                    this.h2 = None;
                    this.head_done.store(true, Ordering::Relaxed);
                } else if Instant::now() >= this.deadline.deadline() {
                    // A client that keeps the socket readable (PINGs,
                    // SETTINGS) never lets a read block, where the timer
                    // below is polled.
                    return Poll::Ready(Err(this.overdue()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) if !this.running && buf.filled().len() > before => {
                this.running = true;
                let at = Instant::now() + this.timeout;
                this.deadline.as_mut().reset(at);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.running => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(this.overdue())),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for Clocked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// The rest of pingora's `IO` is the inner stream's.

#[async_trait]
impl Shutdown for Clocked {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Clocked {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Clocked {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Clocked {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Clocked {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Clocked {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Clocked {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::H2Head;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len().to_be_bytes();
        let mut f = vec![len[5], len[6], len[7], kind, flags, 0, 0, 0, 1];
        f.extend_from_slice(payload);
        f
    }

    /// Whether `bytes`, fed whole and fed split at every point, end a head.
    fn ends(bytes: &[u8]) -> bool {
        let whole = H2Head::new().feed(bytes);
        for at in 0..=bytes.len() {
            let mut h = H2Head::new();
            let split = h.feed(&bytes[..at]) || h.feed(&bytes[at..]);
            assert_eq!(split, whole, "split at {at}");
        }
        let mut h = H2Head::new();
        let bytewise = bytes.iter().any(|b| h.feed(std::slice::from_ref(b)));
        assert_eq!(bytewise, whole, "byte by byte");
        whole
    }

    #[test]
    fn a_head_ends_with_the_payload_of_an_end_headers_frame() {
        let settings = frame(0x4, 0, &[0, 3, 0, 0, 0, 100]);
        let ping = frame(0x6, 0, &[0; 8]);
        let headers_open = frame(0x1, 0x1, b"abc");
        let headers_done = frame(0x1, 0x5, b"abc");
        let continuation_done = frame(0x9, 0x4, b"de");
        let cat = |parts: &[&[u8]]| parts.concat();

        assert!(!ends(b""));
        assert!(!ends(PREFACE));
        assert!(!ends(&cat(&[PREFACE, &settings, &ping, &ping])));
        // A HEADERS frame without END_HEADERS: the block is still open.
        assert!(!ends(&cat(&[PREFACE, &settings, &headers_open])));
        // END_HEADERS, but the payload withheld.
        let done = cat(&[PREFACE, &settings, &headers_done]);
        assert!(!ends(&done[..done.len() - 1]));
        assert!(ends(&done));
        assert!(ends(&cat(&[PREFACE, &headers_open, &continuation_done])));
        // END_HEADERS means nothing on other frame types (0x4 is ACK on SETTINGS).
        assert!(!ends(&cat(&[
            PREFACE,
            &frame(0x4, 0x4, &[]),
            &frame(0x0, 0x4, b"x")
        ])));
        // An empty header block still ends one (h2 then refuses the stream).
        assert!(ends(&cat(&[PREFACE, &frame(0x1, 0x4, &[])])));
    }
}
