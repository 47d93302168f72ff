//! Expand: the userset tree of a permission on one entity.
//!
//! Operators become nodes with children; a relation becomes a leaf listing its direct subjects
//! (subject sets unexpanded, as Permify shows them); an arrow becomes a union over the entities
//! it reaches, each expanded in turn; attributes and rules become leaves carrying their value.
//! A cycle in the data is cut where it closes (the repeated node is shown as an empty union).

use crate::model::{EntityRef, SubjectRef};
use crate::schema::{Expr, Member, TypeId};

use super::rules::RuleRunner;
use super::{EvalError, Evaluator};

/// The kind of an operator node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpandOp {
    Union,
    Intersection,
    Exclusion,
}

/// One node of an expand tree. `entity` and `permission` say what the node computes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExpandNode {
    Operation {
        entity: EntityRef,
        permission: String,
        op: ExpandOp,
        children: Vec<ExpandNode>,
    },
    /// The stored subjects of a relation.
    Subjects {
        entity: EntityRef,
        permission: String,
        subjects: Vec<SubjectRef>,
    },
    /// The value of a boolean attribute or a rule.
    Value {
        entity: EntityRef,
        permission: String,
        value: bool,
    },
}

/// The deepest expand tree built; deeper branches are cut (Permify bounds expand by depth too).
const MAX_EXPAND_DEPTH: usize = 64;

struct Expander<'e, 'a> {
    ev: &'e Evaluator<'a>,
    rules: RuleRunner<'e, 'a>,
    path: Vec<(TypeId, Member, String)>,
}

pub(super) fn run(
    ev: &Evaluator<'_>,
    ty: TypeId,
    id: &str,
    member: Member,
) -> Result<ExpandNode, EvalError> {
    let mut expander = Expander {
        ev,
        rules: RuleRunner::new(ev),
        path: Vec::new(),
    };
    Ok(expander.member(ty, id, member))
}

impl Expander<'_, '_> {
    fn entity_ref(&self, ty: TypeId, id: &str) -> EntityRef {
        EntityRef::new(self.ev.schema().entity_at(ty).name.clone(), id)
    }

    fn member(&mut self, ty: TypeId, id: &str, member: Member) -> ExpandNode {
        let ev = self.ev;
        let def = ev.schema().entity_at(ty);
        let entity = self.entity_ref(ty, id);
        let permission = def.member_name(member).to_string();
        let key = (ty, member, id.to_string());
        if self.path.contains(&key) || self.path.len() >= MAX_EXPAND_DEPTH {
            return ExpandNode::Operation {
                entity,
                permission,
                op: ExpandOp::Union,
                children: Vec::new(),
            };
        }
        self.path.push(key);
        let node = match member {
            Member::Relation(rel) => {
                let mut subjects = Vec::new();
                if let Some(e) = ev.snapshot.number(&def.name, id) {
                    for slot in ev.model.plan.slots(ty, rel) {
                        let Some(found) = ev.store(slot).and_then(|s| s.subjects_of(e)) else {
                            continue;
                        };
                        let subject_type = &slot.key.subject_type;
                        for name in ev.snapshot.interner().names(subject_type, found.iter()) {
                            subjects.push(SubjectRef::new(
                                subject_type.to_string(),
                                name,
                                slot.key.subject_relation.as_deref().map(str::to_string),
                            ));
                        }
                    }
                }
                ExpandNode::Subjects {
                    entity,
                    permission,
                    subjects,
                }
            }
            Member::Permission(p) => {
                let expr = &def.permissions[p].expr;
                self.expr(ty, id, expr, &permission)
            }
            Member::Attribute(a) => {
                let value = ev.model.plan.attr_key(ty, a).is_some_and(|k| {
                    ev.snapshot.number(&def.name, id).is_some_and(|e| {
                        ev.snapshot
                            .attribute(k)
                            .is_some_and(|c| c.trues().contains(e))
                    })
                });
                ExpandNode::Value {
                    entity,
                    permission,
                    value,
                }
            }
        };
        self.path.pop();
        node
    }

    fn expr(&mut self, ty: TypeId, id: &str, expr: &Expr, permission: &str) -> ExpandNode {
        let ev = self.ev;
        let entity = self.entity_ref(ty, id);
        let op = |op, children| ExpandNode::Operation {
            entity: entity.clone(),
            permission: permission.to_string(),
            op,
            children,
        };
        match expr {
            Expr::Union(children) => op(
                ExpandOp::Union,
                children
                    .iter()
                    .map(|c| self.expr(ty, id, c, permission))
                    .collect(),
            ),
            Expr::Intersect(children) => op(
                ExpandOp::Intersection,
                children
                    .iter()
                    .map(|c| self.expr(ty, id, c, permission))
                    .collect(),
            ),
            Expr::Exclude(a, b) => op(
                ExpandOp::Exclusion,
                vec![
                    self.expr(ty, id, a, permission),
                    self.expr(ty, id, b, permission),
                ],
            ),
            Expr::Relation(r) => self.member(ty, id, Member::Relation(*r)),
            Expr::Permission(p) => self.member(ty, id, Member::Permission(*p)),
            Expr::Attribute(a) => self.member(ty, id, Member::Attribute(*a)),
            Expr::Arrow { via, targets } => {
                let def = ev.schema().entity_at(ty);
                let mut children = Vec::new();
                if let Some(e) = ev.snapshot.number(&def.name, id) {
                    for slot in ev.model.plan.slots(ty, *via) {
                        let Some(found) = ev.store(slot).and_then(|s| s.subjects_of(e)) else {
                            continue;
                        };
                        let names = ev
                            .snapshot
                            .interner()
                            .names(&slot.key.subject_type, found.iter());
                        for (target_ty, target) in targets {
                            if *target_ty != slot.subject_type {
                                continue;
                            }
                            for name in &names {
                                let target_name = target_label(ev, *target_ty, target);
                                children.push(self.expr(*target_ty, name, target, &target_name));
                            }
                        }
                    }
                }
                op(ExpandOp::Union, children)
            }
            Expr::Call { rule, args } => {
                let number = ev.snapshot.number(&ev.schema().entity_at(ty).name, id);
                let value = self.rules.eval(ty, number, *rule, args).unwrap_or(false);
                ExpandNode::Value {
                    entity,
                    permission: permission.to_string(),
                    value,
                }
            }
        }
    }
}

/// The name to show for an arrow's target expression.
fn target_label(ev: &Evaluator<'_>, ty: TypeId, target: &Expr) -> String {
    let def = ev.schema().entity_at(ty);
    match target {
        Expr::Relation(r) => def.relations[*r].name.clone(),
        Expr::Permission(p) => def.permissions[*p].name.clone(),
        Expr::Attribute(a) => def.attributes[*a].name.clone(),
        _ => String::new(),
    }
}
