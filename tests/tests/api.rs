//! End-to-end tests of tierd's HTTP contract: ingest, rejection of bad input, limits, the catalog, segment reads,
//! queries against the independent model, config errors, metrics and restarts. Each test runs its own daemon in its
//! own temp dir on an ephemeral port. Generated data is seeded: `TIERD_TEST_SEED` overrides the seed, which is
//! printed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tierd_tests::daemon::{assert_import_ok, serve_expecting_exit, Daemon, Resp, TestDir};
use tierd_tests::disk::check_catalog_matches_disk;
use tierd_tests::gen::{Encoding, EventGen, EVENT_NAMES};
use tierd_tests::model::{check_answer, Model, ModelEvent};
use tierd_tests::mp::{array_body, canon, day_of_ms, day_string, gzip, ndjson_body, FAR_FUTURE_MS, MS_PER_DAY};

/// 2024-03-18, the first day of generated data.
const DAY0: i64 = 19_800;

fn seed(default: u64) -> u64 {
    let s = std::env::var("TIERD_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    println!("seed = {s} (set TIERD_TEST_SEED to reproduce)");
    s
}

fn ev(name: &str, props: Value) -> Value {
    json!({"event": name, "properties": props})
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn all_time(project: &str) -> Value {
    json!({"project": project, "from": 0, "to": FAR_FUTURE_MS})
}

fn total(d: &Daemon, project: &str) -> u64 {
    let r = d.query(&all_time(project));
    r["total"].as_u64().unwrap_or_else(|| panic!("no total in {r}"))
}

fn segment_list(d: &Daemon, project: &str, from: Option<i64>, to: Option<i64>) -> Vec<Value> {
    let s = d.segments(project, from, to);
    s["segments"].as_array().unwrap_or_else(|| panic!("no segments array: {s}")).clone()
}

/// Sum of catalog `rows` over the project's segments.
fn catalog_rows(d: &Daemon, project: &str) -> u64 {
    segment_list(d, project, None, None).iter().map(|s| s["rows"].as_u64().expect("rows is a number")).sum()
}

/// Compares the daemon's answer to `q` with the model's.
fn assert_model(d: &Daemon, m: &Model, q: &Value) -> Value {
    let got = d.query(q);
    if let Err(e) = check_answer(q, &got, &m.answer(q)) {
        panic!("query answer differs from the model:\n{e}");
    }
    got
}

/// Asserts `status` and the error shape `{"code":status,"status":"...","error":"..."}` with an error message that
/// contains (case-insensitively) at least one of `needles`.
fn assert_error(r: &Resp, status: u16, needles: &[&str], what: &str) {
    assert_eq!(r.status, status, "{what}: expected {status}, got {}: {}", r.status, r.text());
    assert_error_shape(r, what);
    let msg = r.json["error"].as_str().unwrap_or("").to_lowercase();
    assert!(
        needles.is_empty() || needles.iter().any(|n| msg.contains(&n.to_lowercase())),
        "{what}: error message should mention one of {needles:?}, got {:?}",
        r.json["error"]
    );
}

fn assert_error_shape(r: &Resp, what: &str) {
    assert_eq!(r.json["code"].as_u64(), Some(r.status as u64), "{what}: `code` must be the status; body {}", r.text());
    assert!(r.json["status"].as_str().is_some_and(|s| !s.is_empty()), "{what}: `status` missing; body {}", r.text());
    if r.status == 400 {
        assert_eq!(r.json["status"], "Bad Request", "{what}: body {}", r.text());
    }
    assert!(r.json["error"].as_str().is_some_and(|s| !s.is_empty()), "{what}: `error` missing; body {}", r.text());
}

fn send(d: &Daemon, project: &str, events: &[Value], enc: Encoding) -> Resp {
    let (body, headers) = enc.encode(events);
    d.post_import(Some(project), body, &headers)
}

/// Sends and asserts the acknowledgement, then records the batch in the model.
fn send_ok(d: &Daemon, m: &mut Model, project: &str, events: &[Value], enc: Encoding) {
    let r = send(d, project, events, enc);
    assert_import_ok(&r, events.len(), &format!("{enc:?} batch of {} events into {project}", events.len()));
    m.ack(project, events);
}

/// Reads `GET /v1/segments/{id}?format=ndjson` as parsed lines.
fn segment_ndjson(d: &Daemon, id: &str) -> Vec<Value> {
    let r = d.get(&format!("/v1/segments/{id}?format=ndjson"));
    assert_eq!(r.status, 200, "GET segment {id} as ndjson: {} {}", r.status, r.text());
    r.text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("segment {id}: bad NDJSON line {l:?}: {e}")))
        .collect()
}

/// Every event of every segment of `project`, as NDJSON values.
fn project_ndjson(d: &Daemon, project: &str) -> Vec<Value> {
    segment_list(d, project, None, None).iter().flat_map(|s| segment_ndjson(d, s["id"].as_str().unwrap())).collect()
}

/// What `?format=ndjson` must return for an acknowledged copy: the sent event with `time` in ms and
/// `distinct_id` as a string.
fn expected_ndjson(e: &ModelEvent) -> Value {
    let mut p = e.props.clone();
    p.insert("time".into(), json!(e.time_ms));
    p.insert("distinct_id".into(), json!(e.distinct_id));
    p.insert("$insert_id".into(), json!(e.insert_id.clone().expect("only for events sent with an insert id")));
    json!({"event": e.event, "properties": p})
}

fn multiset(values: impl IntoIterator<Item = Value>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(canon(&v)).or_insert(0) += 1;
    }
    m
}

fn diff_multisets(want: &BTreeMap<String, usize>, got: &BTreeMap<String, usize>) -> String {
    let mut out = String::new();
    for (k, &n) in want {
        let g = got.get(k).copied().unwrap_or(0);
        if g != n {
            out.push_str(&format!("  expected x{n}, got x{g}: {k}\n"));
        }
    }
    for (k, &g) in got {
        if !want.contains_key(k) {
            out.push_str(&format!("  unexpected x{g}: {k}\n"));
        }
    }
    out
}

fn is_ulid(id: &str) -> bool {
    id.len() == 26 && id.bytes().all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b))
}

// ---------------------------------------------------------------------------------------------------------------

