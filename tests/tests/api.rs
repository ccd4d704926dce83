//! End-to-end tests of tierd's HTTP contract: ingest, rejection of bad input, limits, the catalog, segment reads,
//! queries against the independent model, config errors, metrics and restarts. Each test runs its own daemon in its
//! own temp dir on an ephemeral port. Generated data is seeded: `TIERD_TEST_SEED` overrides the seed, which is
//! printed.
//!
//! - [`ingest`]: accepted ingest in every form, visibility, metrics.
//! - [`rejects`]: bad imports, limits, a full hot tier, bad queries.
//! - [`catalog`]: catalog lookups, segment reads, restarts and quarantine, config errors.
//! - [`queries`]: queries against the model.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
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

#[path = "api/catalog.rs"]
mod catalog;
#[path = "api/ingest.rs"]
mod ingest;
#[path = "api/queries.rs"]
mod queries;
#[path = "api/rejects.rs"]
mod rejects;
