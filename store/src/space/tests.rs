//! The reserves, as every writer meets them: a refusal writes nothing (sled untouched, no file), is counted, and the
//! same call goes through once there is room, without a restart. "No room" is a reserve set above what the disk
//! has free; "room" is a reserve of 1 byte.

use std::collections::BTreeSet;
use std::sync::Arc;

use tierd_codecs::Event;

use super::*;
use crate::catalog::{Catalog, CatalogChange, Intent, IntentKind, SegmentState};
use crate::clock::ManualClock;
use crate::deletions::{DeletionLimits, DeletionLog};
use crate::heat::{HeatTracker, ReadSource};
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::layout::{Layout, Location, SegmentId};
use crate::recovery::recover;
use crate::testing::{context, row_meta, T0};

fn events(from: u64, n: u64) -> Vec<Event> {
    (from..from + n)
        .map(|i| Event {
            event: "E".into(),
            time_ms: T0 + i as i64,
            distinct_id: format!("u{}", i % 3),
            insert_id: format!("id{i}"),
            properties: Default::default(),
        })
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// More than the disk has free: every check refuses.
fn no_room(dir: &Path) -> u64 {
    free_bytes(dir).unwrap().saturating_mul(2)
}

#[test]
fn a_reserve_refuses_exactly_when_the_write_would_cross_it() {
    let dir = tempfile::tempdir().unwrap();
    let free = free_bytes(dir.path()).unwrap();
    assert!(check(dir.path(), "rewrite", BACKGROUND_RESERVE, 0, u64::MAX, "k").is_ok(), "0: no check");
    let e = check(dir.path(), "rewrite", BACKGROUND_RESERVE, free.saturating_mul(2), 0, "passes.x").unwrap_err();
    assert!(matches!(e, StoreError::DiskReserve(_)) && e.to_string().contains("passes.x"), "{e}");
    // Far from the edge (other tests write to the same disk meanwhile, so not at the exact byte).
    assert!(check(dir.path(), "rewrite", BACKGROUND_RESERVE, 1, free / 2, "k").is_ok());
    assert!(check(dir.path(), "rewrite", BACKGROUND_RESERVE, free / 2, free, "k").is_err());
}

/// Below the catalog's headroom no tierd write reaches sled: commits, intents, heat and deletion requests
/// are refused with a clear error and leave the database as it was; with room, the same calls go through.
#[test]
fn below_the_catalog_headroom_nothing_is_written_to_sled_and_everything_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let clock = ManualClock::new(T0);
    let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
    let heat = HeatTracker::open(catalog.clone(), Arc::new(clock.clone()), Default::default()).unwrap();
    let deletions = DeletionLog::open(catalog.clone()).unwrap();
    let limits =
        DeletionLimits { max_ids_per_request: 10, max_request_bytes: 100, max_active_requests: 10, max_conditions: 2 };
    let id = SegmentId::generate(T0);
    let meta = row_meta("p", 20_454, id);
    let intent = Intent::new(id, Location::hot(Layout::hot_location("p", id)), IntentKind::Move, T0);
    let users = || BTreeSet::from(["u1".to_string()]);

    catalog.set_min_free_bytes(no_room(dir.path()));
    let says = |e: StoreError| {
        assert!(matches!(e, StoreError::DiskReserve(_)) && e.to_string().contains("catalog.min_free_bytes"), "{e}");
    };
    says(catalog.commit(vec![CatalogChange::Put(meta.clone())]).unwrap_err());
    says(catalog.record_intents(std::slice::from_ref(&intent)).unwrap_err());
    // Leases are held in memory: a lookup is still answered on a full disk.
    catalog.grant_lease(T0, 1000, 0, vec![id]).unwrap();
    assert!(heat.record(id, ReadSource::Query, 10));
    says(heat.flush().unwrap_err());
    says(deletions.request("p", users(), T0, &limits).unwrap_err());
    assert_eq!(catalog.snapshot().generation(), 0, "no commit");
    assert!(catalog.intents().unwrap().is_empty());
    assert!(deletions.list().is_empty(), "the refused deletion request is not held in memory either");

    catalog.set_min_free_bytes(1);
    assert_eq!(catalog.commit(vec![CatalogChange::Put(meta)]).unwrap(), 1);
    catalog.record_intents(&[intent]).unwrap();
    catalog.grant_lease(T0, 1000, 1, vec![id]).unwrap();
    assert_eq!(heat.flush().unwrap().written, 1, "the count kept in memory is written now");
    deletions.request("p", users(), T0, &limits).unwrap().unwrap();
    assert_eq!((catalog.intents().unwrap().len(), catalog.live_leases(0).unwrap().len()), (1, 2));
}

