//! Rewrites: re-encode row segments to Parquet, compact small columnar segments, recompress along the codec ladder.
//!
//! Every rewrite follows the same crash-safe order (see ARCHITECTURE.md):
//!
//! 1. read and verify the inputs (checksums) as sorted streams, spilling sorted runs when they do not fit the memory
//!    budget (`stream`);
//! 2. `rewrite.intent`: record the output's id and location durably in the catalog's `intents`;
//! 3. `rewrite.write`: stream the merge, deduplicated (the copy ingested last wins), into the output file
//!    (`create_new`, never overwriting) row group by row group, then fsync it and its directory;
//! 4. `rewrite.verify`: read the file back from disk, compare every block's checksum and the whole file's with those
//!    computed while writing, and read its footer's row count;
//! 5. `rewrite.commit`: ONE catalog transaction adds the output, retires the inputs and clears the intent.
//!
//! Inputs are deleted only later, by garbage collection, once no lease or in-process reader can still need them
//! and the grace period has passed. A crash before step 5 leaves an intent whose output recovery deletes (it was
//! never committed, so nobody can hold it); a crash after it leaves a normal, committed state.

use std::sync::Arc;

use tierd_codecs::columnar::{CodecSpec, Compression, Lineage, LineageRole, SegmentInfo};
use tierd_policies::{RewriteAction, RewriteKind};
use tracing::{info, warn};

use crate::catalog::{CatalogChange, Codec, Format, Intent, Retirement, Role, SegmentMeta, SegmentState};
use crate::clock::Stopwatch;
use crate::context::StoreContext;
use crate::error::{Result, StoreError};
use crate::layout::{Layout, Location, SegmentId};
use crate::read::SegmentSource;

mod filtered;
#[cfg(test)]
mod filtered_tests;
mod output;
#[cfg(test)]
mod reserve_tests;
mod spill;
mod stream;
#[cfg(test)]
mod stream_tests;
pub use filtered::{FilterAction, FilterOutcome};

/// What one executed rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteOutcome {
    pub inputs: Vec<SegmentId>,
    pub outputs: Vec<SegmentId>,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub rows_before: u64,
    pub rows_after: u64,
    pub duplicates_removed: u64,
    /// The side segment holding the removed copies, when they are kept ([`Rewriter::keep_duplicates_for`]).
    pub duplicates_segment: Option<SegmentId>,
    /// Spill files the rewrite wrote (sorted runs, intermediate merges) because its inputs did not fit its memory
    /// at once; 0 when everything was merged in memory.
    pub spill_files: u64,
}

/// Carries out planned rewrites. One rewrite at a time per instance (the passes run them in sequence).
pub struct Rewriter {
    ctx: StoreContext,
    /// Layout knobs of every columnar output (row group size, dictionary); the compression comes from the action.
    base_spec: CodecSpec,
    /// `Some(ms)`: lossless dedup, the removed copies go to a side segment kept this long. `None`: dropped.
    keep_duplicates_ms: Option<i64>,
    /// Where inputs are read from: hot copies, and cold ones when [`Rewriter::with_source`] gave a cold tier.
    source: SegmentSource,
    /// Whether local-disk bytes read and written by rewrites draw from the node's IO budget (background IO).
    budgeted: bool,
    /// Most memory one rewrite may hold, divided by [`tierd_policies::memory::stream_limits`].
    max_memory_bytes: u64,
    /// Shares of the budget given explicitly ([`Rewriter::with_stream_limits`]) instead of derived from it.
    stream_limits: Option<tierd_policies::memory::StreamLimits>,
    /// Threads each output writer encodes column chunks on (`rewrite.threads`; 1: the rewrite's own thread).
    encode_threads: usize,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewriter").field("base_spec", &self.base_spec).finish_non_exhaustive()
    }
}

/// The columnar compression a catalog codec stands for.
pub fn compression_of(codec: Codec) -> Compression {
    match codec {
        Codec::None => Compression::None,
        Codec::Lz4 => Compression::Lz4,
        Codec::Zstd(level) => Compression::Zstd(level as i32),
    }
}

