//! Rewrites keep every answer: streams with re-sends and late arrivals are queried before and after `reencode`,
//! `compact`, `recompress` and `gc`, against the independent model. DuckDB then reads the resulting Parquet segments
//! unchanged and its `count(*) ... group by event` equals tierd's answer. Three projects:
//! - `gen`: generated events over four days, with exact and changed re-sends, some arriving after re-encoding;
//! - `gh`: the real GH Archive hour from `../shared/data/real`, mapped to Mixpanel's shape;
//! - `wiki`: all 39,244 real Wikipedia edits of the wikiticker sample (`../shared/data/real`), mapped to Mixpanel's
//!   shape as `tests/bench/columnar.py` maps them (event = channel, distinct_id = user, every other field a
//!   property, nulls included), with millisecond times, plus exact and changed re-sends of some edits, both right
//!   away and after re-encoding, so dedup runs on real data across row and Parquet segments.

use std::io::Read;
use std::process::Command;

use rand::Rng;

use serde_json::{json, Value};
use tierd_tests::daemon::{workspace_root, Daemon, TestDir};
use tierd_tests::disk::check_catalog_matches_disk;
use tierd_tests::gen::EventGen;
use tierd_tests::model::{check_answer, Model};
use tierd_tests::mp::{FAR_FUTURE_MS, MS_PER_DAY};

const DAY0: i64 = 19_800;
const GEN: &str = "gen";
const GH: &str = "gh";
const WIKI: &str = "wiki";

/// `catalog.lease_ttl_secs` of [`CONFIG`]: gc waits this long after a start (the test clock, not the test, waits).
const LEASE_TTL_MS: u64 = 60_000;
const CONFIG: &str = "
[catalog]
lease_ttl_secs = 60
[gc]
grace_secs = 0
[passes.reencode]
min_age_secs = 0
[passes.compact]
target_bytes = 67108864
";

fn import(d: &Daemon, m: &mut Model, project: &str, events: &[Value]) {
    for chunk in events.chunks(500) {
        d.import_ok(project, chunk);
        m.ack(project, chunk);
    }
}

/// The GH Archive hour as Mixpanel events: event = type, distinct_id = actor, $insert_id = id, time = created_at.
fn gh_archive() -> Vec<Value> {
    let path = workspace_root().join("../shared/data/real/gharchive_2015-01-01-15/events.json.zst");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    zstd::stream::read::Decoder::new(file).unwrap().read_to_string(&mut text).unwrap();
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let t = chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap()).unwrap();
            let mut props = serde_json::Map::new();
            props.insert("time".into(), json!(t.timestamp()));
            props.insert("distinct_id".into(), v["actor"].clone());
            props.insert("$insert_id".into(), v["id"].clone());
            for k in ["repo", "org", "public", "payload"] {
                if let Some(x) = v.get(k) {
                    props.insert(k.into(), x.clone());
                }
            }
            json!({"event": v["type"], "properties": props})
        })
        .collect()
}

/// The wikiticker edits as Mixpanel events: event = channel, distinct_id = user, every other field (nulls included)
/// a property. `time` keeps the source's milliseconds: integer ms (`>= 1e11`, read as ms), except that a time on a
/// whole second is sent as integer seconds and one on a multiple of 125 ms as float seconds (exact in binary), so
/// real data goes through all three forms of the seconds-vs-ms rule. `$insert_id` is the 1-based line number plus
/// an FNV-1a hash of the line (unique by the line number; stable across runs).
fn wikipedia() -> Vec<Value> {
    let path =
        workspace_root().join("../shared/data/real/wikipedia_edits_wikiticker/wikiticker-2015-09-12-sampled.json.gz");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).unwrap();
    let fnv1a = |bytes: &[u8]| {
        bytes.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3))
    };
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let Value::Object(mut props) = serde_json::from_str(line).unwrap() else {
                panic!("line {}: not an object", i + 1)
            };
            let event = props.remove("channel").unwrap();
            let user = props.remove("user").unwrap();
            let iso = props.remove("time").unwrap();
            let ms = chrono::DateTime::parse_from_rfc3339(iso.as_str().unwrap()).unwrap().timestamp_millis();
            let time = match ms {
                _ if ms % 1000 == 0 => json!(ms / 1000),
                _ if ms % 125 == 0 => json!(ms as f64 / 1000.0),
                _ => json!(ms),
            };
            props.insert("time".into(), time);
            props.insert("distinct_id".into(), user);
            props.insert("$insert_id".into(), json!(format!("{}-{:016x}", i + 1, fnv1a(line.as_bytes()))));
            json!({"event": event, "properties": props})
        })
        .collect()
}

/// A re-send of a Wikipedia edit with the same key (channel, user, time, `$insert_id`) and changed properties: the
/// robot flag flipped, another namespace and delta, the country dropped.
fn wiki_changed_copy(e: &Value, n: usize) -> Value {
    let mut c = e.clone();
    let p = c["properties"].as_object_mut().unwrap();
    let robot = p["isRobot"].as_bool().unwrap();
    p.insert("isRobot".into(), json!(!robot));
    p.insert("namespace".into(), json!(["Main", "User", "Talk", "Wikipedia"][n % 4]));
    p.insert("delta".into(), json!(n as i64 % 7 - 3));
    p.remove("countryName");
    c
}

