//! The Permission service: check, bulk check, expand, lookup entity (paged and streamed),
//! lookup subject and subject permission.
//!
//! Lookups compute the whole result bitmap on one snapshot, then page or stream it in
//! ascending entity-number order; a continuous token records the snapshot's revision and the
//! last number returned, so the next page resumes exactly after it on the same snapshot.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lookout_engine::eval::{Context as EvalContext, EntitySet, Evaluator, ExpandNode, ExpandOp};
use lookout_engine::index::Snapshot;
use lookout_engine::index::{Interner, OVERLAY_BASE};
use lookout_engine::model;
use lookout_engine::schema::{Member, TypeId};
use lookout_engine::tokens::{ContinuousEncoder, ContinuousToken};
use lookout_proto::v1;
use roaring::RoaringBitmap;
use tokio::sync::oneshot;

use super::convert::{self, required};
use super::stream::{self, Closed, ServerStream, StreamSender};
use super::{
    Service, next_page_token, pinned_snapshot, query_fingerprint, read_snapshot, run_cpu, schema_of,
};
use crate::cache::{CacheKey, Cached};
use crate::error::ApiError;
use crate::tenants::{SchemaVersion, Tenant};
use lookout_engine::eval::deps::DataKey;

/// What every permission request resolves first.
struct Prepared {
    tenant: Arc<Tenant>,
    schema: Arc<SchemaVersion>,
    snapshot: Arc<Snapshot>,
    context: EvalContext,
}

/// Where a lookup's set comes from.
enum SetSource {
    Ready(EntitySet),
    /// The evaluation, running on the pool once polled (dropping it cancels it).
    Pending(Pin<Box<dyn Future<Output = Result<EntitySet, ApiError>> + Send>>),
}

impl SetSource {
    async fn wait(self) -> Result<EntitySet, ApiError> {
        match self {
            SetSource::Ready(set) => Ok(set),
            SetSource::Pending(evaluation) => evaluation.await,
        }
    }
}

/// The sending side of one LookupEntityStream.
struct StreamOut {
    tx: StreamSender<v1::PermissionLookupEntityStreamResponse>,
    tokens: ContinuousEncoder,
    interner: Arc<Interner>,
    entity_type: String,
    /// Messages still allowed by `page_size`.
    left: u64,
    /// The size of the next batch.
    size: usize,
}

impl StreamOut {
    /// Sends the numbers of `set` from `start` on, in batches that grow to [`STREAM_BATCH`].
    async fn send(&mut self, set: &RoaringBitmap, start: u64) -> Result<(), Closed> {
        let Ok(start) = u32::try_from(start) else {
            return Ok(());
        };
        let mut iter = set.range(start..);
        let mut pending: Vec<u32> = Vec::with_capacity(STREAM_BATCH);
        loop {
            let take = usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(self.size);
            pending.clear();
            pending.extend(iter.by_ref().take(take));
            if pending.is_empty() {
                return Ok(());
            }
            let mut batch = Vec::with_capacity(pending.len());
            let tokens = &self.tokens;
            self.interner.for_each_name(
                &self.entity_type,
                pending.iter().copied(),
                |number, name| {
                    batch.push(v1::PermissionLookupEntityStreamResponse {
                        entity_id: name.to_owned(),
                        continuous_token: tokens.encode(u64::from(number)),
                    });
                },
            );
            self.left -= pending.len() as u64;
            self.tx.send_batch(batch).await?;
            self.size = (self.size * 4).min(STREAM_BATCH);
        }
    }

    /// Sends a finished evaluation's numbers from `from` on (every number below it has been
    /// sent), or its error.
    async fn finish(&mut self, result: Result<EntitySet, ApiError>, from: u32) {
        match result {
            Ok(set) => {
                let _ = self.send(&set.numbers, u64::from(from)).await;
            }
            Err(e) => self.tx.fail(e).await,
        }
    }
}

