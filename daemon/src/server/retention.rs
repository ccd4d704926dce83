//! Retention in the daemon: the `retention` pass (plan with `tierd_policies::RetentionPolicy` over one catalog
//! snapshot, then retire or rewrite each segment through the store's filtered rewrite), the read-time cutoff every
//! reader applies before the pass has run, and the `retention` block of `GET /v1/plan`.
//!
//! Every tier: a wholly expired segment is retired in one catalog commit, whatever its copies (gc then deletes the
//! hot file and the cold object through the trash); a straddling segment is read from its hot copy, else its cold
//! copy (whole, through the budgeted store), and its output written hot, from where the tiering policy sends it cold
//! again. Side segments of removed duplicates are planned like data segments.

use tierd_codecs::RowFilter;
use tierd_policies::{RetentionActionKind, RetentionSegment};
use tierd_store::catalog::{Placement, SegmentState};
use tierd_store::rewrite::{FilterAction, Rewriter};
use tierd_store::CatalogSnapshot;
use tracing::{info, warn};

use super::config::Config;
use crate::api::{ActionKind, ActionReport, PassReport, PassRequest, RetentionAnswer};

/// Every segment of the snapshot (of `project` only, if given) as the retention planner sees it: data and side
/// segments, every state (the planner keeps the sealed ones).
pub fn planner_segments(snapshot: &CatalogSnapshot, project: Option<&str>) -> Vec<RetentionSegment> {
    snapshot
        .segments()
        .filter(|m| project.is_none_or(|p| p == m.project))
        .map(|m| RetentionSegment {
            id: m.id.to_string(),
            project: m.project.clone(),
            state: match m.state {
                SegmentState::Open => tierd_policies::SegmentState::Open,
                SegmentState::Sealed => tierd_policies::SegmentState::Sealed,
                SegmentState::Retired => tierd_policies::SegmentState::Retired,
            },
            rows: m.rows,
            bytes: m.bytes,
            min_time_ms: m.min_time_ms,
            max_time_ms: m.max_time_ms,
            placement: match m.placement() {
                Placement::Hot => tierd_policies::Placement::Hot,
                Placement::Cold => tierd_policies::Placement::Cold,
                Placement::Both => tierd_policies::Placement::Both,
            },
            side: !m.role.is_data(),
        })
        .collect()
}

/// The `retention` block of the plan at `now_ms`: `None` when every project keeps its events forever.
pub fn plan_answer(config: &Config, snapshot: &CatalogSnapshot, now_ms: i64) -> Option<RetentionAnswer> {
    if config.retention.is_forever() {
        return None;
    }
    let mut plan = config.retention.plan(now_ms, &planner_segments(snapshot, None), &config.prices());
    let omitted = plan.actions.len().saturating_sub(config.policy.max_plan_actions);
    if omitted > 0 {
        plan.actions.truncate(config.policy.max_plan_actions);
        metrics::counter!("tierd_plan_actions_omitted_total").increment(omitted as u64);
    }
    Some(RetentionAnswer { plan, omitted_actions: omitted as u64 })
}

