//! `ApiError`: the REST API's error shape, `{"error": {"code", "message"}}` with
//! the status its [`ErrorKind`] names. It only translates: every engine and
//! content error arrives already classified, with its public message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use marain::engine::content::ContentError;
use marain::engine::EngineError;
use marain::ErrorKind;

/// The body of every error answer, as the OpenAPI document describes it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code (`not_found`, `invalid`, `conflict`, …; `docs/api.md`).
    pub code: String,
    /// For people; never raw database text.
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody { error: ErrorDetail { code: self.kind.code().to_string(), message: self.message } };
        (status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        e.log_internal();
        ApiError::new(e.kind(), e.public_message())
    }
}

impl From<ContentError> for ApiError {
    fn from(e: ContentError) -> Self {
        e.log_internal();
        ApiError::new(e.kind(), e.public_message())
    }
}
