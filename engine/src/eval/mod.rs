//! Evaluation of permissions on a snapshot: check, lookup entity, lookup subject, subject
//! permission and expand.
//!
//! An [`Evaluator`] binds a compiled [`Model`] to one snapshot (with the request's contextual
//! tuples and attributes applied) and the request's `context.data`. It is the fast path; the
//! reference evaluator in [`crate::reference`] answers the same questions by plain recursion and
//! the property tests hold the two to the same answers.
//!
//! Semantics shared by every operation:
//! - a relation holds for subject `S` on entity `e` when the tuple `e#rel@S` is stored, or a
//!   tuple `e#rel@U:u#r` is stored and `S` has `r` on `U:u`, or `S` is the subject set `e#rel`
//!   itself;
//! - recursion through data (nested groups, folder trees) is resolved as a least fixpoint: a
//!   cycle in the data grants nothing by itself;
//! - a missing attribute takes its type's empty value; a rule that fails to evaluate denies.

pub mod cancel;
mod check;
pub mod deps;
mod entities;
mod expand;
mod plan;
mod rules;
mod subjects;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use roaring::RoaringBitmap;

use crate::index::{Interner, RelStore, ResolvedStores, Snapshot, WriteError};
use crate::model::{Attribute, EntityRef, SubjectRef, Tuple};
use crate::schema::{Member, Schema, SchemaError, TypeId};

pub use expand::{ExpandNode, ExpandOp};
pub use plan::Plan;
use plan::Slot;

/// The smallest depth a check accepts, as in Permify.
pub const MIN_DEPTH: u32 = 3;

/// A compiled schema with its evaluation plan. Build once per schema version and share.
#[derive(Debug)]
pub struct Model {
    pub schema: Arc<Schema>,
    pub plan: Plan,
    dependencies: Mutex<DependencyMemo>,
    /// See [`deps::has_negation_cycle`].
    negation_cycle: bool,
}

/// Dependencies computed so far, per (type, member).
type DependencyMemo = HashMap<(TypeId, Member), Arc<[deps::DataKey]>>;

impl Model {
    /// Compiles schema source text.
    pub fn compile(source: &str) -> Result<Model, SchemaError> {
        let schema = crate::schema::compile(source)?;
        Ok(Model::new(Arc::new(schema)))
    }

    /// Wraps an already compiled schema.
    pub fn new(schema: Arc<Schema>) -> Model {
        let plan = Plan::new(&schema);
        let negation_cycle = deps::has_negation_cycle(&schema);
        Model {
            schema,
            plan,
            dependencies: Mutex::new(HashMap::new()),
            negation_cycle,
        }
    }

    /// The stored data that `member` of `ty` can depend on (see [`deps::dependencies`]),
    /// computed once per member.
    pub fn dependencies(&self, ty: TypeId, member: Member) -> Arc<[deps::DataKey]> {
        let mut memo = self.dependencies.lock().unwrap_or_else(|e| e.into_inner());
        memo.entry((ty, member))
            .or_insert_with(|| {
                deps::dependencies(&self.schema, ty, member)
                    .into_iter()
                    .collect()
            })
            .clone()
    }

    /// The type and member named `entity_type` and `name`, if the schema has them.
    pub fn resolve(&self, entity_type: &str, name: &str) -> Option<(TypeId, Member)> {
        let (ty, def) = self.schema.entity(entity_type)?;
        Some((ty, def.member(name)?))
    }
}

/// A request's context: contextual tuples and attributes, and `context.data` for rules.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub tuples: Vec<Tuple>,
    pub attributes: Vec<Attribute>,
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// Why an evaluation could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("entity type `{0}` is not defined in the schema")]
    UnknownEntityType(String),
    #[error("entity type `{entity_type}` has no permission, relation or attribute `{name}`")]
    UnknownMember { entity_type: String, name: String },
    #[error("`{entity_type}#{name}` is an attribute of a non-boolean type and cannot be checked")]
    NotCheckable { entity_type: String, name: String },
    #[error("depth must be at least {MIN_DEPTH}, got {0}")]
    DepthTooSmall(u32),
    #[error("check depth exhausted: the permission needs more than {0} levels of resolution")]
    DepthExhausted(u32),
    #[error("invalid context: {0}")]
    Context(Box<WriteError>),
    #[error("invalid subject reference: {0}")]
    Subject(String),
    #[error("evaluation did not converge after {0} rounds (recursion through `not`)")]
    NoConvergence(usize),
    #[error("evaluation cancelled: the caller went away or its deadline passed")]
    Cancelled,
    /// The answer would exceed a size bound; the message names it.
    #[error("{0}")]
    TooLarge(String),
}