#[test]
fn ingest_accepts_every_encoding_time_unit_and_id_form() {
    let dir = TestDir::new("ingest");
    let d = Daemon::start(&dir.data_dir(), None);
    let mut m = Model::new();
    let base = DAY0 * MS_PER_DAY + 3_600_000; // 01:00 UTC, a whole second
    for (k, enc) in Encoding::ALL.into_iter().enumerate() {
        let id = |s: &str| format!("{s}-{k}");
        let b = base + k as i64 * 60_000;
        let events = vec![
            ev("TimeSec", json!({"time": b / 1000, "distinct_id": "u1", "$insert_id": id("sec")})),
            ev(
                "TimeFloatSec",
                json!({"time": (b + 500) as f64 / 1000.0, "distinct_id": "u1", "$insert_id": id("fsec")}),
            ),
            ev(
                "TimeFloatSec",
                json!({"time": (b + 125) as f64 / 1000.0, "distinct_id": "u1", "$insert_id": id("fsec2")}),
            ),
            ev("TimeMs", json!({"time": b + 123, "distinct_id": "u1", "$insert_id": id("ms")})),
            ev("TimeFloatMs", json!({"time": (b + 7) as f64, "distinct_id": "u1", "$insert_id": id("fms")})),
            // The unit boundary: 1e11 is ms (1973), 1e11 - 1 is seconds (year 5138).
            ev("Boundary", json!({"time": 100_000_000_000i64, "distinct_id": "u1", "$insert_id": id("b-ms")})),
            ev("Boundary", json!({"time": 99_999_999_999i64, "distinct_id": "u1", "$insert_id": id("b-sec")})),
            ev("NumId", json!({"time": b / 1000, "distinct_id": 42, "$insert_id": id("num")})),
            ev("NoDistinctId", json!({"time": b + 9, "$insert_id": id("nodid"), "k": k})),
        ];
        send_ok(&d, &mut m, "ing", &events, enc);
    }
    // Positive boundaries: a 255-byte event name of 2-byte characters, a 128-byte insert id, a 64-char project.
    let name255 = format!("{}a", "é".repeat(127));
    assert_eq!(name255.len(), 255);
    let id128 = "i".repeat(128);
    let edge = vec![ev(&name255, json!({"time": base / 1000, "distinct_id": "edge", "$insert_id": id128}))];
    send_ok(&d, &mut m, "ing", &edge, Encoding::Array);
    let long_project = "P".repeat(64);
    send_ok(&d, &mut m, &long_project, &edge, Encoding::Array);
    assert_eq!(total(&d, &long_project), 1, "64-character project name");

    // Every copy sits at exactly its time in ms: a 1 ms window around it finds it.
    for e in m.copies("ing").collect::<Vec<_>>() {
        let q = json!({"project": "ing", "from": e.time_ms, "to": e.time_ms + 1,
                       "where": [{"property": "$insert_id", "op": "eq", "value": e.insert_id}]});
        let got = d.query(&q);
        assert_eq!(
            got["total"], 1,
            "event {} sent with time {} must be stored at {} ms: {got}",
            e.raw, e.raw["properties"]["time"], e.time_ms
        );
    }
    let q = json!({"project": "ing", "from": 0, "to": FAR_FUTURE_MS, "where": [{"property": "distinct_id", "op": "eq", "value": "42"}]});
    assert_eq!(d.query(&q)["total"], Encoding::ALL.len(), "numeric distinct_id 42 is stored as \"42\"");
    assert_model(&d, &m, &json!({"project": "ing", "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}));

    // Read back: times in ms, distinct_id 42 as "42".
    let lines = project_ndjson(&d, "ing");
    let by_id: BTreeMap<String, &Value> =
        lines.iter().map(|l| (l["properties"]["$insert_id"].as_str().unwrap_or("").to_string(), l)).collect();
    for e in m.copies("ing") {
        let id = e.insert_id.as_deref().unwrap();
        let line = by_id.get(id).unwrap_or_else(|| panic!("event {id} missing from the segments' NDJSON"));
        assert_eq!(line["properties"]["time"].as_i64(), Some(e.time_ms), "time in ms for {id}: {line}");
        if e.raw["properties"].get("distinct_id").is_some() {
            assert_eq!(line["properties"]["distinct_id"], json!(e.distinct_id), "distinct_id for {id}: {line}");
        }
    }
}

#[test]
fn absent_insert_id_exact_resend_is_counted_once() {
    let dir = TestDir::new("noid");
    let d = Daemon::start(&dir.data_dir(), None);
    let t = DAY0 * MS_PER_DAY + 7_200_000;
    let events: Vec<Value> = (0..5)
        .map(|i| {
            ev(
                EVENT_NAMES[i],
                json!({"time": t + i as i64, "distinct_id": format!("u{i}"), "n": i, "deep": {"a": [i]}}),
            )
        })
        .chain([ev("NoDid", json!({"time": t}))])
        .collect();
    let mut m = Model::new();
    send_ok(&d, &mut m, "noid", &events, Encoding::Array);
    send_ok(&d, &mut m, "noid", &events, Encoding::Array);
    send_ok(&d, &mut m, "noid", &events, Encoding::Ndjson);
    assert_eq!(total(&d, "noid"), 6, "an exact re-send without $insert_id is the same event");
    // A record differing in one other property is a different event.
    let mut other = events[0].clone();
    other["properties"]["n"] = json!(100);
    send_ok(&d, &mut m, "noid", &[other], Encoding::Array);
    assert_eq!(total(&d, "noid"), 7);
    assert_model(&d, &m, &json!({"project": "noid", "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}));
    assert_eq!(catalog_rows(&d, "noid"), 19, "every acknowledged copy is stored (3 x 6 + 1)");

    // The derived insert ids: present, <= 128 bytes, equal for the copies of one record, different otherwise.
    let lines = project_ndjson(&d, "noid");
    assert_eq!(lines.len(), 19);
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in &lines {
        let id = l["properties"]["$insert_id"].as_str().unwrap_or_else(|| panic!("no derived $insert_id: {l}"));
        assert!(!id.is_empty() && id.len() <= 128, "derived $insert_id {id:?}");
        let mut content = l.clone();
        content["properties"].as_object_mut().unwrap().remove("$insert_id");
        ids.entry(canon(&content)).or_default().insert(id.to_string());
    }
    assert_eq!(ids.len(), 7, "7 distinct records came back: {ids:#?}");
    for (content, set) in &ids {
        assert_eq!(set.len(), 1, "copies of {content} got different derived ids {set:?}");
    }
    let distinct: BTreeSet<&String> = ids.values().flatten().collect();
    assert_eq!(distinct.len(), 7, "different records must get different derived ids: {ids:#?}");
}

#[test]
fn segment_reads_return_stored_bytes_and_sent_events() {
    let seed = seed(0x5E6_0001);
    let dir = TestDir::new("segread");
    let d = Daemon::start(&dir.data_dir(), None);
    let mut g = EventGen::new(seed, DAY0, 3);
    let mut m = Model::new();
    let events: Vec<Value> = (0..400).map(|_| g.event()).collect();
    // Some changed copies: the stored rows hold both copies.
    let copies: Vec<Value> = events.iter().step_by(17).map(|e| g.changed_copy(e)).collect();
    for batch in g.batches(events.into_iter().chain(copies).collect(), 120) {
        let enc = g.encoding();
        send_ok(&d, &mut m, "seg", &batch, enc);
    }
    let want = multiset(m.copies("seg").map(expected_ndjson));

    for attempt in 0.. {
        let before = d.segments("seg", None, None);
        let segs = before["segments"].as_array().unwrap().clone();
        assert!(!segs.is_empty());
        let mut got = Vec::new();
        let mut errs = String::new();
        for s in &segs {
            let id = s["id"].as_str().unwrap();
            let raw = d.get(&format!("/v1/segments/{id}"));
            assert_eq!(raw.status, 200, "GET /v1/segments/{id}: {}", raw.text());
            let ct = raw.header("content-type").unwrap_or_default();
            assert!(ct.starts_with("application/vnd.tierd.rows"), "segment {id} content-type {ct:?}");
            if Some(raw.body.len() as u64) != s["bytes"].as_u64() {
                errs.push_str(&format!("segment {id}: read {} bytes, catalog bytes {}\n", raw.body.len(), s["bytes"]));
            }
            let lines = segment_ndjson(&d, id);
            if Some(lines.len() as u64) != s["rows"].as_u64() {
                errs.push_str(&format!("segment {id}: {} NDJSON lines, catalog rows {}\n", lines.len(), s["rows"]));
            }
            for l in &lines {
                let t = l["properties"]["time"].as_i64().unwrap_or(i64::MIN);
                if day_string(day_of_ms(t)) != s["day"]
                    || t < s["min_time_ms"].as_i64().unwrap()
                    || t > s["max_time_ms"].as_i64().unwrap()
                {
                    errs.push_str(&format!("segment {s}: holds an event outside its day/time range: {l}\n"));
                }
            }
            got.extend(lines);
        }
        let after = d.segments("seg", None, None);
        if before["generation"] != after["generation"] && attempt < 5 {
            continue; // a background seal committed while reading: read again
        }
        assert!(errs.is_empty(), "{errs}");
        let got = multiset(got);
        let diff = diff_multisets(&want, &got);
        assert!(diff.is_empty(), "segment NDJSON differs from the sent events (multiset):\n{diff}");
        break;
    }
}

#[test]
fn invalid_and_unknown_segment_ids() {
    let dir = TestDir::new("segids");
    let d = Daemon::start(&dir.data_dir(), None);
    d.import_ok("ids", &[ev("A", json!({"time": DAY0 * 86_400, "distinct_id": "u", "$insert_id": "1"}))]);
    for bad in [
        "..%2F..%2Fetc",
        "..%2F..%2Fcatalog",
        "abc",
        "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
        "iiiiiiiiiiiiiiiiiiiiiiiiii",
        "01ARZ3NDEKTSV4RRFFQ69G5FAU",
        "01ARZ3NDEKTSV4RRFFQ69G5FA%00",
    ] {
        for suffix in ["", "?format=ndjson"] {
            let r = d.get(&format!("/v1/segments/{bad}{suffix}"));
            assert_error(&r, 400, &[], &format!("GET /v1/segments/{bad}{suffix}"));
        }
    }
    // A well-formed id the catalog does not know.
    for suffix in ["", "?format=ndjson"] {
        let r = d.get(&format!("/v1/segments/01ARZ3NDEKTSV4RRFFQ69G5FAV{suffix}"));
        assert_error(&r, 404, &[], &format!("unknown segment{suffix}"));
    }
    // The known segment's id works, so the 400s/404s above are not a broken route.
    let segs = segment_list(&d, "ids", None, None);
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!(d.get(&format!("/v1/segments/{}", segs[0]["id"].as_str().unwrap())).status, 200);
}

/// One rejected request: what is sent and what must come back.
struct BadCase {
    name: &'static str,
    project: Option<String>,
    body: Vec<u8>,
    headers: Vec<(&'static str, &'static str)>,
    needles: &'static [&'static str],
    /// `(index, field)` of every invalid record (field `None`: not checked); empty when the request as a whole is bad.
    failed: Vec<(usize, Option<&'static str>)>,
    /// Exact status expected; `None` for "any 4xx" (cases the contract does not pin).
    status: Option<u16>,
}

#[test]
fn bad_imports_are_rejected_whole() {
    let dir = TestDir::new("bad");
    let d = Daemon::start(&dir.data_dir(), None);
    let t = DAY0 * 86_400 + 600;
    let valid = |case: &str, i: usize| {
        ev(
            "Valid",
            json!({"time": t + i as i64, "distinct_id": "u", "$insert_id": format!("{case}-{i}"), "case": case}),
        )
    };
    // A batch of 6 records where `bad` replaces the records at the given indices.
    let batch = |case: &str, bad: &[(usize, Value)]| -> Vec<u8> {
        let mut v: Vec<Value> = (0..6).map(|i| valid(case, i)).collect();
        for (i, b) in bad {
            v[*i] = b.clone();
        }
        array_body(&v)
    };
    let rec = |case: &str, i: usize, props: Value| -> Value {
        let mut p = json!({"time": t, "distinct_id": "u", "$insert_id": format!("{case}-{i}"), "case": case});
        for (k, v) in props.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        p
    };
    let json_ct = vec![("content-type", "application/json")];
    let invalid = |name: &'static str, idx: usize, record: Value, field: &'static str| BadCase {
        name,
        project: Some("bad".into()),
        body: batch(name, &[(idx, record)]),
        headers: vec![("content-type", "application/json")],
        needles: &[],
        failed: vec![(idx, Some(field))],
        status: Some(400),
    };
    let whole = |name: &'static str,
                 project: Option<String>,
                 body: Vec<u8>,
                 headers: Vec<(&'static str, &'static str)>,
                 needles: &'static [&'static str]| BadCase {
        name,
        project,
        body,
        headers,
        needles,
        failed: vec![],
        status: Some(400),
    };
    let bad_p = Some("bad".to_string());
    let long_id = "x".repeat(129);
    let mut cases = vec![
        whole(
            "malformed-json",
            bad_p.clone(),
            br#"[{"event":"Valid","properties":{"time":1710720000,"case":"malformed-json"}},"#.to_vec(),
            json_ct.clone(),
            &["json"],
        ),
        whole(
            "content-type-xml",
            bad_p.clone(),
            batch("content-type-xml", &[]),
            vec![("content-type", "application/xml")],
            &["content-type", "content type"],
        ),
        whole("empty-body", bad_p.clone(), vec![], json_ct.clone(), &["empty"]),
        invalid("event-missing", 2, json!({"properties": rec("event-missing", 2, json!({}))}), "event"),
        invalid("event-empty", 0, ev("", rec("event-empty", 0, json!({}))), "event"),
        invalid("event-256-bytes", 5, ev(&"é".repeat(128), rec("event-256-bytes", 5, json!({}))), "event"),
        invalid("event-number", 1, json!({"event": 5, "properties": rec("event-number", 1, json!({}))}), "event"),
        invalid("properties-missing", 3, json!({"event": "Valid"}), "properties"),
        invalid("properties-array", 3, json!({"event": "Valid", "properties": [1, 2]}), "properties"),
        invalid("time-missing", 4, ev("Valid", rec("time-missing", 4, json!({"time": null}))), "properties.time"),
        invalid("time-string", 4, ev("Valid", rec("time-string", 4, json!({"time": "1710720000"}))), "properties.time"),
        invalid("time-bool", 0, ev("Valid", rec("time-bool", 0, json!({"time": true}))), "properties.time"),
        invalid(
            "distinct-id-bool",
            2,
            ev("Valid", rec("distinct-id-bool", 2, json!({"distinct_id": true}))),
            "properties.distinct_id",
        ),
        invalid(
            "distinct-id-object",
            2,
            ev("Valid", rec("distinct-id-object", 2, json!({"distinct_id": {"a": 1}}))),
            "properties.distinct_id",
        ),
        invalid(
            "insert-id-129-bytes",
            1,
            ev("Valid", rec("insert-id-129-bytes", 1, json!({"$insert_id": long_id}))),
            "properties.$insert_id",
        ),
        invalid(
            "insert-id-number",
            1,
            ev("Valid", rec("insert-id-number", 1, json!({"$insert_id": 5}))),
            "properties.$insert_id",
        ),
        BadCase {
            name: "two-invalid",
            project: bad_p.clone(),
            body: batch(
                "two-invalid",
                &[
                    (1, json!({"properties": rec("two-invalid", 1, json!({}))})),
                    (4, ev("Valid", rec("two-invalid", 4, json!({"time": null})))),
                ],
            ),
            headers: json_ct.clone(),
            needles: &[],
            failed: vec![(1, Some("event")), (4, Some("properties.time"))],
            status: Some(400),
        },
        BadCase {
            name: "record-not-object",
            project: bad_p.clone(),
            body: batch("record-not-object", &[(0, json!(5))]),
            headers: json_ct.clone(),
            needles: &[],
            failed: vec![(0, None)],
            status: Some(400),
        },
        BadCase {
            name: "ndjson-bad-line",
            project: bad_p.clone(),
            body: [
                ndjson_body(&[valid("ndjson-bad-line", 0)]),
                b"{\"event\": nope}\n".to_vec(),
                ndjson_body(&[valid("ndjson-bad-line", 2)]),
            ]
            .concat(),
            headers: vec![("content-type", "application/x-ndjson")],
            needles: &[],
            failed: vec![],
            status: Some(400),
        },
        BadCase {
            name: "gzip-header-plain-body",
            project: bad_p.clone(),
            body: batch("gzip-header-plain-body", &[]),
            headers: vec![("content-type", "application/json"), ("content-encoding", "gzip")],
            needles: &[],
            failed: vec![],
            status: None,
        },
        whole(
            "gzip-of-malformed",
            bad_p.clone(),
            gzip(b"[{\"event\":"),
            vec![("content-type", "application/json"), ("content-encoding", "gzip")],
            &["json"],
        ),
    ];
    for (name, p) in [
        ("project-empty", ""),
        ("project-slash", "a/b"),
        ("project-dot", "a.b"),
        ("project-space", "a b"),
        ("project-umlaut", "ümlaut"),
    ] {
        cases.push(whole(name, Some(p.to_string()), batch(name, &[]), json_ct.clone(), &["project"]));
    }
    cases.push(whole(
        "project-65-chars",
        Some("p".repeat(65)),
        batch("project-65-chars", &[]),
        json_ct.clone(),
        &["project"],
    ));

    // A baseline so "nothing changed" is checked against data, not against an empty store.
    let baseline: Vec<Value> = (0..20).map(|i| valid("baseline", i)).collect();
    d.import_ok("bad", &baseline);
    let (total0, rows0) = (total(&d, "bad"), catalog_rows(&d, "bad"));
    assert_eq!(total0, 20);

    for c in &cases {
        let r = d.post_import(c.project.as_deref(), c.body.clone(), &c.headers);
        let what = format!("case {}", c.name);
        match c.status {
            Some(s) => assert_error(&r, s, c.needles, &what),
            None => {
                assert!((400..500).contains(&r.status), "{what}: expected a 4xx, got {}: {}", r.status, r.text());
                assert_error_shape(&r, &what);
            }
        }
        if !c.failed.is_empty() {
            let fr = r.json["failed_records"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no failed_records in {}", r.text()));
            let got: BTreeMap<u64, &Value> = fr.iter().map(|f| (f["index"].as_u64().unwrap_or(u64::MAX), f)).collect();
            assert_eq!(
                got.keys().copied().collect::<Vec<_>>(),
                c.failed.iter().map(|(i, _)| *i as u64).collect::<Vec<_>>(),
                "{what}: failed_records indices; body {}",
                r.text()
            );
            for (i, field) in &c.failed {
                let f = got[&(*i as u64)];
                if let Some(field) = field {
                    assert_eq!(f["field"], *field, "{what}: failed record {i} field; body {}", r.text());
                }
                assert!(
                    f["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{what}: failed record {i} has no message: {f}"
                );
                // A record whose $insert_id was usable is named by it.
                let sent: Value = serde_json::from_slice::<Vec<Value>>(&c.body).unwrap()[*i].clone();
                if let Some(id) = sent.get("properties").and_then(|p| p.get("$insert_id")).and_then(Value::as_str) {
                    if id.len() <= 128 {
                        assert_eq!(f["$insert_id"], id, "{what}: failed record {i} $insert_id; body {}", r.text());
                    }
                }
            }
        }
        // Nothing of the batch is visible.
        assert_eq!(total(&d, "bad"), total0, "{what}: query total changed after a rejected batch");
        assert_eq!(catalog_rows(&d, "bad"), rows0, "{what}: catalog rows changed after a rejected batch");
        let q = json!({"project": "bad", "from": 0, "to": FAR_FUTURE_MS, "where": [{"property": "case", "op": "eq", "value": c.name}]});
        assert_eq!(d.query(&q)["total"], 0, "{what}: events of the rejected batch are visible");
    }
    let projects = d.projects();
    assert_eq!(projects, vec!["bad".to_string()], "rejected batches must not create projects");
}

#[test]
fn configured_limits_answer_413() {
    let dir = TestDir::new("limits");
    let d =
        Daemon::start(&dir.data_dir(), Some("[ingest]\nmax_events_per_request = 100\nmax_bytes_per_request = 65536\n"));
    let t = DAY0 * 86_400;
    let events = |tag: &str, n: usize, pad: usize| -> Vec<Value> {
        (0..n).map(|i| ev("E", json!({"time": t + i as i64, "distinct_id": "u", "$insert_id": format!("{tag}-{i}"), "tag": tag, "pad": "x".repeat(pad)}))).collect()
    };
    let json_ct = [("content-type", "application/json")];
    let gz = [("content-type", "application/json"), ("content-encoding", "gzip")];
    let over = [
        ("101 events", array_body(&events("e101", 101, 0)), &json_ct[..], "100"),
        (
            "101 events ndjson",
            ndjson_body(&events("n101", 101, 0)),
            &[("content-type", "application/x-ndjson")][..],
            "100",
        ),
        ("101 events gzip", gzip(&array_body(&events("g101", 101, 0))), &gz[..], "100"),
        ("~80 KiB body", array_body(&events("big", 40, 2000)), &json_ct[..], "65536"),
        // Small on the wire, over the limit once decompressed: the limit is on uncompressed bytes.
        ("~80 KiB gzip body", gzip(&array_body(&events("gzbig", 40, 2000))), &gz[..], "65536"),
    ];
    for (what, body, headers, limit) in over {
        let r = d.post_import(Some("lim"), body, headers);
        assert_error(&r, 413, &[limit], what);
    }
    assert_eq!(total(&d, "lim"), 0, "nothing of an over-limit request may be written");
    // At the limits: accepted.
    d.import_ok("lim", &events("ok100", 100, 0));
    let r = d.post_import(Some("lim"), gzip(&array_body(&events("okgz", 20, 2000))), &gz);
    assert_import_ok(&r, 20, "20 events of 2 KB, ~41 KiB uncompressed");
    assert_eq!(total(&d, "lim"), 120);
}

#[test]
fn default_limits_answer_413() {
    let dir = TestDir::new("deflimits");
    let d = Daemon::start(&dir.data_dir(), None);
    let t = DAY0 * 86_400;
    let tiny: Vec<Value> =
        (0..2001).map(|i| ev("E", json!({"time": t, "distinct_id": "u", "$insert_id": format!("t{i}")}))).collect();
    let r = d.post_import(Some("dl"), array_body(&tiny), &[("content-type", "application/json")]);
    assert_error(&r, 413, &["2000"], "2001 events with default limits");
    // 1000 events of ~10.3 KiB each: over 10 MiB.
    let big: Vec<Value> = (0..1000)
        .map(|i| {
            ev("E", json!({"time": t, "distinct_id": "u", "$insert_id": format!("b{i}"), "pad": "y".repeat(10_600)}))
        })
        .collect();
    let body = array_body(&big);
    assert!(body.len() > 10 * 1024 * 1024);
    let r = d.post_import(Some("dl"), body, &[("content-type", "application/json")]);
    assert_error(&r, 413, &["10485760", "10 MiB", "10MiB"], "10.1 MiB body with default limits");
    assert_eq!(total(&d, "dl"), 0);
    d.import_ok("dl", &tiny[..2000]);
    assert_eq!(total(&d, "dl"), 2000);
    // Just under 10 MiB is accepted (no smaller limit hides in the HTTP stack).
    let body = array_body(&big[..950]);
    assert!(body.len() > 9 * 1024 * 1024 && body.len() < 10 * 1024 * 1024, "{}", body.len());
    let r = d.post_import(Some("dl"), body, &[("content-type", "application/json")]);
    assert_import_ok(&r, 950, "950 events, ~9.7 MiB");
    assert_eq!(total(&d, "dl"), 2950);
}

#[test]
fn catalog_prunes_by_day_and_tracks_generation_and_leases() {
    let dir = TestDir::new("catalog");
    let d = Daemon::start(&dir.data_dir(), Some("[catalog]\nlease_ttl_secs = 60\n"));
    let g0 = d.segments("cat", None, None)["generation"].as_u64().expect("generation is a number");
    let mut g = EventGen::new(seed(0xCA7_0001), DAY0, 3);
    let mut m = Model::new();
    for batch in {
        let evs = g.events(300);
        g.batches(evs, 100)
    } {
        send_ok(&d, &mut m, "cat", &batch, Encoding::Array);
    }
    send_ok(&d, &mut m, "other", &[g.event()], Encoding::Array);

    let t0 = now_ms();
    let full = d.segments("cat", None, None);
    let t1 = now_ms();
    let g1 = full["generation"].as_u64().unwrap();
    assert!(g1 > g0, "generation must grow after writes: {g0} -> {g1}");
    let lease = &full["lease"];
    assert!(lease["id"].as_str().is_some_and(|s| !s.is_empty()), "lease id: {lease}");
    let exp = lease["expires_at_ms"].as_i64().unwrap_or_else(|| panic!("lease expiry: {lease}"));
    assert!(exp > t1, "lease must expire in the future: {exp} <= now {t1}");
    assert!(
        exp >= t0 + 55_000 && exp <= t1 + 61_000,
        "lease_ttl_secs = 60, but expires_at_ms {exp} is {} ms after the request",
        exp - t0
    );

    let segs = full["segments"].as_array().unwrap().clone();
    let days: Vec<String> = (0..3).map(|k| day_string(DAY0 + k)).collect();
    let mut per_day: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
    for s in &segs {
        let id = s["id"].as_str().unwrap_or("");
        assert!(is_ulid(id), "segment id {id:?} is not a 26-char uppercase Crockford ULID");
        assert_eq!(s["project"], "cat", "{s}");
        assert!(days.iter().any(|d| *d == s["day"]), "segment day {} not one of {days:?}", s["day"]);
        assert!(s["state"] == "open" || s["state"] == "sealed", "{s}");
        assert_eq!((&s["tier"], &s["format"], &s["codec"]), (&json!("hot"), &json!("rows"), &json!("lz4")), "{s}");
        assert_eq!(s["location"], format!("hot/cat/{id}.rows"), "{s}");
        assert!(!s["checksum"].is_null(), "{s}");
        assert!(s["bytes"].as_u64().is_some_and(|b| b > 0), "{s}");
        assert!(s["created_generation"].as_u64().is_some_and(|c| c <= g1), "{s}");
        let e = per_day.entry(s["day"].as_str().unwrap().to_string()).or_insert((0, i64::MAX, i64::MIN));
        e.0 += s["rows"].as_u64().unwrap();
        e.1 = e.1.min(s["min_time_ms"].as_i64().unwrap());
        e.2 = e.2.max(s["max_time_ms"].as_i64().unwrap());
    }
    // Per day, the segments hold exactly the acknowledged copies of that day.
    let mut want: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
    for e in m.copies("cat") {
        let w = want.entry(day_string(day_of_ms(e.time_ms))).or_insert((0, i64::MAX, i64::MIN));
        w.0 += 1;
        w.1 = w.1.min(e.time_ms);
        w.2 = w.2.max(e.time_ms);
    }
    assert_eq!(per_day, want, "per day (rows, min_time_ms, max_time_ms): catalog vs acknowledged events");

    // Windows: the answer holds every segment overlapping the window and none of another day.
    let check_window = |from: i64, to: i64| {
        let got: Vec<Value> = segment_list(&d, "cat", Some(from), Some(to));
        let got_ids: BTreeSet<&str> = got.iter().map(|s| s["id"].as_str().unwrap()).collect();
        let window_days: BTreeSet<String> = (day_of_ms(from)..=day_of_ms(to - 1)).map(day_string).collect();
        for s in &segs {
            let overlaps = s["min_time_ms"].as_i64().unwrap() < to && s["max_time_ms"].as_i64().unwrap() >= from;
            let id = s["id"].as_str().unwrap();
            if overlaps {
                assert!(got_ids.contains(id), "window [{from},{to}) must list segment {s}");
            }
            if !window_days.contains(s["day"].as_str().unwrap()) {
                assert!(!got_ids.contains(id), "window [{from},{to}) (days {window_days:?}) must not list segment {s}");
            }
        }
        assert!(got.iter().all(|s| s["project"] == "cat"), "other projects' segments listed: {got:?}");
        got.len()
    };
    let day = |k: i64| (DAY0 + k) * MS_PER_DAY;
    assert!(check_window(day(1), day(2)) > 0);
    assert!(check_window(day(1) - 3_600_000, day(1) + 3_600_000) > 0);
    assert!(check_window(day(0) + 6 * 3_600_000, day(2) + 1) > 0);
    assert_eq!(check_window(day(-10), day(-1)), 0);
    assert_eq!(check_window(day(3), day(30)), 0);

    // Another write: the generation grows again.
    send_ok(&d, &mut m, "cat", &[g.event()], Encoding::Array);
    let g2 = d.segments("cat", None, None)["generation"].as_u64().unwrap();
    assert!(g2 > g1, "generation must grow after a write: {g1} -> {g2}");
    let projects: BTreeSet<String> = d.projects().into_iter().collect();
    assert_eq!(projects, BTreeSet::from(["cat".to_string(), "other".to_string()]));
    check_catalog_matches_disk(&d).unwrap_or_else(|e| panic!("catalog vs hot directory:\n{e}"));
}

#[test]
fn queries_match_the_model_with_duplicates_across_days() {
    let seed = seed(0x0DE_D0B5);
    let dir = TestDir::new("query");
    let d = Daemon::start(&dir.data_dir(), None);
    let mut g = EventGen::new(seed, DAY0, 4);
    let mut m = Model::new();
    let p = "q";
    let events: Vec<Value> = (0..1200).map(|_| g.event()).collect();
    for batch in g.batches(events.clone(), 150) {
        let enc = g.encoding();
        send_ok(&d, &mut m, p, &batch, enc);
    }
    // Re-sends: exact copies, changed copies (last wins: $os always changes), same insert id at another time
    // (a different event), and a batch that carries two copies of one event (the later in the request wins).
    let mut resend = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match i % 10 {
            0 => resend.push(e.clone()),
            3 | 7 => resend.push(g.changed_copy(e)),
            5 => {
                let mut other = e.clone();
                let t = tierd_tests::mp::time_ms(&e["properties"]["time"]);
                other["properties"]["time"] = json!(t + 1);
                resend.push(other);
            }
            _ => {}
        }
    }
    for batch in g.batches(resend, 100) {
        let enc = g.encoding();
        send_ok(&d, &mut m, p, &batch, enc);
    }
    let first = g.changed_copy(&events[1]);
    let second = g.changed_copy(&first);
    send_ok(&d, &mut m, p, &[first, second.clone()], Encoding::Array);
    // The same events in a second project: projects never mix.
    send_ok(&d, &mut m, "q2", &events[..300], Encoding::Array);

    // The last copy wins, checked directly as well as through the model.
    let id1 = events[1]["properties"]["$insert_id"].as_str().unwrap();
    let got = d.query(&json!({"project": p, "from": 0, "to": FAR_FUTURE_MS, "group_by": "properties.$os",
                              "where": [{"property": "$insert_id", "op": "eq", "value": id1}]}));
    assert_eq!(got["total"], 1, "{got}");
    assert_eq!(got["rows"][0]["key"], second["properties"]["$os"], "the last copy's $os must win: {got}");

    let day = |k: i64| (DAY0 + k) * MS_PER_DAY;
    let all = |extra: Value| {
        let mut q = json!({"project": p, "from": 0, "to": FAR_FUTURE_MS});
        q.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        q
    };
    let w = |prop: &str, op: &str, value: Value| {
        if op == "exists" {
            json!({"where": [{"property": prop, "op": op}]})
        } else {
            json!({"where": [{"property": prop, "op": op, "value": value}]})
        }
    };
    let meta1 = json!({"tags": ["a", 1], "depth": {"x": 1, "ok": true, "nil": null}, "note": "ünïcödé ✓ \"q\""});
    let mut queries = vec![
        all(json!({})),
        json!({"project": "q2", "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}),
        all(json!({"group_by": "event"})),
        all(json!({"group_by": "properties.$os"})),
        all(json!({"group_by": "properties.plan"})),
        all(json!({"group_by": "properties.price"})),
        all(json!({"group_by": "properties.meta"})),
        all(json!({"group_by": "properties.flag"})),
        all(json!({"group_by": "properties.distinct_id"})),
        all(json!({"event": "Purchase"})),
        all(json!({"event": "Purchase", "group_by": "properties.$os"})),
        all(json!({"event": "NoSuchEvent", "group_by": "event"})),
        all(w("$os", "eq", json!("iOS"))),
        all(w("$os", "neq", json!("iOS"))),
        all(w("$os", "exists", Value::Null)),
        all(w("plan", "exists", Value::Null)),
        all(w("plan", "neq", json!("pro"))),
        all(w("meta", "exists", Value::Null)),
        all(w("meta", "eq", meta1)),
        all(w("price", "lt", json!(50))),
        all(w("price", "lte", json!(50))),
        all(w("price", "gt", json!(50.5))),
        all(w("price", "gte", json!(12.25))),
        all(w("price", "eq", json!(12))),
        all(w("price", "eq", json!("12"))),
        all(w("price", "lt", json!("5"))),
        all(w("price", "gte", json!(100))),
        all(w("qty", "eq", json!(3.0))),
        all(w("qty", "eq", json!(3))),
        all(w("qty", "neq", json!(3))),
        all(w("flag", "eq", json!(true))),
        all(w("resent", "exists", Value::Null)),
        all(w("distinct_id", "eq", json!("1003"))),
        all(w("distinct_id", "lt", json!("user_10"))),
        all(w("distinct_id", "gte", json!("user_"))),
        all(w("$insert_id", "eq", json!("ins-00042"))),
        all(w("$insert_id", "lt", json!("ins-00100"))),
        all(w("time", "gte", json!(day(2)))),
        all(json!({"where": [{"property": "time", "op": "gte", "value": day(1) + 43_200_000},
                              {"property": "time", "op": "lt", "value": day(2) + 1}], "group_by": "event"})),
        all(json!({"event": "View", "where": [{"property": "$os", "op": "eq", "value": "Android"},
                                               {"property": "price", "op": "lte", "value": 30}], "group_by": "properties.plan"})),
    ];
    for k in 0..4 {
        queries.push(json!({"project": p, "from": day(k), "to": day(k + 1), "group_by": "properties.$os"}));
    }
    queries.push(json!({"project": p, "from": day(0) + 21_600_123, "to": day(2) + 61_200_000, "group_by": "event"}));
    queries.push(json!({"project": p, "from": day(-5), "to": day(0)}));
    // 1 ms windows at sampled event times: from is inclusive, to exclusive.
    for e in m.live(p).into_iter().step_by(97) {
        queries.push(json!({"project": p, "from": e.time_ms, "to": e.time_ms + 1, "group_by": "event"}));
        queries.push(json!({"project": p, "from": e.time_ms - 1, "to": e.time_ms}));
    }
    for q in &queries {
        assert_model(&d, &m, q);
    }
    // A sanity check on the model itself: the duplicates really are duplicates.
    let copies = m.copies(p).count() as u64;
    let live = m.answer(&all(json!({}))).total;
    assert!(live < copies && live > 1200, "model: {copies} copies, {live} live");

    // A one-day query scans no more segments than the catalog lists for that day.
    let cat_day1 = segment_list(&d, p, Some(day(1)), Some(day(2))).len() as u64;
    let got = d.query(&json!({"project": p, "from": day(1), "to": day(2)}));
    let scanned = got["segments_scanned"].as_u64().unwrap_or_else(|| panic!("segments_scanned: {got}"));
    assert!(
        scanned >= 1 && scanned <= cat_day1,
        "one-day query scanned {scanned} segments; the catalog lists {cat_day1} for that day"
    );
    assert!(got["bytes_scanned"].as_u64().is_some_and(|b| b > 0), "bytes_scanned: {got}");
}

#[test]
fn bad_queries_are_400() {
    let dir = TestDir::new("badq");
    let d = Daemon::start(&dir.data_dir(), None);
    d.import_ok("bq", &[ev("A", json!({"time": DAY0 * 86_400, "distinct_id": "u", "$insert_id": "1"}))]);
    let ok = json!({"project": "bq", "from": 0, "to": FAR_FUTURE_MS});
    assert_eq!(d.query(&ok)["total"], 1);
    let with = |k: &str, v: Value| {
        let mut q = ok.clone();
        q[k] = v;
        q
    };
    let cases = [
        ("unknown op", with("where", json!([{"property": "$os", "op": "like", "value": "i"}])), &["op"][..]),
        ("from == to", with("from", json!(FAR_FUTURE_MS)), &["from", "to"][..]),
        ("from > to", json!({"project": "bq", "from": 2_000, "to": 1_000}), &["from", "to"][..]),
        ("bad project", with("project", json!("a/b")), &["project"][..]),
        ("bad group_by", with("group_by", json!("foo")), &["group_by", "group"][..]),
        ("empty group_by property", with("group_by", json!("properties.")), &["group_by", "group"][..]),
    ];
    for (what, q, needles) in cases {
        let r = d.post_json("/v1/query", &q);
        assert_error(&r, 400, needles, &format!("query {what}: {q}"));
    }
    let url = format!("{}/v1/query", d.url());
    let r = tierd_tests::daemon::http_client()
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "malformed query JSON");
}

#[test]
fn acknowledged_events_are_queryable_within_one_second() {
    let dir = TestDir::new("visible");
    let d = Daemon::start(&dir.data_dir(), None);
    let mut g = EventGen::new(seed(0x515_1B1E), DAY0, 2);
    let mut m = Model::new();
    for round in 0..5 {
        let batch: Vec<Value> = (0..50).map(|_| g.event()).collect();
        send_ok(&d, &mut m, "vis", &batch, Encoding::Array);
        let acked = Instant::now();
        let want = m.answer(&all_time("vis")).total;
        loop {
            let got = total(&d, "vis");
            if got == want {
                break;
            }
            assert!(
                acked.elapsed() < Duration::from_secs(1),
                "round {round}: {want} events acknowledged, only {got} visible after 1 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn unknown_config_key_fails_start() {
    let dir = TestDir::new("config");
    for (toml, key) in [
        ("[hot]\nseal_max_age_secs = 2\nbogus_knob = 1\n", "bogus_knob"),
        ("[nonsense_section]\nx = 1\n", "nonsense_section"),
        ("[ingest]\nmax_events_per_requests = 10\n", "max_events_per_requests"),
    ] {
        let (status, out) = serve_expecting_exit(&dir, toml, Duration::from_secs(30));
        assert!(!status.success(), "config with unknown key {key} must fail, exited {status}\noutput: {out}");
        assert!(out.contains(key), "the error must name the unknown key {key}; output:\n{out}");
        assert!(!out.contains("tierd listening on"), "must not start with an unknown key: {out}");
    }
    // The documented example config is accepted (so the failures above are about the keys).
    let ok = "[hot]\nseal_max_age_secs = 2\nseal_max_bytes = 1048576\n[ingest]\nmax_events_per_request = 100\n[catalog]\nlease_ttl_secs = 60\n";
    let mut d = Daemon::start(&dir.data_dir(), Some(ok));
    d.import_ok("cfg", &[ev("A", json!({"time": DAY0 * 86_400, "$insert_id": "1"}))]);
    d.stop();
}

#[test]
fn metrics_count_ingested_events() {
    let dir = TestDir::new("metrics");
    let d = Daemon::start(&dir.data_dir(), None);
    let metric = |d: &Daemon| -> f64 {
        let r = d.get("/metrics");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
        let text = r.text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tierd_ingest_events_total ") || l.starts_with("tierd_ingest_events_total{"))
            .collect();
        lines
            .iter()
            .map(|l| {
                let value =
                    l.rsplit_once('}').map(|(_, v)| v).unwrap_or_else(|| &l["tierd_ingest_events_total".len()..]);
                value
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or_else(|| panic!("bad metric line {l:?}"))
            })
            .sum()
    };
    let mut g = EventGen::new(seed(0x3E7_0001), DAY0, 2);
    let mut sent = 0;
    for (project, n) in [("m1", 10), ("m2", 20), ("m1", 7)] {
        let batch: Vec<Value> = (0..n).map(|_| g.event()).collect();
        d.import_ok(project, &batch);
        sent += n;
    }
    let r = d.get("/metrics");
    assert!(
        r.text().contains("tierd_ingest_events_total"),
        "metrics must include tierd_ingest_events_total:\n{}",
        r.text()
    );
    assert_eq!(metric(&d), sent as f64, "tierd_ingest_events_total (summed over labels) after {sent} events");
}

#[test]
fn restart_keeps_data_and_quarantines_unknown_files() {
    let dir = TestDir::new("restart");
    let mut d = Daemon::start(&dir.data_dir(), Some("[hot]\nseal_max_age_secs = 1\n"));
    let mut g = EventGen::new(seed(0x4E5_7A47), DAY0, 3);
    let mut m = Model::new();
    for (i, batch) in {
        let evs = g.events(500);
        g.batches(evs, 80)
    }
    .into_iter()
    .enumerate()
    {
        let project = if i % 3 == 0 { "r2" } else { "r1" };
        let enc = g.encoding();
        send_ok(&d, &mut m, project, &batch, enc);
    }
    let queries: Vec<Value> = ["r1", "r2"]
        .iter()
        .flat_map(|p| {
            [
                json!({"project": p, "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}),
                json!({"project": p, "from": 0, "to": FAR_FUTURE_MS, "group_by": "properties.$os"}),
            ]
        })
        .collect();
    let check = |d: &Daemon, m: &Model, when: &str| {
        for q in &queries {
            let got = d.query(q);
            if let Err(e) = check_answer(q, &got, &m.answer(q)) {
                panic!("{when}: {e}");
            }
        }
        check_catalog_matches_disk(d).unwrap_or_else(|e| panic!("{when}: catalog vs hot directory:\n{e}"));
    };
    check(&d, &m, "before restart");
    let projects_before: BTreeSet<String> = d.projects().into_iter().collect();

    let st = d.stop();
    println!("SIGTERM exit status: {st}");
    let data = dir.data_dir();
    let stray = [
        (data.join("hot/r1/01ARZ3NDEKTSV4RRFFQ69G5FAV.rows"), b"not a segment at all".to_vec()),
        (data.join("hot/ghost/01BX5ZZKBKACTAV9WEVGEMMVRZ.rows"), b"TIERDRW1 garbage".to_vec()),
    ];
    for (path, bytes) in &stray {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    d.restart();
    check(&d, &m, "after SIGTERM + restart with stray files");
    for (path, bytes) in &stray {
        assert!(!path.exists(), "unknown file {} must be moved out of hot/", path.display());
        let name = path.file_name().unwrap();
        let mut found = Vec::new();
        find_named(&data.join("quarantine"), name, &mut found);
        assert!(
            found.iter().any(|f| std::fs::read(f).ok().as_deref() == Some(&bytes[..])),
            "{} not found in quarantine/ (found {found:?})",
            name.to_string_lossy()
        );
    }
    let projects_after: BTreeSet<String> = d.projects().into_iter().collect();
    assert_eq!(projects_after, projects_before, "quarantined files must not create projects");

    // More writes, then kill -9 with nothing in flight: everything acknowledged survives.
    for batch in {
        let evs = g.events(200);
        g.batches(evs, 80)
    } {
        send_ok(&d, &mut m, "r1", &batch, Encoding::GzipNdjson);
    }
    d.kill9();
    d.restart();
    check(&d, &m, "after kill -9 + restart");
}

fn find_named(dir: &std::path::Path, name: &std::ffi::OsStr, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            find_named(&p, name, out);
        } else if p.file_name().is_some_and(|n| n.to_string_lossy().contains(&*name.to_string_lossy())) {
            out.push(p);
        }
    }
}
