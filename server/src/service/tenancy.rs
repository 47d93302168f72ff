//! The Tenancy service: create, delete and list tenants.

use lookout_proto::v1;

use super::Service;
use crate::error::ApiError;

impl Service {
    pub async fn tenant_create(&self, req: v1::TenantCreateRequest) -> Result<v1::TenantCreateResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`tenant_create` is being written"))
    }

    pub async fn tenant_delete(&self, req: v1::TenantDeleteRequest) -> Result<v1::TenantDeleteResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`tenant_delete` is being written"))
    }

    pub async fn tenant_list(&self, req: v1::TenantListRequest) -> Result<v1::TenantListResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`tenant_list` is being written"))
    }
}
