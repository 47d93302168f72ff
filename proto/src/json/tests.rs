#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prost_types::{Any, Struct, Timestamp};
use serde_json::json;

use super::*;
use crate::v1::{
    Attribute, BooleanValue, CheckResult, Context, DataChange, DataChanges, Entity,
    IntegerArrayValue, PermissionCheckRequest, PermissionCheckRequestMetadata,
    PermissionCheckResponse, PermissionCheckResponseMetadata, PermissionLookupEntityRequest,
    PermissionLookupEntityResponse, PermissionLookupEntityStreamResponse, RelationshipReadRequest,
    StringArrayValue, Subject, Tenant, TenantListRequest, Tuple, TupleSet, TupleToUserSet,
    data_change,
};

fn any_of<M: Message + Name>(msg: &M) -> Any {
    Any::from_msg(msg).unwrap()
}

fn struct_of(value: serde_json::Value) -> Struct {
    // Build the Struct through our own JSON path, which doubles as a check of Struct input.
    let ctx: Context = from_json(json!({ "data": value }).to_string().as_bytes()).unwrap();
    ctx.data.unwrap()
}

fn sample_check_request() -> PermissionCheckRequest {
    PermissionCheckRequest {
        tenant_id: "t1".into(),
        metadata: Some(PermissionCheckRequestMetadata {
            schema_version: "".into(),
            snap_token: "snap".into(),
            depth: 20,
        }),
        entity: Some(Entity {
            r#type: "document".into(),
            id: "1".into(),
        }),
        permission: "view".into(),
        subject: Some(Subject {
            r#type: "user".into(),
            id: "alice".into(),
            relation: "".into(),
        }),
        context: Some(Context {
            tuples: vec![Tuple {
                entity: Some(Entity {
                    r#type: "document".into(),
                    id: "1".into(),
                }),
                relation: "viewer".into(),
                subject: Some(Subject {
                    r#type: "user".into(),
                    id: "bob".into(),
                    relation: "".into(),
                }),
            }],
            attributes: vec![Attribute {
                entity: Some(Entity {
                    r#type: "document".into(),
                    id: "1".into(),
                }),
                attribute: "public".into(),
                value: Some(any_of(&BooleanValue { data: true })),
            }],
            data: Some(struct_of(json!({
                "ip": "10.0.0.1",
                "amount": 100,
                "ratio": 0.5,
                "tags": ["a", "b"],
                "nested": { "ok": true, "none": null }
            }))),
        }),
        arguments: vec![],
    }
}

fn sample_check_request_json() -> serde_json::Value {
    json!({
        "tenant_id": "t1",
        "metadata": { "schema_version": "", "snap_token": "snap", "depth": 20 },
        "entity": { "type": "document", "id": "1" },
        "permission": "view",
        "subject": { "type": "user", "id": "alice", "relation": "" },
        "context": {
            "tuples": [{
                "entity": { "type": "document", "id": "1" },
                "relation": "viewer",
                "subject": { "type": "user", "id": "bob", "relation": "" }
            }],
            "attributes": [{
                "entity": { "type": "document", "id": "1" },
                "attribute": "public",
                "value": { "@type": "type.googleapis.com/base.v1.BooleanValue", "data": true }
            }],
            "data": {
                "ip": "10.0.0.1",
                "amount": 100,
                "ratio": 0.5,
                "tags": ["a", "b"],
                "nested": { "ok": true, "none": null }
            }
        },
        "arguments": []
    })
}

#[test]
fn check_request_round_trips_with_struct_and_any() {
    let msg = sample_check_request();
    let value = to_json(&msg).unwrap();
    assert_eq!(value, sample_check_request_json());

    let back: PermissionCheckRequest = from_json(value.to_string().as_bytes()).unwrap();
    assert_eq!(back, msg);
    // Typed access to the Any survives the trip.
    let attr_value = back.context.unwrap().attributes[0].value.clone().unwrap();
    assert_eq!(
        attr_value.type_url,
        "type.googleapis.com/base.v1.BooleanValue"
    );
    assert_eq!(
        attr_value.to_msg::<BooleanValue>().unwrap(),
        BooleanValue { data: true }
    );
}