impl Rewriter {
    /// A rewriter that reads hot copies only ([`Rewriter::with_source`] adds cold ones).
    pub fn new(ctx: StoreContext, base_spec: CodecSpec) -> Self {
        let source = SegmentSource::hot_only(ctx.layout.clone());
        Self {
            ctx,
            base_spec,
            keep_duplicates_ms: None,
            source,
            budgeted: false,
            max_memory_bytes: u64::MAX,
            stream_limits: None,
            encode_threads: 1,
        }
    }

    /// Encodes every output's column chunks on `threads` threads (`rewrite.threads`), started by the thread that
    /// runs the rewrite so that they share its CPU priority; 1 encodes on that thread. The bytes written do not
    /// depend on it; the memory a writer holds does (`tierd_policies::memory::writer_bytes`).
    pub fn with_encode_threads(mut self, threads: usize) -> Self {
        self.encode_threads = threads.max(1);
        self
    }

    /// Paces the rewrite's local-disk reads and writes with the node's IO budget (background work never takes the
    /// disk from ingest and queries faster than `budget.disk_bytes_per_sec`).
    pub fn budgeted(mut self) -> Self {
        self.budgeted = true;
        self
    }

    /// Bounds every rewrite's memory by `bytes` (`rewrite.max_memory_bytes`): rewrites size their sort buffer and
    /// merges within it; one that cannot (an input whose row group alone does not fit) is refused. Planners split
    /// actions to fit first ([`tierd_policies::memory::split_to_budget`]), so this is the guard of last resort.
    pub fn with_max_memory(mut self, bytes: u64) -> Self {
        self.max_memory_bytes = bytes;
        self
    }

    /// Gives streaming rewrites these shares of memory instead of those derived from the budget: small ones make
    /// small inputs spill runs and merge in several levels (tests, measurements).
    pub fn with_stream_limits(mut self, limits: tierd_policies::memory::StreamLimits) -> Self {
        self.stream_limits = Some(limits);
        self
    }

    /// How this rewriter's output writers hold memory (`tierd_policies::memory::writer_bytes`).
    fn writer_shape(&self) -> tierd_policies::memory::WriterShape {
        tierd_policies::memory::WriterShape {
            row_group_rows: self.base_spec.row_group_rows as u64,
            encode_threads: self.encode_threads as u64,
        }
    }

    /// Fails when rewriting `inputs` as `kind` could not stream within the memory allowed (the least it needs,
    /// [`tierd_policies::memory::estimate`], is more), before anything is read.
    fn check_memory(&self, kind: RewriteKind, inputs: &[&SegmentMeta]) -> Result<()> {
        if self.stream_limits.is_some() {
            return Ok(());
        }
        let stats: Vec<_> = inputs.iter().map(|m| m.planner_stats()).collect();
        let refs: Vec<_> = stats.iter().collect();
        let needs = tierd_policies::memory::estimate(kind, &refs, self.writer_shape());
        if needs > self.max_memory_bytes {
            metrics::counter!("tierd_rewrites_refused_total", "pass" => kind_label(kind)).increment(1);
            let ids: Vec<String> = inputs.iter().map(|m| m.id.to_string()).collect();
            return Err(StoreError::RewriteTooLarge(format!(
                "rewriting {} needs at least {needs} bytes of memory, more than rewrite.max_memory_bytes = {}",
                ids.join(", "),
                self.max_memory_bytes
            )));
        }
        Ok(())
    }

    fn acquire_disk(&self, bytes: u64) {
        if self.budgeted {
            self.ctx.budget().acquire_disk_blocking(bytes);
        }
    }

    /// Reads inputs through `source`, so that segments whose only copy is cold can be rewritten too. A rewrite is
    /// background work: give it a source over the budgeted cold store (not [`crate::ColdStore::foreground`]).
    pub fn with_source(mut self, source: SegmentSource) -> Self {
        self.source = source;
        self
    }

    /// Makes dedup lossless: every rewrite that removes copies also writes them to a side segment
    /// ([`Role::Duplicates`]) in the same commit, kept for `keep_ms` before garbage collection retires it.
    pub fn keep_duplicates_for(mut self, keep_ms: i64) -> Self {
        self.keep_duplicates_ms = Some(keep_ms);
        self
    }

