//! The data model: entities, subjects, tuples and attributes, and their text forms.
//!
//! Text forms follow Permify's validation files:
//! - tuple: `doc:1#viewer@user:2` or `doc:1#viewer@group:2#member`
//! - attribute: `doc:1$public|boolean:true`, `doc:1$tags|string[]:a,b`
//!
//! Identifier rules (checked by [`check_entity_type`] and [`check_id`]) follow Permify's
//! patterns: type and relation names are `[a-zA-Z_][a-zA-Z0-9_]*` of at most 64 characters;
//! IDs are 1 to 128 characters of `[a-zA-Z0-9_|\-@.+=:/]` (Permify allows `*` too, for wildcards).

use std::fmt;

use crate::schema::AttrType;

/// Longest entity ID accepted.
pub const MAX_ID_LEN: usize = 128;
/// Longest type, relation or attribute name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// An error in the text form or the shape of a tuple, attribute or reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("invalid tuple `{text}`: {reason}")]
    Tuple { text: String, reason: String },
    #[error("invalid attribute `{text}`: {reason}")]
    Attribute { text: String, reason: String },
    #[error("invalid entity `{text}`: {reason}")]
    Entity { text: String, reason: String },
    #[error("invalid subject `{text}`: {reason}")]
    Subject { text: String, reason: String },
    #[error("invalid {what} `{value}`: {reason}")]
    Name {
        what: &'static str,
        value: String,
        reason: String,
    },
}

/// `type:id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef {
    pub ty: String,
    pub id: String,
}

/// `type:id` or `type:id#relation` (a subject set).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectRef {
    pub ty: String,
    pub id: String,
    /// `Some` for a subject set such as `group:1#member`; `None` (or Permify's `...`, which is
    /// normalised to `None` by the parsers) for a plain subject.
    pub relation: Option<String>,
}

/// `entity#relation@subject`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    pub entity: EntityRef,
    pub relation: String,
    pub subject: SubjectRef,
}

/// A typed attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Boolean(bool),
    String(String),
    Integer(i64),
    Double(f64),
    BooleanArray(Vec<bool>),
    StringArray(Vec<String>),
    IntegerArray(Vec<i64>),
    DoubleArray(Vec<f64>),
}

/// `entity$name|type:value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub entity: EntityRef,
    pub name: String,
    pub value: AttrValue,
}

impl EntityRef {
    pub fn new(ty: impl Into<String>, id: impl Into<String>) -> Self {
        EntityRef {
            ty: ty.into(),
            id: id.into(),
        }
    }

    /// Parses `type:id`, checking both parts.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let err = |reason: String| ModelError::Entity {
            text: text.to_string(),
            reason,
        };
        let (ty, id) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| err("expected `type:id`".to_string()))?;
        check_entity_type(ty).map_err(|e| err(e.to_string()))?;
        check_id(id).map_err(|e| err(e.to_string()))?;
        Ok(EntityRef::new(ty, id))
    }
}

impl SubjectRef {
    pub fn new(ty: impl Into<String>, id: impl Into<String>, relation: Option<String>) -> Self {
        SubjectRef {
            ty: ty.into(),
            id: id.into(),
            relation,
        }
    }

    /// A plain subject `type:id`.
    pub fn user(ty: impl Into<String>, id: impl Into<String>) -> Self {
        SubjectRef::new(ty, id, None)
    }

    /// Parses `type:id` or `type:id#relation`; `type:id#...` means a plain subject.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let err = |reason: String| ModelError::Subject {
            text: text.to_string(),
            reason,
        };
        let text_trimmed = text.trim();
        let (head, relation) = match text_trimmed.split_once('#') {
            Some((head, rel)) => (head, normalize_subject_relation(rel)),
            None => (text_trimmed, None),
        };
        let entity = EntityRef::parse(head).map_err(|e| err(inner_reason(&e)))?;
        if let Some(rel) = &relation {
            check_name("relation", rel).map_err(|e| err(e.to_string()))?;
        }
        Ok(SubjectRef {
            ty: entity.ty,
            id: entity.id,
            relation,
        })
    }

    /// The entity part of this subject.
    pub fn entity(&self) -> EntityRef {
        EntityRef::new(self.ty.clone(), self.id.clone())
    }
}

/// Permify writes a plain subject's relation as empty or as `...`.
pub fn normalize_subject_relation(rel: &str) -> Option<String> {
    let rel = rel.trim();
    if rel.is_empty() || rel == "..." {
        None
    } else {
        Some(rel.to_string())
    }
}

