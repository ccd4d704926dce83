use std::sync::Arc;

use serde_json::json;
use tierd_codecs::Event;

use super::*;
use crate::catalog::{Catalog, SegmentState};
use crate::clock::{Clock, ManualClock};
use crate::layout::Layout;
use crate::query::{execute, GroupBy, Query};
use crate::recovery::recover;
use crate::testing::{context, T0};

const DAY_MS: i64 = 86_400_000;

fn event(i: u64, time_ms: i64) -> Event {
    let mut properties = serde_json::Map::new();
    properties.insert("i".into(), json!(i));
    Event { event: "E".into(), time_ms, distinct_id: format!("u{}", i % 7), insert_id: format!("id{i}"), properties }
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: ManualClock,
    catalog: Arc<Catalog>,
    hot: HotTier,
}

fn start(dir: tempfile::TempDir, clock: ManualClock, config: HotConfig) -> Fixture {
    start_on(dir, clock, config, None)
}

/// [`start`] over a hot-tier file system of the test's choice (faults).
fn start_on(
    dir: tempfile::TempDir,
    clock: ManualClock,
    config: HotConfig,
    fs: Option<Arc<dyn crate::durable::HotFs>>,
) -> Fixture {
    let layout = Layout::new(dir.path());
    let catalog = Arc::new(crate::catalog::open_retrying(&layout.catalog_dir()));
    let mut ctx = context(&layout, &catalog, &clock, "");
    if let Some(fs) = fs {
        ctx = ctx.with_fs(fs);
    }
    recover(&ctx).unwrap();
    let hot = HotTier::start(&ctx, config, Arc::new(|_| {})).unwrap();
    Fixture { dir, clock, catalog, hot }
}

