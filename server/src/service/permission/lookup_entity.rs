//! Lookup entity, paged and streamed: the entities of a type on which a subject has a
//! permission. The set is computed whole on one snapshot (or found in the cache) and paged;
//! a stream sends its first IDs while the set is still being computed (a probe by checks, then
//! the lookup's prefix), then the rest in batches that grow.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lookout_engine::eval::{EntitySet, Evaluator};
use lookout_engine::index::{Interner, OVERLAY_BASE};
use lookout_engine::model;
use lookout_engine::tokens::{ContinuousEncoder, ContinuousToken};
use lookout_proto::v1;
use roaring::RoaringBitmap;
use tokio::sync::oneshot;

use super::{LookupStart, Position, Prepared, log_rule_errors, page, page_out, permission_name};
use crate::cache::Cached;
use crate::error::ApiError;
use crate::service::convert::{self, required};
use crate::service::stream::{self, Closed, ServerStream, StreamSender};
use crate::service::{Service, run_cpu};

/// A lookup entity request resolved: what it prepared, where it starts, and its set.
struct EntityLookup {
    prepared: Prepared,
    position: Position,
    source: SetSource,
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
/// The size of a stream's first batch: small, so the first IDs leave at once.
const FIRST_STREAM_BATCH: usize = 16;
/// Entities a fresh stream checks on the async worker for its first IDs, and the members
/// each check may visit (at most ~4,000 visits, a fraction of a millisecond).
const PROBE_CANDIDATES: u32 = 64;
const PROBE_VISITS: u64 = 64;

impl Service {
    /// Validates a lookup entity request and finds its set: from the cache, or as an evaluation
    /// to await (already running on the pool once polled). With `prefix`, the evaluation also
    /// sends the set's numbers below the given cut, scoped, as soon as they are known, when
    /// the plan allows (see `Evaluator::lookup_entity_progressive`).
    async fn lookup_entity_set(
        &self,
        req: &v1::PermissionLookupEntityRequest,
        prefix: Option<(u32, oneshot::Sender<RoaringBitmap>)>,
    ) -> Result<EntityLookup, ApiError> {
        let requested_depth = req.metadata.as_ref().map_or(0, |m| m.depth);
        if requested_depth != 0 {
            self.depth(requested_depth)?;
        }
        model::check_entity_type(&req.entity_type)
            .map_err(|e| ApiError::invalid(format!("entity_type: {e}")))?;
        permission_name(&req.permission)?;
        let subject = convert::subject(required(&req.subject, "subject")?, "subject")?;
        let mut p = self.prepare(req).await?;
        let LookupStart {
            position,
            mut question,
        } = self.lookup_start(&mut p, req).await?;
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
            return Ok(EntityLookup {
                prepared: p,
                position,
                source: SetSource::Ready(set),
            });
        }
        // IDs only this request knows are numbered in its own overlay, and named from it (a
        // cached set holds none: see the insert below).
        p.snapshot = Arc::new(p.snapshot.with_request_ids());
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
                let ev = Evaluator::new(&model, &snapshot, &context)?;
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
                }?;
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
        Ok(EntityLookup {
            prepared: p,
            position,
            source: SetSource::Pending(Box::pin(evaluation)),
        })
    }

    pub async fn lookup_entity(
        &self,
        req: v1::PermissionLookupEntityRequest,
    ) -> Result<v1::PermissionLookupEntityResponse, ApiError> {
        let page_size = self.page_size(req.page_size, None)?;
        let lookup = self.lookup_entity_set(&req, None).await?;
        let set = lookup.source.wait().await?;
        let Position { query, after } = lookup.position;
        let (numbers, next) = page(&set.numbers, after, page_size);
        let (entity_ids, continuous_token) =
            page_out(&lookup.prepared, &req.entity_type, &numbers, next, query);
        Ok(v1::PermissionLookupEntityResponse {
            entity_ids,
            continuous_token,
        })
    }

    /// Streams the entities one message each, every message with the continuous token that
    /// resumes after it. Messages go through the channel in batches that start small (the first
    /// IDs go out at once) and grow to `STREAM_BATCH`. A fresh stream whose plan allows it
    /// sends the entities numbered below `STREAM_PREFIX` while the rest is still being
    /// computed. The stream ends early (and the work stops) when the receiver is dropped.
    pub async fn lookup_entity_stream(
        &self,
        req: v1::PermissionLookupEntityRequest,
    ) -> Result<ServerStream<v1::PermissionLookupEntityStreamResponse>, ApiError> {
        let limit = self.page_size(req.page_size, None)?;
        let (prefix_tx, mut prefix_rx) = oneshot::channel();
        let fresh = req.continuous_token.is_empty();
        let EntityLookup {
            prepared: p,
            position: Position { query, after },
            source,
        } = self
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
}

/// The IDs `scope` allows for `entity_type`, if it restricts that type.
fn scope_ids(
    scope: &HashMap<String, v1::StringArrayValue>,
    entity_type: &str,
) -> Option<Vec<String>> {
    scope.get(entity_type).map(|v| v.data.clone())
}
