//! Loading tenants from the database into replicas: each in one repeatable-read snapshot, so
//! schemas, entity numbers, tuples and attributes are all of one revision.

use std::sync::Arc;
use std::time::Instant;

use futures_util::TryStreamExt;
use lookout_engine::eval::Model;
use lookout_engine::index::{Load, WriteBatch};
use lookout_engine::model::{Attribute, EntityRef, SubjectRef, Tuple};
use sqlx::Row;

use super::write::from_millis;
use super::{Pg, StartError, codec, db_error, read_only_tx};
use crate::cache::CheckCosts;
use crate::error::ApiError;
use crate::tenants::{SchemaVersion, Tenant, TenantInfo, Tenants};

/// Tuples or attributes applied to the index per step of a load.
const LOAD_CHUNK: usize = 50_000;

/// A stored schema version, compiled again.
pub(super) fn compile_stored(
    tenant: &str,
    version: String,
    seq: i64,
    source: String,
    created_ms: i64,
) -> Result<SchemaVersion, String> {
    let model = Model::compile(&source).map_err(|e| {
        format!("tenant `{tenant}` schema version `{version}` does not compile: {e}")
    })?;
    Ok(SchemaVersion {
        version,
        source,
        check_costs: CheckCosts::new(&model),
        model: Arc::new(model),
        created_at: from_millis(created_ms),
        seq: seq as u64,
    })
}

