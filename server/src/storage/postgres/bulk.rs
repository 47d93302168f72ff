//! Bulk export and import of one tenant with `COPY` (binary format), for `lookout export` and
//! `lookout import` with `--database-uri`.
//!
//! **Export** reads the tenant's latest schema source, its tuples and its attributes in one
//! repeatable-read, read-only transaction: one consistent revision, however long it takes and
//! however much is written meanwhile.
//!
//! **Import** is one transaction that writes exactly what a server commit would (see the
//! module docs of [`super`]), so every replica's tailer picks it up and Watch reports it:
//!
//! 1. `pg_advisory_xact_lock` on the tenant, as a write takes it, and the tenant's revision
//!    counter `R`. With the lock held, the data tables are exactly revision `R`.
//! 2. The effective changes: the file's distinct tuples that are not stored yet, and the
//!    attributes (the last value the file gives each) that are not stored with that value.
//!    When the tenant holds data, what the file names is copied into temporary tables and
//!    joined with the stored rows; an empty tenant skips that.
//! 3. The changes split into revisions of at most `revision_size` changes, `R + 1 ..= R + k`:
//!    the counter bumped, each revision recorded and one `NOTIFY` queued, as a group commit
//!    does (this first write also makes the import wait for, or fail on, a concurrent
//!    deletion of the tenant).
//! 4. The tuples and attributes copied in, in primary-key order, while another thread numbers
//!    the new entity IDs (densely per type after the highest stored number) and encodes the
//!    change rows; then the entity numbers and the change log copied in, and COMMIT.
//!
//! Revisions stay dense and in commit order because they are assigned under the tenant's lock
//! like any write's; the change feed is exactly once because only effective changes are
//! listed, so importing the same file again finds nothing to change and writes no revision.
//! An import that fails or is interrupted before COMMIT leaves nothing behind: running it again
//! redoes it from the start.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lookout_engine::eval::Model;
use lookout_engine::model::{Attribute, EntityRef, SubjectRef, Tuple};
use rayon::slice::ParallelSliceMut;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};

use super::{CHANNEL, LOCK_CLASS, StartError, codec, redact};
use crate::tenants::SchemaVersion;

/// The setting the `COPY ... TO STDOUT` queries read the tenant from (`COPY` takes no
/// parameters), set for the transaction only.
const TENANT_SETTING: &str = "lookout.bulk_tenant";

/// Bytes of `COPY` data sent per message.
const SEND_CHUNK: usize = 1 << 20;

/// Why a bulk export or import failed. Each message names the database (password masked) and
/// what was being done.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(
        "the database at {uri} has no Lookout tables: run `lookout migrate up --database-uri ...`"
    )]
    NotMigrated { uri: String },
    #[error("database at {uri}: {what}: {source}")]
    Query {
        uri: String,
        what: &'static str,
        source: sqlx::Error,
    },
    #[error("tenant `{tenant}` does not exist in the database at {uri}{hint}")]
    NoTenant {
        tenant: String,
        uri: String,
        /// ` (--create-tenant creates it)` for an import, or empty.
        hint: &'static str,
    },
    #[error(
        "tenant `{tenant}` has no schema and the file carries none: write one first (`lookout schema write`), or import a file exported with its schema"
    )]
    NoSchema { tenant: String },
    #[error("tenant `{tenant}`: stored schema version `{version}` does not compile: {message}")]
    StoredSchema {
        tenant: String,
        version: String,
        message: String,
    },
    #[error("database at {uri}: unreadable COPY data: {reason}")]
    Decode { uri: String, reason: String },
    #[error("tenant `{tenant}`: too many distinct IDs of type `{entity_type}`")]
    TooManyIds { tenant: String, entity_type: String },
    #[error("encoding the rows to copy failed: {reason}")]
    Encode { reason: String },
    #[error("tenant `{tenant}` was deleted during the import; nothing was written")]
    TenantGone { tenant: String },
    /// The test hook `stop_before_commit`: everything was written but not committed.
    #[error("stopped before COMMIT, as asked; nothing was written")]
    Stopped,
}

/// A tenant's schema version as stored: its ID and its source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    pub version: String,
    pub source: String,
}

/// Connects (one connection at a time is used) and checks the tables are there.
async fn open(uri: &str) -> Result<PgPool, BulkError> {
    let pool = super::connect(uri, 2).await?;
    let migrated: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('lookout_tenants')::text")
            .fetch_one(&pool)
            .await
            .map_err(|source| BulkError::Query {
                uri: redact(uri),
                what: "look for Lookout's tables",
                source,
            })?;
    if migrated.is_none() {
        return Err(BulkError::NotMigrated { uri: redact(uri) });
    }
    Ok(pool)
}

/// Wraps a database error with the URI and what was being done.
fn query_error<'a>(uri: &'a str, what: &'static str) -> impl FnOnce(sqlx::Error) -> BulkError + 'a {
    move |source| BulkError::Query {
        uri: redact(uri),
        what,
        source,
    }
}

