//! The service layer: every RPC of Permify's API as one async method taking the request
//! message and returning the response message (or a stream of them). The gRPC and HTTP
//! transports are thin adapters over these methods.
//!
//! CPU-heavy work (evaluation) runs on the rayon pool, never on a tokio worker, and is skipped
//! when the caller has already gone.

mod bundle;
pub mod convert;
mod data;
mod permission;
mod schema;
pub mod stream;
mod tenancy;
#[cfg(test)]
mod tests;
pub mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lookout_engine::index::Snapshot;
use lookout_engine::tokens::{self, SnapToken};
use tokio::sync::oneshot;

use crate::cache::ResultCache;
use crate::error::ApiError;
use crate::tenants::{Retention, SchemaVersion, Tenant, Tenants};

/// Defaults and limits of the service layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Depth used when a request leaves `metadata.depth` at 0.
    pub default_depth: u32,
    /// Page size of reads (relationships, attributes, schema list) when a request sends 0.
    pub default_page_size: u32,
    /// Largest page size accepted.
    pub max_page_size: u32,
    /// Most tuples plus attributes in one write, delete or bundle run.
    pub max_batch: usize,
    /// Most items in one bulk check.
    pub max_bulk_check: usize,
    /// Messages buffered per open stream (lookup entity stream, watch) before backpressure.
    pub stream_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_depth: 50,
            default_page_size: 100,
            max_page_size: 100,
            max_batch: 100_000,
            max_bulk_check: 100,
            stream_buffer: 1024,
        }
    }
}

/// The shared state behind both transports.
#[derive(Debug)]
pub struct Service {
    pub tenants: Tenants,
    pub limits: Limits,
    pub cache: ResultCache,
}

/// Default weight capacity of the result cache (see [`ResultCache::new`]).
pub const DEFAULT_CACHE_CAPACITY: u64 = 1_000_000;

impl Service {
    pub fn new(limits: Limits, retention: Retention) -> Arc<Service> {
        Service::with_cache(limits, retention, ResultCache::new(DEFAULT_CACHE_CAPACITY))
    }

    pub fn with_cache(limits: Limits, retention: Retention, cache: ResultCache) -> Arc<Service> {
        Service::with_tenants(limits, Tenants::new(retention), cache)
    }

    /// A service over tenants of any store (see [`crate::storage`]).
    pub fn with_tenants(limits: Limits, tenants: Tenants, cache: ResultCache) -> Arc<Service> {
        Arc::new(Service {
            tenants,
            limits,
            cache,
        })
    }

    async fn tenant(&self, id: &str) -> Result<Arc<Tenant>, ApiError> {
        if id.is_empty() {
            return Err(ApiError::invalid("tenant_id is required"));
        }
        check_tenant_id(id)?;
        self.tenants.get(id).await
    }

    /// The depth to use: 0 means the default; below 3 is an error.
    fn depth(&self, depth: i32) -> Result<u32, ApiError> {
        match depth {
            0 => Ok(self.limits.default_depth),
            d if d >= lookout_engine::eval::MIN_DEPTH as i32 => Ok(d as u32),
            d => Err(ApiError::invalid(format!(
                "metadata.depth must be at least {}, got {d}",
                lookout_engine::eval::MIN_DEPTH
            ))),
        }
    }

    /// The page size of a listing (relationships, attributes, schemas, tenants): 0 means
    /// `limits.default_page_size`; otherwise 1 to the maximum.
    fn list_page_size(&self, page_size: u32) -> Result<usize, ApiError> {
        let size = self
            .page_size(page_size, Some(self.limits.default_page_size))?
            .unwrap_or(self.limits.default_page_size);
        Ok(size.max(1) as usize)
    }

    /// The page size to use: 0 means `default`; otherwise 1 to the maximum.
    fn page_size(&self, page_size: u32, default: Option<u32>) -> Result<Option<u32>, ApiError> {
        if page_size == 0 {
            return Ok(default);
        }
        if page_size > self.limits.max_page_size {
            return Err(ApiError::invalid(format!(
                "page_size must be between 1 and {}, got {page_size}",
                self.limits.max_page_size
            )));
        }
        Ok(Some(page_size))
    }
}

/// Tenant IDs as Permify accepts them: 1 to 64 of `[a-zA-Z0-9_-]`.
pub fn check_tenant_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "tenant_id `{}` must be 1 to 64 characters of letters, digits, `_` and `-`",
            id.chars().take(80).collect::<String>()
        )))
    }
}

/// The snapshot a read must use: the head, once it is at least as fresh as the request's snap
/// token (a replica of a database waits for it; see [`Tenant::read_at_least`]).
async fn read_snapshot(tenant: &Tenant, snap_token: &str) -> Result<Arc<Snapshot>, ApiError> {
    if snap_token.is_empty() {
        return Ok(tenant.head());
    }
    let token = SnapToken::decode(snap_token, &tenant.id)
        .map_err(|e| ApiError::invalid(format!("metadata.snap_token: {e}")))?;
    tenant.read_at_least(token.revision).await
}

/// The snapshot a continuous token pins.
async fn pinned_snapshot(tenant: &Tenant, revision: u64) -> Result<Arc<Snapshot>, ApiError> {
    tenant.pinned(revision).await
}

pub fn snap_token(tenant: &Tenant, snapshot: &Snapshot) -> String {
    snap_token_at(tenant, snapshot.revision())
}

/// The snap token of `revision` of `tenant`.
pub fn snap_token_at(tenant: &Tenant, revision: u64) -> String {
    SnapToken { revision }.encode(&tenant.id)
}

/// The continuous token of the next page, resuming after position `after` on `snapshot` (empty
/// after the last page). Pins the snapshot, so that the token finds it again.
fn next_page_token(
    tenant: &Tenant,
    snapshot: &Arc<Snapshot>,
    after: Option<u64>,
    query: u64,
) -> String {
    let Some(after) = after else {
        return String::new();
    };
    tenant.pin(snapshot);
    tokens::ContinuousToken {
        revision: snapshot.revision(),
        after,
    }
    .encode(&tenant.id, query)
}

/// Fingerprints a request for its continuous tokens: the request with its paging fields (and
/// snap token) cleared, so a token cannot continue a different query.
fn query_fingerprint<M: prost::Message>(request: &M) -> u64 {
    tokens::fingerprint_bytes(&request.encode_to_vec())
}

/// Runs CPU-heavy work on the rayon pool and waits for it without blocking a tokio worker.
/// The work is skipped if the caller has gone by the time it starts, and an evaluation it
/// runs is cancelled if the caller goes (or its deadline passes) while it runs: evaluators
/// built inside the work take the flag that dropping this future sets (see
/// [`CancelOnDrop`]).
pub async fn run_cpu<T, F>(work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    rayon::spawn(move || {
        if tx.is_closed() {
            return;
        }
        let _ = tx.send(lookout_engine::eval::cancel::scope(&flag, work));
    });
    let _cancel_on_drop = CancelOnDrop(cancel);
    rx.await
        .map_err(|_| ApiError::internal("evaluation worker stopped unexpectedly"))?
}

/// Sets an evaluation's cancellation flag when dropped: held by the future that waits for the
/// evaluation, so the evaluation stops when nobody waits for it any more.
#[derive(Debug)]
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The schema version a request names (or the head).
async fn schema_of(tenant: &Tenant, version: &str) -> Result<Arc<SchemaVersion>, ApiError> {
    tenant.schema(version).await
}