fn count(f: &Fixture, project: &str) -> u64 {
    let q = Query {
        project: project.into(),
        from_ms: 0,
        to_ms: i64::MAX,
        event: None,
        filters: vec![],
        group_by: GroupBy::None,
    };
    execute(&crate::read::SegmentSource::hot_only(Layout::new(f.dir.path())), &f.catalog.snapshot(), &q).unwrap().total
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_batch_spanning_days_commits_once_into_one_segment_per_day() {
    rt().block_on(async {
        let f = start(tempfile::tempdir().unwrap(), ManualClock::new(T0), HotConfig::default());
        let events: Vec<Event> = (0..30).map(|i| event(i, T0 + (i as i64 % 3) * DAY_MS + i as i64)).collect();
        let before = f.catalog.snapshot().generation();
        let a = f.hot.append(IngestBatch::encode("p".into(), events)).await.unwrap();
        assert_eq!(a.events, 30);
        assert_eq!(a.generation, before + 1, "one commit for the whole batch");
        let s = f.catalog.snapshot();
        let segs: Vec<_> = s.lookup("p", 0, i64::MAX);
        assert_eq!(segs.len(), 3);
        assert!(segs.iter().all(|m| m.rows == 10 && m.state == SegmentState::Open));
        assert_eq!(count(&f, "p"), 30);
        assert_eq!(count(&f, "other"), 0);
    });
}

#[test]
fn segments_seal_by_age_on_the_manual_clock_and_by_size() {
    rt().block_on(async {
        let cfg = HotConfig { seal_max_age_ms: 60_000, seal_max_bytes: 1 << 30, ..HotConfig::default() };
        let f = start(tempfile::tempdir().unwrap(), ManualClock::new(T0), cfg);
        f.hot.append(IngestBatch::encode("p".into(), vec![event(1, T0)])).await.unwrap();
        f.clock.advance_ms(59_999);
        f.hot.seal_check().await.unwrap();
        assert_eq!(f.catalog.snapshot().lookup("p", 0, i64::MAX)[0].state, SegmentState::Open);
        f.clock.advance_ms(1);
        f.hot.seal_check().await.unwrap();
        let segs = f.catalog.snapshot().lookup("p", 0, i64::MAX);
        assert_eq!(segs[0].state, SegmentState::Sealed);
        // The next batch for the same day opens a new segment.
        f.hot.append(IngestBatch::encode("p".into(), vec![event(2, T0 + 5)])).await.unwrap();
        assert_eq!(f.catalog.snapshot().lookup("p", 0, i64::MAX).len(), 2);
        assert_eq!(count(&f, "p"), 2);
    });
    rt().block_on(async {
        let cfg = HotConfig { seal_max_bytes: 1, ..HotConfig::default() };
        let f = start(tempfile::tempdir().unwrap(), ManualClock::new(T0), cfg);
        f.hot.append(IngestBatch::encode("p".into(), vec![event(1, T0)])).await.unwrap();
        f.hot.seal_check().await.unwrap();
        assert_eq!(f.catalog.snapshot().lookup("p", 0, i64::MAX)[0].state, SegmentState::Sealed);
    });
}

/// A day's segment is sealed `seal_lateness_ms` after its UTC day ends, long before `seal_max_age_ms`; today's stays
/// open; a late event of the sealed day opens a new segment, sealed `seal_lateness_ms` after it was created.
#[test]
fn segments_seal_by_date_after_the_lateness_allowance() {
    rt().block_on(async {
        let lateness = 600_000;
        let cfg = HotConfig {
            seal_max_age_ms: 7 * DAY_MS,
            seal_lateness_ms: lateness,
            seal_max_bytes: 1 << 30,
            ..HotConfig::default()
        };
        let day = T0.div_euclid(DAY_MS);
        let midnight = (day + 1) * DAY_MS;
        let f = start(tempfile::tempdir().unwrap(), ManualClock::new(midnight - 600_000), cfg);
        let state = |f: &Fixture, from: i64, to: i64| -> Vec<SegmentState> {
            f.catalog.snapshot().lookup("p", from, to).iter().map(|m| m.state).collect()
        };
        f.hot.append(IngestBatch::encode("p".into(), vec![event(1, midnight - 700_000)])).await.unwrap();
        f.clock.set_ms(midnight + lateness - 1);
        // Today's first event: its segment must stay open.
        f.hot.append(IngestBatch::encode("p".into(), vec![event(2, midnight + 5)])).await.unwrap();
        f.hot.seal_check().await.unwrap();
        assert_eq!(state(&f, 0, midnight), vec![SegmentState::Open], "1 ms before midnight + lateness");
        f.clock.advance_ms(1);
        f.hot.seal_check().await.unwrap();
        assert_eq!(state(&f, 0, midnight), vec![SegmentState::Sealed], "at midnight + lateness");
        assert_eq!(state(&f, midnight, i64::MAX), vec![SegmentState::Open], "today stays open");
        // A straggler of yesterday: a new segment of that day, with its own allowance from its creation.
        f.hot.append(IngestBatch::encode("p".into(), vec![event(3, midnight - 1)])).await.unwrap();
        let created = f.clock.now_ms();
        f.clock.set_ms(created + lateness - 1);
        f.hot.seal_check().await.unwrap();
        let mut states = state(&f, 0, midnight);
        states.sort_by_key(|s| s.label());
        assert_eq!(states, vec![SegmentState::Open, SegmentState::Sealed]);
        f.clock.advance_ms(1);
        f.hot.seal_check().await.unwrap();
        assert_eq!(state(&f, 0, midnight), vec![SegmentState::Sealed, SegmentState::Sealed]);
        assert_eq!(count(&f, "p"), 3);
    });
}

#[test]
fn sealed_by_date_is_due_at_the_later_of_midnight_and_creation_plus_lateness() {
    let day = 20_000;
    let midnight = (i64::from(day) + 1) * DAY_MS;
    assert!(!sealed_by_date(day, midnight - 5, midnight + 99, 100));
    assert!(sealed_by_date(day, midnight - 5, midnight + 100, 100));
    assert!(!sealed_by_date(day, midnight + 50, midnight + 149, 100), "created after midnight");
    assert!(sealed_by_date(day, midnight + 50, midnight + 150, 100));
    assert!(sealed_by_date(day, 0, midnight, 0));
    assert!(!sealed_by_date(day, 0, midnight - 1, 0));
}

#[test]
fn hot_tier_limit_refuses_whole_batches_and_writes_nothing() {
    rt().block_on(async {
        let cfg = HotConfig { max_bytes: 2_000, ..HotConfig::default() };
        let f = start(tempfile::tempdir().unwrap(), ManualClock::new(T0), cfg);
        f.hot.append(IngestBatch::encode("p".into(), vec![event(1, T0)])).await.unwrap();
        let big: Vec<Event> = (0..200).map(|i| event(1000 + i, T0 + i as i64 * DAY_MS / 100)).collect();
        let generation = f.catalog.snapshot().generation();
        let err = f.hot.append(IngestBatch::encode("p".into(), big)).await.unwrap_err();
        assert!(matches!(err, StoreError::HotTierFull(_)), "{err}");
        assert_eq!(f.catalog.snapshot().generation(), generation);
        assert_eq!(count(&f, "p"), 1);
    });
}

/// Disk faults in the middle of a group commit (a full disk, a failed fsync, a failed create, a disk that drops
/// half a write) are answered as errors and acknowledge nothing; the file is cut back to its committed length, and
/// the next request is written as if nothing had happened.
#[test]
fn disk_faults_acknowledge_nothing_and_leave_the_segment_as_committed() {
    use crate::durable::{FaultyFs, FsFault, FsFaultKind, FsOp, OsFs};
    // The first request creates a segment (a create, a header write and a frame write, one data fsync); the second
    // creates another (a create and a header write) and writes a frame into each (two writes, two data fsyncs).
    // `skip` lets the operations before the one under test pass.
    let cases = [
        (FsOp::Write, 3, FsFaultKind::Enospc, "full"),
        (FsOp::SyncData, 1, FsFaultKind::Eio, "EIO"),
        (FsOp::CreateNew, 1, FsFaultKind::Eio, "EIO"),
    ];
    for (op, skip, kind, says) in cases {
        rt().block_on(async {
            let fs = FaultyFs::new(Arc::new(OsFs), vec![FsFault::new(op, kind).after(skip).times(1)]);
            let f =
                start_on(tempfile::tempdir().unwrap(), ManualClock::new(T0), HotConfig::default(), Some(Arc::new(fs)));
            f.hot.append(IngestBatch::encode("p".into(), vec![event(1, T0)])).await.unwrap();
            let before = f.catalog.snapshot();
            // A new day (a new segment, for the create case) and the open one.
            let batch = vec![event(2, T0 + 1), event(3, T0 + DAY_MS)];
            let err = f.hot.append(IngestBatch::encode("p".into(), batch.clone())).await.unwrap_err();
            assert!(err.to_string().contains(says), "{op:?}: {err}");
            assert_eq!(f.catalog.snapshot().generation(), before.generation(), "{op:?}: nothing committed");
            for m in before.segments() {
                let len = std::fs::metadata(f.dir.path().join(m.hot_path().unwrap())).unwrap().len();
                assert_eq!(len, m.bytes, "{op:?}: the file is cut back to its committed length");
            }
            assert_eq!(count(&f, "p"), 1, "{op:?}");
            // The fault is gone: the same request goes through whole.
            f.hot.append(IngestBatch::encode("p".into(), batch)).await.unwrap();
            assert_eq!(count(&f, "p"), 3, "{op:?}");
            f.hot.shutdown().await;
        });
    }
}

/// A disk that silently drops half of a write is not caught by the writer (it trusts `pwrite`), but the
/// segment's checksum is: the committed bytes no longer carry the catalog's crc32c, and reads refuse them.
#[test]
fn a_torn_write_is_refused_on_read_not_served() {
    use crate::durable::{FaultyFs, FsFault, FsFaultKind, FsOp, OsFs};
    rt().block_on(async {
        let fs = FaultyFs::new(Arc::new(OsFs), vec![FsFault::new(FsOp::Write, FsFaultKind::ShortWrite).after(1)]);
        let f = start_on(tempfile::tempdir().unwrap(), ManualClock::new(T0), HotConfig::default(), Some(Arc::new(fs)));
        f.hot.append(IngestBatch::encode("p".into(), vec![event(1, T0), event(2, T0 + 1)])).await.unwrap();
        let m = f.catalog.snapshot().segments().next().unwrap().clone();
        let err = crate::read::read_committed(&Layout::new(f.dir.path()), &m).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. } | StoreError::Io { .. }), "{err}");
        f.hot.shutdown().await;
    });
}

