//! Erasure over a real hot directory and a `memory://` cold tier: retired copies marked and erased by gc without
//! the trash, trash entries purged only when they hold a deleted row.

use std::sync::Arc;

use serde_json::json;
use tierd_codecs::Event;

use super::*;
use crate::catalog::Catalog;
use crate::clock::ManualClock;
use crate::cold::{ColdStore, VerifyMode};
use crate::gc::{Gc, GcAction, GcConfig};
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::rewrite::Rewriter;
use crate::testing::{context_with, memory_cold, reencode_action, T0};

struct Fixture {
    _dir: tempfile::TempDir,
    layout: Layout,
    clock: ManualClock,
    catalog: Arc<Catalog>,
    cold: Arc<ColdStore>,
    rt: tokio::runtime::Runtime,
    /// The row segments of user `a` then of user `b`, retired by a re-encode into one columnar segment.
    inputs: Vec<SegmentMeta>,
}

/// Ten events of user `user`, at distinct times.
fn batch(user: &str, k: i64) -> Vec<Event> {
    (0..10i64)
        .map(|i| Event {
            event: "E".into(),
            time_ms: T0 + k * 10 + i,
            distinct_id: user.into(),
            insert_id: format!("{user}{i}"),
            properties: json!({"k": k}).as_object().unwrap().clone(),
        })
        .collect()
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let clock = ManualClock::new(T0);
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let cold = memory_cold(VerifyMode::Auto);
        let f = Self { _dir: dir, layout, clock, catalog, cold, rt, inputs: Vec::new() };
        for (k, user) in ["a", "b"].into_iter().enumerate() {
            f.rt.block_on(async {
                let hot = HotTier::start(&f.ctx(""), HotConfig::default(), Arc::new(|_| {})).unwrap();
                hot.append(IngestBatch::encode("p".into(), batch(user, k as i64))).await.unwrap();
                hot.shutdown().await;
            });
        }
        let outcome = Rewriter::new(f.ctx(""), Default::default()).execute(&reencode_action(&f.catalog)).unwrap();
        let snapshot = f.catalog.snapshot();
        let mut inputs: Vec<SegmentMeta> =
            outcome.inputs.iter().map(|id| (**snapshot.get(id).unwrap()).clone()).collect();
        inputs.sort_by_key(|m| m.min_seq);
        Self { inputs, ..f }
    }

    fn ctx(&self, failpoints: &str) -> StoreContext {
        context_with(&self.layout, &self.catalog, &self.clock, failpoints, self.cold.clone(), self.rt.handle().clone())
    }

    fn gc(&self, erase_trash_retention_ms: i64) -> Gc {
        let cfg = GcConfig { grace_ms: 0, lease_ttl_ms: 0, trash_retention_ms: 3_600_000, erase_trash_retention_ms };
        Gc::new(self.ctx(""), cfg)
    }

    /// A request deleting `user`'s rows up to `max_seq`, as the deletion log stores it.
    fn request(user: &str, max_seq: u64) -> DeletionRequest {
        serde_json::from_value(json!({
            "id": DeletionId::generate(T0).to_string(),
            "project": "p",
            "distinct_ids": [user],
            "created_at_ms": T0,
            "max_seq": max_seq,
            "state": "pending",
        }))
        .unwrap()
    }

    fn exists(&self, path: &str) -> bool {
        self.layout.root().join(path).exists()
    }
}

