//! Bad input: every rejection has the right status, a message naming the problem, and leaves
//! the server up and the stored data as it was.
//!
//! Each test seeds a tenant per transport ([`Seeded`]), sends the bad requests over HTTP and
//! gRPC (HTTP alone where the problem only exists there, such as malformed JSON), and ends with
//! [`Seeded::assert_intact`]: a check that was allowed is still allowed, and ReadRelationships
//! returns exactly the tuples seeded.

use hyper::StatusCode;
use lookout_proto::v1;
use lookout_server::config::Config;
use serde_json::{Value, json};
use tonic::Code;

use crate::harness::{
    Client, Failure, Mode, Server, Transport, config_in, http_failure, msg, start_with,
};

const SCHEMA: &str = "entity user {}

entity group {
    relation member @user
}

entity document {
    relation owner @user
    relation viewer @user @group#member
    attribute public boolean
    permission view = owner or viewer or public
}
";

/// The seeded tuples; documents 10 to 17 give lookups several pages.
fn seed_tuples() -> Vec<String> {
    let mut tuples = vec![
        "document:1#owner@user:alice".to_owned(),
        "group:eng#member@user:bob".to_owned(),
        "document:2#viewer@group:eng#member".to_owned(),
    ];
    tuples.extend((10..18).map(|i| format!("document:{i}#viewer@user:dave")));
    tuples
}

/// A tenant with [`SCHEMA`] and [`seed_tuples`], and what must survive every bad request.
struct Seeded {
    client: Client,
    tenant: String,
    snap_token: String,
    /// Sorted text forms of the tuples ReadRelationships returned after seeding.
    tuples: Vec<String>,
}

impl Seeded {
    async fn new(server: &Server, transport: Transport) -> Seeded {
        let client = Client::connect(transport, server).await;
        let tenant = format!("bad-{}", transport.to_string().to_lowercase());
        client
            .create_tenant(v1::TenantCreateRequest {
                id: tenant.clone(),
                name: tenant.clone(),
            })
            .await
            .expect("Tenancy.Create");
        client
            .write_schema(v1::SchemaWriteRequest {
                tenant_id: tenant.clone(),
                schema: SCHEMA.to_owned(),
            })
            .await
            .expect("Schema.Write");
        let snap_token = client
            .write_data(v1::DataWriteRequest {
                tenant_id: tenant.clone(),
                metadata: Some(v1::DataWriteRequestMetadata::default()),
                tuples: seed_tuples().iter().map(|t| msg::tuple_text(t)).collect(),
                attributes: vec![v1::Attribute {
                    entity: msg::entity_text("document:3"),
                    attribute: "public".to_owned(),
                    value: Some(msg::value(&lookout_engine::model::AttrValue::Boolean(true))),
                }],
            })
            .await
            .expect("Data.Write")
            .snap_token;
        let mut seeded = Seeded {
            client,
            tenant,
            snap_token,
            tuples: Vec::new(),
        };
        seeded.tuples = seeded.read_tuples().await;
        let mut want = seed_tuples();
        want.sort();
        assert_eq!(seeded.tuples, want);
        seeded
    }

    /// Every tuple of the tenant, sorted, through ReadRelationships in pages of 4.
    async fn read_tuples(&self) -> Vec<String> {
        let mut out = Vec::new();
        for entity_type in ["document", "group"] {
            let mut continuous_token = String::new();
            loop {
                let page = self
                    .client
                    .read_relationships(v1::RelationshipReadRequest {
                        tenant_id: self.tenant.clone(),
                        metadata: Some(v1::RelationshipReadRequestMetadata::default()),
                        filter: Some(v1::TupleFilter {
                            entity: Some(v1::EntityFilter {
                                r#type: entity_type.to_owned(),
                                ids: Vec::new(),
                            }),
                            relation: String::new(),
                            subject: None,
                        }),
                        page_size: 4,
                        continuous_token,
                    })
                    .await
                    .expect("Data.ReadRelationships");
                out.extend(page.tuples.iter().map(tuple_text));
                if page.continuous_token.is_empty() {
                    break;
                }
                continuous_token = page.continuous_token;
            }
        }
        out.sort();
        out
    }

