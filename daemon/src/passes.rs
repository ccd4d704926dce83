//! Background passes run on demand (`POST /v1/admin/passes/{name}/run`, `tierd pass run NAME`): plan with the pure
//! planners of `policies` over one catalog snapshot, then carry the actions out one by one with `store`'s
//! [`Rewriter`], [`Mover`] (`migrate`, `promote`, and moves by hand) and garbage collector. A dry run plans and reports without touching anything. Passes run one at a
//! time; a failed action is reported and the pass goes on with the next. (Cron schedules come with a later issue.)

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tierd_policies::MoveDirection;
use tierd_policies::{RewriteAction, RewritePlanner, SegmentStats};
use tierd_store::gc::{Gc, GcAction};
use tierd_store::layout::SegmentId;
use tierd_store::moves::{MoveOutcome, MoveTarget, Mover};
use tierd_store::rewrite::{kind_label, Rewriter};
use tierd_store::trash::{RestoreOutcome, Trash, TrashedSegment};
use tierd_store::{Catalog, Clock, StoreContext};
use tracing::{info, warn};

use crate::config::Config;

pub const PASSES: &[&str] = &["reencode", "compact", "recompress", "migrate", "promote", "gc"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassRequest {
    #[serde(default)]
    pub dry_run: bool,
    pub project: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActionReport {
    pub kind: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub bytes_before: u64,
    /// `None` in a dry run (not known before the rewrite).
    pub bytes_after: Option<u64>,
    pub reason: String,
    /// Copies the rewrite's dedup removed (not in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates_removed: Option<u64>,
    /// The side segment keeping them, when dedup is lossless (`rewrite.keep_duplicates_secs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates_segment: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PassReport {
    pub pass: String,
    pub dry_run: bool,
    pub actions: Vec<ActionReport>,
    /// Segments GC keeps, with why (only for `gc`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<ActionReport>,
    pub errors: Vec<String>,
}

/// One segment's outcome in a move by hand (`POST /v1/admin/move`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MoveReport {
    pub segment: String,
    /// `moved`, `unchanged` (already there) or `error`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<tierd_store::catalog::Placement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<tierd_store::catalog::Placement>,
    pub bytes_copied: u64,
    /// How the copy written was checked before the commit: `etag` (the server's MD5 of what it received) or
    /// `read_back`; absent when nothing was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct Passes {
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    rewriter: Rewriter,
    mover: Mover,
    gc: Gc,
    trash: Trash,
    config: Config,
    started_at_ms: i64,
    /// Serializes passes (they run on blocking threads).
    running: std::sync::Mutex<()>,
}

impl Passes {
    /// Runs `f` (a pass, a move) on its own thread at the background CPU priority (`passes.nice`; see
    /// [`crate::background`]) and waits for it without blocking the runtime.
    pub async fn in_background<T: Send + 'static>(
        self: &Arc<Self>,
        name: &str,
        f: impl FnOnce(&Passes) -> T + Send + 'static,
    ) -> T {
        let passes = self.clone();
        crate::background::run(name, self.config.passes.nice, move || f(&passes)).await
    }

    /// Call from inside the tokio runtime: moves and gc drive the object store through the context's handle.
    pub fn new(ctx: StoreContext, config: Config) -> Self {
        let base_spec = tierd_codecs::columnar::CodecSpec {
            row_group_rows: config.rewrite.row_group_rows,
            dictionary: config.rewrite.dictionary,
            ..Default::default()
        };
        let mut rewriter = Rewriter::new(ctx.clone(), base_spec);
        if config.rewrite.keep_duplicates_secs > 0 {
            let keep_ms = i64::try_from(config.rewrite.keep_duplicates_secs).unwrap_or(i64::MAX / 1000) * 1000;
            rewriter = rewriter.keep_duplicates_for(keep_ms);
        }
        // Rewrites read cold inputs too: whole, through the budgeted store (background work), not the query cache.
        let rewriter = rewriter.budgeted().with_source(tierd_store::SegmentSource::new(
            ctx.layout.clone(),
            ctx.cold.clone(),
            Arc::new(tierd_store::BlockCache::disabled()),
            ctx.handle.clone(),
        ));
        let mover = Mover::new(ctx.clone());
        let trash = Trash::new(ctx.clone());
        let gc = Gc::new(ctx.clone(), config.gc_config());
        let (catalog, clock) = (ctx.catalog, ctx.clock);
        let started_at_ms = clock.now_ms();
        Self { catalog, clock, rewriter, mover, gc, trash, config, started_at_ms, running: std::sync::Mutex::new(()) }
    }

    /// What the trash holds (`GET /v1/admin/trash`). Blocking.
    pub fn trash_list(&self) -> Result<Vec<TrashedSegment>, String> {
        self.trash.list().map_err(|e| e.to_string())
    }

    /// Restores segments of trash batch `batch_ms` (all of the batch when `ids` is empty) through the crash-safe
    /// steps of `store::trash`, never at the same time as a pass or a move. Blocking.
    pub fn trash_restore(&self, batch_ms: i64, ids: &[String]) -> Result<Vec<RestoreOutcome>, String> {
        let ids: Vec<SegmentId> = ids
            .iter()
            .map(|s| s.parse::<SegmentId>().map_err(|e| format!("bad segment id {s:?}: {e}")))
            .collect::<Result<_, _>>()?;
        let _running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        self.trash.restore(batch_ms, &ids, self.clock.now_ms()).map_err(|e| e.to_string())
    }

    /// Moves named segments by hand, one after the other, through the same crash-safe steps and IO budget as the
    /// passes (and never at the same time as a pass). Blocking.
    pub fn move_segments(&self, ids: &[String], to: MoveTarget) -> Vec<MoveReport> {
        let _running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter()
            .map(|raw| {
                let failed = |e: String| MoveReport {
                    segment: raw.clone(),
                    outcome: "error",
                    from: None,
                    to: None,
                    bytes_copied: 0,
                    verified_by: None,
                    error: Some(e),
                };
                let id: SegmentId = match raw.parse() {
                    Ok(id) => id,
                    Err(e) => return failed(format!("{e}")),
                };
                match self.mover.execute(id, to) {
                    Ok(o) => move_report(raw, &o),
                    Err(e) => failed(e.to_string()),
                }
            })
            .collect()
    }

    /// Runs pass `name`. Blocking: call from a blocking thread. `Err` only for an unknown pass name.
    pub fn run(&self, name: &str, req: &PassRequest) -> Result<PassReport, String> {
        if !PASSES.contains(&name) {
            return Err(format!("unknown pass {name:?}; passes are {}", PASSES.join(", ")));
        }
        let _running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut report =
            PassReport { pass: name.to_string(), dry_run: req.dry_run, actions: vec![], kept: vec![], errors: vec![] };
        if name == "gc" {
            self.run_gc(req, &mut report);
        } else if name == "migrate" || name == "promote" {
            self.run_moves(name, req, &mut report);
        } else {
            self.run_rewrites(name, req, &mut report);
        }
        info!(
            pass = name,
            dry_run = req.dry_run,
            actions = report.actions.len(),
            errors = report.errors.len(),
            "pass finished"
        );
        metrics::counter!("tierd_passes_total", "pass" => name.to_string(), "dry_run" => req.dry_run.to_string())
            .increment(1);
        Ok(report)
    }

    fn plan(&self, name: &str, req: &PassRequest) -> Vec<RewriteAction> {
        let snapshot = self.catalog.snapshot();
        let stats: Vec<SegmentStats> = snapshot
            .segments()
            .filter(|m| req.project.as_ref().is_none_or(|p| *p == m.project))
            // Side segments of removed duplicates are kept as they are until retention ends.
            .filter(|m| m.role.is_data())
            // Rewrites read their inputs and write their output on the hot disk: a cold-only segment would come back
            // hot and have to migrate again. The default ladder finishes before data goes cold.
            .filter(|m| m.hot_path().is_some())
            .map(|m| m.planner_stats())
            .collect();
        let now = self.clock.now_ms();
        match name {
            "reencode" => self.config.reencode_planner().plan(now, &stats),
            "compact" => self.config.compact_planner().plan(now, &stats),
            "recompress" => self.config.recompress_planner().plan(now, &stats),
            _ => unreachable!("checked by run"),
        }
    }

    fn run_rewrites(&self, name: &str, req: &PassRequest, report: &mut PassReport) {
        for action in self.plan(name, req) {
            let mut a = ActionReport {
                kind: kind_label(action.kind).to_string(),
                inputs: action.inputs.clone(),
                outputs: vec![],
                bytes_before: action.bytes_before,
                bytes_after: None,
                reason: action.reason.clone(),
                duplicates_removed: None,
                duplicates_segment: None,
            };
            if !req.dry_run {
                match self.rewriter.execute(&action) {
                    Ok(o) => {
                        a.outputs = o.outputs.iter().map(ToString::to_string).collect();
                        a.bytes_after = Some(o.bytes_after);
                        a.duplicates_removed = Some(o.duplicates_removed);
                        a.duplicates_segment = o.duplicates_segment.map(|id| id.to_string());
                    }
                    Err(e) => {
                        warn!(pass = name, inputs = ?action.inputs, error = %e, "rewrite failed");
                        report.errors.push(format!("{} of {:?}: {e}", a.kind, action.inputs));
                        continue;
                    }
                }
            }
            report.actions.push(a);
        }
    }

    /// Moves planned by the placement planner over one snapshot, carried out one by one.
    fn run_moves(&self, name: &str, req: &PassRequest, report: &mut PassReport) {
        let snapshot = self.catalog.snapshot();
        let stats: Vec<SegmentStats> = snapshot
            .segments()
            .filter(|m| req.project.as_ref().is_none_or(|p| *p == m.project))
            .map(|m| m.planner_stats())
            .collect();
        let (direction, target) = match name {
            "migrate" => (MoveDirection::ToCold, MoveTarget::Cold),
            _ => (MoveDirection::ToHot, MoveTarget::Hot),
        };
        for action in self.config.placement_planner().plan(self.clock.now_ms(), &stats, direction) {
            let mut a = ActionReport {
                kind: name.to_string(),
                inputs: vec![action.segment.clone()],
                outputs: vec![],
                bytes_before: action.bytes,
                bytes_after: None,
                reason: action.reason.clone(),
                duplicates_removed: None,
                duplicates_segment: None,
            };
            if !req.dry_run {
                let result = action
                    .segment
                    .parse::<SegmentId>()
                    .map_err(|e| e.to_string())
                    .and_then(|id| self.mover.execute(id, target).map_err(|e| e.to_string()));
                match result {
                    Ok(o) => {
                        a.outputs = o.new_location.iter().map(|l| format!("{}:{}", l.tier.label(), l.path)).collect();
                        a.bytes_after = Some(o.bytes_copied);
                    }
                    Err(e) => {
                        report.errors.push(format!("{name} of {}: {e}", action.segment));
                        continue;
                    }
                }
            }
            report.actions.push(a);
        }
    }

    /// GC is node-wide (a copy out of service is garbage whatever its project); `project` only filters the report.
    fn run_gc(&self, req: &PassRequest, report: &mut PassReport) {
        let now = self.clock.now_ms();
        let result =
            if req.dry_run { self.gc.plan(now, self.started_at_ms) } else { self.gc.run(now, self.started_at_ms) };
        match result {
            Ok(decisions) => {
                for d in decisions {
                    let in_project = |p: &String| {
                        d.id.and_then(|id| self.catalog.snapshot().get(&id).map(|m| m.project == *p)).unwrap_or_else(
                            || {
                                d.location.path.starts_with(&format!("hot/{p}/"))
                                    || d.location.path.contains(&format!("segments/{p}/"))
                            },
                        )
                    };
                    if !req.project.as_ref().is_none_or(in_project) {
                        continue;
                    }
                    let kind = match d.action {
                        GcAction::Delete => "delete",
                        GcAction::Keep => "keep",
                        GcAction::Expire => "expire",
                        GcAction::Orphan => "orphan",
                        GcAction::Purge => "purge",
                        GcAction::Missing => "missing",
                    };
                    if d.action == GcAction::Missing {
                        report.errors.push(format!("missing: {} ({})", d.location.path, d.reason));
                    }
                    let a = ActionReport {
                        kind: kind.into(),
                        inputs: vec![d.id.map_or_else(
                            || format!("{}:{}", d.location.tier.label(), d.location.path),
                            |id| id.to_string(),
                        )],
                        outputs: vec![format!("{}:{}", d.location.tier.label(), d.location.path)],
                        bytes_before: d.bytes,
                        bytes_after: if d.action == GcAction::Delete && !req.dry_run { Some(0) } else { None },
                        reason: d.reason,
                        duplicates_removed: None,
                        duplicates_segment: None,
                    };
                    match d.action {
                        GcAction::Keep | GcAction::Missing => report.kept.push(a),
                        _ => report.actions.push(a),
                    }
                }
            }
            Err(e) => report.errors.push(format!("gc: {e}")),
        }
    }
}

fn move_report(raw: &str, o: &MoveOutcome) -> MoveReport {
    MoveReport {
        segment: raw.to_string(),
        outcome: if o.from == o.to { "unchanged" } else { "moved" },
        from: Some(o.from),
        to: Some(o.to),
        bytes_copied: o.bytes_copied,
        verified_by: o.verified_by.map(|m| m.label()),
        error: None,
    }
}
