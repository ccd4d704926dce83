//! Crash test: concurrent writers ingest while the daemon is killed with SIGKILL at random moments, over and over.
//!
//! After every restart, against a ledger of what the writers saw:
//! - every acknowledged batch (200 received) is present exactly once: its `properties.batch` group count equals its
//!   size, in its project;
//! - a batch that was in flight at the kill (sent, no 200) is either fully present or absent, and stays so;
//! - no unknown batch, no unknown project;
//! - no event is stored twice: all insert ids are unique, so the catalog's row count (live event segments) equals
//!   the deduplicated total, but for what deletions and restores explain (below);
//! - the catalog and the hot directory agree: the `*.rows` files under `DATA_DIR/hot` are exactly the catalog's
//!   segment locations, each as long as its catalog `bytes`.
//!
//! The every-pass variant (`kill9_during_ingest_and_every_pass_loses_nothing_acknowledged`) adds user deletions and
//! trash restores to the kills (`crash/mix.rs`):
//! - **Deletions.** A deleter thread, every 200-400 ms while a daemon is up, asks to delete one batch that a
//!   verification found whole and no deletion named yet (`POST /v1/admin/deletions`, a filter `batch eq X` over all
//!   time); the `deletions` pass runs every second. The API promises that a request is durable once acknowledged and
//!   that readers hide its rows from then on; an unacknowledged one may or may not have become durable. So an
//!   acknowledged deletion must be listed by `GET /v1/admin/deletions` at every later verification, and its batch
//!   must count 0; one in flight at a kill was carried out exactly when the restarted daemon lists it: then its batch
//!   counts 0 from then on (it stays listed), else the batch stays whole and is never offered for deletion again
//!   ("0 or full, once 0 stays 0", made exact by the listing). The listing holds one request per batch and none the
//!   test did not send.
//! - **Restores.** A restorer thread, every 300-1200 ms while a daemon is up, lists the trash and asks to restore one
//!   segment (half the time one whose saved record is marked erased, if the newest records hold one) or, one time in
//!   four, a whole gc batch of at most 8 records; restores and passes run one at a time, and most of these requests
//!   get no answer before the kill. Every second cycle the main thread restores one more while the schedules are off
//!   (an erased record or not, whichever outcome was seen less so far). Erased records (copies that may hold rows a
//!   deletion removed; `deletions.trash_retention_secs` keeps them in the trash for 10 s) must be refused as not
//!   restorable, and a record not so marked must not be; the marks are read from the data directory
//!   (`trash/<ms>/records/<id>.json`), not from the daemon's answers. A restored segment is live again and queries
//!   count each event once, so the per-batch checks above are unchanged: a restore that brought deleted rows back
//!   would show as a deleted batch with events.
//! - **Catalog rows.** The catalog may hold more rows than the query counts: (a) rows of deleted batches whose request
//!   is not `done` (stored, hidden from readers), at most the sizes of those batches; (b) rows duplicated by
//!   restores, at most the rows of every segment restored in the project (or maybe restored: no answer), summed over
//!   the run, because a restored segment's rows stay duplicated under new ids when a re-encode, recompression or
//!   deletion rewrites it, until a compaction merges them with the segments that replaced it, and the API shows no
//!   lineage. So `0 <= catalog rows - query total <= (a) + (b)`, which is equality when neither touched the project.
//! - **The end.** After the final SIGTERM's verification, the deletions are carried out by hand (the deletions pass,
//!   then gc with the clock moved past leases and grace, erased copies skipping the trash) until every request is
//!   `done`, and verified again: no tombstone hides anything any more, so a deleted row still stored where readers
//!   look would be counted. Then every trash batch is restored whole and verified once more.
//!
//! In the every-pass variant each life starts with the daemon's clock moved two lease TTLs ahead: gc deletes nothing
//! within one lease TTL of a start (leases granted before a crash may be lost) and a life lasts at most 1.5 s, so
//! without it gc deletes nothing and the trash stays empty.
//!
//! `TIERD_CRASH_CYCLES` (default 20) and `TIERD_CRASH_PASS_CYCLES` (default 30) set the number of kill/restart
//! cycles, `TIERD_CRASH_SEED` the seed (printed).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tierd_tests::daemon::{http_client, Daemon, TestDir};
use tierd_tests::disk::check_catalog_matches_disk;
use tierd_tests::gen::Encoding;
use tierd_tests::mp::{pct, FAR_FUTURE_MS, MS_PER_DAY};

