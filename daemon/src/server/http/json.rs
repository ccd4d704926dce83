//! JSON answers sent with their object keys in the order clients have always received them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

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