fn inner_reason(e: &ModelError) -> String {
    match e {
        ModelError::Tuple { reason, .. }
        | ModelError::Attribute { reason, .. }
        | ModelError::Entity { reason, .. }
        | ModelError::Subject { reason, .. }
        | ModelError::Name { reason, .. } => reason.clone(),
    }
}

impl Tuple {
    pub fn new(entity: EntityRef, relation: impl Into<String>, subject: SubjectRef) -> Self {
        Tuple {
            entity,
            relation: relation.into(),
            subject,
        }
    }

    /// Parses `type:id#relation@type:id` or `type:id#relation@type:id#relation`.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let err = |reason: String| ModelError::Tuple {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        let (left, right) = trimmed
            .split_once('@')
            .ok_or_else(|| err("expected `entity#relation@subject`".to_string()))?;
        let (entity, relation) = left
            .split_once('#')
            .ok_or_else(|| err("expected `#relation` after the entity".to_string()))?;
        let entity = EntityRef::parse(entity).map_err(|e| err(inner_reason(&e)))?;
        check_name("relation", relation).map_err(|e| err(e.to_string()))?;
        let subject = SubjectRef::parse(right).map_err(|e| err(inner_reason(&e)))?;
        Ok(Tuple::new(entity, relation, subject))
    }
}

impl Attribute {
    /// Parses `type:id$name|type:value`. Array values are comma-separated.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let err = |reason: String| ModelError::Attribute {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        let (entity, rest) = trimmed
            .split_once('$')
            .ok_or_else(|| err("expected `entity$name|type:value`".to_string()))?;
        let entity = EntityRef::parse(entity).map_err(|e| err(inner_reason(&e)))?;
        let (name, typed) = rest
            .split_once('|')
            .ok_or_else(|| err("expected `|type:value` after the attribute name".to_string()))?;
        check_name("attribute", name).map_err(|e| err(e.to_string()))?;
        let (ty, value) = typed
            .split_once(':')
            .ok_or_else(|| err("expected `type:value`".to_string()))?;
        let ty = AttrType::parse(ty.trim())
            .ok_or_else(|| err(format!("unknown attribute type `{}`", ty.trim())))?;
        let value = AttrValue::parse_text(ty, value).map_err(err)?;
        Ok(Attribute {
            entity,
            name: name.to_string(),
            value,
        })
    }
}

impl AttrValue {
    /// The type of this value.
    pub fn ty(&self) -> AttrType {
        match self {
            AttrValue::Boolean(_) => AttrType::Boolean,
            AttrValue::String(_) => AttrType::String,
            AttrValue::Integer(_) => AttrType::Integer,
            AttrValue::Double(_) => AttrType::Double,
            AttrValue::BooleanArray(_) => AttrType::BooleanArray,
            AttrValue::StringArray(_) => AttrType::StringArray,
            AttrValue::IntegerArray(_) => AttrType::IntegerArray,
            AttrValue::DoubleArray(_) => AttrType::DoubleArray,
        }
    }

    /// The empty value of a type (false, "", 0, 0.0, empty list), which a missing attribute takes.
    pub fn empty(ty: AttrType) -> AttrValue {
        match ty {
            AttrType::Boolean => AttrValue::Boolean(false),
            AttrType::String => AttrValue::String(String::new()),
            AttrType::Integer => AttrValue::Integer(0),
            AttrType::Double => AttrValue::Double(0.0),
            AttrType::BooleanArray => AttrValue::BooleanArray(Vec::new()),
            AttrType::StringArray => AttrValue::StringArray(Vec::new()),
            AttrType::IntegerArray => AttrValue::IntegerArray(Vec::new()),
            AttrType::DoubleArray => AttrValue::DoubleArray(Vec::new()),
        }
    }

