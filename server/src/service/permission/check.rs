//! Check, bulk check and subject permission: yes-or-no questions about one entity and one
//! subject. A cheap check runs on the async worker within a visit budget; one that needs more,
//! or carries contextual data, runs on the evaluation pool. Answers of permissions that have
//! been expensive lately are cached.

use std::collections::HashMap;

use lookout_engine::eval::{EvalError, Evaluator};
use lookout_engine::schema::{Member, TypeId};
use lookout_proto::v1;

use super::{Prepared, log_rule_errors, permission_name};
use crate::cache::Cached;
use crate::error::ApiError;
use crate::service::convert::{self, required};
use crate::service::{Service, run_cpu};

/// Members a check may visit on the async worker before it moves to the evaluation pool
/// (a check of the document model visits about ten).
const INLINE_CHECK_VISITS: u64 = 256;
/// Members the inline checks of one bulk check may visit together before the rest of its items
/// move to the evaluation pool (a document-model check visits about ten).
const BULK_INLINE_VISITS: u64 = 2048;

impl Service {
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
            let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)?;
            if let Some(result) =
                ev.check_within(&entity, &permission, &subject, depth, INLINE_CHECK_VISITS)?
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
            let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)?;
            let result = ev.check(&entity, &permission, &subject, depth)?;
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
            let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)?;
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
                let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)?;
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
            let ev = Evaluator::new(&p.schema.model, &p.snapshot, &p.context)?;
            Ok(ev.subject_permission(&entity, &subject, only_permission, depth)?)
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

/// An evaluation error of bulk-check item `i`, naming the item.
fn item_error(i: usize, e: EvalError) -> ApiError {
    let e = ApiError::from(e);
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
