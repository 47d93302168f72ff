//! The cache differential (`crate::cache`) over the PostgreSQL store: two services, one
//! caching every answer it may and one with the cache off, each over its own database, with a
//! fresh tenant per case. Fewer cases than over the memory store: every commit is a database
//! transaction.

use std::sync::Arc;

use lookout_server::cache::ResultCache;
use lookout_server::service::{Limits, Service};
use lookout_server::storage::postgres;
use lookout_server::tenants::Retention;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::cluster::Cluster;
use super::support::pg_options;
use crate::cache::{Pair, caching_everything, run_differential, runtime};

/// A service over a fresh database, and the guard that stops its background tasks.
async fn service(cache: ResultCache) -> (Arc<Service>, DropGuard) {
    let uri = Cluster::get().database().await;
    let stop = CancellationToken::new();
    let tenants = postgres::start(pg_options(&uri), Retention::default(), stop.clone())
        .await
        .unwrap_or_else(|e| panic!("the postgres store starts: {e}"));
    (
        Service::with_tenants(Limits::default(), tenants, cache),
        stop.drop_guard(),
    )
}

#[test]
fn the_cache_never_changes_an_answer_on_postgres() {
    let runtime = runtime();
    let ((cached, stop_cached), (uncached, stop_uncached)) = runtime.block_on(async {
        (
            service(caching_everything()).await,
            service(ResultCache::new(0)).await,
        )
    });
    run_differential(&runtime, 150, |case| {
        let pair = Pair {
            cached: cached.clone(),
            uncached: uncached.clone(),
            tenant: format!("case-{case}"),
            create_tenant: true,
        };
        async move { pair }
    });
    // The services' pools close on the runtime they were opened on.
    runtime.block_on(async move {
        drop((cached, uncached));
        drop((stop_cached, stop_uncached));
    });
}
