//! Errors: [`ServerError`] for starting the server, [`ApiError`] for answers to requests.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::storage::StorageError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid (tokens file, database URL, ...).
    #[error("configuration: {0}")]
    Config(String),
    /// The storage could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A declared source cannot be used (the file, or the table it names).
    #[error("sources: {0}")]
    Sources(#[from] crate::sources::SourcesError),
    /// The listening socket could not be bound.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// An error answer: an HTTP status and a JSON body `{"code": "...", "message": "..."}` whose
/// `code` is stable (see docs/server.md for the list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `bad_checkpoint`.
    pub code: &'static str,
    /// What was expected and what came.
    pub message: String,
}

impl ApiError {
    /// `400 range_too_large`: a records range over `max_records` or over the bytes of a page.
    pub(crate) fn range_too_large(max_records: usize) -> Self {
        ApiError::bad(
            "range_too_large",
            format!(
                "the range holds more than {max_records} records or more than {} bytes of \
                 them; ask for a smaller one",
                tether_engine::limits::PAGE_BYTES
            ),
        )
    }

    /// An error with the given status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A `400` with the given code.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        tracing::error!(error = %e, "storage failure");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            format!("the server's storage failed: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "message": self.message });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
