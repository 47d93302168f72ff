//! The shape of a Permify validation file, as serde structs, and its parser.
//!
//! Leniency follows what Permify's own example files need and nothing more: every list, map and
//! `context` may be null or missing, and an assertion whose value is null is skipped with a
//! warning. Unknown top-level keys are an error; unknown keys deeper down are ignored (as Permify
//! ignores them) with a warning, so a typo such as `assertion:` does not pass silently.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::ValidationError;
use crate::eval::Context;
use crate::model::{Attribute, Tuple};

/// A whole validation file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationFile {
    /// The schema source.
    #[serde(default, deserialize_with = "nullable")]
    pub schema: String,
    /// Tuples in text form: `doc:1#viewer@user:2`.
    #[serde(default, deserialize_with = "nullable")]
    pub relationships: Vec<String>,
    /// Attributes in text form: `doc:1$public|boolean:true`.
    #[serde(default, deserialize_with = "nullable")]
    pub attributes: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub scenarios: Vec<Scenario>,
}

/// The top-level keys of a validation file.
pub const TOP_LEVEL_KEYS: [&str; 4] = ["schema", "relationships", "attributes", "scenarios"];

/// A named group of assertions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub description: String,
    #[serde(default, deserialize_with = "nullable")]
    pub checks: Vec<Check>,
    #[serde(default, deserialize_with = "nullable")]
    pub entity_filters: Vec<EntityFilter>,
    #[serde(default, deserialize_with = "nullable")]
    pub subject_filters: Vec<SubjectFilter>,
}

/// Checks of one subject on one entity: permission → whether it is allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `type:id`.
    pub entity: String,
    /// `type:id` or `type:id#relation`.
    pub subject: String,
    #[serde(default, deserialize_with = "nullable")]
    pub context: FileContext,
    /// The check depth; [`super::DEFAULT_DEPTH`] when absent. A Lookout extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    pub assertions: Assertions<bool>,
}

/// Lookups of the entities of one type a subject has a permission on: permission → entity IDs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityFilter {
    pub entity_type: String,
    /// `type:id` or `type:id#relation`.
    pub subject: String,
    #[serde(default, deserialize_with = "nullable")]
    pub context: FileContext,
    #[serde(default, deserialize_with = "nullable")]
    pub assertions: Assertions<Vec<String>>,
}

/// Lookups of the subjects that have a permission on one entity: permission → subject IDs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectFilter {
    /// `type` or `type#relation`.
    pub subject_reference: String,
    /// `type:id`.
    pub entity: String,
    #[serde(default, deserialize_with = "nullable")]
    pub context: FileContext,
    #[serde(default, deserialize_with = "nullable")]
    pub assertions: Assertions<Vec<String>>,
}

/// A request's context as written in a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileContext {
    #[serde(default, deserialize_with = "nullable")]
    pub tuples: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub attributes: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl FileContext {
    pub fn is_empty(&self) -> bool {
        self.tuples.is_empty() && self.attributes.is_empty() && self.data.is_empty()
    }

    /// Parses the tuples and attributes. The error names the first bad one.
    pub fn to_context(&self) -> Result<Context, String> {
        let tuples = self
            .tuples
            .iter()
            .map(|t| Tuple::parse(t).map_err(|e| format!("contextual {e}")))
            .collect::<Result<_, _>>()?;
        let attributes = self
            .attributes
            .iter()
            .map(|a| Attribute::parse(a).map_err(|e| format!("contextual {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Context {
            tuples,
            attributes,
            data: self.data.clone(),
        })
    }
}

/// Assertions in file order: permission name → expected answer, `None` where the file gives no
/// value (such an assertion is skipped with a warning). Names are unique: YAML rejects
/// duplicate keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertions<T>(pub Vec<(String, Option<T>)>);

impl<T> Default for Assertions<T> {
    fn default() -> Self {
        Assertions(Vec::new())
    }
}

impl<T> Assertions<T> {
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&T>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Assertions<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AssertionsVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for AssertionsVisitor<T> {
            type Value = Assertions<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of permission names to expected results")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut items: Vec<(String, Option<T>)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    // The YAML parser rejects duplicate keys.
                    items.push((name, map.next_value::<Option<T>>()?));
                }
                Ok(Assertions(items))
            }
        }

        deserializer.deserialize_map(AssertionsVisitor(PhantomData))
    }
}

