//! A recursive-descent parser for the schema language, producing an [`ast::Schema`](super::ast::Schema).
//!
//! Grammar (Permify's, plus multi-hop arrows):
//!
//! ```text
//! schema     = { entity | rule } ;
//! entity     = "entity" NAME "{" { member } "}" ;
//! member     = "relation" NAME subject { subject }
//!            | "attribute" NAME type
//!            | ( "permission" | "action" ) NAME "=" expr ;
//! subject    = "@" NAME [ "#" NAME ] ;
//! rule       = "rule" NAME "(" [ NAME type { "," NAME type } ] ")" "{" CEL "}" ;
//! type       = ( "boolean" | "string" | "integer" | "double" ) [ "[" "]" ] ;
//! expr       = operand { ( "and" | "or" | "not" ) operand } ;
//! operand    = "(" expr ")" | NAME { "." NAME } | NAME "(" [ arg { "," arg } ] ")" ;
//! arg        = NAME | "request" "." NAME ;
//! ```
//!
//! Newlines mean nothing, so an expression continues across lines for as long as the next token
//! is an operator, and ends at anything else (typically the next member's keyword or `}`).
//! Parentheses and arrow chains are limited to [`MAX_NESTING`] levels, so hostile input gets a
//! [`SchemaErrorKind::TooDeep`] error instead of exhausting the stack.

use super::ast::{
    Arg, AttributeDecl, BinOp, Decl, EntityDecl, Expr, Ident, MemberDecl, Operand, Param,
    PermissionDecl, RelationDecl, RuleDecl, Schema, SubjectRef,
};
use super::error::{SchemaError, SchemaErrorKind};
use super::ir::{AttrType, Span};
use super::lexer::{Lexer, Token, TokenKind};

/// How deeply parentheses may nest in an expression, and how many hops an arrow chain may have.
pub const MAX_NESTING: usize = 256;