/// A fresh stream sends the entities numbered below this first, while the rest is computed.
const STREAM_PREFIX: u32 = 8192;
/// The most messages a stream hands to its channel at once.
const STREAM_BATCH: usize = 1024;
/// Members a check may visit on the async worker before it moves to the evaluation pool
/// (a check of the document model visits about ten).
const INLINE_CHECK_VISITS: u64 = 256;
/// Members the inline checks of one bulk check may visit together before the rest of its items
/// move to the evaluation pool (a document-model check visits about ten).
const BULK_INLINE_VISITS: u64 = 2048;
/// The size of a stream's first batch: small, so the first IDs leave at once.
const FIRST_STREAM_BATCH: usize = 16;
/// Entities a fresh stream checks on the async worker for its first IDs, and the members
/// each check may visit (at most ~4,000 visits, a fraction of a millisecond).
const PROBE_CANDIDATES: u32 = 64;
const PROBE_VISITS: u64 = 64;

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

    pub async fn check(
        &self,
        mut req: v1::PermissionCheckRequest,
    ) -> Result<v1::PermissionCheckResponse, ApiError> {
        let depth = self.depth(req.metadata.as_ref().map_or(0, |m| m.depth))?;
        let entity = convert::entity(required(&req.entity, "entity")?, "entity")?;
        let subject = convert::subject(required(&req.subject, "subject")?, "subject")?;
        permission_name(&req.permission)?;
        // The contextual tuples move into the evaluation context rather than being copied
        // (a large context then exists once). A request with contextual tuples is never
        // cached, so the question below does not need them.
        let mut context = req.context.take();
        let p = self
            .prepare_with(&req, || convert::context_taking_tuples(&mut context))
            .await?;
        req.context = context;
        // The snap token only chose the snapshot: the answer is cached for the question.
        if let Some(m) = req.metadata.as_mut() {
            m.snap_token.clear();
        }
        let member = p.schema.model.resolve(&entity.ty, &req.permission);
        let cache = self.check_cache_slot(&p, member, &req);
        if let Some((key, _)) = &cache
            && let Some(Cached::Check(allowed)) =
                self.cache
                    .get(key, p.snapshot.revision(), p.tenant.as_ref())
        {
            return Ok(check_response(allowed));
        }
        let revision = p.snapshot.revision();
        let permission = req.permission;
        // The usual check is a few microseconds: run it here, within a small budget, rather
        // than pay two thread hand-offs to the evaluation pool; only a check that needs more
        // (or carries contextual data to index first) goes to the pool.
        if p.context.tuples.is_empty() && p.context.attributes.is_empty() {
            let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)
                .map_err(ApiError::from_eval)?;
            if let Some(result) = ev
                .check_within(&entity, &permission, &subject, depth, INLINE_CHECK_VISITS)
                .map_err(ApiError::from_eval)?
            {
                log_rule_errors(&result.rule_errors);
                record_cost(&p, member, result.visits);
                if let Some((key, deps)) = cache {
                    self.cache
                        .insert(key, revision, deps, Cached::Check(result.allowed));
                }
                return Ok(check_response(result.allowed));
            }
        }
        let allowed = run_cpu(move || {
            let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)
                .map_err(ApiError::from_eval)?;
            let result = ev
                .check(&entity, &permission, &subject, depth)
                .map_err(ApiError::from_eval)?;
            log_rule_errors(&result.rule_errors);
            record_cost(&p, member, result.visits);
            Ok(result.allowed)
        })
        .await?;
        if let Some((key, deps)) = cache {
            self.cache
                .insert(key, revision, deps, Cached::Check(allowed));
        }
        Ok(check_response(allowed))
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

    pub async fn bulk_check(
        &self,
        mut req: v1::PermissionBulkCheckRequest,
    ) -> Result<v1::PermissionBulkCheckResponse, ApiError> {
        if req.items.is_empty() {
            return Err(ApiError::invalid("items: at least one item is required"));
        }
        if req.items.len() > self.limits.max_bulk_check {
            return Err(ApiError::invalid(format!(
                "items: at most {} items per bulk check, got {}",
                self.limits.max_bulk_check,
                req.items.len()
            )));
        }
        let depth = self.depth(req.metadata.as_ref().map_or(0, |m| m.depth))?;
        // The items' strings move into the engine's references; fields are named only in
        // errors.
        let mut items = Vec::with_capacity(req.items.len());
        for (i, item) in std::mem::take(&mut req.items).into_iter().enumerate() {
            let at = |part: &'static str| move || format!("items[{i}].{part}");
            let entity = convert::entity_owned(item.entity, &at("entity"))?;
            let subject = convert::subject_owned(item.subject, &at("subject"))?;
            permission_name(&item.permission)
                .map_err(|e| ApiError::invalid(format!("items[{i}].{}", e.message)))?;
            items.push((entity, item.permission, subject));
        }
        let p = self.prepare(&req).await?;
        let revision = p.snapshot.revision();
        // Each item is the question a Check of it would ask, so where its permission is worth
        // caching, its answer is cached (and found) under that Check's key: a bulk check
        // shares its answers with single checks.
        let metadata = req
            .metadata
            .as_ref()
            .map(|m| v1::PermissionCheckRequestMetadata {
                snap_token: String::new(),
                ..m.clone()
            });
        let mut members = Vec::with_capacity(items.len());
        let mut slots = Vec::with_capacity(items.len());
        let mut answers: Vec<Option<bool>> = vec![None; items.len()];
        for ((entity, permission, subject), answer) in items.iter().zip(&mut answers) {
            let member = p.schema.model.resolve(&entity.ty, permission);
            let worth = member
                .filter(|&(ty, m)| self.cache.check_worth_caching(&p.schema.check_costs, ty, m));
            // The question is built only for a permission worth caching.
            let slot = if let Some((ty, m)) = worth {
                let question = v1::PermissionCheckRequest {
                    tenant_id: req.tenant_id.clone(),
                    metadata: metadata.clone(),
                    entity: Some(convert::entity_out(entity)),
                    permission: permission.clone(),
                    subject: Some(convert::subject_out(subject)),
                    context: req.context.clone(),
                    arguments: req.arguments.clone(),
                };
                self.slot(&p, ty, m, &question)
            } else {
                None
            };
            if let Some((key, _)) = &slot
                && let Some(Cached::Check(allowed)) =
                    self.cache.get(key, revision, p.tenant.as_ref())
            {
                *answer = Some(allowed);
            }
            slots.push(slot);
            members.push(member);
        }
        // As for a single check, cheap items are answered here, within a visit budget shared
        // by the whole request, rather than paying two thread hand-offs; the rest (and every
        // item when the request carries contextual data to index first) go to the pool.
        let mut evaluated = Vec::new();
        let mut missing = Vec::new();
        if p.context.tuples.is_empty() && p.context.attributes.is_empty() {
            let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)
                .map_err(ApiError::from_eval)?;
            let mut spent = 0;
            for (i, answer) in answers.iter_mut().enumerate() {
                if answer.is_some() {
                    continue;
                }
                let (entity, permission, subject) = &items[i];
                let result = if spent < BULK_INLINE_VISITS {
                    ev.check_within(entity, permission, subject, depth, INLINE_CHECK_VISITS)
                        .map_err(|e| item_error(i, e))?
                } else {
                    None
                };
                match result {
                    Some(result) => {
                        spent += result.visits;
                        log_rule_errors(&result.rule_errors);
                        record_cost(&p, members[i], result.visits);
                        *answer = Some(result.allowed);
                        evaluated.push(i);
                    }
                    None => {
                        spent += INLINE_CHECK_VISITS;
                        missing.push(i);
                    }
                }
            }
        } else {
            missing = (0..items.len()).filter(|&i| answers[i].is_none()).collect();
        }
        if !missing.is_empty() {
            let todo = missing.clone();
            let found = run_cpu(move || {
                let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)
                    .map_err(ApiError::from_eval)?;
                todo.iter()
                    .map(|&i| {
                        let (entity, permission, subject) = &items[i];
                        let result = ev
                            .check(entity, permission, subject, depth)
                            .map_err(|e| item_error(i, e))?;
                        log_rule_errors(&result.rule_errors);
                        record_cost(&p, members[i], result.visits);
                        Ok(result.allowed)
                    })
                    .collect::<Result<Vec<bool>, ApiError>>()
            })
            .await?;
            for (&i, allowed) in missing.iter().zip(found) {
                answers[i] = Some(allowed);
            }
            evaluated.extend(missing);
        }
        for i in evaluated {
            if let (Some(Some((key, deps))), Some(allowed)) =
                (slots.get_mut(i).map(Option::take), answers[i])
            {
                self.cache
                    .insert(key, revision, deps, Cached::Check(allowed));
            }
        }
        Ok(v1::PermissionBulkCheckResponse {
            results: answers
                .into_iter()
                .map(|allowed| check_response(allowed.unwrap_or(false)))
                .collect(),
        })
    }

    pub async fn expand(
        &self,
        req: v1::PermissionExpandRequest,
    ) -> Result<v1::PermissionExpandResponse, ApiError> {
        let entity = convert::entity(required(&req.entity, "entity")?, "entity")?;
        permission_name(&req.permission)?;
        let p = self.prepare(&req).await?;
        let permission = req.permission;
        let tree = run_cpu(move || {
            let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)
                .map_err(ApiError::from_eval)?;
            ev.expand(&entity, &permission).map_err(ApiError::from_eval)
        })
        .await?;
        Ok(v1::PermissionExpandResponse {
            tree: Some(expand_out(&tree)),
        })
    }

    /// Resolves the snapshot and the starting position of a lookup: from the continuous token
    /// when there is one (pinned), else from the snap token. Also returns the query's
    /// fingerprint and the request it was taken of (without paging and tokens).
    async fn lookup_start<R: Paged>(
        &self,
        p: &mut Prepared,
        req: &R,
    ) -> Result<(u64, Option<u32>, R), ApiError> {
        let fingerprint_of = req.without_position();
        let query = query_fingerprint(&fingerprint_of);
        let continuous_token = req.continuous_token();
        if continuous_token.is_empty() {
            return Ok((query, None, fingerprint_of));
        }
        let token = ContinuousToken::decode(continuous_token, &p.tenant.id, query)
            .map_err(|e| ApiError::invalid(format!("continuous_token: {e}")))?;
        p.snapshot = pinned_snapshot(&p.tenant, token.revision).await?;
        let after = u32::try_from(token.after)
            .map_err(|_| ApiError::invalid("continuous_token: position out of range"))?;
        Ok((query, Some(after), fingerprint_of))
    }

    /// Validates a lookup entity request and finds its set: from the cache, or as an evaluation
    /// to await (already running on the pool once polled). With `prefix`, the evaluation also
    /// sends the set's numbers below the given cut, scoped, as soon as they are known, when
    /// the plan allows (see `Evaluator::lookup_entity_progressive`).
    async fn lookup_entity_set(
        &self,
        req: &v1::PermissionLookupEntityRequest,
        prefix: Option<(u32, oneshot::Sender<RoaringBitmap>)>,
    ) -> Result<(Prepared, u64, Option<u32>, SetSource), ApiError> {
        let requested_depth = req.metadata.as_ref().map_or(0, |m| m.depth);
        if requested_depth != 0 {
            self.depth(requested_depth)?;
        }
        model::check_entity_type(&req.entity_type)
            .map_err(|e| ApiError::invalid(format!("entity_type: {e}")))?;
        permission_name(&req.permission)?;
        let subject = convert::subject(required(&req.subject, "subject")?, "subject")?;
        let mut p = self.prepare(req).await?;
        let (query, after, mut question) = self.lookup_start(&mut p, req).await?;
        // IDs only this request knows are numbered in its own overlay, and named from it.
        p.snapshot = Arc::new(p.snapshot.with_request_ids());
        question.tenant_id = String::from("lookup_entity");
        let cache = self.cache_slot(&p, &req.entity_type, &req.permission, &question);
        if let Some((key, _)) = &cache
            && let Some(Cached::Set(numbers)) =
                self.cache
                    .get(key, p.snapshot.revision(), p.tenant.as_ref())
        {
            let set = EntitySet {
                entity_type: req.entity_type.clone(),
                numbers: (*numbers).clone(),
                rule_errors: Vec::new(),
            };
            return Ok((p, query, after, SetSource::Ready(set)));
        }
        let scope = scope_ids(&req.scope, &req.entity_type);
        let model = p.schema.model.clone();
        let snapshot = p.snapshot.clone();
        let context = p.context.clone();
        let entity_type = req.entity_type.clone();
        let permission = req.permission.clone();
        let revision = p.snapshot.revision();
        let results = self.cache.clone();
        let evaluation = async move {
            let set = run_cpu(move || {
                let ev =
                    Evaluator::new(&model, &snapshot, &context).map_err(ApiError::from_eval)?;
                let allowed: Option<RoaringBitmap> = scope.map(|ids| {
                    ids.iter()
                        .filter_map(|id| snapshot.number(&entity_type, id))
                        .collect()
                });
                let mut set = match prefix {
                    Some((below, sender)) => ev.lookup_entity_progressive(
                        &entity_type,
                        &permission,
                        &subject,
                        below,
                        |numbers| {
                            let mut numbers = numbers.clone();
                            if let Some(allowed) = &allowed {
                                numbers &= allowed;
                            }
                            // The stream may have ended already: nothing to do then.
                            let _ = sender.send(numbers);
                        },
                    ),
                    None => ev.lookup_entity(&entity_type, &permission, &subject),
                }
                .map_err(ApiError::from_eval)?;
                log_rule_errors(&set.rule_errors);
                if let Some(allowed) = &allowed {
                    set.numbers &= allowed;
                }
                Ok(set)
            })
            .await?;
            // A set holding a request's own numbers (a fresh subject set's entity) means
            // nothing to another request: not cached.
            if let Some((key, deps)) = cache
                && set.rule_errors.is_empty()
                && set.numbers.max().is_none_or(|n| n < OVERLAY_BASE)
            {
                let numbers = Arc::new(set.numbers.clone());
                results.insert(key, revision, deps, Cached::Set(numbers));
            }
            Ok(set)
        };
        Ok((p, query, after, SetSource::Pending(Box::pin(evaluation))))
    }

    pub async fn lookup_entity(
        &self,
        req: v1::PermissionLookupEntityRequest,
    ) -> Result<v1::PermissionLookupEntityResponse, ApiError> {
        let page_size = self.page_size(req.page_size, None)?;
        let (p, query, after, source) = self.lookup_entity_set(&req, None).await?;
        let set = source.wait().await?;
        let (numbers, next) = page(&set.numbers, after, page_size);
        let (entity_ids, continuous_token) = page_out(&p, &req.entity_type, &numbers, next, query);
        Ok(v1::PermissionLookupEntityResponse {
            entity_ids,
            continuous_token,
        })
    }

    /// Streams the entities one message each, every message with the continuous token that
    /// resumes after it. Messages go through the channel in batches that start small (the first
    /// IDs go out at once) and grow to [`STREAM_BATCH`]. A fresh stream whose plan allows it
    /// sends the entities numbered below [`STREAM_PREFIX`] while the rest is still being
    /// computed. The stream ends early (and the work stops) when the receiver is dropped.
    pub async fn lookup_entity_stream(
        &self,
        req: v1::PermissionLookupEntityRequest,
    ) -> Result<ServerStream<v1::PermissionLookupEntityStreamResponse>, ApiError> {
        let limit = self.page_size(req.page_size, None)?;
        let (prefix_tx, mut prefix_rx) = oneshot::channel();
        let fresh = req.continuous_token.is_empty();
        let (p, query, after, source) = self
            .lookup_entity_set(&req, fresh.then_some((STREAM_PREFIX, prefix_tx)))
            .await?;
        // The call answers once the first IDs are known: found by checks while the lookup
        // runs (see `probe`), the lookup's prefix, or the whole set (whose error is then the
        // call's error, as for any other bad request). `rest` continues from `resume`.
        let mut resume = STREAM_PREFIX;
        let (first, rest) = match source {
            SetSource::Ready(set) => (set.numbers, None),
            SetSource::Pending(mut evaluation) => {
                // Polling once starts the lookup on the pool; the probe runs beside it.
                match futures_util::FutureExt::now_or_never(&mut evaluation) {
                    Some(set) => (set?.numbers, None),
                    None => match self.probe(&p, &req, fresh) {
                        Some(probe) => {
                            resume = probe.decided_below;
                            let found =
                                RoaringBitmap::from_sorted_iter(probe.numbers).unwrap_or_default();
                            (found, Some((evaluation, Some(prefix_rx))))
                        }
                        None => tokio::select! {
                            biased;
                            Ok(prefix) = &mut prefix_rx => (prefix, Some((evaluation, None))),
                            set = &mut evaluation => (set?.numbers, None),
                        },
                    },
                }
            }
        };
        let (tx, rx) = stream::channel(self.limits.stream_buffer.div_ceil(STREAM_BATCH).max(2));
        let mut out = StreamOut {
            tx,
            tokens: ContinuousToken::encoder(&p.tenant.id, query, p.snapshot.revision()),
            interner: p.snapshot.interner().clone(),
            entity_type: req.entity_type.clone(),
            left: limit.map_or(u64::MAX, u64::from),
            size: FIRST_STREAM_BATCH,
        };
        // Every message carries a continuous token for this snapshot.
        p.tenant.pin(&p.snapshot);
        let start = after.map_or(0, |a| u64::from(a) + 1);
        tokio::spawn(async move {
            if out.send(&first, start).await.is_err() {
                return;
            }
            let Some((mut evaluation, prefix)) = rest else {
                return;
            };
            // After a probe, the lookup's prefix (if the plan offers one) continues it.
            if let Some(mut prefix) = prefix {
                let prefix = tokio::select! {
                    biased;
                    Ok(prefix) = &mut prefix => prefix,
                    result = &mut evaluation => return out.finish(result, resume).await,
                    () = out.tx.closed() => return,
                };
                if out.send(&prefix, u64::from(resume)).await.is_err() {
                    return;
                }
                resume = resume.max(STREAM_PREFIX);
            }
            // A receiver that goes away drops the evaluation, which cancels it.
            tokio::select! {
                result = evaluation => out.finish(result, resume).await,
                () = out.tx.closed() => {}
            }
        });
        Ok(rx)
    }

    /// The first entities of a fresh stream, found by checks on the async worker while the
    /// lookup runs on the pool (`Evaluator::lookup_entity_probe`): `None` when the stream
    /// resumes from a token, is scoped or carries contextual data, or when the checks found
    /// nothing (the lookup's own prefix or result comes first then).
    fn probe(
        &self,
        p: &Prepared,
        req: &v1::PermissionLookupEntityRequest,
        fresh: bool,
    ) -> Option<lookout_engine::eval::Probe> {
        if !fresh
            || !req.scope.is_empty()
            || !p.context.tuples.is_empty()
            || !p.context.attributes.is_empty()
        {
            return None;
        }
        let subject = convert::subject(req.subject.as_ref()?, "subject").ok()?;
        let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context).ok()?;
        ev.lookup_entity_probe(
            &req.entity_type,
            &req.permission,
            &subject,
            FIRST_STREAM_BATCH,
            PROBE_CANDIDATES,
            PROBE_VISITS,
        )
        .ok()
        .filter(|probe| !probe.numbers.is_empty())
    }

    pub async fn lookup_subject(
        &self,
        req: v1::PermissionLookupSubjectRequest,
    ) -> Result<v1::PermissionLookupSubjectResponse, ApiError> {
        let requested_depth = req.metadata.as_ref().map_or(0, |m| m.depth);
        if requested_depth != 0 {
            self.depth(requested_depth)?;
        }
        let page_size = self.page_size(req.page_size, None)?;
        let entity = convert::entity(required(&req.entity, "entity")?, "entity")?;
        permission_name(&req.permission)?;
        let reference = required(&req.subject_reference, "subject_reference")?;
        model::check_entity_type(&reference.r#type)
            .map_err(|e| ApiError::invalid(format!("subject_reference.type: {e}")))?;
        let subject_relation = model::normalize_subject_relation(&reference.relation);
        let subject_type = reference.r#type.clone();
        let mut p = self.prepare(&req).await?;
        let (query, after, _) = self.lookup_start(&mut p, &req).await?;
        // IDs only this request knows are numbered in its own overlay, and named from it.
        p.snapshot = Arc::new(p.snapshot.with_request_ids());
        let model = p.schema.model.clone();
        let snapshot = p.snapshot.clone();
        let context = p.context.clone();
        let permission = req.permission.clone();
        let lookup_type = subject_type.clone();
        let set = run_cpu(move || {
            let ev = Evaluator::new(&model, &snapshot, &context).map_err(ApiError::from_eval)?;
            let set = ev
                .lookup_subject(
                    &entity,
                    &permission,
                    &lookup_type,
                    subject_relation.as_deref(),
                )
                .map_err(ApiError::from_eval)?;
            log_rule_errors(&set.rule_errors);
            Ok(set)
        })
        .await?;
        let (numbers, next) = page(&set.numbers, after, page_size);
        let (subject_ids, continuous_token) = page_out(&p, &subject_type, &numbers, next, query);
        Ok(v1::PermissionLookupSubjectResponse {
            subject_ids,
            continuous_token,
        })
    }

    pub async fn subject_permission(
        &self,
        req: v1::PermissionSubjectPermissionRequest,
    ) -> Result<v1::PermissionSubjectPermissionResponse, ApiError> {
        let depth = self.depth(req.metadata.as_ref().map_or(0, |m| m.depth))?;
        let entity = convert::entity(required(&req.entity, "entity")?, "entity")?;
        let subject = convert::subject(required(&req.subject, "subject")?, "subject")?;
        let p = self.prepare(&req).await?;
        let only_permission = req.metadata.as_ref().is_some_and(|m| m.only_permission);
        let results = run_cpu(move || {
            let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)
                .map_err(ApiError::from_eval)?;
            ev.subject_permission(&entity, &subject, only_permission, depth)
                .map_err(ApiError::from_eval)
        })
        .await?;
        Ok(v1::PermissionSubjectPermissionResponse {
            results: results
                .into_iter()
                .map(|(name, r)| {
                    log_rule_errors(&r.rule_errors);
                    (name, convert::check_result(r.allowed))
                })
                .collect::<HashMap<_, _>>(),
        })
    }
}

