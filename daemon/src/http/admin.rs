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

/// `GET /v1/admin/trash`: every segment record the trash holds (`{"segments":[{"batch_ms","id","project","day",
/// "rows","bytes","state","copies":[{"location","trash_path","present"}],"in_catalog"}]}`), oldest batch first.
pub async fn trash_list(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let passes = state.passes.clone();
    let listed = tokio::task::spawn_blocking(move || passes.trash_list()).await.expect("join");
    listed
        .map(|segments| Json(serde_json::json!({"segments": segments})))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
}

/// Body of `POST /v1/admin/trash/restore`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The trash batch (the time of the gc run, as `GET /v1/admin/trash` lists it).
    pub batch_ms: i64,
    /// Segments of the batch to restore; all of them when absent or empty.
    #[serde(default)]
    pub segments: Vec<String>,
}

/// `POST /v1/admin/trash/restore` with `{"batch_ms":MS,"segments":["ID",...]}`: puts segments the catalog no longer
/// has back into service from the trash (verified, crash-safe: see `store::trash`); answers each segment's outcome
/// (`{"batch_ms":..,"results":[{"segment","outcome","location","error"}]}`), 200 even if some failed; 404 for an
/// unknown batch.
pub async fn trash_restore(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: RestoreRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("bad restore request: {e}")))?;
    for s in &req.segments {
        s.parse::<tierd_store::layout::SegmentId>()
            .map_err(|e| ApiError::bad_request(format!("bad segment id {s:?}: {e}")))?;
    }
    let passes = state.passes.clone();
    let batch_ms = req.batch_ms;
    let results = passes.in_background("tierd-restore", move |p| p.trash_restore(req.batch_ms, &req.segments)).await;
    results.map(|results| Json(serde_json::json!({"batch_ms": batch_ms, "results": results}))).map_err(|e| {
        let status =
            if e.contains("no trash batch") { StatusCode::NOT_FOUND } else { StatusCode::INTERNAL_SERVER_ERROR };
        ApiError::new(status, e)
    })
}