    /// Executes one planned action. Fails without changing anything visible if an input is no longer a sealed
    /// segment (the plan went stale) or any step fails; the caller reports the error and goes on.
    pub fn execute(&self, action: &RewriteAction) -> Result<RewriteOutcome> {
        let started = Stopwatch::start();
        let kind = kind_label(action.kind);
        let result = self.execute_inner(action);
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("tierd_rewrites_total", "pass" => kind, "outcome" => outcome).increment(1);
        metrics::histogram!("tierd_rewrite_seconds", "pass" => kind).record(started.elapsed().as_secs_f64());
        if let Ok(o) = &result {
            metrics::counter!("tierd_rewrite_bytes_before_total", "pass" => kind).increment(o.bytes_before);
            metrics::counter!("tierd_rewrite_bytes_after_total", "pass" => kind).increment(o.bytes_after);
            metrics::counter!("tierd_dedup_removed_total", "project" => action.project.clone())
                .increment(o.duplicates_removed);
        }
        result
    }

    fn execute_inner(&self, action: &RewriteAction) -> Result<RewriteOutcome> {
        let codec: Codec = action
            .output_codec
            .parse()
            .map_err(|e: String| StoreError::InvalidQuery(format!("action output codec: {e}")))?;
        let snapshot = self.ctx.catalog.snapshot();
        let mut inputs: Vec<Arc<SegmentMeta>> = Vec::with_capacity(action.inputs.len());
        for id in &action.inputs {
            let id: SegmentId = id.parse().map_err(|e| StoreError::InvalidQuery(format!("{e}")))?;
            let meta = snapshot.get(&id).ok_or(StoreError::SegmentNotFound { id })?;
            if meta.state != SegmentState::Sealed || meta.project != action.project || meta.day != action.day {
                return Err(StoreError::StalePlan(format!(
                    "segment {id} is {:?} of {}/{} now; the plan expected a sealed segment of {}/{}",
                    meta.state, meta.project, meta.day, action.project, action.day
                )));
            }
            inputs.push(meta.clone());
        }
        if inputs.is_empty() {
            return Err(StoreError::StalePlan("an action without inputs".into()));
        }
        self.check_memory(action.kind, &inputs.iter().map(|m| m.as_ref()).collect::<Vec<_>>())?;
        let now = self.ctx.clock.now_ms();
        let output_id = SegmentId::generate(now);
        let info = SegmentInfo { segment_id: output_id.to_string(), project: action.project.clone(), day: action.day };
        let spec = CodecSpec { compression: compression_of(codec), ..self.base_spec.clone() };
        let rows_before: u64 = inputs.iter().map(|m| m.rows).sum();
        let bytes_before: u64 = inputs.iter().map(|m| m.bytes).sum();

        // What the output replaces, in its own footer: the catalog can be rebuilt from the files (`crate::rebuild`).
        let created_at_ms = inputs.iter().map(|m| m.created_at_ms).min().unwrap_or(now);
        let lineage = Lineage {
            inputs: inputs.iter().map(|m| m.id.to_string()).collect(),
            role: LineageRole::Data,
            erase_inputs: false,
            created_at_ms,
        };
        let output = stream::OutputPlan { id: output_id, info, lineage };
        // The side segment of removed copies, when they are kept (written only if there are any).
        let side = self.keep_duplicates_ms.map(|keep_ms| {
            let side_id = SegmentId::generate(now);
            let role = Role::Duplicates { of: output_id, keep_until_ms: now.saturating_add(keep_ms) };
            let info =
                SegmentInfo { segment_id: side_id.to_string(), project: action.project.clone(), day: action.day };
            (stream::OutputPlan { id: side_id, info, lineage: side_lineage(role, created_at_ms) }, role)
        });

        // Before anything is read or recorded: the whole rewrite must fit above the background reserve (the output
        // is estimated at its inputs' size; spills check again).
        self.ctx.check_disk_reserve("rewrite", bytes_before)?;
        // Steps 1 to 4, streaming.
        let single_parquet = inputs.len() == 1 && inputs[0].format == Format::Parquet;
        let streamed = if action.kind == RewriteKind::Recompress && single_parquet {
            self.recompress_streaming(&inputs[0], &spec, &output)?
        } else {
            self.merge_streaming(&stream::Job {
                kind: action.kind,
                inputs: &inputs,
                spec: &spec,
                output: &output,
                side: side.as_ref().map(|(plan, _)| plan),
                dedup: true,
                filter: None,
                steps: &REWRITE_STEPS,
            })?
        };
        let stream::Streamed { intents, output: written, side: side_written, unused, spills } = streamed;
        let rows_after = written.summary.rows;
        let seqs = match written.summary.seqs {
            Some(seqs) => seqs,
            // A recompression copies batches: the sequences are its input's.
            None if single_parquet && rows_after == inputs[0].rows => (inputs[0].min_seq, inputs[0].max_seq),
            None => (0, 0),
        };
        let duplicates_removed = rows_before.saturating_sub(rows_after);

        // Step 5: one transaction swaps the inputs for the output(s). If it fails nothing is rolled back here:
        // whether the transaction reached the disk is unknown, and recovery decides from the catalog (an intent
        // still present means "not committed").
        let location_of = |id: SegmentId| output_location(&action.project, id);
        let record = |o: &output::FinishedOutput, seqs: (u64, u64)| SegmentMeta {
            id: o.id,
            project: action.project.clone(),
            day: action.day,
            state: SegmentState::Sealed,
            format: Format::Parquet,
            codec,
            locations: vec![location_of(o.id)],
            dropped: Vec::new(),
            min_time_ms: o.meta.time.map_or(0, |t| t.min_ms),
            max_time_ms: o.meta.time.map_or(0, |t| t.max_ms),
            rows: o.summary.rows,
            bytes: o.bytes,
            checksum: o.checksum,
            min_seq: seqs.0,
            max_seq: seqs.1,
            created_at_ms,
            sealed_at_ms: Some(now),
            created_generation: 0,
            updated_generation: 0,
            retired: None,
            // Block checksums let reads of either tier fetch and verify only the blocks they need.
            blocks: Some(o.blocks.clone()),
            // Placed on the hot disk now: residency counts from the rewrite, as the planner's model of a plan
            // applied has it (`tiering::apply`), so a promoted segment that is then recompressed or compacted
            // keeps (and restarts) its residency instead of inheriting its inputs' creation time.
            placed_at_ms: Some(now),
            role: Role::Data,
        };
        let bytes_after = written.bytes;
        let mut outputs = vec![record(&written, seqs)];
        let side_info = match (&side_written, &side) {
            (Some(s), Some((_, role))) => {
                outputs.push(SegmentMeta { role: *role, ..record(s, s.summary.seqs.unwrap_or((0, 0))) });
                Some((s.id, s.bytes))
            }
            _ => None,
        };
        let inputs_ref: Vec<&SegmentMeta> = inputs.iter().map(|m| &**m).collect();
        let input_ids: Vec<SegmentId> = inputs.iter().map(|m| m.id).collect();
        let retirement = Retirement { at_ms: now, generation: 0, replaced_by: vec![output_id], erase: false };
        let generation = self.commit_outputs(outputs, &intents, &unused, &inputs_ref, retirement, "rewrite.commit")?;
        let outcome = RewriteOutcome {
            inputs: input_ids,
            outputs: vec![output_id],
            bytes_before,
            bytes_after,
            rows_before,
            rows_after,
            duplicates_removed,
            duplicates_segment: side_info.map(|(id, _)| id),
            spill_files: spills,
        };
        if let Some((side_id, side_bytes)) = side_info {
            metrics::counter!("tierd_dedup_side_segments_total").increment(1);
            metrics::counter!("tierd_dedup_side_bytes_total").increment(side_bytes);
            info!(output = %output_id, duplicates = %side_id, rows = duplicates_removed, "removed copies kept");
        }
        info!(
            kind = kind_label(action.kind),
            output = %output_id,
            inputs = ?outcome.inputs,
            rows_before,
            rows_after,
            bytes_before,
            bytes_after = outcome.bytes_after,
            generation,
            spills,
            "rewrite committed"
        );
        Ok(outcome)
    }

