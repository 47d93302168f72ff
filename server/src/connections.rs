//! The connections of both listeners (gRPC and HTTP): how many may be open, and when an open
//! one is closed although its client has not closed it.
//!
//! A client that opens connections and never uses or closes them would otherwise hold a file
//! descriptor and buffers each until the process runs out of descriptors and no new
//! connection can be accepted on either port. So:
//!
//! - **Connection limit** (`--max-connections`, shared by both listeners): a connection beyond
//!   it is accepted and closed at once — the client sees the connection closed instead of
//!   waiting in the kernel's backlog — and a warning is logged (at most once a second, with the
//!   count refused since the last one). Connections already open keep working.
//! - **Header read timeout** (`--header-read-timeout`): a new connection must deliver its first
//!   request's headers (HTTP/1) or its connection preface (HTTP/2) within it — on a TLS port,
//!   its TLS handshake included; and once an idle HTTP/1 connection receives the first bytes of
//!   a request, the request's headers must be complete within it. Otherwise the connection is
//!   closed.
//! - **Idle timeout** (`--idle-timeout`): a connection with no call in progress (no request
//!   being handled, no response stream open) for this long is closed, whatever the client sends
//!   meanwhile (HTTP/2 pings do not keep it open).
//!
//! Both timeouts are enforced by [`Conn`], the I/O object the HTTP servers (axum's and tonic's)
//! read from: a read that waits past the current deadline fails, and the server closes the
//! connection. On a TLS port a [`Conn`] reads through TLS ([`MaybeTls`]): the limit and the
//! timeouts apply to TLS connections as they are, and the timeouts look at the decrypted bytes. Whether a call is in progress comes from [`Activity`], which reaches the gate
//! (see [`crate::gate`]) as connection info of each request; the gate holds an
//! [`ActiveCall`] while a call is handled and, for a stream, until its response ends.
//!
//! A response stream whose client stops reading cannot be ended on its own: the server polls
//! a response body only when it has room to send. The gate's stall watch closes such a
//! stream's connection through [`Activity::close`] (see [`crate::gate`]).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::limits::Permit;
use crate::tls::MaybeTls;

/// The connection settings of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once over both listeners; None for the default
    /// ([`DEFAULT_MAX_CONNECTIONS`], or three quarters of the open-file limit if lower).
    pub max_connections: Option<usize>,
    /// How long a connection may stay without a call in progress; None for no limit.
    pub idle_timeout: Option<Duration>,
    /// How long a request's headers (or an HTTP/2 preface) may take to arrive; None for no
    /// limit.
    pub header_read_timeout: Option<Duration>,
}

/// The connection limit when none is configured and the open-file limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: None,
            idle_timeout: Some(Duration::from_secs(300)),
            header_read_timeout: Some(Duration::from_secs(10)),
        }
    }
}

impl ConnectionLimits {
    /// The connection limit in force: the configured one, or the default lowered to three
    /// quarters of the process's open-file limit (the rest is for the store, logs and the
    /// connections' short overlap while closing).
    pub fn effective_max_connections(&self) -> usize {
        match self.max_connections {
            Some(n) => {
                if let Some(files) = open_file_limit()
                    && n as u64 >= files
                {
                    tracing::warn!(
                        max_connections = n,
                        open_file_limit = files,
                        "--max-connections is not below the open-file limit (ulimit -n): \
                         descriptors can run out before the limit refuses connections"
                    );
                }
                n
            }
            None => match open_file_limit() {
                Some(files) => {
                    let derived = usize::try_from(files / 4 * 3).unwrap_or(usize::MAX);
                    DEFAULT_MAX_CONNECTIONS.min(derived).max(1)
                }
                None => DEFAULT_MAX_CONNECTIONS,
            },
        }
    }
}

/// The soft limit of open files of this process (Linux: `/proc/self/limits`).
fn open_file_limit() -> Option<u64> {
    max_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// The soft limit of open files in the text of `/proc/PID/limits` (`None` when unlimited).
pub(crate) fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The open connections of a server, over both listeners.
#[derive(Debug)]
pub struct Connections {
    limits: ConnectionLimits,
    max: usize,
    open: Arc<AtomicUsize>,
    /// Refused since the last warning.
    refused: AtomicU64,
    /// When the last warning was logged, in milliseconds since `epoch`.
    warned_at: AtomicU64,
    epoch: std::time::Instant,
}

impl Connections {
    pub fn new(limits: ConnectionLimits) -> Arc<Connections> {
        let max = limits.effective_max_connections();
        Arc::new(Connections {
            limits,
            max,
            open: Arc::new(AtomicUsize::new(0)),
            refused: AtomicU64::new(0),
            warned_at: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        })
    }

    /// The connection limit in force.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn admit(&self) -> Option<Permit> {
        crate::limits::acquire(&self.open, self.max)
    }

    /// Counts a refused connection and warns, at most once a second.
    fn refused(&self, listener: &'static str, remote: SocketAddr) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.warned_at.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= 1000;
        if due
            && self
                .warned_at
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.refused.fetch_sub(refused, Ordering::Relaxed);
            tracing::warn!(
                listener,
                %remote,
                refused,
                max_connections = self.max,
                "connection refused: --max-connections connections are open"
            );
        }
    }
}

