//! The filtered rewrite: one sealed segment replaced by a copy without the rows a [`RowFilter`] matches, through the
//! crash-safe steps of every rewrite. Retention uses it today; user deletions and filtered deletes build on it.
//!
//! What it does with segment `S` and filter `F`:
//!
//! - `F` matches no row of `S` (by its time range, or after reading it): nothing changes.
//! - `F` matches every row (by its time range alone, or after reading it): `S` is retired whole in ONE commit
//!   (`retired.replaced_by` empty), with no output: an empty segment is never written. Garbage collection then
//!   deletes every copy of it, hot and cold, through the trash like any retired segment. Failpoint
//!   `filtered.retire` after the commit.
//! - otherwise: the rows are read as a stream and verified (through the rewriter's source: the hot copy, else the
//!   cold one, through the budgeted store), once to count the matches, then again with the matching rows left out
//!   (the streaming rewrite of `super::stream`, within `rewrite.max_memory_bytes`), and the rest written as a new
//!   Parquet segment of the same project, day, role and codec on the hot disk: intent (`filtered.intent`), write + fsync
//!   (`filtered.write`), read back and verify (`filtered.verify`), then ONE commit adds the output, retires `S`
//!   (replaced by the output) and clears the intent (`filtered.commit`), guarded by `S`'s `updated_generation`. A
//!   row segment's remaining rows are deduplicated as re-encoding does (the removed copies go to a side segment when
//!   dedup is lossless), so every Parquet data segment still holds one copy per event; a side segment of removed
//!   duplicates keeps its copies and its role.
//!
//! A failure before the commit rolls the output back at once (and recovery does so after a crash: the intent names
//! it); a failed precondition commits nothing. The rows removed exist afterwards only in the retired input, which
//! gc takes to the trash after leases and the grace period.
//!
//! A cold-only input is read from the cold tier and its output written hot (as every rewrite's output is): the
//! output keeps the input's placement time, so the tiering policy may send it cold again at its next migrate.

use std::sync::Arc;

use tierd_codecs::columnar::{CodecSpec, Lineage, SegmentInfo};
use tierd_codecs::{Coverage, RowFilter, TimeRange};
use tierd_policies::RewriteKind;
use tracing::{info, warn};

use super::output::FinishedOutput;
use super::stream::{Job, OutputPlan, Streamed};
use super::{compression_of, lineage_role, output_location, side_lineage, Rewriter, Steps};
use crate::catalog::{CatalogChange, Format, Retirement, Role, SegmentMeta, SegmentState};
use crate::clock::Stopwatch;
use crate::error::{Result, StoreError};
use crate::layout::SegmentId;

/// The failpoints of a filtered rewrite.
const FILTERED_STEPS: Steps = Steps { intent: "filtered.intent", write: "filtered.write", verify: "filtered.verify" };

crate::labelled_enum! {
    /// What a filtered rewrite did with its segment.
    pub enum FilterAction {
        /// No row matched: nothing changed.
        Unchanged = "unchanged",
        /// Every row matched: retired whole, no output.
        Retired = "retired",
        /// Replaced by an output without the matching rows.
        Rewritten = "rewritten",
    }
}

/// What one filtered rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterOutcome {
    pub segment: SegmentId,
    pub action: FilterAction,
    /// The replacement, when [`FilterAction::Rewritten`].
    pub output: Option<SegmentId>,
    /// Rows (stored copies) of the input.
    pub rows_before: u64,
    /// Rows the filter matched: removed (all of them when retired whole).
    pub rows_removed: u64,
    /// Rows of the output.
    pub rows_after: u64,
    /// Other copies of kept events that the output's dedup removed (row inputs only).
    pub duplicates_removed: u64,
    /// The side segment holding those copies, when dedup is lossless.
    pub duplicates_segment: Option<SegmentId>,
    pub bytes_before: u64,
    /// Bytes of the output (0 when retired whole; the input's when unchanged).
    pub bytes_after: u64,
}

impl Rewriter {
    /// Replaces sealed segment `id` by a copy without the rows `filter` matches (see the module documentation).
    /// `pass` labels the metrics (`retention`, later `deletions`). Fails without changing anything visible if the
    /// segment is not sealed any more (a stale plan) or any step before the commit fails.
    pub fn remove_rows(&self, id: SegmentId, filter: &RowFilter, pass: &'static str) -> Result<FilterOutcome> {
        self.remove_rows_labelled(id, filter, pass, false)
    }

