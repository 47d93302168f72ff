//! The one place where protobuf messages become engine values and back.
//!
//! Every decoder names the field it rejects (`entity.id`, `tuples[3].subject.type`, ...) so a
//! client can find its mistake; nothing here panics on any input.

use lookout_engine::eval::Context as EvalContext;
use lookout_engine::index::{Change, ChangeOp, TupleFilter};
use lookout_engine::model::{self, AttrValue, Attribute, EntityRef, SubjectRef, Tuple};
use lookout_proto::v1;
use prost::Name;

use crate::error::ApiError;

fn field_error(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("{field}: {e}"))
}

/// A required message field.
pub fn required<'a, T>(value: &'a Option<T>, field: &str) -> Result<&'a T, ApiError> {
    value
        .as_ref()
        .ok_or_else(|| ApiError::invalid(format!("{field} is required")))
}

pub fn entity(e: &v1::Entity, field: &str) -> Result<EntityRef, ApiError> {
    model::check_entity_type(&e.r#type).map_err(|err| field_error(&format!("{field}.type"), err))?;
    model::check_id(&e.id).map_err(|err| field_error(&format!("{field}.id"), err))?;
    Ok(EntityRef::new(e.r#type.clone(), e.id.clone()))
}

pub fn subject(s: &v1::Subject, field: &str) -> Result<SubjectRef, ApiError> {
    model::check_entity_type(&s.r#type).map_err(|err| field_error(&format!("{field}.type"), err))?;
    model::check_id(&s.id).map_err(|err| field_error(&format!("{field}.id"), err))?;
    let relation = model::normalize_subject_relation(&s.relation);
    if let Some(rel) = &relation {
        model::check_name("relation", rel)
            .map_err(|err| field_error(&format!("{field}.relation"), err))?;
    }
    Ok(SubjectRef::new(s.r#type.clone(), s.id.clone(), relation))
}

pub fn tuple(t: &v1::Tuple, field: &str) -> Result<Tuple, ApiError> {
    let e = entity(required(&t.entity, &format!("{field}.entity"))?, &format!("{field}.entity"))?;
    model::check_name("relation", &t.relation)
        .map_err(|err| field_error(&format!("{field}.relation"), err))?;
    let s = subject(
        required(&t.subject, &format!("{field}.subject"))?,
        &format!("{field}.subject"),
    )?;
    Ok(Tuple::new(e, t.relation.clone(), s))
}

pub fn tuples(list: &[v1::Tuple], field: &str) -> Result<Vec<Tuple>, ApiError> {
    list.iter()
        .enumerate()
        .map(|(i, t)| tuple(t, &format!("{field}[{i}]")))
        .collect()
}

/// Decodes an attribute value from its `Any`.
pub fn attr_value(any: &prost_types::Any, field: &str) -> Result<AttrValue, ApiError> {
    fn decode<M: prost::Message + Default>(any: &prost_types::Any, field: &str) -> Result<M, ApiError> {
        M::decode(any.value.as_slice()).map_err(|e| field_error(field, format!("undecodable value: {e}")))
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
    let e = entity(required(&a.entity, &format!("{field}.entity"))?, &format!("{field}.entity"))?;
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
                serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number)
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
