//! Schedules end to end, on the real daemon left alone (`Daemon::start_scheduled`, every pass every second, small
//! thresholds): segments go rows -> Parquet -> recompressed -> cold with nobody calling a pass, and every query
//! equals the model at each stage; `GET /v1/status` and the metrics show the runs; a failing pass is counted and
//! retried while the others keep running; SIGHUP with an invalid file is refused (old schedule kept), with a valid
//! one the schedule changes; an open day is sealed by date once the test clock crosses its midnight.
//!
//! Time is moved with the test clock; the only real waiting is for the every-second schedules to fire (polled).

use std::time::Duration;

use serde_json::{json, Value};
use tierd_tests::daemon::{Daemon, TestDir};
use tierd_tests::gen::EventGen;
use tierd_tests::model::{check_answer, Model};
use tierd_tests::mp::FAR_FUTURE_MS;

const P: &str = "sched";
const DAY_MS: i64 = 86_400_000;

/// Every pass every second, no jitter, the default rules with free requests (so that small segments move by age
/// alone); `extra` is appended (later keys of a section must not repeat).
/// The hot tier's size as the rules see it (`hot.max_bytes`): ample, and the test's own rather than the build
/// machine's disk, whose fill would otherwise trigger the default hot-disk-full rule.
const HOT_MAX_BYTES: u64 = 64 << 30;

fn config(extra: &str) -> String {
    format!(
        "[hot]\nseal_max_age_secs = 1\nmax_bytes = {HOT_MAX_BYTES}\n\
         [passes]\nschedule_jitter_secs = 0\n\
         [passes.reencode]\nschedule = \"* * * * * *\"\nmin_age_secs = 0\n\
         [passes.compact]\nschedule = \"* * * * * *\"\n\
         [passes.recompress]\nschedule = \"* * * * * *\"\nladder = [{{ min_age_secs = 172800, codec = \"zstd-3\" }}]\n\
         [passes.migrate]\nschedule = \"* * * * * *\"\ncold_after_secs = 345600\n\
         [passes.promote]\nschedule = \"* * * * * *\"\n\
         [passes.gc]\nschedule = \"* * * * * *\"\n{}{extra}",
        tierd_tests::policy::FREE_REQUESTS
    )
}

fn segments(d: &Daemon) -> Vec<Value> {
    d.segments(P, None, None)["segments"].as_array().unwrap().clone()
}

/// Whether there are segments and all of them satisfy `pred`.
fn all_segments(d: &Daemon, pred: impl Fn(&Value) -> bool) -> bool {
    let segs = segments(d);
    !segs.is_empty() && segs.iter().all(pred)
}

