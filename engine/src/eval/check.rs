//! Check: does one subject have one permission on one entity?
//!
//! Walks the compiled expression from the entity towards the subject. Depth is counted more
//! coarsely than Permify counts it: every step to another entity (through a subject set or an
//! arrow) costs one level, and a reference to a member of the same entity costs none (Permify
//! spends a level on each); running out of levels is an error unless another branch already
//! decided the answer.
//!
//! INVARIANT: a cycle in the data (a group inside itself) is cut where it closes: the repeated
//! node grants nothing on that path. For everything but recursion under `not`, that is the least
//! fixpoint the lookups compute. A negative answer is memoised only if no cycle was cut below it.

use crate::index::{FastMap, SetRef};

use roaring::RoaringBitmap;
use smallvec::SmallVec;

use crate::model::SubjectRef;
use crate::schema::{Expr, Member, TypeId};

use super::rules::RuleRunner;
use super::{CheckResult, EvalError, Evaluator};

type Key = (TypeId, Member, u32);

/// Members a usual check decides (about a dozen in the document model) fit in a [`Memo`]
/// and a path without a heap allocation.
const INLINE: usize = 16;

/// The members on the walk's current path: scanned in a short inline list while the path is
/// short, and indexed in a hash set once it is longer than [`INLINE`], so a walk down a chain
/// of 10,000 nested entities costs linear time, not quadratic.
#[derive(Default)]
struct Path {
    list: SmallVec<[Key; INLINE]>,
    /// Every key of `list`, once `list` has outgrown [`INLINE`].
    index: Option<hashbrown::HashSet<Key, hashbrown::DefaultHashBuilder>>,
}

impl Path {
    fn contains(&self, key: &Key) -> bool {
        match &self.index {
            Some(index) => index.contains(key),
            None => self.list.contains(key),
        }
    }

    /// Adds `key`, which is not on the path.
    fn push(&mut self, key: Key) {
        self.list.push(key);
        if let Some(index) = &mut self.index {
            index.insert(key);
        } else if self.list.len() > INLINE {
            self.index = Some(self.list.iter().copied().collect());
        }
    }

    fn pop(&mut self) {
        if let Some(key) = self.list.pop()
            && let Some(index) = &mut self.index
        {
            index.remove(&key);
        }
    }
}

/// The answers a check has decided so far: scanned in a short inline list while few, a hash
/// map once a walk decides more than [`INLINE`] members.
#[derive(Default)]
struct Memo {
    few: SmallVec<[(Key, bool); INLINE]>,
    many: FastMap<Key, bool>,
}

impl Memo {
    #[inline]
    fn get(&self, key: &Key) -> Option<bool> {
        if self.many.is_empty() {
            self.few.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
        } else {
            self.many.get(key).copied()
        }
    }

    fn insert(&mut self, key: Key, value: bool) {
        if self.many.is_empty() {
            if let Some(slot) = self.few.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = value;
                return;
            }
            if self.few.len() < INLINE {
                self.few.push((key, value));
                return;
            }
            self.many.extend(self.few.drain(..));
        }
        self.many.insert(key, value);
    }
}

/// Members visited by one check's forward walk before it gives up and answers from the
/// lookup-entity bitmaps instead. The forward walk is fastest for the usual shallow checks, but
/// its cycle cutting can make it explore every path of densely cyclic data; the bitmap plan is
/// polynomial there.
const VISIT_BUDGET: u64 = 20_000;

/// The most holders [`Checker::closure_holders`] collects before it leaves the set to the
/// bitmap lookup.
const SMALL_CLOSURE: u64 = 64;

/// The entities on which the subject has one relation (see [`Checker::holders`]).
enum Holders {
    /// A short sorted list, from the upward walk of the reverse index.
    Few(Vec<u32>),
    /// From the lookup.
    Many(RoaringBitmap),
}

impl Holders {
    /// Whether none of `subjects` is a holder.
    fn is_disjoint(&self, subjects: SetRef<'_>) -> bool {
        match self {
            Holders::Few(few) => !few.iter().any(|h| subjects.contains(*h)),
            Holders::Many(many) => subjects.is_disjoint(many),
        }
    }
}