    /// Parses the value part of the text form for a given type.
    pub fn parse_text(ty: AttrType, text: &str) -> Result<AttrValue, String> {
        let text = text.trim();
        let items = || -> Vec<&str> {
            if text.is_empty() {
                Vec::new()
            } else {
                text.split(',').map(str::trim).collect()
            }
        };
        Ok(match ty {
            AttrType::Boolean => AttrValue::Boolean(parse_bool(text)?),
            AttrType::String => AttrValue::String(text.to_string()),
            AttrType::Integer => AttrValue::Integer(parse_int(text)?),
            AttrType::Double => AttrValue::Double(parse_double(text)?),
            AttrType::BooleanArray => AttrValue::BooleanArray(
                items()
                    .into_iter()
                    .map(parse_bool)
                    .collect::<Result<_, _>>()?,
            ),
            AttrType::StringArray => {
                AttrValue::StringArray(items().into_iter().map(str::to_string).collect())
            }
            AttrType::IntegerArray => AttrValue::IntegerArray(
                items()
                    .into_iter()
                    .map(parse_int)
                    .collect::<Result<_, _>>()?,
            ),
            AttrType::DoubleArray => AttrValue::DoubleArray(
                items()
                    .into_iter()
                    .map(parse_double)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "TRUE" | "True" => Ok(true),
        "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("`{s}` is not a boolean")),
    }
}

fn parse_int(s: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("`{s}` is not an integer"))
}

fn parse_double(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a finite double")),
    }
}

/// Checks a type, relation, permission or attribute name.
pub fn check_name(what: &'static str, name: &str) -> Result<(), ModelError> {
    let err = |reason: &str| ModelError::Name {
        what,
        value: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(err("must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(err("is longer than 64 characters"));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(err("must match `[a-zA-Z_][a-zA-Z0-9_]*`"));
    }
    Ok(())
}

/// Checks an entity type name.
pub fn check_entity_type(name: &str) -> Result<(), ModelError> {
    check_name("entity type", name)
}

/// Checks an entity ID: 1 to 128 characters of `[a-zA-Z0-9_|\-@.+=:/*]`.
pub fn check_id(id: &str) -> Result<(), ModelError> {
    let err = |reason: &str| ModelError::Name {
        what: "entity id",
        value: if id.len() > 80 {
            format!("{}...", truncate(id, 80))
        } else {
            id.to_string()
        },
        reason: reason.to_string(),
    };
    if id.is_empty() {
        return Err(err("must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(err("is longer than 128 characters"));
    }
    if !id.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '_' | '|' | '-' | '@' | '.' | '+' | '=' | ':' | '/' | '*')
    }) {
        return Err(err("may contain only letters, digits and `_|-@.+=:/*`"));
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ty, self.id)
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.relation {
            Some(rel) => write!(f, "{}:{}#{}", self.ty, self.id, rel),
            None => write!(f, "{}:{}", self.ty, self.id),
        }
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.entity, self.relation, self.subject)
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn join<T: fmt::Display>(items: &[T]) -> String {
            items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
        match self {
            AttrValue::Boolean(v) => write!(f, "{v}"),
            AttrValue::String(v) => write!(f, "{v}"),
            AttrValue::Integer(v) => write!(f, "{v}"),
            AttrValue::Double(v) => write!(f, "{v}"),
            AttrValue::BooleanArray(v) => f.write_str(&join(v)),
            AttrValue::StringArray(v) => f.write_str(&v.join(",")),
            AttrValue::IntegerArray(v) => f.write_str(&join(v)),
            AttrValue::DoubleArray(v) => f.write_str(&join(v)),
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}${}|{}:{}",
            self.entity,
            self.name,
            self.value.ty(),
            self.value
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_round_trip() {
        for text in [
            "doc:1#viewer@user:2",
            "doc:1#viewer@group:2#member",
            "organization:acme#administrator@group:tech#manager",
        ] {
            let t = Tuple::parse(text).unwrap();
            assert_eq!(t.to_string(), text);
        }
        let t = Tuple::parse(" doc:1#viewer@user:2#... ").unwrap();
        assert_eq!(t.subject.relation, None);
    }

    #[test]
    fn tuple_errors_name_the_problem() {
        assert!(Tuple::parse("doc:1viewer@user:2").is_err());
        assert!(Tuple::parse("doc:1#viewer").is_err());
        assert!(Tuple::parse("doc:#viewer@user:2").is_err());
        assert!(Tuple::parse("doc:1#@user:2").is_err());
        let long = format!("doc:{}#viewer@user:2", "a".repeat(129));
        let err = Tuple::parse(&long).unwrap_err().to_string();
        assert!(err.contains("longer than 128"), "{err}");
        assert!(Tuple::parse("do c:1#viewer@user:2").is_err());
    }

    #[test]
    fn attribute_round_trip() {
        let a = Attribute::parse("doc:1$public|boolean:true").unwrap();
        assert_eq!(a.value, AttrValue::Boolean(true));
        let a = Attribute::parse("doc:1$tags|string[]:a,b").unwrap();
        assert_eq!(
            a.value,
            AttrValue::StringArray(vec!["a".into(), "b".into()])
        );
        assert_eq!(a.to_string(), "doc:1$tags|string[]:a,b");
        let a = Attribute::parse("account:1$balance|double:4000.5").unwrap();
        assert_eq!(a.value, AttrValue::Double(4000.5));
        assert!(Attribute::parse("doc:1$public|boolean:maybe").is_err());
        assert!(Attribute::parse("doc:1$n|integer:1.5").is_err());
        assert!(Attribute::parse("doc:1$n|float:1.5").is_err());
    }
}