/// The tenant's latest schema version, if any.
async fn latest_schema(
    tx: &mut Transaction<'static, Postgres>,
    uri: &str,
    tenant: &str,
) -> Result<Option<StoredSchema>, BulkError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT version, source FROM lookout_schemas WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error(uri, "read the schema"))?;
    Ok(row.map(|(version, source)| StoredSchema { version, source }))
}

async fn set_tenant(
    tx: &mut Transaction<'static, Postgres>,
    uri: &str,
    tenant: &str,
) -> Result<(), BulkError> {
    sqlx::query("SELECT set_config($1, $2, true)")
        .bind(TENANT_SETTING)
        .bind(tenant)
        .execute(&mut **tx)
        .await
        .map_err(query_error(uri, "set the tenant for COPY"))?;
    Ok(())
}

/// An export in progress: one read-only snapshot of a tenant.
#[derive(Debug)]
pub struct Export {
    tx: Transaction<'static, Postgres>,
    uri: String,
    /// The revision the snapshot is at.
    pub revision: u64,
    /// The tenant's latest schema version, if it has one.
    pub schema: Option<StoredSchema>,
}

/// Starts exporting `tenant` from the database at `uri`.
pub async fn export(uri: &str, tenant: &str) -> Result<Export, BulkError> {
    let pool = open(uri).await?;
    let mut tx = pool
        .begin()
        .await
        .map_err(query_error(uri, "begin the export"))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(query_error(uri, "begin the export"))?;
    let revision: Option<i64> =
        sqlx::query_scalar("SELECT revision FROM lookout_tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(uri, "read the tenant"))?;
    let Some(revision) = revision else {
        return Err(BulkError::NoTenant {
            tenant: tenant.to_owned(),
            uri: redact(uri),
            hint: "",
        });
    };
    let schema = latest_schema(&mut tx, uri, tenant).await?;
    set_tenant(&mut tx, uri, tenant).await?;
    Ok(Export {
        tx,
        uri: uri.to_owned(),
        revision: revision as u64,
        schema,
    })
}

impl Export {
    /// Calls `each` with every tuple of the snapshot (in no particular order); returns how
    /// many there were.
    pub async fn tuples<E: From<BulkError>>(
        &mut self,
        mut each: impl FnMut(Tuple) -> Result<(), E>,
    ) -> Result<u64, E> {
        let uri = self.uri.clone();
        self.rows(
            "COPY (SELECT entity_type, entity_id, relation, subject_type, subject_id, subject_relation
                   FROM lookout_tuples WHERE tenant_id = current_setting('lookout.bulk_tenant'))
             TO STDOUT (FORMAT binary)",
            6,
            |mut f| {
                let sr = f.take(5)?;
                let tuple = Tuple {
                    entity: EntityRef::new(f.take(0)?, f.take(1)?),
                    relation: f.take(2)?,
                    subject: SubjectRef::new(f.take(3)?, f.take(4)?, (!sr.is_empty()).then_some(sr)),
                };
                Ok(tuple)
            },
            &mut each,
        )
        .await
        .map_err(|e| e.into_error(&uri))
    }

    /// Calls `each` with every attribute of the snapshot; returns how many there were.
    pub async fn attributes<E: From<BulkError>>(
        &mut self,
        mut each: impl FnMut(Attribute) -> Result<(), E>,
    ) -> Result<u64, E> {
        let uri = self.uri.clone();
        self.rows(
            "COPY (SELECT entity_type, entity_id, name, value
                   FROM lookout_attributes WHERE tenant_id = current_setting('lookout.bulk_tenant'))
             TO STDOUT (FORMAT binary)",
            4,
            |mut f| {
                let value = codec::decode_value(&f.take(3)?)?;
                Ok(Attribute {
                    entity: EntityRef::new(f.take(0)?, f.take(1)?),
                    name: f.take(2)?,
                    value,
                })
            },
            &mut each,
        )
        .await
        .map_err(|e| e.into_error(&uri))
    }

    /// Streams the rows of a `COPY ... TO STDOUT (FORMAT binary)` of `columns` text columns
    /// through `convert` into `each`.
    async fn rows<T, E: From<BulkError>>(
        &mut self,
        statement: &str,
        columns: usize,
        convert: impl Fn(Fields) -> Result<T, String>,
        each: &mut impl FnMut(T) -> Result<(), E>,
    ) -> Result<u64, RowsError<E>> {
        let mut stream = self
            .tx
            .copy_out_raw(statement)
            .await
            .map_err(|e| RowsError::Query(e, "start COPY TO STDOUT"))?;
        let mut decoder = CopyDecoder::default();
        let mut count = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RowsError::Query(e, "read COPY data"))?;
            decoder.feed(&chunk);
            while let Some(fields) = decoder.row(columns).map_err(RowsError::Decode)? {
                let item = convert(fields).map_err(RowsError::Decode)?;
                each(item).map_err(RowsError::Caller)?;
                count += 1;
            }
        }
        decoder.finish().map_err(RowsError::Decode)?;
        Ok(count)
    }

    /// Ends the read-only transaction.
    pub async fn finish(self) -> Result<(), BulkError> {
        self.tx
            .commit()
            .await
            .map_err(query_error(&self.uri, "end the export"))
    }
}