fn pass_status(d: &Daemon, name: &str) -> Value {
    d.status()["passes"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap()
}

fn check_all(d: &Daemon, m: &Model, stage: &str) {
    for q in [
        json!({"project": P, "from": 0, "to": FAR_FUTURE_MS}),
        json!({"project": P, "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}),
        json!({"project": P, "from": 0, "to": FAR_FUTURE_MS, "group_by": "properties.$os"}),
    ] {
        let got = d.query(&q);
        if let Err(e) = check_answer(&q, &got, &m.answer(&q)) {
            panic!("after {stage}: {e}\n{}", d.log_tail(30));
        }
    }
}

/// The daemon's day (days since the epoch).
fn today(d: &Daemon) -> i64 {
    d.status()["now_ms"].as_i64().unwrap().div_euclid(DAY_MS)
}

fn ingest(d: &Daemon, m: &mut Model, day0: i64, n: usize) {
    let mut g = EventGen::new(11, day0, 1);
    let events = g.events(n);
    for chunk in events.chunks(500) {
        d.import_ok(P, chunk);
        m.ack(P, chunk);
    }
}

#[test]
fn a_daemon_left_alone_takes_segments_from_rows_to_cold() {
    let dir = TestDir::new("sched-ladder");
    let mut d = Daemon::start_scheduled(&dir.data_dir(), Some(&config("")));
    let mut m = Model::new();
    // Yesterday's events: over by date, sealed by age within a second; then re-encoded with nobody asking.
    ingest(&d, &mut m, today(&d) - 1, 2_000);
    check_all(&d, &m, "ingest");
    d.wait_for("columnar lz4", || {
        all_segments(&d, |s| s["format"] == "parquet" && s["codec"] == "lz4" && s["tier"] == "hot")
    });
    check_all(&d, &m, "scheduled reencode");
    // Two days on, the ladder's zstd-3 rung (newest event 2 days old).
    d.advance_clock(2 * DAY_MS as u64);
    d.wait_for("recompressed", || all_segments(&d, |s| s["codec"] == "zstd-3" && s["tier"] == "hot"));
    check_all(&d, &m, "scheduled recompress");
    // Two more days: past cold_after (4 days), migrate sends every segment cold.
    d.advance_clock(2 * DAY_MS as u64);
    d.wait_for("cold", || all_segments(&d, |s| s["tier"] == "cold"));
    check_all(&d, &m, "scheduled migrate");

    let status = d.status();
    assert_eq!(status["scheduler"], true);
    for name in ["reencode", "recompress", "migrate", "compact", "promote", "gc"] {
        let p = pass_status(&d, name);
        assert!(p["runs"].as_u64().unwrap() >= 1, "{name}: {p}");
        assert_eq!(p["failures"], 0, "{name}: {p}");
        assert_eq!(p["schedule"], "* * * * * *");
        assert!(p["next_run_ms"].as_i64().unwrap() > status["now_ms"].as_i64().unwrap() - 1000, "{p}");
        let last = &p["last_run"];
        assert_eq!((last["trigger"].as_str(), last["outcome"].as_str()), (Some("schedule"), Some("ok")), "{p}");
    }
    assert!(d.metric_sum("tierd_pass_runs_total{pass=\"migrate\",outcome=\"ok\",trigger=\"schedule\"}") >= 1.0);
    assert!(d.metric_sum("tierd_pass_seconds_count{pass=\"reencode\"}") >= 1.0);
    assert!(d.metric_sum("tierd_pass_next_run_timestamp_seconds{pass=\"gc\"}") > 1.0e9);
    // A run by hand is the last run too.
    let r = d.post_json("/v1/admin/passes/compact/run", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    d.wait_for("manual run shown", || pass_status(&d, "compact")["last_run"]["trigger"] == "manual");
    d.stop();
}

#[test]
fn a_failing_pass_is_counted_and_retried_and_the_others_keep_running() {
    let dir = TestDir::new("sched-failing");
    let mut d = Daemon::start_scheduled(&dir.data_dir(), Some(&config("")));
    // Every move fails at its first step (the failpoint is read at start-up).
    d.set_failpoints(Some("move.intent=error"));
    d.restart();
    let mut m = Model::new();
    ingest(&d, &mut m, today(&d) - 5, 500);
    d.wait_for("migrate failed twice", || pass_status(&d, "migrate")["failures"].as_u64().unwrap() >= 2);
    let migrate = pass_status(&d, "migrate");
    assert_eq!(migrate["last_run"]["outcome"], "failed", "{migrate}");
    assert!(migrate["last_run"]["message"].as_str().unwrap().contains("migrate"), "{migrate}");
    // Meanwhile the other passes run and succeed: the day is re-encoded and recompressed (all hot: moves fail).
    d.wait_for("recompressed despite failing migrations", || {
        all_segments(&d, |s| s["codec"] == "zstd-3" && s["tier"] == "hot")
    });
    let reencode = pass_status(&d, "reencode");
    assert_eq!(reencode["failures"], 0, "{reencode}");
    assert!(reencode["runs"].as_u64().unwrap() >= 1);
    assert!(d.metric_sum("tierd_pass_runs_total{pass=\"migrate\",outcome=\"failed\",trigger=\"schedule\"}") >= 2.0);
    check_all(&d, &m, "failing migrations");
    // Without the failpoint, the next scheduled migrate succeeds.
    d.set_failpoints(None);
    d.restart();
    d.wait_for("cold after the fault is gone", || all_segments(&d, |s| s["tier"] == "cold"));
    check_all(&d, &m, "migrated");
    d.stop();
}

#[test]
fn sighup_refuses_an_invalid_file_and_applies_a_valid_one() {
    let dir = TestDir::new("sched-reload");
    let mut d = Daemon::start_scheduled(&dir.data_dir(), Some(&config("")));
    let reloads = |d: &Daemon| d.status()["config"].clone();
    // A schedule that does not parse: refused, naming the key; the old schedule keeps running.
    d.set_config(
        &config("").replace("[passes.gc]\nschedule = \"* * * * * *\"", "[passes.gc]\nschedule = \"*/5 * * * *\""),
    );
    d.sighup();
    d.wait_for("refusal", || reloads(&d)["reloads_refused"] == 1);
    let last = reloads(&d)["last_reload"].clone();
    assert_eq!(last["outcome"], "refused");
    assert!(last["message"].as_str().unwrap().contains("passes.gc.schedule"), "{last}");
    assert_eq!(pass_status(&d, "gc")["schedule"], "* * * * * *");
    let runs = pass_status(&d, "gc")["runs"].as_u64().unwrap();
    d.wait_for("gc still running every second", || pass_status(&d, "gc")["runs"].as_u64().unwrap() > runs + 1);
    // A key that takes a restart: refused whole, naming it (the same answer over HTTP).
    d.set_config(&config("[cache]\nmax_bytes = 12345\n").replace("\"*/5", "\"*"));
    let r = d.post_json("/v1/admin/config/reload", &json!({}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("cache") && r.text().contains("restart"), "{}", r.text());
    assert_eq!(reloads(&d)["reloads_refused"], 2);
    // A valid file: gc once a year, reencode off.
    let valid = config("")
        .replace("[passes.gc]\nschedule = \"* * * * * *\"", "[passes.gc]\nschedule = \"0 0 0 1 1 *\"")
        .replace("[passes.reencode]\nschedule = \"* * * * * *\"", "[passes.reencode]\nschedule = \"\"");
    d.set_config(&valid);
    d.sighup();
    d.wait_for("applied", || reloads(&d)["reloads_applied"] == 1);
    assert_eq!(reloads(&d)["last_reload"]["outcome"], "applied");
    let gc = pass_status(&d, "gc");
    assert_eq!(gc["schedule"], "0 0 0 1 1 *");
    let now = d.status()["now_ms"].as_i64().unwrap();
    assert!(gc["next_run_ms"].as_i64().unwrap() > now + 60_000, "{gc}");
    let reencode = pass_status(&d, "reencode");
    assert_eq!((reencode["enabled"].as_bool(), reencode["next_run_ms"].is_null()), (Some(false), true), "{reencode}");
    let runs = gc["runs"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(pass_status(&d, "gc")["runs"].as_u64().unwrap(), runs, "gc no longer runs every second");
    d.stop();
}

#[test]
fn an_open_day_is_sealed_by_date_after_midnight_and_then_reencoded() {
    let dir = TestDir::new("sched-midnight");
    let toml = config("").replace("seal_max_age_secs = 1", "seal_max_age_secs = 86400\nseal_lateness_secs = 60");
    let mut d = Daemon::start_scheduled(&dir.data_dir(), Some(&toml));
    let mut m = Model::new();
    let day = today(&d);
    let now = d.status()["now_ms"].as_i64().unwrap();
    // Today's events, all before now.
    let span = (now - day * DAY_MS).max(1);
    let events: Vec<Value> = (0..300i64)
        .map(|i| {
            json!({"event": if i % 3 == 0 { "Signup" } else { "View" }, "properties": {
                "time": day * DAY_MS + i * span / 300, "distinct_id": format!("u{}", i % 17),
                "$insert_id": format!("mid-{i}"), "$os": if i % 2 == 0 { "iOS" } else { "Linux" }}})
        })
        .collect();
    d.import_ok(P, &events);
    m.ack(P, &events);
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(segments(&d).iter().all(|s| s["state"] == "open" && s["format"] == "rows"), "{:?}", segments(&d));
    // To 1 s before midnight + lateness: still open.
    let midnight = (day + 1) * DAY_MS;
    let to = |d: &Daemon| (midnight + 59_000 - d.status()["now_ms"].as_i64().unwrap()) as u64;
    d.advance_clock(to(&d));
    std::thread::sleep(Duration::from_millis(300));
    assert!(segments(&d).iter().all(|s| s["state"] == "open"), "{:?}", segments(&d));
    d.advance_clock(2_000);
    d.wait_for("sealed by date and re-encoded", || all_segments(&d, |s| s["format"] == "parquet"));
    check_all(&d, &m, "sealed by date");
    assert!(d.metric_sum("tierd_hot_sealed_by_date_total") >= 1.0);
    d.stop();
}
