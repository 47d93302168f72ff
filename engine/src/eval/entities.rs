//! Lookup entity: every entity of one type on which a subject has a permission, as a bitmap.
//!
//! The compiled expression is run as a bitmap plan from the subject outwards: `or` is a union,
//! `and` an intersection, `not` a difference, a relation reads the subject's reverse bitmap, a
//! subject set `@group#member` first computes the groups where the subject is a member and then
//! reads their reverse bitmaps, and an arrow `parent.view` computes the parents with `view` and
//! reads theirs. Independent branches run in parallel on the rayon pool. Rules run last, only on
//! the candidates that the other branches of an `and` (or the base of a `not`) left.
//!
//! Recursion through data (a group inside a group) is a least fixpoint: a relation that contains
//! subject sets of itself is closed by a breadth-first walk over the reverse bitmaps; any other
//! cycle through the schema is iterated, seeding each round with the previous round's sets,
//! until nothing changes.
//!
//! INVARIANT: a member's set in `memo` is final for the round; a set read while still being
//! computed (a cycle) marks the round as needing another.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use roaring::RoaringBitmap;

use crate::model::SubjectRef;
use crate::schema::{Expr, Member, TypeId};

use super::rules::RuleRunner;
use super::{EntitySet, EvalError, Evaluator};

/// Rounds of fixpoint iteration before giving up (only recursion under `not` can need this many).
const MAX_ROUNDS: usize = 256;

/// Below this many children an operator's branches run sequentially.
const PARALLEL_MIN_CHILDREN: usize = 2;

/// A member's set, and whether it is the prefix-restricted one (see [`run_progressive`]).
type Key = (TypeId, Member, bool);

/// The members being computed on the current logical call path (across rayon tasks). A
/// member found in progress *on this path* is a cycle; one in progress elsewhere is merely
/// being computed concurrently by another branch, which is no reason for another round.
#[derive(Clone, Copy)]
struct Path<'p> {
    key: Key,
    parent: Option<&'p Path<'p>>,
}

fn on_path(path: Option<&Path<'_>>, key: Key) -> bool {
    let mut cursor = path;
    while let Some(node) = cursor {
        if node.key == key {
            return true;
        }
        cursor = node.parent;
    }
    false
}

enum State {
    InProgress,
    Done(Arc<RoaringBitmap>),
}

pub(super) struct Lookup<'e, 'a> {
    ev: &'e Evaluator<'a>,
    subject_ty: TypeId,
    subject_num: Option<u32>,
    subject_member: Option<Member>,
    plain_subject: bool,
    memo: Mutex<HashMap<Key, State>>,
    seeds: HashMap<Key, Arc<RoaringBitmap>>,
    cyclic: AtomicBool,
    rule_errors: Mutex<Vec<String>>,
    universes: Mutex<HashMap<TypeId, Arc<RoaringBitmap>>>,
    /// Restricted frames keep only numbers below this (see [`run_progressive`]).
    below: u32,
    /// A restricted frame met recursion through its own type, which a prefix cannot follow.
    prefix_failed: AtomicBool,
}

pub(super) fn run(
    ev: &Evaluator<'_>,
    ty: TypeId,
    member: Member,
    subject: &SubjectRef,
    subject_ty: TypeId,
) -> Result<EntitySet, EvalError> {
    run_progressive(ev, ty, member, subject, subject_ty, None, |_| {})
}

