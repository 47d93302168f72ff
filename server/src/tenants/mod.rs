//! Tenants and everything one tenant owns in memory: schema versions, the index store,
//! retained snapshots for continuous tokens, the change feed that Watch follows, and (memory
//! store) bundles.
//!
//! With the memory store a tenant *is* the data: [`Tenant::commit_with`] validates and applies
//! a batch under the tenant's write lock and publishes it. With the PostgreSQL store the
//! database is the source of truth and a tenant is its replica: a commit is a database
//! transaction in a [`Database`] (the storage layer's PostgreSQL store implements it), and the
//! server's tailer applies every committed
//! revision here with `Tenant::apply_committed`, each as its own snapshot at exactly that
//! revision. Both paths end in the same publish step: the cache-invalidation clock first, then
//! the snapshot, then the change feed.
//!
//! This file holds the registry of a server's tenants ([`Tenants`]) and its limits; the parts
//! of a tenant are in the files below it:
//!
//! - `tenant.rs`: the [`Tenant`] itself and its commit path, ending in the publish step (and
//!   the INVARIANT that keeps the feed in commit order);
//! - `snapshots.rs`: reading snapshots: the head, a revision a snap token names, the snapshots
//!   continuous tokens pin;
//! - `schema.rs`: schema versions, of which only the newest stay compiled;
//! - `feed.rs`: what Watch reads: the replay of past commits and the live feed;
//! - `bundles.rs`: bundles by name;
//! - `database.rs`: the [`Database`] trait a replica calls its source of truth through, and
//!   [`Backend`];
//! - `gauges.rs`: a tenant's figures for logs and metrics.

mod bundles;
mod database;
mod feed;
mod gauges;
mod schema;
mod snapshots;
mod tenant;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests;

use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use crate::error::{ApiError, ErrorCode};
use crate::sync;

pub use database::{Backend, BuildBatch, Database, RejectBatch};
pub use feed::{Commit, Replay};
pub use gauges::{TenantGauges, sizes};
pub use schema::{SchemaInfo, SchemaVersion};
pub use tenant::Tenant;
pub(crate) use tenant::TenantInfo;

/// The tenant every server has from the start.
pub const DEFAULT_TENANT: &str = "t1";

/// Limits of what one tenant keeps in memory for readers.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Snapshots kept for continuous tokens (the head is always available). With the memory
    /// store only snapshots a continuous token was issued for are kept (see
    /// [`Tenant::pin`]), the newest revisions first; a database replica keeps every recent
    /// one, because tokens issued by other replicas name them.
    pub snapshots: usize,
    /// Committed writes kept for Watch to replay from a snap token (memory store; the
    /// PostgreSQL store replays from the database's change log).
    pub changes: usize,
    /// Changed tuples and attributes kept over all retained writes (the newest write is
    /// always kept, however large).
    pub change_items: usize,
    /// Schema versions kept compiled, the newest ones. Older versions keep only their source
    /// and are compiled again when a request names them (a compiled model is tens of times
    /// its source); requests sharing such a version share one compilation while they run.
    pub schema_versions: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            snapshots: 1024,
            changes: 100_000,
            change_items: 1_000_000,
            schema_versions: 4,
        }
    }
}

/// Every tenant of the server. Cheap to clone: clones share the tenants.
#[derive(Debug, Clone)]
pub struct Tenants {
    map: Arc<DashMap<String, Arc<Tenant>>>,
    retention: Retention,
    backend: Backend,
    /// Most tenants this server creates (`--max-tenants`); see [`Tenants::with_max_tenants`].
    max_tenants: usize,
    /// Held while a tenant is created, so that concurrent creations cannot pass the limit.
    creating: Arc<Mutex<()>>,
}

/// The tenant limit when none is configured.
pub const DEFAULT_MAX_TENANTS: usize = 10_000;

