//! PostgreSQL store figures for PERF.md: write throughput at batch sizes 1, 100 and 1000, and
//! commit-to-Watch latency on the writing server and on a second replica.
//!
//! Two replicas (each its own pool, tailer and index, as two servers would have) share the
//! database named by `--database-uri`; requests go through the service layer, without a
//! network hop. `bench/pg-bench.sh` runs this against a throwaway cluster:
//!
//! ```sh
//! bash bench/pg-bench.sh
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_engine::model::Tuple;
use lookout_engine::tokens::SnapToken;
use lookout_proto::v1;
use lookout_server::cache::ResultCache;
use lookout_server::service::{Limits, Service, convert};
use lookout_server::storage::postgres::{self, CancellationToken, PgOptions};
use lookout_server::tenants::Retention;
use tokio::sync::Mutex;

const SCHEMA: &str =
    "entity user {}\nentity doc {\n    relation owner @user\n    permission view = owner\n}\n";

async fn replica(uri: &str, stop: &CancellationToken) -> Arc<Service> {
    let mut options = PgOptions::new(uri);
    options.max_connections = 16;
    let tenants = postgres::start(options, Retention::default(), stop.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Service::with_tenants(Limits::default(), tenants, ResultCache::new(100_000))
}

fn batch(tenant: &str, prefix: &str, start: usize, size: usize) -> v1::DataWriteRequest {
    v1::DataWriteRequest {
        tenant_id: tenant.into(),
        metadata: None,
        tuples: (start..start + size)
            .map(|i| {
                convert::tuple_out(
                    &Tuple::parse(&format!("doc:{prefix}{i}#owner@user:{}", i % 1000)).unwrap(),
                )
            })
            .collect(),
        attributes: vec![],
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        percentile(&samples, 50.0).as_secs_f64() * 1e3,
        percentile(&samples, 99.0).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let uri = args
        .iter()
        .position(|a| a == "--database-uri")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .expect("usage: pg_store --database-uri URI");
    let stop = CancellationToken::new();
    let a = replica(&uri, &stop).await;
    let b = replica(&uri, &stop).await;
    for tenant in ["bench", "watch"] {
        a.tenant_create(v1::TenantCreateRequest {
            id: tenant.into(),
            name: String::new(),
        })
        .await
        .unwrap();
        a.schema_write(v1::SchemaWriteRequest {
            tenant_id: tenant.into(),
            schema: SCHEMA.into(),
        })
        .await
        .unwrap();
    }

    // Throughput: one writer, then 8 concurrent writers, per batch size; new IDs throughout.
    println!("## write throughput (new tuples, new entity IDs)");
    for (size, batches) in [(1usize, 1000usize), (100, 200), (1000, 50)] {
        for writers in [1usize, 8] {
            let started = Instant::now();
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let a = a.clone();
                    tokio::spawn(async move {
                        for n in 0..batches / writers {
                            let prefix = format!("s{size}w{writers}-{w}-");
                            a.data_write(batch("bench", &prefix, n * size, size))
                                .await
                                .unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let elapsed = started.elapsed();
            let tuples = (batches / writers) * writers * size;
            println!(
                "batch {size:>4}, {writers} writer(s): {tuples} tuples in {:.2} s = {:.0} tuples/s, {:.0} writes/s",
                elapsed.as_secs_f64(),
                tuples as f64 / elapsed.as_secs_f64(),
                ((batches / writers) * writers) as f64 / elapsed.as_secs_f64()
            );
        }
    }

    // Latency: paced single-tuple writes through A; Watch on A and on B.
    println!("## commit-to-Watch latency (one tuple per write, one write every 5 ms)");
    let sent: Arc<Mutex<HashMap<u64, (Instant, Instant)>>> = Arc::default();
    let watch_on = |s: Arc<Service>| async move {
        s.watch(v1::WatchRequest {
            tenant_id: "watch".into(),
            snap_token: String::new(),
        })
        .await
        .unwrap()
    };
    let writes = 1000usize;
    let mut receivers = Vec::new();
    for s in [a.clone(), b.clone()] {
        let mut rx = watch_on(s).await;
        receivers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < writes {
                let m = rx.recv().await.unwrap().unwrap();
                let token = m.changes.unwrap().snap_token;
                got.push((
                    SnapToken::decode(&token, "watch").unwrap().revision,
                    Instant::now(),
                ));
            }
            got
        }));
    }
    let mut write_latency = Vec::new();
    let mut pace = tokio::time::interval(Duration::from_millis(5));
    for i in 0..writes {
        pace.tick().await;
        let start = Instant::now();
        let token = a
            .data_write(batch("watch", "w", i, 1))
            .await
            .unwrap()
            .snap_token;
        let acked = Instant::now();
        write_latency.push(acked - start);
        let revision = SnapToken::decode(&token, "watch").unwrap().revision;
        sent.lock().await.insert(revision, (start, acked));
    }
    let sent = sent.lock().await;
    summary("write call (begin to acknowledgement)", write_latency);
    for (name, receiver) in ["same server", "other replica"].iter().zip(receivers) {
        let got = receiver.await.unwrap();
        let from_start: Vec<Duration> = got
            .iter()
            .map(|(r, at)| at.saturating_duration_since(sent[r].0))
            .collect();
        summary(&format!("write begin -> Watch message, {name}"), from_start);
    }
    stop.cancel();
}