/// The hot writer under the catalog's headroom: a group is refused like a full disk (503, nothing visible, the
/// file cut back) and the writer goes on; a due seal waits (the segment stays open and readable) and happens once
/// there is room.
#[test]
fn the_hot_writer_refuses_groups_and_defers_seals_below_the_catalog_headroom() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let clock = ManualClock::new(T0);
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let ctx = context(&layout, &catalog, &clock, "");
        let config = HotConfig { min_free_bytes: 0, seal_max_age_ms: 60_000, ..HotConfig::default() };
        let hot = HotTier::start(&ctx, config, Arc::new(|_| panic!("not fatal"))).unwrap();
        hot.append(IngestBatch::encode("p".into(), events(0, 5))).await.unwrap();
        let committed = catalog.snapshot().segments().next().unwrap().clone();

        catalog.set_min_free_bytes(no_room(dir.path()));
        let err = hot.append(IngestBatch::encode("p".into(), events(5, 5))).await.unwrap_err();
        assert!(
            matches!(err, StoreError::HotTierFull(_)) && err.to_string().contains("catalog.min_free_bytes"),
            "{err}"
        );
        let path = dir.path().join(committed.hot_path().unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), committed.bytes, "cut back to the committed length");
        clock.advance_ms(60_000);
        hot.seal_check().await.unwrap();
        let s = catalog.snapshot();
        assert_eq!((s.generation(), s.get(&committed.id).unwrap().state), (1, SegmentState::Open), "seal deferred");

        catalog.set_min_free_bytes(1);
        hot.seal_check().await.unwrap();
        assert_eq!(catalog.snapshot().get(&committed.id).unwrap().state, SegmentState::Sealed);
        hot.append(IngestBatch::encode("p".into(), events(5, 5))).await.unwrap();
        let rows: u64 = catalog.snapshot().segments().map(|m| m.rows).sum();
        assert_eq!(rows, 10, "exactly the acknowledged batches");
        hot.shutdown().await;
    });
}

/// A restart on a disk below the catalog's headroom: recovery cuts the unacknowledged tail (that frees space) but
/// commits nothing, so the open segment stays open; the writer takes it over, reads are served, and the segment is
/// sealed once there is room.
#[test]
fn a_restart_below_the_catalog_headroom_leaves_open_segments_to_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let (id, path) = rt().block_on(async {
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let ctx = context(&layout, &catalog, &ManualClock::new(T0), "");
        let hot = HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap();
        hot.append(IngestBatch::encode("p".into(), events(0, 5))).await.unwrap();
        let m = catalog.snapshot().segments().next().unwrap().clone();
        // A crash: the writer never seals, and an unacknowledged tail lies past the committed length.
        std::mem::forget(hot);
        let path = dir.path().join(m.hot_path().unwrap());
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, b"torn tail").unwrap();
        (m.id, path)
    });
    // sled holds its lock while the forgotten writer lives: reopen a copy, as the hot tier's own tests do.
    let copy = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", dir.path().display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let layout = Layout::new(copy.path());
    let path = copy.path().join(path.strip_prefix(dir.path()).unwrap());
    let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
    catalog.set_min_free_bytes(no_room(copy.path()));
    let clock = ManualClock::new(T0 + 1);
    let ctx = context(&layout, &catalog, &clock, "");
    let report = recover(&ctx).unwrap();
    assert_eq!(report.truncated.len(), 1, "{report:?}");
    assert!(report.sealed.is_empty(), "{report:?}");
    let m = catalog.snapshot().get(&id).unwrap().clone();
    assert_eq!((m.state, std::fs::metadata(&path).unwrap().len()), (SegmentState::Open, m.bytes));
    assert_eq!(crate::read::read_events(&layout, &m).unwrap().len(), 5, "reads are served");
    rt().block_on(async {
        let config = HotConfig { seal_max_age_ms: 60_000, ..HotConfig::default() };
        let hot = HotTier::start(&ctx, config, Arc::new(|_| panic!("not fatal"))).unwrap();
        clock.advance_ms(60_000);
        hot.seal_check().await.unwrap();
        assert_eq!(catalog.snapshot().get(&id).unwrap().state, SegmentState::Open, "no room yet");
        catalog.set_min_free_bytes(1);
        hot.seal_check().await.unwrap();
        assert_eq!(catalog.snapshot().get(&id).unwrap().state, SegmentState::Sealed, "the writer sealed it");
        hot.shutdown().await;
    });
}

