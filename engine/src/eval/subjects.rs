//! Lookup subject: every subject of one type that has a permission on one entity, as a bitmap.
//!
//! The same compiled expressions run from the entity towards the subjects: a relation reads the
//! entity's forward bitmap, a subject set or an arrow continues on each subject it names. An
//! attribute or rule that holds for the entity grants every known subject of the requested type
//! (the type's universe in the snapshot). Cycles are resolved as in lookup entity: rounds seeded
//! with the previous round's sets until nothing changes.
//!
//! INVARIANT: a set in `memo` is final for the round; reading one still being computed marks
//! the round as cyclic.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use roaring::RoaringBitmap;

use crate::schema::{Expr, Member, TypeId};

use super::rules::RuleRunner;
use super::{EntitySet, EvalError, Evaluator};

const MAX_ROUNDS: usize = 256;

type Key = (TypeId, Member, u32);

enum State {
    InProgress,
    Done(Arc<RoaringBitmap>),
}

struct Subjects<'e, 'a> {
    ev: &'e Evaluator<'a>,
    rules: RuleRunner<'e, 'a>,
    target_ty: TypeId,
    /// `Some` when looking up subject sets `target#member`.
    target_member: Option<Member>,
    memo: HashMap<Key, State>,
    seeds: HashMap<Key, Arc<RoaringBitmap>>,
    cyclic: bool,
    rule_errors: Vec<String>,
    universe: OnceLock<Arc<RoaringBitmap>>,
    /// The entity asked about, when it is itself a candidate subject set.
    root: Option<u32>,
}

pub(super) fn run(
    ev: &Evaluator<'_>,
    ty: TypeId,
    id: &str,
    member: Member,
    target_ty: TypeId,
    target_relation: Option<&str>,
) -> Result<EntitySet, EvalError> {
    let schema = ev.schema();
    let target_member = target_relation.and_then(|r| schema.entity_at(target_ty).member(r));
    let type_name = &schema.entity_at(ty).name;
    // Subject sets `e#x` of the entity itself are candidates (`e#member` has `member` on `e`,
    // and so has `view` when `view = member`): `e` needs a number even with no data, and must
    // be in the universe that attributes and rules grant.
    let root_candidate = target_ty == ty && target_member.is_some();
    let entity = if root_candidate {
        ev.request_interner().intern(type_name, id).ok()
    } else {
        ev.snapshot.number(type_name, id)
    };
    let root = entity.filter(|_| root_candidate);
    let mut seeds = HashMap::new();
    for _round in 0..MAX_ROUNDS {
        ev.cancelled()?;
        let mut walk = Subjects {
            ev,
            rules: RuleRunner::new(ev),
            target_ty,
            target_member,
            memo: HashMap::new(),
            seeds,
            cyclic: false,
            rule_errors: Vec::new(),
            universe: OnceLock::new(),
            root,
        };
        let result = match entity {
            Some(e) => walk.member(ty, e, member)?,
            // No stored data: only attributes' empty values and rules can grant anything.
            None => Arc::new(walk.member_without_data(ty, member)?),
        };
        let done = EntitySet {
            entity_type: schema.entity_at(target_ty).name.clone(),
            numbers: (*result).clone(),
            rule_errors: std::mem::take(&mut walk.rule_errors),
        };
        if !walk.cyclic {
            return Ok(done);
        }
        let next: HashMap<Key, Arc<RoaringBitmap>> = walk
            .memo
            .into_iter()
            .filter_map(|(k, s)| match s {
                State::Done(b) => Some((k, b)),
                State::InProgress => None,
            })
            .collect();
        let unchanged = next.len() == walk.seeds.len()
            && next
                .iter()
                .all(|(k, b)| walk.seeds.get(k).is_some_and(|s| s == b));
        if unchanged {
            return Ok(done);
        }
        seeds = next;
    }
    Err(EvalError::NoConvergence(MAX_ROUNDS))
}

impl Subjects<'_, '_> {
    fn universe(&self) -> Arc<RoaringBitmap> {
        self.universe
            .get_or_init(|| {
                let name = &self.ev.schema().entity_at(self.target_ty).name;
                let mut all = self.ev.snapshot.universe(name);
                all.extend(self.root);
                Arc::new(all)
            })
            .clone()
    }

    /// For an entity with no number (nothing stored): relations and arrows are empty.
    fn member_without_data(
        &mut self,
        ty: TypeId,
        member: Member,
    ) -> Result<RoaringBitmap, EvalError> {
        match member {
            Member::Relation(_) | Member::Attribute(_) => Ok(RoaringBitmap::new()),
            Member::Permission(p) => {
                let ev = self.ev;
                let expr = &ev.schema().entity_at(ty).permissions[p].expr;
                self.expr_without_data(ty, expr)
            }
        }
    }

    fn expr_without_data(&mut self, ty: TypeId, expr: &Expr) -> Result<RoaringBitmap, EvalError> {
        crate::stack::grow(|| self.expr_without_data_unguarded(ty, expr))
    }

