//! JSON in and out of handlers: request bodies parsed into `api` types with a 400 that says what was wrong, and
//! answers sent with their object keys in the order clients have always received them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ApiError;

/// Parses a JSON request body; `what` names it in the 400 (`bad move request: ...`).
pub fn parse_body<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

/// A JSON answer whose objects (nested ones too) have their keys in sorted order.
///
/// Most answers used to be built as `serde_json::Value` maps, which keep their keys sorted; their typed
/// replacements go through a `Value` the same way, so that the bytes a client (and `tierd ... --json`) receives do
/// not change. Answers that were always sent as structs (the pass report) keep using `axum::Json`.
pub struct SortedJson<T>(pub T);

impl<T: Serialize> IntoResponse for SortedJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_value(&self.0) {
            Ok(value) => axum::Json(value).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the answer: {e}")).into_response(),
        }
    }
}
