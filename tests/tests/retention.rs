//! Retention end to end, on the real daemon: three projects (30 days, 10 days, forever) with events on both sides of
//! their cutoffs, re-sends (side segments of removed duplicates), Parquet segments migrated cold and late row
//! segments still hot. Before the retention pass, answers already leave the expired events out (read-time cutoff),
//! lookups leave wholly expired segments out and segment reads skip expired rows; `GET /v1/plan` and a dry run say
//! what the pass will remove. The pass retires wholly expired segments and rewrites straddling ones; afterwards,
//! with retention switched off by a reload, the answers show that exactly the expired events are gone from storage.
//! Then the real process is killed at every step of a retention rewrite: no surviving event is lost and no expired
//! event is answered.
//!
//! The daemon's test clock is moved to noon UTC first, so each cutoff (now - N days) lies at noon plus the test's own
//! running time, and every event is at half past an hour: none is within 30 minutes of a cutoff while a test runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tierd_tests::daemon::{http_client, Daemon, TestDir};
use tierd_tests::disk::{check_catalog_matches_cold, check_catalog_matches_disk, cold_files};
use tierd_tests::model::{check_answer, Model};
use tierd_tests::mp::FAR_FUTURE_MS;
use tierd_tests::policy;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// Project -> retention in days (0 = forever).
const PROJECTS: [(&str, i64); 3] = [("ret", 30), ("web", 10), ("forever", 0)];
const LEASE_TTL_SECS: u64 = 60;

fn config(retention: bool) -> String {
    let retention =
        if retention { "[retention]\ndefault_days = 30\n[retention.projects]\nweb = 10\nforever = 0\n" } else { "" };
    format!(
        "[catalog]\nlease_ttl_secs = {LEASE_TTL_SECS}\n[gc]\ngrace_secs = 0\ntrash_retention_secs = 3600\n\
         [rewrite]\nkeep_duplicates_secs = 864000\n[passes.reencode]\nmin_age_secs = 0\n{retention}{}",
        policy::ALL_COLD
    )
}

fn event(project: &str, time_ms: i64, id: &str, v: i64) -> Value {
    let names = ["view", "click", "buy"];
    json!({"event": names[(time_ms / HOUR).rem_euclid(3) as usize], "properties": {
        "time": time_ms, "distinct_id": format!("u{}", (time_ms / HOUR) % 5), "$insert_id": format!("{project}-{id}"),
        "v": v, "project": project,
    }})
}

/// The data set, its model and the cutoffs. The clock is moved to noon UTC; each project with a retention gets
/// hourly events (at half past) over the three days before its cutoff's day, that day and the two after; `forever`
/// gets days 40 to 38 ago. Every 7th event is re-sent with `v = 2`. Then re-encoded (side segments of the removed
/// copies), migrated cold, and late events written to row segments: on the cutoff's day on both sides of it
/// (straddling) and two days before (wholly expired).
struct Setup {
    dir: TestDir,
    d: Daemon,
    m: Model,
    /// Project -> cutoff (ms), for projects with a retention.
    cutoffs: BTreeMap<String, i64>,
}

