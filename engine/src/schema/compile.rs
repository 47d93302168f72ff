//! Lowering of the syntax tree to the compiled [`Schema`], with every semantic check.
//!
//! Compilation runs in passes so that names may be used before they are declared:
//!
//! 1. collect entity, rule and member names (rejecting duplicates) and assign ids;
//! 2. resolve the subject types of every relation (`@T`, `@T#rel`);
//! 3. in source order, compile every permission expression (then reject permissions that depend
//!    on themselves within their entity) and every rule body (with [`cel::Program::compile`]).
//!
//! Compiled expressions are bounded: at most [`MAX_NESTING`] levels deep and at most
//! [`MAX_EXPR_NODES`] nodes per permission, so evaluators may recurse on them and hostile
//! schemas (long alternating operator chains, arrow chains fanning out over many types) get a
//! [`SchemaErrorKind::TooDeep`] error instead of exhausting the stack or memory.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::ast;
use super::error::{SchemaError, SchemaErrorKind};
use super::ir::{
    AllowedSubject, AttrType, AttributeDef, CallArg, EntityDef, Expr, Member, PermId,
    PermissionDef, RelationDef, RuleDef, RuleId, Schema, Span, TypeId,
};
use super::parser::MAX_NESTING;

/// How many nodes the compiled expression of one permission may have.
pub const MAX_EXPR_NODES: usize = 100_000;

/// How many relations, permissions and attributes one entity may declare.
pub const MAX_MEMBERS_PER_ENTITY: usize = 1_024;

/// The longest chain of permissions of one entity that reference one another without a
/// relation in between (`p2 = p1`, `p1 = p0`: a chain of 3). Each link is a level of every
/// evaluator's recursion that no data pays for.
pub const MAX_PERMISSION_CHAIN: usize = 256;

/// A rule's signature, known after the first pass.
struct RuleSig {
    name: String,
    params: Vec<(String, AttrType)>,
}