impl From<WriteError> for EvalError {
    fn from(e: WriteError) -> Self {
        EvalError::Context(Box::new(e))
    }
}

/// The answer of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub allowed: bool,
    /// Rule evaluation failures met on the way (each denied its branch).
    pub rule_errors: Vec<String>,
    /// What the answer cost: the members the forward walk visited, or more than the walk's
    /// budget when the bitmap plan had to answer.
    pub visits: u64,
}

/// The entities found by a lookup, in ascending number order (the stream order).
#[derive(Debug, Clone)]
pub struct EntitySet {
    pub entity_type: String,
    pub numbers: RoaringBitmap,
    /// Rule evaluation failures met on the way (each denied its candidate).
    pub rule_errors: Vec<String>,
}

/// What [`Evaluator::lookup_entity_probe`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// Entities with the permission, ascending: exactly the lookup's numbers below
    /// `decided_below`.
    pub numbers: Vec<u32>,
    /// Every number below this one was decided.
    pub decided_below: u32,
}

/// The depth a probe's checks run with: a lookup has no depth limit, and the probe's visit
/// budget bounds the work anyway.
const PROBE_DEPTH: u32 = 1 << 20;

/// Binds a model to one snapshot and one request context.
pub struct Evaluator<'a> {
    model: &'a Model,
    snapshot: Snapshot,
    /// The snapshot's stores of the plan's slots, by slot index (see [`Evaluator::store`]).
    stores: Option<ResolvedStores>,
    data: &'a serde_json::Map<String, serde_json::Value>,
    /// Set by the caller to stop the evaluation early (see [`cancel`]).
    cancel: Option<Arc<AtomicBool>>,
    /// See [`Evaluator::request_interner`].
    overlay: OnceLock<Arc<Interner>>,
}

