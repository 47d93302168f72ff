//! Printing a compiled [`Schema`] back to schema source.
//!
//! INVARIANT: printing round-trips: `compile(&print(&s))` yields a schema equal to `s` except
//! for spans (same entities, members, ids, subject types, expressions and rules). To keep ids
//! stable, entities and rules are printed in source order and the members of an entity in
//! their declaration order. Comments and layout are not kept; rules keep their CEL body
//! verbatim.
//!
//! Expressions print with the fewest parentheses that keep their shape: every operand that is
//! itself an `and`, `or` or `not` is parenthesized, so `a or b not c` prints as
//! `(a or b) not c`. A multi-hop arrow prints as its path `a.b.c`.

use std::collections::HashMap;

use super::ir::{CallArg, EntityDef, Expr, Member, RuleDef, Schema, Span, TypeId};

/// The whole schema as source text: entities and rules in source order, one blank line apart.
pub fn print(schema: &Schema) -> String {
    print_edited(schema, &HashMap::new())
}

/// As [`print()`], with the members of the entities in `edited` replaced by the given
/// statements (for partial schema writes).
pub fn print_edited(schema: &Schema, edited: &HashMap<TypeId, Vec<String>>) -> String {
    enum Decl<'s> {
        Entity(TypeId),
        Rule(&'s RuleDef),
    }
    let mut decls: Vec<(Span, Decl<'_>)> = schema
        .entities
        .iter()
        .enumerate()
        .map(|(ty, e)| (e.span, Decl::Entity(ty)))
        .chain(schema.rules.iter().map(|r| (r.span, Decl::Rule(r))))
        .collect();
    decls.sort_by_key(|(span, _)| (span.line, span.column));
    let blocks: Vec<String> = decls
        .iter()
        .map(|(_, decl)| match decl {
            Decl::Entity(ty) => {
                let name = &schema.entity_at(*ty).name;
                match edited.get(ty) {
                    Some(statements) => entity_block(name, statements),
                    None => {
                        let statements: Vec<String> = member_statements(schema, *ty)
                            .into_iter()
                            .map(|(_, statement)| statement)
                            .collect();
                        entity_block(name, &statements)
                    }
                }
            }
            Decl::Rule(rule) => rule_block(rule),
        })
        .collect();
    blocks.join("\n")
}

/// `entity NAME { ... }` with one statement a line, ending in a newline.
pub fn entity_block(name: &str, statements: &[String]) -> String {
    if statements.is_empty() {
        return format!("entity {name} {{}}\n");
    }
    let mut out = format!("entity {name} {{\n");
    for statement in statements {
        out.push_str("    ");
        out.push_str(statement);
        out.push('\n');
    }
    out.push_str("}\n");
    out
}

/// `rule NAME(PARAM TYPE, ...) { BODY }` with the body verbatim, ending in a newline.
pub fn rule_block(rule: &RuleDef) -> String {
    let params: Vec<String> = rule
        .params
        .iter()
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect();
    format!(
        "rule {}({}) {{{}}}\n",
        rule.name,
        params.join(", "),
        rule.body
    )
}

/// The members of entity `ty` in declaration order, each as `(name, statement)`:
/// `relation owner @user @team#member`, `attribute public boolean`,
/// `permission view = owner or public`, `action edit = owner`.
pub fn member_statements(schema: &Schema, ty: TypeId) -> Vec<(String, String)> {
    let Some(entity) = schema.entities.get(ty) else {
        return Vec::new();
    };
    let mut members: Vec<(Span, Member)> = Vec::new();
    members.extend(
        entity
            .relations
            .iter()
            .enumerate()
            .map(|(id, r)| (r.span, Member::Relation(id))),
    );
    members.extend(
        entity
            .attributes
            .iter()
            .enumerate()
            .map(|(id, a)| (a.span, Member::Attribute(id))),
    );
    members.extend(
        entity
            .permissions
            .iter()
            .enumerate()
            .map(|(id, p)| (p.span, Member::Permission(id))),
    );
    members.sort_by_key(|(span, _)| (span.line, span.column));
    members
        .into_iter()
        .filter_map(|(_, member)| {
            let statement = member_statement(schema, ty, entity, member)?;
            Some((entity.member_name(member).to_string(), statement))
        })
        .collect()
}

fn member_statement(
    schema: &Schema,
    ty: TypeId,
    entity: &EntityDef,
    member: Member,
) -> Option<String> {
    match member {
        Member::Relation(id) => {
            let relation = entity.relations.get(id)?;
            let subjects: Vec<String> = relation
                .allowed
                .iter()
                .filter_map(|a| {
                    let name = &schema.entities.get(a.entity)?.name;
                    Some(match &a.relation {
                        Some(rel) => format!("@{name}#{rel}"),
                        None => format!("@{name}"),
                    })
                })
                .collect();
            Some(format!("relation {} {}", relation.name, subjects.join(" ")))
        }
        Member::Attribute(id) => {
            let attribute = entity.attributes.get(id)?;
            Some(format!("attribute {} {}", attribute.name, attribute.ty))
        }
        Member::Permission(id) => {
            let permission = entity.permissions.get(id)?;
            let keyword = if permission.is_action {
                "action"
            } else {
                "permission"
            };
            Some(format!(
                "{keyword} {} = {}",
                permission.name,
                expr(schema, ty, &permission.expr)
            ))
        }
    }
}

/// An expression of entity `ty` as source text.
pub fn expr(schema: &Schema, ty: TypeId, e: &Expr) -> String {
    match e {
        Expr::Union(children) => chain(schema, ty, children, " or "),
        Expr::Intersect(children) => chain(schema, ty, children, " and "),
        Expr::Exclude(base, excluded) => format!(
            "{} not {}",
            operand(schema, ty, base),
            operand(schema, ty, excluded)
        ),
        Expr::Relation(_) | Expr::Permission(_) | Expr::Attribute(_) | Expr::Arrow { .. } => {
            path(schema, ty, e)
        }
        Expr::Call { rule, args } => {
            let name = schema.rules.get(*rule).map_or("", |r| r.name.as_str());
            let entity = schema.entities.get(ty);
            let args: Vec<String> = args
                .iter()
                .map(|arg| match arg {
                    CallArg::Attribute(id) => entity
                        .and_then(|e| e.attributes.get(*id))
                        .map(|a| a.name.clone())
                        .unwrap_or_default(),
                    CallArg::Context(key) => format!("request.{key}"),
                })
                .collect();
            format!("{name}({})", args.join(", "))
        }
    }
}

/// The name path of a leaf or an arrow: `owner`, `parent.view`, `org.parent.admin`. An arrow
/// prints the rest of its path from its first target type: every target compiles the same
/// names, only relative to a different type.
pub fn path(schema: &Schema, ty: TypeId, e: &Expr) -> String {
    let Some(entity) = schema.entities.get(ty) else {
        return String::new();
    };
    let name = |member: Member| -> String {
        let exists = match member {
            Member::Relation(id) => id < entity.relations.len(),
            Member::Permission(id) => id < entity.permissions.len(),
            Member::Attribute(id) => id < entity.attributes.len(),
        };
        if exists {
            entity.member_name(member).to_string()
        } else {
            String::new()
        }
    };
    match e {
        Expr::Relation(id) => name(Member::Relation(*id)),
        Expr::Permission(id) => name(Member::Permission(*id)),
        Expr::Attribute(id) => name(Member::Attribute(*id)),
        Expr::Arrow { via, targets } => {
            let head = name(Member::Relation(*via));
            match targets.first() {
                Some((target, rest)) => format!("{head}.{}", path(schema, *target, rest)),
                None => head,
            }
        }
        other => expr(schema, ty, other),
    }
}

fn chain(schema: &Schema, ty: TypeId, children: &[Expr], op: &str) -> String {
    children
        .iter()
        .map(|c| operand(schema, ty, c))
        .collect::<Vec<_>>()
        .join(op)
}

/// An operand of an operator: parenthesized when it is itself an operator.
fn operand(schema: &Schema, ty: TypeId, e: &Expr) -> String {
    match e {
        Expr::Union(_) | Expr::Intersect(_) | Expr::Exclude(..) => {
            format!("({})", expr(schema, ty, e))
        }
        _ => expr(schema, ty, e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::compile;
    use super::super::ir::Schema;
    use super::print;
    use crate::schema::tests::shapes::PERMIFY_SHAPES;

    /// Asserts two schemas are equal except for spans.
    fn assert_same(a: &Schema, b: &Schema, what: &str) {
        assert_eq!(a.entity_index, b.entity_index, "{what}: entity index");
        assert_eq!(a.rule_index, b.rule_index, "{what}: rule index");
        assert_eq!(a.entities.len(), b.entities.len(), "{what}: entities");
        for (x, y) in a.entities.iter().zip(&b.entities) {
            let at = format!("{what}: entity `{}`", x.name);
            assert_eq!(x.name, y.name, "{at}");
            assert_eq!(x.members, y.members, "{at}: members");
            assert_eq!(x.relations.len(), y.relations.len(), "{at}: relations");
            for (r, s) in x.relations.iter().zip(&y.relations) {
                assert_eq!((&r.name, &r.allowed), (&s.name, &s.allowed), "{at}");
            }
            assert_eq!(x.attributes.len(), y.attributes.len(), "{at}: attributes");
            for (r, s) in x.attributes.iter().zip(&y.attributes) {
                assert_eq!((&r.name, r.ty), (&s.name, s.ty), "{at}");
            }
            assert_eq!(
                x.permissions.len(),
                y.permissions.len(),
                "{at}: permissions"
            );
            for (p, q) in x.permissions.iter().zip(&y.permissions) {
                assert_eq!(
                    (&p.name, p.is_action, &p.expr),
                    (&q.name, q.is_action, &q.expr),
                    "{at}"
                );
            }
        }
        assert_eq!(a.rules.len(), b.rules.len(), "{what}: rules");
        for (r, s) in a.rules.iter().zip(&b.rules) {
            assert_eq!(
                (&r.name, &r.params, &r.body),
                (&s.name, &s.params, &s.body),
                "{what}: rule"
            );
        }
    }

    fn round_trip(name: &str, src: &str) -> String {
        let first = compile(src).unwrap_or_else(|e| panic!("{name}: {e}"));
        let printed = print(&first);
        let second = compile(&printed)
            .unwrap_or_else(|e| panic!("{name}: printed does not compile: {e}\n{printed}"));
        assert_same(&first, &second, name);
        assert_eq!(print(&second), printed, "{name}: printing is not stable");
        printed
    }

    #[test]
    fn permify_shapes_round_trip() {
        assert_eq!(PERMIFY_SHAPES.len(), 14);
        for (name, src) in PERMIFY_SHAPES {
            round_trip(name, src);
        }
    }

    #[test]
    fn operators_keep_their_shape() {
        let src = "entity user {}
entity doc {
    relation a @user
    relation b @user
    relation c @user
    permission p1 = a or b not c
    permission p2 = a or (b not c)
    permission p3 = a and (b or c) and a
    permission p4 = (a not b) not c
    permission p5 = a not (b not c)
    permission p6 = (a or b) and (b or c) or c
    permission p7 = ((a))
}
";
        let printed = round_trip("operators", src);
        assert!(
            printed.contains("permission p1 = (a or b) not c"),
            "{printed}"
        );
        assert!(
            printed.contains("permission p2 = a or (b not c)"),
            "{printed}"
        );
        assert!(
            printed.contains("permission p3 = a and (b or c) and a"),
            "{printed}"
        );
        assert!(
            printed.contains("permission p5 = a not (b not c)"),
            "{printed}"
        );
        assert!(printed.contains("permission p7 = a\n"), "{printed}");
    }

    #[test]
    fn arrows_rules_attributes_and_order_round_trip() {
        let src = "rule is_weekday(day string) {
    day != 'saturday' && day != 'sunday'
}
entity user {}
entity team {
    relation member @user
    permission view = member
}
entity org {
    relation team @team
    relation admin @user @team#member
    permission view = admin or team.view
}
entity doc {
    attribute public boolean
    relation org @org
    attribute day string
    relation owner @user
    action read = owner or public or org.team.member
    permission open = is_weekday(day) and read not org.admin
    permission legacy = is_weekday(request.day)
}
rule late(x integer) { x > 3 }
";
        let printed = round_trip("mixed", src);
        assert!(
            printed.starts_with("rule is_weekday(day string) {"),
            "{printed}"
        );
        assert!(
            printed.ends_with("rule late(x integer) { x > 3 }\n"),
            "{printed}"
        );
        assert!(
            printed.contains(
                "entity doc {\n    attribute public boolean\n    relation org @org\n    attribute day string\n"
            ),
            "{printed}"
        );
        assert!(
            printed.contains("relation admin @user @team#member"),
            "{printed}"
        );
        assert!(
            printed.contains("action read = owner or public or org.team.member"),
            "{printed}"
        );
        assert!(
            printed.contains("permission open = (is_weekday(day) and read) not org.admin"),
            "{printed}"
        );
        assert!(
            printed.contains("permission legacy = is_weekday(request.day)"),
            "{printed}"
        );
    }

    #[test]
    fn empty_schema_prints_empty() {
        assert_eq!(round_trip("empty", ""), "");
        assert_eq!(round_trip("one", "entity user {}"), "entity user {}\n");
    }
}
