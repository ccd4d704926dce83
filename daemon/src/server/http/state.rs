//! What every handler needs.

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tierd_codecs::BatchLimits;
use tierd_store::hot::HotTier;
use tierd_store::layout::Layout;
use tierd_store::{Catalog, Clock};

use crate::server::reload::{LivePasses, Reloader};
use crate::server::schedule::Scheduler;

pub struct AppState {
    pub layout: Layout,
    pub catalog: Arc<Catalog>,
    pub hot: Arc<HotTier>,
    pub clock: Arc<dyn Clock>,
    pub limits: BatchLimits,
    /// The byte budget of requests being decoded, parsed and encoded (`ingest.max_inflight_bytes`), and the
    /// per-request day limit.
    pub ingest: super::ingest_gate::IngestGate,
    /// What `/track` takes and keeps (`[ingest]`).
    pub track: TrackSettings,
    /// The credentials of `/import` (`[[projects]]`).
    pub credentials: Arc<super::auth::Credentials>,
    /// The bearer tokens of the query and admin API.
    pub access: Arc<super::access::AccessTokens>,
    pub lease_ttl_ms: i64,
    pub metrics: Option<PrometheusHandle>,
    /// The passes with the settings in force (a reload swaps them).
    pub passes: Arc<LivePasses>,
    /// Scheduled runs and the status board (`GET /v1/status`).
    pub scheduler: Arc<Scheduler>,
    /// `POST /v1/admin/config/reload`.
    pub reloader: Arc<Reloader>,
    /// The cold tier's object store (background requests draw from `budget`; use `cold.foreground()` for requests
    /// a query waits on).
    pub cold: Arc<tierd_store::ColdStore>,
    /// The one IO budget of background work.
    pub budget: Arc<tierd_store::IoBudget>,
    /// How queries and segment reads reach segments of either tier (cold ones through the foreground store and the
    /// cache on the hot disk).
    pub reads: tierd_store::SegmentSource,
    /// Counts every read of a segment (queries, segment reads, lookups) for read heat.
    pub heat: Arc<tierd_store::HeatTracker>,
    /// Durable deletion requests and the tombstones readers apply.
    pub deletions: Arc<tierd_store::DeletionLog>,
    /// How many queries run, and the memory they hold together (`[query]`).
    pub queries: Arc<super::read::QueryGate>,
    /// Catalog lookups' leases, coalesced and capped (`catalog.max_live_leases`).
    pub leases: Arc<tierd_store::catalog::LeaseGrants>,
}

/// What Mixpanel's clients need beyond `/import`'s limits: `/track`'s settings (`[ingest]`) and the projects'
/// tokens (`[[projects]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSettings {
    /// `ingest.max_events_per_track_request`.
    pub max_events: usize,
    /// `ingest.keep_client_ip`.
    pub keep_client_ip: bool,
    /// Token -> project (`[[projects]]`); empty: no routing by token.
    pub tokens: Arc<BTreeMap<String, String>>,
}

impl TrackSettings {
    pub fn new(config: &crate::server::config::Config) -> Self {
        Self {
            max_events: config.ingest.max_events_per_track_request,
            keep_client_ip: config.ingest.keep_client_ip,
            tokens: Arc::new(crate::server::config::project_tokens(&config.projects)),
        }
    }
}
