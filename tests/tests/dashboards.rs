//! The Grafana dashboard in `dashboards/` must only chart metrics the daemon really exports: a renamed metric would
//! otherwise leave an empty panel that nobody notices.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tierd_tests::daemon::workspace_root;
use tierd_tests::{Daemon, TestDir};

/// Every `tierd_*` metric name in the dashboard's PromQL expressions, with whether the expression has an
/// `or vector(0)` fallback (a counter that exists only once something went wrong, e.g. checksum errors).
fn dashboard_metrics() -> Vec<(String, bool)> {
    let path = workspace_root().join("dashboards/grafana/tierd-overview.json");
    let dash: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let optional = expr.contains("or vector(0)");
            let mut rest = expr;
            while let Some(i) = rest.find("tierd_") {
                let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                rest = &rest[i + name.len()..];
                out.push((name, optional));
            }
        }
    }
    assert!(out.len() >= 15, "the dashboard should chart the daemon's main metrics: {out:?}");
    out
}

#[test]
fn every_dashboard_metric_is_exported() {
    let dir = TestDir::new("dashboards");
    // Every background path runs once, on the embedded default (file:// cold tier): re-encode, migrate (planned by
    // the tiering policy, which publishes the projected cost), a cold read (counted as heat), gc.
    let config = format!(
        "[catalog]\nlease_ttl_secs = 60\n[gc]\ngrace_secs = 0\n[passes.reencode]\nmin_age_secs = 0\n{}",
        tierd_tests::policy::ALL_COLD
    );
    let mut d = Daemon::start(&dir.data_dir(), Some(&config));
    let ev = json!([{"event": "E", "properties": {"time": 1_767_225_600, "distinct_id": "u", "$os": "iOS"}}]);
    d.import_ok("dash", ev.as_array().unwrap());
    d.stop();
    d.restart();
    for pass in ["reencode", "migrate"] {
        let r = d.post_json(&format!("/v1/admin/passes/{pass}/run"), &json!({}));
        assert_eq!(r.json["errors"], json!([]), "{pass}: {}", r.text());
    }
    // gc deletes the copies the passes dropped once one lease TTL has passed since the restart.
    d.assert_gc_waits();
    d.advance_clock(60_000);
    let r = d.post_json("/v1/admin/passes/gc/run", &json!({}));
    assert_eq!(r.json["errors"], json!([]), "gc: {}", r.text());
    assert!(r.json["actions"].as_array().unwrap().iter().any(|a| a["kind"] == "delete"), "gc: {}", r.text());
    // The restart reset the process's counters: ingest again, and read the cold segment twice (miss, then hit).
    d.import_ok("dash", ev.as_array().unwrap());
    d.query(&json!({"project": "dash", "from": 0, "to": i64::MAX, "group_by": "event"}));
    let bad = d.post_import(Some("dash"), b"[{\"event\": \"\"}]".to_vec(), &[]);
    assert_eq!(bad.status, 400);
    d.query(&json!({"project": "dash", "from": 0, "to": i64::MAX, "group_by": "event"}));
    d.segments("dash", None, None);
    // The heat histogram is recorded at each heat flush: housekeeping's, every 10 s of the test clock.
    d.advance_clock(10_000);
    let start = std::time::Instant::now();
    while !d.get("/metrics").text().contains("tierd_segment_heat_bucket") {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "no heat flush:\n{}", d.log_tail(20));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let text = d.get("/metrics").text();
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let missing: Vec<String> = dashboard_metrics()
        .into_iter()
        .filter(|(name, optional)| !optional && !exported.contains(name.as_str()))
        .map(|(name, _)| name)
        .collect();
    assert!(missing.is_empty(), "dashboard metrics not exported: {missing:?}\nexported: {exported:?}");
}
