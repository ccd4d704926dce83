//! The description of every metric the store emits, in one table: each metric is described exactly once, here,
//! and the daemon describes only the metrics it emits itself (with the same [`MetricDoc`] table shape).
//!
//! Descriptions go to whatever recorder is installed (the daemon's Prometheus exporter shows them as `# HELP`);
//! call [`describe`] once after installing it.

use metrics::{KeyName, SharedString, Unit};

/// What kind of instrument a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric's description.
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    pub kind: MetricKind,
    pub name: &'static str,
    pub unit: Option<Unit>,
    pub help: &'static str,
}

/// A counter's description.
pub const fn counter(name: &'static str, help: &'static str) -> MetricDoc {
    MetricDoc { kind: MetricKind::Counter, name, unit: None, help }
}

/// A counter of bytes.
pub const fn bytes_counter(name: &'static str, help: &'static str) -> MetricDoc {
    MetricDoc { kind: MetricKind::Counter, name, unit: Some(Unit::Bytes), help }
}

/// A gauge's description.
pub const fn gauge(name: &'static str, help: &'static str) -> MetricDoc {
    MetricDoc { kind: MetricKind::Gauge, name, unit: None, help }
}

/// A gauge of bytes.
pub const fn bytes_gauge(name: &'static str, help: &'static str) -> MetricDoc {
    MetricDoc { kind: MetricKind::Gauge, name, unit: Some(Unit::Bytes), help }
}

/// A histogram's description (counts per group, ...).
pub const fn histogram(name: &'static str, help: &'static str) -> MetricDoc {
    MetricDoc { kind: MetricKind::Histogram, name, unit: None, help }
}

/// A histogram of durations in seconds.
pub const fn seconds_histogram(name: &'static str, help: &'static str) -> MetricDoc {
    MetricDoc { kind: MetricKind::Histogram, name, unit: Some(Unit::Seconds), help }
}