    fn check(
        &self,
        entity: v1::Entity,
        permission: &str,
        subject: v1::Subject,
    ) -> v1::PermissionCheckRequest {
        v1::PermissionCheckRequest {
            tenant_id: self.tenant.clone(),
            metadata: Some(v1::PermissionCheckRequestMetadata {
                snap_token: self.snap_token.clone(),
                depth: 20,
                ..Default::default()
            }),
            entity: Some(entity),
            permission: permission.to_owned(),
            subject: Some(subject),
            ..Default::default()
        }
    }

    async fn allowed(&self, entity: &str, permission: &str, subject: &str) -> bool {
        let request = self.check(
            msg::entity_text(entity).expect("an entity"),
            permission,
            msg::subject_text(subject).expect("a subject"),
        );
        let can = self
            .client
            .check(request)
            .await
            .expect("Permission.Check")
            .can;
        can == v1::CheckResult::Allowed as i32
    }

    /// The server answers, what was allowed still is, and the tuples are those seeded.
    async fn assert_intact(&self) {
        let transport = self.client.transport();
        assert!(
            self.allowed("document:2", "view", "user:bob").await,
            "{transport}: an allowed check is no longer allowed"
        );
        assert!(self.allowed("document:1", "view", "user:alice").await);
        assert!(self.allowed("document:3", "view", "user:anyone").await);
        assert!(!self.allowed("document:1", "view", "user:bob").await);
        assert_eq!(
            self.read_tuples().await,
            self.tuples,
            "{transport}: the stored tuples changed"
        );
    }

    async fn write(&self, tuples: Vec<v1::Tuple>, attributes: Vec<v1::Attribute>) -> Failure {
        self.client
            .write_data(v1::DataWriteRequest {
                tenant_id: self.tenant.clone(),
                metadata: Some(v1::DataWriteRequestMetadata::default()),
                tuples,
                attributes,
            })
            .await
            .expect_err("a bad write is rejected")
    }

    async fn write_schema(&self, schema: &str) -> Failure {
        self.client
            .write_schema(v1::SchemaWriteRequest {
                tenant_id: self.tenant.clone(),
                schema: schema.to_owned(),
            })
            .await
            .expect_err("a bad schema is rejected")
    }

    async fn bad_check(&self, request: v1::PermissionCheckRequest) -> Failure {
        self.client
            .check(request)
            .await
            .expect_err("a bad check is rejected")
    }

    fn lookup(&self, subject: &str) -> v1::PermissionLookupEntityRequest {
        v1::PermissionLookupEntityRequest {
            tenant_id: self.tenant.clone(),
            metadata: Some(v1::PermissionLookupEntityRequestMetadata {
                snap_token: self.snap_token.clone(),
                ..Default::default()
            }),
            entity_type: "document".to_owned(),
            permission: "view".to_owned(),
            subject: msg::subject_text(subject),
            page_size: 3,
            ..Default::default()
        }
    }

    fn lookup_subject(&self) -> v1::PermissionLookupSubjectRequest {
        v1::PermissionLookupSubjectRequest {
            tenant_id: self.tenant.clone(),
            metadata: Some(v1::PermissionLookupSubjectRequestMetadata {
                snap_token: self.snap_token.clone(),
                ..Default::default()
            }),
            entity: msg::entity_text("document:2"),
            permission: "view".to_owned(),
            subject_reference: Some(v1::RelationReference {
                r#type: "user".to_owned(),
                relation: String::new(),
            }),
            page_size: 1,
            ..Default::default()
        }
    }
}

