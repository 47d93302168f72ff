//! Where a tenant's data lives.
//!
//! - [`memory`]: the embedded default. The in-memory index *is* the store; nothing survives a
//!   restart. It needs no code here: it is [`crate::tenants::Backend::Memory`].
//! - [`postgres`]: PostgreSQL is the source of truth; each server keeps its in-memory index as
//!   a replica, loaded at start and kept current by a tailer that follows the database's
//!   change log, so several servers can share one database.
//!
//! Storage sits above the tenants: the tenants call a database through the
//! [`crate::tenants::Database`] trait they declare, which [`postgres::Pg`] implements, and the
//! store writes into the replicas through the tenants' crate-private hooks. Nothing below this
//! layer names a store.

pub mod memory;
pub mod postgres;
