//! What every call passes on its way to a handler, over both transports: a request ID,
//! authentication, load shedding, the stream limit, the deadline, and metrics.
//!
//! In order, for each call:
//! 1. **Request ID**: the client's `x-request-id` if it sent a sane one (1 to 128 characters of
//!    letters, digits and `-_.:`), else a new one. Every log line of the call carries it (a
//!    `request` span with `request_id`, `transport` and `rpc`), and the response echoes it in
//!    `x-request-id` (an HTTP header; gRPC response metadata).
//! 2. **Open calls** — gRPC health and reflection, `GET /healthz` and `GET /metrics` — go
//!    straight through: no credential, no limits, not counted.
//! 3. **Authentication** (see [`crate::auth`]): UNAUTHENTICATED / 401 without a valid
//!    credential.
//! 4. **Limits** (see [`crate::limits`]): RESOURCE_EXHAUSTED / 429 when `--max-inflight` calls
//!    are in flight, or for a stream when `--max-concurrent-streams` are open.
//! 5. **Deadline**: the handler is dropped — and its evaluation cancelled — when the deadline
//!    passes; the answer is DEADLINE_EXCEEDED / 504.
//! 6. **Metrics**: the outcome and latency (see [`crate::metrics`]).
//! 7. **Streams that are not read**: a response stream whose client has not come back for
//!    its next message within `--request-timeout` gives back its place and has its connection
//!    closed (see `StallWatch`).
//!
//! Every call also marks its connection busy while it is handled (a stream: until it ends),
//! which keeps the connection from its idle timeout (see [`crate::connections`]).
//!
//! The gRPC side is a tower layer on tonic's server ([`GrpcGate`], `grpc.rs`), the HTTP side
//! an axum middleware ([`http_router`], `http.rs`); both share [`Gate`] and the steps above,
//! which this module holds.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use axum::http::{HeaderMap, HeaderValue, header};
use lookout_proto::routes::ROUTES;
use prometheus::IntGauge;

use crate::auth::Authenticator;
use crate::connections::{ActiveCall, Activity};
use crate::error::{ApiError, ErrorCode};
use crate::limits::{Admission, Permit};
use crate::metrics::{Metrics, Series};
use crate::service::Service;
use crate::sync;

mod grpc;
mod http;

pub use grpc::{GatedRouter, GrpcGate, GrpcGated};
pub use http::http_router;

/// The response header (and gRPC metadata key) of the request ID.
pub const REQUEST_ID: &str = "x-request-id";

/// What a call is, for the gate.
#[derive(Debug)]
struct RouteInfo {
    /// `Service/Method`, the `rpc` label of metrics and logs.
    rpc: Arc<str>,
    streaming: bool,
    /// The metrics of its successful calls, resolved at the first one (most calls succeed,
    /// and resolving labels per call is a hash and a lock).
    ok: OnceLock<Series>,
}

impl RouteInfo {
    fn new(rpc: &str, streaming: bool) -> Arc<RouteInfo> {
        Arc::new(RouteInfo {
            rpc: Arc::from(rpc),
            streaming,
            ok: OnceLock::new(),
        })
    }
}

/// The state both transports' gates share.
#[derive(Debug)]
pub struct Gate {
    pub auth: Authenticator,
    pub admission: Admission,
    pub metrics: Metrics,
    service: Arc<Service>,
    /// By gRPC path (`/base.v1.Permission/Check`).
    grpc_routes: HashMap<String, Arc<RouteInfo>>,
    /// By HTTP path template (`/v1/tenants/{tenant_id}/permissions/check`).
    http_routes: HashMap<&'static str, Arc<RouteInfo>>,
    unknown_grpc: Arc<RouteInfo>,
    unknown_http: Arc<RouteInfo>,
}

impl Gate {
    pub fn new(
        auth: Authenticator,
        admission: Admission,
        metrics: Metrics,
        service: Arc<Service>,
    ) -> Arc<Gate> {
        let mut grpc_routes = HashMap::new();
        let mut http_routes = HashMap::new();
        for route in ROUTES {
            let rpc = format!("{}/{}", route.service, route.rpc);
            grpc_routes.insert(
                route.grpc_path(),
                RouteInfo::new(&rpc, route.server_streaming),
            );
            http_routes.insert(route.path, RouteInfo::new(&rpc, route.server_streaming));
        }
        Arc::new(Gate {
            auth,
            admission,
            metrics,
            service,
            grpc_routes,
            http_routes,
            unknown_grpc: RouteInfo::new("unknown", false),
            unknown_http: RouteInfo::new("unknown", false),
        })
    }

