//! Moves against a `memory://` cold tier: every placement change, refusals, and rollback of failed or crashed moves.

use bytes::Bytes;
use serde_json::json;
use tierd_codecs::Event;
use tierd_policies::{ReencodePlanner, RewritePlanner};

use std::sync::Arc;

use super::*;
use crate::catalog::{Catalog, Intent, IntentKind};
use crate::clock::ManualClock;
use crate::cold::ColdStore;
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::rewrite::Rewriter;
use crate::testing::{context_with, memory_cold, T0};

struct Fixture {
    _dir: tempfile::TempDir,
    layout: Layout,
    catalog: Arc<Catalog>,
    clock: ManualClock,
    cold: Arc<ColdStore>,
    rt: tokio::runtime::Runtime,
}

impl Fixture {
    /// One sealed row segment of 40 events, and (with `reencode`) its columnar replacement.
    fn new(reencode: bool) -> (Self, SegmentId) {
        let (f, ids) = Self::with_days(1, reencode);
        (f, ids[0])
    }

    /// One sealed row segment of 40 events per UTC day for `days` days, and (with `reencode`) their columnar
    /// replacements, in day order.
    fn with_days(days: i64, reencode: bool) -> (Self, Vec<SegmentId>) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let clock = ManualClock::new(T0);
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let cold = memory_cold(VerifyMode::Auto);
        let ctx = context_with(&layout, &catalog, &clock, "", cold.clone(), rt.handle().clone());
        rt.block_on(async {
            let hot = HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap();
            let events: Vec<Event> = (0..40 * days)
                .map(|i| Event {
                    event: format!("E{}", i % 3),
                    time_ms: T0 + (i / 40) * 86_400_000 + i % 40,
                    distinct_id: format!("u{i}"),
                    insert_id: format!("{i}"),
                    properties: json!({"i": i}).as_object().unwrap().clone(),
                })
                .collect();
            hot.append(IngestBatch::encode("p".into(), events)).await.unwrap();
            hot.shutdown().await;
        });
        let by_day = |c: &Catalog| {
            let mut segments: Vec<_> = c.snapshot().segments().map(|m| (m.day, m.id)).collect();
            segments.sort();
            segments.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
        };
        let mut ids = by_day(&catalog);
        assert_eq!(ids.len(), days as usize);
        if reencode {
            let stats: Vec<_> = catalog.snapshot().segments().map(|m| m.planner_stats()).collect();
            let planner = ReencodePlanner { output_codec: "zstd-3".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
            let rewriter = Rewriter::new(ctx, Default::default());
            for action in planner.plan(T0, &stats) {
                rewriter.execute(&action).unwrap();
            }
            let snapshot = catalog.snapshot();
            ids = by_day(&catalog)
                .into_iter()
                .filter(|id| snapshot.get(id).unwrap().state == SegmentState::Sealed)
                .collect();
            assert_eq!(ids.len(), days as usize);
        }
        (Self { _dir: dir, layout, catalog, clock, cold, rt }, ids)
    }

    fn ctx(&self, failpoints: &str) -> StoreContext {
        context_with(&self.layout, &self.catalog, &self.clock, failpoints, self.cold.clone(), self.rt.handle().clone())
    }

    fn mover(&self, failpoints: &str) -> Mover {
        Mover::new(self.ctx(failpoints))
    }

    fn record_intent(&self, id: SegmentId, location: &Location) {
        self.catalog.record_intents(&[Intent::new(id, location.clone(), IntentKind::Move, T0)]).unwrap();
    }

    fn meta(&self, id: SegmentId) -> SegmentMeta {
        (**self.catalog.snapshot().get(&id).unwrap()).clone()
    }

    fn objects(&self) -> Vec<String> {
        self.rt.block_on(self.cold.list("")).unwrap().into_iter().map(|o| o.key).collect()
    }

    fn hot_files(&self) -> usize {
        std::fs::read_dir(self.layout.hot_dir().join("p")).unwrap().count()
    }
}

