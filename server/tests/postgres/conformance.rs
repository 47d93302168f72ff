//! The store conformance suite: written once, run against the memory store and PostgreSQL
//! (see the `conformance!` instantiations at the bottom). Everything goes through the service
//! layer, as clients see it.

use lookout_proto::v1;
use lookout_server::error::ErrorCode;

use super::support::*;

pub async fn writes_reads_and_deletes(f: Fixture) {
    let s = &f.service;
    write_schema(s, "t1").await;
    let w1 = write(
        s,
        &["doc:1#owner@user:a", "doc:2#viewer@team:x#member"],
        &[],
    )
    .await
    .unwrap();
    assert!(check(s, "doc:1", "user:a", &w1).await);
    assert!(!check(s, "doc:1", "user:b", &w1).await);
    let w2 = write(s, &["doc:3#owner@user:b", "team:x#member@user:b"], &[])
        .await
        .unwrap();
    assert!(check(s, "doc:2", "user:b", &w2).await);
    assert_eq!(
        read_all(s, &w2).await,
        [
            "doc:1#owner@user:a",
            "doc:2#viewer@team:x#member",
            "doc:3#owner@user:b",
            "team:x#member@user:b"
        ]
    );
    // A delete by filter is one revision and removes exactly what matches.
    let d = s
        .delete_relationships(v1::RelationshipDeleteRequest {
            tenant_id: "t1".into(),
            filter: Some(doc_filter(&["1", "3"])),
        })
        .await
        .unwrap()
        .snap_token;
    assert_eq!(
        read_all(s, &d).await,
        ["doc:2#viewer@team:x#member", "team:x#member@user:b"]
    );
    assert!(!check(s, "doc:1", "user:a", &d).await);
}

pub async fn rewriting_is_harmless_and_rejected_batches_change_nothing(f: Fixture) {
    let s = &f.service;
    write_schema(s, "t1").await;
    let first = write(s, &["doc:1#owner@user:a"], &[]).await.unwrap();
    let mut rx = watch(s, &first).await.unwrap();
    // The same tuple again: acknowledged with a new revision, changes nothing.
    let again = write(s, &["doc:1#owner@user:a"], &[]).await.unwrap();
    assert_ne!(again, first);
    assert_eq!(read_all(s, &again).await, ["doc:1#owner@user:a"]);
    // One bad tuple rejects the whole batch.
    let e = write(s, &["doc:2#owner@user:a", "doc:3#nothing@user:a"], &[])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("tuples[1]"), "{e}");
    assert_eq!(read_all(s, "").await, ["doc:1#owner@user:a"]);
    // Watch saw neither the no-op nor the rejected batch: the next message is the next change.
    let last = write(s, &["doc:4#owner@user:a"], &[]).await.unwrap();
    let got = next_messages(&mut rx, 1).await;
    assert_eq!(got, [(vec!["+doc:4#owner@user:a".to_string()], last)]);
}

pub async fn attributes_are_written_overwritten_and_deleted(f: Fixture) {
    let s = &f.service;
    write_schema(s, "t1").await;
    write(
        s,
        &[],
        &["doc:1$public|boolean:true", "doc:2$level|integer:3"],
    )
    .await
    .unwrap();
    let snap = write(s, &[], &["doc:2$level|integer:7"]).await.unwrap();
    assert!(check(s, "doc:1", "user:anyone", &snap).await);
    assert_eq!(
        read_attributes(s).await,
        ["doc:1$public|boolean:true", "doc:2$level|integer:7"]
    );
    s.data_delete(v1::DataDeleteRequest {
        tenant_id: "t1".into(),
        tuple_filter: None,
        attribute_filter: Some(v1::AttributeFilter {
            entity: Some(v1::EntityFilter {
                r#type: "doc".into(),
                ids: vec!["1".into()],
            }),
            attributes: vec![],
        }),
    })
    .await
    .unwrap();
    assert_eq!(read_attributes(s).await, ["doc:2$level|integer:7"]);
}

pub async fn watch_resumes_from_a_snap_token_in_order(f: Fixture) {
    let s = &f.service;
    write_schema(s, "t1").await;
    let mut tokens = Vec::new();
    for i in 0..6 {
        tokens.push(
            write(s, &[&format!("doc:{i}#owner@user:a")], &[])
                .await
                .unwrap(),
        );
    }
    s.delete_relationships(v1::RelationshipDeleteRequest {
        tenant_id: "t1".into(),
        filter: Some(doc_filter(&["0"])),
    })
    .await
    .unwrap();
    let mut rx = watch(s, &tokens[2]).await.unwrap();
    let got = next_messages(&mut rx, 4).await;
    let lines: Vec<Vec<String>> = got.iter().map(|(l, _)| l.clone()).collect();
    assert_eq!(
        lines,
        [
            vec!["+doc:3#owner@user:a".to_string()],
            vec!["+doc:4#owner@user:a".to_string()],
            vec!["+doc:5#owner@user:a".to_string()],
            vec!["-doc:0#owner@user:a".to_string()],
        ]
    );
    assert_eq!(got[0].1, tokens[3]);
    // A token beyond the head is a bad token.
    let beyond = lookout_engine::tokens::SnapToken { revision: 10_000 }.encode("t1");
    let e = watch(s, &beyond).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
}

