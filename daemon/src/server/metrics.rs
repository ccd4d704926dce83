//! The Prometheus exporter behind `GET /metrics`, and the gauges refreshed from the catalog.
//!
//! Every counter and histogram is recorded where the action happens (`store` records I/O, the HTTP layer records
//! requests); this module only installs the recorder, chooses histogram buckets, describes the metrics the daemon
//! emits (the store describes its own, each metric once) and publishes catalog totals.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tierd_store::catalog::{SegmentState, Tier};
use tierd_store::metrics::{bytes_counter, bytes_gauge, counter, gauge, seconds_histogram, MetricDoc};
use tierd_store::CatalogSnapshot;

/// Latency buckets in seconds, from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Pass run durations in seconds, from 10 ms to an hour (a full-matcher override wins over the `_seconds` suffix).
const PASS_BUCKETS: &[f64] = &[0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];
/// Read heat of a segment in reads per day, around the default thresholds to go cold (3) and to come back (6).
const HEAT_BUCKETS: &[f64] = &[0.01, 0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0, 50.0, 100.0, 1000.0, 10000.0];
/// Count buckets (batches or events per group).
const COUNT_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0];

/// Installs the global recorder. Call once per process.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("tierd_pass_seconds".into()), PASS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("tierd_segment_heat".into()), HEAT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_batches".into()), COUNT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_events".into()), COUNT_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

/// Every metric the daemon itself emits (the store describes its own: `tierd_store::metrics`).
pub const DAEMON_METRICS: &[MetricDoc] = &[
    counter("tierd_ingest_events_total", "Events acknowledged by /import, by project"),
    bytes_counter("tierd_ingest_bytes_total", "Request body bytes (uncompressed) acknowledged"),
    counter("tierd_ingest_batches_total", "Requests acknowledged by /import"),
    seconds_histogram("tierd_ingest_ack_seconds", "Time from request start to durable ack"),
    bytes_gauge(
        "tierd_ingest_inflight_bytes",
        "Bytes /import requests hold under ingest.max_inflight_bytes (bodies, decoded bodies, encoded batches)",
    ),
    gauge("tierd_segments", "Segments in the catalog, by tier and state"),
    bytes_gauge("tierd_segment_bytes", "Bytes of segments in the catalog, by tier and state"),
    counter("tierd_catalog_lookups_total", "Catalog segment lookups served"),
    counter("tierd_query_total", "Queries answered, by outcome"),
    seconds_histogram("tierd_query_seconds", "Query latency"),
    counter(
        "tierd_query_refused_total",
        "Queries refused or stopped at a [query] bound, by reason (conditions, groups, memory, total_memory, \
         concurrency, stopped: timeout or client gone)",
    ),
    counter("tierd_http_connections_refused_total", "Connections answered 503 and closed: http.max_connections open"),
    gauge("tierd_http_connections", "Open HTTP connections (bounded by http.max_connections)"),
    counter("tierd_http_accept_errors_total", "Failed accepts of new connections (e.g. out of file descriptors)"),
    counter("tierd_http_body_timeouts_total", "Request bodies not received within http.body_read_timeout_ms (408)"),
    counter(
        "tierd_segment_send_timeouts_total",
        "Segment reads abandoned because the client took no data for http.send_timeout_ms (pin released)",
    ),
    gauge("tierd_queries_running", "Queries running now (bounded by query.max_concurrent)"),
    bytes_gauge(
        "tierd_query_memory_bytes",
        "Memory reserved by running queries (bounded by query.max_total_memory_bytes)",
    ),
    counter("tierd_passes_total", "Passes run, by pass and dry_run"),
    counter(
        "tierd_pass_runs_cut_total",
        "Scheduled rewrite and move runs stopped at passes.max_run_secs with work left for the next run, by pass",
    ),
    counter("tierd_deletions_refused_total", "Deletion requests refused with a 400, by reason"),
    counter("tierd_deletion_runs_total", "Runs of the deletions pass, by dry_run"),
    counter(
        "tierd_deletion_segments_total",
        "Segments the deletions pass read, by action (retired, rewritten; unchanged: no row matched)",
    ),
    counter("tierd_deletion_rows_removed_total", "Stored rows (copies) of deleted users removed by the deletions pass"),
    counter(
        "tierd_deletion_bytes_removed_total",
        "Bytes retired by the deletions pass minus the bytes of its outputs (freed once gc deletes them)",
    ),
    counter("tierd_deletion_errors_total", "Deletion rewrites that failed (retried at the next run)"),
    counter("tierd_deletion_requests_total", "Deletion requests moved by the deletions pass, by the state reached"),
    gauge(
        "tierd_deletion_requests",
        "Deletion requests by state (pending, running, done, failed), after each deletions run",
    ),
    counter("tierd_retention_runs_total", "Runs of the retention pass, by dry_run"),
    counter(
        "tierd_retention_actions_planned_total",
        "Retention actions planned by the pass, by kind (retire, rewrite)",
    ),
    counter(
        "tierd_retention_segments_total",
        "Segments the retention pass removed events from, by action (retired, rewritten; none: nothing matched)",
    ),
    counter(
        "tierd_retention_events_removed_total",
        "Stored rows (copies of events) past retention removed by the retention pass, by project",
    ),
    bytes_counter(
        "tierd_retention_bytes_removed_total",
        "Bytes retired by the retention pass minus the bytes of its outputs (freed once gc deletes them)",
    ),
    counter("tierd_retention_errors_total", "Retention actions that failed (retried at the next run)"),
    counter("tierd_pass_runs_total", "Runs of scheduled jobs (passes, heat flush), by pass, outcome and trigger"),
    seconds_histogram("tierd_pass_seconds", "Duration of a pass run (scheduled or manual), by pass"),
    gauge("tierd_pass_next_run_timestamp_seconds", "When a pass next runs on its schedule (Unix seconds; 0 = never)"),
    counter("tierd_pass_skipped_total", "Fire times skipped because the pass's previous run was still going"),
    counter("tierd_config_reloads_total", "Configuration reloads (SIGHUP, POST /v1/admin/config/reload), by outcome"),
    counter(
        "tierd_plan_actions_omitted_total",
        "Plan actions left out of GET /v1/plan answers (policy.max_plan_actions)",
    ),
    counter(
        "tierd_policy_actions_planned_total",
        "Tiering actions planned by the pass that carries them out, by rule and kind",
    ),
    counter(
        "tierd_policy_actions_executed_total",
        "Tiering actions carried out, by rule, kind and outcome (ok, error)",
    ),
    gauge(
        "tierd_cost_monthly_usd",
        "Projected monthly cost in USD after the current tiering plan, by tier (storage and cold reads)",
    ),
    gauge(
        "tierd_cost_savings_usd_total",
        "Running sum of the monthly saving in USD of the moves carried out since start",
    ),
];

