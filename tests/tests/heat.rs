//! Read heat on the real binary: one day's segments read often (segment reads, catalog lookups, queries) show more
//! heat on their catalog records than another day's; the heat survives a graceful restart, and a rewrite's output
//! inherits its inputs' heat.

use serde_json::{json, Value};
use tierd_tests::daemon::{Daemon, TestDir};
use tierd_tests::mp::MS_PER_DAY;

/// 2024-03-18 and the day after.
const DAY0: i64 = 19_800;
const HOT_DAY: &str = "2024-03-18";
const COLD_DAY: &str = "2024-03-19";
const PROJECT: &str = "heat";
const CONFIG: &str = "[heat]\nhalf_life_secs = 604800\nlookup_weight = 0.1\n";

fn events(day: i64, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"event": "view", "properties": {
                "time": day * MS_PER_DAY + 1000 * i as i64,
                "distinct_id": format!("u{i}"),
                "$insert_id": format!("d{day}-{i}"),
            }})
        })
        .collect()
}

/// (day, heat) of every live segment of the project. Each call is itself a lookup (counted after the answer).
fn heat_by_segment(d: &Daemon) -> Vec<(String, String, Value)> {
    let s = d.segments(PROJECT, None, None);
    s["segments"]
        .as_array()
        .unwrap_or_else(|| panic!("no segments: {s}"))
        .iter()
        .map(|r| {
            let heat = r.get("heat").cloned().unwrap_or_else(|| panic!("record without heat: {r}"));
            (r["id"].as_str().unwrap().to_string(), r["day"].as_str().unwrap().to_string(), heat)
        })
        .collect()
}

fn rate(heat: &Value) -> f64 {
    heat["reads_per_day"].as_f64().unwrap_or_else(|| panic!("reads_per_day: {heat}"))
}

/// Summed reads/day of the day's segments.
fn day_heat(all: &[(String, String, Value)], day: &str) -> f64 {
    all.iter().filter(|(_, d, _)| d == day).map(|(_, _, h)| rate(h)).sum()
}

fn metric(d: &Daemon, line_prefix: &str) -> f64 {
    let m = d.get("/metrics").text();
    m.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_prefix} in metrics:\n{m}"))
}

#[test]
fn a_day_read_often_is_hotter_and_stays_hot_across_restarts_and_rewrites() {
    let dir = TestDir::new("heat");
    let mut d = Daemon::start(&dir.data_dir(), Some(CONFIG));
    d.import_ok(PROJECT, &events(DAY0, 50));
    d.import_ok(PROJECT, &events(DAY0 + 1, 50));

    let fresh = heat_by_segment(&d);
    assert!(!fresh.is_empty());
    for (id, _, h) in &fresh {
        assert_eq!(h, &json!({"reads_per_day": 0.0, "bytes_per_day": 0.0, "last_read_ms": null}), "{id}");
    }
    let hot_ids: Vec<String> = fresh.iter().filter(|(_, d, _)| d == HOT_DAY).map(|(id, ..)| id.clone()).collect();
    assert!(!hot_ids.is_empty(), "{fresh:?}");

    // The hot day: segment reads, lookups of its window, and queries of it.
    let (from, to) = (DAY0 * MS_PER_DAY, (DAY0 + 1) * MS_PER_DAY);
    for _ in 0..5 {
        for id in &hot_ids {
            let r = d.get(&format!("/v1/segments/{id}"));
            assert_eq!(r.status, 200, "{}", r.text());
        }
        d.segments(PROJECT, Some(from), Some(to));
        let q = d.query(&json!({"project": PROJECT, "from": from, "to": to}));
        assert_eq!(q["total"], 50, "{q}");
    }
    let read = heat_by_segment(&d);
    let (hot, cold) = (day_heat(&read, HOT_DAY), day_heat(&read, COLD_DAY));
    assert!(hot > 0.0 && hot > 10.0 * cold, "hot day {hot} reads/day, cold day {cold}: {read:?}");
    for (id, day, h) in &read {
        if day == HOT_DAY {
            assert!(h["last_read_ms"].as_i64().is_some(), "{id}: {h}");
            assert!(h["bytes_per_day"].as_f64().unwrap() > 0.0, "{id}: {h}");
        } else {
            // Only the first listing's lookup has touched it: a fraction of a read, no bytes.
            assert_eq!(h["bytes_per_day"].as_f64().unwrap(), 0.0, "{id}: {h}");
        }
    }
    assert!(metric(&d, "tierd_heat_reads_total{source=\"segment_get\"}") >= 5.0 * hot_ids.len() as f64);
    assert!(metric(&d, "tierd_heat_reads_total{source=\"query\"}") >= 5.0 * hot_ids.len() as f64);
    assert!(metric(&d, "tierd_heat_reads_total{source=\"lookup\"}") > 0.0);

    // A graceful restart keeps the heat (flushed at shutdown), and seals the segments.
    d.stop();
    d.restart();
    let after = heat_by_segment(&d);
    let (hot2, cold2) = (day_heat(&after, HOT_DAY), day_heat(&after, COLD_DAY));
    assert!(hot2 >= hot * 0.999, "heat lost in a restart: {hot} -> {hot2}");
    assert!(hot2 > 10.0 * cold2, "hot day {hot2}, cold day {cold2} after the restart");

    // Re-encoding replaces every segment; the outputs carry their inputs' heat (moved at the next flush: a
    // graceful restart here).
    let r = d.post_json("/v1/admin/passes/reencode/run", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.json["actions"].as_array().unwrap().is_empty(), "reencode did nothing: {}", r.text());
    d.stop();
    d.restart();
    let rewritten = heat_by_segment(&d);
    assert!(rewritten.iter().all(|(id, ..)| !hot_ids.contains(id)), "the inputs were replaced: {rewritten:?}");
    let (hot3, cold3) = (day_heat(&rewritten, HOT_DAY), day_heat(&rewritten, COLD_DAY));
    assert!(hot3 >= hot2 * 0.999, "a rewrite lost heat: {hot2} -> {hot3}");
    assert!(hot3 > 10.0 * cold3, "hot day {hot3}, cold day {cold3} after the rewrite");
    d.stop();
}
