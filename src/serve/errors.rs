//! The one error shape every route answers with, TEI's:
//! `{"error": "...", "error_type": "..."}`, with the status its kind has.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::options::RETRY_AFTER_SECONDS;
use crate::run::RunError;

/// TEI's `error_type`s, and the two it has no name for (auth, routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A request that cannot be read as asked: 422 (413 for too long).
    Validation,
    /// No inputs: 422.
    Empty,
    /// The tokenizer refused an input: 422.
    Tokenizer,
    /// Past the concurrency limit or the queue: 429 with `Retry-After`.
    Overloaded,
    /// The model failed: 500.
    Backend,
    /// Missing or wrong API key: 401.
    Unauthorized,
    /// No such route (404) or method (405).
    NotFound,
    /// The model has not answered its warm-up input yet: 503.
    Unhealthy,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Validation => "Validation",
            ErrorKind::Empty => "Empty",
            ErrorKind::Tokenizer => "Tokenizer",
            ErrorKind::Overloaded => "Overloaded",
            ErrorKind::Backend => "Backend",
            ErrorKind::Unauthorized => "Unauthorized",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Unhealthy => "Unhealthy",
        }
    }
}

/// An answer that is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// A request field that is wrong: 422 naming it.
    pub fn field(field: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Validation,
            format!("`{field}`: {message}"),
        )
    }

    pub fn empty(field: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Empty,
            format!("`{field}` cannot be empty"),
        )
    }

    pub fn overloaded(why: &str) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, ErrorKind::Overloaded, why)
    }

    /// What a failed run means for the request: an input the pipeline
    /// cannot answer is the client's (422), anything else the model's (500).
    pub fn from_run(e: &RunError) -> ApiError {
        match e {
            RunError::Input(_) | RunError::AtInput { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::Validation,
                e.to_string(),
            ),
            RunError::Tokenize(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::Tokenizer,
                e.to_string(),
            ),
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Backend,
                e.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message, "error_type": self.kind.name()});
        let mut response = super::json_response(self.status, &body);
        let headers = response.headers_mut();
        match self.kind {
            ErrorKind::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            ErrorKind::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
