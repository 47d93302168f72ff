//! The syntax tree of a schema source, as written: names are unresolved strings with spans.
//!
//! [`crate::schema::parser`] builds it and [`crate::schema::compile_ast`] lowers it to the
//! [`ir`](super::ir). Expressions keep the source's flat shape: `and`, `or` and `not` share one
//! precedence and associate to the left, so an [`Expr`] is a first operand followed by
//! `(operator, operand)` pairs. Only parentheses nest, and the parser bounds that nesting, so
//! walking (or dropping) a tree never recurses deeply.

use std::fmt;

use super::ir::{AttrType, Span};

/// A name and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole schema source: its declarations in source order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    pub decls: Vec<Decl>,
}

/// A top-level declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum Decl {
    Entity(EntityDecl),
    Rule(RuleDecl),
}

/// `entity NAME { members }`.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityDecl {
    /// Where the `entity` keyword is.
    pub keyword: Span,
    pub name: Ident,
    pub members: Vec<MemberDecl>,
}

/// One member of an entity.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberDecl {
    Relation(RelationDecl),
    Attribute(AttributeDecl),
    /// `permission` or `action`.
    Permission(PermissionDecl),
}

impl MemberDecl {
    /// The member's name.
    pub fn name(&self) -> &Ident {
        match self {
            MemberDecl::Relation(r) => &r.name,
            MemberDecl::Attribute(a) => &a.name,
            MemberDecl::Permission(p) => &p.name,
        }
    }
}

/// `relation NAME @T @T#rel ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationDecl {
    pub name: Ident,
    /// Never empty.
    pub subjects: Vec<SubjectRef>,
}

/// `@T` or `@T#rel`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectRef {
    /// Where the `@` is.
    pub span: Span,
    pub entity: Ident,
    pub relation: Option<Ident>,
}

/// `attribute NAME TYPE`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeDecl {
    pub name: Ident,
    pub ty: AttrType,
    pub ty_span: Span,
}

/// `permission NAME = EXPR` or `action NAME = EXPR`.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionDecl {
    pub name: Ident,
    pub is_action: bool,
    pub expr: Expr,
}

/// `rule NAME(PARAM TYPE, ...) { CEL }`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDecl {
    /// Where the `rule` keyword is.
    pub keyword: Span,
    pub name: Ident,
    pub params: Vec<Param>,
    /// The CEL text between the braces, verbatim.
    pub body: String,
    /// Where the body's first non-blank character is (right after `{` for a blank body).
    pub body_span: Span,
    /// Where the character right after `{` is: line/column 1:1 of the CEL text.
    pub body_start: Span,
}

/// A rule parameter: `NAME TYPE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: AttrType,
    pub ty_span: Span,
}

/// A binary operator of permission expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    And,
    Or,
    Not,
}

impl BinOp {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Not => "not",
        }
    }
}

/// A permission expression: `first op1 operand1 op2 operand2 ...`, evaluated left to right
/// (`a or b not c` is `(a or b) not c`).
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub first: Operand,
    pub rest: Vec<(BinOp, Span, Operand)>,
}

/// An operand of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `name` or `name.name...`: never empty.
    Path(Vec<Ident>),
    /// `rule(args)`.
    Call { rule: Ident, args: Vec<Arg> },
    /// `( expr )`; the span is the `(`'s.
    Paren(Box<Expr>, Span),
}

impl Operand {
    /// Where the operand starts.
    pub fn span(&self) -> Span {
        match self {
            Operand::Path(path) => path.first().map(|i| i.span).unwrap_or_default(),
            Operand::Call { rule, .. } => rule.span,
            Operand::Paren(_, span) => *span,
        }
    }
}

/// An argument of a rule call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// An attribute of the entity.
    Attribute(Ident),
    /// `request.NAME`; the identifier is `NAME`.
    Context(Ident),
}

/// Prints the expression fully parenthesized, operators left to right:
/// `a or b not c` prints as `((a or b) not c)`.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in &self.rest {
            f.write_str("(")?;
        }
        write!(f, "{}", self.first)?;
        for (op, _, operand) in &self.rest {
            write!(f, " {} {operand})", op.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Path(path) => {
                for (i, ident) in path.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(&ident.name)?;
                }
                Ok(())
            }
            Operand::Call { rule, args } => {
                write!(f, "{}(", rule.name)?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match arg {
                        Arg::Attribute(a) => f.write_str(&a.name)?,
                        Arg::Context(c) => write!(f, "request.{}", c.name)?,
                    }
                }
                f.write_str(")")
            }
            Operand::Paren(inner, _) if inner.rest.is_empty() => write!(f, "({inner})"),
            // A chain already prints its own parentheses.
            Operand::Paren(inner, _) => write!(f, "{inner}"),
        }
    }
}