/// Why streaming rows stopped: the database, undecodable data, or the caller's own error.
enum RowsError<E> {
    Query(sqlx::Error, &'static str),
    Decode(String),
    Caller(E),
}

impl<E: From<BulkError>> RowsError<E> {
    fn into_error(self, uri: &str) -> E {
        match self {
            RowsError::Query(source, what) => E::from(BulkError::Query {
                uri: redact(uri),
                what,
                source,
            }),
            RowsError::Decode(reason) => E::from(BulkError::Decode {
                uri: redact(uri),
                reason,
            }),
            RowsError::Caller(e) => e,
        }
    }
}

/// The text fields of one row, taken one by one.
struct Fields(Vec<Option<String>>);

impl Fields {
    fn take(&mut self, i: usize) -> Result<String, String> {
        self.0
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| format!("column {i} is NULL or missing"))
    }
}

/// Decodes `COPY ... (FORMAT binary)` data arriving in chunks: the signature and header, then
/// rows of length-prefixed fields, then the trailer (a field count of -1).
#[derive(Default)]
struct CopyDecoder {
    buf: Vec<u8>,
    pos: usize,
    header: bool,
    ended: bool,
}

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

impl CopyDecoder {
    fn feed(&mut self, chunk: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    fn bytes(&self, at: usize, n: usize) -> Option<&[u8]> {
        self.buf.get(at..at.checked_add(n)?)
    }

    fn i16_at(&self, at: usize) -> Option<i16> {
        self.bytes(at, 2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32_at(&self, at: usize) -> Option<i32> {
        self.bytes(at, 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next complete row of `columns` text fields, or `None` until more data arrives.
    fn row(&mut self, columns: usize) -> Result<Option<Fields>, String> {
        if !self.header {
            let Some(extension) = self.i32_at(SIGNATURE.len() + 4) else {
                return Ok(None);
            };
            if self.bytes(0, SIGNATURE.len()) != Some(SIGNATURE.as_slice()) {
                return Err("no binary COPY signature".to_owned());
            }
            let skip = SIGNATURE.len() + 8 + usize::try_from(extension).unwrap_or(0);
            if self.buf.len() < skip {
                return Ok(None);
            }
            self.pos = skip;
            self.header = true;
        }
        if self.ended {
            return Ok(None);
        }
        let Some(count) = self.i16_at(self.pos) else {
            return Ok(None);
        };
        if count == -1 {
            self.ended = true;
            self.pos += 2;
            return Ok(None);
        }
        if usize::try_from(count).ok() != Some(columns) {
            return Err(format!("a row of {count} fields, expected {columns}"));
        }
        let mut at = self.pos + 2;
        let mut fields = Vec::with_capacity(columns);
        for _ in 0..columns {
            let Some(len) = self.i32_at(at) else {
                return Ok(None);
            };
            at += 4;
            if len < 0 {
                fields.push(None);
                continue;
            }
            let len = len as usize;
            let Some(bytes) = self.bytes(at, len) else {
                return Ok(None);
            };
            let text = std::str::from_utf8(bytes)
                .map_err(|e| format!("a field is not UTF-8: {e}"))?
                .to_owned();
            fields.push(Some(text));
            at += len;
        }
        self.pos = at;
        Ok(Some(Fields(fields)))
    }

    fn finish(&self) -> Result<(), String> {
        if self.ended {
            Ok(())
        } else {
            Err("the data ended before its trailer".to_owned())
        }
    }
}

/// Rows in `COPY ... FROM STDIN (FORMAT binary)` form.
struct CopyRows {
    buf: Vec<u8>,
    rows: u64,
}

impl CopyRows {
    fn new() -> CopyRows {
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        CopyRows { buf, rows: 0 }
    }

    fn row(&mut self, fields: i16) -> &mut Self {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self.rows += 1;
        self
    }

    fn text(&mut self, s: &str) -> &mut Self {
        // A text field longer than 2 GiB cannot be stored anyway; PostgreSQL refuses it.
        let len = i32::try_from(s.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    /// A tuple's six columns, from the entity type to the subject relation (`''` for none).
    fn tuple(&mut self, t: &Tuple) -> &mut Self {
        self.text(&t.entity.ty)
            .text(&t.entity.id)
            .text(&t.relation)
            .text(&t.subject.ty)
            .text(&t.subject.id)
            .text(t.subject.relation.as_deref().unwrap_or_default())
    }

    fn opt_text(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    fn null(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    fn int4(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&4i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn int8(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Copies the rows in with `statement` (`COPY ... FROM STDIN (FORMAT binary)`).
    async fn send(
        mut self,
        tx: &mut Transaction<'static, Postgres>,
        statement: &str,
        uri: &str,
        what: &'static str,
    ) -> Result<u64, BulkError> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        let mut copy = tx
            .copy_in_raw(statement)
            .await
            .map_err(query_error(uri, what))?;
        for chunk in self.buf.chunks(SEND_CHUNK) {
            if let Err(e) = copy.send(chunk).await {
                let _ = copy.abort("sending failed").await;
                return Err(query_error(uri, what)(e));
            }
        }
        copy.finish().await.map_err(query_error(uri, what))?;
        Ok(self.rows)
    }
}

/// How an import writes.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Create the tenant if the database does not have it.
    pub create_tenant: bool,
    /// Most changes per revision (at least 1).
    pub revision_size: usize,
    /// Do everything but COMMIT, then fail with [`BulkError::Stopped`] (for tests).
    pub stop_before_commit: bool,
}

/// An import in progress: the transaction holding the tenant's write lock, and the schema
/// to validate the file against.
#[derive(Debug)]
pub struct Import {
    tx: Transaction<'static, Postgres>,
    uri: String,
    tenant: String,
    incarnation: i64,
    revision: u64,
    options: ImportOptions,
    /// The compiled schema the data must satisfy: the tenant's latest version, or the file's
    /// when the tenant had none.
    pub model: Arc<Model>,
    /// The schema version the data is validated against.
    pub schema_version: String,
    /// Whether the file's schema is written (the tenant had none).
    pub schema_written: bool,
    /// Whether the tenant is created by this import.
    pub tenant_created: bool,
}

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Tuples written (new ones; those already stored or repeated in the file are not).
    pub tuples: u64,
    /// Attributes written (new or changed values).
    pub attributes: u64,
    /// Entity IDs numbered for the first time.
    pub entities: u64,
    /// The revisions written, first and last; `None` if nothing changed.
    pub revisions: Option<(u64, u64)>,
}

/// Starts importing into `tenant`: locks it, and reads or writes its schema (`file_schema`,
/// compiled, is written if the tenant has none).
pub async fn import(
    uri: &str,
    tenant: &str,
    file_schema: Option<SchemaVersion>,
    options: ImportOptions,
) -> Result<Import, BulkError> {
    let pool = open(uri).await?;
    let mut tx = pool
        .begin()
        .await
        .map_err(query_error(uri, "begin the import"))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(LOCK_CLASS)
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .map_err(query_error(uri, "lock the tenant for writing"))?;
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT revision, incarnation FROM lookout_tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error(uri, "read the tenant"))?;
    let mut tenant_created = false;
    let (revision, incarnation) = match row {
        Some(row) => row,
        None if options.create_tenant => {
            let incarnation: i64 = sqlx::query_scalar(
                "INSERT INTO lookout_tenants (id, name, created_ms) VALUES ($1, $1, $2)
                 RETURNING incarnation",
            )
            .bind(tenant)
            .bind(now_millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(uri, "create the tenant"))?;
            notify(&mut tx, uri, format!("t:{tenant}")).await?;
            tenant_created = true;
            (0, incarnation)
        }
        None => {
            return Err(BulkError::NoTenant {
                tenant: tenant.to_owned(),
                uri: redact(uri),
                hint: " (--create-tenant creates it)",
            });
        }
    };
    let (model, schema_version, schema_written) = match latest_schema(&mut tx, uri, tenant).await? {
        Some(stored) => {
            let model = Model::compile(&stored.source).map_err(|e| BulkError::StoredSchema {
                tenant: tenant.to_owned(),
                version: stored.version.clone(),
                message: e.to_string(),
            })?;
            (Arc::new(model), stored.version, false)
        }
        None => {
            let Some(schema) = file_schema else {
                return Err(BulkError::NoSchema {
                    tenant: tenant.to_owned(),
                });
            };
            sqlx::query(
                "INSERT INTO lookout_schemas (tenant_id, version, source, created_ms)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(tenant)
            .bind(&schema.version)
            .bind(&schema.source)
            .bind(now_millis())
            .execute(&mut *tx)
            .await
            .map_err(query_error(uri, "store the schema"))?;
            notify(&mut tx, uri, format!("s:{tenant}")).await?;
            (schema.model, schema.version, true)
        }
    };
    set_tenant(&mut tx, uri, tenant).await?;
    Ok(Import {
        tx,
        uri: uri.to_owned(),
        tenant: tenant.to_owned(),
        incarnation,
        revision: revision as u64,
        options,
        model,
        schema_version,
        schema_written,
        tenant_created,
    })
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Queues a notification (delivered at COMMIT, and only if it commits).
async fn notify(
    tx: &mut Transaction<'static, Postgres>,
    uri: &str,
    payload: String,
) -> Result<(), BulkError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(&mut **tx)
        .await
        .map_err(query_error(uri, "notify the servers"))?;
    Ok(())
}

/// An attribute's key: entity type, entity ID, name.
type AttrKey = (String, String, String);

fn attr_key(a: &Attribute) -> AttrKey {
    (a.entity.ty.clone(), a.entity.id.clone(), a.name.clone())
}

impl Import {
    /// The tenant's revision when the import took its lock.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Writes `tuples` and `attributes` (validated against [`Import::model`]; an attribute the
    /// list sets more than once keeps its last value) and commits. `step` is told what is
    /// being done, for a progress display.
    pub async fn write(
        mut self,
        mut tuples: Vec<Tuple>,
        attributes: Vec<Attribute>,
        step: &mut dyn FnMut(&str),
    ) -> Result<ImportSummary, BulkError> {
        let uri = self.uri.clone();
        let uri = uri.as_str();
        // Distinct tuples in the primary key's order (the key columns compare bytewise, as
        // Rust's strings do), which keeps the index inserts local.
        step("sorting");
        tuples.par_sort_unstable();
        tuples.dedup();
        let mut attributes = last_values(attributes);

        let (has_tuples, has_attributes, has_entities): (bool, bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM lookout_tuples WHERE tenant_id = $1),
                    EXISTS (SELECT 1 FROM lookout_attributes WHERE tenant_id = $1),
                    EXISTS (SELECT 1 FROM lookout_entities WHERE tenant_id = $1)",
        )
        .bind(&self.tenant)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(query_error(uri, "look for stored data"))?;
        if has_tuples && !tuples.is_empty() {
            step("comparing with the stored tuples");
            let stored = self.stored_tuples(&tuples).await?;
            tuples.retain(|t| !stored.contains(t));
        }
        let mut replaced: Vec<AttrKey> = Vec::new();
        if has_attributes && !attributes.is_empty() {
            step("comparing with the stored attributes");
            let stored = self.stored_values(&attributes).await?;
            attributes.retain(|a| match stored.get(&attr_key(a)) {
                Some(value) if *value == codec::encode_value(&a.value) => false,
                Some(_) => {
                    replaced.push(attr_key(a));
                    true
                }
                None => true,
            });
        }
        let total = tuples.len() + attributes.len();
        if total == 0 {
            return self.commit(ImportSummary::default()).await;
        }

        let (stored, next) = if has_entities {
            step("reading entity numbers");
            self.stored_numbers(&tuples, &attributes).await?
        } else {
            (Numbers::default(), HashMap::new())
        };
        let size = self.options.revision_size.max(1);
        let count = total.div_ceil(size) as u64;
        let (first, last) = (self.revision + 1, self.revision + count);
        let db = |r: u64| i64::try_from(r).unwrap_or(i64::MAX);
        let recorded = super::write::record_revisions(
            &mut self.tx,
            &self.tenant,
            self.incarnation,
            db(first),
            db(last),
        )
        .await
        .map_err(query_error(uri, "record the revisions"))?;
        if !recorded {
            return Err(BulkError::TenantGone {
                tenant: self.tenant.clone(),
            });
        }

        // Numbering the new IDs and encoding the entity and change rows is CPU work that
        // needs neither the connection nor the tuples' COPY: it runs on another thread while
        // the database takes the tuples and attributes.
        let tuples = Arc::new(tuples);
        let attributes = Arc::new(attributes);
        let encoding = {
            let (tuples, attributes) = (tuples.clone(), attributes.clone());
            let tenant = self.tenant.clone();
            tokio::task::spawn_blocking(move || {
                let numbers = assign_numbers(&tenant, &tuples, &attributes, stored, next)?;
                let entities = entity_rows(&tenant, &numbers);
                let changes = change_rows(&tenant, &tuples, &attributes, &numbers, first, size)?;
                Ok::<_, BulkError>((entities, changes))
            })
        };

        step("writing tuples");
        let mut rows = CopyRows::new();
        for t in tuples.iter() {
            rows.row(7).text(&self.tenant).tuple(t);
        }
        rows.send(
            &mut self.tx,
            "COPY lookout_tuples (tenant_id, entity_type, entity_id, relation, subject_type, subject_id, subject_relation) FROM STDIN (FORMAT binary)",
            uri,
            "copy tuples",
        )
        .await?;

        step("writing attributes");
        if !replaced.is_empty() {
            super::write::delete_attributes(&mut self.tx, &self.tenant, replaced)
                .await
                .map_err(query_error(uri, "replace attributes"))?;
        }
        let mut rows = CopyRows::new();
        for a in attributes.iter() {
            rows.row(5)
                .text(&self.tenant)
                .text(&a.entity.ty)
                .text(&a.entity.id)
                .text(&a.name)
                .text(&codec::encode_value(&a.value));
        }
        rows.send(
            &mut self.tx,
            "COPY lookout_attributes (tenant_id, entity_type, entity_id, name, value) FROM STDIN (FORMAT binary)",
            uri,
            "copy attributes",
        )
        .await?;

        step("writing entity numbers");
        let (entity_rows, change_rows) = encoding.await.map_err(|e| BulkError::Encode {
            reason: e.to_string(),
        })??;
        let entities = entity_rows
            .send(
                &mut self.tx,
                "COPY lookout_entities (tenant_id, entity_type, entity_id, number) FROM STDIN (FORMAT binary)",
                uri,
                "copy entity numbers",
            )
            .await?;

        step("writing the change log");
        change_rows
            .send(
                &mut self.tx,
                "COPY lookout_changes (tenant_id, revision, seq, op, kind, entity_type, entity_id, entity_number, relation, subject_type, subject_id, subject_number, subject_relation, value) FROM STDIN (FORMAT binary)",
                uri,
                "copy the change log",
            )
            .await?;

        let summary = ImportSummary {
            tuples: tuples.len() as u64,
            attributes: attributes.len() as u64,
            entities,
            revisions: Some((first, last)),
        };
        step("committing");
        self.commit(summary).await
    }

    /// Commits (or, with `stop_before_commit`, rolls back and says so).
    async fn commit(self, summary: ImportSummary) -> Result<ImportSummary, BulkError> {
        if self.options.stop_before_commit {
            return Err(BulkError::Stopped);
        }
        self.tx
            .commit()
            .await
            .map_err(query_error(&self.uri, "commit the import"))?;
        Ok(summary)
    }

    /// Of `tuples`, those already stored.
    async fn stored_tuples(&mut self, tuples: &[Tuple]) -> Result<HashSet<Tuple>, BulkError> {
        let uri = self.uri.clone();
        let uri = uri.as_str();
        sqlx::query(
            "CREATE TEMP TABLE lookout_import_tuples (
                 entity_type TEXT COLLATE \"C\", entity_id TEXT COLLATE \"C\", relation TEXT COLLATE \"C\",
                 subject_type TEXT COLLATE \"C\", subject_id TEXT COLLATE \"C\", subject_relation TEXT COLLATE \"C\"
             ) ON COMMIT DROP",
        )
        .execute(&mut *self.tx)
        .await
        .map_err(query_error(uri, "create a temporary table"))?;
        let mut rows = CopyRows::new();
        for t in tuples {
            rows.row(6).tuple(t);
        }
        rows.send(
            &mut self.tx,
            "COPY lookout_import_tuples FROM STDIN (FORMAT binary)",
            uri,
            "copy the file's tuples",
        )
        .await?;
        let mut stored = HashSet::new();
        self.copy_out(
            "COPY (SELECT s.* FROM lookout_import_tuples s JOIN lookout_tuples t
                     ON t.tenant_id = current_setting('lookout.bulk_tenant')
                    AND t.entity_type = s.entity_type AND t.entity_id = s.entity_id
                    AND t.relation = s.relation AND t.subject_type = s.subject_type
                    AND t.subject_id = s.subject_id AND t.subject_relation = s.subject_relation)
             TO STDOUT (FORMAT binary)",
            6,
            |mut f| {
                let sr = f.take(5)?;
                stored.insert(Tuple {
                    entity: EntityRef::new(f.take(0)?, f.take(1)?),
                    relation: f.take(2)?,
                    subject: SubjectRef::new(
                        f.take(3)?,
                        f.take(4)?,
                        (!sr.is_empty()).then_some(sr),
                    ),
                });
                Ok(())
            },
        )
        .await?;
        Ok(stored)
    }

    /// The stored values (as stored) of those of `attributes` the tenant has.
    async fn stored_values(
        &mut self,
        attributes: &[Attribute],
    ) -> Result<HashMap<AttrKey, String>, BulkError> {
        let uri = self.uri.clone();
        let uri = uri.as_str();
        sqlx::query(
            "CREATE TEMP TABLE lookout_import_attributes (
                 entity_type TEXT COLLATE \"C\", entity_id TEXT COLLATE \"C\", name TEXT COLLATE \"C\"
             ) ON COMMIT DROP",
        )
        .execute(&mut *self.tx)
        .await
        .map_err(query_error(uri, "create a temporary table"))?;
        let mut rows = CopyRows::new();
        for a in attributes {
            rows.row(3)
                .text(&a.entity.ty)
                .text(&a.entity.id)
                .text(&a.name);
        }
        rows.send(
            &mut self.tx,
            "COPY lookout_import_attributes FROM STDIN (FORMAT binary)",
            uri,
            "copy the file's attributes",
        )
        .await?;
        let mut stored = HashMap::new();
        self.copy_out(
            "COPY (SELECT a.entity_type, a.entity_id, a.name, a.value
                   FROM lookout_import_attributes s JOIN lookout_attributes a
                     ON a.tenant_id = current_setting('lookout.bulk_tenant')
                    AND a.entity_type = s.entity_type AND a.entity_id = s.entity_id
                    AND a.name = s.name)
             TO STDOUT (FORMAT binary)",
            4,
            |mut f| {
                stored.insert((f.take(0)?, f.take(1)?, f.take(2)?), f.take(3)?);
                Ok(())
            },
        )
        .await?;
        Ok(stored)
    }

    /// The stored numbers of the IDs the changes mention, and the next free number of each of
    /// their types.
    async fn stored_numbers(
        &mut self,
        tuples: &[Tuple],
        attributes: &[Attribute],
    ) -> Result<(Numbers, HashMap<String, i64>), BulkError> {
        let uri = self.uri.clone();
        let uri = uri.as_str();
        let wanted = mentioned(tuples, attributes);
        sqlx::query(
            "CREATE TEMP TABLE lookout_import_ids (
                 entity_type TEXT COLLATE \"C\", entity_id TEXT COLLATE \"C\"
             ) ON COMMIT DROP",
        )
        .execute(&mut *self.tx)
        .await
        .map_err(query_error(uri, "create a temporary table"))?;
        let mut rows = CopyRows::new();
        for (ty, id) in &wanted {
            rows.row(2).text(ty).text(id);
        }
        rows.send(
            &mut self.tx,
            "COPY lookout_import_ids FROM STDIN (FORMAT binary)",
            uri,
            "copy the file's IDs",
        )
        .await?;
        let mut stored: Vec<(String, String, String)> = Vec::new();
        self.copy_out(
            "COPY (SELECT e.entity_type, e.entity_id, e.number::text
                   FROM lookout_import_ids s JOIN lookout_entities e
                     ON e.tenant_id = current_setting('lookout.bulk_tenant')
                    AND e.entity_type = s.entity_type AND e.entity_id = s.entity_id)
             TO STDOUT (FORMAT binary)",
            3,
            |mut f| {
                stored.push((f.take(0)?, f.take(1)?, f.take(2)?));
                Ok(())
            },
        )
        .await?;
        let mut numbers = Numbers::default();
        for (ty, id, n) in stored {
            let n: i32 = n.parse().map_err(|_| BulkError::Decode {
                uri: redact(uri),
                reason: format!("entity number `{n}` is not a number"),
            })?;
            numbers.insert(&ty, id, (n, false));
        }
        let mut types: Vec<&str> = wanted.iter().map(|(ty, _)| *ty).collect();
        types.sort_unstable();
        types.dedup();
        // Each subquery reads one end of the (tenant, type, number) index.
        let next = sqlx::query_as::<_, (String, i64)>(
            "SELECT t.entity_type,
                    COALESCE((SELECT MAX(e.number) + 1 FROM lookout_entities e
                              WHERE e.tenant_id = $1 AND e.entity_type = t.entity_type), 0)::bigint
             FROM UNNEST($2::text[]) AS t(entity_type)",
        )
        .bind(&self.tenant)
        .bind(&types)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(query_error(uri, "number new entities"))?
        .into_iter()
        .collect();
        Ok((numbers, next))
    }

    /// Streams the rows of a `COPY ... TO STDOUT (FORMAT binary)` into `each`.
    async fn copy_out(
        &mut self,
        statement: &str,
        columns: usize,
        mut each: impl FnMut(Fields) -> Result<(), String>,
    ) -> Result<(), BulkError> {
        let uri = self.uri.clone();
        let decode = |reason: String| BulkError::Decode {
            uri: redact(&uri),
            reason,
        };
        let mut stream = self
            .tx
            .copy_out_raw(statement)
            .await
            .map_err(query_error(&uri, "start COPY TO STDOUT"))?;
        let mut decoder = CopyDecoder::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(query_error(&uri, "read COPY data"))?;
            decoder.feed(&chunk);
            while let Some(fields) = decoder.row(columns).map_err(decode)? {
                each(fields).map_err(decode)?;
            }
        }
        decoder.finish().map_err(decode)
    }
}

