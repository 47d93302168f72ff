//! The Tenancy service: create, delete and list tenants.
//!
//! Listings are in creation order. A continuous token holds the creation number
//! (`Tenant::incarnation`) of the last tenant returned, so tenants created or deleted between
//! pages neither repeat nor shift the others.

use std::sync::Arc;

use lookout_engine::tokens::ContinuousToken;
use lookout_proto::v1;

use super::{Service, check_tenant_id, convert, query_fingerprint};
use crate::error::ApiError;
use crate::tenants::Tenant;

/// Longest tenant name accepted (Permify's limit).
const MAX_NAME_BYTES: usize = 64;

/// Tenant listings are not scoped to a tenant: their tokens use this scope.
const LIST_SCOPE: &str = "";

impl Service {
    pub async fn tenant_create(
        &self,
        req: v1::TenantCreateRequest,
    ) -> Result<v1::TenantCreateResponse, ApiError> {
        if req.id.is_empty() {
            return Err(ApiError::invalid("id is required"));
        }
        check_tenant_id(&req.id)?;
        if req.name.len() > MAX_NAME_BYTES {
            return Err(ApiError::invalid(format!(
                "name must be at most {MAX_NAME_BYTES} bytes, got {}",
                req.name.len()
            )));
        }
        let tenant = self.tenants.create(&req.id, &req.name).await?;
        Ok(v1::TenantCreateResponse {
            tenant: Some(convert::tenant_out(&tenant)),
        })
    }

    /// Deletes a tenant with all its schemas, data and bundles. Open watches of it end.
    pub async fn tenant_delete(
        &self,
        req: v1::TenantDeleteRequest,
    ) -> Result<v1::TenantDeleteResponse, ApiError> {
        if req.id.is_empty() {
            return Err(ApiError::invalid("id is required"));
        }
        check_tenant_id(&req.id)?;
        let tenant = self.tenants.delete(&req.id).await?;
        Ok(v1::TenantDeleteResponse {
            tenant_id: tenant.id.clone(),
        })
    }

    pub async fn tenant_list(
        &self,
        req: v1::TenantListRequest,
    ) -> Result<v1::TenantListResponse, ApiError> {
        let page_size = self.list_page_size(req.page_size)?;
        let query = query_fingerprint(&v1::TenantListRequest::default());
        let after = if req.continuous_token.is_empty() {
            None
        } else {
            let token = ContinuousToken::decode(&req.continuous_token, LIST_SCOPE, query)
                .map_err(|e| ApiError::invalid(format!("continuous_token: {e}")))?;
            Some(token.after)
        };
        let mut all: Vec<Arc<Tenant>> = self
            .tenants
            .list()
            .await?
            .into_iter()
            .filter(|t| after.is_none_or(|a| t.incarnation > a))
            .collect();
        all.sort_by_key(|t| t.incarnation);
        let more = all.len() > page_size;
        all.truncate(page_size);
        let continuous_token = match all.last() {
            Some(last) if more => ContinuousToken {
                revision: 0,
                after: last.incarnation,
            }
            .encode(LIST_SCOPE, query),
            _ => String::new(),
        };
        Ok(v1::TenantListResponse {
            tenants: all.iter().map(|t| convert::tenant_out(t)).collect(),
            continuous_token,
        })
    }
}
