//! The catalog/hot-directory agreement check: the set of segment files (`*.rows`, `*.parquet`) under `DATA_DIR/hot` equals the set of
//! catalog segment locations across all projects, and each file's length equals its catalog `bytes`.

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
        let mut cat: BTreeMap<String, u64> = BTreeMap::new();
        let mut errs = String::new();
        for (p, (_, segs)) in &after {
            for s in segs {
                let loc = s["location"].as_str().unwrap_or("<no location>").to_string();
                let bytes = s["bytes"].as_u64().unwrap_or(u64::MAX);
                if cat.insert(loc.clone(), bytes).is_some() {
                    let _ = writeln!(errs, "location {loc} listed twice (project {p})");
                }
            }
        }
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