/// Every (type, ID) that `tuples` and `attributes` mention, once.
fn mentioned<'a>(tuples: &'a [Tuple], attributes: &'a [Attribute]) -> HashSet<(&'a str, &'a str)> {
    let mut wanted: HashSet<(&str, &str)> = HashSet::with_capacity(tuples.len() + attributes.len());
    for t in tuples {
        wanted.insert((&t.entity.ty, &t.entity.id));
        wanted.insert((&t.subject.ty, &t.subject.id));
    }
    for a in attributes {
        wanted.insert((&a.entity.ty, &a.entity.id));
    }
    wanted
}

/// The numbers of every ID the changes mention: `stored`, and new ones numbered densely per
/// type from `next` (0 for a type without one), in ID order.
fn assign_numbers(
    tenant: &str,
    tuples: &[Tuple],
    attributes: &[Attribute],
    mut numbers: Numbers,
    mut next: HashMap<String, i64>,
) -> Result<Numbers, BulkError> {
    let mut missing: Vec<(&str, &str)> = mentioned(tuples, attributes)
        .into_iter()
        .filter(|(ty, id)| !numbers.contains(ty, id))
        .collect();
    missing.sort_unstable();
    for (ty, id) in missing {
        let slot = match next.get_mut(ty) {
            Some(slot) => slot,
            None => next.entry(ty.to_owned()).or_insert(0),
        };
        let n = i32::try_from(*slot).map_err(|_| BulkError::TooManyIds {
            tenant: tenant.to_owned(),
            entity_type: ty.to_owned(),
        })?;
        *slot += 1;
        numbers.insert(ty, id.to_owned(), (n, true));
    }
    Ok(numbers)
}

