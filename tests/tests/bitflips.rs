//! Bit flips on the real daemon, one per kind of copy, each detected and never served:
//! - a hot copy with a cold copy beside it: answers stay right (read from cold), and the next promote run replaces
//!   the hot copy from the cold one (`repair`), after which the hot copy verifies again;
//! - a cached cold block: a miss, fetched again from the object store, answers stay right;
//! - a cold object that is the segment's only copy: a whole read of it fails naming the segment, never a body;
//! - a hot copy deleted while the daemon was down: with a cold copy, reads fall back and the next promote replaces
//!   it; as the only copy, queries of it fail naming it.
//!
//! Segments with no good copy are listed in `GET /v1/status` (`damaged_segments`), once each.

use serde_json::{json, Value};
use tierd_tests::daemon::{Daemon, TestDir};
use tierd_tests::gen::EventGen;
use tierd_tests::model::{check_answer, Model};
use tierd_tests::mp::FAR_FUTURE_MS;

const DAY0: i64 = 20_454;
const P: &str = "flips";

fn flip(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(path, &bytes).unwrap();
}

fn check(d: &Daemon, m: &Model, stage: &str) {
    for q in [
        json!({"project": P, "from": 0, "to": FAR_FUTURE_MS}),
        json!({"project": P, "from": 0, "to": FAR_FUTURE_MS, "group_by": "properties.$os"}),
        json!({"project": P, "from": 0, "to": FAR_FUTURE_MS, "where": [{"property": "price", "op": "gt", "value": 50}]}),
    ] {
        if let Err(e) = check_answer(&q, &d.query(&q), &m.answer(&q)) {
            panic!("{stage}: {e}\n{}", d.log_tail(30));
        }
    }
}

fn segments(d: &Daemon) -> Vec<Value> {
    d.segments(P, None, None)["segments"].as_array().unwrap().clone()
}

fn path_on(seg: &Value, tier: &str) -> String {
    let l = seg["locations"].as_array().unwrap().iter().find(|l| l["tier"] == tier);
    l.unwrap_or_else(|| panic!("no {tier} copy: {seg}"))["path"].as_str().unwrap().to_string()
}

