//! Server benches: the whole server in process, called over real gRPC on loopback, with the
//! in-memory store and the document model ([`lookout_bench::docs`], seed 7) loaded through
//! Schema.Write and Data.Write exactly as `lookout-loadgen --setup` does.
//!
//! Two servers run side by side, one with the default result cache and one with
//! `cache_capacity: 0` (cache off), on one tokio multi-thread runtime shared with the client.
//!
//! Groups:
//! - `server_check`: Permission.Check `document.view`. "cold, random question" asks the
//!   cache-off server about a random (document, user) pair each time; "cold, fixed question"
//!   and "cached, fixed question" ask one question (document N/2, user:0) of the cache-off and
//!   the cached server, so the cache's effect on the same question is side by side.
//! - `lookup_entity_stream`: Permission.LookupEntityStream `document.view` for user:0, who sees
//!   about every document: time to the first ID (the stream is dropped after it; see
//!   [`connect_for_cancelling`] for its connection), then time to receive every ID (reported
//!   as IDs/s, on the load generator's connection settings), on both servers.
//! - `lookup_subject`: Permission.LookupSubject "which users can view document N/2" on the
//!   cache-off server.
//! - `cache_across_writes`: on the cached server, a Data.Write banning a new user on a document,
//!   then a fixed check of `folder.view` (which the write cannot change: the entry stays valid)
//!   or of `document.view` (which it can: the entry is invalidated). The result cache's hits and
//!   misses over each are printed as a hit ratio.
//! - `watch_fanout`: 1, then 100 Watch subscribers (one connection each) on the cached server; each
//!   iteration writes one new tuple through Data.Write and waits until all of them have received
//!   the change. Criterion reports that time; at the end the per-subscriber latencies
//!   (write sent → change received, and the Data.Write call itself) are printed as
//!   p50/p99/p99.9.
//!
//! Run: `cargo bench -p lookout-bench --bench server` (`LOOKOUT_BENCH_DOCS=N` to resize; the
//! default is 100,000 documents, 356,486 tuples, loaded into each server).

// A bench harness fails by panicking, as a test does (clippy.toml allows it in tests only).
#![allow(clippy::panic)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use lookout_bench::docs::Shape;
use lookout_bench::loadgen::runner;
use lookout_bench::loadgen::setup;
use lookout_bench::loadgen::{Dataset, LoadgenError};
use lookout_bench::rng::Rng;
use lookout_proto::v1::data_client::DataClient;
use lookout_proto::v1::permission_client::PermissionClient;
use lookout_proto::v1::watch_client::WatchClient;
use lookout_proto::v1::{
    CheckResult, DataWriteRequest, Entity, PermissionCheckRequest, PermissionLookupEntityRequest,
    PermissionLookupSubjectRequest, RelationReference, Subject, Tuple, WatchRequest,
};
use lookout_server::config::Config;
use lookout_server::serve::{self, Handle};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// The tenant every server has.
const TENANT: &str = "t1";
/// Tuples per Data.Write while loading (the load generator's default).
const LOAD_BATCH: usize = 5000;
/// Watch subscribers of `watch_fanout`.
/// How long any one wait may take before the bench fails instead of hanging.
const WAIT: Duration = Duration::from_secs(60);

