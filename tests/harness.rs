//! The harness: an in-process server on free loopback ports, and one client per transport
//! behind a common [`Client`], so that a test is written once and runs over gRPC and HTTP.
//!
//! Requests and responses are the protobuf messages of `base.v1`. The gRPC client sends them as
//! they are; the HTTP client writes their JSON by hand, in the shape Permify's gateway and its
//! users send (snake_case fields, attribute values as `{"@type": ..., "data": ...}`, context
//! data as a plain object), and reads the answers back the same way. It does not use the
//! server's own JSON codec, so a bug there cannot cancel itself out.
//!
//! Every failure, over either transport, is a [`Failure`]: the gRPC code (for HTTP, the `code`
//! of Permify's error body), the HTTP status, and the message.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lookout_proto::v1;
use lookout_proto::v1::data_client::DataClient;
use lookout_proto::v1::permission_client::PermissionClient;
use lookout_proto::v1::schema_client::SchemaClient;
use lookout_proto::v1::tenancy_client::TenancyClient;
use lookout_server::auth::AuthnMethod;
use lookout_server::config::Config;
use lookout_server::error::{self, ErrorInfo};
use lookout_server::serve::{self, Handle, ServeError};
use prost::{Message, Name};
use serde_json::{Map, Value, json};
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// How long any one call may take before the test fails instead of hanging.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The config of a test server: loopback, free ports, memory store.
pub fn config() -> Config {
    Config {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST).into(),
        grpc_port: 0,
        http_port: 0,
        shutdown_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

/// The preshared key of servers started in [`Mode::Authenticated`].
pub const TEST_KEY: &str = "e2e-test-key";

/// Whether a test server requires a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open,
    /// Preshared-key authentication with [`TEST_KEY`]; the harness's clients send it.
    Authenticated,
}

/// The test config in `mode`.
pub fn config_in(mode: Mode) -> Config {
    let mut config = config();
    if mode == Mode::Authenticated {
        config.authn.method = AuthnMethod::Preshared;
        config.authn.preshared_keys = vec![TEST_KEY.to_owned()];
    }
    config
}

/// A running test server and the credential its clients send (the first preshared key of
/// its config, if it authenticates with preshared keys).
#[derive(Debug)]
pub struct Server {
    handle: Handle,
    pub credential: Option<String>,
}

impl Deref for Server {
    type Target = Handle;

    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Server {
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.handle.shutdown().await
    }
}

/// Starts a server with `config`.
pub async fn start_with(config: Config) -> Server {
    let credential = match config.authn.method {
        AuthnMethod::Preshared => config.authn.preshared_keys.first().cloned(),
        _ => None,
    };
    let handle = serve::start(config).await.expect("the server starts");
    Server { handle, credential }
}

/// Starts a server with the test config.
pub async fn start() -> Server {
    start_with(config()).await
}

/// The two transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Grpc, Transport::Http];
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Grpc => "gRPC",
            Transport::Http => "HTTP",
        })
    }
}

/// A rejected call.
#[derive(Debug, Clone)]
pub struct Failure {
    pub transport: Transport,
    /// The gRPC status code; over HTTP, the `code` of the error body.
    pub code: Code,
    /// The HTTP status (None over gRPC).
    pub http_status: Option<u16>,
    pub message: String,
    /// The `reason` of the `google.rpc.ErrorInfo` detail: Permify's `ERROR_CODE_*` name.
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.transport, self.code)?;
        if let Some(status) = self.http_status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The HTTP status Lookout answers for a gRPC code (see server/src/error.rs).
pub fn http_status_of(code: Code) -> u16 {
    match code {
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => 400,
        Code::NotFound => 404,
        Code::AlreadyExists => 409,
        Code::Unauthenticated => 401,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        _ => 500,
    }
}

