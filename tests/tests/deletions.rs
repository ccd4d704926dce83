//! User deletions end to end, on the real daemon, before any pass removes a byte: two projects with users spread
//! over three days, re-sends (side segments of removed duplicates), Parquet segments migrated cold and late row
//! segments still hot. `POST /v1/admin/deletions` answers once the request is durable, and from that moment queries,
//! NDJSON segment reads (data and side segments) and the catalog listing (`deleted_rows`) leave the deleted users'
//! events out; the same users' events sent afterwards (a re-send of a deleted event included) are kept. A kill -9
//! loses no acknowledged request. The `deletions` pass then removes the rows from every live segment, data and side,
//! hot and cold: it waits for an open segment to be sealed (`running`), then for gc to erase the copies it retired
//! (`running`, with the copies left counted), then reaches `done`, after which the reads, with no tombstone left,
//! still show none of the deleted rows, and no file on either tier (segments, trash, cache) holds them
//! (`tests/tests/deletions_purge.rs` goes through the trash, retired copies in grace and crashes).

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tierd_tests::daemon::{Daemon, TestDir};
use tierd_tests::erasure::{assert_cache_only_live, assert_no_deleted_rows, finish_deletion, holds_rows_of};
use tierd_tests::model::{check_answer, Model};
use tierd_tests::mp::FAR_FUTURE_MS;
use tierd_tests::policy;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
const PROJECTS: [&str; 2] = ["web", "app"];

fn config() -> String {
    format!(
        "[gc]\ngrace_secs = 0\n[rewrite]\nkeep_duplicates_secs = 864000\n[passes.reencode]\nmin_age_secs = 0\n\
         [deletions]\nmax_ids_per_request = 3\n{}",
        policy::ALL_COLD
    )
}

/// The `n`-th event of `day`: user `u{n % 6}`.
fn event(project: &str, time_ms: i64, n: i64, v: i64) -> Value {
    let names = ["view", "click", "buy"];
    json!({"event": names[(n % 3) as usize], "properties": {
        "time": time_ms, "distinct_id": format!("u{}", n % 6), "$insert_id": format!("{project}-{time_ms}-{n}"),
        "v": v,
    }})
}

fn queries(p: &str) -> Vec<Value> {
    let all = |extra: Value| {
        let mut q = json!({"project": p, "from": 0, "to": FAR_FUTURE_MS});
        q.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        q
    };
    vec![
        all(json!({})),
        all(json!({"group_by": "event"})),
        all(json!({"event": "buy"})),
        all(json!({"group_by": "properties.distinct_id"})),
        all(json!({"group_by": "properties.v"})),
        all(json!({"where": [{"property": "distinct_id", "op": "eq", "value": "u1"}], "group_by": "properties.v"})),
    ]
}

fn check_answers(d: &Daemon, m: &Model, stage: &str) {
    for p in PROJECTS {
        for q in queries(p) {
            if let Err(e) = check_answer(&q, &d.query(&q), &m.answer(&q)) {
                panic!("{stage}: {e}\n{}", d.log_tail(30));
            }
        }
    }
}

