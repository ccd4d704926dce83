//! The scrub: every sealed hot segment's committed bytes read back and verified (crc32c against the catalog, whole
//! frames or a readable Parquet footer with the catalog's row count), in the background after start-up, so that
//! recovery does not have to read every hot byte before serving ([`crate::recovery`]).
//!
//! It reads through the IO budget (background disk work never takes the disk from ingest and queries) and runs at
//! the passes' CPU priority (the caller's thread). A segment that fails is reported loudly: an error log with its id,
//! `tierd_scrub_corrupt_total`, and the `tierd_segments_corrupt` gauge; queries that read it fail with an error
//! naming it (every read verifies), never a wrong answer. Segments retired or rewritten meanwhile are skipped.

use tracing::{error, info};

use crate::catalog::SegmentState;
use crate::context::StoreContext;
use crate::recovery::verify;

/// What one scrub found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScrubReport {
    /// Segments whose hot copy was read and verified.
    pub checked: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Segments that did not verify.
    pub corrupt: Vec<String>,
}

/// Verifies every sealed segment with a hot copy in the catalog's current snapshot. Blocking.
pub fn scrub_hot(ctx: &StoreContext) -> ScrubReport {
    let snapshot = ctx.catalog.snapshot();
    let mut report = ScrubReport::default();
    for meta in snapshot.segments().filter(|m| m.state == SegmentState::Sealed) {
        let Some(path) = meta.hot_path().and_then(|l| ctx.layout.resolve(l)) else { continue };
        // Still live? A rewrite may have retired it (and gc deleted it) since the snapshot.
        if ctx.catalog.snapshot().get(&meta.id).is_none_or(|m| m.state != SegmentState::Sealed) {
            continue;
        }
        ctx.budget().acquire_disk_blocking(meta.bytes);
        report.checked += 1;
        report.bytes += meta.bytes;
        metrics::counter!("tierd_scrub_bytes_total").increment(meta.bytes);
        if verify(&ctx.layout, &path, meta) {
            metrics::counter!("tierd_scrub_segments_total", "outcome" => "ok").increment(1);
            continue;
        }
        // A segment gc deleted between the check above and the read is not corrupt.
        if ctx.catalog.snapshot().get(&meta.id).is_none_or(|m| m.state != SegmentState::Sealed) {
            continue;
        }
        error!(segment = %meta.id, path = %path.display(), "scrub: a sealed hot segment does not verify");
        if meta.cold_key().is_some() {
            // Its cold copy can replace it.
            ctx.repairs.report(meta.id, crate::layout::Tier::Hot);
        } else {
            ctx.repairs.report_damaged(meta.id, crate::layout::Tier::Hot, "corrupt", "scrub");
        }
        metrics::counter!("tierd_scrub_segments_total", "outcome" => "corrupt").increment(1);
        metrics::counter!("tierd_scrub_corrupt_total").increment(1);
        metrics::gauge!("tierd_segments_corrupt").increment(1.0);
        report.corrupt.push(meta.id.to_string());
    }
    info!(checked = report.checked, bytes = report.bytes, corrupt = report.corrupt.len(), "scrub done");
    report
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::catalog::Catalog;
    use crate::clock::ManualClock;
    use crate::hot::{HotConfig, HotTier, IngestBatch};
    use crate::layout::Layout;
    use crate::testing::{context, T0};

    fn event(i: u64) -> tierd_codecs::Event {
        tierd_codecs::Event {
            event: "E".into(),
            time_ms: T0 + i as i64,
            distinct_id: format!("u{i}"),
            insert_id: i.to_string(),
            properties: Default::default(),
        }
    }

    /// Two sealed segments (two projects); then one byte of the first flipped in place, its length unchanged.
    #[test]
    fn recovery_leaves_sealed_segments_to_the_scrub_which_finds_a_flipped_byte() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let clock = ManualClock::new(T0);
        let (bad, good) = {
            let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let ctx = context(&layout, &catalog, &clock, "");
                let hot = HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap();
                hot.append(IngestBatch::encode("a".into(), (0..50).map(event).collect())).await.unwrap();
                hot.append(IngestBatch::encode("b".into(), (0..50).map(event).collect())).await.unwrap();
                hot.shutdown().await;
            });
            let s = catalog.snapshot();
            (s.lookup("a", 0, i64::MAX)[0].clone(), s.lookup("b", 0, i64::MAX)[0].clone())
        };
        assert_eq!(bad.state, SegmentState::Sealed);
        let path = layout.resolve(bad.hot_path().unwrap()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();

        let catalog = Arc::new(crate::catalog::open_retrying(&layout.catalog_dir()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ctx = rt.block_on(async { context(&layout, &catalog, &clock, "") });
        let report = crate::recovery::recover(&ctx).unwrap();
        assert!(report.corrupt.is_empty(), "recovery reads no sealed segment: {report:?}");
        let scrub = scrub_hot(&ctx);
        assert_eq!(scrub.checked, 2);
        assert_eq!(scrub.corrupt, vec![bad.id.to_string()]);
        assert_eq!(scrub.bytes, bad.bytes + good.bytes);
        // It has no other copy: listed once as damaged, however often it is found again.
        let damaged = ctx.repairs.damaged();
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        assert_eq!(
            (damaged[0].segment.as_str(), damaged[0].problem.as_str()),
            (bad.id.to_string().as_str(), "corrupt")
        );
        assert_eq!(scrub_hot(&ctx).corrupt.len(), 1);
        assert_eq!(ctx.repairs.damaged().len(), 1);
        assert!(ctx.repairs.pending().is_empty(), "nothing to repair it from");
        // And a read of it fails naming it, rather than answering from bad bytes.
        let err = crate::read::read_committed(&layout, &bad).unwrap_err();
        assert!(err.to_string().contains(&bad.id.to_string()), "{err}");
    }
}
