//! Crashes at every named crash-safe step (ARCHITECTURE.md), by a failpoint that ends the real process at that
//! exact point, then a restart without failpoints. Each test states what the step's contract says must survive:
//!
//! - a crash before the catalog commit (`hot.create`, `hot.write`, `hot.fsync`) loses the unacknowledged batch
//!   entirely, and the bytes it left behind are cut off or quarantined;
//! - a crash after the commit (`hot.commit`) keeps the batch entirely, although it was never acknowledged;
//! - a crash while sealing (`hot.seal`) or during recovery (`recovery.*`) loses nothing, and the next recovery
//!   finishes the job.
//!
//! After every restart the catalog and the hot directory agree file by file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tierd_tests::daemon::http_client;
use tierd_tests::disk::check_catalog_matches_disk;
use tierd_tests::{Daemon, TestDir};

const PROJECT: &str = "fp";
const DAY_MS: i64 = 86_400_000;
const T0_MS: i64 = 1_767_225_600_000; // 2026-01-01
const EVENTS_PER_BATCH: usize = 40;

/// A batch tagged `tag`, half on day `first_day`, half on the next day (two segments).
fn batch(tag: &str, first_day: i64) -> Vec<Value> {
    (0..EVENTS_PER_BATCH)
        .map(|i| {
            let day = first_day + (i % 2) as i64;
            json!({"event": "E", "properties": {
                "time": T0_MS + day * DAY_MS + i as i64 * 1000,
                "distinct_id": format!("u{i}"),
                "$insert_id": format!("{tag}-{i}"),
                "batch": tag,
            }})
        })
        .collect()
}

/// Sends a batch; `true` only for a 200. A connection error (the process ended) is `false`.
fn send(d: &Daemon, events: &[Value]) -> bool {
    let url = format!("{}/import?project={PROJECT}", d.url());
    match http_client().post(url).json(&events).send() {
        Ok(r) => r.status().as_u16() == 200,
        Err(_) => false,
    }
}

/// Count per batch tag over all time.
fn counts(d: &Daemon) -> BTreeMap<String, u64> {
    let q = json!({"project": PROJECT, "from": 0, "to": i64::MAX, "group_by": "properties.batch"});
    let r = d.query(&q);
    r["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("query answer {r}"))
        .iter()
        .map(|row| (row["key"].as_str().unwrap().to_string(), row["count"].as_u64().unwrap()))
        .collect()
}

fn start(dir: &TestDir, failpoints: Option<&str>, config: Option<&str>) -> Daemon {
    let mut d = Daemon::start(&dir.data_dir(), config);
    if failpoints.is_some() {
        d.set_failpoints(failpoints);
        d.restart();
    }
    d
}

/// Waits for the failpoint to end the process and checks that it was that failpoint.
fn expect_failpoint_exit(d: &mut Daemon, point: &str) {
    let st = d.wait_for_exit(Duration::from_secs(20)).unwrap_or_else(|| panic!("{point} did not fire"));
    assert_eq!(st.code(), Some(101), "{point}: exit status {st}\n{}", d.log_tail(30));
    assert!(d.log_tail(200).contains(&format!("failpoint {point} hit")), "{}", d.log_tail(30));
}

fn restart_clean(d: &mut Daemon) {
    d.set_failpoints(None);
    d.restart();
}

fn quarantined_files(dir: &TestDir) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .map_or(0, |rd| rd.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
    }
    walk(&dir.data_dir().join("quarantine"))
}

/// Sends batches (each starting one day later, so each creates a segment) until one fails; returns the tags that
/// were acknowledged and the one that failed.
fn ingest_until_crash(d: &mut Daemon) -> (Vec<String>, String) {
    let mut acked = Vec::new();
    for k in 0..20 {
        let tag = format!("b{k}");
        if send(d, &batch(&tag, k)) {
            acked.push(tag);
        } else {
            return (acked, tag);
        }
    }
    panic!("no request failed in 20 batches\n{}", d.log_tail(30));
}

fn check_after_restart(d: &Daemon, acked: &[String], failed: &str, failed_present: bool) {
    let got = counts(d);
    let mut want: BTreeMap<String, u64> = acked.iter().map(|t| (t.clone(), EVENTS_PER_BATCH as u64)).collect();
    if failed_present {
        want.insert(failed.to_string(), EVENTS_PER_BATCH as u64);
    }
    assert_eq!(got, want, "batch counts after restart\n{}", d.log_tail(40));
    check_catalog_matches_disk(d).unwrap_or_else(|e| panic!("{e}\n{}", d.log_tail(40)));
}