/// (distinct_id, $insert_id, v) of every row NDJSON reads give for the live segments of `project` that `which`
/// lists (`""`: what readers see; `duplicates=true`: the side segments), sorted.
fn ndjson_rows(d: &Daemon, project: &str, which: &str) -> Vec<(String, String, i64)> {
    let r = d.get(&format!("/v1/catalog/segments?project={project}&{which}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut rows = Vec::new();
    // Retired segments (replaced, awaiting gc) are not read: their copies are gc's and the trash's to delete.
    for s in r.json["segments"].as_array().unwrap().iter().filter(|s| s["state"] != "retired") {
        let r = d.get(&format!("/v1/segments/{}?format=ndjson", s["id"].as_str().unwrap()));
        assert_eq!(r.status, 200, "{}", r.text());
        for line in r.text().lines() {
            let e: Value = serde_json::from_str(line).unwrap();
            let p = &e["properties"];
            rows.push((
                p["distinct_id"].as_str().unwrap().into(),
                p["$insert_id"].as_str().unwrap().into(),
                p["v"].as_i64().unwrap(),
            ));
        }
    }
    rows.sort();
    rows
}

/// The deleted users' rows readers see: exactly the ones sent after the request.
fn check_reads(d: &Daemon, m: &Model, deleted: &BTreeSet<&str>, stage: &str) {
    let kept: BTreeSet<(String, String, i64)> = m
        .kept_copies("web")
        .filter(|e| deleted.contains(e.distinct_id.as_str()))
        .map(|e| (e.distinct_id.clone(), e.insert_id.clone().unwrap(), e.props["v"].as_i64().unwrap()))
        .collect();
    let mut seen: BTreeSet<(String, String, i64)> = BTreeSet::new();
    for which in ["", "duplicates=true"] {
        seen.extend(ndjson_rows(d, "web", which).into_iter().filter(|(id, ..)| deleted.contains(id.as_str())));
    }
    assert_eq!(seen, kept, "{stage}: NDJSON reads of the deleted users' rows");
}

#[test]
fn a_deleted_users_events_leave_every_answer_at_once_and_later_ones_stay() {
    let dir = TestDir::new("deletions");
    let mut d = Daemon::start(&dir.data_dir(), Some(&config()));
    let now = d.advance_clock(1);
    let mut m = Model::new();
    for p in PROJECTS {
        let first_day = now.div_euclid(DAY) - 4;
        let events: Vec<Value> =
            (0..3 * 24).map(|n| event(p, (first_day + n / 24) * DAY + (n % 24) * HOUR + HOUR / 2, n, 1)).collect();
        d.send(&mut m, p, &events);
        // Re-sends (v = 2): dedup keeps the last copy; the re-encode moves the first to a side segment.
        let resent = tierd_tests::gen::resent_with_v2(&events, 5);
        d.send(&mut m, p, &resent);
    }
    d.stop();
    d.restart(); // seals
    d.pass_ok("reencode");
    d.pass_ok("migrate");
    // Late events, hot row segments next to the cold Parquet ones.
    for p in PROJECTS {
        let late: Vec<Value> = (0..12).map(|n| event(p, now - 3 * DAY + n * HOUR + 17, 100 + n, 3)).collect();
        d.send(&mut m, p, &late);
    }
    let listed = d.segments("web", None, None);
    let tiers: BTreeSet<String> =
        listed["segments"].as_array().unwrap().iter().map(|s| format!("{}/{}", s["tier"], s["format"])).collect();
    assert!(tiers.contains("\"cold\"/\"parquet\"") && tiers.contains("\"hot\"/\"rows\""), "{tiers:?}");
    check_answers(&d, &m, "before any deletion");

    // u1 and u3 of web are deleted (u1 is also in app: kept there).
    let deleted: BTreeSet<&str> = ["u1", "u3"].into();
    let total = |m: &Model| m.answer(&json!({"project": "web", "from": 0, "to": FAR_FUTURE_MS})).total;
    let before = total(&m);
    let r = d.post_json("/v1/admin/deletions", &json!({"project": "web", "distinct_ids": ["u1", "u3"]}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json["state"], "pending", "{}", r.text());
    let id = r.json["id"].as_str().unwrap().to_string();
    let max_seq = r.json["max_seq"].as_u64().unwrap();
    m.delete_users("web", &["u1", "u3"]);
    assert!(total(&m) < before, "the model without the users differs: the test can fail");
    check_answers(&d, &m, "right after the request");
    check_reads(&d, &m, &deleted, "right after the request");
    assert_eq!(d.segments("web", None, None)["deleted_rows"]["kind"], "distinct_ids");
    assert!(d.segments("app", None, None).get("deleted_rows").is_none(), "app has no deletion");

    // The same users come back: a new event and a re-send of a deleted one (same $insert_id): both kept.
    let old = event("web", now.div_euclid(DAY) * DAY - 4 * DAY + HOUR / 2 + HOUR, 1, 9);
    let new = event("web", now - DAY, 3, 9);
    d.send(&mut m, "web", &[old, new]);
    check_answers(&d, &m, "after the users came back");
    check_reads(&d, &m, &deleted, "after the users came back");

    // Refusals are 400s with the key named, and counted.
    let r = d.post_json("/v1/admin/deletions", &json!({"project": "web", "distinct_ids": ["a", "b", "c", "d"]}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("deletions.max_ids_per_request"), "{}", r.text());
    assert!(d.metric_sum("tierd_deletions_refused_total") >= 1.0);

    // The deletions pass: the late rows of u1/u3 are in an open row segment, which it waits for (running); the
    // sealed segments it rewrites or retires. Answers do not change.
    d.pass_ok("deletions");
    let r = d.get(&format!("/v1/admin/deletions/{id}"));
    assert_eq!(r.json["state"], "running", "an open segment holds rows of the users: {}", r.text());
    assert!(r.json["progress"]["rows_removed"].as_u64().unwrap() > 0, "{}", r.text());
    check_answers(&d, &m, "after a deletions pass that had to wait");
    check_reads(&d, &m, &deleted, "after a deletions pass that had to wait");

    // kill -9: the acknowledged request is still there, still applied.
    d.kill9();
    d.restart();
    let r = d.get(&format!("/v1/admin/deletions/{id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((&r.json["state"], &r.json["distinct_ids"]), (&json!("running"), &json!(["u1", "u3"])));
    let r = d.get("/v1/admin/deletions");
    assert_eq!(r.json["deletions"].as_array().unwrap().len(), 1, "{}", r.text());
    check_answers(&d, &m, "after kill -9 and restart");
    check_reads(&d, &m, &deleted, "after kill -9 and restart");

    // The restart sealed the open segment: the next run rewrites it. The copies it retired wait for gc (leases
    // from the reads above, the restart rule): the request is still running, with what is left counted.
    d.pass_ok("deletions");
    let r = d.get(&format!("/v1/admin/deletions/{id}"));
    assert_eq!(r.json["state"], "running", "retired copies are left: {}", r.text());
    let left = &r.json["progress"]["copies_left"];
    assert!(left["retired_hot"].as_u64().unwrap() + left["retired_cold"].as_u64().unwrap() > 0, "{}", r.text());
    assert!(r.json["progress"]["bytes_left"].as_u64().unwrap() > 0, "{}", r.text());
    assert!(!holds_rows_of(d.data_dir(), "web", "u1", max_seq).is_empty(), "the file check can fail");
    // gc erases them once the lease TTL (300 s by default) has passed; then the request is done. No live segment,
    // data or side, holds a row of the deleted users from before the request, as the reads show with no tombstone
    // left to hide them; nor does any other file on either tier.
    let r = finish_deletion(&mut d, &id, 301_000, 4);
    assert_eq!(r["progress"]["copies_left"]["retired_hot"], 0, "{r}");
    assert_no_deleted_rows(d.data_dir(), "web", &deleted, max_seq, "at done");
    assert_cache_only_live(&d, "at done");
    let r = d.get(&format!("/v1/admin/deletions/{id}"));
    assert!(r.json["progress"]["finished_at_ms"].as_i64().is_some(), "{}", r.text());
    assert!(d.segments("web", None, None).get("deleted_rows").is_none(), "no tombstone once done");
    check_answers(&d, &m, "after the deletion is done");
    check_reads(&d, &m, &deleted, "after the deletion is done");
    assert!(d.metric_sum("tierd_deletion_rows_removed_total") > 0.0);
    // Restarted, still done and still gone.
    d.kill9();
    d.restart();
    assert_eq!(d.get(&format!("/v1/admin/deletions/{id}")).json["state"], "done");
    check_answers(&d, &m, "after the deletion is done and a restart");
    check_reads(&d, &m, &deleted, "after the deletion is done and a restart");
}
