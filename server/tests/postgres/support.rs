//! Fixtures: a service over the memory store or over a fresh PostgreSQL database, servers on
//! free ports, and small request helpers.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use lookout_engine::model::{Attribute, Tuple};
use lookout_proto::v1;
use lookout_server::cache::ResultCache;
use lookout_server::config::{Config, DatabaseEngine};
use lookout_server::error::ApiError;
use lookout_server::serve::{self, Handle};
use lookout_server::service::{Limits, Service, convert};
use lookout_server::storage::postgres::{self, PgOptions};
use lookout_server::tenants::{Retention, Tenants};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::cluster::Cluster;

pub const SCHEMA: &str = "entity user {}

entity team {
    relation member @user
}

entity doc {
    relation owner @user
    relation viewer @user @team#member
    attribute public boolean
    attribute level integer
    permission view = owner or viewer or public
}
";

/// A service over one store; stopping its background tasks when dropped.
pub struct Fixture {
    pub service: Arc<Service>,
    _stop: Option<DropGuard>,
}

impl Fixture {
    /// Stops the background tasks (the tailer): this replica stops following the database.
    pub fn stop_following(&mut self) {
        self._stop.take();
    }
}

pub async fn memory() -> Fixture {
    Fixture {
        service: Service::new(Limits::default(), Retention::default()),
        _stop: None,
    }
}

pub fn pg_options(uri: &str) -> PgOptions {
    let mut options = PgOptions::new(uri);
    options.snap_token_wait = Duration::from_secs(1);
    options.max_connections = 12;
    // Small, so that replays take several steps.
    options.replay_step = 2;
    options
}

/// A service over the database `options` name (migrated at start).
pub async fn postgres_at(options: PgOptions) -> Fixture {
    let stop = CancellationToken::new();
    let tenants: Tenants = postgres::start(options, Retention::default(), stop.clone())
        .await
        .unwrap_or_else(|e| panic!("the postgres store starts: {e}"));
    Fixture {
        service: Service::with_tenants(Limits::default(), tenants, ResultCache::new(10_000)),
        _stop: Some(stop.drop_guard()),
    }
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

pub async fn postgres() -> Fixture {
    logs();
    let uri = Cluster::get().database().await;
    postgres_at(pg_options(&uri)).await
}

/// A whole server (gRPC and HTTP on free ports) over the database at `uri`.
pub async fn server(uri: &str) -> Handle {
    let mut config = Config {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST).into(),
        grpc_port: 0,
        http_port: 0,
        database_engine: DatabaseEngine::Postgres,
        database_uri: Some(uri.to_string()),
        shutdown_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    config.postgres.snap_token_wait = Duration::from_secs(2);
    config.postgres.max_connections = 12;
    serve::start(config)
        .await
        .unwrap_or_else(|e| panic!("the server starts: {e}"))
}

pub fn t(text: &str) -> v1::Tuple {
    convert::tuple_out(&Tuple::parse(text).unwrap())
}

pub fn a(text: &str) -> v1::Attribute {
    convert::attribute_out(&Attribute::parse(text).unwrap())
}

pub fn text(t: &v1::Tuple) -> String {
    convert::tuple(t, "t").unwrap().to_string()
}

pub async fn write_schema(s: &Service, tenant: &str) -> String {
    s.schema_write(v1::SchemaWriteRequest {
        tenant_id: tenant.into(),
        schema: SCHEMA.into(),
    })
    .await
    .unwrap()
    .schema_version
}

pub async fn write(s: &Service, tuples: &[&str], attributes: &[&str]) -> Result<String, ApiError> {
    s.data_write(v1::DataWriteRequest {
        tenant_id: "t1".into(),
        metadata: None,
        tuples: tuples.iter().map(|x| t(x)).collect(),
        attributes: attributes.iter().map(|x| a(x)).collect(),
    })
    .await
    .map(|r| r.snap_token)
}

pub fn doc_filter(ids: &[&str]) -> v1::TupleFilter {
    v1::TupleFilter {
        entity: Some(v1::EntityFilter {
            r#type: "doc".into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
        }),
        relation: String::new(),
        subject: None,
    }
}

/// Every tuple (all pages) at least as fresh as `snap`.
pub async fn read_all(s: &Service, snap: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = s
            .read_relationships(v1::RelationshipReadRequest {
                tenant_id: "t1".into(),
                metadata: Some(v1::RelationshipReadRequestMetadata {
                    snap_token: snap.to_string(),
                }),
                filter: Some(v1::TupleFilter::default()),
                page_size: 2,
                continuous_token: token,
            })
            .await
            .unwrap();
        out.extend(page.tuples.iter().map(text));
        if page.continuous_token.is_empty() {
            out.sort();
            return out;
        }
        token = page.continuous_token;
    }
}

