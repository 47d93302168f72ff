//! `base.v1.Data` over gRPC.

use lookout_proto::v1::data_server::Data;
use lookout_proto::v1::{
    AttributeReadRequest, AttributeReadResponse, BundleRunRequest, BundleRunResponse,
    DataDeleteRequest, DataDeleteResponse, DataWriteRequest, DataWriteResponse,
    RelationshipDeleteRequest, RelationshipDeleteResponse, RelationshipReadRequest,
    RelationshipReadResponse, RelationshipWriteRequest, RelationshipWriteResponse,
};
use tonic::{Request, Response, Status};

use super::{Api, unary};

#[tonic::async_trait]
impl Data for Api {
    async fn write(
        &self,
        request: Request<DataWriteRequest>,
    ) -> Result<Response<DataWriteResponse>, Status> {
        unary("Data/Write", self.service.data_write(request.into_inner())).await
    }

    async fn write_relationships(
        &self,
        request: Request<RelationshipWriteRequest>,
    ) -> Result<Response<RelationshipWriteResponse>, Status> {
        unary(
            "Data/WriteRelationships",
            self.service.write_relationships(request.into_inner()),
        )
        .await
    }

    async fn read_relationships(
        &self,
        request: Request<RelationshipReadRequest>,
    ) -> Result<Response<RelationshipReadResponse>, Status> {
        unary(
            "Data/ReadRelationships",
            self.service.read_relationships(request.into_inner()),
        )
        .await
    }

    async fn read_attributes(
        &self,
        request: Request<AttributeReadRequest>,
    ) -> Result<Response<AttributeReadResponse>, Status> {
        unary(
            "Data/ReadAttributes",
            self.service.read_attributes(request.into_inner()),
        )
        .await
    }

    async fn delete(
        &self,
        request: Request<DataDeleteRequest>,
    ) -> Result<Response<DataDeleteResponse>, Status> {
        unary(
            "Data/Delete",
            self.service.data_delete(request.into_inner()),
        )
        .await
    }

    async fn delete_relationships(
        &self,
        request: Request<RelationshipDeleteRequest>,
    ) -> Result<Response<RelationshipDeleteResponse>, Status> {
        unary(
            "Data/DeleteRelationships",
            self.service.delete_relationships(request.into_inner()),
        )
        .await
    }

    async fn run_bundle(
        &self,
        request: Request<BundleRunRequest>,
    ) -> Result<Response<BundleRunResponse>, Status> {
        unary(
            "Data/RunBundle",
            self.service.run_bundle(request.into_inner()),
        )
        .await
    }
}