fn documents() -> u64 {
    std::env::var("LOOKOUT_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// A server on free loopback ports with the memory store, as the end-to-end tests start it.
fn config(cache_capacity: u64) -> Config {
    Config {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST).into(),
        grpc_port: 0,
        http_port: 0,
        shutdown_timeout: Duration::from_secs(5),
        cache_capacity,
        // The cached server caches every check, so its benches measure the cache's hit path
        // (by default only checks that visit 64 members on average are cached).
        cache_check_min_visits: 0,
        ..Config::default()
    }
}

async fn connect(addr: SocketAddr) -> Channel {
    runner::connect(&addr.to_string(), 1)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
        .pop()
        .unwrap_or_else(|| panic!("no channel to {addr}"))
}

/// The connection "time to the first ID" uses. It cancels a stream per iteration, thousands
/// per run, so:
/// - it may cancel any number of streams: h2's client counts a stream it cancelled and then
///   got DATA for as a local error reset, and after 1024 of them (its default limit) closes
///   the connection with ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED at the next call);
/// - it keeps HTTP/2's default 64 KiB windows, so a cancelled stream leaves little DATA in
///   flight for the next iteration to wade through.
async fn connect_for_cancelling(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("{e}"))
        .tcp_nodelay(true)
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .http2_max_local_error_reset_streams(None)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

/// A started and loaded server.
struct Server {
    name: &'static str,
    handle: Handle,
    channel: Channel,
}

async fn start_and_load(name: &'static str, cache_capacity: u64, documents: u64) -> Server {
    let handle = serve::start(config(cache_capacity))
        .await
        .unwrap_or_else(|e| panic!("starting the {name} server: {e}"));
    let channel = connect(handle.grpc_addr).await;
    let report = setup::load(
        channel.clone(),
        TENANT,
        Dataset::Docs(documents),
        7,
        LOAD_BATCH,
        false,
    )
    .await
    .unwrap_or_else(|e: LoadgenError| panic!("loading the {name} server: {e}"));
    eprintln!(
        "{name} server (cache capacity {cache_capacity}) on {}: {} tuples in {} writes, {:.2} s ({:.0} tuples/s)",
        handle.grpc_addr,
        report.tuples,
        report.writes,
        report.duration_secs,
        report.tuples as f64 / report.duration_secs
    );
    Server {
        name,
        handle,
        channel,
    }
}

fn entity(ty: &str, id: impl ToString) -> Option<Entity> {
    Some(Entity {
        r#type: ty.to_owned(),
        id: id.to_string(),
    })
}

fn user(id: impl ToString) -> Option<Subject> {
    Some(Subject {
        r#type: "user".to_owned(),
        id: id.to_string(),
        relation: String::new(),
    })
}

fn check_request(document: u64, user_id: u64) -> PermissionCheckRequest {
    PermissionCheckRequest {
        tenant_id: TENANT.to_owned(),
        entity: entity("document", document),
        permission: "view".to_owned(),
        subject: user(user_id),
        ..Default::default()
    }
}

fn lookup_request(user_id: u64) -> PermissionLookupEntityRequest {
    PermissionLookupEntityRequest {
        tenant_id: TENANT.to_owned(),
        entity_type: "document".to_owned(),
        permission: "view".to_owned(),
        subject: user(user_id),
        ..Default::default()
    }
}

async fn check(client: &mut PermissionClient<Channel>, req: PermissionCheckRequest) -> i32 {
    client
        .check(req)
        .await
        .unwrap_or_else(|s| panic!("Check: {} ({:?})", s.message(), s.code()))
        .into_inner()
        .can
}

/// Opens the stream and returns when `want` IDs (all of them if `None`) have arrived, with how
/// many did.
async fn stream_ids(
    client: &mut PermissionClient<Channel>,
    req: PermissionLookupEntityRequest,
    want: Option<u64>,
) -> u64 {
    let mut stream = client
        .lookup_entity_stream(req)
        .await
        .unwrap_or_else(|s| panic!("LookupEntityStream: {} ({:?})", s.message(), s.code()))
        .into_inner();
    let mut got = 0u64;
    while want.is_none_or(|w| got < w) {
        match stream.message().await {
            Ok(Some(m)) => {
                black_box(m);
                got += 1;
            }
            Ok(None) => break,
            Err(s) => panic!("LookupEntityStream: {} ({:?})", s.message(), s.code()),
        }
    }
    got
}

fn server_check(c: &mut Criterion, rt: &Runtime, cold: &Server, cached: &Server, n: u64) {
    let users = Shape::new(n).users;
    let fixed = check_request(n / 2, 0);
    let mut cold_client = PermissionClient::new(cold.channel.clone());
    let mut cached_client = PermissionClient::new(cached.channel.clone());
    // The warm-up call of the cached server, and a check that both agree.
    let answers = rt.block_on(async {
        (
            check(&mut cold_client, fixed.clone()).await,
            check(&mut cached_client, fixed.clone()).await,
        )
    });
    if answers != (CheckResult::Allowed as i32, CheckResult::Allowed as i32) {
        panic!("user:0 should view document:{}: {answers:?}", n / 2);
    }

    let mut group = c.benchmark_group("server_check");
    let mut rng = Rng::new(11);
    group.bench_function("cold, random question", |b| {
        b.to_async(rt).iter(|| {
            let req = check_request(rng.below(n), rng.below(users));
            let mut client = cold_client.clone();
            async move { check(&mut client, req).await }
        })
    });
    group.bench_function("cold, fixed question", |b| {
        b.to_async(rt).iter(|| {
            let req = fixed.clone();
            let mut client = cold_client.clone();
            async move { check(&mut client, req).await }
        })
    });
    group.bench_function("cached, fixed question", |b| {
        b.to_async(rt).iter(|| {
            let req = fixed.clone();
            let mut client = cached_client.clone();
            async move { check(&mut client, req).await }
        })
    });
    group.finish();
}

fn lookup_entity_stream(c: &mut Criterion, rt: &Runtime, servers: [&Server; 2]) {
    let req = lookup_request(0);
    let ids = rt.block_on(async {
        let mut counts = Vec::new();
        for server in servers {
            let mut client = PermissionClient::new(server.channel.clone());
            counts.push(stream_ids(&mut client, req.clone(), None).await);
        }
        counts
    });
    if ids.iter().any(|&i| i != ids[0]) {
        panic!("the servers disagree on user:0's documents: {ids:?}");
    }
    let ids = ids[0];
    eprintln!("user:0 sees {ids} documents");

    let mut group = c.benchmark_group("lookup_entity_stream");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    // Time to the first ID first: a group's throughput applies to every later bench in it.
    for want in [Some(1), None] {
        if want.is_none() {
            group.throughput(Throughput::Elements(ids));
        }
        let what = if want.is_some() {
            "first id"
        } else {
            "all ids"
        };
        for server in servers {
            let channel = match want {
                Some(_) => rt.block_on(connect_for_cancelling(server.handle.grpc_addr)),
                None => server.channel.clone(),
            };
            let client = PermissionClient::new(channel);
            group.bench_function(format!("{what}, {}", server.name), |b| {
                b.to_async(rt).iter_custom(|iters| {
                    let mut client = client.clone();
                    let req = req.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let started = Instant::now();
                            let got = stream_ids(&mut client, req.clone(), want).await;
                            total += started.elapsed();
                            if got != want.unwrap_or(ids) {
                                panic!("LookupEntityStream sent {got} IDs, expected {want:?}");
                            }
                        }
                        total
                    }
                })
            });
        }
    }
    group.finish();
}

