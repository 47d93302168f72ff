//! The one error type of the service layer and its two conversions: to a gRPC status and to an
//! HTTP status with Permify's JSON error body `{"code", "message", "details"}`.
//!
//! Both conversions are exhaustive matches without a wildcard arm, so a new code cannot be
//! added without deciding how each transport reports it.

use lookout_engine::eval::EvalError;
use lookout_engine::index::WriteError;
use lookout_engine::schema::SchemaError;
use lookout_engine::tokens::TokenError;

/// What went wrong, as the client should see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    ResourceExhausted,
    PayloadTooLarge,
    Unavailable,
    DeadlineExceeded,
    Cancelled,
    Internal,
}

/// An error with a code and a message naming what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Internal, message)
    }

    pub fn from_write(e: WriteError) -> Self {
        match e {
            WriteError::Capacity(_) => ApiError::new(ErrorCode::ResourceExhausted, e.to_string()),
            WriteError::Replica(_) => ApiError::internal(e.to_string()),
            other => ApiError::invalid(other.to_string()),
        }
    }

    pub fn from_schema(e: SchemaError) -> Self {
        ApiError::invalid(format!("schema: {e}"))
    }

    pub fn from_eval(e: EvalError) -> Self {
        match e {
            EvalError::UnknownEntityType(_)
            | EvalError::UnknownMember { .. }
            | EvalError::NotCheckable { .. }
            | EvalError::DepthTooSmall(_)
            | EvalError::Context(_)
            | EvalError::Subject(_) => ApiError::invalid(e.to_string()),
            EvalError::DepthExhausted(_) => {
                ApiError::new(ErrorCode::FailedPrecondition, e.to_string())
            }
            EvalError::NoConvergence(_) => ApiError::internal(e.to_string()),
            EvalError::Cancelled => ApiError::new(ErrorCode::Cancelled, e.to_string()),
            EvalError::TooLarge(_) => ApiError::new(ErrorCode::ResourceExhausted, e.to_string()),
        }
    }

    pub fn from_token(e: TokenError) -> Self {
        ApiError::invalid(e.to_string())
    }

    /// The gRPC status code.
    pub fn grpc_code(&self) -> tonic::Code {
        match self.code {
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorCode::PayloadTooLarge => tonic::Code::ResourceExhausted,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ErrorCode::Cancelled => tonic::Code::Cancelled,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        match self.code {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists => 409,
            // As grpc-gateway (Permify's HTTP front) answers it: 400, not 412.
            ErrorCode::FailedPrecondition => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::ResourceExhausted => 429,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Unavailable => 503,
            ErrorCode::DeadlineExceeded => 504,
            ErrorCode::Cancelled => 499,
            ErrorCode::Internal => 500,
        }
    }

    /// Permify's JSON error body. `code` is the numeric gRPC code, as grpc-gateway writes it.
    pub fn json_body(&self) -> serde_json::Value {
        serde_json::json!({
            "code": self.grpc_code() as i32,
            "message": self.message,
            "details": [],
        })
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        tonic::Status::new(e.grpc_code(), e.message)
    }
}
