//! Tests of the data, schema and tenancy services, calling the service methods directly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use lookout_engine::model::{Attribute, Tuple};
use lookout_proto::v1;

use super::{DEFAULT_CACHE_CAPACITY, Limits, Service, convert};
use crate::cache::ResultCache;
use crate::error::{ApiError, ErrorCode};
use crate::tenants::Retention;

const SCHEMA: &str = "entity user {}

entity team {
    relation member @user
}

entity organization {
    relation admin @user
    relation member @user @team#member
}

entity doc {
    relation org @organization
    relation owner @user
    relation viewer @user @team#member
    relation banned @user
    attribute public boolean
    attribute level integer
    permission view = (owner or viewer or org.admin or public) not banned
    permission edit = owner and senior(level)
    action deep = org.member
}

rule senior(level integer) {
    level > 3
}
";

fn service() -> Arc<Service> {
    Service::new(Limits::default(), Retention::default())
}

async fn with_schema() -> Arc<Service> {
    with_retention(Retention::default()).await
}

/// A service with the schema written that caches every check, however cheap (the default
/// caches only checks that cost enough; see `cache::CheckCosts`).
async fn caching_every_check() -> Arc<Service> {
    let cache = ResultCache::new(DEFAULT_CACHE_CAPACITY).with_check_min_visits(0);
    let s = Service::with_cache(Limits::default(), Retention::default(), cache);
    s.schema_write(v1::SchemaWriteRequest {
        tenant_id: "t1".into(),
        schema: SCHEMA.into(),
    })
    .await
    .unwrap();
    s
}

/// A service keeping `retention`, with the schema written.
async fn with_retention(retention: Retention) -> Arc<Service> {
    let s = Service::new(Limits::default(), retention);
    s.schema_write(v1::SchemaWriteRequest {
        tenant_id: "t1".into(),
        schema: SCHEMA.into(),
    })
    .await
    .unwrap();
    s
}

fn t(text: &str) -> v1::Tuple {
    convert::tuple_out(&Tuple::parse(text).unwrap())
}

fn a(text: &str) -> v1::Attribute {
    convert::attribute_out(&Attribute::parse(text).unwrap())
}

fn text(t: &v1::Tuple) -> String {
    convert::tuple(t, "t").unwrap().to_string()
}

fn filter(entity_type: &str, relation: &str) -> v1::TupleFilter {
    v1::TupleFilter {
        entity: Some(v1::EntityFilter {
            r#type: entity_type.into(),
            ids: vec![],
        }),
        relation: relation.into(),
        subject: None,
    }
}

async fn write(s: &Service, tuples: &[&str], attributes: &[&str]) -> Result<String, ApiError> {
    s.data_write(v1::DataWriteRequest {
        tenant_id: "t1".into(),
        metadata: None,
        tuples: tuples.iter().map(|x| t(x)).collect(),
        attributes: attributes.iter().map(|x| a(x)).collect(),
    })
    .await
    .map(|r| r.snap_token)
}

async fn read_all(s: &Service, f: Option<v1::TupleFilter>) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = s
            .read_relationships(v1::RelationshipReadRequest {
                tenant_id: "t1".into(),
                metadata: None,
                filter: f.clone(),
                page_size: 0,
                continuous_token: token,
            })
            .await
            .unwrap();
        out.extend(page.tuples.iter().map(text));
        if page.continuous_token.is_empty() {
            return out;
        }
        token = page.continuous_token;
    }
}

