//! Rows of the change log and attribute values, to and from the database.

use std::collections::HashMap;

use lookout_engine::index::{Change, ChangeOp, WriteBatch};
use lookout_engine::model::{AttrValue, Attribute, EntityRef, SubjectRef, Tuple};
use serde_json::{Value, json};

/// An attribute value as stored: `{"type": "integer", "value": 5}`.
pub fn encode_value(value: &AttrValue) -> String {
    let (ty, v) = match value {
        AttrValue::Boolean(b) => ("boolean", json!(b)),
        AttrValue::String(s) => ("string", json!(s)),
        AttrValue::Integer(i) => ("integer", json!(i)),
        AttrValue::Double(d) => ("double", json!(d)),
        AttrValue::BooleanArray(a) => ("boolean[]", json!(a)),
        AttrValue::StringArray(a) => ("string[]", json!(a)),
        AttrValue::IntegerArray(a) => ("integer[]", json!(a)),
        AttrValue::DoubleArray(a) => ("double[]", json!(a)),
    };
    json!({"type": ty, "value": v}).to_string()
}

pub fn decode_value(text: &str) -> Result<AttrValue, String> {
    let bad = |why: &str| format!("stored attribute value `{text}` is unreadable: {why}");
    let parsed: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let ty = parsed
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no type"))?;
    let v = parsed
        .get("value")
        .cloned()
        .ok_or_else(|| bad("no value"))?;
    let from = |e: serde_json::Error| bad(&e.to_string());
    Ok(match ty {
        "boolean" => AttrValue::Boolean(serde_json::from_value(v).map_err(from)?),
        "string" => AttrValue::String(serde_json::from_value(v).map_err(from)?),
        "integer" => AttrValue::Integer(serde_json::from_value(v).map_err(from)?),
        "double" => AttrValue::Double(serde_json::from_value(v).map_err(from)?),
        "boolean[]" => AttrValue::BooleanArray(serde_json::from_value(v).map_err(from)?),
        "string[]" => AttrValue::StringArray(serde_json::from_value(v).map_err(from)?),
        "integer[]" => AttrValue::IntegerArray(serde_json::from_value(v).map_err(from)?),
        "double[]" => AttrValue::DoubleArray(serde_json::from_value(v).map_err(from)?),
        other => return Err(bad(&format!("unknown type `{other}`"))),
    })
}

/// One row of `lookout_changes`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChangeRow {
    pub revision: i64,
    pub op: String,
    pub kind: String,
    pub entity_type: String,
    pub entity_id: String,
    pub entity_number: i32,
    pub relation: String,
    pub subject_type: Option<String>,
    pub subject_id: Option<String>,
    pub subject_number: Option<i32>,
    pub subject_relation: Option<String>,
    pub value: Option<String>,
}

/// The columns `ChangeRow` reads, for SELECTs.
pub const CHANGE_COLUMNS: &str = "revision, op, kind, entity_type, entity_id, entity_number, relation, subject_type, subject_id, subject_number, subject_relation, value";

/// One revision's changes decoded: the batch that replays them, the changes as Watch lists
/// them, and the durable numbers of every ID they mention.
#[derive(Debug, Default)]
pub struct Decoded {
    pub batch: WriteBatch,
    pub changes: Vec<Change>,
    pub numbers: Vec<(String, String, u32)>,
}

fn number(n: i32, what: &str) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("stored {what} number {n} is negative"))
}

/// Decodes the rows of one revision (in `seq` order).
pub fn decode(rows: &[ChangeRow]) -> Result<Decoded, String> {
    let mut out = Decoded::default();
    for row in rows {
        let op = match row.op.as_str() {
            "c" => ChangeOp::Create,
            "d" => ChangeOp::Delete,
            other => return Err(format!("stored change op `{other}` is unknown")),
        };
        let entity = EntityRef::new(&row.entity_type, &row.entity_id);
        out.numbers.push((
            row.entity_type.clone(),
            row.entity_id.clone(),
            number(row.entity_number, "entity")?,
        ));
        match row.kind.as_str() {
            "t" => {
                let (Some(ty), Some(id), Some(n)) =
                    (&row.subject_type, &row.subject_id, row.subject_number)
                else {
                    return Err(format!(
                        "stored tuple change of revision {} has no subject",
                        row.revision
                    ));
                };
                out.numbers
                    .push((ty.clone(), id.clone(), number(n, "subject")?));
                let tuple = Tuple {
                    entity,
                    relation: row.relation.clone(),
                    subject: SubjectRef::new(ty, id, row.subject_relation.clone()),
                };
                match op {
                    ChangeOp::Create => out.batch.tuple_writes.push(tuple.clone()),
                    ChangeOp::Delete => out.batch.tuple_deletes.push(tuple.clone()),
                }
                out.changes.push(Change::Tuple(op, tuple));
            }
            "a" => {
                let value = decode_value(row.value.as_deref().unwrap_or_default())?;
                let attribute = Attribute {
                    entity,
                    name: row.relation.clone(),
                    value,
                };
                match op {
                    ChangeOp::Create => out.batch.attribute_writes.push(attribute.clone()),
                    ChangeOp::Delete => out
                        .batch
                        .attribute_deletes
                        .push((attribute.entity.clone(), attribute.name.clone())),
                }
                out.changes.push(Change::Attribute(op, attribute));
            }
            other => return Err(format!("stored change kind `{other}` is unknown")),
        }
    }
    Ok(out)
}

