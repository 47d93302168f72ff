//! TLS on both ports, through the real binary and real clients: HTTPS with hyper-rustls, gRPC
//! with tonic's `ClientTlsConfig`, plaintext refused, the handshake under the header read
//! timeout, certificates reloaded on SIGHUP and when their files change (a bad pair keeps the
//! old one), and start-up errors naming the setting and the file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lookout_proto::v1;
use lookout_proto::v1::permission_client::PermissionClient;
use lookout_proto::v1::schema_client::SchemaClient;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::certs::{Files, TestCa, replace, temp_dir};
use crate::spawn::{Served, lookout, serve};

const SCHEMA: &str = "entity user {}\n\nentity document {\n    relation viewer @user\n    permission view = viewer\n}\n";

/// The flags serving TLS on both ports with `files`.
fn tls_on_both(files: &Files) -> Vec<&str> {
    vec![
        "--grpc-tls-cert",
        files.cert_str(),
        "--grpc-tls-key",
        files.key_str(),
        "--http-tls-cert",
        files.cert_str(),
        "--http-tls-key",
        files.key_str(),
    ]
}

/// `method path` over HTTPS to `addr` as `127.0.0.1`, trusting `ca`.
async fn https(
    ca: &TestCa,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(StatusCode, String), String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(ca.client_config(&[]))
        .https_only()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let request = Request::builder()
        .method(method)
        .uri(format!("https://127.0.0.1:{}{path}", addr.port()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// `GET /healthz` in plaintext to `addr`.
async fn plain_http(addr: SocketAddr) -> Result<StatusCode, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::get(format!("http://{addr}/healthz"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
        Ok(Ok(response)) => Ok(response.status()),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// A gRPC channel to `addr` over TLS, trusting `ca`, verifying the name `localhost`.
async fn tls_channel(ca: &TestCa, addr: SocketAddr) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    Endpoint::from_shared(format!("https://127.0.0.1:{}", addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("gRPC connects over TLS")
}

/// Waits up to `limit` for a log line of `served` that `wanted` accepts; all lines read.
fn wait_for_line(served: &Served, limit: Duration, wanted: impl Fn(&Value) -> bool) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let Ok(line) = served
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            panic!(
                "no such log line within {limit:?}; saw:\n{}",
                seen.join("\n")
            );
        };
        let matched = serde_json::from_str::<Value>(&line).is_ok_and(|v| wanted(&v));
        seen.push(line);
        if matched {
            return seen;
        }
    }
}

/// Waits up to `limit` until a new connection to `addr` is presented `expected`.
async fn wait_for_certificate(
    ca: &TestCa,
    addr: SocketAddr,
    alpn: &[&[u8]],
    expected: &CertificateDer<'static>,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        let presented = ca.presented(addr, alpn).await;
        if presented.as_ref() == Ok(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} did not present the new certificate within {limit:?}: {:?}",
            presented.map(|_| "the old certificate")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn send_signal(served: &Served, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &served.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ports_serve_tls_and_refuse_plaintext() {
    let ca = TestCa::new();
    let dir = temp_dir("both-ports");
    let files = Files::in_dir(&dir);
    files.write(&ca.issue());
    let served = serve(&tls_on_both(&files));
    assert_eq!(served.serving["grpc_tls"], true, "{}", served.serving);
    assert_eq!(served.serving["http_tls"], true, "{}", served.serving);

    // HTTPS: the API and /healthz.
    let (status, body) = https(&ca, served.http, "GET", "/healthz", "")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let schema = serde_json::json!({ "schema": SCHEMA }).to_string();
    let (status, body) = https(
        &ca,
        served.http,
        "POST",
        "/v1/tenants/t1/schemas/write",
        &schema,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("schema_version"), "{body}");
    // Plaintext HTTP to the TLS port gets no answer.
    let plain = plain_http(served.http).await;
    assert!(plain.is_err(), "plaintext HTTP was answered: {plain:?}");

    // gRPC over TLS: health, a write and a check.
    let channel = tls_channel(&ca, served.grpc).await;
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    SchemaClient::new(channel.clone())
        .write(v1::SchemaWriteRequest {
            tenant_id: "t1".to_owned(),
            schema: SCHEMA.to_owned(),
        })
        .await
        .unwrap();
    let check = PermissionClient::new(channel)
        .check(v1::PermissionCheckRequest {
            tenant_id: "t1".to_owned(),
            metadata: Some(v1::PermissionCheckRequestMetadata {
                depth: 20,
                ..Default::default()
            }),
            entity: Some(v1::Entity {
                r#type: "document".to_owned(),
                id: "1".to_owned(),
            }),
            permission: "view".to_owned(),
            subject: Some(v1::Subject {
                r#type: "user".to_owned(),
                id: "alice".to_owned(),
                relation: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(check.can, v1::CheckResult::Denied as i32);
    // Plaintext gRPC to the TLS port fails.
    let plain = async {
        let channel = Endpoint::from_shared(format!("http://{}", served.grpc))
            .unwrap()
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|e| e.to_string())
    };
    let plain = tokio::time::timeout(Duration::from_secs(10), plain).await;
    assert!(
        !matches!(plain, Ok(Ok(_))),
        "plaintext gRPC was answered: {plain:?}"
    );
    drop(served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_completes_the_handshake_is_dropped_at_the_header_read_timeout() {
    let ca = TestCa::new();
    let dir = temp_dir("handshake-timeout");
    let files = Files::in_dir(&dir);
    files.write(&ca.issue());
    let mut flags = tls_on_both(&files);
    flags.extend(["--header-read-timeout", "1s"]);
    let served = serve(&flags);
    for addr in [served.http, served.grpc] {
        let opened = Instant::now();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
            .await
            .expect("the server closes a silent connection");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "{addr}: a silent client got {read:?}"
        );
        let waited = opened.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "{addr}: closed after {waited:?}"
        );
        // A client that handshakes is served.
        assert!(ca.presented(addr, &[b"h2"]).await.is_ok());
    }
    drop(served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_on_sighup_and_on_change_and_a_bad_pair_keeps_the_old_one() {
    let ca = TestCa::new();
    let dir = temp_dir("reload");
    let files = Files::in_dir(&dir);
    let first = ca.issue();
    files.write(&first);
    let mut served = serve(&tls_on_both(&files));
    let ports: [(SocketAddr, &[&[u8]]); 2] =
        [(served.grpc, &[b"h2"]), (served.http, &[b"http/1.1"])];
    for (addr, alpn) in ports {
        assert_eq!(ca.presented(addr, alpn).await.unwrap(), first.der);
    }
    // An HTTPS connection opened before the reload.
    let (status, _) = https(&ca, served.http, "GET", "/healthz", "")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);

    // SIGHUP: new connections get the second certificate.
    let second = ca.issue();
    assert_ne!(first.der, second.der);
    files.write(&second);
    send_signal(&served, "-HUP");
    for (addr, alpn) in ports {
        wait_for_certificate(&ca, addr, alpn, &second.der, Duration::from_secs(10)).await;
    }
    wait_for_line(&served, Duration::from_secs(10), |v| {
        v["message"] == "reloaded the TLS certificate" && v["reason"] == "SIGHUP"
    });
    let (status, _) = https(&ca, served.http, "GET", "/healthz", "")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);

    // A broken certificate file: an error naming it, and the second certificate stays.
    replace(
        &files.cert,
        b"-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    );
    send_signal(&served, "-HUP");
    let cert_path = files.cert_str().to_owned();
    wait_for_line(&served, Duration::from_secs(10), |v| {
        v["message"] == "cannot reload the TLS certificate; the one in use stays"
            && v["error"].as_str().is_some_and(|e| {
                e.contains(&cert_path)
                    && (e.contains("grpc-tls-cert") || e.contains("http-tls-cert"))
            })
    });
    for (addr, alpn) in ports {
        assert_eq!(ca.presented(addr, alpn).await.unwrap(), second.der);
    }
    let (status, _) = https(&ca, served.http, "GET", "/healthz", "")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);

    // Without a signal: the changed files are picked up at the next check.
    let third = ca.issue();
    files.write(&third);
    let limit = lookout_server::tls::POLL_INTERVAL * 3;
    for (addr, alpn) in ports {
        wait_for_certificate(&ca, addr, alpn, &third.der, limit).await;
    }
    // The same process all along.
    assert!(served.child.try_wait().unwrap().is_none());
    drop(served);
}

#[test]
fn unusable_certificates_stop_the_start_naming_the_setting_and_the_file() {
    let ca = TestCa::new();
    let dir = temp_dir("start-errors");
    let files = Files::in_dir(&dir);
    files.write(&ca.issue());
    let missing = dir.join("missing.pem");
    let missing = missing.to_str().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let output = lookout()
            .args([
                "serve",
                "--host",
                "127.0.0.1",
                "--grpc-port",
                "0",
                "--http-port",
                "0",
            ])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, stderr) = run(
        &[
            "--http-tls-cert",
            missing,
            "--http-tls-key",
            files.key_str(),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("http-tls-cert: cannot read `") && stderr.contains(missing),
        "{stderr}"
    );

    // Another certificate's key.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let other = Files::in_dir(&other);
    other.write(&ca.issue());
    let (code, stderr) = run(
        &[
            "--grpc-tls-cert",
            files.cert_str(),
            "--grpc-tls-key",
            other.key_str(),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("grpc-tls-key") && stderr.contains(other.key_str()),
        "{stderr}"
    );

    let (code, stderr) = run(&["--grpc-tls-cert", files.cert_str()], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("grpc-tls-key"), "{stderr}");

    let (code, stderr) = run(&[], &[("PERMIFY_HTTP_TLS_ENABLED", "true")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("PERMIFY_HTTP_TLS_ENABLED")
            && stderr.contains("server.http.tls.cert")
            && stderr.contains("server.http.tls.key"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
