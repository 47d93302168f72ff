//! The two generic HTTP handlers every route uses, one for unary and one for server-streaming
//! methods, and how requests and responses are turned into and out of JSON.
//!
//! A handler decodes the body into the request message (unknown fields are ignored, as
//! Permify's gateway does; malformed JSON and wrong types are 400), fills the path parameters
//! into the request (they override the body), calls the service and encodes the result.
//!
//! Streams answer `200` with one JSON object per line: `{"result": <message>}` per message and
//! `{"error": {"code", "message", "details"}}` if the stream fails. A stream that fails before
//! it starts answers the error's status with that one `{"error": ...}` line, as grpc-gateway
//! does; a body that does not decode answers a plain error body like a unary call.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use crate::service::stream::ServerStream;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, RawPathParamsRejection};
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use futures_util::StreamExt;
use lookout_proto::json::{self, JsonError};
use lookout_proto::routes::Route;
use lookout_proto::v1;
use prost::{Message, Name};

use super::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::service::Service;
use crate::transport::{log_outcome, until_shutdown};

/// Request messages whose fields can be set from path parameters.
pub trait PathFields {
    /// Sets the field `name` to `value`; false if the message has no such field.
    fn set_path_field(&mut self, name: &str, value: &str) -> bool;
}

macro_rules! tenant_scoped {
    ($($message:ident),* $(,)?) => {
        $(
            impl PathFields for v1::$message {
                fn set_path_field(&mut self, name: &str, value: &str) -> bool {
                    match name {
                        "tenant_id" => {
                            value.clone_into(&mut self.tenant_id);
                            true
                        }
                        _ => false,
                    }
                }
            }
        )*
    };
}

tenant_scoped!(
    PermissionCheckRequest,
    PermissionBulkCheckRequest,
    PermissionExpandRequest,
    PermissionLookupEntityRequest,
    PermissionLookupSubjectRequest,
    PermissionSubjectPermissionRequest,
    WatchRequest,
    SchemaWriteRequest,
    SchemaPartialWriteRequest,
    SchemaReadRequest,
    SchemaListRequest,
    DataWriteRequest,
    RelationshipWriteRequest,
    RelationshipReadRequest,
    AttributeReadRequest,
    DataDeleteRequest,
    RelationshipDeleteRequest,
    BundleRunRequest,
    BundleWriteRequest,
    BundleReadRequest,
    BundleDeleteRequest,
);

impl PathFields for v1::TenantDeleteRequest {
    fn set_path_field(&mut self, name: &str, value: &str) -> bool {
        match name {
            "id" => {
                value.clone_into(&mut self.id);
                true
            }
            _ => false,
        }
    }
}

macro_rules! no_path_fields {
    ($($message:ident),* $(,)?) => {
        $(
            impl PathFields for v1::$message {
                fn set_path_field(&mut self, _name: &str, _value: &str) -> bool {
                    false
                }
            }
        )*
    };
}

no_path_fields!(TenantCreateRequest, TenantListRequest);

/// The method filter of a route's HTTP method.
pub fn method_filter(method: &str) -> Option<MethodFilter> {
    match method {
        "GET" => Some(MethodFilter::GET),
        "POST" => Some(MethodFilter::POST),
        "PUT" => Some(MethodFilter::PUT),
        "PATCH" => Some(MethodFilter::PATCH),
        "DELETE" => Some(MethodFilter::DELETE),
        _ => None,
    }
}

type PathParams = Result<RawPathParams, RawPathParamsRejection>;
type RequestBody = Result<Bytes, BytesRejection>;

