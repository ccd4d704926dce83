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
//!
//! Beyond the live segments (`tierd_store::erase`): each run also marks for erasure the retired segments of the
//! project that may hold the rows (gc erases them with `deletions.trash_retention_secs` after leases, readers and the
//! grace period), deletes for good the trash entries that hold a matching row (read back, within the run's byte
//! limit), drops cached blocks of cold objects no record names, and counts what is left. A request is `done` only
//! when nothing is: no live segment, no copy out of service, no trash entry and no cached block that may hold its
//! rows. Until then it stays `running` (its progress says what is left, per tier), and readers keep hiding its rows.

use std::collections::BTreeMap;

use tierd_codecs::{Coverage, RowFilter, TimeRange};
use tierd_store::catalog::SegmentState;
use tierd_store::deletions::{DeletionProgress, DeletionRequest, DeletionState, TierCounts};
use tierd_store::erase::{Eraser, Leftover};
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
    /// The same, per tier of their copies, and their bytes.
    left_tiers: TierCounts,
    left_bytes: u64,
    /// What may still hold the rows outside live segments (`None`: not counted, the live work is not finished).
    leftover: Option<Leftover>,
    error: Option<String>,
}

/// What the pass works with.
pub struct Work<'a> {
    pub rewriter: &'a Rewriter,
    pub eraser: &'a Eraser,
    pub log: &'a DeletionLog,
    pub catalog: &'a Catalog,
    pub clock: &'a dyn Clock,
    /// Most bytes read per run, by rewrites and by trash read-backs each (`passes.deletions.max_rewrite_bytes_per_pass`).
    pub max_rewrite_bytes: u64,
    /// Answers true once the run must stop before its next segment (the daemon is shutting down).
    pub stop: &'a dyn Fn() -> bool,
}

/// Runs the deletions pass (see the module documentation). A dry run lists the segments that would be read.
pub fn run(work: &Work<'_>, req: &PassRequest, report: &mut PassReport) {
    let Work { rewriter, eraser, log, catalog, clock, max_rewrite_bytes, stop } = *work;
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
            let leave = |run: &mut ProjectRun| {
                run.left += 1;
                run.left_bytes += m.bytes;
                run.left_tiers.hot += u64::from(m.hot_path().is_some());
                run.left_tiers.cold += u64::from(m.cold_key().is_some());
            };
            if eraser.is_live_clean(m.id, &requests) {
                continue;
            }
            if m.state == SegmentState::Open {
                info!(segment = %m.id, project = %project, "deletion waits for an open segment to be sealed");
                leave(&mut run);
                continue;
            }
            if !req.dry_run && stop() {
                // Left, so the request is not reported done and nothing beyond live segments is erased yet.
                info!(segment = %m.id, project = %project, "deletion left for the next run: the daemon is shutting down");
                leave(&mut run);
                continue;
            }
            if bytes_read > 0 && bytes_read.saturating_add(m.bytes) > max_rewrite_bytes {
                info!(segment = %m.id, bytes = m.bytes, limit = max_rewrite_bytes,
                    "deletion left for the next run (passes.deletions.max_rewrite_bytes_per_pass)");
                leave(&mut run);
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
            match rewriter.erase_rows(m.id, &filter) {
                Ok(o) => {
                    metrics::counter!("tierd_deletion_segments_total", "action" => o.action.label()).increment(1);
                    // What is live now from this segment holds none of the rows: not read again by the next runs.
                    let clean: Vec<_> = match o.action {
                        FilterAction::Unchanged => vec![m.id],
                        _ => o.output.iter().chain(o.duplicates_segment.iter()).copied().collect(),
                    };
                    eraser.mark_live_clean(&clean, &requests);
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
            if run.left == 0 && run.error.is_none() {
                erase_beyond_live(eraser, &project, &requests, max_seq, &filter, max_rewrite_bytes, &mut run, report);
            }
            record(log, &requests, run, started_ms, clock.now_ms(), report);
            let all = log.list();
            let done: Vec<_> = all.iter().filter(|r| !r.is_active()).map(|r| r.id).collect();
            eraser.forget(&done);
            for state in DeletionState::ALL {
                let n = all.iter().filter(|r| r.state == *state).count();
                metrics::gauge!("tierd_deletion_requests", "state" => state.label()).set(n as f64);
            }
        }
    }
}

/// Once no live segment holds the rows: marks the retired copies that may hold them for erasure, deletes the trash
/// entries holding them, drops cached blocks of deleted objects, and counts what is left (`run.leftover`).
#[allow(clippy::too_many_arguments)]
fn erase_beyond_live(
    eraser: &Eraser,
    project: &str,
    requests: &[DeletionRequest],
    max_seq: u64,
    filter: &RowFilter,
    max_bytes: u64,
    run: &mut ProjectRun,
    report: &mut PassReport,
) {
    let mut fail = |run: &mut ProjectRun, what: &str, e: &dyn std::fmt::Display| {
        warn!(project, error = %e, "{what}");
        metrics::counter!("tierd_deletion_errors_total").increment(1);
        report.errors.push(format!("deletions in {project}: {what}: {e}"));
        run.error = Some(format!("{what}: {e}"));
    };
    match eraser.mark_retired(project, filter, max_seq) {
        Ok(n) => run.progress.retired_marked += n,
        Err(e) => return fail(run, "cannot mark retired copies for erasure", &e),
    }
    match eraser.purge_trash(project, requests, max_bytes) {
        Ok(scan) => {
            run.progress.trash_purged += scan.purged;
            if scan.purged > 0 || scan.checked > 0 {
                info!(
                    project,
                    checked = scan.checked,
                    purged = scan.purged,
                    bytes_read = scan.bytes_read,
                    left = scan.left,
                    "trash entries read back for deleted rows"
                );
            }
        }
        Err(e) => return fail(run, "cannot purge the trash", &e),
    }
    eraser.reconcile_cache();
    match eraser.leftover(project, requests) {
        Ok(left) => run.leftover = Some(left),
        Err(e) => fail(run, "cannot count the copies left", &e),
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
    let erased = run.leftover.as_ref().is_some_and(Leftover::is_empty);
    let state = match (&run.error, run.left, erased) {
        (Some(_), _, _) => DeletionState::Failed,
        (None, 0, true) => DeletionState::Done,
        (None, _, _) => DeletionState::Running,
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
        p.retired_marked += run.progress.retired_marked;
        p.trash_purged += run.progress.trash_purged;
        p.segments_left = run.left_tiers;
        p.copies_left = run.leftover.clone().unwrap_or_default();
        p.bytes_left = run.left_bytes + p.copies_left.bytes;
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