fn queries() -> Vec<Value> {
    let day = |k: i64| (DAY0 + k) * MS_PER_DAY;
    let all = |p: &str, extra: Value| {
        let mut q = json!({"project": p, "from": 0, "to": FAR_FUTURE_MS});
        q.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        q
    };
    let wf = |property: &str, op: &str, value: Value| json!({"property": property, "op": op, "value": value});
    let mut qs = vec![
        all(GEN, json!({})),
        all(GEN, json!({"group_by": "event"})),
        all(GEN, json!({"group_by": "properties.$os"})),
        all(GEN, json!({"group_by": "properties.plan"})),
        all(GEN, json!({"group_by": "properties.meta"})),
        all(GEN, json!({"event": "Purchase", "group_by": "properties.$os"})),
        all(GEN, json!({"where": [{"property": "$os", "op": "eq", "value": "iOS"}], "group_by": "event"})),
        all(GEN, json!({"where": [{"property": "price", "op": "gte", "value": 12.25}]})),
        all(GEN, json!({"where": [{"property": "plan", "op": "exists"}], "group_by": "properties.plan"})),
        all(GEN, json!({"where": [{"property": "resent", "op": "exists"}]})),
        all(GEN, json!({"where": [{"property": "distinct_id", "op": "lt", "value": "user_10"}]})),
        all(GH, json!({"group_by": "event"})),
        all(GH, json!({"group_by": "properties.public"})),
        all(GH, json!({"event": "PushEvent", "where": [{"property": "org", "op": "exists"}]})),
        all(GH, json!({"where": [{"property": "repo", "op": "gt", "value": 28_000_000}], "group_by": "event"})),
        all(WIKI, json!({"group_by": "event"})),
        all(WIKI, json!({"where": [wf("isRobot", "eq", json!(false))], "group_by": "properties.namespace"})),
        all(WIKI, json!({"where": [wf("delta", "gt", json!(0))], "group_by": "properties.countryName"})),
        all(
            WIKI,
            json!({
                "event": "#en.wikipedia",
                "where": [wf("isAnonymous", "eq", json!(true)), wf("countryIsoCode", "exists", Value::Null)],
                "group_by": "properties.countryIsoCode",
            }),
        ),
        all(
            WIKI,
            json!({
                "where": [wf("delta", "lte", json!(-100)), wf("isRobot", "neq", json!(true))],
                "group_by": "properties.isMinor",
            }),
        ),
        all(WIKI, json!({"where": [wf("metroCode", "exists", Value::Null)], "group_by": "properties.metroCode"})),
        all(WIKI, json!({"where": [wf("page", "lt", json!("M"))], "group_by": "properties.isNew"})),
    ];
    for k in 0..4 {
        qs.push(json!({"project": GEN, "from": day(k), "to": day(k + 1), "group_by": "event"}));
    }
    qs.push(
        json!({"project": GEN, "from": day(1) + 3_600_000, "to": day(2) + 7_200_000, "group_by": "properties.$os"}),
    );
    // 2015-09-12 from 02:00, for one hour and for the rest of the day: leaves out the rows on other days.
    let wiki_day = 16_690 * MS_PER_DAY;
    for (from, to) in [(wiki_day + 7_200_000, wiki_day + 10_800_000), (wiki_day + 7_200_000, wiki_day + MS_PER_DAY)] {
        qs.push(json!({"project": WIKI, "from": from, "to": to, "group_by": "properties.namespace"}));
    }
    qs
}

fn check_all(d: &Daemon, m: &Model, stage: &str) {
    for q in queries() {
        let got = d.query(&q);
        if let Err(e) = check_answer(&q, &got, &m.answer(&q)) {
            panic!("after {stage}: {e}\n{}", d.log_tail(30));
        }
    }
}

fn run_pass(d: &Daemon, name: &str, dry_run: bool) -> Value {
    let r = d.post_json(&format!("/v1/admin/passes/{name}/run"), &json!({"dry_run": dry_run}));
    assert_eq!(r.status, 200, "pass {name}: {}", r.text());
    assert_eq!(r.json["errors"], json!([]), "pass {name}: {}", r.text());
    r.json
}

fn live_segments(d: &Daemon, project: &str) -> Vec<Value> {
    d.segments(project, None, None)["segments"].as_array().unwrap().clone()
}

