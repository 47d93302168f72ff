//! Where a tenant's data lives: the [`Backend`] of [`crate::tenants::Tenants`].
//!
//! - [`memory`]: the embedded default. The in-memory index *is* the store; nothing survives a
//!   restart.
//! - [`postgres`]: PostgreSQL is the source of truth; each server keeps its in-memory index as
//!   a replica, loaded at start and kept current by a tailer that follows the database's
//!   change log, so several servers can share one database.
//!
//! The tenant code matches on the backend where the two differ (an enum, not a trait object:
//! there are exactly two, and the memory path stays synchronous and allocation-free).

pub mod memory;
pub mod postgres;

use std::sync::Arc;

/// The store behind the tenants.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In process memory.
    Memory,
    /// A PostgreSQL database shared by any number of replicas.
    Postgres(Arc<postgres::Pg>),
}

impl Backend {
    /// The engine's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Postgres(_) => "postgres",
        }
    }
}
