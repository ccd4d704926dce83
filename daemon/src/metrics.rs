//! The Prometheus exporter behind `GET /metrics`, and the gauges refreshed from the catalog.
//!
//! Every counter and histogram is recorded where the action happens (`store` records I/O, the HTTP layer records
//! requests); this module only installs the recorder, chooses histogram buckets and publishes catalog totals.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tierd_store::catalog::{SegmentState, Tier};
use tierd_store::CatalogSnapshot;

/// Latency buckets in seconds, from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Count buckets (batches or events per group).
const COUNT_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0];

/// Installs the global recorder. Call once per process.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_batches".into()), COUNT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_events".into()), COUNT_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("tierd_ingest_events_total", "Events acknowledged by /import, by project");
    describe_counter!("tierd_ingest_bytes_total", Unit::Bytes, "Request body bytes (uncompressed) acknowledged");
    describe_counter!("tierd_ingest_batches_total", "Requests acknowledged by /import");
    describe_counter!("tierd_ingest_rejected_total", "Requests rejected by /import, by reason");
    describe_histogram!("tierd_ingest_ack_seconds", Unit::Seconds, "Time from request start to durable ack");
    describe_counter!("tierd_hot_fsyncs_total", "fsyncs of hot segment files");
    describe_counter!("tierd_hot_groups_total", "Write groups committed (one catalog commit each)");
    describe_histogram!("tierd_hot_group_batches", "Requests per write group (group commit size)");
    describe_histogram!("tierd_hot_group_events", "Events per write group");
    describe_histogram!("tierd_hot_commit_seconds", Unit::Seconds, "Write + fsync + catalog commit of a group");
    describe_counter!("tierd_hot_bytes_written_total", Unit::Bytes, "Bytes appended to hot segments");
    describe_counter!("tierd_hot_segments_created_total", "Hot segments created");
    describe_counter!("tierd_hot_segments_sealed_total", "Hot segments sealed");
    describe_counter!("tierd_hot_write_errors_total", "Failed hot writes, by kind");
    describe_gauge!("tierd_segments", "Segments in the catalog, by tier and state");
    describe_gauge!("tierd_segment_bytes", Unit::Bytes, "Bytes of segments in the catalog, by tier and state");
    describe_gauge!("tierd_catalog_generation", "Current catalog generation");
    describe_counter!("tierd_catalog_commits_total", "Catalog transactions committed");
    describe_histogram!("tierd_catalog_commit_seconds", Unit::Seconds, "Catalog transaction + flush latency");
    describe_counter!("tierd_catalog_lookups_total", "Catalog segment lookups served");
    describe_counter!("tierd_catalog_leases_granted_total", "Leases granted to readers");
    describe_counter!("tierd_query_total", "Queries answered, by outcome");
    describe_histogram!("tierd_query_seconds", Unit::Seconds, "Query latency");
    describe_counter!("tierd_query_segments_scanned_total", "Segments read by queries");
    describe_counter!(
        "tierd_query_segments_counted_total",
        "Segments queries counted from time and event alone (one columnar segment for the day, no dedup needed)"
    );
    describe_counter!("tierd_query_bytes_scanned_total", Unit::Bytes, "Bytes read by queries");
    describe_counter!("tierd_read_bytes_total", Unit::Bytes, "Segment bytes read, by tier");
    describe_counter!("tierd_read_checksum_errors_total", "Reads refused because the checksum did not match");
    describe_counter!("tierd_segments_missing_total", "Reads of segments whose file is missing");
    describe_gauge!("tierd_segments_missing", "Segments found missing at the last recovery");
    describe_gauge!("tierd_segments_corrupt", "Segments found corrupt at the last recovery");
    describe_counter!("tierd_quarantined_files_total", "Files moved to quarantine by recovery");
    describe_counter!("tierd_rewrites_total", "Rewrites executed, by pass and outcome");
    describe_histogram!("tierd_rewrite_seconds", Unit::Seconds, "Rewrite latency, by pass");
    describe_counter!("tierd_rewrite_bytes_before_total", Unit::Bytes, "Bytes of rewrite inputs, by pass");
    describe_counter!("tierd_rewrite_bytes_after_total", Unit::Bytes, "Bytes of rewrite outputs, by pass");
    describe_counter!("tierd_rewrite_rollbacks_total", "Rewrites rolled back before their commit");
    describe_counter!("tierd_dedup_removed_total", "Duplicate events removed by rewrites, by project");
    describe_counter!("tierd_passes_total", "Passes run, by pass and dry_run");
    describe_counter!("tierd_gc_deleted_segments_total", "Retired segments deleted by garbage collection");
    describe_counter!("tierd_gc_deleted_bytes_total", Unit::Bytes, "Bytes deleted by garbage collection");
    describe_counter!("tierd_moves_total", "Moves between the tiers, by target placement and outcome");
    describe_histogram!("tierd_move_seconds", Unit::Seconds, "Move latency, by target placement");
    describe_counter!("tierd_moved_bytes_total", Unit::Bytes, "Bytes copied by moves, by the tier written");
    describe_counter!("tierd_move_rollbacks_total", "Uncommitted move copies deleted (failed moves, recovery)");
    describe_counter!(
        "tierd_move_verifications_total",
        "Uploaded copies verified before their commit, by method (etag: the server's MD5; read_back)"
    );
    describe_counter!("tierd_checksum_mismatches_total", "Copies or blocks that did not match the catalog, by tier");
    describe_counter!("tierd_trash_restores_total", "Segments restored from the trash (or not), by outcome");
}

/// Publishes segment counts and bytes by tier and state.
pub fn publish_catalog(snapshot: &CatalogSnapshot) {
    let totals = snapshot.totals();
    for tier in [Tier::Hot, Tier::Cold] {
        for state in [SegmentState::Open, SegmentState::Sealed, SegmentState::Retired] {
            let (n, b) = totals.iter().find(|(k, _)| *k == (tier, state)).map_or((0, 0), |(_, v)| *v);
            let labels = [("tier", tier.label()), ("state", state_label(state))];
            metrics::gauge!("tierd_segments", &labels).set(n as f64);
            metrics::gauge!("tierd_segment_bytes", &labels).set(b as f64);
        }
    }
    metrics::gauge!("tierd_catalog_generation").set(snapshot.generation() as f64);
}

fn state_label(s: SegmentState) -> &'static str {
    match s {
        SegmentState::Open => "open",
        SegmentState::Sealed => "sealed",
        SegmentState::Retired => "retired",
    }
}
