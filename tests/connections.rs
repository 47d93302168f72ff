//! Connection limits of both listeners, over raw sockets: connections that send nothing, stop
//! halfway through a request's headers or sit idle are closed at their timeouts; connections
//! beyond `--max-connections` are closed at once while open ones keep working; a connection
//! with a stream open is not idle.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lookout_proto::v1;
use lookout_proto::v1::watch_client::WatchClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Client, Transport, channel, config, msg, start_with};

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: lookout\r\n\r\n";

/// Reads until the server closes the connection (EOF or reset); the time it took. Fails if
/// it stays open for `limit`.
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection is still open after {limit:?}"),
        }
    }
}

/// Sends a `/healthz` request on a keep-alive connection and reads its whole response.
async fn healthz(tcp: &mut TcpStream) {
    tcp.write_all(HEALTHZ).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !response.ends_with(br#"{"status":"SERVING"}"#) {
        let n = tokio::time::timeout_at(deadline.into(), tcp.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "the connection closed before the answer");
        response.extend_from_slice(&buf[..n]);
    }
    assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_connections_are_closed_at_the_header_read_timeout() {
    let mut config = config();
    config.connections.header_read_timeout = Some(Duration::from_millis(300));
    config.connections.idle_timeout = Some(Duration::from_secs(60));
    let server = start_with(config).await;
    for addr in [server.http_addr, server.grpc_addr] {
        // Connects and sends nothing.
        let mut silent = connect(addr).await;
        let took = closed_within(&mut silent, Duration::from_secs(5)).await;
        assert!(
            took >= Duration::from_millis(250),
            "{addr}: closed after {took:?}"
        );
    }
    // Half a request's headers, first on a new connection, then on one that served a request.
    let mut slow = connect(server.http_addr).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    closed_within(&mut slow, Duration::from_secs(5)).await;
    let mut kept = connect(server.http_addr).await;
    healthz(&mut kept).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Idle for longer than the header read timeout, but under the idle timeout: still open.
    healthz(&mut kept).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost:")
        .await
        .unwrap();
    let took = closed_within(&mut kept, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_but_open_streams_keep_theirs() {
    let mut config = config();
    config.connections.idle_timeout = Some(Duration::from_millis(400));
    let server = start_with(config).await;
    let mut idle = connect(server.http_addr).await;
    healthz(&mut idle).await;
    let took = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(350), "closed after {took:?}");

    // A gRPC connection with a Watch stream open is busy, not idle: the stream still delivers
    // after several idle timeouts.
    let client = Client::connect(Transport::Grpc, &server).await;
    client
        .create_tenant(v1::TenantCreateRequest {
            id: "w".to_owned(),
            name: "w".to_owned(),
        })
        .await
        .unwrap();
    let mut watch = WatchClient::new(channel(server.grpc_addr).await);
    let mut changes = watch
        .watch(v1::WatchRequest {
            tenant_id: "w".to_owned(),
            snap_token: String::new(),
        })
        .await
        .expect("the stream opens")
        .into_inner();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client
        .write_schema(v1::SchemaWriteRequest {
            tenant_id: "w".to_owned(),
            schema: "entity user {}\nentity doc {\n relation owner @user\n}".to_owned(),
        })
        .await
        .unwrap();
    client
        .write_data(v1::DataWriteRequest {
            tenant_id: "w".to_owned(),
            metadata: Some(v1::DataWriteRequestMetadata::default()),
            tuples: vec![msg::tuple_text("doc:1#owner@user:1")],
            attributes: Vec::new(),
        })
        .await
        .unwrap();
    let change = tokio::time::timeout(Duration::from_secs(10), changes.message())
        .await
        .expect("a change in time")
        .expect("the stream is still open");
    assert!(change.is_some(), "the stream ended");
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_while_open_ones_keep_working() {
    let mut config = config();
    config.connections.max_connections = Some(2);
    let server = start_with(config).await;
    assert_eq!(server.connections.max(), 2);
    let mut first = connect(server.http_addr).await;
    healthz(&mut first).await;
    let mut second = connect(server.grpc_addr).await;
    // Both listeners share the limit: a third connection on either is closed at once.
    for addr in [server.http_addr, server.grpc_addr] {
        let mut refused = connect(addr).await;
        let _ = refused.write_all(HEALTHZ).await;
        let took = closed_within(&mut refused, Duration::from_secs(2)).await;
        assert!(
            took < Duration::from_secs(1),
            "{addr}: closed after {took:?}"
        );
    }
    // The open ones still work.
    healthz(&mut first).await;
    assert_eq!(server.connections.open(), 2);
    // A closed connection gives its place back.
    second.shutdown().await.unwrap();
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.connections.open() > 1 {
        assert!(Instant::now() < deadline, "the place was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut third = connect(server.http_addr).await;
    healthz(&mut third).await;
    server.shutdown().await.expect("a clean shutdown");
}

/// A tenant whose `doc#view` lookup for `user:u` finds `docs` documents with long IDs.
async fn many_docs(client: &Client, tenant: &str, docs: usize) {
    client
        .create_tenant(v1::TenantCreateRequest {
            id: tenant.to_owned(),
            name: tenant.to_owned(),
        })
        .await
        .unwrap();
    client
        .write_schema(v1::SchemaWriteRequest {
            tenant_id: tenant.to_owned(),
            schema:
                "entity user {}\nentity doc {\n relation viewer @user\n permission view = viewer\n}"
                    .to_owned(),
        })
        .await
        .unwrap();
    // In writes under the request size limit.
    for start in (0..docs).step_by(2_500) {
        client
            .write_data(v1::DataWriteRequest {
                tenant_id: tenant.to_owned(),
                metadata: Some(v1::DataWriteRequestMetadata::default()),
                tuples: (start..docs.min(start + 2_500))
                    .map(|i| msg::tuple_text(&format!("doc:{i:0>100}#viewer@user:u")))
                    .collect(),
                attributes: Vec::new(),
            })
            .await
            .unwrap();
    }
}

fn lookup(tenant: &str) -> v1::PermissionLookupEntityRequest {
    v1::PermissionLookupEntityRequest {
        tenant_id: tenant.to_owned(),
        entity_type: "doc".to_owned(),
        permission: "view".to_owned(),
        subject: msg::subject_text("user:u"),
        metadata: Some(v1::PermissionLookupEntityRequestMetadata::default()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_is_not_read_gives_back_its_place_at_the_request_timeout() {
    let mut config = config();
    config.traffic.max_concurrent_streams = 1;
    // Long enough for the setup's writes on a loaded machine.
    config.traffic.request_timeout = Some(Duration::from_secs(2));
    let server = start_with(config).await;
    let client = Client::connect(Transport::Grpc, &server).await;
    // ~4.5 MB of results: more than the HTTP/2 windows and the sockets' buffers hold.
    many_docs(&client, "big", 40_000).await;

    // gRPC: the stream opens, its client never reads.
    let mut stuck = v1::permission_client::PermissionClient::new(channel(server.grpc_addr).await);
    let unread = stuck
        .lookup_entity_stream(lookup("big"))
        .await
        .expect("the stream opens");
    let refused = Client::connect(Transport::Grpc, &server)
        .await
        .lookup_entity_stream(lookup("big"))
        .await
        .unwrap_err();
    refused.assert(
        tonic::Code::ResourceExhausted,
        &["--max-concurrent-streams"],
    );
    let started = Instant::now();
    // Within about the timeout, the place is free again and a reading client gets it all.
    let full = loop {
        match client.lookup_entity_stream(lookup("big")).await {
            Ok(all) => break all,
            Err(e) => {
                e.assert(
                    tonic::Code::ResourceExhausted,
                    &["--max-concurrent-streams"],
                );
                assert!(started.elapsed() < Duration::from_secs(15), "never freed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(full.len(), 40_000);
    // The unread stream was ended: its connection is closed.
    let mut unread = unread.into_inner();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match unread.message().await {
                Ok(Some(_)) => continue,
                other => break other,
            }
        }
    })
    .await
    .expect("the unread stream ends");
    assert!(ended.is_err(), "{ended:?}");

    // HTTP: the request is sent, the response never read.
    let mut raw = connect(server.http_addr).await;
    let body = r#"{"entity_type":"doc","permission":"view","subject":{"type":"user","id":"u"}}"#;
    let request = format!(
        "POST /v1/tenants/big/permissions/lookup-entity-stream HTTP/1.1\r\nhost: lookout\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    raw.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    loop {
        match client.lookup_entity_stream(lookup("big")).await {
            Ok(all) => {
                assert_eq!(all.len(), 40_000);
                break;
            }
            Err(e) => {
                e.assert(
                    tonic::Code::ResourceExhausted,
                    &["--max-concurrent-streams"],
                );
                assert!(started.elapsed() < Duration::from_secs(15), "never freed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the HTTP stream was never stalled: it took {:?}",
        started.elapsed()
    );
    server.shutdown().await.expect("a clean shutdown");
}
