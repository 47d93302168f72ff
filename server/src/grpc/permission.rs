//! `base.v1.Permission` over gRPC.

use lookout_proto::v1::permission_server::Permission;
use lookout_proto::v1::{
    PermissionBulkCheckRequest, PermissionBulkCheckResponse, PermissionCheckRequest,
    PermissionCheckResponse, PermissionExpandRequest, PermissionExpandResponse,
    PermissionLookupEntityRequest, PermissionLookupEntityResponse,
    PermissionLookupEntityStreamResponse, PermissionLookupSubjectRequest,
    PermissionLookupSubjectResponse, PermissionSubjectPermissionRequest,
    PermissionSubjectPermissionResponse,
};
use tonic::{Request, Response, Status};

use super::{Api, GrpcStream, streaming, unary};

#[tonic::async_trait]
impl Permission for Api {
    async fn check(
        &self,
        request: Request<PermissionCheckRequest>,
    ) -> Result<Response<PermissionCheckResponse>, Status> {
        unary("Permission/Check", self.service.check(request.into_inner())).await
    }

    async fn bulk_check(
        &self,
        request: Request<PermissionBulkCheckRequest>,
    ) -> Result<Response<PermissionBulkCheckResponse>, Status> {
        unary(
            "Permission/BulkCheck",
            self.service.bulk_check(request.into_inner()),
        )
        .await
    }

    async fn expand(
        &self,
        request: Request<PermissionExpandRequest>,
    ) -> Result<Response<PermissionExpandResponse>, Status> {
        unary(
            "Permission/Expand",
            self.service.expand(request.into_inner()),
        )
        .await
    }

    async fn lookup_entity(
        &self,
        request: Request<PermissionLookupEntityRequest>,
    ) -> Result<Response<PermissionLookupEntityResponse>, Status> {
        unary(
            "Permission/LookupEntity",
            self.service.lookup_entity(request.into_inner()),
        )
        .await
    }

    type LookupEntityStreamStream = GrpcStream<PermissionLookupEntityStreamResponse>;

    async fn lookup_entity_stream(
        &self,
        request: Request<PermissionLookupEntityRequest>,
    ) -> Result<Response<Self::LookupEntityStreamStream>, Status> {
        streaming(
            self,
            "Permission/LookupEntityStream",
            self.service.lookup_entity_stream(request.into_inner()),
        )
        .await
    }

    async fn lookup_subject(
        &self,
        request: Request<PermissionLookupSubjectRequest>,
    ) -> Result<Response<PermissionLookupSubjectResponse>, Status> {
        unary(
            "Permission/LookupSubject",
            self.service.lookup_subject(request.into_inner()),
        )
        .await
    }

    async fn subject_permission(
        &self,
        request: Request<PermissionSubjectPermissionRequest>,
    ) -> Result<Response<PermissionSubjectPermissionResponse>, Status> {
        unary(
            "Permission/SubjectPermission",
            self.service.subject_permission(request.into_inner()),
        )
        .await
    }
}
