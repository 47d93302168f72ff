//! Errors of the schema front end: one type for lexing, parsing and compiling.
//!
//! Every error carries the [`Span`] where the problem was written, a [`SchemaErrorKind`] for
//! programs, and a message for people. Messages are lowercase, carry no trailing period and quote
//! user input in backticks; [`SchemaError`]'s `Display` prefixes them with `line:column`, e.g.
//! ``1:5: undefined relation or permission `foo` in entity `doc` ``.

use super::ir::Span;

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaErrorKind {
    /// The source is not a schema: an unexpected character or token, an unterminated comment or
    /// rule body, an unknown attribute type, a relation without subject types.
    Syntax,
    /// `@T` or `@T#rel` names an entity type that is not declared.
    UndefinedEntity,
    /// A name does not resolve to a member (relation, permission or attribute) of the entity.
    UndefinedMember,
    /// A call names a rule that is not declared.
    UndefinedRule,
    /// An entity, rule, member of an entity, or rule parameter is declared twice.
    DuplicateName,
    /// A rule call passes more or fewer arguments than the rule declares.
    RuleArgumentCount,
    /// A rule call passes an attribute whose type differs from the parameter's.
    RuleArgumentType,
    /// A permission depends on itself without going through a relation.
    SelfReference,
    /// A construct this engine (or Permify) does not support: a leading `not`, a non-boolean
    /// attribute used as a permission, an arrow from a non-relation or to an attribute.
    Unsupported,
    /// A rule body is not valid CEL.
    InvalidRule,
    /// Nesting (parentheses, arrow hops, alternating operators, rule bodies) or expansion
    /// beyond the front end's limits.
    TooDeep,
    /// A schema beyond a size limit: its bytes, the members of one entity, or the length of a
    /// chain of permissions referencing one another ([`super::MAX_SCHEMA_BYTES`],
    /// [`super::MAX_MEMBERS_PER_ENTITY`], [`super::MAX_PERMISSION_CHAIN`]).
    TooLarge,
}

/// An error in a schema source, located at `span`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{span}: {message}")]
pub struct SchemaError {
    pub kind: SchemaErrorKind,
    pub message: String,
    pub span: Span,
}

impl SchemaError {
    /// An error of `kind` at `span`.
    pub fn new(kind: SchemaErrorKind, span: Span, message: impl Into<String>) -> SchemaError {
        SchemaError {
            kind,
            message: message.into(),
            span,
        }
    }

    /// A [`SchemaErrorKind::Syntax`] error at `span`.
    pub fn syntax(span: Span, message: impl Into<String>) -> SchemaError {
        SchemaError::new(SchemaErrorKind::Syntax, span, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_prefixes_the_position() {
        let err = SchemaError::new(
            SchemaErrorKind::UndefinedMember,
            Span { line: 1, column: 5 },
            "undefined relation or permission `foo` in entity `doc`",
        );
        assert_eq!(
            err.to_string(),
            "1:5: undefined relation or permission `foo` in entity `doc`"
        );
    }
}
