//! Operator endpoints: run a pass now, move segments by hand.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;

use super::{ApiError, AppState};
use crate::passes::{MoveReport, PassReport, PassRequest};

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
    let report = passes.in_background("tierd-pass", move |p| p.run(&name, &req)).await;
    report.map(Json).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e))
}

/// Body of `POST /v1/admin/move`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub segments: Vec<String>,
    /// `cold`, `hot` or `both`.
    pub to: String,
}

/// `POST /v1/admin/move` with `{"segments":["ID",...],"to":"cold|hot|both"}`: moves each segment through the same
/// crash-safe steps and IO budget as the passes; answers each segment's outcome
/// (`{"to":..,"results":[{"segment","outcome","from","to","bytes_copied","verified_by","error"}]}`), 200 even if
/// some failed.
pub async fn move_segments(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: MoveRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("bad move request: {e}")))?;
    let to: tierd_store::moves::MoveTarget = req.to.parse().map_err(ApiError::bad_request)?;
    if req.segments.is_empty() {
        return Err(ApiError::bad_request("no segments to move: give \"segments\":[\"ID\",...]"));
    }
    let passes = state.passes.clone();
    let ids = req.segments;
    let results: Vec<MoveReport> = passes.in_background("tierd-move", move |p| p.move_segments(&ids, to)).await;
    Ok(Json(serde_json::json!({"to": to, "results": results})))
}
