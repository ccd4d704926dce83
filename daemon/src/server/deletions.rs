//! The `deletions` pass: carries user-deletion requests out in storage. Readers already hide the requests' rows
//! (tombstones, see `tierd_store::deletions`); this pass removes them, so that the tombstones can go.
//!
//! One run: the requests not done (of one project, if asked) are read first, then one catalog snapshot. Per project,
//! their filters are applied together (`RowFilter::AnyOf`) to every live segment of the project, data or side, hot
//! or cold, whose lowest ingest sequence is at or below the highest `max_seq` of the project's requests (a segment
//! holding only later rows cannot hold deleted ones), through the store's filtered rewrite: rewritten without the
//! rows, retired whole when every row goes, left alone when none matches. An open segment is waited for (it is
//! rewritten once sealed). When every such segment of the project has been handled without error, no live segment
//! holds the requests' rows any more and they are `done`: readers stop applying them. Otherwise they are `running`
//! (or `failed`, with the error, when a rewrite failed), and the next run goes on.
//!
//! Passes run one at a time, so no other rewrite races this one; ingest only adds rows with later sequences.
//! Not done here: the retired copies (kept by gc's grace and trash), cached cold blocks of retired objects and side
//! segments' trash entries still hold the bytes until gc and the cache drop them; `done` says only that no live
//! segment holds the rows.

use std::collections::BTreeMap;

use tierd_codecs::{Coverage, RowFilter, TimeRange};
use tierd_store::catalog::SegmentState;
use tierd_store::deletions::{DeletionProgress, DeletionRequest, DeletionState};
use tierd_store::rewrite::{FilterAction, Rewriter};
use tierd_store::{Catalog, Clock, DeletionLog};
use tracing::{info, warn};

use crate::api::{ActionKind, ActionReport, PassReport, PassRequest};

/// What one run did for one project's requests.
#[derive(Debug, Default)]
struct ProjectRun {
    progress: DeletionProgress,
    /// Segments that may hold the rows and were not handled (open, over the byte limit).
    left: u64,
    error: Option<String>,
}

