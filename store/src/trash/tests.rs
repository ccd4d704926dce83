//! Restores from the trash over a `memory://` cold tier: deleted segments come back verified and live, counts stay
//! deduplicated, a corrupt or missing trashed copy is refused, and a failed restore leaves the trash and the
//! catalog as they were.

use std::sync::Arc;

use super::*;
use crate::catalog::Catalog;
use crate::clock::ManualClock;
use crate::cold::{ColdStore, VerifyMode};
use crate::gc::{Gc, GcAction, GcConfig};
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::query::{execute, GroupBy, Query};
use crate::rewrite::Rewriter;
use crate::testing::{context_with, memory_cold, reencode_action, resend_batch, T0};

struct Fixture {
    _dir: tempfile::TempDir,
    layout: Layout,
    clock: ManualClock,
    catalog: Arc<Catalog>,
    cold: Arc<ColdStore>,
    rt: tokio::runtime::Runtime,
    /// The row segments a re-encode retired and gc deleted, and the columnar segment that replaced them.
    inputs: Vec<SegmentId>,
    output: SegmentId,
    /// The gc batch that deleted the inputs.
    batch_ms: i64,
}

impl Fixture {
    /// Three row segments (30 events, 25 distinct: five re-sends), re-encoded with dedup into one columnar
    /// segment; gc then deletes the inputs (no grace, no leases) into trash batch `batch_ms`.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let clock = ManualClock::new(T0);
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let cold = memory_cold(VerifyMode::Auto);
        let ctx = context_with(&layout, &catalog, &clock, "", cold.clone(), rt.handle().clone());
        // One hot tier per batch: each shutdown seals its segment, so there are three inputs.
        for k in 0..3i64 {
            rt.block_on(async {
                let hot = HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap();
                hot.append(IngestBatch::encode("p".into(), resend_batch(k))).await.unwrap();
                hot.shutdown().await;
            });
        }
        let outcome = Rewriter::new(ctx.clone(), Default::default()).execute(&reencode_action(&catalog)).unwrap();
        let gc_cfg =
            GcConfig { grace_ms: 0, lease_ttl_ms: 0, trash_retention_ms: 3_600_000, erase_trash_retention_ms: 0 };
        let gc = Gc::new(ctx, gc_cfg);
        let batch_ms = T0 + 1_000;
        let done = gc.run(batch_ms, 0).unwrap();
        assert_eq!(done.iter().filter(|d| d.action == GcAction::Delete).count(), 3, "{done:?}");
        let (inputs, output) = (outcome.inputs, outcome.outputs[0]);
        Self { _dir: dir, layout, clock, catalog, cold, rt, inputs, output, batch_ms }
    }

    fn trash(&self, failpoints: &str) -> Trash {
        Trash::new(context_with(
            &self.layout,
            &self.catalog,
            &self.clock,
            failpoints,
            self.cold.clone(),
            self.rt.handle().clone(),
        ))
    }

    fn count(&self) -> u64 {
        let q = Query {
            project: "p".into(),
            from_ms: 0,
            to_ms: i64::MAX,
            event: None,
            filters: vec![],
            group_by: GroupBy::None,
        };
        execute(&crate::read::SegmentSource::hot_only(self.layout.clone()), &self.catalog.snapshot(), &q).unwrap().total
    }

    /// Files under `hot/p` (the live tier, not the trash).
    fn hot_files(&self) -> usize {
        std::fs::read_dir(self.layout.hot_dir().join("p")).unwrap().count()
    }
}

