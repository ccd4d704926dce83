//! Operator endpoints: run a pass now.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;

use super::{ApiError, AppState};
use crate::passes::{PassReport, PassRequest};

/// `POST /v1/admin/passes/{name}/run` with an optional body `{"dry_run":bool,"project":"P"}`.
pub async fn run_pass(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<PassReport>, ApiError> {
    let req: PassRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PassRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("bad pass request: {e}")))?
    };
    if let Some(p) = &req.project {
        tierd_store::layout::validate_project(p).map_err(ApiError::bad_request)?;
    }
    let passes = state.passes.clone();
    let report = tokio::task::spawn_blocking(move || passes.run(&name, &req)).await.expect("join");
    report.map(Json).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e))
}
