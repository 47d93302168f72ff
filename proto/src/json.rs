//! Protobuf JSON for the HTTP API, in the shape Permify's grpc-gateway speaks.
//!
//! Permify's gateway marshals with protojson's `UseProtoNames` and `EmitUnpopulated`, and so do
//! we:
//!
//! - **Field names** are the proto field names: `tenant_id`, `snap_token`, `continuous_token`,
//!   `entity_definitions`, and `tupleSet` (that field's proto name really is camelCase).
//!   Permify's OpenAPI document shows camelCase for some fields (`entityDefinitions`,
//!   `rewriteOperation`, ...); the server never emitted those, and neither do we.
//! - **Unpopulated fields are emitted** with their default value (`""`, `0`, `false`, `[]`, `{}`,
//!   the zero enum name). Unset message fields and unset oneofs are left out, where Permify
//!   would print `null` for an unset message field; clients treat both as absent.
//! - Enums are names, 64-bit integers are strings, `google.protobuf.Any` is canonical
//!   (`{"@type": "type.googleapis.com/base.v1.BooleanValue", "data": true}`), `Struct` is a
//!   plain JSON object, `Timestamp` is RFC 3339. Integral doubles print without a fraction
//!   (`100`, as Go does), not `100.0`.
//!
//! Input accepts each field under its proto name, its JSON name and its lowerCamelCase or
//! snake_case spelling (`tenant_id`, `tenantId`; `tupleSet`, `tuple_set`). Unknown fields are an
//! error naming the field and where it was found ([`from_json`]); Permify's gateway silently
//! drops them, which [`from_json_lenient`] reproduces. An empty body decodes as `{}`, as with
//! Permify's gateway.
//!
//! Everything goes through a [`DescriptorPool`] decoded once from
//! [`FILE_DESCRIPTOR_SET`](crate::FILE_DESCRIPTOR_SET). A body of 16 KiB or more is decoded
//! part by part (see `parts`), which gives the same message in a fraction of the memory.

use std::sync::OnceLock;

use prost::{Message, Name};
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, SerializeOptions,
};
use serde_json::Value;

mod parts;

/// What went wrong while converting between protobuf messages and JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The body is not JSON at all (syntax error, truncated, not UTF-8).
    #[error("request body is not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// The body is JSON but does not fit the message: unknown field, wrong type, bad enum name,
    /// unknown `@type`, and so on. `path` is where, e.g. `metadata.depth` (`.` for the top).
    #[error("invalid {message}: {detail} (at `{path}`)")]
    Invalid {
        /// Full name of the message being decoded, e.g. `base.v1.PermissionCheckRequest`.
        message: String,
        /// Dotted path of the offending value inside the body.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A message could not be turned into JSON (e.g. an `Any` of a type we have no descriptor
    /// for) or the decoded value did not convert to the Rust type.
    #[error("cannot convert {message}: {detail}")]
    Convert {
        /// Full name of the message.
        message: String,
        /// What went wrong.
        detail: String,
    },
    /// The message type is not in [`FILE_DESCRIPTOR_SET`](crate::FILE_DESCRIPTOR_SET).
    #[error("unknown message type `{0}`")]
    UnknownMessage(String),
    /// The built-in descriptor set did not decode (a build problem, never bad input).
    #[error("built-in protobuf descriptors are unusable: {0}")]
    Descriptors(String),
}

/// The descriptor pool of [`FILE_DESCRIPTOR_SET`](crate::FILE_DESCRIPTOR_SET), decoded on first
/// use.
pub fn descriptor_pool() -> Result<&'static DescriptorPool, JsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| JsonError::Descriptors(e.clone()))
}

/// The descriptor of a message by full name, e.g. `base.v1.Tuple`.
pub fn message_descriptor(full_name: &str) -> Result<MessageDescriptor, JsonError> {
    descriptor_pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| JsonError::UnknownMessage(full_name.to_owned()))
}

/// Decodes a JSON body into `M`; unknown fields are an error.
pub fn from_json<M: Message + Name + Default>(json: &[u8]) -> Result<M, JsonError> {
    decode(json, true)
}

/// Decodes a JSON body into `M`, ignoring unknown fields and unknown enum names as Permify's
/// gateway does. Given the body itself (not a reference), a large body is dropped as soon as
/// it has been parsed, before the message is built, so the two never take memory at once.
pub fn from_json_lenient<M: Message + Name + Default>(
    json: impl AsRef<[u8]>,
) -> Result<M, JsonError> {
    decode(json, false)
}

/// Encodes `msg` as a JSON value (see the module docs for the exact shape).
pub fn to_json<M: Message + Name>(msg: &M) -> Result<Value, JsonError> {
    let full_name = M::full_name();
    let desc = message_descriptor(&full_name)?;
    let convert = |detail: String| JsonError::Convert {
        message: full_name.clone(),
        detail,
    };
    let mut dynamic = DynamicMessage::new(desc);
    dynamic
        .transcode_from(msg)
        .map_err(|e| convert(e.to_string()))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    let mut value = dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| convert(e.to_string()))?;
    integral_doubles_as_integers(&mut value);
    Ok(value)
}

/// Encodes `msg` as JSON text (one line, no trailing newline).
pub fn to_json_vec<M: Message + Name>(msg: &M) -> Result<Vec<u8>, JsonError> {
    let value = to_json(msg)?;
    serde_json::to_vec(&value).map_err(|e| JsonError::Convert {
        message: M::full_name(),
        detail: e.to_string(),
    })
}