    fn expr_without_data_unguarded(
        &mut self,
        ty: TypeId,
        expr: &Expr,
    ) -> Result<RoaringBitmap, EvalError> {
        Ok(match expr {
            Expr::Union(children) => {
                let mut acc = RoaringBitmap::new();
                for c in children {
                    acc |= self.expr_without_data(ty, c)?;
                }
                acc
            }
            Expr::Intersect(children) => {
                let mut acc: Option<RoaringBitmap> = None;
                for c in children {
                    let s = self.expr_without_data(ty, c)?;
                    acc = Some(match acc {
                        Some(a) => a & s,
                        None => s,
                    });
                }
                acc.unwrap_or_default()
            }
            Expr::Exclude(a, b) => {
                let a = self.expr_without_data(ty, a)?;
                a - self.expr_without_data(ty, b)?
            }
            Expr::Permission(p) => self.member_without_data(ty, Member::Permission(*p))?,
            Expr::Relation(_) | Expr::Attribute(_) | Expr::Arrow { .. } => RoaringBitmap::new(),
            Expr::Call { rule, args } => match self.rules.eval(ty, None, *rule, args) {
                Ok(true) => (*self.universe()).clone(),
                Ok(false) => RoaringBitmap::new(),
                Err(message) => {
                    self.rule_errors.push(message);
                    RoaringBitmap::new()
                }
            },
        })
    }

    /// The subjects of the target type that have `member` on entity `e` of `ty`.
    fn member(
        &mut self,
        ty: TypeId,
        e: u32,
        member: Member,
    ) -> Result<Arc<RoaringBitmap>, EvalError> {
        self.ev.cancelled()?;
        let key = (ty, member, e);
        match self.memo.get(&key) {
            Some(State::Done(b)) => return Ok(b.clone()),
            Some(State::InProgress) => {
                self.cyclic = true;
                return Ok(self.seeds.get(&key).cloned().unwrap_or_default());
            }
            None => {
                self.memo.insert(key, State::InProgress);
            }
        }
        let computed = crate::stack::grow(|| self.member_uncached(ty, e, member));
        match computed {
            Ok(mut set) => {
                if ty == self.target_ty && self.target_member == Some(member) {
                    set.insert(e);
                }
                let set = Arc::new(set);
                self.memo.insert(key, State::Done(set.clone()));
                Ok(set)
            }
            Err(err) => {
                self.memo.remove(&key);
                Err(err)
            }
        }
    }

    fn member_uncached(
        &mut self,
        ty: TypeId,
        e: u32,
        member: Member,
    ) -> Result<RoaringBitmap, EvalError> {
        let ev = self.ev;
        match member {
            Member::Relation(rel) => {
                let mut set = RoaringBitmap::new();
                for slot in ev.model.plan.slots(ty, rel) {
                    let Some(subjects) = ev.store(slot).and_then(|s| s.subjects_of(e)) else {
                        continue;
                    };
                    if slot.subject_type == self.target_ty
                        && slot.subject_member == self.target_member
                    {
                        subjects.union_into(&mut set);
                    }
                    if let Some(m) = slot.subject_member {
                        for u in subjects.iter() {
                            let inner = self.member(slot.subject_type, u, m)?;
                            set |= inner.as_ref();
                        }
                    }
                }
                Ok(set)
            }
            Member::Permission(p) => {
                let expr = &ev.schema().entity_at(ty).permissions[p].expr;
                self.expr(ty, e, expr)
            }
            Member::Attribute(a) => {
                let holds = ev
                    .model
                    .plan
                    .attr_key(ty, a)
                    .and_then(|k| ev.snapshot.attribute(k))
                    .is_some_and(|c| c.trues().contains(e));
                Ok(if holds {
                    (*self.universe()).clone()
                } else {
                    RoaringBitmap::new()
                })
            }
        }
    }

    fn expr(&mut self, ty: TypeId, e: u32, expr: &Expr) -> Result<RoaringBitmap, EvalError> {
        crate::stack::grow(|| self.expr_unguarded(ty, e, expr))
    }

    fn expr_unguarded(
        &mut self,
        ty: TypeId,
        e: u32,
        expr: &Expr,
    ) -> Result<RoaringBitmap, EvalError> {
        Ok(match expr {
            Expr::Union(children) => {
                let mut acc = RoaringBitmap::new();
                for c in children {
                    acc |= self.expr(ty, e, c)?;
                }
                acc
            }
            Expr::Intersect(children) => {
                let mut acc: Option<RoaringBitmap> = None;
                for c in children {
                    let s = self.expr(ty, e, c)?;
                    let next = match acc {
                        Some(a) => a & s,
                        None => s,
                    };
                    let empty = next.is_empty();
                    acc = Some(next);
                    if empty {
                        break;
                    }
                }
                acc.unwrap_or_default()
            }
            Expr::Exclude(a, b) => {
                let a = self.expr(ty, e, a)?;
                if a.is_empty() {
                    return Ok(a);
                }
                a - self.expr(ty, e, b)?
            }
            Expr::Relation(r) => (*self.member(ty, e, Member::Relation(*r))?).clone(),
            Expr::Permission(p) => (*self.member(ty, e, Member::Permission(*p))?).clone(),
            Expr::Attribute(a) => (*self.member(ty, e, Member::Attribute(*a))?).clone(),
            Expr::Arrow { via, targets } => {
                let ev = self.ev;
                let mut set = RoaringBitmap::new();
                for slot in ev.model.plan.slots(ty, *via) {
                    let Some(subjects) = ev.store(slot).and_then(|s| s.subjects_of(e)) else {
                        continue;
                    };
                    for (target_ty, target) in targets {
                        if *target_ty != slot.subject_type {
                            continue;
                        }
                        for u in subjects.iter() {
                            set |= self.expr(*target_ty, u, target)?;
                        }
                    }
                }
                set
            }
            Expr::Call { rule, args } => match self.rules.eval(ty, Some(e), *rule, args) {
                Ok(true) => (*self.universe()).clone(),
                Ok(false) => RoaringBitmap::new(),
                Err(message) => {
                    self.rule_errors.push(message);
                    RoaringBitmap::new()
                }
            },
        })
    }
}
