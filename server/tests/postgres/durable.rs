//! What only a database store can show: concurrent writers watched exactly once, crash
//! safety, replicas sharing one database, Watch retention and its start-up check.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lookout_engine::tokens::SnapToken;
use lookout_proto::v1;
use lookout_server::error::ErrorCode;
use lookout_server::storage::postgres::WatchRetention;

use super::cluster::Cluster;
use super::support::*;
use crate::spawn::{lookout, serve_on_loopback};

fn revision(token: &str) -> u64 {
    SnapToken::decode(token, "t1").unwrap().revision
}

/// 8 writers × 50 single-tuple writes while a watcher listens: every change is delivered
/// once, in commit order, each with the snap token its writer got back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_are_watched_exactly_once_in_commit_order() {
    let f = postgres().await;
    write_schema(&f.service, "t1").await;
    let mut rx = watch(&f.service, "").await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let service = f.service.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..50 {
                    let tuple = format!("doc:{w}-{i}#owner@user:{w}");
                    let token = write(&service, &[&tuple], &[]).await.unwrap();
                    acked.push((format!("+{tuple}"), token));
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let got = next_messages(&mut rx, 400).await;
    // In commit order: strictly increasing revisions, none twice.
    let revisions: Vec<u64> = got.iter().map(|(_, token)| revision(token)).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    let delivered: HashSet<(String, String)> = got
        .iter()
        .map(|(lines, token)| {
            assert_eq!(lines.len(), 1, "one change per write: {lines:?}");
            (lines[0].clone(), token.clone())
        })
        .collect();
    assert_eq!(delivered.len(), 400);
    // Each change arrives with the snap token its writer was answered with.
    assert_eq!(delivered, acked.into_iter().collect::<HashSet<_>>());
    // Each writer's own writes in the order it made them.
    for w in 0..8 {
        let mine: Vec<&String> = got
            .iter()
            .map(|(lines, _)| &lines[0])
            .filter(|l| l.ends_with(&format!("@user:{w}")))
            .collect();
        let expected: Vec<String> = (0..50)
            .map(|i| format!("+doc:{w}-{i}#owner@user:{w}"))
            .collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
    // Nothing more.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
}

/// 64 single-tuple writers start at once, one of them invalid: the writes are committed in
/// groups (fewer transactions than writes), the invalid one fails alone, every valid one is
/// acknowledged with its own revision, the revisions are dense, and Watch delivers each
/// write once, in revision order, with its writer's snap token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_writers_fail_alone_and_keep_their_own_revisions() {
    logs();
    let uri = Cluster::get().database().await;
    let f = postgres_at(pg_options(&uri)).await;
    write_schema(&f.service, "t1").await;
    let base = write(&f.service, &["doc:base#owner@user:b"], &[])
        .await
        .unwrap();
    let r0 = revision(&base);
    let mut rx = watch(&f.service, &base).await.unwrap();
    const WRITERS: usize = 64;
    const INVALID: usize = 17;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let service = f.service.clone();
            let start = start.clone();
            tokio::spawn(async move {
                let tuple = if w == INVALID {
                    format!("doc:{w}#editor@user:{w}")
                } else {
                    format!("doc:{w}#owner@user:{w}")
                };
                start.wait().await;
                (w, tuple.clone(), write(&service, &[&tuple], &[]).await)
            })
        })
        .collect();
    let mut acked = Vec::new();
    for writer in writers {
        let (w, tuple, result) = writer.await.unwrap();
        match result {
            Ok(token) => {
                assert_ne!(w, INVALID, "the invalid write was acknowledged");
                acked.push((format!("+{tuple}"), token));
            }
            Err(e) => {
                assert_eq!(w, INVALID, "a valid write failed: {e}");
                assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
            }
        }
    }
    assert_eq!(acked.len(), WRITERS - 1);
    // Distinct and dense: exactly the revisions after the base.
    let mut revisions: Vec<u64> = acked.iter().map(|(_, token)| revision(token)).collect();
    revisions.sort_unstable();
    let expected: Vec<u64> = (r0 + 1..=r0 + (WRITERS as u64 - 1)).collect();
    assert_eq!(revisions, expected);
    // Committed in groups: fewer transactions than revisions.
    let pool = sqlx::PgPool::connect(&uri).await.unwrap();
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::text) FROM lookout_revisions WHERE tenant_id = 't1' AND revision > $1",
    )
    .bind(r0 as i64)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        transactions < WRITERS as i64 - 1,
        "{transactions} transactions for {} writes",
        WRITERS - 1
    );
    pool.close().await;
    // Watch: each write once, in revision order, with its writer's token.
    let got = next_messages(&mut rx, WRITERS - 1).await;
    let watched: Vec<u64> = got.iter().map(|(_, token)| revision(token)).collect();
    assert_eq!(watched, expected);
    let delivered: HashSet<(String, String)> = got
        .into_iter()
        .map(|(lines, token)| {
            assert_eq!(lines.len(), 1, "one change per write: {lines:?}");
            (lines[0].clone(), token)
        })
        .collect();
    assert_eq!(delivered, acked.iter().cloned().collect::<HashSet<_>>());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
    // The data: every acknowledged tuple, not the rejected one.
    let last = acked
        .iter()
        .map(|(_, t)| t.clone())
        .max_by_key(|t| revision(t))
        .unwrap();
    let stored: HashSet<String> = read_all(&f.service, &last).await.into_iter().collect();
    for (line, _) in &acked {
        assert!(stored.contains(&line[1..]), "{line} is not stored");
    }
    assert_eq!(stored.len(), WRITERS);
}

