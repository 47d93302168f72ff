//! End-to-end tests of the schema front end: source text in, [`Schema`] or [`SchemaError`] out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub(super) mod shapes;

use super::*;
use shapes::PERMIFY_SHAPES;

fn ok(src: &str) -> Schema {
    let schema = compile(src).unwrap_or_else(|e| {
        let shown: String = src.chars().take(2000).collect();
        panic!(
            "{}\n--- in ---\n{shown}",
            e.to_string().chars().take(500).collect::<String>()
        )
    });
    check_invariants(&schema);
    schema
}

fn err(src: &str) -> (SchemaErrorKind, String) {
    match compile(src) {
        Ok(_) => panic!(
            "compiled but should not:\n{}",
            src.chars().take(2000).collect::<String>()
        ),
        Err(e) => (e.kind, e.to_string()),
    }
}

/// The expression of permission `name` of entity `entity`.
fn perm<'s>(schema: &'s Schema, entity: &str, name: &str) -> &'s Expr {
    let (_, def) = schema.entity(entity).unwrap();
    match def.member(name) {
        Some(Member::Permission(id)) => &def.permissions[id].expr,
        other => panic!("`{name}` is {other:?}"),
    }
}

/// The invariants [`ir`] promises: ids in bounds, n-ary nodes with two or more children,
/// arrows with targets, calls with the rule's arity, `members` consistent with the vectors.
fn check_invariants(schema: &Schema) {
    fn expr(schema: &Schema, ty: TypeId, e: &Expr) {
        let def = &schema.entities[ty];
        match e {
            Expr::Union(children) | Expr::Intersect(children) => {
                assert!(children.len() >= 2, "{e:?}");
                for child in children {
                    assert!(
                        !matches!(
                            (e, child),
                            (Expr::Union(_), Expr::Union(_))
                                | (Expr::Intersect(_), Expr::Intersect(_))
                        ),
                        "not flattened: {e:?}"
                    );
                    expr(schema, ty, child);
                }
            }
            Expr::Exclude(a, b) => {
                expr(schema, ty, a);
                expr(schema, ty, b);
            }
            Expr::Relation(id) => assert!(*id < def.relations.len()),
            Expr::Permission(id) => assert!(*id < def.permissions.len()),
            Expr::Attribute(id) => assert_eq!(def.attributes[*id].ty, AttrType::Boolean),
            Expr::Arrow { via, targets } => {
                let allowed = &def.relations[*via].allowed;
                assert!(!targets.is_empty());
                for (i, (target, e)) in targets.iter().enumerate() {
                    assert!(allowed.iter().any(|s| s.entity == *target));
                    assert!(targets[..i].iter().all(|(t, _)| t != target), "duplicate");
                    expr(schema, *target, e);
                }
            }
            Expr::Call { rule, args } => {
                let rule = &schema.rules[*rule];
                assert_eq!(rule.params.len(), args.len());
                for (arg, (_, ty)) in args.iter().zip(&rule.params) {
                    if let CallArg::Attribute(id) = arg {
                        assert_eq!(def.attributes[*id].ty, *ty);
                    }
                }
            }
        }
    }
    assert_eq!(schema.entity_index.len(), schema.entities.len());
    assert_eq!(schema.rule_index.len(), schema.rules.len());
    for (ty, def) in schema.entities.iter().enumerate() {
        assert_eq!(schema.entity_index[&def.name], ty);
        let count = def.relations.len() + def.permissions.len() + def.attributes.len();
        assert_eq!(def.members.len(), count);
        for (name, &member) in &def.members {
            assert_eq!(def.member_name(member), name);
        }
        for relation in &def.relations {
            assert!(!relation.allowed.is_empty());
            for subject in &relation.allowed {
                let target = &schema.entities[subject.entity];
                if let Some(rel) = &subject.relation {
                    assert!(matches!(
                        target.member(rel),
                        Some(Member::Relation(_) | Member::Permission(_))
                    ));
                }
            }
        }
        for p in &def.permissions {
            expr(schema, ty, &p.expr);
        }
    }
    for (id, rule) in schema.rules.iter().enumerate() {
        assert_eq!(schema.rule_index[&rule.name], id);
    }
}

