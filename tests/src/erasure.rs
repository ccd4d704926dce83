//! Proof that a user deletion reached every byte: every file that may hold events (hot segments, the trash of both
//! tiers, the quarantine, the cold `file://` bucket) is decoded with the segment formats' own decoders
//! (`tierd_codecs`), and every cached cold block must belong to a cold copy the catalog still lists live (a block
//! cannot be decoded alone; its name is the xxh3-128 of its object's key).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};
use tierd_codecs::{columnar, rows, SegmentHeader, StoredEvent};

use crate::daemon::Daemon;
use crate::disk::cold_files;

/// The project of a segment file: the component after `hot/` or `segments/` in its path.
fn project_of(rel: &str) -> String {
    let parts: Vec<&str> = rel.split('/').collect();
    let i = parts.iter().position(|p| *p == "hot" || *p == "segments").unwrap_or_else(|| panic!("{rel}: no project"));
    parts[i + 1].to_string()
}

/// Every stored row of every segment file under `data_dir` (hot, trash, quarantine, the embedded cold bucket):
/// (project, file, rows). Trash records (`*.json`) are checked to be records (they hold no rows). Panics on a file it cannot
/// decode.
pub fn stored_rows(data_dir: &Path) -> Vec<(String, String, Vec<StoredEvent>)> {
    let mut out = Vec::new();
    for (rel, _) in cold_files(data_dir) {
        let top = rel.split('/').next().unwrap_or_default();
        if !["hot", "trash", "quarantine", "cold"].contains(&top) {
            continue;
        }
        let bytes = std::fs::read(data_dir.join(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let events = if rel.ends_with(".rows") {
            let (_, header_len) = SegmentHeader::decode(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
            rows::decode_frames(&bytes[header_len..], header_len as u64).unwrap_or_else(|e| panic!("{rel}: {e}"))
        } else if rel.ends_with(".parquet") {
            columnar::decode(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}")).1
        } else if rel.ends_with(".json") && rel.contains("/records/") {
            let record: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert!(record["id"].is_string() && record["min_seq"].is_u64(), "{rel} is a segment record: {record}");
            continue;
        } else {
            panic!("{rel}: a file that may hold events and is neither a segment nor a trash record");
        };
        out.push((project_of(&rel), rel, events));
    }
    out
}

/// Fails with the files that still hold a row of `users` of `project` ingested at or before `max_seq`.
pub fn assert_no_deleted_rows(data_dir: &Path, project: &str, users: &BTreeSet<&str>, max_seq: u64, stage: &str) {
    let mut found = Vec::new();
    let mut files = 0;
    for (p, file, events) in stored_rows(data_dir) {
        files += 1;
        let n = events
            .iter()
            .filter(|e| p == project && users.contains(e.event.distinct_id.as_str()) && e.seq <= max_seq)
            .count();
        if n > 0 {
            found.push(format!("{file}: {n} rows"));
        }
    }
    assert!(files > 0, "{stage}: no file read at all");
    assert!(found.is_empty(), "{stage}: deleted rows still stored in {found:?}");
}

/// Whether some file under `data_dir` holds a row of `user` of `project` at or before `max_seq` (so a test shows
/// the check can fail).
pub fn holds_rows_of(data_dir: &Path, project: &str, user: &str, max_seq: u64) -> Vec<String> {
    stored_rows(data_dir)
        .into_iter()
        .filter(|(p, _, events)| p == project && events.iter().any(|e| e.event.distinct_id == user && e.seq <= max_seq))
        .map(|(_, file, _)| file)
        .collect()
}

/// The cached block files (`cache/<hh>/<object hash>.<block>`) by object hash.
pub fn cached_objects(data_dir: &Path) -> BTreeSet<String> {
    cold_files(&data_dir.join("cache"))
        .into_keys()
        .filter(|k| !k.starts_with("tmp/"))
        .filter_map(|k| k.rsplit('/').next()?.split_once('.').map(|(h, _)| h.to_string()))
        .collect()
}

/// The name the cache gives object `key`'s blocks.
pub fn object_hash(key: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(key.as_bytes()))
}

/// Fails unless every cached block belongs to a live cold copy (of any project) the catalog lists.
pub fn assert_cache_only_live(d: &Daemon, stage: &str) {
    let mut live = BTreeSet::new();
    for p in d.projects() {
        for which in ["", "&duplicates=true"] {
            let s = d.get(&format!("/v1/catalog/segments?project={p}{which}")).json;
            for seg in s["segments"].as_array().unwrap().iter().filter(|s| s["state"] != "retired") {
                for l in seg["locations"].as_array().into_iter().flatten().filter(|l| l["tier"] == "cold") {
                    live.insert(object_hash(l["path"].as_str().unwrap()));
                }
            }
        }
    }
    let cached = cached_objects(d.data_dir());
    let stale: Vec<&String> = cached.difference(&live).collect();
    assert!(stale.is_empty(), "{stage}: cached blocks of objects that are not live cold copies: {stale:?}");
}

/// Runs the deletions pass, then (the clock moved `wait_ms`, past the lease TTL and the grace period) gc, until
/// request `id` is `done` (at most `rounds` rounds); returns the request. The deletions pass goes first so that it
/// marks retired copies for erasure before gc deletes them.
pub fn finish_deletion(d: &mut Daemon, id: &str, wait_ms: u64, rounds: usize) -> Value {
    let pass = |d: &Daemon, pass: &str| {
        let r = d.post_json(&format!("/v1/admin/passes/{pass}/run"), &json!({}));
        assert_eq!(r.status, 200, "pass {pass}: {}", r.text());
        assert_eq!(r.json["errors"], json!([]), "pass {pass}: {}\n{}", r.text(), d.log_tail(30));
    };
    for _ in 0..rounds {
        pass(d, "deletions");
        let r = d.get(&format!("/v1/admin/deletions/{id}"));
        assert_eq!(r.status, 200, "{}", r.text());
        if r.json["state"] == "done" {
            return r.json;
        }
        d.advance_clock(wait_ms);
        pass(d, "gc");
    }
    let r = d.get(&format!("/v1/admin/deletions/{id}"));
    assert_eq!(r.json["state"], "done", "not done after {rounds} rounds: {}\n{}", r.text(), d.log_tail(30));
    r.json
}