impl<'a> Evaluator<'a> {
    /// Applies the context's tuples and attributes to `snapshot` (for this request only).
    pub fn new(
        model: &'a Model,
        snapshot: &Snapshot,
        context: &'a Context,
    ) -> Result<Evaluator<'a>, EvalError> {
        let snapshot =
            snapshot.with_context(&model.schema, &context.tuples, &context.attributes)?;
        let stores = snapshot.resolved(model.plan.id(), model.plan.keys());
        Ok(Evaluator {
            model,
            snapshot,
            stores,
            data: &context.data,
            cancel: cancel::current(),
            overlay: OnceLock::new(),
        })
    }

    /// The interner to number IDs only this request knows in: the snapshot's own when it is
    /// already a request's overlay (contextual data, or a caller that made one), else an
    /// overlay made at the first need, so that an evaluation that numbers nothing (most
    /// checks) allocates nothing for it.
    ///
    /// INVARIANT: evaluators never intern into the tenant's interner; they number through
    /// this, and name through [`Evaluator::names`], which reads the same overlay.
    pub(crate) fn request_interner(&self) -> &Arc<Interner> {
        let own = self.snapshot.interner();
        if own.is_overlay() {
            return own;
        }
        self.overlay
            .get_or_init(|| Arc::new(Interner::overlay(own.clone())))
    }

    /// Stops this evaluator's work with [`EvalError::Cancelled`] once `flag` is set.
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// The tuples of one slot of the plan.
    #[inline]
    pub(crate) fn store(&self, slot: &Slot) -> Option<&RelStore> {
        match &self.stores {
            Some(stores) => stores.get(slot.index).and_then(|s| s.as_deref()),
            None => self.snapshot.relation(&slot.key),
        }
    }

    /// Errs with [`EvalError::Cancelled`] if the caller has cancelled the evaluation.
    #[inline]
    pub(crate) fn cancelled(&self) -> Result<(), EvalError> {
        cancel::check(self.cancel.as_ref())
    }

    pub fn schema(&self) -> &Schema {
        &self.model.schema
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    fn entity_type(&self, name: &str) -> Result<TypeId, EvalError> {
        self.model
            .schema
            .entity(name)
            .map(|(id, _)| id)
            .ok_or_else(|| EvalError::UnknownEntityType(name.to_string()))
    }

    /// A checkable member (relation, permission or boolean attribute) of an entity type.
    fn member(&self, ty: TypeId, name: &str) -> Result<Member, EvalError> {
        let def = self.model.schema.entity_at(ty);
        let member = def.member(name).ok_or_else(|| EvalError::UnknownMember {
            entity_type: def.name.clone(),
            name: name.to_string(),
        })?;
        if let Member::Attribute(a) = member
            && def.attributes[a].ty != crate::schema::AttrType::Boolean
        {
            return Err(EvalError::NotCheckable {
                entity_type: def.name.clone(),
                name: name.to_string(),
            });
        }
        Ok(member)
    }

    fn check_subject(&self, subject: &SubjectRef) -> Result<TypeId, EvalError> {
        let ty = self.entity_type(&subject.ty).map_err(|_| {
            EvalError::Subject(format!(
                "entity type `{}` is not defined in the schema",
                subject.ty
            ))
        })?;
        if let Some(rel) = &subject.relation {
            let def = self.model.schema.entity_at(ty);
            if def.member(rel).is_none() {
                return Err(EvalError::Subject(format!(
                    "entity type `{}` has no relation or permission `{rel}`",
                    subject.ty
                )));
            }
        }
        Ok(ty)
    }

    /// Whether `subject` has `permission` (a permission, relation or boolean attribute) on
    /// `entity`. `depth` bounds the levels of resolution, as Permify's depth does.
    pub fn check(
        &self,
        entity: &EntityRef,
        permission: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        if depth < MIN_DEPTH {
            return Err(EvalError::DepthTooSmall(depth));
        }
        let ty = self.entity_type(&entity.ty)?;
        let member = self.member(ty, permission)?;
        let subject_ty = self.check_subject(subject)?;
        check::run(self, ty, &entity.id, member, subject, subject_ty, depth)
    }

    /// As [`Evaluator::check`], but gives up with `Ok(None)` after `visits` members visited
    /// instead of answering from the bitmap plan, so a caller can run the usual small check
    /// where it is (on an async worker thread) and hand only the rare large one to a pool.
    pub fn check_within(
        &self,
        entity: &EntityRef,
        permission: &str,
        subject: &SubjectRef,
        depth: u32,
        visits: u64,
    ) -> Result<Option<CheckResult>, EvalError> {
        if depth < MIN_DEPTH {
            return Err(EvalError::DepthTooSmall(depth));
        }
        let ty = self.entity_type(&entity.ty)?;
        let member = self.member(ty, permission)?;
        let subject_ty = self.check_subject(subject)?;
        check::walk(
            self, ty, &entity.id, member, subject, subject_ty, depth, visits,
        )
    }

    /// The first entities of `entity_type` on which `subject` has `permission`, found by
    /// checking the numbers 0, 1, 2, … in turn with the bounded walk of
    /// [`Evaluator::check_within`] (`visits` members each) until `want` are found,
    /// `candidates` are checked, or a check cannot decide (over its budget, an error, a rule
    /// error). A stream sends these while the lookup computes the whole set. Nothing is
    /// decided when the schema has a dependency cycle through a `not`, where the walk and the
    /// lookup may disagree.
    pub fn lookup_entity_probe(
        &self,
        entity_type: &str,
        permission: &str,
        subject: &SubjectRef,
        want: usize,
        candidates: u32,
        visits: u64,
    ) -> Result<Probe, EvalError> {
        let ty = self.entity_type(entity_type)?;
        let member = self.member(ty, permission)?;
        let subject_ty = self.check_subject(subject)?;
        let mut probe = Probe::default();
        if self.model.negation_cycle {
            return Ok(probe);
        }
        // A lookup finds only entities the data mentions (its universe) and, for a subject set
        // of the looked-up type, the subject's own entity; only those are candidates: numbers
        // between them are decided as absent.
        let limit = usize::try_from(candidates).unwrap_or(usize::MAX);
        let mut head = self.snapshot.universe_head(entity_type, limit);
        if subject.ty == entity_type
            && subject.relation.is_some()
            && let Some(own) = self.snapshot.number(&subject.ty, &subject.id)
        {
            head.push(own);
            head.sort_unstable();
            head.dedup();
            head.truncate(limit);
        }
        let interner = self.snapshot.interner();
        for n in head {
            if probe.numbers.len() >= want {
                break;
            }
            let Some(id) = interner.name(entity_type, n) else {
                break;
            };
            match check::walk(
                self,
                ty,
                &id,
                member,
                subject,
                subject_ty,
                PROBE_DEPTH,
                visits,
            ) {
                Ok(Some(result)) if result.rule_errors.is_empty() => {
                    if result.allowed {
                        probe.numbers.push(n);
                    }
                }
                Err(EvalError::Cancelled) => return Err(EvalError::Cancelled),
                _ => break,
            }
            probe.decided_below = n + 1;
        }
        Ok(probe)
    }

    /// Every entity of `entity_type` on which `subject` has `permission`.
    pub fn lookup_entity(
        &self,
        entity_type: &str,
        permission: &str,
        subject: &SubjectRef,
    ) -> Result<EntitySet, EvalError> {
        let ty = self.entity_type(entity_type)?;
        let member = self.member(ty, permission)?;
        let subject_ty = self.check_subject(subject)?;
        entities::run(self, ty, member, subject, subject_ty)
    }

    /// As [`Evaluator::lookup_entity`], calling `on_prefix` first with the result's numbers
    /// below `prefix_below` when the plan can compute them before the rest (a stream sends
    /// them while the rest is computed); see `entities::run_progressive` for when it cannot.
    pub fn lookup_entity_progressive(
        &self,
        entity_type: &str,
        permission: &str,
        subject: &SubjectRef,
        prefix_below: u32,
        on_prefix: impl FnOnce(&RoaringBitmap),
    ) -> Result<EntitySet, EvalError> {
        let ty = self.entity_type(entity_type)?;
        let member = self.member(ty, permission)?;
        let subject_ty = self.check_subject(subject)?;
        entities::run_progressive(
            self,
            ty,
            member,
            subject,
            subject_ty,
            Some(prefix_below),
            on_prefix,
        )
    }

    /// Every subject of type `subject_type` (subject sets `subject_type#relation` when
    /// `subject_relation` is given) that has `permission` on `entity`, in ascending number order.
    pub fn lookup_subject(
        &self,
        entity: &EntityRef,
        permission: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
    ) -> Result<EntitySet, EvalError> {
        let ty = self.entity_type(&entity.ty)?;
        let member = self.member(ty, permission)?;
        let probe = SubjectRef::new(subject_type, "", subject_relation.map(str::to_string));
        let subject_ty = self.check_subject(&probe)?;
        subjects::run(self, ty, &entity.id, member, subject_ty, subject_relation)
    }

    /// For every permission (and, unless `only_permissions`, every relation) of `entity`'s type,
    /// whether `subject` has it. In declaration order: relations first, then permissions.
    pub fn subject_permission(
        &self,
        entity: &EntityRef,
        subject: &SubjectRef,
        only_permissions: bool,
        depth: u32,
    ) -> Result<Vec<(String, CheckResult)>, EvalError> {
        if depth < MIN_DEPTH {
            return Err(EvalError::DepthTooSmall(depth));
        }
        let ty = self.entity_type(&entity.ty)?;
        let subject_ty = self.check_subject(subject)?;
        let def = self.model.schema.entity_at(ty);
        let mut members: Vec<Member> = Vec::new();
        if !only_permissions {
            members.extend((0..def.relations.len()).map(Member::Relation));
        }
        members.extend((0..def.permissions.len()).map(Member::Permission));
        members
            .into_iter()
            .map(|m| {
                let result = check::run(self, ty, &entity.id, m, subject, subject_ty, depth)?;
                Ok((def.member_name(m).to_string(), result))
            })
            .collect()
    }

    /// The userset tree of `permission` on `entity`, one level of data deep per relation.
    pub fn expand(&self, entity: &EntityRef, permission: &str) -> Result<ExpandNode, EvalError> {
        let ty = self.entity_type(&entity.ty)?;
        let member = self.member(ty, permission)?;
        expand::run(self, ty, &entity.id, member)
    }

    /// The IDs for entity numbers of one type, in the given order.
    pub fn names(&self, entity_type: &str, numbers: &RoaringBitmap) -> Vec<String> {
        self.overlay
            .get()
            .unwrap_or(self.snapshot.interner())
            .names(entity_type, numbers.iter())
    }
}
