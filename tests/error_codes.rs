//! Permify's error codes: every rejection carries a `google.rpc.ErrorInfo` whose `reason` is
//! the `ERROR_CODE_*` name Permify gives for the case, over gRPC (`grpc-status-details-bin`)
//! and HTTP (the body's `details`) alike. The cases are those of `docs/errors.md`.

use lookout_proto::v1;
use tonic::Code;

use crate::harness::{Client, Failure, Mode, Transport, config_in, msg, start_with};

const SCHEMA: &str = "entity user {}

entity document {
    relation owner @user
    relation parent @document
    permission view = owner or parent.view
}
";

fn check(tenant: &str, entity: &str, permission: &str, depth: i32) -> v1::PermissionCheckRequest {
    v1::PermissionCheckRequest {
        tenant_id: tenant.to_owned(),
        metadata: Some(v1::PermissionCheckRequestMetadata {
            depth,
            ..Default::default()
        }),
        entity: msg::entity_text(entity),
        permission: permission.to_owned(),
        subject: msg::subject_text("user:alice"),
        ..Default::default()
    }
}

fn write(tenant: &str, tuples: &[&str]) -> v1::DataWriteRequest {
    v1::DataWriteRequest {
        tenant_id: tenant.to_owned(),
        metadata: Some(v1::DataWriteRequestMetadata::default()),
        tuples: tuples.iter().map(|t| msg::tuple_text(t)).collect(),
        attributes: Vec::new(),
    }
}

fn tenant(id: &str) -> v1::TenantCreateRequest {
    v1::TenantCreateRequest {
        id: id.to_owned(),
        name: id.to_owned(),
    }
}

#[track_caller]
fn expect(result: Result<impl std::fmt::Debug, Failure>, code: Code, reason: &str) {
    let failure = result.expect_err("the call is rejected");
    assert_eq!(failure.code, code, "{failure}");
    assert_eq!(failure.reason, reason, "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_names_permifys_error_code_on_both_transports() {
    let mut config = config_in(Mode::Open);
    config.limits.max_batch = 3;
    let server = start_with(config).await;
    for transport in Transport::ALL {
        let client = Client::connect(transport, &server).await;
        let t = format!("codes-{}", transport.to_string().to_lowercase());
        let empty = format!("{t}-empty");
        client.create_tenant(tenant(&t)).await.expect("a tenant");
        client
            .create_tenant(tenant(&empty))
            .await
            .expect("a tenant");
        client
            .write_schema(v1::SchemaWriteRequest {
                tenant_id: t.clone(),
                schema: SCHEMA.to_owned(),
            })
            .await
            .expect("the schema");
        let chain: Vec<String> = (1..8)
            .map(|i| format!("document:{i}#parent@document:{}", i + 1))
            .collect();
        for link in chain.chunks(3) {
            let link: Vec<&str> = link.iter().map(String::as_str).collect();
            client
                .write_data(write(&t, &link))
                .await
                .expect("the chain");
        }

        let ok = check(&t, "document:1", "view", 20);
        expect(
            client.check(check("nope", "document:1", "view", 20)).await,
            Code::NotFound,
            "ERROR_CODE_TENANT_NOT_FOUND",
        );
        expect(
            client.check(check(&empty, "document:1", "view", 20)).await,
            Code::NotFound,
            "ERROR_CODE_SCHEMA_NOT_FOUND",
        );
        expect(
            client.create_tenant(tenant(&t)).await,
            Code::AlreadyExists,
            "ERROR_CODE_UNIQUE_CONSTRAINT",
        );
        expect(
            client
                .check(v1::PermissionCheckRequest {
                    entity: None,
                    ..ok.clone()
                })
                .await,
            Code::InvalidArgument,
            "ERROR_CODE_VALIDATION",
        );
        expect(
            client.check(check(&t, "document:1", "view", 1)).await,
            Code::InvalidArgument,
            "ERROR_CODE_VALIDATION",
        );
        expect(
            client.check(check(&t, "document:1", "view", 3)).await,
            Code::FailedPrecondition,
            "ERROR_CODE_DEPTH_NOT_ENOUGH",
        );
        expect(
            client.check(check(&t, "folder:1", "view", 20)).await,
            Code::InvalidArgument,
            "ERROR_CODE_ENTITY_DEFINITION_NOT_FOUND",
        );
        expect(
            client.check(check(&t, "document:1", "edit", 20)).await,
            Code::InvalidArgument,
            "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND",
        );
        expect(
            client
                .write_schema(v1::SchemaWriteRequest {
                    tenant_id: t.clone(),
                    schema: "entity user {".to_owned(),
                })
                .await,
            Code::InvalidArgument,
            "ERROR_CODE_SCHEMA_PARSE",
        );
        expect(
            client
                .write_schema(v1::SchemaWriteRequest {
                    tenant_id: t.clone(),
                    schema: "entity document { relation owner @person }".to_owned(),
                })
                .await,
            Code::InvalidArgument,
            "ERROR_CODE_SCHEMA_COMPILE",
        );
        expect(
            client
                .write_data(write(&t, &["document:1#editor@user:alice"]))
                .await,
            Code::InvalidArgument,
            "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND",
        );
        expect(
            client
                .write_data(write(&t, &["document:1#owner@document:2"]))
                .await,
            Code::InvalidArgument,
            "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND",
        );
        let many = ["document:1#owner@user:a"; 4];
        expect(
            client.write_data(write(&t, &many)).await,
            Code::ResourceExhausted,
            "ERROR_CODE_MAX_DATA_PER_WRITE_EXCEEDED",
        );
    }
    server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures_name_permifys_error_codes() {
    let server = start_with(config_in(Mode::Authenticated)).await;
    for transport in Transport::ALL {
        let anonymous = Client::connect_as(transport, &server, None).await;
        expect(
            anonymous.create_tenant(tenant("a")).await,
            Code::Unauthenticated,
            "ERROR_CODE_MISSING_BEARER_TOKEN",
        );
        let wrong = Client::connect_as(transport, &server, Some("not-the-key")).await;
        expect(
            wrong.create_tenant(tenant("a")).await,
            Code::Unauthenticated,
            "ERROR_CODE_UNAUTHENTICATED",
        );
    }
    server.shutdown().await.expect("a clean shutdown");
}
