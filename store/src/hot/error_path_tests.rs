//! Ingest's error paths, each exactly: a write or fsync error on the segment file during an append, a full queue
//! (`queue_batches`), `min_free_bytes` at its boundary (on a tmpfs of the test's own, so free space moves only by
//! what the writer does), and a refused catalog commit.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use tierd_codecs::Event;

use super::*;
use crate::catalog::Catalog;
use crate::clock::ManualClock;
use crate::durable::{FaultyFs, FsFault, FsFaultKind, FsOp, HotFile, HotFs, OsFs};
use crate::layout::Layout;
use crate::recovery::recover;
use crate::testing::{context, T0};

fn batch(tag: &str, n: u64) -> IngestBatch {
    let events = (0..n)
        .map(|i| Event {
            event: "E".into(),
            time_ms: T0 + i as i64,
            distinct_id: "u".into(),
            insert_id: format!("{tag}{i}"),
            properties: Default::default(),
        })
        .collect();
    IngestBatch::encode("p".into(), events)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The insert ids of every event the catalog's segments hold.
fn stored_ids(layout: &Layout, catalog: &Catalog) -> BTreeSet<String> {
    let s = catalog.snapshot();
    s.segments().flat_map(|m| crate::read::read_events(layout, m).unwrap()).map(|e| e.event.insert_id).collect()
}

fn ids(tags: &[&str], n: u64) -> BTreeSet<String> {
    tags.iter().flat_map(|t| (0..n).map(move |i| format!("{t}{i}"))).collect()
}

/// A write error (EIO, ENOSPC) or an fsync error on the segment file during the second of three appends: that batch
/// is refused with an error that says what happened, nothing of it is visible, the third batch is written as if
/// nothing had happened, and recovery after a reopen finds exactly the first and third batches.
#[test]
fn a_write_or_fsync_error_refuses_that_batch_only_and_recovery_agrees() {
    // The first append writes the new segment's header (write 1, then `sync_all`) and its frame (write 2, data
    // fsync 1); the second append's frame is write 3 and data fsync 2.
    let cases = [
        (FsOp::Write, 2, FsFaultKind::Eio, "EIO"),
        (FsOp::Write, 2, FsFaultKind::Enospc, "no space left"),
        (FsOp::SyncData, 1, FsFaultKind::Eio, "EIO"),
    ];
    for (op, skip, kind, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let fault = FsFault::new(op, kind).on_paths(".rows").after(skip).times(1);
        let fs = Arc::new(FaultyFs::new(Arc::new(OsFs), vec![fault]));
        rt().block_on(async {
            let catalog = Arc::new(crate::catalog::open_retrying(&layout.catalog_dir()));
            let ctx = context(&layout, &catalog, &ManualClock::new(T0), "").with_fs(fs.clone());
            let hot = HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| panic!("not fatal"))).unwrap();
            hot.append(batch("a", 4)).await.unwrap();
            let generation = catalog.snapshot().generation();
            let err = hot.append(batch("b", 4)).await.unwrap_err();
            assert!(err.to_string().contains(says), "{op:?} {kind:?}: {err}");
            if kind == FsFaultKind::Enospc {
                assert!(matches!(err, StoreError::HotTierFull(_)), "ENOSPC is a full disk (503): {err}");
            }
            assert_eq!(catalog.snapshot().generation(), generation, "{op:?}: nothing committed");
            assert_eq!(stored_ids(&layout, &catalog), ids(&["a"], 4), "{op:?}: nothing of the batch is visible");
            hot.append(batch("c", 4)).await.unwrap();
            assert_eq!(stored_ids(&layout, &catalog), ids(&["a", "c"], 4), "{op:?}");
            hot.shutdown().await;
        });
        assert_eq!(fs.faults()[0].seen(), skip + 2, "{op:?}: the fault fired on the second append's operation");
        let catalog = Arc::new(crate::catalog::open_retrying(&layout.catalog_dir()));
        let report = recover(&context(&layout, &catalog, &ManualClock::new(T0 + 1), "")).unwrap();
        assert!(report.corrupt.is_empty() && report.missing.is_empty() && report.quarantined.is_empty(), "{report:?}");
        assert_eq!(stored_ids(&layout, &catalog), ids(&["a", "c"], 4), "{op:?}: after a reopen");
    }
}

/// A hot file system whose data fsyncs wait at a gate while it is closed: the writer thread is held inside a group,
/// so the test knows exactly what is in the queue.
#[derive(Debug, Clone)]
struct GatedFs {
    /// (closed, writers waiting at the gate).
    gate: Arc<(Mutex<(bool, u32)>, Condvar)>,
}

impl GatedFs {
    fn wait_for_a_writer(&self) {
        let (m, cv) = &*self.gate;
        let _held = cv.wait_while(m.lock().unwrap(), |(_, waiting)| *waiting == 0).unwrap();
    }

    fn open(&self) {
        let (m, cv) = &*self.gate;
        m.lock().unwrap().0 = false;
        cv.notify_all();
    }
}

#[derive(Debug)]
struct GatedFile(Box<dyn HotFile>, GatedFs);

impl HotFile for GatedFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let (m, cv) = &*self.1.gate;
        let mut g = m.lock().unwrap();
        g.1 += 1;
        cv.notify_all();
        let mut g = cv.wait_while(g, |(closed, _)| *closed).unwrap();
        g.1 -= 1;
        drop(g);
        self.0.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.0.sync_all()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
}

