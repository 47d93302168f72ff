//! Pins the wire layout of the messages clients use most by encoding them and reading the tags
//! back, so that an accidental renumbering or type change in the .proto files fails CI.
//! (tests/wire_facts.rs checks every field against Permify's published client as well.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lookout_proto::v1::{
    Attribute, BooleanValue, Context, DataChange, DataChanges, Entity, IntegerArrayValue,
    PermissionCheckRequest, PermissionCheckRequestMetadata, PermissionCheckResponse,
    PermissionCheckResponseMetadata, PermissionLookupEntityRequest,
    PermissionLookupEntityStreamResponse, StringArrayValue, Subject, Tenant, Tuple, WatchRequest,
    data_change,
};
use prost::{Message, Name};
use prost_types::{Any, Struct, Timestamp};

/// One top-level field as found on the wire.
#[derive(Debug, PartialEq)]
enum Wire {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Bytes(u32, Vec<u8>),
}

fn varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = buf[*pos];
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
    }
    panic!("varint too long");
}

/// Splits an encoded message into its top-level fields, in wire order.
fn fields(buf: &[u8]) -> Vec<Wire> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos);
        let number = u32::try_from(key >> 3).unwrap();
        match key & 7 {
            0 => out.push(Wire::Varint(number, varint(buf, &mut pos))),
            1 => {
                let bytes: [u8; 8] = buf[pos..pos + 8].try_into().unwrap();
                pos += 8;
                out.push(Wire::Fixed64(number, u64::from_le_bytes(bytes)));
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)).unwrap();
                out.push(Wire::Bytes(number, buf[pos..pos + len].to_vec()));
                pos += len;
            }
            other => panic!("unexpected wire type {other} for field {number}"),
        }
    }
    out
}

fn numbers(buf: &[u8]) -> Vec<u32> {
    fields(buf)
        .iter()
        .map(|f| match f {
            Wire::Varint(n, _) | Wire::Fixed64(n, _) | Wire::Bytes(n, _) => *n,
        })
        .collect()
}

