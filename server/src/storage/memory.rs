//! The memory store: the embedded default.
//!
//! A tenant's in-memory index is its data. A write validates and applies its batch to a copy
//! of the head snapshot under the tenant's write lock and publishes the result at the next
//! revision ([`crate::tenants::Tenant::commit_local`]); the change log Watch replays from is
//! kept in memory, up to `--retained-changes` commits and `--retained-change-items` changes;
//! bundles live in a map per tenant. A snap token beyond the head is a bad token
//! (INVALID_ARGUMENT): there is no other writer to wait for. Nothing survives a restart.
//!
//! Entity numbers are assigned locally, densely from 0 ([`lookout_engine::index::Interner`]'s
//! default).
