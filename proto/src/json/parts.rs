//! Decoding a large JSON body part by part, so its memory stays a small multiple of its size.
//!
//! The whole-body decoder builds a `serde_json::Value` tree of the body and then a
//! `DynamicMessage` tree of the message: both keep a `BTreeMap` per JSON object and per message,
//! which for a body of tuples comes to some 40 bytes of memory per byte of body. This decoder
//! splits an object larger than [`PART_BYTES`] into its fields without building a tree
//! (`&RawValue`s borrowing the body): every message-typed field (a list of messages, or one
//! message) is encoded to protobuf one item at a time, each item itself split the same way
//! when it is large and otherwise decoded through exactly the whole-body path; the remaining
//! fields of the object (scalars, enums, well-known types, `Any`, maps, oneofs) are decoded
//! together through the whole-body path. The parts' protobuf encodings, concatenated, are the
//! message's encoding, which the caller decodes into the generated type.
//!
//! Only the happy path is split: whenever a part does not decode, [`GiveUp`] tells the caller
//! to decode the whole body the usual way, which reports the error with its exact wording and
//! path. A field is split off only when it is unambiguous: its key is the field's proto or
//! JSON name and no other key of the object names the same field (alternative spellings such
//! as `Tuples` are left to the whole-body rules, which decide which of them wins).

use std::collections::BTreeMap;

use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{accept_alternative_names, field_by_loose_name};

/// Objects (the body, or a value inside it) at least this long are split into parts; smaller
/// ones are decoded whole.
pub(super) const PART_BYTES: usize = 16 * 1024;

/// A part did not decode: decode the whole body instead, for the error.
#[derive(Debug)]
pub(super) struct GiveUp;

/// Appends the protobuf encoding of the JSON object `json` as a `desc` message to `out`.
pub(super) fn encode(
    desc: &MessageDescriptor,
    json: &str,
    deny_unknown: bool,
    out: &mut Vec<u8>,
) -> Result<(), GiveUp> {
    if json.len() < PART_BYTES {
        return encode_whole(desc, json, deny_unknown, out);
    }
    let object: BTreeMap<String, &RawValue> = serde_json::from_str(json).map_err(|_| GiveUp)?;
    let mut rest = serde_json::Map::new();
    let mut item = Vec::new();
    for (key, raw) in &object {
        let Some(field) = split_field(desc, &object, key, raw) else {
            let value: Value = serde_json::from_str(raw.get()).map_err(|_| GiveUp)?;
            rest.insert(key.clone(), value);
            continue;
        };
        let Kind::Message(item_desc) = field.kind() else {
            return Err(GiveUp);
        };
        if field.is_list() {
            let items: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| GiveUp)?;
            for raw_item in items {
                if !raw_item.get().starts_with('{') {
                    return Err(GiveUp);
                }
                item.clear();
                encode(&item_desc, raw_item.get(), deny_unknown, &mut item)?;
                length_delimited(field.number(), &item, out);
            }
        } else {
            item.clear();
            encode(&item_desc, raw.get(), deny_unknown, &mut item)?;
            length_delimited(field.number(), &item, out);
        }
    }
    drop(object);
    if !rest.is_empty() {
        let mut rest = Value::Object(rest);
        accept_alternative_names(desc, &mut rest);
        dynamic(desc, rest, deny_unknown)?
            .encode(out)
            .map_err(|_| GiveUp)?;
    }
    Ok(())
}

/// The field `key` of `object` names, if it is one to split off: a message-typed field (a
/// list of messages, or a singular message outside any oneof, in both cases not a well-known
/// type), named by its proto or JSON name and by no other key, whose value is a JSON array
/// (a list) or object (a message).
fn split_field(
    desc: &MessageDescriptor,
    object: &BTreeMap<String, &RawValue>,
    key: &str,
    raw: &RawValue,
) -> Option<FieldDescriptor> {
    let field = desc
        .get_field_by_name(key)
        .or_else(|| desc.get_field_by_json_name(key))?;
    let Kind::Message(item) = field.kind() else {
        return None;
    };
    if field.is_map()
        || field.containing_oneof().is_some()
        || item.full_name().starts_with("google.protobuf.")
    {
        return None;
    }
    let opening = if field.is_list() { '[' } else { '{' };
    if !raw.get().starts_with(opening) {
        return None;
    }
    let named_once = object.keys().filter(|other| *other != key).all(|other| {
        desc.get_field_by_name(other)
            .or_else(|| desc.get_field_by_json_name(other))
            .or_else(|| field_by_loose_name(desc, other))
            .is_none_or(|f| f.number() != field.number())
    });
    named_once.then_some(field)
}

/// Appends a small JSON object decoded as the whole-body path decodes it.
fn encode_whole(
    desc: &MessageDescriptor,
    json: &str,
    deny_unknown: bool,
    out: &mut Vec<u8>,
) -> Result<(), GiveUp> {
    let mut value: Value = serde_json::from_str(json).map_err(|_| GiveUp)?;
    accept_alternative_names(desc, &mut value);
    dynamic(desc, value, deny_unknown)?
        .encode(out)
        .map_err(|_| GiveUp)
}

fn dynamic(
    desc: &MessageDescriptor,
    value: Value,
    deny_unknown: bool,
) -> Result<DynamicMessage, GiveUp> {
    let options = DeserializeOptions::new().deny_unknown_fields(deny_unknown);
    DynamicMessage::deserialize_with_options(desc.clone(), value, &options).map_err(|_| GiveUp)
}

/// Appends field `number` with the length-delimited payload `bytes`.
fn length_delimited(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}