/// The `lookout_entities` rows of the new numbers, in key order, which is also number order
/// within a type: both indexes grow at their ends.
fn entity_rows(tenant: &str, numbers: &Numbers) -> CopyRows {
    let mut new_ids: Vec<(&str, &str, i32)> = numbers.new_ones().collect();
    new_ids.sort_unstable();
    let mut rows = CopyRows::new();
    for (ty, id, n) in new_ids {
        rows.row(4).text(tenant).text(ty).text(id).int4(n);
    }
    rows
}

/// The `lookout_changes` rows: the tuples' creations, then the attributes', `size` to a
/// revision from `first` on.
fn change_rows(
    tenant: &str,
    tuples: &[Tuple],
    attributes: &[Attribute],
    numbers: &Numbers,
    first: u64,
    size: usize,
) -> Result<CopyRows, BulkError> {
    let db = |r: u64| i64::try_from(r).unwrap_or(i64::MAX);
    let at = |i: usize| (db(first + (i / size) as u64), (i % size) as i32);
    let mut rows = CopyRows::new();
    for (i, t) in tuples.iter().enumerate() {
        let (revision, seq) = at(i);
        rows.row(14)
            .text(tenant)
            .int8(revision)
            .int4(seq)
            .text("c")
            .text("t")
            .text(&t.entity.ty)
            .text(&t.entity.id)
            .int4(numbers.get(&t.entity.ty, &t.entity.id)?)
            .text(&t.relation)
            .text(&t.subject.ty)
            .text(&t.subject.id)
            .int4(numbers.get(&t.subject.ty, &t.subject.id)?)
            .opt_text(t.subject.relation.as_deref())
            .null();
    }
    for (j, a) in attributes.iter().enumerate() {
        let (revision, seq) = at(tuples.len() + j);
        rows.row(14)
            .text(tenant)
            .int8(revision)
            .int4(seq)
            .text("c")
            .text("a")
            .text(&a.entity.ty)
            .text(&a.entity.id)
            .int4(numbers.get(&a.entity.ty, &a.entity.id)?)
            .text(&a.name)
            .null()
            .null()
            .null()
            .null()
            .text(&codec::encode_value(&a.value));
    }
    Ok(rows)
}

