//! Background passes, run on their cron schedules ([`super::schedule`]) or by hand (`POST
//! /v1/admin/passes/{name}/run`, `tierd pass run NAME`): plan with the pure
//! planners of `policies` over one catalog snapshot, then carry the actions out one by one with `store`'s
//! [`Rewriter`], [`Mover`] (`migrate`, `promote`, and moves by hand) and garbage collector. A dry run plans and
//! reports without touching anything. Passes run one at a time; a failed action is reported and the pass goes on
//! with the next. Also the trash's listing and restores, which must not
//! run at the same time as a pass. Reports are the types of [`crate::api`]; errors are [`ServerError`]s.

use std::sync::Arc;

use std::collections::{BTreeMap, HashMap};

use tierd_policies::{
    Capacity, Placement as Planned, RewriteAction, RewriteKind, RewritePlanner, SegmentStats, TieringAction,
    TieringActionKind, TieringPlan,
};
use tierd_store::catalog::Placement;
use tierd_store::erase::Eraser;
use tierd_store::gc::{Gc, GcAction};
use tierd_store::layout::{Layout, SegmentId};
use tierd_store::moves::{MoveOutcome, Mover, ReadAhead};
use tierd_store::rewrite::Rewriter;
use tierd_store::trash::{RestoreOutcome, Trash, TrashedSegment};
use tierd_store::{Catalog, Clock, StoreContext};
use tracing::{info, warn};

use super::config::Config;
use super::error::ServerError;
use super::tiering;
use crate::api::{ActionKind, ActionReport, MoveAnswer, MoveReport, MoveStatus, PassName, PassReport, PassRequest};

pub struct Passes {
    catalog: Arc<Catalog>,
    layout: Layout,
    clock: Arc<dyn Clock>,
    rewriter: Rewriter,
    mover: Mover,
    gc: Gc,
    trash: Trash,
    config: Config,
    started_at_ms: i64,
    /// Serializes passes (they run on blocking threads); shared with the [`Passes`] a config reload builds, so
    /// that a pass running with the old settings and one with the new never overlap.
    running: Arc<std::sync::Mutex<()>>,
    /// Read heat for the planners' input (`SegmentStats::heat`); none: every segment looks unread.
    heat: Option<Arc<tierd_store::HeatTracker>>,
    /// The deletion requests the `deletions` pass carries out; none: the pass has nothing to do.
    deletions: Option<Arc<tierd_store::DeletionLog>>,
    /// The queries' cold cache: gc drops the blocks of the objects it deletes.
    cache: Option<Arc<tierd_store::BlockCache>>,
    /// The erasure of deleted rows beyond live segments (shared across reloads: it remembers clean trash entries).
    eraser: Arc<Eraser>,
    /// Bad copies waiting to be replaced (see `tierd_store::repair`), carried out by the migrate and promote passes.
    repairs: Arc<tierd_store::repair::RepairQueue>,
    /// Cancelled when the daemon shuts down: a long run stops between actions (each action is crash-safe, so what
    /// is left is simply the next run's) instead of holding the shutdown up.
    stopping: tokio_util::sync::CancellationToken,
}