/// Runs the deletions pass (see the module documentation). A dry run lists the segments that would be read.
pub fn run(
    rewriter: &Rewriter,
    log: &DeletionLog,
    catalog: &Catalog,
    clock: &dyn Clock,
    max_rewrite_bytes: u64,
    req: &PassRequest,
    report: &mut PassReport,
) {
    metrics::counter!("tierd_deletion_runs_total", "dry_run" => req.dry_run.to_string()).increment(1);
    let mut by_project: BTreeMap<String, Vec<DeletionRequest>> = BTreeMap::new();
    for r in log.list().into_iter().filter(|r| r.is_active()) {
        if req.project.as_ref().is_none_or(|p| *p == r.project) {
            by_project.entry(r.project.clone()).or_default().push(r);
        }
    }
    if by_project.is_empty() {
        return;
    }
    // After the requests: every row they cover is in this snapshot (or in what replaced it since).
    let snapshot = catalog.snapshot();
    let mut bytes_read = 0u64;
    for (project, requests) in by_project {
        let max_seq = requests.iter().map(|r| r.max_seq).max().unwrap_or(0);
        let filter = RowFilter::AnyOf { filters: requests.iter().map(DeletionRequest::filter).collect() };
        let mut run = ProjectRun::default();
        let mut candidates: Vec<_> = snapshot
            .segments()
            .filter(|m| m.project == project && m.state != SegmentState::Retired && m.rows > 0 && m.min_seq <= max_seq)
            // A filtered delete's window rules out segments by their time range alone (an open one is not waited for).
            .filter(|m| {
                let times = TimeRange { min_ms: m.min_time_ms, max_ms: m.max_time_ms };
                filter.coverage(Some(times)) != Coverage::None
            })
            .cloned()
            .collect();
        candidates.sort_by_key(|m| m.id);
        let started_ms = clock.now_ms();
        for m in candidates {
            if m.state == SegmentState::Open {
                info!(segment = %m.id, project = %project, "deletion waits for an open segment to be sealed");
                run.left += 1;
                continue;
            }
            if bytes_read > 0 && bytes_read.saturating_add(m.bytes) > max_rewrite_bytes {
                info!(segment = %m.id, bytes = m.bytes, limit = max_rewrite_bytes,
                    "deletion left for the next run (passes.deletions.max_rewrite_bytes_per_pass)");
                run.left += 1;
                continue;
            }
            bytes_read = bytes_read.saturating_add(m.bytes);
            let mut a = ActionReport {
                kind: ActionKind::Prune,
                inputs: vec![m.id.to_string()],
                outputs: vec![],
                bytes_before: m.bytes,
                bytes_after: None,
                reason: format!("may hold rows of {} deletion request(s) of project {project}", requests.len()),
                duplicates_removed: None,
                duplicates_segment: None,
            };
            if req.dry_run {
                report.actions.push(a);
                continue;
            }
            match rewriter.remove_rows(m.id, &filter, "deletions") {
                Ok(o) => {
                    metrics::counter!("tierd_deletion_segments_total", "action" => o.action.label()).increment(1);
                    if o.action == FilterAction::Unchanged {
                        continue;
                    }
                    let freed = o.bytes_before.saturating_sub(o.bytes_after);
                    metrics::counter!("tierd_deletion_rows_removed_total").increment(o.rows_removed);
                    metrics::counter!("tierd_deletion_bytes_removed_total").increment(freed);
                    info!(segment = %o.segment, output = ?o.output.map(|id| id.to_string()), project = %project,
                        action = o.action.label(), rows_removed = o.rows_removed, bytes_freed = freed,
                        "deletion carried out");
                    run.progress.rows_removed += o.rows_removed;
                    run.progress.bytes_freed += freed;
                    if o.action == FilterAction::Retired {
                        run.progress.segments_retired += 1;
                        a.kind = ActionKind::Retire;
                    } else {
                        run.progress.segments_rewritten += 1;
                    }
                    a.outputs = o.output.iter().map(ToString::to_string).collect();
                    a.bytes_after = Some(o.bytes_after);
                    a.duplicates_removed = (o.duplicates_removed > 0).then_some(o.duplicates_removed);
                    a.duplicates_segment = o.duplicates_segment.map(|id| id.to_string());
                    report.actions.push(a);
                }
                Err(e) => {
                    warn!(segment = %m.id, project = %project, error = %e, "deletion rewrite failed");
                    metrics::counter!("tierd_deletion_errors_total").increment(1);
                    report.errors.push(format!("deletion in {}: {e}", m.id));
                    run.error = Some(format!("segment {}: {e}", m.id));
                }
            }
        }
        if !req.dry_run {
            record(log, &requests, run, started_ms, clock.now_ms(), report);
        }
    }
}

/// Moves each request of one project to its new state, with this run's counts added to its progress.
fn record(
    log: &DeletionLog,
    requests: &[DeletionRequest],
    run: ProjectRun,
    started_ms: i64,
    now_ms: i64,
    report: &mut PassReport,
) {
    let state = match (&run.error, run.left) {
        (Some(_), _) => DeletionState::Failed,
        (None, 0) => DeletionState::Done,
        (None, _) => DeletionState::Running,
    };
    for r in requests {
        // Counts are of the rewrites the request took part in (shared by the project's requests of one run).
        let mut p = r.progress.clone();
        p.segments_rewritten += run.progress.segments_rewritten;
        p.segments_retired += run.progress.segments_retired;
        p.rows_removed += run.progress.rows_removed;
        p.bytes_freed += run.progress.bytes_freed;
        p.started_at_ms = p.started_at_ms.or(Some(started_ms));
        p.finished_at_ms = (state == DeletionState::Done).then_some(now_ms);
        p.error = run.error.clone();
        match log.update(r.id, state, p) {
            Ok(()) => {
                metrics::counter!("tierd_deletion_requests_total", "state" => state.label()).increment(1);
                info!(deletion = %r.id, project = %r.project, state = state.label(), left = run.left,
                    "deletion request progressed");
            }
            Err(e) => {
                warn!(deletion = %r.id, error = %e, "cannot record a deletion request's progress");
                report.errors.push(format!("deletion request {}: cannot record its progress: {e}", r.id));
            }
        }
    }
}
