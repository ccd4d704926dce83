//! Power loss at every durable step of ingest, a rewrite, a move to cold and back, garbage collection and a restore
//! from the trash.
//!
//! Each test runs its operation once to count the durable steps it takes (operations of the hot tier's file API
//! and catalog flushes, see [`PowerLossFs`]), then, for every k, runs it again on a fresh machine with the power
//! cut after the k-th step; the machine crashes (whatever was not made durable is gone, the catalog is back at its
//! last flush before the cut), reboots, recovers, and is checked against the test's own ledger of what was sent
//! and acknowledged: every acknowledged event counted exactly once, no batch half-present, nothing that was not
//! sent, the catalog and the hot directory in agreement, every live segment verified. Then the operation is run
//! to its end on the rebooted machine and the same checks hold.

mod scenarios;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use tierd_codecs::Event;

use crate::catalog::{Catalog, Role, SegmentState};
use crate::clock::ManualClock;
use crate::cold::{ColdStore, VerifyMode};
use crate::context::StoreContext;
use crate::durable::PowerLossFs;
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::layout::{Layout, Tier};
use crate::recovery::{recover, RecoveryReport};
use crate::testing::{context_with, memory_cold, T0};

const DAY_MS: i64 = 86_400_000;

/// One simulated node: its hot directory on a [`PowerLossFs`], its catalog on the same machine, and a cold tier
/// (an object store is another machine: it keeps what it acknowledged).
struct Machine {
    _dir: tempfile::TempDir,
    layout: Layout,
    fs: PowerLossFs,
    clock: ManualClock,
    cold: Arc<ColdStore>,
    rt: tokio::runtime::Runtime,
    catalog: Option<Arc<Catalog>>,
}

impl Machine {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let fs = PowerLossFs::new();
        fs.watch_catalog(&layout.catalog_dir());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let mut m = Self {
            _dir: dir,
            layout,
            fs,
            clock: ManualClock::new(T0),
            cold: memory_cold(VerifyMode::Auto),
            rt,
            catalog: None,
        };
        m.open_catalog();
        m
    }

    fn open_catalog(&mut self) {
        let catalog = crate::catalog::open_retrying(&self.layout.catalog_dir());
        *catalog.power.lock() = Some(self.fs.clone());
        self.catalog = Some(Arc::new(catalog));
    }

    fn catalog(&self) -> &Arc<Catalog> {
        self.catalog.as_ref().expect("the machine is up")
    }

    fn ctx(&self) -> StoreContext {
        context_with(&self.layout, self.catalog(), &self.clock, "", self.cold.clone(), self.rt.handle().clone())
            .with_fs(Arc::new(self.fs.clone()))
    }

    /// The power cut and the reboot: everything of the old process must be dropped (contexts, writers, passes) so
    /// that the catalog closes. Returns what recovery reported.
    fn crash_and_recover(&mut self) -> RecoveryReport {
        self.reboot();
        recover(&self.ctx()).expect("recovery after a power cut")
    }

    /// The power cut and the reboot, up to the catalog opening again (recovery not run yet).
    fn reboot(&mut self) {
        let catalog = self.catalog.take().expect("the machine is up");
        assert_eq!(Arc::strong_count(&catalog), 1, "something of the crashed process still holds the catalog");
        drop(catalog);
        self.fs.crash().unwrap();
        self.open_catalog();
        self.clock.advance_ms(1_000);
    }

    /// Sends batches `ids` through one writer session (which seals its segments when it shuts down), recording in
    /// `ledger` what was sent and what was acknowledged.
    fn ingest(&self, ledger: &mut Ledger, ids: &[u32]) {
        let Ok(hot) = HotTier::start(&self.ctx(), HotConfig::default(), Arc::new(|_| {})) else {
            ledger.send_unstarted(ids);
            return;
        };
        self.rt.block_on(async {
            for &b in ids {
                let events = ledger.send(b);
                if hot.append(IngestBatch::encode("p".into(), events)).await.is_ok() {
                    ledger.acked.insert(b);
                }
            }
            hot.shutdown().await;
        });
    }
}

/// The test's own record: what each batch held, and which batches the store acknowledged.
#[derive(Debug, Default, Clone)]
struct Ledger {
    sent: BTreeMap<u32, Vec<String>>,
    acked: BTreeSet<u32>,
    /// Hot copies out of service (location, crc32c of the file): garbage collection may move them to the trash, but
    /// each must be found, whole, at its place or in the trash (nothing is destroyed that cannot be undone).
    kept: BTreeMap<String, u32>,
    /// Segments put back from the trash: live again, their events may also be in the segments that replaced them
    /// (queries deduplicate), but each of their events must be one that was sent, and must not be lost.
    restored: BTreeSet<crate::layout::SegmentId>,
}

