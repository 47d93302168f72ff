//! Records when each Watch message arrives: one line per message, `REVISION MICROS`, the
//! revision its snap token names and the wall-clock time of arrival in microseconds since the
//! Unix epoch. `bench/pg-vs-raw.sh` joins the lines with PostgreSQL's commit timestamps of the
//! same revisions (`pg_xact_commit_timestamp`, the cluster runs with
//! `track_commit_timestamp=on`) to give commit → Watch subscriber latency on one clock.
//!
//! ```sh
//! cargo run --release -p lookout-bench --example watch_latency -- 127.0.0.1:3478 t1 30 > arrivals
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lookout_engine::tokens::SnapToken;
use lookout_proto::v1;
use lookout_proto::v1::watch_client::WatchClient;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, tenant, seconds] = args.as_slice() else {
        panic!("usage: watch_latency HOST:PORT TENANT SECONDS");
    };
    let seconds: u64 = seconds.parse().expect("SECONDS is a whole number");
    let mut client = WatchClient::connect(format!("http://{target}"))
        .await
        .unwrap_or_else(|e| panic!("connect to {target}: {e}"));
    let mut stream = client
        .watch(v1::WatchRequest {
            tenant_id: tenant.clone(),
            snap_token: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("watch: {e}"))
        .into_inner();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    // Until the time is up (the timeout) or the stream ends.
    while let Ok(next) = tokio::time::timeout_at(until, stream.message()).await {
        let Some(message) = next.unwrap_or_else(|e| panic!("watch stream: {e}")) else {
            break;
        };
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default();
        let Some(changes) = message.changes else {
            continue;
        };
        let revision = SnapToken::decode(&changes.snap_token, tenant)
            .unwrap_or_else(|e| panic!("snap token of a Watch message: {e}"))
            .revision;
        writeln!(out, "{revision} {micros}").expect("stdout");
    }
}
