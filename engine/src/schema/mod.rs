//! The schema language: Permify's `entity` / `relation` / `attribute` / `permission` /
//! `action` / `rule` declarations, compiled to the [`Schema`] the evaluators read.
//!
//! The front end is [`lexer`] → [`parser`] (an [`ast::Schema`]) → compilation
//! ([`compile_ast`]); [`compile()`] runs all three. Every failure is a [`SchemaError`] with a
//! 1-based line and column; no input makes the front end panic or overflow its stack.
//!
//! Beyond Permify, arrows may have several hops (`parent.owner.member`).

pub mod ast;
mod compile;
mod error;
pub mod ir;
pub mod lexer;
pub mod parser;
pub mod print;

#[cfg(test)]
mod tests;

pub use compile::{
    MAX_EXPR_NODES, MAX_MEMBERS_PER_ENTITY, MAX_PERMISSION_CHAIN, MAX_RULE_DEPTH, compile_ast,
};
pub use error::{SchemaError, SchemaErrorKind};
pub use ir::*;
pub use parser::{MAX_NESTING, parse};
pub use print::print;

/// Compiles a schema source.
///
/// Checks, beyond syntax:
/// - entity, rule and member names are unique (relations, permissions and attributes share one
///   namespace per entity), and so are the parameters of a rule;
/// - `@T` names a declared entity, and `@T#rel` a relation or permission of `T`;
/// - every name in an expression resolves: a bare name is a relation, permission or `boolean`
///   attribute; in `a.b`, `a` is a relation and `b` a relation or permission of at least one of
///   `a`'s subject types (types lacking it are skipped);
/// - rule calls name a declared rule, pass one argument per parameter, and each argument is an
///   attribute of the parameter's type or `request.NAME`;
/// - no permission depends on itself without going through an arrow;
/// - rule bodies are valid CEL;
/// - the source is at most [`MAX_SCHEMA_BYTES`], no entity has more than
///   [`MAX_MEMBERS_PER_ENTITY`] members, and no chain of permissions referencing one another
///   (`p2 = p1`, `p1 = p0`, …) is longer than [`MAX_PERMISSION_CHAIN`].
///
/// Names may be used before they are declared. An empty source is an empty schema.
pub fn compile(source: &str) -> Result<Schema, SchemaError> {
    if source.len() > MAX_SCHEMA_BYTES {
        return Err(SchemaError::new(
            SchemaErrorKind::TooLarge,
            Span { line: 1, column: 1 },
            format!(
                "schema is {} bytes, more than the limit of {MAX_SCHEMA_BYTES} (schema bytes)",
                source.len()
            ),
        ));
    }
    compile_ast(&parse(source)?)
}

/// The largest schema source accepted, in bytes.
pub const MAX_SCHEMA_BYTES: usize = 2 << 20;