const R: fn(RelId) -> Expr = Expr::Relation;

/// `entity e` with relations `a`, `b`, `c`, `d` (ids 0..4) and `permission p = {expr}`.
fn abcd(expr: &str) -> Expr {
    let src = format!(
        "entity e {{\n relation a @e\n relation b @e\n relation c @e\n relation d @e\n permission p = {expr}\n}}"
    );
    let schema = ok(&src);
    perm(&schema, "e", "p").clone()
}

#[test]
fn program_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<cel::Program>();
    assert_send_sync::<Schema>();
}

#[test]
fn empty_schemas() {
    let schema = ok("");
    assert!(schema.entities.is_empty() && schema.rules.is_empty());
    let schema = ok("  // just a comment\n");
    assert!(schema.entities.is_empty());
    let schema = ok("entity user {}");
    assert_eq!(schema.entities.len(), 1);
    assert_eq!(
        schema.entity("user").unwrap().1.span,
        Span { line: 1, column: 8 }
    );
}

#[test]
fn line_endings_and_byte_order_mark() {
    let schema = ok("\u{feff}entity user {}\r\nentity doc {\r\n\trelation owner @user\r\n}\r\n");
    let (_, doc) = schema.entity("doc").unwrap();
    assert_eq!(doc.span, Span { line: 2, column: 8 });
    assert_eq!(
        doc.relations[0].span,
        Span {
            line: 3,
            column: 11
        }
    );
    let (_, message) = err("\u{feff}entity doc {\r\n  relation owner @nobody\r\n}");
    assert_eq!(message, "2:19: undefined entity `nobody`");
}

