//! The tiering planner's inputs as the daemon gathers them, and its metrics: one place that turns a catalog snapshot
//! and the hot disk into `TieringPolicy::plan`'s arguments, so that the passes, `GET /v1/plan` and the offline
//! `tierd plan` see the same catalog the same way.
//!
//! Which pass carries out which prescription: `Move` actions to the cold tier (a hot copy goes away, or a cold copy
//! appears) run in the migrate pass, `Move` actions to the hot disk in the promote pass, both through the crash-safe
//! `Mover`; `Recompress` actions in the recompress pass (a codec chosen by a rule replaces the ladder's for the
//! segments that rule matches); `Compact` actions in the compact pass (the rule's target replaces
//! `passes.compact.target_bytes` for the segments it matches). Every pass plans from its own snapshot.

use std::path::Path;

use tierd_policies::tiering::is_to_hot;
use tierd_policies::{Capacity, Placement, SegmentStats, TieringAction, TieringActionKind, TieringPlan};
use tierd_store::{CatalogSnapshot, HeatTracker};

use super::config::Config;
use crate::api::PlanAnswer;

/// Every data segment of the snapshot (of `project` only, if given) as the planners see it. Side segments of
/// removed duplicates are kept as they are until their retention ends, so they are left out. Read heat as of
/// `now_ms` is filled from `heat` (none: every segment looks unread).
pub fn planner_stats(
    snapshot: &CatalogSnapshot,
    project: Option<&str>,
    heat: Option<&HeatTracker>,
    now_ms: i64,
) -> Vec<SegmentStats> {
    let mut stats: Vec<SegmentStats> = snapshot
        .segments()
        .filter(|m| project.is_none_or(|p| p == m.project))
        .filter(|m| m.role.is_data())
        .map(|m| m.planner_stats())
        .collect();
    if let Some(heat) = heat {
        heat.annotate(&mut stats, now_ms);
    }
    stats
}

/// `stats` without the segments wholly past their project's retention (`[retention]`): those are the retention
/// pass's to retire, and moving, recompressing or compacting them would pay for bytes about to be deleted.
pub fn retained(config: &Config, mut stats: Vec<SegmentStats>, now_ms: i64) -> Vec<SegmentStats> {
    stats.retain(|s| config.retention.cutoff_ms(&s.project, now_ms).is_none_or(|c| s.rows == 0 || s.max_time_ms >= c));
    stats
}

/// The hot disk's capacity: `hot.max_bytes` against the bytes the catalog holds on it, when set; else the size of
/// the file system under the hot directory against what is used on it (by anything: a full disk is full). Unknown
/// (0) when the file system cannot be asked.
pub fn hot_capacity(config: &Config, hot_dir: &Path, snapshot: &CatalogSnapshot) -> Capacity {
    if config.hot.max_bytes > 0 {
        return Capacity { hot_bytes_capacity: config.hot.max_bytes, hot_bytes_used: snapshot.hot_bytes() };
    }
    match (fs4::total_space(hot_dir), fs4::available_space(hot_dir)) {
        (Ok(total), Ok(free)) => Capacity { hot_bytes_capacity: total, hot_bytes_used: total.saturating_sub(free) },
        _ => Capacity::default(),
    }
}

/// The plan at `now_ms` over `snapshot` (with read heat from `heat`), as answered ([`answer`]), with the projected monthly cost by tier published as gauges.
pub fn plan(
    config: &Config,
    hot_dir: &Path,
    snapshot: &CatalogSnapshot,
    heat: Option<&HeatTracker>,
    now_ms: i64,
) -> PlanAnswer {
    let stats = retained(config, planner_stats(snapshot, None, heat, now_ms), now_ms);
    let capacity = hot_capacity(config, hot_dir, snapshot);
    let plan = config.tiering_policy().plan(now_ms, &stats, &config.prices(), &capacity);
    publish_costs(&plan);
    PlanAnswer {
        retention: super::retention::plan_answer(config, snapshot, now_ms),
        ..answer(plan, config.policy.max_plan_actions)
    }
}

/// The plan as answered: at most `max_actions` actions listed (in the planner's order), the rest counted in
/// `omitted_actions` and `tierd_plan_actions_omitted_total`; the totals still cover every action.
pub fn answer(mut plan: TieringPlan, max_actions: usize) -> PlanAnswer {
    let omitted = plan.actions.len().saturating_sub(max_actions);
    if omitted > 0 {
        plan.actions.truncate(max_actions);
        metrics::counter!("tierd_plan_actions_omitted_total").increment(omitted as u64);
    }
    PlanAnswer { plan, omitted_actions: omitted as u64, retention: None }
}

/// `tierd_cost_monthly_usd{tier}`: the projected bill after the plan.
pub fn publish_costs(plan: &TieringPlan) {
    for tier in ["hot", "cold"] {
        let after = plan.by_tier.get(tier).map_or(0.0, |t| t.monthly_after);
        metrics::gauge!("tierd_cost_monthly_usd", "tier" => tier).set(after);
    }
}

/// Which pass carries out an action: `migrate`, `promote`, `recompress` or `compact`. `from` is the segment's
/// placement when planned.
pub fn pass_of(action: &TieringAction, from: Placement) -> &'static str {
    match action.kind {
        TieringActionKind::Move { to } if is_to_hot(from, to) => "promote",
        TieringActionKind::Move { .. } => "migrate",
        TieringActionKind::Recompress { .. } => "recompress",
        TieringActionKind::Compact { .. } => "compact",
    }
}

/// `tierd_policy_actions_planned_total{rule,kind}`, counted by the pass that will carry the action out.
pub fn count_planned(action: &TieringAction) {
    metrics::counter!("tierd_policy_actions_planned_total", "rule" => action.rule.clone(), "kind" => action.kind.label())
        .increment(1);
}

/// `tierd_policy_actions_executed_total{rule,kind,outcome}`, and for a move that saves, its monthly saving added to
/// `tierd_cost_savings_usd_total`. That one is a gauge holding a running sum (dollars are not whole numbers, and
/// `metrics` counters count integers); moves that cost more, such as forced promotions, are not subtracted.
pub fn count_executed(action: &TieringAction, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!(
        "tierd_policy_actions_executed_total",
        "rule" => action.rule.clone(),
        "kind" => action.kind.label(),
        "outcome" => outcome
    )
    .increment(1);
    if ok && matches!(action.kind, TieringActionKind::Move { .. }) && action.monthly_cost_delta < 0.0 {
        metrics::gauge!("tierd_cost_savings_usd_total").increment(-action.monthly_cost_delta);
    }
}

/// The store's placement for the policies' one.
pub fn store_placement(p: Placement) -> tierd_store::catalog::Placement {
    match p {
        Placement::Hot => tierd_store::catalog::Placement::Hot,
        Placement::Cold => tierd_store::catalog::Placement::Cold,
        Placement::Both => tierd_store::catalog::Placement::Both,
    }
}