/// As [`run`], and first, when `prefix_below` is given and the plan allows it, calls
/// `on_prefix` with the result's numbers below `prefix_below` — computed before the rest, so a
/// stream can send its first IDs early. The prefix restricts only the frames of the looked-up
/// type reached from the root through that type; every other set (groups, folders, ...) is
/// computed in full once and shared with the full run that follows. No prefix is offered when
/// the type recurses through itself (a breadth-first closure or a fixpoint over it needs the
/// whole set) or a rule fails.
pub(super) fn run_progressive(
    ev: &Evaluator<'_>,
    ty: TypeId,
    member: Member,
    subject: &SubjectRef,
    subject_ty: TypeId,
    prefix_below: Option<u32>,
    on_prefix: impl FnOnce(&RoaringBitmap),
) -> Result<EntitySet, EvalError> {
    let schema = ev.schema();
    let subject_member = subject
        .relation
        .as_deref()
        .and_then(|r| schema.entity_at(subject_ty).member(r));
    // A subject set is its own member: give it a number so the result can hold it.
    let subject_num = if subject_member.is_some() {
        ev.request_interner().intern(&subject.ty, &subject.id).ok()
    } else {
        ev.snapshot.number(&subject.ty, &subject.id)
    };
    let mut seeds: HashMap<Key, Arc<RoaringBitmap>> = HashMap::new();
    let mut prefix = prefix_below.map(|below| (below, on_prefix));
    for _round in 0..MAX_ROUNDS {
        ev.cancelled()?;
        let mut lookup = Lookup {
            ev,
            subject_ty,
            subject_num,
            subject_member,
            plain_subject: subject.relation.is_none(),
            memo: Mutex::new(HashMap::new()),
            seeds,
            cyclic: AtomicBool::new(false),
            rule_errors: Mutex::new(Vec::new()),
            universes: Mutex::new(HashMap::new()),
            below: u32::MAX,
            prefix_failed: AtomicBool::new(false),
        };
        if let Some((below, on_prefix)) = prefix.take() {
            lookup.below = below;
            let restricted = lookup.member(ty, member, None, true)?;
            let clean = !lookup.cyclic.load(Ordering::Relaxed)
                && !lookup.prefix_failed.load(Ordering::Relaxed)
                && lock(&lookup.rule_errors).is_empty();
            if clean {
                on_prefix(&restricted);
            }
            // The full run starts from what the prefix computed of other types, unless the
            // prefix met a cycle (then its provisional sets are dropped).
            let mut memo = lock(&lookup.memo);
            if clean {
                memo.retain(|k, state| !k.2 && matches!(state, State::Done(_)));
            } else {
                memo.clear();
            }
            drop(memo);
            lock(&lookup.rule_errors).clear();
            lookup.cyclic.store(false, Ordering::Relaxed);
        }
        let result = lookup.member(ty, member, None, false)?;
        let rule_errors = lookup
            .rule_errors
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let done = EntitySet {
            entity_type: schema.entity_at(ty).name.clone(),
            numbers: (*result).clone(),
            rule_errors,
        };
        if !lookup.cyclic.load(Ordering::Relaxed) {
            return Ok(done);
        }
        let memo = lookup.memo.into_inner().unwrap_or_else(|e| e.into_inner());
        let next: HashMap<Key, Arc<RoaringBitmap>> = memo
            .into_iter()
            .filter_map(|(k, state)| match state {
                State::Done(b) => Some((k, b)),
                State::InProgress => None,
            })
            .collect();
        let unchanged = next.len() == lookup.seeds.len()
            && next
                .iter()
                .all(|(k, b)| lookup.seeds.get(k).is_some_and(|s| s == b));
        if unchanged {
            return Ok(done);
        }
        seeds = next;
    }
    Err(EvalError::NoConvergence(MAX_ROUNDS))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lookup<'_, '_> {
    fn lock_memo(&self) -> std::sync::MutexGuard<'_, HashMap<Key, State>> {
        lock(&self.memo)
    }

    /// Whether a frame keeps only numbers below `self.below`.
    fn restricts(path: &Path<'_>) -> bool {
        path.key.2
    }

    fn universe(&self, ty: TypeId) -> Arc<RoaringBitmap> {
        let mut universes = self.universes.lock().unwrap_or_else(|e| e.into_inner());
        universes
            .entry(ty)
            .or_insert_with(|| {
                let mut all = self
                    .ev
                    .snapshot
                    .universe(&self.ev.schema().entity_at(ty).name);
                // A subject set `ty:s#x` names an entity of `ty` even when `s` has no stored
                // data: rules must run on it too (check does).
                if ty == self.subject_ty
                    && self.subject_member.is_some()
                    && let Some(s) = self.subject_num
                {
                    all.insert(s);
                }
                Arc::new(all)
            })
            .clone()
    }

    /// The set of entities of `ty` on which the subject has `member`.
    fn member(
        &self,
        ty: TypeId,
        member: Member,
        path: Option<&Path<'_>>,
        restricted: bool,
    ) -> Result<Arc<RoaringBitmap>, EvalError> {
        self.ev.cancelled()?;
        let key = (ty, member, restricted);
        {
            let mut memo = self.lock_memo();
            match memo.get(&key) {
                Some(State::Done(b)) => return Ok(b.clone()),
                Some(State::InProgress) if on_path(path, key) => {
                    self.cyclic.store(true, Ordering::Relaxed);
                    return Ok(self.seeds.get(&key).cloned().unwrap_or_default());
                }
                // Being computed by a concurrent branch: compute it here too.
                Some(State::InProgress) => {}
                None => {
                    memo.insert(key, State::InProgress);
                }
            }
        }
        let here = Path { key, parent: path };
        let computed = crate::stack::grow(|| self.member_uncached(ty, member, &here));
        let mut memo = self.lock_memo();
        match computed {
            Ok(mut set) => {
                if ty == self.subject_ty
                    && self.subject_member == Some(member)
                    && let Some(s) = self.subject_num
                    && (!restricted || s < self.below)
                {
                    set.insert(s);
                }
                let set = Arc::new(set);
                memo.insert(key, State::Done(set.clone()));
                Ok(set)
            }
            Err(e) => {
                if matches!(memo.get(&key), Some(State::InProgress)) {
                    memo.remove(&key);
                }
                Err(e)
            }
        }
    }

    fn member_uncached(
        &self,
        ty: TypeId,
        member: Member,
        path: &Path<'_>,
    ) -> Result<RoaringBitmap, EvalError> {
        match member {
            Member::Relation(rel) => self.relation(ty, rel, path),
            Member::Permission(p) => {
                let expr = &self.ev.schema().entity_at(ty).permissions[p].expr;
                if let Expr::Union(children) = expr
                    && children.iter().any(|c| is_self_arrow(c, ty, p))
                {
                    if Self::restricts(path) {
                        self.prefix_failed.store(true, Ordering::Relaxed);
                        return Ok(RoaringBitmap::new());
                    }
                    return self.recursive_union(ty, p, children, path);
                }
                self.expr(ty, expr, None, path)
            }
            Member::Attribute(a) => {
                let mut set = self.attribute_trues(ty, a);
                if Self::restricts(path) {
                    set.remove_range(self.below..);
                }
                Ok(set)
            }
        }
    }

    fn attribute_trues(&self, ty: TypeId, attr: usize) -> RoaringBitmap {
        self.ev
            .model
            .plan
            .attr_key(ty, attr)
            .and_then(|k| self.ev.snapshot.attribute(k))
            .map(|c| c.trues().clone())
            .unwrap_or_default()
    }

    /// `permission p = a or ... or via.p` (a permission reaching itself through an arrow on its
    /// own type, at the top of a union): the least fixpoint is the other branches' set closed
    /// under "an entity whose `via` subjects include a member" — a breadth-first walk over the
    /// reverse bitmaps of `via`, with no rounds of re-evaluation.
    fn recursive_union(
        &self,
        ty: TypeId,
        p: usize,
        children: &[Expr],
        path: &Path<'_>,
    ) -> Result<RoaringBitmap, EvalError> {
        let mut base_children: Vec<Expr> = Vec::new();
        let mut recursive_vias: Vec<usize> = Vec::new();
        for child in children {
            match child {
                Expr::Arrow { via, targets } if is_self_arrow(child, ty, p) => {
                    recursive_vias.push(*via);
                    let others: Vec<(TypeId, Expr)> = targets
                        .iter()
                        .filter(|(t, e)| !(*t == ty && *e == Expr::Permission(p)))
                        .cloned()
                        .collect();
                    if !others.is_empty() {
                        base_children.push(Expr::Arrow {
                            via: *via,
                            targets: others,
                        });
                    }
                }
                other => base_children.push(other.clone()),
            }
        }
        let refs: Vec<&Expr> = base_children.iter().collect();
        let mut set = RoaringBitmap::new();
        for s in self.children(ty, &refs, None, path)? {
            set |= s;
        }
        let below = u32::MAX;
        let mut frontier = set.clone();
        if ty == self.subject_ty
            && self.subject_member == Some(Member::Permission(p))
            && let Some(s) = self.subject_num
        {
            frontier.insert(s);
        }
        let stores: Vec<&crate::index::RelStore> = recursive_vias
            .iter()
            .flat_map(|via| self.ev.model.plan.slots(ty, *via))
            .filter(|slot| slot.subject_type == ty)
            .filter_map(|slot| self.ev.store(slot))
            .collect();
        while !frontier.is_empty() {
            let mut reached = RoaringBitmap::new();
            for store in &stores {
                union_reverse(self.ev, &mut reached, store, &frontier, below)?;
            }
            reached -= &set;
            set |= &reached;
            frontier = reached;
        }
        Ok(set)
    }

    fn relation(
        &self,
        ty: TypeId,
        rel: usize,
        path: &Path<'_>,
    ) -> Result<RoaringBitmap, EvalError> {
        let ev = self.ev;
        let below = if Self::restricts(path) {
            self.below
        } else {
            u32::MAX
        };
        let mut set = RoaringBitmap::new();
        let mut recursive_slots = Vec::new();
        for slot in ev.model.plan.slots(ty, rel) {
            let Some(store) = ev.store(slot) else {
                continue;
            };
            match slot.subject_member {
                None => {
                    if slot.subject_type == self.subject_ty
                        && self.plain_subject
                        && let Some(entities) = self.subject_num.and_then(|s| store.entities_of(s))
                    {
                        entities.below(below).union_into(&mut set);
                        if below != u32::MAX {
                            set.remove_range(below..);
                        }
                    }
                }
                Some(m)
                    if slot.subject_type == ty
                        && (m == Member::Relation(rel)
                            || (self.plain_subject && self.is_alias_of(ty, m, rel))) =>
                {
                    // `relation member @group#member`: closed below by a breadth-first walk.
                    // So is `relation r @e#p` with `permission p = r` for a plain subject: `p`
                    // and `r` have the same holders, and rounds of iteration would take one
                    // round per level of the data.
                    recursive_slots.push(store);
                }
                Some(m) => {
                    let holders = self.member(slot.subject_type, m, Some(path), false)?;
                    union_reverse(ev, &mut set, store, &holders, below)?;
                }
            }
        }
        if recursive_slots.is_empty() {
            return Ok(set);
        }
        if below != u32::MAX {
            // A closure over the type's own subject sets needs the whole set.
            self.prefix_failed.store(true, Ordering::Relaxed);
            return Ok(RoaringBitmap::new());
        }
        // Entities whose subject sets `ty:x#rel` hold the subject: start from the direct ones
        // (and the subject itself, when it is such a subject set) and walk outwards.
        let mut frontier = set.clone();
        if ty == self.subject_ty
            && self.subject_member == Some(Member::Relation(rel))
            && let Some(s) = self.subject_num
        {
            frontier.insert(s);
        }
        while !frontier.is_empty() {
            let mut reached = RoaringBitmap::new();
            for store in &recursive_slots {
                union_reverse(ev, &mut reached, store, &frontier, u32::MAX)?;
            }
            reached -= &set;
            set |= &reached;
            frontier = reached;
        }
        Ok(set)
    }

    /// Whether `m` of `ty` is a permission defined as exactly the relation `rel`.
    fn is_alias_of(&self, ty: TypeId, m: Member, rel: usize) -> bool {
        let Member::Permission(p) = m else {
            return false;
        };
        self.ev.schema().entity_at(ty).permissions[p].expr == Expr::Relation(rel)
    }

    fn children(
        &self,
        ty: TypeId,
        children: &[&Expr],
        candidates: Option<&RoaringBitmap>,
        path: &Path<'_>,
    ) -> Result<Vec<RoaringBitmap>, EvalError> {
        if children.len() >= PARALLEL_MIN_CHILDREN {
            children
                .par_iter()
                .map(|c| self.expr(ty, c, candidates, path))
                .collect()
        } else {
            children
                .iter()
                .map(|c| self.expr(ty, c, candidates, path))
                .collect()
        }
    }

    /// The entities of `ty` satisfying `expr`. With `candidates`, the result may be limited to
    /// them (the caller intersects with them anyway); rules then run only on candidates.
    fn expr(
        &self,
        ty: TypeId,
        expr: &Expr,
        candidates: Option<&RoaringBitmap>,
        path: &Path<'_>,
    ) -> Result<RoaringBitmap, EvalError> {
        crate::stack::grow(|| self.expr_unguarded(ty, expr, candidates, path))
    }

    fn expr_unguarded(
        &self,
        ty: TypeId,
        expr: &Expr,
        candidates: Option<&RoaringBitmap>,
        path: &Path<'_>,
    ) -> Result<RoaringBitmap, EvalError> {
        match expr {
            Expr::Union(children) => {
                let children: Vec<&Expr> = children.iter().collect();
                let mut sets = self.children(ty, &children, candidates, path)?.into_iter();
                let mut acc = sets.next().unwrap_or_default();
                for s in sets {
                    acc |= s;
                }
                Ok(acc)
            }
            Expr::Intersect(children) => {
                let (plain, ruled): (Vec<&Expr>, Vec<&Expr>) =
                    children.iter().partition(|c| !has_call(c));
                let mut acc: Option<RoaringBitmap> = None;
                if !plain.is_empty() {
                    let mut sets = self.children(ty, &plain, candidates, path)?.into_iter();
                    let mut first = sets.next().unwrap_or_default();
                    for s in sets {
                        first &= s;
                    }
                    acc = Some(first);
                }
                for child in ruled {
                    let narrowed = match (&acc, candidates) {
                        (Some(a), _) => Some(a),
                        (None, c) => c,
                    };
                    let set = self.expr(ty, child, narrowed, path)?;
                    acc = Some(match acc {
                        Some(mut a) => {
                            a &= set;
                            a
                        }
                        None => set,
                    });
                    if acc.as_ref().is_some_and(|a| a.is_empty()) {
                        break;
                    }
                }
                Ok(acc.unwrap_or_default())
            }
            Expr::Exclude(base, excluded) => {
                let mut set = self.expr(ty, base, candidates, path)?;
                if set.is_empty() {
                    return Ok(set);
                }
                let removed = self.expr(ty, excluded, Some(&set), path)?;
                set -= removed;
                Ok(set)
            }
            // Members of the same type keep the frame's restriction.
            Expr::Relation(r) => {
                Ok(
                    (*self.member(ty, Member::Relation(*r), Some(path), Self::restricts(path))?)
                        .clone(),
                )
            }
            Expr::Permission(p) => Ok((*self.member(
                ty,
                Member::Permission(*p),
                Some(path),
                Self::restricts(path),
            )?)
            .clone()),
            Expr::Attribute(a) => {
                Ok(
                    (*self.member(ty, Member::Attribute(*a), Some(path), Self::restricts(path))?)
                        .clone(),
                )
            }
            Expr::Arrow { via, targets } => {
                let ev = self.ev;
                let below = if Self::restricts(path) {
                    self.below
                } else {
                    u32::MAX
                };
                let mut set = RoaringBitmap::new();
                for (target_ty, target) in targets {
                    // The holders are another level: always whole.
                    let holders = match target {
                        Expr::Relation(r) => {
                            self.member(*target_ty, Member::Relation(*r), Some(path), false)?
                        }
                        Expr::Permission(p) => {
                            self.member(*target_ty, Member::Permission(*p), Some(path), false)?
                        }
                        other => {
                            if Self::restricts(path) {
                                // Evaluated on this frame's path, it would be cut too.
                                self.prefix_failed.store(true, Ordering::Relaxed);
                            }
                            Arc::new(self.expr(*target_ty, other, None, path)?)
                        }
                    };
                    if holders.is_empty() {
                        continue;
                    }
                    for slot in ev.model.plan.slots(ty, *via) {
                        if slot.subject_type != *target_ty {
                            continue;
                        }
                        if let Some(store) = ev.store(slot) {
                            union_reverse(ev, &mut set, store, &holders, below)?;
                        }
                    }
                }
                Ok(set)
            }
            Expr::Call { rule, args } => {
                let universe;
                let pool = match candidates {
                    Some(c) => c,
                    None if Self::restricts(path) => {
                        let mut cut = (*self.universe(ty)).clone();
                        cut.remove_range(self.below..);
                        universe = Arc::new(cut);
                        universe.as_ref()
                    }
                    None => {
                        universe = self.universe(ty);
                        universe.as_ref()
                    }
                };
                let runner = RuleRunner::new(self.ev);
                let mut set = RoaringBitmap::new();
                let mut errors = Vec::new();
                for e in pool.iter() {
                    self.ev.cancelled()?;
                    match runner.eval(ty, Some(e), *rule, args) {
                        Ok(true) => {
                            set.insert(e);
                        }
                        Ok(false) => {}
                        Err(message) => errors.push(message),
                    }
                }
                if !errors.is_empty() {
                    self.rule_errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(errors);
                }
                Ok(set)
            }
        }
    }
}