    fn grpc_route(&self, path: &str) -> Option<&Arc<RouteInfo>> {
        if path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.") {
            return None;
        }
        Some(self.grpc_routes.get(path).unwrap_or(&self.unknown_grpc))
    }

    fn http_route(&self, template: Option<&str>) -> Option<&Arc<RouteInfo>> {
        match template {
            Some("/healthz" | "/metrics") => None,
            Some(t) => Some(self.http_routes.get(t).unwrap_or(&self.unknown_http)),
            None => Some(&self.unknown_http),
        }
    }

    /// Authentication and limits: the permits the call holds, or why it is refused.
    async fn admit(
        &self,
        transport: &'static str,
        route: &RouteInfo,
        headers: &HeaderMap,
    ) -> Result<Admitted, ApiError> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if let Err(e) = self.auth.authenticate(authorization).await {
            let reason = if e.code == ErrorCode::Unauthenticated {
                "unauthenticated"
            } else {
                "authentication-unavailable"
            };
            self.metrics.reject(transport, reason);
            return Err(e);
        }
        let call = self.admission.call().inspect_err(|_| {
            self.metrics.reject(transport, "overloaded");
        })?;
        let stream = if route.streaming {
            let permit = self.admission.stream().inspect_err(|_| {
                self.metrics.reject(transport, "streams");
            })?;
            let gauge = self
                .metrics
                .open_streams
                .with_label_values(&[transport, &route.rpc]);
            gauge.inc();
            Some(StreamPermit {
                _permit: permit,
                gauge,
            })
        } else {
            None
        };
        self.metrics.in_flight.inc();
        Ok(Admitted {
            _call: call,
            in_flight: self.metrics.in_flight.clone(),
            stream,
        })
    }
}

