//! The one place where protobuf messages become engine values and back.
//!
//! Every decoder names the field it rejects (`entity.id`, `tuples[3].subject.type`, ...) so a
//! client can find its mistake; nothing here panics on any input.

use std::time::SystemTime;

use lookout_engine::eval::Context as EvalContext;
use lookout_engine::index::{AttributeFilter, Change, ChangeOp, TupleFilter};
use lookout_engine::model::{self, AttrValue, Attribute, EntityRef, SubjectRef, Tuple};
use lookout_engine::schema::{AttrId, AttrType, CallArg, Expr, Schema, TypeId, print};
use lookout_proto::v1;
use prost::Name;

use crate::error::ApiError;
use crate::tenants::Tenant;

fn field_error(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("{field}: {e}"))
}

/// A required message field.
pub fn required<'a, T>(value: &'a Option<T>, field: &str) -> Result<&'a T, ApiError> {
    present(value, &|| field.to_owned())
}

/// As [`required`], naming the field (by calling `field`) only when it is missing.
fn present<'a, T>(value: &'a Option<T>, field: &dyn Fn() -> String) -> Result<&'a T, ApiError> {
    value.as_ref().ok_or_else(|| missing(field))
}

/// The error of a required field that is missing.
fn missing(field: &dyn Fn() -> String) -> ApiError {
    ApiError::invalid(format!("{} is required", field()))
}