/// The emergency ballast: made (allocated, not sparse) when there is room, kept as it is, given back when the disk
/// has less free than its size, and removed when its size is set to 0.
#[test]
fn the_emergency_ballast_is_made_with_room_and_given_back_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(BALLAST_FILE);
    assert_eq!(keep_ballast(dir.path(), 1 << 20).unwrap(), 1 << 20);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
    assert!(std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&path).unwrap()) * 512 >= 1 << 20, "allocated");
    assert_eq!(keep_ballast(dir.path(), 1 << 20).unwrap(), 1 << 20, "kept");
    // "Full": a ballast larger than what is free is given back (and not made again in that state).
    let more = no_room(dir.path());
    assert_eq!(keep_ballast(dir.path(), more).unwrap(), 0);
    assert!(!path.exists());
    assert_eq!(keep_ballast(dir.path(), more).unwrap(), 0);
    assert_eq!(keep_ballast(dir.path(), 4096).unwrap(), 4096);
    assert_eq!(keep_ballast(dir.path(), 0).unwrap(), 0);
    assert!(!path.exists());
}

/// A start on a full disk gave the ballast back; once space is back the running daemon makes it again, and never
/// removes one (the reserves guard the last bytes while it runs).
#[test]
fn the_ballast_given_back_at_start_is_made_again_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(BALLAST_FILE);
    assert_eq!(remake_ballast(dir.path(), 0).unwrap(), 0, "no ballast configured");
    assert!(!path.exists());
    // "No space": more than half the free space asked for.
    let too_big = free_bytes(dir.path()).unwrap() / 2 + (1 << 30);
    assert_eq!(remake_ballast(dir.path(), too_big).unwrap(), 0);
    assert!(!path.exists(), "never made by filling the disk");
    assert_eq!(remake_ballast(dir.path(), 1 << 20).unwrap(), 1 << 20, "space is back");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
    assert_eq!(remake_ballast(dir.path(), too_big).unwrap(), 1 << 20, "an existing ballast is kept as it is");
    assert!(path.exists());
}

/// Why the catalog's headroom exists, measured: on a really full file system (a tmpfs filled by a ballast file)
/// a commit that reaches sled fails with ENOSPC, and sled 0.34 keeps that as its global error: after the ballast is
/// gone, with plenty of room, every later write still fails until the database is reopened (a restart). With the
/// headroom set, the same commit is refused before sled is touched and the catalog works once space is back.
#[test]
fn sled_meets_enospc_only_without_the_headroom_and_then_fails_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("full");
    let Some(_mount) = crate::testing::Tmpfs::mount(&root, "4m") else { return };
    let layout = Layout::new(&root);
    let meta = |n: u64| {
        let id = SegmentId::generate(T0 + n as i64);
        crate::testing::row_meta("p", 20_454, id)
    };
    let fill = |path: &Path| {
        let mut f = std::fs::File::create(path).unwrap();
        let buf = vec![0u8; 4096];
        while std::io::Write::write(&mut f, &buf).is_ok_and(|n| n > 0) {}
    };
    let ballast = root.join("ballast");
    {
        let catalog = Catalog::open(&layout.catalog_dir()).unwrap();
        catalog.commit(vec![CatalogChange::Put(meta(0))]).unwrap();
        // With the headroom: refused up front, and fine once space is back.
        catalog.set_min_free_bytes(1 << 20);
        fill(&ballast);
        let e = catalog.commit(vec![CatalogChange::Put(meta(1))]).unwrap_err();
        assert!(matches!(e, StoreError::DiskReserve(_)), "{e}");
        std::fs::remove_file(&ballast).unwrap();
        catalog.commit(vec![CatalogChange::Put(meta(1))]).unwrap();
        // Without it: sled meets ENOSPC ...
        catalog.set_min_free_bytes(0);
        fill(&ballast);
        let mut failed = None;
        for n in 2..200 {
            // (sled may buffer a few small writes before one reaches the full disk)
            if let Err(e) = catalog.commit(vec![CatalogChange::Put(meta(n))]) {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("a commit on a full disk fails");
        assert!(matches!(e, StoreError::Catalog { .. }) && e.to_string().contains("No space left"), "{e}");
        // ... and keeps failing with room again.
        std::fs::remove_file(&ballast).unwrap();
        let again = catalog.commit(vec![CatalogChange::Put(meta(500))]).unwrap_err();
        eprintln!("sled after ENOSPC, with room again: {again}");
        assert!(matches!(again, StoreError::Catalog { .. }), "{again}");
    }
    // A reopen (a restart) works, and holds every commit that succeeded.
    let catalog = crate::catalog::open_retrying(&layout.catalog_dir());
    assert!(catalog.snapshot().segments().count() >= 2);
    catalog.commit(vec![CatalogChange::Put(meta(501))]).unwrap();
}
