//! A user deletion reaches every byte, end to end on the real daemon: the deleted user's events are spread over hot
//! row segments, hot and cold Parquet segments, side segments of removed duplicates, the retired inputs of a
//! re-encode still in their grace period, trash entries of earlier gc runs on both tiers (hot files, cold objects)
//! and cached cold blocks. After the request, the `deletions` pass and gc run until the request is `done`; then every
//! file left (hot directory with its trash and quarantine, the `file://` bucket with its trash) is decoded and holds
//! no row of the user up to the request's sequence, every cached block belongs to a live cold copy, answers equal
//! the model, and the user's later events are kept. Then the real process is killed (kill -9 by failpoint) at each
//! step of a deletion rewrite, of the erasure of the trash and retired copies, and of gc's erasure, and at random
//! moments while the passes run on their schedules and events are ingested: after a restart no deleted event is
//! answered, no surviving event is lost, the request is still there and reaches `done`, and no file holds the
//! deleted rows. Results: RELIABILITY.md, "User deletions".

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use tierd_tests::daemon::{http_client, Daemon, TestDir};
use tierd_tests::erasure::{
    assert_cache_only_live, assert_no_deleted_rows, cached_objects, finish_deletion, holds_rows_of,
};
use tierd_tests::model::{check_answer, Model};
use tierd_tests::mp::FAR_FUTURE_MS;
use tierd_tests::policy;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
const PROJECTS: [&str; 2] = ["web", "app"];
const GRACE_SECS: u64 = 600;
/// Past the grace period and the lease TTL (60 s).
const WAIT_MS: u64 = (GRACE_SECS + 1) * 1000;

fn config(erase_retention_secs: u64) -> String {
    format!(
        "[catalog]\nlease_ttl_secs = 60\n[gc]\ngrace_secs = {GRACE_SECS}\ntrash_retention_secs = 86400\n\
         [rewrite]\nkeep_duplicates_secs = 864000\n[passes.reencode]\nmin_age_secs = 0\n\
         [deletions]\ntrash_retention_secs = {erase_retention_secs}\n{}",
        policy::ALL_COLD
    )
}

/// The `n`-th event: user `u{n % 6}`.
fn event(project: &str, time_ms: i64, n: i64, v: i64) -> Value {
    let names = ["view", "click", "buy"];
    json!({"event": names[(n % 3) as usize], "properties": {
        "time": time_ms, "distinct_id": format!("u{}", n % 6), "$insert_id": format!("{project}-{time_ms}-{n}"),
        "v": v,
    }})
}

fn pass(d: &Daemon, name: &str) -> Value {
    let r = d.post_json(&format!("/v1/admin/passes/{name}/run"), &json!({}));
    assert_eq!(r.status, 200, "pass {name}: {}", r.text());
    assert_eq!(r.json["errors"], json!([]), "pass {name}: {}\n{}", r.text(), d.log_tail(30));
    r.json
}

fn send(d: &Daemon, m: &mut Model, p: &str, events: &[Value]) {
    d.import_ok(p, events);
    m.ack(p, events);
}

fn check_answers(d: &Daemon, m: &Model, stage: &str) {
    for p in PROJECTS {
        let all = json!({"project": p, "from": 0, "to": FAR_FUTURE_MS});
        let mut by_user = all.clone();
        by_user["group_by"] = json!("properties.distinct_id");
        let mut by_v = all.clone();
        by_v["group_by"] = json!("properties.v");
        for q in [all, by_user, by_v] {
            if let Err(e) = check_answer(&q, &d.query(&q), &m.answer(&q)) {
                panic!("{stage}: {e}\n{}", d.log_tail(30));
            }
        }
    }
}

/// A daemon with user `u1` of `web` in every kind of copy, and the acknowledged request to delete it.
struct Setup {
    _dir: TestDir,
    d: Daemon,
    m: Model,
    id: String,
    max_seq: u64,
}