fn move_to(d: &Daemon, id: &str, to: &str) {
    let r = d.post_json("/v1/admin/move", &json!({"segments": [id], "to": to}));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn flipped_bits_are_detected_never_served_and_repaired_from_another_copy() {
    let dir = TestDir::new("bitflips");
    let mut d = Daemon::start(&dir.data_dir(), Some("[passes.reencode]\nmin_age_secs = 0\n"));
    let mut m = Model::new();
    let mut g = EventGen::new(0xB17, DAY0, 3);
    for chunk in g.events(1500).chunks(500) {
        d.send(&mut m, P, chunk);
    }
    d.stop();
    d.restart();
    d.pass_ok("reencode");
    let segs = segments(&d);
    assert!(segs.len() >= 3, "one Parquet segment per day: {segs:?}");
    let (both, only_cold, cached) =
        (segs[0]["id"].as_str().unwrap(), segs[1]["id"].as_str().unwrap(), segs[2]["id"].as_str().unwrap());
    move_to(&d, both, "both");
    move_to(&d, only_cold, "cold");
    move_to(&d, cached, "cold");
    check(&d, &m, "after the moves (the cold segments' blocks are now cached)");
    let segs = segments(&d);
    let find = |id: &str| segs.iter().find(|s| s["id"] == id).unwrap().clone();

    // 1. The hot copy of a segment that also has a cold copy.
    let hot = path_on(&find(both), "hot");
    flip(&d.data_dir().join(&hot));
    check(&d, &m, "with a flipped hot copy");
    assert!(d.metric_sum("tierd_read_fallbacks_total") > 0.0, "the reads went to the cold copy");
    let report = d.pass_ok("promote");
    assert!(report["actions"].to_string().contains("\"repair\""), "promote repairs first: {report}");
    let fresh = path_on(&segments(&d).into_iter().find(|s| s["id"] == both).unwrap(), "hot");
    assert_ne!(fresh, hot, "a fresh hot copy");
    let r = d.get(&format!("/v1/segments/{both}"));
    assert_eq!(r.status, 200, "the new hot copy verifies: {}", r.text());
    check(&d, &m, "after the repair");

    // 2. A cached block of a cold object: the block is a miss and is fetched again.
    let cache = d.data_dir().join("cache");
    let mut blocks: Vec<std::path::PathBuf> =
        walk(&cache).into_iter().filter(|p| !p.starts_with(cache.join("tmp"))).collect();
    blocks.sort();
    assert!(!blocks.is_empty(), "queries cached cold blocks");
    for b in &blocks {
        flip(b);
    }
    check(&d, &m, "with every cached block flipped");
    assert!(d.metric_sum("tierd_cache_corrupt_total") > 0.0, "the flipped blocks were read, found bad and dropped");

    // 3. The only copy of a segment, in the object store: a whole read fails naming it. (With the cache on, its
    // verified cached blocks would be served instead, correctly: restart without the cache to reach the object.)
    // 4. The hot copy of a segment on both tiers deleted while the daemon is down: recovery sends it for repair.
    let key = path_on(&find(only_cold), "cold");
    flip(&d.data_dir().join("cold").join(&key));
    let hot = path_on(&segments(&d).into_iter().find(|s| s["id"] == both).unwrap(), "hot");
    // 5. The only copy of a segment of another project, deleted while the daemon is down.
    let lost = "lost";
    d.import_ok(lost, &g.events(20));
    let lost_seg = d.segments(lost, None, None)["segments"][0].clone();
    d.stop();
    std::fs::remove_file(d.data_dir().join(&hot)).unwrap();
    std::fs::remove_file(d.data_dir().join(path_on(&lost_seg, "hot"))).unwrap();
    d.set_config("[passes.reencode]\nmin_age_secs = 0\n[cache]\nmax_bytes = 0\n");
    d.restart();
    let r = d.get(&format!("/v1/segments/{only_cold}?format=ndjson"));
    assert_ne!(r.status, 200, "a flipped only copy is never served: {}", &r.text()[..r.text().len().min(200)]);
    assert!(r.text().contains(only_cold), "the error names the segment: {}", r.text());

    let r = d.get(&format!("/v1/segments/{both}"));
    assert_eq!(r.status, 200, "the missing hot copy falls back to the cold one: {}", r.text());
    let report = d.pass_ok("promote");
    assert!(report["actions"].to_string().contains("\"repair\""), "recovery queued the repair: {report}");
    assert!(path_on(&segments(&d).into_iter().find(|s| s["id"] == both).unwrap(), "hot") != hot, "a fresh hot copy");

    // Segments with no good copy are listed in the status, once each, with what was wrong and who found it.
    let lost_id = lost_seg["id"].as_str().unwrap();
    let q = json!({"project": lost, "from": 0, "to": FAR_FUTURE_MS});
    let r = d.post_json("/v1/query", &q);
    assert!(r.status >= 500 && r.text().contains(lost_id), "a query of a lost segment fails naming it: {}", r.text());
    let again = d.get(&format!("/v1/segments/{only_cold}?format=ndjson"));
    assert_ne!(again.status, 200);
    let status = d.status();
    let mut damaged: Vec<(String, String, String, String)> = status["damaged_segments"]
        .as_array()
        .unwrap_or_else(|| panic!("{status}"))
        .iter()
        .map(|x| {
            let f = |k: &str| x[k].as_str().unwrap().to_string();
            (f("segment"), f("tier"), f("problem"), f("found_by"))
        })
        .collect();
    damaged.sort();
    let mut want = vec![
        (only_cold.to_string(), "cold".to_string(), "corrupt".to_string(), "read".to_string()),
        (lost_id.to_string(), "hot".to_string(), "missing".to_string(), "recovery".to_string()),
    ];
    want.sort();
    assert_eq!(damaged, want, "{status}");
    assert_eq!(d.metric_sum("tierd_segments_damaged_total"), 2.0, "each reported once");
    assert_eq!(d.metric_sum("tierd_segments_damaged "), 2.0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
