//! `base.v1.Tenancy` over gRPC.

use lookout_proto::v1::tenancy_server::Tenancy;
use lookout_proto::v1::{
    TenantCreateRequest, TenantCreateResponse, TenantDeleteRequest, TenantDeleteResponse,
    TenantListRequest, TenantListResponse,
};
use tonic::{Request, Response, Status};

use super::{Api, unary};

#[tonic::async_trait]
impl Tenancy for Api {
    async fn create(
        &self,
        request: Request<TenantCreateRequest>,
    ) -> Result<Response<TenantCreateResponse>, Status> {
        unary(
            "Tenancy/Create",
            self.service.tenant_create(request.into_inner()),
        )
        .await
    }

    async fn delete(
        &self,
        request: Request<TenantDeleteRequest>,
    ) -> Result<Response<TenantDeleteResponse>, Status> {
        unary(
            "Tenancy/Delete",
            self.service.tenant_delete(request.into_inner()),
        )
        .await
    }

    async fn list(
        &self,
        request: Request<TenantListRequest>,
    ) -> Result<Response<TenantListResponse>, Status> {
        unary(
            "Tenancy/List",
            self.service.tenant_list(request.into_inner()),
        )
        .await
    }
}
