//! The Data service: writes, reads and deletes of tuples and attributes, and bundle runs.

use lookout_proto::v1;

use super::Service;
use crate::error::ApiError;

impl Service {
    pub async fn data_write(&self, req: v1::DataWriteRequest) -> Result<v1::DataWriteResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`data_write` is being written"))
    }

    pub async fn write_relationships(&self, req: v1::RelationshipWriteRequest) -> Result<v1::RelationshipWriteResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`write_relationships` is being written"))
    }

    pub async fn read_relationships(&self, req: v1::RelationshipReadRequest) -> Result<v1::RelationshipReadResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`read_relationships` is being written"))
    }

    pub async fn read_attributes(&self, req: v1::AttributeReadRequest) -> Result<v1::AttributeReadResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`read_attributes` is being written"))
    }

    pub async fn data_delete(&self, req: v1::DataDeleteRequest) -> Result<v1::DataDeleteResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`data_delete` is being written"))
    }

    pub async fn delete_relationships(&self, req: v1::RelationshipDeleteRequest) -> Result<v1::RelationshipDeleteResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`delete_relationships` is being written"))
    }

    pub async fn run_bundle(&self, req: v1::BundleRunRequest) -> Result<v1::BundleRunResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`run_bundle` is being written"))
    }

    pub async fn bundle_write(&self, req: v1::BundleWriteRequest) -> Result<v1::BundleWriteResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`bundle_write` is being written"))
    }

    pub async fn bundle_read(&self, req: v1::BundleReadRequest) -> Result<v1::BundleReadResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`bundle_read` is being written"))
    }

    pub async fn bundle_delete(&self, req: v1::BundleDeleteRequest) -> Result<v1::BundleDeleteResponse, ApiError> {
        let _ = req;
        Err(ApiError::internal("`bundle_delete` is being written"))
    }
}