fn bytes_of(buf: &[u8], number: u32) -> Vec<u8> {
    fields(buf)
        .into_iter()
        .find_map(|f| match f {
            Wire::Bytes(n, b) if n == number => Some(b),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no length-delimited field {number}"))
}

fn entity(t: &str, id: &str) -> Entity {
    Entity {
        r#type: t.into(),
        id: id.into(),
    }
}

fn subject(t: &str, id: &str, relation: &str) -> Subject {
    Subject {
        r#type: t.into(),
        id: id.into(),
        relation: relation.into(),
    }
}

#[test]
fn permission_check_request() {
    let req = PermissionCheckRequest {
        tenant_id: "t1".into(),
        metadata: Some(PermissionCheckRequestMetadata {
            schema_version: "v".into(),
            snap_token: "s".into(),
            depth: 20,
        }),
        entity: Some(entity("doc", "1")),
        permission: "view".into(),
        subject: Some(subject("user", "u", "member")),
        context: Some(Context {
            tuples: vec![Tuple::default()],
            attributes: vec![Attribute::default()],
            data: Some(Struct::default()),
        }),
        arguments: vec![Default::default()],
    };
    let buf = req.encode_to_vec();
    // tenant_id 1, metadata 2, entity 3, permission 4, subject 5, context 6, arguments 7.
    assert_eq!(numbers(&buf), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(bytes_of(&buf, 1), b"t1");
    assert_eq!(bytes_of(&buf, 4), b"view");

    // Metadata: schema_version 1, snap_token 2, depth 3 (varint).
    let metadata = bytes_of(&buf, 2);
    assert_eq!(
        fields(&metadata),
        [
            Wire::Bytes(1, b"v".to_vec()),
            Wire::Bytes(2, b"s".to_vec()),
            Wire::Varint(3, 20),
        ]
    );
    // Entity: type 1, id 2. Subject: type 1, id 2, relation 3.
    assert_eq!(
        fields(&bytes_of(&buf, 3)),
        [
            Wire::Bytes(1, b"doc".to_vec()),
            Wire::Bytes(2, b"1".to_vec())
        ]
    );
    assert_eq!(
        fields(&bytes_of(&buf, 5)),
        [
            Wire::Bytes(1, b"user".to_vec()),
            Wire::Bytes(2, b"u".to_vec()),
            Wire::Bytes(3, b"member".to_vec()),
        ]
    );
    // Context: tuples 1, attributes 2, data 3.
    assert_eq!(numbers(&bytes_of(&buf, 6)), [1, 2, 3]);
}

#[test]
fn permission_check_response() {
    let resp = PermissionCheckResponse {
        can: 2,
        metadata: Some(PermissionCheckResponseMetadata { check_count: 5 }),
    };
    let buf = resp.encode_to_vec();
    assert_eq!(fields(&buf)[0], Wire::Varint(1, 2));
    assert_eq!(fields(&bytes_of(&buf, 2)), [Wire::Varint(1, 5)]);
}

#[test]
fn lookup_entity_request_and_stream_response() {
    let req = PermissionLookupEntityRequest {
        tenant_id: "t1".into(),
        metadata: Some(Default::default()),
        entity_type: "doc".into(),
        permission: "view".into(),
        subject: Some(subject("user", "u", "")),
        context: Some(Context::default()),
        scope: [(
            "doc".to_owned(),
            StringArrayValue {
                data: vec!["1".into()],
            },
        )]
        .into(),
        page_size: 7,
        continuous_token: "c".into(),
    };
    let buf = req.encode_to_vec();
    assert_eq!(numbers(&buf), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert!(
        fields(&buf).contains(&Wire::Varint(8, 7)),
        "page_size is varint field 8"
    );
    assert_eq!(bytes_of(&buf, 9), b"c");
    // scope is map<string, StringArrayValue>: entry key 1, value 2 (data 1).
    let entry = bytes_of(&buf, 7);
    assert_eq!(bytes_of(&entry, 1), b"doc");
    assert_eq!(
        fields(&bytes_of(&entry, 2)),
        [Wire::Bytes(1, b"1".to_vec())]
    );

    let resp = PermissionLookupEntityStreamResponse {
        entity_id: "9".into(),
        continuous_token: "k".into(),
    };
    assert_eq!(
        fields(&resp.encode_to_vec()),
        [Wire::Bytes(1, b"9".to_vec()), Wire::Bytes(2, b"k".to_vec())]
    );
}

#[test]
fn attribute_and_values() {
    let attr = Attribute {
        entity: Some(entity("doc", "1")),
        attribute: "public".into(),
        value: Some(Any::from_msg(&BooleanValue { data: true }).unwrap()),
    };
    let buf = attr.encode_to_vec();
    assert_eq!(numbers(&buf), [1, 2, 3]);
    let any = bytes_of(&buf, 3);
    assert_eq!(bytes_of(&any, 1), BooleanValue::type_url().as_bytes());
    assert_eq!(fields(&bytes_of(&any, 2)), [Wire::Varint(1, 1)]);

    // Integer arrays are packed int32 in field 1.
    let ints = IntegerArrayValue {
        data: vec![1, 2, 300],
    };
    assert_eq!(
        fields(&ints.encode_to_vec()),
        [Wire::Bytes(1, vec![1, 2, 0xac, 0x02])]
    );
    let double = lookout_proto::v1::DoubleValue { data: 1.5 };
    assert_eq!(
        fields(&double.encode_to_vec()),
        [Wire::Fixed64(1, 1.5f64.to_bits())]
    );
}

#[test]
fn watch_messages() {
    let req = WatchRequest {
        tenant_id: "t1".into(),
        snap_token: "s".into(),
    };
    assert_eq!(
        fields(&req.encode_to_vec()),
        [
            Wire::Bytes(1, b"t1".to_vec()),
            Wire::Bytes(2, b"s".to_vec())
        ]
    );
    let changes = DataChanges {
        snap_token: "s".into(),
        data_changes: vec![
            DataChange {
                operation: data_change::Operation::Delete as i32,
                r#type: Some(data_change::Type::Tuple(Tuple::default())),
            },
            DataChange {
                operation: data_change::Operation::Create as i32,
                r#type: Some(data_change::Type::Attribute(Attribute::default())),
            },
        ],
    };
    let buf = changes.encode_to_vec();
    assert_eq!(numbers(&buf), [1, 2, 2]);
    let first = fields(&buf)
        .into_iter()
        .filter_map(|f| match f {
            Wire::Bytes(2, b) => Some(numbers(&b)),
            _ => None,
        })
        .collect::<Vec<_>>();
    // operation 1, then tuple 2 / attribute 3.
    assert_eq!(first, [vec![1, 2], vec![1, 3]]);
}

#[test]
fn tenant() {
    let tenant = Tenant {
        id: "t1".into(),
        name: "n".into(),
        created_at: Some(Timestamp {
            seconds: 1,
            nanos: 0,
        }),
    };
    assert_eq!(numbers(&tenant.encode_to_vec()), [1, 2, 3]);
}
