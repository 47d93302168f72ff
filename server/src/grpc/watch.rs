//! `base.v1.Watch` over gRPC, and its stand-in when the server runs with `--watch=false`.

use lookout_proto::v1::watch_server::Watch;
use lookout_proto::v1::{WatchRequest, WatchResponse};
use tonic::{Request, Response, Status};

use super::{Api, GrpcStream, streaming};
pub use crate::service::watch::WATCH_DISABLED;

#[tonic::async_trait]
impl Watch for Api {
    type WatchStream = GrpcStream<WatchResponse>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        streaming(
            self,
            "Watch/Watch",
            self.service.watch(request.into_inner()),
        )
        .await
    }
}

/// The Watch service of a server started with `--watch=false`: every call is UNIMPLEMENTED.
#[derive(Debug, Clone, Copy)]
pub struct WatchDisabled;

#[tonic::async_trait]
impl Watch for WatchDisabled {
    type WatchStream = GrpcStream<WatchResponse>;

    async fn watch(
        &self,
        _request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented(WATCH_DISABLED))
    }
}