impl Failure {
    /// Asserts the code (and over HTTP the matching status) and that the message mentions
    /// every one of `mentions`.
    #[track_caller]
    pub fn assert(&self, code: Code, mentions: &[&str]) {
        assert_eq!(self.code, code, "{self}");
        if self.transport == Transport::Http {
            assert_eq!(self.http_status, Some(http_status_of(code)), "{self}");
        }
        for m in mentions {
            assert!(
                self.message.contains(m),
                "the message should mention `{m}`: {self}"
            );
        }
    }
}

/// A client of one server over one transport.
#[derive(Clone)]
pub enum Client {
    Grpc(GrpcChannel),
    Http(Box<Http>),
}

/// Sends `authorization: Bearer CREDENTIAL` with every gRPC call, when there is one.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn new(credential: Option<&str>) -> Bearer {
        Bearer(credential.map(|c| {
            format!("Bearer {c}")
                .parse()
                .expect("a credential fits in metadata")
        }))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A gRPC channel that sends a credential.
pub type GrpcChannel = InterceptedService<Channel, Bearer>;

impl Client {
    pub async fn connect(transport: Transport, server: &Server) -> Client {
        Client::connect_as(transport, server, server.credential.as_deref()).await
    }

    /// A client that sends `credential` (or none).
    pub async fn connect_as(
        transport: Transport,
        server: &Handle,
        credential: Option<&str>,
    ) -> Client {
        match transport {
            Transport::Grpc => Client::Grpc(InterceptedService::new(
                channel(server.grpc_addr).await,
                Bearer::new(credential),
            )),
            Transport::Http => Client::Http(Box::new(Http::with_credential(
                server.http_addr,
                credential,
            ))),
        }
    }

    pub fn transport(&self) -> Transport {
        match self {
            Client::Grpc(_) => Transport::Grpc,
            Client::Http(_) => Transport::Http,
        }
    }

    pub async fn create_tenant(
        &self,
        req: v1::TenantCreateRequest,
    ) -> Result<v1::TenantCreateResponse, Failure> {
        match self {
            Client::Grpc(ch) => grpc(TenancyClient::new(ch.clone()).create(req)).await,
            Client::Http(http) => {
                let body = json!({ "id": req.id, "name": req.name });
                let value = http.unary("/v1/tenants/create", &body).await?;
                Ok(v1::TenantCreateResponse {
                    tenant: Some(v1::Tenant {
                        id: string(&value["tenant"]["id"]),
                        name: string(&value["tenant"]["name"]),
                        created_at: None,
                    }),
                })
            }
        }
    }

    pub async fn write_schema(
        &self,
        req: v1::SchemaWriteRequest,
    ) -> Result<v1::SchemaWriteResponse, Failure> {
        match self {
            Client::Grpc(ch) => grpc(SchemaClient::new(ch.clone()).write(req)).await,
            Client::Http(http) => {
                let path = format!("/v1/tenants/{}/schemas/write", req.tenant_id);
                let value = http.unary(&path, &json!({ "schema": req.schema })).await?;
                Ok(v1::SchemaWriteResponse {
                    schema_version: string(&value["schema_version"]),
                })
            }
        }
    }

    pub async fn write_data(
        &self,
        req: v1::DataWriteRequest,
    ) -> Result<v1::DataWriteResponse, Failure> {
        match self {
            Client::Grpc(ch) => grpc(DataClient::new(ch.clone()).write(req)).await,
            Client::Http(http) => {
                let path = format!("/v1/tenants/{}/data/write", req.tenant_id);
                let meta = req.metadata.unwrap_or_default();
                let body = json!({
                    "metadata": { "schema_version": meta.schema_version },
                    "tuples": req.tuples.iter().map(tuple_json).collect::<Vec<_>>(),
                    "attributes": req.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
                });
                let value = http.unary(&path, &body).await?;
                Ok(v1::DataWriteResponse {
                    snap_token: string(&value["snap_token"]),
                })
            }
        }
    }

