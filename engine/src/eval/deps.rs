//! Which stored data an answer about a permission can depend on. A cache entry for a check or
//! a lookup entity of a permission stays valid across writes that touch none of it.
//!
//! Two kinds of data: the tuples of a relation or the values of an attribute (what the
//! schema reaches from the permission through subject sets, arrows, attributes and rule
//! arguments), and the *universe* of an entity type: which of its entities the stored data
//! mentions at all ([`crate::index::Snapshot::universe`]). A lookup runs a rule on every entity
//! of the universe of the rule's type, so its answer changes when a write makes an entity
//! appear or disappear there, whatever the write touched: a tuple naming the type as entity or
//! subject, or an attribute of the type. A rule fed only by the request's `context` reads no
//! stored data but its universe; the context is part of the question.
//!
//! INVARIANT: `dependencies(t, m)` is a superset of every relation and attribute whose stored
//! tuples or values a check or a lookup entity of `m` on type `t` reads, and of every type
//! whose universe it reads. A check reads through the lookup-entity plan twice: for the holders
//! of a subject set's member (`check::Checker::holders`) and in its fallback past the walk's
//! visit budget (`check::run`); both start from members this walk reaches (the subject set's
//! member through the relation's subject kinds, `m` itself), so the plan's universe reads are
//! named here too. Lookup subject reads more (the universe of the subject type, wherever an
//! attribute or a rule grants); see [`subject_dependencies`].

use std::collections::{BTreeSet, HashSet};

use crate::schema::{CallArg, Expr, Member, Schema, TypeId};

/// A piece of stored data an answer can depend on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataKey {
    /// The tuples of one relation (any subject) or the values of one attribute, of one entity
    /// type.
    Member { entity_type: String, name: String },
    /// Which entities of one type the data mentions: the entity types and subject types of
    /// every stored tuple and the entity types of every stored attribute.
    Universe { entity_type: String },
}

impl DataKey {
    /// The tuples of relation `name`, or the values of attribute `name`, of `entity_type`.
    pub fn member(entity_type: impl Into<String>, name: impl Into<String>) -> DataKey {
        DataKey::Member {
            entity_type: entity_type.into(),
            name: name.into(),
        }
    }

    /// The universe of `entity_type`.
    pub fn universe(entity_type: impl Into<String>) -> DataKey {
        DataKey::Universe {
            entity_type: entity_type.into(),
        }
    }
}

impl std::fmt::Display for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataKey::Member { entity_type, name } => write!(f, "{entity_type}#{name}"),
            DataKey::Universe { entity_type } => write!(f, "{entity_type}#*"),
        }
    }
}

/// Every data key that a check or a lookup entity of `member` on entity type `ty` may read.
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
                out.insert(DataKey::member(&def.name, &relation.name));
                for allowed in &relation.allowed {
                    if let Some(sub) = &allowed.relation
                        && let Some(sub_member) = schema.entity_at(allowed.entity).member(sub)
                    {
                        stack.push((allowed.entity, sub_member));
                    }
                }
            }
            Member::Attribute(a) => {
                out.insert(DataKey::member(&def.name, &def.attributes[a].name));
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
                            out.insert(DataKey::member(&edef.name, &edef.relations[*via].name));
                            exprs.extend(targets.iter().map(|(tt, e)| (*tt, e)));
                        }
                        Expr::Call { args, .. } => {
                            // The lookup plan runs a rule that no other branch narrowed on
                            // every entity of the universe of its type (the check's fallback
                            // too); a rule over `context` alone reads nothing else.
                            out.insert(DataKey::universe(&edef.name));
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

/// Every data key a lookup subject of `member` on `ty`, for subjects of type `subject_ty`,
/// may read: those of [`dependencies`], and the universe of the subject type wherever an
/// attribute or a rule can grant (an entity on which it holds grants every subject the data
/// mentions).
pub fn subject_dependencies(
    schema: &Schema,
    ty: TypeId,
    member: Member,
    subject_ty: TypeId,
) -> BTreeSet<DataKey> {
    let mut out = dependencies(schema, ty, member);
    let grants_universe = out.iter().any(|key| match key {
        DataKey::Universe { .. } => true,
        DataKey::Member { entity_type, name } => schema
            .entity(entity_type)
            .and_then(|(_, def)| def.member(name))
            .is_some_and(|m| matches!(m, Member::Attribute(_))),
    });
    if grants_universe {
        out.insert(DataKey::universe(&schema.entity_at(subject_ty).name));
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
    fn rules_over_the_context_alone_depend_on_their_types_universe() {
        let schema = compile(
            "entity user {}\n\
             entity item {\n relation owner @user\n attribute stock integer\n \
             permission out_of_stock = is_zero(stock)\n permission open = is_open()\n \
             permission owned = owner\n}\n\
             rule is_zero(stock integer) { stock == 0 }\n\
             rule is_open() { context.data.open == true }\n",
        )
        .unwrap();
        let (item, def) = schema.entity("item").unwrap();
        let names = |name: &str| -> Vec<String> {
            dependencies(&schema, item, def.member(name).unwrap())
                .into_iter()
                .map(|k| k.to_string())
                .collect()
        };
        assert_eq!(names("out_of_stock"), ["item#stock", "item#*"]);
        assert_eq!(names("open"), ["item#*"]);
        assert_eq!(names("owned"), ["item#owner"]);
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
            .map(|k| k.to_string())
            .collect();
        // The rule `ok` runs on every doc the data mentions: the universe of `doc` too.
        assert_eq!(
            names,
            vec![
                "doc#banned",
                "doc#folder",
                "doc#level",
                "folder#parent",
                "folder#viewer",
                "group#member",
                "doc#*",
            ]
        );
        let edit = def.member("edit").unwrap();
        assert_eq!(dependencies(&schema, doc, edit).len(), 1);
        // A lookup of users with `view` grants every user the data mentions where `ok` holds.
        let (user, _) = schema.entity("user").unwrap();
        let for_users: Vec<String> = subject_dependencies(&schema, doc, view, user)
            .into_iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(for_users.len(), names.len() + 1);
        assert!(for_users.contains(&"user#*".to_string()));
        assert_eq!(subject_dependencies(&schema, doc, edit, user).len(), 1);
    }
}
