//! The gate over HTTP: an axum middleware in front of every route, plus `GET /metrics`. A
//! refusal answers Permify's error body (or, on a streaming route, the one `{"error": ...}`
//! line); an answer without a gRPC code of its own is named from its HTTP status.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::Instrument;

use crate::connections::{Activity, ConnInfo};
use crate::error::{ApiError, ErrorCode};
use crate::limits::deadline_exceeded;

use super::{Gate, Guarded, Outcome, REQUEST_ID, code_name, log_rejection, request_id};

/// The gRPC code name of an HTTP answer that does not carry its code (axum's own rejections,
/// the router's 404 and 405).
pub(super) fn http_code_name(status: u16) -> &'static str {
    match status {
        200..=299 => "OK",
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 | 501 => "UNIMPLEMENTED",
        409 => "ALREADY_EXISTS",
        413 | 429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// Adds `GET /metrics` to the HTTP router and puts every route behind the gate.
pub fn http_router(router: axum::Router, gate: Arc<Gate>) -> axum::Router {
    router
        .route("/metrics", get(metrics).with_state(gate.clone()))
        .layer(axum::middleware::from_fn_with_state(gate, http_gate))
}

async fn metrics(State(gate): State<Arc<Gate>>) -> Response {
    let text = gate.metrics.render(&gate.service);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// An HTTP error answer: Permify's error body, or for a streaming route the one
/// `{"error": ...}` line a stream that fails before it starts answers (see `http::handler`).
fn http_error(e: &ApiError, request_id: &HeaderValue, streaming: bool) -> Response {
    let body = if streaming {
        let mut line =
            serde_json::to_vec(&serde_json::json!({ "error": e.json_body() })).unwrap_or_default();
        line.push(b'\n');
        line
    } else {
        serde_json::to_vec(&e.json_body()).unwrap_or_default()
    };
    let status = axum::http::StatusCode::from_u16(e.http_status())
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if e.code == ErrorCode::Unauthenticated {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
        .headers_mut()
        .insert(REQUEST_ID, request_id.clone());
    response
}

async fn http_gate(
    State(gate): State<Arc<Gate>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let request_id = request_id(request.headers());
    // The connection is busy until the response is written (a stream's: until it ends).
    let conn = ConnInfo::of(request.extensions()).map(|c| c.activity.clone());
    let active = conn.as_ref().map(Activity::start);
    let route = gate
        .http_route(
            request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str),
        )
        .cloned();
    let Some(route) = route else {
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .insert(REQUEST_ID, request_id.clone());
        return response;
    };
    let span = tracing::info_span!(
        "request",
        request_id = %String::from_utf8_lossy(request_id.as_bytes()),
        transport = "http",
        rpc = %route.rpc,
    );
    async move {
        let started = Instant::now();
        let mut outcome = Outcome::new(&gate, "http", &route, started);
        let mut finish = |code: &'static str| outcome.record(code);
        let mut admitted = match gate.admit("http", &route, request.headers()).await {
            Ok(admitted) => admitted,
            Err(e) => {
                log_rejection(&e);
                finish(code_name(e.grpc_code()));
                return http_error(&e, &request_id, route.streaming);
            }
        };
        let deadline = gate.admission.deadline(
            request
                .headers()
                .get("grpc-timeout")
                .map(HeaderValue::as_bytes),
        );
        let call = next.run(request);
        let mut response = match deadline {
            Some(d) => match tokio::time::timeout(d, call).await {
                Ok(response) => response,
                Err(_) => {
                    gate.metrics.reject("http", "deadline");
                    let e = deadline_exceeded(d);
                    log_rejection(&e);
                    finish(code_name(e.grpc_code()));
                    return http_error(&e, &request_id, route.streaming);
                }
            },
            None => call.await,
        };
        let status = response.status();
        // Lookout's own errors name their gRPC code (several share an HTTP status).
        finish(match response.extensions().get::<tonic::Code>() {
            Some(&code) => code_name(code),
            None => http_code_name(status.as_u16()),
        });
        response
            .headers_mut()
            .insert(REQUEST_ID, request_id.clone());
        match admitted.stream.take() {
            Some(permit) if status.is_success() => response.map(|inner| {
                axum::body::Body::new(Guarded::new(
                    inner,
                    Some(permit),
                    active,
                    conn,
                    gate.admission.limits().request_timeout,
                ))
            }),
            _ => response,
        }
    }
    .instrument(span)
    .await
}