/// Every metric the store emits.
pub const STORE_METRICS: &[MetricDoc] = &[
    // Ingest and the hot tier (`hot`).
    counter("tierd_ingest_rejected_total", "Requests rejected by /import, by reason"),
    counter("tierd_hot_fsyncs_total", "fsyncs of hot segment files"),
    counter("tierd_hot_groups_total", "Write groups committed (one catalog commit each)"),
    histogram("tierd_hot_group_batches", "Requests per write group (group commit size)"),
    histogram("tierd_hot_group_events", "Events per write group"),
    seconds_histogram("tierd_hot_commit_seconds", "Write + fsync + catalog commit of a group"),
    bytes_counter("tierd_hot_bytes_written_total", "Bytes appended to hot segments"),
    counter("tierd_hot_segments_created_total", "Hot segments created"),
    counter(
        "tierd_hot_group_splits_total",
        "Write groups committed in several parts so that no more than hot.max_open_segments segments are open",
    ),
    counter("tierd_hot_segments_sealed_total", "Hot segments sealed"),
    counter(
        "tierd_hot_sealed_by_date_total",
        "Hot segments sealed because their UTC day ended (plus hot.seal_lateness_secs)",
    ),
    counter("tierd_hot_write_errors_total", "Failed hot writes, by kind"),
    // The catalog.
    gauge("tierd_catalog_generation", "Current catalog generation"),
    counter("tierd_catalog_commits_total", "Catalog transactions committed"),
    seconds_histogram("tierd_catalog_commit_seconds", "Catalog transaction + flush latency"),
    counter("tierd_catalog_leases_granted_total", "Leases granted to readers"),
    counter(
        "tierd_catalog_leases_coalesced_total",
        "Lookups answered with a recent lease over the same segments (no new lease written)",
    ),
    counter("tierd_catalog_leases_refused_total", "Lookups refused (503): catalog.max_live_leases leases live"),
    gauge(
        "tierd_catalog_leases_live",
        "Leases this daemon granted that it tracks as live (bounded by catalog.max_live_leases)",
    ),
    // Read heat (`heat`).
    counter("tierd_heat_reads_total", "Segment reads counted for heat, by source (query, segment_get, lookup)"),
    counter("tierd_heat_refused_total", "Reads not counted because heat.max_tracked_segments segments are tracked"),
    counter("tierd_heat_flushes_total", "Heat flushes (one batch + fsync each), by outcome (ok, error, disk_full)"),
    counter("tierd_heat_written_total", "Heat records written by flushes"),
    seconds_histogram("tierd_heat_flush_seconds", "Latency of a heat flush (carry-over, batch write, fsync)"),
    histogram("tierd_segment_heat", "Read heat of tracked segments at each flush, in reads per day"),
    gauge("tierd_heat_tracked_segments", "Segments whose heat is tracked"),
    // Reads and queries.
    counter("tierd_query_segments_scanned_total", "Segments read by queries"),
    counter(
        "tierd_query_segments_counted_total",
        "Segments queries counted without building events (one columnar segment for the day, no dedup needed)",
    ),
    bytes_counter("tierd_query_bytes_scanned_total", "Bytes read by queries"),
    bytes_counter("tierd_read_bytes_total", "Segment bytes read, by tier"),
    counter("tierd_read_checksum_errors_total", "Reads refused because the checksum did not match"),
    counter("tierd_segments_missing_total", "Reads of segments whose file is missing"),
    counter(
        "tierd_checksum_mismatches_total",
        "Copies or blocks whose bytes did not match the catalog's checksum, by tier (never returned as data)",
    ),
    // Recovery.
    gauge("tierd_segments_missing", "Segments found missing at the last recovery"),
    gauge("tierd_segments_corrupt", "Segments found corrupt at the last recovery"),
    counter("tierd_quarantined_files_total", "Files moved to quarantine by recovery"),
    // Rewrites.
    counter("tierd_rewrites_total", "Rewrites executed, by pass and outcome"),
    counter(
        "tierd_scrub_segments_total",
        "Sealed hot segments the background scrub verified, by outcome (ok, corrupt)",
    ),
    bytes_counter("tierd_scrub_bytes_total", "Bytes the background scrub read back"),
    counter(
        "tierd_disk_refusals_total",
        "Writes not started because they would eat into a reserve of free disk space, by what (rewrite, move, \
         restore, cache_fill, commit, intent, lease, lease_prune, heat, deletion, seal, gc, recovery) and reason \
         (background_reserve, catalog_headroom)",
    ),
    bytes_gauge(
        "tierd_emergency_ballast_bytes",
        "Bytes of the emergency ballast file (catalog.min_free_bytes; 0: given back at a start on a full disk)",
    ),
    counter("tierd_read_fallbacks_total", "Reads served by a segment's other copy: the hot one was missing or corrupt"),
    counter("tierd_repairs_reported_total", "Copies queued for repair after failing their checksum, by tier"),
    counter("tierd_repairs_dropped_total", "Repairs not queued: passes.max_pending_repairs segments were waiting"),
    counter("tierd_repairs_total", "Repairs carried out, by outcome (ok, error, no_good_copy)"),
    counter("tierd_scrub_corrupt_total", "Sealed hot segments the background scrub found corrupt"),
    counter(
        "tierd_rewrites_refused_total",
        "Segments not rewritten because their rewrite alone would exceed rewrite.max_memory_bytes, by pass",
    ),
    seconds_histogram("tierd_rewrite_seconds", "Rewrite latency, by pass"),
    bytes_counter("tierd_rewrite_bytes_before_total", "Bytes of rewrite inputs, by pass"),
    bytes_counter("tierd_rewrite_bytes_after_total", "Bytes of rewrite outputs, by pass"),
    counter("tierd_rewrite_rollbacks_total", "Rewrites rolled back before their commit"),
    counter("tierd_dedup_removed_total", "Duplicate events removed by rewrites, by project"),
    counter(
        "tierd_filtered_rewrites_total",
        "Filtered rewrites (a segment without the rows a retention or deletion filter matches), by pass, action \
         (unchanged, retired, rewritten, error) and outcome",
    ),
    seconds_histogram("tierd_filtered_rewrite_seconds", "Filtered rewrite latency, by pass"),
    counter("tierd_filtered_rows_removed_total", "Stored rows removed by filtered rewrites, by pass"),
    bytes_counter(
        "tierd_filtered_bytes_freed_total",
        "Bytes of segments retired by filtered rewrites minus the bytes of their outputs, by pass (freed once gc \
         deletes the retired copies)",
    ),
    counter("tierd_dedup_side_segments_total", "Side segments written to keep the copies dedup removed"),
    bytes_counter("tierd_dedup_side_bytes_total", "Bytes of the side segments keeping the copies dedup removed"),
    // Garbage collection and the trash.
    counter("tierd_gc_deleted_copies_total", "Copies out of service moved to the trash by gc, by tier"),
    bytes_counter("tierd_gc_deleted_bytes_total", "Bytes deleted by garbage collection"),
    counter("tierd_gc_expired_duplicates_total", "Side segments of duplicates retired when their time was up"),
    counter("tierd_gc_orphans_total", "Cold objects no record names moved to the trash by gc, by tier"),
    counter("tierd_gc_purged_total", "Trash entries past their retention deleted for good, by tier"),
    counter(
        "tierd_gc_erased_copies_total",
        "Copies holding rows a user deletion removes, deleted for good (erased), by tier",
    ),
    bytes_counter("tierd_gc_erased_bytes_total", "Bytes of erased copies deleted for good, by tier"),
    counter(
        "tierd_gc_erased_trash_total",
        "Trashed copies of erased segments deleted for good at the erasure retention, by tier",
    ),
    counter(
        "tierd_erase_trash_purged_total",
        "Trash entries (segments) found holding rows of a user deletion and deleted for good, by tier",
    ),
    bytes_counter("tierd_erase_trash_read_bytes_total", "Bytes of trash entries read back to look for deleted rows"),
    counter("tierd_erase_marked_total", "Retired segments marked for erasure by the deletions pass"),
    gauge("tierd_cold_objects_missing", "Cold copies live segments need that the last gc run did not find"),
    counter("tierd_trash_restores_total", "Segments restored from the trash (or not), by outcome"),
    // Moves between the tiers.
    counter("tierd_moves_total", "Moves between the tiers, by target placement and outcome"),
    seconds_histogram("tierd_move_seconds", "Move latency, by target placement"),
    bytes_counter("tierd_moved_bytes_total", "Bytes copied by moves, by the tier written"),
    counter("tierd_move_rollbacks_total", "Uncommitted move copies deleted (failed moves, recovery)"),
    counter(
        "tierd_move_verifications_total",
        "Uploaded copies verified before their commit, by method (etag: the server's MD5; read_back)",
    ),
    counter(
        "tierd_move_read_ahead_total",
        "Hot copies read ahead of their move while the previous one uploads, by outcome (started, used, refused: \
         larger than passes.migrate.read_ahead_bytes, discarded: read but not used)",
    ),
    bytes_gauge("tierd_move_read_ahead_bytes", "Bytes of hot copies held read ahead of their move"),
    seconds_histogram(
        "tierd_move_read_ahead_wait_seconds",
        "How long a move waited for the copy read ahead for it to be ready",
    ),
    // Parsed footers of recently read Parquet copies.
    counter("tierd_footer_cache_hits_total", "Block reads of Parquet copies that found the parsed footer cached"),
    counter("tierd_footer_cache_misses_total", "Block reads of Parquet copies that read and parsed the footer"),
    counter("tierd_footer_cache_evictions_total", "Parsed footers dropped to stay within cache.footer_max_bytes"),
    counter("tierd_footer_cache_refused_total", "Parsed footers not kept: larger than cache.footer_max_bytes"),
    bytes_gauge("tierd_footer_cache_bytes", "Estimated bytes of the parsed footers kept in memory"),
    // The cold tier's object store and the IO budget.
    counter("tierd_cold_requests_total", "Object-store requests of the cold tier, by op and outcome"),
    seconds_histogram("tierd_cold_request_seconds", "Object-store request latency, by op"),
    bytes_counter("tierd_cold_bytes_total", "Bytes moved to (write) and from (read) the object store"),
    counter("tierd_cold_retries_total", "Object-store requests retried after a transient failure, by op"),
    counter("tierd_cold_faults_injected_total", "Faults injected by TIERD_COLD_FAULTS, by kind"),
    seconds_histogram("tierd_budget_wait_seconds", "Time background IO waited for the IO budget, by resource"),
    // User deletions.
    counter("tierd_deletions_accepted_total", "Deletion requests accepted (durable in the catalog's database)"),
    counter("tierd_deletions_ids_total", "Distinct ids named by accepted deletion requests"),
    gauge("tierd_deletions_active", "Deletion requests not done yet: tombstones every read of their project applies"),
    // The cold cache on the hot disk.
    counter("tierd_cache_hits_total", "Cold blocks read from the local cache"),
    counter("tierd_cache_misses_total", "Cold blocks not in the local cache (fetched from the object store)"),
    bytes_gauge("tierd_cache_bytes", "Bytes of cold blocks held by the local cache"),
    counter("tierd_cache_evictions_total", "Blocks evicted from the local cache to stay within its bound"),
    bytes_counter("tierd_cache_fill_bytes_total", "Bytes written into the local cache"),
    counter("tierd_cache_corrupt_total", "Cached blocks found damaged on read (dropped, fetched again)"),
    counter("tierd_cache_purged_blocks_total", "Cached blocks of deleted (or erased) cold objects dropped"),
];

/// Describes every metric the store emits to the installed recorder.
pub fn describe() {
    describe_all(STORE_METRICS);
}

/// Describes `docs` to the installed recorder.
pub fn describe_all(docs: &[MetricDoc]) {
    metrics::with_recorder(|recorder| {
        for d in docs {
            let (name, help) = (KeyName::from_const_str(d.name), SharedString::const_str(d.help));
            match d.kind {
                MetricKind::Counter => recorder.describe_counter(name, d.unit, help),
                MetricKind::Gauge => recorder.describe_gauge(name, d.unit, help),
                MetricKind::Histogram => recorder.describe_histogram(name, d.unit, help),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_metric_is_described_once_under_a_tierd_name() {
        let mut names: Vec<&str> = STORE_METRICS.iter().map(|d| d.name).collect();
        assert!(names.iter().all(|n| n.starts_with("tierd_")), "{names:?}");
        names.sort_unstable();
        let twice: Vec<_> = names.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        assert!(twice.is_empty(), "described twice: {twice:?}");
    }
}