/// A listening socket whose connections are counted and timed (see the module docs).
pub struct Listener {
    listener: TcpListener,
    what: &'static str,
    connections: Arc<Connections>,
    /// TLS of this port; plaintext without.
    tls: Option<TlsAcceptor>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("listener", &self.listener)
            .field("what", &self.what)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Listener {
    pub fn new(listener: TcpListener, what: &'static str, connections: Arc<Connections>) -> Self {
        Listener {
            listener,
            what,
            connections,
            tls: None,
        }
    }

    /// This listener with its connections through TLS with `acceptor` (plaintext with `None`).
    pub fn with_tls(mut self, acceptor: Option<TlsAcceptor>) -> Self {
        self.tls = acceptor;
        self
    }

    /// The next connection within the limit; those beyond it are closed as they come.
    pub async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            let (tcp, remote) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors, most likely: wait for some to be freed rather than
                    // spin on the error.
                    tracing::error!(listener = self.what, error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(permit) = self.connections.admit() else {
                self.connections.refused(self.what, remote);
                drop(tcp);
                continue;
            };
            // Small responses go out at once; failing to set it only costs latency.
            let _ = tcp.set_nodelay(true);
            let io = match &self.tls {
                Some(acceptor) => MaybeTls::accept(tcp, acceptor),
                None => MaybeTls::Plain(tcp),
            };
            let conn = Conn::new(io, remote, permit, &self.connections.limits);
            return (conn, remote);
        }
    }

