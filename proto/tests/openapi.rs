//! Checks our JSON field names against Permify's OpenAPI document
//! (`../shared/reference/permify-openapi.json`), when `../shared` is beside the repository: each
//! test is skipped without it, and fails under CI (see `fixtures/shared.rs`).
//!
//! We emit proto field names, as Permify's gateway does (`UseProtoNames`). The document was
//! generated with JSON names, so for the few multi-word fields without an explicit snake_case
//! JSON name it shows camelCase (`entityDefinitions`) where the server sends `entity_definitions`;
//! those are listed in `DOCUMENTED_AS_CAMEL_CASE` and everything else must match exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use lookout_proto::json::{descriptor_pool, to_json};
use lookout_proto::routes::ROUTES;
use lookout_proto::v1::{
    AttributeReadResponse, DataChanges, PermissionCheckRequest, PermissionLookupEntityRequest,
    PermissionLookupEntityResponse, RelationshipReadRequest, SchemaListResponse, Tenant,
    TenantListRequest, TenantListResponse,
};
use prost_reflect::MessageDescriptor;
use serde_json::Value;

/// Fields the document names by JSON name (camelCase) while the wire JSON uses the proto name.
const DOCUMENTED_AS_CAMEL_CASE: &[&str] = &[
    "base.v1.Argument.computed_attribute",
    "base.v1.Call.rule_name",
    "base.v1.Leaf.computed_attribute",
    "base.v1.Leaf.computed_user_set",
    "base.v1.Leaf.tuple_to_user_set",
    "base.v1.RelationDefinition.relation_references",
    "base.v1.Rewrite.rewrite_operation",
    "base.v1.SchemaDefinition.entity_definitions",
    "base.v1.SchemaDefinition.rule_definitions",
];

include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/shared.rs"
));

/// The OpenAPI document, when `../shared` is there (`test` names the caller).
fn openapi(test: &str) -> Option<Value> {
    let path = shared_path(test, "reference/permify-openapi.json")?;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(serde_json::from_str(&text).unwrap())
}

fn schema_properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema} has no properties"))
        .keys()
        .cloned()
        .collect()
}

/// Compares a message's fields (less `skip`) with documented properties; returns the fields that
/// are documented under their JSON name instead of their proto name.
fn compare(
    message: &MessageDescriptor,
    props: &BTreeSet<String>,
    skip: &[&str],
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut camel = Vec::new();
    let mut seen = BTreeSet::new();
    for field in message.fields().filter(|f| !skip.contains(&f.name())) {
        let full = format!("{}.{}", message.full_name(), field.name());
        if props.contains(field.name()) {
            seen.insert(field.name().to_owned());
        } else if props.contains(field.json_name()) {
            seen.insert(field.json_name().to_owned());
            camel.push(full);
        } else {
            problems.push(format!("{full} is not documented"));
        }
    }
    for prop in props.difference(&seen) {
        problems.push(format!(
            "{}: documented property {prop} is not a field",
            message.full_name()
        ));
    }
    camel
}

#[test]
fn field_names_match_the_openapi_document() {
    let Some(doc) = openapi("field_names_match_the_openapi_document") else {
        return;
    };
    let pool = descriptor_pool().unwrap();
    let mut problems = Vec::new();
    let mut camel = BTreeSet::new();
    let mut compared = 0;

    // Schemas named after base.v1 messages.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if schema.get("properties").is_none() {
            continue; // enums
        }
        let short = name.strip_prefix("v1.").unwrap_or(name);
        let Some(message) = pool.get_message_by_name(&format!("base.v1.{short}")) else {
            continue; // request bodies (below), CEL types, google.rpc.Status
        };
        let props = schema_properties(&doc, name);
        camel.extend(compare(&message, &props, &[], &mut problems));
        compared += 1;
    }

    // Request bodies: the request message less the fields bound from the path.
    for route in ROUTES.iter().filter(|r| r.body) {
        let operation = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
        let reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{} {} has no body schema", route.method, route.path));
        let schema = reference.rsplit('/').next().unwrap();
        let method = pool
            .get_service_by_name(&format!("base.v1.{}", route.service))
            .and_then(|s| s.methods().find(|m| m.name() == route.rpc))
            .unwrap();
        let skip: Vec<&str> = route.path_params().collect();
        let props = schema_properties(&doc, schema);
        camel.extend(compare(&method.input(), &props, &skip, &mut problems));
        compared += 1;
    }

    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        camel.iter().map(String::as_str).collect::<Vec<_>>(),
        DOCUMENTED_AS_CAMEL_CASE
    );
    assert!(compared >= 80, "only {compared} schemas compared");
}

/// Keys of a JSON object.
fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn encoded_json_keys_match_the_document() {
    let Some(doc) = openapi("encoded_json_keys_match_the_document") else {
        return;
    };
    let with_tenant = |schema: &str| {
        let mut props = schema_properties(&doc, schema);
        props.insert("tenant_id".into());
        props
    };

    let check = PermissionCheckRequest {
        metadata: Some(Default::default()),
        entity: Some(Default::default()),
        subject: Some(Default::default()),
        context: Some(Default::default()),
        ..Default::default()
    };
    let json = to_json(&check).unwrap();
    assert_eq!(keys(&json), with_tenant("CheckBody"));
    assert_eq!(
        keys(&json["metadata"]),
        schema_properties(&doc, "PermissionCheckRequestMetadata")
    );
    assert!(json["metadata"].get("snap_token").is_some());

    let lookup = PermissionLookupEntityRequest {
        metadata: Some(Default::default()),
        subject: Some(Default::default()),
        context: Some(Default::default()),
        ..Default::default()
    };
    let json = to_json(&lookup).unwrap();
    assert_eq!(keys(&json), with_tenant("LookupEntityBody"));
    for key in ["tenant_id", "entity_type", "page_size", "continuous_token"] {
        assert!(json.get(key).is_some(), "{key}");
    }

    let read = RelationshipReadRequest {
        metadata: Some(Default::default()),
        filter: Some(Default::default()),
        ..Default::default()
    };
    assert_eq!(
        keys(&to_json(&read).unwrap()),
        with_tenant("ReadRelationshipsBody")
    );

    for (json, schema) in [
        (
            to_json(&PermissionLookupEntityResponse::default()).unwrap(),
            "PermissionLookupEntityResponse",
        ),
        (
            to_json(&AttributeReadResponse::default()).unwrap(),
            "AttributeReadResponse",
        ),
        (
            to_json(&SchemaListResponse::default()).unwrap(),
            "SchemaListResponse",
        ),
        (
            to_json(&TenantListRequest::default()).unwrap(),
            "TenantListRequest",
        ),
        (
            to_json(&TenantListResponse::default()).unwrap(),
            "TenantListResponse",
        ),
        (to_json(&DataChanges::default()).unwrap(), "DataChanges"),
    ] {
        assert_eq!(keys(&json), schema_properties(&doc, schema), "{schema}");
    }

    // Tenant.created_at is omitted while unset (it is a message), present once set.
    let tenant = Tenant {
        created_at: Some(Default::default()),
        ..Default::default()
    };
    assert_eq!(
        keys(&to_json(&tenant).unwrap()),
        schema_properties(&doc, "Tenant")
    );
}