fn setup(name: &str, erase_retention_secs: u64) -> Setup {
    let dir = TestDir::new(name);
    let mut d = Daemon::start(&dir.data_dir(), Some(&config(erase_retention_secs)));
    let now = d.advance_clock(1);
    let mut m = Model::new();
    for p in PROJECTS {
        let first_day = now.div_euclid(DAY) - 5;
        let events: Vec<Value> =
            (0..3 * 24).map(|n| event(p, (first_day + n / 24) * DAY + (n % 24) * HOUR + HOUR / 2, n, 1)).collect();
        send(&d, &mut m, p, &events);
        // Re-sends: the re-encode keeps the last copy and moves the first to a side segment.
        let resent: Vec<Value> = events.iter().step_by(5).map(|e| with_v(e, 2)).collect();
        send(&d, &mut m, p, &resent);
    }
    d.stop();
    d.restart(); // seals
    pass(&d, "reencode");
    // gc of the re-encode's row inputs: trash entries (hot) that hold u1's rows.
    d.advance_clock(WAIT_MS);
    assert!(!pass(&d, "gc")["actions"].as_array().unwrap().is_empty(), "gc trashed the row inputs");
    pass(&d, "migrate");
    // One web segment comes back hot by hand: its cold copy (dropped) goes to the cold trash, the others' hot
    // copies to the hot trash.
    let cold: Vec<Value> = d.segments("web", None, None)["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tier"] == "cold")
        .cloned()
        .collect();
    assert!(cold.len() >= 2, "{cold:?}");
    let r = d.post_json("/v1/admin/move", &json!({"segments": [cold[0]["id"]], "to": "hot"}));
    assert_eq!(r.status, 200, "{}", r.text());
    d.advance_clock(WAIT_MS);
    pass(&d, "gc");
    // Queries read the cold segments: their blocks are cached.
    check_answers(&d, &m, "before the deletion");
    assert!(!cached_objects(d.data_dir()).is_empty(), "cold blocks are cached");
    // Late events: mixed users on one day, u1 alone on another (a segment every row of which goes), re-encoded
    // (the row inputs retired, in their grace period); then more events left in hot row segments.
    // Hours from midnight, so that each group stays within its UTC day whatever the time of day the test runs.
    let midnight = now.div_euclid(DAY) * DAY;
    let late: Vec<Value> = (0..12).map(|n| event("web", midnight - 3 * DAY + n * HOUR + 17, 100 + n, 3)).collect();
    send(&d, &mut m, "web", &late);
    let alone: Vec<Value> = (0..4).map(|n| event("web", midnight - 2 * DAY + n * HOUR + 19, 6 * n + 1, 4)).collect();
    send(&d, &mut m, "web", &alone);
    d.stop();
    d.restart();
    pass(&d, "reencode");
    let rows: Vec<Value> = (0..12).map(|n| event("web", midnight - DAY + n * HOUR + 23, 200 + n, 5)).collect();
    send(&d, &mut m, "web", &rows);
    d.stop();
    d.restart();

    let r = d.post_json("/v1/admin/deletions", &json!({"project": "web", "distinct_id": "u1"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let (id, max_seq) = (r.json["id"].as_str().unwrap().to_string(), r.json["max_seq"].as_u64().unwrap());
    m.delete_users("web", &["u1"]);
    // u1 comes back: kept.
    let back = [event("web", now - DAY + 13, 1, 9), with_v(&late[1], 9)];
    send(&d, &mut m, "web", &back);
    check_answers(&d, &m, "right after the request");
    Setup { _dir: dir, d, m, id, max_seq }
}

fn with_v(e: &Value, v: i64) -> Value {
    let mut e = e.clone();
    e["properties"]["v"] = json!(v);
    e
}

/// The end state every run must reach: done, nothing of u1 up to the request in any file, the cache holding live
/// objects only, answers equal to the model, the other project's u1 untouched.
fn check_erased(s: &mut Setup, stage: &str) -> Value {
    let r = finish_deletion(&mut s.d, &s.id, WAIT_MS, 8);
    let p = &r["progress"];
    assert_eq!((&p["bytes_left"], &p["copies_left"]["trash"]), (&json!(0), &json!(0)), "{stage}: {r}");
    let users: BTreeSet<&str> = ["u1"].into();
    assert_no_deleted_rows(s.d.data_dir(), "web", &users, s.max_seq, stage);
    assert_cache_only_live(&s.d, stage);
    check_answers(&s.d, &s.m, stage);
    assert!(!holds_rows_of(s.d.data_dir(), "app", "u1", u64::MAX).is_empty(), "{stage}: app's u1 is kept");
    r
}

#[test]
fn at_done_no_file_on_either_tier_holds_the_deleted_rows() {
    let mut s = setup("purge", 0);
    // Before: u1's rows are in live segments, the hot trash, the cold trash (so the final check can fail).
    let files = holds_rows_of(s.d.data_dir(), "web", "u1", s.max_seq);
    for prefix in ["hot/", "trash/", "cold/segments/", "cold/trash/"] {
        assert!(files.iter().any(|f| f.starts_with(prefix)), "u1 rows under {prefix}: {files:?}");
    }
    let r = check_erased(&mut s, "at done");
    let p = &r["progress"];
    assert!(p["trash_purged"].as_u64().unwrap() >= 2, "hot and cold trash entries: {r}");
    assert!(p["retired_marked"].as_u64().unwrap() >= 1, "the re-encode's inputs in grace: {r}");
    assert!(p["segments_retired"].as_u64().unwrap() >= 1, "the u1-only segment: {r}");
    assert!(p["started_at_ms"].is_i64() && p["finished_at_ms"].is_i64(), "{r}");
    let listed = s.d.get("/v1/admin/deletions").json;
    assert_eq!(listed["deletions"][0]["progress"]["copies_left"]["retired_hot"], 0, "{listed}");
    for metric in ["tierd_gc_erased_copies_total", "tierd_erase_trash_purged_total", "tierd_cache_purged_blocks_total"]
    {
        assert!(s.d.metric_sum(metric) > 0.0, "{metric}");
    }
    // Restarted, nothing comes back.
    s.d.kill9();
    s.d.restart();
    check_answers(&s.d, &s.m, "after done and a restart");
    assert_no_deleted_rows(s.d.data_dir(), "web", &["u1"].into(), s.max_seq, "after done and a restart");
}

#[test]
fn with_an_erasure_retention_the_request_waits_for_the_trash_to_be_purged() {
    let mut s = setup("purge-retention", 60);
    // The first run rewrites and marks; gc trashes the erased copies for 60 s: still running, trash counted.
    pass(&s.d, "deletions");
    s.d.advance_clock(WAIT_MS);
    pass(&s.d, "gc");
    pass(&s.d, "deletions");
    let r = s.d.get(&format!("/v1/admin/deletions/{}", s.id)).json;
    assert_eq!(r["state"], "running", "{r}");
    assert!(r["progress"]["copies_left"]["trash"].as_u64().unwrap() > 0, "{r}");
    let restore = s.d.get("/v1/admin/trash").json;
    assert!(restore.to_string().contains("retired"), "the trash lists the erased segments: {restore}");
    check_erased(&mut s, "at done, erasure retention 60 s");
}

/// Kills the daemon at `point` while the deletion is carried out (deletions pass, clock past the waits, gc, in
/// rounds), then checks what a restart answers and that the request still reaches `done` with every byte erased.
fn crash_in(point: &str, erase_retention_secs: u64) {
    let mut s = setup(&format!("purge-crash-{}", point.replace('.', "-")), erase_retention_secs);
    s.d.set_failpoints(Some(&format!("{point}=exit")));
    s.d.restart();
    let mut crashed = false;
    'rounds: for _ in 0..6 {
        for step in ["deletions", "wait", "gc"] {
            if step == "wait" {
                s.d.advance_clock(WAIT_MS);
                continue;
            }
            let url = format!("{}/v1/admin/passes/{step}/run", s.d.url());
            if http_client().post(url).json(&json!({})).send().is_err() {
                crashed = true;
                break 'rounds;
            }
        }
    }
    assert!(crashed, "never reached {point}\n{}", s.d.log_tail(30));
    let status = s.d.wait_for_exit(Duration::from_secs(30)).expect("the daemon exits at the failpoint");
    assert_eq!(status.code(), Some(101), "{status}\n{}", s.d.log_tail(30));
    assert!(s.d.log_tail(200).contains(&format!("failpoint {point} hit")), "{}", s.d.log_tail(30));
    s.d.set_failpoints(None);
    s.d.restart();
    let stage = format!("restart after a crash at {point}");
    check_answers(&s.d, &s.m, &stage);
    let r = s.d.get(&format!("/v1/admin/deletions/{}", s.id));
    assert_eq!(r.status, 200, "{stage}: the request is kept: {}", r.text());
    assert_ne!(r.json["state"], "done", "{stage}: {}", r.text());
    check_erased(&mut s, &format!("done after a crash at {point}"));
}

/// kill -9 at random moments while the deletions pass, gc, re-encode, compaction and migration run on one-second
/// schedules and events (of the deleted user too) are ingested: after each restart no deleted event is answered and
/// no acknowledged event is lost; in the end the request is done and no file holds the deleted rows.
#[test]
fn kill_at_random_moments_while_deletions_ingest_and_passes_run() {
    let mut s = setup("purge-chaos", 0);
    let every_second = "schedule = \"* * * * * *\"";
    let scheduled = format!(
        "{}[passes.deletions]\n{every_second}\n[passes.gc]\n{every_second}\n[passes.compact]\n{every_second}\n\
         [passes.migrate]\n{every_second}\n",
        config(0).replace("[passes.reencode]\n", &format!("[passes.reencode]\n{every_second}\n"))
    );
    s.d.set_config(&scheduled);
    s.d.set_schedules(true);
    s.d.restart();
    // A fixed seed: the same kill times on every run (of this test's own generator: no dependency needed).
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let base = s.d.advance_clock(1);
    let mut second = None;
    for round in 0..6i64 {
        let events: Vec<Value> =
            (0..8).map(|n| event("web", base - 2 * DAY + round * HOUR + n * 61_000, 300 + 6 * round + n, 7)).collect();
        send(&s.d, &mut s.m, "web", &events);
        if round == 2 {
            // A second request, for u3, while the passes run and the kills go on.
            let r = s.d.post_json("/v1/admin/deletions", &json!({"project": "web", "distinct_id": "u3"}));
            assert_eq!(r.status, 200, "{}", r.text());
            second = Some((r.json["id"].as_str().unwrap().to_string(), r.json["max_seq"].as_u64().unwrap()));
            s.m.delete_users("web", &["u3"]);
        }
        s.d.advance_clock(WAIT_MS);
        std::thread::sleep(Duration::from_millis(200 + next(1_300)));
        s.d.kill9();
        s.d.restart();
        let stage = format!("restart after kill -9 number {round}");
        check_answers(&s.d, &s.m, &stage);
        let r = s.d.get(&format!("/v1/admin/deletions/{}", s.id));
        assert_eq!(r.status, 200, "{stage}: the request is kept: {}", r.text());
    }
    s.d.set_schedules(false);
    s.d.restart();
    check_erased(&mut s, "done after kill -9 at random moments");
    let (id, max_seq) = second.expect("the second request");
    finish_deletion(&mut s.d, &id, WAIT_MS, 8);
    assert_no_deleted_rows(s.d.data_dir(), "web", &["u3"].into(), max_seq, "the second request, done");
    assert!(!holds_rows_of(s.d.data_dir(), "web", "u3", u64::MAX).is_empty(), "u3's later events are kept");
    check_answers(&s.d, &s.m, "both requests done");
}

#[test]
fn crash_at_every_step_of_a_deletion() {
    for point in [
        "filtered.intent",
        "filtered.write",
        "filtered.verify",
        "filtered.commit",
        "filtered.retire",
        "erase.mark",
        "erase.trash",
        "gc.erase",
    ] {
        crash_in(point, 0);
    }
    crash_in("gc.erase_trash", 60);
}
