//! Pass options on the real daemon: `project` confines a pass to one project, and a dry run of any pass changes
//! nothing, not a file on either tier, not a catalog record, not a deletion request, while it reports what the
//! real run would do.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tierd_tests::daemon::{Daemon, TestDir};
use tierd_tests::disk::{catalog, cold_files};
use tierd_tests::policy;

const DAY: i64 = 86_400_000;
const PASSES: [&str; 8] = ["reencode", "compact", "recompress", "migrate", "promote", "gc", "retention", "deletions"];

fn config() -> String {
    format!(
        "[gc]\ngrace_secs = 0\n[passes.reencode]\nmin_age_secs = 0\n[retention.projects]\na = 3\n{}",
        policy::ALL_COLD
    )
}

fn events(project: &str, first_ms: i64, n: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"event": "E", "properties": {"time": first_ms + i * (DAY / 8), "distinct_id": format!("u{}", i % 5),
                "$insert_id": format!("{project}-{i}")}})
        })
        .collect()
}

fn run(d: &Daemon, pass: &str, body: Value) -> Value {
    let r = d.post_json(&format!("/v1/admin/passes/{pass}/run"), &body);
    assert_eq!(r.status, 200, "{pass}: {}", r.text());
    r.json
}

/// Every file under the data directory but the catalog's own (leases and heat move with reads) and the cache, with
/// its size: the hot tier, the trash, the quarantine and the embedded cold bucket.
fn files(d: &Daemon) -> BTreeMap<String, u64> {
    cold_files(d.data_dir())
        .into_iter()
        .filter(|(k, _)| !k.starts_with("catalog/") && !k.starts_with("cache/"))
        .collect()
}

/// The catalog's records, without what reads change (heat) or what names a generation.
fn records(d: &Daemon) -> Vec<Value> {
    let mut out = Vec::new();
    for (_, (_, segs)) in catalog(d) {
        for mut s in segs {
            if let Some(o) = s.as_object_mut() {
                o.remove("heat");
            }
            out.push(s);
        }
    }
    out
}

fn formats(d: &Daemon, project: &str) -> Vec<String> {
    let s = d.segments(project, None, None);
    let mut f: Vec<String> = s["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}/{}", m["tier"].as_str().unwrap_or("?"), m["format"].as_str().unwrap()))
        .collect();
    f.sort();
    f.dedup();
    f
}

#[test]
fn project_confines_a_pass_and_a_dry_run_of_any_pass_changes_nothing() {
    let dir = TestDir::new("pass-options");
    let mut d = Daemon::start(&dir.data_dir(), Some(&config()));
    let now = d.advance_clock(1);
    let first = now.div_euclid(DAY) * DAY - 6 * DAY;
    for p in ["a", "b"] {
        d.import_ok(p, &events(p, first, 40));
    }
    d.stop();
    d.restart(); // seals

    // `project`: only a's row segments are re-encoded, only a's Parquet goes cold.
    let r = run(&d, "reencode", json!({"project": "a"}));
    assert!(!r["actions"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(formats(&d, "a"), ["hot/parquet"]);
    assert_eq!(formats(&d, "b"), ["hot/rows"]);
    run(&d, "reencode", json!({"project": "b"}));
    let r = run(&d, "migrate", json!({"project": "a"}));
    assert!(!r["actions"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(formats(&d, "a"), ["cold/parquet"]);
    assert_eq!(formats(&d, "b"), ["hot/parquet"]);

    // Work for every pass to find: b's segments to migrate, retired inputs for gc, a's events past its 3-day
    // retention, a deletion request, and the moment past the lease TTL so gc would delete.
    let r = d.post_json("/v1/admin/deletions", &json!({"project": "b", "distinct_id": "u1"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let (files_before, records_before) = (files(&d), records(&d));
    d.advance_clock(301_000);
    let deletions_before = d.get("/v1/admin/deletions").json;
    let mut planned = BTreeMap::new();
    for pass in PASSES {
        let r = run(&d, pass, json!({"dry_run": true}));
        assert_eq!(r["dry_run"], true, "{r}");
        planned.insert(pass, r["actions"].as_array().map_or(0, Vec::len));
        assert_eq!(files(&d), files_before, "a dry run of {pass} changed files");
        assert_eq!(records(&d), records_before, "a dry run of {pass} changed the catalog");
        // The listings above took leases (over retired segments too): let them expire before the next pass.
        d.advance_clock(301_000);
    }
    assert_eq!(d.get("/v1/admin/deletions").json, deletions_before, "dry runs leave deletion requests as they are");
    for pass in ["migrate", "gc", "retention", "deletions"] {
        assert!(planned[pass] > 0, "a dry run of {pass} found nothing to do, so it proves nothing: {planned:?}");
    }
    // The real runs do what the dry runs said.
    let r = run(&d, "gc", json!({}));
    assert!(!r["actions"].as_array().unwrap().is_empty(), "{r}");
    assert_ne!(files(&d), files_before, "gc for real deletes");
}
