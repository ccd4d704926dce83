//! Losing the catalog does not lose the store: a node with two projects over several days, re-sends (side
//! segments), a user deletion run to `done`, re-encoded, compacted and recompressed Parquet, one project migrated to
//! the cold tier (`file://`, the embedded default) and an open row segment left by a kill -9, has its sled files
//! damaged (every file truncated; or bytes overwritten in the middle of every file). `tierd serve` then refuses to
//! start, naming `tierd catalog rebuild`; the rebuild writes a new catalog from the files; the restarted daemon
//! answers every query as the model (what was acknowledged, minus the deleted user), reads every segment, has
//! moved nothing live to the trash, and a gc pass afterwards deletes no copy in service.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use tierd_tests::daemon::{tierd_bin, Daemon, TestDir};
use tierd_tests::disk::check_catalog_matches_disk;
use tierd_tests::erasure::finish_deletion;
use tierd_tests::model::{check_answer, Model};
use tierd_tests::mp::FAR_FUTURE_MS;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
const PROJECTS: [&str; 2] = ["web", "app"];
const LEASE_TTL_MS: u64 = 60_000;

/// `app`'s Parquet goes cold at the next migrate; `web` stays hot. Segments two days old recompress to zstd-3.
const CONFIG: &str = "
[catalog]
lease_ttl_secs = 60
[gc]
grace_secs = 0
[rewrite]
keep_duplicates_secs = 864000
[passes.reencode]
min_age_secs = 0
[passes.recompress]
ladder = [{ min_age_secs = 172800, codec = \"zstd-3\" }]
[policy]
min_residency_secs = 0
[[policy.rules]]
name = \"app-cold\"
project = \"app\"
format = \"columnar\"
placement = \"cold\"
force = true
";

fn event(project: &str, time_ms: i64, n: i64, v: i64) -> Value {
    let names = ["view", "click", "buy"];
    json!({"event": names[(n % 3) as usize], "properties": {
        "time": time_ms, "distinct_id": format!("u{}", n % 5), "$insert_id": format!("{project}-{time_ms}-{n}"),
        "v": v,
    }})
}

fn queries(p: &str) -> Vec<Value> {
    let all = |extra: Value| {
        let mut q = json!({"project": p, "from": 0, "to": FAR_FUTURE_MS});
        q.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        q
    };
    vec![
        all(json!({})),
        all(json!({"group_by": "event"})),
        all(json!({"group_by": "properties.distinct_id"})),
        all(json!({"group_by": "properties.v"})),
        all(json!({"where": [{"property": "distinct_id", "op": "eq", "value": "u2"}], "group_by": "event"})),
    ]
}

fn check_answers(d: &Daemon, m: &Model, stage: &str) {
    for p in PROJECTS {
        for q in queries(p) {
            if let Err(e) = check_answer(&q, &d.query(&q), &m.answer(&q)) {
                panic!("{stage}: {e}\n{}", d.log_tail(30));
            }
        }
    }
}

/// Every segment of every project (retired and side segments included).
fn all_segments(d: &Daemon) -> Vec<Value> {
    let mut out = Vec::new();
    for p in PROJECTS {
        for which in ["include_retired=true", "duplicates=true"] {
            let r = d.get(&format!("/v1/catalog/segments?project={p}&{which}"));
            assert_eq!(r.status, 200, "{}", r.text());
            out.extend(r.json["segments"].as_array().unwrap().iter().cloned());
        }
    }
    out
}

/// `tier:path` of every copy in service (locations of segments that are not retired).
fn copies_in_service(segments: &[Value]) -> BTreeSet<String> {
    segments
        .iter()
        .filter(|s| s["state"] != "retired")
        .flat_map(|s| s["locations"].as_array().unwrap().iter())
        .map(|l| format!("{}:{}", l["tier"].as_str().unwrap(), l["path"].as_str().unwrap()))
        .collect()
}

/// Every live segment reads whole, as NDJSON, with as many events as the catalog says.
fn check_segment_reads(d: &Daemon, stage: &str) {
    let segments = all_segments(d);
    let live: Vec<&Value> = segments.iter().filter(|s| s["state"] != "retired").collect();
    assert!(!live.is_empty(), "{stage}: no live segment");
    for s in live {
        let id = s["id"].as_str().unwrap();
        let r = d.get(&format!("/v1/segments/{id}?format=ndjson"));
        assert_eq!(r.status, 200, "{stage}: segment {id}: {}", r.text());
        assert_eq!(r.text().lines().count() as u64, s["rows"].as_u64().unwrap(), "{stage}: segment {id}");
    }
}

/// Segment ids of every file in the trash of both tiers (hot `trash/`, the embedded cold tier's `cold/trash/`).
fn trashed_segment_ids(data_dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in [data_dir.join("trash"), data_dir.join("cold").join("trash")] {
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rows" || x == "parquet") {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    out.insert(name.split('.').next().unwrap().to_string());
                }
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Every file under `catalog/` cut to zero bytes.
    TruncateAll,
    /// 4 KiB (or a quarter of a smaller file) of 0xA5 written over the middle of every file under `catalog/`.
    OverwriteMiddle,
    /// `catalog/` gone: sled would open a new, empty catalog over the segment files.
    Removed,
}

fn damage(catalog: &Path, how: Damage) -> usize {
    use std::os::unix::fs::FileExt;
    if let Damage::Removed = how {
        std::fs::remove_dir_all(catalog).unwrap();
        return 1;
    }
    let mut n = 0;
    let mut stack = vec![catalog.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            let len = f.metadata().unwrap().len();
            match how {
                Damage::TruncateAll => f.set_len(0).unwrap(),
                Damage::OverwriteMiddle if len > 0 => {
                    let n = (len / 4).clamp(1, 4096);
                    f.write_all_at(&vec![0xA5; n as usize], len / 2 - n / 2).unwrap();
                }
                Damage::OverwriteMiddle | Damage::Removed => {}
            }
            f.sync_all().unwrap();
            n += 1;
        }
    }
    n
}

fn catalog_rebuild(data_dir: &Path, config: &Path) -> (bool, String) {
    let out = Command::new(tierd_bin())
        .args(["catalog", "rebuild", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .env_remove("TIERD_TEST_CLOCK_OFFSET_MS")
        .output()
        .expect("run tierd catalog rebuild");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn scenario(name: &str, how: Damage) {
    let dir = TestDir::new(name);
    let mut d = Daemon::start(&dir.data_dir(), Some(CONFIG));
    let now = d.advance_clock(1);
    let mut m = Model::new();
    let first_day = now.div_euclid(DAY) - 5;
    // Three days of both projects, with re-sends (changed: v = 2) of every fourth event.
    for p in PROJECTS {
        let events: Vec<Value> =
            (0..3 * 24).map(|n| event(p, (first_day + n / 24) * DAY + (n % 24) * HOUR + 7, n, 1)).collect();
        d.send(&mut m, p, &events);
        let resent = tierd_tests::gen::resent_with_v2(&events, 4);
        d.send(&mut m, p, &resent);
    }
    d.restart(); // seals
    d.pass_ok("reencode");
    // A user deletion, run to done (gc erases what it retired).
    let r = d.post_json("/v1/admin/deletions", &json!({"project": "web", "distinct_id": "u1"}));
    assert_eq!(r.status, 200, "{}", r.text());
    m.delete_users("web", &["u1"]);
    let id = r.json["id"].as_str().unwrap().to_string();
    finish_deletion(&mut d, &id, LEASE_TTL_MS + 1_000, 4);
    check_answers(&d, &m, "after the deletion");
    // Late events on the same days: a second Parquet segment per day, then compaction, recompression, migration.
    for p in PROJECTS {
        let late: Vec<Value> =
            (0..3 * 6).map(|n| event(p, (first_day + n / 6) * DAY + (n % 6) * HOUR + 11, 100 + n, 3)).collect();
        d.send(&mut m, p, &late);
    }
    d.restart();
    d.pass_ok("reencode");
    let compacted = d.pass_ok("compact");
    assert!(!compacted["actions"].as_array().unwrap().is_empty(), "compaction had work: {compacted}");
    let recompressed = d.pass_ok("recompress");
    assert!(!recompressed["actions"].as_array().unwrap().is_empty(), "recompression had work: {recompressed}");
    let migrated = d.pass_ok("migrate");
    assert!(!migrated["actions"].as_array().unwrap().is_empty(), "migration had work: {migrated}");
    // An open row segment, then kill -9.
    let today: Vec<Value> = (0..5).map(|n| event("web", now - HOUR + n, 200 + n, 4)).collect();
    d.send(&mut m, "web", &today);
    check_answers(&d, &m, "before the damage");
    let before = all_segments(&d);
    let tiers: BTreeSet<String> = before.iter().map(|s| format!("{}/{}", s["tier"], s["state"])).collect();
    assert!(tiers.contains("\"cold\"/\"sealed\"") && tiers.contains("\"hot\"/\"retired\""), "{tiers:?}");
    assert!(before.iter().any(|s| s["state"] == "open"), "an open segment");
    d.kill9();

    let catalog_dir = dir.data_dir().join("catalog");
    assert!(damage(&catalog_dir, how) > 0);
    let Err(failure) = d.try_restart() else { panic!("{how:?}: serve started on a damaged catalog") };
    let wanted = format!("tierd catalog rebuild --data-dir {}", dir.data_dir().display());
    assert!(failure.log_tail.contains(&wanted), "{how:?}: the error names the rebuild:\n{}", failure.log_tail);
    assert!(!failure.log_tail.contains("panicked"), "{how:?}: an error, not a panic:\n{}", failure.log_tail);
    let said = failure.log_tail.lines().find(|l| l.contains(&wanted)).unwrap_or_default();
    println!("{how:?}: tierd serve refused: {said}");

    let config = dir.path().join("data.tierd.toml");
    let (ok, out) = catalog_rebuild(&dir.data_dir(), &config);
    assert!(ok, "{how:?}: rebuild failed:\n{out}");
    println!("{how:?}: tierd catalog rebuild said:\n{out}");
    assert!(out.contains("catalog rebuilt"), "{out}");
    let kept: Vec<String> = std::fs::read_dir(dir.data_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("catalog.broken-"))
        .collect();
    // The damaged catalog is kept (a removed one: the empty one serve created and refused).
    assert_eq!(kept.len(), 1, "{kept:?}");
    // A second rebuild refuses: the new catalog opens.
    let (ok, again) = catalog_rebuild(&dir.data_dir(), &config);
    assert!(!ok && again.contains("--force"), "{again}");

    d.restart();
    check_answers(&d, &m, "after the rebuild");
    check_segment_reads(&d, "after the rebuild");
    check_catalog_matches_disk(&d).unwrap_or_else(|e| panic!("{how:?}: after the rebuild: {e}"));
    let after = all_segments(&d);
    let live_ids: BTreeSet<String> =
        after.iter().filter(|s| s["state"] != "retired").map(|s| s["id"].as_str().unwrap().to_string()).collect();
    let trashed = trashed_segment_ids(d.data_dir());
    assert!(live_ids.is_disjoint(&trashed), "live segments in the trash: {:?}", live_ids.intersection(&trashed));
    // Exactly the segments live before the damage are live again (the open one sealed), no superseded one.
    let live_before: BTreeSet<String> =
        before.iter().filter(|s| s["state"] != "retired").map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(live_ids, live_before, "{how:?}: live segments before the damage and after the rebuild");

    // gc, once the restart rule allows: it deletes retired and dropped copies only, and no orphan.
    let in_service = copies_in_service(&after);
    d.advance_clock(LEASE_TTL_MS + 1_000);
    let gc = d.pass_ok("gc");
    for a in gc["actions"].as_array().unwrap() {
        assert_ne!(a["kind"], "orphan", "the rebuild left an object unknown: {a}");
        for out in a["outputs"].as_array().unwrap() {
            assert!(!in_service.contains(out.as_str().unwrap()), "gc deleted a copy in service: {a}");
        }
    }
    assert!(
        gc["actions"].as_array().unwrap().iter().any(|a| a["kind"] == "delete"),
        "superseded copies were found and gc deleted them: {gc}"
    );
    check_answers(&d, &m, "after gc");
    check_segment_reads(&d, "after gc");
    check_catalog_matches_disk(&d).unwrap_or_else(|e| panic!("{how:?}: after gc: {e}"));
    let trashed = trashed_segment_ids(d.data_dir());
    assert!(live_ids.is_disjoint(&trashed), "live segments in the trash after gc");
}

#[test]
fn a_truncated_catalog_is_rebuilt_from_the_segment_files() {
    scenario("rebuild-truncated", Damage::TruncateAll);
}

#[test]
fn a_lost_catalog_directory_is_refused_then_rebuilt_from_the_segment_files() {
    scenario("rebuild-removed", Damage::Removed);
}

#[test]
fn a_catalog_garbled_in_the_middle_is_rebuilt_from_the_segment_files() {
    scenario("rebuild-garbled", Damage::OverwriteMiddle);
}