fn decode<M, B>(json: B, deny_unknown: bool) -> Result<M, JsonError>
where
    M: Message + Name + Default,
    B: AsRef<[u8]>,
{
    let full_name = M::full_name();
    let desc = message_descriptor(&full_name)?;
    let bytes = json.as_ref();
    if bytes.len() >= parts::PART_BYTES
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        // Protobuf is smaller than its JSON: a quarter of the body is a fair first guess.
        let mut wire = Vec::with_capacity(bytes.len() / 4);
        if parts::encode(&desc, text, deny_unknown, &mut wire).is_ok() {
            // The body is no longer needed (freed here if the caller gave it up).
            drop(json);
            return M::decode(wire.as_slice()).map_err(|e| JsonError::Convert {
                message: full_name,
                detail: e.to_string(),
            });
        }
        // A part did not decode: the whole-body path below reports the error exactly.
    }
    decode_whole(desc, full_name, json.as_ref(), deny_unknown)
}

/// Decodes the body through one `Value` tree and one `DynamicMessage`; the reference for
/// [`parts`], and the path of every small body and every error.
fn decode_whole<M: Message + Default>(
    desc: MessageDescriptor,
    full_name: String,
    json: &[u8],
    deny_unknown: bool,
) -> Result<M, JsonError> {
    let mut value = if json.iter().all(u8::is_ascii_whitespace) {
        Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(json).map_err(JsonError::Syntax)?
    };
    accept_alternative_names(&desc, &mut value);

    let options = DeserializeOptions::new().deny_unknown_fields(deny_unknown);
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(value, &mut track);
    let dynamic =
        DynamicMessage::deserialize_with_options(desc, deserializer, &options).map_err(|e| {
            JsonError::Invalid {
                message: full_name.clone(),
                path: track.path().to_string(),
                detail: e.to_string(),
            }
        })?;
    dynamic.transcode_to::<M>().map_err(|e| JsonError::Convert {
        message: full_name,
        detail: e.to_string(),
    })
}

/// Renames object keys that spell a field differently from both its proto name and its JSON
/// name (`tenantId` for `tenant_id`, `tuple_set` for `tupleSet`) to the proto name, walking
/// nested messages, lists, maps and `Any`. Unknown keys are left alone for the deserializer to
/// report; a key is never renamed onto one that is already present.
fn accept_alternative_names(desc: &MessageDescriptor, value: &mut Value) {
    let full_name = desc.full_name();
    if full_name == "google.protobuf.Any" {
        accept_alternative_names_in_any(value);
        return;
    }
    if full_name.starts_with("google.protobuf.") {
        // Well-known types have their own JSON forms (Struct keys are user data).
        return;
    }
    let Value::Object(object) = value else {
        return;
    };
    let keys: Vec<String> = object.keys().cloned().collect();
    for key in keys {
        let (field, present_key) = match desc
            .get_field_by_name(&key)
            .or_else(|| desc.get_field_by_json_name(&key))
        {
            Some(field) => (field, key),
            None => match field_by_loose_name(desc, &key) {
                Some(field) if !object.contains_key(field.name()) => {
                    if let Some(v) = object.remove(&key) {
                        object.insert(field.name().to_owned(), v);
                    }
                    let name = field.name().to_owned();
                    (field, name)
                }
                _ => continue,
            },
        };
        let Kind::Message(field_type) = field.kind() else {
            continue;
        };
        let Some(field_value) = object.get_mut(&present_key) else {
            continue;
        };
        if field.is_map() {
            // Map entry value is field 2 of the synthetic entry message.
            let value_type = field_type.get_field(2).map(|f| f.kind());
            if let (Some(Kind::Message(value_type)), Value::Object(entries)) =
                (value_type, field_value)
            {
                for entry in entries.values_mut() {
                    accept_alternative_names(&value_type, entry);
                }
            }
        } else if field.is_list() {
            if let Value::Array(items) = field_value {
                for item in items {
                    accept_alternative_names(&field_type, item);
                }
            }
        } else {
            accept_alternative_names(&field_type, field_value);
        }
    }
}

/// `{"@type": URL, ...fields}` or, for well-known types, `{"@type": URL, "value": ...}`.
fn accept_alternative_names_in_any(value: &mut Value) {
    let Value::Object(object) = value else {
        return;
    };
    let Some(type_name) = object
        .get("@type")
        .and_then(Value::as_str)
        .and_then(|url| url.rsplit('/').next())
    else {
        return;
    };
    let Some(inner) = descriptor_pool()
        .ok()
        .and_then(|pool| pool.get_message_by_name(type_name))
    else {
        return;
    };
    if inner.full_name().starts_with("google.protobuf.") {
        if let Some(wrapped) = object.get_mut("value") {
            accept_alternative_names(&inner, wrapped);
        }
    } else {
        accept_alternative_names(&inner, value);
    }
}

/// The one field whose name matches `key` ignoring case and underscores, if exactly one does.
fn field_by_loose_name(
    desc: &MessageDescriptor,
    key: &str,
) -> Option<prost_reflect::FieldDescriptor> {
    let wanted = loose(key);
    let mut found = None;
    for field in desc.fields() {
        if loose(field.name()) == wanted {
            if found.is_some() {
                return None;
            }
            found = Some(field);
        }
    }
    found
}

fn loose(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// 2^63: integral doubles below this magnitude convert to i64 exactly.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// Rewrites integral floating-point numbers (`100.0`) as integers (`100`), as Go's protojson
/// prints them. Only doubles (including `Struct` numbers) are floats here: 32-bit integers are
/// already integers and 64-bit integers are strings.
fn integral_doubles_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
                && f.abs() < I64_LIMIT
                && !(f == 0.0 && f.is_sign_negative())
            {
                // In range and integral, so the cast is exact.
                #[allow(clippy::cast_possible_truncation)]
                let i = f as i64;
                *n = serde_json::Number::from(i);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_doubles_as_integers),
        Value::Object(object) => object.values_mut().for_each(integral_doubles_as_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests;