#[test]
fn a_segment_moves_cold_then_both_then_hot_keeping_its_bytes() {
    let (f, id) = Fixture::new(true);
    let original = crate::read::read_committed(&f.layout, &f.meta(id)).unwrap();
    let hot_path = f.meta(id).hot_path().unwrap().to_string();
    let mover = f.mover("");

    let o = mover.execute(id, Placement::Cold).unwrap();
    assert_eq!((o.from, o.to, o.bytes_copied), (Placement::Hot, Placement::Cold, original.len() as u64));
    // memory:// answers ETags that are not MD5s: the upload was read back.
    assert_eq!(o.verified_by, Some(crate::moves::VerifyMethod::ReadBack));
    let m = f.meta(id);
    let key = m.cold_key().unwrap().to_string();
    assert!(key.starts_with(&format!("segments/p/{}/{id}.", crate::layout::format_day(m.day))), "{key}");
    assert_eq!(f.rt.block_on(f.cold.get(&key)).unwrap(), original);
    assert_eq!(m.blocks, Some(BlockChecksums::compute(&original, BlockChecksums::DEFAULT_BLOCK_SIZE)));
    // The hot copy is out of service but still on disk, for gc.
    assert_eq!(m.dropped.len(), 1);
    assert_eq!(m.dropped[0].location, Location::hot(&hot_path));
    assert!(m.dropped[0].generation > 0);
    assert!(f.layout.resolve(&hot_path).unwrap().exists());
    assert!(f.catalog.intents().unwrap().is_empty());

    // Again: nothing to do.
    let o = mover.execute(id, Placement::Cold).unwrap();
    assert_eq!((o.from, o.to, o.bytes_copied), (Placement::Cold, Placement::Cold, 0));
    assert_eq!(o.verified_by, None, "nothing was written");

    let o = mover.execute(id, Placement::Both).unwrap();
    assert_eq!((o.from, o.to), (Placement::Cold, Placement::Both));
    let m = f.meta(id);
    let new_hot = m.hot_path().unwrap().to_string();
    assert_ne!(new_hot, hot_path, "a promoted copy gets a fresh path");
    assert_eq!(crate::read::read_committed(&f.layout, &m).unwrap(), original);

    let o = mover.execute(id, Placement::Hot).unwrap();
    assert_eq!((o.from, o.to, o.bytes_copied), (Placement::Both, Placement::Hot, 0));
    assert_eq!(o.dropped, Some(Location::cold(&key)));
    let m = f.meta(id);
    assert_eq!(m.locations, vec![Location::hot(&new_hot)]);
    assert_eq!(m.dropped.len(), 2);
}

#[test]
fn a_move_and_a_later_rewrite_record_the_time_of_placement() {
    let (f, id) = Fixture::new(true);
    let mover = f.mover("");
    mover.execute(id, Placement::Cold).unwrap();
    f.clock.advance_ms(3_600_000);
    mover.execute(id, Placement::Hot).unwrap();
    let m = f.meta(id);
    assert_eq!(m.placed_at_ms, Some(T0 + 3_600_000), "a committed move records when");
    // Recompressed a minute later: the output is placed at the rewrite, not at its inputs' creation (which would end
    // the promoted segment's residency at once).
    f.clock.advance_ms(60_000);
    let action = tierd_policies::RewriteAction {
        kind: tierd_policies::RewriteKind::Recompress,
        project: "p".into(),
        day: m.day,
        inputs: vec![id.to_string()],
        output_codec: "zstd-9".into(),
        bytes_before: m.bytes,
        reason: "test".into(),
    };
    let out = Rewriter::new(f.ctx(""), Default::default()).execute(&action).unwrap().outputs[0];
    assert_eq!(f.meta(out).placed_at_ms, Some(T0 + 3_660_000));
}