struct Checker<'e, 'a> {
    ev: &'e Evaluator<'a>,
    subject: &'e SubjectRef,
    /// For subject-set slots naming a relation (`@group#member`): the entities of that type on
    /// which the subject has the relation, computed once per check (a check meets one or two).
    holders: Vec<((TypeId, Member), Holders)>,
    visits: u64,
    /// Visits allowed before `over_budget`.
    budget: u64,
    over_budget: bool,
    rules: RuleRunner<'e, 'a>,
    subject_ty: TypeId,
    subject_num: Option<u32>,
    /// `Some` when the subject is a subject set and names a member of its type.
    subject_member: Option<Member>,
    plain_subject: bool,
    /// Whether the subject is a subject set of the entity checked (`e#x` while checking `e`):
    /// the self rule must hold below the root even when `e` has no number (no stored data).
    subject_is_root: bool,
    max_depth: u32,
    path: Path,
    memo: Memo,
    cuts: u64,
    rule_errors: Vec<String>,
}

/// A check that always answers: the forward walk, then the bitmap plan if the walk runs past
/// [`VISIT_BUDGET`].
pub(super) fn run(
    ev: &Evaluator<'_>,
    ty: TypeId,
    id: &str,
    member: Member,
    subject: &SubjectRef,
    subject_ty: TypeId,
    depth: u32,
) -> Result<CheckResult, EvalError> {
    if let Some(answer) = walk(ev, ty, id, member, subject, subject_ty, depth, VISIT_BUDGET)? {
        return Ok(answer);
    }
    let set = super::entities::run(ev, ty, member, subject, subject_ty)?;
    let allowed = ev
        .snapshot
        .number(&ev.schema().entity_at(ty).name, id)
        .is_some_and(|e| set.numbers.contains(e));
    Ok(CheckResult {
        allowed,
        rule_errors: set.rule_errors,
        visits: VISIT_BUDGET + 1,
    })
}

/// The forward walk, visiting at most `visits` members (and never more than
/// [`VISIT_BUDGET`]); `None` if that was not enough.
#[allow(clippy::too_many_arguments)]
pub(super) fn walk(
    ev: &Evaluator<'_>,
    ty: TypeId,
    id: &str,
    member: Member,
    subject: &SubjectRef,
    subject_ty: TypeId,
    depth: u32,
    visits: u64,
) -> Result<Option<CheckResult>, EvalError> {
    let schema = ev.schema();
    let subject_member = subject
        .relation
        .as_deref()
        .and_then(|r| schema.entity_at(subject_ty).member(r));
    // The subject set `e#member` itself has `member` on `e`.
    if subject_ty == ty && subject_member == Some(member) && subject.id == id {
        return Ok(Some(CheckResult {
            allowed: true,
            rule_errors: Vec::new(),
            visits: 0,
        }));
    }
    let mut checker = Checker {
        ev,
        subject,
        holders: Vec::new(),
        visits: 0,
        budget: visits.min(VISIT_BUDGET),
        over_budget: false,
        rules: RuleRunner::new(ev),
        subject_ty,
        subject_num: ev.snapshot.number(&subject.ty, &subject.id),
        subject_member,
        plain_subject: subject.relation.is_none(),
        subject_is_root: subject_ty == ty && subject.id == id,
        max_depth: depth,
        path: Path::default(),
        memo: Memo::default(),
        cuts: 0,
        rule_errors: Vec::new(),
    };
    let entity = ev.snapshot.number(&schema.entity_at(ty).name, id);
    let outcome = checker.member(ty, entity, member, depth);
    if checker.over_budget {
        return Ok(None);
    }
    Ok(Some(CheckResult {
        allowed: outcome?,
        rule_errors: checker.rule_errors,
        visits: checker.visits,
    }))
}

impl Checker<'_, '_> {
    fn member(
        &mut self,
        ty: TypeId,
        entity: Option<u32>,
        member: Member,
        depth: u32,
    ) -> Result<bool, EvalError> {
        self.visits += 1;
        if self.visits.is_multiple_of(super::cancel::POLL_EVERY as u64) {
            self.ev.cancelled()?;
        }
        if self.visits > self.budget {
            self.over_budget = true;
        }
        if self.over_budget {
            // The answer will come from the bitmap plan; unwind quickly.
            return Ok(false);
        }
        if let Some(e) = entity {
            if ty == self.subject_ty
                && self.subject_member == Some(member)
                && self.subject_num == Some(e)
            {
                return Ok(true);
            }
            let key = (ty, member, e);
            if let Some(known) = self.memo.get(&key) {
                return Ok(known);
            }
            if self.path.contains(&key) {
                self.cuts += 1;
                return Ok(false);
            }
            if depth == 0 {
                return Err(EvalError::DepthExhausted(self.max_depth));
            }
            let cuts_before = self.cuts;
            self.path.push(key);
            let result = crate::stack::grow(|| self.member_uncached(ty, entity, member, depth));
            self.path.pop();
            if let Ok(allowed) = result
                && (allowed || self.cuts == cuts_before)
            {
                self.memo.insert(key, allowed);
            }
            return result;
        }
        // No number: this is the checked entity itself, which has no stored data.
        if self.subject_is_root && ty == self.subject_ty && self.subject_member == Some(member) {
            return Ok(true);
        }
        if depth == 0 {
            return Err(EvalError::DepthExhausted(self.max_depth));
        }
        crate::stack::grow(|| self.member_uncached(ty, entity, member, depth))
    }

