//! The cold tier's object store misbehaving, on the real daemon: a real S3-compatible server (moto on 127.0.0.1,
//! started here) behind tierd's fault layer (`TIERD_COLD_FAULTS`), which fails, times out, slows down requests and
//! fails multipart parts at set rates. Every pass that reads or writes the cold tier completes each action or rolls
//! it back, rerun it finishes, and every answer in between equals the model's; afterwards the bucket holds exactly
//! the catalog's copies. A slow store (two seconds before every answer) slows cold reads only: hot queries and
//! ingest answer while a cold read waits.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tierd_tests::cold::{
    after_lease_ttl, check_all, check_storage, columnar, config, pass, placements, Backend, LEASE_TTL_SECS, P,
};
use tierd_tests::daemon::{http_client, Daemon, TestDir};
use tierd_tests::gen::EventGen;
use tierd_tests::model::{check_answer, Model};
use tierd_tests::mp::FAR_FUTURE_MS;
use tierd_tests::policy;
use tierd_tests::s3::MotoServer;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// With 10% of the object store's calls failing (errors, timeouts, failed parts), migrate and promote passes
/// complete after retries or roll back their failed moves; rerun, they finish; answers are right all along.
#[test]
fn passes_survive_a_faulty_object_store() {
    let backend = Backend::Moto(MotoServer::start());
    let dir = TestDir::new("cold-faults");
    let (mut d, m) = columnar(&dir, &backend);
    d.set_cold_faults(Some("error_rate=0.1,timeout_rate=0.02,timeout_ms=100,part_error_rate=0.1,seed=11"));
    d.restart();
    // Counters start again at each restart: the retries of each phase are summed.
    let mut retries = 0.0;
    for (name, tier) in [("migrate", "cold"), ("promote", "hot")] {
        if name == "promote" {
            retries += d.metric_sum("tierd_cold_retries_total");
            d.set_config(&config(&backend, policy::ALL_HOT));
            d.restart();
        }
        let mut done = false;
        for _ in 0..5 {
            let r = d.post_json(&format!("/v1/admin/passes/{name}/run"), &json!({}));
            assert_eq!(r.status, 200, "{}", r.text());
            check_all(&d, &m, &format!("{name} with faults"));
            if r.json["errors"] == json!([]) && placements(&d).keys().all(|t| t == tier) {
                done = true;
                break;
            }
        }
        assert!(done, "{name} did not finish in 5 passes: {:?}\n{}", placements(&d), d.log_tail(40));
    }
    retries += d.metric_sum("tierd_cold_retries_total");
    assert!(retries > 0.0, "faults were injected and retried:\n{}", d.get("/metrics").text());
    d.set_cold_faults(None);
    d.restart();
    after_lease_ttl(&mut d);
    pass(&d, "gc");
    check_all(&d, &m, "gc after faults");
    check_storage(&d, &backend, "gc after faults");
}

/// A user deletion carried out on cold segments while 10% of the object store's calls fail: the deletions pass
/// rewrites from cold copies, gc erases cold objects, each action completes or rolls back, and after a few rounds
/// the request is done; answers are right all along, and the bucket holds exactly the catalog's copies after.
#[test]
fn a_deletion_of_cold_data_survives_a_faulty_object_store() {
    let backend = Backend::Moto(MotoServer::start());
    let dir = TestDir::new("cold-faults-deletion");
    let (mut d, mut m) = columnar(&dir, &backend);
    pass(&d, "migrate");
    assert_eq!(placements(&d).keys().collect::<Vec<_>>(), vec!["cold"]);
    d.set_cold_faults(Some("error_rate=0.1,timeout_rate=0.02,timeout_ms=100,part_error_rate=0.1,seed=23"));
    d.restart();
    let r = d.post_json("/v1/admin/deletions", &json!({"project": P, "distinct_ids": ["user_03", "user_07"]}));
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json["id"].as_str().unwrap().to_string();
    m.delete_users(P, &["user_03", "user_07"]);
    check_all(&d, &m, "right after the request, with faults");
    let mut done = false;
    for round in 0..10 {
        for name in ["deletions", "gc"] {
            let r = d.post_json(&format!("/v1/admin/passes/{name}/run"), &json!({}));
            assert_eq!(r.status, 200, "{}", r.text());
        }
        check_all(&d, &m, &format!("round {round} with faults"));
        if d.get(&format!("/v1/admin/deletions/{id}")).json["state"] == "done" {
            done = true;
            break;
        }
        d.advance_clock(LEASE_TTL_SECS * 1_000);
    }
    assert!(done, "not done in 10 rounds: {}\n{}", d.get(&format!("/v1/admin/deletions/{id}")).text(), d.log_tail(40));
    assert!(d.metric_sum("tierd_cold_retries_total") > 0.0, "faults were injected and retried");
    d.set_cold_faults(None);
    d.restart();
    after_lease_ttl(&mut d);
    pass(&d, "gc");
    check_all(&d, &m, "after the deletion, without faults");
    check_storage(&d, &backend, "after the deletion with faults");
}

