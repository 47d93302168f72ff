//! The HTTP/JSON transport: every route of Permify's gateway
//! ([`lookout_proto::routes::ROUTES`]) as a thin adapter over [`Service`] (the table of
//! `routes`, each entry through one of the two generic handlers of `handler`), plus
//! `GET /healthz`; CORS when origins are configured (`cors.rs`).
//!
//! Errors are Permify's `{"code", "message", "details"}` with a fitting status: 400 for a body
//! that is not JSON or does not fit the request, 413 for a body over the limit, 404 for an
//! unknown route, 405 for a known path with another method.

/// `|service, request| service.NAME(request)` as the closure the generic handlers take.
macro_rules! call {
    ($method:ident) => {
        |service: ::std::sync::Arc<$crate::service::Service>, request| async move {
            service.$method(request).await
        }
    };
}
mod cors;
mod handler;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use lookout_proto::routes::{ROUTES, Route};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ErrorCode};
use crate::service::Service;

pub use cors::{CorsSettings, DEFAULT_ALLOWED_HEADERS, PREFLIGHT_MAX_AGE, with_cors};
pub use handler::PathFields;
use handler::{error_response, json_response, method_filter};

/// What every handler reads.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    /// Cancelled when the server shuts down: open streams end, `/healthz` answers 503.
    pub shutdown: CancellationToken,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// Whether the Watch route is served.
    pub watch: bool,
}

/// The handler of one route of the table, if there is one.
fn route_handler(route: &'static Route, watch: bool) -> Option<MethodRouter<AppState>> {
    routes::handler(route, method_filter(route.method)?, watch)
}

/// A route of the table without a handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no HTTP handler for {method} {path} ({grpc_path})")]
pub struct MissingHandler {
    pub method: String,
    pub path: String,
    pub grpc_path: String,
}

/// The router with every route of the table; an error names a route without a handler.
pub fn router(state: AppState) -> Result<Router, MissingHandler> {
    let mut router = Router::new().route("/healthz", get(healthz));
    for route in ROUTES {
        let handler = route_handler(route, state.watch).ok_or_else(|| MissingHandler {
            method: route.method.to_string(),
            path: route.path.to_string(),
            grpc_path: route.grpc_path().to_string(),
        })?;
        router = router.route(route.path, handler);
    }
    let limit = state.max_request_bytes;
    Ok(router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let (status, body) = if state.shutdown.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"NOT_SERVING"}"#,
        )
    } else {
        (StatusCode::OK, r#"{"status":"SERVING"}"#)
    };
    json_response(status, Body::from(body))
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error_response(&ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {method} {}", uri.path()),
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    // grpc-gateway answers 405 with code UNIMPLEMENTED (12); ApiError has no such code.
    let body = serde_json::json!({
        "code": tonic::Code::Unimplemented as i32,
        "message": format!("method {method} is not allowed for {}", uri.path()),
        "details": [crate::error::error_info_json(crate::error::Reason::NotImplemented)],
    });
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        Body::from(serde_json::to_vec(&body).unwrap_or_default()),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use crate::service::Limits;
    use crate::tenants::Retention;

    #[test]
    fn every_route_has_a_handler_and_the_router_builds() {
        for watch in [true, false] {
            for route in ROUTES {
                assert!(
                    route_handler(route, watch).is_some(),
                    "{} {}",
                    route.method,
                    route.path
                );
            }
            let state = AppState {
                service: Service::new(Limits::default(), Retention::default()),
                shutdown: CancellationToken::new(),
                max_request_bytes: 1024,
                watch,
            };
            let _router = router(state).unwrap();
        }
    }
}