/// `set |= rev[x]` for every `x` in `holders` that has entities in `store`; stops early when
/// the evaluation is cancelled.
fn union_reverse(
    ev: &Evaluator<'_>,
    set: &mut RoaringBitmap,
    store: &crate::index::RelStore,
    holders: &RoaringBitmap,
    below: u32,
) -> Result<(), EvalError> {
    let (small, large) = if holders.len() <= store.subjects().len() {
        (holders, store.subjects())
    } else {
        (store.subjects(), holders)
    };
    // Gather first, then union in one pass: OR-ing thousands of small sets into a growing
    // bitmap merges (and reallocates) its containers again and again.
    let mut parts: Vec<crate::index::SetRef<'_>> = Vec::new();
    for (i, x) in small.iter().enumerate() {
        if i.is_multiple_of(super::cancel::POLL_EVERY) {
            ev.cancelled()?;
        }
        if large.contains(x)
            && let Some(entities) = store.entities_of(x)
        {
            let part = entities.below(below);
            if !part.is_empty() {
                parts.push(part);
            }
        }
    }
    if parts.len() <= 4 {
        for part in parts {
            part.union_into(set);
        }
    } else if set.is_empty() {
        *set = crate::index::union_all(parts);
    } else {
        *set |= crate::index::union_all(parts);
    }
    if below != u32::MAX {
        // Bitmap parts are not cut (see `SetRef::below`).
        set.remove_range(below..);
    }
    Ok(())
}

/// Whether `expr` is an arrow whose targets include permission `p` of type `ty` itself.
fn is_self_arrow(expr: &Expr, ty: TypeId, p: usize) -> bool {
    matches!(expr, Expr::Arrow { targets, .. }
        if targets.iter().any(|(t, e)| *t == ty && *e == Expr::Permission(p)))
}

/// Whether an expression calls a rule anywhere outside a named member.
fn has_call(expr: &Expr) -> bool {
    match expr {
        Expr::Call { .. } => true,
        Expr::Union(c) | Expr::Intersect(c) => c.iter().any(has_call),
        Expr::Exclude(a, b) => has_call(a) || has_call(b),
        Expr::Relation(_) | Expr::Permission(_) | Expr::Attribute(_) | Expr::Arrow { .. } => false,
    }
}