/// Writes that depend on each other in one group: a delete by filter queued after a write of
/// the tuple it matches sees that write, so the tuple is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_plans_each_write_after_the_ones_before_it() {
    let f = postgres().await;
    write_schema(&f.service, "t1").await;
    for round in 0..20 {
        let tuple = format!("doc:r{round}#owner@user:x");
        let tuples = [tuple.as_str()];
        let (a, b) = tokio::join!(
            write(&f.service, &tuples, &[]),
            f.service.data_delete(v1::DataDeleteRequest {
                tenant_id: "t1".into(),
                tuple_filter: Some(v1::TupleFilter {
                    relation: "owner".into(),
                    ..doc_filter(&[&format!("r{round}")])
                }),
                attribute_filter: None,
            }),
        );
        let tokens = [a.unwrap(), b.unwrap().snap_token];
        let last = tokens.iter().max_by_key(|t| revision(t)).unwrap();
        // Whatever the order the two joined their groups in, the stored state is what running
        // them one at a time in revision order leaves.
        let mut order: Vec<(u64, usize)> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (revision(t), i))
            .collect();
        order.sort_unstable();
        let present = order.last().is_some_and(|(_, i)| *i != 1);
        let stored = read_all(&f.service, last).await;
        assert_eq!(
            stored.contains(&tuple),
            present,
            "round {round}: {order:?} {stored:?}"
        );
    }
}

