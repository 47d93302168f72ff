//! The Permission service: check, bulk check and subject permission (`check.rs`), expand
//! (`expand.rs`), lookup entity paged and streamed (`lookup_entity.rs`) and lookup subject
//! (`lookup_subject.rs`). This module holds what they share: resolving a request's tenant,
//! schema version, snapshot and context ([`Prepared`]), where a paged lookup starts
//! ([`LookupStart`]), the result cache's keys, and paging.
//!
//! Lookups compute the whole result bitmap on one snapshot, then page or stream it in
//! ascending entity-number order; a continuous token records the snapshot's revision and the
//! last number returned, so the next page resumes exactly after it on the same snapshot.

mod check;
mod expand;
mod lookup_entity;
mod lookup_subject;

use std::sync::Arc;

use lookout_engine::eval::Context as EvalContext;
use lookout_engine::eval::deps::DataKey;
use lookout_engine::index::Snapshot;
use lookout_engine::model;
use lookout_engine::schema::{Member, TypeId};
use lookout_engine::tokens::ContinuousToken;
use lookout_proto::v1;
use roaring::RoaringBitmap;

use super::convert;
use super::{
    Service, next_page_token, pinned_snapshot, query_fingerprint, read_snapshot, schema_of,
};
use crate::cache::CacheKey;
use crate::error::ApiError;
use crate::tenants::{SchemaVersion, Tenant};

/// What every permission request resolves first.
struct Prepared {
    tenant: Arc<Tenant>,
    schema: Arc<SchemaVersion>,
    snapshot: Arc<Snapshot>,
    context: EvalContext,
}

/// Where a paged lookup resumes: the fingerprint of its question (what a continuous token is
/// bound to) and the last number an earlier page returned, if any.
#[derive(Debug, Clone, Copy)]
struct Position {
    query: u64,
    after: Option<u32>,
}

/// The start of a paged lookup: its position, and the request without what positions it
/// (page size, continuous token, snap token), the question its answer is cached under.
struct LookupStart<R> {
    position: Position,
    question: R,
}

/// What every permission request names besides its question: the tenant, the schema version
/// and snap token of its metadata, and its contextual data.
trait Scoped {
    fn tenant_id(&self) -> &str;
    fn schema_version(&self) -> &str;
    fn snap_token(&self) -> &str;
    fn context(&self) -> &Option<v1::Context>;
}

macro_rules! scoped {
    ($($request:ty),* $(,)?) => {$(
        impl Scoped for $request {
            fn tenant_id(&self) -> &str {
                &self.tenant_id
            }
            fn schema_version(&self) -> &str {
                self.metadata.as_ref().map_or("", |m| m.schema_version.as_str())
            }
            fn snap_token(&self) -> &str {
                self.metadata.as_ref().map_or("", |m| m.snap_token.as_str())
            }
            fn context(&self) -> &Option<v1::Context> {
                &self.context
            }
        }
    )*};
}

scoped!(
    v1::PermissionCheckRequest,
    v1::PermissionBulkCheckRequest,
    v1::PermissionExpandRequest,
    v1::PermissionLookupEntityRequest,
    v1::PermissionLookupSubjectRequest,
    v1::PermissionSubjectPermissionRequest,
);

/// A paged lookup request: its continuous token, and itself without what positions it (page
/// size, continuous token, snap token), which is the question a token is bound to.
trait Paged: prost::Message + Clone {
    fn continuous_token(&self) -> &str;
    fn without_position(&self) -> Self;
}

macro_rules! paged {
    ($($request:ty),* $(,)?) => {$(
        impl Paged for $request {
            fn continuous_token(&self) -> &str {
                &self.continuous_token
            }
            fn without_position(&self) -> Self {
                let mut question = self.clone();
                question.page_size = 0;
                question.continuous_token.clear();
                if let Some(m) = question.metadata.as_mut() {
                    m.snap_token.clear();
                }
                question
            }
        }
    )*};
}

paged!(
    v1::PermissionLookupEntityRequest,
    v1::PermissionLookupSubjectRequest,
);

fn permission_name(name: &str) -> Result<(), ApiError> {
    model::check_name("permission", name).map_err(|e| ApiError::invalid(format!("permission: {e}")))
}

impl Service {
    /// The tenant, schema version, snapshot and context a permission request names.
    async fn prepare(&self, req: &impl Scoped) -> Result<Prepared, ApiError> {
        self.prepare_with(req, || convert::context(req.context()))
            .await
    }

