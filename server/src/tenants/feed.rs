//! What Watch reads of a tenant: the commits after a snap token (from the memory store's
//! change log, or a step at a time from the database's), then the live feed of new commits.
//! [`Tenant::subscribe_after`] subscribes under the tenant's write lock, the one publishing
//! takes (see the INVARIANT in `tenant.rs`), so the replay and the feed meet without a gap.

use std::sync::Arc;

use lookout_engine::index::ChangeList;
use tokio::sync::broadcast;

use super::{Backend, Tenant};
use crate::error::{ApiError, ErrorCode};
use crate::sync;

/// Commits the live Watch feed of a tenant holds for its slowest subscriber.
pub(super) const FEED_CAPACITY: usize = 4096;

/// The committed writes a new Watch subscriber gets before the live feed (see
/// [`Tenant::subscribe_after`] and [`Tenant::replay_next`]).
#[derive(Debug, Default)]
pub struct Replay {
    /// Commits ready to send.
    ready: Vec<Commit>,
    /// Revisions still to read from the database's change log: after `.0` up to `.1`.
    database: Option<(u64, u64)>,
}

/// One committed write as Watch sees it.
#[derive(Debug, Clone)]
pub struct Commit {
    pub revision: u64,
    pub changes: Arc<ChangeList>,
}

impl Tenant {
    /// Subscribes to commits after `revision`: the ones already committed now (to be read with
    /// [`Tenant::replay_next`]), and a receiver for the rest (which may repeat some of them:
    /// the caller drops revisions it has seen). Errors when commits after `revision` are no
    /// longer retained.
    pub async fn subscribe_after(
        &self,
        revision: u64,
    ) -> Result<(Replay, broadcast::Receiver<Commit>), ApiError> {
        // Subscribe first, then read the head under the write lock, so nothing published in
        // between is missed.
        let (receiver, head, replay) = {
            let _guard = sync::lock(&self.write_lock);
            let receiver = sync::lock(&self.feed)
                .get_or_insert_with(|| broadcast::channel(FEED_CAPACITY).0)
                .subscribe();
            let head = self.store.head().revision();
            let replay = match self.backend {
                Backend::Memory => Some(self.memory_replay(revision, head)?),
                Backend::Database(_) => None,
            };
            (receiver, head, replay)
        };
        if let Some(ready) = replay {
            return Ok((
                Replay {
                    ready,
                    database: None,
                },
                receiver,
            ));
        }
        let Backend::Database(db) = &self.backend else {
            return Ok((Replay::default(), receiver));
        };
        // The first step checks the token (too old, beyond the head) before anything is sent.
        let (ready, read_upto) = db.replay(self, revision, head).await?;
        let replay = Replay {
            ready,
            database: Some((read_upto, head)),
        };
        Ok((replay, receiver))
    }

    /// The next commits of a replay, in order; empty when it is done. Reads the database's
    /// change log a step at a time, so a long replay never sits in memory whole.
    pub async fn replay_next(&self, replay: &mut Replay) -> Result<Vec<Commit>, ApiError> {
        if !replay.ready.is_empty() {
            return Ok(std::mem::take(&mut replay.ready));
        }
        let Backend::Database(db) = &self.backend else {
            return Ok(Vec::new());
        };
        while let Some((after, upto)) = replay.database {
            if after >= upto {
                replay.database = None;
                break;
            }
            let (commits, read_upto) = db.replay(self, after, upto).await?;
            replay.database = Some((read_upto, upto));
            if !commits.is_empty() {
                return Ok(commits);
            }
        }
        Ok(Vec::new())
    }

    fn memory_replay(&self, revision: u64, head: u64) -> Result<Vec<Commit>, ApiError> {
        let log = sync::lock(&self.log);
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
        Ok(log
            .iter()
            .filter(|c| c.revision > revision)
            .cloned()
            .collect())
    }
}
