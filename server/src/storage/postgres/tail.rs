//! The tailer: one task per server that keeps every tenant's replica current with the
//! database, and the collector of old change-log revisions.
//!
//! Notifications (`LISTEN lookout`) are received by their own task and handed over a channel,
//! so a notification is never lost to a cancelled read. The tailer catches a tenant up when a
//! notification names it, when a writer or reader of this server kicks it, and for every
//! tenant on a slow poll (which also covers notifications lost while the listening connection
//! was re-established). Catching up reads, in one repeatable-read snapshot, the tenant's
//! revision counter and the change rows after the applied revision, and applies each revision
//! in order as its own snapshot.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::codec::{self, CHANGE_COLUMNS, ChangeRow};
use super::{CHANNEL, Pg, WatchRetention, db_error, read_only_tx, tenant_revisions};
use crate::error::ApiError;
use crate::tenants::{Tenant, Tenants};

/// Revisions read per step of a catch-up.
const CATCH_UP_STEP: i64 = 1000;

/// What the listening task hands to the tailer.
#[derive(Debug)]
pub(super) enum Heard {
    /// A notification's payload.
    Payload(String),
    /// The connection was lost and re-established: notifications may have been missed.
    Reconnected,
}

/// Starts listening on [`CHANNEL`]; the returned receiver yields what is heard until
/// `shutdown`.
pub(super) async fn listen(
    pool: &PgPool,
    shutdown: CancellationToken,
) -> Result<mpsc::UnboundedReceiver<Heard>, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let heard = tokio::select! {
                () = shutdown.cancelled() => return,
                heard = listener.try_recv() => heard,
            };
            let sent = match heard {
                Ok(Some(n)) => tx.send(Heard::Payload(n.payload().to_string())),
                Ok(None) => tx.send(Heard::Reconnected),
                Err(e) => {
                    tracing::warn!(error = %e, "listening for database changes failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    tx.send(Heard::Reconnected)
                }
            };
            if sent.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// Runs the tailer and the collector until `shutdown`.
pub(super) fn spawn(
    pg: Arc<Pg>,
    tenants: Tenants,
    mut heard: mpsc::UnboundedReceiver<Heard>,
    mut kicks: mpsc::UnboundedReceiver<String>,
    shutdown: CancellationToken,
) {
    let collector = {
        let pg = pg.clone();
        let shutdown = shutdown.clone();
        async move {
            let mut every = tokio::time::interval(pg.options.gc_interval);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = every.tick() => {
                        if let Err(e) = pg.collect().await {
                            tracing::warn!(error = %e, "collecting old watch revisions failed");
                        }
                    }
                }
            }
        }
    };
    tokio::spawn(collector);
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(pg.options.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut due: HashSet<String> = HashSet::new();
            let mut schemas: HashSet<String> = HashSet::new();
            let mut everything = false;
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = poll.tick() => everything = true,
                got = heard.recv() => match got {
                    Some(h) => note(h, &mut due, &mut schemas, &mut everything),
                    None => return,
                },
                got = kicks.recv() => match got {
                    Some(id) => { due.insert(id); }
                    None => return,
                },
            }
            // Coalesce whatever else is already waiting.
            while let Ok(h) = heard.try_recv() {
                note(h, &mut due, &mut schemas, &mut everything);
            }
            while let Ok(id) = kicks.try_recv() {
                due.insert(id);
            }
            if everything {
                if let Err(e) = pg.sync_all(&tenants).await {
                    tracing::warn!(error = %e, "catching up with the database failed; retrying");
                }
                continue;
            }
            for id in schemas {
                if let Some(tenant) = tenants.local(&id)
                    && let Err(e) = pg.refresh_schemas(&tenant).await
                {
                    tracing::warn!(tenant = %id, error = %e, "reading new schema versions failed");
                }
            }
            for id in due {
                if let Err(e) = pg.sync_one(&tenants, &id).await {
                    tracing::warn!(tenant = %id, error = %e, "catching up with the database failed; retrying");
                }
            }
        }
    });
}

fn note(
    heard: Heard,
    due: &mut HashSet<String>,
    schemas: &mut HashSet<String>,
    everything: &mut bool,
) {
    match heard {
        Heard::Reconnected => *everything = true,
        Heard::Payload(p) => {
            // `c:<tenant>:<revision>`, `t:<tenant>`, `s:<tenant>`, `b:<tenant>`.
            let mut parts = p.splitn(3, ':');
            match (parts.next(), parts.next()) {
                (Some("c" | "t"), Some(tenant)) => {
                    due.insert(tenant.to_string());
                }
                (Some("s"), Some(tenant)) => {
                    schemas.insert(tenant.to_string());
                }
                (Some("b"), _) => {}
                _ => tracing::debug!(payload = %p, "ignoring an unknown notification"),
            }
        }
    }
}

impl Pg {
    /// Catches up with every tenant: the tenant list, then each tenant's revisions.
    async fn sync_all(&self, tenants: &Tenants) -> Result<(), ApiError> {
        for (id, revision, schema_seq) in self.sync_tenants(tenants).await? {
            let Some(tenant) = tenants.local(&id) else {
                continue;
            };
            if schema_seq > tenant.last_schema_seq() {
                self.refresh_schemas(&tenant).await?;
            }
            if revision > tenant.head().revision() {
                self.catch_up(tenants, &tenant).await?;
            }
        }
        Ok(())
    }