/// Compiles a parsed schema. See [`crate::schema::compile()`] for the checks.
pub fn compile_ast(source: &ast::Schema) -> Result<Schema, SchemaError> {
    // Pass 1: names and ids.
    let mut entities: Vec<EntityDef> = Vec::new();
    let mut entity_decls: Vec<&ast::EntityDecl> = Vec::new();
    let mut entity_index: HashMap<String, TypeId> = HashMap::new();
    let mut rule_decls: Vec<&ast::RuleDecl> = Vec::new();
    let mut rule_index: HashMap<String, RuleId> = HashMap::new();
    let mut rule_sigs: Vec<RuleSig> = Vec::new();
    for decl in &source.decls {
        match decl {
            ast::Decl::Entity(decl) => {
                if let Some(&prev) = entity_index.get(&decl.name.name) {
                    return Err(duplicate(
                        &decl.name,
                        "entity",
                        entities.get(prev).map(|e| e.span),
                    ));
                }
                entity_index.insert(decl.name.name.clone(), entities.len());
                entities.push(declare_entity(decl)?);
                entity_decls.push(decl);
            }
            ast::Decl::Rule(decl) => {
                if let Some(&prev) = rule_index.get(&decl.name.name) {
                    let prev_span = rule_decls.get(prev).map(|r| r.name.span);
                    return Err(duplicate(&decl.name, "rule", prev_span));
                }
                let mut params: Vec<(String, AttrType)> = Vec::new();
                let mut seen: HashMap<&str, Span> = HashMap::new();
                for param in &decl.params {
                    if let Some(prev) = seen.insert(&param.name.name, param.name.span) {
                        return Err(SchemaError::new(
                            SchemaErrorKind::DuplicateName,
                            param.name.span,
                            format!(
                                "duplicate parameter `{}` in rule `{}` (first declared at {prev})",
                                param.name.name, decl.name.name
                            ),
                        ));
                    }
                    params.push((param.name.name.clone(), param.ty));
                }
                rule_index.insert(decl.name.name.clone(), rule_sigs.len());
                rule_sigs.push(RuleSig {
                    name: decl.name.name.clone(),
                    params,
                });
                rule_decls.push(decl);
            }
        }
    }

    // Pass 2: subject types of relations.
    for (ty, decl) in entity_decls.iter().enumerate() {
        let mut rel_id = 0;
        for member in &decl.members {
            let ast::MemberDecl::Relation(relation) = member else {
                continue;
            };
            let allowed = resolve_subjects(&entities, &entity_index, relation)?;
            if let Some(def) = entities
                .get_mut(ty)
                .and_then(|e| e.relations.get_mut(rel_id))
            {
                def.allowed = allowed;
            }
            rel_id += 1;
        }
    }

    // Pass 3: expressions and rule bodies, in source order.
    let mut permissions: Vec<Vec<PermissionDef>> = Vec::with_capacity(entities.len());
    let mut programs = compile_rules(&rule_decls)?.into_iter();
    let mut compiled_rules: Vec<Arc<cel::Program>> = Vec::with_capacity(rule_decls.len());
    let mut compiler = ExprCompiler {
        entities: &entities,
        rule_index: &rule_index,
        rules: &rule_sigs,
        nodes: 0,
    };
    for decl in &source.decls {
        match decl {
            ast::Decl::Entity(decl) => {
                let ty = permissions.len();
                let mut perms = Vec::new();
                for member in &decl.members {
                    let ast::MemberDecl::Permission(p) = member else {
                        continue;
                    };
                    compiler.nodes = 0;
                    let (expr, _) = compiler.expr(ty, &p.expr, &p.name)?;
                    perms.push(PermissionDef {
                        name: p.name.name.clone(),
                        span: p.name.span,
                        is_action: p.is_action,
                        expr,
                    });
                }
                check_self_references(&perms)?;
                check_chain_length(&decl.name.name, &perms)?;
                permissions.push(perms);
            }
            ast::Decl::Rule(decl) => match programs.next() {
                Some(program) => compiled_rules.push(program?),
                None => {
                    return Err(SchemaError::new(
                        SchemaErrorKind::InvalidRule,
                        decl.body_span,
                        format!("internal error: rule `{}` was not compiled", decl.name.name),
                    ));
                }
            },
        }
    }

    for (entity, perms) in entities.iter_mut().zip(permissions) {
        entity.permissions = perms;
    }
    let rules = rule_decls
        .iter()
        .zip(rule_sigs)
        .zip(compiled_rules)
        .map(|((decl, sig), program)| RuleDef {
            name: sig.name,
            span: decl.name.span,
            params: sig.params,
            body: decl.body.clone(),
            program,
        })
        .collect();
    Ok(Schema {
        entities,
        rules,
        entity_index,
        rule_index,
    })
}

/// "duplicate KIND `name` (first declared at L:C)".
fn duplicate(name: &ast::Ident, kind: &str, prev: Option<Span>) -> SchemaError {
    let message = match prev {
        Some(prev) => format!(
            "duplicate {kind} `{}` (first declared at {prev})",
            name.name
        ),
        None => format!("duplicate {kind} `{}`", name.name),
    };
    SchemaError::new(SchemaErrorKind::DuplicateName, name.span, message)
}

