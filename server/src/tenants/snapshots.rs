//! Reading a tenant's snapshots: the head, the head once it reaches the revision a snap token
//! names, and the snapshot a continuous token pins, which stays retained (up to
//! [`Retention::snapshots`](super::Retention::snapshots)) so that every page of a listing reads
//! the same data.

use std::sync::Arc;
use std::time::Duration;

use lookout_engine::index::Snapshot;

use super::{Backend, Tenant};
use crate::error::{ApiError, ErrorCode, Reason};
use crate::sync;

impl Tenant {
    /// The latest snapshot.
    pub fn head(&self) -> Arc<Snapshot> {
        self.store.head()
    }

    /// The snapshot at exactly `revision`: the head, or one still retained.
    pub fn snapshot_at(&self, revision: u64) -> Option<Arc<Snapshot>> {
        let head = self.head();
        if head.revision() == revision {
            return Some(head);
        }
        let retained = sync::lock(&self.retained);
        retained
            .iter()
            .rev()
            .find(|s| s.revision() == revision)
            .cloned()
    }

    /// Keeps `snapshot` for the continuous tokens just issued for it. The memory store keeps
    /// only such snapshots (up to [`Retention::snapshots`](super::Retention::snapshots),
    /// dropping the oldest revision first), so writes nobody pages through leave nothing
    /// behind; a database replica keeps every recent snapshot anyway.
    pub fn pin(&self, snapshot: &Arc<Snapshot>) {
        if !matches!(self.backend, Backend::Memory) || snapshot.is_contextual() {
            return;
        }
        let revision = snapshot.revision();
        let mut retained = sync::lock(&self.retained);
        let at = retained.partition_point(|s| s.revision() < revision);
        if retained.get(at).is_some_and(|s| s.revision() == revision) {
            return;
        }
        // The stored data only: a request's interner overlay goes with the request.
        let stored = if snapshot.interner().is_overlay() {
            match snapshot.stored() {
                Some(s) => Arc::new(s),
                None => return,
            }
        } else {
            snapshot.clone()
        };
        retained.insert(at, stored);
        while retained.len() > self.retention.snapshots.max(1) {
            retained.pop_front();
        }
    }

    /// Waits up to `deadline` until this replica has published `revision`. Returns whether it
    /// did.
    pub(crate) async fn wait_applied(&self, revision: u64, deadline: Duration) -> bool {
        let mut applied = self.applied.subscribe();
        if *applied.borrow_and_update() >= revision {
            return true;
        }
        matches!(
            tokio::time::timeout(deadline, applied.wait_for(|r| *r >= revision)).await,
            Ok(Ok(_))
        )
    }

    /// The head, once it is at least `revision` (a snap token's). The memory store is always
    /// current, so a revision beyond its head is a bad token; a database replica waits for
    /// its tailer, up to the configured deadline.
    pub async fn read_at_least(&self, revision: u64) -> Result<Arc<Snapshot>, ApiError> {
        let head = self.head();
        if revision <= head.revision() {
            return Ok(head);
        }
        match &self.backend {
            Backend::Memory => Err(ApiError::invalid(format!(
                "metadata.snap_token names revision {revision}, which this tenant has not reached (head is {})",
                head.revision()
            ))),
            Backend::Database(db) => {
                db.reach(self, revision).await?;
                Ok(self.head())
            }
        }
    }

    /// The snapshot a continuous token pins: exactly `revision`, waited for on a replica that
    /// has not reached it yet.
    ///
    /// INVARIANT: a listing never mixes snapshots. A token whose revision this server no
    /// longer holds (evicted, or before this replica started) is FAILED_PRECONDITION on every
    /// store, never served from a newer snapshot that would reflect writes made since the
    /// first page. Guarded by `continuous_tokens_pin_their_snapshots_not_every_write` (memory)
    /// and `postgres::durable::tokens_survive_a_restart` (PostgreSQL).
    pub async fn pinned(&self, revision: u64) -> Result<Arc<Snapshot>, ApiError> {
        if let Backend::Database(db) = &self.backend
            && revision > self.head().revision()
        {
            db.reach(self, revision).await?;
        }
        self.snapshot_at(revision).ok_or_else(|| {
            ApiError::new(
                ErrorCode::FailedPrecondition,
                format!(
                    "continuous_token: the snapshot at revision {revision} is no longer retained; start the listing again"
                ),
            )
            .with_reason(Reason::InvalidContinuousToken)
        })
    }
}