fn setup(name: &str) -> Setup {
    let dir = TestDir::new(name);
    let mut d = Daemon::start(&dir.data_dir(), Some(&config(true)));
    let now = d.advance_clock(1);
    let now = d.advance_clock((12 * HOUR - now.rem_euclid(DAY)).rem_euclid(DAY) as u64);
    let mut m = Model::new();
    let mut cutoffs = BTreeMap::new();
    let send = |d: &Daemon, m: &mut Model, p: &str, events: Vec<Value>| {
        for chunk in events.chunks(500) {
            d.import_ok(p, chunk);
            m.ack(p, chunk);
        }
    };
    for (p, days) in PROJECTS {
        let first_day = if days == 0 { now.div_euclid(DAY) - 40 } else { now.div_euclid(DAY) - days - 3 };
        let mut events = Vec::new();
        for day in first_day..first_day + if days == 0 { 3 } else { 6 } {
            for h in 0..24 {
                events.push(event(p, day * DAY + h * HOUR + HOUR / 2, &format!("{day}-{h}"), 1));
            }
        }
        let resent = tierd_tests::gen::resent_with_v2(&events, 7);
        send(&d, &mut m, p, events);
        send(&d, &mut m, p, resent);
        if days > 0 {
            cutoffs.insert(p.to_string(), now - days * DAY);
        }
    }
    d.stop();
    d.restart(); // seals
    pass(&d, "reencode");
    pass(&d, "migrate");
    let cutoff = cutoffs["ret"];
    let late: Vec<Value> =
        [cutoff - 6 * HOUR - HOUR / 2, cutoff - HOUR / 2, cutoff + HOUR / 2, cutoff + 5 * HOUR + HOUR / 2]
            .into_iter()
            .chain([cutoff - 2 * DAY, cutoff - 2 * DAY + HOUR])
            .enumerate()
            .map(|(i, t)| event("ret", t, &format!("late-{i}"), 3))
            .collect();
    send(&d, &mut m, "ret", late);
    d.stop();
    d.restart();
    Setup { dir, d, m, cutoffs }
}

fn pass(d: &Daemon, name: &str) -> Value {
    let r = d.post_json(&format!("/v1/admin/passes/{name}/run"), &json!({}));
    assert_eq!(r.status, 200, "pass {name}: {}", r.text());
    assert_eq!(r.json["errors"], json!([]), "pass {name}: {}\n{}", r.text(), d.log_tail(30));
    r.json
}

fn queries(p: &str, cutoff: Option<i64>) -> Vec<Value> {
    let all = |extra: Value| {
        let mut q = json!({"project": p, "from": 0, "to": FAR_FUTURE_MS});
        q.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        q
    };
    let mut qs = vec![
        all(json!({})),
        all(json!({"group_by": "event"})),
        all(json!({"event": "buy"})),
        all(json!({"group_by": "properties.v"})),
        all(json!({"where": [{"property": "v", "op": "gte", "value": 2}], "group_by": "event"})),
    ];
    if let Some(c) = cutoff {
        // Windows across, before and after the cutoff.
        qs.push(json!({"project": p, "from": c - DAY, "to": c + DAY, "group_by": "event"}));
        qs.push(json!({"project": p, "from": 0, "to": c}));
        qs.push(json!({"project": p, "from": c - 3 * HOUR, "to": c + 3 * HOUR, "group_by": "properties.v"}));
    }
    qs
}

fn check_all(s: &Setup, stage: &str) {
    check_answers(&s.d, &s.m, &s.cutoffs, stage);
}

fn check_answers(d: &Daemon, m: &Model, cutoffs: &BTreeMap<String, i64>, stage: &str) {
    for (p, _) in PROJECTS {
        for q in queries(p, cutoffs.get(p).copied()) {
            let got = d.query(&q);
            if let Err(e) = check_answer(&q, &got, &m.answer(&q)) {
                panic!("{stage}: {e}\n{}", d.log_tail(30));
            }
        }
    }
}

