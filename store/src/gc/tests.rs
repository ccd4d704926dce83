//! Garbage collection over a real hot directory and a `memory://` cold tier: lossless dedup's side segments,
//! failed rewrites, pins, leases, grace, the restart rule and the trash.

use std::sync::Arc;

use serde_json::{json, Value};
use tierd_codecs::columnar::CodecSpec;
use tierd_policies::{ReencodePlanner, RewritePlanner};

use super::*;
use crate::catalog::Catalog;
use crate::clock::ManualClock;
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::query::{execute, GroupBy, Query};
use crate::rewrite::Rewriter;
use crate::testing::{context, reencode_action, resend_batch, T0};

/// What the tests of one store share: its directory, layout, clock, catalog and failpoints.
struct Store {
    _dir: tempfile::TempDir,
    layout: Layout,
    clock: ManualClock,
    catalog: Arc<Catalog>,
    failpoints: String,
}

impl Store {
    fn ctx(&self) -> StoreContext {
        context(&self.layout, &self.catalog, &self.clock, &self.failpoints)
    }

    /// A collector over a fresh `memory://` cold tier.
    fn collector(&self, cfg: GcConfig) -> Gc {
        Gc::new(self.ctx(), cfg)
    }

    fn rewriter(&self, spec: CodecSpec) -> Rewriter {
        Rewriter::new(self.ctx(), spec)
    }
}

fn count(layout: &Layout, snapshot: &crate::CatalogSnapshot) -> u64 {
    let q = Query {
        project: "p".into(),
        from_ms: 0,
        to_ms: i64::MAX,
        event: None,
        filters: vec![],
        group_by: GroupBy::None,
    };
    execute(&crate::read::SegmentSource::hot_only(layout.clone()), snapshot, &q).unwrap().total
}

/// Three sealed row segments of project `p`: 30 events, ids (and times) 0..25 then 0..5 again (five re-sends
/// whose properties say `k = 2`; the first copies say `k = 0`).
fn three_segments_with_resends(failpoints: &str) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let clock = ManualClock::new(T0);
    let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
    let store = Store { _dir: dir, layout, clock, catalog, failpoints: failpoints.to_string() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let hot = HotTier::start(&store.ctx(), HotConfig::default(), Arc::new(|_| {})).unwrap();
        for k in 0..3 {
            hot.append(IngestBatch::encode("p".into(), resend_batch(k))).await.unwrap();
        }
        hot.shutdown().await; // seals
    });
    store
}

/// Lossless dedup: the removed copies land in a side segment in the same commit; queries and passes do not
/// see it; GC keeps it until its retention ends, then retires and deletes it.
#[test]
fn removed_duplicates_are_kept_until_their_retention_ends() {
    let store = three_segments_with_resends("");
    let (layout, catalog) = (&store.layout, &store.catalog);
    let rewriter = store.rewriter(Default::default()).keep_duplicates_for(60_000);
    let outcome = rewriter.execute(&reencode_action(catalog)).unwrap();
    assert_eq!((outcome.rows_after, outcome.duplicates_removed), (25, 5));
    let side_id = outcome.duplicates_segment.expect("a side segment");
    let snapshot = catalog.snapshot();
    let side = snapshot.get(&side_id).unwrap().clone();
    assert_eq!(side.role, Role::Duplicates { of: outcome.outputs[0], keep_until_ms: T0 + 60_000 });
    assert_eq!(side.rows, 5);
    // Exactly the first copies of the re-sent ids: properties k = 0, ids 0..5.
    let mut removed: Vec<(String, Value)> = crate::read::read_events(layout, &side)
        .unwrap()
        .into_iter()
        .map(|e| (e.event.insert_id.clone(), Value::Object(e.event.properties.clone())))
        .collect();
    removed.sort_by(|a, b| a.0.cmp(&b.0));
    let expected: Vec<(String, Value)> = (0..5).map(|i| (i.to_string(), json!({"k": 0}))).collect();
    assert_eq!(removed, expected);
    // Queries see the 25 events, lookups only the output; the side segment is listed on its own.
    assert_eq!(count(layout, &snapshot), 25);
    let ids: Vec<SegmentId> = snapshot.lookup("p", 0, i64::MAX).iter().map(|m| m.id).collect();
    assert_eq!(ids, outcome.outputs);
    let dups: Vec<SegmentId> = snapshot.lookup_duplicates("p", 0, i64::MAX).iter().map(|m| m.id).collect();
    assert_eq!(dups, vec![side_id]);

    let cfg = GcConfig { grace_ms: 0, lease_ttl_ms: 0, trash_retention_ms: 0, erase_trash_retention_ms: 0 };
    let gc = store.collector(cfg);
    let early = gc.run(T0 + 59_999, 0).unwrap();
    assert!(early.iter().all(|d| d.id != Some(side_id)), "{early:?}");
    assert!(layout.resolve(side.hot_path().unwrap()).unwrap().exists());
    let due = gc.run(T0 + 60_000, 0).unwrap();
    let expired: Vec<_> = due.iter().filter(|d| d.id == Some(side_id)).collect();
    assert_eq!(expired.len(), 2, "expired, then deleted past a zero grace: {due:?}");
    assert!(expired[0].action == GcAction::Expire && expired[1].action == GcAction::Delete, "{expired:?}");
    assert!(!layout.resolve(side.hot_path().unwrap()).unwrap().exists());
    assert!(catalog.snapshot().get(&side_id).is_none());
    assert_eq!(count(layout, &catalog.snapshot()), 25);
}

