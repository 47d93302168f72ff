//! `base.v1.Bundle` over gRPC.

use lookout_proto::v1::bundle_server::Bundle;
use lookout_proto::v1::{
    BundleDeleteRequest, BundleDeleteResponse, BundleReadRequest, BundleReadResponse,
    BundleWriteRequest, BundleWriteResponse,
};
use tonic::{Request, Response, Status};

use super::{Api, unary};

#[tonic::async_trait]
impl Bundle for Api {
    async fn write(
        &self,
        request: Request<BundleWriteRequest>,
    ) -> Result<Response<BundleWriteResponse>, Status> {
        unary(
            "Bundle/Write",
            self.service.bundle_write(request.into_inner()),
        )
        .await
    }

    async fn read(
        &self,
        request: Request<BundleReadRequest>,
    ) -> Result<Response<BundleReadResponse>, Status> {
        unary(
            "Bundle/Read",
            self.service.bundle_read(request.into_inner()),
        )
        .await
    }

    async fn delete(
        &self,
        request: Request<BundleDeleteRequest>,
    ) -> Result<Response<BundleDeleteResponse>, Status> {
        unary(
            "Bundle/Delete",
            self.service.bundle_delete(request.into_inner()),
        )
        .await
    }
}
