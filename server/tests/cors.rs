//! CORS on the HTTP port, through the real binary: a preflight from an allowed origin is
//! answered (before authentication), one from another origin gets no
//! `Access-Control-Allow-Origin`, errors carry the headers, and a server without origins sends
//! none.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::spawn::serve;

const ALLOWED: &str = "https://app.example.com";
const CHECK: &str = "/v1/tenants/t1/permissions/check";

/// Sends `method CHECK` from `origin` with `headers`; the status and the response headers.
async fn send(
    addr: SocketAddr,
    method: &str,
    origin: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{CHECK}"))
        .header(header::ORIGIN, origin);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = if method == "POST" { "{}" } else { "" };
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let _ = response.into_body().collect().await;
    (status, headers)
}

/// A preflight of a POST with a credential and a JSON body.
async fn preflight(addr: SocketAddr, origin: &str) -> (StatusCode, HeaderMap) {
    send(
        addr,
        "OPTIONS",
        origin,
        &[
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization,content-type",
            ),
        ],
    )
    .await
}

fn allowed_origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_from_allowed_origins_are_answered_and_others_are_not() {
    let served = serve(&[
        "--cors-allowed-origins",
        &format!("{ALLOWED},http://localhost:3000"),
        "--authn-method",
        "preshared",
        "--authn-preshared-keys",
        "k1",
    ]);
    assert_eq!(served.serving["cors"], true, "{}", served.serving);

    // Answered before authentication: a preflight carries no credential.
    let (status, headers) = preflight(served.http, ALLOWED).await;
    assert!(status.is_success(), "{status} {headers:?}");
    assert_eq!(allowed_origin(&headers), Some(ALLOWED), "{headers:?}");
    let allowed_headers = headers
        .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(
        allowed_headers.contains("authorization") && allowed_headers.contains("content-type"),
        "{headers:?}"
    );
    let methods = headers
        .get(header::ACCESS_CONTROL_ALLOW_METHODS)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(methods.contains("POST"), "{headers:?}");

    let (_, headers) = preflight(served.http, "https://evil.example.com").await;
    assert_eq!(allowed_origin(&headers), None, "{headers:?}");

    // The call itself: the error answer carries the header, so a page can read it.
    let (status, headers) = send(served.http, "POST", ALLOWED, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(allowed_origin(&headers), Some(ALLOWED), "{headers:?}");
    let (status, headers) = send(
        served.http,
        "POST",
        "http://localhost:3000",
        &[
            ("authorization", "Bearer k1"),
            ("content-type", "application/json"),
        ],
    )
    .await;
    assert_ne!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        allowed_origin(&headers),
        Some("http://localhost:3000"),
        "{headers:?}"
    );
    let exposed = headers
        .get(header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(exposed.contains("x-request-id"), "{headers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_origin_and_no_origin() {
    let served = serve(&["--cors-allowed-origins", "*", "--cors-allowed-headers", "*"]);
    let (status, headers) = preflight(served.http, "https://anywhere.example").await;
    assert!(status.is_success(), "{status} {headers:?}");
    assert_eq!(allowed_origin(&headers), Some("*"), "{headers:?}");
    // `*` headers: whatever the preflight asks for.
    let allowed_headers = headers
        .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(allowed_headers.contains("authorization"), "{headers:?}");
    drop(served);

    // Without origins, no CORS headers at all (the default).
    let served = serve(&[]);
    assert_eq!(served.serving["cors"], false, "{}", served.serving);
    let (_, headers) = preflight(served.http, ALLOWED).await;
    assert_eq!(allowed_origin(&headers), None, "{headers:?}");
    let (_, headers) = send(served.http, "POST", ALLOWED, &[]).await;
    assert!(
        !headers
            .keys()
            .any(|name| name.as_str().starts_with("access-control-")),
        "{headers:?}"
    );
}