#[test]
fn attribute_any_is_canonical() {
    let attr = Attribute {
        entity: Some(Entity {
            r#type: "document".into(),
            id: "1".into(),
        }),
        attribute: "tags".into(),
        value: Some(any_of(&StringArrayValue {
            data: vec!["x".into(), "y".into()],
        })),
    };
    let value = to_json(&attr).unwrap();
    assert_eq!(
        value,
        json!({
            "entity": { "type": "document", "id": "1" },
            "attribute": "tags",
            "value": { "@type": "type.googleapis.com/base.v1.StringArrayValue", "data": ["x", "y"] }
        })
    );
    let back: Attribute = from_json(value.to_string().as_bytes()).unwrap();
    assert_eq!(back, attr);

    let ints = Attribute {
        value: Some(any_of(&IntegerArrayValue { data: vec![1, -2] })),
        ..Attribute::default()
    };
    assert_eq!(
        to_json(&ints).unwrap()["value"],
        json!({ "@type": "type.googleapis.com/base.v1.IntegerArrayValue", "data": [1, -2] })
    );
}

#[test]
fn type_urls_use_the_googleapis_domain() {
    assert_eq!(BooleanValue::full_name(), "base.v1.BooleanValue");
    assert_eq!(
        BooleanValue::type_url(),
        "type.googleapis.com/base.v1.BooleanValue"
    );
}

