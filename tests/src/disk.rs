//! The catalog/storage agreement checks: the set of segment files (`*.rows`, `*.parquet`) under `DATA_DIR/hot`
//! equals the set of hot copies (live and dropped) the catalog lists across all projects, and each file's length
//! equals its catalog `bytes`; likewise the cold tier's objects under `segments/` and the catalog's cold copies.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::daemon::Daemon;

/// `hot/<project>/<file>` -> length, for every segment file (`*.rows`, `*.parquet`) under `data_dir/hot`.
pub fn hot_files(data_dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    walk(data_dir, &data_dir.join("hot"), &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rows" || e == "parquet") {
            let rel = path.strip_prefix(root).unwrap();
            let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            out.insert(rel, meta.len());
        }
    }
}

/// Every segment of every project, retired ones (replaced, not yet deleted) and side segments of removed
/// duplicates included: project -> (generations read, segments).
pub fn catalog(daemon: &Daemon) -> BTreeMap<String, (Value, Vec<Value>)> {
    daemon
        .projects()
        .into_iter()
        .map(|p| {
            let (mut generations, mut segs) = (Vec::new(), Vec::new());
            for which in ["include_retired=true", "duplicates=true"] {
                let s = daemon.get(&format!("/v1/catalog/segments?project={p}&{which}")).json;
                segs.extend(s["segments"].as_array().unwrap_or_else(|| panic!("segments of {p}: {s}")).iter().cloned());
                generations.push(s["generation"].clone());
            }
            (p, (Value::Array(generations), segs))
        })
        .collect()
}

/// Checks the catalog against the hot directory. The catalog is read before and after listing the files and the
/// comparison is retried while any generation moved in between (background sealing may commit at any time).
pub fn check_catalog_matches_disk(daemon: &Daemon) -> Result<(), String> {
    let mut last_err = String::new();
    for _attempt in 0..20 {
        let before = catalog(daemon);
        let files = hot_files(daemon.data_dir());
        let after = catalog(daemon);
        let gens = |c: &BTreeMap<String, (Value, Vec<Value>)>| -> Vec<(String, Value)> {
            c.iter().map(|(p, (g, _))| (p.clone(), g.clone())).collect()
        };
        if gens(&before) != gens(&after) {
            last_err = "catalog kept changing while the hot directory was listed".into();
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        }
        let mut errs = String::new();
        let cat = copies(&after, "hot", &mut errs);
        for (loc, bytes) in &cat {
            match files.get(loc) {
                None => {
                    let _ = writeln!(errs, "catalog segment {loc} (bytes {bytes}) has no file under hot/");
                }
                Some(len) if len != bytes => {
                    let _ = writeln!(errs, "{loc}: file is {len} bytes, catalog bytes is {bytes}");
                }
                _ => {}
            }
        }
        for (f, len) in &files {
            if !cat.contains_key(f) {
                let _ = writeln!(errs, "file {f} ({len} bytes) is not in the catalog");
            }
        }
        return if errs.is_empty() { Ok(()) } else { Err(errs) };
    }
    Err(last_err)
}

/// The copies on `tier` (live `locations` and `dropped`) of every listed segment: path -> bytes. A path listed twice
/// is an error.
fn copies(catalog: &BTreeMap<String, (Value, Vec<Value>)>, tier: &str, errs: &mut String) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (p, (_, segs)) in catalog {
        for s in segs {
            let bytes = s["bytes"].as_u64().unwrap_or(u64::MAX);
            let all =
                s["locations"].as_array().into_iter().flatten().chain(s["dropped"].as_array().into_iter().flatten());
            for l in all.filter(|l| l["tier"] == tier) {
                let path = l["path"].as_str().unwrap_or("<no path>").to_string();
                if out.insert(path.clone(), bytes).is_some() {
                    let _ = writeln!(errs, "{tier} copy {path} listed twice (project {p})");
                }
            }
        }
    }
    out
}

/// Checks the catalog's cold copies against `objects` (key -> size, the cold tier's listing under `segments/`,
/// keys relative to the cold prefix): every copy exists with the catalog's size, and no object is unknown.
pub fn check_catalog_matches_cold(daemon: &Daemon, objects: &BTreeMap<String, u64>) -> Result<(), String> {
    let mut errs = String::new();
    let cat = copies(&catalog(daemon), "cold", &mut errs);
    for (key, bytes) in &cat {
        match objects.get(key) {
            None => {
                let _ = writeln!(errs, "catalog cold copy {key} (bytes {bytes}) is not in the cold tier");
            }
            Some(len) if len != bytes => {
                let _ = writeln!(errs, "{key}: object is {len} bytes, catalog bytes is {bytes}");
            }
            _ => {}
        }
    }
    for (key, len) in objects.iter().filter(|(k, _)| k.starts_with("segments/")) {
        if !cat.contains_key(key) {
            let _ = writeln!(errs, "object {key} ({len} bytes) is not in the catalog");
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// `file://` cold tier: key -> size of every object under `root`.
pub fn cold_files(root: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    walk_all(root, root, &mut out);
    out
}

fn walk_all(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk_all(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap();
            let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            out.insert(rel, meta.len());
        }
    }
}
