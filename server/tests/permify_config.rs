//! `lookout serve` configured as Permify is: the example file `fixtures/permify-config.yaml`
//! and `PERMIFY_*` variables start a server on the ports they name, and `--host` takes a name.

#![allow(clippy::panic, reason = "tests fail by panicking")]

use std::net::TcpListener;
use std::path::PathBuf;

use clap::Parser;
use lookout_server::cli::{Cli, Command};
use lookout_server::config::{Config, DatabaseEngine, ServeArgs};
use lookout_server::serve;

/// A port free at the time of asking.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a free port: {e}"))
}

fn serve_args(argv: &[&str]) -> ServeArgs {
    match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Command::Serve(args),
        }) => *args,
        Ok(_) => panic!("not serve"),
        Err(e) => panic!("{e}"),
    }
}

/// The example file with its ports replaced by `grpc` and `http`, written to a temporary file.
fn permify_file(grpc: u16, http: u16) -> PathBuf {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/permify-config.yaml"
    ))
    .unwrap_or_else(|e| panic!("the example: {e}"));
    let text = example
        .replace("port: 3478", &format!("port: {grpc}"))
        .replace("port: 3476", &format!("port: {http}"));
    let path = std::env::temp_dir().join(format!(
        "lookout-permify-config-{}-{grpc}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permify_config_file_starts_lookout_on_its_ports() {
    let (grpc, http) = (free_port(), free_port());
    let path = permify_file(grpc, http);
    let args = serve_args(&[
        "lookout",
        "serve",
        "-c",
        path.to_str().unwrap_or_default(),
        "--host",
        "127.0.0.1",
    ]);
    let config = Config::resolve_with_env(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(&path);
    assert_eq!(config.database_engine, DatabaseEngine::Memory);
    let server = serve::start(config)
        .await
        .unwrap_or_else(|e| panic!("the server starts: {e}"));
    assert_eq!(server.grpc_addr.port(), grpc);
    assert_eq!(server.http_addr.port(), http);
    server.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permify_variables_start_lookout_on_their_ports() {
    let (grpc, http) = (free_port(), free_port());
    let env: Vec<(String, String)> = [
        ("PERMIFY_GRPC_PORT", grpc.to_string()),
        ("PERMIFY_HTTP_PORT", http.to_string()),
        ("PERMIFY_DATABASE_ENGINE", "memory".to_owned()),
        ("PERMIFY_LOG_LEVEL", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let args = serve_args(&["lookout", "serve", "--host", "127.0.0.1"]);
    let config = Config::resolve_with_env(&args, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.log_level, "warn");
    let server = serve::start(config)
        .await
        .unwrap_or_else(|e| panic!("the server starts: {e}"));
    assert_eq!(server.grpc_addr.port(), grpc);
    assert_eq!(server.http_addr.port(), http);
    server.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_localhost_binds() {
    let args = serve_args(&[
        "lookout",
        "serve",
        "--host",
        "localhost",
        "--grpc-port",
        "0",
        "--http-port",
        "0",
    ]);
    let config = Config::resolve_with_env(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    let server = serve::start(config)
        .await
        .unwrap_or_else(|e| panic!("the server starts: {e}"));
    assert!(server.grpc_addr.ip().is_loopback(), "{}", server.grpc_addr);
    assert!(server.http_addr.ip().is_loopback(), "{}", server.http_addr);
    assert_ne!(server.grpc_addr.port(), 0);
    let http = tokio::net::TcpStream::connect(server.http_addr).await;
    assert!(http.is_ok(), "{http:?}");
    server.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permifys_tls_and_cors_keys_are_applied() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    use crate::certs::{Files, TestCa, temp_dir};

    let ca = TestCa::new();
    let dir = temp_dir("permify-config");
    let files = Files::in_dir(&dir);
    let leaf = ca.issue();
    files.write(&leaf);
    let (grpc, http) = (free_port(), free_port());
    let path = permify_file(grpc, http);
    let example = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    // The HTTP section of Permify's reference, TLS on and CORS for one origin.
    let http_section = format!(
        "  http:\n    enabled: true\n    port: {http}\n    tls:\n      enabled: true\n      cert: {}\n      key: {}\n    cors_allowed_origins:\n      - https://app.example.com\n    cors_allowed_headers: [authorization, content-type]\n",
        files.cert_str(),
        files.key_str()
    );
    let text = example.replace(
        &format!("  http:\n    enabled: true\n    port: {http}\n    tls:\n      enabled: false\n"),
        &http_section,
    );
    assert_ne!(text, example, "the example's http section changed");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let args = serve_args(&[
        "lookout",
        "serve",
        "-c",
        path.to_str().unwrap_or_default(),
        "--host",
        "127.0.0.1",
    ]);
    let config = Config::resolve_with_env(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(&path);
    assert!(config.tls.http.is_some() && config.tls.grpc.is_none());
    assert_eq!(config.cors.allowed_origins, vec!["https://app.example.com"]);
    let server = serve::start(config)
        .await
        .unwrap_or_else(|e| panic!("the server starts: {e}"));

    // HTTPS, and the certificate is the configured one.
    let presented = ca
        .presented(server.http_addr, &[b"http/1.1"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(presented, leaf.der);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(ca.client_config(&[]))
        .https_only()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let preflight = hyper::Request::builder()
        .method("OPTIONS")
        .uri(format!(
            "https://localhost:{}/v1/tenants/t1/permissions/check",
            server.http_addr.port()
        ))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = client
        .request(preflight)
        .await
        .unwrap_or_else(|e| panic!("HTTPS preflight: {e:?}"));
    assert!(response.status().is_success(), "{response:?}");
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example.com"),
        "{response:?}"
    );
    let _ = response.into_body().collect().await;
    // gRPC stays plaintext: its section has TLS off.
    let channel = crate::transport::common::channel(server.grpc_addr).await;
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok(), "{health:?}");
    server.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}
