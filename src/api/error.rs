//! The API's error answer: a status and a JSON body naming what was wrong, never a
//! stack trace or a store error's internals.
//!
//! [`ServiceError`]s become statuses in one place (`From<ServiceError>`): no such record
//! 404, a record in the wrong state 409, the caller's input 400, Keel's own failure 500
//! (logged in full, answered in general words).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::services::ServiceError;

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

    /// The same answer, naming `field` (for a service error only the route can place).
    pub fn in_field(self, field: impl Into<String>) -> ApiError {
        ApiError { field: Some(field.into()), ..self }
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

impl From<ServiceError> for ApiError {
    /// Every variant is placed here, without a catch-all: a new one is a decision to make.
    fn from(e: ServiceError) -> ApiError {
        use ServiceError as E;
        match e {
            E::NotFound { .. } | E::UnknownPlaybook { .. } => ApiError::not_found(e.to_string()),
            E::TaskClosed { .. } | E::NotDead { .. } | E::NotHeld { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            E::NotAfterToday { .. } => ApiError::field("until", e.to_string()),
            E::InvalidCursor(_) => ApiError::field("cursor", e.to_string()),
            E::Segment(_) => ApiError::field("segment", e.to_string()),
            E::InvalidArgument(_)
            | E::Token(_)
            | E::UnknownTemplate { .. }
            | E::AmbiguousTemplate { .. }
            | E::NotSentBy { .. }
            | E::NeedsContact { .. }
            | E::NotCustomerMail { .. }
            | E::NoSuchContact { .. } => ApiError::bad_request(e.to_string()),
            E::SetDoesNotLoad { which: "working", .. } => ApiError::field("files", e.to_string()),
            // The daemon's own recorded set: not the caller's to fix, but said in full.
            E::SetDoesNotLoad { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            E::Render(_) | E::Config(_) | E::Store(_) => ApiError::internal(e),
            E::Sync { source: crate::sync::SyncError::Store(_), .. } => ApiError::internal(e),
            // The file named (unreadable, no id column, not JSON): the caller's to fix,
            // said with its causes, as the CLI says it.
            E::Sync { .. } => ApiError::bad_request(chain(&e)),
            // Only the API's client makes these; a handler never sees one.
            E::Daemon { .. } | E::Unreachable(_) => ApiError::internal(e),
        }
    }
}

/// An error and its causes, `: `-joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}