/// An entity's members with ids, relations without subject types yet, permissions empty.
fn declare_entity(decl: &ast::EntityDecl) -> Result<EntityDef, SchemaError> {
    let mut def = EntityDef {
        name: decl.name.name.clone(),
        span: decl.name.span,
        relations: Vec::new(),
        permissions: Vec::new(),
        attributes: Vec::new(),
        members: HashMap::new(),
    };
    if decl.members.len() > MAX_MEMBERS_PER_ENTITY {
        return Err(SchemaError::new(
            SchemaErrorKind::TooLarge,
            decl.name.span,
            format!(
                "entity `{}` declares {} members, more than the limit of \
                 {MAX_MEMBERS_PER_ENTITY} (members per entity)",
                decl.name.name,
                decl.members.len()
            ),
        ));
    }
    let mut spans: HashMap<&str, Span> = HashMap::new();
    let mut permission_count = 0;
    for member in &decl.members {
        let name = member.name();
        if let Some(&prev) = spans.get(name.name.as_str()) {
            return Err(SchemaError::new(
                SchemaErrorKind::DuplicateName,
                name.span,
                format!(
                    "duplicate name `{}` in entity `{}` (first declared at {prev})",
                    name.name, decl.name.name
                ),
            ));
        }
        spans.insert(&name.name, name.span);
        let id = match member {
            ast::MemberDecl::Relation(_) => {
                def.relations.push(RelationDef {
                    name: name.name.clone(),
                    span: name.span,
                    allowed: Vec::new(),
                });
                Member::Relation(def.relations.len() - 1)
            }
            ast::MemberDecl::Attribute(a) => {
                def.attributes.push(AttributeDef {
                    name: name.name.clone(),
                    span: name.span,
                    ty: a.ty,
                });
                Member::Attribute(def.attributes.len() - 1)
            }
            ast::MemberDecl::Permission(_) => {
                permission_count += 1;
                Member::Permission(permission_count - 1)
            }
        };
        def.members.insert(name.name.clone(), id);
    }
    Ok(def)
}

/// The subject types of `relation`: `@T` needs `T` declared, `@T#rel` also needs `rel` to be a
/// relation or permission of `T`.
fn resolve_subjects(
    entities: &[EntityDef],
    entity_index: &HashMap<String, TypeId>,
    relation: &ast::RelationDecl,
) -> Result<Vec<AllowedSubject>, SchemaError> {
    let mut allowed = Vec::with_capacity(relation.subjects.len());
    for subject in &relation.subjects {
        let Some(&ty) = entity_index.get(&subject.entity.name) else {
            return Err(SchemaError::new(
                SchemaErrorKind::UndefinedEntity,
                subject.entity.span,
                format!("undefined entity `{}`", subject.entity.name),
            ));
        };
        if let Some(rel) = &subject.relation {
            let target = entities.get(ty).and_then(|e| e.member(&rel.name));
            if !matches!(target, Some(Member::Relation(_) | Member::Permission(_))) {
                return Err(SchemaError::new(
                    SchemaErrorKind::UndefinedMember,
                    rel.span,
                    format!(
                        "undefined relation or permission `{}` in entity `{}`",
                        rel.name, subject.entity.name
                    ),
                ));
            }
        }
        allowed.push(AllowedSubject {
            entity: ty,
            relation: subject.relation.as_ref().map(|r| r.name.clone()),
        });
    }
    Ok(allowed)
}

/// Compiles expressions; holds the tables of passes 1 and 2.
struct ExprCompiler<'c> {
    entities: &'c [EntityDef],
    rule_index: &'c HashMap<String, RuleId>,
    rules: &'c [RuleSig],
    /// Nodes built so far for the current permission.
    nodes: usize,
}

/// Which flattened operator a chain step builds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nary {
    Union,
    Intersect,
}

