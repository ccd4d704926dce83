//! User deletions: `POST /v1/admin/deletions` accepts a request once it is durable (and from then on readers hide
//! its events), `GET /v1/admin/deletions` lists the requests, `GET /v1/admin/deletions/{id}` shows one.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;

use super::error::{parse_body, ApiError};
use super::json::SortedJson;
use super::state::AppState;
use crate::api::{DeletionAccepted, DeletionBody, DeletionId, DeletionList, DeletionRequest, DeletionSummary};
use crate::server::error::ServerError;

/// Counts a refused request by reason and turns it into a 400.
fn refused(reason: &'static str, message: String) -> ApiError {
    metrics::counter!("tierd_deletions_refused_total", "reason" => reason).increment(1);
    tracing::info!(reason, error = %message, "deletion request refused");
    ApiError::bad_request(message)
}

/// `POST /v1/admin/deletions` with `{"project":P,"distinct_id":ID}` or `{"project":P,"distinct_ids":[...]}`:
/// `{"id","state":"pending","max_seq"}` once the request is written and flushed to the catalog's database. 400 for
/// a bad body, no id, too many ids (`deletions.max_ids_per_request`), too many bytes of ids
/// (`deletions.max_request_bytes`) or too many requests not done yet (`deletions.max_active_requests`).
pub async fn create(State(state): State<Arc<AppState>>, body: Bytes) -> Result<SortedJson<DeletionAccepted>, ApiError> {
    let limits = state.passes.current().config().deletions.limits();
    // Cheap bound before parsing: the ids' bytes plus JSON punctuation per id, and room for the rest.
    let max_body =
        limits.max_request_bytes.saturating_add(limits.max_ids_per_request.saturating_mul(8)).saturating_add(4096);
    if body.len() > max_body {
        return Err(refused(
            "too_large",
            format!(
                "request body of {} bytes; at most {max_body} with deletions.max_request_bytes = {}: split the request",
                body.len(),
                limits.max_request_bytes
            ),
        ));
    }
    let req: DeletionBody = parse_body(&body, "bad deletion request").map_err(|e| refused("bad_request", e.message))?;
    let ids: BTreeSet<String> = match (req.distinct_id, req.distinct_ids) {
        (Some(_), Some(_)) => {
            return Err(refused("bad_request", "give distinct_id or distinct_ids, not both".into()));
        }
        (Some(one), None) => [one].into(),
        (None, Some(many)) => many.into_iter().collect(),
        (None, None) => BTreeSet::new(),
    };
    let log = state.deletions.clone();
    let now_ms = state.clock.now_ms();
    let project = req.project;
    let accepted = tokio::task::spawn_blocking(move || log.request(&project, ids, now_ms, &limits))
        .await
        .map_err(|e| ServerError::joined("recording the deletion request", e))?;
    match accepted.map_err(ServerError::from)? {
        Ok(r) => Ok(SortedJson(DeletionAccepted { id: r.id, state: r.state, max_seq: r.max_seq })),
        Err(e) => Err(refused(e.reason(), e.to_string())),
    }
}

/// `GET /v1/admin/deletions`: every request, oldest first, without its ids.
pub async fn list(State(state): State<Arc<AppState>>) -> SortedJson<DeletionList> {
    SortedJson(DeletionList { deletions: state.deletions.list().iter().map(DeletionSummary::from).collect() })
}

/// `GET /v1/admin/deletions/{id}`: one request, with its ids, state and progress; 404 when there is none.
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<SortedJson<DeletionRequest>, ApiError> {
    let id: DeletionId = id.parse().map_err(ApiError::bad_request)?;
    state
        .deletions
        .get(id)
        .map(SortedJson)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no deletion request {id}")))
}
