//! Rule calls: CEL programs run on the `cel` crate with the entity's attribute values as
//! arguments and the request's `context` as a variable.
//!
//! A missing attribute takes its type's empty value. A rule that fails to evaluate, or yields
//! something other than a boolean, denies; the caller records the reason.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::model::AttrValue;
use crate::schema::{CallArg, RuleId, TypeId};

use super::Evaluator;

/// The CEL standard library, built once: building it per call would dominate rule cost.
fn stdlib() -> Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib())).clone()
}

/// Converts JSON (`context.data`) to a CEL value. Integral numbers become `int`, others `double`.
pub(crate) fn json_to_cel(value: &serde_json::Value) -> cel::Value {
    match value {
        serde_json::Value::Null => cel::Value::Null,
        serde_json::Value::Bool(b) => cel::Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => match n.as_u64() {
                Some(u) => cel::Value::UInt(u),
                None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
        },
        serde_json::Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            cel::Value::List(Arc::new(items.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(map) => {
            let map: HashMap<String, cel::Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), json_to_cel(v)))
                .collect();
            cel::Value::from(map)
        }
    }
}

/// Converts an attribute value to a CEL value.
pub(crate) fn attr_to_cel(value: &AttrValue) -> cel::Value {
    match value {
        AttrValue::Boolean(b) => cel::Value::Bool(*b),
        AttrValue::String(s) => cel::Value::String(Arc::new(s.clone())),
        AttrValue::Integer(i) => cel::Value::Int(*i),
        AttrValue::Double(d) => cel::Value::Float(*d),
        AttrValue::BooleanArray(v) => {
            cel::Value::List(Arc::new(v.iter().map(|b| cel::Value::Bool(*b)).collect()))
        }
        AttrValue::StringArray(v) => cel::Value::List(Arc::new(
            v.iter()
                .map(|s| cel::Value::String(Arc::new(s.clone())))
                .collect(),
        )),
        AttrValue::IntegerArray(v) => {
            cel::Value::List(Arc::new(v.iter().map(|i| cel::Value::Int(*i)).collect()))
        }
        AttrValue::DoubleArray(v) => {
            cel::Value::List(Arc::new(v.iter().map(|d| cel::Value::Float(*d)).collect()))
        }
    }
}

/// The `context` variable: `{"data": ..., "tuples": [], "attributes": []}`.
pub(crate) fn context_value(data: &serde_json::Map<String, serde_json::Value>) -> cel::Value {
    let mut map: HashMap<String, cel::Value> = HashMap::new();
    map.insert(
        "data".to_string(),
        json_to_cel(&serde_json::Value::Object(data.clone())),
    );
    map.insert("tuples".to_string(), cel::Value::List(Arc::new(Vec::new())));
    map.insert(
        "attributes".to_string(),
        cel::Value::List(Arc::new(Vec::new())),
    );
    cel::Value::from(map)
}

/// Runs rules for many entities of one request, sharing the converted `context`.
pub(super) struct RuleRunner<'e, 'a> {
    ev: &'e Evaluator<'a>,
    /// The request's context as CEL sees it, built at the first rule call (most evaluations
    /// call none).
    context: std::cell::OnceCell<cel::Value>,
}

impl<'e, 'a> RuleRunner<'e, 'a> {
    pub(super) fn new(ev: &'e Evaluator<'a>) -> Self {
        RuleRunner {
            ev,
            context: std::cell::OnceCell::new(),
        }
    }

    /// Runs rule `rule` with `args` read from entity number `entity` (`None`: an entity with no
    /// stored data, so every attribute is missing).
    pub(super) fn eval(
        &self,
        ty: TypeId,
        entity: Option<u32>,
        rule: RuleId,
        args: &[CallArg],
    ) -> Result<bool, String> {
        let schema = self.ev.schema();
        let Some(def) = schema.rules.get(rule) else {
            return Err(format!("rule #{rule} is not defined"));
        };
        let mut cel_ctx = cel::Context::with_env(stdlib());
        let context = self.context.get_or_init(|| context_value(self.ev.data));
        cel_ctx.add_variable_from_value("context", context.clone());
        let entity_def = schema.entity_at(ty);
        for ((name, param_ty), arg) in def.params.iter().zip(args) {
            let value = match arg {
                CallArg::Attribute(attr) => {
                    let stored = entity.and_then(|e| {
                        let key = self.ev.model.plan.attr_key(ty, *attr)?;
                        self.ev.snapshot.attribute(key)?.get(e)
                    });
                    match stored {
                        Some(v) if v.ty() == *param_ty => attr_to_cel(v),
                        _ => attr_to_cel(&AttrValue::empty(*param_ty)),
                    }
                }
                CallArg::Context(key) => match self.ev.data.get(key) {
                    Some(v) => json_to_cel(v),
                    None => attr_to_cel(&AttrValue::empty(*param_ty)),
                },
            };
            cel_ctx.add_variable_from_value(name.clone(), value);
        }
        match def.program.execute(&cel_ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "rule `{}` on `{}`: expected a boolean, got {other:?}",
                def.name, entity_def.name
            )),
            Err(e) => Err(format!("rule `{}` on `{}`: {e}", def.name, entity_def.name)),
        }
    }
}
