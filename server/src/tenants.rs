//! Tenants and everything one tenant owns in the in-memory store: schema versions, the index
//! store, retained snapshots for continuous tokens, the change log that Watch replays, and
//! bundles.
//!
//! INVARIANT: `Tenant::commit` holds `write_lock` across the store write and the change-log
//! append, so the log is in commit order and every revision appears in it exactly once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use lookout_engine::eval::Model;
use lookout_engine::eval::deps::DataKey;
use lookout_engine::index::{Change, Snapshot, Store, WriteBatch, WriteError};
use lookout_engine::schema::SchemaError;
use tokio::sync::broadcast;

use crate::error::{ApiError, ErrorCode};

/// The tenant every server has from the start.
pub const DEFAULT_TENANT: &str = "t1";

/// Limits of what one tenant keeps in memory for readers.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Snapshots kept for continuous tokens (the head is always kept).
    pub snapshots: usize,
    /// Committed writes kept for Watch to replay from a snap token.
    pub changes: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            snapshots: 1024,
            changes: 100_000,
        }
    }
}

/// One schema version.
#[derive(Debug)]
pub struct SchemaVersion {
    pub version: String,
    pub source: String,
    pub model: Arc<Model>,
    pub created_at: SystemTime,
}

/// One committed write as Watch sees it.
#[derive(Debug, Clone)]
pub struct Commit {
    pub revision: u64,
    pub changes: Arc<Vec<Change>>,
}

#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    /// Unique per tenant object: a deleted and re-created tenant never shares cache entries.
    pub incarnation: u64,
    /// The last revision that changed each (entity type, relation or attribute).
    changed: DashMap<DataKey, u64>,
    pub name: String,
    pub created_at: SystemTime,
    store: Store,
    schemas: RwLock<Vec<Arc<SchemaVersion>>>,
    retained: Mutex<VecDeque<Arc<Snapshot>>>,
    log: Mutex<VecDeque<Commit>>,
    feed: broadcast::Sender<Commit>,
    write_lock: Mutex<()>,
    bundles: RwLock<BTreeMap<String, Vec<u8>>>,
    retention: Retention,
}

/// Makes sortable, unique, 20-character version IDs (like Permify's): milliseconds since the
/// epoch and a counter, in lowercase base32.
fn new_version_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut value: u128 = (u128::from(millis) << 40) | u128::from(count & ((1 << 40) - 1));
    let mut out = [0u8; 20];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

impl Tenant {
    pub fn new(id: &str, name: &str, retention: Retention) -> Tenant {
        let store = Store::new();
        let head = store.head();
        let (feed, _) = broadcast::channel(4096);
        static INCARNATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Tenant {
            id: id.to_string(),
            incarnation: INCARNATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            changed: DashMap::new(),
            name: name.to_string(),
            created_at: SystemTime::now(),
            store,
            schemas: RwLock::new(Vec::new()),
            retained: Mutex::new(VecDeque::from([head])),
            log: Mutex::new(VecDeque::new()),
            feed,
            write_lock: Mutex::new(()),
            bundles: RwLock::new(BTreeMap::new()),
            retention,
        }
    }

    /// The latest snapshot.
    pub fn head(&self) -> Arc<Snapshot> {
        self.store.head()
    }

    /// The snapshot at exactly `revision`, if still retained.
    pub fn snapshot_at(&self, revision: u64) -> Option<Arc<Snapshot>> {
        let retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        retained
            .iter()
            .rev()
            .find(|s| s.revision() == revision)
            .cloned()
    }

    /// Compiles and stores a new schema version, which becomes the head.
    pub fn write_schema(&self, source: &str) -> Result<Arc<SchemaVersion>, SchemaError> {
        let model = Model::compile(source)?;
        let version = Arc::new(SchemaVersion {
            version: new_version_id(),
            source: source.to_string(),
            model: Arc::new(model),
            created_at: SystemTime::now(),
        });
        self.schemas
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(version.clone());
        Ok(version)
    }

