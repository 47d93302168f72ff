//! Which stored data a permission can depend on: the relations and attributes reachable from
//! it through the schema. A cache entry for a permission stays valid across writes that touch
//! none of them.
//!
//! INVARIANT: `dependencies(t, m)` is a superset of every (entity type, relation or attribute)
//! whose stored tuples or values the evaluators read while evaluating `m` on type `t`.

use std::collections::{BTreeSet, HashSet};

use crate::schema::{CallArg, Expr, Member, Schema, TypeId};

/// A piece of stored data: the tuples of one relation (any subject) or the values of one
/// attribute, of one entity type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataKey {
    pub entity_type: String,
    /// A relation or attribute name.
    pub name: String,
}

/// Every data key that evaluating `member` on entity type `ty` may read.
pub fn dependencies(schema: &Schema, ty: TypeId, member: Member) -> BTreeSet<DataKey> {
    let mut out = BTreeSet::new();
    let mut seen: HashSet<(TypeId, Member)> = HashSet::new();
    let mut stack = vec![(ty, member)];
    while let Some((t, m)) = stack.pop() {
        if !seen.insert((t, m)) {
            continue;
        }
        let def = schema.entity_at(t);
        match m {
            Member::Relation(r) => {
                let relation = &def.relations[r];
                out.insert(DataKey {
                    entity_type: def.name.clone(),
                    name: relation.name.clone(),
                });
                for allowed in &relation.allowed {
                    if let Some(sub) = &allowed.relation
                        && let Some(sub_member) = schema.entity_at(allowed.entity).member(sub)
                    {
                        stack.push((allowed.entity, sub_member));
                    }
                }
            }
            Member::Attribute(a) => {
                out.insert(DataKey {
                    entity_type: def.name.clone(),
                    name: def.attributes[a].name.clone(),
                });
            }
            Member::Permission(p) => {
                let mut exprs = vec![(t, &def.permissions[p].expr)];
                while let Some((et, expr)) = exprs.pop() {
                    let edef = schema.entity_at(et);
                    match expr {
                        Expr::Union(c) | Expr::Intersect(c) => {
                            exprs.extend(c.iter().map(|e| (et, e)));
                        }
                        Expr::Exclude(a, b) => {
                            exprs.push((et, a));
                            exprs.push((et, b));
                        }
                        Expr::Relation(r) => stack.push((et, Member::Relation(*r))),
                        Expr::Permission(q) => stack.push((et, Member::Permission(*q))),
                        Expr::Attribute(a) => stack.push((et, Member::Attribute(*a))),
                        Expr::Arrow { via, targets } => {
                            out.insert(DataKey {
                                entity_type: edef.name.clone(),
                                name: edef.relations[*via].name.clone(),
                            });
                            exprs.extend(targets.iter().map(|(tt, e)| (*tt, e)));
                        }
                        Expr::Call { args, .. } => {
                            for arg in args {
                                if let CallArg::Attribute(a) = arg {
                                    stack.push((et, Member::Attribute(*a)));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Whether some member can depend on itself through the excluded side of a `not` (following
/// subject sets and arrows, so through data). There a check's walk and a lookup's fixpoint
/// may answer differently; everywhere else they agree. Conservative: any member used under
/// an excluded side that can reach back counts.
pub fn has_negation_cycle(schema: &Schema) -> bool {
    type Node = (TypeId, Member);
    /// The members `expr` uses directly, each with whether it is under an excluded side.
    fn uses(ty: TypeId, expr: &Expr, negated: bool, out: &mut Vec<(Node, bool)>) {
        match expr {
            Expr::Union(c) | Expr::Intersect(c) => {
                for e in c {
                    uses(ty, e, negated, out);
                }
            }
            Expr::Exclude(base, excluded) => {
                uses(ty, base, negated, out);
                uses(ty, excluded, true, out);
            }
            Expr::Relation(r) => out.push(((ty, Member::Relation(*r)), negated)),
            Expr::Permission(p) => out.push(((ty, Member::Permission(*p)), negated)),
            Expr::Attribute(_) | Expr::Call { .. } => {}
            Expr::Arrow { targets, .. } => {
                for (t, e) in targets {
                    uses(*t, e, negated, out);
                }
            }
        }
    }
    let next = |(t, m): Node| -> Vec<(Node, bool)> {
        let def = schema.entity_at(t);
        let mut out = Vec::new();
        match m {
            Member::Relation(r) => {
                for allowed in &def.relations[r].allowed {
                    if let Some(sub) = allowed
                        .relation
                        .as_deref()
                        .and_then(|sub| schema.entity_at(allowed.entity).member(sub))
                    {
                        out.push(((allowed.entity, sub), false));
                    }
                }
            }
            Member::Permission(p) => uses(t, &def.permissions[p].expr, false, &mut out),
            Member::Attribute(_) => {}
        }
        out
    };
    let reaches = |from: Node, to: Node| -> bool {
        let mut seen = HashSet::new();
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n) {
                stack.extend(next(n).into_iter().map(|(m, _)| m));
            }
        }
        false
    };
    schema.entities.iter().enumerate().any(|(t, def)| {
        (0..def.permissions.len()).any(|p| {
            let from = (t, Member::Permission(p));
            next(from)
                .into_iter()
                .any(|(to, negated)| negated && reaches(to, from))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::compile;

    #[test]
    fn negation_cycles_are_found_through_arrows_and_subject_sets() {
        let acyclic = compile(
            "entity user {}\n\
             entity group { relation member @user @group#member }\n\
             entity folder {\n relation parent @folder\n relation viewer @group#member\n \
             relation banned @user\n permission view = (viewer or parent.view) not banned\n}\n",
        )
        .unwrap();
        assert!(!has_negation_cycle(&acyclic));
        // `blocked` reaches back to `view` through the parent arrow, under the `not`.
        let through_arrow = compile(
            "entity user {}\n\
             entity folder {\n relation parent @folder\n relation viewer @user\n \
             permission blocked = parent.view\n permission view = viewer not blocked\n}\n",
        )
        .unwrap();
        assert!(has_negation_cycle(&through_arrow));
        // Through a subject set: `member` includes `team#allowed`, which excludes `member`.
        let through_subject_set = compile(
            "entity user {}\n\
             entity team {\n relation member @user @team#allowed\n relation owner @user\n \
             permission allowed = owner not member\n}\n",
        )
        .unwrap();
        assert!(has_negation_cycle(&through_subject_set));
    }

    #[test]
    fn follows_subject_sets_arrows_and_rules() {
        let schema = compile(
            r#"
            entity user {}
            entity group { relation member @user @group#member }
            entity folder {
                relation parent @folder
                relation viewer @group#member
                permission view = viewer or parent.view
            }
            entity doc {
                relation folder @folder
                relation banned @user
                relation editor @user
                attribute level integer
                permission view = (folder.view or ok(level)) not banned
                permission edit = editor
            }
            rule ok(level integer) { level > 2 }
            "#,
        )
        .unwrap();
        let (doc, def) = schema.entity("doc").unwrap();
        let view = def.member("view").unwrap();
        let names: Vec<String> = dependencies(&schema, doc, view)
            .into_iter()
            .map(|k| format!("{}#{}", k.entity_type, k.name))
            .collect();
        assert_eq!(
            names,
            vec![
                "doc#banned",
                "doc#folder",
                "doc#level",
                "folder#parent",
                "folder#viewer",
                "group#member"
            ]
        );
        let edit = def.member("edit").unwrap();
        assert_eq!(dependencies(&schema, doc, edit).len(), 1);
    }
}
