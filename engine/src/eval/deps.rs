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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::compile;

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
