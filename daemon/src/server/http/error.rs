//! API errors: one JSON shape for every failure ([`crate::api::ErrorBody`]), the one place that picks an HTTP status
//! for each error variant of the store and the server, and request bodies parsed with a 400 that says what was
//! wrong.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tierd_codecs::RecordError;
use tierd_store::StoreError;

use super::json::SortedJson;
use crate::api::ErrorBody;
use crate::server::error::ServerError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub failed_records: Option<Vec<RecordError>>,
    /// Records imported although others failed (`strict=0`): the request was a partial success.
    pub num_records_imported: Option<u64>,
    pub retry_after_secs: Option<u64>,
    /// The `reason` label of rejection metrics when the status alone does not say it (which limit refused).
    pub reason_label: Option<&'static str>,
    /// The `WWW-Authenticate` challenge of a 401.
    pub challenge: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            failed_records: None,
            num_records_imported: None,
            retry_after_secs: None,
            reason_label: None,
            challenge: None,
        }
    }

    /// Names the limit that refused the request in the `reason` of rejection metrics.
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason_label = Some(reason);
        self
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
        if let Some(reason) = self.reason_label {
            return reason;
        }
        match self.status {
            StatusCode::BAD_REQUEST if self.failed_records.is_some() => "invalid_records",
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        }
    }

    /// A 500: logged here, since the client only sees the message.
    fn internal(message: String) -> Self {
        tracing::error!(error = %message, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::BatchTooWide { .. } = e {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).with_reason("too_many_days");
        }
        let (status, retry) = match &e {
            StoreError::SegmentNotFound { .. } | StoreError::TrashBatchNotFound { .. } => (StatusCode::NOT_FOUND, None),
            StoreError::InvalidQuery(_) => (StatusCode::BAD_REQUEST, None),
            StoreError::QueryTooLarge(_) | StoreError::RewriteTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, None),
            StoreError::QueryBusy(_) => (StatusCode::SERVICE_UNAVAILABLE, Some(1)),
            StoreError::QueryCancelled(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
            StoreError::Backpressure(_) => (StatusCode::SERVICE_UNAVAILABLE, Some(1)),
            StoreError::HotTierFull(_) => (StatusCode::SERVICE_UNAVAILABLE, Some(30)),
            StoreError::ShuttingDown | StoreError::Stopped(_) => (StatusCode::SERVICE_UNAVAILABLE, Some(5)),
            // The daemon is stopping after a catalog failure; the request's outcome may be unknown (an ambiguous
            // commit), and re-sending it is safe (events are deduplicated by insert id): retry after the restart.
            StoreError::WriterStopped { .. } => (StatusCode::SERVICE_UNAVAILABLE, Some(5)),
            StoreError::DiskReserve(_) => (StatusCode::SERVICE_UNAVAILABLE, Some(30)),
            _ => return ApiError::internal(e.to_string()),
        };
        let mut err = ApiError::new(status, e.to_string());
        err.retry_after_secs = retry;
        err
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::UnknownPass(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            ServerError::BadSegmentId { .. } => ApiError::bad_request(e.to_string()),
            ServerError::Store(e) => e.into(),
            ServerError::TaskPanicked { .. } | ServerError::TaskCancelled { .. } => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.status.as_u16(),
            error: self.message,
            failed_records: self.failed_records,
            num_records_imported: self.num_records_imported,
            status: self.status.canonical_reason().unwrap_or("").to_string(),
        };
        let mut resp = (self.status, SortedJson(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.challenge {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        resp
    }
}

/// Parses a JSON request body; `what` names it in the 400 (`bad move request: ...`).
pub fn parse_body<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {}", uri.path()))
}