impl<'c> ExprCompiler<'c> {
    fn entity(&self, ty: TypeId, span: Span) -> Result<&'c EntityDef, SchemaError> {
        self.entities.get(ty).ok_or_else(|| {
            SchemaError::new(
                SchemaErrorKind::UndefinedEntity,
                span,
                format!("internal error: no entity type {ty}"),
            )
        })
    }

    /// Counts `n` new nodes against [`MAX_EXPR_NODES`].
    fn count(&mut self, n: usize, span: Span, perm: &ast::Ident) -> Result<(), SchemaError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_EXPR_NODES {
            return Err(SchemaError::new(
                SchemaErrorKind::TooDeep,
                span,
                format!(
                    "permission `{}` expands to more than {MAX_EXPR_NODES} expression nodes",
                    perm.name
                ),
            ));
        }
        Ok(())
    }

    /// Fails when a node at `depth` exceeds [`MAX_NESTING`].
    fn check_depth(depth: usize, span: Span, perm: &ast::Ident) -> Result<(), SchemaError> {
        if depth > MAX_NESTING {
            return Err(SchemaError::new(
                SchemaErrorKind::TooDeep,
                span,
                format!(
                    "permission `{}` nests deeper than {MAX_NESTING} levels",
                    perm.name
                ),
            ));
        }
        Ok(())
    }

    /// Compiles `expr` relative to entity `ty`; returns it with its depth (a leaf is 1).
    fn expr(
        &mut self,
        ty: TypeId,
        expr: &ast::Expr,
        perm: &ast::Ident,
    ) -> Result<(Expr, usize), SchemaError> {
        let (mut acc, mut depth) = self.operand(ty, &expr.first, perm)?;
        for (op, span, operand) in &expr.rest {
            let (rhs, rhs_depth) = self.operand(ty, operand, perm)?;
            self.count(1, *span, perm)?;
            (acc, depth) = match op {
                ast::BinOp::Or => join(Nary::Union, acc, depth, rhs, rhs_depth),
                ast::BinOp::And => join(Nary::Intersect, acc, depth, rhs, rhs_depth),
                ast::BinOp::Not => (
                    Expr::Exclude(Box::new(acc), Box::new(rhs)),
                    1 + depth.max(rhs_depth),
                ),
            };
            Self::check_depth(depth, *span, perm)?;
        }
        Ok((acc, depth))
    }

    fn operand(
        &mut self,
        ty: TypeId,
        operand: &ast::Operand,
        perm: &ast::Ident,
    ) -> Result<(Expr, usize), SchemaError> {
        match operand {
            ast::Operand::Paren(inner, _) => self.expr(ty, inner, perm),
            ast::Operand::Path(path) => self.path(ty, path, perm),
            ast::Operand::Call { rule, args } => {
                self.count(1, rule.span, perm)?;
                Ok((self.call(ty, rule, args)?, 1))
            }
        }
    }

    /// `name` or `name.name...` relative to entity `ty`.
    fn path(
        &mut self,
        ty: TypeId,
        path: &[ast::Ident],
        perm: &ast::Ident,
    ) -> Result<(Expr, usize), SchemaError> {
        let Some((first, rest)) = path.split_first() else {
            return Err(SchemaError::syntax(perm.span, "empty name in expression"));
        };
        let entity = self.entity(ty, first.span)?;
        self.count(1, first.span, perm)?;
        let Some(next) = rest.first() else {
            return Ok((leaf(entity, first)?, 1));
        };
        let via = match entity.member(&first.name) {
            Some(Member::Relation(id)) => id,
            Some(member) => {
                return Err(SchemaError::new(
                    SchemaErrorKind::Unsupported,
                    first.span,
                    format!(
                        "`{}` is {} of entity `{}`, only relations can be followed with `.`",
                        first.name,
                        kind_article(member),
                        entity.name
                    ),
                ));
            }
            None => {
                return Err(SchemaError::new(
                    SchemaErrorKind::UndefinedMember,
                    first.span,
                    format!(
                        "undefined relation `{}` in entity `{}`",
                        first.name, entity.name
                    ),
                ));
            }
        };
        let allowed = entity
            .relations
            .get(via)
            .map(|r| r.allowed.as_slice())
            .unwrap_or_default();
        let mut targets: Vec<(TypeId, Expr)> = Vec::new();
        let mut seen: HashSet<TypeId> = HashSet::new();
        let mut depth = 0;
        for subject in allowed {
            if !seen.insert(subject.entity) {
                continue;
            }
            let target = self.entity(subject.entity, next.span)?;
            match target.member(&next.name) {
                None => continue,
                Some(Member::Attribute(_)) => {
                    return Err(SchemaError::new(
                        SchemaErrorKind::Unsupported,
                        next.span,
                        format!(
                            "`{}` is an attribute of entity `{}`, arrows can only reach relations and permissions",
                            next.name, target.name
                        ),
                    ));
                }
                Some(_) => {
                    let (expr, d) = self.path(subject.entity, rest, perm)?;
                    depth = depth.max(d);
                    targets.push((subject.entity, expr));
                }
            }
        }
        if targets.is_empty() {
            return Err(SchemaError::new(
                SchemaErrorKind::UndefinedMember,
                next.span,
                format!(
                    "undefined relation or permission `{}` in the subject types of `{}.{}`",
                    next.name, entity.name, first.name
                ),
            ));
        }
        Self::check_depth(depth + 1, first.span, perm)?;
        Ok((Expr::Arrow { via, targets }, depth + 1))
    }

    /// `rule(args)` relative to entity `ty`.
    fn call(
        &mut self,
        ty: TypeId,
        rule: &ast::Ident,
        args: &[ast::Arg],
    ) -> Result<Expr, SchemaError> {
        let entity = self.entity(ty, rule.span)?;
        let Some((id, sig)) = self
            .rule_index
            .get(&rule.name)
            .and_then(|&id| self.rules.get(id).map(|sig| (id, sig)))
        else {
            return Err(SchemaError::new(
                SchemaErrorKind::UndefinedRule,
                rule.span,
                format!("undefined rule `{}`", rule.name),
            ));
        };
        if args.len() != sig.params.len() {
            let plural = if sig.params.len() == 1 { "" } else { "s" };
            return Err(SchemaError::new(
                SchemaErrorKind::RuleArgumentCount,
                rule.span,
                format!(
                    "rule `{}` takes {} argument{plural}, got {}",
                    rule.name,
                    sig.params.len(),
                    args.len()
                ),
            ));
        }
        let mut compiled = Vec::with_capacity(args.len());
        for (arg, (param, param_ty)) in args.iter().zip(&sig.params) {
            match arg {
                ast::Arg::Context(key) => compiled.push(CallArg::Context(key.name.clone())),
                ast::Arg::Attribute(name) => {
                    let Some((attr_id, attr)) = entity.attribute(&name.name) else {
                        let message = match entity.member(&name.name) {
                            Some(member) => format!(
                                "`{}` is {} of entity `{}`, rule arguments must be attributes",
                                name.name,
                                kind_article(member),
                                entity.name
                            ),
                            None => format!(
                                "undefined attribute `{}` in entity `{}`",
                                name.name, entity.name
                            ),
                        };
                        return Err(SchemaError::new(
                            SchemaErrorKind::UndefinedMember,
                            name.span,
                            message,
                        ));
                    };
                    if attr.ty != *param_ty {
                        return Err(SchemaError::new(
                            SchemaErrorKind::RuleArgumentType,
                            name.span,
                            format!(
                                "attribute `{}` is `{}` but parameter `{param}` of rule `{}` is `{param_ty}`",
                                name.name, attr.ty, rule.name
                            ),
                        ));
                    }
                    compiled.push(CallArg::Attribute(attr_id));
                }
            }
        }
        Ok(Expr::Call {
            rule: id,
            args: compiled,
        })
    }
}