/// Every segment of `project` the catalog lists (live data, retired, side segments).
fn listed(d: &Daemon, project: &str, which: &str) -> Vec<Value> {
    let r = d.get(&format!("/v1/catalog/segments?project={project}&{which}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json["segments"].as_array().unwrap().clone()
}

/// Live segments (data and side) of `project` holding an event before `cutoff`: none once the pass has run.
fn live_expired(d: &Daemon, project: &str, cutoff: i64) -> Vec<String> {
    listed(d, project, "include_retired=true")
        .into_iter()
        .chain(listed(d, project, "duplicates=true"))
        .filter(|s| s["state"] != "retired" && s["min_time_ms"].as_i64().unwrap() < cutoff)
        .map(|s| format!("{} ({}, {}, {})", s["id"], s["format"], s["tier"], s["min_time_ms"]))
        .collect()
}

fn after_lease_ttl(d: &mut Daemon) {
    d.assert_gc_waits();
    d.advance_clock(LEASE_TTL_SECS * 1000);
}

#[test]
fn retention_removes_exactly_the_expired_events_from_every_tier() {
    let mut s = setup("retention");
    let (ret_cutoff, web_cutoff) = (s.cutoffs["ret"], s.cutoffs["web"]);
    // The model without retention differs: there are expired events to hide (the test can fail).
    let total = |m: &Model, p: &str| m.answer(&json!({"project": p, "from": 0, "to": FAR_FUTURE_MS})).total;
    let before_cutoff = total(&s.m, "ret");
    for (p, c) in &s.cutoffs {
        s.m.set_retention_cutoff(p, Some(*c));
    }
    assert!(total(&s.m, "ret") < before_cutoff && total(&s.m, "ret") > 0);
    let expired = live_expired(&s.d, "ret", ret_cutoff);
    assert!(expired.iter().any(|x| x.contains("cold")), "cold segments hold expired events: {expired:?}");
    assert!(expired.iter().any(|x| x.contains("rows")), "row segments too: {expired:?}");

    // Before the pass: answers without the expired events, lookups without wholly expired segments, reads from
    // the cutoff on.
    check_all(&s, "before the retention pass");
    // The daemon's cutoff is now - 30 days: the model's plus the wall time the test has taken so far.
    let near = |c: i64, model: i64| (model..model + HOUR / 2).contains(&c);
    let lookup = s.d.segments("ret", None, None);
    assert!(near(lookup["retention_cutoff_ms"].as_i64().unwrap(), ret_cutoff), "{lookup}");
    let segs = lookup["segments"].as_array().unwrap();
    assert!(segs.iter().all(|x| x["max_time_ms"].as_i64().unwrap() >= ret_cutoff), "{lookup}");
    let straddling: Vec<&Value> = segs.iter().filter(|x| x["min_time_ms"].as_i64().unwrap() < ret_cutoff).collect();
    assert!(straddling.len() >= 2, "a Parquet and a row segment straddle the cutoff: {lookup}");
    for seg in &straddling {
        let r = s.d.get(&format!("/v1/segments/{}?format=ndjson", seg["id"].as_str().unwrap()));
        assert_eq!(r.status, 200, "{}", r.text());
        let header = r.header("x-tierd-retention-cutoff-ms").expect("the cutoff header");
        assert!(near(header.parse().unwrap(), ret_cutoff), "{header}");
        let times: Vec<i64> = r
            .text()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["properties"]["time"].as_i64().unwrap())
            .collect();
        assert!(!times.is_empty() && times.iter().all(|t| *t >= ret_cutoff), "{times:?}");
    }
    let gone = listed(&s.d, "ret", "include_retired=true")
        .into_iter()
        .find(|x| x["state"] != "retired" && x["max_time_ms"].as_i64().unwrap() < ret_cutoff)
        .expect("a live, wholly expired segment");
    let r = s.d.get(&format!("/v1/segments/{}", gone["id"].as_str().unwrap()));
    assert_eq!(r.status, 404, "a wholly expired segment is not served: {}", r.text());
    assert!(r.text().contains("past the retention"), "{}", r.text());

    // The plan and a dry run say what the pass will do, and change nothing.
    let plan = s.d.get("/v1/plan").json;
    let r = &plan["retention"];
    assert!(plan["actions"].is_array() && plan["monthly_cost_before"].is_number(), "tiering fields kept: {plan}");
    assert!(r["segments_retired"].as_u64().unwrap() > 0 && r["segments_rewritten"].as_u64().unwrap() >= 3, "{r}");
    assert!(r["monthly_saving"].as_f64().unwrap() > 0.0 && r["bytes_freed_estimate"].as_u64().unwrap() > 0, "{r}");
    let cutoffs = r["cutoffs"].as_object().unwrap();
    assert_eq!(cutoffs.len(), 2, "forever has no cutoff: {r}");
    assert!(near(cutoffs["ret"].as_i64().unwrap(), ret_cutoff) && near(cutoffs["web"].as_i64().unwrap(), web_cutoff));
    let planned: Vec<String> =
        r["actions"].as_array().unwrap().iter().map(|a| a["segment"].as_str().unwrap().to_string()).collect();
    let generation = s.d.get("/healthz").json["generation"].clone();
    let dry = s.d.post_json("/v1/admin/passes/retention/run", &json!({"dry_run": true}));
    assert_eq!(dry.status, 200, "{}", dry.text());
    let mut dry_inputs: Vec<String> =
        dry.json["actions"].as_array().unwrap().iter().map(|a| a["inputs"][0].as_str().unwrap().to_string()).collect();
    dry_inputs.sort();
    let mut planned_sorted = planned.clone();
    planned_sorted.sort();
    assert_eq!(dry_inputs, planned_sorted, "the dry run carries out the plan");
    assert_eq!(s.d.get("/healthz").json["generation"], generation, "a dry run changes nothing");
    // The same from the command line.
    let cli = |args: &[&str]| {
        let out = tierd_tests::cli_command().args(args).output().expect("run tierd");
        assert!(out.status.success(), "tierd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = cli(&["pass", "run", "retention", "--dry-run", "--url", s.d.url()]);
    assert!(text.contains("pass retention: would run") && text.contains("retire") && text.contains("prune"), "{text}");
    let text = cli(&["plan", "--url", s.d.url()]);
    assert!(text.contains("retention: ") && text.contains("to retire") && text.contains("project ret:"), "{text}");
    assert_eq!(s.d.get("/healthz").json["generation"], generation, "nor does a plan");

    // The pass.
    let report = pass(&s.d, "retention");
    let kinds: Vec<&str> = report["actions"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"retire") && kinds.contains(&"prune"), "{report}");
    assert!(s.d.metric_sum("tierd_retention_events_removed_total") > 0.0);
    check_all(&s, "after the retention pass");
    for (p, c) in &s.cutoffs {
        assert_eq!(live_expired(&s.d, p, *c), Vec::<String>::new(), "{p}: no live segment holds an expired event");
    }
    assert_eq!(pass(&s.d, "retention")["actions"], json!([]), "nothing left to do");
    check_catalog_matches_disk(&s.d).unwrap_or_else(|e| panic!("{e}"));

    // gc deletes what the pass retired (through the trash), on both tiers.
    after_lease_ttl(&mut s.d);
    pass(&s.d, "gc");
    let retired = listed(&s.d, "ret", "include_retired=true").into_iter().filter(|x| x["state"] == "retired").count();
    assert_eq!(retired, 0, "gc deleted every retired segment");
    check_catalog_matches_disk(&s.d).unwrap_or_else(|e| panic!("{e}"));
    // The bucket (the embedded file:// cold tier) holds exactly the catalog's cold copies: the retired cold segments'
    // objects went to the trash.
    let objects = cold_files(&s.d.data_dir().join("cold"));
    check_catalog_matches_cold(&s.d, &objects).unwrap_or_else(|e| panic!("{e}"));
    assert!(objects.keys().any(|k| k.starts_with("trash/")), "retired cold copies are in the trash: {objects:?}");
    check_all(&s, "after gc");

    // Gone from storage, not only hidden: with retention switched off (a reload, no restart), the expired events
    // do not come back.
    s.d.set_config(&config(false));
    let r = s.d.post_json("/v1/admin/config/reload", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(s.d.segments("ret", None, None).get("retention_cutoff_ms").is_none(), "the reload took effect");
    check_all(&s, "retention off after the pass");
    let _ = &s.dir;
}

/// Kills the daemon at `point` of the retention pass, then checks the answers after a restart, after a pass run to
/// the end, and with retention switched off (what storage holds).
fn crash_in(point: &str) {
    let mut s = setup(&format!("retention-crash-{}", point.replace('.', "-")));
    for (p, c) in &s.cutoffs {
        s.m.set_retention_cutoff(p, Some(*c));
    }
    s.d.set_failpoints(Some(&format!("{point}=exit")));
    s.d.restart();
    let url = format!("{}/v1/admin/passes/retention/run", s.d.url());
    assert!(http_client().post(url).json(&json!({})).send().is_err(), "the pass must die at {point}");
    let status = s.d.wait_for_exit(Duration::from_secs(30)).expect("the daemon exits at the failpoint");
    assert_eq!(status.code(), Some(101), "{status}\n{}", s.d.log_tail(30));
    assert!(s.d.log_tail(200).contains(&format!("failpoint {point} hit")), "{}", s.d.log_tail(30));
    s.d.set_failpoints(None);
    s.d.restart();
    check_all(&s, &format!("restart after a crash at {point}"));
    check_catalog_matches_disk(&s.d).unwrap_or_else(|e| panic!("after a crash at {point}: {e}"));
    pass(&s.d, "retention");
    check_all(&s, &format!("retention run again after a crash at {point}"));
    for (p, c) in &s.cutoffs {
        assert_eq!(live_expired(&s.d, p, *c), Vec::<String>::new(), "{p} after a crash at {point}");
    }
    check_catalog_matches_disk(&s.d).unwrap_or_else(|e| panic!("after a crash at {point}: {e}"));
    s.d.set_config(&config(false));
    s.d.restart();
    check_all(&s, &format!("retention off, after a crash at {point}"));
}

#[test]
fn crash_at_every_step_of_a_retention_rewrite() {
    for point in ["filtered.intent", "filtered.write", "filtered.verify", "filtered.commit", "filtered.retire"] {
        crash_in(point);
    }
}

/// On its schedule (`[passes.retention] schedule`, every second here), the pass removes expired events by itself.
#[test]
fn the_scheduled_pass_removes_expired_events_by_itself() {
    let dir = TestDir::new("retention-scheduled");
    let config = "[retention]\ndefault_days = 30\n[passes.retention]\nschedule = \"* * * * * *\"\n";
    let mut d = Daemon::start_scheduled(&dir.data_dir(), Some(config));
    let now = d.advance_clock(1);
    let now = d.advance_clock((12 * HOUR - now.rem_euclid(DAY)).rem_euclid(DAY) as u64);
    let cutoff = now - 30 * DAY;
    let mut m = Model::new();
    let events: Vec<Value> = [cutoff - 2 * DAY, cutoff - HOUR / 2, cutoff + HOUR / 2, now - DAY]
        .into_iter()
        .enumerate()
        .map(|(i, t)| event("sched", t, &i.to_string(), 1))
        .collect();
    d.import_ok("sched", &events);
    m.ack("sched", &events);
    m.set_retention_cutoff("sched", Some(cutoff));
    d.stop();
    d.restart(); // seals: the pass plans sealed segments only
    let check = |d: &Daemon, stage: &str| {
        for q in queries("sched", Some(cutoff)) {
            let got = d.query(&q);
            if let Err(e) = check_answer(&q, &got, &m.answer(&q)) {
                panic!("{stage}: {e}\n{}", d.log_tail(30));
            }
        }
    };
    check(&d, "before the scheduled pass");
    d.wait_for("retention ran on its schedule", || live_expired(&d, "sched", cutoff).is_empty());
    check(&d, "after the scheduled pass");
    let status = d.status();
    let p = status["passes"].as_array().unwrap().iter().find(|p| p["name"] == "retention").cloned().unwrap();
    assert_eq!(p["schedule"], "* * * * * *", "{p}");
    assert!(p["runs"].as_u64().unwrap() >= 1 && p["failures"] == 0, "{p}");
    d.stop();
}