/// The project whose retention the every-pass test applies, and its retention in days.
const RET: &str = "ret";
const RET_DAYS: i64 = 20;

/// Hourly events (at half past, far from the noon cutoff) over the day before the cutoff's day, that day and the day
/// after, every 5th re-sent with a changed property.
fn retention_events(cutoff: i64) -> Vec<Value> {
    let first = cutoff.div_euclid(DAY) - 1;
    let mut events = Vec::new();
    for day in first..first + 3 {
        for h in 0..24 {
            let t = day * DAY + h * HOUR + HOUR / 2;
            let name = if h % 2 == 0 { "view" } else { "buy" };
            events.push(json!({"event": name, "properties": {
                "time": t, "distinct_id": format!("r{}", h % 4), "$insert_id": format!("ret-{day}-{h}"), "v": 1}}));
        }
    }
    let resent = tierd_tests::gen::resent_with_v2(&events, 5);
    events.extend(resent);
    events
}

fn check_retention_project(d: &Daemon, m: &Model, stage: &str) {
    for q in [
        json!({"project": RET, "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}),
        json!({"project": RET, "from": 0, "to": FAR_FUTURE_MS, "group_by": "properties.v"}),
    ] {
        if let Err(e) = check_answer(&q, &d.query(&q), &m.answer(&q)) {
            panic!("after {stage}: {e}\n{}", d.log_tail(30));
        }
    }
}

/// The actions a dry run of `name` plans now (it moves and writes nothing).
fn planned(d: &Daemon, name: &str) -> usize {
    let r = d.post_json(&format!("/v1/admin/passes/{name}/run"), &json!({"dry_run": true}));
    assert_eq!(r.status, 200, "dry run of {name}: {}", r.text());
    r.json["actions"].as_array().map_or(0, Vec::len)
}

/// Every pass that touches the cold tier, on data that is only there, while 10% of the store's calls fail, 2% time
/// out, 5% are slowed down and 10% of multipart parts fail: compaction and recompression rewrite cold segments
/// (reading them from the store), retention retires a wholly expired day and rewrites the day the cutoff cuts,
/// a user deletion rewrites the user's segments, migration sends the new outputs cold and gc deletes what they
/// replaced. Each round runs every pass once; answers equal the model after every run; within a few rounds nothing
/// is left to do, and once the faults are lifted one gc leaves the bucket holding exactly the catalog's copies.
#[test]
fn every_pass_survives_a_faulty_object_store() {
    let backend = Backend::Moto(MotoServer::start());
    let dir = TestDir::new("cold-faults-every-pass");
    let (mut d, mut m) = columnar(&dir, &backend);
    let now = d.advance_clock(1);
    let now = d.advance_clock((12 * HOUR - now.rem_euclid(DAY)).rem_euclid(DAY) as u64);
    let cutoff = now - RET_DAYS * DAY;
    for chunk in retention_events(cutoff).chunks(40) {
        d.import_ok(RET, chunk);
        m.ack(RET, chunk);
    }
    d.stop();
    d.restart(); // seals
    pass(&d, "reencode");
    pass(&d, "migrate");
    assert_eq!(placements(&d).keys().collect::<Vec<_>>(), vec!["cold"], "{:?}", placements(&d));

    let retention = format!("[retention]\n[retention.projects]\n{RET} = {RET_DAYS}\n");
    d.set_config(&format!("{retention}{}", config(&backend, policy::ALL_COLD)));
    d.set_cold_faults(Some(
        "error_rate=0.1,timeout_rate=0.02,timeout_ms=100,slow_rate=0.05,slow_ms=300,part_error_rate=0.1,seed=31",
    ));
    d.restart();
    m.set_retention_cutoff(RET, Some(cutoff));
    let r = d.post_json("/v1/admin/deletions", &json!({"project": P, "distinct_ids": ["user_05"]}));
    assert_eq!(r.status, 200, "{}", r.text());
    let deletion = r.json["id"].as_str().unwrap().to_string();
    m.delete_users(P, &["user_05"]);
    check_all(&d, &m, "the deletion request, with faults");
    check_retention_project(&d, &m, "the retention's start, with faults");
    let passes = ["compact", "recompress", "retention", "deletions", "migrate", "gc"];
    // Compaction and recompression may find nothing to do on this stream (re-encode writes old data at the codec
    // its age calls for); they run under the faults all the same.
    for name in &passes[2..4] {
        assert!(planned(&d, name) > 0, "{name} has work on the cold data (the test can fail)");
    }
    let mut done = false;
    for round in 0..8 {
        for name in passes {
            let r = d.post_json(&format!("/v1/admin/passes/{name}/run"), &json!({}));
            assert_eq!(r.status, 200, "{name}, round {round}: {}", r.text());
            check_all(&d, &m, &format!("{name}, round {round}, with faults"));
            check_retention_project(&d, &m, &format!("{name}, round {round}, with faults"));
        }
        let state = d.get(&format!("/v1/admin/deletions/{deletion}")).json["state"].clone();
        if state == "done" && passes[..5].iter().all(|name| planned(&d, name) == 0) {
            done = true;
            break;
        }
        d.advance_clock(LEASE_TTL_SECS * 1_000);
    }
    let left: Vec<(&str, usize)> = passes[..5].iter().map(|n| (*n, planned(&d, n))).collect();
    assert!(done, "work left after 8 rounds: {left:?}\n{}", d.log_tail(40));
    let failures = d.metric_sum("tierd_cold_faults_injected_total{kind=\"error\"}")
        + d.metric_sum("tierd_cold_faults_injected_total{kind=\"timeout\"}");
    assert!(failures > 0.0, "faults were injected:\n{}", d.get("/metrics").text());
    d.set_cold_faults(None);
    d.restart();
    after_lease_ttl(&mut d);
    pass(&d, "gc");
    check_all(&d, &m, "gc after every pass with faults");
    check_retention_project(&d, &m, "gc after every pass with faults");
    check_storage(&d, &backend, "gc after every pass with faults");
    let expired = d.segments(RET, None, None)["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["min_time_ms"].as_i64().is_some_and(|t| t < cutoff))
        .count();
    assert_eq!(expired, 0, "no live segment of {RET} holds events before the cutoff");
}

/// Two seconds before every answer of the object store (`slow_rate=1,slow_ms=2000`): a query of cold data waits for
/// it, and answers right; meanwhile a query of hot data and an import to the hot tier answer, before the cold read
/// is done.
#[test]
fn a_slow_object_store_slows_cold_reads_only() {
    let dir = TestDir::new("cold-slow");
    let (mut d, m) = columnar(&dir, &Backend::File);
    pass(&d, "migrate");
    assert_eq!(placements(&d).keys().collect::<Vec<_>>(), vec!["cold"], "{:?}", placements(&d));
    d.set_cold_faults(Some("slow_rate=1,slow_ms=2000,seed=5"));
    d.restart();
    let mut hot = Model::new();
    let mut g = EventGen::new(3, 19_900, 2);
    let first = g.events(300);
    d.import_ok("hot", &first);
    hot.ack("hot", &first);

    let cold_q = json!({"project": P, "from": 19_801 * DAY, "to": 19_802 * DAY, "group_by": "event"});
    let url = format!("{}/v1/query", d.url());
    let body = cold_q.clone();
    let cold = std::thread::spawn(move || {
        let started = Instant::now();
        let r = http_client().post(url).json(&body).send().expect("the cold query answers");
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let hot_q = json!({"project": "hot", "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"});
    if let Err(e) = check_answer(&hot_q, &d.query(&hot_q), &hot.answer(&hot_q)) {
        panic!("hot query while a cold read waits: {e}");
    }
    let more = g.events(200);
    d.import_ok("hot", &more);
    hot.ack("hot", &more);
    if let Err(e) = check_answer(&hot_q, &d.query(&hot_q), &hot.answer(&hot_q)) {
        panic!("hot query after an import while a cold read waits: {e}");
    }
    assert!(!cold.is_finished(), "the hot query and the import answered while the cold query still waited");
    let (status, answer, took) = cold.join().unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(took >= Duration::from_secs(2), "the cold query waited on the slow store: {took:?}");
    if let Err(e) = check_answer(&cold_q, &answer, &m.answer(&cold_q)) {
        panic!("the cold query: {e}");
    }
}