fn crash_in_group_commit(point: &str, failed_present: bool) -> (TestDir, Daemon) {
    let dir = TestDir::new(&format!("fp-{point}"));
    let mut d = start(&dir, Some(&format!("{point}=exit@3")), None);
    let (acked, failed) = ingest_until_crash(&mut d);
    assert!(!acked.is_empty(), "the failpoint fired on its third hit, after at least one whole batch");
    expect_failpoint_exit(&mut d, point);
    restart_clean(&mut d);
    check_after_restart(&d, &acked, &failed, failed_present);
    (dir, d)
}

#[test]
fn crash_after_creating_a_segment_file_loses_the_batch_and_quarantines_the_file() {
    let (dir, _d) = crash_in_group_commit("hot.create", false);
    assert!(quarantined_files(&dir) >= 1, "the new, uncommitted segment file is quarantined");
}

#[test]
fn crash_after_writing_frames_loses_the_batch() {
    crash_in_group_commit("hot.write", false);
}

#[test]
fn crash_after_fsync_before_commit_loses_the_batch() {
    crash_in_group_commit("hot.fsync", false);
}

#[test]
fn crash_after_commit_before_ack_keeps_the_whole_batch() {
    crash_in_group_commit("hot.commit", true);
}

#[test]
fn crash_while_sealing_keeps_everything_and_recovery_seals() {
    let dir = TestDir::new("fp-seal");
    let mut d = start(&dir, Some("hot.seal=exit"), Some("[hot]\nseal_max_age_secs = 1\n"));
    assert!(send(&d, &batch("b0", 0)), "{}", d.log_tail(20));
    expect_failpoint_exit(&mut d, "hot.seal");
    restart_clean(&mut d);
    check_after_restart(&d, &["b0".to_string()], "none", false);
    let segs = d.segments(PROJECT, None, None);
    let states: Vec<&str> = segs["segments"].as_array().unwrap().iter().map(|s| s["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["sealed", "sealed"], "recovery sealed the open segments: {segs}");
}

/// Leaves an unacknowledged tail (crash after fsync, before commit) on an existing segment, or an unknown file.
fn crash_leaving_debris(dir: &TestDir) -> (Daemon, Vec<String>) {
    let mut d = start(dir, Some("hot.fsync=exit@5"), None);
    // Both batches cover days 0 and 1: the second appends to the first one's segments (hits 3, 4); the third
    // batch's fsync of day 0 is hit 5, after its frames were written to an existing segment.
    let mut acked = Vec::new();
    for k in 0..3 {
        let tag = format!("b{k}");
        if send(&d, &batch(&tag, 0)) {
            acked.push(tag);
        }
    }
    assert_eq!(acked, vec!["b0", "b1"]);
    expect_failpoint_exit(&mut d, "hot.fsync");
    (d, acked)
}

fn crash_during_recovery(name: &str, point: &str) {
    let dir = TestDir::new(name);
    let (mut d, acked) = crash_leaving_debris(&dir);
    // An unknown file too, so every recovery step has work.
    let stray = dir.data_dir().join("hot").join(PROJECT).join("01ARZ3NDEKTSV4RRFFQ69G5FAV.rows");
    std::fs::write(&stray, b"not a segment").unwrap();
    d.set_failpoints(Some(&format!("{point}=exit")));
    let err = d.try_restart().expect_err("recovery must stop at the failpoint");
    assert_eq!(err.status.and_then(|s| s.code()), Some(101), "{err}");
    assert!(err.log_tail.contains(&format!("failpoint {point} hit")), "{err}");
    restart_clean(&mut d);
    check_after_restart(&d, &acked, "b2", false);
    assert!(!stray.exists(), "the stray file was quarantined");
    assert!(quarantined_files(&dir) >= 1);
}

#[test]
fn crash_after_cutting_a_tail_during_recovery() {
    crash_during_recovery("fp-rec-truncate", "recovery.truncate");
}

#[test]
fn crash_after_the_recovery_seal_commit() {
    crash_during_recovery("fp-rec-seal", "recovery.seal");
}

#[test]
fn crash_after_quarantining_a_file_during_recovery() {
    crash_during_recovery("fp-rec-quarantine", "recovery.quarantine");
}

// ---- rewrites and garbage collection ----

/// Runs a pass; `None` when the process ended during the request (a failpoint that exits).
fn try_pass(d: &Daemon, name: &str) -> Option<Value> {
    let url = format!("{}/v1/admin/passes/{name}/run", d.url());
    let r = http_client().post(url).json(&json!({})).send().ok()?;
    assert_eq!(r.status().as_u16(), 200);
    r.json().ok()
}

fn live_formats(d: &Daemon) -> Vec<String> {
    let segs = d.segments(PROJECT, None, None);
    segs["segments"].as_array().unwrap().iter().map(|s| s["format"].as_str().unwrap().to_string()).collect()
}

/// Three acknowledged batches over days 0-3, all sealed (a clean stop seals), daemon running without failpoints.
fn sealed_rows(dir: &TestDir, config: Option<&str>) -> (Daemon, Vec<String>) {
    let mut d = start(dir, None, config);
    let tags: Vec<String> = (0..3).map(|k| format!("b{k}")).collect();
    for (k, tag) in tags.iter().enumerate() {
        assert!(send(&d, &batch(tag, k as i64)));
    }
    // A re-send of the first batch: the rewrite's dedup removes its copies into a side segment.
    assert!(send(&d, &batch(&tags[0], 0)));
    d.stop();
    d.restart();
    assert!(live_formats(&d).iter().all(|f| f == "rows"));
    (d, tags)
}

/// Live side segments of removed duplicates, over all projects.
fn duplicates_segments(d: &Daemon) -> usize {
    let listed = |p: &str| d.get(&format!("/v1/catalog/segments?project={p}&duplicates=true")).json;
    d.projects().iter().map(|p| listed(p)["segments"].as_array().map_or(0, |s| s.len())).sum()
}

/// Kills the daemon at `point` of a lossless re-encode: on its first hit (the output's step) or, with `@2`, on its
/// second (the side segment's step, after the output's).
fn crash_in_rewrite(point: &str, committed: bool) {
    let name = point.replace('@', "-");
    let dir = TestDir::new(&format!("fp-{name}"));
    let (mut d, tags) = sealed_rows(&dir, None);
    let spec = if point.contains('@') { point.replacen('@', "=exit@", 1) } else { format!("{point}=exit") };
    let point = point.split('@').next().unwrap();
    d.set_failpoints(Some(&spec));
    d.restart();
    assert!(try_pass(&d, "reencode").is_none(), "the pass must die at {point}");
    expect_failpoint_exit(&mut d, point);
    restart_clean(&mut d);
    check_after_restart(&d, &tags, "none", false);
    let formats = live_formats(&d);
    if committed {
        assert!(formats.contains(&"parquet".to_string()), "the committed rewrite survives: {formats:?}");
        assert_eq!(duplicates_segments(&d), 1, "the first day's side segment was committed with its output");
    } else {
        assert!(formats.iter().all(|f| f == "rows"), "the uncommitted rewrite left no trace: {formats:?}");
        assert_eq!(duplicates_segments(&d), 0, "nor a side segment");
    }
    // Whatever happened, the pass can run to the end now and answers stay the same.
    let report = try_pass(&d, "reencode").expect("pass runs");
    assert_eq!(report["errors"], json!([]), "{report}");
    assert!(live_formats(&d).iter().all(|f| f == "parquet"));
    assert_eq!(duplicates_segments(&d), 2, "one per day of the re-sent batch");
    check_after_restart(&d, &tags, "none", false);
}

#[test]
fn crash_after_the_rewrite_intent_leaves_no_trace() {
    crash_in_rewrite("rewrite.intent", false);
}

#[test]
fn crash_after_writing_a_rewrite_output_deletes_it_on_recovery() {
    crash_in_rewrite("rewrite.write", false);
}

#[test]
fn crash_after_verifying_a_rewrite_output_deletes_it_on_recovery() {
    crash_in_rewrite("rewrite.verify", false);
}

#[test]
fn crash_after_writing_the_duplicates_side_segment_deletes_both_on_recovery() {
    crash_in_rewrite("rewrite.write@2", false);
}

#[test]
fn crash_after_verifying_the_duplicates_side_segment_deletes_both_on_recovery() {
    crash_in_rewrite("rewrite.verify@2", false);
}

#[test]
fn crash_after_the_rewrite_commit_keeps_the_rewrite() {
    crash_in_rewrite("rewrite.commit", true);
}

#[test]
fn crash_during_recovery_rollback_of_a_rewrite() {
    let dir = TestDir::new("fp-rec-rollback");
    let (mut d, tags) = sealed_rows(&dir, None);
    d.set_failpoints(Some("rewrite.verify=exit"));
    d.restart();
    assert!(try_pass(&d, "reencode").is_none());
    expect_failpoint_exit(&mut d, "rewrite.verify");
    d.set_failpoints(Some("recovery.rollback=exit"));
    let err = d.try_restart().expect_err("recovery stops at the failpoint");
    assert!(err.log_tail.contains("failpoint recovery.rollback hit"), "{err}");
    restart_clean(&mut d);
    check_after_restart(&d, &tags, "none", false);
    assert!(live_formats(&d).iter().all(|f| f == "rows"));
}

#[test]
fn crash_between_gc_deletes_and_the_catalog_commit() {
    let dir = TestDir::new("fp-gc");
    let config = "[catalog]\nlease_ttl_secs = 60\n[gc]\ngrace_secs = 0\n";
    let lease_ttl_ms = 60_000;
    let (mut d, tags) = sealed_rows(&dir, Some(config));
    assert_eq!(try_pass(&d, "reencode").unwrap()["errors"], json!([]));
    d.set_failpoints(Some("gc.delete=exit@1"));
    d.restart();
    d.assert_gc_waits();
    d.advance_clock(lease_ttl_ms); // one lease TTL after the restart
    assert!(try_pass(&d, "gc").is_none(), "gc must die after its first delete");
    expect_failpoint_exit(&mut d, "gc.delete");
    restart_clean(&mut d);
    check_after_restart(&d, &tags, "none", false);
    d.assert_gc_waits();
    d.advance_clock(lease_ttl_ms);
    let report = try_pass(&d, "gc").expect("gc runs");
    assert_eq!(report["errors"], json!([]), "{report}");
    check_after_restart(&d, &tags, "none", false);
    let all = d.get(&format!("/v1/catalog/segments?project={PROJECT}&include_retired=true")).json;
    assert!(
        all["segments"].as_array().unwrap().iter().all(|s| s["state"] != "retired"),
        "every retired segment is gone: {all}"
    );
}

// ---- compaction and recompression: the same rewrite steps, under the other passes ----

/// Codecs of the live segments, sorted.
fn live_codecs(d: &Daemon) -> Vec<String> {
    let segs = d.segments(PROJECT, None, None);
    let mut c: Vec<String> =
        segs["segments"].as_array().unwrap().iter().map(|s| s["codec"].as_str().unwrap().to_string()).collect();
    c.sort();
    c
}

/// Parquet segments ready for `pass`: for `compact`, days 0 and 1 hold two small Parquet segments each (a later
/// batch re-encoded separately); for `recompress`, every day's Parquet segment is older than the ladder's steps
/// (the events are of early 2026), so it goes up to zstd-19.
fn parquet_ready_for(dir: &TestDir, pass: &str) -> (Daemon, Vec<String>) {
    let (mut d, mut tags) = sealed_rows(dir, None);
    assert_eq!(try_pass(&d, "reencode").unwrap()["errors"], json!([]));
    if pass == "compact" {
        assert!(send(&d, &batch("b3", 0)));
        tags.push("b3".to_string());
        d.stop();
        d.restart();
        assert_eq!(try_pass(&d, "reencode").unwrap()["errors"], json!([]));
    }
    assert!(live_formats(&d).iter().all(|f| f == "parquet"));
    (d, tags)
}

/// Kills the daemon at rewrite step `point` of `pass`; then every acknowledged event is counted once, the catalog
/// and the disk agree, and the pass, run again, finishes the job.
fn crash_in_pass(pass: &str, point: &str, committed: bool) {
    let dir = TestDir::new(&format!("fp-{pass}-{point}"));
    let (mut d, tags) = parquet_ready_for(&dir, pass);
    let (segments_before, codecs_before) = (live_formats(&d).len(), live_codecs(&d));
    d.set_failpoints(Some(&format!("{point}=exit")));
    d.restart();
    assert!(try_pass(&d, pass).is_none(), "the {pass} pass must die at {point}");
    expect_failpoint_exit(&mut d, point);
    restart_clean(&mut d);
    check_after_restart(&d, &tags, "none", false);
    let changed = match pass {
        "compact" => live_formats(&d).len() < segments_before,
        _ => live_codecs(&d) != codecs_before,
    };
    assert_eq!(changed, committed, "{pass} at {point}: committed = {committed}");
    let report = try_pass(&d, pass).expect("pass runs");
    assert_eq!(report["errors"], json!([]), "{report}");
    match pass {
        "compact" => assert!(live_formats(&d).len() < segments_before, "compacted in the end"),
        _ => assert!(live_codecs(&d).iter().all(|c| c == "zstd-19"), "recompressed in the end: {:?}", live_codecs(&d)),
    }
    check_after_restart(&d, &tags, "none", false);
}

#[test]
fn crashes_at_every_step_of_a_compaction() {
    for (point, committed) in
        [("rewrite.intent", false), ("rewrite.write", false), ("rewrite.verify", false), ("rewrite.commit", true)]
    {
        crash_in_pass("compact", point, committed);
    }
}

#[test]
fn crashes_at_every_step_of_a_recompression() {
    for (point, committed) in
        [("rewrite.intent", false), ("rewrite.write", false), ("rewrite.verify", false), ("rewrite.commit", true)]
    {
        crash_in_pass("recompress", point, committed);
    }
}