#[test]
fn row_segments_and_unknown_segments_do_not_move() {
    let (f, id) = Fixture::new(false);
    let before = f.catalog.snapshot().generation();
    let e = f.mover("").execute(id, Placement::Cold).unwrap_err();
    assert!(matches!(e, StoreError::InvalidMove(_)), "{e}");
    assert!(e.to_string().contains("reencode"), "{e}");
    let e = f.mover("").execute(SegmentId::generate(T0), Placement::Hot).unwrap_err();
    assert!(matches!(e, StoreError::SegmentNotFound { .. }), "{e}");
    assert_eq!(f.catalog.snapshot().generation(), before);
    assert!(f.objects().is_empty());
}

/// A move that fails at any step before its commit leaves the segment as it was, no new object or file, and no
/// intent.
#[test]
fn a_failed_move_leaves_nothing_behind() {
    for point in ["move.intent", "move.write", "move.verify"] {
        let (f, id) = Fixture::new(true);
        let before = f.meta(id);
        let files = f.hot_files();
        let e = f.mover(&format!("{point}=error")).execute(id, Placement::Cold).unwrap_err();
        assert!(e.to_string().contains(point), "{point}: {e}");
        assert_eq!(f.meta(id), before, "{point}");
        assert!(f.objects().is_empty(), "{point}: {:?}", f.objects());
        assert!(f.catalog.intents().unwrap().is_empty(), "{point}");

        // And the other way: a promote that fails leaves no hot file.
        f.mover("").execute(id, Placement::Cold).unwrap();
        let cold = f.meta(id);
        let e = f.mover(&format!("{point}=error")).execute(id, Placement::Hot).unwrap_err();
        assert!(e.to_string().contains(point), "{point}: {e}");
        assert_eq!(f.meta(id), cold, "{point}");
        assert_eq!(f.hot_files(), files, "{point}: only the dropped copy and the row input remain");
        assert!(f.catalog.intents().unwrap().is_empty(), "{point}");
    }
}

/// A crash between the intent and the commit leaves an intent and maybe a copy; recovery deletes the copy and
/// clears the intent, and never touches a copy the catalog lists.
#[test]
fn recovery_rolls_back_uncommitted_moves() {
    let (f, id) = Fixture::new(true);
    let meta = f.meta(id);
    let bytes = crate::read::read_committed(&f.layout, &meta).unwrap();
    let orphan = Location::cold(Layout::cold_key("p", meta.day, id, T0, "parquet"));
    f.record_intent(id, &orphan);
    f.rt.block_on(f.cold.put_new(&orphan.path, bytes.into())).unwrap();
    let hot_orphan = Location::hot(Layout::hot_copy_location("p", id, T0, "parquet"));
    f.record_intent(id, &hot_orphan);
    std::fs::write(f.layout.resolve(&hot_orphan.path).unwrap(), b"partial").unwrap();

    let report = crate::recovery::recover(&f.ctx("")).unwrap();
    assert_eq!(report.rolled_back.len(), 2, "{report:?}");
    assert!(report.quarantined.is_empty(), "an uncommitted hot copy is deleted, not quarantined: {report:?}");
    assert!(f.objects().is_empty());
    assert!(!f.layout.resolve(&hot_orphan.path).unwrap().exists());
    assert!(f.catalog.intents().unwrap().is_empty());
    assert_eq!(f.meta(id), meta);

    // An intent whose copy was committed (cannot happen: the commit clears it) is cleared, the copy kept.
    f.mover("").execute(id, Placement::Cold).unwrap();
    let committed = f.meta(id).locations[0].clone();
    f.record_intent(id, &committed);
    crate::recovery::recover(&f.ctx("")).unwrap();
    assert!(f.catalog.intents().unwrap().is_empty());
    assert_eq!(f.objects(), vec![committed.path]);
}