/// The permits of an admitted call.
struct Admitted {
    _call: Permit,
    in_flight: IntGauge,
    stream: Option<StreamPermit>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// A place among the open streams, held by the response body until the stream ends.
struct StreamPermit {
    _permit: Permit,
    gauge: IntGauge,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A response body that holds the stream's permit, and marks its connection busy (see
/// [`crate::connections`]), while it is being sent; a stream's body is watched for a client
/// that stopped reading (see `StallWatch`).
pub struct Guarded<B> {
    inner: B,
    _permit: Option<StreamPermit>,
    _active: Option<ActiveCall>,
    watch: Option<Arc<StallWatch>>,
}

impl<B> Guarded<B> {
    /// `inner` holding `active`, and for a stream its `permit`, watched for stalls of
    /// `stall_limit` if given.
    fn new(
        inner: B,
        permit: Option<StreamPermit>,
        active: Option<ActiveCall>,
        conn: Option<Activity>,
        stall_limit: Option<Duration>,
    ) -> Guarded<B> {
        match (permit, stall_limit) {
            (Some(permit), Some(limit)) => Guarded {
                inner,
                _permit: None,
                _active: None,
                watch: Some(StallWatch::start(permit, active, conn, limit)),
            },
            (permit, _) => Guarded {
                inner,
                _permit: permit,
                _active: active,
                watch: None,
            },
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let result = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(watch) = &self.watch {
            match &result {
                Poll::Ready(Some(Ok(_))) => watch.owed(),
                _ => watch.settled(),
            }
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Guarded<B> {
    fn drop(&mut self) {
        if let Some(watch) = &self.watch {
            watch.release();
        }
    }
}

impl<B: Default> Default for Guarded<B> {
    fn default() -> Self {
        Guarded {
            inner: B::default(),
            _permit: None,
            _active: None,
            watch: None,
        }
    }
}

/// Watches a response stream for a client that stopped reading.
///
/// The transport polls a response body for its next frame only when it has room to send it,
/// so a stream whose client does not read is never polled again: it would hold its place
/// among the open streams, its producer and the messages buffered for it for as long as the
/// connection lives. The stream is stalled when the transport has not come back for the next
/// frame within `--request-timeout` of taking the last one (a stream waiting for messages of
/// its own, as an idle Watch does, is not stalled). Then its place is given back, and its
/// connection is closed (see [`Activity::close`]), which drops the body, the buffered messages
/// and the producer; the connection's other calls fail with UNAVAILABLE.
struct StallWatch {
    /// When the body handed the transport a frame it has not come back after, in nanoseconds
    /// since `epoch` plus one; 0 while the body waits for its own messages.
    owed_since: AtomicU64,
    epoch: Instant,
    held: Mutex<Option<(StreamPermit, Option<ActiveCall>)>>,
    conn: Option<Activity>,
    done: CancellationToken,
}

impl StallWatch {
    fn start(
        permit: StreamPermit,
        active: Option<ActiveCall>,
        conn: Option<Activity>,
        limit: Duration,
    ) -> Arc<StallWatch> {
        let watch = Arc::new(StallWatch {
            owed_since: AtomicU64::new(0),
            epoch: Instant::now(),
            held: Mutex::new(Some((permit, active))),
            conn,
            done: CancellationToken::new(),
        });
        tokio::spawn(watch.clone().run(limit));
        watch
    }

    fn owed(&self) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.owed_since.store(nanos + 1, Ordering::Release);
    }

    fn settled(&self) {
        self.owed_since.store(0, Ordering::Release);
    }

    /// The stream ended: give back its place and stop watching.
    fn release(&self) {
        self.done.cancel();
        drop(self.take());
    }

    fn take(&self) -> Option<(StreamPermit, Option<ActiveCall>)> {
        sync::lock(&self.held).take()
    }

    async fn run(self: Arc<Self>, limit: Duration) {
        loop {
            let owed = self.owed_since.load(Ordering::Acquire);
            let wait = if owed == 0 {
                // Checked a few times per limit, so that a stall is seen within 1.25 limits.
                limit / 4
            } else {
                let due = self.epoch + Duration::from_nanos(owed - 1) + limit;
                let wait = due.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    tracing::warn!(
                        limit = ?limit,
                        "a response stream's client stopped reading (--request-timeout): \
                         closing its connection"
                    );
                    drop(self.take());
                    if let Some(conn) = &self.conn {
                        conn.close();
                    }
                    return;
                }
                wait
            };
            tokio::select! {
                () = self.done.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The request ID of a call: the client's, if sane, or a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(value) = headers.get(REQUEST_ID) {
        let bytes = value.as_bytes();
        let sane = !bytes.is_empty()
            && bytes.len() <= 128
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
        if sane {
            return value.clone();
        }
    }
    new_request_id()
}

/// 32 hex digits: a random number per process and a counter.
fn new_request_id() -> HeaderValue {
    use std::hash::{BuildHasher, RandomState};
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Written by hand into one buffer: this runs on every call.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for (i, slot) in id.iter_mut().enumerate() {
        let (word, shift) = if i < 16 {
            (seed, 60 - 4 * i)
        } else {
            (n, 60 - 4 * (i - 16))
        };
        *slot = HEX[((word >> shift) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("0"))
}

/// The name of a gRPC code, as metrics label it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Records a call's outcome once: with the code given, or as CANCELLED if the call is dropped
/// first (the client went away).
struct Outcome<'a> {
    gate: &'a Gate,
    transport: &'static str,
    route: &'a RouteInfo,
    started: Instant,
    recorded: bool,
}

impl<'a> Outcome<'a> {
    fn new(
        gate: &'a Gate,
        transport: &'static str,
        route: &'a RouteInfo,
        started: Instant,
    ) -> Self {
        Outcome {
            gate,
            transport,
            route,
            started,
            recorded: false,
        }
    }

    fn record(&mut self, code: &'static str) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let elapsed = self.started.elapsed();
        let metrics = &self.gate.metrics;
        if code == "OK" {
            self.route
                .ok
                .get_or_init(|| metrics.series(self.transport, &self.route.rpc, code))
                .observe(elapsed);
        } else {
            metrics.observe(self.transport, &self.route.rpc, code, elapsed);
        }
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            tracing::debug!("the client went away before the answer");
            self.record("CANCELLED");
        }
    }
}

fn log_rejection(e: &ApiError) {
    tracing::debug!(code = ?e.code, error = %e.message, "refused at the gate");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::http::http_code_name;
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_made_otherwise() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123_x.y:z"));
        assert_eq!(request_id(&headers), "abc-123_x.y:z");
        headers.insert(REQUEST_ID, HeaderValue::from_static("bad id with spaces"));
        let made = request_id(&headers);
        assert_eq!(made.len(), 32);
        let next = request_id(&HeaderMap::new());
        assert_ne!(made, next);
        // 32 lowercase hex digits: the process's seed, then a counter.
        let text = |v: &HeaderValue| v.to_str().unwrap().to_owned();
        let (made, next) = (text(&made), text(&next));
        assert!(
            made.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{made}"
        );
        assert_eq!(made[..16], next[..16]);
        let counter = |s: &str| u64::from_str_radix(&s[16..], 16).unwrap();
        assert!(counter(&next) > counter(&made), "{made} {next}");
    }

    #[test]
    fn codes_have_their_names() {
        assert_eq!(code_name(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
        assert_eq!(http_code_name(401), "UNAUTHENTICATED");
        assert_eq!(http_code_name(429), "RESOURCE_EXHAUSTED");
        assert_eq!(http_code_name(504), "DEADLINE_EXCEEDED");
        assert_eq!(http_code_name(200), "OK");
    }
}