    /// As [`Service::prepare`], the context made by `context` (called last, so its errors
    /// come after those of the tenant, schema version and snap token).
    async fn prepare_with(
        &self,
        req: &impl Scoped,
        context: impl FnOnce() -> Result<EvalContext, ApiError>,
    ) -> Result<Prepared, ApiError> {
        let tenant = self.tenant(req.tenant_id()).await?;
        let schema = schema_of(&tenant, req.schema_version()).await?;
        let snapshot = read_snapshot(&tenant, req.snap_token()).await?;
        let context = context()?;
        Ok(Prepared {
            tenant,
            schema,
            snapshot,
            context,
        })
    }

    /// The cache key and dependencies of a check of `member`, when its answer is worth caching
    /// (see [`crate::cache::CheckCosts`]) and may be cached (see [`Service::slot`]).
    fn check_cache_slot(
        &self,
        p: &Prepared,
        member: Option<(TypeId, Member)>,
        question: &impl prost::Message,
    ) -> Option<(CacheKey, Arc<[DataKey]>)> {
        let (ty, member) = member?;
        if !self
            .cache
            .check_worth_caching(&p.schema.check_costs, ty, member)
        {
            return None;
        }
        self.slot(p, ty, member, question)
    }

    /// The cache key and dependencies for a lookup, when its answer may be cached (see
    /// [`Service::slot`]) and the permission is one the schema knows.
    fn cache_slot(
        &self,
        p: &Prepared,
        entity_type: &str,
        permission: &str,
        question: &impl prost::Message,
    ) -> Option<(CacheKey, Arc<[DataKey]>)> {
        if !self.cache.enabled() {
            return None;
        }
        let (ty, member) = p.schema.model.resolve(entity_type, permission)?;
        self.slot(p, ty, member, question)
    }

    /// The cache key and dependencies of `question` about `member` on `ty`, unless the request
    /// carries contextual tuples or attributes (its answer is then private).
    fn slot(
        &self,
        p: &Prepared,
        ty: TypeId,
        member: Member,
        question: &impl prost::Message,
    ) -> Option<(CacheKey, Arc<[DataKey]>)> {
        if !p.context.tuples.is_empty() || !p.context.attributes.is_empty() {
            return None;
        }
        let deps = p.schema.model.dependencies(ty, member);
        let key = CacheKey::new(p.tenant.incarnation, &p.schema.version, question);
        Some((key, deps))
    }

    /// Resolves the snapshot and the starting position of a lookup: from the continuous token
    /// when there is one (pinned), else from the snap token.
    async fn lookup_start<R: Paged>(
        &self,
        p: &mut Prepared,
        req: &R,
    ) -> Result<LookupStart<R>, ApiError> {
        let fingerprint_of = req.without_position();
        let query = query_fingerprint(&fingerprint_of);
        let continuous_token = req.continuous_token();
        if continuous_token.is_empty() {
            return Ok(LookupStart {
                position: Position { query, after: None },
                question: fingerprint_of,
            });
        }
        let token = ContinuousToken::decode(continuous_token, &p.tenant.id, query)
            .map_err(|e| ApiError::invalid(format!("continuous_token: {e}")))?;
        p.snapshot = pinned_snapshot(&p.tenant, token.revision).await?;
        let after = u32::try_from(token.after)
            .map_err(|_| ApiError::invalid("continuous_token: position out of range"))?;
        Ok(LookupStart {
            position: Position {
                query,
                after: Some(after),
            },
            question: fingerprint_of,
        })
    }
}

/// The IDs of one page and the continuous token for the next (empty after the last page).
fn page_out(
    p: &Prepared,
    entity_type: &str,
    numbers: &[u32],
    next: Option<u32>,
    query: u64,
) -> (Vec<String>, String) {
    let ids = p
        .snapshot
        .interner()
        .names(entity_type, numbers.iter().copied());
    let token = next_page_token(&p.tenant, &p.snapshot, next.map(u64::from), query);
    (ids, token)
}

/// One page of `set` after position `after`: the numbers, and the last one if more follow.
fn page(
    set: &RoaringBitmap,
    after: Option<u32>,
    page_size: Option<u32>,
) -> (Vec<u32>, Option<u32>) {
    // A range iterator seeks to the position instead of walking every number before it.
    let mut iter = match after {
        Some(u32::MAX) => set.range(1..1),
        Some(a) => set.range(a + 1..),
        None => set.iter(),
    };
    let Some(size) = page_size else {
        return (iter.collect(), None);
    };
    let numbers: Vec<u32> = iter.by_ref().take(size as usize).collect();
    let more = iter.next().is_some();
    let next = if more { numbers.last().copied() } else { None };
    (numbers, next)
}

fn log_rule_errors(errors: &[String]) {
    for e in errors.iter().take(5) {
        tracing::warn!(error = %e, "rule failed to evaluate and denied");
    }
}
