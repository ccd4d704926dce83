//! `/track` as Mixpanel's SDKs call it, and the profile endpoints they also call.
//!
//! `POST /track` (a form with `data`, or a JSON body) and `GET /track?data=`: a single event or an array of at most
//! `ingest.max_events_per_track_request` (50), JSON or base64. An event without `time` gets the time the request
//! was received (the daemon's clock); one without `$insert_id` gets the derived one, as on `/import`. `ip=1`
//! records the client's address as `ip` where `ingest.keep_client_ip` is on. The rest is `/import`'s pipeline:
//! the same limits, strictness, dedup and durability ([`super::ingest`]); the answer is `1`/`0` or, with
//! `verbose=1`, `{"status":..,"error":..}` ([`super::legacy`]).
//!
//! `/engage` and `/groups` (profile updates) are answered `{"status":0,"error":"tierd stores events, not
//! profiles"}` with a 400: the SDK raises it to its caller, rather than a 404 that looks like a wrong address, or a
//! success that would silently drop the update.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::ingest::{ingest, Endpoint, IngestRequest};
use super::legacy;
use super::state::AppState;

pub async fn track(State(state): State<Arc<AppState>>, request: Request) -> Response {
    legacy::answer(ingest(&state, IngestRequest::new(Endpoint::Track, request)).await)
}

/// `/engage` and `/groups`: nothing is read, nothing is stored.
pub async fn profiles() -> Response {
    metrics::counter!("tierd_ingest_rejected_total", "reason" => "profiles").increment(1);
    let e = ApiError::new(StatusCode::BAD_REQUEST, "tierd stores events, not profiles");
    legacy::failure(e, true)
}
