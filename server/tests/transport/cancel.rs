//! A client that goes away stops its lookup's work: the server's CPU returns to idle.
//!
//! The server is the real binary, so the CPU measured (utime + stime from `/proc/PID/stat`) is
//! the server's alone, not that of the tests running beside it. A LookupEntityStream whose
//! evaluation needs tens of seconds of CPU (a rule scanning a long `context.data` list for each
//! of thousands of documents) is started; once the server is busy with it, the client goes
//! away; the server must be idle again within a few seconds. A smaller lookup run to the end
//! first shows how long the big one would have kept the server busy without cancellation.

use std::process::Command;
use std::time::{Duration, Instant};

use lookout_proto::v1;
use lookout_proto::v1::permission_client::PermissionClient;
use serde_json::{Value, json};

use super::common::{Http, channel};
use crate::spawn::serve;

const DOCS: usize = 3000;
/// Items each rule call scans in the big lookup (none match).
const BIG: usize = 4000;
/// Items of the small lookup that calibrates the cost.
const SMALL: usize = 100;

const SCHEMA: &str = "entity user {}

entity doc {
    attribute n integer
    permission view = scan(n)
}

rule scan(n integer) {
    context.data.items.exists(x, x == n)
}
";

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces) start with field 3, the state.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The server's CPU use over `window`, in cores.
async fn cpu_rate(pid: u32, window: Duration) -> f64 {
    let before = cpu_seconds(pid);
    tokio::time::sleep(window).await;
    (cpu_seconds(pid) - before) / window.as_secs_f64()
}

fn items(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!(-(i as f64) - 1.0)).collect())
}

fn lookup_json(n: usize) -> Value {
    json!({
        "entity_type": "doc",
        "permission": "view",
        "subject": { "type": "user", "id": "u" },
        "context": { "data": { "items": items(n) } },
    })
}

fn lookup_grpc(n: usize) -> v1::PermissionLookupEntityRequest {
    let list = (0..n)
        .map(|i| prost_types::Value {
            kind: Some(prost_types::value::Kind::NumberValue(-(i as f64) - 1.0)),
        })
        .collect();
    let data = prost_types::Struct {
        fields: [(
            "items".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::ListValue(
                    prost_types::ListValue { values: list },
                )),
            },
        )]
        .into(),
    };
    v1::PermissionLookupEntityRequest {
        tenant_id: "t1".to_owned(),
        entity_type: "doc".to_owned(),
        permission: "view".to_owned(),
        subject: Some(v1::Subject {
            r#type: "user".to_owned(),
            id: "u".to_owned(),
            relation: String::new(),
        }),
        context: Some(v1::Context {
            tuples: Vec::new(),
            attributes: Vec::new(),
            data: Some(data),
        }),
        ..Default::default()
    }
}

async fn seed(http: &Http) {
    http.ok("/v1/tenants/t1/schemas/write", &json!({ "schema": SCHEMA }))
        .await;
    let attributes: Vec<Value> = (0..DOCS)
        .map(|i| {
            json!({
                "entity": { "type": "doc", "id": i.to_string() },
                "attribute": "n",
                "value": { "@type": "type.googleapis.com/base.v1.IntegerValue", "data": i },
            })
        })
        .collect();
    http.ok(
        "/v1/tenants/t1/data/write",
        &json!({ "metadata": { "schema_version": "" }, "attributes": attributes }),
    )
    .await;
}

/// Waits until the server has spent `cpu` CPU seconds since `from` (its CPU time then), or
/// fails after `limit`. Cumulative time rather than a rate, so a loaded machine only slows it.
async fn until_busy(pid: u32, from: f64, cpu: f64, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let spent = cpu_seconds(pid) - from;
        if spent >= cpu {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "the lookup never kept the server busy ({spent:.2} CPU s in {limit:?})"
        );
    }
}

/// Waits until the server is idle (under 0.1 cores over a second); the time it took.
async fn until_idle(pid: u32, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let rate = cpu_rate(pid, Duration::from_secs(1)).await;
        if rate < 0.1 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "the server still uses {rate:.2} cores {:?} after its client went away",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_stops_its_lookup() {
    // No deadline: only the client's going away may stop the work.
    let served = serve(&["--request-timeout", "0"]);
    let pid = served.child.id();
    let http = Http::new(served.http);
    seed(&http).await;

    // Calibration: the small lookup to the end, over HTTP.
    let started = Instant::now();
    let cpu_before = cpu_seconds(pid);
    let (status, body) = http
        .raw(
            "POST",
            "/v1/tenants/t1/permissions/lookup-entity",
            lookup_json(SMALL).to_string(),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let small_cpu = (cpu_seconds(pid) - cpu_before).max(0.01);
    let big_cpu = small_cpu * (BIG as f64 / SMALL as f64);
    eprintln!(
        "small lookup: {:?}, {small_cpu:.2} CPU s; the big one needs about {big_cpu:.0} CPU s",
        started.elapsed()
    );
    assert!(
        big_cpu > 10.0,
        "the big lookup is too cheap to show anything ({big_cpu:.1} CPU s)"
    );

    for transport in ["gRPC", "HTTP"] {
        until_idle(pid, Duration::from_secs(30)).await;
        let cpu_at_start = cpu_seconds(pid);
        let call = match transport {
            "gRPC" => {
                let addr = served.grpc;
                tokio::spawn(async move {
                    let mut client = PermissionClient::new(channel(addr).await);
                    let _ = client.lookup_entity_stream(lookup_grpc(BIG)).await;
                })
            }
            _ => {
                let http = Http::new(served.http);
                tokio::spawn(async move {
                    let _ = http
                        .send(
                            "POST",
                            "/v1/tenants/t1/permissions/lookup-entity-stream",
                            lookup_json(BIG).to_string(),
                        )
                        .await;
                })
            }
        };
        let busy = until_busy(pid, cpu_at_start, 0.5, Duration::from_secs(60)).await;
        let cpu_at_drop = cpu_seconds(pid);
        // The client goes away: its call (and connection) is dropped.
        call.abort();
        let _ = call.await;
        let idle_after = until_idle(pid, Duration::from_secs(10)).await;
        let spent = cpu_seconds(pid) - cpu_at_drop;
        eprintln!(
            "{transport}: 0.5 CPU s spent in {busy:?}; idle {idle_after:?} after the client left, \
             having spent {spent:.2} more CPU s of the ~{big_cpu:.0} the lookup needs"
        );
        assert!(
            spent < big_cpu / 4.0,
            "{transport}: the lookup went on after its client left ({spent:.1} CPU s)"
        );
    }
}