    pub async fn read_relationships(
        &self,
        req: v1::RelationshipReadRequest,
    ) -> Result<v1::RelationshipReadResponse, Failure> {
        match self {
            Client::Grpc(ch) => grpc(DataClient::new(ch.clone()).read_relationships(req)).await,
            Client::Http(http) => {
                let path = format!("/v1/tenants/{}/data/relationships/read", req.tenant_id);
                let mut body = json!({
                    "metadata": {
                        "snap_token": req.metadata.unwrap_or_default().snap_token,
                    },
                    "page_size": req.page_size,
                    "continuous_token": req.continuous_token,
                });
                if let Some(filter) = &req.filter {
                    let mut f = Map::new();
                    if let Some(e) = &filter.entity {
                        f.insert("entity".into(), json!({ "type": e.r#type, "ids": e.ids }));
                    }
                    f.insert("relation".into(), json!(filter.relation));
                    if let Some(s) = &filter.subject {
                        f.insert(
                            "subject".into(),
                            json!({ "type": s.r#type, "ids": s.ids, "relation": s.relation }),
                        );
                    }
                    body["filter"] = Value::Object(f);
                }
                let value = http.unary(&path, &body).await?;
                Ok(v1::RelationshipReadResponse {
                    tuples: array(&value["tuples"])
                        .iter()
                        .map(tuple_from_json)
                        .collect(),
                    continuous_token: string(&value["continuous_token"]),
                })
            }
        }
    }

    pub async fn check(
        &self,
        req: v1::PermissionCheckRequest,
    ) -> Result<v1::PermissionCheckResponse, Failure> {
        match self {
            Client::Grpc(ch) => grpc(PermissionClient::new(ch.clone()).check(req)).await,
            Client::Http(http) => {
                let path = format!("/v1/tenants/{}/permissions/check", req.tenant_id);
                let meta = req.metadata.clone().unwrap_or_default();
                let mut body = json!({
                    "metadata": {
                        "schema_version": meta.schema_version,
                        "snap_token": meta.snap_token,
                        "depth": meta.depth,
                    },
                    "permission": req.permission,
                });
                put(&mut body, "entity", req.entity.as_ref().map(entity_json));
                put(&mut body, "subject", req.subject.as_ref().map(subject_json));
                put(&mut body, "context", req.context.as_ref().map(context_json));
                let value = http.unary(&path, &body).await?;
                let can = value["can"].as_str().unwrap_or_default();
                let can = v1::CheckResult::from_str_name(can)
                    .unwrap_or_else(|| panic!("`can` is not a check result: {value}"));
                Ok(v1::PermissionCheckResponse {
                    can: can as i32,
                    metadata: None,
                })
            }
        }
    }

    pub async fn lookup_entity(
        &self,
        req: v1::PermissionLookupEntityRequest,
    ) -> Result<v1::PermissionLookupEntityResponse, Failure> {
        match self {
            Client::Grpc(ch) => grpc(PermissionClient::new(ch.clone()).lookup_entity(req)).await,
            Client::Http(http) => {
                let path = format!("/v1/tenants/{}/permissions/lookup-entity", req.tenant_id);
                let value = http.unary(&path, &lookup_entity_json(&req)).await?;
                Ok(v1::PermissionLookupEntityResponse {
                    entity_ids: strings(&value["entity_ids"]),
                    continuous_token: string(&value["continuous_token"]),
                })
            }
        }
    }

    /// Every message of a LookupEntityStream, or the error it ended with.
    pub async fn lookup_entity_stream(
        &self,
        req: v1::PermissionLookupEntityRequest,
    ) -> Result<Vec<v1::PermissionLookupEntityStreamResponse>, Failure> {
        match self {
            Client::Grpc(ch) => {
                let mut client = PermissionClient::new(ch.clone());
                let mut stream = grpc(client.lookup_entity_stream(req)).await?;
                let mut out = Vec::new();
                loop {
                    let next = tokio::time::timeout(CALL_TIMEOUT, stream.message())
                        .await
                        .expect("the stream makes progress");
                    match next {
                        Ok(Some(message)) => out.push(message),
                        Ok(None) => return Ok(out),
                        Err(status) => return Err(grpc_failure(&status)),
                    }
                }
            }
            Client::Http(http) => {
                let path = format!(
                    "/v1/tenants/{}/permissions/lookup-entity-stream",
                    req.tenant_id
                );
                let lines = http.stream(&path, &lookup_entity_json(&req)).await?;
                Ok(lines
                    .iter()
                    .map(|line| v1::PermissionLookupEntityStreamResponse {
                        entity_id: string(&line["entity_id"]),
                        continuous_token: string(&line["continuous_token"]),
                    })
                    .collect())
            }
        }
    }

    pub async fn lookup_subject(
        &self,
        req: v1::PermissionLookupSubjectRequest,
    ) -> Result<v1::PermissionLookupSubjectResponse, Failure> {
        match self {
            Client::Grpc(ch) => grpc(PermissionClient::new(ch.clone()).lookup_subject(req)).await,
            Client::Http(http) => {
                let path = format!("/v1/tenants/{}/permissions/lookup-subject", req.tenant_id);
                let meta = req.metadata.clone().unwrap_or_default();
                let mut body = json!({
                    "metadata": {
                        "schema_version": meta.schema_version,
                        "snap_token": meta.snap_token,
                        "depth": meta.depth,
                    },
                    "permission": req.permission,
                    "page_size": req.page_size,
                    "continuous_token": req.continuous_token,
                });
                put(&mut body, "entity", req.entity.as_ref().map(entity_json));
                put(
                    &mut body,
                    "subject_reference",
                    req.subject_reference
                        .as_ref()
                        .map(|r| json!({ "type": r.r#type, "relation": r.relation })),
                );
                put(&mut body, "context", req.context.as_ref().map(context_json));
                let value = http.unary(&path, &body).await?;
                Ok(v1::PermissionLookupSubjectResponse {
                    subject_ids: strings(&value["subject_ids"]),
                    continuous_token: string(&value["continuous_token"]),
                })
            }
        }
    }
}

/// A gRPC channel to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .expect("gRPC connects")
}

async fn grpc<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(grpc_failure(&status)),
        Err(_) => panic!("a gRPC call took longer than {CALL_TIMEOUT:?}"),
    }
}

/// A gRPC status as a failure. `reason` is empty when the status has no ErrorInfo, as a status
/// made by the client itself (a deadline, a broken connection) has none.
pub fn grpc_failure(status: &tonic::Status) -> Failure {
    let info = ErrorInfo::from_status_details(status.details()).unwrap_or_default();
    if !info.reason.is_empty() {
        assert_eq!(info.domain, error::DOMAIN, "{status:?}");
    }
    Failure {
        transport: Transport::Grpc,
        code: status.code(),
        http_status: None,
        message: status.message().to_owned(),
        reason: info.reason,
    }
}

/// A small HTTP/1.1 client.
#[derive(Clone)]
pub struct Http {
    client: HyperClient<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    /// Sent as `authorization: Bearer CREDENTIAL` when set.
    credential: Option<String>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http::with_credential(addr, None)
    }

    pub fn with_credential(addr: SocketAddr, credential: Option<&str>) -> Http {
        Http {
            client: HyperClient::builder(TokioExecutor::new()).build_http(),
            addr,
            credential: credential.map(str::to_owned),
        }
    }

    /// Sends a request; the body is left unread.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Response<Incoming> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        if let Some(credential) = &self.credential {
            request = request.header("authorization", format!("Bearer {credential}"));
        }
        let request = request
            .body(Full::new(body.into()))
            .expect("a valid request");
        tokio::time::timeout(CALL_TIMEOUT, self.client.request(request))
            .await
            .unwrap_or_else(|_| panic!("{method} {path} took longer than {CALL_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Sends a request and reads the whole answer as text.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
    ) -> (StatusCode, String) {
        let response = self.send(method, path, body).await;
        let status = response.status();
        let bytes = tokio::time::timeout(CALL_TIMEOUT, response.into_body().collect())
            .await
            .expect("the body arrives")
            .expect("the body reads")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// POSTs JSON and returns the status and the JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let (status, text) = self.raw("POST", path, body.to_string()).await;
        let value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("POST {path}: {status}: the answer is not JSON ({e}): {text}")
        });
        (status, value)
    }

    /// POSTs JSON: the answer of a 200, or the failure Permify's error body describes.
    pub async fn unary(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let (status, value) = self.post(path, body).await;
        if status == StatusCode::OK {
            Ok(value)
        } else {
            Err(http_failure(status.as_u16(), &value))
        }
    }

    /// POSTs to a streaming route: the `result` of every line, or the failure of the
    /// `error` line that ended the stream.
    pub async fn stream(&self, path: &str, body: &Value) -> Result<Vec<Value>, Failure> {
        let response = self.send("POST", path, body.to_string()).await;
        let status = response.status().as_u16();
        let mut lines = Lines::new(response);
        let mut out = Vec::new();
        while let Some(line) = lines.next().await {
            let object = line.as_object().map(|o| o.len());
            assert_eq!(object, Some(1), "a stream line has one key: {line}");
            if let Some(error) = line.get("error") {
                assert!(
                    lines.next().await.is_none(),
                    "nothing follows an error line"
                );
                return Err(http_failure(status, error));
            }
            assert_eq!(status, 200, "{line}");
            out.push(line["result"].clone());
        }
        assert_eq!(status, 200, "a failed stream has an error line");
        Ok(out)
    }
}

/// Permify's error body `{"code", "message", "details"}` as a failure.
pub fn http_failure(status: u16, body: &Value) -> Failure {
    let code = body["code"]
        .as_i64()
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or_else(|| panic!("HTTP {status}: the error body has no numeric `code`: {body}"));
    let details = body["details"].as_array().map(Vec::as_slice);
    let [info] = details.unwrap_or_default() else {
        panic!("HTTP {status}: `details` holds one google.rpc.ErrorInfo: {body}");
    };
    assert_eq!(info["@type"], json!(error::ERROR_INFO_TYPE_URL), "{body}");
    assert_eq!(info["domain"], json!(error::DOMAIN), "{body}");
    assert!(info["metadata"].is_object(), "{body}");
    let reason = info["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.starts_with("ERROR_CODE_"), "HTTP {status}: {body}");
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        !message.is_empty(),
        "HTTP {status}: an error names the problem: {body}"
    );
    Failure {
        transport: Transport::Http,
        code: Code::from_i32(code),
        http_status: Some(status),
        message,
        reason,
    }
}

pub use crate::lines::Lines;

// ---------------------------------------------------------------------------------------------
// JSON by hand
// ---------------------------------------------------------------------------------------------

fn put(body: &mut Value, key: &str, value: Option<Value>) {
    if let (Some(value), Value::Object(object)) = (value, body) {
        object.insert(key.to_owned(), value);
    }
}

fn string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn array(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    array(v).iter().map(string).collect()
}

pub fn entity_json(e: &v1::Entity) -> Value {
    json!({ "type": e.r#type, "id": e.id })
}

pub fn subject_json(s: &v1::Subject) -> Value {
    json!({ "type": s.r#type, "id": s.id, "relation": s.relation })
}

pub fn tuple_json(t: &v1::Tuple) -> Value {
    let mut out = json!({ "relation": t.relation });
    put(&mut out, "entity", t.entity.as_ref().map(entity_json));
    put(&mut out, "subject", t.subject.as_ref().map(subject_json));
    out
}

fn tuple_from_json(v: &Value) -> v1::Tuple {
    v1::Tuple {
        entity: Some(v1::Entity {
            r#type: string(&v["entity"]["type"]),
            id: string(&v["entity"]["id"]),
        }),
        relation: string(&v["relation"]),
        subject: Some(v1::Subject {
            r#type: string(&v["subject"]["type"]),
            id: string(&v["subject"]["id"]),
            relation: string(&v["subject"]["relation"]),
        }),
    }
}

pub fn attribute_json(a: &v1::Attribute) -> Value {
    let mut out = json!({ "attribute": a.attribute });
    put(&mut out, "entity", a.entity.as_ref().map(entity_json));
    put(&mut out, "value", a.value.as_ref().map(any_json));
    out
}

/// An attribute value as protobuf JSON: `{"@type": URL, "data": ...}`.
pub fn any_json(any: &prost_types::Any) -> Value {
    fn data<M: Message + Default>(any: &prost_types::Any) -> M {
        M::decode(any.value.as_slice()).expect("a test attribute value decodes")
    }
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let value = if name == v1::BooleanValue::full_name() {
        json!(data::<v1::BooleanValue>(any).data)
    } else if name == v1::StringValue::full_name() {
        json!(data::<v1::StringValue>(any).data)
    } else if name == v1::IntegerValue::full_name() {
        json!(data::<v1::IntegerValue>(any).data)
    } else if name == v1::DoubleValue::full_name() {
        json!(data::<v1::DoubleValue>(any).data)
    } else if name == v1::BooleanArrayValue::full_name() {
        json!(data::<v1::BooleanArrayValue>(any).data)
    } else if name == v1::StringArrayValue::full_name() {
        json!(data::<v1::StringArrayValue>(any).data)
    } else if name == v1::IntegerArrayValue::full_name() {
        json!(data::<v1::IntegerArrayValue>(any).data)
    } else if name == v1::DoubleArrayValue::full_name() {
        json!(data::<v1::DoubleArrayValue>(any).data)
    } else {
        panic!(
            "no JSON form for an attribute value of type `{}`",
            any.type_url
        )
    };
    json!({ "@type": any.type_url, "data": value })
}

pub fn context_json(c: &v1::Context) -> Value {
    let mut out = json!({
        "tuples": c.tuples.iter().map(tuple_json).collect::<Vec<_>>(),
        "attributes": c.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
    });
    put(&mut out, "data", c.data.as_ref().map(struct_json));
    out
}

fn struct_json(s: &prost_types::Struct) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn value_json(v: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => struct_json(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_json).collect()),
    }
}

fn lookup_entity_json(req: &v1::PermissionLookupEntityRequest) -> Value {
    let meta = req.metadata.clone().unwrap_or_default();
    let mut body = json!({
        "metadata": {
            "schema_version": meta.schema_version,
            "snap_token": meta.snap_token,
            "depth": meta.depth,
        },
        "entity_type": req.entity_type,
        "permission": req.permission,
        "page_size": req.page_size,
        "continuous_token": req.continuous_token,
    });
    put(&mut body, "subject", req.subject.as_ref().map(subject_json));
    put(&mut body, "context", req.context.as_ref().map(context_json));
    body
}

// ---------------------------------------------------------------------------------------------
// Messages from the engine's values
// ---------------------------------------------------------------------------------------------

pub mod msg {
    //! Building request messages from the engine's values and from text.

    use lookout_engine::eval::Context;
    use lookout_engine::model::{AttrValue, Attribute, EntityRef, SubjectRef, Tuple};
    use lookout_proto::v1;
    use prost::{Message, Name};

    pub fn entity(e: &EntityRef) -> v1::Entity {
        v1::Entity {
            r#type: e.ty.clone(),
            id: e.id.clone(),
        }
    }

    pub fn subject(s: &SubjectRef) -> v1::Subject {
        v1::Subject {
            r#type: s.ty.clone(),
            id: s.id.clone(),
            relation: s.relation.clone().unwrap_or_default(),
        }
    }

    pub fn tuple(t: &Tuple) -> v1::Tuple {
        v1::Tuple {
            entity: Some(entity(&t.entity)),
            relation: t.relation.clone(),
            subject: Some(subject(&t.subject)),
        }
    }

    /// A tuple from its text form, `document:1#owner@user:alice`.
    pub fn tuple_text(text: &str) -> v1::Tuple {
        tuple(&Tuple::parse(text).unwrap_or_else(|e| panic!("{e}")))
    }

    /// An entity from its text form, `document:1`.
    pub fn entity_text(text: &str) -> Option<v1::Entity> {
        Some(entity(
            &EntityRef::parse(text).unwrap_or_else(|e| panic!("{e}")),
        ))
    }

    /// A subject from its text form, `user:alice` or `group:eng#member`.
    pub fn subject_text(text: &str) -> Option<v1::Subject> {
        Some(subject(
            &SubjectRef::parse(text).unwrap_or_else(|e| panic!("{e}")),
        ))
    }

    fn pack<M: Message + Name>(m: &M) -> prost_types::Any {
        prost_types::Any {
            type_url: M::type_url(),
            value: m.encode_to_vec(),
        }
    }

    /// An attribute value as an `Any`, as Permify's clients send it.
    pub fn value(v: &AttrValue) -> prost_types::Any {
        let int = |i: i64| i32::try_from(i).expect("test integers fit in 32 bits");
        match v {
            AttrValue::Boolean(b) => pack(&v1::BooleanValue { data: *b }),
            AttrValue::String(s) => pack(&v1::StringValue { data: s.clone() }),
            AttrValue::Integer(i) => pack(&v1::IntegerValue { data: int(*i) }),
            AttrValue::Double(d) => pack(&v1::DoubleValue { data: *d }),
            AttrValue::BooleanArray(v) => pack(&v1::BooleanArrayValue { data: v.clone() }),
            AttrValue::StringArray(v) => pack(&v1::StringArrayValue { data: v.clone() }),
            AttrValue::IntegerArray(v) => pack(&v1::IntegerArrayValue {
                data: v.iter().map(|i| int(*i)).collect(),
            }),
            AttrValue::DoubleArray(v) => pack(&v1::DoubleArrayValue { data: v.clone() }),
        }
    }

    pub fn attribute(a: &Attribute) -> v1::Attribute {
        v1::Attribute {
            entity: Some(entity(&a.entity)),
            attribute: a.name.clone(),
            value: Some(value(&a.value)),
        }
    }

    /// JSON as a protobuf `Value`.
    pub fn json_value(v: &serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        use serde_json::Value;
        let kind = match v {
            Value::Null => Kind::NullValue(0),
            Value::Bool(b) => Kind::BoolValue(*b),
            Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
            Value::String(s) => Kind::StringValue(s.clone()),
            Value::Array(items) => Kind::ListValue(prost_types::ListValue {
                values: items.iter().map(json_value).collect(),
            }),
            Value::Object(map) => Kind::StructValue(json_struct(map)),
        };
        prost_types::Value { kind: Some(kind) }
    }

    /// A JSON object as a protobuf `Struct`.
    pub fn json_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
        prost_types::Struct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        }
    }

    /// A request context; None when it is empty, as a client that has none sends it.
    pub fn context(c: &Context) -> Option<v1::Context> {
        if c.tuples.is_empty() && c.attributes.is_empty() && c.data.is_empty() {
            return None;
        }
        Some(v1::Context {
            tuples: c.tuples.iter().map(tuple).collect(),
            attributes: c.attributes.iter().map(attribute).collect(),
            data: (!c.data.is_empty()).then(|| json_struct(&c.data)),
        })
    }
}
