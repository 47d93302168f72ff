//! Where the tenants' data lives ([`Backend`]), and the [`Database`] trait a replica calls its
//! source of truth through, with the boxed batch builders a database commit takes.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use lookout_engine::eval::Model;
use lookout_engine::index::{Snapshot, WriteBatch, WriteError};

use super::{Commit, SchemaVersion, Tenant, Tenants};
use crate::error::ApiError;

/// Builds a commit's batch from the snapshot it applies to (see [`Tenant::commit_with`]).
pub type BuildBatch = Box<dyn FnOnce(&Snapshot) -> Result<WriteBatch, ApiError> + Send>;

/// Turns the store's rejection of a batch into the client's error.
pub type RejectBatch = Box<dyn FnOnce(WriteError) -> ApiError + Send>;

/// A database that is the source of truth of tenants this server holds as replicas.
///
/// Declared here and implemented below, by the storage layer (`storage::postgres::Pg`), so
/// that tenants depend on no storage code: the tenant calls out through this trait, the store
/// calls back into the tenant's replica hooks (`Tenant::apply_committed`,
/// `Tenant::insert_schema`, `Tenants::install`, ...). Every method is one round trip (or
/// a few) to the database; their futures are boxed, so a request's future does not carry them
/// for a path that memory and warm replicas never take.
pub trait Database: Send + Sync + fmt::Debug {
    /// The engine's name, for logs.
    fn name(&self) -> &'static str;
    /// Waits until `tenant`'s replica has reached `revision` (or fails saying why not).
    fn reach<'a>(
        &'a self,
        tenant: &'a Tenant,
        revision: u64,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
    /// Stores a compiled schema version; returns it with its `seq`.
    fn write_schema<'a>(
        &'a self,
        tenant: &'a Tenant,
        version: SchemaVersion,
    ) -> BoxFuture<'a, Result<SchemaVersion, ApiError>>;
    /// Adds the schema versions stored since the newest one the replica knows.
    fn refresh_schemas<'a>(&'a self, tenant: &'a Tenant) -> BoxFuture<'a, Result<(), ApiError>>;
    /// Commits one batch as one revision and returns the revision once the replica applied it.
    fn commit<'a>(
        &'a self,
        tenant: &'a Arc<Tenant>,
        model: Arc<Model>,
        build: BuildBatch,
        rejected: RejectBatch,
    ) -> BoxFuture<'a, Result<u64, ApiError>>;
    /// Committed changes after `after` up to `upto` (a step of them), and the last revision read.
    fn replay<'a>(
        &'a self,
        tenant: &'a Tenant,
        after: u64,
        upto: u64,
    ) -> BoxFuture<'a, Result<(Vec<Commit>, u64), ApiError>>;
    /// Stores bundles by name, replacing bundles of the same names.
    fn put_bundles<'a>(
        &'a self,
        tenant: &'a Tenant,
        bundles: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
    /// The encoded bundle named `name`.
    fn bundle<'a>(
        &'a self,
        tenant: &'a Tenant,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, ApiError>>;
    /// Deletes a bundle; a missing one is no error.
    fn delete_bundle<'a>(
        &'a self,
        tenant: &'a Tenant,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
    /// The tenant `id` loaded into `tenants` if the database has it.
    fn load_tenant<'a>(
        &'a self,
        tenants: &'a Tenants,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Tenant>>, ApiError>>;
    /// Creates a tenant in the database and loads it.
    fn create_tenant<'a>(
        &'a self,
        tenants: &'a Tenants,
        id: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Tenant>, ApiError>>;
    /// Deletes a tenant from the database and from `tenants`.
    fn delete_tenant<'a>(
        &'a self,
        tenants: &'a Tenants,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Tenant>, ApiError>>;
    /// Catches `tenants` up with the database's list of tenants.
    fn sync_tenants<'a>(&'a self, tenants: &'a Tenants) -> BoxFuture<'a, Result<(), ApiError>>;
}

/// Where the tenants' data lives. An enum rather than an optional trait object so that the
/// memory path stays synchronous and allocation-free, and reads as a case of its own.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In process memory: the tenant *is* the data.
    Memory,
    /// A database the tenants are replicas of.
    Database(Arc<dyn Database>),
}

impl Backend {
    /// The engine's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Database(db) => db.name(),
        }
    }
}