/// The IDs `scope` allows for `entity_type`, if it restricts that type.
fn scope_ids(
    scope: &HashMap<String, v1::StringArrayValue>,
    entity_type: &str,
) -> Option<Vec<String>> {
    scope.get(entity_type).map(|v| v.data.clone())
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

/// An evaluation error of bulk-check item `i`, naming the item.
fn item_error(i: usize, e: lookout_engine::eval::EvalError) -> ApiError {
    let e = ApiError::from_eval(e);
    ApiError::new(e.code, format!("items[{i}]: {}", e.message))
}

/// Adds a check's cost to its member's average (see [`crate::cache::CheckCosts`]).
fn record_cost(p: &Prepared, member: Option<(TypeId, Member)>, visits: u64) {
    if let Some((ty, member)) = member {
        p.schema.check_costs.record(ty, member, visits);
    }
}

fn check_response(allowed: bool) -> v1::PermissionCheckResponse {
    v1::PermissionCheckResponse {
        can: convert::check_result(allowed),
        metadata: Some(v1::PermissionCheckResponseMetadata { check_count: 0 }),
    }
}

fn log_rule_errors(errors: &[String]) {
    for e in errors.iter().take(5) {
        tracing::warn!(error = %e, "rule failed to evaluate and denied");
    }
}

fn expand_out(node: &ExpandNode) -> v1::Expand {
    use v1::expand::Node;
    use v1::expand_leaf::Type as LeafType;
    use v1::expand_tree_node::Operation;
    match node {
        ExpandNode::Operation {
            entity,
            permission,
            op,
            children,
        } => v1::Expand {
            entity: Some(convert::entity_out(entity)),
            permission: permission.clone(),
            arguments: Vec::new(),
            node: Some(Node::Expand(v1::ExpandTreeNode {
                operation: match op {
                    ExpandOp::Union => Operation::Union as i32,
                    ExpandOp::Intersection => Operation::Intersection as i32,
                    ExpandOp::Exclusion => Operation::Exclusion as i32,
                },
                children: children.iter().map(expand_out).collect(),
            })),
        },
        ExpandNode::Subjects {
            entity,
            permission,
            subjects,
        } => v1::Expand {
            entity: Some(convert::entity_out(entity)),
            permission: permission.clone(),
            arguments: Vec::new(),
            node: Some(Node::Leaf(v1::ExpandLeaf {
                r#type: Some(LeafType::Subjects(v1::Subjects {
                    subjects: subjects.iter().map(convert::subject_out).collect(),
                })),
            })),
        },
        ExpandNode::Value {
            entity,
            permission,
            value,
        } => v1::Expand {
            entity: Some(convert::entity_out(entity)),
            permission: permission.clone(),
            arguments: Vec::new(),
            node: Some(Node::Leaf(v1::ExpandLeaf {
                r#type: Some(LeafType::Value(convert::attr_value_any(
                    &lookout_engine::model::AttrValue::Boolean(*value),
                ))),
            })),
        },
    }
}