/// Two servers on one database: a write through A is visible on B at A's snap token, B's
/// Watch delivers it, and a lookup paged on A continues on B with A's continuous token.
/// Every pooled connection plans each statement for its own parameters, so no generic plan
/// made while a tenant was small outlives the tenant's growth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_plan_every_statement_for_its_parameters() {
    let uri = Cluster::get().database().await;
    let pool = lookout_server::storage::postgres::connect(&uri, 2)
        .await
        .unwrap();
    for _ in 0..3 {
        let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(mode, "force_custom_plan");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_database() {
    let uri = Cluster::get().database().await;
    let a = server(&uri).await;
    let b = server(&uri).await;
    let (sa, sb) = (a.service.clone(), b.service.clone());
    write_schema(&sa, "t1").await;
    let mut watch_b = watch(&sb, "").await.unwrap();

    let tuples: Vec<String> = (0..9).map(|i| format!("doc:{i}#owner@user:a")).collect();
    let refs: Vec<&str> = tuples.iter().map(String::as_str).collect();
    let token = write(&sa, &refs, &[]).await.unwrap();
    // Visible on B at A's token (B waits for its tailer if it must).
    assert!(check(&sb, "doc:4", "user:a", &token).await);
    assert_eq!(read_all(&sb, &token).await.len(), 9);
    let got = next_messages(&mut watch_b, 1).await;
    assert_eq!(got[0].1, token);
    assert_eq!(got[0].0.len(), 9);

    // Page 1 on A, the rest on B.
    let (mut ids, mut next) = lookup_page(&sa, "user:a", 4, "", &token).await.unwrap();
    while !next.is_empty() {
        let (more, after) = lookup_page(&sb, "user:a", 4, &next, "").await.unwrap();
        ids.extend(more);
        next = after;
    }
    let (all_on_a, _) = lookup_page(&sa, "user:a", 0, "", &token).await.unwrap();
    assert_eq!(ids, all_on_a);
    assert_eq!(ids.len(), 9);

    // Tenants, schema versions and bundles written through B are seen through A.
    sb.tenant_create(v1::TenantCreateRequest {
        id: "acme".into(),
        name: String::new(),
    })
    .await
    .unwrap();
    let version = write_schema(&sb, "acme").await;
    let read = sa
        .schema_read(v1::SchemaReadRequest {
            tenant_id: "acme".into(),
            metadata: Some(v1::SchemaReadRequestMetadata {
                schema_version: version,
            }),
        })
        .await;
    assert!(read.is_ok(), "{read:?}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A restarted server has every acknowledged write and continues Watch from snap tokens
/// handed out before the restart; a continuous token pinned to a revision the restarted
/// server does not hold is refused (never continued on a newer snapshot), and the listing
/// started again sees every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_a_restart() {
    let uri = Cluster::get().database().await;
    let first = server(&uri).await;
    let s = first.service.clone();
    write_schema(&s, "t1").await;
    let tuples: Vec<String> = (0..6).map(|i| format!("doc:{i}#owner@user:a")).collect();
    let refs: Vec<&str> = tuples.iter().map(String::as_str).collect();
    let token = write(&s, &refs, &[]).await.unwrap();
    let (page, next) = lookup_page(&s, "user:a", 3, "", &token).await.unwrap();
    let later = write(&s, &["doc:7#owner@user:a"], &[]).await.unwrap();
    first.shutdown().await.unwrap();

    let second = server(&uri).await;
    let s = second.service.clone();
    assert!(check(&s, "doc:7", "user:a", &later).await);
    let e = lookup_page(&s, "user:a", 0, &next, "").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::FailedPrecondition, "{e}");
    assert!(e.message.contains("no longer retained"), "{e}");
    assert_eq!(page, ["0", "1", "2"]);
    let (all, _) = lookup_page(&s, "user:a", 0, "", &later).await.unwrap();
    assert_eq!(all, ["0", "1", "2", "3", "4", "5", "7"]);
    let mut rx = watch(&s, &token).await.unwrap();
    let got = next_messages(&mut rx, 1).await;
    assert_eq!(got, [(vec!["+doc:7#owner@user:a".to_string()], later)]);
    second.shutdown().await.unwrap();
}

/// Watch from a snap token older than the retention window is a clear error, never a silent
/// empty stream; a token inside the window still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_retention_collects_old_revisions() {
    let uri = Cluster::get().database().await;
    let mut options = pg_options(&uri);
    options.watch_retention = WatchRetention::Revisions(3);
    options.gc_interval = Duration::from_millis(100);
    let f = postgres_at(options).await;
    write_schema(&f.service, "t1").await;
    let mut tokens = Vec::new();
    for i in 0..10 {
        tokens.push(
            write(&f.service, &[&format!("doc:{i}#owner@user:a")], &[])
                .await
                .unwrap(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let e = loop {
        match watch(&f.service, &tokens[0]).await {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(_) => panic!("old revisions were not collected within 10 s"),
        }
    };
    assert_eq!(e.code, ErrorCode::FailedPrecondition, "{e}");
    assert!(e.message.contains("no longer retained"), "{e}");
    let mut rx = watch(&f.service, &tokens[8]).await.unwrap();
    let got = next_messages(&mut rx, 1).await;
    assert_eq!(got[0].1, tokens[9]);
    // A snap token beyond the database's head is a bad token, after the bounded wait.
    let beyond = SnapToken { revision: 1_000 }.encode("t1");
    let started = Instant::now();
    let e = lookup_page(&f.service, "user:a", 0, "", &beyond)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `lookout serve` child process over `uri`, its gRPC address, and its log file.
fn spawn_server(uri: &str, log: &PathBuf) -> (Child, String) {
    let grpc = free_port();
    let http = free_port();
    let child = lookout()
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--database-engine",
            "postgres",
            "--database-uri",
            uri,
            "--grpc-port",
            &grpc.to_string(),
            "--http-port",
            &http.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{grpc}"))
}

async fn connect(addr: &str) -> tonic::transport::Channel {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let endpoint = tonic::transport::Endpoint::from_shared(addr.to_string()).unwrap();
        match endpoint.connect().await {
            Ok(channel) => return channel,
            Err(e) if Instant::now() > deadline => panic!("cannot reach {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// `kill -9` of a server in the middle of writing: after a restart every acknowledged write
/// is there, and Watch resumed from a mid-stream snap token replays exactly the later changes
/// in the order they were acknowledged.
/// Every stored `doc` tuple, read page by page over gRPC at least as fresh as `snap`.
async fn stored_docs(
    data: &mut v1::data_client::DataClient<tonic::transport::Channel>,
    snap: &str,
) -> HashSet<String> {
    let mut stored = HashSet::new();
    let mut token = String::new();
    loop {
        let page = data
            .read_relationships(v1::RelationshipReadRequest {
                tenant_id: "t1".into(),
                metadata: Some(v1::RelationshipReadRequestMetadata {
                    snap_token: snap.to_string(),
                }),
                filter: Some(doc_filter(&[])),
                page_size: 100,
                continuous_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        stored.extend(page.tuples.iter().map(text));
        if page.continuous_token.is_empty() {
            return stored;
        }
        token = page.continuous_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let uri = Cluster::get().database().await;
    let log = std::env::temp_dir().join(format!("lookout-kill9-{}.log", std::process::id()));
    let (mut child, addr) = spawn_server(&uri, &log);
    let channel = connect(&addr).await;
    let mut schema = v1::schema_client::SchemaClient::new(channel.clone());
    schema
        .write(v1::SchemaWriteRequest {
            tenant_id: "t1".into(),
            schema: SCHEMA.into(),
        })
        .await
        .unwrap();
    // One writer writes until the server dies; the test kills it after 60 acknowledgements.
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = {
        let channel = channel.clone();
        tokio::spawn(async move {
            let mut data = v1::data_client::DataClient::new(channel);
            for i in 0.. {
                let tuple = format!("doc:{i}#owner@user:k");
                let written = data
                    .write(v1::DataWriteRequest {
                        tenant_id: "t1".into(),
                        metadata: Some(v1::DataWriteRequestMetadata {
                            schema_version: String::new(),
                        }),
                        tuples: vec![t(&tuple)],
                        attributes: vec![],
                    })
                    .await;
                match written {
                    Ok(r) => {
                        if acks_tx.send((tuple, r.into_inner().snap_token)).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        })
    };
    let mut acked = Vec::new();
    while acked.len() < 60 {
        let ack = tokio::time::timeout(Duration::from_secs(30), acks_rx.recv())
            .await
            .expect("writes are acknowledged")
            .expect("the writer runs");
        acked.push(ack);
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let _ = writer.await;
    while let Ok(ack) = acks_rx.try_recv() {
        acked.push(ack);
    }

    let (mut child, addr) = spawn_server(&uri, &log);
    let channel = connect(&addr).await;
    let mut data = v1::data_client::DataClient::new(channel.clone());
    let last = acked.last().map(|(_, token)| token.clone()).unwrap();
    let stored = stored_docs(&mut data, &last).await;
    for (tuple, _) in &acked {
        assert!(stored.contains(tuple), "acknowledged {tuple} was lost");
    }
    // At most the one write in flight at the kill committed without its acknowledgement.
    assert!(stored.len() <= acked.len() + 1, "{} stored", stored.len());

    // Watch from the 20th acknowledgement replays exactly the later ones, in order.
    let mut watch = v1::watch_client::WatchClient::new(channel)
        .watch(v1::WatchRequest {
            tenant_id: "t1".into(),
            snap_token: acked[19].1.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    for (tuple, token) in &acked[20..] {
        let m = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("a watch message within 10 s")
            .unwrap()
            .expect("the watch stream is open");
        let (lines, got_token) = watch_lines(&m);
        assert_eq!(lines, [format!("+{tuple}")]);
        assert_eq!(&got_token, token);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_file(&log);
}

/// 16 writers write concurrently, so their writes commit in groups, until the server is
/// killed with SIGKILL: after a restart every acknowledged write is stored, at most the
/// writes in flight at the kill (one per writer) committed unacknowledged, and Watch replays
/// the revisions densely, in order, each acknowledged write with its own token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_group_commits_survive_kill_9() {
    const WRITERS: usize = 16;
    let uri = Cluster::get().database().await;
    let log = std::env::temp_dir().join(format!("lookout-kill9-group-{}.log", std::process::id()));
    let (mut child, addr) = spawn_server(&uri, &log);
    let channel = connect(&addr).await;
    v1::schema_client::SchemaClient::new(channel.clone())
        .write(v1::SchemaWriteRequest {
            tenant_id: "t1".into(),
            schema: SCHEMA.into(),
        })
        .await
        .unwrap();
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let channel = channel.clone();
            let acks_tx = acks_tx.clone();
            tokio::spawn(async move {
                let mut data = v1::data_client::DataClient::new(channel);
                for i in 0.. {
                    let tuple = format!("doc:{w}-{i}#owner@user:k");
                    let written = data
                        .write(v1::DataWriteRequest {
                            tenant_id: "t1".into(),
                            metadata: None,
                            tuples: vec![t(&tuple)],
                            attributes: vec![],
                        })
                        .await;
                    match written {
                        Ok(r) => {
                            if acks_tx.send((tuple, r.into_inner().snap_token)).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    drop(acks_tx);
    let mut acked = Vec::new();
    while acked.len() < 300 {
        let ack = tokio::time::timeout(Duration::from_secs(30), acks_rx.recv())
            .await
            .expect("writes are acknowledged")
            .expect("the writers run");
        acked.push(ack);
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in writers {
        let _ = w.await;
    }
    while let Ok(ack) = acks_rx.try_recv() {
        acked.push(ack);
    }
    acked.sort_by_key(|(_, token)| revision(token));
    let revisions: Vec<u64> = acked.iter().map(|(_, token)| revision(token)).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");

    let (mut child, addr) = spawn_server(&uri, &log);
    let channel = connect(&addr).await;
    let mut data = v1::data_client::DataClient::new(channel.clone());
    let last = acked.last().map(|(_, token)| token.clone()).unwrap();
    let stored = stored_docs(&mut data, &last).await;
    for (tuple, _) in &acked {
        assert!(stored.contains(tuple), "acknowledged {tuple} was lost");
    }
    assert!(
        stored.len() <= acked.len() + WRITERS,
        "{} stored for {} acknowledged",
        stored.len(),
        acked.len()
    );
    // The writes did commit in groups.
    let pool = sqlx::PgPool::connect(&uri).await.unwrap();
    let (transactions, revisions): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT xmin::text), count(*) FROM lookout_revisions WHERE tenant_id = 't1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        transactions < revisions,
        "{transactions} transactions for {revisions} revisions"
    );
    pool.close().await;

    // Watch from the 100th acknowledgement: every later revision once, densely, in order,
    // each acknowledged write with the token its writer got.
    let from = revision(&acked[99].1);
    let mut watch = v1::watch_client::WatchClient::new(channel)
        .watch(v1::WatchRequest {
            tenant_id: "t1".into(),
            snap_token: acked[99].1.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let expected: std::collections::HashMap<String, String> = acked[100..]
        .iter()
        .map(|(tuple, token)| (format!("+{tuple}"), token.clone()))
        .collect();
    let mut seen = 0;
    let mut previous = from;
    while seen < expected.len() {
        let m = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("a watch message within 10 s")
            .unwrap()
            .expect("the watch stream is open");
        let (lines, got_token) = watch_lines(&m);
        assert_eq!(revision(&got_token), previous + 1, "dense, in order");
        previous += 1;
        assert_eq!(lines.len(), 1, "one change per write: {lines:?}");
        if let Some(token) = expected.get(&lines[0]) {
            assert_eq!(token, &got_token, "{}", lines[0]);
            seen += 1;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_file(&log);
}

/// With Watch on, a database without commit timestamps is refused at start, naming the
/// setting; with Watch off it is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_needs_track_commit_timestamp() {
    let cluster = Cluster::without_commit_timestamps();
    let uri = cluster.database().await;
    let output = serve_on_loopback(&["--database-engine", "postgres", "--database-uri", &uri])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("track_commit_timestamp = on"), "{stderr}");
    let mut options = pg_options(&uri);
    options.watch = false;
    let f = postgres_at(options).await;
    write_schema(&f.service, "t1").await;
}

/// `lookout migrate up|down|status` against a fresh database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_commands_apply_revert_and_list() {
    let uri = Cluster::get().database().await;
    let migrate = |args: &[&str]| {
        let output = lookout()
            .arg("migrate")
            .args(args)
            .args(["--database-uri", &uri])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "{args:?}: {stderr}");
        stdout
    };
    assert!(migrate(&["status"]).contains("0001 pending"));
    assert!(migrate(&["up"]).contains("applied 2 migration(s)"));
    let status = migrate(&["status"]);
    assert!(
        status.contains("0001 applied") && status.contains("0002 applied"),
        "{status}"
    );
    assert!(migrate(&["up"]).contains("applied 0 migration(s)"));
    migrate(&["down"]);
    let status = migrate(&["status"]);
    assert!(
        status.contains("0001 applied") && status.contains("0002 pending"),
        "{status}"
    );
    migrate(&["down"]);
    assert!(migrate(&["status"]).contains("0001 pending"));
    // Without the tables and with --auto-migrate=false, serve says what to do.
    let output = serve_on_loopback(&[
        "--auto-migrate=false",
        "--database-engine",
        "postgres",
        "--database-uri",
        &uri,
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lookout migrate up"), "{stderr}");
    let output = lookout()
        .args(["migrate", "up"])
        .env_remove("LOOKOUT_DATABASE_URI")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// A replica that cannot reach a snap token's revision within `--snap-token-wait` answers
/// UNAVAILABLE, naming the revision, instead of a stale answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_is_unavailable_not_stale() {
    let uri = Cluster::get().database().await;
    let a = postgres_at(pg_options(&uri)).await;
    let mut b = postgres_at(pg_options(&uri)).await;
    write_schema(&a.service, "t1").await;
    // B has the schema; then it stops following.
    let first = write(&a.service, &["doc:1#owner@user:a"], &[])
        .await
        .unwrap();
    assert!(check(&b.service, "doc:1", "user:a", &first).await);
    b.stop_following();
    // Let its tailer see the cancellation before anything else arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let token = write(&a.service, &["doc:2#owner@user:a"], &[])
        .await
        .unwrap();
    let e = lookup_page(&b.service, "user:a", 0, "", &token)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    assert!(
        e.message.contains(&format!(
            "has not yet reached revision {}",
            revision(&token)
        )),
        "{e}"
    );
}

/// A tenant deleted and created again through one replica is a new, empty tenant on the other
/// replica too, never a mix of old and new data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_tenant_is_reloaded_on_other_replicas() {
    let uri = Cluster::get().database().await;
    let a = postgres_at(pg_options(&uri)).await;
    let b = postgres_at(pg_options(&uri)).await;
    let (sa, sb) = (&a.service, &b.service);
    write_schema(sa, "t1").await;
    let old = write(sa, &["doc:old#owner@user:a"], &[]).await.unwrap();
    assert!(check(sb, "doc:old", "user:a", &old).await);
    sa.tenant_delete(v1::TenantDeleteRequest { id: "t1".into() })
        .await
        .unwrap();
    sa.tenant_create(v1::TenantCreateRequest {
        id: "t1".into(),
        name: "again".into(),
    })
    .await
    .unwrap();
    write_schema(sa, "t1").await;
    let new = write(sa, &["doc:new#owner@user:a"], &[]).await.unwrap();
    // The new tenant's revision 1 is not the old one's: B must have reloaded, not caught up.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tuples = read_all(sb, "").await;
        if tuples == ["doc:new#owner@user:a"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B still holds {tuples:?} (token {new})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(check(sb, "doc:new", "user:a", &new).await);
    assert!(!check(sb, "doc:old", "user:a", &new).await);
}

/// A replica whose listening connection is dropped reconnects and catches up with what was
/// committed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_listener_reconnects_and_catches_up() {
    let uri = Cluster::get().database().await;
    let a = postgres_at(pg_options(&uri)).await;
    let b = postgres_at(pg_options(&uri)).await;
    write_schema(&a.service, "t1").await;
    let pool = sqlx::PgPool::connect(&uri).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(killed, [true, true], "both replicas listen");
    let mut rx = watch(&b.service, "").await.unwrap();
    let token = write(&a.service, &["doc:1#owner@user:a"], &[])
        .await
        .unwrap();
    let got = next_messages(&mut rx, 1).await;
    assert_eq!(got[0].1, token);
    assert!(check(&b.service, "doc:1", "user:a", &token).await);
}