/// Groups rows sorted by revision into revisions.
pub fn by_revision(rows: Vec<ChangeRow>) -> Vec<(u64, Vec<ChangeRow>)> {
    let mut out: Vec<(u64, Vec<ChangeRow>)> = Vec::new();
    for row in rows {
        let revision = row.revision as u64;
        match out.last_mut() {
            Some((r, group)) if *r == revision => group.push(row),
            _ => out.push((revision, vec![row])),
        }
    }
    out
}

/// The columns of the change rows of one revision, as arrays for one `INSERT ... UNNEST`.
#[derive(Debug, Default)]
pub struct ChangeColumns {
    pub seq: Vec<i32>,
    pub op: Vec<String>,
    pub kind: Vec<String>,
    pub entity_type: Vec<String>,
    pub entity_id: Vec<String>,
    pub entity_number: Vec<i32>,
    pub relation: Vec<String>,
    pub subject_type: Vec<Option<String>>,
    pub subject_id: Vec<Option<String>>,
    pub subject_number: Vec<Option<i32>>,
    pub subject_relation: Vec<Option<String>>,
    pub value: Vec<Option<String>>,
}

impl ChangeColumns {
    /// Appends the rows of `other` after these.
    pub fn extend(&mut self, other: ChangeColumns) {
        self.seq.extend(other.seq);
        self.op.extend(other.op);
        self.kind.extend(other.kind);
        self.entity_type.extend(other.entity_type);
        self.entity_id.extend(other.entity_id);
        self.entity_number.extend(other.entity_number);
        self.relation.extend(other.relation);
        self.subject_type.extend(other.subject_type);
        self.subject_id.extend(other.subject_id);
        self.subject_number.extend(other.subject_number);
        self.subject_relation.extend(other.subject_relation);
        self.value.extend(other.value);
    }

    /// The rows of `changes`, with the numbers of their IDs from `numbers`.
    pub fn of(
        changes: &[Change],
        numbers: &HashMap<(String, String), i32>,
    ) -> Result<ChangeColumns, String> {
        let mut c = ChangeColumns::default();
        let number_of = |ty: &str, id: &str| {
            numbers
                .get(&(ty.to_string(), id.to_string()))
                .copied()
                .ok_or_else(|| format!("no entity number for `{ty}:{id}`"))
        };
        for (seq, change) in changes.iter().enumerate() {
            let (op, entity) = match change {
                Change::Tuple(op, t) => (op, &t.entity),
                Change::Attribute(op, a) => (op, &a.entity),
            };
            c.seq
                .push(i32::try_from(seq).map_err(|_| "too many changes".to_string())?);
            c.op.push(
                match op {
                    ChangeOp::Create => "c",
                    ChangeOp::Delete => "d",
                }
                .to_string(),
            );
            c.entity_type.push(entity.ty.clone());
            c.entity_id.push(entity.id.clone());
            c.entity_number.push(number_of(&entity.ty, &entity.id)?);
            match change {
                Change::Tuple(_, t) => {
                    c.kind.push("t".to_string());
                    c.relation.push(t.relation.clone());
                    c.subject_type.push(Some(t.subject.ty.clone()));
                    c.subject_id.push(Some(t.subject.id.clone()));
                    c.subject_number
                        .push(Some(number_of(&t.subject.ty, &t.subject.id)?));
                    c.subject_relation.push(t.subject.relation.clone());
                    c.value.push(None);
                }
                Change::Attribute(_, a) => {
                    c.kind.push("a".to_string());
                    c.relation.push(a.name.clone());
                    c.subject_type.push(None);
                    c.subject_id.push(None);
                    c.subject_number.push(None);
                    c.subject_relation.push(None);
                    c.value.push(Some(encode_value(&a.value)));
                }
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn values_round_trip() {
        for v in [
            AttrValue::Boolean(true),
            AttrValue::String("a \"quoted\" é".to_string()),
            AttrValue::Integer(i64::MIN),
            AttrValue::Double(0.1 + 0.2),
            AttrValue::BooleanArray(vec![true, false]),
            AttrValue::StringArray(vec![String::new()]),
            AttrValue::IntegerArray(vec![1, -2]),
            AttrValue::DoubleArray(vec![1e300, -0.5]),
        ] {
            assert_eq!(decode_value(&encode_value(&v)).unwrap(), v);
        }
        assert!(decode_value("{\"type\":\"date\",\"value\":1}").is_err());
        assert!(decode_value("nonsense").is_err());
    }
}
