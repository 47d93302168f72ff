//! The compiled schema: what the evaluators read.
//!
//! A [`Schema`] is produced only by [`crate::schema::compile()`], which guarantees its invariants:
//! - every name referenced by an expression resolves (indices are in bounds);
//! - no permission depends on itself without passing through a relation (an arrow or a subject
//!   set), so evaluating an expression for one entity terminates without data;
//! - rule programs parse, and every call passes as many arguments as the rule declares, each an
//!   attribute (or context value) of the declared type.
//!
//! Expressions are evaluated relative to one entity type: leaves name members of that type, and
//! an [`Expr::Arrow`] switches to the types of the subjects of a relation.

use std::collections::HashMap;
use std::sync::Arc;

/// Index of an entity type in [`Schema::entities`].
pub type TypeId = usize;
/// Index of a relation in [`EntityDef::relations`].
pub type RelId = usize;
/// Index of a permission or action in [`EntityDef::permissions`].
pub type PermId = usize;
/// Index of an attribute in [`EntityDef::attributes`].
pub type AttrId = usize;
/// Index of a rule in [`Schema::rules`].
pub type RuleId = usize;

/// Where something was written in the schema source, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub line: u32,
    pub column: u32,
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The value type of an attribute or a rule parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    Boolean,
    String,
    Integer,
    Double,
    BooleanArray,
    StringArray,
    IntegerArray,
    DoubleArray,
}

impl AttrType {
    /// The schema spelling: `boolean`, `string[]`, ...
    pub fn name(self) -> &'static str {
        match self {
            AttrType::Boolean => "boolean",
            AttrType::String => "string",
            AttrType::Integer => "integer",
            AttrType::Double => "double",
            AttrType::BooleanArray => "boolean[]",
            AttrType::StringArray => "string[]",
            AttrType::IntegerArray => "integer[]",
            AttrType::DoubleArray => "double[]",
        }
    }

    /// Parses the schema spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<AttrType> {
        Some(match s {
            "boolean" => AttrType::Boolean,
            "string" => AttrType::String,
            "integer" => AttrType::Integer,
            "double" => AttrType::Double,
            "boolean[]" => AttrType::BooleanArray,
            "string[]" => AttrType::StringArray,
            "integer[]" => AttrType::IntegerArray,
            "double[]" => AttrType::DoubleArray,
            _ => return None,
        })
    }
}

impl std::fmt::Display for AttrType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A compiled schema. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Schema {
    pub entities: Vec<EntityDef>,
    pub rules: Vec<RuleDef>,
    /// Entity type name → index in `entities`.
    pub entity_index: HashMap<String, TypeId>,
    /// Rule name → index in `rules`.
    pub rule_index: HashMap<String, RuleId>,
}

/// What a name inside an entity refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Member {
    Relation(RelId),
    Permission(PermId),
    Attribute(AttrId),
}

#[derive(Debug)]
pub struct EntityDef {
    pub name: String,
    pub span: Span,
    pub relations: Vec<RelationDef>,
    pub permissions: Vec<PermissionDef>,
    pub attributes: Vec<AttributeDef>,
    /// Every member name of this entity → what it is. Names are unique across kinds.
    pub members: HashMap<String, Member>,
}

#[derive(Debug)]
pub struct RelationDef {
    pub name: String,
    pub span: Span,
    /// The subject types this relation accepts, in the order written. Never empty.
    pub allowed: Vec<AllowedSubject>,
}

/// One `@type` or `@type#relation` of a relation declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSubject {
    pub entity: TypeId,
    /// `Some(name)` for a subject set `@group#member`; `name` is a relation or permission of
    /// `entity` (checked at compile time).
    pub relation: Option<String>,
}

#[derive(Debug)]
pub struct PermissionDef {
    pub name: String,
    pub span: Span,
    /// `true` when declared with `action` rather than `permission`; they behave the same.
    pub is_action: bool,
    pub expr: Expr,
}

