//! A server on free loopback ports, and small gRPC and HTTP clients for it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lookout_server::config::Config;
use lookout_server::serve::{self, Handle};
use serde_json::{Value, json};
use tonic::transport::Channel;

/// Request bodies over this are refused in tests.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

pub const SCHEMA: &str = "entity user {}

entity document {
    relation owner @user
    relation viewer @user
    permission view = owner or viewer
}
";

pub fn test_config() -> Config {
    Config {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST).into(),
        grpc_port: 0,
        http_port: 0,
        max_request_bytes: MAX_REQUEST_BYTES,
        shutdown_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

pub async fn start() -> Handle {
    start_with(test_config()).await
}

pub async fn start_with(config: Config) -> Handle {
    serve::start(config).await.expect("the server starts")
}

pub async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connects")
}

pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            addr,
        }
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Response<Incoming> {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .unwrap();
        self.client.request(request).await.expect("HTTP request")
    }

    /// Sends a request and reads the whole body as text.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
    ) -> (StatusCode, String) {
        let response = self.send(method, path, body).await;
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// Sends JSON and parses the JSON answer.
    pub async fn call(&self, method: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let (status, text) = self
            .raw(method, path, serde_json::to_vec(body).unwrap())
            .await;
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status} body is not JSON ({e}): {text}"));
        (status, value)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call("POST", path, body).await
    }

    /// POSTs and expects 200.
    pub async fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, value) = self.post(path, body).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {value}");
        value
    }
}

pub use crate::lines::Lines;

pub fn tuple(entity: &str, relation: &str, subject: &str) -> Value {
    let (entity_type, entity_id) = entity.split_once(':').unwrap();
    let (subject_type, subject_id) = subject.split_once(':').unwrap();
    json!({
        "entity": {"type": entity_type, "id": entity_id},
        "relation": relation,
        "subject": {"type": subject_type, "id": subject_id},
    })
}

/// Asserts Permify's error body and returns its message.
pub fn error_message(body: &Value, code: i64) -> String {
    assert_eq!(body["code"], json!(code), "{body}");
    let details = body["details"].as_array().cloned().unwrap_or_default();
    assert_eq!(details.len(), 1, "one google.rpc.ErrorInfo: {body}");
    assert_eq!(
        details[0]["@type"],
        json!("type.googleapis.com/google.rpc.ErrorInfo"),
        "{body}"
    );
    assert!(
        details[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("ERROR_CODE_")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "{body}");
    message
}