fn tuple_text(t: &v1::Tuple) -> String {
    let e = t.entity.clone().unwrap_or_default();
    let s = t.subject.clone().unwrap_or_default();
    let mut text = format!("{}:{}#{}@{}:{}", e.r#type, e.id, t.relation, s.r#type, s.id);
    if !s.relation.is_empty() {
        text.push('#');
        text.push_str(&s.relation);
    }
    text
}

fn entity(ty: &str, id: &str) -> v1::Entity {
    v1::Entity {
        r#type: ty.to_owned(),
        id: id.to_owned(),
    }
}

fn subject(ty: &str, id: &str, relation: &str) -> v1::Subject {
    v1::Subject {
        r#type: ty.to_owned(),
        id: id.to_owned(),
        relation: relation.to_owned(),
    }
}

fn tuple(e: v1::Entity, relation: &str, s: v1::Subject) -> v1::Tuple {
    v1::Tuple {
        entity: Some(e),
        relation: relation.to_owned(),
        subject: Some(s),
    }
}

/// The token with one character in the middle changed to another of the token alphabet.
fn tampered(token: &str) -> String {
    assert!(token.len() > 4, "a real token: `{token}`");
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// Defines a test that runs `body` twice: against an open server, and against one that
/// requires a preshared key (which the harness's clients send). Bad input must be answered
/// the same either way.
macro_rules! both_modes {
    ($(#[$attr:meta])* async fn $name:ident($mode:ident) $body:block) => {
        $(#[$attr])*
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn open() {
                run(Mode::Open).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn authenticated() {
                run(Mode::Authenticated).await;
            }

            async fn run($mode: Mode) $body
        }
    };
}

/// Runs `body` against a fresh seeded tenant per transport, then checks the tenant is intact.
macro_rules! over_both {
    ($server:expr, |$seeded:ident| $body:block) => {
        for transport in Transport::ALL {
            let $seeded = Seeded::new(&$server, transport).await;
            $body
            $seeded.assert_intact().await;
        }
    };
}

both_modes! { async fn malformed_json_is_400(mode) {
    let server = start_with(config_in(mode)).await;
    let seeded = Seeded::new(&server, Transport::Http).await;
    let Client::Http(http) = &seeded.client else {
        unreachable!()
    };
    let prefix = format!("/v1/tenants/{}", seeded.tenant);
    for (path, body) in [
        ("permissions/check", "{\"entity\": "),
        (
            "data/write",
            "{\"tuples\": [{\"entity\": {\"type\": \"document\",}}]}",
        ),
        ("schemas/write", "schema: entity user {}"),
        ("permissions/lookup-entity-stream", "[1, 2"),
    ] {
        let (status, text) = http.raw("POST", &format!("{prefix}/{path}"), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {text}");
        let value: Value = serde_json::from_str(&text).expect("a JSON error body");
        http_failure(status.as_u16(), &value).assert(Code::InvalidArgument, &["not valid JSON"]);
    }
    // JSON of the wrong shape names the field.
    let (status, value) = http
        .post(
            &format!("{prefix}/permissions/check"),
            &json!({ "metadata": { "depth": "deep" } }),
        )
        .await;
    http_failure(status.as_u16(), &value).assert(Code::InvalidArgument, &["metadata.depth"]);
    // An attribute value whose data does not fit its `@type`.
    let (status, value) = http
        .post(
            &format!("{prefix}/data/write"),
            &json!({ "attributes": [{
                "entity": { "type": "document", "id": "1" },
                "attribute": "public",
                "value": { "@type": "type.googleapis.com/base.v1.BooleanValue", "data": "yes" },
            }] }),
        )
        .await;
    http_failure(status.as_u16(), &value).assert(
        Code::InvalidArgument,
        &["attributes[0].value.data", "boolean"],
    );
    seeded.assert_intact().await;
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn schema_syntax_errors_give_line_and_column(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let e = seeded
            .write_schema("entity user {}\n\nentity doc {\n    relation owner @user\n    permision view = owner\n}\n")
            .await;
        e.assert(Code::InvalidArgument, &["5:5", "permision"]);
        let e = seeded.write_schema("entity user {\n").await;
        e.assert(Code::InvalidArgument, &["2:1"]);
        let e = seeded
            .write_schema("entity user {}\nentity doc {\n    relation owner @user\n    permission view = owner or (owner\n}\n")
            .await;
        e.assert(Code::InvalidArgument, &["5:"]);
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn undefined_relations_in_a_schema_are_named(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let e = seeded
            .write_schema("entity user {}\nentity doc {\n    relation owner @user\n    permission view = owner or nothing\n}\n")
            .await;
        e.assert(Code::InvalidArgument, &["4:32", "`nothing`"]);
        let e = seeded
            .write_schema("entity user {}\nentity doc {\n    relation owner @robot\n}\n")
            .await;
        e.assert(Code::InvalidArgument, &["3:", "`robot`"]);
        let e = seeded
            .write_schema("entity user {}\nentity doc {\n    relation parent @doc\n    permission view = parent.nothing\n}\n")
            .await;
        e.assert(Code::InvalidArgument, &["4:", "`nothing`"]);
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn unknown_names_in_a_check_are_named(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let alice = || subject("user", "alice", "");
        let e = seeded
            .bad_check(seeded.check(entity("folder", "1"), "view", alice()))
            .await;
        e.assert(Code::InvalidArgument, &["`folder`"]);
        assert!(!e.message.contains("subject"), "the entity is at fault: {e}");
        let e = seeded
            .bad_check(seeded.check(entity("document", "1"), "nope", alice()))
            .await;
        e.assert(Code::InvalidArgument, &["`nope`", "`document`"]);
        let e = seeded
            .bad_check(seeded.check(entity("document", "1"), "view", subject("robot", "r2", "")))
            .await;
        e.assert(Code::InvalidArgument, &["subject", "`robot`"]);
        let e = seeded
            .bad_check(seeded.check(
                entity("document", "1"),
                "view",
                subject("group", "eng", "nope"),
            ))
            .await;
        e.assert(Code::InvalidArgument, &["`nope`", "`group`"]);
        let e = seeded
            .bad_check(seeded.check(entity("document", "1"), "", alice()))
            .await;
        e.assert(Code::InvalidArgument, &["permission"]);
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn unknown_names_in_a_write_are_named(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let alice = || subject("user", "alice", "");
        let e = seeded
            .write(vec![tuple(entity("folder", "1"), "owner", alice())], vec![])
            .await;
        e.assert(Code::InvalidArgument, &["tuples[0]", "`folder`"]);
        let e = seeded
            .write(
                vec![tuple(entity("document", "1"), "editor", alice())],
                vec![],
            )
            .await;
        e.assert(Code::InvalidArgument, &["tuples[0]", "`editor`"]);
        // A permission is not a relation that can be written.
        let e = seeded
            .write(
                vec![tuple(entity("document", "1"), "view", alice())],
                vec![],
            )
            .await;
        e.assert(Code::InvalidArgument, &["tuples[0]", "`view`"]);
        let e = seeded
            .write(
                vec![tuple(
                    entity("document", "1"),
                    "owner",
                    subject("robot", "r2", ""),
                )],
                vec![],
            )
            .await;
        e.assert(Code::InvalidArgument, &["tuples[0]", "`robot`"]);
        let e = seeded
            .write(
                vec![],
                vec![v1::Attribute {
                    entity: msg::entity_text("document:1"),
                    attribute: "secret".to_owned(),
                    value: Some(msg::value(&lookout_engine::model::AttrValue::Boolean(true))),
                }],
            )
            .await;
        e.assert(Code::InvalidArgument, &["attributes[0]", "`secret`"]);
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn subject_types_a_relation_does_not_allow_are_rejected(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let e = seeded
            .write(
                vec![tuple(
                    entity("document", "1"),
                    "owner",
                    subject("group", "eng", "member"),
                )],
                vec![],
            )
            .await;
        e.assert(
            Code::InvalidArgument,
            &["tuples[0]", "`document#owner`", "`group#member`", "`@user`"],
        );
        let e = seeded
            .write(
                vec![tuple(
                    entity("document", "1"),
                    "viewer",
                    subject("group", "eng", ""),
                )],
                vec![],
            )
            .await;
        e.assert(Code::InvalidArgument, &["`document#viewer`", "`group`"]);
        let e = seeded
            .write(
                vec![tuple(
                    entity("group", "eng"),
                    "member",
                    subject("document", "1", ""),
                )],
                vec![],
            )
            .await;
        e.assert(Code::InvalidArgument, &["`group#member`", "`document`"]);
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn attribute_values_of_the_wrong_type_are_rejected(mode) {
    use lookout_engine::model::AttrValue;
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let public = |value: prost_types::Any| v1::Attribute {
            entity: msg::entity_text("document:1"),
            attribute: "public".to_owned(),
            value: Some(value),
        };
        let e = seeded
            .write(
                vec![],
                vec![public(msg::value(&AttrValue::String("yes".to_owned())))],
            )
            .await;
        e.assert(
            Code::InvalidArgument,
            &["attributes[0]", "`boolean`", "`string`"],
        );
        let e = seeded
            .write(vec![], vec![public(msg::value(&AttrValue::Integer(1)))])
            .await;
        e.assert(
            Code::InvalidArgument,
            &["attributes[0]", "`boolean`", "`integer`"],
        );
        let e = seeded
            .write(
                vec![],
                vec![public(msg::value(&AttrValue::BooleanArray(vec![true])))],
            )
            .await;
        e.assert(Code::InvalidArgument, &["attributes[0]", "`boolean`"]);
        // A contextual attribute of the wrong type is as wrong as a stored one.
        let mut check = seeded.check(entity("document", "1"), "view", subject("user", "x", ""));
        check.context = Some(v1::Context {
            attributes: vec![public(msg::value(&AttrValue::String("yes".to_owned())))],
            ..Default::default()
        });
        let e = seeded.bad_check(check).await;
        e.assert(Code::InvalidArgument, &["public", "boolean"]);
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn ids_must_be_1_to_128_characters(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let alice = || subject("user", "alice", "");
        let e = seeded
            .bad_check(seeded.check(entity("document", ""), "view", alice()))
            .await;
        e.assert(Code::InvalidArgument, &["entity.id", "empty"]);
        let e = seeded
            .bad_check(seeded.check(entity("document", "1"), "view", subject("user", "", "")))
            .await;
        e.assert(Code::InvalidArgument, &["subject.id", "empty"]);
        let e = seeded
            .write(
                vec![tuple(entity("document", ""), "owner", alice())],
                vec![],
            )
            .await;
        e.assert(Code::InvalidArgument, &["tuples[0].entity.id", "empty"]);

        let long = "x".repeat(129);
        let e = seeded
            .bad_check(seeded.check(entity("document", &long), "view", alice()))
            .await;
        e.assert(Code::InvalidArgument, &["entity.id", "128"]);
        let e = seeded
            .write(
                vec![tuple(
                    entity("document", "1"),
                    "owner",
                    subject("user", &long, ""),
                )],
                vec![],
            )
            .await;
        e.assert(Code::InvalidArgument, &["tuples[0].subject.id", "128"]);
        // 128 characters are fine.
        let request = seeded.check(entity("document", &"x".repeat(128)), "view", alice());
        let can = seeded
            .client
            .check(request)
            .await
            .expect("a 128-character id")
            .can;
        assert_eq!(can, v1::CheckResult::Denied as i32);
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn page_sizes_over_100_are_rejected(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let mut lookup = seeded.lookup("user:dave");
        lookup.page_size = 101;
        let e = seeded
            .client
            .lookup_entity(lookup.clone())
            .await
            .expect_err("page_size 101");
        e.assert(Code::InvalidArgument, &["page_size", "100", "101"]);
        let e = seeded
            .client
            .lookup_entity_stream(lookup)
            .await
            .expect_err("page_size 101");
        e.assert(Code::InvalidArgument, &["page_size", "101"]);
        let mut lookup = seeded.lookup_subject();
        lookup.page_size = 101;
        let e = seeded
            .client
            .lookup_subject(lookup)
            .await
            .expect_err("page_size 101");
        e.assert(Code::InvalidArgument, &["page_size", "101"]);
        let e = seeded
            .client
            .read_relationships(v1::RelationshipReadRequest {
                tenant_id: seeded.tenant.clone(),
                filter: Some(v1::TupleFilter {
                    entity: Some(v1::EntityFilter {
                        r#type: "document".to_owned(),
                        ids: Vec::new(),
                    }),
                    ..Default::default()
                }),
                page_size: 101,
                ..Default::default()
            })
            .await
            .expect_err("page_size 101");
        e.assert(Code::InvalidArgument, &["page_size", "101"]);
        // 100 is fine.
        let mut lookup = seeded.lookup("user:dave");
        lookup.page_size = 100;
        let page = seeded
            .client
            .lookup_entity(lookup)
            .await
            .expect("page_size 100");
        assert_eq!(
            page.entity_ids.len(),
            9,
            "documents 10 to 17, and the public 3"
        );
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn forged_snap_tokens_are_rejected(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let alice = || subject("user", "alice", "");
        for forged in ["abc", "not a token at all", &tampered(&seeded.snap_token)] {
            let mut check = seeded.check(entity("document", "1"), "view", alice());
            check.metadata.as_mut().expect("metadata").snap_token = forged.to_owned();
            let e = seeded.bad_check(check).await;
            e.assert(Code::InvalidArgument, &["snap_token"]);
        }
        // A real token of another tenant.
        let other = format!("{}-other", seeded.tenant);
        seeded
            .client
            .create_tenant(v1::TenantCreateRequest {
                id: other.clone(),
                name: other.clone(),
            })
            .await
            .expect("Tenancy.Create");
        seeded
            .client
            .write_schema(v1::SchemaWriteRequest {
                tenant_id: other.clone(),
                schema: SCHEMA.to_owned(),
            })
            .await
            .expect("Schema.Write");
        let foreign = seeded
            .client
            .write_data(v1::DataWriteRequest {
                tenant_id: other,
                metadata: Some(v1::DataWriteRequestMetadata::default()),
                tuples: vec![msg::tuple_text("document:1#owner@user:alice")],
                attributes: Vec::new(),
            })
            .await
            .expect("Data.Write")
            .snap_token;
        let mut check = seeded.check(entity("document", "1"), "view", alice());
        check.metadata.as_mut().expect("metadata").snap_token = foreign;
        let e = seeded.bad_check(check).await;
        e.assert(Code::InvalidArgument, &["snap_token", "another tenant"]);
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn forged_continuous_tokens_are_rejected(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let first = seeded
            .client
            .lookup_entity(seeded.lookup("user:dave"))
            .await
            .expect("a first page");
        assert_eq!(first.entity_ids.len(), 3);
        assert!(!first.continuous_token.is_empty());
        for forged in ["abc", "Qw", &tampered(&first.continuous_token)] {
            let mut next = seeded.lookup("user:dave");
            next.continuous_token = forged.to_owned();
            let e = seeded
                .client
                .lookup_entity(next.clone())
                .await
                .expect_err("forged");
            e.assert(Code::InvalidArgument, &["continuous_token"]);
            let e = seeded
                .client
                .lookup_entity_stream(next)
                .await
                .expect_err("forged");
            e.assert(Code::InvalidArgument, &["continuous_token"]);
            let mut next = seeded.lookup_subject();
            next.continuous_token = forged.to_owned();
            let e = seeded
                .client
                .lookup_subject(next)
                .await
                .expect_err("forged");
            e.assert(Code::InvalidArgument, &["continuous_token"]);
        }
        // The real token still continues its own query.
        let mut next = seeded.lookup("user:dave");
        next.continuous_token = first.continuous_token;
        let second = seeded
            .client
            .lookup_entity(next)
            .await
            .expect("the second page");
        assert_eq!(second.entity_ids.len(), 3);
        assert!(
            second
                .entity_ids
                .iter()
                .all(|id| !first.entity_ids.contains(id))
        );
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn continuous_tokens_of_another_query_are_rejected(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let token = seeded
            .client
            .lookup_entity(seeded.lookup("user:dave"))
            .await
            .expect("a first page")
            .continuous_token;
        assert!(!token.is_empty());
        // Another subject, another permission, another method: each a different query.
        let mut other = seeded.lookup("user:alice");
        other.continuous_token = token.clone();
        let e = seeded
            .client
            .lookup_entity(other)
            .await
            .expect_err("another subject");
        e.assert(
            Code::InvalidArgument,
            &["continuous_token", "another query"],
        );
        let mut other = seeded.lookup("user:dave");
        other.permission = "viewer".to_owned();
        other.continuous_token = token.clone();
        let e = seeded
            .client
            .lookup_entity(other)
            .await
            .expect_err("another permission");
        e.assert(
            Code::InvalidArgument,
            &["continuous_token", "another query"],
        );
        let mut other = seeded.lookup_subject();
        other.continuous_token = token.clone();
        let e = seeded
            .client
            .lookup_subject(other)
            .await
            .expect_err("another method");
        e.assert(
            Code::InvalidArgument,
            &["continuous_token", "another query"],
        );
        // A stream's token continues the paged lookup of the same question, and back.
        let streamed = seeded
            .client
            .lookup_entity_stream(seeded.lookup("user:dave"))
            .await
            .expect("a stream");
        let mut same = seeded.lookup("user:dave");
        same.continuous_token = streamed[0].continuous_token.clone();
        seeded
            .client
            .lookup_entity(same)
            .await
            .expect("the same query");
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn unknown_tenants_are_404(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let mut check = seeded.check(
            entity("document", "1"),
            "view",
            subject("user", "alice", ""),
        );
        check.tenant_id = "no-such-tenant".to_owned();
        check.metadata = None;
        let e = seeded.bad_check(check).await;
        e.assert(Code::NotFound, &["no-such-tenant"]);
        let e = seeded
            .client
            .write_schema(v1::SchemaWriteRequest {
                tenant_id: "no-such-tenant".to_owned(),
                schema: SCHEMA.to_owned(),
            })
            .await
            .expect_err("unknown tenant");
        e.assert(Code::NotFound, &["no-such-tenant"]);
        let mut lookup = seeded.lookup("user:dave");
        lookup.tenant_id = "no-such-tenant".to_owned();
        lookup.metadata = None;
        let e = seeded
            .client
            .lookup_entity_stream(lookup)
            .await
            .expect_err("unknown tenant");
        e.assert(Code::NotFound, &["no-such-tenant"]);
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! {
/// Bodies and messages over `--max-request-bytes` are refused before they are read whole.
async fn requests_over_the_size_limit_are_refused(mode) {
    const LIMIT: usize = 16 * 1024;
    let server = start_with(Config {
        max_request_bytes: LIMIT,
        ..config_in(mode)
    })
    .await;
    over_both!(server, |seeded| {
        let tuples: Vec<v1::Tuple> = (0..1000)
            .map(|i| msg::tuple_text(&format!("document:big{i}#owner@user:alice")))
            .collect();
        let e = seeded.write(tuples, vec![]).await;
        // RESOURCE_EXHAUSTED on both transports (as grpc-go answers), naming the limit.
        assert_eq!(e.code, Code::ResourceExhausted, "{e}");
        assert!(e.message.contains(&LIMIT.to_string()), "{e}");
        if e.transport == Transport::Http {
            assert_eq!(e.http_status, Some(413), "{e}");
        }
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn a_schema_nested_100000_levels_deep_is_400(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let depth = 100_000;
        let schema = format!(
            "entity user {{}}\nentity doc {{\n    relation owner @user\n    permission view = {}owner{}\n}}\n",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let e = seeded.write_schema(&schema).await;
        e.assert(Code::InvalidArgument, &["4:", "deeper"]);
        // As long without parentheses: an arrow chain of 100,000 hops, and 100,000 `or`s.
        let schema = format!(
            "entity user {{}}\nentity doc {{\n    relation parent @doc\n    relation owner @user\n    permission view = {}owner\n}}\n",
            "parent.".repeat(depth)
        );
        let e = seeded.write_schema(&schema).await;
        e.assert(Code::InvalidArgument, &["5:"]);
        let schema = format!(
            "entity user {{}}\nentity doc {{\n    relation owner @user\n    permission view = owner{}\n}}\n",
            " or owner".repeat(depth)
        );
        let e = seeded.write_schema(&schema).await;
        e.assert(Code::InvalidArgument, &["4:", "`view`"]);
    });
    server.shutdown().await.expect("a clean shutdown");
}}

both_modes! { async fn a_batch_with_one_bad_tuple_changes_nothing(mode) {
    let server = start_with(config_in(mode)).await;
    over_both!(server, |seeded| {
        let e = seeded
            .write(
                vec![
                    msg::tuple_text("document:5#owner@user:erin"),
                    tuple(entity("document", "5"), "owner", subject("robot", "r2", "")),
                    msg::tuple_text("document:6#owner@user:erin"),
                ],
                vec![],
            )
            .await;
        e.assert(Code::InvalidArgument, &["tuples[1]", "`robot`"]);
        let e = seeded
            .write(
                vec![msg::tuple_text("document:5#owner@user:erin")],
                vec![v1::Attribute {
                    entity: msg::entity_text("document:5"),
                    attribute: "public".to_owned(),
                    value: Some(msg::value(&lookout_engine::model::AttrValue::Integer(1))),
                }],
            )
            .await;
        e.assert(Code::InvalidArgument, &["attributes[0]"]);
        assert!(!seeded.allowed("document:5", "view", "user:erin").await);
        assert!(!seeded.allowed("document:6", "view", "user:erin").await);
        assert!(!seeded.allowed("document:5", "view", "user:anyone").await);
    });
    server.shutdown().await.expect("a clean shutdown");
}}