#[test]
fn camel_case_and_snake_case_input_are_both_accepted() {
    let camel = json!({
        "tenantId": "t1",
        "metadata": { "schemaVersion": "", "snapToken": "snap", "depth": 20 },
        "entity": { "type": "document", "id": "1" },
        "permission": "view",
        "subject": { "type": "user", "id": "alice" }
    });
    let msg: PermissionCheckRequest = from_json(camel.to_string().as_bytes()).unwrap();
    assert_eq!(msg.tenant_id, "t1");
    assert_eq!(msg.metadata.as_ref().unwrap().snap_token, "snap");
    assert_eq!(msg.metadata.as_ref().unwrap().depth, 20);

    // Nested in a list, in a map value and inside an Any.
    let lookup: PermissionLookupEntityRequest = from_json(
        json!({
            "tenant_id": "t1",
            "entityType": "document",
            "pageSize": 10,
            "continuousToken": "abc",
            "scope": { "document": { "data": ["1", "2"] } },
            "context": { "attributes": [{
                "attribute": "a",
                "value": { "@type": "type.googleapis.com/base.v1.BooleanValue", "data": true }
            }] }
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(lookup.entity_type, "document");
    assert_eq!(lookup.page_size, 10);
    assert_eq!(lookup.continuous_token, "abc");
    assert_eq!(lookup.scope["document"].data, ["1", "2"]);

    // A proto name that is camelCase also accepts snake_case.
    let ttu: TupleToUserSet = from_json(br#"{"tuple_set": {"relation": "parent"}}"#).unwrap();
    assert_eq!(
        ttu.tuple_set,
        Some(TupleSet {
            relation: "parent".into()
        })
    );
    let ttu: TupleToUserSet = from_json(br#"{"tupleSet": {"relation": "parent"}}"#).unwrap();
    assert_eq!(ttu.tuple_set.unwrap().relation, "parent");
}

#[test]
fn output_uses_proto_field_names() {
    let resp = PermissionLookupEntityResponse {
        entity_ids: vec!["1".into()],
        continuous_token: "tok".into(),
    };
    assert_eq!(
        to_json(&resp).unwrap(),
        json!({ "entity_ids": ["1"], "continuous_token": "tok" })
    );
    let stream = PermissionLookupEntityStreamResponse {
        entity_id: "7".into(),
        continuous_token: "t".into(),
    };
    assert_eq!(
        to_json_vec(&stream).unwrap(),
        br#"{"continuous_token":"t","entity_id":"7"}"#
    );
    let ttu = TupleToUserSet {
        tuple_set: Some(TupleSet {
            relation: "parent".into(),
        }),
        computed: None,
    };
    assert_eq!(
        to_json(&ttu).unwrap(),
        json!({ "tupleSet": { "relation": "parent" } })
    );
}

#[test]
fn unpopulated_fields_are_emitted_and_enums_are_names() {
    let resp = PermissionCheckResponse {
        can: CheckResult::Allowed as i32,
        metadata: Some(PermissionCheckResponseMetadata { check_count: 0 }),
    };
    assert_eq!(
        to_json(&resp).unwrap(),
        json!({ "can": "CHECK_RESULT_ALLOWED", "metadata": { "check_count": 0 } })
    );
    assert_eq!(
        to_json(&PermissionCheckResponse::default()).unwrap(),
        json!({ "can": "CHECK_RESULT_UNSPECIFIED" })
    );
    assert_eq!(
        to_json(&TenantListRequest::default()).unwrap(),
        json!({ "page_size": 0, "continuous_token": "" })
    );
    // Enums also decode from their numbers.
    let resp: PermissionCheckResponse = from_json(br#"{"can": 2}"#).unwrap();
    assert_eq!(resp.can(), CheckResult::Denied);
}

#[test]
fn watch_changes_and_timestamps() {
    let changes = DataChanges {
        snap_token: "s".into(),
        data_changes: vec![DataChange {
            operation: data_change::Operation::Create as i32,
            r#type: Some(data_change::Type::Tuple(Tuple::default())),
        }],
    };
    let value = to_json(&changes).unwrap();
    assert_eq!(value["snap_token"], "s");
    assert_eq!(value["data_changes"][0]["operation"], "OPERATION_CREATE");
    assert!(value["data_changes"][0]["tuple"].is_object());

    let tenant = Tenant {
        id: "t1".into(),
        name: "one".into(),
        created_at: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
    };
    let value = to_json(&tenant).unwrap();
    assert_eq!(value["created_at"], "2023-11-14T22:13:20Z");
    assert_eq!(
        from_json::<Tenant>(value.to_string().as_bytes()).unwrap(),
        tenant
    );
}

#[test]
fn integral_doubles_print_without_fraction() {
    let ctx = Context {
        data: Some(struct_of(
            json!({ "n": 3, "q": 1e15, "big": 1e300, "neg0": -0.0, "half": 1.5 }),
        )),
        ..Context::default()
    };
    let text = String::from_utf8(to_json_vec(&ctx).unwrap()).unwrap();
    assert!(text.contains(r#""n":3"#), "{text}");
    assert!(text.contains(r#""q":1000000000000000"#), "{text}");
    assert!(text.contains(r#""half":1.5"#), "{text}");
    assert!(text.contains(r#""neg0":-0.0"#), "{text}");
    assert!(text.contains(r#""big":1e+300"#), "{text}");
}

#[test]
fn empty_body_is_an_empty_message() {
    let req: RelationshipReadRequest = from_json(b"").unwrap();
    assert_eq!(req, RelationshipReadRequest::default());
    let req: RelationshipReadRequest = from_json(b" \n").unwrap();
    assert_eq!(req, RelationshipReadRequest::default());
}

#[test]
fn syntax_errors_are_reported() {
    let err = from_json::<PermissionCheckRequest>(br#"{"tenant_id": "t1""#).unwrap_err();
    assert!(matches!(err, JsonError::Syntax(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("not valid JSON"), "{text}");
    assert!(text.contains("line 1"), "{text}");
}

#[test]
fn unknown_fields_name_the_field_and_where() {
    let err = from_json::<PermissionCheckRequest>(
        br#"{"tenant_id": "t1", "metadata": {"snap_tokn": "x"}}"#,
    )
    .unwrap_err();
    let JsonError::Invalid {
        message,
        path,
        detail,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(message, "base.v1.PermissionCheckRequest");
    assert_eq!(path, "metadata");
    assert!(detail.contains("snap_tokn"), "{detail}");
    assert_eq!(
        err.to_string(),
        "invalid base.v1.PermissionCheckRequest: unrecognized field name 'snap_tokn' (at `metadata`)"
    );

    // The lenient decoder drops them, as Permify's gateway does.
    let msg: PermissionCheckRequest =
        from_json_lenient(br#"{"tenant_id": "t1", "metadata": {"snap_tokn": "x"}, "extra": [1]}"#)
            .unwrap();
    assert_eq!(msg.tenant_id, "t1");
}

#[test]
fn wrong_types_name_the_path() {
    let err =
        from_json::<PermissionCheckRequest>(br#"{"metadata": {"depth": "deep"}}"#).unwrap_err();
    let JsonError::Invalid { path, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(path, "metadata.depth", "{err}");

    let err = from_json::<PermissionCheckRequest>(br#"{"entity": ["document", "1"]}"#).unwrap_err();
    assert!(
        matches!(&err, JsonError::Invalid { path, .. } if path == "entity"),
        "{err}"
    );

    let err = from_json::<PermissionCheckResponse>(br#"{"can": "MAYBE"}"#).unwrap_err();
    assert!(err.to_string().contains("MAYBE"), "{err}");

    let err = from_json::<Attribute>(
        br#"{"value": {"@type": "type.googleapis.com/base.v1.NoSuchValue", "data": 1}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("NoSuchValue"), "{err}");

    // Page sizes are uint32.
    let err = from_json::<TenantListRequest>(br#"{"page_size": -1}"#).unwrap_err();
    assert!(
        matches!(&err, JsonError::Invalid { path, .. } if path == "page_size"),
        "{err}"
    );
}

#[test]
fn the_pool_knows_all_messages() {
    let pool = descriptor_pool().unwrap();
    for name in [
        "base.v1.PermissionCheckRequest",
        "base.v1.ErrorResponse",
        "google.api.expr.v1alpha1.CheckedExpr",
        "google.protobuf.Struct",
        "google.protobuf.Any",
        "google.protobuf.Timestamp",
    ] {
        assert!(pool.get_message_by_name(name).is_some(), "{name}");
    }
    assert!(matches!(
        message_descriptor("base.v1.Nope"),
        Err(JsonError::UnknownMessage(_))
    ));
}

/// `n` tuples as JSON text, in varied spellings: some with `subject.relation`, some with a
/// subject set, every tenth with camelCase keys the whole-body rules rename.
fn tuples_json(n: usize) -> String {
    let mut out = String::from("[");
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let subject = match i % 3 {
            0 => format!(r#"{{"type": "user", "id": "u{i}"}}"#),
            1 => format!(r#"{{"type": "user", "id": "u{i}", "relation": ""}}"#),
            _ => format!(r#"{{"type": "group", "id": "g{i}", "relation": "member"}}"#),
        };
        if i % 10 == 0 {
            out.push_str(&format!(
                r#"{{"Entity": {{"Type": "document", "ID": "d{i}"}}, "relation": "viewer", "subject": {subject}}}"#
            ));
        } else {
            out.push_str(&format!(
                r#"{{"entity": {{"type": "document", "id": "d{i}"}}, "relation": "viewer", "subject": {subject}}}"#
            ));
        }
    }
    out.push(']');
    out
}

/// Decodes `json` both ways: part by part (which must not give up) and whole.
fn both_ways<M: Message + Name + Default>(json: &str, deny_unknown: bool) -> (M, M) {
    assert!(json.len() >= parts::PART_BYTES, "{} bytes", json.len());
    let desc = message_descriptor(&M::full_name()).unwrap();
    let mut wire = Vec::new();
    parts::encode(&desc, json, deny_unknown, &mut wire).unwrap();
    let split = M::decode(wire.as_slice()).unwrap();
    let whole = decode_whole(desc, M::full_name(), json.as_bytes(), deny_unknown).unwrap();
    (split, whole)
}

#[test]
fn large_writes_decode_part_by_part_to_the_same_message() {
    let body = format!(
        r#"{{"tenantId": "t1", "metadata": {{"schemaVersion": "v7"}}, "tuples": {},
            "attributes": [
              {{"entity": {{"type": "document", "id": "d1"}}, "attribute": "public",
                "value": {{"@type": "type.googleapis.com/base.v1.BooleanValue", "data": true}}}},
              {{"entity": {{"type": "document", "id": "d2"}}, "attribute": "tags",
                "value": {{"@type": "type.googleapis.com/base.v1.StringArrayValue", "data": ["a", "b"]}}}}
            ]}}"#,
        tuples_json(2000)
    );
    for deny_unknown in [true, false] {
        let (split, whole) = both_ways::<crate::v1::DataWriteRequest>(&body, deny_unknown);
        assert_eq!(split, whole);
        assert_eq!(split.tenant_id, "t1");
        assert_eq!(split.metadata.as_ref().unwrap().schema_version, "v7");
        assert_eq!(split.tuples.len(), 2000);
        assert_eq!(split.tuples[10].entity.as_ref().unwrap().id, "d10");
        assert_eq!(split.tuples[2].subject.as_ref().unwrap().relation, "member");
        assert_eq!(split.attributes.len(), 2);
        // The public entry point takes the same path.
        let decoded: crate::v1::DataWriteRequest = from_json(body.as_bytes()).unwrap();
        assert_eq!(decoded, whole);
    }
}

#[test]
fn large_contexts_decode_part_by_part_to_the_same_message() {
    // The context is itself large, so it is split too; its data is a Struct (decoded whole).
    let body = format!(
        r#"{{"tenant_id": "t1", "metadata": {{"depth": 20, "snap_token": "s"}},
            "entity": {{"type": "document", "id": "d1"}}, "permission": "view",
            "subject": {{"type": "user", "id": "u1"}},
            "context": {{"tuples": {}, "data": {{"ip": "10.0.0.1", "n": 3}},
                         "attributes": [{{"entity": {{"type": "document", "id": "d1"}},
                           "attribute": "n",
                           "value": {{"@type": "type.googleapis.com/base.v1.IntegerValue", "data": 5}}}}]}},
            "arguments": [{{"computed_attribute": {{"name": "n"}}}}],
            "ignored_by_the_lenient_decoder": {{"a": [1, 2]}}}}"#,
        tuples_json(1500)
    );
    let (split, whole) = both_ways::<PermissionCheckRequest>(&body, false);
    assert_eq!(split, whole);
    let context = split.context.as_ref().unwrap();
    assert_eq!(context.tuples.len(), 1500);
    assert_eq!(context.attributes.len(), 1);
    assert!(context.data.as_ref().unwrap().fields.contains_key("ip"));
    assert_eq!(split.metadata.as_ref().unwrap().depth, 20);
    assert_eq!(split.arguments.len(), 1);
}

#[test]
fn large_bodies_with_errors_report_them_as_whole_bodies_do() {
    let desc = message_descriptor("base.v1.DataWriteRequest").unwrap();
    let tuples = tuples_json(1000);
    let cases = [
        // An unknown field deep inside one item (strict decoding only).
        tuples.replacen(r#""id": "d501""#, r#""idd": "d501""#, 1),
        // A wrong type inside one item.
        tuples.replacen(r#""relation": "viewer""#, r#""relation": 7"#, 1),
        // An item that is not an object.
        tuples.replacen('[', "[null, ", 1),
        // Not JSON from some point on.
        tuples.replacen(r#""type": "document""#, r#""type": document"#, 1),
    ];
    for tuples in cases {
        let body = format!(r#"{{"tenant_id": "t1", "tuples": {tuples}}}"#);
        let mut wire = Vec::new();
        assert!(parts::encode(&desc, &body, true, &mut wire).is_err());
        let err = from_json::<crate::v1::DataWriteRequest>(body.as_bytes()).unwrap_err();
        let whole = decode_whole::<crate::v1::DataWriteRequest>(
            desc.clone(),
            desc.full_name().to_owned(),
            body.as_bytes(),
            true,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), whole.to_string());
    }
    // A field spelled two ways is left to the whole-body rules, whatever they decide.
    let body = format!(r#"{{"tuples": {tuples}, "Tuples": {tuples}}}"#);
    let ours = from_json_lenient::<crate::v1::DataWriteRequest>(body.as_bytes());
    let whole = decode_whole::<crate::v1::DataWriteRequest>(
        desc.clone(),
        desc.full_name().to_owned(),
        body.as_bytes(),
        false,
    );
    assert_eq!(format!("{ours:?}"), format!("{whole:?}"));
}
