//! The accept loop: every connection the server holds is bounded in number and in time.
//!
//! `axum::serve` has no per-connection limits, so a client that opens sockets and sends
//! nothing (or half a request) could hold them, and the server's file descriptors, forever.
//! Here each connection is served by hyper-util's builder (HTTP/1.1 only), with:
//!
//! - a cap on open connections ([`Config::max_connections`](crate::Config)), a semaphore
//!   permit per connection. At the cap, connections with no request in flight are asked to
//!   close (shed), which frees room for the new one within a moment; a connection that still
//!   finds no room after [`ROOM_WAIT`] (every connection busy, e.g. all long polls) is closed
//!   unanswered;
//! - hyper's header read timeout (a request head, or an HTTP/1 keep-alive's next one, must
//!   arrive in time);
//! - a body read timeout (the longest pause between two pieces of a request body), which also
//!   bounds how long a client may leave an answer unread (the socket takes none of it);
//! - an idle timeout of our own: no request in flight and no answer being written for that
//!   long closes the connection, whatever protocol it speaks or never spoke;
//! - `accept` failures (out of file descriptors) shed idle connections and back off for
//!   [`ACCEPT_BACKOFF`] instead of spinning or stopping;
//! - graceful shutdown: no new connections, idle ones close, requests in flight finish (live
//!   pulls answer at once: the hub is closed first), bounded by [`DRAIN_LIMIT`].

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower_http::timeout::TimeoutBody;

use crate::metrics::{Metrics, ReasonLabels};
use crate::tls::{Conn, TlsConfig};

