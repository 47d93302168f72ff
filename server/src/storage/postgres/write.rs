//! Transactions of the PostgreSQL store: data commits, a group of writes at a time (see the
//! module docs of [`super`] for their protocol and [`super::group`] for the groups), schema
//! versions, tenants, and Watch's replay.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lookout_engine::eval::Model;
use lookout_engine::index::{Change, ChangeOp, Snapshot, WriteBatch};
use lookout_engine::model::Tuple;
use sqlx::{Postgres, Transaction};

use super::codec::{self, CHANGE_COLUMNS, ChangeColumns, ChangeRow};
use super::group::Pending;
use super::{LOCK_CLASS, Pg, db_error, read_only_tx, tenant_revisions};
use crate::error::{ApiError, ErrorCode};
use crate::tenants::{BuildBatch, Commit, RejectBatch, SchemaVersion, Tenant, Tenants};

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(super) fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A write of a group, planned: its effective changes, or why it fails alone.
/// A write of a group planned: its effective changes and the batch that replays them (made
/// once, to stage the writes after it and to apply it to this replica), or why it fails.
type Planned = Result<(Vec<Change>, WriteBatch), ApiError>;

impl Pg {
    /// Commits a group of writes (see [`super::group`]) in one transaction, each accepted
    /// write as its own revision in queue order, and answers each writer with its revision or
    /// its own error once this replica has applied the group (the protocol is in the module
    /// docs of [`super`]). A write its builder or validation rejects fails alone; an error of
    /// the database fails the whole group, which then changed nothing.
    pub(super) async fn commit_group(&self, tenant: &Arc<Tenant>, group: Vec<Pending>) {
        let mut answers = Vec::with_capacity(group.len());
        let mut writes = Vec::with_capacity(group.len());
        for p in group {
            answers.push(p.answer);
            writes.push((p.model, p.build, p.rejected));
        }
        let results = match self.commit_writes(tenant, writes).await {
            Ok(results) => results,
            Err(e) => vec![Err(e); answers.len()],
        };
        for (answer, result) in answers.into_iter().zip(results) {
            // A writer that went away no longer needs its answer.
            let _ = answer.send(result);
        }
    }