impl<T: Serialize> Serialize for Assertions<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Deserializes null as the type's default.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A parsed file and what looked wrong in it without making it unusable.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub file: ValidationFile,
    pub warnings: Vec<String>,
    /// Keys below the top level the format does not know, as (key, path of the mapping):
    /// ignored here with a warning, as Permify ignores them; `lookout validate` refuses them.
    pub unknown_keys: Vec<(String, String)>,
}

/// Parses a validation file.
pub fn parse(source: &str) -> Result<Parsed, ValidationError> {
    // A first pass as a generic value checks the keys; the second gives located errors.
    let value: serde_norway::Value = serde_norway::from_str(source).map_err(yaml_error)?;
    let serde_norway::Value::Mapping(top) = &value else {
        return Err(match value {
            serde_norway::Value::Null => ValidationError::Empty,
            _ => ValidationError::NotAMapping,
        });
    };
    let unknown: Vec<String> = top
        .keys()
        .map(key_text)
        .filter(|k| !TOP_LEVEL_KEYS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(ValidationError::UnknownKeys(unknown));
    }
    let file: ValidationFile = serde_norway::from_str(source).map_err(yaml_error)?;
    let mut warnings = Vec::new();
    if file.schema.trim().is_empty() {
        warnings.push("the file has no `schema`".to_string());
    }
    let mut unknown_keys = Vec::new();
    unknown_nested_keys(&value, &mut unknown_keys);
    warnings.extend(
        unknown_keys
            .iter()
            .map(|(key, path)| format!("unknown key `{key}` in `{path}` is ignored")),
    );
    Ok(Parsed {
        file,
        warnings,
        unknown_keys,
    })
}

fn yaml_error(e: serde_norway::Error) -> ValidationError {
    let location = e.location();
    ValidationError::Yaml {
        message: e.to_string(),
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
    }
}

fn key_text(key: &serde_norway::Value) -> String {
    match key {
        serde_norway::Value::String(s) => s.clone(),
        other => serde_norway::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| format!("{other:?}")),
    }
}

const SCENARIO_KEYS: &[&str] = &[
    "name",
    "description",
    "checks",
    "entity_filters",
    "subject_filters",
];
const CHECK_KEYS: &[&str] = &["entity", "subject", "context", "depth", "assertions"];
const ENTITY_FILTER_KEYS: &[&str] = &["entity_type", "subject", "context", "assertions"];
const SUBJECT_FILTER_KEYS: &[&str] = &["subject_reference", "entity", "context", "assertions"];
const CONTEXT_KEYS: &[&str] = &["tuples", "attributes", "data"];

/// Warns about keys below the top level that the format does not know (they are ignored).
fn unknown_nested_keys(top: &serde_norway::Value, warnings: &mut Vec<(String, String)>) {
    let Some(scenarios) = top.get("scenarios").and_then(|s| s.as_sequence()) else {
        return;
    };
    for (i, scenario) in scenarios.iter().enumerate() {
        let path = format!("scenarios[{i}]");
        unknown_keys(scenario, SCENARIO_KEYS, &path, warnings);
        let lists = [
            ("checks", CHECK_KEYS),
            ("entity_filters", ENTITY_FILTER_KEYS),
            ("subject_filters", SUBJECT_FILTER_KEYS),
        ];
        for (list, known) in lists {
            let Some(items) = scenario.get(list).and_then(|l| l.as_sequence()) else {
                continue;
            };
            for (j, item) in items.iter().enumerate() {
                let path = format!("{path}.{list}[{j}]");
                unknown_keys(item, known, &path, warnings);
                if let Some(context) = item.get("context") {
                    unknown_keys(context, CONTEXT_KEYS, &format!("{path}.context"), warnings);
                }
            }
        }
    }
}

fn unknown_keys(
    value: &serde_norway::Value,
    known: &[&str],
    path: &str,
    out: &mut Vec<(String, String)>,
) {
    let Some(map) = value.as_mapping() else {
        return;
    };
    for key in map.keys() {
        let key = key_text(key);
        if !known.contains(&key.as_str()) {
            out.push((key, path.to_owned()));
        }
    }
}