/// Runs the retention pass over `snapshot` at `now_ms`: every planned action, through `rewriter`'s filtered
/// rewrite (the crash-safe steps), or only reported in a dry run. Rewrites stop once
/// `passes.retention.max_rewrite_bytes_per_pass` is reached (at least one runs); retirements are not limited.
/// The run stops between two actions once `stop` answers true (the daemon is shutting down).
pub fn run(
    rewriter: &Rewriter,
    config: &Config,
    snapshot: &CatalogSnapshot,
    now_ms: i64,
    req: &PassRequest,
    stop: &dyn Fn() -> bool,
    report: &mut PassReport,
) {
    metrics::counter!("tierd_retention_runs_total", "dry_run" => req.dry_run.to_string()).increment(1);
    if config.retention.is_forever() {
        return;
    }
    let plan = config.retention.plan(now_ms, &planner_segments(snapshot, req.project.as_deref()), &config.prices());
    let limit = config.passes.retention.max_rewrite_bytes_per_pass;
    let mut rewrite_bytes = 0u64;
    for action in plan.actions {
        if !req.dry_run && stop() {
            report.errors.push("stopped before its next action: the daemon is shutting down".into());
            return;
        }
        let kind = match action.kind {
            RetentionActionKind::Retire => ActionKind::Retire,
            RetentionActionKind::Rewrite => ActionKind::Prune,
        };
        if kind == ActionKind::Prune {
            if rewrite_bytes > 0 && rewrite_bytes.saturating_add(action.bytes) > limit {
                info!(segment = %action.segment, bytes = action.bytes, limit,
                    "retention rewrite left for the next run (passes.retention.max_rewrite_bytes_per_pass)");
                continue;
            }
            rewrite_bytes = rewrite_bytes.saturating_add(action.bytes);
        }
        metrics::counter!("tierd_retention_actions_planned_total", "kind" => action.kind.label()).increment(1);
        let mut a = ActionReport::planned(kind, vec![action.segment.clone()], action.bytes, action.reason.clone());
        if !req.dry_run {
            let filter = RowFilter::TimeBefore { before_ms: action.cutoff_ms };
            let result = action
                .segment
                .parse()
                .map_err(|e: tierd_store::layout::InvalidSegmentId| e.to_string())
                .and_then(|id| rewriter.remove_rows(id, &filter, "retention").map_err(|e| e.to_string()));
            match result {
                Ok(o) => {
                    let removed = if o.action == FilterAction::Unchanged { "none" } else { o.action.label() };
                    metrics::counter!("tierd_retention_segments_total", "action" => removed).increment(1);
                    metrics::counter!("tierd_retention_events_removed_total", "project" => action.project.clone())
                        .increment(o.rows_removed);
                    let freed = o.bytes_before.saturating_sub(o.bytes_after);
                    metrics::counter!("tierd_retention_bytes_removed_total").increment(freed);
                    info!(segment = %o.segment, output = ?o.output.map(|id| id.to_string()), project = %action.project,
                        action = o.action.label(), rows_removed = o.rows_removed, bytes_freed = freed,
                        cutoff_ms = action.cutoff_ms, "retention carried out");
                    a.outputs = o.output.iter().map(ToString::to_string).collect();
                    a.bytes_after = Some(o.bytes_after);
                    a.duplicates_removed = (o.duplicates_removed > 0).then_some(o.duplicates_removed);
                    a.duplicates_segment = o.duplicates_segment.map(|id| id.to_string());
                }
                Err(e) => {
                    warn!(segment = %action.segment, project = %action.project, error = %e, "retention failed");
                    metrics::counter!("tierd_retention_errors_total").increment(1);
                    report.errors.push(format!("{kind} of {}: {e}", action.segment));
                    continue;
                }
            }
        }
        report.actions.push(a);
    }
}

/// The retention cutoff readers apply to `project` at `now_ms` (`None`: kept forever).
pub fn read_cutoff(config: &Config, project: &str, now_ms: i64) -> Option<i64> {
    config.retention.cutoff_ms(project, now_ms)
}

#[cfg(test)]
mod tests {
    use tierd_policies::{Placement as P, Prices, RetentionPolicy, SegmentFormat, SegmentState as S, SegmentStats};

    use serde_json::json;

    use super::*;
    use crate::api::PlanAnswer;

    const DAY: i64 = 86_400_000;

    fn stats(id: &str, project: &str, max_time_ms: i64) -> SegmentStats {
        SegmentStats {
            id: id.into(),
            project: project.into(),
            day: 0,
            state: S::Sealed,
            format: SegmentFormat::Columnar,
            codec: "lz4".into(),
            rows: 10,
            bytes: 1 << 20,
            created_at_ms: 0,
            max_time_ms,
            placement: P::Hot,
            placed_at_ms: 0,
            heat: 0.0,
            heat_bytes: 0.0,
        }
    }