    /// The transaction of [`Pg::commit_group`]: the result of each write, in order.
    async fn commit_writes(
        &self,
        tenant: &Arc<Tenant>,
        writes: Vec<(Arc<Model>, BuildBatch, RejectBatch)>,
    ) -> Result<Vec<Result<u64, ApiError>>, ApiError> {
        let mut tx = self.pool.begin().await.map_err(db_error("begin a write"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(&tenant.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error("lock the tenant for writing"))?;
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT revision, incarnation FROM lookout_tenants WHERE id = $1")
                .bind(&tenant.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error("read the tenant's revision"))?;
        let current = match row {
            Some((revision, incarnation)) if incarnation as u64 == tenant.incarnation => {
                revision as u64
            }
            _ => return Err(ApiError::tenant_not_found(&tenant.id)),
        };
        // Build and validate against exactly the committed data.
        self.kick(&tenant.id);
        if !tenant
            .wait_applied(current, self.options.snap_token_wait)
            .await
        {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "this server has not yet caught up with revision {current} of tenant `{}`; retry",
                    tenant.id
                ),
            ));
        }
        let head = tenant.head();
        if head.revision() != current {
            return Err(ApiError::internal(format!(
                "tenant `{}`: the index is at revision {} but the database at {current}",
                tenant.id,
                head.revision()
            )));
        }
        // CPU work (a delete by filter may match many tuples): off the async worker's duty
        // where the runtime allows it.
        let work = || plan_group(&head, writes);
        let planned = match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
            _ => work(),
        };
        // Revisions in queue order, dense: the accepted writes number `current + 1..=last`.
        let mut results = Vec::with_capacity(planned.len());
        let mut committed: Vec<(u64, Vec<Change>, WriteBatch)> = Vec::new();
        let mut last = current;
        for p in planned {
            match p {
                Ok((changes, batch)) => {
                    last += 1;
                    committed.push((last, changes, batch));
                    results.push(Ok(last));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if committed.is_empty() {
            // Every write failed alone; dropping the transaction rolls it back.
            return Ok(results);
        }
        let db_revision =
            |r: u64| i64::try_from(r).map_err(|_| ApiError::internal("revision counter overflow"));
        let (first_db, last_db) = (db_revision(current + 1)?, db_revision(last)?);
        // Every revision of the group, in one round trip.
        let recorded = record_revisions(
            &mut tx,
            &tenant.id,
            tenant.incarnation as i64,
            first_db,
            last_db,
        )
        .await
        .map_err(db_error("record the revisions"))?;
        if !recorded {
            return Err(ApiError::tenant_not_found(&tenant.id));
        }
        let all = || committed.iter().flat_map(|(_, changes, _)| changes.iter());
        let mut numbers = HashMap::new();
        if all().next().is_some() {
            numbers = number_entities(&mut tx, &tenant.id, all()).await?;
            apply_changes(&mut tx, &tenant.id, all()).await?;
            let mut revisions: Vec<i64> = Vec::new();
            let mut c = ChangeColumns::default();
            for (revision, changes, _) in &committed {
                let rows = ChangeColumns::of(changes, &numbers).map_err(ApiError::internal)?;
                revisions.extend(std::iter::repeat_n(db_revision(*revision)?, rows.seq.len()));
                c.extend(rows);
            }
            sqlx::query(
                "INSERT INTO lookout_changes (tenant_id, revision, seq, op, kind, entity_type, entity_id, entity_number, relation, subject_type, subject_id, subject_number, subject_relation, value)
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[], $10::text[], $11::text[], $12::int[], $13::text[], $14::text[])",
            )
            .bind(&tenant.id)
            .bind(&revisions)
            .bind(&c.seq)
            .bind(&c.op)
            .bind(&c.kind)
            .bind(&c.entity_type)
            .bind(&c.entity_id)
            .bind(&c.entity_number)
            .bind(&c.relation)
            .bind(&c.subject_type)
            .bind(&c.subject_id)
            .bind(&c.subject_number)
            .bind(&c.subject_relation)
            .bind(&c.value)
            .execute(&mut *tx)
            .await
            .map_err(db_error("append to the change log"))?;
        }
        tx.commit().await.map_err(db_error("commit the write"))?;
        // This server knows what it committed: apply it now unless the tailer got there first
        // (or another server's later revision is already waiting, then the tailer applies all).
        if let Err(e) = apply_own(tenant, committed, &numbers) {
            tracing::warn!(tenant = %tenant.id, revision = last, error = %e, "applying own writes failed; the tailer will");
        }
        self.kick(&tenant.id);
        if !tenant
            .wait_applied(last, self.options.snap_token_wait)
            .await
        {
            // Committed and durable: the tokens are right, only this replica is slow.
            tracing::warn!(
                tenant = %tenant.id,
                revision = last,
                "the write committed but this server did not apply it within snap-token-wait"
            );
        }
        Ok(results)
    }

    /// Stores a schema version (already compiled) and returns it with its `seq`.
    pub(crate) async fn write_schema(
        &self,
        tenant: &Tenant,
        version: SchemaVersion,
    ) -> Result<SchemaVersion, ApiError> {
        let seq: Option<i64> = sqlx::query_scalar(
            "INSERT INTO lookout_schemas (tenant_id, version, source, created_ms)
             SELECT id, $2, $3, $4 FROM lookout_tenants WHERE id = $1 AND incarnation = $5
             RETURNING seq",
        )
        .bind(&tenant.id)
        .bind(&version.version)
        .bind(&version.source)
        .bind(millis(version.created_at))
        .bind(tenant.incarnation as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("store the schema"))?;
        let seq = seq.ok_or_else(|| ApiError::tenant_not_found(&tenant.id))?;
        self.notify(format!("s:{}", tenant.id)).await?;
        Ok(SchemaVersion {
            seq: seq as u64,
            ..version
        })
    }

    /// Adds the schema versions stored since the newest one this replica knows.
    pub(crate) async fn refresh_schemas(&self, tenant: &Tenant) -> Result<(), ApiError> {
        let after = tenant.last_schema_seq().map_or(-1, |s| s as i64);
        let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT version, seq, source, created_ms FROM lookout_schemas
             WHERE tenant_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(&tenant.id)
        .bind(after)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("read schema versions"))?;
        for (version, seq, source, created_ms) in rows {
            match super::load::compile_stored(&tenant.id, version, seq, source, created_ms) {
                Ok(v) => tenant.insert_schema(Arc::new(v)),
                Err(e) => tracing::error!(error = %e, "skipping a stored schema version"),
            }
        }
        Ok(())
    }

    pub(crate) async fn create_tenant(
        &self,
        tenants: &Tenants,
        id: &str,
        name: &str,
    ) -> Result<Arc<Tenant>, ApiError> {
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO lookout_tenants (id, name, created_ms) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO NOTHING RETURNING incarnation",
        )
        .bind(id)
        .bind(name)
        .bind(millis(SystemTime::now()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("create the tenant"))?;
        if created.is_none() {
            return Err(ApiError::tenant_exists(id));
        }
        self.notify(format!("t:{id}")).await?;
        self.load_tenant_by_id(tenants, id)
            .await?
            .ok_or_else(|| ApiError::tenant_not_found(id))
    }

    pub(crate) async fn delete_tenant(
        &self,
        tenants: &Tenants,
        id: &str,
    ) -> Result<Arc<Tenant>, ApiError> {
        // The data tables have no foreign keys to cascade through (migration 0002): their
        // rows go in the same transaction as the tenant, so a tenant created again under this
        // ID starts empty. The tenant's row first: deleting it waits for a write in progress
        // (which updates the row), so the rows deleted next include that write's, and a write
        // that starts later finds no tenant to record its revision under and writes nothing.
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db_error("begin deleting the tenant"))?;
        let deleted: Option<i64> =
            sqlx::query_scalar("DELETE FROM lookout_tenants WHERE id = $1 RETURNING incarnation")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error("delete the tenant"))?;
        let Some(incarnation) = deleted else {
            return Err(ApiError::tenant_not_found(id));
        };
        for table in [
            "lookout_changes",
            "lookout_tuples",
            "lookout_attributes",
            "lookout_entities",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error("delete the tenant's data"))?;
        }
        tx.commit()
            .await
            .map_err(db_error("commit deleting the tenant"))?;
        self.notify(format!("t:{id}")).await?;
        match tenants.remove_local(id) {
            Some(t) => Ok(t),
            None => Ok(Arc::new(Tenant::with_backend(
                id,
                crate::tenants::TenantInfo {
                    name: String::new(),
                    incarnation: incarnation as u64,
                    created_at: SystemTime::now(),
                },
                tenants.retention(),
                tenants.backend().clone(),
            ))),
        }
    }

    /// The committed changes of `tenant` after revision `after`, up to `upto` (this replica's
    /// head when Watch subscribed) but at most `replay_step` revisions, from the change log,
    /// and the last revision read. Errors if `after` is older than the log keeps (also when
    /// the collector got there during a long replay) or newer than the tenant's latest revision.
    pub(crate) async fn replay(
        &self,
        tenant: &Tenant,
        after: u64,
        upto: u64,
    ) -> Result<(Vec<Commit>, u64), ApiError> {
        let mut tx = read_only_tx(&self.pool, "begin a watch replay").await?;
        let Some((head, gc)) = tenant_revisions(&mut tx, tenant).await? else {
            return Err(ApiError::tenant_not_found(&tenant.id));
        };
        if after > head {
            return Err(ApiError::invalid(format!(
                "snap token names revision {after}, beyond this tenant's head {head}"
            )));
        }
        if after < gc {
            return Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                format!(
                    "changes after revision {after} are no longer retained: the change log keeps the revisions after {gc} (watch-retention); start a new watch without a snap token"
                ),
            ));
        }
        if after >= upto {
            return Ok((Vec::new(), after));
        }
        let upto = upto.min(after.saturating_add(self.options.replay_step.max(1)));
        let rows: Vec<ChangeRow> = sqlx::query_as(&format!(
            "SELECT {CHANGE_COLUMNS} FROM lookout_changes
             WHERE tenant_id = $1 AND revision > $2 AND revision <= $3 ORDER BY revision, seq"
        ))
        .bind(&tenant.id)
        .bind(after as i64)
        .bind(upto as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error("read the change log"))?;
        let mut commits = Vec::new();
        for (revision, rows) in codec::by_revision(rows) {
            let decoded = codec::decode(&rows).map_err(ApiError::internal)?;
            commits.push(Commit {
                revision,
                changes: Arc::new(decoded.changes.into()),
            });
        }
        Ok((commits, upto))
    }
}

