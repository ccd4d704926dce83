//! The HTTP API.
//!
//! Routes are grouped by who calls them (ingest writers, query nodes, operators), and each group's credentials
//! attach as one layer: `/import` and `/track` check theirs in the ingest pipeline ([`auth`], project tokens), the
//! query and admin groups need a bearer token of their role ([`access`]), and every route passes the browser checks
//! ([`guard`]). Bodies are the types of [`crate::api`]. Every error is JSON
//! `{"code","status","error"}` (plus `failed_records` for rejected import batches), with its status chosen by the
//! error's variant in [`error`].

pub mod access;
mod admin;
pub mod auth;
mod deletions;
pub mod error;
pub mod guard;
mod import;
mod ingest;
mod ingest_gate;
mod json;
mod legacy;
pub mod listen;
mod read;
mod state;
mod test_clock;
#[cfg(test)]
mod tests;
pub mod tls;
mod track;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;
pub use ingest::gunzip;
pub use ingest_gate::IngestGate;
pub use read::parse_query;
pub use read::QueryGate;
pub use state::{AppState, TrackSettings};
use tierd_store::clock::OffsetClock;

use crate::server::config::Role;

/// Every route, on `state`; `POST /v1/admin/test/clock` only with a test clock (see [`test_clock`]).
pub fn router(state: Arc<AppState>, test_clock: Option<OffsetClock>) -> Router {
    // Mixpanel's ingestion API as its SDKs call it: `GET` carries the events in the query's `data`.
    let ingest = Router::new()
        .route("/import", post(import::import).get(import::import))
        .route("/track", post(track::track).get(track::track))
        .route("/engage", post(track::profiles).get(track::profiles))
        .route("/groups", post(track::profiles).get(track::profiles));
    // Reads: a query or admin token (`access`).
    let query = Router::new()
        .route("/v1/catalog/segments", get(read::catalog_segments))
        .route("/v1/catalog/projects", get(read::catalog_projects))
        .route("/v1/segments/{id}", get(read::segment))
        .route("/v1/query", post(read::query))
        .route("/v1/status", get(admin::status))
        .route("/v1/plan", get(admin::plan));
    // Actions: an admin token.
    let admin = Router::new()
        .route("/v1/admin/config/reload", post(admin::reload_config))
        .route("/v1/admin/passes/{name}/run", post(admin::run_pass))
        .route("/v1/admin/move", post(admin::move_segments))
        .route("/v1/admin/trash", get(admin::trash_list))
        .route("/v1/admin/trash/restore", post(admin::trash_restore))
        .route("/v1/admin/deletions", post(deletions::create).get(deletions::list))
        .route("/v1/admin/deletions/{id}", get(deletions::show));
    let admin = admin.merge(test_clock.map(test_clock::routes).unwrap_or_default());
    // Open, unless `http.metrics_need_token`.
    let probes = Router::new().route("/metrics", get(read::metrics)).route("/healthz", get(read::healthz));
    let needs = |role: Role| {
        let state = state.clone();
        axum::middleware::from_fn(move |req, next| access::require(state.clone(), role, req, next))
    };
    let config = state.passes.current().config().clone();
    let body_timeout = config.http.body_read_timeout();
    let guard = Arc::new(guard::Guard::new(&config.http, &config.listen));
    Router::new()
        .merge(ingest)
        .merge(query.layer(needs(Role::Query)).layer(axum::middleware::from_fn(guard::json_only)))
        .merge(admin.layer(needs(Role::Admin)).layer(axum::middleware::from_fn(guard::json_only)))
        .merge(probes.layer(needs(Role::Query)))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn(move |req, next| listen::body_deadline(body_timeout, req, next)))
        .layer(axum::middleware::from_fn(move |req, next| guard::check(guard.clone(), req, next)))
        .with_state(state)
}