    /// [`Rewriter::remove_rows`] for a user deletion (pass `deletions`): the retired input is marked `erase`
    /// ([`Retirement::erase`]), so that gc erases its copies with the erasure retention instead of keeping them in
    /// the trash for the usual time.
    pub fn erase_rows(&self, id: SegmentId, filter: &RowFilter) -> Result<FilterOutcome> {
        self.remove_rows_labelled(id, filter, "deletions", true)
    }

    fn remove_rows_labelled(
        &self,
        id: SegmentId,
        filter: &RowFilter,
        pass: &'static str,
        erase: bool,
    ) -> Result<FilterOutcome> {
        let started = Stopwatch::start();
        let result = self.remove_rows_inner(id, filter, erase);
        let outcome = if result.is_ok() { "ok" } else { "error" };
        let action = result.as_ref().map_or("error", |o| o.action.label());
        metrics::counter!("tierd_filtered_rewrites_total", "pass" => pass, "action" => action, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("tierd_filtered_rewrite_seconds", "pass" => pass).record(started.elapsed().as_secs_f64());
        if let Ok(o) = &result {
            metrics::counter!("tierd_filtered_rows_removed_total", "pass" => pass).increment(o.rows_removed);
            if o.action != FilterAction::Unchanged {
                metrics::counter!("tierd_filtered_bytes_freed_total", "pass" => pass)
                    .increment(o.bytes_before.saturating_sub(o.bytes_after));
            }
        }
        result
    }

    fn remove_rows_inner(&self, id: SegmentId, filter: &RowFilter, erase: bool) -> Result<FilterOutcome> {
        let snapshot = self.ctx.catalog.snapshot();
        let meta = snapshot.get(&id).cloned().ok_or(StoreError::SegmentNotFound { id })?;
        if meta.state != SegmentState::Sealed {
            return Err(StoreError::StalePlan(format!(
                "segment {id} is {:?}; only a sealed segment is rewritten without rows",
                meta.state
            )));
        }
        let unchanged = |rows_removed: u64| FilterOutcome {
            segment: id,
            action: FilterAction::Unchanged,
            output: None,
            rows_before: meta.rows,
            rows_removed,
            rows_after: meta.rows,
            duplicates_removed: 0,
            duplicates_segment: None,
            bytes_before: meta.bytes,
            bytes_after: meta.bytes,
        };
        let times = (meta.rows > 0).then_some(TimeRange { min_ms: meta.min_time_ms, max_ms: meta.max_time_ms });
        match filter.coverage(times) {
            Coverage::None => return Ok(unchanged(0)),
            Coverage::All => return self.retire_whole(&meta, filter, erase),
            Coverage::Some => {}
        }
        // Read as a stream twice (to count, then to write), within the rewrite's memory like a re-encode of it.
        self.check_memory(RewriteKind::Reencode, &[&meta])?;
        self.acquire_disk(meta.bytes);
        let matched = self.count_matches(&meta, filter)?;
        if matched == 0 {
            return Ok(unchanged(0));
        }
        if matched >= meta.rows {
            return self.retire_whole(&meta, filter, erase);
        }
        self.rewrite_without(&meta, filter, matched, erase)
    }

    /// Every row matches: one commit retires the segment, nothing replaces it.
    fn retire_whole(&self, meta: &Arc<SegmentMeta>, filter: &RowFilter, erase: bool) -> Result<FilterOutcome> {
        let now = self.ctx.clock.now_ms();
        let mut r = (**meta).clone();
        r.state = SegmentState::Retired;
        r.retired = Some(Retirement { at_ms: now, generation: 0, replaced_by: Vec::new(), erase });
        let changes = vec![
            CatalogChange::Expect { id: meta.id, updated_generation: meta.updated_generation },
            CatalogChange::Put(r),
        ];
        let generation = self.ctx.catalog.commit(changes)?;
        if let Err(e) = self.ctx.failpoints.hit("filtered.retire") {
            warn!(error = %e, "failpoint after the retirement commit");
        }
        info!(segment = %meta.id, project = %meta.project, rows = meta.rows, bytes = meta.bytes, %filter, generation,
            "segment retired whole: every row matched");
        Ok(FilterOutcome {
            segment: meta.id,
            action: FilterAction::Retired,
            output: None,
            rows_before: meta.rows,
            rows_removed: meta.rows,
            rows_after: 0,
            duplicates_removed: 0,
            duplicates_segment: None,
            bytes_before: meta.bytes,
            bytes_after: 0,
        })
    }

    /// Some rows match: the others become a new segment, through the crash-safe steps, streamed (`super::stream`).
    pub(super) fn rewrite_without(
        &self,
        meta: &Arc<SegmentMeta>,
        filter: &RowFilter,
        rows_removed: u64,
        erase: bool,
    ) -> Result<FilterOutcome> {
        let now = self.ctx.clock.now_ms();
        let output_id = SegmentId::generate(now);
        let spec = CodecSpec { compression: compression_of(meta.codec), ..self.base_spec.clone() };
        let info =
            |id: SegmentId| SegmentInfo { segment_id: id.to_string(), project: meta.project.clone(), day: meta.day };
        // What the output replaces (and whether a user deletion retires it), in its own footer (`crate::rebuild`).
        let lineage = Lineage {
            inputs: vec![meta.id.to_string()],
            role: lineage_role(meta.role),
            erase_inputs: erase,
            created_at_ms: meta.created_at_ms,
        };
        let output = OutputPlan { id: output_id, info: info(output_id), lineage };
        // A row segment may hold several copies of an event: the output, a Parquet data segment, must hold one
        // (queries count a lone Parquet segment's rows without dedup). Parquet data segments already hold one; side
        // segments hold removed copies on purpose and keep them.
        let dedup = meta.role.is_data() && meta.format == Format::Rows;
        let side = self.keep_duplicates_ms.filter(|_| dedup).map(|keep_ms| {
            let side_id = SegmentId::generate(now);
            let role = Role::Duplicates { of: output_id, keep_until_ms: now.saturating_add(keep_ms) };
            (OutputPlan { id: side_id, info: info(side_id), lineage: side_lineage(role, meta.created_at_ms) }, role)
        });
        let inputs = [meta.clone()];
        let streamed = self.merge_streaming(&Job {
            kind: RewriteKind::Reencode,
            inputs: &inputs,
            spec: &spec,
            output: &output,
            side: side.as_ref().map(|(plan, _)| plan),
            dedup,
            filter: Some(filter),
            steps: &FILTERED_STEPS,
        })?;
        let Streamed { intents, output: written, side: side_written, unused, .. } = streamed;
        let location_of = |id: SegmentId| output_location(&meta.project, id);
        let record = |o: &FinishedOutput| SegmentMeta {
            id: o.id,
            project: meta.project.clone(),
            day: meta.day,
            state: SegmentState::Sealed,
            format: Format::Parquet,
            codec: meta.codec,
            locations: vec![location_of(o.id)],
            dropped: Vec::new(),
            min_time_ms: o.meta.time.map_or(0, |t| t.min_ms),
            max_time_ms: o.meta.time.map_or(0, |t| t.max_ms),
            rows: o.summary.rows,
            bytes: o.bytes,
            checksum: o.checksum,
            min_seq: o.summary.seqs.map_or(0, |s| s.0),
            max_seq: o.summary.seqs.map_or(0, |s| s.1),
            created_at_ms: meta.created_at_ms,
            sealed_at_ms: Some(now),
            created_generation: 0,
            updated_generation: 0,
            retired: None,
            blocks: Some(o.blocks.clone()),
            // Keeps the input's placement time: a segment that was cold may be sent cold again at once.
            placed_at_ms: Some(meta.placed_at_ms.unwrap_or(meta.created_at_ms)),
            role: meta.role,
        };
        let rows_after = written.summary.rows;
        let bytes_after = written.bytes;
        let mut outputs = vec![record(&written)];
        let duplicates_segment = match (&side_written, &side) {
            (Some(s), Some((_, role))) => {
                outputs.push(SegmentMeta { role: *role, ..record(s) });
                Some(s.id)
            }
            _ => None,
        };
        let duplicates_removed = meta.rows.saturating_sub(rows_removed).saturating_sub(rows_after);
        let retirement = Retirement { at_ms: now, generation: 0, replaced_by: vec![output_id], erase };
        let generation = self.commit_outputs(outputs, &intents, &unused, &[&**meta], retirement, "filtered.commit")?;
        info!(segment = %meta.id, output = %output_id, project = %meta.project, %filter, rows_before = meta.rows,
            rows_removed, rows_after, bytes_before = meta.bytes, bytes_after, generation,
            "segment rewritten without the matching rows");
        Ok(FilterOutcome {
            segment: meta.id,
            action: FilterAction::Rewritten,
            output: Some(output_id),
            rows_before: meta.rows,
            rows_removed,
            rows_after,
            duplicates_removed,
            duplicates_segment,
            bytes_before: meta.bytes,
            bytes_after,
        })
    }
}
