//! Background passes run on demand (`POST /v1/admin/passes/{name}/run`, `tierd pass run NAME`): plan with the pure
//! planners of `policies` over one catalog snapshot, then carry the actions out one by one with `store`'s
//! [`Rewriter`] and garbage collector. A dry run plans and reports without touching anything. Passes run one at a
//! time; a failed action is reported and the pass goes on with the next. (Cron schedules come with a later issue.)

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tierd_policies::{RewriteAction, RewritePlanner, SegmentStats};
use tierd_store::gc::GcConfig;
use tierd_store::layout::Layout;
use tierd_store::rewrite::{kind_label, Rewriter};
use tierd_store::{Catalog, Clock, Failpoints};
use tracing::{info, warn};

use crate::config::Config;

pub const PASSES: &[&str] = &["reencode", "compact", "recompress", "gc"];

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

pub struct Passes {
    layout: Layout,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    failpoints: Arc<Failpoints>,
    rewriter: Rewriter,
    config: Config,
    started_at_ms: i64,
    /// Serializes passes (they run on blocking threads).
    running: std::sync::Mutex<()>,
}

impl Passes {
    pub fn new(
        layout: Layout,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        failpoints: Arc<Failpoints>,
        config: Config,
    ) -> Self {
        let base_spec = tierd_codecs::columnar::CodecSpec {
            row_group_rows: config.rewrite.row_group_rows,
            dictionary: config.rewrite.dictionary,
            ..Default::default()
        };
        let mut rewriter =
            Rewriter::new(layout.clone(), catalog.clone(), clock.clone(), failpoints.clone(), base_spec);
        if config.rewrite.keep_duplicates_secs > 0 {
            let keep_ms = i64::try_from(config.rewrite.keep_duplicates_secs).unwrap_or(i64::MAX / 1000) * 1000;
            rewriter = rewriter.keep_duplicates_for(keep_ms);
        }
        let started_at_ms = clock.now_ms();
        Self { layout, catalog, clock, failpoints, rewriter, config, started_at_ms, running: std::sync::Mutex::new(()) }
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

    /// GC is node-wide (a retired segment is garbage whatever its project); `project` only filters the report.
    fn run_gc(&self, req: &PassRequest, report: &mut PassReport) {
        let cfg = GcConfig {
            grace_ms: (self.config.gc.grace_secs as i64).saturating_mul(1000),
            lease_ttl_ms: (self.config.catalog.lease_ttl_secs as i64).saturating_mul(1000),
        };
        let now = self.clock.now_ms();
        let result = if req.dry_run {
            tierd_store::gc::plan(&self.catalog, now, self.started_at_ms, cfg)
        } else {
            tierd_store::gc::run(&self.layout, &self.catalog, &self.failpoints, now, self.started_at_ms, cfg)
        };
        match result {
            Ok(decisions) => {
                for d in decisions {
                    let project_ok = req.project.as_ref().is_none_or(|p| d.location.starts_with(&format!("hot/{p}/")));
                    if !project_ok {
                        continue;
                    }
                    let kind = match (d.delete, d.expire) {
                        (true, _) => "delete",
                        (false, true) => "expire",
                        (false, false) => "keep",
                    };
                    let a = ActionReport {
                        kind: kind.into(),
                        inputs: vec![d.id.to_string()],
                        outputs: vec![],
                        bytes_before: d.bytes,
                        bytes_after: if d.delete && !req.dry_run { Some(0) } else { None },
                        reason: d.reason,
                        duplicates_removed: None,
                        duplicates_segment: None,
                    };
                    if d.delete || d.expire {
                        report.actions.push(a);
                    } else {
                        report.kept.push(a);
                    }
                }
            }
            Err(e) => report.errors.push(format!("gc: {e}")),
        }
    }
}