#[path = "crash/mix.rs"]
mod mix;

const WRITERS: usize = 4;
const PROJECTS: [&str; 2] = ["crash_a", "crash_b"];
/// 2024-03-18; batches start on one of the 5 days from here and span 1-3 days.
const DAY0: i64 = 19_800;
/// Seals happen (and get interrupted by kills) all the time: by size (32 KiB), by the open-segment limit (a batch
/// touches up to 3 of the 10 (project, day) partitions), and by age (1 s) while the test verifies between kills.
/// A cycle's daemon lives at most 700 ms after the writers start, less than the minimum seal age (1 s), so within a
/// cycle it is the size and open-segment limits that seal.
const CONFIG: &str = "[hot]\nseal_max_age_secs = 1\nseal_max_bytes = 32768\nmax_open_segments = 4\n";
/// `deletions.trash_retention_secs` of the every-pass test: copies that may hold deleted rows go to the trash (marked
/// erased, so restores of them are refused) and are deleted for good this long after, after which the requests can
/// be `done`.
const ERASED_TRASH_SECS: u64 = 10;
/// How far the every-pass test moves the daemon's clock at each start: two lease TTLs (`catalog.lease_ttl_secs = 1`).
const RESTART_WAIT_MS: u64 = 2_000;
/// The every-pass test restores from the trash once every this many cycles from the main thread, with the schedules
/// off (besides the restorer's requests while the passes run).
const RESTORE_EVERY: usize = 2;

#[derive(Debug, Clone)]
struct BatchInfo {
    project: &'static str,
    size: u64,
    /// The kill/restart cycle during which it was sent.
    cycle: usize,
}

/// What the writers saw. Batches are never re-sent, so each id is in exactly one place.
#[derive(Default)]
struct Ledger {
    /// 200 received, not yet verified.
    acked: BTreeMap<String, BatchInfo>,
    /// Sent, no 200 (connection error, or another status): 0 or full after the restart.
    inflight: BTreeMap<String, BatchInfo>,
    /// Non-200 answers other than connection errors, for the report.
    other_status: Vec<String>,
    /// Answers that mean the test or the daemon is broken (4xx, wrong count, a refused or granted restore that
    /// contradicts the saved record).
    fatal: Vec<String>,
    acked_total: usize,
    inflight_total: usize,
    /// The deleter's and the restorer's.
    mix: mix::MixLedger,
}

impl Ledger {
    /// A non-200 answer: a 4xx means the test or the daemon is broken, anything else is reported.
    fn answered(&mut self, status: u16, what: String) {
        if (400..500).contains(&status) {
            self.fatal.push(what);
        } else {
            self.other_status.push(what);
        }
    }
}

struct Control {
    url: Option<String>,
    active: usize,
    stop: bool,
    cycle: usize,
}

struct Shared {
    ctl: Mutex<Control>,
    cv: Condvar,
    ledger: Mutex<Ledger>,
}

