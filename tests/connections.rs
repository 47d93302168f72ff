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
