//! Checks the descriptors built from our .proto files against the wire facts of Permify's
//! published Node client (tests/data/permify_wire_facts.txt, made by
//! tools/permify_wire_facts.py): every message, field (name, number, cardinality, type, JSON
//! name, oneof), enum value, service and method, in both directions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use lookout_proto::json::descriptor_pool;
use prost_reflect::{FieldDescriptor, Kind};

const FACTS: &str = include_str!("data/permify_wire_facts.txt");

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Double => "double".into(),
        Kind::Float => "float".into(),
        Kind::Int32 => "int32".into(),
        Kind::Int64 => "int64".into(),
        Kind::Uint32 => "uint32".into(),
        Kind::Uint64 => "uint64".into(),
        Kind::Sint32 => "sint32".into(),
        Kind::Sint64 => "sint64".into(),
        Kind::Fixed32 => "fixed32".into(),
        Kind::Fixed64 => "fixed64".into(),
        Kind::Sfixed32 => "sfixed32".into(),
        Kind::Sfixed64 => "sfixed64".into(),
        Kind::Bool => "bool".into(),
        Kind::String => "string".into(),
        Kind::Bytes => "bytes".into(),
        Kind::Message(m) => m.full_name().into(),
        Kind::Enum(e) => e.full_name().into(),
    }
}

/// `singular|repeated|map` and the type as the facts file spells them.
fn describe(field: &FieldDescriptor) -> (String, String) {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!()
        };
        let key = kind_name(&entry.map_entry_key_field().kind());
        let value = kind_name(&entry.map_entry_value_field().kind());
        ("map".into(), format!("map<{key},{value}>"))
    } else if field.is_list() {
        ("repeated".into(), kind_name(&field.kind()))
    } else {
        ("singular".into(), kind_name(&field.kind()))
    }
}

#[test]
fn descriptors_match_permify_wire_facts() {
    let pool = descriptor_pool().unwrap();
    let mut problems = Vec::new();
    let mut expected_fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut expected_methods: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut counts = BTreeMap::<&str, usize>::new();

    for line in FACTS
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let parts: Vec<&str> = line.split(' ').collect();
        *counts.entry(parts[0]).or_default() += 1;
        match parts[0] {
            "E" => {
                let Some(e) = pool.get_enum_by_name(parts[1]) else {
                    problems.push(format!("missing enum {}", parts[1]));
                    continue;
                };
                let ours: Vec<String> = e
                    .values()
                    .map(|v| format!("{}={}", v.name(), v.number()))
                    .collect();
                let theirs: Vec<String> = parts[2..].iter().map(|s| (*s).to_owned()).collect();
                if ours != theirs {
                    problems.push(format!(
                        "enum {}: ours {ours:?}, theirs {theirs:?}",
                        parts[1]
                    ));
                }
            }
            "M" => {
                if pool.get_message_by_name(parts[1]).is_none() {
                    problems.push(format!("missing message {}", parts[1]));
                }
                expected_fields.entry(parts[1].to_owned()).or_default();
            }
            "F" => {
                let (msg, name, number, label, ty) =
                    (parts[1], parts[2], parts[3], parts[4], parts[5]);
                let json = parts[6].strip_prefix("json=").unwrap();
                let oneof = parts.get(7).and_then(|p| p.strip_prefix("oneof="));
                expected_fields
                    .entry(msg.to_owned())
                    .or_default()
                    .insert(name.to_owned());
                let Some(field) = pool
                    .get_message_by_name(msg)
                    .and_then(|m| m.get_field_by_name(name))
                else {
                    problems.push(format!("missing field {msg}.{name}"));
                    continue;
                };
                let what = format!("{msg}.{name}");
                if field.number().to_string() != number {
                    problems.push(format!("{what}: number {} != {number}", field.number()));
                }
                let (our_label, our_type) = describe(&field);
                if our_label != label || our_type != ty {
                    problems.push(format!("{what}: {our_label} {our_type} != {label} {ty}"));
                }
                if field.json_name() != json {
                    problems.push(format!("{what}: json_name {} != {json}", field.json_name()));
                }
                let our_oneof = field.containing_oneof().map(|o| o.name().to_owned());
                if our_oneof.as_deref() != oneof {
                    problems.push(format!("{what}: oneof {our_oneof:?} != {oneof:?}"));
                }
            }
            "S" => {
                let (service, method, input, output, client_stream, server_stream) =
                    (parts[1], parts[2], parts[3], parts[4], parts[5], parts[6]);
                expected_methods
                    .entry(service.to_owned())
                    .or_default()
                    .insert(method.to_owned());
                let Some(m) = pool
                    .get_service_by_name(service)
                    .and_then(|s| s.methods().find(|m| m.name() == method))
                else {
                    problems.push(format!("missing method {service}/{method}"));
                    continue;
                };
                let ours = (
                    m.input().full_name().to_owned(),
                    m.output().full_name().to_owned(),
                    m.is_client_streaming().to_string(),
                    m.is_server_streaming().to_string(),
                );
                let theirs = (
                    input.to_owned(),
                    output.to_owned(),
                    client_stream.to_owned(),
                    server_stream.to_owned(),
                );
                if ours != theirs {
                    problems.push(format!("{service}/{method}: {ours:?} != {theirs:?}"));
                }
            }
            other => panic!("bad line kind {other}: {line}"),
        }
    }

    // Nothing extra on our side: same messages (map entries aside), fields and methods.
    for message in pool.all_messages() {
        let name = message.full_name();
        let ours_in_scope =
            name.starts_with("base.v1.") || name.starts_with("google.api.expr.v1alpha1.");
        if !ours_in_scope || message.is_map_entry() {
            continue;
        }
        let Some(expected) = expected_fields.get(name) else {
            problems.push(format!("extra message {name}"));
            continue;
        };
        for field in message.fields() {
            if !expected.contains(field.name()) {
                problems.push(format!("extra field {name}.{}", field.name()));
            }
        }
    }
    let expected_enums: BTreeSet<&str> = FACTS
        .lines()
        .filter_map(|l| l.strip_prefix("E "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for e in pool.all_enums() {
        let name = e.full_name();
        let in_scope =
            name.starts_with("base.v1.") || name.starts_with("google.api.expr.v1alpha1.");
        if in_scope && !expected_enums.contains(name) {
            problems.push(format!("extra enum {name}"));
        }
    }
    for service in pool.services() {
        let expected = expected_methods.get(service.full_name());
        for method in service.methods() {
            if !expected.is_some_and(|e| e.contains(method.name())) {
                problems.push(format!("extra method {}", method.full_name()));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Guard against a truncated facts file.
    assert_eq!(counts.get("S"), Some(&25), "{counts:?}");
    assert!(counts.get("M").copied().unwrap_or(0) >= 130, "{counts:?}");
    assert!(counts.get("F").copied().unwrap_or(0) >= 350, "{counts:?}");
}