/// Parses a schema source into its syntax tree. Empty input is an empty schema.
pub fn parse(source: &str) -> Result<Schema, SchemaError> {
    Parser::new(source).schema()
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
    /// Current parenthesis depth.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(source: &'a str) -> Parser<'a> {
        Parser {
            lexer: Lexer::new(source),
            peeked: None,
            depth: 0,
        }
    }

    fn peek(&mut self) -> Result<&Token, SchemaError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn peek_kind(&mut self) -> Result<&TokenKind, SchemaError> {
        Ok(&self.peek()?.kind)
    }

    fn next(&mut self) -> Result<Token, SchemaError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    /// Consumes the next token if it is `kind`.
    fn eat(&mut self, kind: &TokenKind) -> Result<Option<Span>, SchemaError> {
        if self.peek_kind()? == kind {
            return Ok(Some(self.next()?.span));
        }
        Ok(None)
    }

    /// Consumes a `kind` token or fails with "expected `x` CONTEXT, found ...".
    fn expect(&mut self, kind: &TokenKind, context: &str) -> Result<Span, SchemaError> {
        let token = self.next()?;
        if &token.kind == kind {
            return Ok(token.span);
        }
        Err(unexpected(
            &token,
            &format!("`{}` {context}", kind.spelling().unwrap_or_default()),
        ))
    }

    /// Consumes an identifier; `what` names it in the error ("entity name").
    fn ident(&mut self, what: &str) -> Result<Ident, SchemaError> {
        let token = self.next()?;
        match token.kind {
            TokenKind::Ident(name) => Ok(Ident {
                name,
                span: token.span,
            }),
            ref kind if kind.spelling().is_some_and(is_keyword) => Err(SchemaError::syntax(
                token.span,
                format!("expected {what}, found keyword {}", kind.describe()),
            )),
            _ => Err(unexpected(&token, what)),
        }
    }

    fn schema(&mut self) -> Result<Schema, SchemaError> {
        let mut decls = Vec::new();
        loop {
            match self.peek_kind()? {
                TokenKind::Entity => decls.push(Decl::Entity(self.entity()?)),
                TokenKind::Rule => decls.push(Decl::Rule(self.rule()?)),
                TokenKind::Eof => return Ok(Schema { decls }),
                _ => {
                    let token = self.next()?;
                    return Err(unexpected(&token, "`entity` or `rule`"));
                }
            }
        }
    }

    fn entity(&mut self) -> Result<EntityDecl, SchemaError> {
        let keyword = self.expect(&TokenKind::Entity, "")?;
        let name = self.ident("an entity name")?;
        self.expect(&TokenKind::LBrace, "after the entity name")?;
        let mut members = Vec::new();
        loop {
            let member = match self.peek_kind()? {
                TokenKind::Relation => self.relation()?,
                TokenKind::Attribute => self.attribute()?,
                TokenKind::Permission | TokenKind::Action => self.permission()?,
                TokenKind::RBrace => {
                    self.next()?;
                    return Ok(EntityDecl {
                        keyword,
                        name,
                        members,
                    });
                }
                _ => {
                    let token = self.next()?;
                    let expected = match members.last() {
                        Some(MemberDecl::Permission(_)) => {
                            "`and`, `or`, `not`, `relation`, `permission`, `action`, `attribute` or `}`"
                        }
                        _ => "`relation`, `permission`, `action`, `attribute` or `}`",
                    };
                    return Err(unexpected(&token, expected));
                }
            };
            members.push(member);
        }
    }

    fn relation(&mut self) -> Result<MemberDecl, SchemaError> {
        self.next()?;
        let name = self.ident("a relation name")?;
        let mut subjects = Vec::new();
        while let Some(span) = self.eat(&TokenKind::At)? {
            let entity = self.ident("an entity name after `@`")?;
            let relation = match self.eat(&TokenKind::Hash)? {
                Some(_) => Some(self.ident("a relation name after `#`")?),
                None => None,
            };
            subjects.push(SubjectRef {
                span,
                entity,
                relation,
            });
        }
        if subjects.is_empty() {
            let token = self.next()?;
            return Err(unexpected(
                &token,
                &format!("`@` and a subject type for relation `{}`", name.name),
            ));
        }
        Ok(MemberDecl::Relation(RelationDecl { name, subjects }))
    }

    fn attribute(&mut self) -> Result<MemberDecl, SchemaError> {
        self.next()?;
        let name = self.ident("an attribute name")?;
        let (ty, ty_span) = self.attr_type()?;
        Ok(MemberDecl::Attribute(AttributeDecl { name, ty, ty_span }))
    }

    /// `boolean | string | integer | double`, optionally followed by `[]`.
    fn attr_type(&mut self) -> Result<(AttrType, Span), SchemaError> {
        let token = self.next()?;
        let TokenKind::Ident(base) = &token.kind else {
            return Err(unexpected(
                &token,
                "a type (`boolean`, `string`, `integer` or `double`)",
            ));
        };
        let array = match self.eat(&TokenKind::LBracket)? {
            Some(_) => {
                self.expect(&TokenKind::RBracket, "after `[` in an array type")?;
                true
            }
            None => false,
        };
        let spelled = if array {
            format!("{base}[]")
        } else {
            base.clone()
        };
        match AttrType::parse(&spelled) {
            Some(ty) => Ok((ty, token.span)),
            None => Err(SchemaError::syntax(
                token.span,
                format!(
                    "unknown type `{spelled}`, expected `boolean`, `string`, `integer` or `double`, optionally followed by `[]`"
                ),
            )),
        }
    }

    fn permission(&mut self) -> Result<MemberDecl, SchemaError> {
        let keyword = self.next()?;
        let is_action = keyword.kind == TokenKind::Action;
        let what = if is_action {
            "an action"
        } else {
            "a permission"
        };
        let name = self.ident(&format!("{what} name"))?;
        self.expect(&TokenKind::Eq, &format!("after {what} name"))?;
        let expr = self.expr()?;
        Ok(MemberDecl::Permission(PermissionDecl {
            name,
            is_action,
            expr,
        }))
    }

    fn expr(&mut self) -> Result<Expr, SchemaError> {
        let first = self.operand()?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek_kind()? {
                TokenKind::And => BinOp::And,
                TokenKind::Or => BinOp::Or,
                TokenKind::Not => BinOp::Not,
                _ => return Ok(Expr { first, rest }),
            };
            let span = self.next()?.span;
            rest.push((op, span, self.operand()?));
        }
    }

    fn operand(&mut self) -> Result<Operand, SchemaError> {
        let token = self.next()?;
        match token.kind {
            TokenKind::LParen => {
                if self.depth >= MAX_NESTING {
                    return Err(SchemaError::new(
                        SchemaErrorKind::TooDeep,
                        token.span,
                        format!("expression nests parentheses deeper than {MAX_NESTING} levels"),
                    ));
                }
                self.depth += 1;
                let inner = self.expr();
                self.depth -= 1;
                let inner = inner?;
                self.expect(&TokenKind::RParen, "to close the parenthesis")?;
                Ok(Operand::Paren(Box::new(inner), token.span))
            }
            TokenKind::Ident(name) => {
                let first = Ident {
                    name,
                    span: token.span,
                };
                match self.peek_kind()? {
                    TokenKind::LParen => {
                        self.next()?;
                        let args = self.call_args()?;
                        Ok(Operand::Call { rule: first, args })
                    }
                    TokenKind::Dot => {
                        let mut path = vec![first];
                        while self.eat(&TokenKind::Dot)?.is_some() {
                            if path.len() >= MAX_NESTING {
                                return Err(SchemaError::new(
                                    SchemaErrorKind::TooDeep,
                                    path.first().map(|i| i.span).unwrap_or_default(),
                                    format!("arrow chain longer than {MAX_NESTING} hops"),
                                ));
                            }
                            path.push(self.ident("a relation or permission name after `.`")?);
                        }
                        Ok(Operand::Path(path))
                    }
                    _ => Ok(Operand::Path(vec![first])),
                }
            }
            TokenKind::Not => Err(SchemaError::new(
                SchemaErrorKind::Unsupported,
                token.span,
                "unary `not` is not supported, write `a not b` to exclude `b` from `a`",
            )),
            _ => Err(unexpected(
                &token,
                "a relation, permission, attribute, rule call or `(`",
            )),
        }
    }

    /// The arguments of a call, after its `(`, through the `)`.
    fn call_args(&mut self) -> Result<Vec<Arg>, SchemaError> {
        let mut args = Vec::new();
        if self.eat(&TokenKind::RParen)?.is_some() {
            return Ok(args);
        }
        loop {
            let name = self.ident("an attribute name or `request.NAME` as rule argument")?;
            if name.name == "request" && self.eat(&TokenKind::Dot)?.is_some() {
                args.push(Arg::Context(self.ident("a context key after `request.`")?));
            } else {
                args.push(Arg::Attribute(name));
            }
            let token = self.next()?;
            match token.kind {
                TokenKind::Comma => {}
                TokenKind::RParen => return Ok(args),
                _ => return Err(unexpected(&token, "`,` or `)` in rule call")),
            }
        }
    }

    fn rule(&mut self) -> Result<RuleDecl, SchemaError> {
        let keyword = self.expect(&TokenKind::Rule, "")?;
        let name = self.ident("a rule name")?;
        self.expect(&TokenKind::LParen, "after the rule name")?;
        let mut params = Vec::new();
        if self.eat(&TokenKind::RParen)?.is_none() {
            loop {
                let name = self.ident("a parameter name")?;
                let (ty, ty_span) = self.attr_type()?;
                params.push(Param { name, ty, ty_span });
                let token = self.next()?;
                match token.kind {
                    TokenKind::Comma => {}
                    TokenKind::RParen => break,
                    _ => return Err(unexpected(&token, "`,` or `)` in rule parameters")),
                }
            }
        }
        let open = self.expect(&TokenKind::LBrace, "to open the rule body")?;
        // `expect` consumed the brace through `next`, so nothing is buffered past it and the
        // lexer stands right after it.
        let raw = self.lexer.rule_body(open)?;
        let body_span = first_non_blank(&raw.text, raw.start);
        Ok(RuleDecl {
            keyword,
            name,
            params,
            body: raw.text,
            body_span,
            body_start: raw.start,
        })
    }
}

