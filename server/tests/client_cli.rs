//! The client commands of the `lookout` binary against an in-process server: `schema write` and
//! `schema read`, and the errors a person sees when the server is not there, is not the gRPC
//! port, or refuses the call.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::io::Write as _;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use lookout_proto::v1;
use lookout_server::auth::AuthnMethod;

use crate::transport::common;

const SCHEMA: &str = "entity user {}

entity doc {
    relation owner @user
    permission view = owner
}
";

fn lookout(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .env_remove("LOOKOUT_TARGET")
        .env_remove("LOOKOUT_TENANT")
        .env_remove("LOOKOUT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lookout starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn schema_write_and_read_against_a_running_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let handle = runtime.block_on(common::start());
    runtime
        .block_on(handle.service.tenant_create(v1::TenantCreateRequest {
            id: "t2".into(),
            name: "t2".into(),
        }))
        .unwrap();
    let target = handle.grpc_addr.to_string();
    let dir = crate::scratch::scratch("client-cli");
    let file = dir.join("schema.perm");
    std::fs::write(&file, SCHEMA).unwrap();

    let written = lookout(
        &[
            "schema",
            "write",
            file.to_str().unwrap(),
            "--target",
            &target,
        ],
        None,
    );
    assert!(written.status.success(), "{}", text(&written.stderr));
    let version = text(&written.stdout).trim().to_owned();
    assert!(!version.is_empty());

    let from_stdin = lookout(
        &[
            "schema", "write", "-", "--target", &target, "--tenant", "t2",
        ],
        Some(SCHEMA),
    );
    assert!(from_stdin.status.success(), "{}", text(&from_stdin.stderr));

    let read = lookout(
        &[
            "schema",
            "read",
            "--target",
            &target,
            "--schema-version",
            &version,
        ],
        None,
    );
    assert!(read.status.success(), "{}", text(&read.stderr));
    let definition: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(
        definition["entity_definitions"]["doc"]["relations"]["owner"]["name"], "owner",
        "{definition}"
    );

    let bad = lookout(
        &["schema", "write", "-", "--target", &target],
        Some("entity doc {"),
    );
    assert!(!bad.status.success());
    let stderr = text(&bad.stderr);
    assert!(
        stderr.starts_with("error: -: invalid argument: "),
        "{stderr}"
    );

    let missing = lookout(
        &["schema", "read", "--target", &target, "--tenant", "nope"],
        None,
    );
    assert!(!missing.status.success());
    let stderr = text(&missing.stderr);
    assert!(
        stderr.contains("not found: tenant `nope` not found"),
        "{stderr}"
    );

    let http = handle.http_addr.to_string();
    let wrong_port = lookout(&["schema", "read", "--target", &http], None);
    assert!(!wrong_port.status.success());
    let stderr = text(&wrong_port.stderr);
    assert!(stderr.contains("is this the gRPC port?"), "{stderr}");
    assert!(!stderr.contains("compression flag"), "{stderr}");
    runtime.block_on(handle.shutdown()).unwrap();
}

#[test]
fn unauthenticated_is_said_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = common::test_config();
    config.authn.method = AuthnMethod::Preshared;
    config.authn.preshared_keys = vec!["k1".to_owned()];
    let handle = runtime.block_on(common::start_with(config));
    let target = handle.grpc_addr.to_string();
    let out = lookout(
        &["schema", "read", "--target", &target, "--token", "wrong"],
        None,
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: unauthenticated: "), "{stderr}");
    assert_eq!(stderr.matches("unauthenticated").count(), 1, "{stderr}");
    runtime.block_on(handle.shutdown()).unwrap();
}

#[test]
fn a_refused_connection_asks_whether_the_server_runs() {
    // A port that was free a moment ago: nothing listens on it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = lookout(&["schema", "read", "--target", &addr], None);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!("error: connection refused — is the server running at {addr}?"),
    );
}
