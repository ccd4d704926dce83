//! The HTTP API.
//!
//! Routes are grouped by who calls them (ingest writers, query nodes, operators), so that the access tokens of a
//! later release attach as one layer per group. Every error is JSON `{"code","status","error"}` (plus
//! `failed_records` for rejected import batches).

mod admin;
mod error;
mod import;
mod read;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tierd_codecs::BatchLimits;
use tierd_store::hot::HotTier;
use tierd_store::layout::Layout;
use tierd_store::{Catalog, Clock};

pub use error::ApiError;

/// What every handler needs.
pub struct AppState {
    pub layout: Layout,
    pub catalog: Arc<Catalog>,
    pub hot: Arc<HotTier>,
    pub clock: Arc<dyn Clock>,
    pub limits: BatchLimits,
    pub lease_ttl_ms: i64,
    pub metrics: Option<PrometheusHandle>,
    pub passes: Arc<crate::passes::Passes>,
    /// The cold tier's object store (background requests draw from `budget`; use `cold.foreground()` for requests
    /// a query waits on).
    pub cold: Arc<tierd_store::ColdStore>,
    /// The one IO budget of background work.
    pub budget: Arc<tierd_store::IoBudget>,
    /// How queries and segment reads reach segments of either tier (cold ones through the foreground store and the
    /// cache on the hot disk).
    pub reads: tierd_store::SegmentSource,
}

pub fn router(state: Arc<AppState>) -> Router {
    let ingest = Router::new().route("/import", post(import::import));
    let query = Router::new()
        .route("/v1/catalog/segments", get(read::catalog_segments))
        .route("/v1/catalog/projects", get(read::catalog_projects))
        .route("/v1/segments/{id}", get(read::segment))
        .route("/v1/query", post(read::query));
    let ops = Router::new()
        .route("/metrics", get(read::metrics))
        .route("/healthz", get(read::healthz))
        .route("/v1/admin/passes/{name}/run", post(admin::run_pass))
        .route("/v1/admin/move", post(admin::move_segments))
        .route("/v1/admin/trash", get(admin::trash_list))
        .route("/v1/admin/trash/restore", post(admin::trash_restore));
    Router::new().merge(ingest).merge(query).merge(ops).fallback(error::not_found).with_state(state)
}
