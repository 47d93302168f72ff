//! The `lookout serve` binary: start-up errors and shutdown on SIGTERM.

use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use hyper::StatusCode;

use super::common::{Http, Lines, error_message};
use crate::spawn::{lookout, serve};

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_promptly_with_a_watch_open() {
    let mut served = serve(&[]);
    let http = Http::new(served.http);
    let (status, _) = http.raw("GET", "/healthz", "").await;
    assert_eq!(status, StatusCode::OK);
    // A gRPC connection is open too.
    let _grpc = super::common::channel(served.grpc).await;

    let response = http.send("POST", "/v1/tenants/t1/watch", "{}").await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut watch = Lines::new(response);

    let signalled = Instant::now();
    send_signal(&served.child, "-TERM");
    let last = watch.next().await.expect("a closing error line");
    error_message(&last["error"], 14);
    assert!(watch.next().await.is_none());

    let (status, log) = tokio::task::spawn_blocking(move || {
        let status = wait_with_timeout(&mut served.child, Duration::from_secs(5));
        // Once the process has gone, its stderr ends and so does the reader thread.
        let log: Vec<String> = if status.is_some() {
            served.lines.iter().collect()
        } else {
            served.lines.try_iter().collect()
        };
        (status, log)
    })
    .await
    .unwrap();
    let status = status.expect("lookout exits within 5 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(log.iter().any(|l| l.contains("SIGTERM")), "{log:?}");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = lookout()
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--grpc-port",
            &port,
            "--http-port",
            "0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen for gRPC"), "{stderr}");
    assert!(stderr.contains(&port), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let output = lookout()
        .args([
            "serve",
            "--database-engine",
            "postgres",
            "--database-uri",
            "postgres://lookout:secret@127.0.0.1:1/lookout",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "cannot connect to the database at postgres://lookout:***@127.0.0.1:1/lookout"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
}

#[test]
fn bad_settings_exit_two() {
    let output = lookout()
        .args(["serve", "--default-depth", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("default-depth"), "{stderr}");

    let dir = std::env::temp_dir().join(format!("lookout-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lookout.yaml");
    std::fs::write(&file, "grpc-port: 1\nno-such-setting: true\n").unwrap();
    let output = lookout()
        .args(["serve", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such-setting"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_serving_line_names_the_store_the_authentication_and_tls() {
    let served = serve(&[]);
    assert_eq!(served.serving["database"], "memory", "{}", served.serving);
    assert_eq!(served.serving["authn"], "none", "{}", served.serving);
    // TLS per port (on in tests/tls.rs), and CORS.
    assert_eq!(served.serving["grpc_tls"], false, "{}", served.serving);
    assert_eq!(served.serving["http_tls"], false, "{}", served.serving);
    assert_eq!(served.serving["cors"], false, "{}", served.serving);

    let served = serve(&[
        "--authn-method",
        "preshared",
        "--authn-preshared-keys",
        "k1",
    ]);
    assert_eq!(served.serving["authn"], "preshared", "{}", served.serving);
}