/// Each attribute key's last value, in key order.
fn last_values(attributes: Vec<Attribute>) -> Vec<Attribute> {
    let mut indexed: Vec<(usize, Attribute)> = attributes.into_iter().enumerate().collect();
    indexed.sort_by(|(i, a), (j, b)| (&a.entity, &a.name, *i).cmp(&(&b.entity, &b.name, *j)));
    let mut out: Vec<Attribute> = Vec::with_capacity(indexed.len());
    for (_, a) in indexed {
        match out.last_mut() {
            Some(last) if last.entity == a.entity && last.name == a.name => *last = a,
            _ => out.push(a),
        }
    }
    out
}

/// Entity numbers by type and ID, each with whether it is new (by type first, so that a
/// lookup borrows the names instead of building a key).
#[derive(Debug, Default)]
struct Numbers(HashMap<String, HashMap<String, (i32, bool)>>);

impl Numbers {
    fn insert(&mut self, ty: &str, id: String, number: (i32, bool)) {
        match self.0.get_mut(ty) {
            Some(ids) => {
                ids.insert(id, number);
            }
            None => {
                self.0.insert(ty.to_owned(), HashMap::from([(id, number)]));
            }
        }
    }

    fn contains(&self, ty: &str, id: &str) -> bool {
        self.0.get(ty).is_some_and(|ids| ids.contains_key(id))
    }