impl Pg {
    /// Loads every tenant (at start).
    pub(super) async fn load_all(&self, tenants: &Tenants) -> Result<(), StartError> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM lookout_tenants ORDER BY incarnation")
                .fetch_all(&self.pool)
                .await
                .map_err(|source| StartError::Query {
                    uri: super::redact(&self.options.uri),
                    what: "list tenants",
                    source,
                })?;
        for id in ids {
            self.load_tenant_by_id(tenants, &id)
                .await
                .map_err(|e| StartError::Load {
                    tenant: id.clone(),
                    message: e.message,
                })?;
        }
        Ok(())
    }

    /// The tenant `id`, loaded from the database if this replica does not have it; `None` if
    /// the database does not have it either.
    pub(crate) async fn load_tenant_by_id(
        &self,
        tenants: &Tenants,
        id: &str,
    ) -> Result<Option<Arc<Tenant>>, ApiError> {
        let _loading = self.loading.lock().await;
        if let Some(t) = tenants.local(id) {
            return Ok(Some(t));
        }
        let loaded = self.load_tenant(tenants, id).await?;
        if let Some(t) = &loaded {
            tenants.install(t.clone());
        }
        Ok(loaded)
    }

    /// Replaces the local copy of `id` with a fresh load (re-created, or behind the change log).
    pub(super) async fn reload(&self, tenants: &Tenants, id: &str) -> Result<(), ApiError> {
        let _loading = self.loading.lock().await;
        match self.load_tenant(tenants, id).await? {
            Some(t) => tenants.install(t),
            None => {
                tenants.remove_local(id);
            }
        }
        Ok(())
    }

    /// Catches up with the database's list of tenants: loads new ones, drops deleted ones,
    /// reloads re-created ones. Returns each tenant's latest revision and schema `seq`.
    pub(crate) async fn sync_tenants(
        &self,
        tenants: &Tenants,
    ) -> Result<Vec<(String, u64, Option<u64>)>, ApiError> {
        let rows: Vec<(String, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT t.id, t.incarnation, t.revision,
                    (SELECT MAX(s.seq) FROM lookout_schemas s WHERE s.tenant_id = t.id)
             FROM lookout_tenants t",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("list tenants"))?;
        let stored: std::collections::HashMap<String, u64> = rows
            .iter()
            .map(|(id, inc, _, _)| (id.clone(), *inc as u64))
            .collect();
        for local in tenants.list_local() {
            if stored.get(&local.id) != Some(&local.incarnation) {
                tenants.remove_local(&local.id);
            }
        }
        for id in stored.keys() {
            self.load_tenant_by_id(tenants, id).await?;
        }
        Ok(rows
            .into_iter()
            .map(|(id, _, revision, seq)| (id, revision as u64, seq.map(|s| s as u64)))
            .collect())
    }

    async fn load_tenant(
        &self,
        tenants: &Tenants,
        id: &str,
    ) -> Result<Option<Arc<Tenant>>, ApiError> {
        let started = Instant::now();
        let mut tx = read_only_tx(&self.pool, "begin loading a tenant").await?;
        let row: Option<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT name, incarnation, created_ms, revision FROM lookout_tenants WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error("read the tenant"))?;
        let Some((name, incarnation, created_ms, revision)) = row else {
            return Ok(None);
        };
        let revision = revision as u64;
        let tenant = Tenant::with_backend(
            id,
            TenantInfo {
                name,
                incarnation: incarnation as u64,
                created_at: from_millis(created_ms),
            },
            tenants.retention(),
            tenants.backend().clone(),
        );

        let schemas: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT version, seq, source, created_ms FROM lookout_schemas WHERE tenant_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error("read schema versions"))?;
        for (version, seq, source, created_ms) in schemas {
            match compile_stored(id, version, seq, source, created_ms) {
                Ok(v) => tenant.insert_schema(Arc::new(v)),
                Err(e) => tracing::error!(error = %e, "skipping a stored schema version"),
            }
        }

        let interner = tenant.store().interner().clone();
        let mut entities = sqlx::query(
            "SELECT entity_type, entity_id, number FROM lookout_entities WHERE tenant_id = $1",
        )
        .bind(id)
        .fetch(&mut *tx);
        let mut entity_count = 0u64;
        while let Some(row) = entities
            .try_next()
            .await
            .map_err(db_error("read entity numbers"))?
        {
            let text = |i: usize| -> Result<&str, ApiError> {
                row.try_get::<&str, _>(i)
                    .map_err(db_error("read an entity number"))
            };
            let (ty, eid) = (text(0)?, text(1)?);
            let n: i32 = row.try_get(2).map_err(db_error("read an entity number"))?;
            let n = u32::try_from(n)
                .map_err(|_| ApiError::internal(format!("stored number {n} is negative")))?;
            interner
                .intern_as(ty, eid, n)
                .map_err(|e| ApiError::internal(format!("tenant `{id}`: {e}")))?;
            entity_count += 1;
        }
        drop(entities);

        // Every batch goes into one private snapshot, published once at the end: applying
        // them one by one to the published head would copy each store a batch touches.
        let mut load = tenant.store().load();
        let apply = |load: &mut Load, batch: &WriteBatch| {
            load.apply(batch)
                .map_err(|e| ApiError::internal(format!("tenant `{id}`: {e}")))
        };
        // Tuples straight from the rows' buffers into the stores: no string per tuple.
        let mut tuples = sqlx::query(
            "SELECT entity_type, entity_id, relation, subject_type, subject_id, subject_relation
             FROM lookout_tuples WHERE tenant_id = $1",
        )
        .bind(id)
        .fetch(&mut *tx);
        let mut batch = WriteBatch::default();
        let mut rows = 0u64;
        while let Some(row) = tuples.try_next().await.map_err(db_error("read tuples"))? {
            let text = |i: usize| -> Result<&str, ApiError> {
                row.try_get::<&str, _>(i).map_err(db_error("read a tuple"))
            };
            let (entity, subject) = ((text(0)?, text(1)?), (text(3)?, text(4)?));
            let (relation, subject_relation) = (text(2)?, text(5)?);
            let subject_relation = (!subject_relation.is_empty()).then_some(subject_relation);
            if load
                .insert_tuple(entity, relation, subject, subject_relation)
                .is_err()
            {
                // An ID without a stored number (not written by Lookout): numbered when the
                // batch is applied, as a write would.
                batch.tuple_writes.push(Tuple {
                    entity: EntityRef::new(entity.0, entity.1),
                    relation: relation.to_string(),
                    subject: SubjectRef::new(
                        subject.0,
                        subject.1,
                        subject_relation.map(String::from),
                    ),
                });
            }
            rows += 1;
            if rows.is_multiple_of(LOAD_CHUNK as u64) {
                tracing::info!(tenant = id, tuples = rows, "loading tenant");
            }
        }
        drop(tuples);
        let tuple_count = rows;
        let mut attributes = sqlx::query_as::<_, (String, String, String, String)>(
            "SELECT entity_type, entity_id, name, value FROM lookout_attributes WHERE tenant_id = $1",
        )
        .bind(id)
        .fetch(&mut *tx);
        let mut attribute_count = 0u64;
        while let Some((et, ei, name, value)) = attributes
            .try_next()
            .await
            .map_err(db_error("read attributes"))?
        {
            let value = codec::decode_value(&value).map_err(ApiError::internal)?;
            batch.attribute_writes.push(Attribute {
                entity: EntityRef::new(et, ei),
                name,
                value,
            });
            if batch.attribute_writes.len() >= LOAD_CHUNK {
                apply(&mut load, &batch)?;
                attribute_count += batch.attribute_writes.len() as u64;
                batch = WriteBatch::default();
                tracing::info!(tenant = id, attributes = attribute_count, "loading tenant");
            }
        }
        drop(attributes);
        attribute_count += batch.attribute_writes.len() as u64;
        apply(&mut load, &batch)?;
        tenant
            .store()
            .finish_load(load, revision)
            .map_err(|e| ApiError::internal(format!("tenant `{id}`: {e}")))?;
        tx.commit()
            .await
            .map_err(db_error("finish loading a tenant"))?;
        tenant.publish_loaded();
        tracing::info!(
            tenant = id,
            revision,
            entities = entity_count,
            tuples = tuple_count,
            attributes = attribute_count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded tenant"
        );
        Ok(Some(Arc::new(tenant)))
    }
}