/// Checks an entity reference; `field` names it in an error (and is called only then).
fn check_entity(e: &v1::Entity, field: &dyn Fn() -> String) -> Result<(), ApiError> {
    model::check_entity_type(&e.r#type)
        .map_err(|err| field_error(&format!("{}.type", field()), err))?;
    model::check_id(&e.id).map_err(|err| field_error(&format!("{}.id", field()), err))
}

/// Checks a subject reference; its relation, normalized (see
/// [`model::normalize_subject_relation`]).
fn check_subject(s: &v1::Subject, field: &dyn Fn() -> String) -> Result<Option<String>, ApiError> {
    model::check_entity_type(&s.r#type)
        .map_err(|err| field_error(&format!("{}.type", field()), err))?;
    model::check_id(&s.id).map_err(|err| field_error(&format!("{}.id", field()), err))?;
    let relation = model::normalize_subject_relation(&s.relation);
    if let Some(rel) = &relation {
        model::check_name("relation", rel)
            .map_err(|err| field_error(&format!("{}.relation", field()), err))?;
    }
    Ok(relation)
}

pub fn entity(e: &v1::Entity, field: &str) -> Result<EntityRef, ApiError> {
    check_entity(e, &|| field.to_owned())?;
    Ok(EntityRef::new(e.r#type.clone(), e.id.clone()))
}

/// As [`entity`] of a required field, taking the message (its strings are moved, not copied)
/// and naming the field only when it is missing or wrong: for the many items of one request.
pub fn entity_owned(
    e: Option<v1::Entity>,
    field: &dyn Fn() -> String,
) -> Result<EntityRef, ApiError> {
    let e = e.ok_or_else(|| missing(field))?;
    check_entity(&e, field)?;
    Ok(EntityRef::new(e.r#type, e.id))
}

pub fn subject(s: &v1::Subject, field: &str) -> Result<SubjectRef, ApiError> {
    let relation = check_subject(s, &|| field.to_owned())?;
    Ok(SubjectRef::new(s.r#type.clone(), s.id.clone(), relation))
}

/// As [`subject`] of a required field, taking the message (see [`entity_owned`]).
pub fn subject_owned(
    s: Option<v1::Subject>,
    field: &dyn Fn() -> String,
) -> Result<SubjectRef, ApiError> {
    let s = s.ok_or_else(|| missing(field))?;
    let relation = check_subject(&s, field)?;
    Ok(SubjectRef::new(s.r#type, s.id, relation))
}

pub fn tuple(t: &v1::Tuple, field: &str) -> Result<Tuple, ApiError> {
    tuple_at(t, &|| field.to_owned())
}

/// As [`tuple`], naming the field only in an error: for the many tuples of one request.
fn tuple_at(t: &v1::Tuple, field: &dyn Fn() -> String) -> Result<Tuple, ApiError> {
    tuple_owned_at(t.clone(), field)
}

pub fn tuples(list: &[v1::Tuple], field: &str) -> Result<Vec<Tuple>, ApiError> {
    list.iter()
        .enumerate()
        .map(|(i, t)| tuple_at(t, &|| format!("{field}[{i}]")))
        .collect()
}

/// As [`tuple_at`], taking the message: its strings are moved into the tuple, not copied.
/// Checks in the same order and fails with the same errors.
fn tuple_owned_at(t: v1::Tuple, field: &dyn Fn() -> String) -> Result<Tuple, ApiError> {
    let v1::Tuple {
        entity,
        relation,
        subject,
    } = t;
    let e = entity.ok_or_else(|| missing(&|| format!("{}.entity", field())))?;
    check_entity(&e, &|| format!("{}.entity", field()))?;
    model::check_name("relation", &relation)
        .map_err(|err| field_error(&format!("{}.relation", field()), err))?;
    let s = subject.ok_or_else(|| missing(&|| format!("{}.subject", field())))?;
    let subject_relation = check_subject(&s, &|| format!("{}.subject", field()))?;
    Ok(Tuple::new(
        EntityRef::new(e.r#type, e.id),
        relation,
        SubjectRef::new(s.r#type, s.id, subject_relation),
    ))
}

/// As [`tuples`], taking the list: for the large lists of writes and contextual tuples,
/// whose strings then exist once instead of twice. (`v1::Tuple` and `Tuple` have the same
/// size, so the standard library reuses the list's allocation for the result.)
pub fn tuples_owned(list: Vec<v1::Tuple>, field: &str) -> Result<Vec<Tuple>, ApiError> {
    list.into_iter()
        .enumerate()
        .map(|(i, t)| tuple_owned_at(t, &|| format!("{field}[{i}]")))
        .collect()
}

/// Decodes an attribute value from its `Any`.
pub fn attr_value(any: &prost_types::Any, field: &str) -> Result<AttrValue, ApiError> {
    fn decode<M: prost::Message + Default>(
        any: &prost_types::Any,
        field: &str,
    ) -> Result<M, ApiError> {
        M::decode(any.value.as_slice())
            .map_err(|e| field_error(field, format!("undecodable value: {e}")))
    }
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let value = if name == v1::BooleanValue::full_name() {
        AttrValue::Boolean(decode::<v1::BooleanValue>(any, field)?.data)
    } else if name == v1::StringValue::full_name() {
        AttrValue::String(decode::<v1::StringValue>(any, field)?.data)
    } else if name == v1::IntegerValue::full_name() {
        AttrValue::Integer(i64::from(decode::<v1::IntegerValue>(any, field)?.data))
    } else if name == v1::DoubleValue::full_name() {
        AttrValue::Double(decode::<v1::DoubleValue>(any, field)?.data)
    } else if name == v1::BooleanArrayValue::full_name() {
        AttrValue::BooleanArray(decode::<v1::BooleanArrayValue>(any, field)?.data)
    } else if name == v1::StringArrayValue::full_name() {
        AttrValue::StringArray(decode::<v1::StringArrayValue>(any, field)?.data)
    } else if name == v1::IntegerArrayValue::full_name() {
        AttrValue::IntegerArray(
            decode::<v1::IntegerArrayValue>(any, field)?
                .data
                .into_iter()
                .map(i64::from)
                .collect(),
        )
    } else if name == v1::DoubleArrayValue::full_name() {
        AttrValue::DoubleArray(decode::<v1::DoubleArrayValue>(any, field)?.data)
    } else {
        return Err(field_error(
            field,
            format!(
                "unsupported value type `{}` (expected base.v1.BooleanValue, StringValue, IntegerValue, DoubleValue or an array variant)",
                any.type_url
            ),
        ));
    };
    Ok(value)
}

/// Encodes an attribute value as an `Any`. Integers are 32-bit on the wire, as in Permify.
pub fn attr_value_any(value: &AttrValue) -> prost_types::Any {
    fn pack<M: prost::Message + Name>(m: &M) -> prost_types::Any {
        prost_types::Any {
            type_url: M::type_url(),
            value: m.encode_to_vec(),
        }
    }
    let clamp = |i: i64| i32::try_from(i).unwrap_or(if i < 0 { i32::MIN } else { i32::MAX });
    match value {
        AttrValue::Boolean(b) => pack(&v1::BooleanValue { data: *b }),
        AttrValue::String(s) => pack(&v1::StringValue { data: s.clone() }),
        AttrValue::Integer(i) => pack(&v1::IntegerValue { data: clamp(*i) }),
        AttrValue::Double(d) => pack(&v1::DoubleValue { data: *d }),
        AttrValue::BooleanArray(v) => pack(&v1::BooleanArrayValue { data: v.clone() }),
        AttrValue::StringArray(v) => pack(&v1::StringArrayValue { data: v.clone() }),
        AttrValue::IntegerArray(v) => pack(&v1::IntegerArrayValue {
            data: v.iter().map(|i| clamp(*i)).collect(),
        }),
        AttrValue::DoubleArray(v) => pack(&v1::DoubleArrayValue { data: v.clone() }),
    }
}

pub fn attribute(a: &v1::Attribute, field: &str) -> Result<Attribute, ApiError> {
    let e = entity(
        required(&a.entity, &format!("{field}.entity"))?,
        &format!("{field}.entity"),
    )?;
    model::check_name("attribute", &a.attribute)
        .map_err(|err| field_error(&format!("{field}.attribute"), err))?;
    let value = attr_value(
        required(&a.value, &format!("{field}.value"))?,
        &format!("{field}.value"),
    )?;
    Ok(Attribute {
        entity: e,
        name: a.attribute.clone(),
        value,
    })
}

pub fn attributes(list: &[v1::Attribute], field: &str) -> Result<Vec<Attribute>, ApiError> {
    list.iter()
        .enumerate()
        .map(|(i, a)| attribute(a, &format!("{field}[{i}]")))
        .collect()
}

/// Converts a protobuf `Struct` to JSON.
pub fn struct_to_json(s: &prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn value_to_json(v: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => {
            // Struct numbers are doubles; whole ones become integers so CEL compares them
            // with integer attributes without surprises.
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s)),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
    }
}

/// A request's context: contextual tuples, attributes and data.
pub fn context(c: &Option<v1::Context>) -> Result<EvalContext, ApiError> {
    let Some(c) = c else {
        return Ok(EvalContext::default());
    };
    Ok(EvalContext {
        tuples: tuples(&c.tuples, "context.tuples")?,
        attributes: attributes(&c.attributes, "context.attributes")?,
        data: c.data.as_ref().map(struct_to_json).unwrap_or_default(),
    })
}

/// As [`context`], moving the contextual tuples out of the request (its `tuples` are left
/// empty; attributes and data stay): for a request that is not read for its tuples again.
pub fn context_taking_tuples(c: &mut Option<v1::Context>) -> Result<EvalContext, ApiError> {
    let Some(c) = c else {
        return Ok(EvalContext::default());
    };
    let tuples = tuples_owned(std::mem::take(&mut c.tuples), "context.tuples")?;
    Ok(EvalContext {
        tuples,
        attributes: attributes(&c.attributes, "context.attributes")?,
        data: c.data.as_ref().map(struct_to_json).unwrap_or_default(),
    })
}

pub fn tuple_filter(f: &v1::TupleFilter, field: &str) -> Result<TupleFilter, ApiError> {
    let mut out = TupleFilter::default();
    if let Some(e) = &f.entity {
        if !e.r#type.is_empty() {
            model::check_entity_type(&e.r#type)
                .map_err(|err| field_error(&format!("{field}.entity.type"), err))?;
            out.entity_type = Some(e.r#type.clone());
        }
        out.entity_ids = e.ids.clone();
    }
    if !f.relation.is_empty() {
        out.relation = Some(f.relation.clone());
    }
    if let Some(s) = &f.subject {
        if !s.r#type.is_empty() {
            out.subject_type = Some(s.r#type.clone());
        }
        out.subject_ids = s.ids.clone();
        if !s.relation.is_empty() {
            out.subject_relation = Some(s.relation.clone());
        }
    }
    Ok(out)
}

pub fn entity_out(e: &EntityRef) -> v1::Entity {
    v1::Entity {
        r#type: e.ty.clone(),
        id: e.id.clone(),
    }
}

pub fn subject_out(s: &SubjectRef) -> v1::Subject {
    v1::Subject {
        r#type: s.ty.clone(),
        id: s.id.clone(),
        relation: s.relation.clone().unwrap_or_default(),
    }
}

pub fn tuple_out(t: &Tuple) -> v1::Tuple {
    v1::Tuple {
        entity: Some(entity_out(&t.entity)),
        relation: t.relation.clone(),
        subject: Some(subject_out(&t.subject)),
    }
}

pub fn attribute_out(a: &Attribute) -> v1::Attribute {
    v1::Attribute {
        entity: Some(entity_out(&a.entity)),
        attribute: a.name.clone(),
        value: Some(attr_value_any(&a.value)),
    }
}

pub fn change_out(c: &Change) -> v1::DataChange {
    use v1::data_change::{Operation, Type};
    let (op, ty) = match c {
        Change::Tuple(op, t) => (op, Type::Tuple(tuple_out(t))),
        Change::Attribute(op, a) => (op, Type::Attribute(attribute_out(a))),
    };
    v1::DataChange {
        operation: match op {
            ChangeOp::Create => Operation::Create as i32,
            ChangeOp::Delete => Operation::Delete as i32,
        },
        r#type: Some(ty),
    }
}

pub fn check_result(allowed: bool) -> i32 {
    if allowed {
        v1::CheckResult::Allowed as i32
    } else {
        v1::CheckResult::Denied as i32
    }
}

pub fn attribute_filter(f: &v1::AttributeFilter, field: &str) -> Result<AttributeFilter, ApiError> {
    let mut out = AttributeFilter::default();
    if let Some(e) = &f.entity {
        if !e.r#type.is_empty() {
            model::check_entity_type(&e.r#type)
                .map_err(|err| field_error(&format!("{field}.entity.type"), err))?;
            out.entity_type = Some(e.r#type.clone());
        }
        out.entity_ids = e.ids.clone();
    }
    out.names = f.attributes.clone();
    Ok(out)
}

/// A point in time as a protobuf `Timestamp`.
pub fn timestamp_out(at: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(at)
}

/// A point in time as RFC 3339 in UTC with whole seconds (`2024-05-01T09:30:00Z`), as Permify
/// formats schema versions' `created_at`.
pub fn rfc3339(at: SystemTime) -> String {
    let mut ts = timestamp_out(at);
    ts.nanos = 0;
    ts.to_string()
}

pub fn tenant_out(t: &Tenant) -> v1::Tenant {
    v1::Tenant {
        id: t.id.clone(),
        name: t.name.clone(),
        created_at: Some(timestamp_out(t.created_at)),
    }
}

fn attribute_type_out(ty: AttrType) -> i32 {
    use v1::AttributeType as T;
    (match ty {
        AttrType::Boolean => T::Boolean,
        AttrType::BooleanArray => T::BooleanArray,
        AttrType::String => T::String,
        AttrType::StringArray => T::StringArray,
        AttrType::Integer => T::Integer,
        AttrType::IntegerArray => T::IntegerArray,
        AttrType::Double => T::Double,
        AttrType::DoubleArray => T::DoubleArray,
    }) as i32
}

/// A compiled schema in Permify's `SchemaDefinition` shape.
///
/// - Relations and permissions of the same entity are `ComputedUserSet` leaves, bare boolean
///   attributes `ComputedAttribute` leaves, rule calls `Call` leaves (a `request.NAME`
///   argument, Permify's older form, is a `ComputedAttribute` named `request.NAME`).
/// - An arrow `a.b` is a `TupleToUserSet` with tuple set `a` and computed `b`; a multi-hop
///   arrow (a Lookout extension) `a.b.c` keeps the rest of its path in `computed`: `b.c`.
/// - `not` is an `EXCLUSION` rewrite with the base first and the excluded second.
/// - A rule's `expression` (Permify's type-checked CEL) is left unset; its parameters are in
///   `arguments`.
pub fn schema_definition_out(schema: &Schema) -> v1::SchemaDefinition {
    use v1::entity_definition::Reference as MemberRef;
    use v1::schema_definition::Reference as TopRef;
    let mut out = v1::SchemaDefinition::default();
    for (ty, entity) in schema.entities.iter().enumerate() {
        let mut def = v1::EntityDefinition {
            name: entity.name.clone(),
            ..Default::default()
        };
        for relation in &entity.relations {
            let relation_references = relation
                .allowed
                .iter()
                .map(|a| v1::RelationReference {
                    r#type: schema
                        .entities
                        .get(a.entity)
                        .map(|e| e.name.clone())
                        .unwrap_or_default(),
                    relation: a.relation.clone().unwrap_or_default(),
                })
                .collect();
            def.relations.insert(
                relation.name.clone(),
                v1::RelationDefinition {
                    name: relation.name.clone(),
                    relation_references,
                },
            );
            def.references
                .insert(relation.name.clone(), MemberRef::Relation as i32);
        }
        for permission in &entity.permissions {
            def.permissions.insert(
                permission.name.clone(),
                v1::PermissionDefinition {
                    name: permission.name.clone(),
                    child: Some(child_out(schema, ty, &permission.expr)),
                },
            );
            def.references
                .insert(permission.name.clone(), MemberRef::Permission as i32);
        }
        for attribute in &entity.attributes {
            def.attributes.insert(
                attribute.name.clone(),
                v1::AttributeDefinition {
                    name: attribute.name.clone(),
                    r#type: attribute_type_out(attribute.ty),
                },
            );
            def.references
                .insert(attribute.name.clone(), MemberRef::Attribute as i32);
        }
        out.references
            .insert(entity.name.clone(), TopRef::Entity as i32);
        out.entity_definitions.insert(entity.name.clone(), def);
    }
    for rule in &schema.rules {
        out.rule_definitions.insert(
            rule.name.clone(),
            v1::RuleDefinition {
                name: rule.name.clone(),
                arguments: rule
                    .params
                    .iter()
                    .map(|(name, ty)| (name.clone(), attribute_type_out(*ty)))
                    .collect(),
                expression: None,
            },
        );
        out.references
            .insert(rule.name.clone(), TopRef::Rule as i32);
    }
    out
}

/// One node of a permission expression of entity `ty`.
fn child_out(schema: &Schema, ty: TypeId, e: &Expr) -> v1::Child {
    use v1::child::Type as ChildType;
    use v1::leaf::Type as LeafType;
    use v1::rewrite::Operation;
    let rewrite = |op: Operation, children: Vec<v1::Child>| v1::Child {
        r#type: Some(ChildType::Rewrite(v1::Rewrite {
            rewrite_operation: op as i32,
            children,
        })),
    };
    let leaf = |leaf: LeafType| v1::Child {
        r#type: Some(ChildType::Leaf(v1::Leaf { r#type: Some(leaf) })),
    };
    let entity = schema.entities.get(ty);
    let attribute_name = |id: AttrId| {
        entity
            .and_then(|e| e.attributes.get(id))
            .map(|a| a.name.clone())
            .unwrap_or_default()
    };
    match e {
        Expr::Union(children) => rewrite(
            Operation::Union,
            children.iter().map(|c| child_out(schema, ty, c)).collect(),
        ),
        Expr::Intersect(children) => rewrite(
            Operation::Intersection,
            children.iter().map(|c| child_out(schema, ty, c)).collect(),
        ),
        Expr::Exclude(base, excluded) => rewrite(
            Operation::Exclusion,
            vec![child_out(schema, ty, base), child_out(schema, ty, excluded)],
        ),
        Expr::Relation(_) | Expr::Permission(_) => {
            leaf(LeafType::ComputedUserSet(v1::ComputedUserSet {
                relation: print::path(schema, ty, e),
            }))
        }
        Expr::Attribute(id) => leaf(LeafType::ComputedAttribute(v1::ComputedAttribute {
            name: attribute_name(*id),
        })),
        Expr::Arrow { via, targets } => {
            let tuple_set = entity
                .and_then(|e| e.relations.get(*via))
                .map(|r| r.name.clone())
                .unwrap_or_default();
            let computed = targets
                .first()
                .map(|(target, rest)| print::path(schema, *target, rest))
                .unwrap_or_default();
            leaf(LeafType::TupleToUserSet(v1::TupleToUserSet {
                tuple_set: Some(v1::TupleSet {
                    relation: tuple_set,
                }),
                computed: Some(v1::ComputedUserSet { relation: computed }),
            }))
        }
        Expr::Call { rule, args } => leaf(LeafType::Call(v1::Call {
            rule_name: schema
                .rules
                .get(*rule)
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            arguments: args
                .iter()
                .map(|arg| v1::Argument {
                    r#type: Some(v1::argument::Type::ComputedAttribute(
                        v1::ComputedAttribute {
                            name: match arg {
                                CallArg::Attribute(id) => attribute_name(*id),
                                CallArg::Context(key) => format!("request.{key}"),
                            },
                        },
                    )),
                })
                .collect(),
        })),
    }
}