fn lookup_subject(c: &mut Criterion, rt: &Runtime, cold: &Server, n: u64) {
    let req = PermissionLookupSubjectRequest {
        tenant_id: TENANT.to_owned(),
        entity: entity("document", n / 2),
        permission: "view".to_owned(),
        subject_reference: Some(RelationReference {
            r#type: "user".to_owned(),
            relation: String::new(),
        }),
        ..Default::default()
    };
    let client = PermissionClient::new(cold.channel.clone());
    let call = move |req: PermissionLookupSubjectRequest| {
        let mut client = client.clone();
        async move {
            client
                .lookup_subject(req)
                .await
                .unwrap_or_else(|s| panic!("LookupSubject: {} ({:?})", s.message(), s.code()))
                .into_inner()
                .subject_ids
                .len()
        }
    };
    let users = rt.block_on(call(req.clone()));
    eprintln!("{users} users can view document:{}", n / 2);

    let mut group = c.benchmark_group("lookup_subject");
    group.sample_size(20);
    group.bench_function("users who view one document, cold", |b| {
        b.to_async(rt).iter(|| call(req.clone()))
    });
    group.finish();
}

/// A Watch subscriber's receipt: which subscriber, when, and the change's snap token.
type Receipt = (usize, Instant, String);

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|e| panic!("a histogram of microseconds: {e}"))
}

fn print_percentiles(what: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        return;
    }
    eprintln!(
        "{what}: {} samples, p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn watch_fanout(c: &mut Criterion, rt: &Runtime, cached: &Server, count: usize) {
    let addr = cached.handle.grpc_addr;
    let (tx, rx) = mpsc::unbounded_channel::<Receipt>();
    // One connection and one draining task per subscriber, so none backs up the others.
    let subscribers = rt.block_on(async {
        let mut tasks = Vec::with_capacity(count);
        for i in 0..count {
            let mut client = WatchClient::new(connect(addr).await);
            // The call returns once the server has subscribed, so no later write is missed.
            let mut stream = client
                .watch(WatchRequest {
                    tenant_id: TENANT.to_owned(),
                    snap_token: String::new(),
                })
                .await
                .unwrap_or_else(|s| panic!("Watch: {} ({:?})", s.message(), s.code()))
                .into_inner();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match stream.message().await {
                        Ok(Some(m)) => {
                            let at = Instant::now();
                            let token = m.changes.map(|c| c.snap_token).unwrap_or_default();
                            if tx.send((i, at, token)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(s) => panic!("Watch {i}: {} ({:?})", s.message(), s.code()),
                    }
                }
            }));
        }
        tasks
    });
    drop(tx);

    let mut data = DataClient::new(cached.channel.clone());
    let mut rx = rx;
    let mut next_tuple = 0u64;
    let mut received = histogram();
    let mut write_calls = histogram();

    let mut group = c.benchmark_group("watch_fanout");
    group.sample_size(20);
    group.bench_function(
        format!("one tuple written, all {count} subscribers received it"),
        |b| {
            // Plain iter_custom: the routine borrows the receiver and histograms for the run.
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        next_tuple += 1;
                        // A tuple never written before (also not by another call of this
                        // function), so every write is a change and reaches the subscribers.
                        let req = DataWriteRequest {
                            tenant_id: TENANT.to_owned(),
                            tuples: vec![Tuple {
                                entity: entity("document", format!("watched-{count}-{next_tuple}")),
                                relation: "viewer".to_owned(),
                                subject: user(next_tuple),
                            }],
                            ..Default::default()
                        };
                        let sent = Instant::now();
                        let token = data
                            .write(req)
                            .await
                            .unwrap_or_else(|s| {
                                panic!("Data.Write: {} ({:?})", s.message(), s.code())
                            })
                            .into_inner()
                            .snap_token;
                        let _ = write_calls.record(micros(sent.elapsed()));
                        let mut last = sent;
                        for _ in 0..count {
                            let (i, at, got) = tokio::time::timeout(WAIT, rx.recv())
                                .await
                                .unwrap_or_else(|_| {
                                    panic!("a Watch subscriber did not get the write in {WAIT:?}")
                                })
                                .unwrap_or_else(|| panic!("every Watch subscriber ended"));
                            if got != token {
                                panic!("subscriber {i} got snap token {got}, expected {token}");
                            }
                            let _ = received.record(micros(at - sent));
                            last = last.max(at);
                        }
                        total += last - sent;
                    }
                    total
                })
            })
        },
    );
    group.finish();
    print_percentiles(
        &format!(
            "watch_fanout, {count} subscribers: per subscriber, Data.Write sent -> change received"
        ),
        &received,
    );
    print_percentiles(
        &format!("watch_fanout, {count} subscribers: the Data.Write call"),
        &write_calls,
    );
    for task in subscribers {
        task.abort();
    }
}