impl HotFs for GatedFs {
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn HotFile>> {
        Ok(Box::new(GatedFile(OsFs.create_new(path)?, self.clone())))
    }
    fn open_rw(&self, path: &Path) -> std::io::Result<Box<dyn HotFile>> {
        Ok(Box::new(GatedFile(OsFs.open_rw(path)?, self.clone())))
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        OsFs.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        OsFs.sync_dir(path)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        OsFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        OsFs.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        OsFs.rename(from, to)
    }
}

/// `queue_batches` requests wait while the writer is busy; the next one is refused at once with `Backpressure`
/// (the HTTP layer's 503 with Retry-After), and every queued one is acknowledged once the writer moves on.
#[test]
fn a_full_queue_refuses_exactly_the_request_past_queue_batches() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let gated = GatedFs { gate: Arc::new((Mutex::new((true, 0)), Condvar::new())) };
        let ctx = context(&layout, &catalog, &ManualClock::new(T0), "").with_fs(Arc::new(gated.clone()));
        let config = HotConfig { queue_batches: 3, ..HotConfig::default() };
        let hot = HotTier::start(&ctx, config, Arc::new(|_| panic!("not fatal"))).unwrap();
        let mut first = Box::pin(hot.append(batch("a", 2)));
        assert!(futures::poll!(&mut first).is_pending());
        // The writer took the first request and waits at its fsync: the queue is empty.
        gated.wait_for_a_writer();
        let mut queued = Vec::new();
        for k in 0..3 {
            let mut f = Box::pin(hot.append(batch(&format!("q{k}-"), 2)));
            assert!(futures::poll!(&mut f).is_pending(), "request {k} of queue_batches = 3 waits in the queue");
            queued.push(f);
        }
        let err = hot.append(batch("refused", 2)).await.unwrap_err();
        assert!(matches!(err, StoreError::Backpressure(_)) && err.to_string().contains("queue is full"), "{err}");
        gated.open();
        first.await.unwrap();
        for f in queued {
            assert_eq!(f.await.unwrap().events, 2);
        }
        assert_eq!(stored_ids(&layout, &catalog), ids(&["a", "q0-", "q1-", "q2-"], 2), "nothing of the refused one");
        hot.shutdown().await;
    });
}

/// `hot.min_free_bytes` at its boundary: with F bytes free on the hot disk and a batch of S frame bytes, a
/// reserve of F - S + 1 refuses it (and writes nothing) and a reserve of F - S accepts it. The hot directory is a
/// tmpfs of its own (the catalog is elsewhere), so only the writer moves its free space.
#[test]
fn min_free_bytes_refuses_exactly_past_its_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let Some(_mount) = crate::testing::Tmpfs::mount(&layout.hot_dir(), "8m") else { return };
    let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
    let ctx = context(&layout, &catalog, &ManualClock::new(T0), "");
    let start = |min_free_bytes| {
        let config = HotConfig { min_free_bytes, ..HotConfig::default() };
        HotTier::start(&ctx, config, Arc::new(|_| panic!("not fatal"))).unwrap()
    };
    rt().block_on(async {
        let hot = start(0);
        hot.append(batch("a", 3)).await.unwrap();
        hot.shutdown().await;
        let free = fs4::available_space(layout.hot_dir()).unwrap();
        let next = batch("b", 50);
        let size = next.frame_bytes();
        let hot = start(free - size + 1);
        let err = hot.append(next.clone()).await.unwrap_err();
        assert!(matches!(err, StoreError::HotTierFull(_)) && err.to_string().contains("hot.min_free_bytes"), "{err}");
        assert_eq!(fs4::available_space(layout.hot_dir()).unwrap(), free, "nothing was written");
        hot.shutdown().await;
        let hot = start(free - size);
        hot.append(next).await.unwrap();
        hot.shutdown().await;
    });
    assert_eq!(stored_ids(&layout, &catalog), ids(&["a"], 3).into_iter().chain(ids(&["b"], 50)).collect());
}

/// A catalog commit that fails (its transaction applied, its flush refused: the outcome unknown): that batch gets a
/// clear error, the daemon is told once (it shuts down), every later request is refused without writing, and the
/// restart's recovery keeps exactly what the catalog holds: the acknowledged batch and the ambiguous one, never a
/// corrupt segment.
#[test]
fn a_refused_catalog_commit_stops_the_writer_cleanly_and_recovery_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let fatal = Arc::new(Mutex::new(Vec::<String>::new()));
    rt().block_on(async {
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let ctx = context(&layout, &catalog, &ManualClock::new(T0), "");
        let calls = fatal.clone();
        let hook: FatalHook = Arc::new(move |why| calls.lock().unwrap().push(why));
        let hot = HotTier::start(&ctx, HotConfig::default(), hook).unwrap();
        hot.append(batch("a", 3)).await.unwrap();
        catalog.fail_next_commit_flush.store(true, std::sync::atomic::Ordering::Relaxed);
        let err = hot.append(batch("b", 3)).await.unwrap_err();
        assert!(matches!(err, StoreError::WriterStopped { .. }) && err.to_string().contains("commit"), "{err}");
        let later = hot.append(batch("c", 3)).await.unwrap_err();
        assert!(matches!(later, StoreError::WriterStopped { .. }), "{later}");
        assert_eq!(fatal.lock().unwrap().len(), 1, "the daemon is told once: {:?}", fatal.lock().unwrap());
        catalog.flush().unwrap();
        hot.shutdown().await;
    });
    let catalog = Arc::new(crate::catalog::open_retrying(&layout.catalog_dir()));
    let report = recover(&context(&layout, &catalog, &ManualClock::new(T0 + 1), "")).unwrap();
    assert!(report.corrupt.is_empty() && report.missing.is_empty(), "{report:?}");
    assert_eq!(stored_ids(&layout, &catalog), ids(&["a", "b"], 3), "nothing of the request refused after the stop");
}