impl Tenants {
    /// A memory store with the default tenant `t1`.
    pub fn new(retention: Retention) -> Tenants {
        let map = DashMap::new();
        map.insert(
            DEFAULT_TENANT.to_string(),
            Arc::new(Tenant::new(DEFAULT_TENANT, "default", retention)),
        );
        Tenants {
            map: Arc::new(map),
            retention,
            backend: Backend::Memory,
            max_tenants: DEFAULT_MAX_TENANTS,
            creating: Arc::default(),
        }
    }

    /// No tenants yet, over `backend` (a database's replica fills them in as it loads).
    pub(crate) fn empty(retention: Retention, backend: Backend) -> Tenants {
        Tenants {
            map: Arc::new(DashMap::new()),
            retention,
            backend,
            max_tenants: DEFAULT_MAX_TENANTS,
            creating: Arc::default(),
        }
    }

    /// These tenants, refusing to create one when `max` exist (counting the default tenant;
    /// with PostgreSQL, the tenants this replica knows of).
    pub fn with_max_tenants(mut self, max: usize) -> Tenants {
        self.max_tenants = max;
        self
    }

    /// RESOURCE_EXHAUSTED when the tenant limit is reached.
    fn check_room(&self) -> Result<(), ApiError> {
        let count = self.map.len();
        if count >= self.max_tenants {
            return Err(ApiError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "cannot create a tenant: {count} tenants exist, the most this server holds (--max-tenants {})",
                    self.max_tenants
                ),
            ));
        }
        Ok(())
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub(crate) fn retention(&self) -> Retention {
        self.retention
    }

    /// The tenant named `id`; a replica asks the database for a tenant it has not heard of.
    ///
    /// Database round trips here and in [`Tenant::schema`], [`Tenant::read_at_least`] and
    /// [`Tenant::pinned`] are [`Database`] calls, whose futures are boxed.
    pub async fn get(&self, id: &str) -> Result<Arc<Tenant>, ApiError> {
        if let Some(t) = self.local(id) {
            return Ok(t);
        }
        if let Backend::Database(db) = &self.backend
            && let Some(t) = db.load_tenant(self, id).await?
        {
            return Ok(t);
        }
        Err(ApiError::tenant_not_found(id))
    }

    pub(crate) fn local(&self, id: &str) -> Option<Arc<Tenant>> {
        self.map.get(id).map(|t| t.clone())
    }

    /// Installs a (re)loaded tenant, replacing any older object of that ID.
    pub(crate) fn install(&self, tenant: Arc<Tenant>) {
        self.map.insert(tenant.id.clone(), tenant);
    }

    pub(crate) fn remove_local(&self, id: &str) -> Option<Arc<Tenant>> {
        self.map.remove(id).map(|(_, t)| t)
    }

    pub async fn create(&self, id: &str, name: &str) -> Result<Arc<Tenant>, ApiError> {
        if let Backend::Database(db) = &self.backend {
            self.check_room()?;
            return db.create_tenant(self, id, name).await;
        }
        use dashmap::mapref::entry::Entry;
        let _creating = sync::lock(&self.creating);
        if !self.map.contains_key(id) {
            self.check_room()?;
        }
        match self.map.entry(id.to_string()) {
            Entry::Occupied(_) => Err(ApiError::tenant_exists(id)),
            Entry::Vacant(slot) => {
                let tenant = Arc::new(Tenant::new(id, name, self.retention));
                slot.insert(tenant.clone());
                Ok(tenant)
            }
        }
    }

    pub async fn delete(&self, id: &str) -> Result<Arc<Tenant>, ApiError> {
        if let Backend::Database(db) = &self.backend {
            return db.delete_tenant(self, id).await;
        }
        self.remove_local(id)
            .ok_or_else(|| ApiError::tenant_not_found(id))
    }

    /// All tenants, sorted by ID (a replica first catches up with the database's list).
    pub async fn list(&self) -> Result<Vec<Arc<Tenant>>, ApiError> {
        if let Backend::Database(db) = &self.backend {
            db.sync_tenants(self).await?;
        }
        Ok(self.list_local())
    }

    pub(crate) fn list_local(&self) -> Vec<Arc<Tenant>> {
        let mut all: Vec<Arc<Tenant>> = self.map.iter().map(|e| e.value().clone()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}