    /// The accepted connections as a stream, as tonic's server takes them.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = io::Result<Conn>> + Send {
        futures_util::stream::unfold(self, |mut listener| async move {
            let (conn, _) = listener.accept().await;
            Some((Ok(conn), listener))
        })
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl axum::serve::Listener for Listener {
    type Io = Conn;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (Self::Io, Self::Addr)> + Send {
        Listener::accept(self)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// What the gate learns about a request's connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub activity: Activity,
}

impl ConnInfo {
    /// The connection info of a request: tonic puts it in the extensions as it is, axum
    /// wrapped in `ConnectInfo`.
    pub fn of(extensions: &axum::http::Extensions) -> Option<&ConnInfo> {
        extensions.get::<ConnInfo>().or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<ConnInfo>>()
                .map(|c| &c.0)
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>>
    for ConnInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        stream.io().info()
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info()
    }
}

/// Whether a connection has calls in progress, shared by the connection and its calls.
#[derive(Debug, Clone)]
pub struct Activity(Arc<ActivityState>);

#[derive(Debug)]
struct ActivityState {
    /// Calls in progress.
    active: AtomicUsize,
    /// Calls ever started.
    started: AtomicU64,
    /// When the last call ended (or the connection opened), in nanoseconds since `opened`.
    idle_since: AtomicU64,
    opened: Instant,
    /// Set by [`Activity::close`]: the connection's next read or write fails.
    closing: AtomicBool,
    /// The connection's task, woken when its last call ends (so that it sets the idle timer)
    /// or when it is to close.
    reader: AtomicWaker,
}

impl Activity {
    fn new() -> Activity {
        Activity(Arc::new(ActivityState {
            active: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            opened: Instant::now(),
            closing: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        }))
    }

    /// Closes the connection at its next read or write, whatever calls are in progress: for a
    /// response stream that cannot be ended otherwise because its client stopped reading (the
    /// server does not poll a response body for which it has no room to send).
    pub fn close(&self) {
        self.0.closing.store(true, Ordering::Release);
        self.0.reader.wake();
    }

    fn closing(&self) -> bool {
        self.0.closing.load(Ordering::Acquire)
    }

    /// Marks a call in progress until the returned guard is dropped.
    pub fn start(&self) -> ActiveCall {
        self.0.active.fetch_add(1, Ordering::AcqRel);
        self.0.started.fetch_add(1, Ordering::AcqRel);
        ActiveCall(self.clone())
    }
}

/// A call in progress on a connection (see [`Activity::start`]).
#[derive(Debug)]
pub struct ActiveCall(Activity);

impl Drop for ActiveCall {
    fn drop(&mut self) {
        let state = &self.0.0;
        if state.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            let since = u64::try_from(state.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
            state.idle_since.store(since, Ordering::Release);
            state.reader.wake();
        }
    }
}

/// The protocol of a connection, as far as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// This many bytes of the HTTP/2 preface seen so far, and nothing else.
    Unknown(usize),
    Http1,
    Http2,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An accepted connection: a TCP stream (through TLS on a TLS port) whose reads fail once a
/// timeout of the module docs passes, and which holds its place among the open connections.
#[derive(Debug)]
pub struct Conn {
    io: MaybeTls,
    remote: SocketAddr,
    activity: Activity,
    idle_timeout: Option<Duration>,
    header_read_timeout: Option<Duration>,
    protocol: Protocol,
    /// When bytes of an HTTP/1 request arrived on an idle connection, and how many calls had
    /// started then (a call started since means those headers were read).
    request_bytes: Option<(Instant, u64)>,
    timer: Pin<Box<Sleep>>,
    _permit: Permit,
}

impl Conn {
    fn new(io: MaybeTls, remote: SocketAddr, permit: Permit, limits: &ConnectionLimits) -> Conn {
        let activity = Activity::new();
        let timer = Box::pin(tokio::time::sleep_until(activity.0.opened));
        Conn {
            io,
            remote,
            activity,
            idle_timeout: limits.idle_timeout,
            header_read_timeout: limits.header_read_timeout,
            protocol: Protocol::Unknown(0),
            request_bytes: None,
            timer,
            _permit: permit,
        }
    }

    fn info(&self) -> ConnInfo {
        ConnInfo {
            remote: self.remote,
            activity: self.activity.clone(),
        }
    }

    /// When this connection is to be closed unless a call starts first, and why; None while
    /// a call is in progress.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        let state = &self.activity.0;
        if state.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let started = state.started.load(Ordering::Acquire);
        let header = self.header_read_timeout.and_then(|limit| {
            let since = match (self.protocol, self.request_bytes) {
                // The first request's headers, or the HTTP/2 preface.
                (Protocol::Unknown(_) | Protocol::Http1, _) if started == 0 => state.opened,
                (Protocol::Http1, Some((at, seen))) if seen == started => at,
                _ => return None,
            };
            Some((since + limit, "header read timeout"))
        });
        let idle = self.idle_timeout.map(|limit| {
            let nanos = state.idle_since.load(Ordering::Acquire);
            (
                state.opened + Duration::from_nanos(nanos) + limit,
                "idle timeout",
            )
        });
        match (header, idle) {
            (Some(h), Some(i)) => Some(if h.0 <= i.0 { h } else { i }),
            (h, i) => h.or(i),
        }
    }

    /// Notes the bytes just read: the protocol, and the start of an HTTP/1 request.
    fn saw(&mut self, bytes: &[u8]) {
        if let Protocol::Unknown(seen) = self.protocol {
            let wanted = &H2_PREFACE[seen..];
            let n = wanted.len().min(bytes.len());
            self.protocol = if bytes[..n] != wanted[..n] {
                Protocol::Http1
            } else if seen + n == H2_PREFACE.len() {
                Protocol::Http2
            } else {
                Protocol::Unknown(seen + n)
            };
        }
        if self.protocol == Protocol::Http1 {
            let state = &self.activity.0;
            if state.active.load(Ordering::Acquire) == 0 {
                let started = state.started.load(Ordering::Acquire);
                if self.request_bytes.is_none_or(|(_, seen)| seen != started) {
                    self.request_bytes = Some((Instant::now(), started));
                }
            }
        }
    }

    fn timed_out(&self, why: &'static str) -> io::Error {
        tracing::debug!(remote = %self.remote, reason = why, "closing a connection");
        io::Error::new(io::ErrorKind::TimedOut, why)
    }

    /// Ready with the error once `deadline` has passed; until then the timer wakes the task
    /// at it.
    fn poll_deadline(
        &mut self,
        cx: &mut Context<'_>,
        deadline: Option<(Instant, &'static str)>,
    ) -> Poll<io::Error> {
        if let Some((at, why)) = deadline {
            if self.timer.deadline() != at {
                self.timer.as_mut().reset(at);
            }
            if self.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(self.timed_out(why));
            }
        }
        Poll::Pending
    }

    /// For a write that waits on the TLS handshake: ready with the error once the deadline has
    /// passed (the server may write before it reads, as an HTTP/2 server sends its settings
    /// first, and then the read that would time the handshake out does not come).
    fn poll_handshake_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if !self.io.is_handshaking() {
            return Poll::Pending;
        }
        let deadline = self.deadline();
        self.poll_deadline(cx, deadline)
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Registered before the deadline is read, so that a call ending in between wakes us.
        this.activity.0.reader.register(cx.waker());
        if this.activity.closing() {
            return Poll::Ready(Err(this.timed_out("stalled response stream")));
        }
        let deadline = this.deadline();
        if let Some((at, why)) = deadline
            && at <= Instant::now()
        {
            return Poll::Ready(Err(this.timed_out(why)));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    this.saw(new);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_deadline(cx, deadline) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.activity.closing() {
            return Poll::Ready(Err(this.timed_out("stalled response stream")));
        }
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        if result.is_pending() {
            // Woken by `Activity::close` as well as by room in the socket.
            this.activity.0.reader.register(cx.waker());
            if this.activity.closing() {
                return Poll::Ready(Err(this.timed_out("stalled response stream")));
            }
            if let Poll::Ready(e) = this.poll_handshake_deadline(cx) {
                return Poll::Ready(Err(e));
            }
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.activity.closing() {
            return Poll::Ready(Err(this.timed_out("stalled response stream")));
        }
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if result.is_pending() {
            this.activity.0.reader.register(cx.waker());
            if this.activity.closing() {
                return Poll::Ready(Err(this.timed_out("stalled response stream")));
            }
            if let Poll::Ready(e) = this.poll_handshake_deadline(cx) {
                return Poll::Ready(Err(e));
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
