//! One tenant: what it holds, how it is made, and its commit path. Both stores end a commit in
//! the same publish step ([`Tenant::publish`]): the memory store after applying a batch itself
//! ([`Tenant::commit_local`]), a database replica after the database committed it
//! ([`Tenant::apply_committed`]). The publish step marks what changed for the result cache
//! first, then makes the snapshot visible, then sends the commit to Watch.
//!
//! INVARIANT: publishing (store write or committed apply, change-log append, feed send) happens
//! under `write_lock`, so the feed is in commit order and every revision appears in it exactly
//! once; [`Tenant::subscribe_after`] takes the same lock to subscribe and read the head at one
//! point of that order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use dashmap::DashMap;
use lookout_engine::eval::Model;
use lookout_engine::eval::deps::DataKey;
use lookout_engine::index::{
    Change, ChangeList, Interner, Snapshot, Store, WriteBatch, WriteError,
};
use tokio::sync::{broadcast, watch};

use super::schema::SchemaEntry;
use super::{Backend, Commit, Retention};
use crate::error::ApiError;
use crate::sync;

#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    /// Unique per tenant object: a deleted and re-created tenant never shares cache entries.
    /// With PostgreSQL it is the database's, so it is the same on every replica.
    pub incarnation: u64,
    /// The last revision that changed each (entity type, relation or attribute).
    changed: DashMap<DataKey, u64>,
    pub name: String,
    pub created_at: SystemTime,
    pub(super) store: Store,
    /// Every schema version, oldest first; only the newest [`Retention::schema_versions`]
    /// are kept compiled.
    pub(super) schemas: RwLock<Vec<SchemaEntry>>,
    pub(super) retained: Mutex<VecDeque<Arc<Snapshot>>>,
    pub(super) log: Mutex<VecDeque<Commit>>,
    /// Changes in `log`, over all its commits (only changed under `log`'s lock).
    log_items: AtomicUsize,
    /// The live feed of commits to Watch subscribers: made when the first one subscribes and
    /// dropped at a commit that finds none left (its buffer of
    /// [`FEED_CAPACITY`](super::feed::FEED_CAPACITY) slots is most of what a tenant would
    /// otherwise cost). Only used under `write_lock`.
    pub(super) feed: Mutex<Option<broadcast::Sender<Commit>>>,
    /// The revision of the latest published snapshot, for readers waiting for a revision.
    pub(super) applied: watch::Sender<u64>,
    pub(super) write_lock: Mutex<()>,
    pub(super) bundles: RwLock<BTreeMap<String, Vec<u8>>>,
    pub(super) retention: Retention,
    pub(super) backend: Backend,
}

/// What identifies a tenant object besides its ID.
#[derive(Debug, Clone)]
pub(crate) struct TenantInfo {
    pub name: String,
    pub incarnation: u64,
    pub created_at: SystemTime,
}

impl Tenant {
    /// A tenant of the memory store.
    pub fn new(id: &str, name: &str, retention: Retention) -> Tenant {
        static INCARNATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let info = TenantInfo {
            name: name.to_string(),
            incarnation: INCARNATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            created_at: SystemTime::now(),
        };
        Tenant::with_backend(id, info, retention, Backend::Memory)
    }

