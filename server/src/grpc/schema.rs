//! `base.v1.Schema` over gRPC.

use lookout_proto::v1::schema_server::Schema;
use lookout_proto::v1::{
    SchemaListRequest, SchemaListResponse, SchemaPartialWriteRequest, SchemaPartialWriteResponse,
    SchemaReadRequest, SchemaReadResponse, SchemaWriteRequest, SchemaWriteResponse,
};
use tonic::{Request, Response, Status};

use super::{Api, unary};

#[tonic::async_trait]
impl Schema for Api {
    async fn write(
        &self,
        request: Request<SchemaWriteRequest>,
    ) -> Result<Response<SchemaWriteResponse>, Status> {
        unary(
            "Schema/Write",
            self.service.schema_write(request.into_inner()),
        )
        .await
    }

    async fn partial_write(
        &self,
        request: Request<SchemaPartialWriteRequest>,
    ) -> Result<Response<SchemaPartialWriteResponse>, Status> {
        unary(
            "Schema/PartialWrite",
            self.service.schema_partial_write(request.into_inner()),
        )
        .await
    }

    async fn read(
        &self,
        request: Request<SchemaReadRequest>,
    ) -> Result<Response<SchemaReadResponse>, Status> {
        unary(
            "Schema/Read",
            self.service.schema_read(request.into_inner()),
        )
        .await
    }

    async fn list(
        &self,
        request: Request<SchemaListRequest>,
    ) -> Result<Response<SchemaListResponse>, Status> {
        unary(
            "Schema/List",
            self.service.schema_list(request.into_inner()),
        )
        .await
    }
}
