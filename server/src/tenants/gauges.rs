//! A tenant's figures for logs ([`sizes`]) and metrics ([`Tenant::gauges`]).

use std::collections::HashMap;

use super::Tenant;
use crate::sync;

/// Counts of what a tenant holds, for logs and metrics.
pub fn sizes(tenant: &Tenant) -> HashMap<&'static str, u64> {
    let head = tenant.head();
    HashMap::from([
        ("revision", head.revision()),
        ("tuples", head.tuple_count()),
    ])
}

/// What metrics show of a tenant (see [`crate::metrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantGauges {
    pub tuples: u64,
    pub revision: u64,
    pub watch_subscribers: u64,
    /// Commits sent but not yet received by the slowest Watch subscriber.
    pub watch_lag: u64,
}

impl Tenant {
    /// The tenant's figures for metrics, read now.
    pub fn gauges(&self) -> TenantGauges {
        let head = self.head();
        let feed = sync::lock(&self.feed);
        TenantGauges {
            tuples: head.tuple_count(),
            revision: head.revision(),
            watch_subscribers: feed.as_ref().map_or(0, |f| f.receiver_count() as u64),
            watch_lag: feed.as_ref().map_or(0, |f| f.len() as u64),
        }
    }
}