#[test]
fn retired_copies_that_may_hold_the_rows_are_marked_and_erased_without_the_trash() {
    let f = Fixture::new();
    let (a, b) = (&f.inputs[0], &f.inputs[1]);
    // User `a`'s request covers sequences up to a's last: b's segment (later sequences only) cannot hold them.
    let req = Fixture::request("a", a.max_seq);
    let eraser = Eraser::new(f.ctx(""), None);
    assert_eq!(eraser.mark_retired("p", &req.filter(), req.max_seq).unwrap(), 1);
    let snapshot = f.catalog.snapshot();
    assert!(snapshot.get(&a.id).unwrap().retired.as_ref().unwrap().erase);
    assert!(!snapshot.get(&b.id).unwrap().retired.as_ref().unwrap().erase);
    assert_eq!(eraser.mark_retired("p", &req.filter(), req.max_seq).unwrap(), 0, "marked once");
    let left = eraser.leftover("p", std::slice::from_ref(&req)).unwrap();
    assert_eq!((left.retired_hot, left.retired_cold, left.trash), (1, 0, 0), "{left:?}");

    let batch_ms = T0 + 1_000;
    let done = f.gc(0).run(batch_ms, 0).unwrap();
    let action = |id: SegmentId| done.iter().find(|d| d.id == Some(id)).map(|d| d.action);
    assert_eq!((action(a.id), action(b.id)), (Some(GcAction::Erase), Some(GcAction::Delete)), "{done:?}");
    let (a_path, b_path) = (a.hot_path().unwrap(), b.hot_path().unwrap());
    assert!(!f.exists(a_path) && !f.exists(&Layout::trash_path(batch_ms, a_path)), "a is gone, not in the trash");
    assert!(!f.exists(&Layout::trash_record(batch_ms, a.id)), "no record of an erased copy");
    assert!(f.exists(&Layout::trash_path(batch_ms, b_path)), "b went to the trash as usual");
    assert!(f.catalog.snapshot().get(&a.id).is_none());
    let left = eraser.leftover("p", std::slice::from_ref(&req)).unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn with_an_erasure_retention_erased_copies_wait_in_the_trash_that_long_then_go_with_their_record() {
    let f = Fixture::new();
    let a = &f.inputs[0];
    let req = Fixture::request("a", a.max_seq);
    let eraser = Eraser::new(f.ctx(""), None);
    eraser.mark_retired("p", &req.filter(), req.max_seq).unwrap();
    let gc = f.gc(60_000);
    let batch_ms = T0 + 1_000;
    gc.run(batch_ms, 0).unwrap();
    let trashed = Layout::trash_path(batch_ms, a.hot_path().unwrap());
    assert!(f.exists(&trashed) && f.exists(&Layout::trash_record(batch_ms, a.id)));
    // Erased data is not restorable: a restore would undo the deletion.
    let restored = crate::trash::Trash::new(f.ctx("")).restore(batch_ms, &[a.id], batch_ms).unwrap();
    assert_eq!(restored[0].outcome, crate::trash::RestoreStatus::Error, "{restored:?}");
    assert!(f.catalog.snapshot().get(&a.id).is_none());
    assert_eq!(eraser.leftover("p", std::slice::from_ref(&req)).unwrap().trash, 1);
    gc.run(batch_ms + 59_999, 0).unwrap();
    assert!(f.exists(&trashed), "not before the erasure retention");
    let done = gc.run(batch_ms + 60_000, 0).unwrap();
    assert!(done.iter().any(|d| d.action == GcAction::Purge && d.id == Some(a.id)), "{done:?}");
    assert!(!f.exists(&trashed) && !f.exists(&Layout::trash_record(batch_ms, a.id)));
    assert!(f.exists(&Layout::trash_path(batch_ms, f.inputs[1].hot_path().unwrap())), "b waits for the batch's own");
    assert!(eraser.leftover("p", std::slice::from_ref(&req)).unwrap().is_empty());
}

#[test]
fn trash_entries_are_purged_only_when_they_hold_a_deleted_row() {
    let f = Fixture::new();
    let (a, b) = (&f.inputs[0], &f.inputs[1]);
    let batch_ms = T0 + 1_000;
    f.gc(0).run(batch_ms, 0).unwrap(); // nothing marked: both inputs to the trash as usual
                                       // Covering both segments' sequences: only reading them tells that b holds none of a's rows.
    let req = Fixture::request("a", b.max_seq);
    let eraser = Eraser::new(f.ctx(""), None);
    assert_eq!(eraser.leftover("p", std::slice::from_ref(&req)).unwrap().trash, 2, "both may hold them");
    let scan = eraser.purge_trash("p", std::slice::from_ref(&req), u64::MAX).unwrap();
    assert_eq!((scan.checked, scan.purged, scan.copies_purged, scan.left), (2, 1, (1, 0), 0), "{scan:?}");
    assert!(!f.exists(&Layout::trash_path(batch_ms, a.hot_path().unwrap())));
    assert!(!f.exists(&Layout::trash_record(batch_ms, a.id)));
    assert!(f.exists(&Layout::trash_path(batch_ms, b.hot_path().unwrap())), "b holds no row of a: kept");
    assert!(f.exists(&Layout::trash_record(batch_ms, b.id)));
    assert!(eraser.leftover("p", std::slice::from_ref(&req)).unwrap().is_empty(), "b is known clean");
    // Known clean: not read again.
    let again = eraser.purge_trash("p", std::slice::from_ref(&req), u64::MAX).unwrap();
    assert_eq!((again.checked, again.bytes_read), (0, 0));
    // A request for b finds it.
    let req_b = Fixture::request("b", b.max_seq);
    let scan = eraser.purge_trash("p", std::slice::from_ref(&req_b), u64::MAX).unwrap();
    assert_eq!(scan.purged, 1);
    assert!(!f.exists(&Layout::trash_path(batch_ms, b.hot_path().unwrap())));
}

#[test]
fn a_damaged_trash_entry_that_may_hold_deleted_rows_is_deleted_not_kept() {
    let f = Fixture::new();
    let batch_ms = T0 + 1_000;
    f.gc(0).run(batch_ms, 0).unwrap();
    let b = &f.inputs[1];
    let path = f.layout.root().join(Layout::trash_path(batch_ms, b.hot_path().unwrap()));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let req = Fixture::request("a", b.max_seq);
    let scan = Eraser::new(f.ctx(""), None).purge_trash("p", std::slice::from_ref(&req), u64::MAX).unwrap();
    assert_eq!((scan.checked, scan.purged), (1, 2), "a read and found, b unreadable: {scan:?}");
    assert!(!path.exists() && !f.exists(&Layout::trash_record(batch_ms, b.id)));
}

#[test]
fn a_trash_read_back_stops_at_the_byte_limit_but_always_reads_one() {
    let f = Fixture::new();
    f.gc(0).run(T0 + 1_000, 0).unwrap();
    let req = Fixture::request("a", f.inputs[1].max_seq);
    let eraser = Eraser::new(f.ctx(""), None);
    let scan = eraser.purge_trash("p", std::slice::from_ref(&req), 1).unwrap();
    assert_eq!((scan.checked, scan.left), (1, 1), "{scan:?}");
    let scan = eraser.purge_trash("p", std::slice::from_ref(&req), 1).unwrap();
    assert_eq!((scan.checked, scan.left), (1, 0), "the next run goes on: {scan:?}");
    assert!(eraser.leftover("p", std::slice::from_ref(&req)).unwrap().is_empty());
}
