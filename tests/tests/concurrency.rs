//! Concurrency on the real daemon: passes, moves and gc run while writers ingest and readers query, and a reader
//! holding a catalog lease can read a segment that a rewrite retired and gc would otherwise delete.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};
use tierd_tests::daemon::{Daemon, TestDir};
use tierd_tests::mp::FAR_FUTURE_MS;
use tierd_tests::policy;

const DAY: i64 = 86_400_000;

fn events(project: &str, first_ms: i64, batch: u64, n: u64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let name = ["view", "buy"][(i % 2) as usize];
            json!({"event": name, "properties": {"time": first_ms + (i as i64) * 60_000,
                "distinct_id": format!("u{}", i % 7), "$insert_id": format!("{project}-{batch}-{i}")}})
        })
        .collect()
}

fn run(d: &Daemon, pass: &str) -> Value {
    let r = d.post_json(&format!("/v1/admin/passes/{pass}/run"), &json!({}));
    assert_eq!(r.status, 200, "{pass}: {}", r.text());
    r.json
}

fn total(d: &Daemon, project: &str) -> u64 {
    d.query(&json!({"project": project, "from": 0, "to": FAR_FUTURE_MS}))["total"].as_u64().unwrap()
}

#[test]
fn a_lease_keeps_a_retired_segment_readable_through_reencode_and_gc() {
    let dir = TestDir::new("concurrency-lease");
    let mut d = Daemon::start(&dir.data_dir(), Some("[gc]\ngrace_secs = 0\n[passes.reencode]\nmin_age_secs = 0\n"));
    let now = d.advance_clock(1);
    d.import_ok("p", &events("p", now - DAY, 0, 100));
    d.stop();
    d.restart(); // seals
                 // Past the restart rule (gc waits one lease TTL after a start), then a query node's lookup: a lease.
    d.advance_clock(301_000);
    let listing = d.segments("p", None, None);
    let seg = listing["segments"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(listing["segments"][0]["format"], "rows");
    run(&d, "reencode");
    let gc = run(&d, "gc");
    assert!(gc["kept"].to_string().contains("held by lease"), "gc keeps the leased segment: {gc}");
    // The query node reads the segment it was given, retired or not.
    let r = d.get(&format!("/v1/segments/{seg}?format=ndjson"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().lines().count(), 100);
    // Once the lease is over, gc deletes it and the id is gone.
    d.advance_clock(301_000);
    let gc = run(&d, "gc");
    assert!(gc["actions"].to_string().contains(&seg), "{gc}");
    assert_eq!(d.get(&format!("/v1/segments/{seg}?format=ndjson")).status, 404);
    assert_eq!(total(&d, "p"), 100);
}

#[test]
fn passes_moves_and_gc_run_while_writers_ingest_and_readers_query() {
    let dir = TestDir::new("concurrency-mixed");
    let config = format!(
        "[gc]\ngrace_secs = 0\n[hot]\nseal_max_bytes = 20000\n[passes.reencode]\nmin_age_secs = 0\n{}",
        policy::ALL_COLD
    );
    let mut d = Daemon::start(&dir.data_dir(), Some(&config));
    let now = d.advance_clock(1);
    d.advance_clock(301_000); // past gc's restart rule
    const BATCHES: u64 = 30;
    const PER_BATCH: u64 = 200;
    let acked = AtomicU64::new(0);
    let sent = AtomicU64::new(0);
    let (checked, passes_run) = std::thread::scope(|s| {
        let (d, acked, sent) = (&d, &acked, &sent);
        let writer = s.spawn(move || {
            for b in 0..BATCHES {
                sent.fetch_add(PER_BATCH, Ordering::SeqCst);
                d.import_ok("p", &events("p", now - 2 * DAY + (b as i64) * 3_600_000, b, PER_BATCH));
                acked.fetch_add(PER_BATCH, Ordering::SeqCst);
                // Paced, so that passes and reads overlap many writes.
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        });
        let reader = s.spawn(move || {
            // Every answer holds at least every event acknowledged before it was asked, and nothing never sent.
            let mut checked = 0;
            while !writer_done(acked) {
                let floor = acked.load(Ordering::SeqCst);
                let t = total(d, "p");
                let ceiling = sent.load(Ordering::SeqCst);
                assert!(floor <= t && t <= ceiling, "answer {t} outside [{floor}, {ceiling}]\n{}", d.log_tail(30));
                checked += 1;
            }
            checked
        });
        let mut passes_run = 0;
        let mut acted = 0;
        while !writer_done(acked) {
            for pass in ["reencode", "compact", "recompress", "migrate", "gc"] {
                let r = run(d, pass);
                acted += r["actions"].as_array().map_or(0, Vec::len);
                let errors = r["errors"].as_array().unwrap();
                // A plan can go stale under concurrent sealing; nothing else may fail.
                assert!(errors.iter().all(|e| e.to_string().contains("stale")), "{pass}: {r}");
                passes_run += 1;
            }
        }
        writer.join().unwrap();
        (reader.join().unwrap(), (passes_run, acted))
    });
    let (passes_run, acted) = passes_run;
    assert!(
        checked > 5 && passes_run > 5 && acted > 0,
        "{checked} reads, {passes_run} passes ({acted} actions) overlapped the writes"
    );
    // Then everything settles: every acknowledged event is counted once, hot and cold alike.
    d.stop();
    d.restart();
    d.advance_clock(301_000);
    for pass in ["reencode", "compact", "migrate", "gc"] {
        run(&d, pass);
    }
    assert_eq!(total(&d, "p"), BATCHES * PER_BATCH);
    tierd_tests::disk::check_catalog_matches_disk(&d).unwrap();
}

fn writer_done(acked: &AtomicU64) -> bool {
    acked.load(Ordering::SeqCst) >= 30 * 200
}
