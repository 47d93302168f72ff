//! The load generator against an in-process Lookout server on free loopback ports.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::expect_used, reason = "tests fail by panicking")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use lookout_bench::loadgen::{self, Args};
use lookout_proto::v1::permission_client::PermissionClient;
use lookout_proto::v1::{CheckResult, Entity, PermissionCheckRequest, Subject};
use lookout_server::config::Config;
use lookout_server::serve::{self, Handle};

async fn server() -> Handle {
    serve::start(Config {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST).into(),
        grpc_port: 0,
        http_port: 0,
        shutdown_timeout: Duration::from_secs(5),
        ..Config::default()
    })
    .await
    .expect("the server starts")
}

fn args(addr: SocketAddr, extra: &[&str]) -> Args {
    let target = addr.to_string();
    let mut argv = vec!["lookout-loadgen", "--target", &target, "--quiet"];
    argv.extend_from_slice(extra);
    Args::try_parse_from(argv).expect("valid flags")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_streams_against_a_live_server() {
    let handle = server().await;
    let addr = handle.grpc_addr;

    let checks = loadgen::run(&args(
        addr,
        &[
            "--call",
            "check",
            "--total",
            "100",
            "--concurrency",
            "4",
            "--dataset",
            "docs:200",
            "--setup",
        ],
    ))
    .await
    .expect("the check run completes");
    assert_eq!(checks.count, 100, "{}", checks.to_text());
    assert_eq!(checks.errors, 0, "{}", checks.to_text());
    assert!(checks.errors_by_code.is_empty());
    let setup = checks.setup.as_ref().expect("setup ran");
    assert!(setup.tuples > 600, "{setup:?}");
    let l = checks.latency_ms;
    assert_eq!(l.count, 100);
    assert!(l.min > 0.0 && l.min <= l.p50, "{l:?}");
    assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p99_9 && l.p99_9 <= l.max);
    assert!(checks.rps > 0.0 && checks.duration_secs > 0.0);
    assert_eq!(checks.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
    let answers = checks.check.expect("check answers");
    assert_eq!(answers.allowed + answers.denied, 100);
    // Only user:0 sees everything; the others see their direct and group grants, so random
    // pairs give both answers.
    assert!(answers.allowed > 0 && answers.denied > 0, "{answers:?}");
    assert_eq!(checks.connections, 4);

    // The data set is loaded now: each of the 20 users is a direct viewer of about 20 of the
    // 200 documents, plus its groups' and folders' grants.
    let streams = loadgen::run(&args(
        addr,
        &[
            "--call",
            "lookup-entity-stream",
            "--total",
            "8",
            "-c",
            "2",
            "--dataset",
            "docs:200",
        ],
    ))
    .await
    .expect("the stream run completes");
    assert_eq!(streams.count, 8, "{}", streams.to_text());
    assert_eq!(streams.errors, 0, "{}", streams.to_text());
    let s = streams.stream.as_ref().expect("stream figures");
    assert!(s.items > 0, "{s:?}");
    assert!(s.items_per_stream > 5.0, "{s:?}");
    assert!(s.items_per_sec > 0.0);
    assert_eq!(s.first_message_ms.count, 8);
    assert!(
        s.first_message_ms.p50 <= s.last_message_ms.p50 * 1.01,
        "{s:?}"
    );
    assert_eq!(streams.connections, 2);

    handle.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reports_json_and_counts_errors_by_code() {
    let handle = server().await;
    let target = handle.grpc_addr.to_string();
    let run = |extra: Vec<String>| {
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_lookout-loadgen"))
                .args(["--target", &target, "--quiet", "--output", "json"])
                .args(extra)
                .output()
                .expect("the binary runs")
        })
    };

    // Health checks: the baseline, paced by --rps.
    let out = run(["--call", "health", "-n", "20", "-c", "2", "--rps", "400"]
        .map(String::from)
        .to_vec())
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["count"], 20);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["method"], "grpc.health.v1.Health/Check");
    // 20 requests at 400/s take at least 19/400 s.
    assert!(
        report["duration_secs"].as_f64().unwrap() >= 0.045,
        "{report}"
    );

    // Checks on a tenant without a schema fail, and are counted by status code.
    let out = run(["--call", "check", "-n", "10", "--dataset", "docs:100"]
        .map(String::from)
        .to_vec())
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["count"], 10);
    assert_eq!(report["errors"], 10, "{report}");
    let by_code = report["errors_by_code"].as_object().unwrap();
    assert_eq!(by_code.values().filter_map(|v| v.as_u64()).sum::<u64>(), 10);

    // Nothing listening: exit status 1 and a message naming the target.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout-loadgen"))
        .args(["--target", "127.0.0.1:1", "--call", "health", "-n", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to 127.0.0.1:1"));

    handle.shutdown().await.expect("clean shutdown");
}

/// `social:N` loads Permify's load-test model, attributes included (one content in four is
/// public, so some checks must be allowed), and its generated checks get answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_social_data_set_loads_and_answers() {
    let handle = server().await;
    let report = loadgen::run(&args(
        handle.grpc_addr,
        &[
            "--call",
            "check",
            "--total",
            "400",
            "--dataset",
            "social:40",
            "--setup",
        ],
    ))
    .await
    .expect("the social run completes");
    assert_eq!(report.errors, 0, "{}", report.to_text());
    let setup = report.setup.as_ref().expect("setup ran");
    // 40 × (self, owner, creator, parent) + 39 follows + 38 blocks.
    assert_eq!(setup.tuples, 40 * 4 + 39 + 38, "{setup:?}");
    let checks = report.check.expect("check answers are reported");
    assert!(checks.allowed > 0 && checks.denied > 0, "{checks:?}");

    // Bulk checks of the same pairs answer as many checks as they carry, with the same mix.
    let bulk = loadgen::run(&args(
        handle.grpc_addr,
        &[
            "--call",
            "bulk-check",
            "--bulk-size",
            "20",
            "--total",
            "20",
            "--dataset",
            "social:40",
        ],
    ))
    .await
    .expect("the bulk-check run completes");
    assert_eq!((bulk.count, bulk.errors), (20, 0), "{}", bulk.to_text());
    let answers = bulk.check.expect("bulk answers are reported");
    assert_eq!(answers.allowed + answers.denied, 20 * 20, "{answers:?}");
    assert!(answers.allowed > 0 && answers.denied > 0, "{answers:?}");
    assert!(
        (answers.checks_per_sec - bulk.rps * 20.0).abs() < 1e-6 * answers.checks_per_sec,
        "{answers:?} at {} calls/s",
        bulk.rps
    );

    // The attributes arrived: content 0 is public (its owner, user 0, blocks only user 2), so
    // user 5 views it through `is_public` alone; content 1 is not public, and user 5 neither
    // owns it nor follows its owner.
    let mut client = PermissionClient::connect(format!("http://{}", handle.grpc_addr))
        .await
        .expect("a client connects");
    for (content, want) in [("0", CheckResult::Allowed), ("1", CheckResult::Denied)] {
        let can = client
            .check(PermissionCheckRequest {
                tenant_id: "t1".into(),
                entity: Some(Entity {
                    r#type: "content".into(),
                    id: content.into(),
                }),
                permission: "view".into(),
                subject: Some(Subject {
                    r#type: "user".into(),
                    id: "5".into(),
                    relation: String::new(),
                }),
                ..Default::default()
            })
            .await
            .expect("the check answers")
            .into_inner()
            .can;
        assert_eq!(can, want as i32, "content:{content}");
    }
    drop(client);
    handle.shutdown().await.expect("the server stops");
}
