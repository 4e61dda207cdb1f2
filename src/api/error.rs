//! The API's error answer: a status and a JSON body naming what was wrong, never a
//! stack trace or a store error's internals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// `{"error": "…", "field": "…"}` with a status.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
    /// The request field that was wrong, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError { status, error: error.into(), field: None }
    }

    pub fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    /// A 400 naming the field.
    pub fn field(field: impl Into<String>, error: impl Into<String>) -> ApiError {
        ApiError { field: Some(field.into()), ..ApiError::bad_request(error) }
    }

    pub fn not_found(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }

    /// A failure on Keel's side: logged in full, answered in general words.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "an API request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error: the daemon's log has the details")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}