    fn get(&self, ty: &str, id: &str) -> Result<i32, BulkError> {
        self.0
            .get(ty)
            .and_then(|ids| ids.get(id))
            .map(|(n, _)| *n)
            .ok_or_else(|| BulkError::Encode {
                reason: format!("no entity number for `{ty}:{id}`"),
            })
    }

    /// The new ones: (type, ID, number).
    fn new_ones(&self) -> impl Iterator<Item = (&str, &str, i32)> {
        self.0.iter().flat_map(|(ty, ids)| {
            ids.iter()
                .filter(|(_, (_, new))| *new)
                .map(move |(id, (n, _))| (ty.as_str(), id.as_str(), *n))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_decode_back_in_any_chunking() {
        let mut rows = CopyRows::new();
        rows.row(2).text("a\tb\n").null();
        rows.row(2).text("").text("é");
        let mut bytes = rows.buf.clone();
        bytes.extend_from_slice(&(-1i16).to_be_bytes());
        for step in [1, 3, 7, bytes.len()] {
            let mut decoder = CopyDecoder::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(step) {
                decoder.feed(chunk);
                while let Some(f) = decoder.row(2).unwrap() {
                    got.push(f.0);
                }
            }
            decoder.finish().unwrap();
            assert_eq!(
                got,
                vec![
                    vec![Some("a\tb\n".to_owned()), None],
                    vec![Some(String::new()), Some("é".to_owned())]
                ],
                "chunks of {step}"
            );
        }
        let mut decoder = CopyDecoder::default();
        decoder.feed(&bytes[..bytes.len() - 2]);
        while decoder.row(2).unwrap().is_some() {}
        assert!(decoder.finish().is_err());
    }

    #[test]
    fn the_last_value_of_each_attribute_counts() {
        let a = |text: &str| Attribute::parse(text).unwrap();
        let out = last_values(vec![
            a("doc:2$public|boolean:true"),
            a("doc:1$level|integer:1"),
            a("doc:2$public|boolean:false"),
            a("doc:1$level|integer:3"),
        ]);
        let texts: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            ["doc:1$level|integer:3", "doc:2$public|boolean:false"]
        );
    }
}
