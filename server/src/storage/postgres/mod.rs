//! The PostgreSQL store: the database is the source of truth, and every server keeps its
//! in-memory index as a replica of it, so any number of servers can share one database.
//!
//! # Writes
//!
//! Every write, delete and bundle run becomes its own revision. The writes of one tenant that
//! arrive while an earlier group is committing queue, and are committed together, as a group,
//! in one transaction (`Pg::commit`, `group`; the transaction is `Pg::commit_group`):
//!
//! 1. `pg_advisory_xact_lock` on the tenant. The lock is held until COMMIT, so the tenant's
//!    groups run one after another.
//! 2. Read the tenant's revision counter `R`; wait until the local index has applied `R` (so
//!    the batches are built and validated against exactly the committed data: a delete by
//!    filter deletes exactly what matches at that revision). Build each write's batch and
//!    compute its effective changes in queue order, each against `R` plus the accepted writes
//!    before it (staged on a private snapshot, `Snapshot::staged`). A rejected batch fails
//!    alone and takes no revision; the accepted ones get `R + 1 ..= R + n` in queue order.
//!    If none is accepted, the transaction rolls back: nothing changes.
//! 3. Bump the counter to `R + n` (recording each of the revisions and queueing one
//!    `NOTIFY lookout` in the same statement), number new entity IDs (dense per type, table
//!    `lookout_entities`), apply the tuple and attribute changes of the whole group (the last
//!    change of each item counts), append the change rows of each revision under its own
//!    revision, COMMIT.
//! 4. Apply `R + 1 ..= R + n` in order to the local index (the leader knows exactly what it
//!    committed, and the index is at `R` since step 2; if the tailer got there first, that is
//!    that), and answer each writer with its revision's snap token (or its own error) only
//!    once the local index has the group, so a client reading its own write on the same server
//!    never waits. A database error fails the whole group; its writes were not committed
//!    unless COMMIT itself was interrupted, as with any single transaction.
//!
//! `lookout import --database-uri` ([`bulk`]) is one more writer under the same protocol, from
//! outside any server: it takes the tenant's advisory lock, lists only effective changes, numbers
//! new entities densely, records revisions `R + 1 ..= R + k` with one notification, and commits
//! the change rows with the data in one transaction, so replicas and Watch cannot tell it from
//! a group of writes.
//!
//! # Why Watch is exactly-once and in commit order
//!
//! Revisions are assigned under the tenant's advisory lock and the lock is released only after
//! the transaction is committed and visible. So revision `R + 1` is assigned only after
//! revision `R` committed (or rolled back, and then `R` is assigned again), whether in the
//! same group's transaction or an earlier one: revisions are dense, and they are in commit
//! order, however many writers run concurrently and however
//! long a transaction takes. There is no window in which a reader sees revision `R + 1` but not
//! `R`, which is the flaw of following a log by transaction IDs or sequence values (a lower
//! ID can commit after a higher one was read). The tailer therefore reads, in one snapshot,
//! the counter `H` and the change rows of the revisions after the one it applied up to `H`,
//! applies them in order and never skips or repeats one. Watch replays from the same change
//! rows (resumable from any snap token still in the log, on any replica, after restarts) and
//! then follows the tailer's feed.
//!
//! Watch requires `track_commit_timestamp = on`, as Permify's does; the server checks it at
//! start when Watch is enabled. Old revisions are garbage-collected after `--watch-retention`;
//! a Watch resumed from before that window gets FAILED_PRECONDITION.
//!
//! # Replicas
//!
//! At start the server loads every tenant in one repeatable-read snapshot (schemas, entity
//! numbers, tuples, attributes at one revision), then the tailer ([`tail`]) keeps it current:
//! `LISTEN lookout` delivers each commit's tenant and revision within milliseconds, and a slow
//! poll catches anything a dropped connection lost. Each revision becomes its own snapshot at
//! exactly that revision, so a continuous token pinned to revision `R` on one replica works on
//! any replica that applied `R`; entity numbers come from the database, so result order and
//! the positions in continuous tokens agree across replicas and restarts. A read carrying a
//! snap token the replica has not reached waits for it, up to `--snap-token-wait`, then fails
//! with UNAVAILABLE.
//!
//! Tenants, schema versions and bundles written through another replica are seen through the
//! notifications too, and read through to the database when a request names one the replica
//! has not heard of yet.

