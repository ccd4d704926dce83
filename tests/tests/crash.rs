//! Crash test: concurrent writers ingest while the daemon is killed with SIGKILL at random moments, over and over.
//!
//! After every restart, against a ledger of what the writers saw:
//! - every acknowledged batch (200 received) is present exactly once: its `properties.batch` group count equals its
//!   size, in its project, and no event is stored twice (the catalog's row count equals the deduplicated total);
//! - a batch that was in flight at the kill (sent, no 200) is either fully present or absent, and stays so;
//! - no unknown batch, no unknown project;
//! - the catalog and the hot directory agree: the `*.rows` files under `DATA_DIR/hot` are exactly the catalog's
//!   segment locations, each as long as its catalog `bytes`.
//!
//! `TIERD_CRASH_CYCLES` (default 20) sets the number of kill/restart cycles, `TIERD_CRASH_SEED` the seed (printed).

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

const WRITERS: usize = 4;
const PROJECTS: [&str; 2] = ["crash_a", "crash_b"];
/// 2024-03-18; batches start on one of the 5 days from here and span 1-3 days.
const DAY0: i64 = 19_800;
/// Seals happen (and get interrupted by kills) all the time: by size (32 KiB), by the open-segment limit (a batch
/// touches up to 3 of the 10 (project, day) partitions), and by age (1 s) while the test verifies between kills.
/// A cycle's daemon lives at most 700 ms after the writers start, less than the minimum seal age (1 s), so within a
/// cycle it is the size and open-segment limits that seal.
const CONFIG: &str = "[hot]\nseal_max_age_secs = 1\nseal_max_bytes = 32768\nmax_open_segments = 4\n";

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
    /// Answers that mean the test or the daemon is broken (4xx, wrong count).
    fatal: Vec<String>,
    acked_total: usize,
    inflight_total: usize,
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
        let (url, cycle) = {
            let mut c = shared.ctl();
            loop {
                if c.stop {
                    return;
                }
                if let Some(u) = c.url.clone() {
                    c.active += 1;
                    break (u, c.cycle);
                }
                c = shared.cv.wait(c).unwrap_or_else(|e| e.into_inner());
            }
        };
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
                    let what = format!("batch {batch} ({enc:?}, {} events): {status} {text}", info.size);
                    if (400..500).contains(&status) {
                        l.fatal.push(what);
                    } else {
                        l.other_status.push(what);
                    }
                }
                Err(_) => {} // the kill: stays in flight
            }
        }
        let mut c = shared.ctl();
        c.active -= 1;
        shared.cv.notify_all();
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
}

fn verify(d: &Daemon, shared: &Shared, known: &mut Known, when: &str) -> Result<(), String> {
    let mut l = shared.ledger();
    let mut errs = String::new();
    if !l.fatal.is_empty() {
        let _ = writeln!(errs, "unexpected answers to valid batches:\n  {}", l.fatal.join("\n  "));
    }
    // batch -> (project, count), from the query engine.
    let mut got: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut segments = 0;
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
        if stored != total {
            let _ = writeln!(
                errs,
                "{p}: catalog rows sum to {stored} but the query counts {total} distinct events (all insert ids are unique, so rows are stored twice or lost)"
            );
        }
    }
    let unknown: Vec<String> = d.projects().into_iter().filter(|p| !PROJECTS.contains(&p.as_str())).collect();
    if !unknown.is_empty() {
        let _ = writeln!(errs, "unknown projects in the catalog: {unknown:?}");
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
    for (b, (p, c)) in &got {
        if let Some(info) = known.absent.get(b) {
            let _ = writeln!(
                errs,
                "batch {b} (in flight in cycle {}) was absent earlier and now has {c} events in {p}",
                info.cycle
            );
        } else if !newly_present.contains_key(b) && !known.present.contains_key(b) {
            let _ = writeln!(errs, "unknown batch {b}: {c} events in {p}");
        }
    }
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
/// cold tier, gc with a one-second lease TTL and no grace), killed at random moments while the writers ingest:
/// kills may land inside rewrites, moves and gc runs as well as group commits (which of them did is not recorded).
/// The CI runs 30 kill points (`TIERD_CRASH_PASS_CYCLES`): the data grows every cycle, and so does each
/// verification; RELIABILITY.md has the figures.
#[test]
fn kill9_during_ingest_and_every_pass_loses_nothing_acknowledged() {
    let cycles = env_u64("TIERD_CRASH_PASS_CYCLES").unwrap_or(30) as usize;
    let config = format!(
        "{CONFIG}[catalog]\nlease_ttl_secs = 1\n[gc]\ngrace_secs = 0\n[passes.gc]\nschedule = \"* * * * * *\"\n\
         [passes.reencode]\nmin_age_secs = 0\nschedule = \"* * * * * *\"\n\
         [passes.compact]\nschedule = \"* * * * * *\"\n[passes.recompress]\nschedule = \"* * * * * *\"\n\
         [passes.migrate]\nschedule = \"* * * * * *\"\n{}",
        tierd_tests::policy::ALL_COLD
    );
    crash_test("crash-passes", &config, true, cycles, 300..=1500);
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
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = shared.clone();
            thread::spawn(move || writer(w, seed, s))
        })
        .collect();
    let mut known = Known::default();
    let fail = |d: &Daemon, e: String| -> ! {
        panic!("seed {seed}: {e}\n(data dir {}; daemon log tail follows)", d.data_dir().display());
    };

    for cycle in 0..=cycles {
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
            d.set_schedules(true);
            d.restart();
        }
        let l = shared.ledger();
        println!(
            "{when}: ok; {} segments, {} batches present ({} of them were in flight), {} in-flight batches absent, {} other statuses, {:.1} s",
            known.segments,
            known.present.len(),
            known.inflight_found_present,
            known.absent.len(),
            l.other_status.len(),
            started.elapsed().as_secs_f64()
        );
    }
    drop(_stop);
    for w in writers {
        w.join().expect("writer thread panicked");
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
    // The test must have exercised something: writes were acknowledged and kills interrupted writes.
    assert!(l.acked_total >= cycles, "only {} batches acknowledged over {cycles} cycles", l.acked_total);
    assert!(
        !known.absent.is_empty() || known.inflight_found_present > 0,
        "no kill ever interrupted a write (seed {seed})"
    );
}