impl Ledger {
    /// The events of batch `b`: 3 + b % 4 of them, with unique insert ids; odd batches span two UTC days.
    fn send(&mut self, b: u32) -> Vec<Event> {
        let n = 3 + i64::from(b % 4);
        let events: Vec<Event> = (0..n)
            .map(|i| Event {
                event: format!("E{}", i % 2),
                time_ms: T0 + i64::from(b) * 1_000 + i + if b % 2 == 1 && i % 2 == 1 { DAY_MS } else { 0 },
                distinct_id: format!("u{}", i % 3),
                insert_id: format!("b{b}-{i}"),
                properties: json!({"b": b, "i": i}).as_object().unwrap().clone(),
            })
            .collect();
        self.sent.insert(b, events.iter().map(|e| e.insert_id.clone()).collect());
        events
    }

    fn send_unstarted(&mut self, ids: &[u32]) {
        for &b in ids {
            self.send(b);
        }
    }
}

/// Every check after a crash and recovery (see the module documentation). `at` names the crash point.
fn check(m: &Machine, ledger: &Ledger, report: &RecoveryReport, at: &str) {
    assert!(report.missing.is_empty() && report.corrupt.is_empty(), "{at}: {report:?}");
    let catalog = m.catalog();
    assert!(catalog.intents().unwrap().is_empty(), "{at}: intents left after recovery");
    let snapshot = catalog.snapshot();
    // Every live segment verifies, from whichever tier holds it; its events are counted.
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut seen_restored: BTreeSet<String> = BTreeSet::new();
    for meta in snapshot.segments().filter(|s| s.state != SegmentState::Retired && s.role == Role::Data) {
        let restored = ledger.restored.contains(&meta.id);
        let bytes = match meta.hot_path() {
            Some(location) => {
                let path = m.layout.resolve(location).unwrap();
                assert!(crate::recovery::verify(&m.layout, &path, meta), "{at}: segment {} does not verify", meta.id);
                bytes::Bytes::from(crate::read::read_committed(&m.layout, meta).unwrap())
            }
            None => {
                let key = meta.cold_key().unwrap_or_else(|| panic!("{at}: segment {} has no copy", meta.id));
                let bytes = m.rt.block_on(m.cold.get(key)).unwrap();
                assert_eq!(crc32c::crc32c(&bytes), meta.checksum, "{at}: cold copy of {}", meta.id);
                bytes
            }
        };
        crate::read::scan(meta, bytes, &crate::read::everything(), |e| {
            if restored {
                seen_restored.insert(e.event.insert_id);
            } else {
                *seen.entry(e.event.insert_id).or_default() += 1;
            }
        })
        .unwrap_or_else(|e| panic!("{at}: segment {}: {e}", meta.id));
    }
    for (id, n) in &seen {
        assert_eq!(*n, 1, "{at}: event {id} stored {n} times in live segments");
    }
    // A restored segment's events count once: as copies of the replacement's where it has them, else on their own.
    for id in seen_restored {
        seen.entry(id).or_insert(1);
    }
    let mut accounted = 0;
    for (b, ids) in &ledger.sent {
        let present = ids.iter().filter(|id| seen.contains_key(*id)).count();
        accounted += present;
        if ledger.acked.contains(b) {
            assert_eq!(present, ids.len(), "{at}: acknowledged batch {b} has {present} of {} events", ids.len());
        } else {
            assert!(present == 0 || present == ids.len(), "{at}: batch {b} half-present ({present} of {})", ids.len());
        }
    }
    assert_eq!(accounted, seen.len(), "{at}: events nobody sent: {seen:?}");
    // The catalog and the hot directory agree: every hot copy the catalog names is there (live ones at their
    // committed length), and every file under hot/ is one the catalog names.
    let mut named: BTreeSet<PathBuf> = BTreeSet::new();
    for meta in snapshot.segments() {
        for l in meta.locations.iter().filter(|l| l.tier == Tier::Hot) {
            let path = m.layout.resolve(&l.path).unwrap();
            let len = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{at}: {}: {e}", path.display())).len();
            assert_eq!(len, meta.bytes, "{at}: {} is not at its committed length", path.display());
            named.insert(path);
        }
        for d in meta.dropped.iter().filter(|d| d.location.tier == Tier::Hot) {
            let path = m.layout.resolve(&d.location.path).unwrap();
            assert!(path.is_file(), "{at}: dropped hot copy {} is gone but still named", path.display());
            named.insert(path);
        }
    }
    assert_eq!(files_under(m.layout.hot_dir()), named, "{at}: hot directory != catalog");
    let trash = files_under(m.layout.trash_dir());
    for (location, crc) in &ledger.kept {
        let whole = |p: &PathBuf| std::fs::read(p).is_ok_and(|b| crc32c::crc32c(&b) == *crc);
        let here = whole(&m.layout.resolve(location).unwrap());
        assert!(here || trash.iter().any(|t| t.ends_with(location) && whole(t)), "{at}: {location} was destroyed");
    }
}