/// After moves, gc takes the dropped copies (hot file, cold object) to the trash; it sends unknown objects older
/// than the grace to the trash too, keeps younger ones, and reports a live segment's missing cold copy.
#[test]
fn gc_collects_dropped_copies_orphans_and_reports_missing_objects() {
    use crate::gc::{Gc, GcAction, GcConfig};
    let (f, id) = Fixture::new(true);
    let cfg = GcConfig { grace_ms: 0, lease_ttl_ms: 0, trash_retention_ms: 86_400_000, erase_trash_retention_ms: 0 };
    let gc = Gc::new(f.ctx(""), cfg);
    let mover = f.mover("");
    let hot_path = f.meta(id).hot_path().unwrap().to_string();
    mover.execute(id, Placement::Cold).unwrap();
    let done = gc.run(T0, 0).unwrap();
    let deleted: Vec<_> = done.iter().filter(|d| d.action == GcAction::Delete && d.id == Some(id)).collect();
    assert_eq!(deleted.len(), 1, "{done:?}");
    assert_eq!(deleted[0].location, Location::hot(&hot_path));
    assert!(!f.layout.resolve(&hot_path).unwrap().exists());
    assert!(f.meta(id).dropped.is_empty());
    let key = f.meta(id).cold_key().unwrap().to_string();

    mover.execute(id, Placement::Hot).unwrap();
    gc.run(T0, 0).unwrap();
    assert!(f.objects().iter().all(|k| k.starts_with("trash/")), "{:?}", f.objects());
    assert!(f.objects().contains(&format!("trash/{T0}/{key}")), "{:?}", f.objects());
    assert!(f.meta(id).dropped.is_empty() && f.meta(id).placement() == Placement::Hot);

    // An object nobody knows: kept while young (an upload may be in progress), trashed once older than the grace.
    let orphan = "segments/p/2026-01-01/orphan.parquet";
    f.rt.block_on(f.cold.put_new(orphan, Bytes::from_static(b"x"))).unwrap();
    let written = f.rt.block_on(f.cold.head(orphan)).unwrap().unwrap().last_modified_ms;
    let young = Gc::new(f.ctx(""), GcConfig { grace_ms: 60_000, ..cfg });
    let d = young.plan(written + 59_999, 0).unwrap();
    let o = d.iter().find(|d| d.location.path == orphan).unwrap();
    assert_eq!(o.action, GcAction::Keep, "{o:?}");
    let d = young.run(written + 60_000, 0).unwrap();
    let o = d.iter().find(|d| d.location.path == orphan).unwrap();
    assert_eq!(o.action, GcAction::Orphan, "{o:?}");
    assert!(!f.objects().contains(&orphan.to_string()));

    // A live cold copy that vanished is reported, and the record is kept.
    mover.execute(id, Placement::Cold).unwrap();
    let key = f.meta(id).cold_key().unwrap().to_string();
    f.rt.block_on(f.cold.delete(&key)).unwrap();
    let d = gc.run(T0, 0).unwrap();
    let m = d.iter().find(|d| d.action == GcAction::Missing).expect("missing reported");
    assert_eq!((m.id, m.location.path.as_str()), (Some(id), key.as_str()));
    assert_eq!(f.meta(id).cold_key(), Some(key.as_str()));
}

/// An upload's check: an ETag that is not the MD5 of what was sent proves nothing, and the object is read back
/// (a good object passes, a corrupt one is an error); an ETag that is the MD5 is still checked by a HEAD, and an
/// object of the wrong size there is an error.
#[test]
fn an_upload_is_read_back_unless_its_etag_proves_it() {
    use crate::cold::PutAnswer;
    use crate::verify::s3_etag;
    let (f, id) = Fixture::new(true);
    let meta = f.meta(id);
    let bytes = Bytes::from(crate::read::read_committed(&f.layout, &meta).unwrap());
    let mover = f.mover("");
    let put = |key: &str, data: Bytes| f.rt.block_on(f.cold.put_new(key, data)).unwrap();
    let wrong_md5 = PutAnswer { e_tag: Some(format!("\"{}\"", s3_etag(b"something else", None))), part_size: None };

    put("v/good", bytes.clone());
    let method = mover.verify_upload(&meta, &Location::cold("v/good"), &bytes, &wrong_md5, None).unwrap();
    assert_eq!(method, VerifyMethod::ReadBack);

    let mut corrupt = bytes.to_vec();
    corrupt[10] ^= 1;
    put("v/corrupt", Bytes::from(corrupt));
    let e = mover.verify_upload(&meta, &Location::cold("v/corrupt"), &bytes, &wrong_md5, None).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");

    // The server claims the MD5 of what was sent, but the object found is shorter.
    put("v/short", bytes.slice(..bytes.len() - 1));
    let right_md5 = PutAnswer { e_tag: Some(s3_etag(&bytes, None)), part_size: None };
    let e = mover.verify_upload(&meta, &Location::cold("v/short"), &bytes, &right_md5, None).unwrap_err();
    assert!(e.to_string().contains("HEAD"), "{e}");
    let e = mover.verify_upload(&meta, &Location::cold("v/absent"), &bytes, &right_md5, None).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
}

