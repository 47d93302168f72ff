//! The gRPC transport, health and reflection.

use lookout_proto::v1;
use lookout_proto::v1::data_client::DataClient;
use lookout_proto::v1::permission_client::PermissionClient;
use lookout_proto::v1::schema_client::SchemaClient;
use lookout_proto::v1::watch_client::WatchClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::common::{MAX_REQUEST_BYTES, SCHEMA, channel, start, start_with, test_config};

fn entity(entity_type: &str, id: &str) -> Option<v1::Entity> {
    Some(v1::Entity {
        r#type: entity_type.to_owned(),
        id: id.to_owned(),
    })
}

fn user(id: &str) -> Option<v1::Subject> {
    Some(v1::Subject {
        r#type: "user".to_owned(),
        id: id.to_owned(),
        relation: String::new(),
    })
}

fn check(tenant: &str, token: &str, document: &str, who: &str) -> v1::PermissionCheckRequest {
    v1::PermissionCheckRequest {
        tenant_id: tenant.to_owned(),
        metadata: Some(v1::PermissionCheckRequestMetadata {
            snap_token: token.to_owned(),
            depth: 20,
            ..Default::default()
        }),
        entity: entity("document", document),
        permission: "view".to_owned(),
        subject: user(who),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_serving() {
    let server = start().await;
    let mut health = HealthClient::new(channel(server.grpc_addr).await);
    for service in ["", "base.v1.Permission", "base.v1.Watch"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "`{service}`");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha_list_the_services() {
    use tonic_reflection::pb::{v1 as r1, v1alpha as ra};
    let server = start().await;
    let channel = channel(server.grpc_addr).await;

    let mut client = r1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(r1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("{response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "base.v1.Permission",
        "base.v1.Data",
        "base.v1.Schema",
        "base.v1.Bundle",
        "base.v1.Tenancy",
        "base.v1.Watch",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }

    // grpcurl describes a service by asking for the file that defines it.
    let request = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            r1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "base.v1.Permission".to_owned(),
            ),
        ),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    assert!(
        matches!(
            response.message_response,
            Some(r1::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f))
                if !f.file_descriptor_proto.is_empty()
        ),
        "{response:?}"
    );

    let mut client = ra::server_reflection_client::ServerReflectionClient::new(channel);
    let request = ra::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(ra::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(ra::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("{response:?}");
    };
    assert!(
        list.service.iter().any(|s| s.name == "base.v1.Permission"),
        "{list:?}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_tuples_and_check() {
    let server = start().await;
    let channel = channel(server.grpc_addr).await;
    let version = SchemaClient::new(channel.clone())
        .write(v1::SchemaWriteRequest {
            tenant_id: "t1".to_owned(),
            schema: SCHEMA.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .schema_version;
    assert!(!version.is_empty());
    let token = DataClient::new(channel.clone())
        .write(v1::DataWriteRequest {
            tenant_id: "t1".to_owned(),
            metadata: Some(v1::DataWriteRequestMetadata {
                schema_version: version,
            }),
            tuples: vec![v1::Tuple {
                entity: entity("document", "d1"),
                relation: "viewer".to_owned(),
                subject: user("alice"),
            }],
            attributes: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .snap_token;

    let mut permission = PermissionClient::new(channel);
    let can = |r: tonic::Response<v1::PermissionCheckResponse>| r.into_inner().can;
    let allowed = can(permission
        .check(check("t1", &token, "d1", "alice"))
        .await
        .unwrap());
    assert_eq!(allowed, v1::CheckResult::Allowed as i32);
    let denied = can(permission
        .check(check("t1", &token, "d1", "bob"))
        .await
        .unwrap());
    assert_eq!(denied, v1::CheckResult::Denied as i32);

    let mut stream = permission
        .lookup_entity_stream(v1::PermissionLookupEntityRequest {
            tenant_id: "t1".to_owned(),
            entity_type: "document".to_owned(),
            permission: "view".to_owned(),
            subject: user("alice"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.entity_id, "d1");
    assert!(stream.message().await.unwrap().is_none());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_grpc_codes() {
    let server = start().await;
    let mut permission = PermissionClient::new(channel(server.grpc_addr).await);
    let status = permission
        .check(check("nope", "", "d1", "alice"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("nope"), "{status:?}");

    let status = permission
        .check(v1::PermissionCheckRequest {
            tenant_id: "t1".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let mut big = check("t1", "", "d1", "alice");
    big.permission = "p".repeat(MAX_REQUEST_BYTES + 1);
    let status = permission.check(big).await.unwrap_err();
    // As grpc-go answers a message over its limit (tonic's own code is OUT_OF_RANGE).
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("16384"), "{status:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_with_unavailable_on_shutdown() {
    let server = start().await;
    let channel = channel(server.grpc_addr).await;
    let mut stream = WatchClient::new(channel)
        .watch(v1::WatchRequest {
            tenant_id: "t1".to_owned(),
            snap_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let shutdown = tokio::spawn(server.shutdown());
    let status = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .expect("the stream ends promptly")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    shutdown.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_can_be_disabled() {
    let server = start_with(lookout_server::config::Config {
        watch: false,
        ..test_config()
    })
    .await;
    let channel = channel(server.grpc_addr).await;
    let status = WatchClient::new(channel.clone())
        .watch(v1::WatchRequest {
            tenant_id: "t1".to_owned(),
            snap_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert!(status.message().contains("--watch=false"), "{status:?}");
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "base.v1.Watch".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::NotServing as i32);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_watchers_see_not_serving_and_do_not_hold_up_shutdown() {
    let server = start().await;
    let mut health = HealthClient::new(channel(server.grpc_addr).await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let started = std::time::Instant::now();
    let shutdown = tokio::spawn(server.shutdown());
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    assert!(watch.message().await.unwrap().is_none());
    shutdown.await.unwrap().unwrap();
    // Well under the 5 s shutdown timeout of the test config.
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
