//! The gate over gRPC: a tower layer in front of every tonic service. It reads the request ID
//! and `grpc-timeout` from the metadata, answers a refusal as a gRPC status in trailers-only
//! form, and tells tonic's refusal of an oversized message apart for the metrics.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::HeaderValue;
use tracing::Instrument;

use crate::connections::{Activity, ConnInfo};
use crate::error::ApiError;
use crate::limits::deadline_exceeded;

use super::{Gate, Guarded, Outcome, REQUEST_ID, code_name, log_rejection, request_id};

/// Whether a gRPC answer is tonic's refusal of a request message over
/// `max_decoding_message_size` (tonic keeps the status of such an answer in its extensions).
fn oversized<B>(response: &axum::http::Response<B>) -> bool {
    response
        .extensions()
        .get::<tonic::Status>()
        .is_some_and(|s| s.message().contains("decoded message length too large"))
}

/// The deadline of a client's `grpc-timeout`: a tenth earlier (at most 100 ms), so that the
/// call ends with this gate's DEADLINE_EXCEEDED before the client's own timer cancels it.
fn client_deadline(timeout: std::time::Duration) -> std::time::Duration {
    let margin = (timeout / 10).min(std::time::Duration::from_millis(100));
    timeout.saturating_sub(margin)
}

/// tonic's router with the gate in front of every service.
pub type GatedRouter = tonic::transport::server::Router<
    tower::layer::util::Stack<GrpcGate, tower::layer::util::Identity>,
>;

/// The gate as a tower layer for tonic's server.
#[derive(Debug, Clone)]
pub struct GrpcGate {
    gate: Arc<Gate>,
}

impl GrpcGate {
    pub fn new(gate: Arc<Gate>) -> GrpcGate {
        GrpcGate { gate }
    }
}

impl<S> tower::Layer<S> for GrpcGate {
    type Service = GrpcGated<S>;

    fn layer(&self, inner: S) -> GrpcGated<S> {
        GrpcGated {
            gate: self.gate.clone(),
            inner,
        }
    }
}

/// A tonic service behind the gate.
#[derive(Debug, Clone)]
pub struct GrpcGated<S> {
    gate: Arc<Gate>,
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A gRPC error answer (trailers-only) with the request ID.
fn grpc_error<B: Default>(
    e: ApiError,
    request_id: &HeaderValue,
) -> axum::http::Response<Guarded<B>> {
    let mut response = tonic::Status::from(e).into_http::<Guarded<B>>();
    response
        .headers_mut()
        .insert(REQUEST_ID, request_id.clone());
    response
}

impl<S, ReqBody, ResBody> tower::Service<axum::http::Request<ReqBody>> for GrpcGated<S>
where
    S: tower::Service<axum::http::Request<ReqBody>, Response = axum::http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = axum::http::Response<Guarded<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<ReqBody>) -> Self::Future {
        // The clone is ready only if polled; the polled one goes with this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let request_id = request_id(request.headers());
        // The connection is busy until the response ends (see crate::connections).
        let conn = ConnInfo::of(request.extensions()).map(|c| c.activity.clone());
        let active = conn.as_ref().map(Activity::start);
        let Some(route) = gate.grpc_route(request.uri().path()).cloned() else {
            return Box::pin(async move {
                let mut response = inner.call(request).await?;
                response
                    .headers_mut()
                    .insert(REQUEST_ID, request_id.clone());
                Ok(response.map(|inner| Guarded::new(inner, None, active, None, None)))
            });
        };
        let span = tracing::info_span!(
            "request",
            request_id = %String::from_utf8_lossy(request_id.as_bytes()),
            transport = "grpc",
            rpc = %route.rpc,
        );
        Box::pin(
            async move {
                let started = Instant::now();
                let mut outcome = Outcome::new(&gate, "grpc", &route, started);
                let mut finish = |code: &'static str| outcome.record(code);
                let mut admitted = match gate.admit("grpc", &route, request.headers()).await {
                    Ok(admitted) => admitted,
                    Err(e) => {
                        log_rejection(&e);
                        finish(code_name(e.grpc_code()));
                        return Ok(grpc_error(e, &request_id));
                    }
                };
                let client = request
                    .headers()
                    .get("grpc-timeout")
                    .map(HeaderValue::as_bytes)
                    .and_then(crate::limits::parse_grpc_timeout)
                    .map(client_deadline);
                let deadline = match (gate.admission.limits().request_timeout, client) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let call = inner.call(request);
                let result = match deadline {
                    Some(d) => match tokio::time::timeout(d, call).await {
                        Ok(result) => result,
                        Err(_) => {
                            gate.metrics.reject("grpc", "deadline");
                            let e = deadline_exceeded(d);
                            log_rejection(&e);
                            finish(code_name(e.grpc_code()));
                            return Ok(grpc_error(e, &request_id));
                        }
                    },
                    None => call.await,
                };
                let mut response = result?;
                let mut code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32);
                if code == tonic::Code::OutOfRange && oversized(&response) {
                    // tonic refuses a request message over the limit with OUT_OF_RANGE;
                    // grpc-go (Permify's server) and Lookout's HTTP API say RESOURCE_EXHAUSTED.
                    code = tonic::Code::ResourceExhausted;
                    response
                        .headers_mut()
                        .insert("grpc-status", HeaderValue::from_static("8"));
                }
                finish(code_name(code));
                response
                    .headers_mut()
                    .insert(REQUEST_ID, request_id.clone());
                let permit = admitted.stream.take().filter(|_| code == tonic::Code::Ok);
                let stall_limit = gate.admission.limits().request_timeout;
                Ok(response.map(|inner| Guarded::new(inner, permit, active, conn, stall_limit)))
            }
            .instrument(span),
        )
    }
}