/// How long `accept` waits after a failure (out of file descriptors) before it tries again.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a new connection waits for room at the cap (idle ones are shed meanwhile).
pub(crate) const ROOM_WAIT: Duration = Duration::from_secs(1);
/// How long a connection may sit with no request in flight before it may be shed at the cap:
/// one accepted a moment ago has not sent its request head yet, and one that just answered may
/// be about to send its next.
pub(crate) const SHED_GRACE: Duration = Duration::from_millis(500);
/// How long a shutdown waits for requests in flight before it drops their connections.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// The connection limits of a server, from its [`Config`](crate::Config).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Accepts and serves connections until `stop` resolves, then drains them.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<TlsConfig>,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let room = Arc::new(Semaphore::new(max));
    let (shed, _) = watch::channel(0u64);
    let (closing, _) = watch::channel(false);
    // HTTP/1.1 only: every client of the protocol speaks it, TLS offers only it (ALPN), and
    // HTTP/2's flow control would let a client hold an answer unread without the socket ever
    // filling, out of reach of the unread-answer bound.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            // The peer gave up before we took it: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // EMFILE/ENFILE and the like: the pending connection stays in the backlog.
                // Idle connections are shed to free descriptors, and we wait a little rather
                // than spin on an accept that fails at once.
                metrics.accept_errors.inc();
                tracing::warn!(error = %e, "accept failed; shedding idle connections");
                shed.send_modify(|n| *n += 1);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        metrics.connections_accepted.inc();
        let permit = match room.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap: ask idle connections to close, again once the youngest of them
                // are past their grace, until room frees, the wait is over or we stop.
                let deadline = Instant::now() + ROOM_WAIT;
                let mut permit = None;
                while permit.is_none() && Instant::now() < deadline {
                    shed.send_modify(|n| *n += 1);
                    let next = (Instant::now() + SHED_GRACE).min(deadline);
                    tokio::select! {
                        got = room.clone().acquire_owned() => permit = got.ok(),
                        () = tokio::time::sleep_until(next) => {}
                        () = &mut stop => break,
                    }
                }
                match permit {
                    Some(permit) => permit,
                    None => {
                        closed(&metrics, "refused");
                        tracing::warn!(max, "connection refused: every connection is busy");
                        continue;
                    }
                }
            }
        };
        let conn = Connection {
            app: app.clone(),
            builder: builder.clone(),
            limits,
            metrics: metrics.clone(),
            shed: shed.subscribe(),
            closing: closing.subscribe(),
        };
        let tls = tls.clone();
        let mut shed_rx = shed.subscribe();
        let accepted_at = Instant::now();
        tokio::spawn(async move {
            // A TLS handshake in progress holds a permit like a connection: one past its grace
            // is shed like an idle connection, so silent handshakes cannot fill the cap.
            tokio::select! {
                io = accepted_stream(tcp, tls.as_ref(), limits.header_read_timeout) => match io {
                    Ok(io) => conn.serve(io).await,
                    Err(e) => tracing::debug!(error = %e, "connection dropped before serving"),
                },
                () = shed_after_grace(&mut shed_rx, accepted_at) => {
                    closed(&conn.metrics, "shed");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every permit back: every connection has ended.
    if tokio::time::timeout(DRAIN_LIMIT, room.acquire_many(max as u32))
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open after the drain limit");
    }
}

/// The one place an accepted socket becomes the stream a connection is served over: TLS wraps
/// it here, its handshake bounded like a request head.
async fn accepted_stream(
    tcp: TcpStream,
    tls: Option<&TlsConfig>,
    handshake_within: Duration,
) -> std::io::Result<Conn> {
    // TCP_NODELAY: a gzip-encoded answer is written in several small pieces, and with Nagle's
    // algorithm each piece after the first would wait for the client's delayed ACK (40 ms on
    // Linux): 4 s of a 5.3 s initial sync of 100,000 records at pages of 1,000.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY not set on a connection: {e}");
    }
    match tls {
        Some(tls) => tls.accept(tcp, handshake_within).await,
        None => Ok(Conn::Plain(tcp)),
    }
}

/// Resolves at the first shed request that comes once `since` is [`SHED_GRACE`] old; never if
/// the server is gone.
async fn shed_after_grace(shed: &mut watch::Receiver<u64>, since: Instant) {
    loop {
        if shed.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        if since.elapsed() >= SHED_GRACE {
            return;
        }
    }
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

fn closed(metrics: &Metrics, reason: &'static str) {
    metrics
        .connections_closed
        .get_or_create(&ReasonLabels { reason })
        .inc();
}

/// What one connection's task needs.
struct Connection {
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
    metrics: Arc<Metrics>,
    shed: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
}

impl Connection {
    async fn serve<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let _open = OpenGuard::new(&self.metrics);
        // Shed requests made before this connection was ready are not for it.
        self.shed.borrow_and_update();
        let activity = Arc::new(Activity::new());
        let service = {
            let (app, activity) = (self.app.clone(), activity.clone());
            let body_timeout = self.limits.body_read_timeout;
            let bytes = self.metrics.bytes_sent.clone();
            tower::service_fn(move |req: axum::http::Request<Incoming>| {
                let busy = Busy::new(&activity);
                let req = req.map(|body| TimeoutBody::new(body_timeout, body));
                let (app, bytes) = (app.clone(), bytes.clone());
                async move {
                    let resp = tower::ServiceExt::oneshot(app, req).await?;
                    Ok::<_, std::convert::Infallible>(resp.map(|inner| Tracked {
                        inner,
                        _busy: busy,
                        bytes,
                    }))
                }
            })
        };
        let io = Watched {
            io,
            activity: activity.clone(),
        };
        let conn = self
            .builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::pin!(conn);
        let mut draining = false;
        // A client that leaves an answer unread (the socket takes no more of it) is bounded
        // like one that pauses in a request body: it would hold the answer's bytes, and its
        // connection, for as long as it likes.
        let send_timeout = self.limits.body_read_timeout;
        loop {
            let idle_until = activity.idle_until(self.limits.idle_timeout);
            let stall_until = activity.stalled_until(send_timeout);
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                () = tokio::time::sleep_until(idle_until) => {
                    if activity.idle_until(self.limits.idle_timeout) <= Instant::now() {
                        closed(&self.metrics, "idle");
                        break;
                    }
                }
                () = tokio::time::sleep_until(stall_until) => {
                    if activity.stalled_until(send_timeout) <= Instant::now() {
                        closed(&self.metrics, "unread");
                        tracing::debug!("closing a connection whose answer was left unread");
                        break;
                    }
                }
                Ok(()) = self.shed.changed() => {
                    if activity.idle_for(SHED_GRACE) {
                        closed(&self.metrics, "shed");
                        break;
                    }
                }
                Ok(()) = self.closing.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A connection's stream, noting in its [`Activity`] when writes wait on the peer to read.
struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> Watched<I> {
    fn noted<T>(&self, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        self.activity.write_stalled(polled.is_pending());
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.noted(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.noted(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    // Not noted: a flush of a socket is ready at once, which says nothing of the peer reading.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Counts an open connection for as long as it lives.
struct OpenGuard(prometheus_client::metrics::gauge::Gauge);

impl OpenGuard {
    fn new(metrics: &Metrics) -> Self {
        metrics.connections_open.inc();
        OpenGuard(metrics.connections_open.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Whether a connection is doing anything: requests in flight (until their answer is
/// written), and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
    /// Since when a write has been waiting for the peer to read (`None`: writes move).
    stalled_since: Mutex<Option<Instant>>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            stalled_since: Mutex::new(None),
        }
    }

    /// When a write that has waited on the peer since it stalled will have waited `timeout`
    /// (`timeout` from now while writes move, so that it is checked again).
    fn stalled_until(&self, timeout: Duration) -> Instant {
        let since = *self.stalled_since.lock().unwrap_or_else(|p| p.into_inner());
        since.unwrap_or_else(Instant::now) + timeout
    }

    /// A write found the socket full (`true`) or got bytes out (`false`).
    fn write_stalled(&self, stalled: bool) {
        let mut since = self.stalled_since.lock().unwrap_or_else(|p| p.into_inner());
        match (stalled, *since) {
            (true, None) => *since = Some(Instant::now()),
            (false, Some(_)) => *since = None,
            _ => {}
        }
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// No request in flight, and none for at least `grace`.
    fn idle_for(&self, grace: Duration) -> bool {
        self.is_idle()
            && self
                .idle_since
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                >= grace
    }

    /// When the connection will have been idle for `timeout` (later than `timeout` from now
    /// while a request is in flight, so that it is checked again).
    fn idle_until(&self, timeout: Duration) -> Instant {
        if self.is_idle() {
            *self.idle_since.lock().unwrap_or_else(|p| p.into_inner()) + timeout
        } else {
            Instant::now() + timeout
        }
    }
}

/// One request in flight, from its head until its answer's body is written (or dropped).
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *since = Instant::now();
        }
    }
}

/// An answer's body that keeps its request counted as in flight until it is written, and
/// counts the bytes it sends.
struct Tracked {
    inner: Body,
    _busy: Busy,
    bytes: Counter,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes.inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
