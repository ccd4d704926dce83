//! API errors: one JSON shape for every failure.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tierd_codecs::RecordError;
use tierd_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub failed_records: Option<Vec<RecordError>>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), failed_records: None, retry_after_secs: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A malformed query string (e.g. `from=abc`), as a JSON 400 instead of axum's plain-text answer.
    pub fn from_rejection(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::bad_request(format!("bad query string: {}", r.body_text()))
    }

    /// A short label for the `reason` of rejection metrics.
    pub fn reason(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST if self.failed_records.is_some() => "invalid_records",
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (status, retry) = match &e {
            StoreError::SegmentNotFound { .. } => (StatusCode::NOT_FOUND, None),
            StoreError::InvalidQuery(_) => (StatusCode::BAD_REQUEST, None),
            StoreError::Backpressure(_) => (StatusCode::SERVICE_UNAVAILABLE, Some(1)),
            StoreError::HotTierFull(_) => (StatusCode::SERVICE_UNAVAILABLE, Some(30)),
            StoreError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, Some(5)),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %e, "request failed");
        }
        let mut err = ApiError::new(status, e.to_string());
        err.retry_after_secs = retry;
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "code": self.status.as_u16(),
            "status": self.status.canonical_reason().unwrap_or(""),
            "error": self.message,
        });
        if let Some(records) = &self.failed_records {
            body["failed_records"] = json!(records);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {}", uri.path()))
}