    /// A tenant whose data lives in `backend`; a database's replica numbers IDs as the
    /// database does.
    pub(crate) fn with_backend(
        id: &str,
        info: TenantInfo,
        retention: Retention,
        backend: Backend,
    ) -> Tenant {
        let store = match backend {
            Backend::Memory => Store::new(),
            Backend::Database(_) => Store::with_interner(Interner::durable()),
        };
        let head = store.head();
        let (applied, _) = watch::channel(head.revision());
        Tenant {
            id: id.to_string(),
            incarnation: info.incarnation,
            changed: DashMap::new(),
            name: info.name,
            created_at: info.created_at,
            store,
            schemas: RwLock::new(Vec::new()),
            retained: Mutex::new(match backend {
                Backend::Memory => VecDeque::new(),
                Backend::Database(_) => VecDeque::from([head]),
            }),
            log: Mutex::new(VecDeque::new()),
            log_items: AtomicUsize::new(0),
            feed: Mutex::new(None),
            applied,
            write_lock: Mutex::new(()),
            bundles: RwLock::new(BTreeMap::new()),
            retention,
            backend,
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Builds a batch from the head snapshot, validates it against `model`'s schema, commits
    /// it as one revision and publishes the change; returns the revision. `build` runs under
    /// the tenant's write lock (the database's, with PostgreSQL) on a snapshot of exactly the
    /// committed data, so a delete by filter or a bundle sees exactly the data it changes.
    /// `rejected` turns the store's rejection of the batch into the client's error (so that it
    /// can name the request field of the offending item).
    pub async fn commit_with<B, R>(
        self: &Arc<Self>,
        model: Arc<Model>,
        build: B,
        rejected: R,
    ) -> Result<u64, ApiError>
    where
        B: FnOnce(&Snapshot) -> Result<WriteBatch, ApiError> + Send + 'static,
        R: FnOnce(WriteError) -> ApiError + Send + 'static,
    {
        match &self.backend {
            Backend::Memory => {
                let tenant = self.clone();
                tokio::task::spawn_blocking(move || {
                    tenant
                        .commit_local(&model, build, rejected)
                        .map(|(snapshot, _)| snapshot.revision())
                })
                .await
                .map_err(|_| ApiError::internal("write worker stopped unexpectedly"))?
            }
            Backend::Database(db) => {
                db.commit(self, model, Box::new(build), Box::new(rejected))
                    .await
            }
        }
    }

    /// The memory store's commit: validate, apply and publish under the write lock.
    pub fn commit_local(
        &self,
        model: &Model,
        build: impl FnOnce(&Snapshot) -> Result<WriteBatch, ApiError>,
        rejected: impl FnOnce(WriteError) -> ApiError,
    ) -> Result<(Arc<Snapshot>, Arc<ChangeList>), ApiError> {
        let _guard = sync::lock(&self.write_lock);
        let batch = build(&self.store.head())?;
        let outcome = self
            .store
            .write_then(&model.schema, &batch, |revision, changes| {
                self.mark_changed(revision, changes)
            })
            .map_err(rejected)?;
        let changes = Arc::new(outcome.changes);
        self.publish(outcome.snapshot.clone(), changes.clone());
        Ok((outcome.snapshot, changes))
    }

    /// Applies a revision committed to the database (whose new IDs the caller has numbered)
    /// and publishes it. `changes` are the committed changes as the database lists them.
    /// Revisions must come in order: one already applied (by the server that wrote it, or
    /// by the tailer) is skipped and returns `false`; a gap is an error.
    pub(crate) fn apply_committed(
        &self,
        revision: u64,
        batch: &WriteBatch,
        changes: Vec<Change>,
    ) -> Result<bool, WriteError> {
        let _guard = sync::lock(&self.write_lock);
        let head = self.store.head().revision();
        if revision <= head {
            return Ok(false);
        }
        if revision != head + 1 {
            return Err(WriteError::Replica(format!(
                "cannot apply revision {revision}: the index is at revision {head}"
            )));
        }
        let outcome = self.store.apply_at(revision, batch, |revision, applied| {
            self.mark_changed(revision, applied)
        })?;
        self.publish(outcome.snapshot, Arc::new(ChangeList::from(changes)));
        Ok(true)
    }

    /// Marks the data `changes` touch as changed at `revision` (before the snapshot is visible:
    /// a cache entry must never outlive its data).
    ///
    /// INVARIANT: every [`DataKey`] whose data the batch may have changed is marked: the
    /// relation or attribute of every change, and the universe of every type a change names as
    /// entity or subject (a universe is made of exactly those; see `Snapshot::universe`). Both
    /// come from the changes themselves, not from a schema, so data of any schema version
    /// counts. With `deps::dependencies` naming every key an evaluation reads, a write that can
    /// change a cached answer always invalidates it.
    fn mark_changed(&self, revision: u64, changes: &ChangeList) {
        let mut last = None;
        for touched in changes.touched() {
            if last == Some(touched) {
                continue;
            }
            last = Some(touched);
            let (entity_type, name) = touched;
            self.changed
                .insert(DataKey::member(entity_type, name), revision);
        }
        // A batch names few types.
        let mut types: Vec<&str> = Vec::new();
        for ty in changes.types() {
            if !types.contains(&ty) {
                types.push(ty);
                self.changed.insert(DataKey::universe(ty), revision);
            }
        }
    }

    /// Retains the new snapshot, logs the commit and sends it to Watch subscribers. Called
    /// under `write_lock`.
    fn publish(&self, snapshot: Arc<Snapshot>, changes: Arc<ChangeList>) {
        let revision = snapshot.revision();
        // The memory store retains only what continuous tokens pin (see `pin`).
        if !matches!(self.backend, Backend::Memory) {
            let mut retained = sync::lock(&self.retained);
            if retained.back().is_some_and(|s| s.revision() == revision) {
                retained.pop_back();
            }
            retained.push_back(snapshot);
            while retained.len() > self.retention.snapshots.max(1) {
                retained.pop_front();
            }
        }
        let commit = Commit { revision, changes };
        if matches!(self.backend, Backend::Memory) {
            let mut log = sync::lock(&self.log);
            let mut items = self.log_items.load(Ordering::Relaxed) + commit.changes.len();
            log.push_back(commit.clone());
            while log.len() > 1
                && (log.len() > self.retention.changes || items > self.retention.change_items)
            {
                if let Some(dropped) = log.pop_front() {
                    items -= dropped.changes.len();
                }
            }
            self.log_items.store(items, Ordering::Relaxed);
        }
        self.applied.send_replace(revision);
        let mut feed = sync::lock(&self.feed);
        if let Some(sender) = feed.as_ref() {
            if sender.receiver_count() == 0 {
                *feed = None;
            } else {
                // A subscriber that left since is fine.
                let _ = sender.send(commit);
            }
        }
    }

    /// Publishes a loaded state as the head without a change (a replica's start).
    pub(crate) fn publish_loaded(&self) {
        let _guard = sync::lock(&self.write_lock);
        let head = self.store.head();
        let mut retained = sync::lock(&self.retained);
        retained.clear();
        retained.push_back(head.clone());
        self.applied.send_replace(head.revision());
    }
}

impl crate::cache::ChangeClock for Tenant {
    fn last_changed(&self, key: &DataKey) -> u64 {
        self.changed.get(key).map_or(0, |r| *r)
    }
}