/// A rewrite that fails after writing its output and side segment removes both and leaves the inputs live.
#[test]
fn a_failed_lossless_rewrite_leaves_no_file_behind() {
    for point in ["rewrite.intent", "rewrite.write", "rewrite.verify"] {
        let store = three_segments_with_resends(&format!("{point}=error@2"));
        let (layout, catalog) = (&store.layout, &store.catalog);
        let before: Vec<_> = catalog.snapshot().segments().cloned().collect();
        let rewriter = store.rewriter(Default::default()).keep_duplicates_for(60_000);
        // The failpoint fires on its second hit: the side segment's step, after the output's succeeded.
        let err = rewriter.execute(&reencode_action(catalog)).unwrap_err();
        assert!(err.to_string().contains(point), "{point}: {err}");
        let after: Vec<_> = catalog.snapshot().segments().cloned().collect();
        assert_eq!(before, after, "{point}");
        assert!(catalog.intents().unwrap().is_empty(), "{point}");
        let files = std::fs::read_dir(layout.hot_dir().join("p")).unwrap().count();
        assert_eq!(files, before.len(), "{point}: only the inputs remain");
        assert_eq!(count(layout, &catalog.snapshot()), 25);
    }
}

/// A query that pinned its snapshot before a rewrite keeps reading the retired inputs, GC keeps them while the
/// pin or a lease lives, and deletes them once neither does.
#[test]
fn retired_segments_outlive_pins_and_leases() {
    let store = three_segments_with_resends("");
    let (layout, catalog) = (&store.layout, &store.catalog);
    let before = catalog.pin();
    assert_eq!(count(layout, &before), 25);
    let stats: Vec<_> = catalog.snapshot().segments().map(|m| m.planner_stats()).collect();
    let planner = ReencodePlanner { output_codec: "zstd-3".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
    let actions = planner.plan(T0, &stats);
    assert_eq!(actions.len(), 1);
    let outcome = store.rewriter(CodecSpec::default()).execute(&actions[0]).unwrap();
    assert_eq!((outcome.rows_before, outcome.rows_after), (30, 25));
    let input = outcome.inputs[0];
    // Both views give the same answer: the pinned one reads the retired input, the new one the output.
    assert_eq!(count(layout, &catalog.snapshot()), 25);
    assert_eq!(count(layout, &before), 25);

    let cfg = GcConfig { grace_ms: 0, lease_ttl_ms: 0, trash_retention_ms: 3_600_000, erase_trash_retention_ms: 0 };
    let gc = store.collector(cfg);
    let decide = |now| gc.plan(now, 0).unwrap();
    let d = decide(T0);
    assert!(d.iter().all(|d| d.action == GcAction::Keep && d.reason.contains("reader")), "{d:?}");
    let lease = catalog.grant_lease(T0, 60_000, 1, vec![input]).unwrap();
    drop(before);
    let d = decide(T0);
    let held = d.iter().find(|d| d.id == Some(input)).unwrap();
    assert!(held.action == GcAction::Keep && held.reason.contains(&lease.id), "{held:?}");
    // Grace and the restart rule hold it too.
    let graced = store.collector(GcConfig { grace_ms: 3_600_000, ..cfg });
    let graced = graced.plan(T0 + 60_001, 0).unwrap();
    assert!(graced.iter().all(|d| d.action == GcAction::Keep && d.reason.contains("grace")), "{graced:?}");
    let fresh = store.collector(GcConfig { lease_ttl_ms: 10_000, ..cfg });
    let fresh = fresh.plan(T0 + 60_001, T0 + 60_000).unwrap();
    assert!(fresh.iter().all(|d| d.action == GcAction::Keep && d.reason.contains("restarted")), "{fresh:?}");
    // Once the lease expired: to the trash, files gone from hot/, records saved, answer unchanged.
    let done = gc.run(T0 + 60_001, 0).unwrap();
    let deleted: Vec<_> = done.iter().filter(|d| d.action == GcAction::Delete).collect();
    assert_eq!(deleted.len(), outcome.inputs.len(), "{done:?}");
    let trash = layout.root().join(Layout::trash_batch(T0 + 60_001));
    for d in &deleted {
        assert!(!layout.resolve(&d.location.path).unwrap().exists());
        assert!(trash.join(&d.location.path).exists(), "in the trash: {}", d.location.path);
        let id = d.id.unwrap();
        assert!(trash.join(format!("records/{id}.json")).exists());
        assert!(catalog.snapshot().get(&id).is_none());
    }
    assert_eq!(count(layout, &catalog.snapshot()), 25);
    // The trash is purged once its retention has passed, not before.
    let kept = gc.run(T0 + 60_001 + 3_599_999, 0).unwrap();
    assert!(kept.iter().all(|d| d.action != GcAction::Purge), "{kept:?}");
    let purged = gc.run(T0 + 60_001 + 3_600_000, 0).unwrap();
    assert_eq!(purged.iter().filter(|d| d.action == GcAction::Purge).count(), 1, "{purged:?}");
    assert!(!trash.exists());
}

/// A run told to stop (the daemon shutting down) stops between two copies: what it moved to the trash is
/// committed, the rest stays in the catalog and on disk, and the next run finishes the work.
#[test]
fn a_stopped_run_commits_what_it_did_and_leaves_the_rest() {
    let store = three_segments_with_resends("");
    let (layout, catalog) = (&store.layout, &store.catalog);
    // Two more sealed segments (each start and shutdown of the writer seals what it wrote): three inputs.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for k in 3..5 {
        rt.block_on(async {
            let hot = HotTier::start(&store.ctx(), HotConfig::default(), Arc::new(|_| {})).unwrap();
            hot.append(IngestBatch::encode("p".into(), resend_batch(k))).await.unwrap();
            hot.shutdown().await;
        });
    }
    let outcome = store.rewriter(CodecSpec::default()).execute(&reencode_action(catalog)).unwrap();
    assert_eq!(outcome.inputs.len(), 3);
    let cfg = GcConfig { grace_ms: 0, lease_ttl_ms: 0, trash_retention_ms: 3_600_000, erase_trash_retention_ms: 0 };
    let gc = store.collector(cfg);
    let asked = std::cell::Cell::new(0);
    // Go on for the first copy, stop before the second.
    let stop = || {
        asked.set(asked.get() + 1);
        asked.get() > 1
    };
    let err = gc.run_until(T0 + 1, 0, &stop).unwrap_err();
    assert!(matches!(err, StoreError::Stopped(_)), "{err}");
    assert!(err.to_string().contains("1 of 3"), "{err}");
    let snapshot = catalog.snapshot();
    let left: Vec<_> = outcome.inputs.iter().filter(|id| snapshot.get(id).is_some()).collect();
    assert_eq!(left.len(), 2, "one input removed from the catalog, two left");
    for id in &left {
        let path = snapshot.get(id).unwrap().hot_path().unwrap().to_string();
        assert!(layout.resolve(&path).unwrap().exists(), "{path} still on disk");
    }
    let trash = layout.root().join(Layout::trash_batch(T0 + 1));
    let gone = outcome.inputs.iter().find(|id| snapshot.get(id).is_none()).unwrap();
    assert!(trash.join(format!("records/{gone}.json")).exists());
    assert_eq!(count(layout, &snapshot), 25);
    // The next run deletes the two left, and nothing else.
    let done = gc.run(T0 + 2, 0).unwrap();
    let deleted: Vec<_> = done.iter().filter(|d| d.action == GcAction::Delete).filter_map(|d| d.id).collect();
    assert_eq!(deleted.len(), 2, "{done:?}");
    assert!(deleted.iter().all(|id| left.contains(&id)));
    assert_eq!(count(layout, &catalog.snapshot()), 25);
}