pub mod bulk;
mod codec;
mod group;
mod load;
pub mod migrate;
pub mod tail;
mod write;

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use lookout_engine::eval::Model;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::mpsc;
/// Stops the tailer and the collector [`start`] runs (re-exported for callers of `start`).
pub use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ErrorCode};
use crate::tenants::{
    Backend, BuildBatch, Commit, Database, RejectBatch, Retention, SchemaVersion, Tenant, Tenants,
};

/// The channel every replica listens on. Payloads: `c:<tenant>:<revision>` (a commit),
/// `t:<tenant>` (created or deleted), `s:<tenant>` (a schema version), `b:<tenant>` (bundles).
pub const CHANNEL: &str = "lookout";

/// First key of the two-key advisory locks Lookout takes (the second is the tenant's hash).
const LOCK_CLASS: i32 = 0x4c4b_4f54; // "LKOT"

/// How long Watch keeps old revisions in the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchRetention {
    /// Revisions committed longer ago than this are collected.
    Age(Duration),
    /// Only this many of each tenant's latest revisions are kept.
    Revisions(u64),
}

impl Default for WatchRetention {
    fn default() -> Self {
        WatchRetention::Age(Duration::from_secs(24 * 3600))
    }
}

impl std::fmt::Display for WatchRetention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchRetention::Age(d) => write!(f, "{}s", d.as_secs()),
            WatchRetention::Revisions(n) => write!(f, "{n} revisions"),
        }
    }
}

/// Parses `24h`, `30m`, `90s` (an age) or `10000 revisions` / `10000rev` (a count).
pub fn parse_watch_retention(text: &str) -> Result<WatchRetention, String> {
    let trimmed = text.trim();
    for suffix in ["revisions", "revision", "revs", "rev"] {
        if let Some(count) = trimmed.strip_suffix(suffix) {
            return count
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(WatchRetention::Revisions)
                .ok_or_else(|| {
                    format!(
                        "`{text}` is not a watch retention: use e.g. `24h` or `10000 revisions`"
                    )
                });
        }
    }
    crate::units::parse_duration(trimmed)
        .ok()
        .filter(|d| !d.is_zero())
        .map(WatchRetention::Age)
        .ok_or_else(|| {
            format!("`{text}` is not a watch retention: use e.g. `24h` or `10000 revisions`")
        })
}

/// The PostgreSQL store's settings that `lookout serve` takes (ignored by the memory store),
/// with their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgSettings {
    pub auto_migrate: bool,
    pub max_connections: u32,
    pub snap_token_wait: Duration,
    pub watch_retention: WatchRetention,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            auto_migrate: true,
            max_connections: 20,
            snap_token_wait: Duration::from_secs(5),
            watch_retention: WatchRetention::default(),
        }
    }
}

/// Settings of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub uri: String,
    /// Apply pending migrations at start.
    pub auto_migrate: bool,
    /// Most connections in the pool.
    pub max_connections: u32,
    /// How long a read carrying a snap token waits for this replica to reach its revision.
    pub snap_token_wait: Duration,
    /// How long Watch can resume from an old snap token.
    pub watch_retention: WatchRetention,
    /// How often the tailer checks every tenant even without notifications.
    pub poll_interval: Duration,
    /// How often old revisions are collected.
    pub gc_interval: Duration,
    /// Whether Watch is served (then `track_commit_timestamp` must be on).
    pub watch: bool,
    /// Revisions a Watch replay reads from the change log at a time.
    pub replay_step: u64,
}

impl PgOptions {
    /// Options with the default settings.
    pub fn new(uri: impl Into<String>) -> PgOptions {
        PgOptions::with_settings(uri, PgSettings::default())
    }

    /// Options with `settings` and the defaults of the rest.
    pub fn with_settings(uri: impl Into<String>, settings: PgSettings) -> PgOptions {
        PgOptions {
            uri: uri.into(),
            auto_migrate: settings.auto_migrate,
            max_connections: settings.max_connections,
            snap_token_wait: settings.snap_token_wait,
            watch_retention: settings.watch_retention,
            poll_interval: Duration::from_secs(1),
            gc_interval: Duration::from_secs(60),
            watch: true,
            replay_step: 1000,
        }
    }
}