/// Builds and plans each write of a group in order, each against the head plus the writes
/// before it that were accepted (staged on a private snapshot), so that a delete by filter
/// or a duplicate sees exactly what committing the group one write at a time would show it.
fn plan_group(head: &Snapshot, writes: Vec<(Arc<Model>, BuildBatch, RejectBatch)>) -> Vec<Planned> {
    let count = writes.len();
    let mut staged: Option<Snapshot> = None;
    let mut planned = Vec::with_capacity(count);
    for (i, (model, build, rejected)) in writes.into_iter().enumerate() {
        let base = staged.as_ref().unwrap_or(head);
        let mut result = build(base)
            .and_then(|batch| base.plan(&model.schema, &batch).map_err(rejected))
            .map(|changes| {
                let replay = WriteBatch::of_changes(&changes);
                (changes, replay)
            });
        let mut next = None;
        if let Ok((changes, replay)) = &result
            && !changes.is_empty()
            && i + 1 < count
        {
            match base.staged(replay) {
                Ok(snapshot) => next = Some(snapshot),
                Err(e) => result = Err(ApiError::internal(format!("staging a write: {e}"))),
            }
        }
        if next.is_some() {
            staged = next;
        }
        planned.push(result);
    }
    planned
}

/// Applies the revisions this server just committed, in order, to its own replica.
fn apply_own(
    tenant: &Tenant,
    committed: Vec<(u64, Vec<Change>, WriteBatch)>,
    numbers: &HashMap<(String, String), i32>,
) -> Result<(), String> {
    let interner = tenant.store().interner();
    for ((ty, id), n) in numbers {
        let n = u32::try_from(*n).map_err(|_| format!("entity number {n} is negative"))?;
        interner.intern_as(ty, id, n).map_err(|e| e.to_string())?;
    }
    for (revision, changes, batch) in committed {
        // Defensive: the writer waited for the revision before the group under the lock, so
        // the head is at least that; were it not, the tailer would apply them all in order.
        // (The head only moves forward, so passing this check rules out a gap inside
        // `apply_committed`.)
        if tenant.head().revision() + 1 < revision {
            return Ok(());
        }
        tenant
            .apply_committed(revision, &batch, changes)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The durable numbers of every ID `changes` mention, numbering new ones densely per type.
async fn number_entities<'c>(
    tx: &mut Transaction<'static, Postgres>,
    tenant: &str,
    changes: impl Iterator<Item = &'c Change>,
) -> Result<HashMap<(String, String), i32>, ApiError> {
    let mut wanted: BTreeSet<(&str, &str)> = BTreeSet::new();
    for change in changes {
        match change {
            Change::Tuple(_, t) => {
                wanted.insert((&t.entity.ty, &t.entity.id));
                wanted.insert((&t.subject.ty, &t.subject.id));
            }
            Change::Attribute(_, a) => {
                wanted.insert((&a.entity.ty, &a.entity.id));
            }
        }
    }
    let (types, ids): (Vec<&str>, Vec<&str>) = wanted.iter().copied().unzip();
    let known: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT e.entity_type, e.entity_id, e.number FROM lookout_entities e
         JOIN UNNEST($2::text[], $3::text[]) AS w(entity_type, entity_id)
           ON e.entity_type = w.entity_type AND e.entity_id = w.entity_id
         WHERE e.tenant_id = $1",
    )
    .bind(tenant)
    .bind(&types)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error("read entity numbers"))?;
    let mut numbers: HashMap<(String, String), i32> =
        known.into_iter().map(|(ty, id, n)| ((ty, id), n)).collect();
    let mut missing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (ty, id) in &wanted {
        if !numbers.contains_key(&(ty.to_string(), id.to_string())) {
            missing.entry(ty).or_default().push(id);
        }
    }
    let (mut new_types, mut new_ids, mut new_numbers) = (Vec::new(), Vec::new(), Vec::new());
    // The next number of every type with new IDs, in one round trip (each subquery reads one
    // end of the (tenant, type, number) index).
    let missing_types: Vec<&str> = missing.keys().copied().collect();
    let next_numbers: HashMap<String, i64> = if missing_types.is_empty() {
        HashMap::new()
    } else {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT t.entity_type,
                    COALESCE((SELECT MAX(e.number) + 1 FROM lookout_entities e
                              WHERE e.tenant_id = $1 AND e.entity_type = t.entity_type), 0)::bigint
             FROM UNNEST($2::text[]) AS t(entity_type)",
        )
        .bind(tenant)
        .bind(&missing_types)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error("number new entities"))?
        .into_iter()
        .collect()
    };
    for (ty, ids) in missing {
        let next = next_numbers.get(ty).copied().unwrap_or(0);
        for (i, id) in ids.into_iter().enumerate() {
            let n = i32::try_from(next + i as i64).map_err(|_| {
                ApiError::new(
                    ErrorCode::ResourceExhausted,
                    format!("too many distinct ids of type `{ty}` in tenant `{tenant}`"),
                )
            })?;
            numbers.insert((ty.to_string(), id.to_string()), n);
            new_types.push(ty);
            new_ids.push(id);
            new_numbers.push(n);
        }
    }
    if !new_ids.is_empty() {
        sqlx::query(
            "INSERT INTO lookout_entities (tenant_id, entity_type, entity_id, number)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int[])",
        )
        .bind(tenant)
        .bind(&new_types)
        .bind(&new_ids)
        .bind(&new_numbers)
        .execute(&mut **tx)
        .await
        .map_err(db_error("store entity numbers"))?;
    }
    Ok(numbers)
}