    #[test]
    fn the_tiering_planner_never_sees_wholly_expired_segments() {
        let retention = RetentionPolicy { default_days: 10, projects: [("keep".into(), 0)].into() };
        let config = Config { retention, ..Config::default() };
        let now = 100 * DAY;
        let all = vec![
            stats("expired", "web", 90 * DAY - 1),
            stats("straddling", "web", 90 * DAY),
            stats("forever", "keep", 0),
        ];
        let ids: Vec<String> =
            super::super::tiering::retained(&config, all.clone(), now).into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["straddling", "forever"]);
        assert_eq!(super::super::tiering::retained(&Config::default(), all, now).len(), 3, "forever by default");
    }

    /// A record as the catalog stores it: `state`, placement (`"hot"`, `"cold"`), role (`"data"`, `"duplicates"`).
    fn record(id: &str, state: &str, tier: &str, role: &str, min: i64, max: i64) -> tierd_store::SegmentMeta {
        let role = match role {
            "data" => json!(null),
            _ => json!({"kind": "duplicates", "of": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "keep_until_ms": 0}),
        };
        let mut v = json!({
            "id": id, "project": "web", "day": 0, "state": state, "format": "parquet", "codec": "zstd-3",
            "locations": [{"tier": tier, "path": format!("x/{id}")}], "min_time_ms": min, "max_time_ms": max,
            "rows": 10, "bytes": 1000, "checksum": 0, "min_seq": 1, "max_seq": 10, "created_at_ms": 0,
        });
        if !role.is_null() {
            v["role"] = role;
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_plan_block_sees_every_tier_and_role_and_is_bounded() {
        use tierd_store::catalog::CatalogChange;
        let dir = tempfile::tempdir().unwrap();
        let catalog = tierd_store::Catalog::open(dir.path()).unwrap();
        let records = [
            record("01ARZ3NDEKTSV4RRFFQ69G5FA0", "sealed", "cold", "data", 0, DAY),
            record("01ARZ3NDEKTSV4RRFFQ69G5FA1", "sealed", "hot", "duplicates", 0, 20 * DAY),
            record("01ARZ3NDEKTSV4RRFFQ69G5FA2", "retired", "hot", "data", 0, DAY),
            record("01ARZ3NDEKTSV4RRFFQ69G5FA3", "sealed", "hot", "data", 20 * DAY, 30 * DAY),
        ];
        catalog.commit(records.into_iter().map(CatalogChange::Put).collect()).unwrap();
        let snapshot = catalog.snapshot();
        let segments = planner_segments(&snapshot, Some("web"));
        assert_eq!(segments.len(), 4);
        assert!(segments[0].placement == tierd_policies::Placement::Cold && !segments[0].side);
        assert!(segments[1].side && segments[2].state == tierd_policies::SegmentState::Retired);
        assert!(planner_segments(&snapshot, Some("other")).is_empty());

        let mut config = Config::default();
        assert_eq!(plan_answer(&config, &snapshot, 40 * DAY), None, "forever: no block");
        config.retention.default_days = 30;
        let all = plan_answer(&config, &snapshot, 40 * DAY).unwrap();
        // Cutoff day 10: the cold data segment is retired, the side segment rewritten; the retired one and the one
        // inside retention are not touched.
        let kinds: Vec<(&str, RetentionActionKind)> =
            all.plan.actions.iter().map(|a| (&a.segment[24..], a.kind)).collect();
        assert_eq!(kinds, [("A0", RetentionActionKind::Retire), ("A1", RetentionActionKind::Rewrite)]);
        config.policy.max_plan_actions = 1;
        let cut = plan_answer(&config, &snapshot, 40 * DAY).unwrap();
        assert_eq!((cut.plan.actions.len(), cut.omitted_actions), (1, 1));
        assert_eq!((cut.plan.segments_retired, cut.plan.segments_rewritten), (1, 1), "the totals cover every action");
    }

    #[test]
    fn the_human_plan_shows_what_retention_removes() {
        let policy = RetentionPolicy { default_days: 30, projects: Default::default() };
        let segment = RetentionSegment {
            id: "01OLD".into(),
            project: "web".into(),
            state: tierd_policies::SegmentState::Sealed,
            rows: 10,
            bytes: 1 << 30,
            min_time_ms: 0,
            max_time_ms: DAY,
            placement: tierd_policies::Placement::Cold,
            side: false,
        };
        let plan = policy.plan(40 * DAY, &[segment], &Prices::default());
        let answer = PlanAnswer { retention: Some(RetentionAnswer { plan, omitted_actions: 0 }), ..Default::default() };
        let text = crate::plan::format_plan(&answer);
        // 1 GiB cold at $0.023 per GiB-month.
        assert!(text.contains("retention: 1 segment(s) to retire, 0 to rewrite"), "{text}");
        assert!(text.contains("saving $0.023000 a month"), "{text}");
        assert!(text.contains("01OLD web: retire (1073741824 B, 10 rows)"), "{text}");
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(json["retention"]["segments_retired"], 1, "{json}");
        assert!(json["actions"].is_array(), "the tiering fields stay at the top level: {json}");
        assert!(serde_json::to_value(PlanAnswer::default()).unwrap().get("retention").is_none());
    }
}