/// A bare name: a relation, a permission, or a boolean attribute of `entity`.
fn leaf(entity: &EntityDef, name: &ast::Ident) -> Result<Expr, SchemaError> {
    match entity.member(&name.name) {
        Some(Member::Relation(id)) => Ok(Expr::Relation(id)),
        Some(Member::Permission(id)) => Ok(Expr::Permission(id)),
        Some(Member::Attribute(id)) => {
            let ty = entity
                .attributes
                .get(id)
                .map_or(AttrType::Boolean, |a| a.ty);
            if ty == AttrType::Boolean {
                Ok(Expr::Attribute(id))
            } else {
                Err(SchemaError::new(
                    SchemaErrorKind::Unsupported,
                    name.span,
                    format!(
                        "attribute `{}` of entity `{}` is `{ty}`, only `boolean` attributes can be used as conditions",
                        name.name, entity.name
                    ),
                ))
            }
        }
        None => Err(SchemaError::new(
            SchemaErrorKind::UndefinedMember,
            name.span,
            format!(
                "undefined relation or permission `{}` in entity `{}`",
                name.name, entity.name
            ),
        )),
    }
}

/// "a relation", "a permission", "an attribute".
fn kind_article(member: Member) -> &'static str {
    match member {
        Member::Relation(_) => "a relation",
        Member::Permission(_) => "a permission",
        Member::Attribute(_) => "an attribute",
    }
}