    fn member_uncached(
        &mut self,
        ty: TypeId,
        entity: Option<u32>,
        member: Member,
        depth: u32,
    ) -> Result<bool, EvalError> {
        let ev = self.ev;
        match member {
            Member::Relation(rel) => self.relation(ty, entity, rel, depth),
            Member::Permission(p) => {
                let expr = &ev.schema().entity_at(ty).permissions[p].expr;
                self.expr(ty, entity, expr, depth)
            }
            Member::Attribute(a) => Ok(self.attribute(ty, entity, a)),
        }
    }

    fn attribute(&self, ty: TypeId, entity: Option<u32>, attr: usize) -> bool {
        let (Some(e), Some(key)) = (entity, self.ev.model.plan.attr_key(ty, attr)) else {
            return false;
        };
        self.ev
            .snapshot
            .attribute(key)
            .is_some_and(|c| c.trues().contains(e))
    }

    /// The position in `self.holders` of the holders of `member` of `ty`, computed at the
    /// first call.
    fn holders(&mut self, ty: TypeId, member: Member) -> Result<usize, EvalError> {
        if let Some(at) = self.holders.iter().position(|(k, _)| *k == (ty, member)) {
            return Ok(at);
        }
        let few = match member {
            Member::Relation(rel) => self.closure_holders(ty, rel),
            _ => None,
        };
        let set = match few {
            Some(few) => Holders::Few(few),
            None => {
                let set = super::entities::run(self.ev, ty, member, self.subject, self.subject_ty)?;
                self.rule_errors.extend(set.rule_errors);
                Holders::Many(set.numbers)
            }
        };
        self.holders.push(((ty, member), set));
        Ok(self.holders.len() - 1)
    }

    /// The holders of a relation closed only under its own subject sets (`relation member
    /// @user @group#member`) for a plain subject, found by walking the reverse index upwards
    /// from the subject on a short vector: the subject's direct entities, the entities
    /// holding those as subject sets, and so on. The same set as the lookup computes, without
    /// its bitmap machinery, which dominates for the few groups a user is usually in. `None`
    /// when the relation has other kinds of slots or the set grows past
    /// [`SMALL_CLOSURE`] (the lookup is better at large sets).
    fn closure_holders(&self, ty: TypeId, rel: usize) -> Option<Vec<u32>> {
        if !self.plain_subject {
            return None;
        }
        let ev = self.ev;
        let mut found: Vec<u32> = Vec::new();
        let mut recursive = Vec::new();
        for slot in ev.model.plan.slots(ty, rel) {
            match slot.subject_member {
                None => {
                    if slot.subject_type == self.subject_ty
                        && let Some(s) = self.subject_num
                        && let Some(entities) =
                            ev.store(slot).and_then(|store| store.entities_of(s))
                    {
                        if entities.len() > SMALL_CLOSURE {
                            return None;
                        }
                        found.extend(entities.iter());
                    }
                }
                Some(Member::Relation(r)) if slot.subject_type == ty && r == rel => {
                    if let Some(store) = ev.store(slot) {
                        recursive.push(store);
                    }
                }
                Some(_) => return None,
            }
        }
        found.sort_unstable();
        found.dedup();
        let mut next = 0;
        while let Some(&held) = found.get(next) {
            next += 1;
            for store in &recursive {
                let Some(parents) = store.entities_of(held) else {
                    continue;
                };
                for parent in parents.iter() {
                    if !found.contains(&parent) {
                        if found.len() >= SMALL_CLOSURE as usize {
                            return None;
                        }
                        found.push(parent);
                    }
                }
            }
        }
        found.sort_unstable();
        Some(found)
    }