/// Applies effective changes to the data tables: those of one or more revisions, each
/// revision's listed as [`Snapshot::plan`] lists them (tuple deletes, tuple writes, attribute
/// deletes, attribute writes), the revisions in commit order. Only the last change of each
/// tuple and attribute counts, so one statement per table and kind applies them all.
async fn apply_changes<'c>(
    tx: &mut Transaction<'static, Postgres>,
    tenant: &str,
    changes: impl Iterator<Item = &'c Change>,
) -> Result<(), ApiError> {
    #[derive(Default)]
    struct Tuples {
        et: Vec<String>,
        ei: Vec<String>,
        rel: Vec<String>,
        st: Vec<String>,
        si: Vec<String>,
        sr: Vec<String>,
    }
    let (mut created, mut deleted) = (Tuples::default(), Tuples::default());
    let mut attr_deleted: Vec<(String, String, String)> = Vec::new();
    // Last write per attribute wins.
    let mut attr_written: BTreeMap<(String, String, String), String> = BTreeMap::new();
    // Last change per tuple wins.
    let mut tuples: BTreeMap<&Tuple, ChangeOp> = BTreeMap::new();
    for change in changes {
        match change {
            Change::Tuple(op, t) => {
                tuples.insert(t, *op);
            }
            Change::Attribute(ChangeOp::Delete, a) => {
                let key = (a.entity.ty.clone(), a.entity.id.clone(), a.name.clone());
                attr_written.remove(&key);
                attr_deleted.push(key);
            }
            Change::Attribute(ChangeOp::Create, a) => {
                attr_written.insert(
                    (a.entity.ty.clone(), a.entity.id.clone(), a.name.clone()),
                    codec::encode_value(&a.value),
                );
            }
        }
    }
    for (t, op) in tuples {
        let into = match op {
            ChangeOp::Create => &mut created,
            ChangeOp::Delete => &mut deleted,
        };
        into.et.push(t.entity.ty.clone());
        into.ei.push(t.entity.id.clone());
        into.rel.push(t.relation.clone());
        into.st.push(t.subject.ty.clone());
        into.si.push(t.subject.id.clone());
        into.sr.push(t.subject.relation.clone().unwrap_or_default());
    }
    if !deleted.et.is_empty() {
        sqlx::query(
            "DELETE FROM lookout_tuples t
             USING UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
               AS d(entity_type, entity_id, relation, subject_type, subject_id, subject_relation)
             WHERE t.tenant_id = $1 AND t.entity_type = d.entity_type AND t.entity_id = d.entity_id
               AND t.relation = d.relation AND t.subject_type = d.subject_type
               AND t.subject_id = d.subject_id AND t.subject_relation = d.subject_relation",
        )
        .bind(tenant)
        .bind(&deleted.et)
        .bind(&deleted.ei)
        .bind(&deleted.rel)
        .bind(&deleted.st)
        .bind(&deleted.si)
        .bind(&deleted.sr)
        .execute(&mut **tx)
        .await
        .map_err(db_error("delete tuples"))?;
    }
    if !created.et.is_empty() {
        sqlx::query(
            "INSERT INTO lookout_tuples (tenant_id, entity_type, entity_id, relation, subject_type, subject_id, subject_relation)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(&created.et)
        .bind(&created.ei)
        .bind(&created.rel)
        .bind(&created.st)
        .bind(&created.si)
        .bind(&created.sr)
        .execute(&mut **tx)
        .await
        .map_err(db_error("write tuples"))?;
    }
    if !attr_deleted.is_empty() {
        delete_attributes(tx, tenant, attr_deleted)
            .await
            .map_err(db_error("delete attributes"))?;
    }
    if !attr_written.is_empty() {
        let (mut et, mut ei, mut name, mut value) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((t, i, n), v) in attr_written {
            et.push(t);
            ei.push(i);
            name.push(n);
            value.push(v);
        }
        sqlx::query(
            "INSERT INTO lookout_attributes (tenant_id, entity_type, entity_id, name, value)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[])
             ON CONFLICT (tenant_id, entity_type, entity_id, name) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(tenant)
        .bind(&et)
        .bind(&ei)
        .bind(&name)
        .bind(&value)
        .execute(&mut **tx)
        .await
        .map_err(db_error("write attributes"))?;
    }
    Ok(())
}

/// Deletes the attributes `keys` (entity type, entity ID, name) of `tenant`, in one statement.
pub(super) async fn delete_attributes(
    tx: &mut Transaction<'static, Postgres>,
    tenant: &str,
    keys: Vec<(String, String, String)>,
) -> Result<(), sqlx::Error> {
    let (mut et, mut ei, mut name) = (Vec::new(), Vec::new(), Vec::new());
    for (t, i, n) in keys {
        et.push(t);
        ei.push(i);
        name.push(n);
    }
    sqlx::query(
        "DELETE FROM lookout_attributes a
         USING UNNEST($2::text[], $3::text[], $4::text[]) AS d(entity_type, entity_id, name)
         WHERE a.tenant_id = $1 AND a.entity_type = d.entity_type
           AND a.entity_id = d.entity_id AND a.name = d.name",
    )
    .bind(tenant)
    .bind(&et)
    .bind(&ei)
    .bind(&name)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Bumps `tenant`'s counter to `last`, records revisions `first..=last` and queues one
/// notification (delivered at COMMIT, and only if it commits; the tailer reads every revision
/// up to the counter), in one round trip. False when the tenant (this incarnation) is gone: a
/// DELETE of it held its row until it committed, and then nothing may be written (the data
/// and change rows have no foreign keys that would refuse them).
pub(super) async fn record_revisions(
    tx: &mut Transaction<'static, Postgres>,
    tenant: &str,
    incarnation: i64,
    first: i64,
    last: i64,
) -> Result<bool, sqlx::Error> {
    let recorded = sqlx::query(
        "WITH bumped AS (UPDATE lookout_tenants SET revision = $3
                         WHERE id = $1 AND incarnation = $6 RETURNING id),
              recorded AS (INSERT INTO lookout_revisions (tenant_id, revision)
                           SELECT id, r FROM bumped, generate_series($2::bigint, $3::bigint) AS r
                           RETURNING 1)
         SELECT pg_notify($4, $5) FROM (SELECT 1 FROM recorded LIMIT 1) AS once",
    )
    .bind(tenant)
    .bind(first)
    .bind(last)
    .bind(super::CHANNEL)
    .bind(format!("c:{tenant}:{last}"))
    .bind(incarnation)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(recorded.is_some())
}