/// `left OP right`, flattening operands that already are `OP` nodes, with the result's depth.
fn join(op: Nary, left: Expr, left_depth: usize, right: Expr, right_depth: usize) -> (Expr, usize) {
    let split = |e: Expr| -> Result<Vec<Expr>, Expr> {
        match (op, e) {
            (Nary::Union, Expr::Union(children)) | (Nary::Intersect, Expr::Intersect(children)) => {
                Ok(children)
            }
            (_, other) => Err(other),
        }
    };
    let (mut children, mut depth) = match split(left) {
        Ok(children) => (children, left_depth),
        Err(single) => (vec![single], left_depth + 1),
    };
    match split(right) {
        Ok(more) => {
            children.extend(more);
            depth = depth.max(right_depth);
        }
        Err(single) => {
            children.push(single);
            depth = depth.max(right_depth + 1);
        }
    }
    let expr = match op {
        Nary::Union => Expr::Union(children),
        Nary::Intersect => Expr::Intersect(children),
    };
    (expr, depth)
}

/// Permissions referenced by `expr` without an arrow in between.
fn direct_permissions(expr: &Expr, out: &mut Vec<PermId>) {
    match expr {
        Expr::Union(children) | Expr::Intersect(children) => {
            for child in children {
                direct_permissions(child, out);
            }
        }
        Expr::Exclude(base, excluded) => {
            direct_permissions(base, out);
            direct_permissions(excluded, out);
        }
        Expr::Permission(id) => out.push(*id),
        Expr::Relation(_) | Expr::Attribute(_) | Expr::Arrow { .. } | Expr::Call { .. } => {}
    }
}

/// Rejects a permission that depends on itself through permissions of its own entity.
/// Iterative depth-first search, so long chains of permissions cannot overflow the stack.
fn check_self_references(perms: &[PermissionDef]) -> Result<(), SchemaError> {
    let edges: Vec<Vec<PermId>> = perms
        .iter()
        .map(|p| {
            let mut out = Vec::new();
            direct_permissions(&p.expr, &mut out);
            out
        })
        .collect();
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; perms.len()];
    for start in 0..perms.len() {
        if marks[start] != Mark::New {
            continue;
        }
        marks[start] = Mark::Open;
        let mut stack: Vec<(PermId, usize)> = vec![(start, 0)];
        while let Some((node, next_edge)) = stack.last_mut() {
            let node = *node;
            let Some(&target) = edges.get(node).and_then(|e| e.get(*next_edge)) else {
                if let Some(mark) = marks.get_mut(node) {
                    *mark = Mark::Done;
                }
                stack.pop();
                continue;
            };
            *next_edge += 1;
            match marks.get(target) {
                Some(Mark::New) => {
                    marks[target] = Mark::Open;
                    stack.push((target, 0));
                }
                Some(Mark::Open) => {
                    let from = stack.iter().position(|&(n, _)| n == target).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[from..]
                        .iter()
                        .filter_map(|&(n, _)| perms.get(n).map(|p| format!("`{}`", p.name)))
                        .collect();
                    let Some(head) = perms.get(target) else {
                        continue;
                    };
                    cycle.push(format!("`{}`", head.name));
                    let kind = if head.is_action {
                        "action"
                    } else {
                        "permission"
                    };
                    return Err(SchemaError::new(
                        SchemaErrorKind::SelfReference,
                        head.span,
                        format!(
                            "{kind} `{}` references itself: {}",
                            head.name,
                            cycle.join(" -> ")
                        ),
                    ));
                }
                Some(Mark::Done) | None => {}
            }
        }
    }
    Ok(())
}