    /// Catches up with one tenant: its existence and its revisions.
    async fn sync_one(&self, tenants: &Tenants, id: &str) -> Result<(), ApiError> {
        match tenants.local(id) {
            Some(tenant) => self.catch_up(tenants, &tenant).await,
            None => {
                // Created on another replica: load it now (a no-op if it is gone again).
                self.load_tenant_by_id(tenants, id).await.map(|_| ())
            }
        }
    }

    /// Applies every revision of `tenant` committed after the one it has applied.
    async fn catch_up(&self, tenants: &Tenants, tenant: &Arc<Tenant>) -> Result<(), ApiError> {
        loop {
            let applied = tenant.head().revision();
            let mut tx = read_only_tx(&self.tail_pool, "begin catching up").await?;
            let Some((head, gc)) = tenant_revisions(&mut tx, tenant).await? else {
                // Deleted, or deleted and created again.
                drop(tx);
                return self.reload(tenants, &tenant.id).await;
            };
            if head <= applied {
                return Ok(());
            }
            if applied < gc {
                tracing::warn!(
                    tenant = %tenant.id,
                    applied,
                    collected_up_to = gc,
                    "this server fell behind the change log; reloading the tenant"
                );
                drop(tx);
                return self.reload(tenants, &tenant.id).await;
            }
            let upto = head.min(applied + CATCH_UP_STEP as u64);
            let rows: Vec<ChangeRow> = sqlx::query_as(&format!(
                "SELECT {CHANGE_COLUMNS} FROM lookout_changes
                 WHERE tenant_id = $1 AND revision > $2 AND revision <= $3 ORDER BY revision, seq"
            ))
            .bind(&tenant.id)
            .bind(applied as i64)
            .bind(upto as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error("read the change log"))?;
            drop(tx);
            let mut groups = codec::by_revision(rows).into_iter().peekable();
            for revision in applied + 1..=upto {
                if revision <= tenant.head().revision() {
                    // Applied meanwhile by the server that wrote it.
                    if groups.peek().is_some_and(|(r, _)| *r == revision) {
                        groups.next();
                    }
                    continue;
                }
                let rows = match groups.peek() {
                    Some((r, _)) if *r == revision => groups.next().map(|(_, rows)| rows),
                    _ => None,
                }
                .unwrap_or_default();
                let decoded = codec::decode(&rows).map_err(ApiError::internal)?;
                let interner = tenant.store().interner();
                for (ty, id, n) in &decoded.numbers {
                    interner
                        .intern_as(ty, id, *n)
                        .map_err(|e| ApiError::internal(format!("tenant `{}`: {e}", tenant.id)))?;
                }
                tenant
                    .apply_committed(revision, &decoded.batch, decoded.changes)
                    .map_err(|e| ApiError::internal(format!("tenant `{}`: {e}", tenant.id)))?;
            }
        }
    }

    /// Deletes the revisions the watch retention no longer keeps, for every tenant.
    async fn collect(&self) -> Result<(), ApiError> {
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT id, revision, gc_revision FROM lookout_tenants")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error("list tenants"))?;
        for (id, head, gc) in rows {
            let cut: i64 = match self.options.watch_retention {
                WatchRetention::Revisions(keep) => head - i64::try_from(keep).unwrap_or(i64::MAX),
                WatchRetention::Age(age) => sqlx::query_scalar(
                    "SELECT COALESCE(MAX(revision), 0)::bigint FROM lookout_revisions
                     WHERE tenant_id = $1 AND committed_at < now() - make_interval(secs => $2)",
                )
                .bind(&id)
                .bind(age.as_secs_f64())
                .fetch_one(&self.pool)
                .await
                .map_err(db_error("find old revisions"))?,
            };
            if cut <= gc {
                continue;
            }
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(db_error("begin collecting"))?;
            sqlx::query(
                "UPDATE lookout_tenants SET gc_revision = GREATEST(gc_revision, $2) WHERE id = $1",
            )
            .bind(&id)
            .bind(cut)
            .execute(&mut *tx)
            .await
            .map_err(db_error("record collected revisions"))?;
            // The change rows have no foreign key to their revisions (migration 0002): both go.
            sqlx::query("DELETE FROM lookout_changes WHERE tenant_id = $1 AND revision <= $2")
                .bind(&id)
                .bind(cut)
                .execute(&mut *tx)
                .await
                .map_err(db_error("delete old changes"))?;
            sqlx::query("DELETE FROM lookout_revisions WHERE tenant_id = $1 AND revision <= $2")
                .bind(&id)
                .bind(cut)
                .execute(&mut *tx)
                .await
                .map_err(db_error("delete old revisions"))?;
            tx.commit().await.map_err(db_error("commit collecting"))?;
            tracing::debug!(tenant = %id, up_to = cut, "collected old watch revisions");
        }
        Ok(())
    }
}