#[derive(Debug)]
pub struct AttributeDef {
    pub name: String,
    pub span: Span,
    pub ty: AttrType,
}

/// A compiled permission expression, evaluated relative to one entity type.
///
/// `and`, `or` and `not` are left-associative with one precedence in the source, so
/// `a or b not c` compiles to `Exclude(Union[a, b], c)`. Chains of the same operator are
/// flattened: `a or b or c` is one `Union` with three children.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// At least one child holds. Two or more children.
    Union(Vec<Expr>),
    /// Every child holds. Two or more children.
    Intersect(Vec<Expr>),
    /// `base not excluded`: the left holds and the right does not.
    Exclude(Box<Expr>, Box<Expr>),
    /// A relation of this entity, including its subject sets (`@group#member` tuples are followed).
    Relation(RelId),
    /// Another permission of this entity.
    Permission(PermId),
    /// A boolean attribute of this entity, used bare (`permission view = is_public`).
    Attribute(AttrId),
    /// `via.rest`: for every subject `s` of relation `via` (its entity part, regardless of any
    /// subject relation), `rest` evaluated on `s`. `targets` holds one compiled `rest` per subject
    /// type of `via` that has the referenced member, in the order of `via`'s allowed types;
    /// types lacking it contribute nothing. Multi-hop arrows nest: `a.b.c` is
    /// `Arrow { via: a, targets: [(T, Arrow { via: b, targets: [(U, c)] })] }`.
    Arrow {
        via: RelId,
        targets: Vec<(TypeId, Expr)>,
    },
    /// A rule called with values of this entity.
    Call { rule: RuleId, args: Vec<CallArg> },
}

/// An argument of a rule call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallArg {
    /// An attribute of the entity being evaluated; a missing value is the type's empty value.
    Attribute(AttrId),
    /// `request.NAME` (Permify's older form): `context.data.NAME` of the request.
    Context(String),
}

/// A `rule NAME(params) { body }` declaration.
pub struct RuleDef {
    pub name: String,
    pub span: Span,
    /// Parameter names and types, in order.
    pub params: Vec<(String, AttrType)>,
    /// The CEL source of the body, as written between the braces.
    pub body: String,
    /// The parsed CEL program, ready to execute.
    pub program: Arc<cel::Program>,
}

impl std::fmt::Debug for RuleDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleDef")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("body", &self.body)
            .finish()
    }
}

impl Schema {
    /// The entity type named `name`.
    pub fn entity(&self, name: &str) -> Option<(TypeId, &EntityDef)> {
        let id = *self.entity_index.get(name)?;
        self.entities.get(id).map(|def| (id, def))
    }

    /// The entity type at `id`. Panics never: callers hold ids from this schema.
    pub fn entity_at(&self, id: TypeId) -> &EntityDef {
        &self.entities[id]
    }

    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<(RuleId, &RuleDef)> {
        let id = *self.rule_index.get(name)?;
        self.rules.get(id).map(|def| (id, def))
    }
}

impl EntityDef {
    /// The member named `name` of this entity.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.members.get(name).copied()
    }

    /// The relation named `name`.
    pub fn relation(&self, name: &str) -> Option<(RelId, &RelationDef)> {
        match self.member(name)? {
            Member::Relation(id) => self.relations.get(id).map(|def| (id, def)),
            _ => None,
        }
    }

    /// The attribute named `name`.
    pub fn attribute(&self, name: &str) -> Option<(AttrId, &AttributeDef)> {
        match self.member(name)? {
            Member::Attribute(id) => self.attributes.get(id).map(|def| (id, def)),
            _ => None,
        }
    }

    /// The name of a member.
    pub fn member_name(&self, member: Member) -> &str {
        match member {
            Member::Relation(id) => &self.relations[id].name,
            Member::Permission(id) => &self.permissions[id].name,
            Member::Attribute(id) => &self.attributes[id].name,
        }
    }
}