    /// The schema version named `version`, or the head when `version` is empty.
    pub fn schema(&self, version: &str) -> Result<Arc<SchemaVersion>, ApiError> {
        let schemas = self.schemas.read().unwrap_or_else(|e| e.into_inner());
        if version.is_empty() {
            return schemas.last().cloned().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!("tenant `{}` has no schema yet: write one first", self.id),
                )
            });
        }
        schemas
            .iter()
            .find(|s| s.version == version)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!(
                        "schema version `{version}` not found in tenant `{}`",
                        self.id
                    ),
                )
            })
    }

    /// Every schema version, newest first.
    pub fn schemas(&self) -> Vec<Arc<SchemaVersion>> {
        let schemas = self.schemas.read().unwrap_or_else(|e| e.into_inner());
        schemas.iter().rev().cloned().collect()
    }

    /// Builds a batch from the head snapshot, validates it against `model`'s schema, commits
    /// it and publishes the change. `build` runs under the write lock, so a delete by filter or
    /// a bundle sees exactly the data it changes.
    pub fn commit(
        &self,
        model: &Model,
        build: impl FnOnce(&Snapshot) -> Result<WriteBatch, ApiError>,
    ) -> Result<(Arc<Snapshot>, Arc<Vec<Change>>), ApiError> {
        self.commit_with(model, build, ApiError::from_write)
    }

    /// [`Tenant::commit`], with `rejected` turning the store's rejection of the batch into the
    /// client's error (so that it can name the request field of the offending item).
    pub fn commit_with(
        &self,
        model: &Model,
        build: impl FnOnce(&Snapshot) -> Result<WriteBatch, ApiError>,
        rejected: impl FnOnce(WriteError) -> ApiError,
    ) -> Result<(Arc<Snapshot>, Arc<Vec<Change>>), ApiError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let batch = build(&self.store.head())?;
        let outcome = self
            .store
            .write_then(&model.schema, &batch, |revision, changes| {
                // Before the snapshot is visible: a cache entry must never outlive its data.
                for change in changes {
                    let key = match change {
                        Change::Tuple(_, t) => DataKey {
                            entity_type: t.entity.ty.clone(),
                            name: t.relation.clone(),
                        },
                        Change::Attribute(_, a) => DataKey {
                            entity_type: a.entity.ty.clone(),
                            name: a.name.clone(),
                        },
                    };
                    self.changed.insert(key, revision);
                }
            })
            .map_err(rejected)?;
        let snapshot = outcome.snapshot;
        let changes = Arc::new(outcome.changes);
        {
            let mut retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
            retained.push_back(snapshot.clone());
            while retained.len() > self.retention.snapshots.max(1) {
                retained.pop_front();
            }
        }
        let commit = Commit {
            revision: snapshot.revision(),
            changes: changes.clone(),
        };
        {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            log.push_back(commit.clone());
            while log.len() > self.retention.changes.max(1) {
                log.pop_front();
            }
        }
        // Nobody listening is fine.
        let _ = self.feed.send(commit);
        Ok((snapshot, changes))
    }

    /// Subscribes to commits after `revision`: the retained ones now, and a receiver for the
    /// rest. Errors when commits after `revision` are no longer retained.
    pub fn subscribe_after(
        &self,
        revision: u64,
    ) -> Result<(Vec<Commit>, broadcast::Receiver<Commit>), ApiError> {
        // Subscribe first, then read the log under the write lock, so nothing committed in
        // between is missed; the caller drops live commits it already replayed.
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = self.feed.subscribe();
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let head = self.store.head().revision();
        if revision > head {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                format!("snap token names revision {revision}, beyond this tenant's head {head}"),
            ));
        }
        let oldest_kept = log.front().map_or(head + 1, |c| c.revision);
        if revision + 1 < oldest_kept && revision < head {
            return Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                format!(
                    "changes after revision {revision} are no longer retained (oldest kept: {oldest_kept}); start a new watch without a snap token"
                ),
            ));
        }
        let replay = log
            .iter()
            .filter(|c| c.revision > revision)
            .cloned()
            .collect();
        Ok((replay, receiver))
    }

    pub fn bundles(&self) -> &RwLock<BTreeMap<String, Vec<u8>>> {
        &self.bundles
    }
}

impl crate::cache::ChangeClock for Tenant {
    fn last_changed(&self, key: &DataKey) -> u64 {
        self.changed.get(key).map_or(0, |r| *r)
    }
}

/// Every tenant of the server.
#[derive(Debug)]
pub struct Tenants {
    map: DashMap<String, Arc<Tenant>>,
    retention: Retention,
}

impl Tenants {
    /// A registry with the default tenant `t1`.
    pub fn new(retention: Retention) -> Tenants {
        let map = DashMap::new();
        map.insert(
            DEFAULT_TENANT.to_string(),
            Arc::new(Tenant::new(DEFAULT_TENANT, "default", retention)),
        );
        Tenants { map, retention }
    }

    pub fn get(&self, id: &str) -> Result<Arc<Tenant>, ApiError> {
        self.map
            .get(id)
            .map(|t| t.clone())
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("tenant `{id}` not found")))
    }

    pub fn create(&self, id: &str, name: &str) -> Result<Arc<Tenant>, ApiError> {
        use dashmap::mapref::entry::Entry;
        match self.map.entry(id.to_string()) {
            Entry::Occupied(_) => Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!("tenant `{id}` already exists"),
            )),
            Entry::Vacant(slot) => {
                let tenant = Arc::new(Tenant::new(id, name, self.retention));
                slot.insert(tenant.clone());
                Ok(tenant)
            }
        }
    }

    pub fn delete(&self, id: &str) -> Result<Arc<Tenant>, ApiError> {
        self.map
            .remove(id)
            .map(|(_, t)| t)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("tenant `{id}` not found")))
    }

    /// All tenants, sorted by ID.
    pub fn list(&self) -> Vec<Arc<Tenant>> {
        let mut all: Vec<Arc<Tenant>> = self.map.iter().map(|e| e.value().clone()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

/// Counts of what a tenant holds, for logs and metrics.
pub fn sizes(tenant: &Tenant) -> HashMap<&'static str, u64> {
    let head = tenant.head();
    HashMap::from([
        ("revision", head.revision()),
        ("tuples", head.tuple_count()),
    ])
}