#[test]
fn deleted_segments_come_back_live_and_counts_stay_deduplicated() {
    let f = Fixture::new();
    assert_eq!(f.count(), 25);
    let trash = f.trash("");
    let listed = trash.list().unwrap();
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), {
        let mut ids = f.inputs.clone();
        ids.sort();
        ids
    });
    for t in &listed {
        assert_eq!((t.batch_ms, t.state, t.in_catalog), (f.batch_ms, SegmentState::Retired, false));
        assert_eq!(t.copies.len(), 1);
        assert!(t.copies[0].present && t.copies[0].location.tier == Tier::Hot, "{t:?}");
    }

    let outcomes = trash.restore(f.batch_ms, &[], T0 + 2_000).unwrap();
    assert!(outcomes.iter().all(|o| o.outcome == RestoreStatus::Restored), "{outcomes:?}");
    let snapshot = f.catalog.snapshot();
    for id in &f.inputs {
        let m = snapshot.get(id).expect("back in the catalog");
        assert_eq!((m.state, m.retired.clone(), m.dropped.len()), (SegmentState::Sealed, None, 0));
        let path = m.hot_path().unwrap();
        assert!(path.starts_with("hot/p/") && f.layout.resolve(path).unwrap().is_file(), "{path}");
        crate::read::read_committed(&f.layout, m).unwrap();
    }
    assert!(f.catalog.intents().unwrap().is_empty());
    // Live again next to the segment that replaced them: still 25 (one copy per dedup key).
    assert_eq!(f.count(), 25);
    // Without the replacement, the restored segments alone hold every event.
    f.catalog.commit(vec![CatalogChange::Remove(f.output)]).unwrap();
    assert_eq!(f.count(), 25);
    // The trash is untouched (purged at its retention as always); a second restore has nothing to do.
    assert!(trash.list().unwrap().iter().all(|t| t.in_catalog && t.copies[0].present));
    let again = trash.restore(f.batch_ms, &[f.inputs[0]], T0 + 3_000).unwrap();
    assert_eq!(again.iter().map(|o| o.outcome).collect::<Vec<_>>(), [RestoreStatus::InCatalog]);
    // Unknown batches and segments are named, nothing else happens.
    let e = trash.restore(f.batch_ms + 1, &[], T0).unwrap_err();
    assert!(e.to_string().contains(&f.batch_ms.to_string()), "{e}");
    let unknown = trash.restore(f.batch_ms, &[f.output], T0).unwrap();
    assert_eq!(unknown.iter().map(|o| o.outcome).collect::<Vec<_>>(), [RestoreStatus::NotInBatch]);
}

#[test]
fn a_failed_restore_changes_nothing_and_a_corrupt_copy_is_refused() {
    let f = Fixture::new();
    let before: Vec<_> = f.catalog.snapshot().segments().cloned().collect();
    let files = f.hot_files();
    let outcomes = f.trash("restore.write=error").restore(f.batch_ms, &f.inputs[..1], T0 + 2_000).unwrap();
    assert_eq!(outcomes[0].outcome, RestoreStatus::Error, "{outcomes:?}");
    assert!(outcomes[0].error.as_deref().unwrap().contains("restore.write"), "{outcomes:?}");
    assert_eq!(f.catalog.snapshot().segments().cloned().collect::<Vec<_>>(), before);
    assert!(f.catalog.intents().unwrap().is_empty());
    assert_eq!(f.hot_files(), files, "the uncommitted copy was removed");
    assert!(f.trash("").list().unwrap().iter().all(|t| t.copies[0].present), "the trash is intact");

    // A trashed copy that no longer matches its record is never restored.
    let listed = f.trash("").list().unwrap();
    let victim = listed.iter().find(|t| t.id == f.inputs[1]).unwrap();
    let path = f.layout.root().join(&victim.copies[0].trash_path);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let outcomes = f.trash("").restore(f.batch_ms, &[f.inputs[1]], T0 + 3_000).unwrap();
    assert_eq!(outcomes[0].outcome, RestoreStatus::Error);
    assert!(outcomes[0].error.as_deref().unwrap().contains("no trashed copy matches"), "{outcomes:?}");
    assert!(f.catalog.snapshot().get(&f.inputs[1]).is_none());
    assert_eq!(f.hot_files(), files);
    // The others still restore.
    let rest = f.trash("").restore(f.batch_ms, &[f.inputs[0], f.inputs[2]], T0 + 4_000).unwrap();
    assert!(rest.iter().all(|o| o.outcome == RestoreStatus::Restored), "{rest:?}");
}