fn is_keyword(spelling: &str) -> bool {
    TokenKind::keyword(spelling).is_some()
}

/// "expected X, found Y" at `token`.
fn unexpected(token: &Token, expected: &str) -> SchemaError {
    let expected = expected.trim_end();
    SchemaError::syntax(
        token.span,
        format!("expected {expected}, found {}", token.kind.describe()),
    )
}

/// Where the first non-whitespace character of `text` is, given that `text` starts at `start`.
fn first_non_blank(text: &str, start: Span) -> Span {
    let mut span = start;
    for c in text.chars() {
        if !c.is_whitespace() {
            return span;
        }
        if c == '\n' {
            span.line = span.line.saturating_add(1);
            span.column = 1;
        } else {
            span.column = span.column.saturating_add(1);
        }
    }
    start
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn expr_of(src: &str) -> String {
        let schema = parse(&format!("entity e {{ permission p = {src} }}")).unwrap();
        let Decl::Entity(entity) = &schema.decls[0] else {
            panic!("not an entity")
        };
        let MemberDecl::Permission(p) = &entity.members[0] else {
            panic!("not a permission")
        };
        p.expr.to_string()
    }

    fn err(src: &str) -> (SchemaErrorKind, String) {
        let e = parse(src).unwrap_err();
        (e.kind, e.to_string())
    }

    #[test]
    fn empty_sources() {
        assert_eq!(parse("").unwrap(), Schema::default());
        assert_eq!(
            parse("  \n// nothing\n/* at all */").unwrap(),
            Schema::default()
        );
    }

    #[test]
    fn precedence_is_left_to_right() {
        assert_eq!(expr_of("a or b not c"), "((a or b) not c)");
        assert_eq!(expr_of("a and b or c"), "((a and b) or c)");
        assert_eq!(expr_of("a not b and c"), "((a not b) and c)");
        assert_eq!(expr_of("a or b and c not d"), "(((a or b) and c) not d)");
    }

    #[test]
    fn parentheses_group() {
        assert_eq!(expr_of("a or (b not c)"), "(a or (b not c))");
        assert_eq!(expr_of("((a))"), "((a))");
        assert_eq!(expr_of("(a and b) or c"), "((a and b) or c)");
    }

    #[test]
    fn operands() {
        assert_eq!(expr_of("parent.view"), "parent.view");
        assert_eq!(expr_of("a.b.c.d"), "a.b.c.d");
        assert_eq!(
            expr_of("check(x, request.amount) and f()"),
            "(check(x, request.amount) and f())"
        );
    }

    #[test]
    fn multi_line_expressions() {
        let src = "entity e {\n permission p = a or\n   b\n not (\n c\n and d)\n relation a @e\n}";
        let schema = parse(src).unwrap();
        let Decl::Entity(entity) = &schema.decls[0] else {
            panic!()
        };
        let MemberDecl::Permission(p) = &entity.members[0] else {
            panic!()
        };
        assert_eq!(p.expr.to_string(), "((a or b) not (c and d))");
        assert_eq!(entity.members.len(), 2);
        assert_eq!(
            entity.members[1].name().span,
            Span {
                line: 7,
                column: 11
            }
        );
    }

    #[test]
    fn declarations() {
        let src = "entity user {}\nentity doc {\n  relation owner @user @group#member\n  attribute tags string[]\n  action edit = owner\n}\nrule r(a integer, b double[]) { a > 1 }";
        let schema = parse(src).unwrap();
        assert_eq!(schema.decls.len(), 3);
        let Decl::Entity(doc) = &schema.decls[1] else {
            panic!()
        };
        assert_eq!(doc.name.name, "doc");
        assert_eq!(doc.name.span, Span { line: 2, column: 8 });
        let MemberDecl::Relation(owner) = &doc.members[0] else {
            panic!()
        };
        assert_eq!(owner.subjects.len(), 2);
        assert_eq!(owner.subjects[1].entity.name, "group");
        assert_eq!(
            owner.subjects[1].relation.as_ref().map(|r| r.name.as_str()),
            Some("member")
        );
        let MemberDecl::Attribute(tags) = &doc.members[1] else {
            panic!()
        };
        assert_eq!(tags.ty, AttrType::StringArray);
        let MemberDecl::Permission(edit) = &doc.members[2] else {
            panic!()
        };
        assert!(edit.is_action);
        let Decl::Rule(rule) = &schema.decls[2] else {
            panic!()
        };
        assert_eq!(rule.params.len(), 2);
        assert_eq!(rule.params[1].ty, AttrType::DoubleArray);
        assert_eq!(rule.body, " a > 1 ");
        assert_eq!(
            rule.body_span,
            Span {
                line: 7,
                column: 33
            }
        );
        assert_eq!(
            rule.body_start,
            Span {
                line: 7,
                column: 32
            }
        );
    }

    #[test]
    fn syntax_errors() {
        let cases = [
            ("entity", "1:7: expected an entity name, found end of input"),
            ("entity {", "1:8: expected an entity name, found `{`"),
            (
                "entity not {}",
                "1:8: expected an entity name, found keyword `not`",
            ),
            ("foo", "1:1: expected `entity` or `rule`, found `foo`"),
            (
                "entity a {\n relation b\n}",
                "3:1: expected `@` and a subject type for relation `b`, found `}`",
            ),
            (
                "entity a { relation b @ }",
                "1:25: expected an entity name after `@`, found `}`",
            ),
            (
                "entity a { permission p = }",
                "1:27: expected a relation, permission, attribute, rule call or `(`, found `}`",
            ),
            (
                "entity a { permission p = b c }",
                "1:29: expected `and`, `or`, `not`, `relation`, `permission`, `action`, `attribute` or `}`, found `c`",
            ),
            (
                "entity a { permission p = (b }",
                "1:30: expected `)` to close the parenthesis, found `}`",
            ),
            (
                "entity a { permission p b }",
                "1:25: expected `=` after a permission name, found `b`",
            ),
            (
                "entity a { attribute x float }",
                "1:24: unknown type `float`, expected `boolean`, `string`, `integer` or `double`, optionally followed by `[]`",
            ),
            (
                "entity a { attribute x string[ }",
                "1:32: expected `]` after `[` in an array type, found `}`",
            ),
            (
                "entity a { permission p = f(a b) }",
                "1:31: expected `,` or `)` in rule call, found `b`",
            ),
            (
                "rule r(a integer b) {}",
                "1:18: expected `,` or `)` in rule parameters, found `b`",
            ),
            (
                "rule r() a",
                "1:10: expected `{` to open the rule body, found `a`",
            ),
            (
                "rule r() {\n a > 1",
                "1:10: unterminated rule body: missing `}`",
            ),
            ("entity a {} /*", "1:13: unterminated block comment"),
            ("entity a { $ }", "1:12: unexpected character `$`"),
            (
                "entity a { relation b @c",
                "1:25: expected `relation`, `permission`, `action`, `attribute` or `}`, found end of input",
            ),
        ];
        for (src, want) in cases {
            assert_eq!(
                err(src),
                (SchemaErrorKind::Syntax, want.to_string()),
                "{src}"
            );
        }
    }

    #[test]
    fn leading_not_is_unsupported() {
        assert_eq!(
            err("entity a {\n  permission p = not b\n}"),
            (
                SchemaErrorKind::Unsupported,
                "2:18: unary `not` is not supported, write `a not b` to exclude `b` from `a`"
                    .to_string()
            )
        );
        assert_eq!(
            err("entity a { permission p = b or (not c) }").0,
            SchemaErrorKind::Unsupported
        );
    }

    #[test]
    fn deep_parentheses_are_too_deep() {
        let deep = format!(
            "entity a {{ permission p = {}b{} }}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        let e = parse(&deep).unwrap_err();
        assert_eq!(e.kind, SchemaErrorKind::TooDeep);
        assert_eq!(
            e.to_string(),
            "1:283: expression nests parentheses deeper than 256 levels"
        );
        // Exactly at the limit is fine.
        let ok = format!(
            "entity a {{ permission p = {}b{} }}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(parse(&ok).is_ok());
        // Unclosed parentheses too.
        let e = parse(&format!(
            "entity a {{ permission p = {}",
            "(".repeat(100_000)
        ))
        .unwrap_err();
        assert_eq!(e.kind, SchemaErrorKind::TooDeep);
    }

    #[test]
    fn long_arrow_chains_are_too_deep() {
        let long = format!("entity a {{ permission p = a{} }}", ".a".repeat(100_000));
        assert_eq!(parse(&long).unwrap_err().kind, SchemaErrorKind::TooDeep);
        let ok = format!(
            "entity a {{ permission p = a{} }}",
            ".a".repeat(MAX_NESTING - 1)
        );
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn long_flat_chains_are_fine_to_parse() {
        let mut src = String::from("entity a { permission p = a");
        for i in 0..100_000 {
            src.push_str(if i % 2 == 0 { " or a" } else { " not a" });
        }
        src.push_str(" }");
        assert!(parse(&src).is_ok());
    }

    #[test]
    fn entity_garbage_is_an_error() {
        let e = parse(&"entity ".repeat(100_000)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "1:8: expected an entity name, found keyword `entity`"
        );
        let e = parse(&"{".repeat(100_000)).unwrap_err();
        assert_eq!(e.to_string(), "1:1: expected `entity` or `rule`, found `{`");
    }
}
