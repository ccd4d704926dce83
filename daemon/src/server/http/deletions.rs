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
use tierd_store::deletions::DeletionTarget;

use crate::api::{
    DeletionAccepted, DeletionBody, DeletionId, DeletionList, DeletionRequest, DeletionSummary, EventSelection,
    WhereClause,
};
use crate::server::error::ServerError;

/// Counts a refused request by reason and turns it into a 400.
fn refused(reason: &'static str, message: String) -> ApiError {
    metrics::counter!("tierd_deletions_refused_total", "reason" => reason).increment(1);
    tracing::info!(reason, error = %message, "deletion request refused");
    ApiError::bad_request(message)
}

/// `POST /v1/admin/deletions` with `{"project":P,"distinct_id":ID}`, `{"project":P,"distinct_ids":[...]}` or
/// `{"project":P,"filter":{"event":NAME,"from":MS,"to":MS,"where":[...]}}`:
/// `{"id","state":"pending","max_seq"}` once the request is written and flushed to the catalog's database. 400 for
/// a bad body, no id, a bad filter, too many ids (`deletions.max_ids_per_request`) or conditions
/// (`deletions.max_conditions`), too many bytes of ids or filter
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
    let target: DeletionTarget = match (req.distinct_id, req.distinct_ids, req.filter) {
        (Some(one), None, None) => BTreeSet::from([one]).into(),
        (None, Some(many), None) => many.into_iter().collect::<BTreeSet<String>>().into(),
        (None, None, Some(f)) => EventSelection {
            event: f.event,
            from_ms: f.from,
            to_ms: f.to,
            conditions: f.conditions.into_iter().map(WhereClause::into_filter).collect(),
        }
        .into(),
        (None, None, None) => BTreeSet::new().into(),
        _ => {
            return Err(refused("bad_request", "give one of distinct_id, distinct_ids and filter, not several".into()));
        }
    };
    let log = state.deletions.clone();
    let now_ms = state.clock.now_ms();
    let project = req.project;
    let accepted = tokio::task::spawn_blocking(move || log.request(&project, target, now_ms, &limits))
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