pub async fn lookups_page_with_continuous_tokens(f: Fixture) {
    let s = &f.service;
    write_schema(s, "t1").await;
    let tuples: Vec<String> = (0..7).map(|i| format!("doc:{i}#owner@user:a")).collect();
    let refs: Vec<&str> = tuples.iter().map(String::as_str).collect();
    let snap = write(s, &refs, &[]).await.unwrap();
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let (ids, next) = lookup_page(s, "user:a", 3, &token, &snap).await.unwrap();
        all.extend(ids);
        // Writes between pages do not disturb the listing.
        write(s, &["doc:99#owner@user:a"], &[]).await.unwrap();
        if next.is_empty() {
            break;
        }
        token = next;
    }
    assert_eq!(all, ["0", "1", "2", "3", "4", "5", "6"]);
    // Contextual tuples are private to the request and change nothing stored.
    let r = s
        .lookup_entity(v1::PermissionLookupEntityRequest {
            tenant_id: "t1".into(),
            entity_type: "doc".into(),
            permission: "view".into(),
            subject: Some(v1::Subject {
                r#type: "user".into(),
                id: "ctx".into(),
                relation: String::new(),
            }),
            context: Some(v1::Context {
                tuples: vec![t("doc:ctx#owner@user:ctx")],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.entity_ids, ["ctx"]);
    let snap = write(s, &["doc:ctx2#owner@user:ctx"], &[]).await.unwrap();
    let (ids, _) = lookup_page(s, "user:ctx", 0, "", &snap).await.unwrap();
    assert_eq!(ids, ["ctx2"]);
}

pub async fn tenants_schemas_and_bundles(f: Fixture) {
    let s = &f.service;
    s.tenant_create(v1::TenantCreateRequest {
        id: "acme".into(),
        name: "Acme".into(),
    })
    .await
    .unwrap();
    let e = s
        .tenant_create(v1::TenantCreateRequest {
            id: "acme".into(),
            name: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    let listed: Vec<String> = s
        .tenant_list(v1::TenantListRequest::default())
        .await
        .unwrap()
        .tenants
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, ["t1", "acme"]);

    let v1_ = write_schema(s, "acme").await;
    let v2_ = write_schema(s, "acme").await;
    let list = s
        .schema_list(v1::SchemaListRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.head, v2_);
    let versions: Vec<String> = list.schemas.into_iter().map(|v| v.version).collect();
    assert_eq!(versions, [v2_.clone(), v1_.clone()]);
    s.schema_read(v1::SchemaReadRequest {
        tenant_id: "acme".into(),
        metadata: Some(v1::SchemaReadRequestMetadata {
            schema_version: v1_,
        }),
    })
    .await
    .unwrap();

    s.bundle_write(v1::BundleWriteRequest {
        tenant_id: "acme".into(),
        bundles: vec![v1::DataBundle {
            name: "onboard".into(),
            arguments: vec!["doc".into(), "user".into()],
            operations: vec![v1::Operation {
                relationships_write: vec!["doc:{{.doc}}#owner@user:{{.user}}".into()],
                ..Default::default()
            }],
        }],
    })
    .await
    .unwrap();
    let snap = s
        .run_bundle(v1::BundleRunRequest {
            tenant_id: "acme".into(),
            name: "onboard".into(),
            arguments: [("doc", "7"), ("user", "z")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .await
        .unwrap()
        .snap_token;
    let read = s
        .read_relationships(v1::RelationshipReadRequest {
            tenant_id: "acme".into(),
            metadata: Some(v1::RelationshipReadRequestMetadata { snap_token: snap }),
            filter: Some(v1::TupleFilter::default()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        read.tuples.iter().map(text).collect::<Vec<_>>(),
        ["doc:7#owner@user:z"]
    );
    s.bundle_delete(v1::BundleDeleteRequest {
        tenant_id: "acme".into(),
        name: "onboard".into(),
    })
    .await
    .unwrap();
    let e = s
        .bundle_read(v1::BundleReadRequest {
            tenant_id: "acme".into(),
            name: "onboard".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);

    let mut watching = s
        .watch(v1::WatchRequest {
            tenant_id: "acme".into(),
            snap_token: String::new(),
        })
        .await
        .unwrap();
    s.tenant_delete(v1::TenantDeleteRequest { id: "acme".into() })
        .await
        .unwrap();
    // Open watches of a deleted tenant end.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), watching.recv()).await;
    assert!(matches!(ended, Ok(None)), "{ended:?}");
    let e = write_schema_result(s, "acme").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

async fn write_schema_result(
    s: &lookout_server::service::Service,
    tenant: &str,
) -> Result<v1::SchemaWriteResponse, lookout_server::error::ApiError> {
    s.schema_write(v1::SchemaWriteRequest {
        tenant_id: tenant.into(),
        schema: SCHEMA.into(),
    })
    .await
}

macro_rules! conformance {
    ($store:ident) => {
        mod $store {
            use super::super::support;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn writes_reads_and_deletes() {
                super::writes_reads_and_deletes(support::$store().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rewriting_is_harmless_and_rejected_batches_change_nothing() {
                super::rewriting_is_harmless_and_rejected_batches_change_nothing(
                    support::$store().await,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn attributes_are_written_overwritten_and_deleted() {
                super::attributes_are_written_overwritten_and_deleted(support::$store().await)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn watch_resumes_from_a_snap_token_in_order() {
                super::watch_resumes_from_a_snap_token_in_order(support::$store().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lookups_page_with_continuous_tokens() {
                super::lookups_page_with_continuous_tokens(support::$store().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tenants_schemas_and_bundles() {
                super::tenants_schemas_and_bundles(support::$store().await).await;
            }
        }
    };
}

conformance!(memory);
conformance!(postgres);