    fn relation(
        &mut self,
        ty: TypeId,
        entity: Option<u32>,
        rel: usize,
        depth: u32,
    ) -> Result<bool, EvalError> {
        let Some(e) = entity else {
            return Ok(false);
        };
        let ev = self.ev;
        let mut error = None;
        for slot in ev.model.plan.slots(ty, rel) {
            let Some(subjects) = ev.store(slot).and_then(|s| s.subjects_of(e)) else {
                continue;
            };
            let direct = slot.subject_type == self.subject_ty
                && match slot.subject_member {
                    None => self.plain_subject,
                    Some(m) => self.subject_member == Some(m),
                };
            if direct && self.subject_num.is_some_and(|s| subjects.contains(s)) {
                return Ok(true);
            }
            let Some(m) = slot.subject_member else {
                continue;
            };
            if let Member::Relation(_) = m {
                // `@group#member`: test the entity's groups against the groups the subject
                // is in (reverse bitmaps), instead of walking into every group.
                let at = self.holders(slot.subject_type, m)?;
                if !self.holders[at].1.is_disjoint(subjects) {
                    return Ok(true);
                }
                continue;
            }
            for u in subjects.iter() {
                match self.member(slot.subject_type, Some(u), m, depth - 1) {
                    Ok(true) => return Ok(true),
                    Ok(false) => {}
                    Err(err) => error = Some(err),
                }
            }
        }
        error.map_or(Ok(false), Err)
    }

    fn expr(
        &mut self,
        ty: TypeId,
        entity: Option<u32>,
        expr: &Expr,
        depth: u32,
    ) -> Result<bool, EvalError> {
        crate::stack::grow(|| self.expr_unguarded(ty, entity, expr, depth))
    }

    fn expr_unguarded(
        &mut self,
        ty: TypeId,
        entity: Option<u32>,
        expr: &Expr,
        depth: u32,
    ) -> Result<bool, EvalError> {
        match expr {
            Expr::Union(children) => {
                let mut error = None;
                for child in children {
                    match self.expr(ty, entity, child, depth) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(e) => error = Some(e),
                    }
                }
                error.map_or(Ok(false), Err)
            }
            Expr::Intersect(children) => {
                let mut error = None;
                for child in children {
                    match self.expr(ty, entity, child, depth) {
                        Ok(false) => return Ok(false),
                        Ok(true) => {}
                        Err(e) => error = Some(e),
                    }
                }
                error.map_or(Ok(true), Err)
            }
            Expr::Exclude(base, excluded) => {
                let base = self.expr(ty, entity, base, depth);
                if let Ok(false) = base {
                    return Ok(false);
                }
                match (base, self.expr(ty, entity, excluded, depth)) {
                    (_, Ok(true)) => Ok(false),
                    (Ok(true), Ok(false)) => Ok(true),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                    (Ok(false), Ok(false)) => Ok(false),
                }
            }
            Expr::Relation(r) => self.member(ty, entity, Member::Relation(*r), depth),
            Expr::Permission(p) => self.member(ty, entity, Member::Permission(*p), depth),
            // Through `member`, so the self rule holds: `e#public` has `public` on `e`.
            Expr::Attribute(a) => self.member(ty, entity, Member::Attribute(*a), depth),
            Expr::Arrow { via, targets } => {
                let Some(e) = entity else {
                    return Ok(false);
                };
                let Some(next_depth) = depth.checked_sub(1) else {
                    return Err(EvalError::DepthExhausted(self.max_depth));
                };
                let ev = self.ev;
                let mut error = None;
                for slot in ev.model.plan.slots(ty, *via) {
                    let Some(subjects) = ev.store(slot).and_then(|s| s.subjects_of(e)) else {
                        continue;
                    };
                    for (target_ty, target) in targets {
                        if *target_ty != slot.subject_type {
                            continue;
                        }
                        for u in subjects.iter() {
                            match self.expr(*target_ty, Some(u), target, next_depth) {
                                Ok(true) => return Ok(true),
                                Ok(false) => {}
                                Err(e) => error = Some(e),
                            }
                        }
                    }
                }
                error.map_or(Ok(false), Err)
            }
            Expr::Call { rule, args } => match self.rules.eval(ty, entity, *rule, args) {
                Ok(b) => Ok(b),
                Err(message) => {
                    self.rule_errors.push(message);
                    Ok(false)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memo answers the same before and after it moves from its inline list to the map,
    /// and a later insert of a key overrides the earlier answer in both forms.
    #[test]
    fn memo_keeps_every_answer_across_its_two_forms() {
        let mut memo = Memo::default();
        let key = |i: u32| (i as usize % 3, Member::Relation(i as usize % 5), i);
        for i in 0..40u32 {
            memo.insert(key(i), i % 2 == 0);
            // Key 1 (first false) turns true while inline, false again after the spill.
            if i == 3 || i == 30 {
                memo.insert(key(1), i == 3);
            }
            for j in 0..=i {
                let want = j % 2 == 0 || (j == 1 && (3..30).contains(&i));
                assert_eq!(memo.get(&key(j)), Some(want), "key {j} after {i} inserts");
            }
            assert_eq!(memo.get(&key(i + 1)), None);
        }
        assert!(!memo.many.is_empty(), "40 answers spill into the map");
    }
}