async fn read_attributes(s: &Service) -> Vec<String> {
    let r = s
        .read_attributes(v1::AttributeReadRequest {
            tenant_id: "t1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(r.continuous_token.is_empty());
    r.attributes
        .iter()
        .map(|x| convert::attribute(x, "a").unwrap().to_string())
        .collect()
}

/// `doc:id` as a request's entity.
fn doc(id: &str) -> Option<v1::Entity> {
    Some(v1::Entity {
        r#type: "doc".into(),
        id: id.into(),
    })
}

/// `user:id` as a request's subject.
fn user(id: &str) -> Option<v1::Subject> {
    Some(v1::Subject {
        r#type: "user".into(),
        id: id.into(),
        relation: String::new(),
    })
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn write_then_read_back() {
    let s = with_schema().await;
    let token = write(
        &s,
        &[
            "doc:1#owner@user:alice",
            "doc:1#viewer@team:a#member",
            "team:a#member@user:bob",
        ],
        &["doc:1$public|boolean:true", "doc:1$level|integer:5"],
    )
    .await
    .unwrap();
    assert!(!token.is_empty());
    assert_eq!(
        sorted(read_all(&s, None).await),
        [
            "doc:1#owner@user:alice",
            "doc:1#viewer@team:a#member",
            "team:a#member@user:bob"
        ]
    );
    assert_eq!(
        read_all(&s, Some(filter("doc", "owner"))).await,
        ["doc:1#owner@user:alice"]
    );
    assert_eq!(
        sorted(read_attributes(&s).await),
        ["doc:1$level|integer:5", "doc:1$public|boolean:true"]
    );
    // The snap token of the write is honoured by reads; a foreign one is rejected.
    let read = |snap: String| {
        let s = s.clone();
        async move {
            s.read_relationships(v1::RelationshipReadRequest {
                tenant_id: "t1".into(),
                metadata: Some(v1::RelationshipReadRequestMetadata { snap_token: snap }),
                ..Default::default()
            })
            .await
        }
    };
    assert_eq!(read(token).await.unwrap().tuples.len(), 3);
    assert_eq!(
        read("garbage".into()).await.unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    // Relationship writes work the same way and need at least one tuple.
    s.write_relationships(v1::RelationshipWriteRequest {
        tenant_id: "t1".into(),
        metadata: None,
        tuples: vec![t("doc:2#owner@user:carol")],
    })
    .await
    .unwrap();
    let e = s
        .write_relationships(v1::RelationshipWriteRequest {
            tenant_id: "t1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.starts_with("tuples: at least one"), "{e}");
}

#[tokio::test]
async fn writes_need_a_schema_and_content() {
    let s = service();
    let e = write(&s, &["doc:1#owner@user:1"], &[]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("has no schema yet"), "{e}");
    let s = with_schema().await;
    let e = write(&s, &[], &[]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("at least one tuple or attribute"), "{e}");
    // An unknown schema version is named.
    let e = s
        .data_write(v1::DataWriteRequest {
            tenant_id: "t1".into(),
            metadata: Some(v1::DataWriteRequestMetadata {
                schema_version: "nope".into(),
            }),
            tuples: vec![t("doc:1#owner@user:1")],
            attributes: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("`nope`"), "{e}");
}

#[tokio::test]
async fn rejected_batches_change_nothing_and_name_the_item() {
    let s = with_schema().await;
    write(&s, &["doc:1#owner@user:alice"], &[]).await.unwrap();
    let e = write(
        &s,
        &[
            "doc:2#owner@user:bob",
            "doc:3#owner@user:bob",
            "doc:4#owner@team:x",
        ],
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.starts_with("tuples[2] (`doc:4#owner@team:x`)"),
        "{e}"
    );
    assert!(
        e.message.contains("does not allow subjects of type `team`"),
        "{e}"
    );

    let e = write(&s, &["doc:2#owner@user:bob"], &["doc:2$level|string:high"])
        .await
        .unwrap_err();
    assert!(
        e.message
            .starts_with("attributes[0] (`doc:2$level|string:high`)"),
        "{e}"
    );

    let mut bad = t("doc:2#owner@user:bob");
    bad.subject.as_mut().unwrap().id = String::new();
    let e = s
        .data_write(v1::DataWriteRequest {
            tenant_id: "t1".into(),
            metadata: None,
            tuples: vec![t("doc:5#owner@user:bob"), bad],
            attributes: vec![],
        })
        .await
        .unwrap_err();
    assert!(e.message.starts_with("tuples[1].subject.id: "), "{e}");

    assert_eq!(read_all(&s, None).await, ["doc:1#owner@user:alice"]);
    assert!(read_attributes(&s).await.is_empty());
}

#[tokio::test]
async fn batch_limit_is_enforced_and_named() {
    let s = Service::new(
        Limits {
            max_batch: 2,
            ..Limits::default()
        },
        Retention::default(),
    );
    s.schema_write(v1::SchemaWriteRequest {
        tenant_id: "t1".into(),
        schema: SCHEMA.into(),
    })
    .await
    .unwrap();
    let e = write(
        &s,
        &["doc:1#owner@user:1", "doc:2#owner@user:1"],
        &["doc:1$public|boolean:true"],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::PayloadTooLarge);
    assert!(e.message.contains("--max-batch-size"), "{e}");
    write(&s, &["doc:1#owner@user:1", "doc:2#owner@user:1"], &[])
        .await
        .unwrap();
    write(&s, &["doc:3#owner@user:1"], &[]).await.unwrap();
    // A delete by filter matching more than the limit is refused and deletes nothing.
    let e = s
        .delete_relationships(v1::RelationshipDeleteRequest {
            tenant_id: "t1".into(),
            filter: Some(filter("doc", "")),
        })
        .await
        .unwrap_err();
    assert!(e.message.contains("--max-batch-size"), "{e}");
    assert_eq!(read_all(&s, None).await.len(), 3);
}

#[tokio::test]
async fn delete_by_filter_is_atomic_and_exact() {
    let s = with_schema().await;
    write(
        &s,
        &[
            "doc:1#owner@user:alice",
            "doc:1#viewer@user:bob",
            "doc:2#viewer@user:bob",
            "doc:2#viewer@team:a#member",
            "team:a#member@user:bob",
        ],
        &[
            "doc:1$public|boolean:true",
            "doc:2$public|boolean:false",
            "doc:2$level|integer:4",
        ],
    )
    .await
    .unwrap();
    let before = s
        .data_delete(v1::DataDeleteRequest {
            tenant_id: "t1".into(),
            tuple_filter: Some(v1::TupleFilter {
                entity: Some(v1::EntityFilter {
                    r#type: "doc".into(),
                    ids: vec![],
                }),
                relation: "viewer".into(),
                subject: Some(v1::SubjectFilter {
                    r#type: "user".into(),
                    ids: vec!["bob".into()],
                    relation: String::new(),
                }),
            }),
            attribute_filter: Some(v1::AttributeFilter {
                entity: Some(v1::EntityFilter {
                    r#type: "doc".into(),
                    ids: vec!["2".into()],
                }),
                attributes: vec!["public".into()],
            }),
        })
        .await
        .unwrap();
    assert!(!before.snap_token.is_empty());
    assert_eq!(
        sorted(read_all(&s, None).await),
        [
            "doc:1#owner@user:alice",
            "doc:2#viewer@team:a#member",
            "team:a#member@user:bob"
        ]
    );
    assert_eq!(
        sorted(read_attributes(&s).await),
        ["doc:1$public|boolean:true", "doc:2$level|integer:4"]
    );

    // Relationship delete: by relation.
    s.delete_relationships(v1::RelationshipDeleteRequest {
        tenant_id: "t1".into(),
        filter: Some(filter("team", "member")),
    })
    .await
    .unwrap();
    assert_eq!(
        sorted(read_all(&s, None).await),
        ["doc:1#owner@user:alice", "doc:2#viewer@team:a#member"]
    );

    // The entity type is required; an empty request selects nothing and is refused.
    let e = s
        .delete_relationships(v1::RelationshipDeleteRequest {
            tenant_id: "t1".into(),
            filter: Some(filter("", "owner")),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.starts_with("filter.entity.type is required"),
        "{e}"
    );
    let e = s
        .data_delete(v1::DataDeleteRequest {
            tenant_id: "t1".into(),
            tuple_filter: Some(v1::TupleFilter::default()),
            attribute_filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert_eq!(read_all(&s, None).await.len(), 2);
}

/// The memory store keeps the snapshots continuous tokens were issued for, not every write's:
/// a token outlives any number of later writes, and only pinning more revisions than
/// `--retained-snapshots` evicts the oldest.
#[tokio::test]
async fn continuous_tokens_pin_their_snapshots_not_every_write() {
    let s = with_retention(Retention {
        snapshots: 2,
        ..Retention::default()
    })
    .await;
    let first_page = |s: Arc<Service>| async move {
        let page = s
            .read_relationships(v1::RelationshipReadRequest {
                tenant_id: "t1".into(),
                metadata: None,
                filter: Some(filter("doc", "viewer")),
                page_size: 1,
                continuous_token: String::new(),
            })
            .await
            .unwrap();
        assert!(!page.continuous_token.is_empty());
        page.continuous_token
    };
    let next_page = |s: Arc<Service>, token: String| async move {
        s.read_relationships(v1::RelationshipReadRequest {
            tenant_id: "t1".into(),
            metadata: None,
            filter: Some(filter("doc", "viewer")),
            page_size: 1,
            continuous_token: token,
        })
        .await
        .map(|page| page.tuples.iter().map(text).collect::<Vec<_>>())
    };
    write(&s, &["doc:1#viewer@user:a", "doc:2#viewer@user:b"], &[])
        .await
        .unwrap();
    let oldest = first_page(s.clone()).await;
    // Ten writes nobody pages through: the token's snapshot is still there, as it was.
    for i in 0..10 {
        write(&s, &[&format!("doc:0{i}#viewer@user:late")], &[])
            .await
            .unwrap();
    }
    assert_eq!(
        next_page(s.clone(), oldest.clone()).await.unwrap(),
        ["doc:2#viewer@user:b"]
    );
    // Two more pinned revisions: the oldest goes.
    let middle = first_page(s.clone()).await;
    write(&s, &["doc:9#viewer@user:c"], &[]).await.unwrap();
    let newest = first_page(s.clone()).await;
    let e = next_page(s.clone(), oldest).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::FailedPrecondition);
    assert!(e.message.contains("no longer retained"), "{e}");
    for token in [middle, newest] {
        assert_eq!(next_page(s.clone(), token).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn paging_covers_every_tuple_once_on_one_snapshot() {
    let s = with_schema().await;
    let texts: Vec<String> = (0..250)
        .map(|i| format!("doc:{i}#viewer@user:u{i}"))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    write(&s, &refs, &[]).await.unwrap();
    let request = |token: String| v1::RelationshipReadRequest {
        tenant_id: "t1".into(),
        metadata: None,
        filter: Some(filter("doc", "viewer")),
        page_size: 100,
        continuous_token: token,
    };
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = s.read_relationships(request(token)).await.unwrap();
        sizes.push(page.tuples.len());
        seen.extend(page.tuples.iter().map(text));
        if sizes.len() == 1 {
            // A write between pages does not show up in (or shift) the pinned listing.
            write(
                &s,
                &["doc:a#viewer@user:late", "doc:0#viewer@user:early"],
                &[],
            )
            .await
            .unwrap();
        }
        if page.continuous_token.is_empty() {
            break;
        }
        token = page.continuous_token;
    }
    assert_eq!(sizes, [100, 100, 50]);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 250);
    assert_eq!(sorted(seen), sorted(texts));

    // Page size limits.
    let mut too_big = request(String::new());
    too_big.page_size = 101;
    let e = s.read_relationships(too_big).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("page_size"), "{e}");
}

#[tokio::test]
async fn forged_and_foreign_continuous_tokens_are_rejected() {
    let s = with_schema().await;
    let texts: Vec<String> = (0..5)
        .map(|i| format!("doc:{i}#viewer@user:u{i}"))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    write(&s, &refs, &[]).await.unwrap();
    let request = |f: &str, token: &str| v1::RelationshipReadRequest {
        tenant_id: "t1".into(),
        metadata: None,
        filter: Some(filter("doc", f)),
        page_size: 2,
        continuous_token: token.into(),
    };
    let token = s
        .read_relationships(request("viewer", ""))
        .await
        .unwrap()
        .continuous_token;
    assert!(!token.is_empty());
    // The same query continues.
    assert_eq!(
        s.read_relationships(request("viewer", &token))
            .await
            .unwrap()
            .tuples
            .len(),
        2
    );
    // Edited, garbage and another query's tokens are rejected.
    let mut forged: Vec<char> = token.chars().collect();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    for bad in [forged.as_str(), "not-a-token", "AAAA"] {
        let e = s
            .read_relationships(request("viewer", bad))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
        assert!(e.message.starts_with("continuous_token: "), "{e}");
    }
    let e = s
        .read_relationships(request("owner", &token))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("another query"), "{e}");
    // Another tenant's listing rejects it too.
    s.tenant_create(v1::TenantCreateRequest {
        id: "t2".into(),
        name: String::new(),
    })
    .await
    .unwrap();
    let mut other = request("viewer", &token);
    other.tenant_id = "t2".into();
    let e = s.read_relationships(other).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    // Attribute reads use their own tokens.
    let e = s
        .read_attributes(v1::AttributeReadRequest {
            tenant_id: "t1".into(),
            continuous_token: token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
}

fn organization_bundle(extra: Vec<String>) -> v1::DataBundle {
    v1::DataBundle {
        name: "organization_created".into(),
        arguments: vec!["creatorID".into(), "organizationID".into()],
        operations: vec![
            v1::Operation {
                relationships_write: vec![
                    "organization:{{.organizationID}}#admin@user:{{.creatorID}}".into(),
                    "doc:{{.organizationID}}-readme#org@organization:{{.organizationID}}".into(),
                ],
                attributes_write: vec!["doc:{{.organizationID}}-readme$public|boolean:true".into()],
                ..Default::default()
            },
            v1::Operation {
                relationships_write: extra,
                relationships_delete: vec![
                    "organization:{{.organizationID}}#member@user:{{.creatorID}}".into(),
                ],
                attributes_delete: vec!["doc:{{ .organizationID }}-readme$level".into()],
                ..Default::default()
            },
        ],
    }
}

#[tokio::test]
async fn bundles_are_stored_read_deleted_and_run_atomically() {
    let s = with_schema().await;
    write(
        &s,
        &["organization:o1#member@user:u1"],
        &["doc:o1-readme$level|integer:2"],
    )
    .await
    .unwrap();
    // One bad template (a relation doc does not have) in the second operation.
    let names = s
        .bundle_write(v1::BundleWriteRequest {
            tenant_id: "t1".into(),
            bundles: vec![
                organization_bundle(vec![
                    "doc:{{.organizationID}}#nope@user:{{.creatorID}}".into(),
                ]),
                v1::DataBundle {
                    name: "good".into(),
                    ..organization_bundle(vec![])
                },
            ],
        })
        .await
        .unwrap()
        .names;
    assert_eq!(names, ["organization_created", "good"]);
    let args = HashMap::from([
        ("creatorID".to_string(), "u1".to_string()),
        ("organizationID".to_string(), "o1".to_string()),
    ]);
    let run = |name: &str, arguments: HashMap<String, String>| {
        let s = s.clone();
        let name = name.to_string();
        async move {
            s.run_bundle(v1::BundleRunRequest {
                tenant_id: "t1".into(),
                name,
                arguments,
            })
            .await
        }
    };
    let e = run("organization_created", args.clone()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.starts_with("bundle `organization_created` operations[1].relationships_write[0] (`doc:o1#nope@user:u1`)"),
        "{e}"
    );
    // Nothing of the run was applied.
    assert_eq!(read_all(&s, None).await, ["organization:o1#member@user:u1"]);
    assert_eq!(read_attributes(&s).await, ["doc:o1-readme$level|integer:2"]);
    // A missing argument is an error.
    let e = run(
        "good",
        HashMap::from([("creatorID".to_string(), "u1".to_string())]),
    )
    .await
    .unwrap_err();
    assert!(
        e.message.contains("argument `organizationID` is missing"),
        "{e}"
    );
    // The good bundle applies every operation in one commit.
    let token = run("good", args).await.unwrap().snap_token;
    assert!(!token.is_empty());
    assert_eq!(
        sorted(read_all(&s, None).await),
        [
            "doc:o1-readme#org@organization:o1",
            "organization:o1#admin@user:u1"
        ]
    );
    assert_eq!(
        read_attributes(&s).await,
        ["doc:o1-readme$public|boolean:true"]
    );

    // Read, delete, read again.
    let read = s
        .bundle_read(v1::BundleReadRequest {
            tenant_id: "t1".into(),
            name: "good".into(),
        })
        .await
        .unwrap();
    assert_eq!(read.bundle.unwrap().operations.len(), 2);
    s.bundle_delete(v1::BundleDeleteRequest {
        tenant_id: "t1".into(),
        name: "good".into(),
    })
    .await
    .unwrap();
    let e = s
        .bundle_read(v1::BundleReadRequest {
            tenant_id: "t1".into(),
            name: "good".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert_eq!(
        run("good", HashMap::new()).await.unwrap_err().code,
        ErrorCode::NotFound
    );

    // Invalid bundles are refused before anything is stored.
    let e = s
        .bundle_write(v1::BundleWriteRequest {
            tenant_id: "t1".into(),
            bundles: vec![
                v1::DataBundle {
                    name: "fine".into(),
                    ..organization_bundle(vec![])
                },
                v1::DataBundle {
                    name: String::new(),
                    ..organization_bundle(vec![])
                },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(e.message, "bundles[1].name is required");
    let e = s
        .bundle_read(v1::BundleReadRequest {
            tenant_id: "t1".into(),
            name: "fine".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

async fn read_schema(s: &Service, version: &str) -> v1::SchemaDefinition {
    s.schema_read(v1::SchemaReadRequest {
        tenant_id: "t1".into(),
        metadata: Some(v1::SchemaReadRequestMetadata {
            schema_version: version.into(),
        }),
    })
    .await
    .unwrap()
    .schema
    .unwrap()
}

fn leaf(l: v1::leaf::Type) -> v1::Child {
    v1::Child {
        r#type: Some(v1::child::Type::Leaf(v1::Leaf { r#type: Some(l) })),
    }
}

fn rewrite(op: v1::rewrite::Operation, children: Vec<v1::Child>) -> v1::Child {
    v1::Child {
        r#type: Some(v1::child::Type::Rewrite(v1::Rewrite {
            rewrite_operation: op as i32,
            children,
        })),
    }
}

fn computed(name: &str) -> v1::Child {
    leaf(v1::leaf::Type::ComputedUserSet(v1::ComputedUserSet {
        relation: name.into(),
    }))
}

fn arrow(via: &str, rest: &str) -> v1::Child {
    leaf(v1::leaf::Type::TupleToUserSet(v1::TupleToUserSet {
        tuple_set: Some(v1::TupleSet {
            relation: via.into(),
        }),
        computed: Some(v1::ComputedUserSet {
            relation: rest.into(),
        }),
    }))
}

#[tokio::test]
async fn schema_read_has_permifys_shape() {
    use v1::rewrite::Operation;
    let s = with_schema().await;
    let def = read_schema(&s, "").await;
    let doc = &def.entity_definitions["doc"];
    assert_eq!(doc.name, "doc");
    assert_eq!(
        doc.relations["viewer"].relation_references,
        [
            v1::RelationReference {
                r#type: "user".into(),
                relation: String::new()
            },
            v1::RelationReference {
                r#type: "team".into(),
                relation: "member".into()
            },
        ]
    );
    assert_eq!(
        doc.permissions["view"].child,
        Some(rewrite(
            Operation::Exclusion,
            vec![
                rewrite(
                    Operation::Union,
                    vec![
                        computed("owner"),
                        computed("viewer"),
                        arrow("org", "admin"),
                        leaf(v1::leaf::Type::ComputedAttribute(v1::ComputedAttribute {
                            name: "public".into()
                        })),
                    ]
                ),
                computed("banned"),
            ]
        ))
    );
    assert_eq!(
        doc.permissions["edit"].child,
        Some(rewrite(
            Operation::Intersection,
            vec![
                computed("owner"),
                leaf(v1::leaf::Type::Call(v1::Call {
                    rule_name: "senior".into(),
                    arguments: vec![v1::Argument {
                        r#type: Some(v1::argument::Type::ComputedAttribute(
                            v1::ComputedAttribute {
                                name: "level".into()
                            }
                        )),
                    }],
                })),
            ]
        ))
    );
    assert_eq!(doc.permissions["deep"].child, Some(arrow("org", "member")));
    assert_eq!(
        doc.attributes["level"].r#type,
        v1::AttributeType::Integer as i32
    );
    use v1::entity_definition::Reference as R;
    assert_eq!(doc.references["org"], R::Relation as i32);
    assert_eq!(doc.references["view"], R::Permission as i32);
    assert_eq!(doc.references["deep"], R::Permission as i32);
    assert_eq!(doc.references["public"], R::Attribute as i32);
    assert_eq!(doc.references.len(), 9);
    let rule = &def.rule_definitions["senior"];
    assert_eq!(rule.arguments["level"], v1::AttributeType::Integer as i32);
    assert_eq!(rule.expression, None);
    use v1::schema_definition::Reference as Top;
    assert_eq!(def.references["doc"], Top::Entity as i32);
    assert_eq!(def.references["senior"], Top::Rule as i32);
    assert_eq!(def.references.len(), 5);
}

#[tokio::test]
async fn multi_hop_arrows_keep_their_path_in_computed() {
    let s = service();
    s.schema_write(v1::SchemaWriteRequest {
        tenant_id: "t1".into(),
        schema: "entity user {}
entity org { relation admin @user }
entity folder { relation org @org }
entity doc { relation parent @folder permission admin = parent.org.admin }"
            .into(),
    })
    .await
    .unwrap();
    let def = read_schema(&s, "").await;
    assert_eq!(
        def.entity_definitions["doc"].permissions["admin"].child,
        Some(arrow("parent", "org.admin"))
    );
}

#[tokio::test]
async fn schema_write_errors_carry_line_and_column() {
    let s = service();
    let e = s
        .schema_write(v1::SchemaWriteRequest {
            tenant_id: "t1".into(),
            schema: "entity user {}\nentity doc {\n    permission view = nobody\n}".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.starts_with("schema: 3:23: "), "{e}");
    assert!(e.message.contains("`nobody`"), "{e}");
    // Nothing was stored.
    let e = s
        .schema_read(v1::SchemaReadRequest {
            tenant_id: "t1".into(),
            metadata: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

fn partial(write: &[&str], delete: &[&str], update: &[&str]) -> v1::Partials {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    v1::Partials {
        write: owned(write),
        delete: owned(delete),
        update: owned(update),
    }
}

async fn partial_write(
    s: &Service,
    version: &str,
    partials: Vec<(&str, v1::Partials)>,
) -> Result<String, ApiError> {
    s.schema_partial_write(v1::SchemaPartialWriteRequest {
        tenant_id: "t1".into(),
        metadata: Some(v1::SchemaPartialWriteRequestMetadata {
            schema_version: version.into(),
        }),
        partials: partials
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    })
    .await
    .map(|r| r.schema_version)
}

#[tokio::test]
async fn partial_write_adds_updates_and_deletes_members() {
    let s = with_schema().await;
    let base = s
        .schema_list(v1::SchemaListRequest {
            tenant_id: "t1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .head;
    let version = partial_write(
        &s,
        "",
        vec![
            (
                "doc",
                partial(
                    &[
                        "relation editor @user",
                        "permission write = editor or owner",
                    ],
                    &["deep"],
                    &["permission view = owner or editor"],
                ),
            ),
            ("team", partial(&["relation lead @user"], &[], &[])),
        ],
    )
    .await
    .unwrap();
    assert_ne!(version, base);
    let def = read_schema(&s, &version).await;
    let doc = &def.entity_definitions["doc"];
    assert!(doc.relations.contains_key("editor"));
    assert!(!doc.permissions.contains_key("deep"));
    assert_eq!(
        doc.permissions["view"].child,
        Some(rewrite(
            v1::rewrite::Operation::Union,
            vec![computed("owner"), computed("editor")]
        ))
    );
    assert!(doc.permissions.contains_key("write"));
    assert!(doc.permissions.contains_key("edit"));
    assert!(
        def.entity_definitions["team"]
            .relations
            .contains_key("lead")
    );
    assert!(def.rule_definitions.contains_key("senior"));
    // The base version is unchanged and still readable; the new version is the head.
    assert!(
        read_schema(&s, &base).await.entity_definitions["doc"]
            .permissions
            .contains_key("deep")
    );
    let head = read_schema(&s, "").await;
    assert!(
        head.entity_definitions["doc"]
            .relations
            .contains_key("editor")
    );
    // Writes validate against the new head.
    write(&s, &["doc:1#editor@user:1"], &[]).await.unwrap();

    // Edits against an explicit base version, and every kind of refusal.
    let e = partial_write(
        &s,
        &base,
        vec![("doc", partial(&["relation owner @user"], &[], &[]))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    assert!(e.message.starts_with("partials.doc.write[0]: "), "{e}");
    let e = partial_write(&s, &base, vec![("doc", partial(&[], &["ghost"], &[]))])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("`ghost`"), "{e}");
    let e = partial_write(
        &s,
        &base,
        vec![("doc", partial(&[], &[], &["relation ghost @user"]))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let e = partial_write(
        &s,
        &base,
        vec![("nope", partial(&["relation x @user"], &[], &[]))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let e = partial_write(
        &s,
        &base,
        vec![("doc", partial(&["relation x @user }"], &[], &[]))],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.starts_with("partials.doc.write[0]: "), "{e}");
    // Deleting a relation a permission uses does not compile; the message quotes the line.
    let e = partial_write(&s, &base, vec![("doc", partial(&[], &["banned"], &[]))])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("`banned`"), "{e}");
    assert!(e.message.contains("(at `permission view = "), "{e}");
    // None of the refused edits made a version.
    let list = s
        .schema_list(v1::SchemaListRequest {
            tenant_id: "t1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.schemas.len(), 2);
    assert_eq!(list.head, version);
}

#[tokio::test]
async fn schema_list_pages_newest_first() {
    let s = service();
    let mut versions = Vec::new();
    for i in 0..5 {
        let v = s
            .schema_write(v1::SchemaWriteRequest {
                tenant_id: "t1".into(),
                schema: format!("entity user{i} {{}}"),
            })
            .await
            .unwrap()
            .schema_version;
        versions.push(v);
    }
    let list = |token: String| {
        let s = s.clone();
        async move {
            s.schema_list(v1::SchemaListRequest {
                tenant_id: "t1".into(),
                page_size: 2,
                continuous_token: token,
            })
            .await
        }
    };
    let mut seen = Vec::new();
    let mut heads = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(token).await.unwrap();
        for v in &page.schemas {
            assert!(
                v.created_at.ends_with('Z') && v.created_at.contains('T'),
                "{}",
                v.created_at
            );
        }
        heads.push(page.head);
        seen.extend(page.schemas.into_iter().map(|v| v.version));
        if heads.len() == 1 {
            // A version written meanwhile does not shift the listing.
            let late = s
                .schema_write(v1::SchemaWriteRequest {
                    tenant_id: "t1".into(),
                    schema: "entity late {}".into(),
                })
                .await
                .unwrap()
                .schema_version;
            versions.push(late);
        }
        if page.continuous_token.is_empty() {
            break;
        }
        token = page.continuous_token;
    }
    assert_eq!(heads, [&*versions[4], &*versions[5], &*versions[5]]);
    versions.pop();
    versions.reverse();
    assert_eq!(seen, versions);
    let e = list("forged".into()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn tenant_lifecycle() {
    let s = with_schema().await;
    let created = s
        .tenant_create(v1::TenantCreateRequest {
            id: "acme".into(),
            name: "Acme".into(),
        })
        .await
        .unwrap()
        .tenant
        .unwrap();
    assert_eq!(
        (created.id.as_str(), created.name.as_str()),
        ("acme", "Acme")
    );
    assert!(created.created_at.is_some_and(|t| t.seconds > 0));
    let e = s
        .tenant_create(v1::TenantCreateRequest {
            id: "acme".into(),
            name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    let e = s
        .tenant_create(v1::TenantCreateRequest {
            id: "bad id!".into(),
            name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    for i in 0..3 {
        s.tenant_create(v1::TenantCreateRequest {
            id: format!("x{i}"),
            name: String::new(),
        })
        .await
        .unwrap();
    }
    // Listing pages in creation order; a tenant deleted between pages shifts nothing.
    let list = |token: String| {
        let s = s.clone();
        async move {
            s.tenant_list(v1::TenantListRequest {
                page_size: 2,
                continuous_token: token,
            })
            .await
            .unwrap()
        }
    };
    let first = list(String::new()).await;
    let ids =
        |r: &v1::TenantListResponse| r.tenants.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ["t1", "acme"]);
    s.tenant_delete(v1::TenantDeleteRequest { id: "t1".into() })
        .await
        .unwrap();
    let second = list(first.continuous_token).await;
    assert_eq!(ids(&second), ["x0", "x1"]);
    let third = list(second.continuous_token).await;
    assert_eq!(ids(&third), ["x2"]);
    assert!(third.continuous_token.is_empty());
    let e = s
        .tenant_list(v1::TenantListRequest {
            page_size: 0,
            continuous_token: "forged".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);

    // `t1` is gone with its data; re-created it starts empty.
    let e = s
        .tenant_delete(v1::TenantDeleteRequest { id: "t1".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert_eq!(
        write(&s, &["doc:1#owner@user:1"], &[])
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    s.tenant_create(v1::TenantCreateRequest {
        id: "t1".into(),
        name: String::new(),
    })
    .await
    .unwrap();
    let e = write(&s, &["doc:1#owner@user:1"], &[]).await.unwrap_err();
    assert!(e.message.contains("has no schema yet"), "{e}");
    assert!(read_all(&s, None).await.is_empty());
}

#[tokio::test]
async fn unknown_tenants_are_not_found() {
    let s = with_schema().await;
    let tenant = "ghost".to_string();
    let codes = [
        s.data_write(v1::DataWriteRequest {
            tenant_id: tenant.clone(),
            tuples: vec![t("doc:1#owner@user:1")],
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err()
        .code,
        s.read_relationships(v1::RelationshipReadRequest {
            tenant_id: tenant.clone(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err()
        .code,
        s.read_attributes(v1::AttributeReadRequest {
            tenant_id: tenant.clone(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err()
        .code,
        s.delete_relationships(v1::RelationshipDeleteRequest {
            tenant_id: tenant.clone(),
            filter: Some(filter("doc", "")),
        })
        .await
        .map(|_| ())
        .unwrap_err()
        .code,
        s.bundle_read(v1::BundleReadRequest {
            tenant_id: tenant.clone(),
            name: "b".into(),
        })
        .await
        .map(|_| ())
        .unwrap_err()
        .code,
        s.schema_read(v1::SchemaReadRequest {
            tenant_id: tenant.clone(),
            metadata: None,
        })
        .await
        .map(|_| ())
        .unwrap_err()
        .code,
        s.schema_list(v1::SchemaListRequest {
            tenant_id: tenant.clone(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err()
        .code,
        s.tenant_delete(v1::TenantDeleteRequest { id: tenant.clone() })
            .await
            .map(|_| ())
            .unwrap_err()
            .code,
    ];
    assert!(codes.iter().all(|c| *c == ErrorCode::NotFound), "{codes:?}");
}

#[tokio::test]
async fn watch_replay_keeps_at_most_the_retained_change_items() {
    let s = with_retention(Retention {
        change_items: 3,
        ..Retention::default()
    })
    .await;
    let first = write(&s, &["doc:1#owner@user:1"], &[]).await.unwrap();
    let second = write(&s, &["doc:2#owner@user:1", "doc:3#owner@user:1"], &[])
        .await
        .unwrap();
    // 1 + 2 changes fit; the third write's 2 push both earlier writes out.
    write(&s, &["doc:4#owner@user:1", "doc:5#owner@user:1"], &[])
        .await
        .unwrap();
    let replay_from = |token: &str| {
        let s = s.clone();
        let token = token.to_string();
        async move {
            s.watch(v1::WatchRequest {
                tenant_id: "t1".into(),
                snap_token: token,
            })
            .await
        }
    };
    let e = replay_from(&first).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::FailedPrecondition, "{e}");
    assert!(e.message.contains("no longer retained"), "{e}");
    // After the second write, only the third is needed: still retained.
    let mut rx = replay_from(&second).await.unwrap();
    let message = rx.recv().await.unwrap().unwrap();
    assert_eq!(message.changes.unwrap().data_changes.len(), 2);
    // A single write larger than the limit is still kept (the newest always is).
    write(
        &s,
        &[
            "doc:6#owner@user:1",
            "doc:7#owner@user:1",
            "doc:8#owner@user:1",
            "doc:9#owner@user:1",
        ],
        &[],
    )
    .await
    .unwrap();
    let e = replay_from(&second).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::FailedPrecondition, "{e}");
}

/// A stream whose set reaches past the prefix the stream sends first: every ID once, in
/// order, the same as the paged lookup, and each token resumes right after its message.
#[tokio::test]
async fn a_stream_past_its_prefix_sends_every_id_once_in_order() {
    let s = with_schema().await;
    // 12,000 documents (numbers past the 8,192 of the prefix): every third viewed by bob
    // directly, every doc with an even number through the org; doc 5 bans bob.
    let mut lines: Vec<String> = Vec::new();
    for d in 0..12_000 {
        if d % 3 == 0 {
            lines.push(format!("doc:{d}#viewer@user:bob"));
        }
        if d % 2 == 0 {
            lines.push(format!("doc:{d}#org@organization:o"));
        }
    }
    lines.push("organization:o#admin@user:bob".into());
    lines.push("doc:6#banned@user:bob".into());
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    for chunk in refs.chunks(5_000) {
        write(&s, chunk, &[]).await.unwrap();
    }
    let request = |token: &str| v1::PermissionLookupEntityRequest {
        tenant_id: "t1".into(),
        entity_type: "doc".into(),
        permission: "view".into(),
        subject: Some(v1::Subject {
            r#type: "user".into(),
            id: "bob".into(),
            relation: String::new(),
        }),
        continuous_token: token.into(),
        ..Default::default()
    };
    // The stream first, on a cold cache: its first IDs come from the probe's checks, then
    // the lookup's prefix, then the rest.
    let mut rx = s.lookup_entity_stream(request("")).await.unwrap();
    let mut got = Vec::new();
    while let Some(message) = rx.recv().await {
        got.push(message.unwrap());
    }
    let ids: Vec<String> = got.iter().map(|m| m.entity_id.clone()).collect();
    let want = s.lookup_entity(request("")).await.unwrap().entity_ids;
    // Even or a multiple of three, less the banned doc:6.
    assert_eq!(want.len(), 12_000 / 2 + 12_000 / 3 - 12_000 / 6 - 1);
    assert_eq!(ids, want);
    // Resuming after message k (below and above the prefix) sends exactly the rest.
    for k in [10, 5_000, 7_000] {
        let mut rx = s
            .lookup_entity_stream(request(&got[k].continuous_token))
            .await
            .unwrap();
        let mut rest = Vec::new();
        while let Some(message) = rx.recv().await {
            rest.push(message.unwrap().entity_id);
        }
        assert_eq!(rest, ids[k + 1..], "resumed after {k}");
    }
}

/// The result cache answers a question again from the cache whatever snap token it carries,
/// keeps questions and schema versions apart, and drops an answer a related write changes.
#[tokio::test]
async fn check_answers_are_cached_per_question_and_schema_version() {
    let s = caching_every_check().await;
    let token = write(&s, &["doc:1#viewer@user:1"], &[]).await.unwrap();
    let ask = |doc_id: &str, user_id: &str, snap_token: &str, schema_version: &str| {
        v1::PermissionCheckRequest {
            tenant_id: "t1".into(),
            metadata: Some(v1::PermissionCheckRequestMetadata {
                snap_token: snap_token.into(),
                schema_version: schema_version.into(),
                depth: 0,
            }),
            entity: doc(doc_id),
            permission: "view".into(),
            subject: user(user_id),
            ..Default::default()
        }
    };
    let allowed = v1::CheckResult::Allowed as i32;
    let denied = v1::CheckResult::Denied as i32;
    let stats = || {
        let st = s.cache.stats();
        (st.hits, st.misses)
    };

    assert_eq!(s.check(ask("1", "1", "", "")).await.unwrap().can, allowed);
    assert_eq!(stats(), (0, 1));
    // The same question with a snap token: answered from the cache.
    assert_eq!(
        s.check(ask("1", "1", &token, "")).await.unwrap().can,
        allowed
    );
    assert_eq!(stats(), (1, 1));
    // Another question: its own entry.
    assert_eq!(s.check(ask("1", "2", "", "")).await.unwrap().can, denied);
    assert_eq!(stats(), (1, 2));

    // A new schema version: the same request (naming no version) is another question.
    s.schema_write(v1::SchemaWriteRequest {
        tenant_id: "t1".into(),
        schema: format!("{SCHEMA}\nentity extra {{}}"),
    })
    .await
    .unwrap();
    assert_eq!(s.check(ask("1", "1", "", "")).await.unwrap().can, allowed);
    assert_eq!(stats(), (1, 3));
    assert_eq!(s.check(ask("1", "1", "", "")).await.unwrap().can, allowed);
    assert_eq!(stats(), (2, 3));

    // A related write: the cached answer is not used, and the new one is right.
    write(&s, &["doc:1#banned@user:1"], &[]).await.unwrap();
    assert_eq!(s.check(ask("1", "1", "", "")).await.unwrap().can, denied);
    assert_eq!(stats(), (2, 4));
}

/// A bulk check's items are cached as the single checks of the same questions are: each
/// shares answers with Check both ways, and a related write still changes the answer.
#[tokio::test]
async fn bulk_check_items_share_the_check_cache() {
    let s = caching_every_check().await;
    write(&s, &["doc:1#viewer@user:1"], &[]).await.unwrap();
    let metadata = || {
        Some(v1::PermissionCheckRequestMetadata {
            depth: 20,
            ..Default::default()
        })
    };
    let item = |doc_id: &str, user_id: &str| v1::PermissionBulkCheckRequestItem {
        entity: doc(doc_id),
        permission: "view".into(),
        subject: user(user_id),
    };
    let single = |doc_id: &str, user_id: &str| {
        let item = item(doc_id, user_id);
        v1::PermissionCheckRequest {
            tenant_id: "t1".into(),
            metadata: metadata(),
            entity: item.entity,
            permission: item.permission,
            subject: item.subject,
            ..Default::default()
        }
    };
    let bulk = |pairs: &[(&str, &str)]| v1::PermissionBulkCheckRequest {
        tenant_id: "t1".into(),
        metadata: metadata(),
        items: pairs.iter().map(|(d, u)| item(d, u)).collect(),
        ..Default::default()
    };
    let answers = |r: v1::PermissionBulkCheckResponse| -> Vec<bool> {
        r.results
            .iter()
            .map(|r| r.can == v1::CheckResult::Allowed as i32)
            .collect()
    };
    let stats = || {
        let st = s.cache.stats();
        (st.hits, st.misses)
    };

    // A single check first: the bulk check finds its answer and computes the other one.
    s.check(single("1", "1")).await.unwrap();
    assert_eq!(stats(), (0, 1));
    let pairs = [("1", "1"), ("2", "1")];
    let got = answers(s.bulk_check(bulk(&pairs)).await.unwrap());
    assert_eq!(got, [true, false]);
    assert_eq!(stats(), (1, 2));
    // Now both are cached, for bulk checks and single ones alike.
    assert_eq!(answers(s.bulk_check(bulk(&pairs)).await.unwrap()), got);
    assert_eq!(stats(), (3, 2));
    let can = s.check(single("2", "1")).await.unwrap().can;
    assert_eq!(can, v1::CheckResult::Denied as i32);
    assert_eq!(stats(), (4, 2));

    // A related write: neither cached answer is used, and the new ones are right.
    write(&s, &["doc:1#banned@user:1", "doc:2#viewer@user:1"], &[])
        .await
        .unwrap();
    assert_eq!(
        answers(s.bulk_check(bulk(&pairs)).await.unwrap()),
        [false, true]
    );
    assert_eq!(stats(), (4, 4));
}

/// By default a permission's checks are cached only once they cost enough: cheap ones are
/// evaluated every time without touching the cache, and once the average cost of the
/// permission's checks passes the threshold, its answers are cached.
#[tokio::test]
async fn only_checks_that_cost_enough_are_cached() {
    let s = with_schema().await;
    write(&s, &["doc:1#viewer@user:1"], &[]).await.unwrap();
    let ask = || v1::PermissionCheckRequest {
        tenant_id: "t1".into(),
        entity: doc("1"),
        permission: "view".into(),
        subject: user("1"),
        ..Default::default()
    };
    let stats = || {
        let st = s.cache.stats();
        (st.hits, st.misses)
    };
    for _ in 0..3 {
        let can = s.check(ask()).await.unwrap().can;
        assert_eq!(can, v1::CheckResult::Allowed as i32);
    }
    assert_eq!(stats(), (0, 0), "a cheap check leaves the cache alone");

    // The same permission's checks turn expensive (as recorded evaluations would say).
    let version = s.tenant("t1").await.unwrap().schema("").await.unwrap();
    let (ty, member) = version.model.resolve("doc", "view").unwrap();
    let cheap = version.check_costs.average(ty, member);
    assert!(cheap < crate::cache::DEFAULT_CHECK_MIN_VISITS, "{cheap}");
    for _ in 0..8 {
        version.check_costs.record(ty, member, 10_000);
    }
    let average = version.check_costs.average(ty, member);
    assert!(
        average >= crate::cache::DEFAULT_CHECK_MIN_VISITS,
        "{average}"
    );
    s.check(ask()).await.unwrap();
    assert_eq!(stats(), (0, 1));
    s.check(ask()).await.unwrap();
    assert_eq!(stats(), (1, 1));
}

/// A bad bulk-check item is named by its index and field, and nothing is answered.
#[tokio::test]
async fn bad_bulk_check_items_are_named() {
    let s = with_schema().await;
    let good = || v1::PermissionBulkCheckRequestItem {
        entity: doc("1"),
        permission: "view".into(),
        subject: user("1"),
    };
    let ask = |bad: v1::PermissionBulkCheckRequestItem| v1::PermissionBulkCheckRequest {
        tenant_id: "t1".into(),
        items: vec![good(), good(), bad],
        ..Default::default()
    };
    let no_subject = v1::PermissionBulkCheckRequestItem {
        subject: None,
        ..good()
    };
    let mut bad_id = good();
    if let Some(e) = bad_id.entity.as_mut() {
        e.id = "with space".into();
    }
    let mut bad_relation = good();
    if let Some(subject) = bad_relation.subject.as_mut() {
        subject.relation = "no such!".into();
    }
    let bad_permission = v1::PermissionBulkCheckRequestItem {
        permission: String::new(),
        ..good()
    };
    for (item, wanted) in [
        (no_subject, "items[2].subject is required"),
        (bad_id, "items[2].entity.id"),
        (bad_relation, "items[2].subject.relation"),
        (bad_permission, "items[2].permission"),
    ] {
        let e = s.bulk_check(ask(item)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
        assert!(e.message.starts_with(wanted), "{e}");
    }
    let fine = s.bulk_check(ask(good())).await.unwrap();
    assert_eq!(fine.results.len(), 3);
}

/// Bulk checks feed the same cost averages as single checks (so a permission asked only in
/// bulk is cached once its checks turn out expensive), and answer as single checks do.
#[tokio::test]
async fn bulk_checks_record_their_costs_and_agree_with_checks() {
    let s = with_schema().await;
    write(&s, &["doc:1#viewer@user:1", "doc:2#viewer@user:2"], &[])
        .await
        .unwrap();
    let version = s.tenant("t1").await.unwrap().schema("").await.unwrap();
    let (ty, member) = version.model.resolve("doc", "view").unwrap();
    assert_eq!(version.check_costs.average(ty, member), 0);
    let pairs: Vec<(&str, &str)> = (1..=3)
        .flat_map(|d| [(d, "1"), (d, "2"), (d, "3")])
        .map(|(d, u)| (["1", "2", "3"][d - 1], u))
        .collect();
    let request = v1::PermissionBulkCheckRequest {
        tenant_id: "t1".into(),
        items: pairs
            .iter()
            .map(|(d, u)| v1::PermissionBulkCheckRequestItem {
                entity: doc(d),
                permission: "view".into(),
                subject: user(u),
            })
            .collect(),
        ..Default::default()
    };
    for _ in 0..4 {
        let bulk = s.bulk_check(request.clone()).await.unwrap();
        for ((d, u), got) in pairs.iter().zip(&bulk.results) {
            let single = s
                .check(v1::PermissionCheckRequest {
                    tenant_id: "t1".into(),
                    entity: doc(d),
                    permission: "view".into(),
                    subject: user(u),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(got.can, single.can, "doc:{d} user:{u}");
        }
    }
    assert!(version.check_costs.average(ty, member) > 0);
}

#[test]
fn moving_tuples_converts_and_rejects_exactly_as_copying_does() {
    let mut subject_set = t("doc:2#viewer@group:eng#member");
    subject_set.subject.as_mut().unwrap().relation = " ... ".into();
    let good = vec![
        t("doc:1#owner@user:alice"),
        t("doc:1#viewer@group:eng#member"),
        subject_set,
    ];
    let copied = convert::tuples(&good, "tuples").unwrap();
    let source = good.as_ptr() as usize;
    let moved = convert::tuples_owned(good, "tuples").unwrap();
    assert_eq!(moved, copied);
    // The engine's tuple has the protobuf tuple's size, so the list's allocation is reused.
    assert_eq!(moved.as_ptr() as usize, source);

    let breakers: [fn(&mut v1::Tuple); 6] = [
        |t| t.entity = None,
        |t| t.entity.as_mut().unwrap().id = "bad id".into(),
        |t| t.relation = "no-such relation".into(),
        |t| t.subject = None,
        |t| t.subject.as_mut().unwrap().r#type = "".into(),
        |t| t.subject.as_mut().unwrap().relation = "bad relation!".into(),
    ];
    for brk in breakers {
        let mut list = vec![t("doc:1#owner@user:alice"), t("doc:2#owner@user:bob")];
        brk(&mut list[1]);
        let copied = convert::tuples(&list, "context.tuples").unwrap_err();
        let moved = convert::tuples_owned(list, "context.tuples").unwrap_err();
        assert!(
            copied.message.starts_with("context.tuples[1]."),
            "{}",
            copied.message
        );
        assert_eq!(moved.message, copied.message);
        assert_eq!(moved.code, copied.code);
    }
}
