//! The background disk reserve, as the rewriter meets it.

use std::sync::Arc;

use tierd_codecs::columnar::CodecSpec;
use tierd_policies::{ReencodePlanner, RewritePlanner};

use crate::catalog::{Catalog, SegmentState};
use crate::clock::ManualClock;
use crate::error::StoreError;
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::layout::Layout;
use crate::rewrite::Rewriter;
use crate::testing::{context, T0};

/// A rewrite that would leave less than the background reserve free is refused before it writes anything, and
/// goes ahead once the reserve allows it (no restart).
#[test]
fn background_writers_stop_at_the_disk_reserve_and_resume_when_it_allows() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let clock = ManualClock::new(T0);
    let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ctx = rt.block_on(async {
        let ctx = context(&layout, &catalog, &clock, "");
        let hot = HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap();
        let events = (0..20)
            .map(|i| tierd_codecs::Event {
                event: "E".into(),
                time_ms: T0 + i,
                distinct_id: "u".into(),
                insert_id: i.to_string(),
                properties: Default::default(),
            })
            .collect();
        hot.append(IngestBatch::encode("p".into(), events)).await.unwrap();
        hot.shutdown().await;
        ctx
    });
    let stats: Vec<_> = catalog.snapshot().segments().map(|m| m.planner_stats()).collect();
    let planner = ReencodePlanner { output_codec: "lz4".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
    let action = planner.plan(T0, &stats).pop().expect("one re-encode");
    let free = fs4::available_space(dir.path()).unwrap();
    let full = Rewriter::new(ctx.clone().with_disk_reserve(free.saturating_mul(2)), CodecSpec::default());
    let e = full.execute(&action).unwrap_err();
    assert!(matches!(e, StoreError::DiskReserve(_)) && e.to_string().contains("passes.disk_reserve_bytes"), "{e}");
    assert!(catalog.intents().unwrap().is_empty(), "the refused rewrite left no intent");
    assert!(catalog.snapshot().segments().all(|m| m.state == SegmentState::Sealed), "nothing retired");
    let room = Rewriter::new(ctx.with_disk_reserve(1), CodecSpec::default());
    room.execute(&action).unwrap();
}
