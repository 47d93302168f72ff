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
