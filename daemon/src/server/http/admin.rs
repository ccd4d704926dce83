//! Operator endpoints: run a pass now, preview the tiering plan, move segments by hand, list the trash and restore
//! from it; the scheduler's status and configuration reloads.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;

use super::error::{parse_body, ApiError};
use super::json::SortedJson;
use super::state::AppState;
use crate::api::{
    MoveAnswer, MoveRequest, PassName, PassReport, PassRequest, PlanAnswer, ReloadOutcome, ReloadRecord, RestoreAnswer,
    RestoreRequest, RunTrigger, StatusAnswer, TrashList,
};
use crate::server::error::ServerError;
use crate::server::schedule::JobReport;

/// `POST /v1/admin/passes/{name}/run` with an optional body `{"dry_run":bool,"project":"P"}`; 404 for an unknown
/// pass.
pub async fn run_pass(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<PassReport>, ApiError> {
    let req: PassRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PassRequest::default()
    } else {
        parse_body(&body, "bad pass request")?
    };
    if let Some(p) = &req.project {
        tierd_store::layout::validate_project(p).map_err(ApiError::bad_request)?;
    }
    let pass: PassName = name.parse().map_err(ServerError::from)?;
    let dry_run = req.dry_run;
    let (started_ms, watch) = (state.clock.now_ms(), tierd_store::clock::Stopwatch::start());
    let result = state.passes.in_background("tierd-pass", move |p| p.run(pass, &req)).await;
    // A real manual run is the pass's last run in `GET /v1/status` too (a dry run changes nothing: not a run).
    if !dry_run {
        let job = match &result {
            Ok(r) => Ok(JobReport { actions: r.actions.len() as u64, errors: r.errors.clone() }),
            Err(e) => Err(e.to_string()),
        };
        state.scheduler.record(pass.label(), RunTrigger::Manual, started_ms, watch, job);
    }
    Ok(Json(result?))
}

/// `GET /v1/plan`: what the tiering policy would do now ([`PlanAnswer`]: at most `policy.max_plan_actions` actions with their rule, reason and cost
/// effect; the monthly bill by tier and codec before and after; the one-time transition cost; the break-even time).
/// It moves nothing.
pub async fn plan(State(state): State<Arc<AppState>>) -> Result<Json<PlanAnswer>, ApiError> {
    Ok(Json(state.passes.in_background("tierd-plan", |p| p.tiering_plan()).await?))
}

/// `POST /v1/admin/move` with `{"segments":["ID",...],"to":"cold|hot|both"}`: moves each segment through the same
/// crash-safe steps and IO budget as the passes; answers each segment's outcome ([`MoveAnswer`]), 200 even if
/// some failed.
pub async fn move_segments(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<SortedJson<MoveAnswer>, ApiError> {
    let req: MoveRequest = parse_body(&body, "bad move request")?;
    let to = tierd_store::moves::parse_target(&req.to).map_err(ApiError::bad_request)?;
    if req.segments.is_empty() {
        return Err(ApiError::bad_request("no segments to move: give \"segments\":[\"ID\",...]"));
    }
    let ids = req.segments;
    Ok(SortedJson(state.passes.in_background("tierd-move", move |p| p.move_segments(&ids, to)).await?))
}

/// `GET /v1/admin/trash`: every segment record the trash holds ([`TrashList`]), oldest batch first.
pub async fn trash_list(State(state): State<Arc<AppState>>) -> Result<SortedJson<TrashList>, ApiError> {
    let passes = state.passes.current();
    let listed = tokio::task::spawn_blocking(move || passes.trash_list()).await;
    let segments = listed.map_err(|e| ServerError::joined("listing the trash", e))??;
    Ok(SortedJson(TrashList { segments }))
}

/// `POST /v1/admin/trash/restore` with `{"batch_ms":MS,"segments":["ID",...]}`: puts segments the catalog no longer
/// has back into service from the trash (verified, crash-safe: see `store::trash`); answers each segment's outcome
/// ([`RestoreAnswer`]), 200 even if some failed; 404 for an unknown batch.
pub async fn trash_restore(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<SortedJson<RestoreAnswer>, ApiError> {
    let req: RestoreRequest = parse_body(&body, "bad restore request")?;
    let ids = req.segments.iter().map(|s| ServerError::segment_id(s)).collect::<Result<Vec<_>, _>>()?;
    let batch_ms = req.batch_ms;
    let results = state.passes.in_background("tierd-restore", move |p| p.trash_restore(batch_ms, &ids)).await??;
    Ok(SortedJson(RestoreAnswer { batch_ms, results }))
}

/// `GET /v1/status`: each scheduled job's schedule, next and last run and counts, and the reloads.
pub async fn status(State(state): State<Arc<AppState>>) -> Json<StatusAnswer> {
    let mut answer = state.scheduler.board().answer(state.clock.now_ms());
    answer.damaged_segments = state.reads.repairs().map(|q| q.damaged()).unwrap_or_default();
    Json(answer)
}

/// `POST /v1/admin/config/reload`: what SIGHUP does. 200 with the record when applied; 400 with the reason when
/// refused (the old configuration stays).
pub async fn reload_config(State(state): State<Arc<AppState>>) -> Result<Json<ReloadRecord>, ApiError> {
    let record = state.reloader.reload().await;
    match record.outcome {
        ReloadOutcome::Applied => Ok(Json(record)),
        ReloadOutcome::Refused => Err(ApiError::bad_request(format!("config reload refused: {}", record.message))),
    }
}
