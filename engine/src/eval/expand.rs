//! Expand: the userset tree of a permission on one entity.
//!
//! Operators become nodes with children; a relation becomes a leaf listing its direct subjects
//! (subject sets unexpanded, as Permify shows them); an arrow becomes a union over the entities
//! it reaches, each expanded in turn; attributes and rules become leaves carrying their value.
//! A cycle in the data is cut where it closes (the repeated node is shown as an empty union).
//!
//! INVARIANT: a tree is either whole or not returned. Expand has no `depth` in Permify's
//! request, so the tree is bounded here: at most [`MAX_EXPAND_DEPTH`] nodes deep (a deeper
//! one is [`EvalError::DepthExhausted`]) and [`MAX_EXPAND_NODES`] nodes in all
//! ([`EvalError::TooLarge`]); a truncated tree would read as a denial where check allows.

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

/// The deepest expand tree answered, in nodes from the root. Every consumer of the tree
/// (the wire encoders, a client's decoder, its drop) recurses once per level, so the bound
/// keeps all of them shallow.
pub const MAX_EXPAND_DEPTH: usize = 128;

/// The most nodes an expand tree may have (arrows over data can fan out at every level).
pub const MAX_EXPAND_NODES: usize = 100_000;

struct Expander<'e, 'a> {
    ev: &'e Evaluator<'a>,
    rules: RuleRunner<'e, 'a>,
    path: Vec<(TypeId, Member, String)>,
    /// Nodes between the root and the node being built.
    depth: usize,
    /// Nodes built so far.
    nodes: usize,
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
        depth: 0,
        nodes: 0,
    };
    expander.member(ty, id, member)
}

impl Expander<'_, '_> {
    fn entity_ref(&self, ty: TypeId, id: &str) -> EntityRef {
        EntityRef::new(self.ev.schema().entity_at(ty).name.clone(), id)
    }

    /// Accounts for one more node, `depth` below the root.
    fn enter(&mut self) -> Result<(), EvalError> {
        self.nodes += 1;
        if self.nodes > MAX_EXPAND_NODES {
            return Err(EvalError::TooLarge(format!(
                "the expand tree has more than {MAX_EXPAND_NODES} nodes; \
                 ask a narrower question (lookup subject answers the same without the tree)"
            )));
        }
        if self.depth >= MAX_EXPAND_DEPTH {
            return Err(EvalError::DepthExhausted(MAX_EXPAND_DEPTH as u32));
        }
        if self.nodes.is_multiple_of(super::cancel::POLL_EVERY) {
            self.ev.cancelled()?;
        }
        Ok(())
    }

    fn member(&mut self, ty: TypeId, id: &str, member: Member) -> Result<ExpandNode, EvalError> {
        self.enter()?;
        self.depth += 1;
        let node = crate::stack::grow(|| self.member_node(ty, id, member));
        self.depth -= 1;
        node
    }

    fn member_node(
        &mut self,
        ty: TypeId,
        id: &str,
        member: Member,
    ) -> Result<ExpandNode, EvalError> {
        let ev = self.ev;
        let def = ev.schema().entity_at(ty);
        let entity = self.entity_ref(ty, id);
        let permission = def.member_name(member).to_string();
        let key = (ty, member, id.to_string());
        if self.path.contains(&key) {
            return Ok(ExpandNode::Operation {
                entity,
                permission,
                op: ExpandOp::Union,
                children: Vec::new(),
            });
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
                match self.expr(ty, id, expr, &permission) {
                    Ok(node) => node,
                    Err(e) => {
                        self.path.pop();
                        return Err(e);
                    }
                }
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
        Ok(node)
    }

    fn expr(
        &mut self,
        ty: TypeId,
        id: &str,
        expr: &Expr,
        permission: &str,
    ) -> Result<ExpandNode, EvalError> {
        if let Expr::Relation(_) | Expr::Permission(_) | Expr::Attribute(_) = expr {
            // A member counts its own node.
            return self.expr_node(ty, id, expr, permission);
        }
        self.enter()?;
        self.depth += 1;
        let node = crate::stack::grow(|| self.expr_node(ty, id, expr, permission));
        self.depth -= 1;
        node
    }

    fn expr_node(
        &mut self,
        ty: TypeId,
        id: &str,
        expr: &Expr,
        permission: &str,
    ) -> Result<ExpandNode, EvalError> {
        let ev = self.ev;
        let entity = self.entity_ref(ty, id);
        let op = |op, children| ExpandNode::Operation {
            entity: entity.clone(),
            permission: permission.to_string(),
            op,
            children,
        };
        Ok(match expr {
            Expr::Union(children) => op(
                ExpandOp::Union,
                children
                    .iter()
                    .map(|c| self.expr(ty, id, c, permission))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Intersect(children) => op(
                ExpandOp::Intersection,
                children
                    .iter()
                    .map(|c| self.expr(ty, id, c, permission))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Exclude(a, b) => op(
                ExpandOp::Exclusion,
                vec![
                    self.expr(ty, id, a, permission)?,
                    self.expr(ty, id, b, permission)?,
                ],
            ),
            Expr::Relation(r) => self.member(ty, id, Member::Relation(*r))?,
            Expr::Permission(p) => self.member(ty, id, Member::Permission(*p))?,
            Expr::Attribute(a) => self.member(ty, id, Member::Attribute(*a))?,
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
                                children.push(self.expr(*target_ty, name, target, &target_name)?);
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
        })
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
