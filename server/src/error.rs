//! The one error type of the service layer and its two conversions: to a gRPC status and to an
//! HTTP status with Permify's JSON error body `{"code", "message", "details"}`.
//!
//! Both conversions are exhaustive matches without a wildcard arm, so a new code cannot be
//! added without deciding how each transport reports it.
//!
//! Every error also names a [`Reason`]: the `base.v1.ErrorCode` Permify gives for the case
//! (`ERROR_CODE_TENANT_NOT_FOUND`, ...), so that clients written against Permify can branch on
//! it. It travels as a `google.rpc.ErrorInfo` with domain [`DOMAIN`]: over gRPC in
//! `grpc-status-details-bin` (an encoded `google.rpc.Status`), over HTTP as the one element of
//! the body's `details`. The message stays Lookout's own. `docs/errors.md` lists the cases.

use std::collections::BTreeMap;

use lookout_engine::eval::EvalError;
use lookout_engine::index::WriteError;
use lookout_engine::schema::{SchemaError, SchemaErrorKind};
use lookout_engine::tokens::TokenError;
pub use lookout_proto::v1::ErrorCode as Reason;
use prost::Message as _;

/// The `domain` of every `google.rpc.ErrorInfo` Lookout sends. Permify sends no ErrorInfo, so
/// there is no domain of its to match.
pub const DOMAIN: &str = "lookout";

/// The type URL of `google.rpc.ErrorInfo` in a `google.protobuf.Any`.
pub const ERROR_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// `google.rpc.Status`, the payload of `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// `google.rpc.ErrorInfo`: why a call failed, as a constant name clients can branch on.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErrorInfo {
    #[prost(string, tag = "1")]
    pub reason: String,
    #[prost(string, tag = "2")]
    pub domain: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub metadata: BTreeMap<String, String>,
}

impl ErrorInfo {
    /// The first ErrorInfo of an encoded `google.rpc.Status` (a gRPC status's details).
    pub fn from_status_details(details: &[u8]) -> Option<ErrorInfo> {
        let status = RpcStatus::decode(details).ok()?;
        status
            .details
            .iter()
            .find(|any| any.type_url == ERROR_INFO_TYPE_URL)
            .and_then(|any| ErrorInfo::decode(any.value.as_slice()).ok())
    }
}

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

impl ErrorCode {
    /// Permify's name for an error of this code when nothing more precise is known.
    pub fn default_reason(self) -> Reason {
        match self {
            ErrorCode::InvalidArgument | ErrorCode::FailedPrecondition => Reason::Validation,
            ErrorCode::NotFound => Reason::NotFound,
            ErrorCode::AlreadyExists => Reason::AlreadyExist,
            ErrorCode::Unauthenticated | ErrorCode::PermissionDenied => Reason::Unauthenticated,
            ErrorCode::PayloadTooLarge => Reason::MaxDataPerWriteExceeded,
            // Load shedding and Lookout's own size limits: Permify has no code for these.
            ErrorCode::ResourceExhausted => Reason::Unspecified,
            ErrorCode::Unavailable | ErrorCode::Internal => Reason::Internal,
            ErrorCode::DeadlineExceeded | ErrorCode::Cancelled => Reason::Cancelled,
        }
    }
}

/// An error with a code, Permify's name for the case, and a message naming what is wrong and
/// where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Sent as the ErrorInfo `reason`; [`ErrorCode::default_reason`] unless set.
    pub reason: Reason,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            reason: code.default_reason(),
        }
    }

    /// The same error with Permify's more precise name for it.
    #[must_use]
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = reason;
        self
    }

    /// NOT_FOUND for a tenant that does not exist.
    pub fn tenant_not_found(id: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("tenant `{id}` not found"))
            .with_reason(Reason::TenantNotFound)
    }

    /// Creating a tenant whose ID is taken.
    pub fn tenant_exists(id: &str) -> Self {
        ApiError::new(
            ErrorCode::AlreadyExists,
            format!("tenant `{id}` already exists"),
        )
        .with_reason(Reason::UniqueConstraint)
    }

    /// The ErrorInfo `reason`: `ERROR_CODE_*`.
    pub fn reason_name(&self) -> &'static str {
        self.reason.as_str_name()
    }

    /// The `google.rpc.ErrorInfo` of this error.
    pub fn error_info(&self) -> ErrorInfo {
        ErrorInfo {
            reason: self.reason_name().to_owned(),
            domain: DOMAIN.to_owned(),
            metadata: BTreeMap::new(),
        }
    }

    /// The encoded `google.rpc.Status` that gRPC sends in `grpc-status-details-bin`.
    pub fn status_details(&self) -> Vec<u8> {
        RpcStatus {
            code: self.grpc_code() as i32,
            message: self.message.clone(),
            details: vec![prost_types::Any {
                type_url: ERROR_INFO_TYPE_URL.to_owned(),
                value: self.error_info().encode_to_vec(),
            }],
        }
        .encode_to_vec()
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Internal, message)
    }

    pub fn from_write(e: WriteError) -> Self {
        let reason = write_reason(&e);
        match e {
            WriteError::Capacity(_) => ApiError::new(ErrorCode::ResourceExhausted, e.to_string()),
            WriteError::Replica(_) => ApiError::internal(e.to_string()),
            other => ApiError::invalid(other.to_string()).with_reason(reason),
        }
    }

    pub fn from_schema(e: SchemaError) -> Self {
        let reason = schema_reason(e.kind);
        ApiError::invalid(format!("schema: {e}")).with_reason(reason)
    }

    pub fn from_eval(e: EvalError) -> Self {
        match e {
            EvalError::UnknownEntityType(_) => {
                ApiError::invalid(e.to_string()).with_reason(Reason::EntityDefinitionNotFound)
            }
            EvalError::UnknownMember { .. } => {
                ApiError::invalid(e.to_string()).with_reason(Reason::RelationDefinitionNotFound)
            }
            EvalError::DepthTooSmall(_) => {
                ApiError::invalid(e.to_string()).with_reason(Reason::DepthNotEnough)
            }
            EvalError::Context(ref inner) => {
                let reason = write_reason(inner);
                ApiError::invalid(e.to_string()).with_reason(reason)
            }
            EvalError::NotCheckable { .. } | EvalError::Subject(_) => {
                ApiError::invalid(e.to_string())
            }
            EvalError::DepthExhausted(_) => {
                ApiError::new(ErrorCode::FailedPrecondition, e.to_string())
                    .with_reason(Reason::DepthNotEnough)
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
            "details": [error_info_json(self.reason)],
        })
    }
}