impl Passes {
    /// Runs `f` (a pass, a move) on its own thread at the background CPU priority (`passes.nice`; see
    /// [`super::background`]) and waits for it without blocking the runtime; a panic in `f` is an error.
    pub async fn in_background<T: Send + 'static>(
        self: &Arc<Self>,
        name: &str,
        f: impl FnOnce(&Passes) -> T + Send + 'static,
    ) -> Result<T, ServerError> {
        let passes = self.clone();
        super::background::run(name, self.config.passes.nice, move || f(&passes)).await
    }

    /// Call from inside the tokio runtime: moves and gc drive the object store through the context's handle.
    pub fn new(ctx: StoreContext, config: Config, cache: Option<Arc<tierd_store::BlockCache>>) -> Self {
        let base_spec = tierd_codecs::columnar::CodecSpec {
            row_group_rows: config.rewrite.row_group_rows,
            dictionary: config.rewrite.dictionary,
            max_property_columns: config.rewrite.max_property_columns,
            ..Default::default()
        };
        let mut rewriter = Rewriter::new(ctx.clone(), base_spec);
        if config.rewrite.keep_duplicates_secs > 0 {
            let keep_ms = i64::try_from(config.rewrite.keep_duplicates_secs).unwrap_or(i64::MAX / 1000) * 1000;
            rewriter = rewriter.keep_duplicates_for(keep_ms);
        }
        // Rewrites read cold inputs too: whole, through the budgeted store (background work), not the query cache.
        let rewriter = rewriter
            .budgeted()
            .with_max_memory(config.rewrite.max_memory_bytes)
            .with_encode_threads(config.rewrite.threads)
            .with_source(
                tierd_store::SegmentSource::new(
                    ctx.layout.clone(),
                    ctx.cold.clone(),
                    Arc::new(tierd_store::BlockCache::disabled()),
                    ctx.handle.clone(),
                )
                .with_repairs(ctx.repairs.clone()),
            );
        let mover = Mover::new(ctx.clone());
        let trash = Trash::new(ctx.clone());
        let mut gc = Gc::new(ctx.clone(), config.gc_config());
        if let Some(cache) = &cache {
            gc = gc.with_cache(cache.clone());
        }
        let eraser = Arc::new(Eraser::new(ctx.clone(), cache.clone()));
        let repairs = ctx.repairs.clone();
        let (catalog, clock, layout) = (ctx.catalog, ctx.clock, ctx.layout);
        let started_at_ms = clock.now_ms();
        Self {
            catalog,
            layout,
            clock,
            rewriter,
            mover,
            gc,
            trash,
            config,
            started_at_ms,
            running: Arc::new(std::sync::Mutex::new(())),
            heat: None,
            deletions: None,
            cache,
            eraser,
            repairs,
            stopping: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Stops runs between actions once `token` is cancelled (the daemon's shutdown).
    pub fn with_stopping(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.stopping = token;
        self
    }

    /// Whether a run must stop before its next action: the daemon is shutting down (an error of the run), or the run
    /// is past its `deadline` (ms; `passes.max_run_secs` of a scheduled run: the rest is deferred, not failed). Says
    /// so in the report.
    fn stop_now(&self, report: &mut PassReport, deadline: Option<i64>) -> bool {
        if self.stopping.is_cancelled() {
            report.errors.push("stopped before its next action: the daemon is shutting down".into());
            return true;
        }
        // At least one action per run, however slow: a run cut before its first action would never get anywhere.
        let attempted = !report.actions.is_empty() || !report.errors.is_empty();
        if attempted && deadline.is_some_and(|d| self.clock.now_ms() >= d) {
            let done = report.actions.len();
            report.deferred = Some(format!(
                "stopped after {done} action(s), at passes.max_run_secs = {}: the rest is left for the next run, so \
                 that other passes get their turn",
                self.config.passes.max_run_secs
            ));
            metrics::counter!("tierd_pass_runs_cut_total", "pass" => report.pass.label()).increment(1);
            return true;
        }
        false
    }

    /// Gives the planners the read heat `heat` tracks.
    pub fn with_heat(mut self, heat: Option<Arc<tierd_store::HeatTracker>>) -> Self {
        self.heat = heat;
        self
    }

    /// Gives the `deletions` pass the requests to carry out.
    pub fn with_deletions(mut self, deletions: Option<Arc<tierd_store::DeletionLog>>) -> Self {
        self.deletions = deletions;
        self
    }

    /// The passes with the settings of a reloaded `config` (see [`super::reload`]): same start time (gc's
    /// protection of what predates the daemon), same lock and heat, so runs of the old and the new never overlap.
    pub fn reconfigured(&self, ctx: StoreContext, config: Config) -> Self {
        let mut passes = Self::new(ctx, config, self.cache.clone())
            .with_heat(self.heat.clone())
            .with_deletions(self.deletions.clone());
        passes.started_at_ms = self.started_at_ms;
        passes.eraser = self.eraser.clone();
        passes.running = self.running.clone();
        passes.stopping = self.stopping.clone();
        passes
    }

    /// The configuration these passes run with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the trash holds (`GET /v1/admin/trash`). Blocking.
    pub fn trash_list(&self) -> Result<Vec<TrashedSegment>, ServerError> {
        Ok(self.trash.list()?)
    }

    /// Restores segments of trash batch `batch_ms` (all of the batch when `ids` is empty) through the crash-safe
    /// steps of `store::trash`, never at the same time as a pass or a move. Blocking.
    pub fn trash_restore(&self, batch_ms: i64, ids: &[SegmentId]) -> Result<Vec<RestoreOutcome>, ServerError> {
        let _running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.trash.restore(batch_ms, ids, self.clock.now_ms())?)
    }

    /// Moves named segments by hand, one after the other, through the same crash-safe steps and IO budget as the
    /// passes (and never at the same time as a pass). Blocking.
    pub fn move_segments(&self, ids: &[String], to: Placement) -> MoveAnswer {
        let _running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut read_ahead = self.read_ahead();
        let results = ids
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let next = ids.get(i + 1).and_then(|n| n.parse().ok()).map(|n| (n, to));
                move_report(raw, self.move_one(raw, to, &mut read_ahead, next))
            })
            .collect();
        MoveAnswer { results, to }
    }

    /// The read-ahead of one series of moves (`passes.migrate.read_ahead_bytes`).
    fn read_ahead(&self) -> ReadAhead {
        ReadAhead::new(self.config.passes.migrate.read_ahead_bytes)
    }

    /// One move of a series (`next` is read ahead while it uploads), its error as the report shows it.
    fn move_one(
        &self,
        raw: &str,
        to: Placement,
        read_ahead: &mut ReadAhead,
        next: Option<(SegmentId, Placement)>,
    ) -> Result<MoveOutcome, String> {
        let id: SegmentId = raw.parse().map_err(|e: tierd_store::layout::InvalidSegmentId| e.to_string())?;
        self.mover.execute_then(id, to, read_ahead, next).map_err(|e| e.to_string())
    }

    /// Runs pass `pass` to the end of its plan (a run by hand). Blocking: call from a blocking thread. A failed
    /// action is reported, not an error.
    pub fn run(&self, pass: PassName, req: &PassRequest) -> PassReport {
        self.run_sliced(pass, req, false)
    }

    /// Runs pass `pass` as its schedule does: a rewrite or move run starts no new action after
    /// `passes.max_run_secs` (from when it got its turn), so that one pass's backlog does not hold the others back.
    pub fn run_scheduled(&self, pass: PassName, req: &PassRequest) -> PassReport {
        self.run_sliced(pass, req, true)
    }

    fn run_sliced(&self, pass: PassName, req: &PassRequest, sliced: bool) -> PassReport {
        let _running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let slice_ms = (self.config.passes.max_run_secs as i64).saturating_mul(1000);
        let deadline = (sliced && slice_ms > 0).then(|| self.clock.now_ms().saturating_add(slice_ms));
        let mut report =
            PassReport { pass, dry_run: req.dry_run, actions: vec![], kept: vec![], errors: vec![], deferred: None };
        match pass {
            PassName::Gc => self.run_gc(req, &mut report),
            PassName::Migrate => {
                self.run_repairs(req, &mut report);
                self.run_moves(ActionKind::Migrate, req, deadline, &mut report)
            }
            PassName::Promote => {
                self.run_repairs(req, &mut report);
                self.run_moves(ActionKind::Promote, req, deadline, &mut report)
            }
            PassName::Reencode | PassName::Compact | PassName::Recompress => {
                self.run_rewrites(pass, req, deadline, &mut report)
            }
            PassName::Retention => {
                let snapshot = self.catalog.snapshot();
                let now = self.clock.now_ms();
                let stop = || self.stopping.is_cancelled();
                super::retention::run(&self.rewriter, &self.config, &snapshot, now, req, &stop, &mut report);
            }
            PassName::Deletions => {
                if let Some(log) = &self.deletions {
                    let work = super::deletions::Work {
                        rewriter: &self.rewriter,
                        eraser: &self.eraser,
                        log,
                        catalog: &self.catalog,
                        clock: &*self.clock,
                        max_rewrite_bytes: self.config.passes.deletions.max_rewrite_bytes_per_pass,
                        stop: &|| self.stopping.is_cancelled(),
                    };
                    super::deletions::run(&work, req, &mut report);
                }
            }
        }
        info!(
            pass = pass.label(),
            dry_run = req.dry_run,
            actions = report.actions.len(),
            errors = report.errors.len(),
            deferred = report.deferred.is_some(),
            "pass finished"
        );
        metrics::counter!("tierd_passes_total", "pass" => pass.label(), "dry_run" => req.dry_run.to_string())
            .increment(1);
        report
    }

    /// What the tiering policy would do now, over the whole catalog (`GET /v1/plan`); moves nothing. Blocking.
    pub fn tiering_plan(&self) -> crate::api::PlanAnswer {
        let snapshot = self.catalog.snapshot();
        tiering::plan(&self.config, &self.layout.hot_dir(), &snapshot, self.heat.as_deref(), self.clock.now_ms())
    }

    /// The tiering plan over one snapshot (of `project` only, if given), with the stats it was made from.
    fn tiering_snapshot(&self, req: &PassRequest) -> (TieringPlan, Vec<SegmentStats>, Capacity) {
        // Heat moves to rewrites' outputs at a flush: flush first, or an output written since the last one (by the
        // previous pass, say) would look unread and could be sent cold.
        if let Some(heat) = &self.heat {
            if let Err(e) = heat.flush() {
                warn!(error = %e, "cannot flush read heat before planning; rewrites' outputs may look cooler");
            }
        }
        let snapshot = self.catalog.snapshot();
        let now = self.clock.now_ms();
        let stats = tiering::planner_stats(&snapshot, req.project.as_deref(), self.heat.as_deref(), now);
        let stats = tiering::retained(&self.config, stats, now);
        let capacity = tiering::hot_capacity(&self.config, &self.layout.hot_dir(), &snapshot);
        let plan = self.config.tiering_policy().plan(now, &stats, &self.config.prices(), &capacity);
        // The projected bill is the whole catalog's: a run for one project does not publish its part as the total.
        if req.project.is_none() {
            tiering::publish_costs(&plan);
        }
        (plan, stats, capacity)
    }

    fn plan(&self, pass: PassName, req: &PassRequest) -> Vec<(RewriteAction, Option<TieringAction>)> {
        let (tiering_plan, stats, capacity) = self.tiering_snapshot(req);
        // Rewrites read their inputs and write their output on the hot disk: a cold-only segment would come back
        // hot and have to migrate again. The default ladder finishes before data goes cold.
        let stats: Vec<SegmentStats> = stats.into_iter().filter(|s| s.placement != Planned::Cold).collect();
        let now = self.clock.now_ms();
        let policy = self.config.tiering_policy();
        let by_id: HashMap<&str, &SegmentStats> = stats.iter().map(|s| (s.id.as_str(), s)).collect();
        match pass {
            PassName::Reencode => {
                self.config.reencode_planner().plan(now, &stats).into_iter().map(|a| (a, None)).collect()
            }
            PassName::Recompress => {
                // A codec a rule prescribes replaces the ladder's for the segments the rule matches.
                let ladder: Vec<SegmentStats> =
                    stats.iter().filter(|s| policy.codec_rule(now, s, &capacity).is_none()).cloned().collect();
                let mut out: Vec<_> =
                    self.config.recompress_planner().plan(now, &ladder).into_iter().map(|a| (a, None)).collect();
                for t in tiering_plan.actions {
                    let (TieringActionKind::Recompress { codec }, Some(s)) = (&t.kind, by_id.get(t.segment.as_str()))
                    else {
                        continue;
                    };
                    let action = RewriteAction {
                        kind: RewriteKind::Recompress,
                        project: s.project.clone(),
                        day: s.day,
                        inputs: vec![s.id.clone()],
                        output_codec: codec.clone(),
                        bytes_before: s.bytes,
                        reason: t.reason.clone(),
                    };
                    tiering::count_planned(&t);
                    out.push((action, Some(t)));
                }
                out
            }
            PassName::Compact => {
                // A rule's compaction target replaces `passes.compact.target_bytes` for the segments it matches.
                let default: Vec<SegmentStats> =
                    stats.iter().filter(|s| policy.compact_rule(now, s, &capacity).is_none()).cloned().collect();
                let mut out: Vec<_> =
                    self.config.compact_planner().plan(now, &default).into_iter().map(|a| (a, None)).collect();
                let mut groups: BTreeMap<u64, (Vec<SegmentStats>, HashMap<String, TieringAction>)> = BTreeMap::new();
                for t in tiering_plan.actions {
                    if let (TieringActionKind::Compact { target_bytes }, Some(s)) =
                        (&t.kind, by_id.get(t.segment.as_str()))
                    {
                        let group = groups.entry(*target_bytes).or_default();
                        group.0.push((*s).clone());
                        group.1.insert(t.segment.clone(), t);
                    }
                }
                for (target_bytes, (segments, planned)) in groups {
                    let planner = policy.compact_planner(target_bytes);
                    for a in planner.plan(now, &segments) {
                        let t = a.inputs.iter().find_map(|id| planned.get(id)).cloned();
                        if let Some(t) = &t {
                            tiering::count_planned(t);
                        }
                        out.push((a, t));
                    }
                }
                out
            }
            PassName::Migrate | PassName::Promote | PassName::Gc | PassName::Retention | PassName::Deletions => {
                unreachable!("run calls plan for rewrites only")
            }
        }
    }

    fn run_rewrites(&self, pass: PassName, req: &PassRequest, deadline: Option<i64>, report: &mut PassReport) {
        let max_memory = self.config.rewrite.max_memory_bytes;
        for (action, planned) in self.plan(pass, req) {
            if self.stop_now(report, deadline) {
                return;
            }
            // Split to `rewrite.max_memory_bytes` (the least a streaming rewrite of the inputs needs); a segment that
            // alone exceeds it is reported, not rewritten.
            let snapshot = self.catalog.snapshot();
            let stats: Vec<_> = action
                .inputs
                .iter()
                .filter_map(|id| {
                    id.parse::<SegmentId>().ok().and_then(|id| snapshot.get(&id).map(|m| m.planner_stats()))
                })
                .collect();
            let parts = if stats.len() == action.inputs.len() {
                let refs: Vec<_> = stats.iter().collect();
                let shape = tierd_policies::memory::WriterShape {
                    row_group_rows: self.config.rewrite.row_group_rows as u64,
                    encode_threads: self.config.rewrite.threads as u64,
                };
                let split = tierd_policies::memory::split_to_budget(&action, &refs, max_memory, shape);
                for (id, needs) in &split.refused {
                    metrics::counter!("tierd_rewrites_refused_total", "pass" => pass.label()).increment(1);
                    warn!(pass = pass.label(), segment = %id, needs, max_memory, "rewrite refused: over rewrite.max_memory_bytes");
                    report.errors.push(format!(
                        "{id}: not rewritten: it needs about {needs} bytes of memory, more than \
                         rewrite.max_memory_bytes = {max_memory}"
                    ));
                }
                if split.parts.len() > 1 {
                    info!(
                        pass = pass.label(),
                        inputs = action.inputs.len(),
                        parts = split.parts.len(),
                        max_memory,
                        "rewrite split to fit rewrite.max_memory_bytes"
                    );
                }
                split.parts
            } else {
                // The plan went stale meanwhile: the rewriter says so.
                vec![action]
            };
            for part in parts {
                self.run_rewrite(pass, part, planned.as_ref(), req, report);
            }
        }
    }

    fn run_rewrite(
        &self,
        pass: PassName,
        action: tierd_policies::RewriteAction,
        planned: Option<&TieringAction>,
        req: &PassRequest,
        report: &mut PassReport,
    ) {
        let mut a = ActionReport::planned(
            rewrite_kind(action.kind),
            action.inputs.clone(),
            action.bytes_before,
            action.reason.clone(),
        );
        if !req.dry_run {
            match self.rewriter.execute(&action) {
                Ok(o) => {
                    a.outputs = o.outputs.iter().map(ToString::to_string).collect();
                    a.bytes_after = Some(o.bytes_after);
                    a.duplicates_removed = Some(o.duplicates_removed);
                    a.duplicates_segment = o.duplicates_segment.map(|id| id.to_string());
                }
                Err(e) => {
                    warn!(pass = pass.label(), inputs = ?action.inputs, error = %e, "rewrite failed");
                    report.errors.push(format!("{} of {:?}: {e}", a.kind, action.inputs));
                    if let Some(t) = planned {
                        tiering::count_executed(t, false);
                    }
                    return;
                }
            }
            if let Some(t) = planned {
                tiering::count_executed(t, true);
            }
        }
        report.actions.push(a);
    }

    /// Replaces the copies readers and the scrub found bad, from the segments' other copies (`tierd_store::repair`).
    /// A dry run lists them.
    fn run_repairs(&self, req: &PassRequest, report: &mut PassReport) {
        if req.dry_run {
            for (id, tier) in self.repairs.pending() {
                let reason = format!("its {} copy failed its checksum", tier.label());
                report.actions.push(ActionReport::planned(ActionKind::Repair, vec![id.to_string()], 0, reason));
            }
            return;
        }
        for r in tierd_store::repair::repair(&self.repairs, &self.mover, &self.catalog) {
            let reason = format!("its {} copy failed its checksum", r.tier.label());
            match r.outcome {
                Ok(()) => report.actions.push(ActionReport::planned(
                    ActionKind::Repair,
                    vec![r.segment.to_string()],
                    0,
                    reason,
                )),
                Err(e) => report.errors.push(format!("repair of {}: {e}", r.segment)),
            }
        }
    }

    /// The tiering planner's moves of this pass's direction over one snapshot (to the cold tier for migrate, to the
    /// hot disk for promote), carried out one by one through the crash-safe `Mover`.
    fn run_moves(&self, kind: ActionKind, req: &PassRequest, deadline: Option<i64>, report: &mut PassReport) {
        let (plan, stats, _) = self.tiering_snapshot(req);
        let from: HashMap<&str, Planned> = stats.iter().map(|s| (s.id.as_str(), s.placement)).collect();
        let pass = if kind == ActionKind::Migrate { "migrate" } else { "promote" };
        // This pass's moves, in plan order: each one's successor is read ahead while it uploads.
        let moves: Vec<(TieringAction, Planned)> = plan
            .actions
            .into_iter()
            .filter_map(|action| {
                let TieringActionKind::Move { to } = action.kind else { return None };
                let placement = *from.get(action.segment.as_str())?;
                (tiering::pass_of(&action, placement) == pass).then_some((action, to))
            })
            .collect();
        let mut read_ahead = self.read_ahead();
        for (i, (action, to)) in moves.iter().enumerate() {
            let to = *to;
            if self.stop_now(report, deadline) {
                return;
            }
            let next =
                moves.get(i + 1).and_then(|(a, to)| Some((a.segment.parse().ok()?, tiering::store_placement(*to))));
            tiering::count_planned(action);
            let mut a = ActionReport::planned(kind, vec![action.segment.clone()], action.bytes, action.reason.clone());
            if !req.dry_run {
                match self.move_one(&action.segment, tiering::store_placement(to), &mut read_ahead, next) {
                    Ok(o) => {
                        info!(segment = %action.segment, rule = %action.rule, to = ?to, bytes = o.bytes_copied,
                            monthly_cost_delta = action.monthly_cost_delta, "policy move done");
                        tiering::count_executed(action, true);
                        a.outputs = o.new_location.iter().map(|l| format!("{}:{}", l.tier.label(), l.path)).collect();
                        a.bytes_after = Some(o.bytes_copied);
                    }
                    Err(e) => {
                        warn!(segment = %action.segment, rule = %action.rule, error = %e, "policy move failed");
                        tiering::count_executed(action, false);
                        report.errors.push(format!("{kind} of {}: {e}", action.segment));
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
        let result = if req.dry_run {
            self.gc.plan(now, self.started_at_ms)
        } else {
            self.gc.run_until(now, self.started_at_ms, &|| self.stopping.is_cancelled())
        };
        match result {
            Ok(decisions) => {
                for d in decisions {
                    let in_project = |p: &String| {
                        d.id.and_then(|id| self.catalog.snapshot().get(&id).map(|m| m.project == *p))
                            .unwrap_or_else(|| Layout::project_of(&d.location.path) == Some(p.as_str()))
                    };
                    if !req.project.as_ref().is_none_or(in_project) {
                        continue;
                    }
                    if d.action == GcAction::Missing {
                        report.errors.push(format!("missing: {} ({})", d.location.path, d.reason));
                    }
                    let location = format!("{}:{}", d.location.tier.label(), d.location.path);
                    let input = d.id.map_or_else(|| location.clone(), |id| id.to_string());
                    let a = ActionReport {
                        outputs: vec![location],
                        bytes_after: if matches!(d.action, GcAction::Delete | GcAction::Erase) && !req.dry_run {
                            Some(0)
                        } else {
                            None
                        },
                        ..ActionReport::planned(gc_kind(d.action), vec![input], d.bytes, d.reason)
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

fn move_report(raw: &str, result: Result<MoveOutcome, String>) -> MoveReport {
    match result {
        Ok(o) => MoveReport {
            segment: raw.to_string(),
            outcome: if o.from == o.to { MoveStatus::Unchanged } else { MoveStatus::Moved },
            from: Some(o.from),
            to: Some(o.to),
            bytes_copied: o.bytes_copied,
            verified_by: o.verified_by,
            error: None,
        },
        Err(e) => MoveReport {
            segment: raw.to_string(),
            outcome: MoveStatus::Error,
            from: None,
            to: None,
            bytes_copied: 0,
            verified_by: None,
            error: Some(e),
        },
    }
}

fn rewrite_kind(kind: tierd_policies::RewriteKind) -> ActionKind {
    match kind {
        tierd_policies::RewriteKind::Reencode => ActionKind::Reencode,
        tierd_policies::RewriteKind::Compact => ActionKind::Compact,
        tierd_policies::RewriteKind::Recompress => ActionKind::Recompress,
    }
}

fn gc_kind(action: GcAction) -> ActionKind {
    match action {
        GcAction::Delete => ActionKind::Delete,
        GcAction::Keep => ActionKind::Keep,
        GcAction::Expire => ActionKind::Expire,
        GcAction::Orphan => ActionKind::Orphan,
        GcAction::Purge => ActionKind::Purge,
        GcAction::Erase => ActionKind::Erase,
        GcAction::Missing => ActionKind::Missing,
    }
}