/// Describes every metric of the process, the store's and the daemon's, each once.
pub fn describe() {
    tierd_store::metrics::describe();
    tierd_store::metrics::describe_all(DAEMON_METRICS);
}

/// Publishes segment counts and bytes by tier and state.
pub fn publish_catalog(snapshot: &CatalogSnapshot) {
    let totals = snapshot.totals();
    for tier in [Tier::Hot, Tier::Cold] {
        for state in [SegmentState::Open, SegmentState::Sealed, SegmentState::Retired] {
            let (n, b) = totals.iter().find(|(k, _)| *k == (tier, state)).map_or((0, 0), |(_, v)| *v);
            let labels = [("tier", tier.label()), ("state", state.label())];
            metrics::gauge!("tierd_segments", &labels).set(n as f64);
            metrics::gauge!("tierd_segment_bytes", &labels).set(b as f64);
        }
    }
    metrics::gauge!("tierd_catalog_generation").set(snapshot.generation() as f64);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

    use super::*;

    /// Records only the names described to it.
    #[derive(Default)]
    struct Descriptions(Mutex<Vec<String>>);

    impl Descriptions {
        fn push(&self, key: KeyName) {
            self.0.lock().unwrap().push(key.as_str().to_string());
        }
    }

    impl Recorder for Descriptions {
        fn describe_counter(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
            self.push(key);
        }
        fn describe_gauge(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
            self.push(key);
        }
        fn describe_histogram(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
            self.push(key);
        }
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn no_metric_is_described_twice() {
        let recorder = Descriptions::default();
        metrics::with_local_recorder(&recorder, describe);
        let mut names = recorder.0.into_inner().unwrap();
        assert!(names.len() >= 60, "the store's and the daemon's metrics: {names:?}");
        assert!(names.iter().all(|n| n.starts_with("tierd_")), "{names:?}");
        names.sort_unstable();
        let twice: Vec<_> = names.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0].clone()).collect();
        assert!(twice.is_empty(), "described twice: {twice:?}");
    }
}
