//! The error model every API answers with (seed 001 §9.1, plus `RATE_LIMITED`).
//!
//! Body: `{"code","message","details","request_id"}`. `details` is always an object so clients can
//! read `details.field` without checking for null.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The error codes of seed 001 §9.1 plus `RATE_LIMITED`, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    RateLimited,
    InternalError,
    ServiceUnavailable,
    Timeout,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::Timeout => "TIMEOUT",
        }
    }
}

/// An error as a client sees it: the body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// What the error is about: `field` and `reason` for invalid input, `resource` and `id` for
    /// what was not found, and so on; always an object.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
    /// Filled in from the request being served when the error becomes a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), details: Map::new(), request_id: None }
    }

    /// Adds one entry to `details`.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    pub fn invalid_field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let field = field.into();
        let reason = reason.into();
        ApiError::new(ErrorCode::InvalidRequest, format!("invalid field `{field}`: {reason}"))
            .with_detail("field", field)
            .with_detail("reason", reason)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("{what} {id} not found"))
            .with_detail("resource", what)
            .with_detail("id", id)
    }

    /// An internal failure: the cause goes to the log, never to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(ErrorCode::InternalError, "an internal error occurred")
    }

    /// A dependency (table, topic, another service) could not be reached.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "dependency unavailable");
        ApiError::new(ErrorCode::ServiceUnavailable, "a dependency is unavailable, retry later")
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        if self.request_id.is_none() {
            self.request_id = crate::http::current_request_id();
        }
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code.as_str(), message = %self.message, "request failed");
        }
        let mut response = (status, axum::Json(&self)).into_response();
        if let Some(id) = self.request_id.as_deref().and_then(|id| id.parse().ok()) {
            response.headers_mut().insert(crate::http::REQUEST_ID_HEADER, id);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_its_status_and_name() {
        let cases = [
            (ErrorCode::InvalidRequest, 400, "INVALID_REQUEST"),
            (ErrorCode::Unauthorized, 401, "UNAUTHORIZED"),
            (ErrorCode::Forbidden, 403, "FORBIDDEN"),
            (ErrorCode::NotFound, 404, "NOT_FOUND"),
            (ErrorCode::Conflict, 409, "CONFLICT"),
            (ErrorCode::RateLimited, 429, "RATE_LIMITED"),
            (ErrorCode::InternalError, 500, "INTERNAL_ERROR"),
            (ErrorCode::ServiceUnavailable, 503, "SERVICE_UNAVAILABLE"),
            (ErrorCode::Timeout, 504, "TIMEOUT"),
        ];
        for (code, status, name) in cases {
            assert_eq!(code.status().as_u16(), status, "{name}");
            assert_eq!(code.as_str(), name);
            assert_eq!(serde_json::to_value(code).unwrap(), Value::String(name.into()));
        }
    }

    #[test]
    fn body_has_code_message_details_and_request_id() {
        let err = ApiError::invalid_field("price.amount", "must not be negative");
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let response = rt.block_on(crate::http::REQUEST_ID.scope("req-1".into(), async { err.into_response() }));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[crate::http::REQUEST_ID_HEADER], "req-1");
        let body = rt.block_on(async {
            use http_body_util::BodyExt;
            response.into_body().collect().await.unwrap().to_bytes()
        });
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], "INVALID_REQUEST");
        assert_eq!(json["details"]["field"], "price.amount");
        assert_eq!(json["request_id"], "req-1");
        assert!(json["message"].as_str().unwrap().contains("price.amount"));
    }

    #[test]
    fn internal_errors_do_not_leak_the_cause() {
        let err = ApiError::internal("table secret-table-name does not exist");
        assert_eq!(err.code, ErrorCode::InternalError);
        assert!(!err.message.contains("secret"));
    }
}