/// Why the PostgreSQL store could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot connect to the database at {uri}: {source}")]
    Connect { uri: String, source: sqlx::Error },
    #[error("database at {uri}: {what}: {source}")]
    Query {
        uri: String,
        what: &'static str,
        source: sqlx::Error,
    },
    #[error("cannot apply the database migrations at {uri}: {source}")]
    Migrate {
        uri: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error(
        "the database at {uri} has no Lookout tables: run `lookout migrate up --database-uri ...` or start with --auto-migrate=true"
    )]
    NotMigrated { uri: String },
    #[error(
        "watch needs the PostgreSQL setting track_commit_timestamp = on, and the database at {uri} has it {value}: set `track_commit_timestamp = on` in postgresql.conf and restart PostgreSQL, or start with --watch=false"
    )]
    CommitTimestamps { uri: String, value: String },
    #[error("cannot load tenant `{tenant}` from the database: {message}")]
    Load { tenant: String, message: String },
}

/// The URI with any password masked, for messages and logs.
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return uri.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => uri.to_string(),
    }
}

/// Connects a pool to `uri`.
pub async fn connect(uri: &str, max_connections: u32) -> Result<PgPool, StartError> {
    let options: PgConnectOptions = uri.parse().map_err(|source| StartError::Connect {
        uri: redact(uri),
        source,
    })?;
    // One connection first, for the real reason when the database cannot be reached (the
    // pool would only report that it timed out).
    let probe = sqlx::ConnectOptions::connect(&options)
        .await
        .map_err(|source| StartError::Connect {
            uri: redact(uri),
            source,
        })?;
    let _ = sqlx::Connection::close(probe).await;
    PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        // Every statement planned for its own parameters and the tables' present size. A
        // prepared statement's generic plan, made while a tenant's tables were small, kept
        // scanning whole tables after fast growth (one write's entity-number lookup took 15 s)
        // until the next ANALYZE; planning these statements costs well under a millisecond.
        // A `SET` after connecting rather than a startup option, which poolers such as
        // PgBouncer refuse by default.
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET plan_cache_mode = force_custom_plan")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_with(options)
        .await
        .map_err(|source| StartError::Connect {
            uri: redact(uri),
            source,
        })
}

/// A database shared by replicas, and this server's handle on it.
#[derive(Debug)]
pub struct Pg {
    pool: PgPool,
    /// The tailer's own connections, so that writers holding every connection of `pool`
    /// while they wait for the tailer can never starve it.
    tail_pool: PgPool,
    options: PgOptions,
    /// Asks the tailer to catch up with one tenant now.
    kick: mpsc::UnboundedSender<String>,
    /// Serialises loading tenants, so a tenant is loaded once even if asked for twice.
    loading: tokio::sync::Mutex<()>,
    /// Each tenant's writes waiting to be committed in a group ([`group`]).
    groups: group::Queues,
    /// This store, for the group leaders it spawns.
    me: Weak<Pg>,
}

/// A database error as the client sees it: the store is unavailable.
fn db_error(what: &str) -> impl FnOnce(sqlx::Error) -> ApiError + '_ {
    move |e| ApiError::new(ErrorCode::Unavailable, format!("database: {what}: {e}"))
}

/// A read-only transaction that sees one committed state for all its reads (loading a tenant,
/// catching up, a Watch replay). `what` names the work in errors.
async fn read_only_tx(
    pool: &PgPool,
    what: &str,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
    let mut tx = pool.begin().await.map_err(db_error(what))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db_error(what))?;
    Ok(tx)
}

/// The tenant's latest revision and the oldest its change log still holds (`gc_revision`), as
/// `tx` sees them; `None` if the tenant is gone or is another incarnation than `tenant`.
async fn tenant_revisions(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    tenant: &Tenant,
) -> Result<Option<(u64, u64)>, ApiError> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT revision, gc_revision, incarnation FROM lookout_tenants WHERE id = $1",
    )
    .bind(&tenant.id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error("read the tenant's revision"))?;
    Ok(match row {
        Some((head, gc, incarnation)) if incarnation as u64 == tenant.incarnation => {
            Some((head as u64, gc as u64))
        }
        _ => None,
    })
}

impl Pg {
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn options(&self) -> &PgOptions {
        &self.options
    }