/// Rejects an entity whose permissions form a chain longer than [`MAX_PERMISSION_CHAIN`].
/// Runs after [`check_self_references`], so the references form a DAG; the longest path
/// ending at each permission is found by an iterative depth-first search.
fn check_chain_length(entity: &str, perms: &[PermissionDef]) -> Result<(), SchemaError> {
    let edges: Vec<Vec<PermId>> = perms
        .iter()
        .map(|p| {
            let mut out = Vec::new();
            direct_permissions(&p.expr, &mut out);
            out
        })
        .collect();
    // The longest chain starting at each permission (itself included), once known.
    let mut longest: Vec<Option<usize>> = vec![None; perms.len()];
    for start in 0..perms.len() {
        let mut stack: Vec<PermId> = vec![start];
        while let Some(&node) = stack.last() {
            if longest[node].is_some() {
                stack.pop();
                continue;
            }
            let next = edges[node]
                .iter()
                .copied()
                .find(|&t| longest.get(t).is_some_and(Option::is_none));
            match next {
                // A DAG: an unfinished target is never on the stack already.
                Some(target) => stack.push(target),
                None => {
                    let below = edges[node]
                        .iter()
                        .filter_map(|&t| longest.get(t).copied().flatten())
                        .max()
                        .unwrap_or(0);
                    let length = below + 1;
                    if length > MAX_PERMISSION_CHAIN {
                        let head = &perms[node];
                        return Err(SchemaError::new(
                            SchemaErrorKind::TooLarge,
                            head.span,
                            format!(
                                "permission `{}` of entity `{entity}` starts a chain of more \
                                 than {MAX_PERMISSION_CHAIN} permissions referencing one \
                                 another (permission chain length)",
                                head.name
                            ),
                        ));
                    }
                    longest[node] = Some(length);
                    stack.pop();
                }
            }
        }
    }
    Ok(())
}

/// Stack size of the thread that parses rule bodies. The ANTLR-generated CEL parser uses about
/// 100 KiB of stack per nesting level and a few KiB per operator of a chain in debug builds,
/// far more than a worker thread's default 2 MiB; with [`MAX_RULE_BODY_NESTING`] and
/// [`MAX_RULE_BODY_LEN`] this leaves a wide margin. The memory is reserved, not committed.
///
/// [`MAX_RULE_BODY_NESTING`]: super::lexer::MAX_RULE_BODY_NESTING
/// [`MAX_RULE_BODY_LEN`]: super::lexer::MAX_RULE_BODY_LEN
const CEL_PARSER_STACK: usize = 64 << 20;

/// How deep the parsed CEL tree of a rule body may be. Executing a program recurses once per
/// level, about 30 KiB a level in debug builds, so this keeps rule evaluation well within a
/// 2 MiB thread stack.
pub const MAX_RULE_DEPTH: usize = 32;

/// Parses every rule body as CEL, on one helper thread with a large stack (see
/// [`CEL_PARSER_STACK`]); a panic in the CEL parser becomes an error of that rule. The result
/// has one entry per rule, in order.
fn compile_rules(
    decls: &[&ast::RuleDecl],
) -> Result<Vec<Result<Arc<cel::Program>, SchemaError>>, SchemaError> {
    if decls.is_empty() {
        return Ok(Vec::new());
    }
    let failed = |what: &str| {
        let span = decls.first().map(|d| d.keyword).unwrap_or_default();
        SchemaError::new(
            SchemaErrorKind::InvalidRule,
            span,
            format!("cannot compile rule bodies: {what}"),
        )
    };
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("lookout-cel-parser".to_string())
            .stack_size(CEL_PARSER_STACK)
            .spawn_scoped(scope, || {
                decls
                    .iter()
                    .map(|decl| compile_rule(decl))
                    .collect::<Vec<_>>()
            })
            .map_err(|e| failed(&format!("cannot start the parser thread: {e}")))?;
        handle
            .join()
            .map_err(|_| failed("the cel parser thread failed"))
    })
}

