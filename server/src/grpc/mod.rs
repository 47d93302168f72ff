//! The gRPC transport: the six `base.v1` services as thin adapters over [`Service`] (one file
//! per service), plus `grpc.health.v1` and server reflection (v1 and v1alpha, so both current
//! and older grpcurl work without proto files).
//!
//! Every adapter takes the request message, calls the service method of the same name and
//! turns an [`ApiError`] into a [`Status`]. Server streams end cleanly when the server shuts
//! down (see [`crate::transport::until_shutdown`]).

mod bundle;
mod data;
mod permission;
mod schema;
mod tenancy;
mod watch;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use crate::service::stream::ServerStream;
use futures_util::{Stream, StreamExt};
use lookout_proto::v1::bundle_server::BundleServer;
use lookout_proto::v1::data_server::DataServer;
use lookout_proto::v1::permission_server::PermissionServer;
use lookout_proto::v1::schema_server::SchemaServer;
use lookout_proto::v1::tenancy_server::TenancyServer;
use lookout_proto::v1::watch_server::WatchServer;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::{Response, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::error::ApiError;
use crate::service::Service;
use crate::transport::{log_outcome, until_shutdown};

pub use watch::{WATCH_DISABLED, WatchDisabled};

/// What every adapter holds: the service and the server's shutdown token.
#[derive(Debug, Clone)]
pub struct Api {
    service: Arc<Service>,
    shutdown: CancellationToken,
}

impl Api {
    pub fn new(service: Arc<Service>, shutdown: CancellationToken) -> Api {
        Api { service, shutdown }
    }
}

/// The response stream type of every server-streaming method.
pub type GrpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Awaits a unary service call and converts its outcome.
async fn unary<T>(
    method: &'static str,
    call: impl Future<Output = Result<T, ApiError>>,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let result = call.await;
    log_outcome("grpc", method, started.elapsed(), result.as_ref().err());
    result.map(Response::new).map_err(Status::from)
}

/// Awaits a streaming service call and wraps its receiver as a response stream.
async fn streaming<T: Send + 'static>(
    api: &Api,
    method: &'static str,
    call: impl Future<Output = Result<ServerStream<T>, ApiError>>,
) -> Result<Response<GrpcStream<T>>, Status> {
    let started = Instant::now();
    let result = call.await;
    log_outcome("grpc", method, started.elapsed(), result.as_ref().err());
    let rx = result.map_err(Status::from)?;
    let stream = until_shutdown(rx, api.shutdown.clone()).map(|item| item.map_err(Status::from));
    Ok(Response::new(Box::pin(stream)))
}

/// Settings of the gRPC server.
#[derive(Debug, Clone)]
pub struct GrpcOptions {
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Whether the Watch service is served (otherwise it answers UNIMPLEMENTED).
    pub watch: bool,
    /// Authentication, limits and metrics of every call (see [`crate::gate`]).
    pub gate: crate::gate::GrpcGate,
}

/// The gRPC router with every service, and the health reporter that controls what
/// `grpc.health.v1` answers.
pub async fn router(
    service: &Arc<Service>,
    shutdown: &CancellationToken,
    options: GrpcOptions,
) -> Result<(crate::gate::GatedRouter, HealthReporter), tonic_reflection::server::Error> {
    let api = Api::new(service.clone(), shutdown.clone());
    let max = options.max_message_bytes;

    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let (health, health_service) = tonic_health::server::health_reporter();

    let permission = PermissionServer::new(api.clone()).max_decoding_message_size(max);
    let data = DataServer::new(api.clone()).max_decoding_message_size(max);
    let schema = SchemaServer::new(api.clone()).max_decoding_message_size(max);
    let bundle = BundleServer::new(api.clone()).max_decoding_message_size(max);
    let tenancy = TenancyServer::new(api.clone()).max_decoding_message_size(max);

    set_status(&health, &permission, ServingStatus::Serving).await;
    set_status(&health, &data, ServingStatus::Serving).await;
    set_status(&health, &schema, ServingStatus::Serving).await;
    set_status(&health, &bundle, ServingStatus::Serving).await;
    set_status(&health, &tenancy, ServingStatus::Serving).await;

    let mut builder = tonic::transport::Server::builder().layer(options.gate.clone());
    let router = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(permission)
        .add_service(data)
        .add_service(schema)
        .add_service(bundle)
        .add_service(tenancy);
    let router = if options.watch {
        let watch = WatchServer::new(api).max_decoding_message_size(max);
        set_status(&health, &watch, ServingStatus::Serving).await;
        router.add_service(watch)
    } else {
        let watch = WatchServer::new(WatchDisabled).max_decoding_message_size(max);
        set_status(&health, &watch, ServingStatus::NotServing).await;
        router.add_service(watch)
    };
    Ok((router, health))
}

/// The names `grpc.health.v1` knows besides the server as a whole (`""`).
pub const SERVICE_NAMES: [&str; 6] = [
    lookout_proto::v1::permission_server::SERVICE_NAME,
    lookout_proto::v1::data_server::SERVICE_NAME,
    lookout_proto::v1::schema_server::SERVICE_NAME,
    lookout_proto::v1::bundle_server::SERVICE_NAME,
    lookout_proto::v1::tenancy_server::SERVICE_NAME,
    lookout_proto::v1::watch_server::SERVICE_NAME,
];

async fn set_status<S: NamedService>(health: &HealthReporter, _: &S, status: ServingStatus) {
    health.set_service_status(S::NAME, status).await;
}

/// Marks everything NOT_SERVING, then ends open health Watch streams (by forgetting the
/// statuses), so they do not hold connections open during a graceful shutdown.
pub async fn stop_health(health: &HealthReporter) {
    let mut health = health.clone();
    for name in SERVICE_NAMES.into_iter().chain([""]) {
        health
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    for name in SERVICE_NAMES.into_iter().chain([""]) {
        health.clear_service_status(name).await;
    }
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(lookout_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // Both reflection services list both reflection protocols.
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
}