/// `cold.verify` decides whether an ETag equal to the MD5 of what was sent (single PUT or multipart, quoted or not,
/// any case) is taken as proof. With "auto" it is, and only a HEAD follows: memory:// answers that HEAD with an
/// ETag of its own, not the one the upload was answered with, which is an error (the object under the key is not
/// the one uploaded). With "read_back" the same answers prove nothing: the object is read back and compared, so a
/// good object passes and one with a flipped byte is caught by its crc32c, with no HEAD involved.
#[test]
fn an_md5_etag_is_trusted_only_with_verify_auto() {
    use crate::cold::PutAnswer;
    use crate::verify::s3_etag;
    let (mut f, id) = Fixture::new(true);
    let meta = f.meta(id);
    let bytes = Bytes::from(crate::read::read_committed(&f.layout, &meta).unwrap());
    let mut flipped = bytes.to_vec();
    flipped[10] ^= 1;
    let flipped = Bytes::from(flipped);
    let part = bytes.len() as u64 / 3 + 1;
    let single = PutAnswer { e_tag: Some(format!("\"{}\"", s3_etag(&bytes, None).to_uppercase())), part_size: None };
    let multi = PutAnswer { e_tag: Some(s3_etag(&bytes, Some(part))), part_size: Some(part) };
    assert!(multi.e_tag.as_ref().unwrap().ends_with("-3"));
    let check = |f: &Fixture, key: &str, data: &Bytes, answer: &PutAnswer| {
        f.rt.block_on(f.cold.put_new(key, data.clone())).unwrap();
        f.mover("").verify_upload(&meta, &Location::cold(key), &bytes, answer, None)
    };

    for (key, answer) in [("auto/single", &single), ("auto/multi", &multi)] {
        let e = check(&f, key, &bytes, answer).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }) && e.to_string().contains("HEAD"), "{key}: {e}");
    }

    f.cold = memory_cold(VerifyMode::ReadBack);
    assert_eq!(f.cold.verify_mode(), VerifyMode::ReadBack);
    assert_eq!(check(&f, "read-back/single", &bytes, &single).unwrap(), VerifyMethod::ReadBack);
    assert_eq!(check(&f, "read-back/multi", &bytes, &multi).unwrap(), VerifyMethod::ReadBack);
    let e = check(&f, "read-back/flipped", &flipped, &single).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }) && !e.to_string().contains("HEAD"), "{e}");
    // A whole move reads back too (memory:// would anyway: its ETags are not MD5s).
    let o = f.mover("").execute(id, Placement::Cold).unwrap();
    assert_eq!(o.verified_by, Some(VerifyMethod::ReadBack));
}