/// The result cache across writes, on the cached server: each iteration bans a new user on
/// document 1 through Data.Write, then checks one fixed question. `folder.view` cannot depend on
/// `document#banned`, so its entry stays valid across the writes; `document.view` does, so each
/// write invalidates it. The hit ratio of each kind is printed after it.
fn cache_across_writes(c: &mut Criterion, rt: &Runtime, cached: &Server) {
    let data = DataClient::new(cached.channel.clone());
    let client = PermissionClient::new(cached.channel.clone());
    let mut next_ban = 0u64;
    let mut group = c.benchmark_group("cache_across_writes");
    group.sample_size(20);
    for (ty, what) in [
        ("folder", "folder.view: the writes cannot change it"),
        ("document", "document.view: every write invalidates it"),
    ] {
        let question = PermissionCheckRequest {
            tenant_id: TENANT.to_owned(),
            entity: entity(ty, 1),
            permission: "view".to_owned(),
            subject: user(0),
            ..Default::default()
        };
        let before = cached.handle.service.cache.stats();
        group.bench_function(format!("write one ban, then check {what}"), |b| {
            b.to_async(rt).iter(|| {
                next_ban += 1;
                let write = DataWriteRequest {
                    tenant_id: TENANT.to_owned(),
                    tuples: vec![Tuple {
                        entity: entity("document", 1),
                        relation: "banned".to_owned(),
                        subject: user(format!("banned-{ty}-{next_ban}")),
                    }],
                    ..Default::default()
                };
                let (mut data, mut client, question) =
                    (data.clone(), client.clone(), question.clone());
                async move {
                    data.write(write)
                        .await
                        .unwrap_or_else(|s| panic!("Data.Write: {} ({:?})", s.message(), s.code()));
                    check(&mut client, question).await
                }
            })
        });
        let after = cached.handle.service.cache.stats();
        let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
        eprintln!(
            "cache_across_writes, {what}: {hits} hits, {misses} misses (hit ratio {:.3})",
            hits as f64 / (hits + misses).max(1) as f64
        );
    }
    group.finish();
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn benches(c: &mut Criterion) {
    let n = documents();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a tokio runtime: {e}"));
    let (cold, cached) = rt.block_on(async {
        let cold = start_and_load("cache-off", 0, n).await;
        let cached = start_and_load("cached", Config::default().cache_capacity, n).await;
        (cold, cached)
    });

    server_check(c, &rt, &cold, &cached, n);
    lookup_entity_stream(c, &rt, [&cold, &cached]);
    lookup_subject(c, &rt, &cold, n);
    // Last: these write to the cached server.
    cache_across_writes(c, &rt, &cached);
    watch_fanout(c, &rt, &cached, 1);
    watch_fanout(c, &rt, &cached, 100);

    rt.block_on(async {
        for server in [cold, cached] {
            let name = server.name;
            drop(server.channel);
            if let Err(e) = server.handle.shutdown().await {
                eprintln!("shutting down the {name} server: {e}");
            }
        }
    });
}

criterion_group!(server, benches);
criterion_main!(server);