/// The handler of a unary route: `call` is the service method.
pub fn unary<Req, Resp, F, Fut>(
    filter: MethodFilter,
    route: &'static Route,
    call: F,
) -> MethodRouter<AppState>
where
    Req: Message + Name + Default + PathFields + Send + 'static,
    Resp: Message + Name + 'static,
    F: Fn(Arc<Service>, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, ApiError>> + Send + 'static,
{
    let handler = move |State(state): State<AppState>, params: PathParams, body: RequestBody| {
        let call = call.clone();
        async move {
            let started = Instant::now();
            let result = match decode::<Req>(route, params, body, state.max_request_bytes) {
                Ok(request) => call(state.service.clone(), request).await,
                Err(e) => Err(e),
            };
            log_outcome("http", route.path, started.elapsed(), result.as_ref().err());
            match result.and_then(|response| encode(&response)) {
                Ok(json) => json_response(StatusCode::OK, Body::from(json)),
                Err(e) => error_response(&e),
            }
        }
    };
    on(filter, handler)
}

/// The handler of a server-streaming route: `call` is the service method.
pub fn streaming<Req, Item, F, Fut>(
    filter: MethodFilter,
    route: &'static Route,
    call: F,
) -> MethodRouter<AppState>
where
    Req: Message + Name + Default + PathFields + Send + 'static,
    Item: Message + Name + Send + 'static,
    F: Fn(Arc<Service>, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<ServerStream<Item>, ApiError>> + Send + 'static,
{
    let handler = move |State(state): State<AppState>, params: PathParams, body: RequestBody| {
        let call = call.clone();
        async move {
            let started = Instant::now();
            let request = match decode::<Req>(route, params, body, state.max_request_bytes) {
                Ok(request) => request,
                Err(e) => {
                    log_outcome("http", route.path, started.elapsed(), Some(&e));
                    return error_response(&e);
                }
            };
            let result = call(state.service.clone(), request).await;
            log_outcome("http", route.path, started.elapsed(), result.as_ref().err());
            let rx = match result {
                Ok(rx) => rx,
                Err(e) => {
                    let status = status_of(&e);
                    let code = e.grpc_code();
                    let mut line = Vec::new();
                    push_line::<Item>(&mut line, Err(e));
                    let mut response = json_response(status, Body::from(line));
                    response.extensions_mut().insert(code);
                    return response;
                }
            };
            // Messages that are ready together go out in one chunk.
            let body = until_shutdown(rx, state.shutdown.clone())
                .ready_chunks(64)
                .map(|items| {
                    let mut chunk = Vec::with_capacity(items.len() * 128);
                    for item in items {
                        push_line(&mut chunk, item);
                    }
                    Ok::<_, Infallible>(Bytes::from(chunk))
                });
            json_response(StatusCode::OK, Body::from_stream(body))
        }
    };
    on(filter, handler)
}

/// Appends one line of a stream: `{"result": ...}` or `{"error": ...}`.
fn push_line<M: Message + Name>(out: &mut Vec<u8>, item: Result<M, ApiError>) {
    let line = match item.and_then(|message| to_value(&message)) {
        Ok(value) => serde_json::json!({ "result": value }),
        Err(e) => serde_json::json!({ "error": e.json_body() }),
    };
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
}

/// Builds the request message from the body and the path parameters.
fn decode<Req: Message + Name + Default + PathFields>(
    route: &Route,
    params: PathParams,
    body: RequestBody,
    max_request_bytes: usize,
) -> Result<Req, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("request body is larger than the limit of {max_request_bytes} bytes"),
            )
        } else {
            ApiError::invalid(format!(
                "cannot read the request body: {}",
                rejection.body_text()
            ))
        }
    })?;
    let mut request = if route.body {
        json::from_json_lenient::<Req>(body).map_err(decode_error)?
    } else {
        Req::default()
    };
    let params = params.map_err(|rejection| {
        ApiError::invalid(format!("invalid path parameter: {}", rejection.body_text()))
    })?;
    for (name, value) in params.iter() {
        if !request.set_path_field(name, value) {
            return Err(ApiError::internal(format!(
                "route `{}` binds `{name}`, which {} does not have",
                route.path,
                Req::full_name()
            )));
        }
    }
    Ok(request)
}

fn decode_error(e: JsonError) -> ApiError {
    match e {
        JsonError::Syntax(_) | JsonError::Invalid { .. } | JsonError::Convert { .. } => {
            ApiError::invalid(e.to_string())
        }
        JsonError::UnknownMessage(_) | JsonError::Descriptors(_) => {
            ApiError::internal(e.to_string())
        }
    }
}

fn to_value<M: Message + Name>(message: &M) -> Result<serde_json::Value, ApiError> {
    json::to_json(message)
        .map_err(|e| ApiError::internal(format!("cannot encode the response: {e}")))
}

fn encode<M: Message + Name>(message: &M) -> Result<Vec<u8>, ApiError> {
    json::to_json_vec(message)
        .map_err(|e| ApiError::internal(format!("cannot encode the response: {e}")))
}

fn status_of(e: &ApiError) -> StatusCode {
    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A response with a JSON body.
pub fn json_response(status: StatusCode, body: Body) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Permify's error body `{"code", "message", "details"}` with the error's HTTP status.
/// The response carries the error's gRPC code as an extension, for the metrics: several codes
/// share one HTTP status.
pub fn error_response(e: &ApiError) -> Response {
    let body = serde_json::to_vec(&e.json_body()).unwrap_or_default();
    let mut response = json_response(status_of(e), Body::from(body));
    response.extensions_mut().insert(e.grpc_code());
    response
}
