//! A tenant's schema versions. Every version is kept, but only the newest
//! [`Retention::schema_versions`](super::Retention::schema_versions) stay compiled (a compiled
//! model is tens of times its source); an older one is compiled again when a request names it,
//! and shared by the requests using it until they are done.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lookout_engine::eval::Model;
use lookout_engine::schema::SchemaError;

use super::{Backend, Tenant};
use crate::cache::CheckCosts;
use crate::error::{ApiError, ErrorCode, Reason};
use crate::sync;

/// One schema version.
#[derive(Debug)]
pub struct SchemaVersion {
    pub version: String,
    pub source: String,
    pub model: Arc<Model>,
    pub created_at: SystemTime,
    /// Position in the tenant's history of versions (oldest first).
    pub seq: u64,
    /// What checks under this version have cost lately (steers the result cache).
    pub check_costs: CheckCosts,
}

/// What a tenant keeps of one schema version.
#[derive(Debug)]
pub(super) struct SchemaEntry {
    version: String,
    seq: u64,
    created_at: SystemTime,
    source: String,
    compiled: Compiled,
}

/// A schema version's compiled model: kept, or (an old version) alive only while requests
/// use it.
#[derive(Debug)]
enum Compiled {
    Kept(Arc<SchemaVersion>),
    InUse(std::sync::Weak<SchemaVersion>),
}

impl SchemaEntry {
    fn compiled(&self) -> Option<Arc<SchemaVersion>> {
        match &self.compiled {
            Compiled::Kept(v) => Some(v.clone()),
            Compiled::InUse(weak) => weak.upgrade(),
        }
    }
}

/// A schema version as listings show it.
#[derive(Debug, Clone)]
pub struct SchemaInfo {
    pub version: String,
    pub created_at: SystemTime,
}

/// Makes sortable, unique, 20-character version IDs (like Permify's): milliseconds since the
/// epoch and a counter, in lowercase base32.
fn new_version_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut value: u128 = (u128::from(millis) << 40) | u128::from(count & ((1 << 40) - 1));
    let mut out = [0u8; 20];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

impl Tenant {
    /// Compiles a new schema version (CPU work; not stored yet).
    pub fn compile_schema(source: &str) -> Result<SchemaVersion, SchemaError> {
        let model = Model::compile(source)?;
        Ok(SchemaVersion {
            version: new_version_id(),
            source: source.to_string(),
            check_costs: CheckCosts::new(&model),
            model: Arc::new(model),
            created_at: SystemTime::now(),
            seq: 0,
        })
    }

    /// Stores a compiled schema version, which becomes the head.
    pub async fn add_schema(&self, version: SchemaVersion) -> Result<Arc<SchemaVersion>, ApiError> {
        let version = match &self.backend {
            Backend::Memory => {
                let seq = sync::read(&self.schemas).len() as u64;
                SchemaVersion { seq, ..version }
            }
            Backend::Database(db) => db.write_schema(self, version).await?,
        };
        let version = Arc::new(version);
        self.insert_schema(version.clone());
        Ok(version)
    }

    /// Adds a schema version to the local list (in `seq` order; known versions are skipped),
    /// and keeps only the newest
    /// [`Retention::schema_versions`](super::Retention::schema_versions) compiled.
    pub(crate) fn insert_schema(&self, version: Arc<SchemaVersion>) {
        let mut schemas = sync::write(&self.schemas);
        if schemas.iter().any(|s| s.version == version.version) {
            return;
        }
        let at = schemas.partition_point(|s| s.seq < version.seq);
        schemas.insert(
            at,
            SchemaEntry {
                version: version.version.clone(),
                seq: version.seq,
                created_at: version.created_at,
                source: version.source.clone(),
                compiled: Compiled::Kept(version),
            },
        );
        let keep = self.retention.schema_versions.max(1);
        let old = schemas.len().saturating_sub(keep);
        for entry in &mut schemas[..old] {
            if let Compiled::Kept(v) = &entry.compiled {
                entry.compiled = Compiled::InUse(Arc::downgrade(v));
            }
        }
    }

    /// Schema versions kept compiled now (for tests and metrics).
    pub fn compiled_schema_versions(&self) -> usize {
        let schemas = sync::read(&self.schemas);
        schemas.iter().filter(|s| s.compiled().is_some()).count()
    }

    /// The `seq` of the newest locally known schema version.
    pub(crate) fn last_schema_seq(&self) -> Option<u64> {
        let schemas = sync::read(&self.schemas);
        schemas.last().map(|s| s.seq)
    }

    /// The schema version named `version` (the head if empty) if known here, compiled again
    /// if it is an old one nobody is using.
    fn local_schema(&self, version: &str) -> Result<Option<Arc<SchemaVersion>>, ApiError> {
        let (name, seq, created_at, source) = {
            let schemas = sync::read(&self.schemas);
            let entry = if version.is_empty() {
                schemas.last()
            } else {
                schemas.iter().find(|s| s.version == version)
            };
            let Some(entry) = entry else {
                return Ok(None);
            };
            if let Some(compiled) = entry.compiled() {
                return Ok(Some(compiled));
            }
            (
                entry.version.clone(),
                entry.seq,
                entry.created_at,
                entry.source.clone(),
            )
        };
        let model = Model::compile(&source).map_err(|e| {
            ApiError::internal(format!(
                "schema version `{name}` of tenant `{}` no longer compiles: {e}",
                self.id
            ))
        })?;
        let compiled = Arc::new(SchemaVersion {
            version: name,
            source,
            check_costs: CheckCosts::new(&model),
            model: Arc::new(model),
            created_at,
            seq,
        });
        let mut schemas = sync::write(&self.schemas);
        if let Some(entry) = schemas.iter_mut().find(|s| s.version == compiled.version) {
            // Another request may have compiled it meanwhile: share that one.
            if let Some(theirs) = entry.compiled() {
                return Ok(Some(theirs));
            }
            entry.compiled = Compiled::InUse(Arc::downgrade(&compiled));
        }
        Ok(Some(compiled))
    }

    /// The schema version named `version`, or the head when `version` is empty. A replica
    /// asks the database for a version it has not heard of yet.
    pub async fn schema(&self, version: &str) -> Result<Arc<SchemaVersion>, ApiError> {
        if let Some(found) = self.local_schema(version)? {
            return Ok(found);
        }
        if let Backend::Database(db) = &self.backend {
            db.refresh_schemas(self).await?;
            if let Some(found) = self.local_schema(version)? {
                return Ok(found);
            }
        }
        if version.is_empty() {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("tenant `{}` has no schema yet: write one first", self.id),
            )
            .with_reason(Reason::SchemaNotFound));
        }
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "schema version `{version}` not found in tenant `{}`",
                self.id
            ),
        )
        .with_reason(Reason::SchemaNotFound))
    }

    /// Every schema version, newest first.
    pub async fn schemas(&self) -> Result<Vec<SchemaInfo>, ApiError> {
        if let Backend::Database(db) = &self.backend {
            db.refresh_schemas(self).await?;
        }
        let schemas = sync::read(&self.schemas);
        Ok(schemas
            .iter()
            .rev()
            .map(|s| SchemaInfo {
                version: s.version.clone(),
                created_at: s.created_at,
            })
            .collect())
    }
}