/// Out-of-service hot copies (retired segments', dropped ones) and their checksums, for [`Ledger::kept`].
fn out_of_service_hot_copies(m: &Machine) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for meta in m.catalog().snapshot().segments() {
        let retired = meta.state == SegmentState::Retired;
        let locations = meta.locations.iter().filter(|_| retired).chain(meta.dropped.iter().map(|d| &d.location));
        for l in locations.filter(|l| l.tier == Tier::Hot) {
            let bytes = std::fs::read(m.layout.resolve(&l.path).unwrap()).unwrap();
            out.insert(l.path.clone(), crc32c::crc32c(&bytes));
        }
    }
    out
}

fn files_under(root: PathBuf) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path);
            }
        }
    }
    out
}

/// Runs `run` once without a cut to count its durable steps (after `setup`), then once per step with the power cut
/// right after it; after each crash, recovery and the checks, `finish` completes the work on the rebooted machine
/// and the checks run again. Then, for every step of that recovery, the same cut again with a second power cut
/// during recovery after that step, a third boot with a whole recovery, and the checks. Returns how many crash
/// points ran (cuts in the operation plus cuts in recoveries).
fn at_every_step(
    what: &str,
    setup: impl Fn(&mut Machine, &mut Ledger),
    run: impl Fn(&mut Machine, &mut Ledger),
    finish: impl Fn(&mut Machine, &mut Ledger),
) -> u64 {
    let (steps, base) = {
        let mut m = Machine::new();
        let mut ledger = Ledger::default();
        setup(&mut m, &mut ledger);
        let base = m.fs.ops();
        run(&mut m, &mut ledger);
        assert!(!m.fs.is_off());
        (m.fs.ops() - base, base)
    };
    assert!(steps > 0, "{what}: no durable step to cut");
    // The machine with the power cut after step k of the operation, rebooted, recovery not run yet.
    let cut_at = |k: u64, at: &str| {
        let mut m = Machine::new();
        let mut ledger = Ledger::default();
        setup(&mut m, &mut ledger);
        assert_eq!(m.fs.ops(), base, "{at}: the setup took another path");
        m.fs.cut_after(base + k);
        run(&mut m, &mut ledger);
        assert!(m.fs.is_off(), "{at}: the power never went off");
        m.reboot();
        (m, ledger)
    };
    let mut in_recovery = 0;
    for k in 1..=steps {
        let at = format!("{what}, power cut after step {k} of {steps}");
        let (mut m, mut ledger) = cut_at(k, &at);
        let before = m.fs.ops();
        let report = recover(&m.ctx()).expect("recovery after a power cut");
        let recovery_steps = m.fs.ops() - before;
        check(&m, &ledger, &report, &at);
        finish(&mut m, &mut ledger);
        let report = recover(&m.ctx()).unwrap();
        check(&m, &ledger, &report, &format!("{at}, then finished"));
        // A second cut during that recovery, after each of its steps but the last.
        for j in 1..recovery_steps {
            let at = format!("{at}, and again after step {j} of {recovery_steps} of the recovery");
            let (mut m, ledger) = cut_at(k, &at);
            m.fs.cut_after(m.fs.ops() + j);
            let finished = recover(&m.ctx());
            if !m.fs.is_off() {
                // Ingest's writer threads can leave a little less for this recovery to do than the first time it
                // was counted: it finished before the cut, and is checked as it is.
                check(&m, &ledger, &finished.expect("recovery with the power on"), &at);
                continue;
            }
            let report = m.crash_and_recover();
            check(&m, &ledger, &report, &at);
            in_recovery += 1;
        }
    }
    eprintln!("{what}: {steps} crash points, {in_recovery} more during the recoveries");
    steps + in_recovery
}