#[test]
fn recovery_cuts_unacknowledged_tails_seals_and_quarantines_unknown_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = rt().block_on(async {
        let f = start(dir, ManualClock::new(T0), HotConfig::default());
        f.hot.append(IngestBatch::encode("p".into(), (0..5).map(|i| event(i, T0 + i as i64)).collect())).await.unwrap();
        let seg = f.catalog.snapshot().lookup("p", 0, i64::MAX)[0].clone();
        let path = f.dir.path().join(seg.hot_path().unwrap());
        // Simulate a crash: an unacknowledged (and torn) frame past the committed length, and a stray file.
        let mut frame = Vec::new();
        tierd_codecs::FrameBody::encode(&[event(99, T0)]).write_frame(1_000, &mut frame);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, &frame[..frame.len() - 3]).unwrap();
        std::fs::write(f.dir.path().join("hot/p/01ARZ3NDEKTSV4RRFFQ69G5FAV.rows"), b"junk").unwrap();
        // Drop without shutdown: the writer thread is left as a crashed process would leave it.
        std::mem::forget(f.hot);
        (f.dir, seg, path)
    });
    let (dir, seg, path) = path;
    let layout = Layout::new(dir.path());
    // sled holds a lock on the catalog while the forgotten writer lives; reopen through a copy of the directory.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let layout2 = Layout::new(copy.path());
    let catalog = Arc::new(Catalog::open(&layout2.catalog_dir()).unwrap());
    let report = recover(&context(&layout2, &catalog, &ManualClock::new(T0 + 1), "")).unwrap();
    let _ = layout;
    assert_eq!(report.truncated.len(), 1);
    assert_eq!(report.sealed, vec![seg.id.to_string()]);
    assert_eq!(report.quarantined, vec!["hot/p/01ARZ3NDEKTSV4RRFFQ69G5FAV.rows".to_string()]);
    assert!(report.missing.is_empty() && report.corrupt.is_empty());
    let rel = path.strip_prefix(dir.path()).unwrap();
    assert_eq!(std::fs::metadata(copy.path().join(rel)).unwrap().len(), seg.bytes);
    let events = crate::read::read_events(&layout2, &catalog.snapshot().get(&seg.id).unwrap().clone()).unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(catalog.snapshot().get(&seg.id).unwrap().state, SegmentState::Sealed);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[test]