pub async fn read_attributes(s: &Service) -> Vec<String> {
    let r = s
        .read_attributes(v1::AttributeReadRequest {
            tenant_id: "t1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out: Vec<String> = r
        .attributes
        .iter()
        .map(|x| convert::attribute(x, "a").unwrap().to_string())
        .collect();
    out.sort();
    out
}

pub async fn check(s: &Service, entity: &str, subject: &str, snap: &str) -> bool {
    let (ety, eid) = entity.split_once(':').unwrap();
    let (sty, sid) = subject.split_once(':').unwrap();
    let r = s
        .check(v1::PermissionCheckRequest {
            tenant_id: "t1".into(),
            metadata: Some(v1::PermissionCheckRequestMetadata {
                snap_token: snap.to_string(),
                schema_version: String::new(),
                depth: 20,
            }),
            entity: Some(v1::Entity {
                r#type: ety.into(),
                id: eid.into(),
            }),
            permission: "view".into(),
            subject: Some(v1::Subject {
                r#type: sty.into(),
                id: sid.into(),
                relation: String::new(),
            }),
            context: None,
            arguments: vec![],
        })
        .await
        .unwrap();
    r.can == v1::CheckResult::Allowed as i32
}

/// One page of `doc.view` for `subject`.
pub async fn lookup_page(
    s: &Service,
    subject: &str,
    page_size: u32,
    continuous_token: &str,
    snap: &str,
) -> Result<(Vec<String>, String), ApiError> {
    let (sty, sid) = subject.split_once(':').unwrap();
    let r = s
        .lookup_entity(v1::PermissionLookupEntityRequest {
            tenant_id: "t1".into(),
            metadata: Some(v1::PermissionLookupEntityRequestMetadata {
                snap_token: snap.to_string(),
                schema_version: String::new(),
                depth: 20,
            }),
            entity_type: "doc".into(),
            permission: "view".into(),
            subject: Some(v1::Subject {
                r#type: sty.into(),
                id: sid.into(),
                relation: String::new(),
            }),
            page_size,
            continuous_token: continuous_token.to_string(),
            ..Default::default()
        })
        .await?;
    Ok((r.entity_ids, r.continuous_token))
}

/// The changes of one Watch message as text (`+doc:1#owner@user:a`, `-doc:1$level|...`) and
/// its snap token.
pub fn watch_lines(m: &v1::WatchResponse) -> (Vec<String>, String) {
    let changes = m.changes.clone().unwrap_or_default();
    let lines = changes
        .data_changes
        .iter()
        .map(|c| {
            let op = if c.operation == v1::data_change::Operation::Create as i32 {
                "+"
            } else {
                "-"
            };
            match &c.r#type {
                Some(v1::data_change::Type::Tuple(t)) => format!("{op}{}", text(t)),
                Some(v1::data_change::Type::Attribute(a)) => {
                    format!("{op}{}", convert::attribute(a, "a").unwrap())
                }
                None => format!("{op}?"),
            }
        })
        .collect();
    (lines, changes.snap_token)
}

/// Starts a Watch of `t1` after `snap` (empty: from now on).
pub async fn watch(
    s: &Service,
    snap: &str,
) -> Result<lookout_server::service::stream::ServerStream<v1::WatchResponse>, ApiError> {
    s.watch(v1::WatchRequest {
        tenant_id: "t1".into(),
        snap_token: snap.to_string(),
    })
    .await
}

/// The next `n` Watch messages (each within 10 s), as (lines, snap token).
pub async fn next_messages(
    rx: &mut lookout_server::service::stream::ServerStream<v1::WatchResponse>,
    n: usize,
) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("watch message {} of {n} within 10 s", out.len() + 1))
            .expect("the watch stream is open")
            .expect("a watch message, not an error");
        out.push(watch_lines(&m));
    }
    out
}