fn duckdb_counts(d: &Daemon, project: &str) -> Value {
    let files: Vec<String> = live_segments(d, project)
        .iter()
        .map(|s| {
            assert_eq!(s["format"], "parquet", "{s}");
            d.data_dir().join(s["location"].as_str().unwrap()).to_string_lossy().into_owned()
        })
        .collect();
    let script = "import duckdb, json, sys\n\
                  files = json.loads(sys.argv[1])\n\
                  rows = duckdb.sql(f'select event, count(*) from read_parquet({files!r}) group by event').fetchall()\n\
                  print(json.dumps({str(e): n for e, n in rows}))\n";
    let out = Command::new("python3")
        .args(["-c", script, &serde_json::to_string(&files).unwrap()])
        .output()
        .expect("python3 runs (`tests/run` installs duckdb)");
    assert!(
        out.status.success(),
        "duckdb failed (run the suite with `tests/run`, which installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn rewrites_keep_every_answer_and_duckdb_reads_the_segments() {
    let dir = TestDir::new("rewrites");
    let mut d = Daemon::start(&dir.data_dir(), Some(CONFIG));
    let mut m = Model::new();
    let mut g = EventGen::new(0x05EE_D2EE, DAY0, 4);
    let events = g.events(3000);
    import(&d, &mut m, GEN, &events);
    // At-least-once re-sends: exact and changed copies (the last copy wins).
    let resend: Vec<Value> =
        events.iter().step_by(7).map(|e| if g.rng.random_bool(0.5) { e.clone() } else { g.changed_copy(e) }).collect();
    import(&d, &mut m, GEN, &resend);
    let gh = gh_archive();
    assert_eq!(gh.len(), 11_351);
    import(&d, &mut m, GH, &gh);
    let wiki = wikipedia();
    assert_eq!(wiki.len(), 39_244);
    import(&d, &mut m, WIKI, &wiki);
    let wiki_resend: Vec<Value> = wiki
        .iter()
        .step_by(97)
        .enumerate()
        .map(|(n, e)| if n % 2 == 0 { e.clone() } else { wiki_changed_copy(e, n) })
        .collect();
    import(&d, &mut m, WIKI, &wiki_resend);
    check_all(&d, &m, "ingest");

    // Seal everything (a clean stop seals open segments), then re-encode.
    d.stop();
    d.restart();
    let dry = run_pass(&d, "reencode", true);
    assert!(!dry["actions"].as_array().unwrap().is_empty(), "{dry}");
    assert!(live_segments(&d, GEN).iter().all(|s| s["format"] == "rows"), "a dry run changes nothing");
    let done = run_pass(&d, "reencode", false);
    assert_eq!(done["actions"].as_array().unwrap().len(), dry["actions"].as_array().unwrap().len());
    for p in [GEN, GH, WIKI] {
        assert!(live_segments(&d, p).iter().all(|s| s["format"] == "parquet" && s["state"] == "sealed"));
    }
    check_all(&d, &m, "reencode");

    // Late events for old days arrive as new row segments; re-encode them, then compact per day.
    let late = g.events(300);
    import(&d, &mut m, GEN, &late);
    let late_resend: Vec<Value> = events.iter().skip(3).step_by(11).map(|e| g.changed_copy(e)).collect();
    import(&d, &mut m, GEN, &late_resend);
    let wiki_late: Vec<Value> =
        wiki.iter().skip(5).step_by(89).enumerate().map(|(n, e)| wiki_changed_copy(e, n)).collect();
    import(&d, &mut m, WIKI, &wiki_late);
    d.stop();
    d.restart();
    run_pass(&d, "reencode", false);
    let before = live_segments(&d, GEN).len();
    let compacted = run_pass(&d, "compact", false);
    assert!(!compacted["actions"].as_array().unwrap().is_empty(), "{compacted}");
    let after = live_segments(&d, GEN);
    assert!(after.len() < before, "compaction merged segments: {before} -> {}", after.len());
    check_all(&d, &m, "compact");

    // Recompress up the ladder: the events are months old, so the last rung (zstd-19) applies.
    run_pass(&d, "recompress", false);
    for p in [GEN, GH, WIKI] {
        assert!(live_segments(&d, p).iter().all(|s| s["codec"] == "zstd-19"), "{:?}", live_segments(&d, p));
    }
    check_all(&d, &m, "recompress");

    // DuckDB reads the segments unchanged; after compaction each (project, day) is one deduplicated segment, so
    // its plain count equals tierd's deduplicated count.
    for p in [GEN, GH, WIKI] {
        let q = json!({"project": p, "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"});
        let tierd: serde_json::Map<String, Value> = d.query(&q)["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key"].as_str().unwrap().to_string(), r["count"].clone()))
            .collect();
        assert_eq!(duckdb_counts(&d, p), Value::Object(tierd), "project {p}");
    }

    // GC: retired inputs go once no lease holds them, the grace (0) passed and one lease TTL passed since the
    // restart; answers stay.
    d.assert_gc_waits();
    d.advance_clock(LEASE_TTL_MS);
    let gc = run_pass(&d, "gc", false);
    assert!(!gc["actions"].as_array().unwrap().is_empty(), "{gc}");
    check_all(&d, &m, "gc");
    check_catalog_matches_disk(&d).unwrap();
    d.stop();
    d.restart();
    check_all(&d, &m, "restart");
}