fn sequences_continue_after_restart_so_later_copies_win() {
    let dir = tempfile::tempdir().unwrap();
    let dir = rt().block_on(async {
        let f = start(dir, ManualClock::new(T0), HotConfig::default());
        f.hot.append(IngestBatch::encode("p".into(), vec![event(1, T0)])).await.unwrap();
        f.hot.shutdown().await;
        f.dir
    });
    rt().block_on(async {
        let f = start(dir, ManualClock::new(T0 + 10), HotConfig::default());
        let mut again = event(1, T0);
        again.properties.insert("v".into(), json!(2));
        f.hot.append(IngestBatch::encode("p".into(), vec![again])).await.unwrap();
        let s = f.catalog.snapshot();
        let segs = s.lookup("p", 0, i64::MAX);
        assert_eq!(segs.len(), 2);
        assert!(segs[0].max_seq < segs[1].min_seq || segs[1].max_seq < segs[0].min_seq);
        assert_eq!(count(&f, "p"), 1, "a re-sent copy is the same event");
        let q = Query {
            project: "p".into(),
            from_ms: 0,
            to_ms: i64::MAX,
            event: None,
            filters: vec![crate::query::Filter { property: "v".into(), op: crate::query::Op::Eq, value: json!(2) }],
            group_by: GroupBy::None,
        };
        assert_eq!(
            execute(&crate::read::SegmentSource::hot_only(Layout::new(f.dir.path())), &s, &q).unwrap().total,
            1,
            "the copy ingested last wins"
        );
    });
}

#[test]
fn the_ingest_fast_path_encodes_the_same_parts_as_the_event_path() {
    let events: Vec<Event> = (0..50).map(|i| event(i, T0 + (i as i64 % 4) * DAY_MS - 7 + i as i64)).collect();
    let body: Vec<u8> = events
        .iter()
        .flat_map(|e| {
            let mut line = serde_json::to_vec(&e.to_mixpanel_json()).unwrap();
            line.push(b'\n');
            line
        })
        .collect();
    let limits = tierd_codecs::BatchLimits::default();
    let rows = tierd_codecs::parse_batch_rows(&body, &limits).unwrap();
    let fast = IngestBatch::encode_rows("p".into(), &rows);
    let slow = IngestBatch::encode("p".into(), tierd_codecs::parse_batch(&body, &limits).unwrap());
    assert_eq!(fast.events, 50);
    assert_eq!(fast.parts.len(), 5, "the events fall on five UTC days");
    let key = |b: &IngestBatch| b.parts.iter().map(|p| (p.day, p.body.clone())).collect::<Vec<_>>();
    assert_eq!(key(&fast), key(&slow));
}

#[test]
fn open_segments_stay_under_the_cap_within_a_group_and_a_wider_batch_is_refused() {
    rt().block_on(async {
        let config = HotConfig { max_open_segments: 4, ..HotConfig::default() };
        let f = start(tempfile::tempdir().unwrap(), ManualClock::new(T0), config);
        // Queued together (one poll sends them all), so the writer takes them as one group of 24 days.
        let appends = (0..8u64).map(|r| {
            let events: Vec<Event> = (0..3).map(|d| event(r * 3 + d, T0 - (r * 3 + d) as i64 * DAY_MS)).collect();
            f.hot.append(IngestBatch::encode("p".into(), events))
        });
        for appended in futures::future::join_all(appends).await {
            assert_eq!(appended.unwrap().events, 3);
        }
        let s = f.catalog.snapshot();
        let segments = s.lookup("p", 0, i64::MAX);
        assert_eq!(segments.len(), 24);
        let open = segments.iter().filter(|m| m.state == SegmentState::Open).count();
        assert!(open <= 4, "{open} segments open");
        assert_eq!(count(&f, "p"), 24);

        // One batch on more days than may be open: refused whole, nothing written.
        let wide: Vec<Event> = (0..5).map(|d| event(100 + d, T0 + d as i64 * DAY_MS)).collect();
        let err = f.hot.append(IngestBatch::encode("p".into(), wide)).await.unwrap_err();
        assert!(matches!(err, StoreError::BatchTooWide { days: 5, max: 4 }), "{err}");
        assert_eq!(count(&f, "p"), 24);
    });
}