/// A hot copy that fails its checksum: reads fall back to the cold copy (whole reads and scans), the bad copy is
/// queued, and the repair replaces it through two verified moves, the bad one left to gc.
#[test]
fn a_hot_copy_that_fails_its_checksum_is_read_from_cold_and_replaced() {
    let (f, id) = Fixture::new(true);
    let mover = f.mover("");
    mover.execute(id, Placement::Both).unwrap();
    let meta = f.meta(id);
    let bad_path = meta.hot_path().unwrap().to_string();
    let path = f.layout.resolve(&bad_path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    let e = crate::read::SegmentSource::hot_only(f.layout.clone()).read_events(&meta).unwrap_err();
    assert!(e.to_string().contains(&id.to_string()), "a reader without another copy fails naming it: {e}");
    let queue = Arc::new(crate::repair::RepairQueue::new(10));
    let source = crate::read::SegmentSource::new(
        f.layout.clone(),
        f.cold.clone(),
        Arc::new(crate::cache::BlockCache::disabled()),
        f.rt.handle().clone(),
    )
    .with_repairs(queue.clone());
    assert_eq!(source.read_events(&meta).unwrap().len(), 40, "read from the cold copy");
    let mut scanned = 0;
    source.scan(&meta, &crate::read::everything(), |_| scanned += 1).unwrap();
    assert_eq!(scanned, 40, "scanned from the cold copy, each event once");
    assert_eq!(queue.pending(), vec![(id, Tier::Hot)]);

    let done = crate::repair::repair(&queue, &mover, &f.catalog);
    assert_eq!(done.len(), 1);
    assert!(done[0].outcome.is_ok(), "{done:?}");
    assert!(queue.pending().is_empty());
    let after = f.meta(id);
    assert_ne!(after.hot_path(), Some(bad_path.as_str()), "a fresh hot copy");
    assert!(after.cold_key().is_some());
    assert!(after.dropped.iter().any(|d| d.location.path == bad_path), "the bad copy waits for gc");
    let hot_only = crate::read::SegmentSource::hot_only(f.layout.clone());
    assert_eq!(hot_only.read_events(&after).unwrap().len(), 40, "the new hot copy verifies");
}

/// The cold objects' bytes, by segment: each equal to the segment's original hot copy.
fn assert_cold_copies_are_the_originals(f: &Fixture, originals: &[(SegmentId, Vec<u8>)]) {
    for (id, original) in originals {
        let m = f.meta(*id);
        assert_eq!(m.placement(), Placement::Cold, "{id}");
        assert_eq!(f.rt.block_on(f.cold.get(m.cold_key().unwrap())).unwrap(), *original, "{id}");
        assert_eq!(m.blocks, Some(BlockChecksums::compute(original, BlockChecksums::DEFAULT_BLOCK_SIZE)), "{id}");
    }
}

fn originals(f: &Fixture, ids: &[SegmentId]) -> Vec<(SegmentId, Vec<u8>)> {
    ids.iter().map(|id| (*id, crate::read::read_committed(&f.layout, &f.meta(*id)).unwrap())).collect()
}

/// A series of moves reads each next hot copy ahead and uses it: every segment ends cold with its own bytes and
/// block checksums, nothing is left pending, and a copy larger than the limit is not read ahead (counted) but
/// still moves.
#[test]
fn a_series_of_moves_reads_each_next_copy_ahead() {
    let (f, ids) = Fixture::with_days(3, true);
    let before = originals(&f, &ids);
    let mover = f.mover("");
    let mut read_ahead = ReadAhead::new(1 << 30);
    for (i, id) in ids.iter().enumerate() {
        let next = ids.get(i + 1).map(|n| (*n, Placement::Cold));
        let o = mover.execute_then(*id, Placement::Cold, &mut read_ahead, next).unwrap();
        assert_eq!(o.to, Placement::Cold);
    }
    assert_eq!(read_ahead.stats(), ReadAheadStats { started: 2, used: 2, refused: 0, discarded: 0 });
    assert_cold_copies_are_the_originals(&f, &before);
    assert!(f.catalog.intents().unwrap().is_empty());

    // The limit: segments one byte larger than it are read in their turn.
    let (f, ids) = Fixture::with_days(3, true);
    let before = originals(&f, &ids);
    let smallest = ids.iter().map(|id| f.meta(*id).bytes).min().unwrap();
    let mut read_ahead = ReadAhead::new(smallest - 1);
    let mover = f.mover("");
    for (i, id) in ids.iter().enumerate() {
        let next = ids.get(i + 1).map(|n| (*n, Placement::Cold));
        mover.execute_then(*id, Placement::Cold, &mut read_ahead, next).unwrap();
    }
    assert_eq!(read_ahead.stats(), ReadAheadStats { started: 0, used: 0, refused: 2, discarded: 0 });
    assert_cold_copies_are_the_originals(&f, &before);

    // Off (0): nothing is read ahead or counted.
    let mut off = ReadAhead::off();
    let (f, ids) = Fixture::with_days(2, true);
    f.mover("").execute_then(ids[0], Placement::Cold, &mut off, Some((ids[1], Placement::Cold))).unwrap();
    assert_eq!(off.stats(), ReadAheadStats::default());
}

/// A copy read ahead under a record that has changed since (the segment went cold and came back to a fresh hot
/// path) is discarded, and the move uploads the copy the record names now.
#[test]
fn a_copy_read_ahead_under_an_older_record_is_not_used() {
    let (f, ids) = Fixture::with_days(2, true);
    let (a, b) = (ids[0], ids[1]);
    let mover = f.mover("");
    let mut read_ahead = ReadAhead::new(1 << 30);
    mover.execute_then(a, Placement::Cold, &mut read_ahead, Some((b, Placement::Cold))).unwrap();
    assert_eq!(read_ahead.stats().started, 1);
    let old = f.meta(b);
    mover.execute(b, Placement::Cold).unwrap();
    mover.execute(b, Placement::Hot).unwrap();
    let now = f.meta(b);
    assert_ne!((now.hot_path(), now.updated_generation), (old.hot_path(), old.updated_generation));
    let original = crate::read::read_committed(&f.layout, &now).unwrap();
    let o = mover.execute_then(b, Placement::Cold, &mut read_ahead, None).unwrap();
    assert_eq!(o.to, Placement::Cold);
    assert_eq!(read_ahead.stats(), ReadAheadStats { started: 1, used: 0, refused: 0, discarded: 1 });
    assert_cold_copies_are_the_originals(&f, &[(b, original)]);
}

/// In a series, a move that fails (a failpoint after its upload; a hot copy that fails its checksum while read
/// ahead) leaves nothing behind, exactly as alone, and the moves after it go on with their copies read ahead.
#[test]
fn a_failed_move_in_a_series_leaves_nothing_behind() {
    for point in ["move.intent", "move.write", "move.verify"] {
        let (f, ids) = Fixture::with_days(4, true);
        let before = originals(&f, &ids);
        let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
        let (meta_a, meta_c) = (f.meta(a), f.meta(c));
        // C's hot copy is damaged on disk: its read (ahead, during B's upload) fails its checksum.
        let path_c = f.layout.resolve(meta_c.hot_path().unwrap()).unwrap();
        let mut damaged = std::fs::read(&path_c).unwrap();
        damaged[7] ^= 1;
        std::fs::write(&path_c, &damaged).unwrap();

        let mover = f.mover(&format!("{point}=error@1"));
        let mut read_ahead = ReadAhead::new(1 << 30);
        let mut results = vec![];
        for (i, id) in ids.iter().enumerate() {
            let next = ids.get(i + 1).map(|n| (*n, Placement::Cold));
            results.push(mover.execute_then(*id, Placement::Cold, &mut read_ahead, next));
        }
        let e = results[0].as_ref().unwrap_err();
        assert!(e.to_string().contains(point), "{point}: {e}");
        assert!(results[1].is_ok(), "{point}: {:?}", results[1]);
        let e = results[2].as_ref().unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{point}: {e}");
        assert!(results[3].is_ok(), "{point}: {:?}", results[3]);
        assert_eq!(read_ahead.stats(), ReadAheadStats { started: 3, used: 3, refused: 0, discarded: 0 }, "{point}");

        assert_eq!(f.meta(a), meta_a, "{point}");
        assert_eq!(f.meta(c), meta_c, "{point}");
        assert!(f.catalog.intents().unwrap().is_empty(), "{point}");
        let mut objects = f.objects();
        objects.sort();
        let mut expected: Vec<String> = [b, d].iter().map(|id| f.meta(*id).cold_key().unwrap().to_string()).collect();
        expected.sort();
        assert_eq!(objects, expected, "{point}: only B's and D's uploads");
        assert_cold_copies_are_the_originals(&f, &[before[1].clone(), before[3].clone()]);
    }
}