/// Parses one rule body as CEL; runs on the thread of [`compile_rules`].
fn compile_rule(decl: &ast::RuleDecl) -> Result<Arc<cel::Program>, SchemaError> {
    let invalid = |detail: String| {
        SchemaError::new(
            SchemaErrorKind::InvalidRule,
            decl.body_span,
            format!("invalid cel in rule `{}`: {detail}", decl.name.name),
        )
    };
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cel::Program::compile(&decl.body)
    }));
    let program = match parsed {
        Ok(Ok(program)) => program,
        Ok(Err(errors)) => {
            let detail = errors
                .errors
                .first()
                .map(|e| {
                    let message = lowercase_first(&e.msg).replace('\n', "\\n");
                    match cel_position(decl.body_start, e.pos) {
                        Some(at) => format!("{message} at {at}"),
                        None => message,
                    }
                })
                .unwrap_or_else(|| "parse error".to_string());
            return Err(invalid(detail));
        }
        Err(_) => return Err(invalid("the cel parser panicked".to_string())),
    };
    if cel_depth(program.expression()) > MAX_RULE_DEPTH {
        return Err(SchemaError::new(
            SchemaErrorKind::TooDeep,
            decl.body_span,
            format!(
                "body of rule `{}` nests deeper than {MAX_RULE_DEPTH} levels",
                decl.name.name
            ),
        ));
    }
    Ok(Arc::new(program))
}

/// The depth of a parsed CEL expression (a leaf is 1), computed without recursion.
fn cel_depth(root: &cel::IdedExpr) -> usize {
    use cel::common::ast::{EntryExpr, Expr as CelExpr};
    let mut max = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        max = max.max(depth);
        let below = depth + 1;
        match &node.expr {
            CelExpr::Call(call) => {
                stack.extend(call.target.iter().map(|t| (&**t, below)));
                stack.extend(call.args.iter().map(|a| (a, below)));
            }
            CelExpr::Comprehension(c) => {
                for child in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    stack.push((child, below));
                }
            }
            CelExpr::List(list) => stack.extend(list.elements.iter().map(|e| (e, below))),
            CelExpr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => {
                            stack.push((&e.key, below));
                            stack.push((&e.value, below));
                        }
                        EntryExpr::StructField(f) => stack.push((&f.value, below)),
                    }
                }
            }
            CelExpr::Struct(s) => {
                for entry in &s.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => {
                            stack.push((&e.key, below));
                            stack.push((&e.value, below));
                        }
                        EntryExpr::StructField(f) => stack.push((&f.value, below)),
                    }
                }
            }
            CelExpr::Select(select) => stack.push((&select.operand, below)),
            CelExpr::Unspecified | CelExpr::Ident(_) | CelExpr::Literal(_) => {}
        }
    }
    max
}

/// `s` with its first character in lowercase (CEL's messages start with a capital).
fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Maps a CEL error position (1-based line and column within the body) to the schema source,
/// given where the body starts.
fn cel_position(body_start: Span, (line, column): (isize, isize)) -> Option<Span> {
    let line = u32::try_from(line).ok().filter(|&l| l >= 1)?;
    let column = u32::try_from(column).ok().filter(|&c| c >= 1)?;
    if line == 1 {
        return Some(Span {
            line: body_start.line,
            column: body_start.column.saturating_add(column - 1),
        });
    }
    Some(Span {
        line: body_start.line.saturating_add(line - 1),
        column,
    })
}