#[test]
fn nesting_at_the_limit_compiles() {
    let src = format!(
        "entity a {{\n relation r @a\n permission p = {}r or r{}\n}}",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    let schema = ok(&src);
    assert_eq!(perm(&schema, "a", "p"), &Expr::Union(vec![R(0), R(0)]));
    // Alternating operators inside every parenthesis: deep in the IR too, so refused.
    let src = format!(
        "entity a {{\n relation r @a\n permission p = {}r{}\n}}",
        "(r not ".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    let e = compile(&src).unwrap_err();
    assert_eq!(e.kind, SchemaErrorKind::TooDeep);
    assert!(e.message.contains("nests deeper than 256 levels"), "{e}");
}

#[test]
fn precedence_is_one_level_left_to_right() {
    let ex = |a: Expr, b: Expr| Expr::Exclude(Box::new(a), Box::new(b));
    assert_eq!(
        abcd("a or b not c"),
        ex(Expr::Union(vec![R(0), R(1)]), R(2))
    );
    assert_eq!(
        abcd("a and b or c"),
        Expr::Union(vec![Expr::Intersect(vec![R(0), R(1)]), R(2)])
    );
    assert_eq!(
        abcd("a not b and c"),
        Expr::Intersect(vec![ex(R(0), R(1)), R(2)])
    );
    assert_eq!(abcd("a not b not c"), ex(ex(R(0), R(1)), R(2)));
}

#[test]
fn parentheses_group() {
    let ex = |a: Expr, b: Expr| Expr::Exclude(Box::new(a), Box::new(b));
    assert_eq!(
        abcd("a or (b not c)"),
        Expr::Union(vec![R(0), ex(R(1), R(2))])
    );
    assert_eq!(
        abcd("a and (b or c)"),
        Expr::Intersect(vec![R(0), Expr::Union(vec![R(1), R(2)])])
    );
    assert_eq!(abcd("((a))"), R(0));
    assert_eq!(abcd("a not (b not c)"), ex(R(0), ex(R(1), R(2))));
}

#[test]
fn chains_flatten() {
    let union = Expr::Union(vec![R(0), R(1), R(2)]);
    assert_eq!(abcd("a or b or c"), union);
    assert_eq!(abcd("(a or b) or c"), union);
    assert_eq!(abcd("a or (b or c)"), union);
    assert_eq!(
        abcd("(a or b) or (c or d)"),
        Expr::Union(vec![R(0), R(1), R(2), R(3)])
    );
    assert_eq!(
        abcd("a and b and c"),
        Expr::Intersect(vec![R(0), R(1), R(2)])
    );
    assert_eq!(
        abcd("a and (b and c)"),
        Expr::Intersect(vec![R(0), R(1), R(2)])
    );
    assert_eq!(
        abcd("a or b and c or d"),
        Expr::Union(vec![
            Expr::Intersect(vec![Expr::Union(vec![R(0), R(1)]), R(2)]),
            R(3)
        ])
    );
}

#[test]
fn multi_line_expressions_and_comments() {
    let expr = abcd("a or\n    // why\n    b /* and */\n  not (\n c\n  and d\n )");
    assert_eq!(
        expr,
        Expr::Exclude(
            Box::new(Expr::Union(vec![R(0), R(1)])),
            Box::new(Expr::Intersect(vec![R(2), R(3)]))
        )
    );
}

#[test]
fn members_resolve_and_forward_references_work() {
    let schema = ok("
        entity doc {
            permission view = edit or viewer or public or parent.view
            permission edit = owner
            relation parent @folder
            relation owner @user
            relation viewer @user @group#member
            attribute public boolean
        }
        entity folder {
            relation owner @user
            permission view = owner
        }
        entity group { relation member @user }
        entity user {}
    ");
    let (doc_ty, doc) = schema.entity("doc").unwrap();
    let (folder_ty, _) = schema.entity("folder").unwrap();
    let (group_ty, _) = schema.entity("group").unwrap();
    let (user_ty, _) = schema.entity("user").unwrap();
    assert_eq!(doc_ty, 0);
    assert_eq!(doc.relations[2].name, "viewer");
    assert_eq!(
        doc.relations[2].allowed,
        vec![
            AllowedSubject {
                entity: user_ty,
                relation: None
            },
            AllowedSubject {
                entity: group_ty,
                relation: Some("member".to_string())
            },
        ]
    );
    assert_eq!(
        doc.relations[2].span,
        Span {
            line: 7,
            column: 22
        }
    );
    assert_eq!(
        doc.permissions[0].span,
        Span {
            line: 3,
            column: 24
        }
    );
    assert!(!doc.permissions[0].is_action);
    assert_eq!(
        perm(&schema, "doc", "view"),
        &Expr::Union(vec![
            Expr::Permission(1),
            Expr::Relation(2),
            Expr::Attribute(0),
            Expr::Arrow {
                via: 0,
                targets: vec![(folder_ty, Expr::Permission(0))]
            },
        ])
    );
}

#[test]
fn arrows_skip_types_without_the_member_and_dedupe_types() {
    let schema = ok("
        entity user {}
        entity team { relation member @user }
        entity org { relation admin @user  relation member @user }
        entity project {
            relation owner @user @team @org @team#member @org#admin
            permission view = owner.member
            permission manage = owner.admin
        }
    ");
    let team = schema.entity("team").unwrap().0;
    let org = schema.entity("org").unwrap().0;
    assert_eq!(
        perm(&schema, "project", "view"),
        &Expr::Arrow {
            via: 0,
            targets: vec![(team, Expr::Relation(0)), (org, Expr::Relation(1))]
        }
    );
    assert_eq!(
        perm(&schema, "project", "manage"),
        &Expr::Arrow {
            via: 0,
            targets: vec![(org, Expr::Relation(0))]
        }
    );
}

#[test]
fn multi_hop_arrows_nest() {
    let schema = ok("
        entity user {}
        entity org { relation admin @user }
        entity team { relation org @org  permission admin = org.admin }
        entity doc {
            relation team @team
            permission a = team.org.admin
            permission b = team.admin
        }
    ");
    let org = schema.entity("org").unwrap().0;
    let team = schema.entity("team").unwrap().0;
    assert_eq!(
        perm(&schema, "doc", "a"),
        &Expr::Arrow {
            via: 0,
            targets: vec![(
                team,
                Expr::Arrow {
                    via: 0,
                    targets: vec![(org, Expr::Relation(0))]
                }
            )]
        }
    );
    assert_eq!(
        perm(&schema, "doc", "b"),
        &Expr::Arrow {
            via: 0,
            targets: vec![(team, Expr::Permission(0))]
        }
    );
}

#[test]
fn recursion_through_arrows_is_fine() {
    let schema = ok("
        entity user {}
        entity folder {
            relation parent @folder
            relation owner @user
            permission view = owner or parent.view
            permission edit = view and parent.edit
        }
    ");
    assert_eq!(
        perm(&schema, "folder", "view"),
        &Expr::Union(vec![
            Expr::Relation(1),
            Expr::Arrow {
                via: 0,
                targets: vec![(1, Expr::Permission(0))]
            }
        ])
    );
}

#[test]
fn rules_and_calls() {
    let schema = ok("
        entity account {
            attribute balance double
            attribute regions string[]
            action withdraw = check(balance, request.amount) and in_region(regions)
        }
        rule check(balance double, amount double) {
            balance >= amount && {'}': \"{\"}['}'] == '{'
        }
        rule in_region(regions string[]) { context.data.region in regions }
    ");
    assert_eq!(schema.rules.len(), 2);
    let (check_id, check) = schema.rule("check").unwrap();
    assert_eq!(
        check.span,
        Span {
            line: 7,
            column: 14
        }
    );
    assert_eq!(
        check.params,
        vec![
            ("balance".to_string(), AttrType::Double),
            ("amount".to_string(), AttrType::Double)
        ]
    );
    assert_eq!(
        check.body,
        "\n            balance >= amount && {'}': \"{\"}['}'] == '{'\n        "
    );
    let (region_id, region) = schema.rule("in_region").unwrap();
    assert_eq!(region.body, " context.data.region in regions ");
    let account = schema.entity("account").unwrap().1;
    assert!(account.permissions[0].is_action);
    assert_eq!(
        perm(&schema, "account", "withdraw"),
        &Expr::Intersect(vec![
            Expr::Call {
                rule: check_id,
                args: vec![
                    CallArg::Attribute(0),
                    CallArg::Context("amount".to_string())
                ]
            },
            Expr::Call {
                rule: region_id,
                args: vec![CallArg::Attribute(1)]
            },
        ])
    );
    // The program runs.
    let mut context = cel::Context::default();
    context.add_variable_from_value("balance", 10.0);
    context.add_variable_from_value("amount", 5.0);
    assert_eq!(check.program.execute(&context), Ok(cel::Value::Bool(true)));
}

#[test]
fn every_error_kind_has_a_position() {
    use SchemaErrorKind::*;
    let cases: &[(&str, SchemaErrorKind, &str)] = &[
        (
            "entity a {\n  relation }",
            Syntax,
            "2:12: expected a relation name, found `}`",
        ),
        ("entity a {} %", Syntax, "1:13: unexpected character `%`"),
        (
            "entity doc {\n  relation owner @usr\n}",
            UndefinedEntity,
            "2:19: undefined entity `usr`",
        ),
        (
            "entity user {}\nentity doc {\n  relation owner @user#nope\n}",
            UndefinedMember,
            "3:24: undefined relation or permission `nope` in entity `user`",
        ),
        (
            "entity doc {\n  permission view = foo\n}",
            UndefinedMember,
            "2:21: undefined relation or permission `foo` in entity `doc`",
        ),
        (
            "entity doc {\n  permission view = parent.view\n}",
            UndefinedMember,
            "2:21: undefined relation `parent` in entity `doc`",
        ),
        (
            "entity user {}\nentity doc {\n  relation parent @user\n  permission view = parent.view\n}",
            UndefinedMember,
            "4:28: undefined relation or permission `view` in the subject types of `doc.parent`",
        ),
        (
            "entity doc {\n  permission view = r(x)\n}\nrule r(x integer) { x > 1 }",
            UndefinedMember,
            "2:23: undefined attribute `x` in entity `doc`",
        ),
        (
            "entity doc {\n  relation x @doc\n  permission view = r(x)\n}\nrule r(x integer) { x > 1 }",
            UndefinedMember,
            "3:23: `x` is a relation of entity `doc`, rule arguments must be attributes",
        ),
        (
            "entity doc {\n  permission view = nope()\n}",
            UndefinedRule,
            "2:21: undefined rule `nope`",
        ),
        (
            "entity a {}\nentity a {}",
            DuplicateName,
            "2:8: duplicate entity `a` (first declared at 1:8)",
        ),
        (
            "rule r() { true }\nrule r() { false }",
            DuplicateName,
            "2:6: duplicate rule `r` (first declared at 1:6)",
        ),
        (
            "entity a {\n  relation x @a\n  permission x = x\n}",
            DuplicateName,
            "3:14: duplicate name `x` in entity `a` (first declared at 2:12)",
        ),
        (
            "entity a {\n  attribute x boolean\n  relation x @a\n}",
            DuplicateName,
            "3:12: duplicate name `x` in entity `a` (first declared at 2:13)",
        ),
        (
            "rule r(a integer, a string) { true }",
            DuplicateName,
            "1:19: duplicate parameter `a` in rule `r` (first declared at 1:8)",
        ),
        (
            "entity doc {\n  attribute x integer\n  permission view = r(x)\n}\nrule r(a integer, b integer) { a > b }",
            RuleArgumentCount,
            "3:21: rule `r` takes 2 arguments, got 1",
        ),
        (
            "entity doc {\n  attribute x integer\n  permission view = r(x, x)\n}\nrule r(a integer) { a > 1 }",
            RuleArgumentCount,
            "3:21: rule `r` takes 1 argument, got 2",
        ),
        (
            "entity doc {\n  attribute x double\n  permission view = r(x)\n}\nrule r(a integer) { a > 1 }",
            RuleArgumentType,
            "3:23: attribute `x` is `double` but parameter `a` of rule `r` is `integer`",
        ),
        (
            "entity doc {\n  attribute x string\n  permission view = r(request.y, x)\n}\nrule r(a integer, b string[]) { a > 1 }",
            RuleArgumentType,
            "3:34: attribute `x` is `string` but parameter `b` of rule `r` is `string[]`",
        ),
        (
            "entity doc {\n  relation x @doc\n  permission a = b\n  permission b = a or x\n}",
            SelfReference,
            "3:14: permission `a` references itself: `a` -> `b` -> `a`",
        ),
        (
            "entity doc {\n  action a = a\n}",
            SelfReference,
            "2:10: action `a` references itself: `a` -> `a`",
        ),
        (
            "entity doc {\n  relation x @doc\n  permission a = x\n  permission b = x and (c not a)\n  permission c = x or x.a or (a and b)\n}",
            SelfReference,
            "4:14: permission `b` references itself: `b` -> `c` -> `b`",
        ),
        (
            "entity doc {\n  relation x @doc\n  permission a = not x\n}",
            Unsupported,
            "3:18: unary `not` is not supported, write `a not b` to exclude `b` from `a`",
        ),
        (
            "entity doc {\n  attribute n integer\n  permission a = n\n}",
            Unsupported,
            "3:18: attribute `n` of entity `doc` is `integer`, only `boolean` attributes can be used as conditions",
        ),
        (
            "entity doc {\n  relation x @doc\n  permission p = x\n  permission a = p.x\n}",
            Unsupported,
            "4:18: `p` is a permission of entity `doc`, only relations can be followed with `.`",
        ),
        (
            "entity doc {\n  relation parent @doc\n  attribute public boolean\n  permission a = parent.public\n}",
            Unsupported,
            "4:25: `public` is an attribute of entity `doc`, arrows can only reach relations and permissions",
        ),
        (
            "rule r() { a + }",
            InvalidRule,
            "1:12: invalid cel in rule `r`: syntax error: mismatched input '<EOF>' expecting",
        ),
        (
            "rule r(x integer) {\n  x >\n}",
            InvalidRule,
            "2:3: invalid cel in rule `r`: syntax error: mismatched input '<EOF>' expecting",
        ),
        (
            "rule r() {}",
            InvalidRule,
            "1:11: invalid cel in rule `r`: syntax error",
        ),
    ];
    for (src, kind, want) in cases {
        let (got_kind, got) = err(src);
        assert!(
            got_kind == *kind && got.starts_with(want),
            "{src}\n got {got_kind:?} {got}\nwant {kind:?} {want}"
        );
    }
}

#[test]
fn invalid_rule_points_into_the_body() {
    let (_, message) = err("rule r() { a + }");
    assert!(message.ends_with(" at 1:16"), "{message}");
    let (_, message) = err("rule r(x integer) {\n  x >\n}");
    assert!(message.ends_with(" at 3:1"), "{message}");
}

#[test]
fn deep_parentheses_are_too_deep() {
    let src = format!(
        "entity a {{\n relation r @a\n permission p = {}r{}\n}}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let e = compile(&src).unwrap_err();
    assert_eq!(e.kind, SchemaErrorKind::TooDeep);
    assert_eq!(
        e.to_string(),
        "3:273: expression nests parentheses deeper than 256 levels"
    );
}

#[test]
fn long_alternating_chains_are_too_deep() {
    let src = format!(
        "entity a {{\n relation r @a\n permission p = r{}\n}}",
        " or r not r".repeat(100_000)
    );
    let e = compile(&src).unwrap_err();
    assert_eq!(e.kind, SchemaErrorKind::TooDeep);
    assert!(e.to_string().starts_with("3:"), "{e}");
    assert!(e.message.contains("nests deeper than 256 levels"), "{e}");
    // A long chain of one operator is flat, so fine.
    let src = format!(
        "entity a {{\n relation r @a\n permission p = r{}\n}}",
        " or r".repeat(20_000)
    );
    let schema = ok(&src);
    let Expr::Union(children) = perm(&schema, "a", "p") else {
        panic!()
    };
    assert_eq!(children.len(), 20_001);
}

#[test]
fn long_arrow_chains_are_too_deep() {
    let src = format!(
        "entity a {{\n relation r @a\n permission p = r{}\n}}",
        ".r".repeat(100_000)
    );
    assert_eq!(compile(&src).unwrap_err().kind, SchemaErrorKind::TooDeep);
    let src = format!(
        "entity a {{\n relation r @a\n permission p = r{}\n}}",
        ".r".repeat(200)
    );
    ok(&src);
}

#[test]
fn exploding_arrows_are_too_large() {
    let types = 10;
    let subjects: String = (0..types).map(|i| format!(" @t{i}")).collect();
    let mut src = String::new();
    for i in 0..types {
        src.push_str(&format!("entity t{i} {{ relation p{subjects} }}\n"));
    }
    src.push_str("entity doc { relation p @t0  permission x = p.p.p.p.p.p.p }");
    let e = compile(&src).unwrap_err();
    assert_eq!(e.kind, SchemaErrorKind::TooDeep);
    assert!(
        e.message
            .contains("permission `x` expands to more than 100000 expression nodes"),
        "{e}"
    );
    // Three hops over ten types is a thousand leaves: fine.
    src.truncate(src.len() - " p.p.p.p.p.p.p }".len());
    src.push_str(" p.p.p }");
    ok(&src);
}

#[test]
fn deep_rule_bodies_are_too_deep() {
    // Bracket nesting, checked before the CEL parser runs.
    let src = format!(
        "rule r() {{ {}1{} }}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let e = compile(&src).unwrap_err();
    assert_eq!(e.kind, SchemaErrorKind::TooDeep);
    assert_eq!(
        e.to_string(),
        "1:44: rule body nests brackets deeper than 32 levels"
    );
    // Nesting within the limit parses (on the parser thread's large stack).
    let src = format!("rule r() {{ {}1{} == 1 }}", "(".repeat(32), ")".repeat(32));
    ok(&src);
    // A deep CEL tree without brackets.
    let src = format!("rule r() {{ 1{} == 1 }}", " + 1".repeat(40));
    let e = compile(&src).unwrap_err();
    assert_eq!(e.kind, SchemaErrorKind::TooDeep);
    assert_eq!(
        e.to_string(),
        "1:12: body of rule `r` nests deeper than 32 levels"
    );
    // Length.
    let src = format!("rule r() {{ 1{} == 1 }}", " + 1".repeat(10_000));
    let e = compile(&src).unwrap_err();
    assert_eq!(e.to_string(), "1:11: rule body longer than 32768 bytes");
}

#[test]
fn permify_shapes_compile() {
    assert_eq!(PERMIFY_SHAPES.len(), 14);
    for (name, src) in PERMIFY_SHAPES {
        let schema = compile(src).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_invariants(&schema);
        assert!(schema.entity("user").is_some() || *name == "polymorphic-relations");
    }
}

#[test]
fn permify_shapes_compile_to_the_expected_ir() {
    let find = |name: &str| {
        let src = PERMIFY_SHAPES.iter().find(|(n, _)| *n == name).unwrap().1;
        ok(src)
    };

    let instagram = find("instagram");
    let (account, _) = instagram.entity("account").unwrap();
    assert_eq!(
        perm(&instagram, "account", "view"),
        &Expr::Union(vec![R(0), R(2), Expr::Attribute(0)])
    );
    assert_eq!(
        perm(&instagram, "post", "comment"),
        &Expr::Exclude(
            Box::new(Expr::Arrow {
                via: 0,
                targets: vec![(account, R(1))]
            }),
            Box::new(Expr::Attribute(0))
        )
    );

    let mercury = find("mercury");
    let (approval_num, limit) = (2, 1);
    assert_eq!(
        perm(&mercury, "organization", "approval"),
        &Expr::Union(vec![
            Expr::Intersect(vec![
                R(1),
                Expr::Call {
                    rule: mercury.rule("check_member_approval").unwrap().0,
                    args: vec![CallArg::Attribute(approval_num), CallArg::Attribute(limit)]
                }
            ]),
            Expr::Intersect(vec![
                R(0),
                Expr::Call {
                    rule: mercury.rule("check_admin_approval").unwrap().0,
                    args: vec![CallArg::Attribute(approval_num), CallArg::Attribute(0)]
                }
            ]),
        ])
    );

    let rbac = find("rbac");
    assert_eq!(
        perm(&rbac, "organization", "view_files"),
        &Expr::Union(vec![
            R(0),
            R(2),
            Expr::Exclude(Box::new(R(1)), Box::new(R(3)))
        ])
    );

    let docs = find("google-docs-simplified");
    let (group, _) = docs.entity("group").unwrap();
    let (_, org) = docs.entity("organization").unwrap();
    assert_eq!(org.relations[2].allowed.len(), 3);
    assert_eq!(
        perm(&docs, "organization", "member"),
        &Expr::Union(vec![
            R(3),
            R(2),
            Expr::Arrow {
                via: 0,
                targets: vec![(group, Expr::Permission(0))]
            }
        ])
    );

    let disney = find("disney-plus");
    let (_, content) = disney.entity("content").unwrap();
    assert_eq!(content.attributes[1].ty, AttrType::StringArray);
    assert!(content.permissions.iter().all(|p| p.is_action));
}

include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/shared.rs"
));

/// Also compiles the YAML files themselves when `../shared` is there (`fixtures/shared.rs`).
#[test]
fn permify_shape_files_compile_when_present() {
    let Some(dir) = shared_path(
        "permify_shape_files_compile_when_present",
        "conformance/permify-shapes",
    ) else {
        return;
    };
    let entries = std::fs::read_dir(&dir).unwrap();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let src = doc.get("schema").and_then(|s| s.as_str()).unwrap_or("");
        let schema = compile(src).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check_invariants(&schema);
    }
}

/// A tiny deterministic generator (xorshift64*), to avoid a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SNIPPETS: &[&str] = &[
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "@",
    "#",
    ".",
    ",",
    "=",
    " not ",
    " or ",
    " and ",
    "entity ",
    "relation ",
    "permission ",
    "action ",
    "attribute ",
    "rule ",
    "x",
    "user",
    "é",
    "\u{0}",
    "\n",
    "'",
    "\"",
    "'''",
    "/*",
    "*/",
    "//",
    "request.",
    "boolean",
    "string[]",
    " r(",
    "\t",
    "parent.",
    "owner",
    "check_balance(balance)",
];

fn assert_sane(src: &str) {
    match compile(src) {
        Ok(schema) => check_invariants(&schema),
        Err(e) => {
            assert!(e.span.line >= 1 && e.span.column >= 1, "{e:?}");
            let lines = src.split('\n').count() as u32;
            assert!(e.span.line <= lines, "{e:?} beyond {lines} lines");
            assert!(!e.message.is_empty() && !e.message.ends_with('.'));
        }
    }
}

#[test]
fn mutated_schemas_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (_, src) in PERMIFY_SHAPES {
        let original: Vec<char> = src.chars().collect();
        for _ in 0..200 {
            let mut chars = original.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(chars.len() + 1);
                match rng.below(4) {
                    0 => {
                        let end = (at + 1 + rng.below(20)).min(chars.len());
                        chars.drain(at.min(end)..end);
                    }
                    1 | 2 => {
                        let snippet = SNIPPETS[rng.below(SNIPPETS.len())];
                        chars.splice(at..at, snippet.chars());
                    }
                    _ => chars.truncate(at),
                }
            }
            let mutated: String = chars.into_iter().collect();
            assert_sane(&mutated);
        }
    }
}

#[test]
fn random_token_soup_never_panics() {
    let mut rng = Rng(42);
    for _ in 0..400 {
        let len = rng.below(40);
        let soup: String = (0..len)
            .map(|_| SNIPPETS[rng.below(SNIPPETS.len())])
            .collect();
        assert_sane(&soup);
        assert_sane(&format!(
            "entity x {{ relation owner @x\n permission p = {soup} }}"
        ));
        assert_sane(&format!("rule r(x integer) {{ {soup} }}"));
    }
}

#[test]
fn large_schemas_compile_in_linear_time() {
    let n = 20_000;
    // Many parameters, many subject types, the longest chain of permissions accepted, many
    // entities.
    let chain = MAX_PERMISSION_CHAIN;
    let params: Vec<String> = (0..n).map(|i| format!("p{i} integer")).collect();
    let src = format!("rule r({}) {{ true }}", params.join(", "));
    assert_eq!(ok(&src).rules[0].params.len(), n);
    let mut src = String::from("entity user { relation r @user }\nentity doc {\n relation owner");
    src.push_str(&" @user".repeat(n));
    src.push_str("\n permission p0 = owner.r\n");
    for i in 1..chain {
        src.push_str(&format!(" permission p{i} = p{} or owner\n", i - 1));
    }
    src.push('}');
    for i in 0..n {
        src.push_str(&format!("\nentity e{i} {{ relation r @e{} }}", (i + 1) % n));
    }
    let schema = ok(&src);
    assert_eq!(schema.entities.len(), n + 2);
    // The same chain closed into a cycle.
    let src = src.replace(
        "permission p0 = owner.r",
        &format!("permission p0 = p{}", chain - 1),
    );
    let e = compile(&src).unwrap_err();
    assert_eq!(e.kind, SchemaErrorKind::SelfReference);
    assert!(e.message.starts_with(&format!(
        "permission `p0` references itself: `p0` -> `p{}` -> ",
        chain - 1
    )));
}