    /// Asks the tailer to catch up with `tenant` now (a write committed here, or a reader
    /// waits for a revision).
    fn kick(&self, tenant: &str) {
        // The tailer gone means the server is stopping.
        let _ = self.kick.send(tenant.to_string());
    }

    /// Waits until `tenant`'s replica reached `revision`, up to `--snap-token-wait`.
    pub(crate) async fn reach(&self, tenant: &Tenant, revision: u64) -> Result<(), ApiError> {
        self.kick(&tenant.id);
        if tenant
            .wait_applied(revision, self.options.snap_token_wait)
            .await
        {
            return Ok(());
        }
        let committed: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM lookout_tenants WHERE id = $1")
                .bind(&tenant.id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error("read the tenant's revision"))?;
        match committed {
            Some(head) if (head as u64) < revision => Err(ApiError::invalid(format!(
                "snap token names revision {revision}, beyond tenant `{}`'s latest revision {head}",
                tenant.id
            ))),
            _ => Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "this server has not yet reached revision {revision} of tenant `{}` (it is at {}) after waiting {:?} (snap-token-wait); retry",
                    tenant.id,
                    tenant.head().revision(),
                    self.options.snap_token_wait
                ),
            )),
        }
    }

    async fn notify(&self, payload: String) -> Result<(), ApiError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map_err(db_error("notify the other servers"))?;
        Ok(())
    }

    /// Stores bundles by name, replacing bundles of the same names, in one transaction.
    pub(crate) async fn put_bundles(
        &self,
        tenant: &Tenant,
        bundles: Vec<(String, Vec<u8>)>,
    ) -> Result<(), ApiError> {
        let (names, bodies): (Vec<String>, Vec<Vec<u8>>) = bundles.into_iter().unzip();
        sqlx::query(
            "INSERT INTO lookout_bundles (tenant_id, name, body)
             SELECT $1, name, body FROM UNNEST($2::text[], $3::bytea[]) AS b(name, body)
             ON CONFLICT (tenant_id, name) DO UPDATE SET body = EXCLUDED.body",
        )
        .bind(&tenant.id)
        .bind(&names)
        .bind(&bodies)
        .execute(&self.pool)
        .await
        .map_err(db_error("store bundles"))?;
        self.notify(format!("b:{}", tenant.id)).await
    }

    pub(crate) async fn bundle(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        sqlx::query_scalar("SELECT body FROM lookout_bundles WHERE tenant_id = $1 AND name = $2")
            .bind(&tenant.id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("read a bundle"))
    }

    pub(crate) async fn delete_bundle(&self, tenant: &Tenant, name: &str) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM lookout_bundles WHERE tenant_id = $1 AND name = $2")
            .bind(&tenant.id)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db_error("delete a bundle"))?;
        self.notify(format!("b:{}", tenant.id)).await
    }
}

/// The tenants' side of the store: [`crate::tenants`] calls these through its [`Database`]
/// trait.
impl Database for Pg {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn reach<'a>(
        &'a self,
        tenant: &'a Tenant,
        revision: u64,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(Pg::reach(self, tenant, revision))
    }

    fn write_schema<'a>(
        &'a self,
        tenant: &'a Tenant,
        version: SchemaVersion,
    ) -> BoxFuture<'a, Result<SchemaVersion, ApiError>> {
        Box::pin(Pg::write_schema(self, tenant, version))
    }

    fn refresh_schemas<'a>(&'a self, tenant: &'a Tenant) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(Pg::refresh_schemas(self, tenant))
    }

    fn commit<'a>(
        &'a self,
        tenant: &'a Arc<Tenant>,
        model: Arc<Model>,
        build: BuildBatch,
        rejected: RejectBatch,
    ) -> BoxFuture<'a, Result<u64, ApiError>> {
        Box::pin(Pg::commit(self, tenant, model, build, rejected))
    }

    fn replay<'a>(
        &'a self,
        tenant: &'a Tenant,
        after: u64,
        upto: u64,
    ) -> BoxFuture<'a, Result<(Vec<Commit>, u64), ApiError>> {
        Box::pin(Pg::replay(self, tenant, after, upto))
    }

    fn put_bundles<'a>(
        &'a self,
        tenant: &'a Tenant,
        bundles: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(Pg::put_bundles(self, tenant, bundles))
    }

    fn bundle<'a>(
        &'a self,
        tenant: &'a Tenant,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, ApiError>> {
        Box::pin(Pg::bundle(self, tenant, name))
    }

    fn delete_bundle<'a>(
        &'a self,
        tenant: &'a Tenant,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(Pg::delete_bundle(self, tenant, name))
    }

    fn load_tenant<'a>(
        &'a self,
        tenants: &'a Tenants,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Tenant>>, ApiError>> {
        Box::pin(self.load_tenant_by_id(tenants, id))
    }

    fn create_tenant<'a>(
        &'a self,
        tenants: &'a Tenants,
        id: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Tenant>, ApiError>> {
        Box::pin(Pg::create_tenant(self, tenants, id, name))
    }

    fn delete_tenant<'a>(
        &'a self,
        tenants: &'a Tenants,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Tenant>, ApiError>> {
        Box::pin(Pg::delete_tenant(self, tenants, id))
    }

    fn sync_tenants<'a>(&'a self, tenants: &'a Tenants) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move { Pg::sync_tenants(self, tenants).await.map(|_| ()) })
    }
}

