//! Group commit: the writes of one tenant that queue behind the tenant's write lock are
//! committed together, in one transaction, each as its own revision.
//!
//! A tenant's writers are serialised by its advisory lock (see the module docs of [`super`]),
//! so one COMMIT — one WAL flush, one round of lock, counter and statements — per write caps a
//! tenant at a few hundred writes a second however many clients write. Here every write
//! joins its tenant's queue; the first writer to find no leader spawns one, which drains the
//! queue (at most [`MAX_GROUP`] writes at a time) and commits each drained group as one
//! transaction ([`Pg::commit_group`]), then the writes that queued meanwhile, until the queue
//! is empty. A writer is answered only after its group committed and this replica applied it.
//!
//! The leader runs as its own task, so a caller that goes away (a cancelled request) neither
//! stops nor rolls back the writes of the others that its group holds; its own write commits
//! as it would have had the caller stayed.
//!
//! INVARIANT: at most one leader per tenant incarnation (the `leading` flag, set and cleared
//! under the queues' lock), and every pending write is either in the queue while a leader
//! exists, or drained by that leader, which answers it or drops its sender (the writer then
//! fails). A leader that stops without emptying the queue (a panic, the runtime shutting down)
//! removes the queue, failing every write still in it, so no writer waits for a leader that
//! is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lookout_engine::eval::Model;
use tokio::sync::oneshot;

use super::Pg;
use crate::error::ApiError;
use crate::tenants::{BuildBatch, RejectBatch, Tenant};

/// Most writes one transaction commits; the rest wait for the next group.
pub(super) const MAX_GROUP: usize = 256;

/// One write waiting for its group.
pub(super) struct Pending {
    pub model: Arc<Model>,
    pub build: BuildBatch,
    pub rejected: RejectBatch,
    pub answer: oneshot::Sender<Result<u64, ApiError>>,
}

/// A tenant's writes waiting for a group, and whether a leader is running.
#[derive(Default)]
pub(super) struct Queue {
    pending: Vec<Pending>,
    leading: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("pending", &self.pending.len())
            .field("leading", &self.leading)
            .finish()
    }
}

/// Every tenant's queue, by tenant ID and incarnation.
pub(super) type Queues = Mutex<HashMap<(String, u64), Queue>>;

fn key(tenant: &Tenant) -> (String, u64) {
    (tenant.id.clone(), tenant.incarnation)
}

impl Pg {
    /// Commits one batch as one revision, in a group with the writes queued with it, and
    /// returns the revision once this replica has applied it.
    pub(crate) async fn commit(
        &self,
        tenant: &Arc<Tenant>,
        model: Arc<Model>,
        build: BuildBatch,
        rejected: RejectBatch,
    ) -> Result<u64, ApiError> {
        let (answer, answered) = oneshot::channel();
        let lead = {
            let mut queues = crate::sync::lock(&self.groups);
            let queue = queues.entry(key(tenant)).or_default();
            queue.pending.push(Pending {
                model,
                build,
                rejected,
                answer,
            });
            !std::mem::replace(&mut queue.leading, true)
        };
        if lead {
            match self.me.upgrade() {
                Some(pg) => {
                    tokio::spawn(lead_groups(pg, tenant.clone()));
                }
                // Only while the store is being dropped: fail what is queued.
                None => drop(crate::sync::lock(&self.groups).remove(&key(tenant))),
            }
        }
        answered.await.unwrap_or_else(|_| {
            Err(ApiError::internal(
                "the write's group commit stopped before answering; the write may or may not have committed",
            ))
        })
    }
}

/// Commits the tenant's queued writes, a group at a time, until the queue is empty.
async fn lead_groups(pg: Arc<Pg>, tenant: Arc<Tenant>) {
    let mut leader = Leader {
        pg: &pg,
        key: key(&tenant),
        done: false,
    };
    loop {
        let group = {
            let mut queues = crate::sync::lock(&pg.groups);
            let Some(queue) = queues.get_mut(&leader.key) else {
                leader.done = true;
                return;
            };
            if queue.pending.is_empty() {
                queues.remove(&leader.key);
                leader.done = true;
                return;
            }
            let n = queue.pending.len().min(MAX_GROUP);
            queue.pending.drain(..n).collect::<Vec<_>>()
        };
        pg.commit_group(&tenant, group).await;
    }
}

/// The running leader of one tenant's queue; see the module's INVARIANT for what dropping it
/// early does.
struct Leader<'a> {
    pg: &'a Pg,
    key: (String, u64),
    done: bool,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut queues = crate::sync::lock(&self.pg.groups);
            queues.remove(&self.key);
        }
    }
}
