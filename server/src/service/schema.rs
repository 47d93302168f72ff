//! The Schema service: write, partial write, read and list schema versions.

use lookout_proto::v1;

use super::Service;
use crate::error::ApiError;

impl Service {
    pub async fn schema_write(&self, req: v1::SchemaWriteRequest) -> Result<v1::SchemaWriteResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`schema_write` is being written"))
    }

    pub async fn schema_partial_write(&self, req: v1::SchemaPartialWriteRequest) -> Result<v1::SchemaPartialWriteResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`schema_partial_write` is being written"))
    }

    pub async fn schema_read(&self, req: v1::SchemaReadRequest) -> Result<v1::SchemaReadResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`schema_read` is being written"))
    }

    pub async fn schema_list(&self, req: v1::SchemaListRequest) -> Result<v1::SchemaListResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`schema_list` is being written"))
    }
}