/// `seal_max_rows` (`hot.seal_max_events`): a group is split and full segments sealed so that no segment passes the
/// cap, whether requests arrive together or one by one; only a single request's events of one day may pass it, in a
/// segment of their own.
#[test]
fn segments_never_pass_the_event_cap_except_by_one_request() {
    rt().block_on(async {
        let config = HotConfig { seal_max_rows: 25, ..HotConfig::default() };
        let f = start(tempfile::tempdir().unwrap(), ManualClock::new(T0), config);
        let batch = |from: u64, n: u64| {
            let events: Vec<Event> = (from..from + n).map(|i| event(i, T0 + i as i64)).collect();
            IngestBatch::encode("p".into(), events)
        };
        // Seven requests of 10 queued together (one group), then three one by one.
        let together = (0..7u64).map(|r| f.hot.append(batch(r * 10, 10)));
        for appended in futures::future::join_all(together).await {
            assert_eq!(appended.unwrap().events, 10);
        }
        for r in 7..10u64 {
            f.hot.append(batch(r * 10, 10)).await.unwrap();
        }
        let s = f.catalog.snapshot();
        let rows: Vec<u64> = s.lookup("p", 0, i64::MAX).iter().map(|m| m.rows).collect();
        assert!(rows.iter().all(|&r| r <= 25), "segments of {rows:?} events");
        assert_eq!(rows.iter().sum::<u64>(), 100);
        assert!(rows.len() >= 4, "100 events in segments of at most 25: {rows:?}");
        // One request of 40 events of the day: written whole, into a segment of its own, then sealed.
        f.hot.append(batch(1000, 40)).await.unwrap();
        f.hot.seal_check().await.unwrap();
        let s = f.catalog.snapshot();
        let segments = s.lookup("p", 0, i64::MAX);
        let big: Vec<_> = segments.iter().filter(|m| m.rows > 25).collect();
        assert_eq!(big.len(), 1, "{:?}", segments.iter().map(|m| m.rows).collect::<Vec<_>>());
        assert_eq!((big[0].rows, big[0].state), (40, SegmentState::Sealed));
        assert_eq!(count(&f, "p"), 140);
    });
}

/// A commit whose outcome is unknown (its transaction applied, its flush failed): the writer stops without touching
/// the bytes it wrote, so whatever the catalog holds after the restart is backed by the file. (The writer used to cut
/// the file back, and a group sled had applied was then "corrupt" after the restart.)
#[test]
fn an_ambiguous_commit_leaves_the_bytes_for_recovery_to_judge() {
    let dir = tempfile::tempdir().unwrap();
    let (dir, seg_id) = rt().block_on(async {
        let f = start(dir, ManualClock::new(T0), HotConfig::default());
        f.hot.append(IngestBatch::encode("p".into(), (0..5).map(|i| event(i, T0 + i as i64)).collect())).await.unwrap();
        f.catalog.fail_next_commit_flush.store(true, std::sync::atomic::Ordering::Relaxed);
        let err =
            f.hot.append(IngestBatch::encode("p".into(), (5..8).map(|i| event(i, T0 + i as i64)).collect())).await;
        assert!(matches!(err, Err(StoreError::WriterStopped { .. })), "{err:?}");
        // The transaction was applied; sled's own flusher persists it (here at once).
        f.catalog.flush().unwrap();
        let id = f.catalog.snapshot().lookup("p", 0, i64::MAX)[0].id;
        std::mem::forget(f.hot);
        (f.dir, id)
    });
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let layout = Layout::new(copy.path());
    let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
    let report = recover(&context(&layout, &catalog, &ManualClock::new(T0 + 1), "")).unwrap();
    assert!(report.corrupt.is_empty() && report.missing.is_empty(), "{report:?}");
    let meta = catalog.snapshot().get(&seg_id).unwrap().clone();
    assert_eq!(meta.rows, 8, "the applied group is in the catalog");
    assert_eq!(crate::read::read_events(&layout, &meta).unwrap().len(), 8, "and in the file");
}
