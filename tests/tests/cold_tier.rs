//! The cold tier end to end, on the real daemon, on the embedded default (`file://DATA_DIR/cold`) and on a real
//! S3-compatible server (moto on 127.0.0.1, started here): a stream with re-sends is re-encoded, migrated, read cold,
//! moved by hand, promoted back and garbage-collected, and after every step every query equals the independent
//! model and the catalog equals what the hot directory and the bucket hold. Then the real process is killed at every
//! named step of migrate, promote and gc (a failpoint that exits, like `kill -9`): after restart the answers are
//! unchanged, no object is lost, and after one gc past the grace no orphan is left. A misbehaving object store is
//! `cold_faults.rs`'s.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tierd_tests::cold::{
    after_lease_ttl, check_all, check_storage, columnar, config, pass, pass_may_die, placements, Backend, P, PREFIX,
};
use tierd_tests::daemon::{http_client, TestDir};
use tierd_tests::disk::check_catalog_matches_cold;
use tierd_tests::mp::FAR_FUTURE_MS;
use tierd_tests::policy;
use tierd_tests::s3::MotoServer;

fn life_cycle(dir: &TestDir, backend: Backend) {
    let (mut d, m) = columnar(dir, &backend);
    check_all(&d, &m, "reencode");

    // Migrate: every columnar segment goes cold; queries read it there.
    let report = pass(&d, "migrate");
    assert!(!report["actions"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(placements(&d).keys().collect::<Vec<_>>(), vec!["cold"], "{:?}", placements(&d));
    // Each upload was verified before its commit: on S3 by its ETag (the server's MD5 of what it received) and a
    // HEAD, with no object read back; on file:// (no MD5 ETag) by reading it back.
    let moved = report["actions"].as_array().unwrap().len() as f64;
    let (etag, read_back) = (
        d.metric_sum("tierd_move_verifications_total{method=\"etag\"}"),
        d.metric_sum("tierd_move_verifications_total{method=\"read_back\"}"),
    );
    match backend {
        Backend::Moto(_) => {
            assert_eq!((etag, read_back), (moved, 0.0), "verifications by etag, read back");
            assert_eq!(d.metric_sum("tierd_cold_bytes_total{direction=\"read\"}"), 0.0, "nothing was read back");
        }
        Backend::File => assert_eq!((etag, read_back), (0.0, moved), "verifications by etag, read back"),
    }
    check_all(&d, &m, "migrate");
    check_storage(&d, &backend, "migrate");
    // A cold segment streams back byte for byte and as events.
    let seg = d.segments(P, None, None)["segments"][0].clone();
    let id = seg["id"].as_str().unwrap();
    let raw = d.get(&format!("/v1/segments/{id}"));
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert_eq!(raw.body.len() as u64, seg["bytes"].as_u64().unwrap());
    let ndjson = d.get(&format!("/v1/segments/{id}?format=ndjson"));
    assert_eq!(ndjson.text().lines().count() as u64, seg["rows"].as_u64().unwrap());

    // gc: the dropped hot copies and the retired row segments go to the trash.
    after_lease_ttl(&mut d);
    let gc = pass(&d, "gc");
    assert!(gc["actions"].as_array().unwrap().iter().any(|a| a["kind"] == "delete"), "{gc}");
    check_storage(&d, &backend, "gc after migrate");
    check_all(&d, &m, "gc after migrate");

    // By hand: one segment also on the hot disk, another asked to stay cold (nothing to do), an unknown id.
    let ids: Vec<String> = d.segments(P, None, None)["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let r = d.post_json("/v1/admin/move", &json!({"segments": [ids[0]], "to": "both"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json["results"][0]["outcome"], "moved", "{}", r.text());
    let r = d.post_json("/v1/admin/move", &json!({"segments": [ids[1], "01K0000000000000000000000X"], "to": "cold"}));
    assert_eq!(r.json["results"][0]["outcome"], "unchanged", "{}", r.text());
    assert_eq!(r.json["results"][1]["outcome"], "error", "{}", r.text());
    let bad = d.post_json("/v1/admin/move", &json!({"segments": [ids[1]], "to": "lukewarm"}));
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(placements(&d).get("both"), Some(&1), "{:?}", placements(&d));
    check_all(&d, &m, "move to both");

    // Promote: with the threshold at a century, every cold segment is young again and comes back; the one on both
    // tiers is left as the operator asked, until moved by hand.
    d.set_config(&config(&backend, policy::ALL_HOT));
    d.restart();
    pass(&d, "promote");
    assert_eq!(placements(&d).get("cold"), None, "{:?}", placements(&d));
    assert_eq!(placements(&d).get("both"), Some(&1), "{:?}", placements(&d));
    check_all(&d, &m, "promote");
    let r = d.post_json("/v1/admin/move", &json!({"segments": [ids[0]], "to": "hot"}));
    assert_eq!(r.json["results"][0]["outcome"], "moved", "{}", r.text());
    assert_eq!(r.json["results"][0]["bytes_copied"], 0, "dropping the cold copy copies nothing: {}", r.text());
    assert_eq!(placements(&d).keys().collect::<Vec<_>>(), vec!["hot"], "{:?}", placements(&d));
    after_lease_ttl(&mut d);
    pass(&d, "gc");
    check_storage(&d, &backend, "gc after promote");
    let objects = backend.objects(&d);
    assert!(objects.keys().all(|k| k.starts_with("trash/")), "only the trash is left in the bucket: {objects:?}");
    assert!(!objects.is_empty(), "the cold copies wait in the trash");
    d.restart();
    check_all(&d, &m, "restart");
    check_storage(&d, &backend, "restart");
}

#[test]
fn life_cycle_on_the_embedded_file_tier() {
    let dir = TestDir::new("cold-file");
    life_cycle(&dir, Backend::File);
}

#[test]
fn life_cycle_on_s3() {
    let dir = TestDir::new("cold-s3");
    life_cycle(&dir, Backend::Moto(MotoServer::start()));
}

/// Multipart uploads are verified by their ETag too (S3's MD5 of the parts' MD5s and `-N`, which tierd computes for
/// the part size it used): with every upload in parts (`cold.multipart_threshold_bytes = 1`; these segments fit in
/// one part each), every migrated segment went up as a completed multipart upload and was verified by its ETag and a
/// HEAD, none read back.
#[test]
fn multipart_uploads_are_verified_by_etag_on_s3() {
    let dir = TestDir::new("cold-s3-multipart");
    let backend = Backend::Moto(MotoServer::start());
    let (mut d, m) = columnar(&dir, &backend);
    // `[cold]` is the last section of the configuration.
    d.set_config(&format!("{}multipart_threshold_bytes = 1\n", config(&backend, policy::ALL_COLD)));
    d.restart();
    let report = pass(&d, "migrate");
    let moved = report["actions"].as_array().unwrap().len() as f64;
    assert!(moved > 0.0, "{report}");
    let metrics = d.get("/metrics").text();
    let completed: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("tierd_cold_requests_total{") && l.contains("op=\"complete_multipart\""))
        .filter(|l| l.contains("outcome=\"ok\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(completed, moved, "every upload was a multipart upload");
    assert_eq!(d.metric_sum("tierd_move_verifications_total{method=\"etag\"}"), moved);
    assert_eq!(d.metric_sum("tierd_move_verifications_total{method=\"read_back\"}"), 0.0);
    assert_eq!(d.metric_sum("tierd_cold_bytes_total{direction=\"read\"}"), 0.0, "nothing was read back");
    check_all(&d, &m, "multipart migrate");
    check_storage(&d, &backend, "multipart migrate");
}

/// Cold segments are plain Parquet: DuckDB reads the objects of the `file://` tier unchanged, and its count by event
/// equals tierd's.
#[test]
fn duckdb_reads_cold_segments_unchanged() {
    let dir = TestDir::new("cold-duckdb");
    let backend = Backend::File;
    let (d, _m) = columnar(&dir, &backend);
    pass(&d, "migrate");
    let files: Vec<String> = d.segments(P, None, None)["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let key = s["locations"][0]["path"].as_str().unwrap();
            assert_eq!(s["locations"][0]["tier"], "cold", "{s}");
            d.data_dir().join("cold").join(key).to_string_lossy().into_owned()
        })
        .collect();
    let script = "import duckdb, json, sys\n\
                  files = json.loads(sys.argv[1])\n\
                  rows = duckdb.sql(f'select event, count(*) from read_parquet({files!r}) group by event').fetchall()\n\
                  print(json.dumps({str(e): n for e, n in rows}))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &serde_json::to_string(&files).unwrap()])
        .output()
        .expect("python3");
    assert!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    let duck: BTreeMap<String, u64> = serde_json::from_slice(&out.stdout).unwrap();
    let got = d.query(&json!({"project": P, "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}));
    let tierd: BTreeMap<String, u64> = got["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(duck, tierd);
}

/// Kills the daemon at `point` (a failpoint that exits) inside pass `name`, restarts, and checks: answers equal the
/// model, the catalog equals the hot directory, and after one gc past the grace the bucket holds exactly the
/// catalog's cold copies (no orphan).
fn crash_in(point: &str, name: &str, prepare_cold: bool) {
    let backend = Backend::Moto(MotoServer::start());
    let dir = TestDir::new(&format!("cold-crash-{}-{name}", point.replace(['.', '@'], "-")));
    let (mut d, m) = columnar(&dir, &backend);
    if prepare_cold {
        pass(&d, "migrate");
        d.set_config(&config(&backend, policy::ALL_HOT));
    }
    let spec = if point.contains('@') { point.replacen('@', "=exit@", 1) } else { format!("{point}=exit") };
    d.set_failpoints(Some(&spec));
    d.restart();
    if name == "gc" {
        after_lease_ttl(&mut d);
    }
    assert!(pass_may_die(&d, name).is_none(), "pass {name} must die at {point}");
    let status = d.wait_for_exit(Duration::from_secs(30)).expect("the daemon exits at the failpoint");
    assert_eq!(status.code(), Some(101), "{status}\n{}", d.log_tail(30));
    d.set_failpoints(None);
    d.restart();
    check_all(&d, &m, &format!("crash at {point}"));
    // Recovery alone (no gc yet) left the hot directory and the bucket exactly as the catalog says: an uncommitted
    // copy was deleted, a committed one kept.
    check_storage(&d, &backend, &format!("recovery after a crash at {point}"));
    // The pass runs to the end now, and one gc past the grace leaves no orphan.
    pass(&d, name);
    after_lease_ttl(&mut d);
    pass(&d, "gc");
    check_all(&d, &m, &format!("{name} after crash at {point}"));
    check_storage(&d, &backend, &format!("gc after crash at {point}"));
}

#[test]
fn crash_during_migrate() {
    for point in ["move.intent", "move.write", "move.verify", "move.commit@2"] {
        crash_in(point, "migrate", false);
    }
}

#[test]
fn crash_during_promote() {
    for point in ["move.write", "move.verify", "move.commit"] {
        crash_in(point, "promote", true);
    }
}

#[test]
fn crash_during_gc() {
    crash_in("gc.delete@2", "gc", true);
}

/// Reconciliation: an object under `segments/` that no catalog record names (an upload of a crashed move that
/// recovery could not remove) goes to the trash once older than the grace; killed right after moving it, the next
/// gc finishes, and the bucket then holds exactly the catalog's copies.
#[test]
fn crash_during_reconciliation() {
    let moto = MotoServer::start();
    let orphan_url = format!("{}/{}/{PREFIX}/segments/{P}/2024-03-18/orphan.parquet", moto.endpoint(), moto.bucket());
    let backend = Backend::Moto(moto);
    let dir = TestDir::new("cold-crash-orphan");
    let (mut d, m) = columnar(&dir, &backend);
    pass(&d, "migrate");
    let put = http_client().put(&orphan_url).body(b"PAR1 not really".to_vec()).send().expect("put the orphan");
    assert!(put.status().is_success(), "{}", put.status());
    assert!(check_catalog_matches_cold(&d, &backend.objects(&d)).is_err(), "the orphan is unknown to the catalog");
    d.set_failpoints(Some("gc.orphan=exit"));
    d.restart();
    after_lease_ttl(&mut d);
    assert!(pass_may_die(&d, "gc").is_none(), "gc must die after trashing the orphan");
    assert_eq!(d.wait_for_exit(Duration::from_secs(30)).and_then(|s| s.code()), Some(101));
    d.set_failpoints(None);
    d.restart();
    check_all(&d, &m, "crash at gc.orphan");
    after_lease_ttl(&mut d);
    pass(&d, "gc");
    check_storage(&d, &backend, "gc after a crash at gc.orphan");
    let objects = backend.objects(&d);
    assert!(objects.keys().any(|k| k.starts_with("trash/") && k.ends_with("/orphan.parquet")), "{objects:?}");
    check_all(&d, &m, "gc after a crash at gc.orphan");
}

/// Restore from the trash, the real process killed at each of its steps: the row segments a re-encode retired and
/// gc deleted come back through `POST /v1/admin/trash/restore`; a crash before the commit leaves no copy behind
/// (recovery rolls it back) and the trash intact, a crash after it leaves the segment restored; either way a second
/// restore finishes the batch, and the answers equal the model's throughout (restored segments are deduplicated
/// against their columnar replacement).
#[test]
fn trash_restore_survives_a_crash_at_each_step() {
    for point in ["restore.write", "restore.commit"] {
        let backend = Backend::File;
        let dir = TestDir::new(&format!("trash-restore-{}", point.replace('.', "-")));
        let (mut d, m) = columnar(&dir, &backend);
        after_lease_ttl(&mut d);
        pass(&d, "gc");
        let listed = d.get("/v1/admin/trash");
        assert_eq!(listed.status, 200, "{}", listed.text());
        let trashed = listed.json["segments"].as_array().unwrap().clone();
        assert!(!trashed.is_empty(), "gc deleted the retired row segments: {}", listed.text());
        assert!(trashed.iter().all(|s| s["in_catalog"] == false && s["state"] == "retired"), "{}", listed.text());
        let batch = trashed[0]["batch_ms"].as_i64().unwrap();
        let in_batch = trashed.iter().filter(|s| s["batch_ms"] == batch).count();

        d.set_failpoints(Some(&format!("{point}=exit")));
        d.restart();
        let url = format!("{}/v1/admin/trash/restore", d.url());
        let died = http_client().post(url).json(&json!({"batch_ms": batch})).send().ok().and_then(|r| r.text().ok());
        assert!(died.is_none(), "the restore must die at {point}: {died:?}");
        let status = d.wait_for_exit(Duration::from_secs(30)).expect("the daemon exits at the failpoint");
        assert_eq!(status.code(), Some(101), "{status}\n{}", d.log_tail(30));
        d.set_failpoints(None);
        d.restart();
        check_all(&d, &m, &format!("crash at {point}"));
        check_storage(&d, &backend, &format!("recovery after a crash at {point}"));
        let after_crash = d.get("/v1/admin/trash").json;
        let restored_before: usize =
            after_crash["segments"].as_array().unwrap().iter().filter(|s| s["in_catalog"] == true).count();
        assert_eq!(restored_before, usize::from(point == "restore.commit"), "{after_crash}");
        assert!(
            after_crash["segments"].as_array().unwrap().iter().all(|s| s["copies"][0]["present"] == true),
            "the trash is intact: {after_crash}"
        );

        let r = d.post_json("/v1/admin/trash/restore", &json!({"batch_ms": batch}));
        assert_eq!(r.status, 200, "{}", r.text());
        let outcomes: Vec<&str> =
            r.json["results"].as_array().unwrap().iter().map(|o| o["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes.len(), in_batch, "{}", r.text());
        assert_eq!(outcomes.iter().filter(|o| **o == "in_catalog").count(), restored_before, "{}", r.text());
        assert!(outcomes.iter().all(|o| *o == "restored" || *o == "in_catalog"), "{}", r.text());
        check_all(&d, &m, &format!("restore after a crash at {point}"));
        check_storage(&d, &backend, &format!("restore after a crash at {point}"));
        let bad = d.post_json("/v1/admin/trash/restore", &json!({"batch_ms": batch + 1}));
        assert_eq!(bad.status, 404, "{}", bad.text());
        d.restart();
        check_all(&d, &m, "restart after restore");
        check_storage(&d, &backend, "restart after restore");
        // Restored segments are live: gc leaves them alone.
        after_lease_ttl(&mut d);
        pass(&d, "gc");
        let last = d.get("/v1/admin/trash").json;
        assert!(last["segments"].as_array().unwrap().iter().all(|s| s["in_catalog"] == true), "{last}");
        check_all(&d, &m, "gc after restore");
    }
}
