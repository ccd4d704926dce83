//! Helpers for the store's unit tests: one way to build a [`StoreContext`] over a temporary directory.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::json;
use tierd_codecs::Event;
use tierd_policies::{ReencodePlanner, RewriteAction, RewritePlanner};

use crate::budget::IoBudget;
use crate::catalog::Catalog;
use crate::catalog::{Codec, Format, Role, SegmentMeta, SegmentState};
use crate::clock::ManualClock;
use crate::cold::{ColdConfig, ColdStore, VerifyMode};
use crate::context::StoreContext;
use crate::failpoint::Failpoints;
use crate::layout::{day_start_ms, Layout, Location, SegmentId};

/// 2026-01-01T00:00:00Z.
pub(crate) const T0: i64 = 1_767_225_600_000;

/// The record of an open, empty row segment of `project` on `day` with a hot copy: tests set what they need on top
/// (`SegmentMeta { rows: 10, ..row_meta("p", day, id) }`).
pub(crate) fn row_meta(project: &str, day: i32, id: SegmentId) -> SegmentMeta {
    SegmentMeta {
        id,
        project: project.to_string(),
        day,
        state: SegmentState::Open,
        format: Format::Rows,
        codec: Codec::Lz4,
        locations: vec![Location::hot(Layout::hot_location(project, id))],
        dropped: Vec::new(),
        min_time_ms: day_start_ms(day),
        max_time_ms: day_start_ms(day),
        rows: 0,
        bytes: 0,
        checksum: 0,
        min_seq: 0,
        max_seq: 0,
        created_at_ms: 0,
        sealed_at_ms: None,
        created_generation: 0,
        updated_generation: 0,
        retired: None,
        blocks: None,
        placed_at_ms: None,
        role: Role::Data,
    }
}

/// One runtime for every test of the crate that needs a handle to drive the object store from blocking code.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap())
}

/// A fresh, empty `memory://` cold tier without an IO budget.
pub(crate) fn memory_cold(verify: VerifyMode) -> Arc<ColdStore> {
    let cfg = ColdConfig { url: "memory://".into(), retry_backoff_ms: 1, verify, ..Default::default() };
    Arc::new(ColdStore::open(&cfg, Path::new("/nonexistent"), Arc::new(IoBudget::unlimited()), None).unwrap())
}

/// A context over `layout` and `catalog` on the manual `clock`, with `failpoints` (a `TIERD_FAILPOINTS` spec) and
/// a fresh `memory://` cold tier driven by [`runtime`].
pub(crate) fn context(layout: &Layout, catalog: &Arc<Catalog>, clock: &ManualClock, failpoints: &str) -> StoreContext {
    context_with(layout, catalog, clock, failpoints, memory_cold(VerifyMode::Auto), runtime().handle().clone())
}

/// [`context`] over the given cold tier and runtime.
pub(crate) fn context_with(
    layout: &Layout,
    catalog: &Arc<Catalog>,
    clock: &ManualClock,
    failpoints: &str,
    cold: Arc<ColdStore>,
    handle: tokio::runtime::Handle,
) -> StoreContext {
    let failpoints = Arc::new(Failpoints::parse(failpoints).expect("a valid failpoint spec"));
    StoreContext::new(layout.clone(), catalog.clone(), Arc::new(clock.clone()), failpoints, cold, handle)
}

/// Batch `k` (0, 1, 2) of a small workload with re-sends: ten events of project `p` each, ids (and times) 0..25
/// then 0..5 again across the three batches, so the third batch re-sends five events with changed properties
/// (`k = 2`; the first copies say `k = 0`).
pub(crate) fn resend_batch(k: i64) -> Vec<Event> {
    (0..10i64)
        .map(|i| Event {
            event: "E".into(),
            time_ms: T0 + (k * 10 + i) % 25,
            distinct_id: "u".into(),
            insert_id: format!("{}", (k * 10 + i) % 25),
            properties: json!({"k": k}).as_object().unwrap().clone(),
        })
        .collect()
}

/// The one re-encode action (to `zstd-3`) a catalog of sealed row segments of one project and day plans at `T0`.
pub(crate) fn reencode_action(catalog: &Catalog) -> RewriteAction {
    let stats: Vec<_> = catalog.snapshot().segments().map(|m| m.planner_stats()).collect();
    let planner = ReencodePlanner { output_codec: "zstd-3".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
    let mut actions = planner.plan(T0, &stats);
    assert_eq!(actions.len(), 1, "{actions:?}");
    actions.remove(0)
}

/// A tmpfs mounted at `dir` (made if needed) for a test that needs a file system whose free space only it moves, or
/// a really full one; unmounted when dropped. `None`, said loudly, where mounting is not permitted (the tests run
/// as root in CI: RELIABILITY.md).
pub(crate) struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    pub(crate) fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status();
        if status.is_ok_and(|s| s.success()) {
            return Some(Tmpfs(dir.to_path_buf()));
        }
        eprintln!("\n!!!!! SKIPPED: cannot mount a tmpfs at {} (needs root; CI runs as root) !!!!!\n", dir.display());
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