/// Connects, migrates (if asked), checks the settings, loads every tenant and starts the
/// tailer and the change-log collector, which run until `shutdown`. Returns the tenants.
pub async fn start(
    options: PgOptions,
    retention: Retention,
    shutdown: CancellationToken,
) -> Result<Tenants, StartError> {
    let uri = redact(&options.uri);
    let pool = connect(&options.uri, options.max_connections).await?;
    if options.auto_migrate {
        migrate::MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StartError::Migrate {
                uri: uri.clone(),
                source,
            })?;
    }
    let migrated: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('lookout_tenants')::text")
            .fetch_one(&pool)
            .await
            .map_err(|source| StartError::Query {
                uri: uri.clone(),
                what: "look for Lookout's tables",
                source,
            })?;
    if migrated.is_none() {
        return Err(StartError::NotMigrated { uri });
    }
    if options.watch {
        let value: String = sqlx::query_scalar("SHOW track_commit_timestamp")
            .fetch_one(&pool)
            .await
            .map_err(|source| StartError::Query {
                uri: uri.clone(),
                what: "read track_commit_timestamp",
                source,
            })?;
        if value != "on" {
            return Err(StartError::CommitTimestamps { uri, value });
        }
    }
    // Listen before loading, so nothing committed meanwhile goes unnoticed.
    let notifications = tail::listen(&pool, shutdown.clone())
        .await
        .map_err(|source| StartError::Query {
            uri: uri.clone(),
            what: "listen for changes",
            source,
        })?;
    let tail_pool = connect(&options.uri, 2).await?;
    let (kick, kicks) = mpsc::unbounded_channel();
    let pg = Arc::new_cyclic(|me| Pg {
        pool,
        tail_pool,
        options,
        kick,
        loading: tokio::sync::Mutex::new(()),
        groups: group::Queues::default(),
        me: me.clone(),
    });
    let tenants = Tenants::empty(retention, Backend::Database(pg.clone()));
    pg.load_all(&tenants).await?;
    tail::spawn(pg, tenants.clone(), notifications, kicks, shutdown);
    Ok(tenants)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn watch_retention_is_an_age_or_a_count() {
        assert_eq!(
            parse_watch_retention("24h"),
            Ok(WatchRetention::Age(Duration::from_secs(86_400)))
        );
        assert_eq!(
            parse_watch_retention("90s"),
            Ok(WatchRetention::Age(Duration::from_secs(90)))
        );
        assert_eq!(
            parse_watch_retention("100000 revisions"),
            Ok(WatchRetention::Revisions(100_000))
        );
        assert_eq!(
            parse_watch_retention("5rev"),
            Ok(WatchRetention::Revisions(5))
        );
        for bad in ["", "0", "0 revisions", "ten revisions", "1d"] {
            let e = parse_watch_retention(bad).unwrap_err();
            assert!(e.contains("watch retention"), "{bad}: {e}");
        }
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact("postgres://lookout:secret@db:5432/lookout"),
            "postgres://lookout:***@db:5432/lookout"
        );
        assert_eq!(redact("postgres://db/lookout"), "postgres://db/lookout");
        assert_eq!(redact("postgres://me@db/x"), "postgres://me@db/x");
        assert_eq!(redact("not a uri"), "not a uri");
    }
}