impl Shared {
    fn ctl(&self) -> MutexGuard<'_, Control> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a daemon is up and counts one request to it as outstanding (until [`Shared::end`]); returns its
    /// url and the cycle, or `None` once the test ends.
    fn begin(&self) -> Option<(String, usize)> {
        let mut c = self.ctl();
        loop {
            if c.stop {
                return None;
            }
            if let Some(u) = c.url.clone() {
                c.active += 1;
                return Some((u, c.cycle));
            }
            c = self.cv.wait(c).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The request [`Shared::begin`] counted is answered (or failed).
    fn end(&self) {
        let mut c = self.ctl();
        c.active -= 1;
        self.cv.notify_all();
    }

    /// Lets writers send to `url`.
    fn publish(&self, url: &str, cycle: usize) {
        let mut c = self.ctl();
        c.url = Some(url.to_string());
        c.cycle = cycle;
        self.cv.notify_all();
    }

    /// Stops writers from starting new requests and waits until none is outstanding.
    fn pause_and_drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut c = self.ctl();
        c.url = None;
        while c.active > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{} writer requests still outstanding 90 s after the kill", c.active);
            c = self.cv.wait_timeout(c, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// Stops the writers when the test ends, also when it panics.
struct StopWriters(Arc<Shared>);

impl Drop for StopWriters {
    fn drop(&mut self) {
        let mut c = self.0.ctl();
        c.stop = true;
        self.0.cv.notify_all();
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

fn make_batch(rng: &mut StdRng, batch: &str) -> (&'static str, Vec<Value>) {
    let size = rng.random_range(50..=500);
    let project = *PROJECTS.choose(rng).unwrap();
    let span = rng.random_range(1..=3);
    let first_day = DAY0 + rng.random_range(0..5);
    let events = (0..size)
        .map(|i| {
            let day = first_day + (i % span);
            let pad: String = (0..rng.random_range(20..120)).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
            json!({
                "event": *["Signup", "Purchase", "View", "Share"].choose(rng).unwrap(),
                "properties": {
                    "time": day * MS_PER_DAY + rng.random_range(0..MS_PER_DAY),
                    "distinct_id": format!("u{}", rng.random_range(0..1000)),
                    "$insert_id": format!("{batch}-{i}"),
                    "batch": batch,
                    "i": i,
                    "$os": *["iOS", "Android", "Windows"].choose(rng).unwrap(),
                    "pad": pad,
                }
            })
        })
        .collect();
    (project, events)
}

fn writer(w: usize, seed: u64, shared: Arc<Shared>) {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(w as u64 + 1)));
    let client = http_client();
    for n in 0.. {
        let Some((url, cycle)) = shared.begin() else { return };
        let batch = format!("{w}-{n}");
        let (project, events) = make_batch(&mut rng, &batch);
        let enc = *Encoding::ALL.choose(&mut rng).unwrap();
        let (body, headers) = enc.encode(&events);
        let info = BatchInfo { project, size: events.len() as u64, cycle };
        {
            let mut l = shared.ledger();
            l.inflight.insert(batch.clone(), info.clone());
            l.inflight_total += 1;
        }
        let mut req = client.post(format!("{url}/import?project={}", pct(project))).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let res = req.send();
        {
            let mut l = shared.ledger();
            match res {
                Ok(r) if r.status().as_u16() == 200 => {
                    // The status line is the acknowledgement; the body is checked when it can be read.
                    let body: Option<Value> = r.bytes().ok().and_then(|b| serde_json::from_slice(&b).ok());
                    if let Some(b) = &body {
                        if b["num_records_imported"].as_u64() != Some(info.size) {
                            l.fatal.push(format!("batch {batch} ({} events): 200 with body {b}", info.size));
                        }
                    }
                    l.inflight.remove(&batch);
                    l.inflight_total -= 1;
                    l.acked.insert(batch, info);
                    l.acked_total += 1;
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().unwrap_or_default();
                    l.answered(status, format!("batch {batch} ({enc:?}, {} events): {status} {text}", info.size));
                }
                Err(_) => {} // the kill: stays in flight
            }
        }
        shared.end();
    }
}

/// What earlier verifications established.
#[derive(Default)]
struct Known {
    /// Batches that must be fully present from now on.
    present: BTreeMap<String, BatchInfo>,
    /// In-flight batches found absent: they must never appear.
    absent: BTreeMap<String, BatchInfo>,
    inflight_found_present: usize,
    /// Catalog segments at the last verification.
    segments: usize,
    /// Deleted batches, and the deletions' and catalog excess's counts.
    mix: mix::MixKnown,
}

fn verify(d: &Daemon, shared: &Shared, known: &mut Known, when: &str) -> Result<(), String> {
    let mut l = shared.ledger();
    let mut errs = String::new();
    if !l.fatal.is_empty() {
        let _ = writeln!(errs, "unexpected answers to valid requests:\n  {}", l.fatal.join("\n  "));
    }
    // batch -> (project, count), from the query engine.
    let mut got: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut segments = 0;
    // (project, catalog rows, query total, rows restored from the trash)
    let mut stored_vs_total = Vec::new();
    for p in PROJECTS {
        let q = json!({"project": p, "from": 0, "to": FAR_FUTURE_MS, "group_by": "properties.batch"});
        let r = d.query(&q);
        let total = r["total"].as_u64().unwrap_or(u64::MAX);
        let rows = r["rows"].as_array().cloned().unwrap_or_default();
        let sum: u64 = rows.iter().map(|row| row["count"].as_u64().unwrap_or(0)).sum();
        if sum != total {
            let _ = writeln!(errs, "{p}: total {total} but group counts sum to {sum}");
        }
        for row in rows {
            let count = row["count"].as_u64().unwrap_or(0);
            match row["key"].as_str() {
                Some(b) => {
                    if let Some((other, _)) = got.insert(b.to_string(), (p.to_string(), count)) {
                        let _ = writeln!(errs, "batch {b} appears in projects {other} and {p}");
                    }
                }
                None => {
                    let _ = writeln!(
                        errs,
                        "{p}: {count} events with batch key {} (not a batch this test sent)",
                        row["key"]
                    );
                }
            }
        }
        let segs = d.segments(p, None, None)["segments"].as_array().cloned().unwrap_or_default();
        segments += segs.len();
        let stored: u64 = segs.iter().map(|s| s["rows"].as_u64().unwrap_or(0)).sum();
        stored_vs_total.push((p, stored, total, l.mix.restored_rows.get(p).copied().unwrap_or(0)));
    }
    let unknown: Vec<String> = d.projects().into_iter().filter(|p| !PROJECTS.contains(&p.as_str())).collect();
    if !unknown.is_empty() {
        let _ = writeln!(errs, "unknown projects in the catalog: {unknown:?}");
    }
    // Which batches are deleted (taken out of `known.present`), and how many of their rows may still be stored.
    let hidden = mix::resolve_deletions(d, &mut l, known, &mut errs);
    for (p, stored, total, restored) in stored_vs_total {
        let hidden = hidden.get(p).copied().unwrap_or(0);
        match stored.checked_sub(total) {
            Some(0) => {}
            Some(excess) if excess <= hidden + restored => {
                known.mix.excess_seen += 1;
                known.mix.max_excess = known.mix.max_excess.max(excess);
            }
            _ => {
                let _ = writeln!(
                    errs,
                    "{p}: catalog rows sum to {stored} but the query counts {total} distinct events; all insert ids \
                     are unique, so the difference must be between 0 and {hidden} (events of deleted batches whose \
                     request is not done) + {restored} (rows of segments restored from the trash): rows are stored \
                     twice or lost"
                );
            }
        }
    }

    let mut newly_present = std::mem::take(&mut l.acked);
    for (b, info) in newly_present.iter().chain(known.present.iter()) {
        match got.get(b) {
            Some((p, c)) if p == info.project && *c == info.size => {}
            other => {
                let _ = writeln!(
                    errs,
                    "acknowledged batch {b} (sent in cycle {}): expected {} events in {}, got {other:?}",
                    info.cycle, info.size, info.project
                );
            }
        }
    }
    for (b, info) in std::mem::take(&mut l.inflight) {
        match got.get(&b) {
            None => {
                known.absent.insert(b, info);
            }
            Some((p, c)) if p == info.project && *c == info.size => {
                known.inflight_found_present += 1;
                newly_present.insert(b, info);
            }
            other => {
                let _ = writeln!(
                    errs,
                    "in-flight batch {b} (sent in cycle {}) is partially present: expected 0 or {} events in {}, got {other:?}",
                    info.cycle, info.size, info.project
                );
            }
        }
    }
    for (b, del) in &known.mix.deleted {
        if let Some((p, c)) = got.get(b) {
            let _ = writeln!(
                errs,
                "deleted batch {b} ({} events, deletion sent in cycle {}) has {c} events in {p}",
                del.batch.size, del.cycle
            );
        }
    }
    for (b, (p, c)) in &got {
        if known.mix.deleted.contains_key(b) {
            // reported above
        } else if let Some(info) = known.absent.get(b) {
            let _ = writeln!(
                errs,
                "batch {b} (in flight in cycle {}) was absent earlier and now has {c} events in {p}",
                info.cycle
            );
        } else if !newly_present.contains_key(b) && !known.present.contains_key(b) {
            let _ = writeln!(errs, "unknown batch {b}: {c} events in {p}");
        }
    }
    l.mix.deletable.extend(newly_present.iter().map(|(b, info)| (b.clone(), info.clone())));
    known.present.extend(newly_present);
    known.segments = segments;
    drop(l);
    if let Err(e) = check_catalog_matches_disk(d) {
        let _ = writeln!(errs, "catalog vs hot directory:\n{e}");
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{when}:\n{errs}"))
    }
}

#[test]
fn kill9_during_concurrent_ingest_loses_nothing_acknowledged() {
    let cycles = env_u64("TIERD_CRASH_CYCLES").unwrap_or(20) as usize;
    crash_test("crash", CONFIG, false, cycles, 50..=700);
}

/// Every background pass on a one-second schedule (re-encode, compaction, recompression, migration to the embedded
/// cold tier, gc with a one-second lease TTL and no grace, deletions), killed at random moments while the writers
/// ingest, the deleter deletes batches and the restorer restores from the trash: kills may land inside rewrites,
/// moves, gc runs, deletion rewrites and restores as well as group commits (which of them did is not recorded).
/// The CI runs 30 kill points (`TIERD_CRASH_PASS_CYCLES`): the data grows every cycle, and so does each
/// verification; RELIABILITY.md has the figures.
#[test]
fn kill9_during_ingest_and_every_pass_loses_nothing_acknowledged() {
    let cycles = env_u64("TIERD_CRASH_PASS_CYCLES").unwrap_or(30) as usize;
    crash_test("crash-passes", &every_pass_config(ERASED_TRASH_SECS), true, cycles, 300..=1500);
}

/// The every-pass test's configuration, erased copies kept in the trash for `erased_trash_secs`.
fn every_pass_config(erased_trash_secs: u64) -> String {
    format!(
        "{CONFIG}[catalog]\nlease_ttl_secs = 1\n[gc]\ngrace_secs = 0\n[passes.gc]\nschedule = \"* * * * * *\"\n\
         [passes.reencode]\nmin_age_secs = 0\nschedule = \"* * * * * *\"\n\
         [passes.compact]\nschedule = \"* * * * * *\"\n[passes.recompress]\nschedule = \"* * * * * *\"\n\
         [passes.migrate]\nschedule = \"* * * * * *\"\n[passes.deletions]\nschedule = \"* * * * * *\"\n\
         [deletions]\ntrash_retention_secs = {erased_trash_secs}\n{}",
        tierd_tests::policy::ALL_COLD
    )
}

fn crash_test(name: &str, config: &str, scheduled: bool, cycles: usize, delays: std::ops::RangeInclusive<u64>) {
    let started = Instant::now();
    let seed = env_u64("TIERD_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("{name}: seed = {seed}, cycles = {cycles} (TIERD_CRASH_SEED)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TestDir::new(name);
    let mut d = if scheduled {
        Daemon::start_scheduled(&dir.data_dir(), Some(config))
    } else {
        Daemon::start(&dir.data_dir(), Some(config))
    };
    let shared = Arc::new(Shared {
        ctl: Mutex::new(Control { url: None, active: 0, stop: false, cycle: 0 }),
        cv: Condvar::new(),
        ledger: Mutex::new(Ledger::default()),
    });
    let _stop = StopWriters(shared.clone());
    let mut threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = shared.clone();
            thread::spawn(move || writer(w, seed, s))
        })
        .collect();
    if scheduled {
        let s = shared.clone();
        threads.push(thread::spawn(move || mix::deleter(seed, s)));
        let (s, data_dir) = (shared.clone(), dir.data_dir());
        threads.push(thread::spawn(move || mix::restorer(seed, s, data_dir)));
    }
    let mut known = Known::default();
    let (client, mut restore_rng) = (http_client(), StdRng::seed_from_u64(seed ^ 0x5EED_0F7E_57ED));
    let fail = |d: &Daemon, e: String| -> ! {
        panic!("seed {seed}: {e}\n(data dir {}; daemon log tail follows)", d.data_dir().display());
    };

    for cycle in 0..=cycles {
        if scheduled {
            // gc deletes nothing within one lease TTL of a start (leases granted before a crash may be lost), and a
            // life is at most 1.5 s: the clock skips that wait, so that gc deletes (and fills the trash) while kills
            // land.
            d.advance_clock(RESTART_WAIT_MS);
        }
        shared.publish(d.url(), cycle);
        let delay = rng.random_range(delays.clone());
        thread::sleep(Duration::from_millis(delay));
        let how = if cycle < cycles {
            d.kill9();
            "kill -9"
        } else {
            // The last cycle ends with a graceful SIGTERM while the writers are busy.
            let asked = std::time::Instant::now();
            let st = d.stop();
            println!("SIGTERM exit status: {st}, {:.1} s after the signal", asked.elapsed().as_secs_f64());
            "SIGTERM"
        };
        shared.pause_and_drain();
        // Verified with the schedules off, so that no pass moves files while the catalog and the disk are compared
        // (recovery has run either way); then the next cycle's daemon runs them again.
        d.set_schedules(false);
        d.restart();
        let when = format!("cycle {cycle} ({how} {delay} ms after start)");
        if let Err(e) = verify(&d, &shared, &mut known, &when) {
            fail(&d, e);
        }
        if scheduled && cycle < cycles {
            if cycle % RESTORE_EVERY == RESTORE_EVERY - 1 {
                // A restore no pass holds up (the restorer's wait for the passes, and most end in a kill): of a
                // segment that comes back, or of one the refusal of erased records keeps out, whichever was seen less.
                let pick = {
                    let r = &shared.ledger().mix.restores;
                    if r.restored <= r.refused_erased {
                        mix::Pick::NotErased
                    } else {
                        mix::Pick::Erased
                    }
                };
                mix::restore_once(&client, d.url(), &dir.data_dir(), &mut restore_rng, &shared, pick);
            }
            d.set_schedules(true);
            d.restart();
        }
        let l = shared.ledger();
        let mix = if scheduled {
            format!(
                ", {} batches deleted ({} requests not done), {} segments restored",
                known.mix.deleted.len(),
                known.mix.not_done,
                l.mix.restores.restored
            )
        } else {
            String::new()
        };
        println!(
            "{when}: ok; {} segments, {} batches present ({} of them were in flight), {} in-flight batches absent{mix}, {} other statuses, {:.1} s",
            known.segments,
            known.present.len(),
            known.inflight_found_present,
            known.absent.len(),
            l.other_status.len(),
            started.elapsed().as_secs_f64()
        );
    }
    drop(_stop);
    for t in threads {
        t.join().expect("writer, deleter or restorer thread panicked");
    }
    let l = shared.ledger();
    if !l.other_status.is_empty() {
        println!("non-200 answers (treated as in flight):\n  {}", l.other_status.join("\n  "));
    }
    let events: u64 = known.present.values().map(|b| b.size).sum();
    println!(
        "crash test done in {:.1} s: {} acknowledged batches, {} in flight at a kill ({} landed), {events} events present",
        started.elapsed().as_secs_f64(),
        l.acked_total,
        l.inflight_total,
        known.inflight_found_present
    );
    if scheduled {
        let (m, r) = (&known.mix, &l.mix.restores);
        println!(
            "deletions: {} sent, {} acknowledged, {} in flight at a kill ({} of them held by the daemon, {} not); \
             {} batches deleted ({} events), {} requests done and {} not at the end; the catalog held rows of \
             deleted or restored data beyond the query's count at {} project checks (at most {} rows)",
            l.mix.deletions_sent,
            l.mix.deletions_acked,
            m.inflight_applied + m.inflight_lost,
            m.inflight_applied,
            m.inflight_lost,
            m.deleted.len(),
            m.deleted.values().map(|d| d.batch.size).sum::<u64>(),
            m.done,
            m.not_done,
            m.excess_seen,
            m.max_excess
        );
        println!(
            "restores: {} requests ({} of whole gc batches, {} unanswered), {} trash listings with nothing to restore; \
             {} segments restored ({} rows), {} erased records refused as not restorable, {} gone or back in the \
             catalog since the listing",
            r.requests,
            r.whole_batches,
            r.unanswered,
            r.nothing_to_restore,
            r.restored,
            r.restored_rows,
            r.refused_erased,
            r.raced
        );
    }
    // The test must have exercised something: writes were acknowledged and kills interrupted writes.
    assert!(l.acked_total >= cycles, "only {} batches acknowledged over {cycles} cycles", l.acked_total);
    assert!(
        !known.absent.is_empty() || known.inflight_found_present > 0,
        "no kill ever interrupted a write (seed {seed})"
    );
    if scheduled && cycles >= 10 {
        assert!(!known.mix.deleted.is_empty(), "no batch was deleted over {cycles} cycles (seed {seed})");
        assert!(l.mix.restores.restored > 0, "no segment was restored over {cycles} cycles (seed {seed})");
    }
    drop(l);
    if scheduled {
        // The end: every deletion carried out, after which readers hide nothing, then the whole trash restored.
        // Erased copies then skip the trash (one gc erases them all, and the trashed ones, instead of two).
        let t = Instant::now();
        d.set_config(&every_pass_config(0));
        d.restart();
        let rounds = mix::carry_out_deletions(&mut d, 0);
        if let Err(e) = verify(&d, &shared, &mut known, "every deletion done") {
            fail(&d, e);
        }
        println!(
            "every deletion done after {rounds} rounds of the deletions pass and gc by hand; verified: {} requests \
             done, {} not, {:.1} s",
            known.mix.done,
            known.mix.not_done,
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let before = shared.ledger().mix.restores.clone();
        let batches = mix::restore_all(&d, &dir.data_dir(), &shared);
        if let Err(e) = verify(&d, &shared, &mut known, "the whole trash restored") {
            fail(&d, e);
        }
        let after = shared.ledger().mix.restores.clone();
        println!(
            "the whole trash restored ({batches} batches); verified: {} segments restored ({} rows), {} erased records \
             refused, {} back in the catalog or gone, {:.1} s",
            after.restored - before.restored,
            after.restored_rows - before.restored_rows,
            after.refused_erased - before.refused_erased,
            after.raced - before.raced,
            t.elapsed().as_secs_f64()
        );
    }
}