/// A `google.rpc.ErrorInfo` in protobuf JSON, as an element of an HTTP error's `details`.
pub fn error_info_json(reason: Reason) -> serde_json::Value {
    serde_json::json!({
        "@type": ERROR_INFO_TYPE_URL,
        "reason": reason.as_str_name(),
        "domain": DOMAIN,
        "metadata": {},
    })
}

/// Permify's name for a rejected tuple or attribute.
pub fn write_reason(e: &WriteError) -> Reason {
    match e {
        WriteError::Model { .. } => Reason::Validation,
        WriteError::UnknownEntityType { .. } => Reason::EntityDefinitionNotFound,
        WriteError::UnknownRelation { .. } => Reason::RelationDefinitionNotFound,
        WriteError::SubjectNotAllowed { .. } => Reason::SubjectTypeNotFound,
        WriteError::UnknownAttribute { .. } => Reason::AttributeDefinitionNotFound,
        WriteError::AttributeType { .. } => Reason::AttributeTypeMismatch,
        WriteError::Capacity(_) => Reason::Unspecified,
        WriteError::Replica(_) => Reason::Internal,
    }
}

/// Permify's name for a schema that does not parse or compile.
fn schema_reason(kind: SchemaErrorKind) -> Reason {
    match kind {
        SchemaErrorKind::Syntax => Reason::SchemaParse,
        SchemaErrorKind::UndefinedMember => Reason::UndefinedRelationReference,
        SchemaErrorKind::UndefinedRule => Reason::InvalidRuleReference,
        SchemaErrorKind::UndefinedEntity
        | SchemaErrorKind::DuplicateName
        | SchemaErrorKind::RuleArgumentCount
        | SchemaErrorKind::RuleArgumentType
        | SchemaErrorKind::SelfReference
        | SchemaErrorKind::Unsupported
        | SchemaErrorKind::InvalidRule
        | SchemaErrorKind::TooDeep
        | SchemaErrorKind::TooLarge => Reason::SchemaCompile,
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> Self {
        ApiError::from_eval(e)
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let details = e.status_details();
        tonic::Status::with_details(e.grpc_code(), e.message, details.into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn both_transports_carry_the_reason_as_an_error_info() {
        let e = ApiError::tenant_not_found("t9");
        assert_eq!(e.reason_name(), "ERROR_CODE_TENANT_NOT_FOUND");

        let status = tonic::Status::from(e.clone());
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "tenant `t9` not found");
        let decoded = RpcStatus::decode(status.details()).unwrap();
        assert_eq!(decoded.code, tonic::Code::NotFound as i32);
        assert_eq!(decoded.message, "tenant `t9` not found");
        let info = ErrorInfo::from_status_details(status.details()).unwrap();
        assert_eq!(info.reason, "ERROR_CODE_TENANT_NOT_FOUND");
        assert_eq!(info.domain, DOMAIN);

        assert_eq!(
            e.json_body(),
            serde_json::json!({
                "code": 5,
                "message": "tenant `t9` not found",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ERROR_CODE_TENANT_NOT_FOUND",
                    "domain": "lookout",
                    "metadata": {},
                }],
            })
        );
    }

    #[test]
    fn every_code_has_a_permify_reason_by_default() {
        assert_eq!(
            ApiError::invalid("x").reason_name(),
            "ERROR_CODE_VALIDATION"
        );
        assert_eq!(
            ApiError::new(ErrorCode::PayloadTooLarge, "x").reason_name(),
            "ERROR_CODE_MAX_DATA_PER_WRITE_EXCEEDED"
        );
        assert_eq!(
            ApiError::from_eval(EvalError::DepthExhausted(3)).reason_name(),
            "ERROR_CODE_DEPTH_NOT_ENOUGH"
        );
        assert_eq!(
            ApiError::new(ErrorCode::DeadlineExceeded, "x").reason_name(),
            "ERROR_CODE_CANCELLED"
        );
    }
}