    /// Step 5: one transaction puts `outputs` in service (clearing the `intents` they were written under, in the
    /// same order) and retires `inputs` with `retirement` (when, replaced by what, whether to erase). The inputs must still be what was read: a
    /// concurrent move or rewrite fails the commit as a stale plan, which commits nothing, so the outputs are rolled
    /// back here. Any other failure rolls back nothing: whether the transaction reached the disk is unknown, and
    /// recovery decides from the catalog (an intent still present means "not committed"). `failpoint` is hit after
    /// the commit. Returns the commit's generation.
    fn commit_outputs(
        &self,
        outputs: Vec<SegmentMeta>,
        intents: &[Intent],
        unused: &[Intent],
        inputs: &[&SegmentMeta],
        retirement: Retirement,
        failpoint: &'static str,
    ) -> Result<u64> {
        let mut changes = Vec::with_capacity(2 * (outputs.len() + inputs.len()) + unused.len());
        for (m, intent) in outputs.into_iter().zip(intents) {
            changes.push(CatalogChange::Put(m));
            changes.push(CatalogChange::ClearIntent(intent.location.clone()));
        }
        // Intents of outputs never written (a side segment with nothing to hold): cleared in the same commit.
        changes.extend(unused.iter().map(|i| CatalogChange::ClearIntent(i.location.clone())));
        for m in inputs {
            changes.push(CatalogChange::Expect { id: m.id, updated_generation: m.updated_generation });
            let mut r = (*m).clone();
            r.state = SegmentState::Retired;
            r.retired = Some(retirement.clone());
            changes.push(CatalogChange::Put(r));
        }
        let generation = match self.ctx.catalog.commit(changes) {
            Ok(g) => g,
            Err(e @ StoreError::StalePlan(_)) => {
                self.roll_back(intents);
                self.roll_back(unused);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = self.ctx.failpoints.hit(failpoint) {
            warn!(error = %e, failpoint, "failpoint after a rewrite's commit");
        }
        Ok(generation)
    }

    /// Undoes an uncommitted rewrite: removes its outputs and their intents ([`crate::recovery::roll_back_copy`]).
    /// Best effort: what is left is recovery's.
    fn roll_back(&self, intents: &[Intent]) {
        for intent in intents {
            crate::recovery::roll_back_copy(&self.ctx, intent.segment, &intent.location);
        }
        metrics::counter!("tierd_rewrite_rollbacks_total").increment(1);
    }
}

/// Where a rewrite writes a file of `project`: a fresh hot Parquet path named after the file's id.
fn output_location(project: &str, id: SegmentId) -> Location {
    Location::hot(Layout::hot_segment_location(project, id, Format::Parquet.extension()))
}

/// The failpoints after the steps of one kind of rewrite (see ARCHITECTURE.md).
struct Steps {
    intent: &'static str,
    write: &'static str,
    verify: &'static str,
}

/// The steps of re-encode, compact and recompress.
const REWRITE_STEPS: Steps = Steps { intent: "rewrite.intent", write: "rewrite.write", verify: "rewrite.verify" };

/// The footer's words for a segment's role.
pub(crate) fn lineage_role(role: Role) -> LineageRole {
    match role {
        Role::Data => LineageRole::Data,
        Role::Duplicates { of, keep_until_ms } => LineageRole::Duplicates { of: of.to_string(), keep_until_ms },
    }
}

/// The lineage of a side segment of removed copies: it replaces nothing (its inputs are its output's, retired by
/// the same commit); its role names the output it belongs to.
pub(crate) fn side_lineage(role: Role, created_at_ms: i64) -> Lineage {
    Lineage { inputs: Vec::new(), role: lineage_role(role), erase_inputs: false, created_at_ms }
}

pub fn kind_label(kind: RewriteKind) -> &'static str {
    match kind {
        RewriteKind::Reencode => "reencode",
        RewriteKind::Compact => "compact",
        RewriteKind::Recompress => "recompress",
    }
}
